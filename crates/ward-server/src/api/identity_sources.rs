//! The tenant's identity sources: OpenID Connect providers (`portal::oidc`)
//! and LDAP / Active Directory directories (`portal::ldap`, `directory`)
//! its end users sign in to the portal with. The client secret and the
//! bind password are sealed under the master key and never returned.

use axum::http::StatusCode;
use axum::Json;
use ward_api::{CreateIdentitySource, CreateLdapSource, ErrorBody, IdentitySource, LdapSource, SyncResult};
use ward_core::time::rfc3339;
use ward_core::{Name, Permission};
use ward_store::{IdentitySourceRow, NewIdentitySource};

use crate::auth::ldap::{self, LdapConfig};
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

/// Opens a source's client secret (an LDAP source's bind password).
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

/// An OIDC source's extra settings, kept as JSON in `config`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OidcExtra {
    #[serde(default)]
    pub attribute_claims: Vec<String>,
}

/// An OIDC source's extra settings ('' or bad JSON: none).
pub fn oidc_extra(s: &IdentitySourceRow) -> OidcExtra {
    serde_json::from_str(&s.config).unwrap_or_default()
}

/// An LDAP source's settings; an error when the stored JSON does not parse
/// (changed behind Ward's back).
pub fn ldap_config(s: &IdentitySourceRow) -> ApiResult<LdapConfig> {
    serde_json::from_str(&s.config).map_err(|e| {
        tracing::error!(source = %s.id, error = %e, "stored LDAP settings are invalid");
        ApiError::internal()
    })
}

fn ldap_view(s: &IdentitySourceRow) -> Option<LdapSource> {
    let c: LdapConfig = serde_json::from_str(&s.config).ok()?;
    Some(LdapSource {
        url: c.url,
        has_ca: c.ca_pem.is_some(),
        bind_dn: c.bind_dn,
        user_base: c.user_base,
        user_filter: c.user_filter,
        username_attribute: c.username_attribute,
        email_attribute: c.email_attribute,
        display_attribute: c.display_attribute,
        id_attribute: c.id_attribute,
        group_base: c.group_base,
        group_membership: c.group_membership,
        group_name_attribute: c.group_name_attribute,
        sync_attributes: c.sync_attributes,
        sync_interval_secs: c.sync_interval_secs,
        last_sync_at: s.last_sync_at.map(rfc3339),
        last_sync_ok: s.last_sync_ok,
        last_sync_result: s.last_sync_result.clone(),
    })
}

fn view(state: &AppState, s: IdentitySourceRow) -> IdentitySource {
    let ldap = if s.kind == "ldap" { ldap_view(&s) } else { None };
    let attribute_claims = if s.kind == "oidc" {
        oidc_extra(&s).attribute_claims
    } else {
        Vec::new()
    };
    IdentitySource {
        attribute_claims,
        ldap,
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

/// An LDAP attribute name: 1 to 64 letters, digits, `-` or `;`, or an OID.
fn ldap_attribute(field: &str, v: Option<String>, default: &str) -> ApiResult<String> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err(ApiError::invalid(format!("{field}: an LDAP attribute name")));
    }
    Ok(v)
}

/// A DN as given: 1 to 1024 characters without control characters.
fn dn(field: &str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) || !v.contains('=') {
        return Err(ApiError::invalid(format!(
            "{field}: a distinguished name, like ou=people,dc=corp,dc=example"
        )));
    }
    Ok(v.to_owned())
}

/// `15m`, `1h`, `0`: seconds between scheduled syncs (0: never), at least a minute.
pub fn sync_interval(v: Option<&str>) -> ApiResult<u64> {
    let v = v.unwrap_or("15m").trim();
    if v == "0" {
        return Ok(0);
    }
    let d = humantime::parse_duration(v).map_err(|_| ApiError::invalid("sync_interval: like 15m or 1h, or 0"))?;
    if d.as_secs() < 60 || d.as_secs() > 7 * 86_400 {
        return Err(ApiError::invalid(
            "sync_interval: from 1m to 7d, or 0 for on demand only",
        ));
    }
    Ok(d.as_secs())
}

/// The checked settings of a new LDAP source.
fn ldap_settings(req: CreateLdapSource) -> ApiResult<(LdapConfig, String)> {
    ldap::check_url(&req.url).map_err(ApiError::invalid)?;
    if let Some(pem) = &req.ca_pem {
        ward_pki::ldap_client_config(Some(pem)).map_err(|e| ApiError::invalid(format!("ca_pem: {e}")))?;
    }
    let user_filter = req.user_filter.unwrap_or_else(|| "(uid={username})".into());
    ldap::check_user_filter(&user_filter).map_err(ApiError::invalid)?;
    if req.bind_password.is_empty() || req.bind_password.len() > 1024 {
        return Err(ApiError::invalid("bind_password: 1 to 1024 characters"));
    }
    let group_membership = req.group_membership.unwrap_or_else(|| "member".into());
    if !["member", "uniqueMember", "memberOf"].contains(&group_membership.as_str()) {
        return Err(ApiError::invalid("group_membership: member, uniqueMember or memberOf"));
    }
    if req.sync_attributes.len() > 16 {
        return Err(ApiError::invalid("sync_attributes: at most 16"));
    }
    let mut sync_attributes = Vec::new();
    for spec in req.sync_attributes {
        let (key, attr) = ldap::sync_attribute(&spec);
        ldap_attribute("sync_attributes", Some(attr.to_owned()), "")?;
        ward_core::attrs::check_key(&key).map_err(|e| ApiError::invalid(e.0))?;
        if key == ward_core::attrs::EMAIL_DOMAIN {
            return Err(ApiError::invalid("sync_attributes: email_domain follows from email"));
        }
        sync_attributes.push(if spec.contains('=') {
            format!("{key}={attr}")
        } else {
            attr.to_owned()
        });
    }
    let cfg = LdapConfig {
        url: req.url,
        ca_pem: req.ca_pem,
        bind_dn: dn("bind_dn", &req.bind_dn)?,
        user_base: dn("user_base", &req.user_base)?,
        user_filter,
        username_attribute: ldap_attribute("username_attribute", req.username_attribute, "uid")?,
        email_attribute: ldap_attribute("email_attribute", req.email_attribute, "mail")?,
        display_attribute: ldap_attribute("display_attribute", req.display_attribute, "cn")?,
        id_attribute: ldap_attribute("id_attribute", req.id_attribute, "entryUUID")?,
        group_base: req.group_base.as_deref().map(|g| dn("group_base", g)).transpose()?,
        group_membership,
        group_name_attribute: ldap_attribute("group_name_attribute", req.group_name_attribute, "cn")?,
        sync_attributes,
        sync_interval_secs: sync_interval(req.sync_interval.as_deref())?,
    };
    Ok((cfg, req.bind_password))
}

