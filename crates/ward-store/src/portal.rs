//! The user portal's state: end users' sessions, and enrolment requests
//! (an agent asks without a code; the device's user approves in the portal).

use sqlx::any::AnyRow;

use crate::{get, new_id, Result, Store};

/// An end user's portal session (the id is the SHA-256 of its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSessionRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An agent's request to enrol, waiting for its user's approval.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrollRequestRow {
    pub id: String,
    pub user_code: String,
    pub device_name: String,
    pub source: String,
    /// `pending`, `approved`, `denied` or `collected`.
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub sealed_code: Option<String>,
    pub decided_at: Option<i64>,
    /// For a device renewing its session (`ward agent login`): the device;
    /// only its own user may approve.
    pub device_id: Option<String>,
}

const REQUEST_COLUMNS: &str = "id, user_code, device_name, source, state, created_at, expires_at, tenant_id, user_id, \
                               sealed_code, decided_at, device_id";

impl EnrollRequestRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(EnrollRequestRow {
            id: get(row, "id")?,
            user_code: get(row, "user_code")?,
            device_name: get(row, "device_name")?,
            source: get(row, "source")?,
            state: get(row, "state")?,
            created_at: get(row, "created_at")?,
            expires_at: get(row, "expires_at")?,
            tenant_id: get(row, "tenant_id")?,
            user_id: get(row, "user_id")?,
            sealed_code: get(row, "sealed_code")?,
            decided_at: get(row, "decided_at")?,
            device_id: get(row, "device_id")?,
        })
    }
}

impl Store {
    // ---- user sessions --------------------------------------------------------

    pub async fn create_user_session(
        &self,
        id_hash: &str,
        tenant_id: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<UserSessionRow> {
        sqlx::query(
            "INSERT INTO user_sessions (id, tenant_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(UserSessionRow {
            id: id_hash.into(),
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            created_at: now,
            expires_at,
        })
    }

