//! Enrolment without a code, in the manner of a device authorisation grant
//! (RFC 8628): `ward agent enroll` asks (`POST /enroll/requests`) and gets a
//! secret handle and a short user code; the device's user signs in to the
//! portal and approves the code (`portal/`); the agent polls
//! (`POST /enroll/requests/poll`) and, once, receives an ordinary one-time
//! enrolment code, which it redeems at `POST /enroll` like any other.
//!
//! The request carries no identity: whoever approves it decides whose
//! device it becomes, and the portal shows the device's name and the
//! address it asked from before the user approves.

use axum::http::StatusCode;
use axum::Json;
use rand::Rng;
use ward_api::{CreateEnrollRequest, EnrollRequestCreated, EnrollRequestState, ErrorBody, PollEnrollRequest};
use ward_core::time::rfc3339;
use ward_core::ErrorCode;
use ward_store::{EnrollRequestRow, StoreError, TenantRow, UserRow};

use crate::auth::token;
use crate::ctx::Anonymous;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::{now_ms, AppState};

/// The agent's handle on its request.
const REQUEST_PREFIX: &str = "wer_";
/// How long a request waits for its user.
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// How often the agent is told to poll.
const POLL_INTERVAL_SECS: u64 = 2;
/// Pending requests one address may have at once.
const MAX_PENDING_PER_SOURCE: u64 = 5;
/// Pending requests in all.
const MAX_PENDING: u64 = 10_000;
/// How long the enrolment code made on approval stays valid.
const APPROVED_CODE_TTL_SECS: u64 = 15 * 60;
/// User codes: no vowels (no words), no look-alikes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn new_user_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let c: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &c[..4], &c[4..])
}

/// A user code as typed: case, spaces and the dash do not matter.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let c: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (c.len() == 8 && c.bytes().all(|b| ALPHABET.contains(&b))).then(|| format!("{}-{}", &c[..4], &c[4..]))
}

/// The key sealing a request's enrolment code until the agent collects it.
fn seal_context(request_id: &str) -> Vec<u8> {
    format!("ward enroll request {request_id}").into_bytes()
}

/// Ask to enrol this device without a code; the user approves in the portal.
#[utoipa::path(post, path = "/api/v1/enroll/requests", tag = "devices", request_body = CreateEnrollRequest,
    responses((status = 201, body = EnrollRequestCreated), (status = 400, body = ErrorBody),
    (status = 429, description = "Too many pending requests from this address", body = ErrorBody)))]
pub async fn create(
    axum::extract::State(state): axum::extract::State<AppState>,
    anon: Anonymous,
    ApiJson(req): ApiJson<CreateEnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollRequestCreated>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name: 1 to 64 printable characters"));
    }
    let store = &state.store;
    let now = now_ms();
    let source = anon.peer.to_string();
    if store.pending_enroll_requests(Some(&source), now).await? >= MAX_PENDING_PER_SOURCE
        || store.pending_enroll_requests(None, now).await? >= MAX_PENDING
    {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many enrolment requests are waiting; approve or let them expire, then try again",
        ));
    }
    let secret = token::new_api_key_secret();
    let expires_at = now + REQUEST_TTL_MS;
    let mut created = None;
    for _ in 0..5 {
        match store
            .create_enroll_request(&token::hash(&secret), &new_user_code(), name, &source, now, expires_at)
            .await
        {
            Ok(r) => {
                created = Some(r);
                break;
            }
            Err(StoreError::Conflict(_)) => continue, // that user code is taken: draw again
            Err(e) => return Err(e.into()),
        }
    }
    let row = created.ok_or_else(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(created_view(&state, &secret, row, expires_at)),
    ))
}

fn created_view(state: &AppState, secret: &str, row: EnrollRequestRow, expires_at: i64) -> EnrollRequestCreated {
    let base = state.config.url();
    let verify_url = format!("{base}/portal/activate");
    EnrollRequestCreated {
        request: format!("{REQUEST_PREFIX}{secret}"),
        verify_url_complete: format!("{verify_url}?code={}", row.user_code),
        user_code: row.user_code,
        verify_url,
        expires_at: rfc3339(expires_at),
        interval_secs: POLL_INTERVAL_SECS,
    }
}

/// An enrolled device asks to renew its user session (`ward agent login`):
/// the same flow as an enrolment without a code, but only the device's own
/// user may approve it, and approval renews the session (no new
/// certificate). The agent polls `POST /enroll/requests/poll`.
#[utoipa::path(post, path = "/api/v1/device/login", tag = "devices",
    responses((status = 201, body = EnrollRequestCreated), (status = 401, body = ErrorBody),
    (status = 429, description = "Too many pending requests from this address", body = ErrorBody)))]
pub async fn device_login(
    axum::extract::State(state): axum::extract::State<AppState>,
    anon: Anonymous,
    caller: crate::api::devices::DeviceCaller,
) -> ApiResult<(StatusCode, Json<EnrollRequestCreated>)> {
    let store = &state.store;
    let now = now_ms();
    let source = anon.peer.to_string();
    if store.pending_enroll_requests(Some(&source), now).await? >= MAX_PENDING_PER_SOURCE
        || store.pending_enroll_requests(None, now).await? >= MAX_PENDING
    {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many sign-in requests are waiting; approve or let them expire, then try again",
        ));
    }
    let secret = token::new_api_key_secret();
    let expires_at = now + REQUEST_TTL_MS;
    let mut created = None;
    for _ in 0..5 {
        match store
            .create_device_login_request(
                &token::hash(&secret),
                &new_user_code(),
                &caller.device,
                &source,
                now,
                expires_at,
            )
            .await
        {
            Ok(r) => {
                created = Some(r);
                break;
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let row = created.ok_or_else(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(created_view(&state, &secret, row, expires_at)),
    ))
}

/// Where a request stands; once approved, the enrolment code, once.
#[utoipa::path(post, path = "/api/v1/enroll/requests/poll", tag = "devices", request_body = PollEnrollRequest,
    responses((status = 200, body = EnrollRequestState), (status = 404, body = ErrorBody)))]
