//! # ward-pki
//!
//! Ward's certificate authority helpers, identities, sealed key storage and
//! **the one place that builds TLS configurations**.
//!
//! What lives here:
//!
//! * [`CertificateAuthority`]: generate a CA (ECDSA P-256, ten years) or load
//!   one from PEM, and issue certificates with it. The *service CA* (the
//!   server's own, from [`load_or_create_ca`]) issues the HTTPS listener's
//!   certificate ([`issue_server`](CertificateAuthority::issue_server)) and
//!   gateway certificates; each *tenant CA* issues its devices' short-lived
//!   client certificates.
//! * Enrolment from CSRs: the agent or gateway creates its key locally with
//!   [`generate_key_and_csr`] and sends only the CSR;
//!   [`CertificateAuthority::sign_csr`] verifies it and issues a certificate
//!   for a server-chosen [`Identity`], ignoring whatever the CSR asked for.
//! * [`Identity`]: `ward://tenant/<t>/device/<d>` or `ward://gateway/<g>`,
//!   carried as the certificate's one URI SAN and read back with
//!   [`Identity::from_cert_der`]; [`verify_issued_by`] ties a certificate to
//!   a specific CA.
//! * Sealing: [`MasterKey`] (from [`load_or_create_master_key`]) encrypts
//!   secrets such as tenant CA keys for the database (AES-256-GCM,
//!   [`CertificateAuthority::to_sealed`] / [`from_sealed`](CertificateAuthority::from_sealed)).
//! * PEM helpers: [`certs_from_pem`], [`load_certs`], [`load_private_key`],
//!   plus [`fingerprint_der`] (`"sha256:<64 lowercase hex>"`).
//! * rustls configurations: [`server_config`] for Ward's listeners,
//!   [`server_config_mtls`] for listeners that require client certificates
//!   (the gateway), [`client_config`] / [`client_config_from_pem`] /
//!   [`client_config_mtls`] for clients that trust exactly the CA(s) they are
//!   given, [`client_config_platform_roots`] for public servers, and
//!   [`client_config_pinned`] for enrolment against a pinned CA fingerprint
//!   ([`parse_pin`], [`pinned_ca_from_chain`]).
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
//!   Signatures this crate checks itself (CSRs, [`verify_issued_by`]) and
//!   sealing also use aws-lc-rs.
//! * Private keys and the master key never appear in `Debug` output, logs or
//!   error messages.
//! * A CSR proves possession of a key and nothing else: the identity, names
//!   and usages of an issued certificate come from the caller.
//! * Sealed secrets are bound to their context (e.g. the tenant id): a
//!   sealed value moved to another context does not open.

mod ca;
mod csr;
mod error;
mod identity;
mod inspect;
mod pem;
mod pin;
mod seal;
mod store;
mod swappable;
mod tls;

use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

pub use ca::{CertificateAuthority, IssuedCert};
pub use csr::{generate_key_and_csr, IssuedLeaf};
pub use error::{PkiError, Result};
pub use identity::{is_valid_id, not_after_ms, verify_issued_by, Identity, MAX_ID_LEN};
pub use inspect::{inspection_upstream_config, Minter, MINTED_CACHE, MINTED_LIFETIME};
pub use pem::{certs_from_pem, load_certs, load_private_key};
pub use pin::{client_config_pinned, parse_pin, pinned_ca_from_chain};
pub use seal::{load_or_create_master_key, MasterKey};
pub use store::{load_or_create_ca, CA_CERT_FILE, CA_KEY_FILE};
pub use swappable::{server_config_swappable, SwappableCert};
pub use tls::{
    client_config, client_config_from_pem, client_config_mtls, client_config_platform_roots, ldap_client_config,
    server_config, server_config_mtls,
};

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
