//! The tenant's identity sources: OpenID Connect providers its end users
//! sign in to the portal with (`portal::oidc`). The client secret is sealed
//! under the master key and never returned.

use axum::http::StatusCode;
use axum::Json;
use ward_api::{CreateIdentitySource, ErrorBody, IdentitySource};
use ward_core::time::rfc3339;
use ward_core::{Name, Permission};
use ward_store::{IdentitySourceRow, NewIdentitySource};

use crate::auth::oidc;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::{now_ms, AppState};

/// Where providers send browsers back after a sign-in.
pub fn redirect_uri(state: &AppState) -> String {
    format!("{}/portal/oidc/callback", state.config.url())
}

/// What the client secret of source `id` is sealed to.
fn secret_context(tenant_id: &str, id: &str) -> Vec<u8> {
    format!("ward identity source secret\0{tenant_id}\0{id}").into_bytes()
}

/// Opens a source's client secret.
pub fn client_secret(state: &AppState, s: &IdentitySourceRow) -> ApiResult<String> {
    let plain = state
        .master_key
        .open(&s.sealed_client_secret, &secret_context(&s.tenant_id, &s.id))
        .map_err(|e| {
            tracing::error!(source = %s.id, error = %e, "cannot open a client secret: is this the master key it was sealed with?");
            ApiError::internal()
        })?;
    String::from_utf8(plain.to_vec()).map_err(|_| ApiError::internal())
}

fn view(state: &AppState, s: IdentitySourceRow) -> IdentitySource {
    IdentitySource {
        redirect_uri: redirect_uri(state),
        id: s.id,
        name: s.name,
        kind: s.kind,
        issuer: s.issuer,
        client_id: s.client_id,
        scopes: s.scopes,
        username_claim: s.username_claim,
        groups_claim: s.groups_claim,
        created_at: rfc3339(s.created_at),
    }
}

/// A claim name: 1 to 64 printable characters without spaces.
fn claim_name(field: &str, v: Option<String>, default: &str) -> ApiResult<String> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(format!(
            "{field}: 1 to 64 printable characters without spaces"
        )));
    }
    Ok(v)
}

/// The tenant's identity sources.
#[utoipa::path(get, path = "/api/v1/identity-sources", tag = "identity-sources", security(("bearer" = [])),
    responses((status = 200, body = Vec<IdentitySource>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx) -> ApiResult<Json<Vec<IdentitySource>>> {
    ctx.target("identity-sources");
    ctx.authorize(Permission::SettingsRead, ctx.tenant_target())?;
    let rows = ctx.state.store.identity_sources(ctx.tenant_id()).await?;
    Ok(Json(rows.into_iter().map(|s| view(&ctx.state, s)).collect()))
}

/// Add an OpenID Connect identity source. The issuer's discovery document
/// is fetched first and must name exactly the issuer given.
#[utoipa::path(post, path = "/api/v1/identity-sources", tag = "identity-sources", request_body = CreateIdentitySource,
    security(("bearer" = [])),
    responses((status = 201, body = IdentitySource), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateIdentitySource>,
) -> ApiResult<(StatusCode, Json<IdentitySource>)> {
    ctx.target(format!("identity-source:{}", req.name));
    ctx.authorize(Permission::SettingsManage, ctx.tenant_target())?;
    let name = Name::parse(&req.name)?;
    if !oidc::issuer_allowed(&req.issuer) {
        return Err(ApiError::invalid(
            "issuer: an https:// URL (http:// only on a loopback address), without query or fragment",
        ));
    }
    if req.client_id.is_empty() || req.client_id.len() > 256 {
        return Err(ApiError::invalid("client_id: 1 to 256 characters"));
    }
    if req.client_secret.is_empty() || req.client_secret.len() > 1024 {
        return Err(ApiError::invalid("client_secret: 1 to 1024 characters"));
    }
    let scopes = req.scopes.unwrap_or_else(|| "openid profile email".into());
    let scopes = scopes.split_whitespace().collect::<Vec<_>>().join(" ");
    if !scopes.split(' ').any(|s| s == "openid") || scopes.len() > 512 {
        return Err(ApiError::invalid("scopes: must include openid"));
    }
    let username_claim = claim_name("username_claim", req.username_claim, "preferred_username")?;
    let groups_claim = claim_name("groups_claim", req.groups_claim, "groups")?;
    oidc::discover(&req.issuer)
        .await
        .map_err(|e| ApiError::invalid(format!("issuer: {e}")))?;
    let id = ward_store::new_id("idp");
    let sealed = ctx
        .state
        .master_key
        .seal(req.client_secret.as_bytes(), &secret_context(ctx.tenant_id(), &id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot seal a client secret");
            ApiError::internal()
        })?;
    let new = NewIdentitySource {
        name: name.as_str().to_owned(),
        issuer: req.issuer,
        client_id: req.client_id,
        sealed_client_secret: sealed,
        scopes,
        username_claim,
        groups_claim,
    };
    let row = ctx
        .state
        .store
        .create_identity_source(&id, ctx.tenant_id(), &new, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&ctx.state, row))))
}

/// Delete an identity source. Its users and groups stay, unlinked: they can
/// no longer sign in through it.
#[utoipa::path(delete, path = "/api/v1/identity-sources/{name}", tag = "identity-sources", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("identity-source:{name}"));
    ctx.authorize(Permission::SettingsManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let s = store
        .identity_source_by_name(ctx.tenant_id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("identity source {name}")))?;
    store.delete_identity_source(ctx.tenant_id(), &s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
