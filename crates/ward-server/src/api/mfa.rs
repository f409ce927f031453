//! Multi-factor authentication of administrator accounts: enrolling a TOTP
//! authenticator for oneself (with recovery codes), turning it off, and an
//! account manager's reset of another account's MFA (for a lost device).

use axum::http::StatusCode;
use axum::Json;
use ward_api::{Account, ErrorBody, MfaCode, RecoveryCodes, TotpEnrollment};
use ward_core::{ErrorCode, Permission, Target};
use ward_store::AccountRow;

use crate::auth::{login, mfa, totp};
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::now_ms;

fn own_target(ctx: &Ctx) -> ApiResult<()> {
    ctx.target(format!("account:{}", ctx.principal.account.name));
    ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)
}

fn too_long(code: &str) -> ApiResult<()> {
    if code.len() > 64 {
        return Err(ApiError::invalid("the code is too long"));
    }
    Ok(())
}

/// Start enrolling a TOTP authenticator for the signed-in account: returns
/// the secret, its `otpauth://` URI and that URI as a QR code (SVG). Starting
/// again replaces a secret not yet confirmed.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "mfa", security(("bearer" = [])),
    responses((status = 201, body = TotpEnrollment), (status = 409, description = "MFA is already on", body = ErrorBody)))]
pub async fn enroll(ctx: Ctx) -> ApiResult<(StatusCode, Json<TotpEnrollment>)> {
    own_target(&ctx)?;
    let me = &ctx.principal.account;
    let already_on = || {
        ApiError::new(
            ErrorCode::Conflict,
            "MFA is already on for this account; turn it off first to enrol another authenticator",
        )
    };
    if me.mfa_enabled {
        return Err(already_on());
    }
    let secret = totp::new_secret();
    let sealed = mfa::seal(&ctx.state, ctx.tenant_id(), &me.id, &secret)?;
    if !ctx
        .state
        .store
        .start_totp(ctx.tenant_id(), &me.id, &sealed, now_ms())
        .await?
    {
        return Err(already_on());
    }
    let otpauth_uri = totp::otpauth_uri(&secret, &me.name, &ctx.principal.tenant.name)?;
    let qr_svg = totp::qr_svg(&otpauth_uri)?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollment {
            secret: totp::base32(&secret)?,
            otpauth_uri,
            qr_svg,
        }),
    ))
}

/// Confirm the enrolment with a code the authenticator shows: MFA is on from
/// now, and the answer holds ten one-time recovery codes, shown only this once.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "mfa", request_body = MfaCode, security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = 400, body = ErrorBody), (status = 409, description = "No enrolment is pending", body = ErrorBody)))]
pub async fn confirm(ctx: Ctx, ApiJson(req): ApiJson<MfaCode>) -> ApiResult<Json<RecoveryCodes>> {
    own_target(&ctx)?;
    too_long(&req.code)?;
    let me = &ctx.principal.account;
    let store = &ctx.state.store;
    let nothing_pending = || {
        ApiError::new(
            ErrorCode::Conflict,
            "no MFA enrolment is pending for this account; start one first",
        )
    };
    let row = store
        .totp(ctx.tenant_id(), &me.id)
        .await?
        .filter(|r| r.enabled_at.is_none())
        .ok_or_else(nothing_pending)?;
    let secret = mfa::open(&ctx.state, ctx.tenant_id(), &me.id, &row.sealed_secret)?;
    let Some(step) = totp::verify(&secret, &req.code, mfa::unix_secs())? else {
        ctx.detail("code did not match");
        return Err(ApiError::invalid(
            "the code does not match; check that the device's clock is right and send the code it shows now",
        ));
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().filter_map(|c| totp::recovery_hash(c)).collect();
    let step = i64::try_from(step).map_err(|_| ApiError::internal())?;
    if !store
        .confirm_totp(ctx.tenant_id(), &me.id, step, &hashes, now_ms())
        .await?
    {
        return Err(nothing_pending());
    }
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

/// Turn MFA off for the signed-in account, with a current TOTP code or a
/// recovery code. Refused while the tenant requires MFA of its administrators.
#[utoipa::path(delete, path = "/api/v1/me/mfa/totp", tag = "mfa", request_body = MfaCode, security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "MFA is not on", body = ErrorBody)))]
pub async fn disable(ctx: Ctx, ApiJson(req): ApiJson<MfaCode>) -> ApiResult<StatusCode> {
    own_target(&ctx)?;
    too_long(&req.code)?;
    let me = &ctx.principal.account;
    if !me.mfa_enabled {
        return Err(ApiError::new(ErrorCode::Conflict, "MFA is not on for this account"));
    }
    if ctx.principal.tenant.require_admin_mfa {
        ctx.detail("the tenant requires MFA");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the tenant requires MFA for its administrators, so it cannot be turned off; \
             for a lost device, an account manager can reset it",
        ));
    }
    let Some(accepted) = mfa::use_code(&ctx.state, me, req.code.trim(), mfa::unix_secs()).await? else {
        // Guessing through a stolen session counts like guessing at sign-in.
        login::count_account_failure(&ctx.state, me, "wrong or reused one-time code", ctx.audit(), now_ms()).await?;
        return Err(ApiError::invalid("the code is wrong or was already used"));
    };
    ctx.detail(accepted.describe());
    ctx.state.store.remove_totp(ctx.tenant_id(), &me.id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove another account's MFA (for a lost device): its secret and recovery
/// codes are deleted and its sessions end; it signs in with its password
/// alone and can enrol again.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/mfa/reset", tag = "mfa", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Account), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Account>> {
    ctx.target(format!("account:{name}"));
    ctx.authorize(Permission::AccountsManage, ctx.tenant_target())?;
    let a = ctx
        .state
        .store
        .account_by_name(ctx.tenant_id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {name}")))?;
    ctx.authorize(
        Permission::AccountsManage,
        Target::Account {
            tenant_id: ctx.tenant_id(),
            account_id: &a.id,
            role: a.role,
        },
    )?;
    let had = ctx.state.store.remove_totp(ctx.tenant_id(), &a.id, true).await?;
    ctx.detail(if had { "MFA removed" } else { "the account had no MFA" });
    Ok(Json(super::accounts::view(AccountRow {
        mfa_enabled: false,
        ..a
    })))
}
