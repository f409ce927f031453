//! The slow-down and lock-out of sign-ins, shared by administrators'
//! sign-ins (`login.rs`) and end users' (`user_login.rs`).
//!
//! Failures are counted per subject (an account or an end user, each with
//! its own count and lock) and per source address of the tenant, one count
//! for every kind of sign-in: an address guessing end users' passwords is
//! locked out of administrators' sign-ins too, and the other way round. The
//! limits are the same for both (`state.config.login`).

use std::time::Duration;

use ward_core::time::rfc3339;
use ward_core::ErrorCode;
use ward_store::{AccountRow, UserRow};

use crate::audit::AuditSlot;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The longest a failed sign-in is delayed.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Who a sign-in names, when it exists: each has its own failure count and lock.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Account(&'a AccountRow),
    User(&'a UserRow),
}

impl Subject<'_> {
    fn tenant_id(&self) -> &str {
        match self {
            Subject::Account(a) => &a.tenant_id,
            Subject::User(u) => &u.tenant_id,
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Account(a) => &a.id,
            Subject::User(u) => &u.id,
        }
    }

    fn locked_until(&self) -> Option<i64> {
        match self {
            Subject::Account(a) => a.locked_until,
            Subject::User(u) => u.locked_until,
        }
    }

    /// `account` or `user`, for messages and the audit trail.
    fn noun(&self) -> &'static str {
        match self {
            Subject::Account(_) => "account",
            Subject::User(_) => "user",
        }
    }

    /// Who can lift the lock, for the refusal's message.
    fn unlocker(&self) -> &'static str {
        match self {
            Subject::Account(_) => "an owner or admin",
            Subject::User(_) => "an administrator",
        }
    }

    async fn unlock(&self, state: &AppState) -> ApiResult<()> {
        let store = &state.store;
        match self {
            Subject::Account(_) => store.unlock_account(self.tenant_id(), self.id()).await?,
            Subject::User(_) => store.unlock_user(self.tenant_id(), self.id()).await?,
        };
        Ok(())
    }

    async fn record_failure(&self, state: &AppState) -> ApiResult<i64> {
        let store = &state.store;
        Ok(match self {
            Subject::Account(_) => store.record_login_failure(self.tenant_id(), self.id()).await?,
            Subject::User(_) => store.record_user_login_failure(self.tenant_id(), self.id()).await?,
        })
    }

    async fn lock(&self, state: &AppState, until: i64) -> ApiResult<()> {
        let store = &state.store;
        match self {
            Subject::Account(_) => store.lock_account(self.tenant_id(), self.id(), until).await?,
            Subject::User(_) => store.lock_user(self.tenant_id(), self.id(), until).await?,
        }
        Ok(())
    }
}

/// Refuse (`locked_out`) a sign-in from `ip` while the address is locked
/// out of the tenant.
pub async fn check_address(state: &AppState, tenant_id: &str, ip: &str, audit: &AuditSlot, now: i64) -> ApiResult<()> {
    if let Some(l) = state.store.address_lockout(tenant_id, ip).await? {
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
    Ok(())
}

/// Refuse (`locked_out`) a sign-in of `subject` while it is locked out.
pub fn check_subject(state: &AppState, subject: Subject<'_>, audit: &AuditSlot, now: i64) -> ApiResult<()> {
    if let Some(until) = subject.locked_until().filter(|u| *u > now) {
        audit.update(|n| n.detail = Some(format!("{} locked out", subject.noun())));
        state.metrics.login("locked");
        return Err(ApiError::new(
            ErrorCode::LockedOut,
            format!(
                "this {} is locked after repeated failed sign-ins until {}; {} can unlock it",
                subject.noun(),
                rfc3339(until),
                subject.unlocker()
            ),
        ));
    }
    Ok(())
}

/// Record a failed sign-in (`what` went wrong) of `known` (None: nobody by
/// that name, or nobody who can sign in) from `ip`: count it for the subject
/// and the source address, lock either when it reaches its limit, and wait
/// the slow-down before answering.
pub async fn refuse(
    state: &AppState,
    tenant_id: &str,
    ip: &str,
    known: Option<Subject<'_>>,
    what: &str,
    audit: &AuditSlot,
    now: i64,
) -> ApiResult<()> {
    let store = &state.store;
    let limits = &state.config.login;
    let subject_failures = match known {
        Some(subject) => count_failure(state, subject, what, audit, now).await?,
        None => 0,
    };
    let addr = store
        .record_address_failure(tenant_id, ip, now, millis(limits.address_window))
        .await?;
    if addr.failures >= i64::from(limits.address_lock_after) {
        store.lock_address(tenant_id, ip, now + millis(limits.lock_for)).await?;
    }
    state.metrics.login("failure");
    let failures = subject_failures.max(addr.failures / 3);
    if let Some(delay) = slow_down(failures, limits.slow_after) {
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// Count a failure (`what`: a wrong password, a wrong one-time code) for
/// `subject`, lock it when it reaches the limit, and return the failures in
/// a row. A lock that has expired starts the count afresh, so one more
/// mistake after a lock-out does not lock again at once.
pub async fn count_failure(
    state: &AppState,
    subject: Subject<'_>,
    what: &str,
    audit: &AuditSlot,
    now: i64,
) -> ApiResult<i64> {
    let limits = &state.config.login;
    if subject.locked_until().is_some_and(|u| u <= now) {
        subject.unlock(state).await?;
    }
    let n = subject.record_failure(state).await?;
    if n >= i64::from(limits.lock_after) {
        subject.lock(state, now + millis(limits.lock_for)).await?;
        let noun = subject.noun();
        audit.update(|note| note.detail = Some(format!("{what}; {noun} now locked")));
    } else {
        audit.update(|note| note.detail = Some(what.to_owned()));
    }
    Ok(n)
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

/// A duration in milliseconds, as the store counts time.
pub fn millis(d: Duration) -> i64 {
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
