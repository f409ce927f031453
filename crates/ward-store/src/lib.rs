//! Ward's storage: one repository layer over two backends.
//!
//! SQLite in the data directory is the embedded default (WAL, foreign keys
//! on); PostgreSQL is for scale-out. Both are reached through sqlx's `Any`
//! driver with the same SQL text: queries use `$1`-style placeholders, which
//! both engines accept, and only the schema differs (one migration directory
//! per backend, applied at start).
//!
//! **Architecture invariants:**
//! - Every tenant-owned row carries `tenant_id`, and every query of such a row
//!   is scoped by it: repository methods take the tenant id as their first
//!   argument. The only unscoped look-ups are the entry points of
//!   authentication (a session by token hash, an API key by id), which return
//!   the tenant the credential belongs to.
//! - The audit trail is append-only: the schema refuses `UPDATE` and
//!   `DELETE` on it (triggers), and this crate offers no method that would try.
//! - No business rules here (who may do what lives in `ward-core` and the
//!   server); this crate stores and finds.

mod access;
mod accounts;
mod audit;
mod credentials;
mod devices;
mod error;
mod gateways;
mod identity;
mod internet;
mod lockouts;
mod mfa;
mod page;
mod portal;
mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod web;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use access::{AppRow, GroupRow, RuleRow, UserRow};
pub use accounts::{AccountRow, NewAccount};
pub use audit::{AuditFilter, AuditRow, NewAuditEvent};
pub use credentials::{ApiKeyRow, NewApiKey, SessionRow};
pub use devices::{DeviceRow, EnrollCodeRow, TenantCaRow};
pub use error::{Result, StoreError};
pub use gateways::{AccessFilter, AccessRecordRow, GatewayRow, ROWS_PER_INSERT};
pub use identity::{IdentitySourceRow, NewIdentitySource, OidcLoginRow};
pub use internet::{
    DefaultList, DomainListRow, InternetRuleRow, InternetSettingsRow, ListContent, ListDeletion, ProxyCredentialRow,
};
pub use lockouts::AddressLockout;
pub use mfa::{Owner as MfaOwner, TotpRow};
pub use page::{Page, PageRequest};
pub use portal::{EnrollRequestRow, UserSessionRow};
pub use tenants::{TenantRow, DEFAULT_DEVICE_SESSION_HOURS};
pub use web::WebCodeRow;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Which engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The repository. Cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Open the SQLite database file at `path`, creating it if needed.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Store> {
        let path = path
            .to_str()
            .ok_or_else(|| StoreError::Config("the data directory path is not valid UTF-8".into()))?;
        Self::connect(&format!("sqlite://{path}?mode=rwc")).await
    }

    /// Connect to `url`: `sqlite://PATH[?mode=rwc]` or `postgres://...`.
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(
                "the database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        options = match backend {
            Backend::Sqlite => options.max_connections(8).after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout makes
                    // writers queue rather than fail; foreign keys keep rows honest.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|e| StoreError::Connect(redact(url), e))?;
        Ok(Store { pool, backend })
    }

    /// Apply this backend's migrations (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// True when the store answers and every migration this build knows is applied.
    pub async fn ready(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let expected = migrator.iter().count() as i64;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        if applied < expected {
            return Err(StoreError::NotMigrated { applied, expected });
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A fresh, time-ordered, random id with a type prefix (`acc_01j...`).
///
/// Ids made by one process are strictly increasing, even within a
/// millisecond, so "newest first" and cursors follow creation order.
pub fn new_id(prefix: &str) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    // A poisoned lock or an exhausted millisecond falls back to a plain random id.
    let id = match GENERATOR.lock() {
        Ok(mut g) => g.generate().unwrap_or_else(|_| ulid::Ulid::new()),
        Err(_) => ulid::Ulid::new(),
    };
    format!("{prefix}_{}", id.to_string().to_ascii_lowercase())
}

/// Hide the password in a database URL before it reaches a log or error.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}://{}:***{}", &url[..s], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Move the policy epoch, inside the transaction that made the change.
pub(crate) async fn bump_epoch(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE policy_epoch SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `text` as a literal part of a `LIKE` pattern written with
/// `ESCAPE '\'` (in SQLite and PostgreSQL alike): `%`, `_` and `\` match
/// only themselves.
pub(crate) fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Rows of `select` (which ends in `WHERE tenant_id = $1`) for `tenant_id`,
/// newest first: each present text filter adds `AND <cond> $n` (or, when
/// `cond` holds `$?`, `AND <cond>` with `$?` made `$n`), `since` adds
/// `AND <column> >= $n`, and the page's cursor continues before its id.
pub(crate) async fn newest_first(
    store: &Store,
    select: &str,
    tenant_id: &str,
    filters: &[(&str, Option<&str>)],
    since: Option<(&str, i64)>,
    page: &PageRequest,
) -> Result<Vec<AnyRow>> {
    let mut sql = select.to_owned();
    let mut texts = Vec::new();
    for (cond, value) in filters.iter().chain([("id <", page.cursor.as_deref())].iter()) {
        if let Some(v) = value {
            texts.push(*v);
            let n = format!("${}", texts.len() + 1);
            if cond.contains("$?") {
                sql.push_str(&format!(" AND {}", cond.replace("$?", &n)));
            } else {
                sql.push_str(&format!(" AND {cond} {n}"));
            }
        }
    }
    let mut n = texts.len() + 1;
    if let Some((column, _)) = since {
        n += 1;
        sql.push_str(&format!(" AND {column} >= ${n}"));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(tenant_id);
    for t in texts {
        q = q.bind(t);
    }
    if let Some((_, value)) = since {
        q = q.bind(value);
    }
    Ok(q.bind(page.fetch()).fetch_all(store.pool()).await?)
}

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    Ok(row.try_get(col)?)
}

pub(crate) fn parse_col<T: FromStr>(value: String, col: &'static str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt { column: col, value })
}

#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Run raw SQL; for tests that check what the schema refuses.
    pub async fn raw_execute_for_tests(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_literal_escapes_the_wildcards_and_the_escape() {
        assert_eq!(super::like_literal("a_b%c\\d.example"), "a\\_b\\%c\\\\d.example");
        assert_eq!(super::like_literal("plain.example"), "plain.example");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite:///x"), "sqlite:///x");
    }
}