async fn find(ctx: &Ctx, name: &str) -> ApiResult<IdentitySourceRow> {
    ctx.state
        .store
        .identity_source_by_name(ctx.tenant_id(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("identity source {name}")))
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
    let kind = req.kind.clone().unwrap_or_else(|| {
        if req.ldap.is_some() {
            "ldap".into()
        } else {
            "oidc".into()
        }
    });
    if kind == "ldap" {
        return create_ldap(ctx, name, req).await;
    }
    if kind != "oidc" {
        return Err(ApiError::invalid("kind: oidc or ldap"));
    }
    if req.ldap.is_some() {
        return Err(ApiError::invalid("ldap: only for kind ldap"));
    }
    let mut attribute_claims = Vec::new();
    for c in &req.attribute_claims {
        attribute_claims.push(claim_name("attribute_claims", Some(c.clone()), "")?);
        ward_core::attrs::check_key(c).map_err(|e| ApiError::invalid(e.0))?;
    }
    if attribute_claims.len() > 16 {
        return Err(ApiError::invalid("attribute_claims: at most 16"));
    }
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
    let config = if attribute_claims.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&OidcExtra { attribute_claims }).map_err(|_| ApiError::internal())?
    };
    let new = NewIdentitySource {
        kind: "oidc".into(),
        config,
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

async fn create_ldap(ctx: Ctx, name: Name, req: CreateIdentitySource) -> ApiResult<(StatusCode, Json<IdentitySource>)> {
    if !req.issuer.is_empty() || !req.client_id.is_empty() || !req.client_secret.is_empty() {
        return Err(ApiError::invalid(
            "issuer, client_id and client_secret are for kind oidc",
        ));
    }
    let Some(l) = req.ldap else {
        return Err(ApiError::invalid(
            "ldap: the directory's settings are needed for kind ldap",
        ));
    };
    let (cfg, password) = ldap_settings(l)?;
    let id = ward_store::new_id("idp");
    let sealed = ctx
        .state
        .master_key
        .seal(password.as_bytes(), &secret_context(ctx.tenant_id(), &id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot seal a bind password");
            ApiError::internal()
        })?;
    let new = NewIdentitySource {
        kind: "ldap".into(),
        config: serde_json::to_string(&cfg).map_err(|_| ApiError::internal())?,
        name: name.as_str().to_owned(),
        issuer: String::new(),
        client_id: String::new(),
        sealed_client_secret: sealed,
        scopes: String::new(),
        username_claim: String::new(),
        groups_claim: String::new(),
    };
    let row = ctx
        .state
        .store
        .create_identity_source(&id, ctx.tenant_id(), &new, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&ctx.state, row))))
}

/// One identity source.
#[utoipa::path(get, path = "/api/v1/identity-sources/{name}", tag = "identity-sources", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = IdentitySource), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<IdentitySource>> {
    ctx.target(format!("identity-source:{name}"));
    ctx.authorize(Permission::SettingsRead, ctx.tenant_target())?;
    let s = find(&ctx, &name).await?;
    Ok(Json(view(&ctx.state, s)))
}

/// Sync an LDAP source now: its users and their attributes and groups
/// follow the directory; users gone from it are disabled.
#[utoipa::path(post, path = "/api/v1/identity-sources/{name}/sync", tag = "identity-sources", params(("name" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = SyncResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn sync(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<SyncResult>> {
    ctx.target(format!("identity-source:{name}"));
    ctx.authorize(Permission::SettingsManage, ctx.tenant_target())?;
    let s = find(&ctx, &name).await?;
    if s.kind != "ldap" {
        return Err(ApiError::invalid(format!(
            "identity source {name} is not an LDAP directory"
        )));
    }
    let r = crate::directory::sync_source(&ctx.state, &s).await?;
    ctx.detail(format!(
        "seen {}, created {}, updated {}, disabled {}",
        r.users_seen, r.users_created, r.users_updated, r.users_disabled
    ));
    Ok(Json(r))
}

/// Delete an identity source. Its users and groups stay, unlinked: they can
/// no longer sign in through it.
#[utoipa::path(delete, path = "/api/v1/identity-sources/{name}", tag = "identity-sources", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("identity-source:{name}"));
    ctx.authorize(Permission::SettingsManage, ctx.tenant_target())?;
    let s = find(&ctx, &name).await?;
    ctx.state.store.delete_identity_source(ctx.tenant_id(), &s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
