//! Click-through tokens of internet warnings: HMAC-SHA256 under a random
//! per-process key over (tenant, user, host, rule, expiry), base64url. A
//! token is only good on the gateway process that made it, for the user and
//! host it names, until it expires.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Longest token accepted (a host is at most 253 bytes; ids are short).
pub(crate) const MAX_TOKEN_LEN: usize = 2048;

/// What a token grants, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) tenant_id: String,
    pub(crate) user_id: String,
    /// The normalised host.
    pub(crate) host: String,
    /// The warning rule, empty for the tenant's default action.
    pub(crate) rule_id: String,
    /// Ms since the epoch.
    pub(crate) expires_ms: i64,
}

/// The signing key, random per process.
pub(crate) struct TokenKey {
    key: hmac::Key,
}

impl TokenKey {
    pub(crate) fn generate() -> TokenKey {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // The system's randomness failed: a key nobody knows is still
            // better than none; tokens just stop working across restarts.
            let seed = std::collections::hash_map::RandomState::new();
            let bytes = std::hash::BuildHasher::hash_one(&seed, crate::records::now_ms()).to_le_bytes();
            hmac::Key::new(hmac::HMAC_SHA256, &bytes)
        });
        TokenKey { key }
    }

    /// A token for `claim`.
    pub(crate) fn issue(&self, claim: &Claim) -> String {
        let payload = encode_payload(claim);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The claim of a genuine, unexpired token; `None` for anything else
    /// (never panics, whatever the input).
    pub(crate) fn verify(&self, token: &str, now_ms: i64) -> Option<Claim> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &payload, &tag).ok()?;
        let claim = decode_payload(std::str::from_utf8(&payload).ok()?)?;
        (claim.expires_ms > now_ms).then_some(claim)
    }
}

/// Fields separated by newlines, which none of them can contain.
fn encode_payload(claim: &Claim) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        claim.tenant_id.replace('\n', ""),
        claim.user_id.replace('\n', ""),
        claim.host.replace('\n', ""),
        claim.rule_id.replace('\n', ""),
        claim.expires_ms
    )
}

fn decode_payload(text: &str) -> Option<Claim> {
    let mut fields = text.split('\n');
    let claim = Claim {
        tenant_id: fields.next()?.to_owned(),
        user_id: fields.next()?.to_owned(),
        host: fields.next()?.to_owned(),
        rule_id: fields.next()?.to_owned(),
        expires_ms: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(claim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim() -> Claim {
        Claim {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            host: "news.example".into(),
            rule_id: "warn-news".into(),
            expires_ms: 2_000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let key = TokenKey::generate();
        let token = key.issue(&claim());
        assert_eq!(key.verify(&token, 1_000), Some(claim()));
        assert_eq!(key.verify(&token, 2_000), None, "expired");
        assert_eq!(
            TokenKey::generate().verify(&token, 1_000),
            None,
            "another process's key"
        );
    }

    #[test]
    fn tampering_is_refused() {
        let key = TokenKey::generate();
        let token = key.issue(&claim());
        let (payload, tag) = token.split_once('.').unwrap();
        let mut other = claim();
        other.host = "evil.example".into();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(encode_payload(&other)));
        assert_eq!(key.verify(&forged, 1_000), None);
        assert_eq!(key.verify(&format!("{payload}.{payload}"), 1_000), None);
        assert_eq!(key.verify(payload, 1_000), None);
    }

    proptest! {
        #[test]
        fn random_tokens_never_panic(s in ".{0,3000}") {
            let key = TokenKey::generate();
            prop_assert_eq!(key.verify(&s, 0), None);
        }

        #[test]
        fn random_base64_parts_never_panic(a in "[A-Za-z0-9_-]{0,200}", b in "[A-Za-z0-9_-]{0,64}") {
            let key = TokenKey::generate();
            let token = format!("{a}.{b}");
            prop_assert_eq!(key.verify(&token, 0), None);
        }
    }
}
