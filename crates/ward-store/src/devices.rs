//! Devices: tenant CAs, one-time enrolment codes, enrolled devices and what
//! tenants require of them.

use sqlx::any::AnyRow;

use crate::{bump_epoch, get, new_id, Page, PageRequest, Result, Store};

/// A tenant's certificate authority; the key is sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCaRow {
    pub cert_pem: String,
    pub sealed_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollCodeRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub device_id: Option<String>,
}

impl EnrollCodeRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(EnrollCodeRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            user_id: get(row, "user_id")?,
            created_by: get(row, "created_by")?,
            created_at: get(row, "created_at")?,
            expires_at: get(row, "expires_at")?,
            used_at: get(row, "used_at")?,
            device_id: get(row, "device_id")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub name: String,
    /// `active` or `revoked`.
    pub state: String,
    /// The last posture report, as JSON.
    pub posture: String,
    pub compliant: bool,
    pub cert_serial: String,
    pub cert_not_after: i64,
    pub enrolled_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
    /// When the device's user session ends (ms since the epoch); `None` or
    /// past: signed out, and gateways refuse the device.
    pub session_expires_at: Option<i64>,
}

impl DeviceRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let compliant: i64 = get(row, "compliant")?;
        Ok(DeviceRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            user_id: get(row, "user_id")?,
            name: get(row, "name")?,
            state: get(row, "state")?,
            posture: get(row, "posture")?,
            compliant: compliant != 0,
            cert_serial: get(row, "cert_serial")?,
            cert_not_after: get(row, "cert_not_after")?,
            enrolled_at: get(row, "enrolled_at")?,
            last_seen_at: get(row, "last_seen_at")?,
            revoked_at: get(row, "revoked_at")?,
            session_expires_at: get(row, "session_expires_at")?,
        })
    }

    pub fn is_revoked(&self) -> bool {
        self.state == "revoked"
    }

    /// Whether its user session is open at `now`.
    pub fn signed_in(&self, now: i64) -> bool {
        self.session_expires_at.is_some_and(|t| t > now)
    }
}

const CODE_COLUMNS: &str = "id, tenant_id, user_id, created_by, created_at, expires_at, used_at, device_id";
const DEVICE_COLUMNS: &str = "id, tenant_id, user_id, name, state, posture, compliant, cert_serial, cert_not_after, \
                              enrolled_at, last_seen_at, revoked_at, session_expires_at";

