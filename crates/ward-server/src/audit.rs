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

use crate::auth::principal::{authenticate, AuthFailure, Principal, Refusal};
use crate::state::{now_ms, AppState};

/// The peer's address, put on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The outcome of reading the request's bearer token, if it had one.
#[derive(Debug, Clone)]
pub struct Authentication(pub Result<Principal, Refusal>);

/// What a handler says about the action it performs.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// What it is aimed at, such as `account:auditor1`.
    pub target: Option<String>,
    /// Why it was refused or failed, when that helps.
    pub detail: Option<String>,
    /// For anonymous calls (sign-in): the tenant the attempt was aimed at.
    pub tenant_id: Option<String>,
    /// For anonymous calls (sign-in): the account named (id, name, role).
    pub actor: Option<(String, String, Role)>,
    /// For the user portal: the end user acting (id, name); recorded as the
    /// actor `user:<name>`, with no role.
    pub user: Option<(String, String)>,
    /// An action name more precise than the route's (the portal's one form
    /// that approves or denies).
    pub action: Option<&'static str>,
}

impl AuditNote {
    pub fn target(target: impl Into<String>) -> Self {
        AuditNote {
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
        self.0.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }
}

/// Authenticate the bearer token (if any), run the request, then record it
/// in the trail when it mutated something or was refused.
pub async fn authenticate_and_record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());

    let auth = match req.headers().get(http::header::AUTHORIZATION) {
        // A device's own token: not an administrator's credential; the device
        // endpoints authenticate it themselves.
        Some(value) if value.as_bytes().starts_with(b"Bearer wd_") || value.as_bytes().starts_with(b"Bearer wg_") => {
            None
        }
        Some(value) => {
            let result = match value.to_str() {
                Ok(v) => authenticate(&state, v, now_ms()).await,
                Err(_) => Err(AuthFailure::Malformed.into()),
            };
            Some(Authentication(result))
        }
        // The console's pages (never the API) authenticate with the session
        // cookie instead; console::session::csrf_guard checks their forms.
        None if crate::console::is_console_path(&path) => {
            match crate::console::session::cookie(req.headers(), crate::console::session::session_cookie_name(&state)) {
                // Only a session token: an API key is for scripts, never a cookie.
                Some(token) if token.starts_with(crate::auth::token::SESSION_PREFIX) => {
                    let token = token.to_owned();
                    let result = authenticate(&state, &format!("Bearer {token}"), now_ms()).await;
                    if result.is_ok() {
                        req.extensions_mut()
                            .insert(crate::console::session::ConsoleSession(token));
                    }
                    Some(Authentication(result))
                }
                _ => None,
            }
        }
        None => None,
    };
    if let Some(a) = &auth {
        req.extensions_mut().insert(a.clone());
    }

    let response = next.run(req).await;

    let status = response.status();
    let mutating = matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    );
    // Periodic posture reports from agents are not administration; keep them out of the trail.
    let heartbeat = matches!(
        route.as_deref(),
        Some(
            "/api/v1/device/posture"
                | "/api/v1/gateway/records"
                | "/api/v1/gateway/status"
                | "/api/v1/enroll/requests/poll"
        )
    ) && status.is_success();
    let portal = path == "/portal" || path.starts_with("/portal/");
    let audited_path = path.starts_with("/api/") || crate::console::is_console_path(&path) || portal;
    // A sign-in through an identity source ends in a GET (the callback).
    let mutating = mutating || (portal && route.as_deref() == Some(crate::portal::OIDC_CALLBACK_ROUTE));
    // A portal post without a (live) session is only sent to the sign-in page.
    let to_signin = portal
        && status == StatusCode::SEE_OTHER
        && route.as_deref() != Some("/portal/logout")
        && response
            .headers()
            .get(http::header::LOCATION)
            .is_some_and(|l| l.as_bytes().starts_with(b"/portal/login"));
    // An expired console session is sent to the sign-in page (303), not refused.
    if (mutating || refused) && audited_path && !heartbeat && !to_signin {
        let facts = RequestFacts {
            peer,
            method,
            route: route.unwrap_or_else(|| path.clone()),
            path,
            status,
        };
        let event = build_event(&state, facts, slot.take(), auth.map(|a| a.0)).await;
        record(&state, event).await;
    }
    response
}

/// What the middleware saw of the request and its answer.
struct RequestFacts {
    peer: IpAddr,
    method: Method,
    /// The route template (`/api/v1/accounts/{name}`).
    route: String,
    path: String,
    status: StatusCode,
}

async fn build_event(
    state: &AppState,
    req: RequestFacts,
    note: AuditNote,
    auth: Option<Result<Principal, Refusal>>,
) -> NewAuditEvent {
    let mut detail = note.detail;
    let mut api_key_id = None;
    let (tenant_id, actor) = match auth {
        Some(Ok(p)) => {
            api_key_id = p.api_key_id().map(str::to_owned);
            (p.tenant.id, Some((p.account.id, p.account.name, p.account.role)))
        }
        // A credential that was refused but whose owner is known: record it
        // in that tenant's trail, attributed to that account.
        Some(Err(Refusal {
            failure,
            tenant_id: Some(tenant_id),
            account_id,
            api_key_id: key,
        })) => {
            api_key_id = key;
            detail = detail.or_else(|| Some(failure.to_string()));
            let account = match account_id {
                Some(id) => state.store.account_by_id(&tenant_id, &id).await.ok().flatten(),
                None => None,
            };
            (tenant_id, account.map(|a| (a.id, a.name, a.role)))
        }
        Some(Err(refusal)) => {
            detail = detail.or_else(|| Some(refusal.failure.to_string()));
            (
                note.tenant_id.unwrap_or_else(|| state.system_tenant_id.to_string()),
                note.actor,
            )
        }
        None => (
            note.tenant_id.unwrap_or_else(|| state.system_tenant_id.to_string()),
            note.actor,
        ),
    };
    let result = match req.status.as_u16() {
        200..=399 => "ok",
        401 | 403 | 429 => "denied",
        400..=499 => "failed",
        _ => "error",
    };
    let action = note
        .action
        .or_else(|| crate::api::action_name(req.method.as_str(), &req.route))
        .or_else(|| crate::console::action_name(req.method.as_str(), &req.route))
        .or_else(|| crate::portal::action_name(req.method.as_str(), &req.route))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{} {}", req.method, req.route));
    let target = note.target.unwrap_or_else(|| {
        req.path
            .trim_start_matches(ward_api::API_PREFIX)
            .trim_start_matches('/')
            .to_owned()
    });
    let (actor_id, actor_name, actor_role) = match (actor, note.user) {
        (Some((id, name, role)), _) => (Some(id), Some(name), Some(role)),
        (None, Some((id, name))) => (Some(id), Some(format!("user:{name}")), None),
        (None, None) => (None, None, None),
    };
    NewAuditEvent {
        tenant_id,
        time: now_ms(),
        actor_id,
        actor_name,
        actor_role,
        on_behalf_of: None,
        api_key_id,
        source_ip: req.peer.to_string(),
        action,
        target,
        result: result.to_owned(),
        status: req.status.as_u16(),
        detail,
    }
}

async fn record(state: &AppState, mut event: NewAuditEvent) {
    // Every account acts for its tenant's owner (the owner for itself); end
    // users act for themselves.
    if event.actor_id.is_some() && event.actor_role.is_some() {
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
