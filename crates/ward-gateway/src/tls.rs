//! The TLS side of the agent listener: the gateway's own certificate, and the
//! tenant CAs it accepts devices from. Configurations come from `ward-pki`
//! only; this file decides when to rebuild one.

use std::sync::RwLock;

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::TlsAcceptor;
use ward_pki::{CertificateDer, PrivateKeyDer};

/// The protocol agents speak inside the tunnel.
const ALPN_H2: &[u8] = b"h2";

/// The gateway's identity plus the acceptor for the current set of tenant
/// CAs. Before the first snapshot there is no acceptor: every connection is
/// refused, since no device could be told apart from any other.
pub(crate) struct TlsSetup {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    current: RwLock<Option<Current>>,
}

struct Current {
    roots: Vec<CertificateDer<'static>>,
    acceptor: TlsAcceptor,
}

impl TlsSetup {
    /// Parses the gateway's chain and key, and checks that they belong
    /// together by building a plain server configuration once.
    pub(crate) fn from_pem(chain_pem: &str, key_pem: &str) -> anyhow::Result<TlsSetup> {
        let chain = ward_pki::certs_from_pem(chain_pem).context("gateway certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("gateway private key: {e}"))?;
        ward_pki::server_config(chain.clone(), key.clone_key(), &[ALPN_H2])
            .context("gateway certificate and key do not form a usable TLS identity")?;
        Ok(TlsSetup {
            chain,
            key,
            current: RwLock::new(None),
        })
    }

    /// Accepts devices of exactly these tenant CAs from now on (`roots`
    /// sorted and deduplicated). Rebuilds the configuration only when the set
    /// changed; connections already up are not affected.
    pub(crate) fn update(&self, roots: &[CertificateDer<'static>]) {
        if self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| c.roots == roots)
        {
            return;
        }
        let next = if roots.is_empty() {
            tracing::warn!("the policy names no tenant: refusing every agent");
            None
        } else {
            match ward_pki::server_config_mtls(self.chain.clone(), self.key.clone_key(), roots, &[ALPN_H2]) {
                Ok(config) => Some(Current {
                    roots: roots.to_vec(),
                    acceptor: TlsAcceptor::from(config),
                }),
                Err(e) => {
                    // Keep what works rather than locking every agent out.
                    tracing::error!(error = %e, "cannot build the TLS configuration for the new set of tenant CAs; keeping the previous one");
                    return;
                }
            }
        };
        tracing::info!(tenant_cas = roots.len(), "TLS client roots updated");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// The acceptor to use for a new connection, if the gateway has a policy.
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.acceptor.clone())
    }
}
