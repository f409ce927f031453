//! The user portal over real HTTP: an end user signs in, sees what is open
//! to them and their devices, and approves (or denies) an agent's enrolment
//! request, which the agent then redeems like any enrolment code.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// alice (password set, in group eng), an application `db` the rules open
/// to eng, and bob (password set, nothing open).
async fn set_up(server: &Server) -> String {
    let owner = server.token("default", "admin", PW).await;
    for (path, body) in [
        ("/api/v1/groups", json!({"name": "eng"})),
        ("/api/v1/users", json!({"name": "alice", "groups": ["eng"]})),
        ("/api/v1/users", json!({"name": "bob"})),
        (
            "/api/v1/apps",
            json!({"name": "db", "addresses": ["db.corp.example"], "ports": ["5432"]}),
        ),
        (
            "/api/v1/apps",
            json!({"name": "hidden", "addresses": ["10.9.9.9"], "ports": ["22"]}),
        ),
        (
            "/api/v1/rules",
            json!({"priority": 10, "action": "allow", "apps": ["db"], "groups": ["eng"]}),
        ),
    ] {
        let (s, v) = server.api(Method::POST, path, &owner, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
    }
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        let (s, v) = server
            .api(
                Method::PUT,
                &format!("/api/v1/users/{user}/password"),
                &owner,
                Some(json!({ "password": password })),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    owner
}

/// Anonymous API call (the agent's).
async fn anon(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn portal_sign_in(b: &mut Browser, user: &str, password: &str) -> Page {
    let form = b.get("/portal/login").await;
    assert_eq!(form.status, StatusCode::OK);
    b.post(
        "/portal/login",
        &[
            ("csrf", &form.csrf()),
            ("tenant", "default"),
            ("username", user),
            ("password", password),
            ("next", "/portal"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrols_once_its_user_approves_in_the_portal() {
    let server = Server::start().await;
    let owner = set_up(&server).await;

    // The agent asks; it gets a handle, a short code and where to go.
    let (s, req) = anon(&server, "/api/v1/enroll/requests", json!({"name": "alice-laptop"})).await;
    assert_eq!(s, StatusCode::CREATED, "{req}");
    let handle = req["request"].as_str().unwrap().to_owned();
    let user_code = req["user_code"].as_str().unwrap().to_owned();
    assert!(handle.starts_with("wer_"));
    assert_eq!(req["verify_url"], format!("{}/portal/activate", server.url));
    let (_, st) = anon(&server, "/api/v1/enroll/requests/poll", json!({"request": handle})).await;
    assert_eq!(st["state"], "pending");

    // alice signs in; the portal shows what the rules open to her.
    let mut b = Browser::new(&server);
    let page = b.get("/portal").await;
    assert_eq!(page.location(), Some("/portal/login?next=%2Fportal"));
    let wrong = portal_sign_in(&mut b, "alice", "not her password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let page = portal_sign_in(&mut b, "alice", "alice-password").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(b.cookies.contains_key("ward_portal"));
    let home = b.get("/portal").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("db.corp.example"), "{}", home.body);
    assert!(
        !home.body.contains("10.9.9.9"),
        "an application no rule opens is not listed"
    );

    // She types the code (any case, with or without the dash) and sees the device.
    let typed = user_code.replace('-', "").to_lowercase();
    let page = b.get(&format!("/portal/activate?code={typed}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice-laptop"), "{}", page.body);
    assert!(page.body.contains("127.0.0.1"), "the address it asked from is shown");
    let csrf = page.csrf();
    let done = b
        .post(
            "/portal/activate",
            &[("csrf", &csrf), ("code", &user_code), ("decision", "approve")],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Approved"));

    // The agent collects the enrolment code, once, and enrols with it.
    let (_, st) = anon(&server, "/api/v1/enroll/requests/poll", json!({"request": handle})).await;
    assert_eq!(st["state"], "approved", "{st}");
    let code = st["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("wen_"));
    let (_, again) = anon(&server, "/api/v1/enroll/requests/poll", json!({"request": handle})).await;
    assert_eq!(again, json!({"state": "collected"}));
    // An agent's polls are not administration: they stay out of the trail.
    let op = server.token("system", "operator", PW).await;
    let (_, trail) = server
        .api(
            Method::GET,
            "/api/v1/audit?action=device.enroll_request_poll",
            &op,
            None,
        )
        .await;
    assert_eq!(trail["items"], json!([]), "{trail}");
    let (_, trail) = server
        .api(Method::GET, "/api/v1/audit?action=device.enroll_request", &op, None)
        .await;
    assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");
    let (_, csr_pem) = ward_pki::generate_key_and_csr("alice-laptop").unwrap();
    let posture = json!({"os": "linux", "os_version": "12", "hostname": "alice-laptop", "agent_version": "0.1.0"});
    let (s, enrolled) = anon(
        &server,
        "/api/v1/enroll",
        json!({"code": code, "csr_pem": csr_pem, "name": "alice-laptop", "posture": posture}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{enrolled}");
    assert_eq!(enrolled["user"], "alice");
    let device = enrolled["device_id"].as_str().unwrap().to_owned();

    // Her device is listed; she renames it; bob can neither rename nor remove it; she can.
    let home = b.get("/portal").await;
    assert!(home.body.contains(&device), "{}", home.body);
    let page = b
        .post(
            &format!("/portal/devices/{device}/rename"),
            &[("csrf", &home.csrf()), ("name", "alice's <b>ThinkPad</b>")],
        )
        .await;
    assert_eq!(page.location(), Some("/portal?done=renamed"), "{}", page.body);
    let (_, d) = server
        .api(Method::GET, &format!("/api/v1/devices/{device}"), &owner, None)
        .await;
    assert_eq!(d["name"], "alice's <b>ThinkPad</b>");
    let home = b.get("/portal").await;
    assert!(
        home.body.contains("alice&#39;s &lt;b&gt;ThinkPad&lt;/b&gt;")
            || home.body.contains("alice's &lt;b&gt;ThinkPad&lt;/b&gt;"),
        "{}",
        home.body
    );
    let page = b
        .post(
            &format!("/portal/devices/{device}/rename"),
            &[("csrf", &home.csrf()), ("name", " ")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let mut bob = Browser::new(&server);
    assert_eq!(
        portal_sign_in(&mut bob, "bob", "bob-password").await.status,
        StatusCode::SEE_OTHER
    );
    let bob_csrf = bob.get("/portal").await.csrf();
    let page = bob
        .post(&format!("/portal/devices/{device}/remove"), &[("csrf", &bob_csrf)])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = bob
        .post(
            &format!("/portal/devices/{device}/rename"),
            &[("csrf", &bob_csrf), ("name", "bob's now")],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let (_, d) = server
        .api(Method::GET, &format!("/api/v1/devices/{device}"), &owner, None)
        .await;
    assert_eq!(d["state"], "active");
    // Her device's session started at enrolment; bob cannot end it, she can.
    assert!(enrolled["session_expires_at"].is_string(), "{enrolled}");
    assert!(d["session_expires_at"].is_string(), "{d}");
    let page = bob
        .post(&format!("/portal/devices/{device}/signout"), &[("csrf", &bob_csrf)])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = b
        .post(&format!("/portal/devices/{device}/signout"), &[("csrf", "forged")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "a post without the right CSRF token"
    );
    let csrf = b.get("/portal").await.csrf();
    let page = b
        .post(&format!("/portal/devices/{device}/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.location(), Some("/portal?done=signedout"), "{}", page.body);
    let (_, d) = server
        .api(Method::GET, &format!("/api/v1/devices/{device}"), &owner, None)
        .await;
    assert!(d.get("session_expires_at").is_none(), "signed out: {d}");
    assert_eq!(d["state"], "active");

    let csrf = b.get("/portal").await.csrf();
    let page = b
        .post(&format!("/portal/devices/{device}/remove"), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.location(), Some("/portal?done=removed"), "{}", page.body);
    let (_, d) = server
        .api(Method::GET, &format!("/api/v1/devices/{device}"), &owner, None)
        .await;
    assert_eq!(d["state"], "revoked");

    // Every portal action is in the tenant's trail, by the end user, and
    // admins filter for them.
    let (_, trail) = server
        .api(Method::GET, "/api/v1/audit?actor=user:alice&limit=200", &owner, None)
        .await;
    let events = trail["items"].as_array().unwrap();
    let has = |action: &str, result: &str| {
        events
            .iter()
            .any(|e| e["action"] == action && e["result"] == result && e["actor"] == "user:alice")
    };
    assert!(has("portal.login", "denied"), "the wrong password: {trail:#}");
    assert!(has("portal.login", "ok"), "{trail:#}");
    assert!(has("portal.enroll_approve", "ok"), "{trail:#}");
    assert!(has("portal.device_rename", "ok"), "{trail:#}");
    assert!(has("portal.device_rename", "failed"), "the blank name: {trail:#}");
    assert!(has("portal.device_signout", "ok"), "{trail:#}");
    assert!(has("portal.device_remove", "ok"), "{trail:#}");
    let removal = events.iter().find(|e| e["action"] == "portal.device_remove").unwrap();
    assert_eq!(removal["target"], format!("device:{device}"));
    assert!(!trail.to_string().contains("alice-password"), "never the password");
    let (_, trail) = server
        .api(Method::GET, "/api/v1/audit?actor=user:bob&limit=200", &owner, None)
        .await;
    let bob_events = trail["items"].as_array().unwrap();
    assert!(
        bob_events
            .iter()
            .any(|e| e["action"] == "portal.device_remove" && e["result"] == "failed"),
        "bob's attempt on alice's device: {trail:#}"
    );
    let (_, trail) = server
        .api(Method::GET, "/api/v1/audit?action=portal.login&limit=200", &owner, None)
        .await;
    assert!(trail["items"].as_array().unwrap().len() >= 3, "{trail:#}");
}

/// The tenant's device session length: read, changed in range only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_session_hours_is_a_tenant_setting_in_range() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let (s, v) = server.api(Method::GET, "/api/v1/tenant/settings", &owner, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["device_session_hours"], 168, "{v}");
    for bad in [0, 8761] {
        let (s, v) = server
            .api(
                Method::PUT,
                "/api/v1/tenant/settings",
                &owner,
                Some(json!({"require_admin_mfa": false, "device_session_hours": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, v) = server
        .api(
            Method::PUT,
            "/api/v1/tenant/settings",
            &owner,
            Some(json!({"require_admin_mfa": false, "device_session_hours": 24})),
        )
        .await;
    assert_eq!((s, v["device_session_hours"].clone()), (StatusCode::OK, json!(24)));
    // A change that does not name it leaves it.
    let (_, v) = server
        .api(
            Method::PUT,
            "/api/v1/tenant/settings",
            &owner,
            Some(json!({"require_admin_mfa": false})),
        )
        .await;
    assert_eq!(v["device_session_hours"], 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_unknown_and_excess_requests_enrol_nothing() {
    let server = Server::start().await;
    set_up(&server).await;

    let (_, req) = anon(&server, "/api/v1/enroll/requests", json!({"name": "mystery"})).await;
    let handle = req["request"].as_str().unwrap().to_owned();
    let user_code = req["user_code"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&server);
    portal_sign_in(&mut b, "alice", "alice-password").await;
    let csrf = b.get("/portal/activate").await.csrf();
    let page = b
        .post(
            "/portal/activate",
            &[("csrf", &csrf), ("code", &user_code), ("decision", "deny")],
        )
        .await;
    assert!(page.body.contains("Denied"), "{}", page.body);
    let (_, st) = anon(&server, "/api/v1/enroll/requests/poll", json!({"request": handle})).await;
    assert_eq!(st, json!({"state": "denied"}));
    // A decided code is no longer offered.
    let page = b.get(&format!("/portal/activate?code={user_code}")).await;
    assert!(page.body.contains("No device is waiting"), "{}", page.body);

    // Without the form's token nothing is approved.
    let (_, req) = anon(&server, "/api/v1/enroll/requests", json!({"name": "other"})).await;
    let code2 = req["user_code"].as_str().unwrap().to_owned();
    let page = b
        .post("/portal/activate", &[("code", &code2), ("decision", "approve")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let (_, st) = anon(
        &server,
        "/api/v1/enroll/requests/poll",
        json!({"request": req["request"]}),
    )
    .await;
    assert_eq!(st["state"], "pending");

    // Bad input.
    for bad in ["garbage", "wer_zz", &format!("wer_{}", "0".repeat(64))] {
        let (s, v) = anon(&server, "/api/v1/enroll/requests/poll", json!({ "request": bad })).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{bad}"
        );
    }
    for name in ["", &"x".repeat(65), "a\u{7}b"] {
        let (s, _) = anon(&server, "/api/v1/enroll/requests", json!({ "name": name })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name:?}");
    }
    let page = b.get("/portal/activate?code=%3Cscript%3E").await;
    assert!(!page.body.contains("<script>"), "{}", page.body);

    // One address may keep only a few requests waiting.
    let mut last = StatusCode::CREATED;
    for _ in 0..6 {
        last = anon(&server, "/api/v1/enroll/requests", json!({"name": "flood"}))
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_and_console_sessions_stay_apart() {
    let server = Server::start().await;
    let owner = set_up(&server).await;
    let mut user = Browser::new(&server);
    portal_sign_in(&mut user, "alice", "alice-password").await;
    // A portal session is no console session...
    assert_eq!(user.get("/").await.status, StatusCode::SEE_OTHER);
    // ...and a console session no portal session.
    let mut admin = Browser::new(&server);
    admin.sign_in("default", "admin", PW).await;
    let page = admin.get("/portal").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    // A new password ends the sessions signed in with the old one.
    let mut bob = Browser::new(&server);
    portal_sign_in(&mut bob, "bob", "bob-password").await;
    assert_eq!(bob.get("/portal").await.status, StatusCode::OK);
    let (s, _) = server
        .api(
            Method::PUT,
            "/api/v1/users/bob/password",
            &owner,
            Some(json!({"password": "bob-new-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(bob.get("/portal").await.status, StatusCode::SEE_OTHER);

    // Disabling the user ends her portal session.
    assert_eq!(user.get("/portal").await.status, StatusCode::OK);
    let (s, _) = server
        .api(
            Method::PATCH,
            "/api/v1/users/alice",
            &owner,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user.get("/portal").await.status, StatusCode::SEE_OTHER);
    let page = portal_sign_in(&mut user, "alice", "alice-password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    // Sign-in returns only to portal pages.
    let mut b = Browser::new(&server);
    let form = b.get("/portal/login?next=%2F%2Fevil.example").await;
    assert!(form.body.contains("name=\"next\" value=\"/portal\""), "{}", form.body);
    let page = b
        .post(
            "/portal/login",
            &[
                ("csrf", &form.csrf()),
                ("tenant", "default"),
                ("username", "bob"),
                ("password", "bob-new-password"),
                ("next", "/users"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/portal"));
    // Signing out ends the session on the server.
    let old = b.cookies["ward_portal"].clone();
    let csrf = b.get("/portal").await.csrf();
    let out = b.post("/portal/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), Some("/portal/login"));
    b.cookies.insert("ward_portal".into(), old);
    assert_eq!(b.get("/portal").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_locks_the_address_out_like_guessing_passwords() {
    let server = Server::start_with(|c| {
        c.login.address_lock_after = 3;
        c.login.slow_after = 100;
    })
    .await;
    set_up(&server).await;
    let (_, req) = anon(&server, "/api/v1/enroll/requests", json!({"name": "laptop"})).await;
    let user_code = req["user_code"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&server);
    portal_sign_in(&mut b, "alice", "alice-password").await;
    for guess in ["BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM"] {
        if guess == user_code {
            continue;
        }
        let page = b.get(&format!("/portal/activate?code={guess}")).await;
        assert!(page.body.contains("No device is waiting"), "{}", page.body);
    }
    // Now even the right code is not looked up from this address.
    let page = b.get(&format!("/portal/activate?code={user_code}")).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(!page.body.contains("laptop"));
    let (_, st) = anon(
        &server,
        "/api/v1/enroll/requests/poll",
        json!({"request": req["request"]}),
    )
    .await;
    assert_eq!(st["state"], "pending");
}

// ---- two-step sign-in (TOTP) of end users -------------------------------------

fn totp_at(secret: &str, secs: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(secs)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Six digits that are no code of `secret` for any time step near now.
fn wrong_code(secret: &str) -> String {
    let now = unix_now();
    let near: Vec<String> = (0..8).map(|i| totp_at(secret, now + i * 30 - 120)).collect();
    (0..10u32)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// The text between `start` and the next `end` in `body`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let at = body.find(start).unwrap_or_else(|| panic!("no {start:?} in {body}")) + start.len();
    let rest = &body[at..];
    &rest[..rest.find(end).unwrap()]
}

/// Sets up two-step sign-in for the signed-in browser: the secret (base32),
/// the time the confirming code was made for, and the recovery codes.
async fn enrol(b: &mut Browser) -> (String, u64, Vec<String>) {
    let page = b.get("/portal/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Set up two-step sign-in"), "{}", page.body);
    let page = b.post("/portal/account/mfa", &[("csrf", &page.csrf())]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data:image/svg+xml;base64,"), "{}", page.body);
    let secret = between(&page.body, "Secret: <code>", "</code>").to_owned();
    // A wrong first code turns nothing on.
    let csrf = page.csrf();
    let wrong = b
        .post(
            "/portal/account/mfa/confirm",
            &[("csrf", &csrf), ("code", &wrong_code(&secret))],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    let now = unix_now();
    let page = b
        .post(
            "/portal/account/mfa/confirm",
            &[("csrf", &csrf), ("code", &totp_at(&secret, now))],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let codes: Vec<String> = page
        .body
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{}", page.body);
    let page = b.get("/portal/account").await;
    assert!(page.body.contains("Turn off"), "{}", page.body);
    (secret, now, codes)
}

/// The password step: the code's form, and no session yet.
async fn password_step(b: &mut Browser, user: &str, password: &str) -> Page {
    let page = portal_sign_in(b, user, password).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("action=\"/portal/login/mfa\""), "{}", page.body);
    assert!(!b.cookies.contains_key("ward_portal"), "a session before the code");
    assert_eq!(b.get("/portal").await.status, StatusCode::SEE_OTHER);
    page
}

async fn code_step(b: &mut Browser, form: &Page, code: &str) -> Page {
    let pending = between(&form.body, "name=\"pending\" value=\"", "\"").to_owned();
    b.post(
        "/portal/login/mfa",
        &[("csrf", &form.csrf()), ("pending", &pending), ("code", code)],
    )
    .await
}

async fn sign_out(b: &mut Browser) {
    let csrf = b.get("/portal").await.csrf();
    b.post("/portal/logout", &[("csrf", &csrf)]).await;
    assert!(!b.cookies.contains_key("ward_portal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_sign_in_with_a_second_factor_once_they_set_it_up() {
    let server = Server::start_with(|c| c.login.slow_after = 100).await;
    let owner = set_up(&server).await;
    let mut b = Browser::new(&server);
    let page = portal_sign_in(&mut b, "alice", "alice-password").await;
    assert_eq!(page.location(), Some("/portal"));
    assert!(b.get("/portal").await.body.contains("href=\"/portal/account\""));
    let (secret, confirmed_at, recovery) = enrol(&mut b).await;
    let (_, v) = server.api(Method::GET, "/api/v1/users/alice", &owner, None).await;
    assert_eq!(v["mfa_enabled"], true, "{v}");
    let (_, v) = server.api(Method::GET, "/api/v1/users/bob", &owner, None).await;
    assert_eq!(v["mfa_enabled"], false, "{v}");
    sign_out(&mut b).await;

    // A right password is not enough; a wrong code is refused.
    let form = password_step(&mut b, "alice", "alice-password").await;
    let page = code_step(&mut b, &form, &wrong_code(&secret)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("wrong or was already used"), "{}", page.body);
    assert!(!b.cookies.contains_key("ward_portal"));
    // The code that confirmed the set-up was used: it does not sign in again.
    let page = code_step(&mut b, &form, &totp_at(&secret, confirmed_at)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(!b.cookies.contains_key("ward_portal"));
    // The pending sign-in is this browser's: another one cannot finish it.
    let next_code = totp_at(&secret, confirmed_at + 30);
    let mut thief = Browser::new(&server);
    let stolen = code_step(&mut thief, &form, &next_code).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN, "{}", stolen.body);
    assert!(!thief.cookies.contains_key("ward_portal"));
    // The next time step's code signs in.
    let page = code_step(&mut b, &form, &next_code).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/portal"));
    assert_eq!(b.get("/portal").await.status, StatusCode::OK);
    sign_out(&mut b).await;
    // ...once.
    let form = password_step(&mut b, "alice", "alice-password").await;
    let page = code_step(&mut b, &form, &next_code).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);

    // A recovery code signs in once, whatever its case and dashes.
    let page = code_step(&mut b, &form, &recovery[0].to_uppercase().replace('-', " ")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    sign_out(&mut b).await;
    let form = password_step(&mut b, "alice", "alice-password").await;
    let page = code_step(&mut b, &form, &recovery[0]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let page = code_step(&mut b, &form, &recovery[1]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);

    // The trail names the steps.
    let events = server.audit(&owner, "action=portal.login_code").await;
    assert!(events.iter().any(|e| e["result"] != "ok"), "{events:?}");
    assert!(
        events.iter().any(|e| e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("recovery code accepted"))),
        "{events:?}"
    );

    // Turning it off needs a current code.
    let csrf = b.get("/portal/account").await.csrf();
    let page = b
        .post(
            "/portal/account/mfa/disable",
            &[("csrf", &csrf), ("code", &wrong_code(&secret))],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let page = b
        .post(
            "/portal/account/mfa/disable",
            &[("csrf", &csrf), ("code", &recovery[2])],
        )
        .await;
    assert_eq!(page.location(), Some("/portal/account?done=mfa-off"), "{}", page.body);
    sign_out(&mut b).await;
    let page = portal_sign_in(&mut b, "alice", "alice-password").await;
    assert_eq!(page.location(), Some("/portal"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_resets_a_users_second_factor_in_its_own_tenant_only() {
    let server = Server::start_with(|c| {
        c.login.slow_after = 100;
        c.login.lock_after = 3;
    })
    .await;
    let owner = set_up(&server).await;
    let mut b = Browser::new(&server);
    portal_sign_in(&mut b, "alice", "alice-password").await;
    let (secret, _, _) = enrol(&mut b).await;

    // Wrong codes count like wrong passwords: three lock the user out.
    let mut other = Browser::new(&server);
    let form = password_step(&mut other, "alice", "alice-password").await;
    for _ in 0..3 {
        let page = code_step(&mut other, &form, &wrong_code(&secret)).await;
        assert!(page.status.is_client_error(), "{}", page.body);
    }
    let (_, v) = server.api(Method::GET, "/api/v1/users/alice", &owner, None).await;
    assert!(v["locked_until"].is_string(), "{v}");
    let page = portal_sign_in(&mut other, "alice", "alice-password").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    let (s, _) = server
        .api(Method::POST, "/api/v1/users/alice/unlock", &owner, None)
        .await;
    assert_eq!(s, StatusCode::OK);

    // An auditor may not reset it; another tenant's owner does not see alice.
    server.create_account(&owner, "audrey", "auditor", PW).await;
    let auditor = server.token("default", "audrey", PW).await;
    let (s, v) = server
        .api(Method::POST, "/api/v1/users/alice/mfa/reset", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
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
    let (s, v) = server
        .api(Method::POST, "/api/v1/users/alice/mfa/reset", &beta, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = server.api(Method::GET, "/api/v1/users/alice", &owner, None).await;
    assert_eq!(v["mfa_enabled"], true, "{v}");

    // The tenant's administrator resets it: her portal sessions end, and the
    // password alone signs her in again.
    assert_eq!(b.get("/portal").await.status, StatusCode::OK);
    let (s, v) = server
        .api(Method::POST, "/api/v1/users/alice/mfa/reset", &owner, None)
        .await;
    assert_eq!((s, v["mfa_enabled"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    assert_eq!(b.get("/portal").await.status, StatusCode::SEE_OTHER);
    let page = portal_sign_in(&mut b, "alice", "alice-password").await;
    assert_eq!(page.location(), Some("/portal"), "{}", page.body);
    let events = server.audit(&owner, "action=user.mfa_reset").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["result"] == "ok" && e["target"] == "user:alice"),
        "{events:?}"
    );
}
