use axum::Json;
use ward_api::{AuditEvent, AuditQuery, ErrorBody, Page};
use ward_core::time::{parse_rfc3339, rfc3339};
use ward_core::Permission;
use ward_store::{AuditFilter, AuditRow, PageRequest};

use super::page;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;

/// The tenant's admin audit trail, newest first. It cannot be changed or deleted through the API.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEvent>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult<Json<Page<AuditEvent>>> {
    ctx.target("audit");
    ctx.authorize(Permission::AuditRead, ctx.tenant_target())?;
    let since = match &q.since {
        Some(s) => Some(parse_rfc3339(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "since must be an RFC 3339 time, such as 2026-01-31T00:00:00Z (got {s:?})"
            ))
        })?),
        None => None,
    };
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        result: q.result,
        since,
    };
    let p = ctx
        .state
        .store
        .list_audit(ctx.tenant_id(), &filter, &PageRequest::new(q.cursor, q.limit))
        .await?;
    let tenant = ctx.principal.tenant.name.clone();
    Ok(Json(page(p, |e| view(e, &tenant))))
}

fn view(e: AuditRow, tenant: &str) -> AuditEvent {
    AuditEvent {
        id: e.id,
        time: rfc3339(e.time),
        tenant: tenant.to_owned(),
        actor: e.actor_name,
        actor_role: e.actor_role,
        on_behalf_of: e.on_behalf_of,
        api_key_id: e.api_key_id,
        source_ip: e.source_ip,
        action: e.action,
        target: e.target,
        result: e.result,
        status: u16::try_from(e.status).unwrap_or(0),
        detail: e.detail,
    }
}
