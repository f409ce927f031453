use axum::http::StatusCode;
use axum::Json;
use ward_api::{ErrorBody, LoginRequest, LoginResponse, WhoAmI};
use ward_core::{ErrorCode, Permission, Target};

use crate::auth::Credential;
use crate::ctx::{Anonymous, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Sign in with tenant, user name and password; returns a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, description = "Locked out", body = ErrorBody)))]
pub async fn login(
    axum::extract::State(state): axum::extract::State<AppState>,
    anon: Anonymous,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    crate::auth::login::login(&state, anon.peer, &anon.audit, req)
        .await
        .map(Json)
}

/// End the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(ctx: Ctx) -> ApiResult<StatusCode> {
    ctx.target(format!("account:{}", ctx.principal.account.name));
    ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)?;
    match &ctx.principal.credential {
        Credential::Session { id } => {
            ctx.state.store.delete_session(ctx.tenant_id(), id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Credential::ApiKey { .. } => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "an API key has no session to end; revoke the key instead",
        )),
    }
}

/// Who the credential belongs to, and what it may do.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(ctx: Ctx) -> Json<WhoAmI> {
    Json(ctx.principal.whoami())
}
