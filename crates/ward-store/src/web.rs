//! Clientless web access: published applications found by host name, and
//! the one-time codes that carry a portal sign-in to a published host.

use crate::access::AppRow;
use crate::{get, Result, Store};

/// A redeemed web sign-in code: whose sign-in it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebCodeRow {
    pub tenant_id: String,
    pub user_id: String,
    pub host: String,
    pub expires_at: i64,
}

impl Store {
    /// The application published under `host` (lowercase), whatever its
    /// tenant. Unscoped: it is how the portal learns which tenant a browser
    /// coming from a published host signs in to, before anyone is known.
    pub async fn app_by_public_host(&self, host: &str) -> Result<Option<AppRow>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM applications WHERE public_host = $1",
            crate::access::APP_COLUMNS
        ))
        .bind(host)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AppRow::from_row).transpose()
    }

    /// Stores a one-time web sign-in code by its hash (`id`), bound to one
    /// user and one published host, until `expires_at`.
    pub async fn create_web_code(
        &self,
        id: &str,
        tenant_id: &str,
        user_id: &str,
        host: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_codes (id, tenant_id, user_id, host, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(host)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the code with this hash, once: it is deleted whatever happens
    /// next. `None` unless it exists, is unexpired and is bound to `host`.
    /// Unscoped: the code is the credential (the gateway redeeming it serves
    /// every tenant).
    pub async fn take_web_code(&self, id: &str, host: &str, now: i64) -> Result<Option<WebCodeRow>> {
        let row = sqlx::query("DELETE FROM web_codes WHERE id = $1 RETURNING tenant_id, user_id, host, expires_at")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let code = WebCodeRow {
            tenant_id: get(&r, "tenant_id")?,
            user_id: get(&r, "user_id")?,
            host: get(&r, "host")?,
            expires_at: get(&r, "expires_at")?,
        };
        Ok((code.expires_at > now && code.host == host).then_some(code))
    }

    /// Forgets codes that were never redeemed.
    pub async fn delete_expired_web_codes(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM web_codes WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
