use axum::http::StatusCode;
use axum::Json;
use ward_api::{CreateTenant, ErrorBody, Page, PageQuery, Tenant, TenantSettings, UpdateTenant};
use ward_core::time::rfc3339;
use ward_core::{ErrorCode, Name, Permission, Target, TenantState, SYSTEM_TENANT};
use ward_store::TenantRow;

use super::{page, page_request};
use crate::auth::password;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::now_ms;

fn view(t: TenantRow) -> Tenant {
    Tenant {
        id: t.id,
        name: t.name,
        region: t.region,
        state: t.state,
        created_at: rfc3339(t.created_at),
    }
}

/// List tenants (operators).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Tenant>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<Page<Tenant>>> {
    ctx.target("tenants");
    ctx.authorize(Permission::TenantsRead, Target::Tenants)?;
    let p = ctx.state.store.list_tenants(&page_request(&q)).await?;
    Ok(Json(page(p, view)))
}

/// Create a tenant and its owner account `admin` (operators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant, security(("bearer" = [])),
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(ctx: Ctx, ApiJson(req): ApiJson<CreateTenant>) -> ApiResult<(StatusCode, Json<Tenant>)> {
    ctx.target(format!("tenant:{}", req.name));
    ctx.authorize(Permission::TenantsManage, Target::Tenants)?;
    let name = Name::parse(&req.name)?;
    if name.as_str() == SYSTEM_TENANT {
        return Err(ApiError::invalid("the name system is reserved"));
    }
    let regions = &ctx.state.config.regions;
    let region = match req.region {
        Some(r) if regions.contains(&r) => r,
        Some(r) => {
            return Err(ApiError::invalid(format!(
                "unknown region {r:?}; this service offers: {}",
                regions.join(", ")
            )))
        }
        None => regions.first().cloned().unwrap_or_else(|| "local".into()),
    };
    password::check_policy(&req.owner_password)?;
    let hash = password::hash(req.owner_password).await?;
    let t = ctx
        .state
        .store
        .create_tenant(
            name.as_str(),
            &region,
            "admin",
            &hash,
            Some(&ctx.principal.account.name),
            now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(t))))
}

/// Show a tenant (operators).
#[utoipa::path(get, path = "/api/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn show(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Tenant>> {
    ctx.target(format!("tenant:{name}"));
    ctx.authorize(Permission::TenantsRead, Target::Tenants)?;
    let t = ctx
        .state
        .store
        .tenant_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant {name}")))?;
    Ok(Json(view(t)))
}

/// Suspend or resume a tenant (operators).
#[utoipa::path(patch, path = "/api/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)), request_body = UpdateTenant,
    security(("bearer" = [])), responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn update(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateTenant>,
) -> ApiResult<Json<Tenant>> {
    ctx.target(format!("tenant:{name}"));
    ctx.authorize(Permission::TenantsManage, Target::Tenants)?;
    let store = &ctx.state.store;
    let t = store
        .tenant_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant {name}")))?;
    if t.is_system() && req.state != TenantState::Active {
        return Err(ApiError::invalid("the system tenant cannot be suspended"));
    }
    ctx.detail(format!("state {} -> {}", t.state, req.state));
    let t = store
        .set_tenant_state(&t.id, req.state, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(view(t)))
}

fn settings_view(t: &TenantRow) -> TenantSettings {
    TenantSettings {
        require_admin_mfa: t.require_admin_mfa,
        device_session_hours: Some(u32::try_from(t.device_session_hours).unwrap_or(168)),
    }
}

/// The caller's own tenant's settings.
#[utoipa::path(get, path = "/api/v1/tenant/settings", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = TenantSettings), (status = 403, body = ErrorBody)))]
pub async fn show_settings(ctx: Ctx) -> ApiResult<Json<TenantSettings>> {
    ctx.target(format!("tenant:{}", ctx.principal.tenant.name));
    ctx.authorize(Permission::SettingsRead, ctx.tenant_target())?;
    Ok(Json(settings_view(&ctx.principal.tenant)))
}

/// Change the caller's own tenant's settings (the owner: it needs the
/// `ownership` permission). Requiring MFA of the administrators is refused
/// while the owner's own account has none.
#[utoipa::path(put, path = "/api/v1/tenant/settings", tag = "tenants", request_body = TenantSettings,
    security(("bearer" = [])), responses((status = 200, body = TenantSettings), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_settings(ctx: Ctx, ApiJson(req): ApiJson<TenantSettings>) -> ApiResult<Json<TenantSettings>> {
    ctx.target(format!("tenant:{}", ctx.principal.tenant.name));
    ctx.authorize(Permission::Ownership, ctx.tenant_target())?;
    let t = &ctx.principal.tenant;
    ctx.detail(format!(
        "require_admin_mfa {} -> {}",
        t.require_admin_mfa, req.require_admin_mfa
    ));
    if let Some(hours) = req.device_session_hours {
        if !(1..=8760).contains(&hours) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "device_session_hours must be between 1 and 8760",
            ));
        }
        ctx.detail(format!(
            "require_admin_mfa {} -> {}, device_session_hours {} -> {hours}",
            t.require_admin_mfa, req.require_admin_mfa, t.device_session_hours
        ));
    }
    if req.require_admin_mfa && !ctx.principal.account.mfa_enabled && !t.require_admin_mfa {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "turn MFA on for your own account before requiring it of every administrator",
        ));
    }
    let t = ctx
        .state
        .store
        .set_require_admin_mfa(&t.id, req.require_admin_mfa, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let t = match req.device_session_hours {
        Some(hours) => ctx
            .state
            .store
            .set_device_session_hours(&t.id, i64::from(hours), now_ms())
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?,
        None => t,
    };
    Ok(Json(settings_view(&t)))
}
