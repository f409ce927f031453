//! Construction of rustls server and client configurations.
//!
//! Both are TLS 1.3 only and use [`provider()`](crate::provider) explicitly.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{PkiError, Result};
use crate::pem::certs_from_pem;
use crate::provider;

/// The only protocol version Ward speaks.
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Builds the server configuration for Ward's TLS listeners.
///
/// TLS 1.3 only, aws-lc-rs provider, no client authentication, the given
/// certificate chain (leaf first) and private key, and the given ALPN
/// protocols in order of server preference (e.g. `[b"h2", b"http/1.1"]`).
///
/// rustls checks that `key` matches the leaf certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    if chain.is_empty() {
        return Err(PkiError::InvalidInput("server certificate chain is empty".to_owned()));
    }
    let alpn = alpn_list(alpn)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(PkiError::Tls)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Builds a client configuration that trusts exactly the given CA
/// certificates (no system or webpki roots), TLS 1.3 only, with the given
/// ALPN protocols. No client certificate is presented.
///
/// An empty `roots` is rejected: such a client could never connect.
pub fn client_config(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let alpn = alpn_list(alpn)?;
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(PkiError::Tls)?;
    }
    if store.is_empty() {
        return Err(PkiError::InvalidInput(
            "client trust store is empty: at least one CA certificate is required".to_owned(),
        ));
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Client configuration for servers with certificates from a public CA: the
/// platform's trust store (and its revocation checks), TLS 1.3 only, with the
/// given ALPN protocols.
pub fn client_config_platform_roots(alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let alpn = alpn_list(alpn)?;
    let verifier = rustls_platform_verifier::Verifier::new(provider()).map_err(PkiError::Tls)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// [`client_config`] trusting the CA certificate(s) in PEM text, e.g. the
/// contents of the `ca.pem` a Ward server prints or serves.
pub fn client_config_from_pem(ca_pem: &str, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let roots = certs_from_pem(ca_pem)?;
    client_config(&roots, alpn)
}

/// Validates and copies ALPN protocol names (1..=255 bytes each).
fn alpn_list(alpn: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
    alpn.iter()
        .map(|p| {
            if p.is_empty() || p.len() > 255 {
                Err(PkiError::InvalidInput(format!(
                    "ALPN protocol name must be 1 to 255 bytes long, got {} bytes",
                    p.len()
                )))
            } else {
                Ok(p.to_vec())
            }
        })
        .collect()
}
