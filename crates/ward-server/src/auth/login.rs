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

use std::net::IpAddr;
use std::time::Duration;

use ward_api::{LoginRequest, LoginResponse};
use ward_core::time::rfc3339;
use ward_core::{ErrorCode, TenantState};

use super::principal::{Credential, Principal};
use super::{mfa, password, token};
use crate::audit::{AuditNote, AuditSlot};
use crate::error::{ApiError, ApiResult};
use crate::state::{now_ms, AppState};

/// The longest a failed sign-in is delayed.
const MAX_DELAY: Duration = Duration::from_secs(5);

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

    if let Some(l) = store.address_lockout(&tenant.id, &ip).await? {
        if let Some(until) = l.locked_until.filter(|u| *u > now) {
            audit.update(|n| n.detail = Some("source address locked out".into()));
            state.metrics.login("locked");
            return Err(ApiError::new(
                ErrorCode::LockedOut,
                format!(
                    "too many failed sign-ins from this address; try again after {}",
                    rfc3339(until)
                ),
            ));
        }
    }

    let account = store.account_by_name(&tenant.id, &req.username).await?;
    if let Some(acc) = &account {
        audit.update(|n| n.actor = Some((acc.id.clone(), acc.name.clone(), acc.role)));
        if let Some(until) = acc.locked_until.filter(|u| *u > now) {
            audit.update(|n| n.detail = Some("account locked out".into()));
            state.metrics.login("locked");
            return Err(ApiError::new(
                ErrorCode::LockedOut,
                format!(
                    "this account is locked after repeated failed sign-ins until {}; an owner or admin can unlock it",
                    rfc3339(until)
                ),
            ));
        }
    }

    let ok = password::verify(req.password, account.as_ref().map(|a| a.password_hash.clone())).await;
    let account = match account {
        Some(acc) if ok => acc,
        known => {
            if known.is_none() {
                audit.update(|n| n.detail = Some("unknown account".into()));
            }
            refuse(state, &tenant.id, &ip, known.as_ref(), "wrong password", audit, now).await?;
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
                refuse(
                    state,
                    &tenant.id,
                    &ip,
                    Some(&account),
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

/// Record a failed sign-in (`what` went wrong) of `known` (None: no such
/// account) from `ip`: count it for the account and the source address, lock
/// either when it reaches its limit, and wait the slow-down before answering.
async fn refuse(
    state: &AppState,
    tenant_id: &str,
    ip: &str,
    known: Option<&ward_store::AccountRow>,
    what: &str,
    audit: &AuditSlot,
    now: i64,
) -> ApiResult<()> {
    let store = &state.store;
    let limits = &state.config.login;
    let account_failures = match known {
        Some(acc) => count_account_failure(state, acc, what, audit, now).await?,
        None => 0,
    };
    let addr = store
        .record_address_failure(tenant_id, ip, now, millis(limits.address_window))
        .await?;
    if addr.failures >= i64::from(limits.address_lock_after) {
        store.lock_address(tenant_id, ip, now + millis(limits.lock_for)).await?;
    }
    state.metrics.login("failure");
    let failures = account_failures.max(addr.failures / 3);
    if let Some(delay) = slow_down(failures, limits.slow_after) {
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// Count a failure (`what`: a wrong password at sign-in or as the current
/// password of a password change, a wrong one-time code) for `acc`, lock the
/// account when it reaches the limit, and return the failures in a row. A
/// lock that has expired starts the count afresh, so one more mistake after a
/// lock-out does not lock again at once.
pub async fn count_account_failure(
    state: &AppState,
    acc: &ward_store::AccountRow,
    what: &str,
    audit: &AuditSlot,
    now: i64,
) -> ApiResult<i64> {
    let store = &state.store;
    let limits = &state.config.login;
    if acc.locked_until.is_some_and(|u| u <= now) {
        store.unlock_account(&acc.tenant_id, &acc.id).await?;
    }
    let n = store.record_login_failure(&acc.tenant_id, &acc.id).await?;
    if n >= i64::from(limits.lock_after) {
        store
            .lock_account(&acc.tenant_id, &acc.id, now + millis(limits.lock_for))
            .await?;
        audit.update(|note| note.detail = Some(format!("{what}; account now locked")));
    } else {
        audit.update(|note| note.detail = Some(what.to_owned()));
    }
    Ok(n)
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong tenant, user name or password")
}

/// The delay before answering the `failures`-th failure in a row.
pub fn slow_down(failures: i64, slow_after: u32) -> Option<Duration> {
    let over = failures - i64::from(slow_after);
    if over <= 0 {
        return None;
    }
    let ms = 250u64.saturating_mul(1u64 << (over - 1).clamp(0, 10));
    Some(Duration::from_millis(ms).min(MAX_DELAY))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        assert_eq!(slow_down(3, 3), None);
        assert_eq!(slow_down(4, 3), Some(Duration::from_millis(250)));
        assert_eq!(slow_down(5, 3), Some(Duration::from_millis(500)));
        assert_eq!(slow_down(100, 3), Some(MAX_DELAY));
    }
}
