//! Bearer tokens.
//!
//! - A session token is `ws_` and 43 characters of base64url (32 random bytes).
//! - An API key token is `wk_<key id>_<secret>`, the secret being 64 hex
//!   characters (32 random bytes). The id is public (it appears in lists and
//!   the audit trail); the secret is shown once.
//!
//! Only SHA-256 hashes of tokens are stored. They are 256-bit random values,
//! so a fast hash is enough (a slow password hash is for low-entropy secrets).

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SESSION_PREFIX: &str = "ws_";
pub const API_KEY_PREFIX: &str = "wk_";

fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

pub fn new_session_token() -> String {
    format!(
        "{SESSION_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
    )
}

pub fn new_api_key_secret() -> String {
    hex::encode(random_bytes())
}

pub fn api_key_token(id: &str, secret: &str) -> String {
    format!("{API_KEY_PREFIX}{id}_{secret}")
}

/// Split an API key token into (id, secret).
pub fn parse_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.rsplit_once('_')?;
    if id.is_empty() || id.len() > 64 || secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id, secret))
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The bearer token in `headers` if it starts with `prefix` (device and
/// gateway tokens, which the administrators' authentication leaves alone).
pub fn bearer_with_prefix<'a>(headers: &'a http::HeaderMap, prefix: &str) -> Option<&'a str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| t.starts_with(prefix) && t.len() < 128)
}

/// The secret of a one-time code `<prefix><64 hex>[_<pin>]` (enrolment and
/// join codes; the pin is for the client).
pub fn code_secret<'a>(code: &'a str, prefix: &str) -> Option<&'a str> {
    let secret = code.trim().strip_prefix(prefix)?.split('_').next()?;
    (secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then_some(secret)
}

/// A one-time code for `secret`, carrying the server's pin when it has one.
pub fn one_time_code(prefix: &str, secret: &str, pin: Option<&str>) -> String {
    match pin {
        Some(pin) => format!("{prefix}{secret}_{}", pin.trim_start_matches("sha256:")),
        None => format!("{prefix}{secret}"),
    }
}

/// Compare two hashes without leaking, through timing, how much matched.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_round_trip() {
        let secret = new_api_key_secret();
        let t = api_key_token("key_01jabc", &secret);
        assert_eq!(parse_api_key(&t), Some(("key_01jabc", secret.as_str())));
        assert_eq!(parse_api_key("wk_key_x_short"), None);
        assert_eq!(parse_api_key("ws_abc"), None);
        assert_eq!(parse_api_key(&format!("wk__{secret}")), None);
    }

    #[test]
    fn session_tokens_are_unique_and_prefixed() {
        let a = new_session_token();
        assert!(a.starts_with(SESSION_PREFIX));
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, new_session_token());
        assert!(hashes_equal(&hash(&a), &hash(&a)));
        assert!(!hashes_equal(&hash(&a), &hash("x")));
    }
}
