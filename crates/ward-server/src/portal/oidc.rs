//! Signing in to the portal through an OpenID Connect identity source: the
//! authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! `start` keeps the state's hash, the nonce and the sealed PKCE verifier
//! in `oidc_logins` (10 minutes, used once) and binds the state to the
//! browser with a `SameSite=Lax` cookie (the provider's redirect back is a
//! cross-site navigation); `callback` takes the state once, exchanges the
//! code, verifies the ID token (`auth::oidc`), maps its claims to a user
//! linked to the source and its groups, and starts the portal session as
//! the password sign-in does (`start_session`). Any failure signs in nobody.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ward_core::{Name, TenantState};
use ward_store::{IdentitySourceRow, OidcLoginRow, StoreError, UserRow};

use super::{https, page, portal_next, start_session, with_status};
use crate::api::identity_sources::{client_secret, redirect_uri};
use crate::auth::{oidc, token};
use crate::console::session::cookie;
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

/// How long a sign-in may take at the provider.
const LOGIN_TTL_MS: i64 = 600_000;

fn state_cookie(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-ward_portal_oidc"
    } else {
        "ward_portal_oidc"
    }
}

fn lax_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("ward_invalid=; Max-Age=0"))
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn verifier_context(login_id: &str) -> Vec<u8> {
    format!("ward oidc pkce verifier\0{login_id}").into_bytes()
}

/// A refused sign-in: a page saying why, with the way back.
fn refused(state: &AppState, status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.error role="alert" { (message) }
        p { a href="/portal/login" { "Back to sign-in" } }
    };
    let mut r = with_status(page("Sign-in refused", None, body), status);
    r.headers_mut()
        .append(header::SET_COOKIE, lax_cookie(state_cookie(state), "", 0));
    r
}

/// The identity sources of the organisation named, as (id, name, kind).
pub(super) async fn sources_of(state: &AppState, tenant: &str) -> Vec<(String, String, String)> {
    let Ok(Some(t)) = state.store.tenant_by_name(tenant).await else {
        return Vec::new();
    };
    match state.store.identity_sources(&t.id).await {
        Ok(s) => s.into_iter().map(|s| (s.id, s.name, s.kind)).collect(),
        Err(_) => Vec::new(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /portal/oidc/{id}/start`: off to the provider.
pub(super) async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    let source = match state.store.identity_source_by_id(&id).await {
        Ok(Some(s)) if s.kind == "oidc" => s,
        Ok(_) => return refused(&state, StatusCode::NOT_FOUND, "No such identity source."),
        Err(e) => return store_error(&state, e),
    };
    let d = match oidc::discover(&source.issuer).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(source = %source.id, error = %e, "OIDC discovery failed");
            return refused(
                &state,
                StatusCode::BAD_GATEWAY,
                "Your organisation's identity provider cannot be reached. Try again later.",
            );
        }
    };
    let csrf_state = random();
    let nonce = random();
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let login_id = token::hash(&csrf_state);
    let sealed_verifier = match state.master_key.seal(verifier.as_bytes(), &verifier_context(&login_id)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot seal a PKCE verifier");
            return refused(&state, StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
        }
    };
    let now = now_ms();
    let _ = state.store.delete_expired_oidc_logins(now).await;
    let login = OidcLoginRow {
        id: login_id,
        source_id: source.id.clone(),
        nonce: nonce.clone(),
        sealed_verifier,
        next: portal_next(q.next.as_deref()).to_owned(),
        created_at: now,
        expires_at: now + LOGIN_TTL_MS,
    };
    if let Err(e) = state.store.create_oidc_login(&login).await {
        return store_error(&state, e);
    }
    let Ok(mut url) = reqwest::Url::parse(&d.authorization_endpoint) else {
        return refused(
            &state,
            StatusCode::BAD_GATEWAY,
            "The identity provider's authorization endpoint is not a URL.",
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &source.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("scope", &source.scopes)
        .append_pair("state", &csrf_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut r = Redirect::to(url.as_str()).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        lax_cookie(state_cookie(&state), &csrf_state, LOGIN_TTL_MS / 1000),
    );
    r
}

fn store_error(state: &AppState, e: StoreError) -> Response {
    let e = ApiError::from(e);
    refused(state, e.status(), &e.message)
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /portal/oidc/callback`: back from the provider.
pub(super) async fn callback(
    State(state): State<AppState>,
    anon: crate::ctx::Anonymous,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(csrf_state) = q.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 128) else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in has no state: start again.",
        );
    };
    let login = match state.store.take_oidc_login(&token::hash(csrf_state), now_ms()).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return refused(
                &state,
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown, already used or expired: start again.",
            )
        }
        Err(e) => return store_error(&state, e),
    };
    let bound = cookie(&headers, state_cookie(&state))
        .is_some_and(|c| token::hashes_equal(&token::hash(c), &token::hash(csrf_state)));
    if !bound {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser: start again here.",
        );
    }
    if let Some(err) = &q.error {
        let why = q.error_description.as_deref().unwrap_or(err);
        return refused(
            &state,
            StatusCode::UNAUTHORIZED,
            &format!("Your organisation's identity provider refused the sign-in: {why}"),
        );
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "The provider sent no code: start again.",
        );
    };
    let source = match state.store.identity_source_by_id(&login.source_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return refused(&state, StatusCode::BAD_REQUEST, "The identity source no longer exists."),
        Err(e) => return store_error(&state, e),
    };
    anon.audit.update(|n| {
        n.tenant_id = Some(source.tenant_id.clone());
        n.target = Some(format!("idp:{}", source.name));
    });
    let claims = match verified_claims(&state, &source, &login, code).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(source = %source.id, error = %e, "OIDC sign-in refused");
            anon.audit.update(|n| n.detail = Some(e.to_string()));
            return refused(
                &state,
                StatusCode::UNAUTHORIZED,
                &format!("The identity provider's answer was refused: {e}."),
            );
        }
    };
    let (tenant, user) = match map_user(&state, &source, &claims).await {
        Ok(ok) => ok,
        Err((status, message)) => {
            anon.audit.update(|n| n.detail = Some(message.clone()));
            tracing::warn!(source = %source.id, %message, "OIDC sign-in refused");
            return refused(&state, status, &message);
        }
    };
    tracing::info!(tenant = %tenant.name, user = %user.name, source = %source.name, "portal sign-in through OIDC");
    state.metrics.login("success");
    anon.audit.update(|n| {
        n.user = Some((user.id.clone(), user.name.clone()));
        n.target = Some(format!("user:{}", user.name));
        n.detail = Some(format!("through identity source {}", source.name));
    });
    let mut r = start_session(&state, &tenant, &user, &login.next).await;
    r.headers_mut()
        .append(header::SET_COOKIE, lax_cookie(state_cookie(&state), "", 0));
    r
}

