//! Devices: enrolment codes, enrolment, renewal and posture (the agent's
//! side), and the admin's view (list, show, revoke, posture requirements).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use ward_api::{
    CreateEnrollCode, Device, EnrollCode, EnrollRequest, EnrollResponse, ErrorBody, Page, PageQuery, PostureReport,
    PostureVerdict, RenewRequest, RenewResponse,
};
use ward_core::time::rfc3339;
use ward_core::{ErrorCode, Permission, Posture, PostureRequirements, TenantState};
use ward_pki::Identity;
use ward_store::{DeviceRow, TenantRow};

use super::{opt_time, page, page_request};
use crate::audit::AuditNote;
use crate::auth::token;
use crate::ctx::{Anonymous, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{now_ms, AppState};
use crate::tenant_ca;

/// Prefix of enrolment codes; the code is `wen_<secret>[_<pin>]`.
const CODE_PREFIX: &str = "wen_";
/// Prefix of device tokens.
pub const DEVICE_TOKEN_PREFIX: &str = "wd_";
const DEFAULT_CODE_TTL: u64 = 24 * 3600;
const MAX_CODE_TTL: u64 = 30 * 24 * 3600;

async fn requirements(state: &AppState, tenant_id: &str) -> ApiResult<PostureRequirements> {
    match state.store.posture_requirements(tenant_id).await? {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            tracing::error!(tenant = %tenant_id, error = %e, "stored posture requirements are invalid");
            ApiError::internal()
        }),
        None => Ok(PostureRequirements::default()),
    }
}

fn posture_of(d: &DeviceRow) -> Posture {
    serde_json::from_str(&d.posture).unwrap_or_default()
}

fn device_view(d: DeviceRow, user: String, req: &PostureRequirements) -> Device {
    let posture = posture_of(&d);
    let failures = req.failures(&posture);
    Device {
        compliant: d.compliant,
        compliance_failures: failures,
        posture,
        user,
        cert_expires_at: rfc3339(d.cert_not_after),
        enrolled_at: rfc3339(d.enrolled_at),
        last_seen_at: rfc3339(d.last_seen_at),
        revoked_at: opt_time(d.revoked_at),
        session_expires_at: d.session_expires_at.filter(|t| *t > now_ms()).map(rfc3339),
        id: d.id,
        name: d.name,
        state: d.state,
    }
}

/// Make a one-time enrolment code for a user's device.
#[utoipa::path(post, path = "/api/v1/enroll-codes", tag = "devices", request_body = CreateEnrollCode, security(("bearer" = [])),
    responses((status = 201, body = EnrollCode), (status = 404, body = ErrorBody)))]
pub async fn create_code(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateEnrollCode>,
) -> ApiResult<(StatusCode, Json<EnrollCode>)> {
    ctx.target(format!("user:{}", req.user));
    ctx.authorize(Permission::DevicesManage, ctx.tenant_target())?;
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_CODE_TTL);
    if ttl == 0 || ttl > MAX_CODE_TTL {
        return Err(ApiError::invalid("ttl_secs must be between 1 and 30 days"));
    }
    let store = &ctx.state.store;
    let user = store
        .user_by_name(ctx.tenant_id(), &req.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {}", req.user)))?;
    if user.disabled {
        return Err(ApiError::invalid(format!("user {} is disabled", req.user)));
    }
    let (code, expires_at) = issue_enroll_code(
        &ctx.state,
        ctx.tenant_id(),
        &ctx.principal.tenant.name,
        &user.id,
        &ctx.principal.account.name,
        ttl,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollCode {
            code,
            user: user.name,
            expires_at: rfc3339(expires_at),
        }),
    ))
}

/// Makes a one-time enrolment code for a user's device, valid `ttl_secs`:
/// the code (with the server's pin) and when it expires. The tenant gets its
/// CA first, if it has none yet. `created_by` says who asked for it.
pub(crate) async fn issue_enroll_code(
    state: &AppState,
    tenant_id: &str,
    tenant_name: &str,
    user_id: &str,
    created_by: &str,
    ttl_secs: u64,
) -> ApiResult<(String, i64)> {
    tenant_ca::get_or_create(state, tenant_id, tenant_name).await?;
    let secret = token::new_api_key_secret();
    let now = now_ms();
    let expires_at = now + i64::try_from(ttl_secs).unwrap_or(0) * 1000;
    state
        .store
        .create_enroll_code(tenant_id, user_id, &token::hash(&secret), created_by, now, expires_at)
        .await?;
    Ok((
        token::one_time_code(CODE_PREFIX, &secret, state.server_pin.as_deref()),
        expires_at,
    ))
}

