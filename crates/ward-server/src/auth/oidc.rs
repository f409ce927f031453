//! OpenID Connect, the relying party's side: discovery, the code exchange
//! and the ID token's verification. The portal's sign-in flow
//! (`portal::oidc`) and the identity sources' API (`api::identity_sources`)
//! use it.
//!
//! The ID token is verified here with aws-lc-rs (RS256 and ES256), against
//! the key of its `kid` in the provider's JWKS; its `iss`, `aud`, `exp`,
//! `iat` and `nonce` are checked by [`verify_id_token`], a pure function.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

/// How long a discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// Clock skew allowed on `exp` and `iat`, in seconds.
const SKEW: i64 = 60;

/// The parts of a provider's discovery document Ward uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

impl Discovery {
    /// Whether the client authenticates with `client_secret_post` (only
    /// when the provider does not offer `client_secret_basic`, the default).
    pub fn uses_post(&self) -> bool {
        let m = &self.token_endpoint_auth_methods_supported;
        !m.is_empty() && !m.iter().any(|x| x == "client_secret_basic") && m.iter().any(|x| x == "client_secret_post")
    }
}

/// Whether `issuer` is an acceptable issuer URL: `https://`, or `http://`
/// on a loopback host (a provider on the same machine, as in tests).
pub fn issuer_allowed(issuer: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(issuer) else {
        return false;
    };
    if u.query().is_some() || u.fragment().is_some() || u.host_str().is_none() {
        return false;
    }
    match u.scheme() {
        "https" => true,
        "http" => matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

/// The HTTP client for providers: platform roots, no redirects, short timeouts.
pub fn client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

/// The issuer's discovery document, checked (its `issuer` must equal the
/// configured one exactly), cached for a few minutes per issuer.
pub async fn discover(issuer: &str) -> Result<Discovery, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, Discovery)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(c) = cache.lock() {
        if let Some((at, d)) = c.get(issuer) {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(d.clone());
            }
        }
    }
    if !issuer_allowed(issuer) {
        return Err("the issuer must be an https:// URL (or http:// on a loopback address)".into());
    }
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let resp = client()?
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let d: Discovery = resp
        .json()
        .await
        .map_err(|e| format!("{url} is not a discovery document: {e}"))?;
    if d.issuer != issuer {
        return Err(format!(
            "the discovery document names the issuer {:?}, not {issuer:?}: configure the issuer exactly as the provider names itself",
            d.issuer
        ));
    }
    if let Ok(mut c) = cache.lock() {
        c.insert(issuer.to_owned(), (Instant::now(), d.clone()));
    }
    Ok(d)
}

/// The provider's signing keys.
pub async fn fetch_jwks(d: &Discovery) -> Result<Jwks, String> {
    let resp = client()?
        .get(&d.jwks_uri)
        .send()
        .await
        .map_err(|e| format!("cannot fetch the provider's keys: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the provider's keys: {}", resp.status()));
    }
    resp.json().await.map_err(|e| format!("the provider's keys: {e}"))
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// Exchanges an authorization code for the ID token, with the PKCE verifier.
pub async fn exchange_code(
    d: &Discovery,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<String, String> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let mut req = client()?.post(&d.token_endpoint);
    if d.uses_post() {
        form.push(("client_id", client_id));
        form.push(("client_secret", client_secret));
    } else {
        // RFC 6749 2.3.1: both parts form-urlencoded before Basic.
        let enc = |s: &str| serde_urlencoded::to_string([("", s)]).unwrap_or_default()[1..].to_owned();
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(client_secret)));
        req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {creds}"));
    }
    let body = serde_urlencoded::to_string(&form).map_err(|e| e.to_string())?;
    let resp = req
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the provider's token endpoint: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!(
            "the provider refused the code ({status}): {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let t: TokenResponse = resp.json().await.map_err(|e| format!("the token response: {e}"))?;
    t.id_token.ok_or_else(|| "the provider sent no ID token".into())
}

/// A JSON Web Key Set (the fields Ward reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

/// What an ID token must be for.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("the ID token's {what} is not base64url"))
}

