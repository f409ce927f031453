//! OpenID Connect identity sources: the API, and signing in to the user
//! portal through a real provider (the `oidc-provider` fixture of
//! `tests/oidc-provider`, driven over plain HTTP).
//!
//! The tests that need the provider are skipped when `WARD_TEST_OIDC` is
//! unset, and fail when it is set and the provider cannot start.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::oidc_provider::{Provider, SECRET};
use common::*;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A browser across origins: cookies per host:port, redirects by hand.
struct Browser2 {
    http: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser2 {
    fn new() -> Self {
        Browser2 {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    async fn send(&mut self, method: Method, url: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let u = reqwest::Url::parse(url).unwrap();
        let origin = format!("{}:{}", u.host_str().unwrap(), u.port_or_known_default().unwrap());
        let cookies = self.jar.entry(origin).or_default();
        let mut req = self.http.request(method, url);
        if !cookies.is_empty() {
            let h = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(COOKIE, h);
        }
        if let Some(f) = form {
            req = req.header("content-type", FORM).body(encode(f));
        }
        let resp = req.send().await.unwrap();
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            let gone = v.is_empty() || attrs.contains("Max-Age=0") || attrs.contains("1970");
            if gone {
                cookies.remove(k.trim());
            } else {
                cookies.insert(k.trim().to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let location = resp.headers().get(LOCATION).map(|l| {
            let l = l.to_str().unwrap();
            u.join(l).unwrap().to_string()
        });
        Answer {
            status,
            location,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        self.send(Method::GET, url, None).await
    }

    /// Follows redirects from `url` until a page answers or `stop` matches
    /// a location (which is returned unvisited).
    async fn follow(&mut self, mut url: String, stop: &dyn Fn(&str) -> bool) -> (String, Answer) {
        for _ in 0..20 {
            let a = self.get(&url).await;
            match a.location.clone() {
                Some(next) if a.status.is_redirection() => {
                    if stop(&next) {
                        return (next, a);
                    }
                    url = next;
                }
                _ => return (url, a),
            }
        }
        panic!("too many redirects");
    }
}

fn uid_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Signs in at the provider as `sub` from `start` (a Ward URL), through its
/// development login and consent pages; returns the callback URL the
/// provider sends the browser to (not yet visited).
async fn through_provider(b: &mut Browser2, start: &str, issuer: &str, sub: &str) -> String {
    let is_callback = |u: &str| u.contains("/portal/oidc/callback");
    let (url, page) = b.follow(start.to_owned(), &is_callback).await;
    if is_callback(&url) {
        return url;
    }
    assert!(
        url.starts_with(&format!("{issuer}/interaction/")),
        "{url}: {}",
        page.body
    );
    let a = b
        .send(
            Method::POST,
            &format!("{issuer}/interaction/{}", uid_of(&url)),
            Some(&[("prompt", "login"), ("login", sub), ("password", "any")]),
        )
        .await;
    assert!(a.status.is_redirection(), "{}", a.body);
    let (url, page) = b.follow(a.location.unwrap(), &is_callback).await;
    if is_callback(&url) {
        return url;
    }
    assert!(page.body.contains("consent"), "{url}: {}", page.body);
    let a = b
        .send(
            Method::POST,
            &format!("{issuer}/interaction/{}", uid_of(&url)),
            Some(&[("prompt", "consent")]),
        )
        .await;
    assert!(a.status.is_redirection(), "{}", a.body);
    let (url, page) = b.follow(a.location.unwrap(), &is_callback).await;
    assert!(is_callback(&url), "{url}: {}", page.body);
    url
}

async fn create_source(server: &Server, token: &str, issuer: &str, groups_claim: &str) -> (StatusCode, Value) {
    server
        .api(
            Method::POST,
            "/api/v1/identity-sources",
            token,
            Some(json!({
                "name": "corp",
                "issuer": issuer,
                "client_id": "ward",
                "client_secret": SECRET,
                "groups_claim": groups_claim,
            })),
        )
        .await
}

async fn groups_of(server: &Server, token: &str, user: &str) -> Value {
    let (s, u) = server
        .api(Method::GET, &format!("/api/v1/users/{user}"), token, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    u["groups"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_through_a_real_provider_links_the_user_and_follows_its_groups() {
    let server = Server::start().await;
    let accounts = json!([{"sub": "sub-alice", "preferred_username": "alice", "email": "alice@corp.example", "roles": ["eng", "ops", "Not A Name"]}]);
    let Some(provider) = Provider::start(&server.url, accounts) else {
        return;
    };
    let owner = server.token("default", "admin", PW).await;
    // The groups claim is called `roles` at this provider.
    let (s, src) = create_source(&server, &owner, &provider.issuer, "roles").await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    assert_eq!(src["redirect_uri"], format!("{}/portal/oidc/callback", server.url));
    let source_id = src["id"].as_str().unwrap().to_owned();
    assert!(source_id.starts_with("idp_"));

    // The sign-in page of the organisation offers the source.
    let mut b = Browser2::new();
    let login = b.get(&format!("{}/portal/login?tenant=default", server.url)).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("Sign in with corp"), "{}", login.body);
    assert!(login.body.contains(&format!("/portal/oidc/{source_id}/start")));

    // An open redirect in `next` is not followed: the portal home instead.
    let start = format!("{}/portal/oidc/{source_id}/start?next=//evil.example/x", server.url);
    let callback = through_provider(&mut b, &start, &provider.issuer, "sub-alice").await;
    let done = b.get(&callback).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{}/portal", server.url).as_str())
    );
    let home = b.get(&format!("{}/portal", server.url)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice"), "{}", home.body);

    // alice exists now, linked, in the groups of the claim that are names.
    let (_, users) = server.api(Method::GET, "/api/v1/users", &owner, None).await;
    let alice = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(groups_of(&server, &owner, "alice").await, json!(["eng", "ops"]));
    // The email claim became an attribute, which dynamic groups match on.
    assert_eq!(alice["attributes"]["email"], "alice@corp.example", "{alice}");
    let (s, g) = server
        .api(
            Method::POST,
            "/api/v1/groups",
            &owner,
            Some(json!({"name": "corp-mail", "conditions": ["email_domain=CORP.example"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["members"], json!(["alice"]), "{g}");
    let (s, _) = server
        .api(Method::DELETE, "/api/v1/groups/corp-mail", &owner, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The callback replayed: refused, nobody signed in.
    let mut other = Browser2::new();
    let replay = other.get(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
    assert!(replay.body.contains("unknown, already used or expired"));
    let again = b.get(&callback).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    // A group given by hand stays; a group the provider dropped is left.
    let (s, v) = server
        .api(Method::POST, "/api/v1/groups", &owner, Some(json!({"name": "admins"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/groups/admins/members",
            &owner,
            Some(json!({"user": "alice"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    provider.set_accounts(
        &server.url,
        json!([{"sub": "sub-alice", "preferred_username": "alice", "email": "alice@corp.example", "roles": "eng"}]),
    );
    let mut b = Browser2::new();
    let start = format!("{}/portal/oidc/{source_id}/start?next=/portal/activate", server.url);
    let callback = through_provider(&mut b, &start, &provider.issuer, "sub-alice").await;
    let done = b.get(&callback).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{}/portal/activate", server.url).as_str())
    );
    let (_, users) = server.api(Method::GET, "/api/v1/users", &owner, None).await;
    let same = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(same["id"], alice["id"], "the same user");
    assert_eq!(groups_of(&server, &owner, "alice").await, json!(["admins", "eng"]));

    // A local user of the same name as another account: refused clearly.
    let (s, _) = server
        .api(Method::POST, "/api/v1/users", &owner, Some(json!({"name": "bob"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    provider.set_accounts(
        &server.url,
        json!([{"sub": "sub-bob", "preferred_username": "bob", "email": "b@corp.example", "roles": []}]),
    );
    let mut b = Browser2::new();
    let start = format!("{}/portal/oidc/{source_id}/start", server.url);
    let callback = through_provider(&mut b, &start, &provider.issuer, "sub-bob").await;
    let refused = b.get(&callback).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("already exists"), "{}", refused.body);

    // A disabled user is refused.
    let (s, _) = server
        .api(
            Method::PATCH,
            "/api/v1/users/alice",
            &owner,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    provider.set_accounts(
        &server.url,
        json!([{"sub": "sub-alice", "preferred_username": "alice", "email": "alice@corp.example", "roles": "eng"}]),
    );
    let mut b = Browser2::new();
    let callback = through_provider(&mut b, &start, &provider.issuer, "sub-alice").await;
    let refused = b.get(&callback).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("disabled"));
}

/// A stand-in for a provider's discovery document, naming `issuer` (which
/// may differ from where it is served).
async fn fake_discovery(named: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = named.map(str::to_owned).unwrap_or_else(|| base.clone());
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
    });
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_checks_permissions_tenants_issuers_and_hides_the_secret() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let issuer = fake_discovery(None).await;

    // A discovery document naming another issuer is refused.
    let elsewhere = fake_discovery(Some("https://idp.example")).await;
    let (s, v) = create_source(&server, &owner, &elsewhere, "groups").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_field");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("https://idp.example"),
        "{v}"
    );
    // Plain HTTP off loopback is refused before any request.
    let (s, v) = create_source(&server, &owner, "http://idp.example", "groups").await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_field"))
    );

    // An auditor may list, not create.
    server
        .create_account(&owner, "audra", "auditor", "audra-password")
        .await;
    let auditor = server.token("default", "audra", "audra-password").await;
    let (s, v) = create_source(&server, &auditor, &issuer, "groups").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    let (s, v) = create_source(&server, &owner, &issuer, "groups").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, dup) = create_source(&server, &owner, &issuer, "groups").await;
    assert_eq!(s, StatusCode::CONFLICT, "{dup}");
    let (s, list) = server
        .api(Method::GET, "/api/v1/identity-sources", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["scopes"], "openid profile email");
    assert_eq!(list[0]["username_claim"], "preferred_username");
    assert!(!list.to_string().contains(SECRET), "{list}");
    assert!(!v.to_string().contains(SECRET), "{v}");
    let (s, _) = server
        .api(Method::DELETE, "/api/v1/identity-sources/corp", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Another tenant sees nothing and cannot delete it.
    let op = server.token("system", "operator", PW).await;
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/tenants",
            &op,
            Some(json!({"name": "beta", "owner_password": "beta-owner-pw"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let beta = server.token("beta", "admin", "beta-owner-pw").await;
    let (_, list) = server.api(Method::GET, "/api/v1/identity-sources", &beta, None).await;
    assert_eq!(list, json!([]));
    let (s, _) = server
        .api(Method::DELETE, "/api/v1/identity-sources/corp", &beta, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // beta's sign-in page does not offer default's source.
    let mut b = Browser2::new();
    let page = b.get(&format!("{}/portal/login?tenant=beta", server.url)).await;
    assert!(!page.body.contains("Sign in with corp"));

    let (s, _) = server
        .api(Method::DELETE, "/api/v1/identity-sources/corp", &owner, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Each change is in the audit trail, under its action name; never the secret.
    let trail = server.audit(&owner, "action=idp.create").await;
    assert!(
        trail
            .iter()
            .any(|e| e["result"] == "ok" && e["target"] == "identity-source:corp"),
        "{trail:?}"
    );
    assert!(trail.iter().any(|e| e["result"] == "denied"), "{trail:?}");
    assert!(!format!("{trail:?}").contains(SECRET));
    // The auditor's refused delete and the owner's (beta's attempt is in beta's trail).
    assert_eq!(server.audit(&owner, "action=idp.delete").await.len(), 2);
    assert_eq!(server.audit(&beta, "action=idp.delete").await.len(), 1);
    let (_, list) = server.api(Method::GET, "/api/v1/identity-sources", &owner, None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_without_a_state_or_with_a_forged_one_are_refused() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let issuer = fake_discovery(None).await;
    let (s, src) = create_source(&server, &owner, &issuer, "groups").await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    let mut b = Browser2::new();
    // Start: off to the provider with PKCE, state and nonce.
    let start = b
        .get(&format!(
            "{}/portal/oidc/{}/start?next=/portal",
            server.url,
            src["id"].as_str().unwrap()
        ))
        .await;
    assert!(start.status.is_redirection());
    let to = reqwest::Url::parse(start.location.as_deref().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&format!("{issuer}/auth?")));
    let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], "ward");
    assert_eq!(q["redirect_uri"], format!("{}/portal/oidc/callback", server.url));
    for k in ["state", "nonce", "code_challenge"] {
        assert!(q[k].len() >= 43, "{k}");
    }
    let cb = format!("{}/portal/oidc/callback", server.url);
    let none = b.get(&format!("{cb}?code=abc")).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let forged = b.get(&format!("{cb}?code=abc&state=forged-state-value")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("unknown, already used or expired"));
    // The real state from another browser (login CSRF): refused, and used up.
    let mut other = Browser2::new();
    let stolen = other.get(&format!("{cb}?code=abc&state={}", q["state"])).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert!(stolen.body.contains("another browser"), "{}", stolen.body);
    let used = b.get(&format!("{cb}?code=abc&state={}", q["state"])).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    // No session was made.
    let home = b.get(&format!("{}/portal", server.url)).await;
    assert!(home.status.is_redirection());
}