/// Enrol a device with a one-time code: the agent sends a CSR (its key stays
/// on the device) and its posture, and gets its certificate.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "devices", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    anon: Anonymous,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    anon.note(AuditNote::target(format!("device:{}", req.name)));
    let refused = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "the enrolment code is unknown, used or expired",
        )
    };
    let secret = token::code_secret(&req.code, CODE_PREFIX).ok_or_else(refused)?;
    let now = now_ms();
    let store = &state.store;
    let code = store
        .usable_enroll_code(&token::hash(secret), now)
        .await?
        .ok_or_else(refused)?;
    anon.audit.update(|n| n.tenant_id = Some(code.tenant_id.clone()));
    let tenant = store.tenant_by_id(&code.tenant_id).await?.ok_or_else(refused)?;
    if tenant.state != TenantState::Active {
        return Err(ApiError::new(ErrorCode::TenantSuspended, "the tenant is suspended"));
    }
    let user = store
        .all_users(&tenant.id)
        .await?
        .into_iter()
        .find(|u| u.id == code.user_id)
        .ok_or_else(refused)?;
    if user.disabled {
        return Err(ApiError::new(ErrorCode::Forbidden, "the user is disabled"));
    }
    let name = clean_name(&req.name)?;
    let device_id = ward_store::new_id("dev");
    let identity = Identity::device(&tenant.id, &device_id).map_err(|_| ApiError::internal())?;
    let ca = tenant_ca::get_or_create(&state, &tenant.id, &tenant.name).await?;
    let leaf = ca
        .sign_csr(&req.csr_pem, &identity, state.config.device_cert_ttl)
        .map_err(|e| ApiError::invalid(format!("the certificate request is not acceptable: {e}")))?;
    let requirements = requirements(&state, &tenant.id).await?;
    let compliant = requirements.is_met_by(&req.posture);
    let device_token = format!("{DEVICE_TOKEN_PREFIX}{}", token::new_api_key_secret());
    let row = DeviceRow {
        id: device_id.clone(),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        name,
        posture: serde_json::to_string(&req.posture).map_err(|_| ApiError::internal())?,
        compliant,
        cert_serial: leaf.serial_hex.clone(),
        cert_not_after: leaf.not_after_unix * 1000,
        session_expires_at: Some(session_end(&tenant, now)),
        ..Default::default()
    };
    let device = store
        .redeem_enroll_code(&code.id, &row, &token::hash(&device_token), now)
        .await?
        .ok_or_else(refused)?;
    anon.audit
        .update(|n| n.detail = Some(format!("device {} enrolled for user {}", device.id, user.name)));
    let gateway_ca = tenant_ca::get_or_create(&state, &state.system_tenant_id, ward_core::SYSTEM_TENANT).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            tenant: tenant.name,
            device_id: device.id,
            user: user.name,
            cert_pem: leaf.cert_pem,
            cert_expires_at: rfc3339(device.cert_not_after),
            tenant_ca_pem: ca.cert_pem(),
            gateway_ca_pem: gateway_ca.cert_pem(),
            device_token,
            compliant,
            gateway: state.config.gateway_advertise(),
            session_expires_at: device.session_expires_at.map(rfc3339),
        }),
    ))
}

/// When a device session starting at `now` ends, by the tenant's setting.
pub(crate) fn session_end(tenant: &TenantRow, now: i64) -> i64 {
    now.saturating_add(tenant.device_session_hours.clamp(1, 8760).saturating_mul(3_600_000))
}

fn session_view(d: &DeviceRow) -> ward_api::DeviceSession {
    let now = now_ms();
    ward_api::DeviceSession {
        signed_in: d.signed_in(now),
        session_expires_at: d.session_expires_at.filter(|t| *t > now).map(rfc3339),
    }
}

/// Sign the device out (`ward agent logout`): its user session ends, and
/// gateways refuse it and close its connections until `ward agent login`.
#[utoipa::path(post, path = "/api/v1/device/logout", tag = "devices",
    responses((status = 200, body = ward_api::DeviceSession), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, caller: DeviceCaller) -> ApiResult<Json<ward_api::DeviceSession>> {
    let DeviceCaller { device, tenant } = caller;
    state.store.set_device_session(&tenant.id, &device.id, None).await?;
    let device = state
        .store
        .device_by_id(&tenant.id, &device.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(Json(session_view(&device)))
}

/// The device's user session (for `ward agent status`).
#[utoipa::path(get, path = "/api/v1/device/session", tag = "devices",
    responses((status = 200, body = ward_api::DeviceSession), (status = 401, body = ErrorBody)))]
