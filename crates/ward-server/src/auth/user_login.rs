//! End users' sign-in with a password: the check the user portal calls.
//!
//! It has the same slow-down and lock-out as administrators' sign-ins
//! (`lockout.rs`, with the limits of `state.config.login`): failures are
//! counted per user, and per source address of the tenant together with the
//! administrators' sign-ins. Everything that is not a right password of an
//! enabled user who has one (no such tenant, no such user, a user without a
//! password, a disabled user, a wrong password) is answered alike,
//! `invalid_credentials`, after as long a check as a real one, so none of
//! them can be told apart from outside. The password is never logged nor
//! written to the audit trail.
//!
//! It issues nothing: what a signed-in user gets (a portal session) is the
//! portal's business. For a user with two-step sign-in on, a right password
//! is not yet a success: the portal asks for the code (`portal/twostep.rs`),
//! which records the success.

use std::net::IpAddr;

use ward_core::{ErrorCode, TenantState};
use ward_store::{TenantRow, UserRow};

use super::lockout::{self, Subject};
use super::password;
use crate::audit::{AuditNote, AuditSlot};
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

/// Checks an end user's password, with the same slow-down and lock-out
/// as administrators' sign-ins (per user, and per source address, whose
/// failures count together with the administrators' sign-ins of the
/// tenant). Returns the tenant and the user when the password is right.
pub async fn user_login(
    state: &AppState,
    peer: IpAddr,
    audit: &AuditSlot,
    tenant: &str,
    username: &str,
    password: &str,
) -> Result<(TenantRow, UserRow), ApiError> {
    audit.set(AuditNote::target(format!("user:{username}")));
    if tenant.len() > 64 || username.len() > 64 || password.len() > password::MAX_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "tenant, username or password too long",
        ));
    }
    let store = &state.store;
    let now = now_ms();
    let ip = peer.to_string();

    let Some(tenant) = store.tenant_by_name(tenant).await? else {
        // Take as long as a real check, so tenant names cannot be probed by timing.
        password::verify(password.to_owned(), None).await;
        audit.update(|n| n.detail = Some(format!("unknown tenant {tenant:?}")));
        state.metrics.login("failure");
        return Err(bad_credentials());
    };
    audit.update(|n| n.tenant_id = Some(tenant.id.clone()));

    lockout::check_address(state, &tenant.id, &ip, audit, now).await?;

    let user = store.user_by_name(&tenant.id, username).await?;
    if let Some(u) = &user {
        lockout::check_subject(state, Subject::User(u), audit, now)?;
    }
    let hash = match &user {
        Some(u) if u.has_password => store.user_password_hash(&tenant.id, &u.id).await?,
        _ => None,
    };
    let has_hash = hash.is_some();
    // Without a hash this checks against a dummy one: as long, never right.
    let ok = password::verify(password.to_owned(), hash).await;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        None => {
            audit.update(|n| n.detail = Some("unknown user".into()));
            lockout::refuse(state, &tenant.id, &ip, None, "unknown user", audit, now).await?;
            return Err(bad_credentials());
        }
        Some(_) if !has_hash => {
            lockout::refuse(state, &tenant.id, &ip, None, "user has no password", audit, now).await?;
            audit.update(|n| n.detail = Some("user has no password".into()));
            return Err(bad_credentials());
        }
        Some(u) if !ok => {
            lockout::refuse(
                state,
                &tenant.id,
                &ip,
                Some(Subject::User(&u)),
                "wrong password",
                audit,
                now,
            )
            .await?;
            return Err(bad_credentials());
        }
        Some(_) => {
            // The right password of a disabled user: counted for the address
            // (it is still a refused attempt), not against the user.
            lockout::refuse(state, &tenant.id, &ip, None, "user disabled", audit, now).await?;
            audit.update(|n| n.detail = Some("password right; user disabled".into()));
            return Err(bad_credentials());
        }
    };

    if tenant.state == TenantState::Suspended {
        audit.update(|n| n.detail = Some("tenant suspended".into()));
        return Err(ApiError::new(
            ErrorCode::TenantSuspended,
            "the tenant is suspended; contact the operator",
        ));
    }

    if user.mfa_enabled {
        // The second step (the portal's) records the success once the code
        // is right: until then the failures in a row are not forgotten.
        return Ok((tenant, user));
    }
    store.record_user_login_success(&tenant.id, &user.id, now).await?;
    state.metrics.login("success");
    Ok((
        tenant,
        UserRow {
            failed_logins: 0,
            locked_until: None,
            last_login_at: Some(now),
            ..user
        },
    ))
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong tenant, user name or password")
}
