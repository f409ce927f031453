use axum::http::StatusCode;
use axum::Json;
use ward_api::{ErrorBody, Lockout, Page};
use ward_core::time::rfc3339;
use ward_core::Permission;

use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::state::now_ms;

/// Accounts and source addresses locked out after repeated failed sign-ins.
#[utoipa::path(get, path = "/api/v1/lockouts", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Page<Lockout>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx) -> ApiResult<Json<Page<Lockout>>> {
    ctx.target("lockouts");
    ctx.authorize(Permission::AccountsRead, ctx.tenant_target())?;
    let now = now_ms();
    let store = &ctx.state.store;
    let mut items: Vec<Lockout> = store
        .locked_accounts(ctx.tenant_id(), now)
        .await?
        .into_iter()
        .map(|a| Lockout {
            scope: "account".into(),
            subject: a.name,
            failures: u32::try_from(a.failed_logins).unwrap_or(u32::MAX),
            locked_until: rfc3339(a.locked_until.unwrap_or(now)),
        })
        .collect();
    items.extend(
        store
            .locked_addresses(ctx.tenant_id(), now)
            .await?
            .into_iter()
            .map(|l| Lockout {
                scope: "address".into(),
                subject: l.address,
                failures: u32::try_from(l.failures).unwrap_or(u32::MAX),
                locked_until: rfc3339(l.locked_until.unwrap_or(now)),
            }),
    );
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Lift a source address's sign-in lock-out.
#[utoipa::path(delete, path = "/api/v1/lockouts/addresses/{address}", tag = "accounts", params(("address" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn clear_address(ctx: Ctx, ApiPath(address): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("address:{address}"));
    ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    if ctx.state.store.unlock_address(ctx.tenant_id(), &address).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("lock-out of address {address}")))
    }
}
