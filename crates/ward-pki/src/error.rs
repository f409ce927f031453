//! The crate's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in `ward-pki`.
///
/// Every message says what failed and, where a file is involved, which file.
/// The underlying cause (I/O, rcgen or rustls error) is part of the message
/// itself and is also kept as a public field for callers that want to match
/// on it; it is deliberately *not* exposed again through
/// [`std::error::Error::source`], so that printing the whole chain (for
/// example with `anyhow`'s `{:#}`) does not repeat it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Reading, writing or inspecting a file or directory failed.
    #[error("I/O error on {path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, std::io::Error),

    /// PEM or DER input could not be understood.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed, including the file name when there is one.
        what: String,
        /// Why it was rejected.
        reason: String,
    },

    /// rcgen failed to generate a key or to build/sign a certificate.
    #[error("certificate or key generation failed: {0}")]
    Generate(rcgen::Error),

    /// rustls rejected the configuration (bad key, unusable certificate, ...).
    #[error("TLS configuration rejected by rustls: {0}")]
    Tls(rustls::Error),

    /// A PEM file that should hold a private key has none.
    #[error("no private key (PKCS#8, PKCS#1 or SEC1 PEM block) found in {}", .0.display())]
    NoPrivateKey(PathBuf),

    /// A private key does not belong to the certificate it was paired with.
    #[error("private key does not match the certificate ({0})")]
    KeyMismatch(String),

    /// A certificate that must be a certificate authority is not one.
    #[error("certificate is not a CA (basicConstraints CA:TRUE missing): {0}")]
    NotACa(String),

    /// A CA directory holds only one of the certificate and the key.
    #[error(
        "incomplete CA in {}: {} exists but {} is missing; refusing to generate a new CA over it \
         (restore the missing file or remove the other one)",
        .dir.display(), .present.display(), .missing.display()
    )]
    IncompleteCa {
        /// The CA directory.
        dir: PathBuf,
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },

    /// The caller asked for something that cannot be done (no SAN, invalid
    /// DNS name, zero validity, empty trust store, expired CA, ...).
    #[error("invalid request: {0}")]
    InvalidInput(String),

    /// A certificate signing request was refused: malformed, a bad
    /// self-signature, or a key type Ward does not accept.
    #[error("certificate signing request rejected: {0}")]
    Csr(String),

    /// A Ward identity (URI or certificate SAN) is malformed or missing.
    #[error("invalid Ward identity: {0}")]
    Identity(String),

    /// A certificate was not issued by the CA it was expected to come from.
    #[error("certificate was not issued by the expected CA: {0}")]
    WrongIssuer(String),

    /// A sealed secret could not be opened (wrong master key, wrong context,
    /// tampered or truncated data, unknown format).
    #[error("cannot open sealed secret: {0}")]
    Unseal(String),

    /// A file holding a secret key is accessible to group or others.
    #[error(
        "{} holds a secret key but has mode {mode:04o} (readable by group or others); \
         refusing to use it: run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    InsecurePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// `Result` with [`PkiError`].
pub type Result<T> = std::result::Result<T, PkiError>;

/// Builds a closure mapping an I/O error to [`PkiError::Io`] for `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |e| PkiError::Io(path.to_path_buf(), e)
}
