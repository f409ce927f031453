//! # ward-pki
//!
//! Ward's certificate authority helpers and **the one place that builds TLS
//! configurations**.
//!
//! What lives here:
//!
//! * [`CertificateAuthority`]: generate a CA (ECDSA P-256, ten years) or load
//!   one from PEM, and issue certificates with it. Ward's server uses one for
//!   the certificate of its HTTPS listener on non-loopback addresses and
//!   prints its [`fingerprint`](CertificateAuthority::fingerprint); per-tenant
//!   device CAs for mTLS are meant to be further instances.
//! * [`load_or_create_ca`]: the on-disk layout of a CA (`ca.pem`, `ca.key`
//!   with mode 0600, never overwritten).
//! * PEM helpers: [`certs_from_pem`], [`load_certs`], [`load_private_key`],
//!   plus [`fingerprint_der`] (`"sha256:<64 lowercase hex>"`).
//! * rustls configurations: [`server_config`] for Ward's listeners and
//!   [`client_config`] / [`client_config_from_pem`] for the CLI client, which
//!   trusts exactly the CA(s) it is given (no system roots).
//!
//! ## Invariants
//!
//! * No other Ward crate constructs a `rustls::ServerConfig` or
//!   `rustls::ClientConfig`; they call this crate, so the TLS policy is
//!   decided in one place.
//! * The policy is TLS 1.3 only.
//! * The crypto provider is always aws-lc-rs, obtained from [`provider()`]
//!   and passed explicitly to every rustls builder. Nothing relies on, or
//!   installs, a process-wide default provider, and `ring` is never enabled.
//! * Private keys never appear in `Debug` output.

mod ca;
mod error;
mod pem;
mod store;
mod tls;

use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

pub use ca::{CertificateAuthority, IssuedCert};
pub use error::{PkiError, Result};
pub use pem::{certs_from_pem, load_certs, load_private_key};
pub use store::{load_or_create_ca, CA_CERT_FILE, CA_KEY_FILE};
pub use tls::{client_config, client_config_from_pem, client_config_platform_roots, server_config};

/// Re-exported so callers can name certificate and key types without
/// depending on `rustls-pki-types` themselves.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider Ward uses everywhere: aws-lc-rs.
///
/// Always pass it explicitly (`builder_with_provider(ward_pki::provider())`);
/// never rely on rustls' process-wide default. The same `Arc` is returned on
/// every call.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// `"sha256:"` followed by the 64 lowercase hex digits of the SHA-256 of a
/// DER certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint_der(b"");
        assert_eq!(
            fp,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn provider_is_aws_lc_rs_and_shared() {
        let a = provider();
        let b = provider();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!a.cipher_suites.is_empty());
        let reference = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(a.cipher_suites.len(), reference.cipher_suites.len());
    }
}
