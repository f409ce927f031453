//! A server certificate that can be replaced while the listener runs: the
//! gateway's HTTPS listener for published applications gets a new
//! certificate when the set of published host names changes, without
//! rebuilding its configuration or dropping connections.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::error::{PkiError, Result};
use crate::pem::certs_from_pem;
use crate::provider;
use crate::tls::{alpn_list, TLS13_ONLY};

/// The current certificate of a listener; the same for every SNI name.
/// Before one is set, handshakes fail.
#[derive(Debug, Default)]
pub struct SwappableCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl SwappableCert {
    pub fn new() -> Arc<SwappableCert> {
        Arc::new(SwappableCert::default())
    }

    /// Uses this chain (leaf first, PEM) and key (PEM) from now on. Fails,
    /// keeping the previous certificate, when they do not parse or do not
    /// belong together.
    pub fn set_pem(&self, chain_pem: &str, key_pem: &str) -> Result<()> {
        let chain = certs_from_pem(chain_pem)?;
        if chain.is_empty() {
            return Err(PkiError::InvalidInput("server certificate chain is empty".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| PkiError::InvalidInput(format!("private key: {e}")))?;
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(PkiError::Tls)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(certified));
        Ok(())
    }

    /// Whether a certificate is set.
    pub fn is_set(&self) -> bool {
        self.current.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A server configuration (TLS 1.3 only, no client authentication) whose
/// certificate is whatever `cert` holds at each handshake.
pub fn server_config_swappable(cert: Arc<SwappableCert>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let alpn = alpn_list(alpn)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}