pub async fn session(caller: DeviceCaller) -> ApiResult<Json<ward_api::DeviceSession>> {
    Ok(Json(session_view(&caller.device)))
}

fn clean_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "the device name must be 1 to 64 printable characters",
        ));
    }
    Ok(n.to_owned())
}

/// The device behind a `wd_` token: the agent's own calls.
pub struct DeviceCaller {
    pub device: DeviceRow,
    pub tenant: TenantRow,
}

impl FromRequestParts<AppState> for DeviceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unknown = || ApiError::new(ErrorCode::Unauthenticated, "unknown device token");
        let bearer = token::bearer_with_prefix(&parts.headers, DEVICE_TOKEN_PREFIX).ok_or_else(unknown)?;
        let device = state
            .store
            .device_by_token_hash(&token::hash(bearer))
            .await?
            .ok_or_else(unknown)?;
        if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
            slot.update(|n| {
                n.tenant_id = Some(device.tenant_id.clone());
                n.target = Some(format!("device:{}", device.id));
            });
        }
        if device.is_revoked() {
            return Err(ApiError::new(ErrorCode::Unauthenticated, "the device has been revoked"));
        }
        let tenant = state.store.tenant_by_id(&device.tenant_id).await?.ok_or_else(unknown)?;
        if tenant.state != TenantState::Active {
            return Err(ApiError::new(ErrorCode::TenantSuspended, "the tenant is suspended"));
        }
        let user_disabled = state
            .store
            .all_users(&device.tenant_id)
            .await?
            .iter()
            .any(|u| u.id == device.user_id && u.disabled);
        if user_disabled {
            return Err(ApiError::new(ErrorCode::Forbidden, "the device's user is disabled"));
        }
        Ok(DeviceCaller { device, tenant })
    }
}

/// Renew the device's certificate (the agent does so at half-life).
#[utoipa::path(post, path = "/api/v1/device/renew", tag = "devices", request_body = RenewRequest,
    responses((status = 200, body = RenewResponse), (status = 401, body = ErrorBody)))]
pub async fn renew(
    State(state): State<AppState>,
    caller: DeviceCaller,
    ApiJson(req): ApiJson<RenewRequest>,
) -> ApiResult<Json<RenewResponse>> {
    let DeviceCaller { device, tenant } = caller;
    // A certificate issued moments ago is not renewed again: an agent in a
    // loop must not make the CA sign without end.
    let ttl_ms = i64::try_from(state.config.device_cert_ttl.as_millis()).unwrap_or(i64::MAX);
    let min_ms = i64::try_from(state.config.renew_min_interval.as_millis()).unwrap_or(i64::MAX);
    if device.cert_not_after > now_ms().saturating_add(ttl_ms).saturating_sub(min_ms) {
        return Err(ApiError::new(
            ErrorCode::LockedOut,
            "the certificate was renewed moments ago; try again later",
        ));
    }
    let identity = Identity::device(&tenant.id, &device.id).map_err(|_| ApiError::internal())?;
    let ca = tenant_ca::get_or_create(&state, &tenant.id, &tenant.name).await?;
    let leaf = ca
        .sign_csr(&req.csr_pem, &identity, state.config.device_cert_ttl)
        .map_err(|e| ApiError::invalid(format!("the certificate request is not acceptable: {e}")))?;
    let not_after = leaf.not_after_unix * 1000;
    state
        .store
        .set_device_cert(&tenant.id, &device.id, &leaf.serial_hex, not_after, now_ms())
        .await?;
    Ok(Json(RenewResponse {
        cert_pem: leaf.cert_pem,
        cert_expires_at: rfc3339(not_after),
    }))
}

/// Report the device's posture; the answer says whether it is compliant.
#[utoipa::path(post, path = "/api/v1/device/posture", tag = "devices", request_body = PostureReport,
    responses((status = 200, body = PostureVerdict), (status = 401, body = ErrorBody)))]
