//! Internet access control over real HTTP, on SQLite and (when
//! `WARD_TEST_POSTGRES` is set) PostgreSQL: settings, domain lists (a file
//! of a million lines, a download from a loopback server), internet rules
//! and their what-if, proxy credentials, the agent's routing, the gateway
//! snapshot's internet part, and the web and DNS logs.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_server::{Running, Secret, ServerArgs, ServerConfig};
use ward_store::testing::TestStore;

const PW: &str = "bootstrap-pass-1";

struct Harness {
    running: Option<Running>,
    _store: TestStore,
    _data: tempfile::TempDir,
    http: reqwest::Client,
    url: String,
}

impl Harness {
    async fn start(store: TestStore) -> Harness {
        Harness::start_with(store, false).await
    }

    /// `internet_allow_private`: the operator lets internet traffic (list
    /// downloads included) reach internal addresses, as on this loopback.
    async fn start_with(store: TestStore, internet_allow_private: bool) -> Harness {
        let data = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            data_dir: Some(data.path().to_owned()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            database: Some(store.url.clone()),
            ..Default::default()
        };
        let mut c = ServerConfig::load(&args).unwrap();
        c.bootstrap_password = Some(Secret::new(PW));
        c.internet_allow_private = internet_allow_private;
        let running = ward_server::start(c).await.unwrap();
        let url = running.url.clone();
        Harness {
            running: Some(running),
            _store: store,
            _data: data,
            http: reqwest::Client::new(),
            url,
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((ctype, bytes)) = body {
            req = req.header("content-type", ctype).body(bytes);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        self.raw(method, path, Some(token), body).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn login(&self, tenant: &str, user: &str, password: &str) -> String {
        let (s, v) = self
            .raw(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some((
                    "application/json",
                    serde_json::to_vec(&json!({"tenant": tenant, "username": user, "password": password})).unwrap(),
                )),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {tenant}/{user}: {v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Join a gateway (the operator makes the code); its token.
    async fn gateway(&self, op: &str) -> String {
        let (s, v) = self
            .post("/api/v1/gateway-join-codes", op, json!({"name": "edge-1"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (_, csr) = ward_pki::generate_key_and_csr("edge-1").unwrap();
        let join = json!({"code": v["code"], "csr_pem": csr, "addresses": ["127.0.0.1"]});
        let (s, v) = self
            .raw(
                Method::POST,
                "/api/v1/gateway/join",
                None,
                Some(("application/json", serde_json::to_vec(&join).unwrap())),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                tokio::task::block_in_place(|| handle.block_on(r.stop()));
            }
        }
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(ward_store::testing::TestStore::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(t) = ward_store::testing::TestStore::postgres().await else {
                    eprintln!("skipped: set WARD_TEST_POSTGRES to run on PostgreSQL");
                    return;
                };
                super::$name(t).await;
            })*
        }
    };
}

on_both_backends!(
    settings_lists_rules_and_credentials_work_and_refuse_bad_input,
    a_million_line_hosts_file_imports_and_lists_download_from_a_url,
    the_snapshot_routing_and_logs_carry_the_internet_part,
    the_inspection_ca_downloads_for_its_tenant_only,
);

/// Serve `body` once per connection on 127.0.0.1 (for list downloads).
async fn file_server(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let missing = String::from_utf8_lossy(&buf[..n]).contains("/missing");
                let head = if missing {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                };
                let _ = sock.write_all(head.as_bytes()).await;
                if !missing {
                    let _ = sock.write_all(&body).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

async fn settings_lists_rules_and_credentials_work_and_refuse_bad_input(store: TestStore) {
    let h = Harness::start(store).await;
    let owner = h.login("default", "admin", PW).await;
    let op = h.login("system", "operator", PW).await;

    // Settings: defaults, with the banking and health lists made for them.
    let (s, v) = h.get("/api/v1/internet/settings", &owner).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            &v["enabled"],
            &v["default_action"],
            &v["dns"]["block_mode"],
            &v["inspection"],
            &v["warn_minutes"]
        ),
        (
            &json!(true),
            &json!("allow"),
            &json!("nxdomain"),
            &json!(false),
            &json!(60)
        )
    );
    assert_eq!(v["do_not_inspect"], json!(["banking", "health"]));
    let (_, lists) = h.get("/api/v1/domain-lists", &owner).await;
    assert_eq!(lists["items"].as_array().unwrap().len(), 2);
    assert!(lists["items"][0]["entries"].as_u64().unwrap() > 10);
    let put = |body: Value| h.call(Method::PUT, "/api/v1/internet/settings", &owner, Some(body));
    let (s, v) = put(
        json!({"dns": {"block_mode": "address", "block_ipv4": "0.0.0.0", "block_ipv6": "::"},
        "bypass": ["*.Corp.Example", "10.0.0.0/8", "192.0.2.1"], "warn_minutes": 15, "default_action": "block"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["bypass"], json!(["*.corp.example", "10.0.0.0/8", "192.0.2.1/32"]));
    assert_eq!(
        (&v["warn_minutes"], &v["default_action"]),
        (&json!(15), &json!("block"))
    );
    for bad in [
        json!({"dns": {"block_mode": "sinkhole"}}),
        json!({"dns": {"block_mode": "address", "block_ipv4": "not-an-ip"}}),
        json!({"dns": {"block_mode": "address"}}),
        json!({"warn_minutes": 0}),
        json!({"warn_minutes": 1441}),
        json!({"default_action": "warn"}),
        json!({"bypass": ["exa mple.com"]}),
        json!({"bypass": ["10.0.0.0/33"]}),
    ] {
        let (s, v) = put(bad.clone()).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{bad}: {v}");
    }
    let (s, v) = put(json!({"do_not_inspect": ["nope"]})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, v) = put(json!({"surprise": 1})).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"), "{v}");
    let (s, v) = put(json!({"inspection": true})).await;
    assert_eq!((s, &v["inspection"]), (StatusCode::OK, &json!(true)), "{v}");

    // Lists from names; bad names and names taken are refused.
    let (s, v) = h
        .post(
            "/api/v1/domain-lists",
            &owner,
            json!({"name": "ads", "domains": ["Ads.Example", "*.tracker.example"], "description": "ads"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["list"]["id"].as_str().unwrap().starts_with("dl_"));
    assert_eq!(v["list"]["entries"], 2);
    let (s, v) = h.post("/api/v1/domain-lists", &owner, json!({"name": "ads"})).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));
    let (s, v) = h
        .post(
            "/api/v1/domain-lists",
            &owner,
            json!({"name": "bad", "domains": ["ok.example", "no thing"]}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    assert_eq!(h.get("/api/v1/domain-lists/bad", &owner).await.0, StatusCode::NOT_FOUND);
    let (s, v) = h
        .post("/api/v1/domain-lists", &owner, json!({"name": "Bad Name"}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (s, v) = h
        .call(
            Method::PATCH,
            "/api/v1/domain-lists/ads",
            &owner,
            Some(json!({"add": ["new.example", "ads.example"], "remove": ["*.tracker.example"], "description": "d"})),
        )
        .await;
    assert_eq!(
        (s, &v["entries"], &v["description"]),
        (StatusCode::OK, &json!(2), &json!("d")),
        "{v}"
    );
    let (s, v) = h.get("/api/v1/domain-lists/ads/entries?contains=new", &owner).await;
    assert_eq!(
        (s, &v["entries"], &v["total"]),
        (StatusCode::OK, &json!(["new.example"]), &json!(1))
    );
    let (s, v) = h
        .call(
            Method::PATCH,
            "/api/v1/domain-lists/ads",
            &owner,
            Some(json!({"add": ["x y"]})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (s, v) = h.post("/api/v1/domain-lists/ads/refresh", &owner, json!({})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "not from a URL: {v}"
    );

    // Rules, by name; the names must exist.
    let (s, v) = h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    h.post("/api/v1/groups", &owner, json!({"name": "staff"})).await;
    let rule = |extra: Value| {
        let mut r = json!({"priority": 10, "action": "block", "lists": ["ads"], "users": ["alice"]});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    let (s, v) = h.post("/api/v1/internet/rules", &owner, rule(json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("irl_"));
    assert_eq!((&v["lists"], &v["users"]), (&json!(["ads"]), &json!(["alice"])));
    for (extra, status, c) in [
        (json!({"lists": ["nope"]}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"users": ["nobody"]}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"groups": ["nogroup"]}), StatusCode::NOT_FOUND, "not_found"),
        (json!({"global_allow": true}), StatusCode::BAD_REQUEST, "invalid_field"),
        (json!({"priority": 0}), StatusCode::BAD_REQUEST, "invalid_field"),
        (json!({"action": "deny"}), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            json!({"valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ] {
        let (s, v) = h.post("/api/v1/internet/rules", &owner, rule(extra.clone())).await;
        assert_eq!((s, code(&v)), (status, c), "{extra}: {v}");
    }
    let (s, v) = h
        .post(
            "/api/v1/internet/rules",
            &owner,
            json!({"priority": 1, "action": "allow", "global_allow": true, "groups": ["staff"], "lists": ["banking"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = h.get("/api/v1/internet/rules", &owner).await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (StatusCode::OK, 2));
    assert_eq!(
        h.get(&format!("/api/v1/internet/rules/{id}"), &owner).await.1["action"],
        "block"
    );
    // What-if.
    let test = |host: &str, user: &str| {
        h.post(
            "/api/v1/internet/rules/test",
            &owner,
            json!({"user": user, "host": host}),
        )
    };
    let (s, v) = test("ADS.example.", "alice").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["host"], &v["action"], &v["rule_id"], &v["stage"], &v["list"]),
        (
            &json!("ads.example"),
            &json!("block"),
            &json!(id),
            &json!("block"),
            &json!("ads")
        )
    );
    assert!(v["explanation"]["rules"].as_array().unwrap().len() == 2);
    let (_, v) = test("other.example", "alice").await;
    assert_eq!(
        (&v["action"], &v["stage"]),
        (&json!("block"), &json!("default")),
        "default_action block"
    );
    let (s, v) = test("ads.example", "nobody").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = test("bad host!", "alice").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    // Change, disable, and the list in use.
    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/api/v1/internet/rules/{id}"),
            &owner,
            Some(json!({"enabled": false, "priority": 20, "action": "warn", "groups": ["staff"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["enabled"], &v["priority"], &v["action"], &v["groups"]),
        (&json!(false), &json!(20), &json!("warn"), &json!(["staff"]))
    );
    let (_, v) = test("ads.example", "alice").await;
    assert_eq!(v["stage"], "default", "a disabled rule does not decide");
    // The validity window: set, checked like on create, and removed with
    // an empty string or null.
    let rule_path = format!("/api/v1/internet/rules/{id}");
    let patch = |body: Value| h.call(Method::PATCH, &rule_path, &owner, Some(body));
    let (s, v) = patch(json!({"valid_from": "2030-01-01T00:00:00Z", "valid_until": "2030-02-01T01:00:00+01:00"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["valid_from"], &v["valid_until"]),
        (&json!("2030-01-01T00:00:00Z"), &json!("2030-02-01T00:00:00Z"))
    );
    let (_, stored) = h.get(&rule_path, &owner).await;
    assert_eq!(
        (&stored["valid_from"], &stored["valid_until"]),
        (&v["valid_from"], &v["valid_until"])
    );
    for (bad, status, c) in [
        (
            json!({"valid_until": "2029-12-31T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"valid_from": "2030-02-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"valid_from": "next tuesday"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"valid_until": 1_900_000_000}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let (s, v) = patch(bad.clone()).await;
        assert_eq!((s, code(&v)), (status, c), "{bad}: {v}");
    }
    let (_, unchanged) = h.get(&rule_path, &owner).await;
    assert_eq!(unchanged, stored, "a refused change changes nothing");
    let (s, v) = patch(json!({"valid_until": ""})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["valid_until"].is_null(), "{v}");
    assert_eq!(v["valid_from"], "2030-01-01T00:00:00Z");
    let (s, v) = patch(json!({"valid_from": null})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["valid_from"].is_null() && v["valid_until"].is_null(), "{v}");
    assert!(h.get(&rule_path, &owner).await.1["valid_from"].is_null());
    // An expired rule does not decide; without the bound it does again.
    let (s, v) = patch(json!({"enabled": true, "valid_until": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(test("ads.example", "alice").await.1["stage"], "default");
    patch(json!({"valid_until": ""})).await;
    let (_, v) = test("ads.example", "alice").await;
    assert_eq!(v["rule_id"], json!(id), "{v}");
    patch(json!({"enabled": false})).await;
    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/api/v1/internet/rules/{id}"),
            &owner,
            Some(json!({"lists": ["nope"]})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = h.call(Method::DELETE, "/api/v1/domain-lists/ads", &owner, None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "a rule names it");
    let (s, v) = h
        .call(Method::DELETE, "/api/v1/domain-lists/health", &owner, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "do_not_inspect names it"
    );

    // Proxy credentials: shown once, hashed, per user.
    let (s, v) = h.post("/api/v1/users/alice/proxy-credentials", &owner, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let cred_id = v["id"].as_str().unwrap().to_owned();
    let password = v["password"].as_str().unwrap();
    assert_eq!(v["username"], "alice");
    assert!(cred_id.starts_with("wpx_") && password.starts_with(&format!("{cred_id}.")));
    let (s, v) = h.get("/api/v1/users/alice/proxy-credentials", &owner).await;
    assert_eq!((s, v.as_array().unwrap().len()), (StatusCode::OK, 1));
    assert!(!v.to_string().contains(password.split('.').nth(1).unwrap()));
    assert_eq!(
        h.post("/api/v1/users/nobody/proxy-credentials", &owner, json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A sub-account without policy.manage reads but cannot write; a
    // helpdesk account manages credentials but cannot read lists.
    for (name, role) in [("aud", "auditor"), ("desk", "helpdesk")] {
        let (s, v) = h
            .post(
                "/api/v1/accounts",
                &owner,
                json!({"name": name, "role": role, "password": format!("{name}-password")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let aud = h.login("default", "aud", "aud-password").await;
    let desk = h.login("default", "desk", "desk-password").await;
    assert_eq!(h.get("/api/v1/domain-lists", &aud).await.0, StatusCode::OK);
    assert_eq!(h.get("/api/v1/internet/rules", &aud).await.0, StatusCode::OK);
    for (method, path, body) in [
        (Method::POST, "/api/v1/domain-lists", Some(json!({"name": "x"}))),
        (Method::DELETE, "/api/v1/domain-lists/banking", None),
        (
            Method::PUT,
            "/api/v1/internet/settings",
            Some(json!({"enabled": false})),
        ),
        (Method::POST, "/api/v1/internet/rules", Some(rule(json!({})))),
        (Method::DELETE, &format!("/api/v1/internet/rules/{id}"), None),
        (Method::POST, "/api/v1/users/alice/proxy-credentials", Some(json!({}))),
    ] {
        let (s, v) = h.call(method.clone(), path, &aud, body).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{method} {path}");
    }
    let (s, v) = h
        .raw(
            Method::PUT,
            "/api/v1/domain-lists/x/entries",
            Some(&aud),
            Some(("text/plain", b"a.example\n".to_vec())),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(h.get("/api/v1/domain-lists", &desk).await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.get("/api/v1/logs/web", &desk).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        h.get("/api/v1/users/alice/proxy-credentials", &desk).await.0,
        StatusCode::OK
    );

    // Another tenant sees and touches none of it.
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let beta = h.login("beta", "admin", "beta-owner-pw").await;
    let (_, v) = h.get("/api/v1/domain-lists", &beta).await;
    assert!(!v.to_string().contains("ads"), "{v}");
    assert_eq!(h.get("/api/v1/domain-lists/ads", &beta).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        h.get(&format!("/api/v1/internet/rules/{id}"), &beta).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/internet/rules/{id}"), &beta, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.get("/api/v1/internet/rules", &beta).await.1["items"], json!([]));
    assert_eq!(
        h.get("/api/v1/users/alice/proxy-credentials", &beta).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/users/alice/proxy-credentials/{cred_id}"),
            &beta,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Deletes.
    let (s, _) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/users/alice/proxy-credentials/{cred_id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/users/alice/proxy-credentials/{cred_id}"),
            &owner,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/internet/rules/{id}"), &owner, None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/domain-lists/ads", &owner, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/domain-lists/ads", &owner, None).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn a_million_line_hosts_file_imports_and_lists_download_from_a_url(store: TestStore) {
    // The "internet" of this test is a server on loopback.
    let h = Harness::start_with(store, true).await;
    let owner = h.login("default", "admin", PW).await;
    let mut file = String::with_capacity(40_000_000);
    file.push_str("# a big hosts file\n");
    for i in 0..1_000_000 {
        file.push_str(&format!("0.0.0.0 host-{i}.ads.example\n"));
    }
    file.push_str("0.0.0.0 bad..name\n");
    let started = Instant::now();
    let (s, v) = h
        .raw(
            Method::PUT,
            "/api/v1/domain-lists/big/entries?format=hosts",
            Some(&owner),
            Some(("text/plain", file.into_bytes())),
        )
        .await;
    eprintln!(
        "a 1,000,000-line hosts file imported through the API in {:?}",
        started.elapsed()
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["list"]["entries"], 1_000_000);
    assert_eq!(
        (&v["report"]["accepted"], &v["report"]["invalid"]),
        (&json!(1_000_000), &json!(1))
    );
    assert_eq!(v["report"]["first_invalid"][0]["line"], 1_000_002);
    let (s, v) = h
        .get("/api/v1/domain-lists/big/entries?contains=host-99999.&limit=5", &owner)
        .await;
    assert_eq!((s, &v["total"]), (StatusCode::OK, &json!(1)), "{v}");
    // A rule naming it puts it in the gateways' snapshot.
    let (s, v) = h
        .post(
            "/api/v1/internet/rules",
            &owner,
            json!({"priority": 1, "action": "block", "lists": ["big"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let gw = h.gateway(&h.login("system", "operator", PW).await).await;
    let started = Instant::now();
    let (s, snap) = h.get("/api/v1/gateway/snapshot", &gw).await;
    eprintln!(
        "a snapshot with a 1,000,000-name list built and read in {:?}",
        started.elapsed()
    );
    assert_eq!(s, StatusCode::OK);
    let t = snap["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "default")
        .unwrap();
    // The list travels by digest: the snapshot stays small.
    assert!(snap.to_string().len() < 100_000, "{} bytes", snap.to_string().len());
    let big = t["internet"]["list_refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["entries"] == 1_000_000)
        .expect("the big list by digest")
        .clone();
    // The gateway fetches its text by digest.
    let started = Instant::now();
    let (s, text) = h
        .raw(
            Method::GET,
            &format!("/api/v1/gateway/domain-lists/{}", big["sha256"].as_str().unwrap()),
            Some(&gw),
            None,
        )
        .await;
    eprintln!("the 1,000,000-name list fetched by digest in {:?}", started.elapsed());
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().map(str::to_owned).unwrap_or_else(|| text.to_string());
    assert!(text.len() > 20_000_000, "{} bytes", text.len());
    // Importing again replaces the content (200, not 201).
    let (s, v) = h
        .raw(
            Method::PUT,
            "/api/v1/domain-lists/big/entries",
            Some(&owner),
            Some(("application/octet-stream", b"||ads.example^\n##.banner\n".to_vec())),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["report"]["format"], &v["list"]["entries"]),
        (&json!("adblock"), &json!(2))
    );
    let (s, v) = h
        .raw(
            Method::PUT,
            "/api/v1/domain-lists/big/entries?format=csv",
            Some(&owner),
            Some(("text/plain", vec![])),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let too_big = vec![b'a'; 64 * 1024 * 1024 + 1];
    let (s, v) = h
        .raw(
            Method::PUT,
            "/api/v1/domain-lists/big/entries",
            Some(&owner),
            Some(("text/plain", too_big)),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{v}"
    );

    // From a URL (a server on loopback), then refreshed.
    let base = file_server(b"0.0.0.0 one.example\n0.0.0.0 two.example\n".to_vec()).await;
    let (s, v) = h
        .post(
            "/api/v1/domain-lists",
            &owner,
            json!({"name": "remote", "url": format!("{base}/hosts.txt")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["list"]["entries"], &v["list"]["source_url"]),
        (&json!(2), &json!(format!("{base}/hosts.txt")))
    );
    let (s, v) = h.post("/api/v1/domain-lists/remote/refresh", &owner, json!({})).await;
    assert_eq!((s, &v["list"]["entries"]), (StatusCode::OK, &json!(2)), "{v}");
    // An existing list imported from a URL by `PUT .../entries?url=`.
    let (s, v) = h
        .raw(
            Method::PUT,
            &format!("/api/v1/domain-lists/big/entries?url={base}/hosts.txt"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!((s, &v["list"]["entries"]), (StatusCode::OK, &json!(2)), "{v}");
    assert_eq!(v["list"]["source_url"], json!(format!("{base}/hosts.txt")));
    for url in [
        format!("{base}/missing"),
        "ftp://127.0.0.1/x".into(),
        "http://127.0.0.1:1/x".into(),
    ] {
        let (s, v) = h
            .post("/api/v1/domain-lists", &owner, json!({"name": "r2", "url": url}))
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{url}: {v}");
    }
}

async fn the_snapshot_routing_and_logs_carry_the_internet_part(store: TestStore) {
    let h = Harness::start(store).await;
    let owner = h.login("default", "admin", PW).await;
    // Without --internet-allow-private, a list is never downloaded from the
    // server's own network: not by address, not by a name resolving there,
    // not through a redirect (a file server on loopback answers, unasked).
    let base = file_server(b"0.0.0.0 one.example\n".to_vec()).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("{base}/hosts.txt"),
        format!("http://localhost:{port}/hosts.txt"),
        format!("http://[::ffff:127.0.0.1]:{port}/hosts.txt"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let (s, v) = h
            .post("/api/v1/domain-lists", &owner, json!({"name": "inside", "url": url}))
            .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{url}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("internal"),
            "{url}: {v}"
        );
    }
    let op = h.login("system", "operator", PW).await;
    let gw = h.gateway(&op).await;
    let (_, alice) = h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    h.post("/api/v1/users", &owner, json!({"name": "bob"})).await;
    h.post(
        "/api/v1/domain-lists",
        &owner,
        json!({"name": "ads", "domains": ["ads.example"]}),
    )
    .await;
    h.post(
        "/api/v1/domain-lists",
        &owner,
        json!({"name": "unused", "domains": ["x.example"]}),
    )
    .await;
    let (s, rule) = h
        .post(
            "/api/v1/internet/rules",
            &owner,
            json!({"priority": 5, "action": "block", "lists": ["ads"], "users": ["alice"],
                   "valid_from": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rule}");
    h.post("/api/v1/users/alice/proxy-credentials", &owner, json!({})).await;
    let (s, v) = h
        .call(
            Method::PUT,
            "/api/v1/internet/settings",
            &owner,
            Some(json!({"inspection": true, "bypass": ["*.corp.example"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The snapshot: rules by id, only the lists named, the inspection CA.
    let (s, snap) = h.get("/api/v1/gateway/snapshot", &gw).await;
    assert_eq!(s, StatusCode::OK, "{snap}");
    let t = snap["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "default")
        .expect("a tenant with only internet configuration is in the snapshot")
        .clone();
    let inet = &t["internet"];
    assert_eq!(inet["enabled"], true);
    let r = &inet["policy"]["rules"][0];
    assert_eq!((&r["id"], &r["users"]), (&rule["id"], &json!([alice_id])));
    assert!(r["lists"][0].as_str().unwrap().starts_with("dl_"));
    assert_eq!(r["valid_from"], 1_577_836_800_000_i64);
    assert_eq!(inet["policy"]["lists"], json!([]), "lists travel by digest");
    let list_ids: Vec<&str> = inet["list_refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(list_ids.len(), 3, "ads, banking and health; not unused: {list_ids:?}");
    // Each by the digest of its text, which a gateway (and only a gateway)
    // fetches.
    let ads = inet["list_refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == r["lists"][0])
        .unwrap()
        .clone();
    let route = format!("/api/v1/gateway/domain-lists/{}", ads["sha256"].as_str().unwrap());
    let (s, text) = h.raw(Method::GET, &route, Some(&gw), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let text = text.as_str().map(str::to_owned).unwrap_or_else(|| text.to_string());
    assert_eq!(
        hex::encode(Sha256::digest(text.as_bytes())),
        ads["sha256"].as_str().unwrap(),
        "the text has the digest"
    );
    assert_eq!(text.lines().count() as u64, ads["entries"].as_u64().unwrap());
    assert_eq!(
        h.raw(Method::GET, &route, Some(&owner), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.raw(Method::GET, &route, None, None).await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = h
        .raw(
            Method::GET,
            "/api/v1/gateway/domain-lists/..%2F..%2Fetc",
            Some(&gw),
            None,
        )
        .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_field")),
        "{v}"
    );
    let (s, _) = h
        .raw(
            Method::GET,
            &format!("/api/v1/gateway/domain-lists/{}", "0".repeat(64)),
            Some(&gw),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(list_ids.contains(&r["lists"][0].as_str().unwrap()));
    assert_eq!(inet["do_not_inspect"].as_array().unwrap().len(), 2);
    assert_eq!(inet["inspection"], true);
    assert!(inet["inspection_ca"]["cert_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(inet["inspection_ca"]["key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));
    assert_eq!(inet["proxy_credentials"][0]["user_id"], json!(alice_id));
    assert_eq!(
        inet["proxy_credentials"][0]["secret_sha256"].as_str().unwrap().len(),
        64
    );
    assert_eq!(inet["warn_minutes"], 60);
    h.call(
        Method::PUT,
        "/api/v1/internet/settings",
        &owner,
        Some(json!({"inspection": false})),
    )
    .await;
    let (_, snap) = h.get("/api/v1/gateway/snapshot", &gw).await;
    let t = snap["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "default")
        .unwrap();
    assert!(
        t["internet"].get("inspection_ca").is_none(),
        "no CA while inspection is off"
    );

    // The agent's routing.
    h.post(
        "/api/v1/apps",
        &owner,
        json!({"name": "db", "addresses": ["10.1.0.0/16", "db.corp"], "ports": ["5432"]}),
    )
    .await;
    let (s, v) = h.post("/api/v1/enroll-codes", &owner, json!({"user": "alice"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, csr) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let posture = json!({"os": "linux", "os_version": "12", "hostname": "laptop", "agent_version": "0.1.0",
                         "kernel": null, "disk_encryption": false, "firewall": true, "screen_lock": null});
    let enroll = json!({"code": v["code"], "csr_pem": csr, "name": "laptop", "posture": posture});
    let (s, v) = h
        .raw(
            Method::POST,
            "/api/v1/enroll",
            None,
            Some(("application/json", serde_json::to_vec(&enroll).unwrap())),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let device_token = v["device_token"].as_str().unwrap().to_owned();
    let (s, v) = h.get("/api/v1/device/routing", &device_token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"internet": true, "private": ["10.1.0.0/16", "db.corp"], "bypass": ["*.corp.example"]})
    );
    assert_eq!(
        h.get("/api/v1/device/routing", &owner).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Records of kind web and dns, through the gateway, into the logs.
    let (_, tenants) = h.get("/api/v1/tenants", &op).await;
    let tenant_id = tenants["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "default")
        .unwrap()["id"]
        .clone();
    let (_, bob) = h.get("/api/v1/users/bob", &owner).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |n: i64, kind: &str, user: &Value, host: &str, action: &str| {
        json!({"id": format!("acr_{n:04}"), "started_ms": now - 1000 + n, "tenant_id": tenant_id, "user_id": user,
               "device_id": "dev", "gateway_id": "x", "source": "127.0.0.1:1", "dest_host": host, "dest_addr": null,
               "port": 443, "protocol": "tcp", "action": action, "rule_id": null, "reason": "rule_matched",
               "bytes_up": 1, "bytes_down": 2, "duration_ms": 3, "end": "closed", "kind": kind})
    };
    let mut web = record(1, "web", &json!(alice_id), "www.news.example", "allow");
    web["url"] = json!("http://www.news.example/a?b=1");
    web["upload"] = json!({"size": 5, "content_type": "text/plain", "file_name": "a.txt", "sha256": "ab"});
    web["inspected"] = json!(true);
    let mut dns = record(2, "dns", &bob["id"], "ads.example", "block");
    dns["qtype"] = json!("A");
    dns["answer"] = json!("NXDOMAIN");
    let batch = json!({"records": [
        web.clone(), dns,
        record(3, "web", &bob["id"], "news.example", "block"),
        record(4, "web", &bob["id"], "badnews.example", "block"),
        record(5, "web", &json!(alice_id), "www.news.example", "warn"),
        record(6, "private", &json!(alice_id), "db.corp", "allow"),
    ]});
    let (s, v) = h.post("/api/v1/gateway/records", &gw, batch).await;
    assert_eq!((s, &v["accepted"]), (StatusCode::OK, &json!(6)), "{v}");
    let (s, v) = h.get("/api/v1/logs/web", &owner).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acr_0005", "acr_0004", "acr_0003", "acr_0001"]);
    let first = v["items"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (
            &first["kind"],
            &first["url"],
            &first["upload"]["file_name"],
            &first["inspected"],
            &first["user"]
        ),
        (
            &json!("web"),
            &web["url"],
            &json!("a.txt"),
            &json!(true),
            &json!("alice")
        )
    );
    let (_, v) = h.get("/api/v1/logs/dns?user=bob&action=block&since=1h", &owner).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(
        (items.len(), &items[0]["qtype"], &items[0]["answer"]),
        (1, &json!("A"), &json!("NXDOMAIN"))
    );
    let (_, v) = h.get("/api/v1/logs/web?domain=news.example&limit=10", &owner).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "not badnews.example: {v}");
    let (s, v) = h.get("/api/v1/logs/web?domain=news_example", &owner).await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "`_` is a character of the name, not a wildcard matching the dot: {v}"
    );
    let (_, v) = h
        .get(
            "/api/v1/logs/web?since=2000-01-01T00:00:00Z&device=dev&action=warn",
            &owner,
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v) = h.get("/api/v1/access-records", &owner).await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acr_0006"], "access-records keeps private ones only");
    for bad in [
        "/api/v1/logs/web?since=yesterday",
        "/api/v1/logs/web?action=deny",
        "/api/v1/logs/dns?action=warn",
        "/api/v1/logs/web?domain=a%20b",
        "/api/v1/logs/web/top?by=device",
        "/api/v1/logs/web?bogus=1",
    ] {
        assert_eq!(h.get(bad, &owner).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        h.get("/api/v1/logs/web?user=nobody", &owner).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = h.get("/api/v1/logs/web/top?by=domain", &owner).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0], json!({"key": "www.news.example", "count": 2}));
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = h
        .get("/api/v1/logs/web/top?by=user&action=block&since=1h", &owner)
        .await;
    assert_eq!(v, json!([{"key": "bob", "count": 2}]));
    let (_, v) = h.get("/api/v1/logs/web/top?by=user&limit=1", &owner).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    // Another tenant sees none of it.
    h.post(
        "/api/v1/tenants",
        &op,
        json!({"name": "beta", "owner_password": "beta-owner-pw"}),
    )
    .await;
    let beta = h.login("beta", "admin", "beta-owner-pw").await;
    assert_eq!(h.get("/api/v1/logs/web", &beta).await.1["items"], json!([]));
    assert_eq!(h.get("/api/v1/logs/dns", &beta).await.1["items"], json!([]));
    assert_eq!(h.get("/api/v1/logs/web/top?by=domain", &beta).await.1, json!([]));
}

/// `GET /api/v1/internet/inspection-ca`: status, content type, disposition, body.
async fn inspection_ca(h: &Harness, token: Option<&str>) -> (StatusCode, String, String, String) {
    let mut req = h.http.get(format!("{}/api/v1/internet/inspection-ca", h.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (ctype, disposition) = (header("content-type"), header("content-disposition"));
    (resp.status(), ctype, disposition, resp.text().await.unwrap())
}

fn error_code_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    code(&v).to_owned()
}

async fn the_inspection_ca_downloads_for_its_tenant_only(store: TestStore) {
    let h = Harness::start(store).await;
    let owner = h.login("default", "admin", PW).await;
    let op = h.login("system", "operator", PW).await;

    // Never turned on: no CA, whether the settings exist yet or not.
    let (s, _, _, body) = inspection_ca(&h, Some(&owner)).await;
    assert_eq!(
        (s, error_code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "inspection_ca_missing"),
        "{body}"
    );
    assert_eq!(h.get("/api/v1/internet/settings", &owner).await.0, StatusCode::OK);
    let (s, _, _, body) = inspection_ca(&h, Some(&owner)).await;
    assert_eq!(
        (s, error_code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "inspection_ca_missing"),
        "{body}"
    );
    let (s, _, _, body) = inspection_ca(&h, None).await;
    assert_eq!(
        (s, error_code_of(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{body}"
    );

    // Turned on: the certificate the gateways inspect with, as a file.
    async fn put(h: &Harness, token: &str, on: bool) -> (StatusCode, Value) {
        h.call(
            Method::PUT,
            "/api/v1/internet/settings",
            token,
            Some(json!({ "inspection": on })),
        )
        .await
    }
    assert_eq!(put(&h, &owner, true).await.0, StatusCode::OK);
    let (s, ctype, disposition, pem) = inspection_ca(&h, Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{pem}");
    assert_eq!(ctype, "application/x-pem-file");
    assert_eq!(disposition, "attachment; filename=\"ward-inspection-ca.pem\"");
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----") && pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    assert!(!pem.contains("PRIVATE KEY"), "never the key");
    let gw = h.gateway(&op).await;
    let (_, snap) = h.get("/api/v1/gateway/snapshot", &gw).await;
    let tenant = snap["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "default")
        .unwrap()
        .clone();
    assert_eq!(
        tenant["internet"]["inspection_ca"]["cert_pem"].as_str(),
        Some(pem.as_str()),
        "the CA the gateways sign with"
    );
    // Off again: the CA stays (endpoints keep trusting it), the same one.
    assert_eq!(put(&h, &owner, false).await.0, StatusCode::OK);
    let (s, _, _, again) = inspection_ca(&h, Some(&owner)).await;
    assert_eq!((s, &again), (StatusCode::OK, &pem));
    assert_eq!(put(&h, &owner, true).await.0, StatusCode::OK);
    assert_eq!(
        inspection_ca(&h, Some(&owner)).await.3,
        pem,
        "turned on again: the same CA"
    );

    // Reading settings is enough (an auditor); a helpdesk account cannot.
    h.post(
        "/api/v1/accounts",
        &owner,
        json!({"name": "aud", "role": "auditor", "password": "aud-password"}),
    )
    .await;
    h.post(
        "/api/v1/accounts",
        &owner,
        json!({"name": "desk", "role": "helpdesk", "password": "desk-password"}),
    )
    .await;
    let aud = h.login("default", "aud", "aud-password").await;
    let desk = h.login("default", "desk", "desk-password").await;
    let (s, _, _, body) = inspection_ca(&h, Some(&aud)).await;
    assert_eq!((s, &body), (StatusCode::OK, &pem));
    let (s, _, _, body) = inspection_ca(&h, Some(&desk)).await;
    assert_eq!(
        (s, error_code_of(&body).as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert!(!body.contains("BEGIN CERTIFICATE"));

    // Another tenant: none until it turns inspection on, then its own.
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let beta = h.login("beta", "admin", "beta-owner-pw").await;
    let (s, _, _, body) = inspection_ca(&h, Some(&beta)).await;
    assert_eq!(
        (s, error_code_of(&body).as_str()),
        (StatusCode::NOT_FOUND, "inspection_ca_missing"),
        "{body}"
    );
    assert_eq!(put(&h, &beta, true).await.0, StatusCode::OK);
    let (s, _, _, beta_pem) = inspection_ca(&h, Some(&beta)).await;
    assert_eq!(s, StatusCode::OK, "{beta_pem}");
    assert!(beta_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_ne!(beta_pem, pem, "each tenant its own CA");
    assert_eq!(inspection_ca(&h, Some(&owner)).await.3, pem);

    // The route is in the OpenAPI document.
    let (s, doc) = h.get("/api/v1/openapi.json", &owner).await;
    assert_eq!(s, StatusCode::OK);
    let op_doc = &doc["paths"]["/api/v1/internet/inspection-ca"]["get"];
    assert!(
        op_doc["responses"]["200"]["content"]["application/x-pem-file"].is_object(),
        "{op_doc}"
    );
}
