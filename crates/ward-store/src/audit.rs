//! The admin audit trail: append and read, never change.

use sqlx::any::AnyRow;
use ward_core::Role;

use crate::{get, new_id, parse_col, Page, PageRequest, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: String,
    pub time: i64,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_role: Option<Role>,
    pub on_behalf_of: Option<String>,
    pub api_key_id: Option<String>,
    pub source_ip: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub status: i64,
    pub detail: Option<String>,
}

impl AuditRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let role: Option<String> = get(row, "actor_role")?;
        Ok(AuditRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            time: get(row, "time")?,
            actor_id: get(row, "actor_id")?,
            actor_name: get(row, "actor_name")?,
            actor_role: role.map(|r| parse_col(r, "audit_events.actor_role")).transpose()?,
            on_behalf_of: get(row, "on_behalf_of")?,
            api_key_id: get(row, "api_key_id")?,
            source_ip: get(row, "source_ip")?,
            action: get(row, "action")?,
            target: get(row, "target")?,
            result: get(row, "result")?,
            status: get(row, "status")?,
            detail: get(row, "detail")?,
        })
    }
}

/// One event to record.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    pub tenant_id: String,
    pub time: i64,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_role: Option<Role>,
    pub on_behalf_of: Option<String>,
    pub api_key_id: Option<String>,
    pub source_ip: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub status: u16,
    pub detail: Option<String>,
}

/// Filters for [`Store::list_audit`]; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub result: Option<String>,
    /// At or after this time (ms).
    pub since: Option<i64>,
}

const COLUMNS: &str = "id, tenant_id, time, actor_id, actor_name, actor_role, on_behalf_of, api_key_id, \
                       source_ip, action, target, result, status, detail";

impl Store {
    pub async fn append_audit(&self, e: &NewAuditEvent) -> Result<String> {
        let id = new_id("aud");
        sqlx::query(&format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&id)
        .bind(&e.tenant_id)
        .bind(e.time)
        .bind(&e.actor_id)
        .bind(&e.actor_name)
        .bind(e.actor_role.map(Role::as_str))
        .bind(&e.on_behalf_of)
        .bind(&e.api_key_id)
        .bind(&e.source_ip)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.result)
        .bind(i64::from(e.status))
        .bind(&e.detail)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The tenant's trail, newest first.
    pub async fn list_audit(
        &self,
        tenant_id: &str,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRow>> {
        let rows = crate::newest_first(
            self,
            &format!("SELECT {COLUMNS} FROM audit_events WHERE tenant_id = $1"),
            tenant_id,
            &[
                ("actor_name =", filter.actor.as_deref()),
                ("action =", filter.action.as_deref()),
                ("result =", filter.result.as_deref()),
            ],
            filter.since.map(|ms| ("time", ms)),
            page,
        )
        .await?;
        let items = rows.iter().map(AuditRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |e| &e.id))
    }
}