pub async fn report_posture(
    State(state): State<AppState>,
    caller: DeviceCaller,
    ApiJson(req): ApiJson<PostureReport>,
) -> ApiResult<Json<PostureVerdict>> {
    let DeviceCaller { device, tenant } = caller;
    let requirements = requirements(&state, &tenant.id).await?;
    let failures = requirements.failures(&req.posture);
    let json = serde_json::to_string(&req.posture).map_err(|_| ApiError::internal())?;
    state
        .store
        .set_device_posture(&tenant.id, &device.id, &json, failures.is_empty(), now_ms())
        .await?;
    Ok(Json(PostureVerdict {
        compliant: failures.is_empty(),
        failures,
    }))
}

async fn user_names(ctx: &Ctx) -> ApiResult<std::collections::HashMap<String, String>> {
    Ok(ctx
        .state
        .store
        .all_users(ctx.tenant_id())
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

/// The tenant's devices.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Device>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<Page<Device>>> {
    ctx.target("devices");
    ctx.authorize(Permission::DevicesRead, ctx.tenant_target())?;
    let p = ctx.state.store.list_devices(ctx.tenant_id(), &page_request(&q)).await?;
    let users = user_names(&ctx).await?;
    let req = requirements(&ctx.state, ctx.tenant_id()).await?;
    Ok(Json(page(p, |d| {
        let user = users.get(&d.user_id).cloned().unwrap_or_default();
        device_view(d, user, &req)
    })))
}

async fn find(ctx: &Ctx, id: &str) -> ApiResult<DeviceRow> {
    ctx.state
        .store
        .device_by_id(ctx.tenant_id(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))
}

/// One device, with its posture.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Device), (status = 404, body = ErrorBody)))]
pub async fn show(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Device>> {
    ctx.target(format!("device:{id}"));
    ctx.authorize(Permission::DevicesRead, ctx.tenant_target())?;
    let d = find(&ctx, &id).await?;
    let users = user_names(&ctx).await?;
    let req = requirements(&ctx.state, ctx.tenant_id()).await?;
    let user = users.get(&d.user_id).cloned().unwrap_or_default();
    Ok(Json(device_view(d, user, &req)))
}

/// Revoke a device: it can no longer connect, renew or report, at once.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Device), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Device>> {
    ctx.target(format!("device:{id}"));
    ctx.authorize(Permission::DevicesManage, ctx.tenant_target())?;
    let d = find(&ctx, &id).await?;
    if !ctx.state.store.revoke_device(ctx.tenant_id(), &d.id, now_ms()).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("device {id} is already revoked"),
        ));
    }
    let d = find(&ctx, &id).await?;
    let users = user_names(&ctx).await?;
    let req = requirements(&ctx.state, ctx.tenant_id()).await?;
    let user = users.get(&d.user_id).cloned().unwrap_or_default();
    Ok(Json(device_view(d, user, &req)))
}

/// What the tenant requires of devices.
#[utoipa::path(get, path = "/api/v1/posture-requirements", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = PostureRequirements)))]
pub async fn get_requirements(ctx: Ctx) -> ApiResult<Json<PostureRequirements>> {
    ctx.target("posture-requirements");
    ctx.authorize(Permission::SettingsRead, ctx.tenant_target())?;
    Ok(Json(requirements(&ctx.state, ctx.tenant_id()).await?))
}

/// Set what the tenant requires of devices. Every device is re-checked at once against its last report.
#[utoipa::path(put, path = "/api/v1/posture-requirements", tag = "devices", request_body = PostureRequirements,
    security(("bearer" = [])), responses((status = 200, body = PostureRequirements), (status = 400, body = ErrorBody)))]
pub async fn set_requirements(
    ctx: Ctx,
    ApiJson(req): ApiJson<PostureRequirements>,
) -> ApiResult<Json<PostureRequirements>> {
    ctx.target("posture-requirements");
    ctx.authorize(Permission::SettingsManage, ctx.tenant_target())?;
    let json = serde_json::to_string(&req).map_err(|_| ApiError::internal())?;
    ctx.state.store.set_posture_requirements(ctx.tenant_id(), &json).await?;
    // Re-evaluate stored postures now, so compliance and the policy epoch follow at once.
    let store = &ctx.state.store;
    for d in store.all_devices(ctx.tenant_id()).await? {
        let compliant = req.is_met_by(&posture_of(&d));
        if compliant != d.compliant {
            store.set_device_compliance(ctx.tenant_id(), &d.id, compliant).await?;
        }
    }
    Ok(Json(req))
}