    /// The unexpired session with this id hash.
    pub async fn user_session(&self, id_hash: &str, now: i64) -> Result<Option<UserSessionRow>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, user_id, created_at, expires_at FROM user_sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(UserSessionRow {
                id: get(&r, "id")?,
                tenant_id: get(&r, "tenant_id")?,
                user_id: get(&r, "user_id")?,
                created_at: get(&r, "created_at")?,
                expires_at: get(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_user_session(&self, id_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM user_sessions WHERE id = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Ends every portal session of a user (disabled, password changed).
    pub async fn delete_user_sessions(&self, tenant_id: &str, user_id: &str) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    pub async fn delete_expired_user_sessions(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM user_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    // ---- enrolment requests -------------------------------------------------

    /// A new pending request. A `user_code` already in use is a conflict
    /// (the caller draws another).
    pub async fn create_enroll_request(
        &self,
        secret_hash: &str,
        user_code: &str,
        device_name: &str,
        source: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<EnrollRequestRow> {
        let id = new_id("erq");
        // A code of an expired or finished request may be drawn again.
        sqlx::query("DELETE FROM enroll_requests WHERE user_code = $1 AND (expires_at <= $2 OR state <> 'pending')")
            .bind(user_code)
            .bind(now)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO enroll_requests (id, secret_hash, user_code, device_name, source, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(&id)
        .bind(secret_hash)
        .bind(user_code)
        .bind(device_name)
        .bind(source)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map_err(|e| crate::StoreError::from(e).conflict_as(format!("user code {user_code}")))?;
        Ok(EnrollRequestRow {
            id,
            user_code: user_code.into(),
            device_name: device_name.into(),
            source: source.into(),
            state: "pending".into(),
            created_at: now,
            expires_at,
            ..Default::default()
        })
    }

    /// A new pending request by an enrolled device to renew its user
    /// session: it names the device (and so its tenant and user) from the
    /// start. A `user_code` already in use is a conflict.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_device_login_request(
        &self,
        secret_hash: &str,
        user_code: &str,
        device: &crate::DeviceRow,
        source: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<EnrollRequestRow> {
        let id = new_id("erq");
        sqlx::query("DELETE FROM enroll_requests WHERE user_code = $1 AND (expires_at <= $2 OR state <> 'pending')")
            .bind(user_code)
            .bind(now)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO enroll_requests (id, secret_hash, user_code, device_name, source, state, created_at, expires_at, \
             tenant_id, user_id, device_id) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(secret_hash)
        .bind(user_code)
        .bind(&device.name)
        .bind(source)
        .bind(now)
        .bind(expires_at)
        .bind(&device.tenant_id)
        .bind(&device.user_id)
        .bind(&device.id)
        .execute(self.pool())
        .await
        .map_err(|e| crate::StoreError::from(e).conflict_as(format!("user code {user_code}")))?;
        Ok(EnrollRequestRow {
            id,
            user_code: user_code.into(),
            device_name: device.name.clone(),
            source: source.into(),
            state: "pending".into(),
            created_at: now,
            expires_at,
            tenant_id: Some(device.tenant_id.clone()),
            user_id: Some(device.user_id.clone()),
            device_id: Some(device.id.clone()),
            ..Default::default()
        })
    }

    /// Approves a pending device sign-in request of this tenant's user and
    /// renews the device's session until `session_expires_at`, in one
    /// transaction that moves the policy epoch. False when the request was
    /// decided or expired meanwhile, or its device is no longer active.
    pub async fn approve_device_login_request(
        &self,
        id: &str,
        tenant_id: &str,
        user_id: &str,
        session_expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "SELECT device_id FROM enroll_requests WHERE id = $1 AND tenant_id = $2 AND user_id = $3 \
             AND state = 'pending' AND expires_at > $4 AND device_id IS NOT NULL",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let device_id: String = get(&row, "device_id")?;
        let renewed = sqlx::query(
            "UPDATE devices SET session_expires_at = $1 WHERE tenant_id = $2 AND id = $3 AND user_id = $4 AND state = 'active'",
        )
        .bind(session_expires_at)
        .bind(tenant_id)
        .bind(&device_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if renewed != 1 {
            return Ok(false);
        }
        let n = sqlx::query(
            "UPDATE enroll_requests SET state = 'approved', decided_at = $1 WHERE id = $2 AND state = 'pending'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        crate::bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many requests from `source` are pending and unexpired.
    pub async fn pending_enroll_requests(&self, source: Option<&str>, now: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM enroll_requests WHERE state = 'pending' AND expires_at > $1 AND ($2 = '' OR source = $2)",
        )
        .bind(now)
        .bind(source.unwrap_or(""))
        .fetch_one(self.pool())
        .await?;
        Ok(n.max(0) as u64)
    }

    /// The pending, unexpired request with this user code.
    pub async fn pending_enroll_request(&self, user_code: &str, now: i64) -> Result<Option<EnrollRequestRow>> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM enroll_requests WHERE user_code = $1 AND state = 'pending' AND expires_at > $2"
        ))
        .bind(user_code)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(EnrollRequestRow::from_row).transpose()
    }

    /// The request whose secret hashes to this, whatever its state.
    pub async fn enroll_request_by_secret(&self, secret_hash: &str) -> Result<Option<EnrollRequestRow>> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM enroll_requests WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(EnrollRequestRow::from_row).transpose()
    }

    /// Approves a pending, unexpired request for a user, with the sealed
    /// enrolment code the agent will collect. False when it was decided or
    /// expired meanwhile.
    pub async fn approve_enroll_request(
        &self,
        id: &str,
        tenant_id: &str,
        user_id: &str,
        sealed_code: &str,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE enroll_requests SET state = 'approved', tenant_id = $1, user_id = $2, sealed_code = $3, decided_at = $4 \
             WHERE id = $5 AND state = 'pending' AND expires_at > $4",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(sealed_code)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn deny_enroll_request(&self, id: &str, tenant_id: &str, user_id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE enroll_requests SET state = 'denied', tenant_id = $1, user_id = $2, decided_at = $3 \
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Hands an approved request's sealed code over, once: the request is
    /// then `collected` and keeps no code.
    pub async fn collect_enroll_request(&self, id: &str) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query("SELECT sealed_code FROM enroll_requests WHERE id = $1 AND state = 'approved'")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Option<String> = get(&row, "sealed_code")?;
        let n = sqlx::query(
            "UPDATE enroll_requests SET state = 'collected', sealed_code = NULL WHERE id = $1 AND state = 'approved'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if n == 1 { sealed } else { None })
    }

    /// Forgets requests that expired more than a day ago.
    pub async fn delete_old_enroll_requests(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM enroll_requests WHERE expires_at <= $1")
            .bind(now - 86_400_000)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
