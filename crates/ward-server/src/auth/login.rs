//! Signing in with a password, with slow-down and lock-out.
//!
//! Failed sign-ins are counted per account and per source address (per
//! tenant). After `slow_after` failures of an account each further failure is
//! answered more slowly; after `lock_after` the account is locked for
//! `lock_for`; an address with `address_lock_after` failures inside
//! `address_window` is locked likewise, whatever account names it tries. The
//! counts live in the store, so every server replica sees the same ones, and
//! accounts with `accounts.read` see the lock-outs (`GET /api/v1/lockouts`).
//!
//! An account with MFA on needs a second factor as well (`otp`: a TOTP code
//! or a recovery code). Without one, a right password is answered
//! `mfa_required` and no session is issued; a wrong or replayed code is a
//! failed sign-in like a wrong password, counted for the slow-down and the
//! lock-outs.
//!
//! The counting, slow-down and locking live in `lockout.rs`, shared with end
//! users' sign-ins (`user_login.rs`).

use std::net::IpAddr;

use ward_api::{LoginRequest, LoginResponse};
use ward_core::time::rfc3339;
use ward_core::{ErrorCode, TenantState};

use super::lockout::{self, millis, Subject};
use super::principal::{Credential, Principal};
use super::{mfa, password, token};
use crate::audit::{AuditNote, AuditSlot};
use crate::error::{ApiError, ApiResult};
use crate::state::{now_ms, AppState};

pub async fn login(state: &AppState, peer: IpAddr, audit: &AuditSlot, req: LoginRequest) -> ApiResult<LoginResponse> {
    audit.set(AuditNote::target(format!("account:{}", req.username)));
    if req.tenant.len() > 64
        || req.username.len() > 64
        || req.password.len() > password::MAX_LEN
        || req.otp.as_ref().is_some_and(|o| o.len() > 64)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "tenant, username, password or otp too long",
        ));
    }
    let store = &state.store;
    let now = now_ms();
    let ip = peer.to_string();

    let Some(tenant) = store.tenant_by_name(&req.tenant).await? else {
        // Take as long as a real check, so tenant names cannot be probed by timing.
        password::verify(req.password, None).await;
        audit.update(|n| n.detail = Some(format!("unknown tenant {:?}", req.tenant)));
        state.metrics.login("failure");
        return Err(bad_credentials());
    };
    audit.update(|n| n.tenant_id = Some(tenant.id.clone()));

    lockout::check_address(state, &tenant.id, &ip, audit, now).await?;

    let account = store.account_by_name(&tenant.id, &req.username).await?;
    if let Some(acc) = &account {
        audit.update(|n| n.actor = Some((acc.id.clone(), acc.name.clone(), acc.role)));
        lockout::check_subject(state, Subject::Account(acc), audit, now)?;
    }

    let ok = password::verify(req.password, account.as_ref().map(|a| a.password_hash.clone())).await;
    let account = match account {
        Some(acc) if ok => acc,
        known => {
            if known.is_none() {
                audit.update(|n| n.detail = Some("unknown account".into()));
            }
            let known = known.as_ref().map(Subject::Account);
            lockout::refuse(state, &tenant.id, &ip, known, "wrong password", audit, now).await?;
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

    if account.mfa_enabled {
        let Some(code) = req.otp.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
            // The password was right; no session without the second factor, and no failure either.
            audit.update(|n| n.detail = Some("password right; second factor required".into()));
            state.metrics.login("mfa_required");
            return Err(ApiError::new(
                ErrorCode::MfaRequired,
                "this account signs in with a second factor: send the code of its authenticator app, or a recovery code, as otp",
            ));
        };
        match mfa::use_code(state, &account, code, mfa::unix_secs()).await? {
            Some(accepted) => audit.update(|n| n.detail = Some(accepted.describe().into())),
            None => {
                lockout::refuse(
                    state,
                    &tenant.id,
                    &ip,
                    Some(Subject::Account(&account)),
                    "wrong or reused one-time code",
                    audit,
                    now,
                )
                .await?;
                return Err(ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the one-time code is wrong or was already used",
                ));
            }
        }
    }

    store.record_login_success(&tenant.id, &account.id, now).await?;
    let token = token::new_session_token();
    let expires_at = now + millis(state.config.session_ttl);
    let session = store
        .create_session(&tenant.id, &account.id, &token::hash(&token), &ip, now, expires_at)
        .await?;
    state.metrics.login("success");
    let principal = Principal {
        tenant,
        account,
        credential: Credential::Session { id: session.id },
    };
    Ok(LoginResponse {
        token,
        expires_at: rfc3339(expires_at),
        whoami: principal.whoami(),
    })
}

/// Count a failure (`what`: a wrong password at sign-in or as the current
/// password of a password change, a wrong one-time code) for `acc`, lock the
/// account when it reaches the limit, and return the failures in a row (see
/// [`lockout::count_failure`]).
pub async fn count_account_failure(
    state: &AppState,
    acc: &ward_store::AccountRow,
    what: &str,
    audit: &AuditSlot,
    now: i64,
) -> ApiResult<i64> {
    lockout::count_failure(state, Subject::Account(acc), what, audit, now).await
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong tenant, user name or password")
}