/// The code exchanged and the ID token verified: its claims.
async fn verified_claims(
    state: &AppState,
    source: &IdentitySourceRow,
    login: &OidcLoginRow,
    code: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let verifier = state
        .master_key
        .open(&login.sealed_verifier, &verifier_context(&login.id))
        .map_err(|_| "the sign-in's verifier cannot be opened".to_owned())?;
    let verifier = String::from_utf8(verifier.to_vec()).map_err(|_| "bad verifier".to_owned())?;
    let secret = client_secret(state, source).map_err(|e| e.message)?;
    let d = oidc::discover(&source.issuer).await?;
    let id_token = oidc::exchange_code(&d, &source.client_id, &secret, code, &redirect_uri(state), &verifier).await?;
    let jwks = oidc::fetch_jwks(&d).await?;
    let want = oidc::Expect {
        issuer: &source.issuer,
        client_id: &source.client_id,
        nonce: &login.nonce,
        now: now_ms() / 1000,
    };
    oidc::verify_id_token(&id_token, &jwks, &want)
}

/// The user the claims name: the one linked to (source, sub), or a new one
/// linked to it; its groups follow the groups claim.
async fn map_user(
    state: &AppState,
    source: &IdentitySourceRow,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(ward_store::TenantRow, UserRow), (StatusCode, String)> {
    let internal = |e: StoreError| {
        let e = ApiError::from(e);
        (e.status(), e.message)
    };
    let store = &state.store;
    let tenant = store
        .tenant_by_id(&source.tenant_id)
        .await
        .map_err(internal)?
        .ok_or((StatusCode::BAD_REQUEST, "No such organisation.".to_owned()))?;
    if tenant.state != TenantState::Active {
        return Err((
            StatusCode::FORBIDDEN,
            "Your organisation is suspended; contact the operator.".into(),
        ));
    }
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let raw_name = claims
        .get(&source.username_claim)
        .and_then(|v| v.as_str())
        .unwrap_or(&sub);
    let name = Name::parse(raw_name).map_err(|_| {
        (
            StatusCode::FORBIDDEN,
            format!(
                "The user name {raw_name:?} from the {} claim is not a valid Ward name (lower-case letters, digits and dashes); ask your administrator.",
                source.username_claim
            ),
        )
    })?;
    let now = now_ms();
    let user = match store
        .user_by_subject(&tenant.id, &source.id, &sub)
        .await
        .map_err(internal)?
    {
        Some(u) => u,
        None => match store
            .create_linked_user(&tenant.id, name.as_str(), &source.id, &sub, now)
            .await
        {
            Ok(u) => u,
            Err(StoreError::Conflict(_)) => {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "A user named {} already exists in this organisation and does not come from {}; ask your administrator.",
                        name.as_str(),
                        source.name
                    ),
                ))
            }
            Err(e) => return Err(internal(e)),
        },
    };
    if user.disabled {
        return Err((StatusCode::FORBIDDEN, "Your account is disabled.".into()));
    }
    let groups: Vec<String> = oidc::claim_strings(claims.get(&source.groups_claim))
        .into_iter()
        .filter_map(|g| Name::parse(&g).ok().map(|n| n.as_str().to_owned()))
        .collect();
    store
        .sync_source_groups(&tenant.id, &source.id, &user.id, &groups, now)
        .await
        .map_err(internal)?;
    // Attributes follow the claims: `email`, and the source's attribute claims.
    let mut attributes = std::collections::BTreeMap::new();
    let extra = crate::api::identity_sources::oidc_extra(source);
    for claim in std::iter::once("email").chain(extra.attribute_claims.iter().map(String::as_str)) {
        let value = match claims.get(claim) {
            Some(serde_json::Value::String(v)) => v.trim().to_owned(),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        if ward_core::attrs::check_key(claim).is_ok() && ward_core::attrs::check_value(claim, &value).is_ok() {
            attributes.insert(claim.to_owned(), value);
        }
    }
    store
        .set_user_attributes(&tenant.id, &user.id, &attributes)
        .await
        .map_err(internal)?;
    store
        .record_user_login_success(&tenant.id, &user.id, now)
        .await
        .map_err(internal)?;
    Ok((tenant, user))
}
