//! Sealing secrets (tenant CA private keys) under the server's master key,
//! so the database only ever holds them encrypted.
//!
//! Format of a sealed value: `v1.` followed by standard base64 (with
//! padding) of `nonce (12 bytes) || ciphertext || tag (16 bytes)`,
//! AES-256-GCM with a random nonce and the caller's `context` as associated
//! data. The context (e.g. the tenant id) is not stored: opening requires
//! the same context, so a sealed value copied to another tenant's row does
//! not open.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

use crate::ca::CertificateAuthority;
use crate::error::{io_err, PkiError, Result};
use crate::store::{create_private_dir, write_new_file};

/// Version prefix of sealed values.
const SEALED_PREFIX: &str = "v1.";
/// Length of the AES-GCM authentication tag.
const TAG_LEN: usize = 16;

/// The server's 256-bit master key, used to [`seal`](Self::seal) secrets.
///
/// `Debug` prints `MasterKey([redacted])`; the key bytes are wiped from
/// memory when the value is dropped.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| PkiError::InvalidInput("the system random number generator failed".to_owned()))?;
        Ok(Self(bytes))
    }

    /// Decodes a key from standard base64 (surrounding whitespace is
    /// ignored); it must decode to exactly 32 bytes. Error messages never
    /// contain the input.
    pub fn from_base64(text: &str) -> Result<Self> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|e| PkiError::Parse {
            what: "master key".to_owned(),
            reason: format!("not valid base64: {e}"),
        })?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| PkiError::Parse {
            what: "master key".to_owned(),
            reason: format!("must decode to 32 bytes, got {}", decoded.len()),
        })?;
        Ok(Self(bytes))
    }

    /// The key as standard base64, the form [`from_base64`](Self::from_base64)
    /// and [`load_or_create_master_key`] read. This is the secret itself.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// Encrypts `plaintext` with AES-256-GCM under a fresh random 96-bit
    /// nonce, authenticating `context` as associated data. The result is
    /// `v1.<base64>` and can only be opened with this key and the same
    /// `context`.
    ///
    /// Fails only if the system random number generator fails or the
    /// plaintext is absurdly large (over 64 GiB).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String> {
        let key = self.aead_key()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| PkiError::InvalidInput("the system random number generator failed".to_owned()))?;
        let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut *buf)
            .map_err(|_| PkiError::InvalidInput("plaintext too large to seal".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same
    /// `context`. A wrong key, a wrong context and any modification of the
    /// sealed text all give [`PkiError::Unseal`] (AES-GCM cannot tell them
    /// apart).
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let body = sealed.trim().strip_prefix(SEALED_PREFIX).ok_or_else(|| {
            PkiError::Unseal(format!(
                "unknown format (expected a value starting with {SEALED_PREFIX:?})"
            ))
        })?;
        let mut data = Zeroizing::new(
            STANDARD
                .decode(body)
                .map_err(|e| PkiError::Unseal(format!("not valid base64: {e}")))?,
        );
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(PkiError::Unseal("sealed value is truncated".to_owned()));
        }
        let nonce_bytes: [u8; NONCE_LEN] = data
            .get(..NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| PkiError::Unseal("sealed value is truncated".to_owned()))?;
        let key = self.aead_key()?;
        let plaintext_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut data[NONCE_LEN..],
            )
            .map_err(|_| {
                PkiError::Unseal(
                    "authentication failed: wrong master key, wrong context, or the sealed value was modified"
                        .to_owned(),
                )
            })?
            .len();
        // Move the plaintext to the front and drop nonce and tag.
        data.copy_within(NONCE_LEN..NONCE_LEN + plaintext_len, 0);
        data.truncate(plaintext_len);
        Ok(data)
    }

    fn aead_key(&self) -> Result<LessSafeKey> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.0)
            .map_err(|_| PkiError::InvalidInput("AES-256-GCM rejected the master key".to_owned()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Loads the master key from `path`, or creates it.
///
/// * The file exists: on unix it must not be accessible to group or others
///   ([`PkiError::InsecurePermissions`] naming the path otherwise); it must
///   hold the base64 of 32 bytes. The flag is `false`.
/// * It does not: a new random key is written there as base64 plus a
///   newline, with `create_new` and mode 0600 (parent directories are
///   created with mode 0700). The flag is `true`. If another process creates
///   the file at the same moment, its key is loaded instead.
///
/// An existing file is never overwritten: losing the master key makes every
/// sealed secret unreadable.
pub fn load_or_create_master_key(path: &Path) -> Result<(MasterKey, bool)> {
    if !path.try_exists().map_err(io_err(path))? {
        let key = MasterKey::generate()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        let mut contents = key.to_base64();
        contents.push('\n');
        match write_new_file(path, contents.as_bytes(), 0o600) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated new master key");
                return Ok((key, true));
            }
            Err(PkiError::Io(_, e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::debug!(path = %path.display(), "master key created concurrently; loading it");
            }
            Err(e) => return Err(e),
        }
    }
    check_private_file(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path))?);
    let key = MasterKey::from_base64(&text).map_err(|e| match e {
        PkiError::Parse { reason, .. } => PkiError::Parse {
            what: format!("master key file {}", path.display()),
            reason,
        },
        other => other,
    })?;
    Ok((key, false))
}

/// Refuses a secret file that group or others may access (unix only).
fn check_private_file(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io_err(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PkiError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl CertificateAuthority {
    /// The CA for storage in a database: `(certificate PEM, private key
    /// sealed under `key` with `context`)`. Pass something that identifies
    /// the owner as `context` (e.g. the tenant id) and the same value to
    /// [`from_sealed`](Self::from_sealed).
    pub fn to_sealed(&self, key: &MasterKey, context: &[u8]) -> Result<(String, String)> {
        let key_pem = Zeroizing::new(self.key_pem());
        let sealed = key.seal(key_pem.as_bytes(), context)?;
        Ok((self.cert_pem(), sealed))
    }

    /// Restores a CA saved with [`to_sealed`](Self::to_sealed): opens the
    /// sealed key with `key` and `context` ([`PkiError::Unseal`] if either is
    /// wrong) and loads it like [`from_pem`](Self::from_pem), checking that
    /// it belongs to the certificate.
    pub fn from_sealed(cert_pem: &str, sealed_key: &str, key: &MasterKey, context: &[u8]) -> Result<Self> {
        let key_pem = key.open(sealed_key, context)?;
        Self::from_pem_named(
            cert_pem.as_bytes(),
            &key_pem,
            "sealed CA certificate PEM",
            "sealed CA private key",
        )
    }
}
