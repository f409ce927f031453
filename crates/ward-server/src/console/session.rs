//! The console's cookies and its CSRF defence.
//!
//! - The session cookie carries the same `ws_` session token the API's
//!   bearer tokens use; the audit middleware reads it for console paths only
//!   (never for `/api/`, so a cookie can never authorise an API call). It is
//!   `HttpOnly; Secure; SameSite=Strict; Path=/`, and named
//!   `__Host-ward_session` when the server speaks HTTPS.
//! - Every form carries a CSRF token derived from the session token
//!   (SHA-256 of a label and the token: unguessable without the cookie,
//!   nothing to store). The sign-in form, which has no session yet, uses a
//!   random token in a short-lived cookie of its own (double submit), so a
//!   foreign page cannot sign a browser in to an account of its choosing.
//! - [`csrf_guard`] checks every console `POST` before any handler runs, and
//!   refuses requests a browser marks as cross-site.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// The largest form the console accepts.
pub const MAX_FORM: usize = 64 * 1024;

/// The session token a console request presented, put there by the audit
/// middleware when it authenticated the request with the session cookie.
#[derive(Debug, Clone)]
pub struct ConsoleSession(pub String);

fn https(state: &AppState) -> bool {
    state.config.url().starts_with("https://")
}

pub fn session_cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-ward_session"
    } else {
        "ward_session"
    }
}

pub fn login_cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-ward_signin"
    } else {
        "ward_signin"
    }
}

/// The value of cookie `name`, if the request has exactly that cookie.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `Set-Cookie` for `name=value`, with every protection; `max_age` in
/// seconds (0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("ward_invalid=; Max-Age=0"))
}

/// The CSRF token of the forms of a session.
pub fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ward console csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A fresh random token for the sign-in form.
pub fn new_login_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The `csrf` field of an URL-encoded form.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Refuses a console `POST` whose form does not carry the right CSRF token,
/// and any `POST` a browser says comes from another site.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let login = req.uri().path() == "/login";
    let expected = if login {
        cookie(req.headers(), login_cookie_name(&state)).map(str::to_owned)
    } else {
        req.extensions().get::<ConsoleSession>().map(|s| csrf_for(&s.0))
    };
    match check_form(req, expected, "console").await {
        FormCheck::Passed(req) => next.run(req).await,
        // Not signed in (or the session ended): sign in again.
        FormCheck::NoSession(path) if !login => super::layout::redirect_to_login(&path),
        FormCheck::NoSession(_) => refused("console"),
        FormCheck::Refused(response) => response,
    }
}

/// What [`check_form`] found.
pub(crate) enum FormCheck {
    /// The token fits: the request, with its body, to hand on.
    Passed(Request),
    /// No session (or sign-in form) to check against: the request's path.
    NoSession(String),
    /// Refused: the answer to send.
    Refused(Response),
}

pub(crate) fn refused(place: &str) -> Response {
    super::layout::error_page(
        StatusCode::FORBIDDEN,
        &format!("This form has expired or did not come from this {place}. Go back, reload the page and try again."),
    )
}

/// The CSRF check of a form `POST`, shared by the console and the portal:
/// the form's `csrf` field must equal `expected` (the session's token, or
/// the sign-in form's), and the browser must not mark the request as
/// cross-site. The body is read (at most [`MAX_FORM`]) and put back.
pub(crate) async fn check_form(req: Request, expected: Option<String>, place: &str) -> FormCheck {
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return FormCheck::Refused(super::layout::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.",
        ));
    };
    let Some(expected) = expected else {
        return FormCheck::NoSession(parts.uri.path().to_owned());
    };
    let given = form_field(&bytes, "csrf");
    if cross_site || !given.is_some_and(|g| crate::auth::token::hashes_equal(&expected, &g)) {
        return FormCheck::Refused(refused(place));
    }
    FormCheck::Passed(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; ward_session=ws_x; b=2"));
        assert_eq!(cookie(&h, "ward_session"), Some("ws_x"));
        assert_eq!(cookie(&h, "session"), None);
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_for("ws_a"), csrf_for("ws_b"));
        assert_eq!(csrf_for("ws_a"), csrf_for("ws_a"));
        assert_eq!(csrf_for("ws_a").len(), 32);
    }

    #[test]
    fn the_csrf_field_is_read_from_the_form() {
        assert_eq!(form_field(b"name=x&csrf=abc", "csrf").as_deref(), Some("abc"));
        assert_eq!(form_field(b"name=x", "csrf"), None);
        assert_eq!(form_field(b"%%%", "csrf"), None);
    }
}
