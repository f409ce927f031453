//! What gateways enforce: every tenant's policy, users, devices and CA, as
//! one versioned snapshot, and the wait for the next one.

use std::time::{Duration, Instant};

use ward_api::{GatewaySnapshot, SnapshotDevice, SnapshotUser, TenantSnapshot};
use ward_core::TenantState;
use ward_store::PageRequest;

use crate::error::ApiResult;
use crate::policy;
use crate::state::AppState;

/// How often the epoch is read while a gateway waits.
const POLL: Duration = Duration::from_millis(200);

/// The current snapshot. The version is read first: a change made while the
/// snapshot is built moves the epoch past it, so the gateway asks again.
pub async fn build(state: &AppState) -> ApiResult<GatewaySnapshot> {
    let store = &state.store;
    let version = store.policy_epoch().await?;
    let mut tenants = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_tenants(&PageRequest::new(cursor, Some(PageRequest::MAX_LIMIT)))
            .await?;
        for t in page.items {
            // A tenant without a CA has no devices yet: nothing to enforce.
            let Some(ca) = store.tenant_ca(&t.id).await? else {
                continue;
            };
            if t.is_system() {
                continue;
            }
            let (input, groups_of) = policy::load_input(store, &t.id).await?;
            let users = store
                .all_users(&t.id)
                .await?
                .into_iter()
                .map(|u| SnapshotUser {
                    groups: groups_of.get(&u.id).cloned().unwrap_or_default(),
                    id: u.id,
                    name: u.name,
                    disabled: u.disabled,
                })
                .collect();
            let devices = store
                .all_devices(&t.id)
                .await?
                .into_iter()
                .map(|d| SnapshotDevice {
                    revoked: d.is_revoked(),
                    session_expires_ms: Some(d.session_expires_at.unwrap_or(0)),
                    id: d.id,
                    user_id: d.user_id,
                    compliant: d.compliant,
                })
                .collect();
            tenants.push(TenantSnapshot {
                id: t.id,
                name: t.name,
                active: t.state == TenantState::Active,
                ca_pem: ca.cert_pem,
                policy: input,
                users,
                devices,
            });
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(GatewaySnapshot { version, tenants })
}

/// Wait until the policy epoch passes `after` (or `wait` elapses), then
/// build the snapshot. With no `after`, answer at once.
pub async fn next_after(state: &AppState, after: Option<i64>, wait: Duration) -> ApiResult<GatewaySnapshot> {
    if let Some(after) = after {
        let deadline = Instant::now() + wait;
        while state.store.policy_epoch().await? <= after && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
    }
    build(state).await
}
