//! Administrator accounts' second factor: TOTP secrets sealed under the
//! master key, and checking (and using up) a code at sign-in or when MFA is
//! turned off.
//!
//! The sealing context is the tenant and account id, so a sealed secret
//! copied to another account's row does not open. Secrets and codes are
//! never logged.

use ward_store::AccountRow;

use super::totp;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn context(tenant_id: &str, account_id: &str) -> Vec<u8> {
    format!("totp:{tenant_id}:{account_id}").into_bytes()
}

/// Seal a TOTP secret for an account.
pub fn seal(state: &AppState, tenant_id: &str, account_id: &str, secret: &[u8]) -> ApiResult<String> {
    state
        .master_key
        .seal(secret, &context(tenant_id, account_id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot seal a TOTP secret");
            ApiError::internal()
        })
}

/// Open an account's sealed TOTP secret.
pub fn open(state: &AppState, tenant_id: &str, account_id: &str, sealed: &str) -> ApiResult<Vec<u8>> {
    state
        .master_key
        .open(sealed, &context(tenant_id, account_id))
        .map(|s| s.to_vec())
        .map_err(|e| {
            tracing::error!(account = %account_id, error = %e, "cannot open a TOTP secret: is this the master key it was sealed with?");
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
    let store = &state.store;
    let (tenant_id, account_id) = (&account.tenant_id, &account.id);
    if totp::is_totp_code(code) {
        let Some(row) = store.totp(tenant_id, account_id).await? else {
            return Ok(None);
        };
        if row.enabled_at.is_none() {
            return Ok(None);
        }
        let secret = open(state, tenant_id, account_id, &row.sealed_secret)?;
        let Some(step) = totp::verify(&secret, code, unix_secs)? else {
            return Ok(None);
        };
        let step = i64::try_from(step).map_err(|_| ApiError::internal())?;
        let fresh = store.use_totp_step(tenant_id, account_id, step).await?;
        return Ok(fresh.then_some(Accepted::Totp));
    }
    let Some(hash) = totp::recovery_hash(code) else {
        return Ok(None);
    };
    let used = store.use_recovery_code(tenant_id, account_id, &hash).await?;
    Ok(used.then_some(Accepted::RecoveryCode))
}

/// Seconds since the Unix epoch, for TOTP.
pub fn unix_secs() -> u64 {
    u64::try_from(crate::state::now_ms() / 1000).unwrap_or(0)
}
