//! Administrator accounts of a tenant. Every method is scoped by tenant id.

use sqlx::any::AnyRow;
use ward_core::Role;

use crate::tenants::insert_account;
use crate::{get, parse_col, Page, PageRequest, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub last_login_at: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    /// True when the account signs in with a second factor (a confirmed TOTP secret).
    pub mfa_enabled: bool,
}

impl AccountRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(AccountRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            role: parse_col(get(row, "role")?, "accounts.role")?,
            password_hash: get(row, "password_hash")?,
            created_at: get(row, "created_at")?,
            created_by: get(row, "created_by")?,
            last_login_at: get(row, "last_login_at")?,
            failed_logins: get(row, "failed_logins")?,
            locked_until: get(row, "locked_until")?,
            mfa_enabled: get::<i64>(row, "mfa_factors")? > 0,
        })
    }
}

/// A new sub-account.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    /// Name of the account that created it.
    pub created_by: Option<&'a str>,
}

const COLUMNS: &str =
    "id, tenant_id, name, role, password_hash, created_at, created_by, last_login_at, failed_logins, \
     locked_until, (SELECT COUNT(*) FROM account_totp m WHERE m.account_id = accounts.id AND m.enabled_at IS NOT NULL) \
     AS mfa_factors";

impl Store {
    pub async fn create_account(&self, tenant_id: &str, new: NewAccount<'_>, now: i64) -> Result<AccountRow> {
        let mut tx = self.pool().begin().await?;
        let id = insert_account(
            &mut tx,
            tenant_id,
            new.name,
            new.role,
            new.password_hash,
            new.created_by,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(AccountRow {
            id,
            tenant_id: tenant_id.to_owned(),
            name: new.name.to_owned(),
            role: new.role,
            password_hash: new.password_hash.to_owned(),
            created_at: now,
            created_by: new.created_by.map(str::to_owned),
            last_login_at: None,
            failed_logins: 0,
            locked_until: None,
            mfa_enabled: false,
        })
    }

    pub async fn account_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AccountRow::from_row).transpose()
    }

    pub async fn account_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AccountRow::from_row).transpose()
    }

    /// The tenant's owner account.
    pub async fn tenant_owner(&self, tenant_id: &str) -> Result<Option<AccountRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND role = 'owner'"
        ))
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AccountRow::from_row).transpose()
    }

    /// The tenant's accounts, oldest first.
    pub async fn list_accounts(&self, tenant_id: &str, page: &PageRequest) -> Result<Page<AccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND ($2 = '' OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(page.cursor.clone().unwrap_or_default())
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let items = rows.iter().map(AccountRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |a| &a.id))
    }

    /// Accounts locked out at `now`.
    pub async fn locked_accounts(&self, tenant_id: &str, now: i64) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND locked_until > $2 ORDER BY id"
        ))
        .bind(tenant_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(AccountRow::from_row).collect()
    }

    pub async fn set_account_role(&self, tenant_id: &str, id: &str, role: Role) -> Result<bool> {
        let r = sqlx::query("UPDATE accounts SET role = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(role.as_str())
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Set a new password hash and end the account's sessions.
    pub async fn set_password_hash(&self, tenant_id: &str, id: &str, hash: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("UPDATE accounts SET password_hash = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(hash)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND account_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Delete an account; its sessions and API keys go with it.
    pub async fn delete_account(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A successful sign-in: reset the failure count and lock.
    pub async fn record_login_success(&self, tenant_id: &str, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE tenant_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A failed sign-in: count it and return the failures since the last success.
    pub async fn record_login_failure(&self, tenant_id: &str, id: &str) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE tenant_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(n.unwrap_or(0))
    }

    pub async fn lock_account(&self, tenant_id: &str, id: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE accounts SET locked_until = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(until)
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn unlock_account(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE accounts SET locked_until = NULL, failed_logins = 0 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() == 1)
    }
}
