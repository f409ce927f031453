//! Browser sessions on published hosts: in memory, by a random id in the
//! host-only cookie `__Host-ward_web`, each bound to one host, one user and
//! an expiry. A restart of the gateway signs every browser in again (a
//! round trip through the portal, without a password while the portal
//! session lasts).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use super::COOKIE;

/// At most this many sessions are kept; the expired ones go first, then
/// the ones closest to expiry.
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) host: String,
    pub(crate) tenant_id: String,
    pub(crate) user_id: String,
    pub(crate) expires_ms: i64,
}

#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session; returns its id (the cookie value).
    pub(crate) fn create(&self, session: Session, now_ms: i64) -> String {
        let id = new_id();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires_ms > now_ms);
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires_ms).map(|(k, _)| k.clone()) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(id.clone(), session);
        id
    }

    /// The unexpired session with this id on `host`.
    pub(crate) fn get(&self, id: &str, host: &str, now_ms: i64) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some(s) if s.expires_ms <= now_ms => {
                map.remove(id);
                None
            }
            Some(s) if s.host == host => Some(s.clone()),
            _ => None,
        }
    }
}

/// The value of the Ward cookie in a request's `Cookie` headers, if it has
/// the form of a session id (43 base64url characters).
pub(crate) fn ward_cookie<'a>(cookie_headers: impl Iterator<Item = &'a [u8]>) -> Option<&'a str> {
    cookie_named(COOKIE, cookie_headers)
}

/// A new random id: 32 bytes, base64url (43 characters).
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    B64.encode(bytes)
}

/// The value of cookie `name`, if it has the form of an id (43 base64url
/// characters).
pub(crate) fn cookie_named<'a>(wanted: &str, cookie_headers: impl Iterator<Item = &'a [u8]>) -> Option<&'a str> {
    for header in cookie_headers {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for pair in text.split(';') {
            if let Some((name_found, value)) = pair.trim().split_once('=') {
                if name_found == wanted && is_id(value) {
                    return Some(value);
                }
            }
        }
    }
    None
}

/// A `Cookie` header without the Ward cookie; `None` when nothing is left.
pub(crate) fn strip_ward_cookie(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|p| {
            let n = p.split_once('=').map_or(*p, |(n, _)| n);
            !p.is_empty() && n != COOKIE && n != STATE_COOKIE
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// The `Set-Cookie` value for a new session.
pub(crate) fn set_cookie(id: &str, max_age_secs: i64) -> String {
    format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}

/// The cookie that ties a sign-in to the browser that started it: the
/// gateway sets it with the redirect to the portal, and the callback must
/// bring back the same value as `state` (so nobody can sign a browser in
/// with a code minted for someone else).
pub(crate) const STATE_COOKIE: &str = "__Host-ward_web_state";

pub(crate) fn set_state_cookie(state: &str, max_age_secs: i64) -> String {
    format!("{STATE_COOKIE}={state}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}

/// 43 base64url characters: the form of every id and state.
pub(crate) fn is_id(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(is_b64url)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The host a request names (`Host` or the `:authority`), lowercase,
/// without the port. `None` when it is not a plain DNS name.
pub(crate) fn request_host(authority: &str) -> Option<String> {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => authority,
    };
    let host = host.to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    #[test]
    fn cookies() {
        let h = format!("a=1; {COOKIE}={ID}; b=2");
        assert_eq!(ward_cookie([h.as_bytes()].into_iter()), Some(ID));
        assert_eq!(strip_ward_cookie(h.as_bytes()).as_deref(), Some("a=1; b=2"));
        assert_eq!(strip_ward_cookie(format!("{COOKIE}={ID}").as_bytes()), None);
        assert_eq!(ward_cookie([b"x=1".as_slice(), h.as_bytes()].into_iter()), Some(ID));
        // Wrong form: not a session id.
        assert_eq!(ward_cookie([format!("{COOKIE}=short").as_bytes()].into_iter()), None);
        assert_eq!(ward_cookie([format!("x{COOKIE}={ID}").as_bytes()].into_iter()), None);
    }

    #[test]
    fn hosts() {
        assert_eq!(request_host("App.Example:8443").as_deref(), Some("app.example"));
        assert_eq!(request_host("app.example").as_deref(), Some("app.example"));
        for bad in [
            "",
            ":443",
            "app.example:",
            "a..b",
            "[::1]:443",
            "app.example:x",
            "a b",
            "a_b.example",
        ] {
            assert_eq!(request_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sessions_are_bound_to_host_and_expiry() {
        let s = Sessions::default();
        let session = Session {
            host: "app.example".into(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            expires_ms: 1000,
        };
        let id = s.create(session.clone(), 0);
        assert_eq!(s.get(&id, "app.example", 999), Some(session));
        assert_eq!(s.get(&id, "other.example", 999), None);
        assert_eq!(s.get(&id, "app.example", 1000), None);
        assert_eq!(s.get(&id, "app.example", 0), None, "an expired session is forgotten");
    }

    proptest! {
        #[test]
        fn cookie_parsing_never_panics_and_never_leaks(header in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(v) = ward_cookie([header.as_slice()].into_iter()) {
                prop_assert_eq!(v.len(), 43);
            }
            if let Some(rest) = strip_ward_cookie(&header) {
                prop_assert!(ward_cookie([rest.as_bytes()].into_iter()).is_none());
            }
        }

        #[test]
        fn host_parsing_never_panics(s in "\\PC{0,60}") {
            if let Some(h) = request_host(&s) {
                prop_assert!(!h.contains(':'));
                prop_assert_eq!(h.to_ascii_lowercase(), h.clone());
            }
        }
    }
}
