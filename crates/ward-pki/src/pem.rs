//! PEM parsing and loading of certificates and private keys.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{io_err, PkiError, Result};

/// Parses PEM text holding one or more `CERTIFICATE` blocks.
///
/// Other PEM blocks (keys, CSRs, ...) and text outside PEM blocks are
/// ignored. Each certificate is checked to be well-formed X.509 DER, so a
/// corrupt file is reported here rather than as an obscure TLS error later.
/// Fails with [`PkiError::Parse`] if the text holds no certificate at all.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    certs_from_pem_bytes(pem.as_bytes(), "PEM certificate text")
}

/// Loads every certificate in the PEM file at `path` (for a chain: leaf
/// first, as written by [`IssuedCert::chain_pem`](crate::IssuedCert)).
///
/// A missing or unreadable file gives [`PkiError::Io`] naming `path`;
/// a file without any valid certificate gives [`PkiError::Parse`].
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    certs_from_pem_bytes(&bytes, &format!("certificates in {}", path.display()))
}

/// Loads the single private key (PKCS#8, PKCS#1 or SEC1) from the PEM file
/// at `path`.
///
/// A file with no key gives [`PkiError::NoPrivateKey`]; more than one key is
/// rejected as ambiguous ([`PkiError::Parse`]).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let what = format!("private key in {}", path.display());
    match key_from_pem_bytes(&bytes, &what)? {
        Some(key) => Ok(key),
        None => Err(PkiError::NoPrivateKey(path.to_path_buf())),
    }
}

/// Parses all certificates in `pem`; `what` names the input in errors.
pub(crate) fn certs_from_pem_bytes(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let cert = item.map_err(|e| PkiError::Parse {
            what: what.to_owned(),
            reason: format!("invalid PEM: {e}"),
        })?;
        check_cert_der(&cert, what, certs.len())?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(PkiError::Parse {
            what: what.to_owned(),
            reason: "no PEM CERTIFICATE block found".to_owned(),
        });
    }
    Ok(certs)
}

/// Parses the single private key in `pem`. `Ok(None)` if there is none;
/// an error if there are several or the PEM is malformed.
pub(crate) fn key_from_pem_bytes(pem: &[u8], what: &str) -> Result<Option<PrivateKeyDer<'static>>> {
    let mut found = None;
    for item in PrivateKeyDer::pem_slice_iter(pem) {
        let key = item.map_err(|e| PkiError::Parse {
            what: what.to_owned(),
            reason: format!("invalid PEM: {e}"),
        })?;
        if found.is_some() {
            return Err(PkiError::Parse {
                what: what.to_owned(),
                reason: "more than one private key found; expected exactly one".to_owned(),
            });
        }
        found = Some(key);
    }
    Ok(found)
}

/// Checks that `der` is a complete, well-formed X.509 certificate.
fn check_cert_der(der: &[u8], what: &str, index: usize) -> Result<()> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], _)) => Ok(()),
        Ok(_) => Err(PkiError::Parse {
            what: what.to_owned(),
            reason: format!("certificate #{} has trailing data after its DER", index + 1),
        }),
        Err(e) => Err(PkiError::Parse {
            what: what.to_owned(),
            reason: format!("certificate #{} is not valid X.509: {e}", index + 1),
        }),
    }
}
