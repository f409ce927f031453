//! Every live relayed connection, with what it was decided on and a handle to
//! cut it. After each snapshot, and every `recheck_interval` for validity
//! windows, each one is decided again; those now denied are cancelled and end
//! with `policy_changed`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::internet::{Internet, Who};
use crate::records::{now_ms, End};
use crate::state::{Destination, SharedState};

/// One live connection as the re-check sees it.
pub(crate) struct LiveConn {
    pub(crate) tenant_id: Arc<str>,
    pub(crate) device_id: Arc<str>,
    pub(crate) source: IpAddr,
    /// Lowercased host as asked.
    pub(crate) host: String,
    pub(crate) resolved: Option<IpAddr>,
    pub(crate) port: u16,
    /// When the device certificate of its tunnel expires (ms since epoch).
    pub(crate) cert_expires_ms: i64,
    /// Internet traffic: re-decided with the tenant's internet rules.
    pub(crate) internet: Option<InternetLive>,
    cancel: CancellationToken,
    /// 0 while live; otherwise the `End` a canceller chose (first one wins).
    end: AtomicU8,
}

/// What the re-check of an internet connection needs.
pub(crate) struct InternetLive {
    /// Set for the proxy port (decided by user); `None`: by device.
    pub(crate) user_id: Option<Arc<str>>,
}

const END_POLICY_CHANGED: u8 = 1;
const END_GATEWAY_SHUTDOWN: u8 = 2;
const END_CERTIFICATE_EXPIRED: u8 = 3;

impl LiveConn {
    pub(crate) fn new(
        tenant_id: Arc<str>,
        device_id: Arc<str>,
        source: IpAddr,
        host: String,
        resolved: Option<IpAddr>,
        port: u16,
        cert_expires_ms: i64,
    ) -> LiveConn {
        LiveConn {
            tenant_id,
            device_id,
            source,
            host,
            resolved,
            port,
            cert_expires_ms,
            internet: None,
            cancel: CancellationToken::new(),
            end: AtomicU8::new(0),
        }
    }

    /// Marks the connection as internet traffic (decided with the internet
    /// rules): of the device's user, or of `user_id` (the proxy port, no
    /// device).
    pub(crate) fn internet(mut self, user_id: Option<Arc<str>>) -> LiveConn {
        self.internet = Some(InternetLive { user_id });
        self
    }

    /// Cuts the connection; the record will say `end`.
    pub(crate) fn cancel(&self, end: End) {
        let code = match end {
            End::PolicyChanged => END_POLICY_CHANGED,
            End::CertificateExpired => END_CERTIFICATE_EXPIRED,
            _ => END_GATEWAY_SHUTDOWN,
        };
        let _ = self.end.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.cancel.cancel();
    }

    pub(crate) fn cancelled_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Why the connection was cancelled, if it was.
    pub(crate) fn cancelled_because(&self) -> Option<End> {
        match self.end.load(Ordering::Acquire) {
            END_POLICY_CHANGED => Some(End::PolicyChanged),
            END_GATEWAY_SHUTDOWN => Some(End::GatewayShutdown),
            END_CERTIFICATE_EXPIRED => Some(End::CertificateExpired),
            _ => None,
        }
    }

    fn destination(&self) -> Destination<'_> {
        Destination {
            host: &self.host,
            resolved: self.resolved,
            port: self.port,
        }
    }
}

/// The set of live connections.
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<LiveConn>>>,
    next_id: AtomicU64,
    /// Poked after every new snapshot so the re-check runs at once.
    pub(crate) changed: Notify,
}

/// A registration; dropping it removes the connection.
pub(crate) struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
    pub(crate) conn: Arc<LiveConn>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveConn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, conn: LiveConn) -> Registered<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(conn);
        self.lock().insert(id, conn.clone());
        Registered {
            registry: self,
            id,
            conn,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Live connections per tenant.
    pub(crate) fn per_tenant(&self) -> std::collections::HashMap<Arc<str>, u64> {
        let mut per = std::collections::HashMap::new();
        for conn in self.lock().values() {
            *per.entry(conn.tenant_id.clone()).or_insert(0) += 1;
        }
        per
    }

    fn snapshot(&self) -> Vec<Arc<LiveConn>> {
        self.lock().values().cloned().collect()
    }

    /// Decides every live connection again; cancels the ones now denied and
    /// returns how many.
    pub(crate) fn recheck(&self, state: &SharedState, internet: &Internet) -> usize {
        let Some(policy) = state.current() else { return 0 };
        let now = now_ms();
        let mut cut = 0;
        for conn in self.snapshot() {
            if conn.cancel.is_cancelled() {
                continue;
            }
            if now >= conn.cert_expires_ms {
                tracing::info!(
                    tenant = %conn.tenant_id,
                    device = %conn.device_id,
                    host = %conn.host,
                    port = conn.port,
                    "the device certificate of a live connection expired; closing it"
                );
                conn.cancel(End::CertificateExpired);
                cut += 1;
                continue;
            }
            let (allowed, reason) = match &conn.internet {
                None => {
                    let verdict = policy.decide(&conn.tenant_id, &conn.device_id, conn.source, conn.destination(), now);
                    (verdict.allowed, verdict.reason)
                }
                Some(web) => {
                    let who = match &web.user_id {
                        Some(user) => Who::User(user),
                        None => Who::Device(&conn.device_id),
                    };
                    let allowed = policy.tenant(&conn.tenant_id).is_some_and(|tenant| {
                        crate::internet::still_allowed(
                            internet,
                            &conn.tenant_id,
                            tenant,
                            who,
                            &conn.host,
                            conn.port,
                            now,
                        )
                    });
                    (allowed, "internet_rules")
                }
            };
            if !allowed {
                tracing::info!(
                    tenant = %conn.tenant_id,
                    device = %conn.device_id,
                    host = %conn.host,
                    port = conn.port,
                    reason,
                    "live connection no longer allowed; closing it"
                );
                conn.cancel(End::PolicyChanged);
                cut += 1;
            }
        }
        cut
    }

    /// Cancels every live connection (end of the drain grace period).
    pub(crate) fn cancel_all(&self, end: End) {
        for conn in self.snapshot() {
            conn.cancel(end);
        }
    }
}

/// Re-checks after every snapshot and on a timer.
pub(crate) async fn recheck_loop(gateway: Arc<crate::Gateway>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = gateway.registry.changed.notified() => {}
            _ = tick.tick() => {}
        }
        gateway.registry.recheck(&gateway.state, &gateway.internet);
    }
}
