//! Second factors of administrator accounts and of end users: one TOTP
//! secret per account or user (stored sealed; this crate never sees it in the
//! clear), the last time step a code was accepted for, and one-time recovery
//! codes (hashes only). Every method is scoped by tenant id. The accounts'
//! factors live in `account_totp` / `account_recovery_codes` (migration 0005),
//! the users' in `user_totp` / `user_recovery_codes` (migration 0012); the
//! same statements serve both, through [`Owner`].

use crate::{get, Result, Store};

/// Whose second factor: an administrator account's or an end user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Account,
    User,
}

impl Owner {
    fn totp_table(self) -> &'static str {
        match self {
            Owner::Account => "account_totp",
            Owner::User => "user_totp",
        }
    }

    fn codes_table(self) -> &'static str {
        match self {
            Owner::Account => "account_recovery_codes",
            Owner::User => "user_recovery_codes",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Owner::Account => "account_id",
            Owner::User => "user_id",
        }
    }

    fn owners(self) -> &'static str {
        match self {
            Owner::Account => "accounts",
            Owner::User => "users",
        }
    }
}

/// A TOTP factor, enabled or waiting for its first code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRow {
    /// The account's or the user's id.
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
    pub async fn totp_of(&self, owner: Owner, tenant_id: &str, account_id: &str) -> Result<Option<TotpRow>> {
        let (table, col) = (owner.totp_table(), owner.column());
        let row = sqlx::query(&format!(
            "SELECT {col} AS account_id, sealed_secret, enabled_at, last_step, created_at FROM {table} \
             WHERE tenant_id = $1 AND {col} = $2"
        ))
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
    pub async fn start_totp_of(
        &self,
        owner: Owner,
        tenant_id: &str,
        account_id: &str,
        sealed_secret: &str,
        now: i64,
    ) -> Result<bool> {
        let (table, col, owners) = (owner.totp_table(), owner.column(), owner.owners());
        let r = sqlx::query(&format!(
            "INSERT INTO {table} ({col}, tenant_id, sealed_secret, enabled_at, last_step, created_at) \
             SELECT id, tenant_id, $3, NULL, 0, $4 FROM {owners} WHERE tenant_id = $1 AND id = $2 \
             ON CONFLICT ({col}) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             last_step = 0, created_at = excluded.created_at WHERE {table}.enabled_at IS NULL"
        ))
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
    pub async fn confirm_totp_of(
        &self,
        owner: Owner,
        tenant_id: &str,
        account_id: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> Result<bool> {
        let (table, codes, col) = (owner.totp_table(), owner.codes_table(), owner.column());
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(&format!(
            "UPDATE {table} SET enabled_at = $1, last_step = $2 \
             WHERE tenant_id = $3 AND {col} = $4 AND enabled_at IS NULL"
        ))
        .bind(now)
        .bind(step)
        .bind(tenant_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(&format!("DELETE FROM {codes} WHERE tenant_id = $1 AND {col} = $2"))
            .bind(tenant_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query(&format!(
                "INSERT INTO {codes} ({col}, tenant_id, code_hash) VALUES ($1, $2, $3)"
            ))
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
    pub async fn use_totp_step_of(&self, owner: Owner, tenant_id: &str, account_id: &str, step: i64) -> Result<bool> {
        let (table, col) = (owner.totp_table(), owner.column());
        let r = sqlx::query(&format!(
            "UPDATE {table} SET last_step = $1 \
             WHERE tenant_id = $2 AND {col} = $3 AND enabled_at IS NOT NULL AND last_step < $1"
        ))
        .bind(step)
        .bind(tenant_id)
        .bind(account_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Use up a recovery code (by its hash): true if it was there, unused.
    pub async fn use_recovery_code_of(
        &self,
        owner: Owner,
        tenant_id: &str,
        account_id: &str,
        code_hash: &str,
    ) -> Result<bool> {
        let (codes, col) = (owner.codes_table(), owner.column());
        let r = sqlx::query(&format!(
            "DELETE FROM {codes} WHERE tenant_id = $1 AND {col} = $2 AND code_hash = $3"
        ))
        .bind(tenant_id)
        .bind(account_id)
        .bind(code_hash)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left_of(&self, owner: Owner, tenant_id: &str, account_id: &str) -> Result<i64> {
        let (codes, col) = (owner.codes_table(), owner.column());
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {codes} WHERE tenant_id = $1 AND {col} = $2"
        ))
        .bind(tenant_id)
        .bind(account_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Remove the TOTP factor (enabled or pending) and its recovery codes;
    /// with `end_sessions`, the account's console sessions or the user's
    /// portal sessions end too. Returns whether there was a factor.
    pub async fn remove_totp_of(&self, owner: Owner, tenant_id: &str, id: &str, end_sessions: bool) -> Result<bool> {
        let (table, codes, col) = (owner.totp_table(), owner.codes_table(), owner.column());
        let sessions = match owner {
            Owner::Account => "sessions",
            Owner::User => "user_sessions",
        };
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND {col} = $2"))
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("DELETE FROM {codes} WHERE tenant_id = $1 AND {col} = $2"))
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if end_sessions {
            sqlx::query(&format!("DELETE FROM {sessions} WHERE tenant_id = $1 AND {col} = $2"))
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- administrator accounts' factors (the names used before end users had one) ----

    /// The account's TOTP factor, enabled or pending.
    pub async fn totp(&self, tenant_id: &str, account_id: &str) -> Result<Option<TotpRow>> {
        self.totp_of(Owner::Account, tenant_id, account_id).await
    }

    /// See [`Store::start_totp_of`].
    pub async fn start_totp(&self, tenant_id: &str, account_id: &str, sealed_secret: &str, now: i64) -> Result<bool> {
        self.start_totp_of(Owner::Account, tenant_id, account_id, sealed_secret, now)
            .await
    }

    /// See [`Store::confirm_totp_of`].
    pub async fn confirm_totp(
        &self,
        tenant_id: &str,
        account_id: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> Result<bool> {
        self.confirm_totp_of(Owner::Account, tenant_id, account_id, step, recovery_hashes, now)
            .await
    }

    /// See [`Store::use_totp_step_of`].
    pub async fn use_totp_step(&self, tenant_id: &str, account_id: &str, step: i64) -> Result<bool> {
        self.use_totp_step_of(Owner::Account, tenant_id, account_id, step).await
    }

    /// See [`Store::use_recovery_code_of`].
    pub async fn use_recovery_code(&self, tenant_id: &str, account_id: &str, code_hash: &str) -> Result<bool> {
        self.use_recovery_code_of(Owner::Account, tenant_id, account_id, code_hash)
            .await
    }

    /// See [`Store::recovery_codes_left_of`].
    pub async fn recovery_codes_left(&self, tenant_id: &str, account_id: &str) -> Result<i64> {
        self.recovery_codes_left_of(Owner::Account, tenant_id, account_id).await
    }

    /// See [`Store::remove_totp_of`].
    pub async fn remove_totp(&self, tenant_id: &str, account_id: &str, end_sessions: bool) -> Result<bool> {
        self.remove_totp_of(Owner::Account, tenant_id, account_id, end_sessions)
            .await
    }
}
