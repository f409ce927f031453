//! The gateway's live state for the server's dashboard: tunnels open per
//! tenant (counted here, one per authenticated agent connection) and
//! connections relayed per tenant (from the registry), reported through the
//! [`RecordSink`](crate::RecordSink) at start, every
//! [`STATUS_INTERVAL`](crate::config::STATUS_INTERVAL), and soon after a
//! tunnel opens or closes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use ward_api::{GatewayStatusReport, GatewayTenantLoad};

use crate::spool::RecordSink;
use crate::Gateway;

/// Open tunnels per tenant.
#[derive(Default)]
pub(crate) struct TunnelCounts {
    counts: Mutex<HashMap<Arc<str>, u64>>,
    /// Poked when a tunnel opens or closes.
    pub(crate) changed: Notify,
}

/// One open tunnel; dropping it counts it closed.
pub(crate) struct OpenTunnel<'a> {
    counts: &'a TunnelCounts,
    tenant_id: Arc<str>,
}

impl TunnelCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn open(&self, tenant_id: Arc<str>) -> OpenTunnel<'_> {
        *self.lock().entry(tenant_id.clone()).or_default() += 1;
        self.changed.notify_one();
        OpenTunnel {
            counts: self,
            tenant_id,
        }
    }

    fn snapshot(&self) -> HashMap<Arc<str>, u64> {
        self.lock().clone()
    }
}

impl Drop for OpenTunnel<'_> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.tenant_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.tenant_id);
            }
        }
        drop(counts);
        self.counts.changed.notify_one();
    }
}

/// What the gateway has open now, per tenant.
pub(crate) fn report(gateway: &Gateway) -> GatewayStatusReport {
    let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (tenant, n) in gateway.tunnels.snapshot() {
        per.entry(tenant.to_string()).or_default().0 += n;
    }
    for (tenant, n) in gateway.registry.per_tenant() {
        per.entry(tenant.to_string()).or_default().1 += n;
    }
    GatewayStatusReport {
        tenants: per
            .into_iter()
            .map(|(tenant_id, (tunnels, connections))| GatewayTenantLoad {
                tenant_id,
                tunnels,
                connections,
            })
            .collect(),
    }
}

/// Reports at start, every `interval`, and a second after tunnels change.
pub(crate) async fn run_reporter(gateway: Arc<Gateway>, sink: Arc<impl RecordSink>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gateway.tunnels.changed.notified() => {
                // Let a burst of changes settle into one report.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if let Err(e) = sink.report_status(report(&gateway)).await {
            tracing::debug!(error = %e, "cannot report the gateway's status");
        }
    }
}
