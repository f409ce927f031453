//! The admin console over real HTTP, as a browser uses it: cookies, forms,
//! redirects. Each test plays a browser with its own cookie jar, and reads
//! what the API says happened.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_signs_in_and_sets_up_access_through_the_console() {
    let server = Server::start().await;
    let mut b = Browser::new(&server);

    // Not signed in: every page sends the browser to sign in, and back.
    let page = b.get("/rules").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login?next=%2Frules"));

    let form = b.get("/login").await;
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(form.headers["x-frame-options"], "DENY");
    let wrong = b
        .post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("tenant", "default"),
                ("username", "admin"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);

    let signed_in = b.sign_in("default", "admin", PW).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    assert_eq!(signed_in.location(), Some("/rules"));
    assert!(b.cookies.contains_key("ward_session"));

    let dash = b.get("/").await;
    assert_eq!(dash.status, StatusCode::OK);
    for section in [
        "Dashboard",
        "connections allowed, last 24 h",
        "Device compliance",
        "<svg",
    ] {
        assert!(dash.body.contains(section), "dashboard lacks {section}");
    }

    let csrf = b.csrf_of("/users").await;
    let page = b.post("/groups", &[("csrf", &csrf), ("name", "eng")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b
        .post("/users", &[("csrf", &csrf), ("name", "alice"), ("groups", "eng")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let users = b.get("/users?done=user").await;
    assert!(users.body.contains("User created."));
    assert!(users.body.contains("alice"));

    // A bad application is refused with the API's reason, and nothing is made.
    let page = b
        .post(
            "/apps",
            &[
                ("csrf", &csrf),
                ("name", "db"),
                ("addresses", "not an address!"),
                ("ports", "5432"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("role=\"alert\""));
    let page = b
        .post(
            "/apps",
            &[
                ("csrf", &csrf),
                ("name", "db"),
                ("addresses", "db.corp.example, 10.0.0.5"),
                ("ports", "5432"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b
        .post(
            "/rules",
            &[
                ("csrf", &csrf),
                ("priority", "10"),
                ("action", "allow"),
                ("apps", "db"),
                ("groups", "eng"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);

    // "Would alice reach db.corp.example:5432?"
    let tested = b
        .post(
            "/rules/test",
            &[("csrf", &csrf), ("user", "alice"), ("to", "db.corp.example:5432")],
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK);
    assert!(
        tested.body.contains("class=\"allow\">allow</strong>"),
        "{}",
        tested.body
    );
    let tested = b
        .post(
            "/rules/test",
            &[("csrf", &csrf), ("user", "alice"), ("to", "db.corp.example:22")],
        )
        .await;
    assert!(tested.body.contains("class=\"deny\">deny</strong>"), "{}", tested.body);

    // An enrolment code for alice, ready to paste.
    let page = b.post("/users/alice/enroll-code", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("ward agent enroll --server"), "{}", page.body);

    // The API sees what the console did, and the trail names who did it.
    let token = server.token("default", "admin", PW).await;
    let (_, rules) = server.api(reqwest::Method::GET, "/api/v1/rules", &token, None).await;
    assert_eq!(rules["items"][0]["apps"], json!(["db"]));
    let trail = server.audit(&token, "actor=admin").await;
    for action in [
        "auth.login",
        "group.create",
        "user.create",
        "app.create",
        "rule.create",
        "device.enroll_code",
    ] {
        assert!(
            trail.iter().any(|e| e["action"] == action && e["result"] == "ok"),
            "no {action} in {trail:#?}"
        );
    }
    assert!(trail
        .iter()
        .any(|e| e["action"] == "app.create" && e["result"] == "failed"));

    // Signing out ends the session: the old cookie no longer works.
    let old = b.cookies["ward_session"].clone();
    let csrf = b.csrf_of("/").await;
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), Some("/login"));
    assert!(!b.cookies.contains_key("ward_session"));
    b.cookies.insert("ward_session".into(), old);
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_right_csrf_token_change_nothing() {
    let server = Server::start().await;
    let mut b = Browser::new(&server);
    assert_eq!(b.sign_in("default", "admin", PW).await.status, StatusCode::SEE_OTHER);
    let csrf = b.csrf_of("/users").await;

    let missing = b.post("/users", &[("name", "mallory")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = b
        .post(
            "/users",
            &[("csrf", "0123456789abcdef0123456789abcdef"), ("name", "mallory")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // The right token, from a page of another site.
    let req = b
        .http
        .post(format!("{}/users", b.url))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", FORM)
        .body(encode(&[("csrf", csrf.as_str()), ("name", "mallory")]));
    assert_eq!(b.send(req).await.status, StatusCode::FORBIDDEN);
    // Another session's token does not fit this one.
    let mut other = Browser::new(&server);
    other.sign_in("default", "admin", PW).await;
    let theirs = other.csrf_of("/users").await;
    assert_ne!(theirs, csrf);
    let crossed = b.post("/users", &[("csrf", &theirs), ("name", "mallory")]).await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);

    let token = server.token("default", "admin", PW).await;
    let (_, users) = server.api(reqwest::Method::GET, "/api/v1/users", &token, None).await;
    assert_eq!(users["items"], json!([]), "no user was created");

    // Sign-in needs the token its form set: a foreign page cannot sign a browser in.
    let mut fresh = Browser::new(&server);
    let forged = fresh
        .post(
            "/login",
            &[("tenant", "default"), ("username", "admin"), ("password", PW)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!fresh.cookies.contains_key("ward_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_every_page_but_changes_nothing() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    server
        .create_account(&owner, "audra", "auditor", "audra-password")
        .await;
    let mut b = Browser::new(&server);
    assert_eq!(
        b.sign_in("default", "audra", "audra-password").await.status,
        StatusCode::SEE_OTHER
    );

    for path in [
        "/",
        "/users",
        "/devices",
        "/apps",
        "/rules",
        "/records",
        "/audit",
        "/identity-sources",
        "/accounts",
        "/apikeys",
        "/internet",
        "/internet/rules",
        "/internet/lists",
        "/internet/records",
        "/internet/records?kind=dns",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        for edit in [
            "Create user",
            "Create application",
            "Create rule",
            "Create list",
            "Save settings",
            "Add provider",
            "Revoke",
            "Delete",
            "Disable",
            "Set password",
        ] {
            assert!(!page.body.contains(edit), "{path} offers the auditor {edit:?}");
        }
    }
    // Posting anyway is refused, recorded, and changes nothing.
    let csrf = b.csrf_of("/rules").await;
    let page = b
        .post(
            "/apps",
            &[
                ("csrf", &csrf),
                ("name", "db"),
                ("addresses", "10.0.0.5"),
                ("ports", "5432"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let (_, apps) = server.api(reqwest::Method::GET, "/api/v1/apps", &owner, None).await;
    assert_eq!(apps["items"], json!([]));
    let trail = server.audit(&owner, "actor=audra&action=app.create").await;
    assert_eq!(trail.len(), 1, "{trail:#?}");
    assert_eq!(trail[0]["result"], "denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_owner_sees_only_its_own_tenant() {
    let server = Server::start().await;
    let op = server.token("system", "operator", PW).await;
    let (s, v) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/tenants",
            &op,
            Some(json!({"name": "beta", "owner_password": "beta-owner-pw"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let owner = server.token("default", "admin", PW).await;
    let (s, _) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/users",
            &owner,
            Some(json!({"name": "alice"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let mut beta = Browser::new(&server);
    assert_eq!(
        beta.sign_in("beta", "admin", "beta-owner-pw").await.status,
        StatusCode::SEE_OTHER
    );
    let users = beta.get("/users").await;
    assert!(!users.body.contains("alice"), "beta sees default's user");
    // Acting on default's user by name finds nothing in beta.
    let csrf = users.csrf();
    let page = beta
        .post("/users/alice/state", &[("csrf", &csrf), ("disabled", "true")])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let (_, alice) = server
        .api(reqwest::Method::GET, "/api/v1/users/alice", &owner, None)
        .await;
    assert_eq!(alice["disabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_escaped_and_sign_in_returns_only_to_this_console() {
    let server = Server::start().await;
    let mut b = Browser::new(&server);

    // A planted session cookie is not a session, and a sign-in replaces it.
    b.cookies.insert("ward_session".into(), "ws_planted".into());
    assert_eq!(b.get("/").await.status, StatusCode::SEE_OTHER);
    let form = b.get("/login?next=%2F%2Fevil.example%2F").await;
    assert!(form.body.contains("name=\"next\" value=\"/\""), "{}", form.body);
    let page = b
        .post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("tenant", "default"),
                ("username", "admin"),
                ("password", PW),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/"));
    assert_ne!(b.cookies["ward_session"], "ws_planted");

    // What a user types comes back escaped.
    let script = "\"><script>alert(1)</script>";
    let csrf = b.csrf_of("/rules").await;
    let page = b
        .post(
            "/rules/test",
            &[("csrf", &csrf), ("user", script), ("to", "x.example:1")],
        )
        .await;
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    // (No such user: the error page names what was asked for, escaped.)
    let page = b
        .get(&format!(
            "/records?user={}",
            "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        ))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    let page = b.get("/login?next=%2F%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);

    // A nonsense filter gets a clear answer, not a crash.
    let page = b.get("/records?since=yesterday-ish").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_reordered_from_the_api_and_the_console() {
    use reqwest::Method;
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let (s, _) = server
        .api(
            Method::POST,
            "/api/v1/apps",
            &owner,
            Some(json!({"name": "db", "addresses": ["10.0.0.5"], "ports": ["5432"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut ids = Vec::new();
    for (p, action) in [(10, "allow"), (20, "block"), (30, "allow")] {
        let (s, v) = server
            .api(
                Method::POST,
                "/api/v1/rules",
                &owner,
                Some(json!({"priority": p, "action": action, "apps": ["db"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let order = |v: &Value| -> Vec<(String, u64)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r["priority"].as_u64().unwrap()))
            .collect()
    };

    // A new priority; one in use is a conflict; nothing to change is refused.
    let path = format!("/api/v1/rules/{}", ids[2]);
    let (s, v) = server
        .api(Method::PATCH, &path, &owner, Some(json!({"priority": 5})))
        .await;
    assert_eq!((s, v["priority"].as_u64()), (StatusCode::OK, Some(5)));
    let (s, v) = server
        .api(Method::PATCH, &path, &owner, Some(json!({"priority": 20})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (s, _) = server.api(Method::PATCH, &path, &owner, Some(json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The whole order at once, keeping the numbers in use (5, 10, 20).
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/rules/reorder",
            &owner,
            Some(json!({"ids": [ids[1], ids[0], ids[2]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        order(&v),
        vec![(ids[1].clone(), 5), (ids[0].clone(), 10), (ids[2].clone(), 20)]
    );
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/rules/reorder",
            &owner,
            Some(json!({"ids": [ids[0]]})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    // An auditor may not reorder.
    server
        .create_account(&owner, "audra", "auditor", "audra-password")
        .await;
    let auditor = server.token("default", "audra", "audra-password").await;
    let (s, _) = server
        .api(
            Method::POST,
            "/api/v1/rules/reorder",
            &auditor,
            Some(json!({"ids": [ids[0], ids[1], ids[2]]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // In the console: move the last rule up.
    let mut b = Browser::new(&server);
    b.sign_in("default", "admin", PW).await;
    let csrf = b.csrf_of("/rules").await;
    let page = b
        .post(&format!("/rules/{}/move", ids[2]), &[("csrf", &csrf), ("dir", "up")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, v) = server.api(Method::GET, "/api/v1/rules", &owner, None).await;
    assert_eq!(
        order(&v),
        vec![(ids[1].clone(), 5), (ids[2].clone(), 10), (ids[0].clone(), 20)]
    );
    let trail = server.audit(&owner, "action=rule.reorder").await;
    let results: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    // Newest first: the console's move, the auditor's refusal, the stale list, the first reorder.
    assert_eq!(
        results,
        vec![
            ("admin", "ok"),
            ("audra", "denied"),
            ("admin", "failed"),
            ("admin", "ok")
        ]
    );
}

/// The current TOTP code of a base32 secret.
fn totp_now(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_sign_in_is_set_up_and_used_in_the_console() {
    use reqwest::Method;
    let server = Server::start().await;
    let mut b = Browser::new(&server);
    b.sign_in("default", "admin", PW).await;

    // Set up: the page shows the QR code and the secret; the app's code turns it on.
    let csrf = b.csrf_of("/account").await;
    let page = b.post("/account/mfa", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data:image/svg+xml;base64,"));
    let at = page.body.find("Secret: <code>").unwrap() + "Secret: <code>".len();
    let secret = page.body[at..at + page.body[at..].find('<').unwrap()].to_owned();
    let wrong = b
        .post("/account/mfa/confirm", &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert!(wrong.status.is_client_error(), "{}", wrong.status);
    let page = b
        .post("/account/mfa/confirm", &[("csrf", &csrf), ("code", &totp_now(&secret))])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("recovery codes"), "{}", page.body);
    let recovery: Vec<String> = page
        .body
        .split("<li><code>")
        .skip(1)
        .map(|c| c[..c.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{}", page.body);

    // Signing in now needs the second factor.
    let csrf = b.csrf_of("/").await;
    b.post("/logout", &[("csrf", &csrf)]).await;
    let page = b.sign_in("default", "admin", PW).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("second factor"), "{}", page.body);
    assert!(!b.cookies.contains_key("ward_session"));
    let form = b.get("/login").await;
    let page = b
        .post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("tenant", "default"),
                ("username", "admin"),
                ("password", PW),
                ("otp", &recovery[0]),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(b.cookies.contains_key("ward_session"));

    // The owner requires MFA of every administrator: one without it is sent
    // to set it up before any other page.
    let owner = {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", server.url))
            // (The code of this 30 s step was used up by the confirmation: a recovery code.)
            .json(&json!({"tenant": "default", "username": "admin", "password": PW, "otp": recovery[1]}))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    server.create_account(&owner, "ada", "admin", "ada-password").await;
    let (s, v) = server
        .api(
            Method::PUT,
            "/api/v1/tenant/settings",
            &owner,
            Some(json!({"require_admin_mfa": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut ada = Browser::new(&server);
    assert_eq!(
        ada.sign_in("default", "ada", "ada-password").await.status,
        StatusCode::SEE_OTHER
    );
    let page = ada.get("/users").await;
    assert_eq!(page.location(), Some("/account"));
    let page = ada.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("requires a second factor"), "{}", page.body);
    let csrf = page.csrf();
    let page = ada.post("/users", &[("csrf", &csrf), ("name", "mallory")]).await;
    assert_eq!(page.location(), Some("/account"), "{}", page.body);
    let page = ada.post("/account/mfa", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_users_password_is_set_through_the_users_page() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let (s, v) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/users",
            &owner,
            Some(json!({"name": "alice"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut b = Browser::new(&server);
    assert_eq!(b.sign_in("default", "admin", PW).await.status, StatusCode::SEE_OTHER);

    let page = b.get("/users").await;
    assert!(page.body.contains("action=\"/users/alice/password\""), "{}", page.body);
    assert!(page.body.contains("type=\"password\""));
    assert!(page.body.contains(">none<"), "the table says alice has no password");
    let csrf = page.csrf();

    // Too short: refused on the page, nothing set.
    let page = b
        .post("/users/alice/password", &[("csrf", &csrf), ("password", "short")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("at least 10 characters"), "{}", page.body);
    // Without the CSRF field: refused.
    let page = b
        .post("/users/alice/password", &[("password", "alice-portal-pass")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let (_, v) = server
        .api(reqwest::Method::GET, "/api/v1/users/alice", &owner, None)
        .await;
    assert_eq!(v["has_password"], false);

    let secret = "alice portal pass";
    let page = b
        .post("/users/alice/password", &[("csrf", &csrf), ("password", secret)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/users?done=user-password"));
    let page = b.get("/users?done=user-password").await;
    assert!(page.body.contains("Password set"), "{}", page.body);
    assert!(page.body.contains(">set<"), "the table says alice has a password");
    let (_, v) = server
        .api(reqwest::Method::GET, "/api/v1/users/alice", &owner, None)
        .await;
    assert_eq!(v["has_password"], true);

    // The table shows a lock-out.
    let store = &server.running.as_ref().unwrap().store;
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap();
    let until = ward_server::state::now_ms() + 60_000;
    store
        .lock_user(&tenant.id, v["id"].as_str().unwrap(), until)
        .await
        .unwrap();
    let page = b.get("/users").await;
    assert!(page.body.contains(">locked<"), "{}", page.body);

    // The trail has it under the API's name, without the password.
    let trail = server.audit(&owner, "action=user.set_password").await;
    assert!(
        trail
            .iter()
            .any(|e| e["result"] == "ok" && e["target"] == "user:alice" && e["actor"] == "admin"),
        "{trail:#?}"
    );
    let everything = serde_json::to_string(&server.audit(&owner, "limit=500").await).unwrap();
    assert!(!everything.contains(secret), "the password reached the trail");

    // An auditor cannot set one, even by posting the form.
    server
        .create_account(&owner, "audra", "auditor", "audra-password")
        .await;
    let mut a = Browser::new(&server);
    a.sign_in("default", "audra", "audra-password").await;
    let csrf = a.csrf_of("/users").await;
    let page = a
        .post(
            "/users/alice/password",
            &[("csrf", &csrf), ("password", "audra-chose-this")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let denied = server.audit(&owner, "actor=audra&action=user.set_password").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["result"], "denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_users_two_step_sign_in_is_reset_through_the_users_page() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let (s, v) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/users",
            &owner,
            Some(json!({"name": "alice"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut b = Browser::new(&server);
    b.sign_in("default", "admin", PW).await;
    let page = b.get("/users").await;
    assert!(
        !page.body.contains("mfa-reset"),
        "no reset without two-step: {}",
        page.body
    );

    // Alice turned two-step sign-in on in the portal (here: in the store).
    let store = &server.running.as_ref().unwrap().store;
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap();
    let alice = v["id"].as_str().unwrap();
    let now = ward_server::state::now_ms();
    assert!(store
        .start_totp_of(ward_store::MfaOwner::User, &tenant.id, alice, "sealed", now)
        .await
        .unwrap());
    assert!(store
        .confirm_totp_of(ward_store::MfaOwner::User, &tenant.id, alice, 1, &[], now)
        .await
        .unwrap());
    let page = b.get("/users").await;
    assert!(page.body.contains(">two-step<"), "{}", page.body);
    assert!(page.body.contains("action=\"/users/alice/mfa-reset\""), "{}", page.body);
    let csrf = page.csrf();

    // Without the CSRF field: refused; an auditor: refused.
    let page = b.post("/users/alice/mfa-reset", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    server
        .create_account(&owner, "audra", "auditor", "audra-password")
        .await;
    let mut a = Browser::new(&server);
    a.sign_in("default", "audra", "audra-password").await;
    let audra_csrf = a.csrf_of("/users").await;
    let page = a.post("/users/alice/mfa-reset", &[("csrf", &audra_csrf)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let (_, v) = server
        .api(reqwest::Method::GET, "/api/v1/users/alice", &owner, None)
        .await;
    assert_eq!(v["mfa_enabled"], true);

    // The admin resets it.
    let page = b.post("/users/alice/mfa-reset", &[("csrf", &csrf)]).await;
    assert_eq!(page.location(), Some("/users?done=user-mfa-reset"), "{}", page.body);
    let page = b.get("/users?done=user-mfa-reset").await;
    assert!(page.body.contains("Two-step sign-in turned off"), "{}", page.body);
    assert!(!page.body.contains(">two-step<"));
    let (_, v) = server
        .api(reqwest::Method::GET, "/api/v1/users/alice", &owner, None)
        .await;
    assert_eq!(v["mfa_enabled"], false);
    let trail = server.audit(&owner, "action=user.mfa_reset").await;
    assert!(
        trail.iter().any(|e| e["result"] == "ok" && e["actor"] == "admin"),
        "{trail:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_api_keys_are_managed_in_the_console() {
    use reqwest::Method;
    let server = Server::start().await;
    let mut b = Browser::new(&server);
    b.sign_in("default", "admin", PW).await;
    let csrf = b.csrf_of("/accounts").await;

    let short = b
        .post(
            "/accounts",
            &[
                ("csrf", &csrf),
                ("name", "ops"),
                ("role", "admin"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.body);
    let made = b
        .post(
            "/accounts",
            &[
                ("csrf", &csrf),
                ("name", "ops"),
                ("role", "admin"),
                ("password", "ops-password-1"),
            ],
        )
        .await;
    assert_eq!(made.location(), Some("/accounts?done=account"), "{}", made.body);
    let ops = server.token("default", "ops", "ops-password-1").await;
    let (s, who) = server.api(Method::GET, "/api/v1/whoami", &ops, None).await;
    assert_eq!((s, who["role"].as_str()), (StatusCode::OK, Some("admin")));
    // Not the owner's role: an account never grants more than its creator has, and the owner is unique.
    let owner_again = b
        .post(
            "/accounts",
            &[
                ("csrf", &csrf),
                ("name", "boss"),
                ("role", "owner"),
                ("password", "boss-password-1"),
            ],
        )
        .await;
    assert!(owner_again.status.is_client_error(), "{}", owner_again.status);

    // An API key, shown once, that works until revoked.
    let page = b
        .post(
            "/apikeys",
            &[
                ("csrf", &csrf),
                ("name", "ci"),
                ("role_cap", "auditor"),
                ("expires_days", "30"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let at = page.body.find("<pre>wk_").unwrap() + "<pre>".len();
    let key = page.body[at..at + page.body[at..].find('<').unwrap()].to_owned();
    let (s, who) = server.api(Method::GET, "/api/v1/whoami", &key, None).await;
    assert_eq!(s, StatusCode::OK, "{who}");
    assert_eq!(who["credential"], "api_key");
    let id = who["api_key_id"].as_str().unwrap().to_owned();
    // A key is for scripts: as a cookie it opens no console page.
    let mut with_key = Browser::new(&server);
    with_key.cookies.insert("ward_session".into(), key.clone());
    assert_eq!(with_key.get("/").await.status, StatusCode::SEE_OTHER);
    let bad = b
        .post("/apikeys", &[("csrf", &csrf), ("name", "x"), ("expires_days", "-3")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let page = b.post(&format!("/apikeys/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(page.location(), Some("/apikeys?done=apikey-revoked"), "{}", page.body);
    let (s, _) = server.api(Method::GET, "/api/v1/whoami", &key, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // An auditor sees accounts and keys, and no button to change them.
    b.post(
        "/accounts",
        &[
            ("csrf", &csrf),
            ("name", "audra"),
            ("role", "auditor"),
            ("password", "audra-password"),
        ],
    )
    .await;
    let mut auditor = Browser::new(&server);
    auditor.sign_in("default", "audra", "audra-password").await;
    for path in ["/accounts", "/apikeys"] {
        let page = auditor.get(path).await;
        assert_eq!(page.status, StatusCode::OK);
        for edit in ["Create account", "Create key", "Revoke", "Delete", "Unlock"] {
            assert!(!page.body.contains(edit), "{path} offers the auditor {edit:?}");
        }
    }
    let acsrf = auditor.csrf_of("/accounts").await;
    let refused = auditor.post("/accounts/ops/delete", &[("csrf", &acsrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The owner deletes ops; its session ends with it.
    let page = b.post("/accounts/ops/delete", &[("csrf", &csrf)]).await;
    assert_eq!(page.location(), Some("/accounts?done=account-deleted"), "{}", page.body);
    let (s, _) = server.api(Method::GET, "/api/v1/whoami", &ops, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_source_whose_issuer_does_not_answer_is_refused() {
    let server = Server::start().await;
    let mut b = Browser::new(&server);
    b.sign_in("default", "admin", PW).await;
    let page = b.get("/identity-sources").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("/portal/login?tenant=default"), "{}", page.body);
    let csrf = page.csrf();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{closed}");
    for issuer in [issuer.as_str(), "http://id.example.com"] {
        let refused = b
            .post(
                "/identity-sources",
                &[
                    ("csrf", &csrf),
                    ("name", "corp"),
                    ("issuer", issuer),
                    ("client_id", "ward"),
                    ("client_secret", "s3cret-value"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{issuer}: {}", refused.body);
        assert!(refused.body.contains("role=\"alert\""));
        assert!(!refused.body.contains("s3cret-value"), "the secret is not echoed");
    }
    assert!(b
        .get("/identity-sources")
        .await
        .body
        .contains("None: end users sign in with passwords."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_rules_and_lists_are_set_up_in_the_console() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let mut b = Browser::new(&server);
    assert_eq!(b.sign_in("default", "admin", PW).await.status, StatusCode::SEE_OTHER);
    server
        .api(
            reqwest::Method::POST,
            "/api/v1/users",
            &owner,
            Some(json!({"name": "alice"})),
        )
        .await;

    let csrf = b.csrf_of("/internet/lists").await;
    let page = b
        .post(
            "/internet/lists",
            &[
                ("csrf", &csrf),
                ("name", "ads"),
                ("description", "ad servers"),
                ("domains", "ads.example\n*.tracker.example"),
                ("url", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b.get("/internet/lists").await;
    assert!(page.body.contains("ad servers"), "{}", page.body);

    let page = b
        .post(
            "/internet/rules",
            &[
                ("csrf", &csrf),
                ("priority", "10"),
                ("action", "block"),
                ("lists", "ads"),
                ("users", ""),
                ("groups", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, rules) = server
        .api(reqwest::Method::GET, "/api/v1/internet/rules", &owner, None)
        .await;
    assert_eq!(rules["items"][0]["action"], "block");
    assert_eq!(rules["items"][0]["lists"], json!(["ads"]));

    // The what-if: a name below the wildcard is blocked by that rule.
    let page = b
        .post(
            "/internet/rules/test",
            &[("csrf", &csrf), ("user", "alice"), ("host", "x.Tracker.example")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("x.tracker.example"), "{}", page.body);
    assert!(page.body.contains(">block<"), "{}", page.body);

    // A bad rule is refused with the API's message, and nothing is created.
    let page = b
        .post(
            "/internet/rules",
            &[
                ("csrf", &csrf),
                ("priority", "11"),
                ("action", "block"),
                ("lists", "nope"),
            ],
        )
        .await;
    assert!(page.status.is_client_error(), "{}", page.body);
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);

    // Settings: default action and a bypass entry.
    let page = b
        .post(
            "/internet/settings",
            &[
                ("csrf", &csrf),
                ("enabled", "on"),
                ("default_action", "block"),
                ("dns_block_mode", "nxdomain"),
                ("dns_block_ipv4", ""),
                ("warn_minutes", "30"),
                ("bypass", "update.example.com\n10.9.0.0/16"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, settings) = server
        .api(reqwest::Method::GET, "/api/v1/internet/settings", &owner, None)
        .await;
    assert_eq!(settings["default_action"], "block");
    assert_eq!(settings["warn_minutes"], 30);
    assert_eq!(settings["bypass"], json!(["update.example.com", "10.9.0.0/16"]));

    let page = b.get("/internet").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Top blocked sites"), "{}", page.body);
    let trail = server.audit(&owner, "action=internet_rule.create").await;
    assert_eq!(trail.len(), 2, "{trail:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspection_ca_downloads_from_the_internet_overview() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let mut b = Browser::new(&server);

    // Not signed in: sign in first.
    let page = b.get("/internet/inspection-ca").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/login?next=%2Finternet%2Finspection-ca"));
    assert_eq!(b.sign_in("default", "admin", PW).await.status, StatusCode::SEE_OTHER);

    // Inspection off (never on): no link, and no CA to download.
    let page = b.get("/internet").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("/internet/inspection-ca"), "{}", page.body);
    let page = b.get("/internet/inspection-ca").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("no inspection CA"), "{}", page.body);

    // Turned on in the console: the overview links the certificate.
    let csrf = b.csrf_of("/internet").await;
    let page = b
        .post(
            "/internet/settings",
            &[
                ("csrf", &csrf),
                ("enabled", "on"),
                ("default_action", "allow"),
                ("dns_block_mode", "nxdomain"),
                ("dns_block_ipv4", ""),
                ("warn_minutes", "60"),
                ("bypass", ""),
                ("inspection", "on"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b.get("/internet").await;
    assert!(
        page.body.contains("href=\"/internet/inspection-ca\"") && page.body.contains("Download the inspection CA"),
        "{}",
        page.body
    );
    let file = b.get("/internet/inspection-ca").await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.body);
    assert_eq!(file.headers["content-type"], "application/x-pem-file");
    assert_eq!(
        file.headers["content-disposition"],
        "attachment; filename=\"ward-inspection-ca.pem\""
    );
    assert!(file.body.starts_with("-----BEGIN CERTIFICATE-----"), "{}", file.body);
    let from_api = reqwest::Client::new()
        .get(format!("{}/api/v1/internet/inspection-ca", server.url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(file.body, from_api, "the same certificate as the API's");

    // An account that may not read the internet settings gets neither.
    server.create_account(&owner, "desk", "helpdesk", "desk-password").await;
    let mut desk = Browser::new(&server);
    assert_eq!(
        desk.sign_in("default", "desk", "desk-password").await.status,
        StatusCode::SEE_OTHER
    );
    let page = desk.get("/internet/inspection-ca").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.body.contains("BEGIN CERTIFICATE"));
}
