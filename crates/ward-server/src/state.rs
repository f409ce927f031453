//! What every request handler can reach.

use std::sync::Arc;

use ward_store::Store;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// Id of the reserved `system` tenant: anonymous attempts are recorded in its trail.
    pub system_tenant_id: Arc<str>,
    /// Seals tenant CA keys in the store.
    pub master_key: Arc<ward_pki::MasterKey>,
    /// Fingerprint of the CA behind this server's HTTPS certificate, which
    /// enrolment codes carry so agents can check whom they talk to (None on
    /// plain HTTP, which only loopback serves).
    pub server_pin: Option<Arc<str>>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
