use axum::http::StatusCode;
use axum::Json;
use ward_api::{ApiKey, ApiKeyCreated, CreateApiKey, ErrorBody, Page, PageQuery};
use ward_core::time::rfc3339;
use ward_core::{Name, Permission, Target};
use ward_store::{ApiKeyRow, NewApiKey};

use super::{opt_time, page, page_request};
use crate::auth::token;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::now_ms;

/// Ten years: the longest lifetime a key can be given.
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

fn view(k: ApiKeyRow, account: &str) -> ApiKey {
    ApiKey {
        id: k.id,
        name: k.name,
        account: account.to_owned(),
        role_cap: k.role_cap,
        created_at: rfc3339(k.created_at),
        expires_at: opt_time(k.expires_at),
        last_used_at: opt_time(k.last_used_at),
        revoked_at: opt_time(k.revoked_at),
    }
}

/// The caller's API keys, revoked ones included.
#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<ApiKey>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<Page<ApiKey>>> {
    ctx.target(format!("account:{}", ctx.principal.account.name));
    ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)?;
    let me = &ctx.principal.account;
    let p = ctx
        .state
        .store
        .list_api_keys(ctx.tenant_id(), &me.id, &page_request(&q))
        .await?;
    Ok(Json(page(p, |k| view(k, &me.name))))
}

/// Create an API key for the caller's account. The token is shown only in this response.
#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", request_body = CreateApiKey, security(("bearer" = [])),
    responses((status = 201, body = ApiKeyCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(ctx: Ctx, ApiJson(req): ApiJson<CreateApiKey>) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    ctx.target(format!("apikey:{}", req.name));
    ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)?;
    let name = Name::parse(&req.name)?;
    let now = now_ms();
    let expires_at = match req.expires_in_secs {
        Some(0) => return Err(ApiError::invalid("expires_in_secs must be positive")),
        Some(s) if s > MAX_LIFETIME_SECS => return Err(ApiError::invalid("an API key lives at most ten years")),
        Some(s) => Some(now + i64::try_from(s).unwrap_or(0) * 1000),
        None => None,
    };
    let secret = token::new_api_key_secret();
    let hash = token::hash(&secret);
    let me = &ctx.principal.account;
    let new = NewApiKey {
        account_id: &me.id,
        name: name.as_str(),
        role_cap: req.role_cap,
        secret_hash: &hash,
        expires_at,
    };
    let k = ctx.state.store.create_api_key(ctx.tenant_id(), new, now).await?;
    let token = token::api_key_token(&k.id, &secret);
    ctx.detail(format!("key {}", k.id));
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key: view(k, &me.name),
            token,
        }),
    ))
}

/// Revoke one of the caller's API keys; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("apikey:{id}"));
    ctx.authorize(Permission::AccountsRead, Target::OwnCredentials)?;
    let me = &ctx.principal.account;
    if ctx
        .state
        .store
        .revoke_api_key(ctx.tenant_id(), &me.id, &id, now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("live API key {id}")))
    }
}
