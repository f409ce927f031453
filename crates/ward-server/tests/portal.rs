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
