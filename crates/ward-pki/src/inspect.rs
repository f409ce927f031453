//! TLS inspection: certificates for internet sites minted on the fly from a
//! tenant's inspection CA, and the client side that checks the real site.
//!
//! When a tenant turns inspection on and a rule asks for it, the gateway
//! ends the TLS of a `CONNECT` itself with a certificate for the host the
//! device asked for, signed by the tenant's inspection CA (which the
//! tenant's admins install on their endpoints), and opens its own TLS to the
//! site, checked against the platform's roots (plus any extra CA a gateway
//! is told to trust).
//!
//! - [`Minter`] issues and caches one server configuration per host: a leaf
//!   with a fresh P-256 key, the host as its only subject alternative name
//!   (a DNS name, or an IP address for an IP literal), valid for a day,
//!   TLS 1.3, ALPN `http/1.1` only (the gateway reads the requests as
//!   HTTP/1.1). The cache holds at most [`MINTED_CACHE`] hosts and renews a
//!   certificate after half its life.
//! - [`inspection_upstream_config`] is the gateway's client side (TLS 1.3
//!   or 1.2: the internet's sites are not all on 1.3 yet).
//!
//! The minted certificate names the host asked for and nothing else, so a
//! device that sends another SNI fails its own certificate check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ServerConfig};

use crate::ca::CertificateAuthority;
use crate::error::{PkiError, Result};
use crate::pem::certs_from_pem;
use crate::{provider, tls::TLS13_ONLY};

/// Hosts whose configuration is kept.
pub const MINTED_CACHE: usize = 10_000;
/// How long a minted certificate is valid.
pub const MINTED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Mints and caches the server side of inspected connections for one
/// inspection CA.
pub struct Minter {
    ca: CertificateAuthority,
    cache: Mutex<HashMap<String, (Arc<ServerConfig>, Instant)>>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").field("ca", &self.ca).finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter for the CA in `cert_pem` / `key_pem`.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Minter> {
        Ok(Minter::new(CertificateAuthority::from_pem(cert_pem, key_pem)?))
    }

    pub fn new(ca: CertificateAuthority) -> Minter {
        Minter {
            ca,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The CA's certificate (PEM), for admins to install on endpoints.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The server configuration for `host`: a normalised host name (lower
    /// case, A-labels, no trailing dot) or an IP literal (without brackets).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        if let Some((config, minted)) = self.cache.lock().map_err(|_| poisoned())?.get(host) {
            if minted.elapsed() < MINTED_LIFETIME / 2 {
                return Ok(config.clone());
            }
        }
        let config = self.mint(host)?;
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        if cache.len() >= MINTED_CACHE {
            // Forget the older half; the hosts in use come back at once.
            let mut ages: Vec<Instant> = cache.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            cache.retain(|_, (_, at)| *at > cut);
        }
        cache.insert(host.to_owned(), (config.clone(), Instant::now()));
        Ok(config)
    }

    fn mint(&self, host: &str) -> Result<Arc<ServerConfig>> {
        let (names, ips): (Vec<String>, Vec<IpAddr>) = match host.parse::<IpAddr>() {
            Ok(ip) => (Vec::new(), vec![ip]),
            Err(_) => (vec![host.to_owned()], Vec::new()),
        };
        let issued = self.ca.issue_server(&names, &ips, MINTED_LIFETIME)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(TLS13_ONLY)
            .map_err(PkiError::Tls)?
            .with_no_client_auth()
            .with_single_cert(issued.chain_der()?, issued.private_key_der()?)
            .map_err(PkiError::Tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn poisoned() -> PkiError {
    PkiError::InvalidInput("inspection certificate cache lock poisoned".to_owned())
}

/// The client configuration an inspecting gateway uses towards the real
/// site: the platform's trust store, plus the CA certificates in
/// `extra_roots_pem` when given; ALPN `http/1.1`.
///
/// TLS 1.3, and TLS 1.2 (with rustls's forward-secret AEAD suites only):
/// the sites are the internet's, many of which still stop at 1.2, and the
/// device could reach them itself. Ward's own endpoints (and the device's
/// side of an inspected connection) stay TLS 1.3 only.
pub fn inspection_upstream_config(extra_roots_pem: Option<&str>) -> Result<Arc<ClientConfig>> {
    let verifier = match extra_roots_pem {
        Some(pem) => {
            let roots = certs_from_pem(pem)?;
            if roots.is_empty() {
                return Err(PkiError::InvalidInput("no certificate in the extra roots".to_owned()));
            }
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider()).map_err(PkiError::Tls)?
        }
        None => rustls_platform_verifier::Verifier::new(provider()).map_err(PkiError::Tls)?,
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(PkiError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_minted_certificate_passes_a_client_trusting_the_inspection_ca() {
        let ca = CertificateAuthority::generate("Example inspection CA").unwrap();
        let ca_pem = ca.cert_pem();
        let minter = Minter::new(ca);
        let server = minter.server_config("news.example").unwrap();
        // Cached: the same configuration for the same host.
        assert!(Arc::ptr_eq(&server, &minter.server_config("news.example").unwrap()));

        let client = crate::client_config_from_pem(&ca_pem, &[b"http/1.1"]).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let serve = tokio::spawn(async move {
            let mut tls = acceptor.accept(b).await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.flush().await.unwrap();
        });
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        let name = ServerName::try_from("news.example").unwrap();
        let mut tls = connector.connect(name, a).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        serve.await.unwrap();

        // The certificate names that host only.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(minter.server_config("news.example").unwrap());
        let serve = tokio::spawn(async move { acceptor.accept(b).await.is_err() });
        let connector = tokio_rustls::TlsConnector::from(client);
        let other = ServerName::try_from("bank.example").unwrap();
        assert!(connector.connect(other, a).await.is_err());
        assert!(serve.await.unwrap());
    }

    #[test]
    fn ip_literals_get_an_ip_address_name() {
        let minter = Minter::new(CertificateAuthority::generate("Example inspection CA").unwrap());
        assert!(minter.server_config("192.0.2.7").is_ok());
        assert!(minter.server_config("2001:db8::1").is_ok());
        assert!(minter.server_config("bad name!").is_err());
    }

    #[test]
    fn upstream_config_accepts_extra_roots() {
        let ca = CertificateAuthority::generate("Example site CA").unwrap();
        assert!(inspection_upstream_config(Some(&ca.cert_pem())).is_ok());
        assert!(inspection_upstream_config(Some("not a certificate")).is_err());
    }
}
