//! The second step of a portal sign-in for a user with two-step sign-in on
//! (a confirmed TOTP secret, `portal/account.rs`): after a right password
//! (the password form, or an LDAP source's), the portal asks for a code of
//! the authenticator app or a recovery code before any session starts.
//!
//! Nothing is stored between the two steps: the password step hands the
//! browser a short-lived token sealed under the master key (tenant, user,
//! where to go next, an expiry of five minutes, and the double-submit token
//! of the sign-in cookie, so the token works only in the browser it was given
//! to), which the code's form posts back (`POST /portal/login/mfa`). The
//! session starts only when the code is right ([`super::start_session`]).
//! A code is accepted once per time step and a recovery code once
//! (`auth::mfa::use_code_of`); a wrong or reused code is a failed sign-in
//! like a wrong password, counted by `auth::lockout` for the user and the
//! source address. OpenID Connect sign-ins are left to the provider's own
//! second factor.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::{Deserialize, Serialize};
use ward_core::{ErrorCode, TenantState};
use ward_store::{TenantRow, UserRow};

use super::{login_page, page, portal_next, signin_cookie, start_session, with_status};
use crate::audit::{AuditNote, AuditSlot};
use crate::auth::lockout::{self, Subject};
use crate::auth::mfa::{self, Holder};
use crate::console::layout::notice;
use crate::console::session::{self, set_cookie};
use crate::ctx::Anonymous;
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

/// How long the second step waits for its code.
pub const PENDING_TTL_MS: i64 = 5 * 60 * 1000;
/// The sealing context of the pending sign-in's token.
const CONTEXT: &[u8] = b"ward portal second step v1";

/// A sign-in whose password was right, waiting for its code.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// Tenant id.
    t: String,
    /// User id.
    u: String,
    /// Expiry, ms since the epoch.
    e: i64,
    /// Where to go once signed in (a portal path).
    n: String,
    /// The sign-in cookie's double-submit token this sign-in belongs to.
    c: String,
    /// How the password was checked, for the audit trail.
    via: String,
}

/// The answer to a right password of a user with two-step sign-in on: the
/// code's form. No session yet.
pub(crate) fn ask(
    state: &AppState,
    tenant: &TenantRow,
    user: &UserRow,
    next: &str,
    via: &str,
    audit: &AuditSlot,
) -> Response {
    audit.update(|n| n.detail = Some(format!("password right{via}; second factor required")));
    state.metrics.login("mfa_required");
    let pending = Pending {
        t: tenant.id.clone(),
        u: user.id.clone(),
        e: now_ms() + PENDING_TTL_MS,
        n: portal_next(Some(next)).to_owned(),
        c: session::new_login_token(),
        via: via.to_owned(),
    };
    code_page(state, &pending, None, StatusCode::OK)
}

fn code_page(state: &AppState, pending: &Pending, error: Option<&str>, status: StatusCode) -> Response {
    let sealed = match serde_json::to_vec(pending)
        .map_err(|_| ApiError::internal())
        .and_then(|json| {
            state.master_key.seal(&json, CONTEXT).map_err(|e| {
                tracing::error!(error = %e, "cannot seal a pending sign-in");
                ApiError::internal()
            })
        }) {
        Ok(s) => s,
        Err(e) => return crate::console::layout::error_page(e.status(), &e.message),
    };
    let body = html! {
        div.signin.card {
            (notice(error, true))
            p { "Your account signs in in two steps. Enter the code your authenticator app shows now, or one of your recovery codes." }
            form method="post" action="/portal/login/mfa" {
                input type="hidden" name="csrf" value=(pending.c);
                input type="hidden" name="pending" value=(sealed);
                label { "Code" input name="code" required autofocus inputmode="numeric" autocomplete="one-time-code" maxlength="20"; }
                button type="submit" { "Sign in" }
            }
            p.muted { a href="/portal/login" { "Start again" } }
        }
    };
    let mut r = with_status(page("Two-step sign-in", None, body), status);
    let ttl = (pending.e - now_ms()).max(0) / 1000;
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(signin_cookie(state), &pending.c, ttl));
    r
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    pending: String,
    code: String,
}

/// `POST /portal/login/mfa`: the second step.
pub(super) async fn submit(State(state): State<AppState>, anon: Anonymous, Form(f): Form<CodeForm>) -> Response {
    let expired = || {
        login_page(
            &state,
            None,
            Some("This sign-in has expired; sign in again."),
            StatusCode::BAD_REQUEST,
        )
    };
    let Some(pending) = state
        .master_key
        .open(&f.pending, CONTEXT)
        .ok()
        .and_then(|json| serde_json::from_slice::<Pending>(&json).ok())
    else {
        anon.audit
            .update(|n| n.detail = Some("second step: unreadable sign-in token".into()));
        return expired();
    };
    // The token belongs to the browser whose sign-in cookie it names (the
    // guard checked the form's token against the cookie).
    if pending.e <= now_ms() || pending.c != f.csrf {
        anon.audit
            .update(|n| n.detail = Some("second step: expired or another browser's".into()));
        return expired();
    }
    match second_step(&state, &anon, &pending, &f.code).await {
        Ok(r) => r,
        Err(e) => code_page(&state, &pending, Some(&e.message), e.status()),
    }
}

async fn second_step(state: &AppState, anon: &Anonymous, pending: &Pending, code: &str) -> Result<Response, ApiError> {
    let audit = &anon.audit;
    let store = &state.store;
    let now = now_ms();
    let ip = anon.peer.to_string();
    let gone = || {
        ApiError::new(
            ErrorCode::InvalidCredentials,
            "this sign-in is no longer possible; sign in again",
        )
    };
    let tenant = store.tenant_by_id(&pending.t).await?.ok_or_else(gone)?;
    let user = store.user_by_id(&pending.t, &pending.u).await?.ok_or_else(gone)?;
    audit.set(AuditNote::target(format!("user:{}", user.name)));
    audit.update(|n| {
        n.tenant_id = Some(tenant.id.clone());
        n.user = Some((user.id.clone(), user.name.clone()));
    });
    lockout::check_address(state, &tenant.id, &ip, audit, now).await?;
    lockout::check_subject(state, Subject::User(&user), audit, now)?;
    if user.disabled || tenant.state != TenantState::Active {
        audit.update(|n| n.detail = Some("second step: user disabled or tenant suspended".into()));
        return Err(gone());
    }
    let code = code.trim();
    let accepted = if !user.mfa_enabled {
        // Reset by an administrator since the password step: the password was enough.
        "password only (two-step sign-in was reset meanwhile)"
    } else if code.len() > 64 {
        return Err(ApiError::invalid("the code is too long"));
    } else {
        match mfa::use_code_of(state, Holder::User(&user), code, mfa::unix_secs()).await? {
            Some(a) => a.describe(),
            None => {
                lockout::refuse(
                    state,
                    &tenant.id,
                    &ip,
                    Some(Subject::User(&user)),
                    "wrong or reused one-time code",
                    audit,
                    now,
                )
                .await?;
                audit.update(|n| n.detail = Some(format!("wrong or reused one-time code{}", pending.via)));
                return Err(ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the code is wrong or was already used",
                ));
            }
        }
    };
    audit.update(|n| n.detail = Some(format!("{accepted}{}", pending.via)));
    store.record_user_login_success(&tenant.id, &user.id, now).await?;
    state.metrics.login("success");
    tracing::info!(tenant = %tenant.name, user = %user.name, "portal sign-in with a second factor");
    Ok(start_session(state, &tenant, &user, portal_next(Some(&pending.n))).await)
}
