//! What gateways enforce: every tenant's policy, users, devices and CA, as
//! one versioned snapshot, and the wait for the next one.

use std::time::{Duration, Instant};

use ward_api::{
    DnsSettings, GatewaySnapshot, InspectionCa, InternetSnapshot, SnapshotDevice, SnapshotGroup,
    SnapshotProxyCredential, SnapshotUser, TenantSnapshot, WebApp,
};
use ward_core::TenantState;
use ward_store::PageRequest;

use crate::api::internet;
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
            if t.is_system() {
                continue;
            }
            // A tenant without a CA has no devices yet: nothing to enforce
            // for agents. It is in the snapshot only when it publishes
            // applications for browsers (clientless web access), with no CA.
            // Nor for internet access control, unless the tenant configured
            // it (a proxy credential works without any device).
            let ca_pem = match store.tenant_ca(&t.id).await? {
                Some(ca) => ca.cert_pem,
                None if store.all_apps(&t.id).await?.iter().any(|a| a.public_host.is_some()) => String::new(),
                None if store.has_internet_config(&t.id).await? => String::new(),
                None => continue,
            };
            let internet = internet_part(state, &t.id).await?;
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
            let groups = store
                .all_groups(&t.id)
                .await?
                .into_iter()
                .map(|g| SnapshotGroup { id: g.id, name: g.name })
                .collect();
            let web_apps = store
                .all_apps(&t.id)
                .await?
                .into_iter()
                .filter_map(|a| {
                    Some(WebApp {
                        public_host: a.public_host?,
                        app_id: a.id,
                        upstream_scheme: a.upstream_scheme,
                    })
                })
                .collect();
            tenants.push(TenantSnapshot {
                id: t.id,
                name: t.name,
                active: t.state == TenantState::Active,
                ca_pem,
                policy: input,
                users,
                devices,
                groups,
                web_apps,
                internet,
            });
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(GatewaySnapshot { version, tenants })
}

/// The tenant's internet access control as gateways enforce it: rules by
/// id, only the lists rules or the do-not-inspect setting name (by digest),
/// and the inspection CA (unsealed) only while inspection is on.
async fn internet_part(state: &AppState, tenant_id: &str) -> ApiResult<InternetSnapshot> {
    let store = &state.store;
    let s = store
        .internet_settings(tenant_id)
        .await?
        .unwrap_or_else(internet::default_settings);
    let (policy, list_refs) =
        internet::load_policy_refs(store, tenant_id, &s.default_action, &s.do_not_inspect).await?;
    let inspection_ca = match (&s.inspection, &s.inspection_ca) {
        (true, Some(row)) => internet::open_inspection_ca(state, tenant_id, row)
            .map(|(cert_pem, key_pem)| InspectionCa { cert_pem, key_pem }),
        _ => None,
    };
    let proxy_credentials = store
        .proxy_credentials(tenant_id, None)
        .await?
        .into_iter()
        .map(|c| SnapshotProxyCredential {
            id: c.id,
            user_id: c.user_id,
            secret_sha256: c.secret_sha256,
        })
        .collect();
    Ok(InternetSnapshot {
        enabled: s.enabled,
        policy,
        list_refs,
        dns: DnsSettings {
            block_mode: s.dns_block_mode,
            block_ipv4: s.dns_block_ipv4,
            block_ipv6: s.dns_block_ipv6,
        },
        inspection: s.inspection && inspection_ca.is_some(),
        do_not_inspect: s.do_not_inspect,
        inspection_ca,
        proxy_credentials,
        warn_minutes: u32::try_from(s.warn_minutes).unwrap_or(60),
    })
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
