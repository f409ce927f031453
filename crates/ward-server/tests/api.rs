//! The API, end to end over real HTTP, on SQLite and (when
//! `WARD_TEST_POSTGRES` is set) PostgreSQL: the stories of the foundation
//! issue, and the bad input it must refuse.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use ward_server::{Running, Secret, ServerArgs, ServerConfig, TlsMode};
use ward_store::testing::TestStore;

const PW: &str = "bootstrap-pass-1";

struct Harness {
    running: Option<Running>,
    store: TestStore,
    data: tempfile::TempDir,
    http: reqwest::Client,
    url: String,
}

fn config(store: &TestStore, data: &std::path::Path) -> ServerConfig {
    let args = ServerArgs {
        data_dir: Some(data.to_owned()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        database: Some(store.url.clone()),
        ..Default::default()
    };
    let mut c = ServerConfig::load(&args).unwrap();
    c.bootstrap_password = Some(Secret::new(PW));
    c
}

impl Harness {
    async fn start(store: TestStore, tweak: impl FnOnce(&mut ServerConfig)) -> Harness {
        let data = tempfile::tempdir().unwrap();
        let mut c = config(&store, data.path());
        tweak(&mut c);
        let running = ward_server::start(c).await.unwrap();
        let url = running.url.clone();
        Harness {
            running: Some(running),
            store,
            data,
            http: reqwest::Client::new(),
            url,
        }
    }

    async fn restart(&mut self) {
        self.running.take().unwrap().stop().await;
        let running = ward_server::start(config(&self.store, self.data.path())).await.unwrap();
        assert!(running.bootstrapped.is_none(), "a restart must not bootstrap again");
        self.url = running.url.clone();
        self.running = Some(running);
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

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        self.raw(method, path, token, body).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn try_login(&self, tenant: &str, user: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"tenant": tenant, "username": user, "password": password})),
        )
        .await
    }

    async fn login(&self, tenant: &str, user: &str, password: &str) -> String {
        let (s, v) = self.try_login(tenant, user, password).await;
        assert_eq!(s, StatusCode::OK, "login {tenant}/{user}: {v}");
        v["token"].as_str().unwrap().to_owned()
    }

    async fn create_account(&self, token: &str, name: &str, role: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/accounts",
            token,
            json!({"name": name, "role": role, "password": format!("{name}-password")}),
        )
        .await
    }

    async fn audit(&self, token: &str, query: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/api/v1/audit?{query}"), token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    async fn account_names(&self, token: &str) -> Vec<String> {
        let (s, v) = self.get("/api/v1/accounts", token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stop the server before its database goes away.
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
    owner_delegates_and_the_trail_attributes,
    tenants_are_isolated,
    sub_accounts_cannot_escalate,
    api_keys_are_capped_expire_and_revoke,
    bad_input_is_refused_and_changes_nothing,
    repeated_failures_lock_out,
    sessions_end,
    data_survives_a_restart,
    access_rules_decide_by_priority_and_stay_in_their_tenant,
    devices_enrol_once_renew_report_and_revoke,
    gateways_join_follow_snapshots_and_ship_records_once,
    mfa_enrols_signs_in_once_per_code_and_is_reset_by_a_manager,
    required_admin_mfa_holds_sessions_back_until_enrolled,
    end_users_passwords_are_set_cleared_and_unlocked_by_user_managers,
    applications_are_changed_in_place,
);

async fn applications_are_changed_in_place(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    let app = json!({"name": "wiki", "addresses": ["wiki.corp.example"], "ports": ["80"], "tags": ["web"]});
    assert_eq!(h.post("/api/v1/apps", &owner, app).await.0, StatusCode::CREATED);
    let other =
        json!({"name": "crm", "addresses": ["crm.corp.example"], "ports": ["443"], "public_host": "crm.example.com"});
    assert_eq!(h.post("/api/v1/apps", &owner, other).await.0, StatusCode::CREATED);
    let patch = |name: &str, body: Value| {
        let path = format!("/api/v1/apps/{name}");
        let owner = owner.clone();
        let h = &h;
        async move { h.call(Method::PATCH, &path, Some(&owner), Some(body)).await }
    };

    // Ports and addresses replaced; the rest kept.
    let (s, v) = patch(
        "wiki",
        json!({"ports": ["80", "8080-8081"], "addresses": ["wiki.corp.example", "10.1.0.0/16"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ports"], json!(["80", "8080-8081"]));
    assert_eq!(v["addresses"], json!(["wiki.corp.example", "10.1.0.0/16"]));
    assert_eq!(v["tags"], json!(["web"]));
    assert!(v.get("public_host").is_none_or(|p| p.is_null()), "{v}");

    // Bad input is refused and changes nothing.
    for (bad, status, why) in [
        (json!({"ports": ["0"]}), StatusCode::BAD_REQUEST, "port 0"),
        (json!({"addresses": []}), StatusCode::BAD_REQUEST, "no address"),
        (
            json!({"addresses": ["wiki..corp"]}),
            StatusCode::BAD_REQUEST,
            "bad address",
        ),
        (json!({"upstream_scheme": "ftp"}), StatusCode::BAD_REQUEST, "scheme"),
        (json!({"public_host": "not a host"}), StatusCode::BAD_REQUEST, "host"),
        (
            json!({"public_host": "CRM.example.com"}),
            StatusCode::CONFLICT,
            "another app's host",
        ),
        (json!({"name": "renamed"}), StatusCode::BAD_REQUEST, "unknown field"),
    ] {
        let (s, v) = patch("wiki", bad).await;
        assert_eq!(s, status, "{why}: {v}");
    }
    let (_, v) = h.get("/api/v1/apps", &owner).await;
    let wiki = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "wiki")
        .unwrap()
        .clone();
    assert_eq!(wiki["ports"], json!(["80", "8080-8081"]));
    assert!(wiki.get("public_host").is_none_or(|p| p.is_null()), "{wiki}");

    // Published, moved, unpublished.
    let (s, v) = patch("wiki", json!({"public_host": "Wiki.Example.com"})).await;
    assert_eq!(
        (s, &v["public_host"]),
        (StatusCode::OK, &json!("wiki.example.com")),
        "{v}"
    );
    let (s, v) = patch(
        "crm",
        json!({"public_host": "crm2.example.com", "upstream_scheme": "https"}),
    )
    .await;
    assert_eq!(
        (s, &v["public_host"], &v["upstream_scheme"]),
        (StatusCode::OK, &json!("crm2.example.com"), &json!("https")),
        "{v}"
    );
    // The old host is free again.
    let (s, v) = patch("wiki", json!({"public_host": "crm.example.com"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch("wiki", json!({"public_host": ""})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("public_host").is_none_or(|p| p.is_null()), "{v}");

    // Unknown: 404. An auditor: 403. Another tenant: 404.
    assert_eq!(patch("nope", json!({"ports": ["1"]})).await.0, StatusCode::NOT_FOUND);
    h.create_account(&owner, "aud", "auditor").await;
    let aud = h.login("default", "aud", "aud-password").await;
    let (s, _) = h
        .call(
            Method::PATCH,
            "/api/v1/apps/wiki",
            Some(&aud),
            Some(json!({"ports": ["1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let op = h.login("system", "operator", PW).await;
    let (s, _) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let beta = h.login("beta", "admin", "beta-owner-pw").await;
    let (s, _) = h
        .call(
            Method::PATCH,
            "/api/v1/apps/wiki",
            Some(&beta),
            Some(json!({"ports": ["1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = h.get("/api/v1/apps", &owner).await;
    let wiki = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "wiki")
        .unwrap()
        .clone();
    assert_eq!(
        wiki["ports"],
        json!(["80", "8080-8081"]),
        "unchanged by the refused calls"
    );
    let trail = h.get("/api/v1/audit?action=app.update", &owner).await.1;
    assert!(
        trail["items"].as_array().unwrap().iter().any(|e| e["result"] == "ok"),
        "{trail}"
    );
}

/// The foundation issue's story: bootstrap; the owner creates an auditor; the
/// auditor reads the trail but cannot create an account; the trail shows both.
async fn owner_delegates_and_the_trail_attributes(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let admin = h.login("default", "admin", PW).await;
    let (s, v) = h.get("/api/v1/whoami", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["tenant"].as_str(), v["role"].as_str(), v["operator"].as_bool()),
        (Some("default"), Some("owner"), Some(false))
    );

    let (s, v) = h.create_account(&admin, "auditor1", "auditor").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created_by"], "admin");

    let auditor = h.login("default", "auditor1", "auditor1-password").await;
    assert!(!h.audit(&auditor, "").await.is_empty(), "the auditor reads the trail");
    let (s, v) = h.create_account(&auditor, "sneaky", "helpdesk").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(code(&v), "forbidden");
    assert!(!h.account_names(&admin).await.contains(&"sneaky".to_owned()));

    let created = h.audit(&auditor, "actor=admin&action=account.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["target"], "account:auditor1");
    assert_eq!(created[0]["result"], "ok");
    assert_eq!(created[0]["on_behalf_of"], "admin");
    assert_eq!(created[0]["source_ip"], "127.0.0.1");
    let denied = h.audit(&admin, "actor=auditor1&result=denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["action"], "account.create");
    assert_eq!(denied[0]["target"], "account:sneaky");
    assert_eq!(denied[0]["actor_role"], "auditor");
    assert_eq!(denied[0]["on_behalf_of"], "admin");
    assert_eq!(denied[0]["status"], 403);
    // Sign-ins are recorded, failures too.
    let (s, _) = h.try_login("default", "auditor1", "wrong-password").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let logins = h.audit(&admin, "action=auth.login&actor=auditor1").await;
    assert_eq!(
        logins.iter().map(|e| e["result"].as_str().unwrap()).collect::<Vec<_>>(),
        ["denied", "ok"]
    );

    // Nobody can change or delete the trail through the API.
    let id = created[0]["id"].as_str().unwrap();
    for m in [Method::PUT, Method::PATCH, Method::DELETE] {
        let (s, v) = h.call(m.clone(), "/api/v1/audit", Some(&admin), Some(json!({}))).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m} /audit: {v}");
        let (s, _) = h.call(m, &format!("/api/v1/audit/{id}"), Some(&admin), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // A helpdesk account cannot read the trail.
    h.create_account(&admin, "desk", "helpdesk").await;
    let desk = h.login("default", "desk", "desk-password").await;
    let (s, _) = h.get("/api/v1/audit", &desk).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn tenants_are_isolated(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let op = h.login("system", "operator", PW).await;
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["region"], "local");
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "gamma", "region": "mars", "owner_password": "gamma-owner-pw"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));

    let a = h.login("default", "admin", PW).await;
    let b = h.login("beta", "admin", "beta-owner-pw").await;
    h.create_account(&a, "alice", "admin").await;
    let (_, key) = h.post("/api/v1/apikeys", &a, json!({"name": "a-key"})).await;
    let key_id = key["key"]["id"].as_str().unwrap();

    // B sees and touches nothing of A's.
    assert_eq!(h.account_names(&b).await, ["admin"]);
    for (m, path, body) in [
        (Method::GET, "/api/v1/accounts/alice", None),
        (Method::DELETE, "/api/v1/accounts/alice", None),
        (
            Method::PUT,
            "/api/v1/accounts/alice/role",
            Some(json!({"role": "auditor"})),
        ),
        (
            Method::PUT,
            "/api/v1/accounts/alice/password",
            Some(json!({"new_password": "taken-over-123"})),
        ),
        (Method::POST, "/api/v1/accounts/alice/unlock", None),
    ] {
        let (s, v) = h.call(m.clone(), path, Some(&b), body).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{m} {path}");
    }
    let (s, _) = h
        .call(Method::DELETE, &format!("/api/v1/apikeys/{key_id}"), Some(&b), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(h.account_names(&a).await.contains(&"alice".to_owned()));
    let (s, _) = h.get("/api/v1/whoami", key["token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "A's key still works");
    let b_trail = h.audit(&b, "").await;
    assert!(b_trail
        .iter()
        .all(|e| e["tenant"] == "beta" && e["target"] != "account:alice" || e["actor"] == "admin"));
    assert!(
        h.audit(&b, "action=account.create").await.is_empty(),
        "A's events are not in B's trail"
    );
    // Only operators reach tenants.
    let (s, _) = h.get("/api/v1/tenants", &b).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h.get("/api/v1/tenants", &op).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["system", "default", "beta"]);

    // Suspending B shuts its accounts out at once; resuming lets them back.
    let (s, v) = h
        .call(
            Method::PATCH,
            "/api/v1/tenants/beta",
            Some(&op),
            Some(json!({"state": "suspended"})),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("suspended")));
    let (s, v) = h.get("/api/v1/whoami", &b).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "tenant_suspended"));
    let (s, v) = h.try_login("beta", "admin", "beta-owner-pw").await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "tenant_suspended"));
    let (s, _) = h
        .call(
            Method::PATCH,
            "/api/v1/tenants/system",
            Some(&op),
            Some(json!({"state": "suspended"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the system tenant cannot be suspended");
    h.call(
        Method::PATCH,
        "/api/v1/tenants/beta",
        Some(&op),
        Some(json!({"state": "active"})),
    )
    .await;
    let (s, _) = h.get("/api/v1/whoami", &b).await;
    assert_eq!(s, StatusCode::OK);
    // The operator's actions are in the system tenant's trail.
    assert_eq!(h.audit(&op, "action=tenant.update").await.len(), 3);
}

async fn sub_accounts_cannot_escalate(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    for (name, role) in [("adm", "admin"), ("desk", "helpdesk"), ("aud", "auditor")] {
        assert_eq!(h.create_account(&owner, name, role).await.0, StatusCode::CREATED);
    }
    let adm = h.login("default", "adm", "adm-password").await;
    let desk = h.login("default", "desk", "desk-password").await;

    let put_role =
        |name: &'static str, role: &'static str| (format!("/api/v1/accounts/{name}/role"), json!({"role": role}));
    // An admin cannot make itself owner, create an owner, or touch the owner.
    let (p, b) = put_role("adm", "owner");
    assert_eq!(
        h.call(Method::PUT, &p, Some(&adm), Some(b)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.create_account(&adm, "boss2", "owner").await.0, StatusCode::FORBIDDEN);
    let (p, b) = put_role("admin", "auditor");
    assert_eq!(
        h.call(Method::PUT, &p, Some(&adm), Some(b)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/accounts/admin", Some(&adm), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/accounts/adm", Some(&adm), None).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, _) = h
        .call(
            Method::PUT,
            "/api/v1/accounts/admin/password",
            Some(&adm),
            Some(json!({"new_password": "hijacked-pass"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // ...but can manage accounts no more powerful than itself.
    let (p, b) = put_role("aud", "admin");
    assert_eq!(h.call(Method::PUT, &p, Some(&adm), Some(b)).await.0, StatusCode::OK);
    assert_eq!(h.create_account(&adm, "aud2", "auditor").await.0, StatusCode::CREATED);
    // Helpdesk manages no accounts at all, itself included.
    assert_eq!(
        h.create_account(&desk, "desk2", "helpdesk").await.0,
        StatusCode::FORBIDDEN
    );
    let (p, b) = put_role("desk", "admin");
    assert_eq!(
        h.call(Method::PUT, &p, Some(&desk), Some(b)).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = h.get("/api/v1/whoami", &desk).await;
    assert_eq!((s, v["role"].as_str()), (StatusCode::OK, Some("helpdesk")));
    // Everyone may change their own password, given the current one.
    let (s, v) = h
        .call(
            Method::PUT,
            "/api/v1/accounts/desk/password",
            Some(&desk),
            Some(json!({"new_password": "desk-new-password"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "current password required"
    );
    let body = json!({"current_password": "desk-password", "new_password": "desk-new-password"});
    assert_eq!(
        h.call(Method::PUT, "/api/v1/accounts/desk/password", Some(&desk), Some(body))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    h.login("default", "desk", "desk-new-password").await;
    // Every refusal above is in the trail as denied.
    let denied = h.audit(&owner, "result=denied").await;
    assert!(denied.len() >= 8, "{}", denied.len());
}

async fn api_keys_are_capped_expire_and_revoke(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    let (s, v) = h
        .post("/api/v1/apikeys", &owner, json!({"name": "ci", "role_cap": "auditor"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let capped = v["token"].as_str().unwrap().to_owned();
    let capped_id = v["key"]["id"].as_str().unwrap().to_owned();
    assert!(capped.starts_with(&format!("wk_{capped_id}_")));

    let (s, v) = h.get("/api/v1/whoami", &capped).await;
    assert_eq!((s, v["credential"].as_str()), (StatusCode::OK, Some("api_key")));
    assert!(!v["permissions"].as_array().unwrap().contains(&json!("accounts.manage")));
    assert!(
        !h.audit(&capped, "").await.is_empty(),
        "an auditor-capped key reads the trail"
    );
    assert_eq!(h.create_account(&capped, "x", "auditor").await.0, StatusCode::FORBIDDEN);
    // A capped key cannot mint an uncapped one, nor reset its account's password.
    assert_eq!(
        h.post("/api/v1/apikeys", &capped, json!({"name": "escape"})).await.0,
        StatusCode::FORBIDDEN
    );
    let body = json!({"current_password": PW, "new_password": "taken-over-pass"});
    assert_eq!(
        h.call(
            Method::PUT,
            "/api/v1/accounts/admin/password",
            Some(&capped),
            Some(body)
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // A key is never more powerful than its account.
    h.create_account(&owner, "aud", "auditor").await;
    let aud = h.login("default", "aud", "aud-password").await;
    let (_, v) = h.post("/api/v1/apikeys", &aud, json!({"name": "mine"})).await;
    let aud_key = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.create_account(&aud_key, "x", "helpdesk").await.0,
        StatusCode::FORBIDDEN
    );

    // last_used_at is kept; the key list shows no secrets.
    let (_, v) = h.get("/api/v1/apikeys", &owner).await;
    let listed = &v["items"][0];
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(listed.get("token").is_none() && listed.get("secret_hash").is_none());

    // Revoked: refused at once, and the attempt is in the trail.
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/apikeys/{capped_id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = h.get("/api/v1/whoami", &capped).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/apikeys/{capped_id}"),
            Some(&owner),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let refused = h.audit(&owner, "result=denied").await;
    assert!(
        refused
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains("revoked"))
                && e["api_key_id"] == capped_id.as_str()
                && e["actor"] == "admin"),
        "the refusal names the key and its account: {refused:?}"
    );

    // Expired.
    let (_, v) = h
        .post(
            "/api/v1/apikeys",
            &owner,
            json!({"name": "short", "expires_in_secs": 1}),
        )
        .await;
    let short = v["token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/whoami", &short).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, v) = h.get("/api/v1/whoami", &short).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
    // A forged secret for a real key id is refused.
    let (_, v) = h.post("/api/v1/apikeys", &owner, json!({"name": "real"})).await;
    let real_id = v["key"]["id"].as_str().unwrap();
    let forged = format!("wk_{real_id}_{}", "0".repeat(64));
    assert_eq!(h.get("/api/v1/whoami", &forged).await.0, StatusCode::UNAUTHORIZED);
}

async fn bad_input_is_refused_and_changes_nothing(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    let before = h.account_names(&owner).await;
    let json_ct = "application/json";
    type Case<'a> = (&'a str, Option<(&'a str, Vec<u8>)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Some((json_ct, b"{\"name\": ".to_vec())),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown field",
            Some((
                json_ct,
                br#"{"name":"x1","role":"auditor","password":"pass-word-1","admin":true}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong type",
            Some((
                json_ct,
                br#"{"name":7,"role":"auditor","password":"pass-word-1"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown role",
            Some((
                json_ct,
                br#"{"name":"x2","role":"root","password":"pass-word-1"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad UTF-8",
            Some((
                json_ct,
                b"{\"name\":\"\xff\xfe\",\"role\":\"auditor\",\"password\":\"pass-word-1\"}".to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "no content type",
            Some((
                "text/plain",
                br#"{"name":"x3","role":"auditor","password":"pass-word-1"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "oversized",
            Some((
                json_ct,
                format!(
                    r#"{{"name":"x4","role":"auditor","password":"{}"}}"#,
                    "p".repeat(100_000)
                )
                .into_bytes(),
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "bad name",
            Some((
                json_ct,
                br#"{"name":"<script>","role":"auditor","password":"pass-word-1"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "short password",
            Some((
                json_ct,
                br#"{"name":"x5","role":"auditor","password":"short"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        ("empty body", None, StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (what, body, status, expected) in cases {
        let (s, v) = h.raw(Method::POST, "/api/v1/accounts", Some(&owner), body).await;
        assert_eq!((s, code(&v)), (status, expected), "{what}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }
    assert_eq!(h.account_names(&owner).await, before, "nothing changed");
    // Each failed mutating call is recorded.
    assert!(h.audit(&owner, "action=account.create&result=failed").await.len() >= 9);

    // Credentials.
    for (what, token) in [
        ("garbage", "not-a-token"),
        ("unknown session", "ws_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("bad key", "wk_key_x_zz"),
    ] {
        let (s, v) = h.get("/api/v1/whoami", token).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{what}");
    }
    let (s, v) = h.call(Method::GET, "/api/v1/accounts", None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    // Sign-in input.
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": PW})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "missing tenant"
    );
    let (s, v) = h.try_login("nope", "admin", PW).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "unknown tenant"
    );
    let (s, v) = h.try_login(&"t".repeat(500), "admin", PW).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    // Queries, paths and methods.
    let (s, v) = h.get("/api/v1/audit?since=yesterday", &owner).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let (s, v) = h.get("/api/v1/audit?bogus=1", &owner).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, v) = h.get("/api/v1/accounts?limit=-1", &owner).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, v) = h.get("/api/v1/nothing-here", &owner).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = h.call(Method::DELETE, "/api/v1/accounts", Some(&owner), None).await;
    assert_eq!((s, code(&v)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (s, v) = h.get("/api/v1/accounts/%ff%fe", &owner).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request"), "{v}");
}

async fn repeated_failures_lock_out(store: TestStore) {
    let h = Harness::start(store, |c| {
        c.login.slow_after = 100;
        c.login.lock_after = 3;
        c.login.address_lock_after = 8;
    })
    .await;
    let owner = h.login("default", "admin", PW).await;
    h.create_account(&owner, "victim", "auditor").await;
    for _ in 0..3 {
        let (s, v) = h.try_login("default", "victim", "wrong-password").await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    }
    let (s, v) = h.try_login("default", "victim", "victim-password").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "locked_out"),
        "locked even with the right password"
    );
    // The owner sees it, and can lift it.
    let (_, v) = h.get("/api/v1/lockouts", &owner).await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["scope"] == "account" && l["subject"] == "victim"),
        "{v}"
    );
    let (_, v) = h.get("/api/v1/accounts/victim", &owner).await;
    assert!(v["locked_until"].is_string());
    assert_eq!(v["failed_logins"], 3);
    assert_eq!(
        h.post("/api/v1/accounts/victim/unlock", &owner, json!({})).await.0,
        StatusCode::OK
    );
    let victim = h.login("default", "victim", "victim-password").await;
    // Guessing the current password through a session counts the same.
    for _ in 0..3 {
        let body = json!({"current_password": "guess-guess", "new_password": "whatever-new-1"});
        let (s, _) = h
            .call(
                Method::PUT,
                "/api/v1/accounts/victim/password",
                Some(&victim),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    let (_, v) = h.get("/api/v1/accounts/victim", &owner).await;
    assert!(v["locked_until"].is_string(), "{v}");
    h.post("/api/v1/accounts/victim/unlock", &owner, json!({})).await;

    // The source address: failures across any names lock it out.
    for i in 0..5 {
        h.try_login("default", &format!("ghost{i}"), "wrong-password").await;
    }
    let (s, v) = h.try_login("default", "admin", PW).await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"), "{v}");
    let (_, v) = h.get("/api/v1/lockouts", &owner).await;
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["scope"] == "address" && l["subject"] == "127.0.0.1"));
    let (s, _) = h
        .call(
            Method::DELETE,
            "/api/v1/lockouts/addresses/127.0.0.1",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    h.login("default", "admin", PW).await;
    // Lock-outs are in the trail.
    assert!(h.audit(&owner, "action=auth.login&result=denied").await.len() >= 9);
}

async fn sessions_end(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    let second = h.login("default", "admin", PW).await;
    assert_eq!(
        h.post("/api/v1/auth/logout", &owner, json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get("/api/v1/whoami", &owner).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.get("/api/v1/whoami", &second).await.0,
        StatusCode::OK,
        "other sessions go on"
    );
    // A new password ends every session of the account.
    h.create_account(&second, "sub", "auditor").await;
    let sub = h.login("default", "sub", "sub-password").await;
    let body = json!({"new_password": "sub-new-password"});
    assert_eq!(
        h.call(Method::PUT, "/api/v1/accounts/sub/password", Some(&second), Some(body))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get("/api/v1/whoami", &sub).await.0, StatusCode::UNAUTHORIZED);
    // Deleting an account ends its sessions.
    let sub = h.login("default", "sub", "sub-new-password").await;
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/accounts/sub", Some(&second), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get("/api/v1/whoami", &sub).await.0, StatusCode::UNAUTHORIZED);
}

async fn data_survives_a_restart(store: TestStore) {
    let mut h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    h.create_account(&owner, "keeper", "helpdesk").await;
    h.restart().await;
    let (s, _) = h.get("/api/v1/whoami", &owner).await;
    assert_eq!(s, StatusCode::OK, "sessions survive a restart");
    assert!(h.account_names(&owner).await.contains(&"keeper".to_owned()));
    h.login("default", "keeper", "keeper-password").await;
    assert_eq!(h.audit(&owner, "action=account.create").await.len(), 1);
}

async fn access_rules_decide_by_priority_and_stay_in_their_tenant(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    assert_eq!(
        h.post("/api/v1/groups", &owner, json!({"name": "eng"})).await.0,
        StatusCode::CREATED
    );
    let (s, v) = h
        .post("/api/v1/users", &owner, json!({"name": "alice", "groups": ["eng"]}))
        .await;
    assert_eq!((s, v["groups"].clone()), (StatusCode::CREATED, json!(["eng"])));
    h.post("/api/v1/users", &owner, json!({"name": "bob"})).await;
    let (s, v) = h
        .post("/api/v1/users", &owner, json!({"name": "carol", "groups": ["nope"]}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    let app =
        json!({"name": "db", "addresses": ["db.corp.example", "10.0.0.0/24"], "ports": ["5432"], "tags": ["prod"]});
    assert_eq!(h.post("/api/v1/apps", &owner, app).await.0, StatusCode::CREATED);
    for (bad, why) in [
        (
            json!({"name": "x", "addresses": ["db..corp"], "ports": ["1"]}),
            "bad address",
        ),
        (
            json!({"name": "x", "addresses": ["10.0.0.0/33"], "ports": ["1"]}),
            "bad CIDR",
        ),
        (
            json!({"name": "x", "addresses": ["a.example"], "ports": ["0"]}),
            "port 0",
        ),
        (
            json!({"name": "x", "addresses": ["a.example"], "ports": ["9-3"]}),
            "reversed range",
        ),
        (json!({"name": "x", "addresses": [], "ports": ["1"]}), "no address"),
        (
            json!({"name": "x", "addresses": ["a.example"], "ports": ["1"], "protocol": "icmp"}),
            "protocol",
        ),
    ] {
        let (s, v) = h.post("/api/v1/apps", &owner, bad).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{why}: {v}");
    }

    let test = |user: &str, to: &str| json!({"user": user, "to": to});
    // A new application is denied until a rule allows it.
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("alice", "db.corp.example:5432"))
        .await;
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("deny"), Some("no_rule_matched")),
        "{v}"
    );
    let (s, allow) = h
        .post(
            "/api/v1/rules",
            &owner,
            json!({"priority": 10, "action": "allow", "apps": ["db"], "groups": ["eng"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{allow}");
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("alice", "db.corp.example:5432"))
        .await;
    assert_eq!(
        (v["decision"].as_str(), &v["rule"]["id"]),
        (Some("allow"), &allow["id"]),
        "{v}"
    );
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("alice", "10.0.0.9:5432"))
        .await;
    assert_eq!(v["decision"], "allow", "CIDR addresses match too");
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("alice", "db.corp.example:22"))
        .await;
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("deny"), Some("no_application"))
    );
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("bob", "db.corp.example:5432"))
        .await;
    assert_eq!(v["decision"], "deny");
    assert!(v["steps"][0]["why_not"].as_str().is_some());
    // A higher-priority block (by tag) wins over the allow.
    let block = json!({"priority": 5, "action": "block", "tags": ["prod"], "users": ["alice"]});
    assert_eq!(h.post("/api/v1/rules", &owner, block).await.0, StatusCode::CREATED);
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("alice", "db.corp.example:5432"))
        .await;
    assert_eq!(
        (v["decision"].as_str(), v["rule"]["priority"].as_u64()),
        (Some("deny"), Some(5))
    );
    // ... until its validity window is over.
    let (_, v) = h
        .post(
            "/api/v1/rules/test",
            &owner,
            json!({"user": "alice", "to": "db.corp.example:5432", "at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(v["decision"], "deny", "no window set: the block still applies in 2099");
    // A disabled user reaches nothing.
    h.call(
        Method::PATCH,
        "/api/v1/users/bob",
        Some(&owner),
        Some(json!({"disabled": true})),
    )
    .await;
    let everyone = json!({"priority": 1, "action": "allow", "apps": ["db"]});
    h.post("/api/v1/rules", &owner, everyone).await;
    let (_, v) = h
        .post("/api/v1/rules/test", &owner, test("bob", "db.corp.example:5432"))
        .await;
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("deny"), Some("user_disabled"))
    );

    // Rule input is checked.
    for (bad, status) in [
        (
            json!({"priority": 10, "action": "allow", "apps": ["db"]}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"priority": 0, "action": "allow", "apps": ["db"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"priority": 20, "action": "maybe", "apps": ["db"]}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"priority": 20, "action": "allow"}), StatusCode::BAD_REQUEST),
        (
            json!({"priority": 20, "action": "allow", "apps": ["db"], "tags": ["prod"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"priority": 20, "action": "allow", "apps": ["ghost"]}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"priority": 20, "action": "allow", "apps": ["db"], "sources": ["not-a-net"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"priority": 20, "action": "allow", "apps": ["db"], "valid_from": "2030-01-01T00:00:00Z", "valid_until": "2029-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, v) = h.post("/api/v1/rules", &owner, bad.clone()).await;
        assert_eq!(s, status, "{bad}: {v}");
    }
    // An application a rule names cannot be deleted.
    let (s, v) = h.call(Method::DELETE, "/api/v1/apps/db", Some(&owner), None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));

    // Roles: an auditor reads but cannot change; helpdesk manages users only.
    h.create_account(&owner, "aud", "auditor").await;
    h.create_account(&owner, "desk", "helpdesk").await;
    let aud = h.login("default", "aud", "aud-password").await;
    let desk = h.login("default", "desk", "desk-password").await;
    assert_eq!(h.get("/api/v1/rules", &aud).await.0, StatusCode::OK);
    assert_eq!(
        h.post("/api/v1/rules/test", &aud, test("alice", "db.corp.example:5432"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.post(
            "/api/v1/rules",
            &aud,
            json!({"priority": 30, "action": "allow", "apps": ["db"]})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post("/api/v1/users", &desk, json!({"name": "dave"})).await.0,
        StatusCode::CREATED
    );
    assert_eq!(h.get("/api/v1/rules", &desk).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        h.post(
            "/api/v1/apps",
            &desk,
            json!({"name": "x", "addresses": ["a.example"], "ports": ["1"]})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Another tenant sees none of it.
    let op = h.login("system", "operator", PW).await;
    h.post(
        "/api/v1/tenants",
        &op,
        json!({"name": "other", "owner_password": "other-owner-pw"}),
    )
    .await;
    let other = h.login("other", "admin", "other-owner-pw").await;
    for path in ["/api/v1/users", "/api/v1/groups", "/api/v1/apps", "/api/v1/rules"] {
        let (s, v) = h.get(path, &other).await;
        assert_eq!(
            (s, v["items"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(0)),
            "{path}"
        );
    }
    let (s, _) = h
        .post("/api/v1/rules/test", &other, test("alice", "db.corp.example:5432"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "alice is not a user of the other tenant");
    let rule_id = allow["id"].as_str().unwrap();
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/rules/{rule_id}"), Some(&other), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/v1/users/alice", Some(&other), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The changes are in the trail under their action names.
    assert_eq!(h.audit(&owner, "action=rule.create&result=ok").await.len(), 3);
}

async fn devices_enrol_once_renew_report_and_revoke(store: TestStore) {
    let h = Harness::start(store, |c| c.renew_min_interval = Duration::ZERO).await;
    let owner = h.login("default", "admin", PW).await;
    h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    let (s, v) = h
        .post(
            "/api/v1/enroll-codes",
            &owner,
            json!({"user": "alice", "ttl_secs": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let code = v["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("wen_") && !code.contains(' '), "{code}");
    let (s, _) = h.post("/api/v1/enroll-codes", &owner, json!({"user": "nobody"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let posture = json!({"os": "linux", "os_version": "12", "hostname": "laptop", "agent_version": "0.1.0",
                         "kernel": null, "disk_encryption": false, "firewall": true, "screen_lock": null});
    let enroll = |code: &str, csr: &str| json!({"code": code, "csr_pem": csr, "name": "laptop", "posture": posture});
    // A bad CSR does not use up the code.
    let (s, v) = h
        .call(Method::POST, "/api/v1/enroll", None, Some(enroll(&code, "not a csr")))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (s, v) = h
        .call(Method::POST, "/api/v1/enroll", None, Some(enroll(&code, &csr_pem)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["tenant"].as_str(), v["user"].as_str(), v["compliant"].as_bool()),
        (Some("default"), Some("alice"), Some(true))
    );
    let device_id = v["device_id"].as_str().unwrap().to_owned();
    let device_token = v["device_token"].as_str().unwrap().to_owned();
    // The certificate names the device and chains to the tenant's CA; the key never left "the device".
    let cert = ward_pki::certs_from_pem(v["cert_pem"].as_str().unwrap())
        .unwrap()
        .remove(0);
    let tenant_ca = ward_pki::certs_from_pem(v["tenant_ca_pem"].as_str().unwrap())
        .unwrap()
        .remove(0);
    match ward_pki::Identity::from_cert_der(&cert).unwrap() {
        ward_pki::Identity::Device { device_id: d, .. } => assert_eq!(d, device_id),
        other => panic!("{other:?}"),
    }
    ward_pki::verify_issued_by(&cert, &tenant_ca).unwrap();
    assert!(v.get("key_pem").is_none() && !v.to_string().contains(&key_pem));
    // The code works once; junk codes are refused the same way.
    for bad in [code.as_str(), "wen_nope", "garbage"] {
        let (s, v) = h
            .call(Method::POST, "/api/v1/enroll", None, Some(enroll(bad, &csr_pem)))
            .await;
        assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{bad}");
    }

    let (_, v) = h.get(&format!("/api/v1/devices/{device_id}"), &owner).await;
    assert_eq!(
        (v["user"].as_str(), v["state"].as_str(), v["compliant"].as_bool()),
        (Some("alice"), Some("active"), Some(true))
    );
    assert_eq!(v["posture"]["os"], "linux");
    // Requiring disk encryption makes it non-compliant at once, and says why.
    let (s, _) = h
        .call(
            Method::PUT,
            "/api/v1/posture-requirements",
            Some(&owner),
            Some(json!({"disk_encryption": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = h.get(&format!("/api/v1/devices/{device_id}"), &owner).await;
    assert_eq!(v["compliant"], false);
    // The what-if takes the device into account: enforce refuses, observe admits and says so.
    h.post(
        "/api/v1/apps",
        &owner,
        json!({"name": "db", "addresses": ["db.corp.example"], "ports": ["5432"]}),
    )
    .await;
    let (_, strict) = h
        .post(
            "/api/v1/rules",
            &owner,
            json!({"priority": 1, "action": "allow", "apps": ["db"], "require_compliant_device": true}),
        )
        .await;
    let test = json!({"user": "alice", "device": device_id, "to": "db.corp.example:5432"});
    let (s, v) = h.post("/api/v1/rules/test", &owner, test.clone()).await;
    assert_eq!((s, v["decision"].as_str()), (StatusCode::OK, Some("deny")), "{v}");
    assert!(v["steps"][0]["why_not"].as_str().unwrap().contains("compliant"));
    let observe = json!({"priority": 2, "action": "allow", "apps": ["db"], "require_compliant_device": true, "posture": "observe"});
    h.post("/api/v1/rules", &owner, observe).await;
    let (_, v) = h.post("/api/v1/rules/test", &owner, test.clone()).await;
    assert_eq!(
        (v["decision"].as_str(), v["observed_noncompliant"].as_bool()),
        (Some("allow"), Some(true)),
        "{v}"
    );
    // Disabling the observe rule leaves the strict one: denied again.
    let observe_id = h.get("/api/v1/rules", &owner).await.1["items"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/api/v1/rules/{observe_id}"),
            Some(&owner),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((s, v["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (_, v) = h.post("/api/v1/rules/test", &owner, test.clone()).await;
    assert_eq!(v["decision"], "deny");
    assert!(strict["id"].is_string());
    let (s, _) = h
        .post(
            "/api/v1/rules/test",
            &owner,
            json!({"user": "alice", "device": "dev_nope", "to": "db.corp.example:5432"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = h.get(&format!("/api/v1/devices/{device_id}"), &owner).await;
    assert!(v["compliance_failures"][0].as_str().unwrap().contains("encrypted"));
    // The agent reports a better posture with its own token.
    let mut better = posture.clone();
    better["disk_encryption"] = json!(true);
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/device/posture",
            Some(&device_token),
            Some(json!({"posture": better})),
        )
        .await;
    assert_eq!((s, v["compliant"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    // Renewal: a new CSR, a new certificate for the same device.
    let (_, csr2) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/device/renew",
            Some(&device_token),
            Some(json!({"csr_pem": csr2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let renewed = ward_pki::certs_from_pem(v["cert_pem"].as_str().unwrap())
        .unwrap()
        .remove(0);
    assert_eq!(
        ward_pki::Identity::from_cert_der(&renewed).unwrap(),
        ward_pki::Identity::from_cert_der(&cert).unwrap()
    );

    // Roles and tenants.
    h.create_account(&owner, "aud", "auditor").await;
    let aud = h.login("default", "aud", "aud-password").await;
    assert_eq!(h.get("/api/v1/devices", &aud).await.0, StatusCode::OK);
    assert_eq!(
        h.post(&format!("/api/v1/devices/{device_id}/revoke"), &aud, json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post("/api/v1/enroll-codes", &aud, json!({"user": "alice"})).await.0,
        StatusCode::FORBIDDEN
    );
    let op = h.login("system", "operator", PW).await;
    h.post(
        "/api/v1/tenants",
        &op,
        json!({"name": "other", "owner_password": "other-owner-pw"}),
    )
    .await;
    let other = h.login("other", "admin", "other-owner-pw").await;
    assert_eq!(
        h.get(&format!("/api/v1/devices/{device_id}"), &other).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.post(&format!("/api/v1/devices/{device_id}/revoke"), &other, json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Revocation: the device token stops working at once.
    h.create_account(&owner, "desk", "helpdesk").await;
    let desk = h.login("default", "desk", "desk-password").await;
    let (s, v) = h
        .post(&format!("/api/v1/devices/{device_id}/revoke"), &desk, json!({}))
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("revoked")));
    assert_eq!(
        h.post(&format!("/api/v1/devices/{device_id}/revoke"), &desk, json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/device/renew",
            Some(&device_token),
            Some(json!({"csr_pem": csr_pem})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"));
    let (_, v) = h
        .post(
            "/api/v1/rules/test",
            &owner,
            json!({"user": "alice", "device": device_id, "to": "db.corp.example:5432"}),
        )
        .await;
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("deny"), Some("device_revoked"))
    );
    // A disabled user cannot enrol a device.
    let (_, v) = h.post("/api/v1/enroll-codes", &owner, json!({"user": "alice"})).await;
    let code2 = v["code"].as_str().unwrap().to_owned();
    h.call(
        Method::PATCH,
        "/api/v1/users/alice",
        Some(&owner),
        Some(json!({"disabled": true})),
    )
    .await;
    let (s, _) = h
        .call(Method::POST, "/api/v1/enroll", None, Some(enroll(&code2, &csr_pem)))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The trail: enrolment and revocation are recorded in the tenant; posture heartbeats are not.
    let enrolled = h.audit(&owner, "action=device.enroll&result=ok").await;
    assert_eq!(enrolled.len(), 1);
    assert!(enrolled[0]["detail"].as_str().unwrap().contains("alice"));
    assert_eq!(
        h.audit(&owner, "action=device.revoke&result=ok").await[0]["actor"],
        "desk"
    );
    assert!(h.audit(&owner, "action=device.posture").await.is_empty());
}

async fn gateways_join_follow_snapshots_and_ship_records_once(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let op = h.login("system", "operator", PW).await;
    let owner = h.login("default", "admin", PW).await;
    // Only operators make join codes.
    assert_eq!(
        h.post("/api/v1/gateway-join-codes", &owner, json!({"name": "edge-1"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = h
        .post("/api/v1/gateway-join-codes", &op, json!({"name": "edge-1"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let code = v["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("wgj_"));

    let (_, csr) = ward_pki::generate_key_and_csr("edge-1").unwrap();
    let join = json!({"code": code, "csr_pem": csr, "addresses": ["127.0.0.1", "gw.example"]});
    let (s, v) = h
        .call(Method::POST, "/api/v1/gateway/join", None, Some(join.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let gw_token = v["token"].as_str().unwrap().to_owned();
    let chain = ward_pki::certs_from_pem(v["cert_chain_pem"].as_str().unwrap()).unwrap();
    assert_eq!(chain.len(), 2, "leaf and service CA");
    assert!(matches!(
        ward_pki::Identity::from_cert_der(&chain[0]).unwrap(),
        ward_pki::Identity::Gateway { .. }
    ));
    ward_pki::verify_issued_by(&chain[0], &chain[1]).unwrap();
    let (s, _) = h.call(Method::POST, "/api/v1/gateway/join", None, Some(join)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a join code works once");
    let (_, v) = h.get("/api/v1/gateways", &op).await;
    assert_eq!(v["items"][0]["name"], "edge-1");

    // The snapshot: the tenant appears once it has a CA (with its first enrolment code).
    let (s, snap) = h.get("/api/v1/gateway/snapshot", &gw_token).await;
    assert_eq!(s, StatusCode::OK, "{snap}");
    assert!(snap["tenants"].as_array().unwrap().is_empty());
    assert_eq!(
        h.get("/api/v1/gateway/snapshot", &owner).await.0,
        StatusCode::UNAUTHORIZED,
        "only gateways"
    );
    h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    h.post("/api/v1/enroll-codes", &owner, json!({"user": "alice"})).await;
    h.post(
        "/api/v1/apps",
        &owner,
        json!({"name": "db", "addresses": ["db.corp.example"], "ports": ["5432"]}),
    )
    .await;
    let version = {
        let (_, snap) = h.get("/api/v1/gateway/snapshot", &gw_token).await;
        let t = &snap["tenants"][0];
        assert_eq!(
            (t["name"].as_str(), t["active"].as_bool()),
            (Some("default"), Some(true))
        );
        assert!(t["ca_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
        assert_eq!(t["users"][0]["name"], "alice");
        assert_eq!(t["policy"]["apps"][0]["name"], "db");
        snap["version"].as_i64().unwrap()
    };
    // A long poll answers as soon as something changes.
    let waiter = {
        let http = h.http.clone();
        let url = format!("{}/api/v1/gateway/snapshot?after={version}", h.url);
        let token = gw_token.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let v: Value = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (started.elapsed(), v)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.post(
        "/api/v1/rules",
        &owner,
        json!({"priority": 1, "action": "allow", "apps": ["db"]}),
    )
    .await;
    let (waited, snap) = waiter.await.unwrap();
    assert!(snap["version"].as_i64().unwrap() > version);
    assert_eq!(snap["tenants"][0]["policy"]["rules"].as_array().unwrap().len(), 1);
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    // Suspending the tenant shows in the next snapshot.
    let version = snap["version"].as_i64().unwrap();
    h.call(
        Method::PATCH,
        "/api/v1/tenants/default",
        Some(&op),
        Some(json!({"state": "suspended"})),
    )
    .await;
    let (_, snap) = h
        .get(&format!("/api/v1/gateway/snapshot?after={version}"), &gw_token)
        .await;
    assert_eq!(snap["tenants"][0]["active"], false);
    h.call(
        Method::PATCH,
        "/api/v1/tenants/default",
        Some(&op),
        Some(json!({"state": "active"})),
    )
    .await;

    // Records: stored once, however often shipped; read by the tenant's admins only.
    let tenant_id = snap["tenants"][0]["id"].as_str().unwrap().to_owned();
    let user_id = snap["tenants"][0]["users"][0]["id"].as_str().unwrap().to_owned();
    let record = |id: &str, action: &str| {
        json!({"id": id, "started_ms": 1_795_000_000_000i64, "tenant_id": tenant_id, "user_id": user_id,
               "device_id": "dev_x", "gateway_id": "ignored", "source": "127.0.0.1:40000",
               "dest_host": "db.corp.example", "dest_addr": "127.0.0.1:5432", "port": 5432, "protocol": "tcp",
               "action": action, "rule_id": null, "reason": "rule_matched", "bytes_up": 10, "bytes_down": 20,
               "duration_ms": 3, "end": "closed"})
    };
    let batch = json!({"records": [record("acr_01", "allow"), record("acr_02", "deny")]});
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/gateway/records",
            Some(&gw_token),
            Some(batch.clone()),
        )
        .await;
    assert_eq!(
        (s, v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (StatusCode::OK, Some(2), Some(0)),
        "{v}"
    );
    let (_, v) = h
        .call(Method::POST, "/api/v1/gateway/records", Some(&gw_token), Some(batch))
        .await;
    assert_eq!((v["accepted"].as_u64(), v["duplicates"].as_u64()), (Some(0), Some(2)));
    let (s, v) = h.get("/api/v1/access-records?user=alice&action=deny", &owner).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["user"].as_str(), items[0]["dest_host"].as_str()),
        (Some("alice"), Some("db.corp.example"))
    );
    assert_ne!(
        items[0]["gateway_id"], "ignored",
        "the gateway is taken from its credential"
    );
    h.create_account(&owner, "aud", "auditor").await;
    h.create_account(&owner, "desk", "helpdesk").await;
    let aud = h.login("default", "aud", "aud-password").await;
    let desk = h.login("default", "desk", "desk-password").await;
    assert_eq!(h.get("/api/v1/access-records", &aud).await.0, StatusCode::OK);
    assert_eq!(h.get("/api/v1/access-records", &desk).await.0, StatusCode::FORBIDDEN);
    h.post(
        "/api/v1/tenants",
        &op,
        json!({"name": "other", "owner_password": "other-owner-pw"}),
    )
    .await;
    let other = h.login("other", "admin", "other-owner-pw").await;
    let (_, v) = h.get("/api/v1/access-records", &other).await;
    assert!(
        v["items"].as_array().unwrap().is_empty(),
        "another tenant's records are not visible"
    );
    // Joining is in the operator's trail; shipping records is not administration.
    assert_eq!(h.audit(&op, "action=gateway.join&result=ok").await.len(), 1);
    assert!(h.audit(&op, "action=gateway.records").await.is_empty());

    // Clientless web access: a published host, and a gateway redeeming the
    // one-time code a browser brought back from the portal, once.
    let (s, v) = h
        .post(
            "/api/v1/apps",
            &owner,
            json!({"name": "wiki", "addresses": ["10.0.0.7"], "ports": ["80"], "public_host": "Wiki.Example"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["public_host"].as_str(), v["upstream_scheme"].as_str()),
        (Some("wiki.example"), Some("http"))
    );
    for bad in ["10.0.0.1", "*.example", "wiki.example:443", "wiki", "a_b.example"] {
        let (s, v) = h
            .post(
                "/api/v1/apps",
                &owner,
                json!({"name": "bad", "addresses": ["10.0.0.7"], "ports": ["80"], "public_host": bad}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (s, _) = h
        .post(
            "/api/v1/apps",
            &other,
            json!({"name": "wiki", "addresses": ["10.0.0.8"], "ports": ["80"], "public_host": "wiki.example"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a host is published once across tenants");
    let (_, snap) = h.get("/api/v1/gateway/snapshot", &gw_token).await;
    let web = &snap["tenants"][0]["web_apps"][0];
    assert_eq!(web["public_host"], "wiki.example");
    let tenant = h.store.store.tenant_by_name("default").await.unwrap().unwrap();
    let alice = h.store.store.user_by_name(&tenant.id, "alice").await.unwrap().unwrap();
    let now = ward_server::state::now_ms();
    let code = "wwc_test-code-for-the-api";
    h.store
        .store
        .create_web_code(
            &ward_server::auth::token::hash(code),
            &tenant.id,
            &alice.id,
            "wiki.example",
            now,
            now + 60_000,
        )
        .await
        .unwrap();
    let redeem = |host: &str| json!({"host": host, "code": code});
    assert_eq!(
        h.call(
            Method::POST,
            "/api/v1/gateway/web-sessions",
            Some(&owner),
            Some(redeem("wiki.example"))
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED,
        "only gateways redeem codes"
    );
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/gateway/web-sessions",
            Some(&gw_token),
            Some(redeem("WIKI.example")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["tenant_id"].as_str(), v["user_id"].as_str()),
        (Some(tenant.id.as_str()), Some(alice.id.as_str()))
    );
    assert!(v["expires_ms"].as_i64().unwrap() > now);
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/gateway/web-sessions",
            Some(&gw_token),
            Some(redeem("wiki.example")),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
        "once"
    );
    let (s, _) = h
        .call(
            Method::POST,
            "/api/v1/gateway/web-sessions",
            Some(&gw_token),
            Some(json!({"host": "wiki.example", "code": "x", "extra": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
}

fn code_of(v: &Value) -> &str {
    code(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_again_at_once_is_refused() {
    let h = Harness::start(TestStore::sqlite().await, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    let (_, v) = h.post("/api/v1/enroll-codes", &owner, json!({"user": "alice"})).await;
    let (_, csr) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let posture = json!({"os": "linux", "os_version": "12", "hostname": "laptop", "agent_version": "0.1.0"});
    let body = json!({"code": v["code"], "csr_pem": csr, "name": "laptop", "posture": posture});
    let (_, v) = h.call(Method::POST, "/api/v1/enroll", None, Some(body)).await;
    let token = v["device_token"].as_str().unwrap().to_owned();
    let (s, v) = h
        .call(
            Method::POST,
            "/api/v1/device/renew",
            Some(&token),
            Some(json!({"csr_pem": csr})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi() {
    let h = Harness::start(TestStore::sqlite().await, |_| {}).await;
    let (s, v) = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    h.login("default", "admin", PW).await;
    let (s, v) = h.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(text.contains("ward_http_requests_total"), "{text}");
    assert!(text.contains("ward_logins_total{outcome=\"success\"} 1"), "{text}");
    let (s, doc) = h.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/accounts",
        "/api/v1/accounts/{name}/role",
        "/api/v1/tenants",
        "/api/v1/apikeys",
        "/api/v1/audit",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_wards_own_ca() {
    let h = Harness::start(TestStore::sqlite().await, |c| c.tls = TlsMode::OwnCa).await;
    assert!(h.url.starts_with("https://"), "{}", h.url);
    let ca = h.running.as_ref().unwrap().ca.clone().unwrap();
    assert!(ca.fingerprint.starts_with("sha256:") && ca.fingerprint.len() == 7 + 64);
    let pem = std::fs::read_to_string(&ca.cert_path).unwrap();
    assert_eq!(
        ward_pki::fingerprint_der(&ward_pki::certs_from_pem(&pem).unwrap()[0]),
        ca.fingerprint
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = ca.cert_path.with_file_name(ward_pki::CA_KEY_FILE);
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let client = ward_client::Client::new(ward_client::ClientConfig {
        server: h.url.clone(),
        token: None,
        ca_cert_pem: Some(pem),
        pin: None,
    })
    .unwrap();
    let login = client
        .login(&ward_api::LoginRequest {
            tenant: "default".into(),
            username: "admin".into(),
            password: PW.into(),
            otp: None,
        })
        .await
        .unwrap();
    assert_eq!(login.whoami.account, "admin");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = h.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    // A client that does not trust Ward's CA refuses the connection.
    let other = ward_pki::CertificateAuthority::generate("someone else").unwrap();
    let stranger = ward_client::Client::new(ward_client::ClientConfig {
        server: h.url.clone(),
        token: None,
        ca_cert_pem: Some(other.cert_pem()),
        pin: None,
    })
    .unwrap();
    assert!(stranger.whoami().await.is_err());
}

// ---- multi-factor authentication ------------------------------------------

/// The TOTP code of `secret` (base32) for the time step `offset` steps from now.
fn totp_code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate((now as i64 + offset * 30) as u64)
}

/// Six digits that are none of the codes the server would accept now.
fn wrong_totp_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|o| totp_code(secret, o)).collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap()
}

impl Harness {
    async fn try_login_otp(&self, tenant: &str, user: &str, password: &str, otp: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"tenant": tenant, "username": user, "password": password, "otp": otp})),
        )
        .await
    }

    /// Enrol the session's account in TOTP; returns the secret and the recovery codes.
    async fn enrol_totp(&self, token: &str) -> (String, Vec<String>) {
        let (s, v) = self.post("/api/v1/me/mfa/totp", token, json!({})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let secret = v["secret"].as_str().unwrap().to_owned();
        let (s, v) = self
            .post(
                "/api/v1/me/mfa/totp/confirm",
                token,
                json!({"code": totp_code(&secret, 0)}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let codes = v["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }
}

/// Enrol with a QR code and confirm; sign in with the code, never twice with
/// the same one; recovery codes work once; wrong codes lock the account out;
/// only a manager of the account, in its tenant, resets it; turning it off
/// takes a code.
async fn mfa_enrols_signs_in_once_per_code_and_is_reset_by_a_manager(store: TestStore) {
    let h = Harness::start(store, |c| {
        c.login.slow_after = 100;
        c.login.lock_after = 3;
        c.login.address_lock_after = 100;
    })
    .await;
    let owner = h.login("default", "admin", PW).await;
    h.create_account(&owner, "ops", "admin").await;
    h.create_account(&owner, "aud", "auditor").await;
    let ops = h.login("default", "ops", "ops-password").await;

    // Enrolment: the secret, its URI and a QR code; starting again replaces the secret.
    let (s, first) = h.post("/api/v1/me/mfa/totp", &ops, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let first_secret = first["secret"].as_str().unwrap().to_owned();
    assert_eq!(first_secret.len(), 32, "20 bytes, base32");
    assert_eq!(
        first["otpauth_uri"],
        format!("otpauth://totp/Ward:ops@default?secret={first_secret}&issuer=Ward")
    );
    assert!(first["qr_svg"].as_str().unwrap().contains("<svg"));
    let (s, v) = h.post("/api/v1/me/mfa/totp", &ops, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret, first_secret);
    let (s, v) = h
        .post(
            "/api/v1/me/mfa/totp/confirm",
            &ops,
            json!({"code": totp_code(&first_secret, 0)}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "the replaced secret"
    );
    let (s, v) = h.get("/api/v1/whoami", &ops).await;
    assert_eq!((s, v["mfa_enabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, v) = h
        .post(
            "/api/v1/me/mfa/totp/confirm",
            &ops,
            json!({"code": totp_code(&secret, 0)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let recovery: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(recovery.iter().all(|c| c.len() == 14 && c.matches('-').count() == 2));
    let (_, v) = h.get("/api/v1/whoami", &ops).await;
    assert_eq!(v["mfa_enabled"], true, "{v}");
    let (_, v) = h.get("/api/v1/accounts/ops", &owner).await;
    assert_eq!(v["mfa_enabled"], true, "{v}");
    let (s, v) = h.post("/api/v1/me/mfa/totp", &ops, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "already on");

    // Sign-in: the password first, then the second factor.
    let (s, v) = h.try_login("default", "ops", "wrong-password").await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    let (s, v) = h.try_login("default", "ops", "ops-password").await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "mfa_required"), "{v}");
    assert!(v.get("token").is_none());
    let next = totp_code(&secret, 1);
    let (s, v) = h.try_login_otp("default", "ops", "ops-password", &next).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let session = v["token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/whoami", &session).await.0, StatusCode::OK);
    let (s, v) = h.try_login_otp("default", "ops", "ops-password", &next).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "replayed: {v}"
    );
    // A recovery code works once (in any case, with or without dashes).
    let (s, v) = h
        .try_login_otp("default", "ops", "ops-password", &recovery[0].to_uppercase())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h.try_login_otp("default", "ops", "ops-password", &recovery[0]).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "{v}");
    // Wrong codes are failed sign-ins: they lock the account out.
    let wrong = wrong_totp_code(&secret);
    h.try_login_otp("default", "ops", "ops-password", &wrong).await;
    h.try_login_otp("default", "ops", "ops-password", "aaaa-aaaa-aaaa")
        .await;
    let (_, v) = h.get("/api/v1/accounts/ops", &owner).await;
    assert_eq!(v["failed_logins"], 3, "{v}");
    assert!(v["locked_until"].is_string(), "{v}");
    let (s, v) = h.try_login_otp("default", "ops", "ops-password", &recovery[1]).await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "locked_out"), "{v}");
    h.post("/api/v1/accounts/ops/unlock", &owner, json!({})).await;
    let denied = h.audit(&owner, "action=auth.login&result=denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or("").contains("one-time code")),
        "{denied:?}"
    );

    // Reset: not by an auditor, not by another tenant's owner, not of oneself; by the owner.
    let aud = h.login("default", "aud", "aud-password").await;
    let (s, v) = h.post("/api/v1/accounts/ops/mfa/reset", &aud, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let op = h.login("system", "operator", PW).await;
    let (s, v) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "other", "owner_password": "other-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = h.login("other", "admin", "other-owner-pw").await;
    let (s, v) = h.post("/api/v1/accounts/ops/mfa/reset", &other, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, v) = h.post("/api/v1/accounts/admin/mfa/reset", &other, json!({})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "its own owner: {v}"
    );
    let (s, v) = h.post("/api/v1/accounts/ops/mfa/reset", &owner, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["mfa_enabled"], false);
    assert_eq!(
        h.get("/api/v1/whoami", &session).await.0,
        StatusCode::UNAUTHORIZED,
        "a reset ends the sessions"
    );
    let ops = h.login("default", "ops", "ops-password").await;
    let (_, v) = h.get("/api/v1/whoami", &ops).await;
    assert_eq!(v["mfa_enabled"], false);
    assert_eq!(
        h.audit(&owner, "action=mfa.reset").await.len(),
        2,
        "the auditor's and the owner's"
    );
    assert_eq!(
        h.audit(&other, "action=mfa.reset").await.len(),
        2,
        "in the caller's own trail"
    );

    // Turning it off takes a code, and a wrong one counts.
    let (secret, recovery) = h.enrol_totp(&ops).await;
    let body = json!({"code": wrong_totp_code(&secret)});
    let (s, v) = h
        .call(Method::DELETE, "/api/v1/me/mfa/totp", Some(&ops), Some(body))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (_, v) = h.get("/api/v1/accounts/ops", &owner).await;
    assert_eq!(v["failed_logins"], 1, "{v}");
    let body = json!({"code": recovery[3]});
    let (s, v) = h
        .call(Method::DELETE, "/api/v1/me/mfa/totp", Some(&ops), Some(body))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = h.get("/api/v1/whoami", &ops).await;
    assert_eq!(v["mfa_enabled"], false);
    h.login("default", "ops", "ops-password").await;
    for action in ["mfa.enroll", "mfa.confirm", "mfa.disable"] {
        assert!(
            !h.audit(&owner, &format!("action={action}")).await.is_empty(),
            "{action}"
        );
    }
}

/// The owner requires MFA of every administrator: a session of an account
/// without it reaches only whoami, sign-out and enrolment; API keys go on;
/// only the owner, itself enrolled, changes the setting; while it is on,
/// nobody turns their own MFA off.
async fn required_admin_mfa_holds_sessions_back_until_enrolled(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    h.create_account(&owner, "helper", "admin").await;
    h.create_account(&owner, "aud", "auditor").await;
    let aud = h.login("default", "aud", "aud-password").await;
    let (s, v) = h.post("/api/v1/apikeys", &aud, json!({"name": "script"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let aud_key = v["token"].as_str().unwrap().to_owned();
    let helper = h.login("default", "helper", "helper-password").await;

    let settings = |on: bool| Some(json!({ "require_admin_mfa": on }));
    let (s, v) = h.get("/api/v1/tenant/settings", &aud).await;
    assert_eq!(
        (s, v["require_admin_mfa"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    for (who, token) in [("auditor", &aud), ("admin", &helper)] {
        let (s, v) = h
            .call(Method::PUT, "/api/v1/tenant/settings", Some(token), settings(true))
            .await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{who}: {v}");
    }
    let (s, v) = h
        .call(Method::PUT, "/api/v1/tenant/settings", Some(&owner), settings(true))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "not before the owner has MFA: {v}"
    );
    let (owner_secret, owner_recovery) = h.enrol_totp(&owner).await;
    let (s, v) = h
        .call(Method::PUT, "/api/v1/tenant/settings", Some(&owner), settings(true))
        .await;
    assert_eq!(
        (s, v["require_admin_mfa"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    assert_eq!(
        h.get("/api/v1/users", &owner).await.0,
        StatusCode::OK,
        "the owner has MFA"
    );

    // A session without MFA: whoami yes, anything else no, until it enrols.
    let (s, v) = h.get("/api/v1/whoami", &helper).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["mfa_enabled"].as_bool(), v["mfa_enrollment_required"].as_bool()),
        (Some(false), Some(true))
    );
    for path in [
        "/api/v1/users",
        "/api/v1/accounts",
        "/api/v1/apikeys",
        "/api/v1/tenant/settings",
    ] {
        let (s, v) = h.get(path, &helper).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "mfa_enrollment_required"),
            "{path}: {v}"
        );
    }
    let (s, v) = h.create_account(&helper, "sneaky", "auditor").await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "mfa_enrollment_required"), "{v}");
    let (s, v) = h.post("/api/v1/accounts/aud/mfa/reset", &helper, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "mfa_enrollment_required"), "{v}");
    // A fresh sign-in is no different.
    let helper2 = h.login("default", "helper", "helper-password").await;
    assert_eq!(h.get("/api/v1/users", &helper2).await.0, StatusCode::FORBIDDEN);
    // Enrolling lifts it, for the session that enrolled.
    h.enrol_totp(&helper).await;
    assert_eq!(h.get("/api/v1/users", &helper).await.0, StatusCode::OK);
    let (_, v) = h.get("/api/v1/whoami", &helper).await;
    assert_eq!(v["mfa_enrollment_required"], false, "{v}");

    // API keys are for scripts: not held back.
    assert_eq!(h.get("/api/v1/users", &aud_key).await.0, StatusCode::OK);
    assert_eq!(h.get("/api/v1/users", &aud).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        h.post("/api/v1/auth/logout", &aud, json!({})).await.0,
        StatusCode::NO_CONTENT,
        "signing out is allowed"
    );

    // While it is required, nobody turns their own off; the owner can stop requiring it.
    let body = json!({"code": owner_recovery[0]});
    let (s, v) = h
        .call(Method::DELETE, "/api/v1/me/mfa/totp", Some(&owner), Some(body))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, v) = h.try_login_otp("default", "admin", PW, &owner_recovery[0]).await;
    assert_eq!(s, StatusCode::OK, "the refused disable did not use the code up: {v}");
    let (s, v) = h
        .call(Method::PUT, "/api/v1/tenant/settings", Some(&owner), settings(false))
        .await;
    assert_eq!(
        (s, v["require_admin_mfa"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let aud = h.login("default", "aud", "aud-password").await;
    assert_eq!(h.get("/api/v1/users", &aud).await.0, StatusCode::OK);
    let body = json!({"code": totp_code(&owner_secret, 1)});
    let (s, v) = h
        .call(Method::DELETE, "/api/v1/me/mfa/totp", Some(&owner), Some(body))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let events = h.audit(&owner, "action=tenant.settings").await;
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(events.iter().any(|e| e["result"] == "denied"));
}

/// End users' passwords (for the user portal): set, cleared and unlocked by
/// an account with `users.manage` of the user's own tenant only; the
/// password is checked and never reaches the trail.
async fn end_users_passwords_are_set_cleared_and_unlocked_by_user_managers(store: TestStore) {
    let h = Harness::start(store, |_| {}).await;
    let owner = h.login("default", "admin", PW).await;
    let (s, v) = h.post("/api/v1/users", &owner, json!({"name": "alice"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["has_password"], false);
    assert!(v.get("locked_until").is_none(), "{v}");
    let put = |token: String, user: &str, body: Value| {
        let path = format!("/api/v1/users/{user}/password");
        let h = &h;
        async move { h.call(Method::PUT, &path, Some(&token), Some(body)).await }
    };
    let secret = "alice-portal-secret-1";

    // Bad input: too short, too long, unknown fields, unknown user.
    let (s, v) = put(owner.clone(), "alice", json!({"password": "short"})).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (s, v) = put(owner.clone(), "alice", json!({"password": "x".repeat(2000)})).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (s, _) = put(owner.clone(), "alice", json!({"password": secret, "admin": true})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = put(owner.clone(), "nobody", json!({"password": secret})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(h.get("/api/v1/users/alice", &owner).await.1["has_password"], false);

    // Set.
    let (s, v) = put(owner.clone(), "alice", json!({"password": secret})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = h.get("/api/v1/users/alice", &owner).await;
    assert_eq!(v["has_password"], true);
    let (_, v) = h.get("/api/v1/users", &owner).await;
    assert_eq!(v["items"][0]["has_password"], true, "{v}");

    // An auditor reads users but cannot set their passwords.
    h.create_account(&owner, "auditor1", "auditor").await;
    let auditor = h.login("default", "auditor1", "auditor1-password").await;
    let (s, v) = put(auditor.clone(), "alice", json!({"password": "auditor-choice-1"})).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    for (m, path) in [
        (Method::DELETE, "/api/v1/users/alice/password"),
        (Method::POST, "/api/v1/users/alice/unlock"),
    ] {
        let (s, _) = h.call(m, path, Some(&auditor), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }

    // Another tenant's owner does not even find the user.
    let op = h.login("system", "operator", PW).await;
    let (s, _) = h
        .post(
            "/api/v1/tenants",
            &op,
            json!({"name": "beta", "owner_password": "beta-owner-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let beta = h.login("beta", "admin", "beta-owner-pw").await;
    let (s, v) = put(beta.clone(), "alice", json!({"password": "taken-over-123"})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    for (m, path) in [
        (Method::DELETE, "/api/v1/users/alice/password"),
        (Method::POST, "/api/v1/users/alice/unlock"),
    ] {
        let (s, _) = h.call(m, path, Some(&beta), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(h.get("/api/v1/users/alice", &owner).await.1["has_password"], true);

    // Unlock answers the user; clear removes the password.
    let (s, v) = h.post("/api/v1/users/alice/unlock", &owner, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["has_password"].as_bool()),
        (Some("alice"), Some(true))
    );
    let (s, _) = h
        .call(Method::DELETE, "/api/v1/users/alice/password", Some(&owner), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/api/v1/users/alice", &owner).await.1["has_password"], false);
    let (s, _) = h
        .call(Method::DELETE, "/api/v1/users/nobody/password", Some(&owner), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The trail names each action, and never holds the password.
    let set = h.audit(&owner, "action=user.set_password").await;
    assert!(
        set.iter().any(|e| e["result"] == "ok" && e["target"] == "user:alice"),
        "{set:?}"
    );
    assert!(
        set.iter().any(|e| e["result"] == "denied" && e["actor"] == "auditor1"),
        "{set:?}"
    );
    assert_eq!(h.audit(&owner, "action=user.clear_password&result=ok").await.len(), 1);
    assert_eq!(h.audit(&owner, "action=user.unlock&result=ok").await.len(), 1);
    let everything = serde_json::to_string(&h.audit(&owner, "limit=500").await).unwrap();
    assert!(!everything.contains(secret), "the password reached the trail");
    // The OpenAPI document lists the new operations.
    let (_, doc) = h.get("/api/v1/openapi.json", &owner).await;
    let path = &doc["paths"]["/api/v1/users/{name}/password"];
    assert!(path["put"].is_object() && path["delete"].is_object(), "{path}");
    assert!(doc["paths"]["/api/v1/users/{name}/unlock"]["post"].is_object());
}
