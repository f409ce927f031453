//! Clientless web access, the server's side: the one-time codes that carry
//! a portal sign-in to a published host, and their redemption by the
//! gateway serving that host (in the process through
//! [`GatewayLink`](crate::gateway_link::GatewayLink), or over
//! `POST /api/v1/gateway/web-sessions`).
//!
//! ```text
//! browser ─► https://H/path (gateway: no session) ─► 302 portal /portal/web/start?host=H&return=/path
//!   ─► portal sign-in (password or OIDC) ─► mint: code (hashed, bound to H and the user, 60 s, once)
//!   ─► 302 https://H/.ward/callback?code=...&return=/path ─► gateway redeems ─► cookie ─► /path
//! ```

use base64::Engine;
use ward_api::WebSession;
use ward_core::{ErrorCode, TenantState};

use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::state::{now_ms, AppState};

/// Web sign-in codes start with this.
pub const WEB_CODE_PREFIX: &str = "wwc_";
/// How long a code may be redeemed.
pub const WEB_CODE_TTL_MS: i64 = 60_000;

/// A published host: a DNS name of at least two labels, each 1 to 63 of
/// letters, digits and inner hyphens, 253 characters at most; lowercased.
/// No IP addresses, wildcards, ports or trailing dots.
pub fn parse_public_host(s: &str) -> Option<String> {
    crate::api::policy::parse_public_host(s)
}

/// Where a browser may be sent back to on a published host (one definition
/// for the portal and the gateway).
pub use ward_api::safe_web_return as safe_return;

/// Mints a one-time code for `user_id` of `tenant_id` on `host`; returns the code.
pub async fn mint(state: &AppState, tenant_id: &str, user_id: &str, host: &str) -> ApiResult<String> {
    let code = format!(
        "{WEB_CODE_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token::new_api_key_secret())
    );
    let now = now_ms();
    state
        .store
        .create_web_code(
            &token::hash(&code),
            tenant_id,
            user_id,
            host,
            now,
            now + WEB_CODE_TTL_MS,
        )
        .await?;
    Ok(code)
}

/// Redeems a code brought to `host`: once, unexpired, bound to that host,
/// of a user still enabled in an active tenant. The session the gateway may
/// keep lasts `session_ttl`.
pub async fn redeem(state: &AppState, host: &str, code: &str) -> ApiResult<WebSession> {
    let refused = || ApiError::new(ErrorCode::Unauthenticated, "unknown, expired or used web sign-in code");
    let host = parse_public_host(host).ok_or_else(|| ApiError::invalid("host is not a DNS name"))?;
    if !code.starts_with(WEB_CODE_PREFIX) || code.len() > 128 {
        return Err(refused());
    }
    let now = now_ms();
    let row = state
        .store
        .take_web_code(&token::hash(code), &host, now)
        .await?
        .ok_or_else(refused)?;
    let tenant = state.store.tenant_by_id(&row.tenant_id).await?.ok_or_else(refused)?;
    if tenant.state != TenantState::Active {
        return Err(ApiError::new(
            ErrorCode::TenantSuspended,
            "the organisation is suspended",
        ));
    }
    let user = state
        .store
        .user_by_id(&row.tenant_id, &row.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(refused)?;
    let ttl = i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    Ok(WebSession {
        tenant_id: row.tenant_id,
        user_id: user.id,
        expires_ms: now.saturating_add(ttl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn returns() {
        assert_eq!(safe_return("/"), Some("/"));
        assert_eq!(safe_return("/a/b?c=d"), Some("/a/b?c=d"));
        for bad in [
            "",
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "a/b",
            "/a b",
            "/\u{e9}",
        ] {
            assert_eq!(safe_return(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_public_host("App.Example").as_deref(), Some("app.example"));
        assert_eq!(parse_public_host("a-b.c.example").as_deref(), Some("a-b.c.example"));
        for bad in [
            "",
            "example",
            "app.example.",
            ".app.example",
            "a..example",
            "-a.example",
            "a-.example",
            "*.example",
            "app.example:443",
            "10.0.0.1",
            "1.2",
            "a_b.example",
            "app example",
        ] {
            assert_eq!(parse_public_host(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_return_target_is_always_a_local_path(s in "\\PC{0,40}") {
            if let Some(r) = safe_return(&s) {
                prop_assert!(r.starts_with('/') && !r.starts_with("//") && !r.starts_with("/\\"));
                prop_assert!(r.bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn a_public_host_is_lowercase_labels(s in "[a-zA-Z0-9.\\-_:*]{0,30}") {
            if let Some(h) = parse_public_host(&s) {
                prop_assert!(h.split('.').count() >= 2);
                prop_assert!(h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
                prop_assert_eq!(parse_public_host(&h), Some(h.clone()));
            }
        }
    }
}
