//! Sessions and API keys. Secrets are never stored, only their hashes.

use sqlx::any::AnyRow;
use ward_core::Role;

use crate::{get, new_id, parse_col, Page, PageRequest, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub name: String,
    pub role_cap: Option<Role>,
    pub secret_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let cap: Option<String> = get(row, "role_cap")?;
        Ok(ApiKeyRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            account_id: get(row, "account_id")?,
            name: get(row, "name")?,
            role_cap: cap.map(|c| parse_col(c, "api_keys.role_cap")).transpose()?,
            secret_hash: get(row, "secret_hash")?,
            created_at: get(row, "created_at")?,
            expires_at: get(row, "expires_at")?,
            last_used_at: get(row, "last_used_at")?,
            revoked_at: get(row, "revoked_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub account_id: &'a str,
    pub name: &'a str,
    pub role_cap: Option<Role>,
    pub secret_hash: &'a str,
    pub expires_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "id, tenant_id, account_id, name, role_cap, secret_hash, created_at, expires_at, last_used_at, revoked_at";

/// How often `last_used_at` is written for a busy key (milliseconds).
const TOUCH_EVERY_MS: i64 = 60_000;

impl Store {
    pub async fn create_session(
        &self,
        tenant_id: &str,
        account_id: &str,
        token_hash: &str,
        source_ip: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<SessionRow> {
        let id = new_id("ses");
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, account_id, token_hash, source_ip, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(account_id)
        .bind(token_hash)
        .bind(source_ip)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(SessionRow {
            id,
            tenant_id: tenant_id.to_owned(),
            account_id: account_id.to_owned(),
            created_at: now,
            expires_at,
        })
    }

    /// Authentication entry point: the session whose token hashes to `token_hash`.
    pub async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let row =
            sqlx::query("SELECT id, tenant_id, account_id, created_at, expires_at FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: get(&r, "id")?,
                tenant_id: get(&r, "tenant_id")?,
                account_id: get(&r, "account_id")?,
                created_at: get(&r, "created_at")?,
                expires_at: get(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, tenant_id: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Remove sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn create_api_key(&self, tenant_id: &str, new: NewApiKey<'_>, now: i64) -> Result<ApiKeyRow> {
        let id = new_id("key");
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, account_id, name, role_cap, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(new.account_id)
        .bind(new.name)
        .bind(new.role_cap.map(Role::as_str))
        .bind(new.secret_hash)
        .bind(now)
        .bind(new.expires_at)
        .execute(self.pool())
        .await?;
        Ok(ApiKeyRow {
            id,
            tenant_id: tenant_id.to_owned(),
            account_id: new.account_id.to_owned(),
            name: new.name.to_owned(),
            role_cap: new.role_cap,
            secret_hash: new.secret_hash.to_owned(),
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// Authentication entry point: the key with this id, in whichever tenant.
    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(ApiKeyRow::from_row).transpose()
    }

    /// An account's keys, oldest first, revoked ones included.
    pub async fn list_api_keys(
        &self,
        tenant_id: &str,
        account_id: &str,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND account_id = $2 AND ($3 = '' OR id > $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(account_id)
        .bind(page.cursor.clone().unwrap_or_default())
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let items = rows.iter().map(ApiKeyRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |k| &k.id))
    }

    /// Revoke one of an account's keys. False when there is no such live key.
    pub async fn revoke_api_key(&self, tenant_id: &str, account_id: &str, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND account_id = $3 AND id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(account_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Note that a key was used, at most once a minute per key.
    pub async fn touch_api_key(&self, tenant_id: &str, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3 \
             AND (last_used_at IS NULL OR last_used_at < $4)",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .bind(now - TOUCH_EVERY_MS)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
