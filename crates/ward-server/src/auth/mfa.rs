//! The second factor of administrator accounts and of end users (the user
//! portal's two-step sign-in): TOTP secrets sealed under the master key, and
//! checking (and using up) a code at sign-in or when MFA is turned off.
//!
//! The sealing context is the kind of owner, the tenant and the account or
//! user id, so a sealed secret copied to another account's or user's row
//! does not open. Secrets and codes are never logged.

use ward_store::{AccountRow, MfaOwner, UserRow};

use super::totp;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn context(owner: MfaOwner, tenant_id: &str, id: &str) -> Vec<u8> {
    match owner {
        MfaOwner::Account => format!("totp:{tenant_id}:{id}").into_bytes(),
        MfaOwner::User => format!("user-totp:{tenant_id}:{id}").into_bytes(),
    }
}

/// Whose factor a code is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    Account(&'a AccountRow),
    User(&'a UserRow),
}

impl Holder<'_> {
    fn parts(&self) -> (MfaOwner, &str, &str) {
        match self {
            Holder::Account(a) => (MfaOwner::Account, &a.tenant_id, &a.id),
            Holder::User(u) => (MfaOwner::User, &u.tenant_id, &u.id),
        }
    }
}

/// Seal a TOTP secret for an account.
pub fn seal(state: &AppState, tenant_id: &str, account_id: &str, secret: &[u8]) -> ApiResult<String> {
    seal_for(state, MfaOwner::Account, tenant_id, account_id, secret)
}

/// Open an account's sealed TOTP secret.
pub fn open(state: &AppState, tenant_id: &str, account_id: &str, sealed: &str) -> ApiResult<Vec<u8>> {
    open_for(state, MfaOwner::Account, tenant_id, account_id, sealed)
}

/// Seal a TOTP secret for an account or a user.
pub fn seal_for(state: &AppState, owner: MfaOwner, tenant_id: &str, id: &str, secret: &[u8]) -> ApiResult<String> {
    state
        .master_key
        .seal(secret, &context(owner, tenant_id, id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot seal a TOTP secret");
            ApiError::internal()
        })
}

/// Open an account's or a user's sealed TOTP secret.
pub fn open_for(state: &AppState, owner: MfaOwner, tenant_id: &str, id: &str, sealed: &str) -> ApiResult<Vec<u8>> {
    state
        .master_key
        .open(sealed, &context(owner, tenant_id, id))
        .map(|s| s.to_vec())
        .map_err(|e| {
            tracing::error!(owner = %id, error = %e, "cannot open a TOTP secret: is this the master key it was sealed with?");
            ApiError::internal()
        })
}

/// Which second factor was accepted, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Totp,
    RecoveryCode,
}

impl Accepted {
    pub fn describe(self) -> &'static str {
        match self {
            Accepted::Totp => "TOTP code accepted",
            Accepted::RecoveryCode => "recovery code accepted",
        }
    }
}

/// Check `code` (a current TOTP code or an unused recovery code) for an
/// account with MFA on, and use it up: the code's time step, or the recovery
/// code, is not accepted again. None when it is wrong or already used.
pub async fn use_code(
    state: &AppState,
    account: &AccountRow,
    code: &str,
    unix_secs: u64,
) -> ApiResult<Option<Accepted>> {
    use_code_of(state, Holder::Account(account), code, unix_secs).await
}

/// [`use_code`] for an account or an end user.
pub async fn use_code_of(
    state: &AppState,
    holder: Holder<'_>,
    code: &str,
    unix_secs: u64,
) -> ApiResult<Option<Accepted>> {
    let store = &state.store;
    let (owner, tenant_id, account_id) = holder.parts();
    if totp::is_totp_code(code) {
        let Some(row) = store.totp_of(owner, tenant_id, account_id).await? else {
            return Ok(None);
        };
        if row.enabled_at.is_none() {
            return Ok(None);
        }
        let secret = open_for(state, owner, tenant_id, account_id, &row.sealed_secret)?;
        let Some(step) = totp::verify(&secret, code, unix_secs)? else {
            return Ok(None);
        };
        let step = i64::try_from(step).map_err(|_| ApiError::internal())?;
        let fresh = store.use_totp_step_of(owner, tenant_id, account_id, step).await?;
        return Ok(fresh.then_some(Accepted::Totp));
    }
    let Some(hash) = totp::recovery_hash(code) else {
        return Ok(None);
    };
    let used = store.use_recovery_code_of(owner, tenant_id, account_id, &hash).await?;
    Ok(used.then_some(Accepted::RecoveryCode))
}

/// Seconds since the Unix epoch, for TOTP.
pub fn unix_secs() -> u64 {
    u64::try_from(crate::state::now_ms() / 1000).unwrap_or(0)
}