/// Verifies an ID token: its signature with the JWKS key of its `kid`
/// (RS256 or ES256), `iss`, `aud`, `exp`, `iat` and `nonce`. Returns its
/// claims; the error says what was wrong, for the log.
pub fn verify_id_token(token: &str, jwks: &Jwks, want: &Expect<'_>) -> Result<Map<String, Value>, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("the ID token is not a JWS".into());
    };
    let header: Header = serde_json::from_slice(&b64(h, "header")?).map_err(|_| "the ID token's header is not JSON")?;
    let sig = b64(s, "signature")?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let candidates: Vec<&Jwk> = jwks
        .keys
        .iter()
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| match (&header.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    let key = match (header.kid.as_deref(), candidates.as_slice()) {
        (_, [one]) => *one,
        (None, _) => return Err("the ID token names no key and the provider has several".into()),
        (Some(kid), _) => return Err(format!("the provider has no key {kid:?}")),
    };
    match (header.alg.as_str(), key.kty.as_str()) {
        ("RS256", "RSA") => {
            let n = b64(key.n.as_deref().unwrap_or_default(), "key")?;
            let e = b64(key.e.as_deref().unwrap_or_default(), "key")?;
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
                .map_err(|_| "the ID token's signature is wrong")?;
        }
        ("ES256", "EC") if key.crv.as_deref() == Some("P-256") => {
            let x = b64(key.x.as_deref().unwrap_or_default(), "key")?;
            let y = b64(key.y.as_deref().unwrap_or_default(), "key")?;
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, &sig)
                .map_err(|_| "the ID token's signature is wrong")?;
        }
        (alg, kty) => return Err(format!("unsupported ID token algorithm {alg} with a {kty} key")),
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(p, "payload")?).map_err(|_| "the ID token's payload is not a JSON object")?;
    if claims.get("iss").and_then(Value::as_str) != Some(want.issuer) {
        return Err("the ID token is from another issuer".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == want.client_id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want.client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err("the ID token is for another client".into());
    }
    // OpenID Connect Core 3.1.3.7: with several audiences the token must
    // name the party it was issued to (azp), and that must be this client.
    let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(want.client_id) => {
            return Err("the ID token was issued to another client (azp)".into())
        }
        None if several => return Err("the ID token has several audiences and no azp".into()),
        _ => {}
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("the ID token has no exp")?;
    if exp + SKEW < want.now {
        return Err("the ID token has expired".into());
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("the ID token has no iat")?;
    if iat > want.now + SKEW || iat > exp {
        return Err("the ID token is issued in the future".into());
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(want.nonce) {
        return Err("the ID token's nonce is wrong".into());
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("the ID token has no sub".into());
    }
    Ok(claims)
}

/// The names in a groups claim: an array of strings, or one string.
pub fn claim_strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn key() -> (EcdsaKeyPair, Jwks) {
        let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pt = k.public_key().as_ref().to_vec();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&pt[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&pt[33..65])),
            ..Default::default()
        };
        (k, Jwks { keys: vec![jwk] })
    }

    fn sign(k: &EcdsaKeyPair, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "k1"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = k.sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes()).unwrap();
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "aud": ["ward", "other"], "azp": "ward", "sub": "s1", "exp": NOW + 300, "iat": NOW, "nonce": "n1", "groups": ["a", "b"]})
    }

    const WANT: Expect<'static> = Expect {
        issuer: "https://idp.example",
        client_id: "ward",
        nonce: "n1",
        now: NOW,
    };

    #[test]
    fn a_good_token_is_accepted() {
        let (k, jwks) = key();
        let c = verify_id_token(&sign(&k, &claims()), &jwks, &WANT).unwrap();
        assert_eq!(c["sub"], "s1");
        assert_eq!(claim_strings(c.get("groups")), ["a", "b"]);
        // One audience needs no azp.
        let mut single = claims();
        single["aud"] = json!("ward");
        single.as_object_mut().unwrap().remove("azp");
        assert!(verify_id_token(&sign(&k, &single), &jwks, &WANT).is_ok());
    }

    #[test]
    fn tampered_or_misdirected_tokens_are_refused() {
        let (k, jwks) = key();
        let with = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut c = claims();
            f(c.as_object_mut().unwrap());
            sign(&k, &c)
        };
        // Wrong signature: the payload changed after signing.
        let good = sign(&k, &claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(json!({"sub": "admin"}).to_string());
        parts[1] = &other;
        let err = verify_id_token(&parts.join("."), &jwks, &WANT).unwrap_err();
        assert!(err.contains("signature"), "{err}");
        // Signed by another key.
        let (k2, _) = key();
        assert!(verify_id_token(&sign(&k2, &claims()), &jwks, &WANT)
            .unwrap_err()
            .contains("signature"));
        let cases: Vec<(String, &str)> = vec![
            (
                with(&|c| drop(c.insert("iss".into(), json!("https://evil.example")))),
                "issuer",
            ),
            (with(&|c| drop(c.insert("aud".into(), json!("other")))), "client"),
            (with(&|c| drop(c.insert("azp".into(), json!("other")))), "azp"),
            (with(&|c| drop(c.remove("azp"))), "azp"),
            (with(&|c| drop(c.insert("nonce".into(), json!("n2")))), "nonce"),
            (with(&|c| drop(c.remove("nonce"))), "nonce"),
            (with(&|c| drop(c.insert("exp".into(), json!(NOW - 3600)))), "expired"),
            (with(&|c| drop(c.insert("iat".into(), json!(NOW + 3600)))), "future"),
        ];
        for (token, why) in cases {
            let err = verify_id_token(&token, &jwks, &WANT).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        // An unsigned token is refused.
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert!(verify_id_token(&format!("{h}.{p}."), &jwks, &WANT).is_err());
    }

    #[test]
    fn rs256_tokens_are_verified_with_the_key_of_their_kid() {
        use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
        let k = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let c: PublicKeyComponents<Vec<u8>> = k.public_key().into();
        let rsa = Jwk {
            kty: "RSA".into(),
            kid: Some("r1".into()),
            n: Some(URL_SAFE_NO_PAD.encode(&c.n)),
            e: Some(URL_SAFE_NO_PAD.encode(&c.e)),
            ..Default::default()
        };
        let (_, ec) = key();
        let jwks = Jwks {
            keys: vec![ec.keys[0].clone(), rsa],
        };
        let sign_rs = |kid: &str, claims: &Value| {
            let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": kid}).to_string());
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            let mut sig = vec![0u8; k.public_modulus_len()];
            k.sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                format!("{h}.{p}").as_bytes(),
                &mut sig,
            )
            .unwrap();
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        assert_eq!(
            verify_id_token(&sign_rs("r1", &claims()), &jwks, &WANT).unwrap()["sub"],
            "s1"
        );
        // Naming the EC key with an RSA signature, or an unknown key: refused.
        assert!(verify_id_token(&sign_rs("k1", &claims()), &jwks, &WANT).is_err());
        assert!(verify_id_token(&sign_rs("nope", &claims()), &jwks, &WANT)
            .unwrap_err()
            .contains("no key"));
        let mut other = claims();
        other["aud"] = json!("someone-else");
        assert!(verify_id_token(&sign_rs("r1", &other), &jwks, &WANT)
            .unwrap_err()
            .contains("client"));
    }

    #[test]
    fn the_token_endpoint_auth_follows_discovery() {
        let d = |m: &[&str]| Discovery {
            issuer: String::new(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            token_endpoint_auth_methods_supported: m.iter().map(|x| x.to_string()).collect(),
        };
        assert!(!d(&[]).uses_post());
        assert!(!d(&["client_secret_basic", "client_secret_post"]).uses_post());
        assert!(d(&["client_secret_post"]).uses_post());
    }

    #[test]
    fn issuers_must_be_https_or_loopback() {
        assert!(issuer_allowed("https://idp.example"));
        assert!(issuer_allowed("http://127.0.0.1:9000"));
        assert!(!issuer_allowed("http://idp.example"));
        assert!(!issuer_allowed("ftp://idp.example"));
        assert!(!issuer_allowed("https://idp.example/?x=1"));
    }
}
