//! Second factors of administrator accounts: one TOTP secret per account
//! (stored sealed; this crate never sees it in the clear), the last time step
//! a code was accepted for, and one-time recovery codes (hashes only). Every
//! method is scoped by tenant id.

use crate::{get, Result, Store};

/// An account's TOTP factor, enabled or waiting for its first code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRow {
    pub account_id: String,
    /// The secret, sealed under the server's master key.
    pub sealed_secret: String,
    /// When enrolment was confirmed; None while it is pending.
    pub enabled_at: Option<i64>,
    /// The last time step a code was accepted for (0: none yet).
    pub last_step: i64,
    pub created_at: i64,
}

impl Store {
    /// The account's TOTP factor, enabled or pending.
    pub async fn totp(&self, tenant_id: &str, account_id: &str) -> Result<Option<TotpRow>> {
        let row = sqlx::query(
            "SELECT account_id, sealed_secret, enabled_at, last_step, created_at FROM account_totp \
             WHERE tenant_id = $1 AND account_id = $2",
        )
        .bind(tenant_id)
        .bind(account_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(TotpRow {
                account_id: get(&r, "account_id")?,
                sealed_secret: get(&r, "sealed_secret")?,
                enabled_at: get(&r, "enabled_at")?,
                last_step: get(&r, "last_step")?,
                created_at: get(&r, "created_at")?,
            })
        })
        .transpose()
    }

    /// Start (or start again) enrolling a TOTP secret. A pending secret is
    /// replaced; returns false, changing nothing, when the account already
    /// has an enabled one.
    pub async fn start_totp(&self, tenant_id: &str, account_id: &str, sealed_secret: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO account_totp (account_id, tenant_id, sealed_secret, enabled_at, last_step, created_at) \
             SELECT id, tenant_id, $3, NULL, 0, $4 FROM accounts WHERE tenant_id = $1 AND id = $2 \
             ON CONFLICT (account_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             last_step = 0, created_at = excluded.created_at WHERE account_totp.enabled_at IS NULL",
        )
        .bind(tenant_id)
        .bind(account_id)
        .bind(sealed_secret)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Enable a pending TOTP secret, remembering `step` as used, and replace
    /// the account's recovery codes with `recovery_hashes`, in one
    /// transaction. Returns false (and changes nothing) when nothing was pending.
    pub async fn confirm_totp(
        &self,
        tenant_id: &str,
        account_id: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(
            "UPDATE account_totp SET enabled_at = $1, last_step = $2 \
             WHERE tenant_id = $3 AND account_id = $4 AND enabled_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(tenant_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM account_recovery_codes WHERE tenant_id = $1 AND account_id = $2")
            .bind(tenant_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO account_recovery_codes (account_id, tenant_id, code_hash) VALUES ($1, $2, $3)")
                .bind(account_id)
                .bind(tenant_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Accept a code of time step `step` for the account's enabled secret:
    /// true only when no code of this or a later step was accepted before, so
    /// a code works once, even across server replicas.
    pub async fn use_totp_step(&self, tenant_id: &str, account_id: &str, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE account_totp SET last_step = $1 \
             WHERE tenant_id = $2 AND account_id = $3 AND enabled_at IS NOT NULL AND last_step < $1",
        )
        .bind(step)
        .bind(tenant_id)
        .bind(account_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Use up a recovery code (by its hash): true if it was there, unused.
    pub async fn use_recovery_code(&self, tenant_id: &str, account_id: &str, code_hash: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM account_recovery_codes WHERE tenant_id = $1 AND account_id = $2 AND code_hash = $3",
        )
        .bind(tenant_id)
        .bind(account_id)
        .bind(code_hash)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, tenant_id: &str, account_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM account_recovery_codes WHERE tenant_id = $1 AND account_id = $2")
                .bind(tenant_id)
                .bind(account_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Remove the account's TOTP factor (enabled or pending) and its recovery
    /// codes; with `end_sessions`, its sessions end too. Returns whether
    /// there was a factor.
    pub async fn remove_totp(&self, tenant_id: &str, account_id: &str, end_sessions: bool) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("DELETE FROM account_totp WHERE tenant_id = $1 AND account_id = $2")
            .bind(tenant_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM account_recovery_codes WHERE tenant_id = $1 AND account_id = $2")
            .bind(tenant_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        if end_sessions {
            sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND account_id = $2")
                .bind(tenant_id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}
