//! Construction of rustls server and client configurations, with and
//! without mutual TLS.
//!
//! All are TLS 1.3 only and use [`provider()`](crate::provider) explicitly.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{PkiError, Result};
use crate::pem::certs_from_pem;
use crate::provider;

/// The only protocol version Ward speaks.
pub(crate) static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

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
    let store = root_store(roots, "client trust store")?;
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

/// Client configuration for an LDAP directory (LDAPS or StartTLS): TLS 1.3
/// only, no ALPN, trusting exactly the CA certificate(s) in `ca_pem` when
/// given (a directory with a private CA), else the platform's trust store.
/// The server's name (or IP address) is checked against its certificate.
pub fn ldap_client_config(ca_pem: Option<&str>) -> Result<Arc<ClientConfig>> {
    match ca_pem {
        Some(pem) => client_config_from_pem(pem, &[]),
        None => client_config_platform_roots(&[]),
    }
}

/// Builds the server configuration for a listener that **requires** mutual
/// TLS (the gateway's agent listener).
///
/// Like [`server_config`], plus: every client must present a certificate
/// that chains (webpki: signatures with the provider's algorithms, validity,
/// extended key usage clientAuth) to one of `client_roots`, e.g. the CAs of
/// all tenants; a client without a certificate or with one from another CA
/// fails the handshake. The list of acceptable CA names is *not* sent to
/// clients (it would be large and would disclose the tenants); Ward agents
/// hold a single certificate and present it anyway.
///
/// Which root a client chained to is not recorded by rustls: read the peer
/// certificate after the handshake, take its
/// [`Identity`](crate::Identity::from_cert_der), and if the identity's
/// tenant matters check [`verify_issued_by`](crate::verify_issued_by)
/// against that tenant's CA. Adding a tenant CA means building a new config.
///
/// An empty `client_roots` is rejected ([`PkiError::InvalidInput`]).
pub fn server_config_mtls(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    if chain.is_empty() {
        return Err(PkiError::InvalidInput("server certificate chain is empty".to_owned()));
    }
    let alpn = alpn_list(alpn)?;
    let roots = root_store(client_roots, "set of client CAs for mutual TLS")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .clear_root_hint_subjects()
        .build()
        .map_err(|e| PkiError::InvalidInput(format!("cannot build the client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(PkiError::Tls)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Builds a client configuration for mutual TLS (the agent connecting to a
/// gateway): trusts exactly `server_roots` like [`client_config`], and
/// presents `client_chain` (leaf first; the leaf alone is enough when the
/// server holds the issuing CA) proven with `client_key`.
///
/// rustls checks that `client_key` matches the leaf. An empty
/// `server_roots` or `client_chain` is rejected.
pub fn client_config_mtls(
    server_roots: &[CertificateDer<'static>],
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>> {
    if client_chain.is_empty() {
        return Err(PkiError::InvalidInput("client certificate chain is empty".to_owned()));
    }
    let alpn = alpn_list(alpn)?;
    let store = root_store(server_roots, "client trust store")?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .with_root_certificates(store)
        .with_client_auth_cert(client_chain, client_key)
        .map_err(PkiError::Tls)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// A root store holding exactly `roots`; `what` names it in the error for
/// an empty list.
fn root_store(roots: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(PkiError::Tls)?;
    }
    if store.is_empty() {
        return Err(PkiError::InvalidInput(format!(
            "{what} is empty: at least one CA certificate is required"
        )));
    }
    Ok(store)
}

/// Validates and copies ALPN protocol names (1..=255 bytes each).
pub(crate) fn alpn_list(alpn: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
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
