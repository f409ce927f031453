//! The admin audit trail, written in one place: a middleware around every
//! API request.
//!
//! It records every mutating call (POST, PUT, PATCH, DELETE), whatever its
//! result, and every refused attempt (401, 403, 429) whatever its method:
//! time, tenant, acting account, the owner it acts for, source address,
//! action, target, result. Handlers only *describe* what they do, through
//! the request's [`AuditSlot`]; they never write the trail themselves, so no
//! handler can forget to.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use ward_core::Role;
use ward_store::NewAuditEvent;

use crate::auth::principal::{authenticate, AuthFailure, Principal};
use crate::state::{now_ms, AppState};

/// The peer's address, put on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The outcome of reading the request's bearer token, if it had one.
#[derive(Debug, Clone)]
pub struct Authentication(pub Result<Principal, AuthFailure>);

/// What a handler says about the action it performs.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// Stable action name, such as `account.create`.
    pub action: Option<String>,
    /// What it is aimed at, such as `account:auditor1`.
    pub target: Option<String>,
    /// Why it was refused or failed, when that helps.
    pub detail: Option<String>,
    /// For anonymous calls (sign-in): the tenant the attempt was aimed at.
    pub tenant_id: Option<String>,
    /// For anonymous calls (sign-in): the account named (id, name, role).
    pub actor: Option<(String, String, Role)>,
}

impl AuditNote {
    pub fn action(action: &str, target: impl Into<String>) -> Self {
        AuditNote {
            action: Some(action.to_owned()),
            target: Some(target.into()),
            ..Default::default()
        }
    }
}

/// Per-request slot a handler fills with its [`AuditNote`].
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditNote>>);

impl AuditSlot {
    pub fn set(&self, note: AuditNote) {
        self.update(|n| *n = note);
    }

    pub fn update(&self, f: impl FnOnce(&mut AuditNote)) {
        if let Ok(mut n) = self.0.lock() {
            f(&mut n);
        }
    }

    fn take(&self) -> AuditNote {
        self.0
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

/// Authenticate the bearer token (if any), run the request, then record it
/// in the trail when it mutated something or was refused.
pub async fn authenticate_and_record(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());

    let auth = match req.headers().get(http::header::AUTHORIZATION) {
        Some(value) => {
            let result = match value.to_str() {
                Ok(v) => authenticate(&state, v, now_ms()).await,
                Err(_) => Err(AuthFailure::Malformed),
            };
            Some(Authentication(result))
        }
        None => None,
    };
    if let Some(a) = &auth {
        req.extensions_mut().insert(a.clone());
    }

    let response = next.run(req).await;

    let status = response.status();
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    );
    if mutating || refused {
        let note = slot.take();
        let principal = auth.as_ref().and_then(|a| a.0.as_ref().ok());
        let failure = auth.as_ref().and_then(|a| a.0.as_ref().err());
        let event = build_event(
            &state,
            peer,
            &method,
            route.as_deref().unwrap_or(&path),
            status,
            note,
            principal,
            failure,
        );
        record(&state, event).await;
    }
    response
}

#[allow(clippy::too_many_arguments)]
fn build_event(
    state: &AppState,
    peer: IpAddr,
    method: &Method,
    route: &str,
    status: StatusCode,
    note: AuditNote,
    principal: Option<&Principal>,
    failure: Option<&AuthFailure>,
) -> NewAuditEvent {
    let (tenant_id, actor) = match principal {
        Some(p) => (
            p.tenant.id.clone(),
            Some((p.account.id.clone(), p.account.name.clone(), p.account.role)),
        ),
        None => (
            note.tenant_id
                .unwrap_or_else(|| state.system_tenant_id.to_string()),
            note.actor,
        ),
    };
    let result = match status.as_u16() {
        200..=399 => "ok",
        401 | 403 | 429 => "denied",
        400..=499 => "failed",
        _ => "error",
    };
    let detail = note.detail.or_else(|| failure.map(|f| f.to_string()));
    NewAuditEvent {
        tenant_id,
        time: now_ms(),
        actor_id: actor.as_ref().map(|a| a.0.clone()),
        actor_name: actor.as_ref().map(|a| a.1.clone()),
        actor_role: actor.as_ref().map(|a| a.2),
        on_behalf_of: None,
        api_key_id: principal.and_then(|p| p.api_key_id().map(str::to_owned)),
        source_ip: peer.to_string(),
        action: note.action.unwrap_or_else(|| format!("{method} {route}")),
        target: note.target.unwrap_or_else(|| route.to_owned()),
        result: result.to_owned(),
        status: status.as_u16(),
        detail,
    }
}

async fn record(state: &AppState, mut event: NewAuditEvent) {
    // Every account acts for its tenant's owner (the owner for itself).
    if event.actor_id.is_some() {
        match state.store.tenant_owner(&event.tenant_id).await {
            Ok(owner) => event.on_behalf_of = owner.map(|o| o.name),
            Err(e) => {
                tracing::error!(error = %e, "cannot look up the tenant owner for the audit trail")
            }
        }
    }
    if let Err(e) = state.store.append_audit(&event).await {
        // Never silently: the operator must learn that the trail has a gap.
        state.metrics.audit_write_failed();
        tracing::error!(error = %e, action = %event.action, tenant = %event.tenant_id, "cannot write the audit trail");
    }
}