pub async fn poll(
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiJson(req): ApiJson<PollEnrollRequest>,
) -> ApiResult<Json<EnrollRequestState>> {
    let unknown = || ApiError::not_found("enrolment request");
    let secret = token::code_secret(&req.request, REQUEST_PREFIX).ok_or_else(unknown)?;
    let row = state
        .store
        .enroll_request_by_secret(&token::hash(secret))
        .await?
        .ok_or_else(unknown)?;
    let answer = |s: &str| {
        Json(EnrollRequestState {
            state: s.to_owned(),
            code: None,
            session_expires_at: None,
        })
    };
    match row.state.as_str() {
        "pending" if row.expires_at <= now_ms() => Ok(answer("expired")),
        // A device's sign-in: approving it renewed the session.
        "approved" if row.device_id.is_some() => {
            let (Some(tenant_id), Some(device_id)) = (&row.tenant_id, &row.device_id) else {
                return Ok(answer("approved"));
            };
            let device = state.store.device_by_id(tenant_id, device_id).await?;
            Ok(Json(EnrollRequestState {
                state: "approved".into(),
                code: None,
                session_expires_at: device.and_then(|d| d.session_expires_at).map(rfc3339),
            }))
        }
        "approved" => {
            let Some(sealed) = state.store.collect_enroll_request(&row.id).await? else {
                return Ok(answer("collected"));
            };
            let code = state.master_key.open(&sealed, &seal_context(&row.id)).map_err(|e| {
                tracing::error!(error = %e, "cannot open a sealed enrolment code");
                ApiError::internal()
            })?;
            let code = String::from_utf8(code.to_vec()).map_err(|_| ApiError::internal())?;
            Ok(Json(EnrollRequestState {
                state: "approved".into(),
                code: Some(code),
                session_expires_at: None,
            }))
        }
        other => Ok(answer(other)),
    }
}

/// The pending request a user typed the code of, for the portal to show.
pub async fn pending(state: &AppState, typed: &str) -> ApiResult<Option<EnrollRequestRow>> {
    let Some(code) = normalize_user_code(typed) else {
        return Ok(None);
    };
    Ok(state.store.pending_enroll_request(&code, now_ms()).await?)
}

/// Approves a pending request for `user`: makes the enrolment code the
/// agent will collect, sealed until then. False when the request was
/// decided or expired meanwhile.
pub async fn approve(
    state: &AppState,
    tenant: &TenantRow,
    user: &UserRow,
    request: &EnrollRequestRow,
) -> ApiResult<bool> {
    if user.disabled {
        return Err(ApiError::new(ErrorCode::Forbidden, "the user is disabled"));
    }
    if request.device_id.is_some() {
        if !is_own_device_request(tenant, user, request) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only the device's own user may sign it in",
            ));
        }
        let now = now_ms();
        return Ok(state
            .store
            .approve_device_login_request(
                &request.id,
                &tenant.id,
                &user.id,
                crate::api::devices::session_end(tenant, now),
                now,
            )
            .await?);
    }
    let (code, _) = crate::api::devices::issue_enroll_code(
        state,
        &tenant.id,
        &tenant.name,
        &user.id,
        &format!("portal:{}", user.name),
        APPROVED_CODE_TTL_SECS,
    )
    .await?;
    let sealed = state
        .master_key
        .seal(code.as_bytes(), &seal_context(&request.id))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot seal an enrolment code");
            ApiError::internal()
        })?;
    Ok(state
        .store
        .approve_enroll_request(&request.id, &tenant.id, &user.id, &sealed, now_ms())
        .await?)
}

/// Whether a device's sign-in request is for this user's own device (an
/// enrolment request, which names no device, is not).
pub fn is_own_device_request(tenant: &TenantRow, user: &UserRow, request: &EnrollRequestRow) -> bool {
    request.device_id.is_some()
        && request.tenant_id.as_deref() == Some(tenant.id.as_str())
        && request.user_id.as_deref() == Some(user.id.as_str())
}

pub async fn deny(state: &AppState, tenant: &TenantRow, user: &UserRow, request: &EnrollRequestRow) -> ApiResult<bool> {
    if request.device_id.is_some() && !is_own_device_request(tenant, user, request) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only the device's own user may decide on its sign-in",
        ));
    }
    Ok(state
        .store
        .deny_enroll_request(&request.id, &tenant.id, &user.id, now_ms())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_read_loosely_and_checked() {
        let c = new_user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(normalize_user_code(&c).as_deref(), Some(c.as_str()));
        assert_eq!(normalize_user_code(" bcdf ghjk ").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalize_user_code("bcdf-ghj"), None);
        assert_eq!(normalize_user_code("AEIO-UBCD"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("<script>"), None);
        assert_ne!(new_user_code(), new_user_code());
    }
}
