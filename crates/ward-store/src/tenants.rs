//! Tenants, and the first-start bootstrap.

use sqlx::any::AnyRow;
use ward_core::{Role, TenantState, SYSTEM_TENANT};

use crate::{get, new_id, parse_col, Page, PageRequest, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub region: String,
    pub state: TenantState,
    pub created_at: i64,
    /// Every administrator account of the tenant must use MFA.
    pub require_admin_mfa: bool,
    /// How long a device's user session lasts from enrolment or sign-in.
    pub device_session_hours: i64,
}

/// A device's user session lasts a week unless the tenant says otherwise.
pub const DEFAULT_DEVICE_SESSION_HOURS: i64 = 168;

impl TenantRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(TenantRow {
            id: get(row, "id")?,
            name: get(row, "name")?,
            region: get(row, "region")?,
            state: parse_col(get(row, "state")?, "tenants.state")?,
            created_at: get(row, "created_at")?,
            require_admin_mfa: get::<i64>(row, "require_admin_mfa")? != 0,
            device_session_hours: get(row, "device_session_hours")?,
        })
    }

    pub fn is_system(&self) -> bool {
        self.name == SYSTEM_TENANT
    }
}

const COLUMNS: &str = "id, name, region, state, created_at, require_admin_mfa, device_session_hours";

impl Store {
    /// On an empty store, create tenant `system` with owner `operator`, and
    /// tenant `default` with owner `admin`. Returns false (and changes nothing)
    /// when the store already has tenants.
    pub async fn bootstrap(
        &self,
        region: &str,
        operator_password_hash: &str,
        admin_password_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        for (tenant, owner, hash) in [
            (SYSTEM_TENANT, "operator", operator_password_hash),
            ("default", "admin", admin_password_hash),
        ] {
            let tenant_id = new_id("ten");
            let inserted = sqlx::query(
                "INSERT INTO tenants (id, name, region, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(&tenant_id)
            .bind(tenant)
            .bind(region)
            .bind(TenantState::Active.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // Another replica bootstrapped at the same moment.
                Err(e) if matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation()) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            insert_account(&mut tx, &tenant_id, owner, Role::Owner, hash, None, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Create a tenant and its owner account `owner_name` in one transaction.
    pub async fn create_tenant(
        &self,
        name: &str,
        region: &str,
        owner_name: &str,
        owner_password_hash: &str,
        created_by: Option<&str>,
        now: i64,
    ) -> Result<TenantRow> {
        let mut tx = self.pool().begin().await?;
        let id = new_id("ten");
        sqlx::query(
            "INSERT INTO tenants (id, name, region, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(region)
        .bind(TenantState::Active.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("tenant {name}")))?;
        insert_account(
            &mut tx,
            &id,
            owner_name,
            Role::Owner,
            owner_password_hash,
            created_by,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(TenantRow {
            id,
            name: name.to_owned(),
            region: region.to_owned(),
            state: TenantState::Active,
            created_at: now,
            require_admin_mfa: false,
            device_session_hours: DEFAULT_DEVICE_SESSION_HOURS,
        })
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tenants WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(TenantRow::from_row).transpose()
    }

    pub async fn tenant_by_id(&self, id: &str) -> Result<Option<TenantRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(TenantRow::from_row).transpose()
    }

    /// All tenants, oldest first.
    pub async fn list_tenants(&self, page: &PageRequest) -> Result<Page<TenantRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenants WHERE ($1 = '' OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(page.cursor.clone().unwrap_or_default())
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let items = rows.iter().map(TenantRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |t| &t.id))
    }

    /// Change a tenant's state; returns the updated row, or None if unknown.
    pub async fn set_tenant_state(&self, id: &str, state: TenantState, now: i64) -> Result<Option<TenantRow>> {
        // Gateways enforce a suspension, so the change moves the policy epoch.
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE tenants SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE policy_epoch SET version = version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.tenant_by_id(id).await
    }

    /// Require (or stop requiring) MFA of the tenant's administrator accounts.
    pub async fn set_require_admin_mfa(&self, id: &str, on: bool, now: i64) -> Result<Option<TenantRow>> {
        sqlx::query("UPDATE tenants SET require_admin_mfa = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(on))
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        self.tenant_by_id(id).await
    }

    /// How long devices' user sessions last, in hours.
    pub async fn set_device_session_hours(&self, id: &str, hours: i64, now: i64) -> Result<Option<TenantRow>> {
        sqlx::query("UPDATE tenants SET device_session_hours = $1, updated_at = $2 WHERE id = $3")
            .bind(hours)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        self.tenant_by_id(id).await
    }
}

pub(crate) async fn insert_account(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    name: &str,
    role: Role,
    password_hash: &str,
    created_by: Option<&str>,
    now: i64,
) -> Result<String> {
    let id = new_id("acc");
    sqlx::query(
        "INSERT INTO accounts (id, tenant_id, name, role, password_hash, created_at, created_by, failed_logins) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now)
    .bind(created_by)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::conflict_or(e, format!("account {name}")))?;
    Ok(id)
}
