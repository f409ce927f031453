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
    /// Each gateway's last status report, with when it arrived (in memory:
    /// the dashboard's "open now").
    pub gateway_reports: GatewayReports,
}

/// The gateways' last status reports, by gateway id.
#[derive(Clone, Default)]
pub struct GatewayReports(
    Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, ward_api::GatewayStatusReport)>>>,
);

/// A report older than this is not "now".
pub const REPORT_FRESH_MS: i64 = 60_000;

impl GatewayReports {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, ward_api::GatewayStatusReport)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `report` as gateway `id`'s latest, received `now`.
    pub fn put(&self, id: &str, report: ward_api::GatewayStatusReport, now: i64) {
        self.lock().insert(id.to_owned(), (now, report));
    }

    /// Gateway `id`'s last report and when it came.
    pub fn get(&self, id: &str) -> Option<(i64, ward_api::GatewayStatusReport)> {
        self.lock().get(id).cloned()
    }

    /// Every gateway's last report.
    pub fn all(&self) -> Vec<(String, i64, ward_api::GatewayStatusReport)> {
        self.lock()
            .iter()
            .map(|(id, (t, r))| (id.clone(), *t, r.clone()))
            .collect()
    }

    /// A tenant's tunnels and connections open now: the sum over the
    /// reports at most [`REPORT_FRESH_MS`] old.
    pub fn open_now(&self, tenant_id: &str, now: i64) -> (u64, u64) {
        self.lock()
            .values()
            .filter(|(t, _)| now - *t <= REPORT_FRESH_MS)
            .flat_map(|(_, r)| r.tenants.iter().filter(|l| l.tenant_id == tenant_id))
            .fold((0, 0), |(t, c), l| (t + l.tunnels, c + l.connections))
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