impl Store {
    pub async fn tenant_ca(&self, tenant_id: &str) -> Result<Option<TenantCaRow>> {
        let row = sqlx::query("SELECT cert_pem, sealed_key FROM tenant_cas WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(TenantCaRow {
                cert_pem: get(&r, "cert_pem")?,
                sealed_key: get(&r, "sealed_key")?,
            })
        })
        .transpose()
    }

    /// Store a tenant's CA unless it has one already (another replica may
    /// have been first); returns the one that is stored.
    pub async fn insert_tenant_ca(&self, tenant_id: &str, ca: &TenantCaRow, now: i64) -> Result<TenantCaRow> {
        // A new CA is a new root gateways must accept: it moves the policy epoch.
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenant_cas (tenant_id, cert_pem, sealed_key, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(&ca.cert_pem)
        .bind(&ca.sealed_key)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(self.tenant_ca(tenant_id).await?.unwrap_or_else(|| ca.clone()))
    }

    pub async fn create_enroll_code(
        &self,
        tenant_id: &str,
        user_id: &str,
        secret_hash: &str,
        created_by: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<EnrollCodeRow> {
        let id = new_id("enr");
        sqlx::query(
            "INSERT INTO enroll_codes (id, tenant_id, user_id, secret_hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(secret_hash)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(EnrollCodeRow {
            id,
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            created_by: created_by.into(),
            created_at: now,
            expires_at,
            used_at: None,
            device_id: None,
        })
    }

    /// Enrolment entry point: an unused, unexpired code with this secret hash.
    pub async fn usable_enroll_code(&self, secret_hash: &str, now: i64) -> Result<Option<EnrollCodeRow>> {
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLUMNS} FROM enroll_codes WHERE secret_hash = $1 AND used_at IS NULL AND expires_at > $2"
        ))
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(EnrollCodeRow::from_row).transpose()
    }

    /// Use the code (once) and create the device, in one transaction. None
    /// when the code was used or expired meanwhile.
    pub async fn redeem_enroll_code(
        &self,
        code_id: &str,
        device: &DeviceRow,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<DeviceRow>> {
        let mut tx = self.pool().begin().await?;
        let used = sqlx::query(
            "UPDATE enroll_codes SET used_at = $1, device_id = $2 \
             WHERE id = $3 AND tenant_id = $4 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&device.id)
        .bind(code_id)
        .bind(&device.tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if used != 1 {
            return Ok(None);
        }
        sqlx::query(&format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $9, NULL, $11, $10)"
        ))
        .bind(&device.id)
        .bind(&device.tenant_id)
        .bind(&device.user_id)
        .bind(&device.name)
        .bind(&device.posture)
        .bind(i64::from(device.compliant))
        .bind(&device.cert_serial)
        .bind(device.cert_not_after)
        .bind(now)
        .bind(token_hash)
        .bind(device.session_expires_at)
        .execute(&mut *tx)
        .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(DeviceRow {
            state: "active".into(),
            enrolled_at: now,
            last_seen_at: now,
            revoked_at: None,
            ..device.clone()
        }))
    }

    /// Device authentication entry point: the device whose token hashes to this.
    pub async fn device_by_token_hash(&self, token_hash: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(DeviceRow::from_row).transpose()
    }

    pub async fn device_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(DeviceRow::from_row).transpose()
    }

    pub async fn list_devices(&self, tenant_id: &str, page: &PageRequest) -> Result<Page<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant_id = $1 AND ($2 = '' OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(page.cursor.clone().unwrap_or_default())
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let items = rows.iter().map(DeviceRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |d| &d.id))
    }

    /// Every device of the tenant (for a policy snapshot).
    pub async fn all_devices(&self, tenant_id: &str) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(DeviceRow::from_row).collect()
    }

    /// Revoke a device at once. False when it is unknown or already revoked.
    pub async fn revoke_device(&self, tenant_id: &str, id: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE devices SET state = 'revoked', revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND state = 'active'",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Starts, renews (`Some`) or ends (`None`) the user session of an
    /// active device; moves the policy epoch. False when the device is
    /// unknown or revoked.
    pub async fn set_device_session(&self, tenant_id: &str, id: &str, expires_at: Option<i64>) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE devices SET session_expires_at = $1 WHERE tenant_id = $2 AND id = $3 AND state = 'active'",
        )
        .bind(expires_at)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Signs every device of a user out; moves the policy epoch when one
    /// was signed in. Returns how many were.
    pub async fn end_user_device_sessions(&self, tenant_id: &str, user_id: &str) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE devices SET session_expires_at = NULL \
             WHERE tenant_id = $1 AND user_id = $2 AND session_expires_at IS NOT NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// A new name for a device (its name is for people; gateways do not use it).
    pub async fn rename_device(&self, tenant_id: &str, id: &str, name: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE devices SET name = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(name)
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// A renewed certificate.
    pub async fn set_device_cert(
        &self,
        tenant_id: &str,
        id: &str,
        serial: &str,
        not_after: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET cert_serial = $1, cert_not_after = $2, last_seen_at = $3 WHERE tenant_id = $4 AND id = $5",
        )
        .bind(serial)
        .bind(not_after)
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A posture report; moves the policy epoch when compliance changed.
    pub async fn set_device_posture(
        &self,
        tenant_id: &str,
        id: &str,
        posture: &str,
        compliant: bool,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE devices SET posture = $1, last_seen_at = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(posture)
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        self.set_device_compliance(tenant_id, id, compliant).await
    }

    /// Set only the compliance verdict (after the requirements changed);
    /// moves the policy epoch when it changed.
    pub async fn set_device_compliance(&self, tenant_id: &str, id: &str, compliant: bool) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let changed =
            sqlx::query("UPDATE devices SET compliant = $1 WHERE tenant_id = $2 AND id = $3 AND compliant <> $1")
                .bind(i64::from(compliant))
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's posture requirements (JSON), if it set any.
    pub async fn posture_requirements(&self, tenant_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT requirements FROM posture_requirements WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn set_posture_requirements(&self, tenant_id: &str, json: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO posture_requirements (tenant_id, requirements) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET requirements = excluded.requirements",
        )
        .bind(tenant_id)
        .bind(json)
        .execute(&mut *tx)
        .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
