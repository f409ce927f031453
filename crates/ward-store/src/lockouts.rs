//! Failed sign-ins counted per source address (per tenant), for lock-outs.

use sqlx::any::AnyRow;

use crate::{get, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressLockout {
    pub address: String,
    pub failures: i64,
    pub window_start: i64,
    pub locked_until: Option<i64>,
}

impl AddressLockout {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(AddressLockout {
            address: get(row, "address")?,
            failures: get(row, "failures")?,
            window_start: get(row, "window_start")?,
            locked_until: get(row, "locked_until")?,
        })
    }
}

impl Store {
    /// Count a failed sign-in from `address`. Failures older than `window_ms`
    /// are forgotten. Returns the state after counting.
    pub async fn record_address_failure(
        &self,
        tenant_id: &str,
        address: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<AddressLockout> {
        let row = sqlx::query(
            "INSERT INTO address_lockouts (tenant_id, address, failures, window_start, locked_until) \
             VALUES ($1, $2, 1, $3, NULL) \
             ON CONFLICT (tenant_id, address) DO UPDATE SET \
               failures = CASE WHEN address_lockouts.window_start < $4 THEN 1 ELSE address_lockouts.failures + 1 END, \
               window_start = CASE WHEN address_lockouts.window_start < $4 THEN $3 ELSE address_lockouts.window_start END \
             RETURNING address, failures, window_start, locked_until",
        )
        .bind(tenant_id)
        .bind(address)
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(self.pool())
        .await?;
        AddressLockout::from_row(&row)
    }

    pub async fn lock_address(&self, tenant_id: &str, address: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE address_lockouts SET locked_until = $1 WHERE tenant_id = $2 AND address = $3")
            .bind(until)
            .bind(tenant_id)
            .bind(address)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn address_lockout(&self, tenant_id: &str, address: &str) -> Result<Option<AddressLockout>> {
        let row = sqlx::query(
            "SELECT address, failures, window_start, locked_until FROM address_lockouts WHERE tenant_id = $1 AND address = $2",
        )
        .bind(tenant_id)
        .bind(address)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AddressLockout::from_row).transpose()
    }

    /// Addresses locked out at `now`.
    pub async fn locked_addresses(&self, tenant_id: &str, now: i64) -> Result<Vec<AddressLockout>> {
        let rows = sqlx::query(
            "SELECT address, failures, window_start, locked_until FROM address_lockouts \
             WHERE tenant_id = $1 AND locked_until > $2 ORDER BY address",
        )
        .bind(tenant_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(AddressLockout::from_row).collect()
    }

    pub async fn unlock_address(&self, tenant_id: &str, address: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM address_lockouts WHERE tenant_id = $1 AND address = $2")
            .bind(tenant_id)
            .bind(address)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
