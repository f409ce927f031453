//! The admin console in a real browser: Debian's Chromium, driven through
//! chromedriver (WebDriver) with fantoccini.
//!
//! Runs when `WARD_TEST_BROWSER` is set (CI sets it, and installs
//! `chromium` and `chromium-driver`, so a missing browser fails there).
//! `WARD_TEST_CHROMEDRIVER` and `WARD_TEST_CHROMIUM` override
//! `/usr/bin/chromedriver` and `/usr/bin/chromium`. With
//! `WARD_SCREENSHOTS=DIR` the test also saves the console's main pages as
//! PNG files in DIR (the README's pictures come from `docs/screenshots`).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use ward_server::{Running, Secret, ServerArgs, ServerConfig};
use ward_store::testing::TestStore;
use ward_store::AccessRecordRow;

const PW: &str = "bootstrap-pass-1";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn browser() -> Option<(Driver, Client)> {
    if std::env::var_os("WARD_TEST_BROWSER").is_none() {
        eprintln!("skipped: set WARD_TEST_BROWSER to run the browser tests (needs chromium and chromium-driver)");
        return None;
    }
    let chromedriver = std::env::var("WARD_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("WARD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e} (apt-get install chromium chromium-driver)"));
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                     // Nothing leaves the machine: names other than the loopback
                     // address resolve to nothing (the provider's pages ask for a
                     // web font), and the browser's own background traffic is off.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-pings", "--disable-domain-reliability"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    Some((driver, client))
}

async fn shot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("WARD_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}

async fn fill(c: &Client, name: &str, value: &str) {
    let field = c.find(Locator::Css(&format!("[name=\"{name}\"]"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn press(c: &Client, label: &str) {
    c.find(Locator::XPath(&format!("//button[normalize-space()='{label}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn body(c: &Client) -> String {
    c.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
}

/// Waits (a click starts a navigation; it does not wait for it) until the
/// page shows `text`.
async fn wait_text(c: &Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = match c.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {text:?}; it shows:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = c.current_url().await.unwrap();
        if now.path() == path {
            return;
        }
        assert!(Instant::now() < deadline, "the browser stayed at {now}, not {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(c: &Client, url: &str, tenant: &str, user: &str, password: &str) {
    sign_in_with(c, url, tenant, user, password, "").await;
}

async fn sign_in_with(c: &Client, url: &str, tenant: &str, user: &str, password: &str, otp: &str) {
    c.goto(&format!("{url}/")).await.unwrap();
    wait_path(c, "/login").await;
    fill(c, "tenant", tenant).await;
    fill(c, "username", user).await;
    fill(c, "password", password).await;
    fill(c, "otp", otp).await;
    press(c, "Sign in").await;
    wait_path(c, "/").await;
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TOTP code of a base32 secret at a time.
fn totp_at(secret: &str, secs: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(secs)
}

/// Demonstration traffic for the dashboard's chart: the records a gateway
/// would have shipped over the last day.
async fn demo_records(running: &Running, tenant_id: &str) {
    let now = ward_server::state::now_ms();
    let rows: Vec<AccessRecordRow> = (0..400)
        .map(|i: i64| AccessRecordRow {
            id: format!("acr_demo{i:05}"),
            tenant_id: tenant_id.into(),
            started_ms: now - (i * 211_000) % 86_000_000,
            user_id: "alice".into(),
            device_id: "dev_laptop".into(),
            gateway_id: "embedded".into(),
            source: "192.0.2.10".into(),
            dest_host: if i % 7 == 0 {
                "ssh.corp.example"
            } else {
                "db.corp.example"
            }
            .into(),
            dest_addr: Some("10.0.0.5".into()),
            port: if i % 7 == 0 { 22 } else { 5432 },
            protocol: "tcp".into(),
            action: if i % 7 == 0 { "deny" } else { "allow" }.into(),
            rule_id: None,
            reason: if i % 7 == 0 { "no_rule_matched" } else { "rule_matched" }.into(),
            bytes_up: 1200 + i,
            bytes_down: 48_000 + 10 * i,
            duration_ms: 300 + i,
            end_reason: if i % 7 == 0 { "denied" } else { "closed" }.into(),
        })
        .collect();
    running.store.insert_access_records(&rows, now).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_owner_sets_up_access_auditor_only_reads() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let store = TestStore::sqlite().await;
    let data = tempfile::tempdir().unwrap();
    let args = ServerArgs {
        data_dir: Some(data.path().to_owned()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        database: Some(store.url.clone()),
        ..Default::default()
    };
    let mut config = ServerConfig::load(&args).unwrap();
    config.bootstrap_password = Some(Secret::new(PW));
    let running = ward_server::start(config).await.unwrap();
    let url = running.url.clone();
    let tenant = running.store.tenant_by_name("default").await.unwrap().unwrap();

    c.goto(&format!("{url}/")).await.unwrap();
    shot(&c, "sign-in").await;
    sign_in(&c, &url, "default", "admin", PW).await;

    // Two-step sign-in: scan (here: read) the secret, confirm with the app's code.
    c.goto(&format!("{url}/account")).await.unwrap();
    press(&c, "Set up two-step sign-in").await;
    wait_text(&c, "Secret:").await;
    shot(&c, "mfa-setup").await;
    let secret = c
        .find(Locator::Css("main section code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let confirmed_at = unix_secs();
    fill(&c, "code", &totp_at(&secret, confirmed_at)).await;
    press(&c, "Turn on").await;
    wait_text(&c, "Two-step sign-in is on").await;
    let recovery = c
        .find(Locator::Css("ul.codes code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Users: a group, then a user in it.
    c.goto(&format!("{url}/users")).await.unwrap();
    fill(&c, "name", "alice").await;
    fill(&c, "groups", "").await;
    press(&c, "Create user").await;
    wait_text(&c, "User created.").await;
    let group = c
        .find(Locator::Css("form[action=\"/groups\"] [name=\"name\"]"))
        .await
        .unwrap();
    group.send_keys("eng").await.unwrap();
    press(&c, "Create group").await;
    wait_text(&c, "Group created.").await;

    // An application and the rule that opens it.
    c.goto(&format!("{url}/apps")).await.unwrap();
    fill(&c, "name", "db").await;
    fill(&c, "addresses", "db.corp.example, 10.0.0.5").await;
    fill(&c, "ports", "5432").await;
    fill(&c, "tags", "prod").await;
    press(&c, "Create application").await;
    wait_text(&c, "Application created.").await;
    c.goto(&format!("{url}/rules")).await.unwrap();
    fill(&c, "priority", "10").await;
    fill(&c, "apps", "db").await;
    fill(&c, "users", "alice").await;
    press(&c, "Create rule").await;
    wait_text(&c, "Rule created.").await;
    fill(&c, "user", "alice").await;
    fill(&c, "to", "db.corp.example:5432").await;
    press(&c, "Test").await;
    wait_text(&c, "allow · rule_matched").await;
    shot(&c, "rules").await;

    // An enrolment code for alice's laptop.
    c.goto(&format!("{url}/users")).await.unwrap();
    press(&c, "Enrolment code").await;
    wait_text(&c, "ward agent enroll --server").await;
    shot(&c, "users").await;

    demo_records(&running, &tenant.id).await;
    c.goto(&format!("{url}/")).await.unwrap();
    let text = body(&c).await;
    assert!(text.contains("connections allowed, last 24 h"), "{text}");
    shot(&c, "dashboard").await;
    c.goto(&format!("{url}/records?action=deny")).await.unwrap();
    assert!(body(&c).await.contains("ssh.corp.example"));
    shot(&c, "records").await;
    c.goto(&format!("{url}/audit")).await.unwrap();
    assert!(body(&c).await.contains("rule.create"));
    shot(&c, "audit").await;

    // On a phone-sized screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{url}/")).await.unwrap();
    shot(&c, "dashboard-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // Sign out, and in again with the password and the app's code. A code
    // works once: wait for the next 30-second step if this is still the
    // confirmation's.
    press(&c, "Sign out").await;
    wait_path(&c, "/login").await;
    while unix_secs() / 30 == confirmed_at / 30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.goto(&format!("{url}/")).await.unwrap();
    wait_path(&c, "/login").await;
    fill(&c, "tenant", "default").await;
    fill(&c, "username", "admin").await;
    fill(&c, "password", PW).await;
    press(&c, "Sign in").await;
    wait_text(&c, "second factor").await;
    sign_in_with(&c, &url, "default", "admin", PW, &totp_at(&secret, unix_secs())).await;
    press(&c, "Sign out").await;
    wait_path(&c, "/login").await;

    // An auditor sees the same pages without a single edit button.
    let token = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"tenant": "default", "username": "admin", "password": PW, "otp": recovery}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = reqwest::Client::new()
        .post(format!("{url}/api/v1/accounts"))
        .bearer_auth(&token)
        .json(&json!({"name": "audra", "role": "auditor", "password": "audra-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    sign_in(&c, &url, "default", "audra", "audra-password").await;
    for path in ["/users", "/apps", "/rules", "/devices"] {
        c.goto(&format!("{url}{path}")).await.unwrap();
        let buttons = c.find_all(Locator::Css("main button")).await.unwrap();
        let mut labels = Vec::new();
        for b in buttons {
            labels.push(b.text().await.unwrap());
        }
        assert!(
            labels.iter().all(|l| l == "Test"),
            "{path} offers the auditor {labels:?}"
        );
    }
    c.goto(&format!("{url}/rules")).await.unwrap();
    shot(&c, "rules-auditor").await;
    press(&c, "Sign out").await;
    wait_path(&c, "/login").await;

    // The user portal: alice approves her laptop's enrolment request.
    let http = reqwest::Client::new();
    let set = http
        .put(format!("{url}/api/v1/users/alice/password"))
        .bearer_auth(&token)
        .json(&json!({"password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let request: serde_json::Value = http
        .post(format!("{url}/api/v1/enroll/requests"))
        .json(&json!({"name": "alice-laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    c.goto(request["verify_url_complete"].as_str().unwrap()).await.unwrap();
    wait_path(&c, "/portal/login").await;
    shot(&c, "portal-sign-in").await;
    fill(&c, "username", "alice").await;
    fill(&c, "password", "alice-password").await;
    press(&c, "Sign in").await;
    wait_text(&c, "Enrol this device as yours?").await;
    assert!(body(&c).await.contains("alice-laptop"));
    shot(&c, "portal-approve").await;
    press(&c, "Approve").await;
    wait_text(&c, "Approved.").await;
    let polled: serde_json::Value = http
        .post(format!("{url}/api/v1/enroll/requests/poll"))
        .json(&json!({"request": request["request"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["state"], "approved");
    c.goto(&format!("{url}/portal")).await.unwrap();
    wait_text(&c, "My applications").await;
    assert!(body(&c).await.contains("db.corp.example"), "the rule opens db to alice");
    shot(&c, "portal").await;

    c.close().await.unwrap();
    running.stop().await;
}

/// An end user signs in to the portal through a real OpenID provider (the
/// fixture of `tests/oidc-provider`) and approves an agent's enrolment
/// request. Needs `WARD_TEST_OIDC` as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_through_oidc_in_chromium_and_approves_an_enrolment() {
    if std::env::var_os("WARD_TEST_OIDC").is_none() {
        eprintln!("skipped: set WARD_TEST_OIDC=1 too (after `npm ci --prefix tests/oidc-provider`)");
        return;
    }
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let server = common::Server::start().await;
    let url = server.url.clone();
    let accounts =
        json!([{"sub": "sub-bob", "preferred_username": "bob", "email": "bob@corp.example", "groups": ["eng"]}]);
    let provider = common::oidc_provider::Provider::start(&url, accounts).unwrap();
    let owner = server.token("default", "admin", PW).await;
    let (status, source) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/identity-sources",
            &owner,
            Some(json!({
                "name": "corp",
                "issuer": provider.issuer,
                "client_id": "ward",
                "client_secret": common::oidc_provider::SECRET,
            })),
        )
        .await;
    assert_eq!(status, 201, "{source}");

    // The agent asks to be enrolled, as `ward agent enroll --server URL` does.
    let http = reqwest::Client::new();
    let request: serde_json::Value = http
        .post(format!("{url}/api/v1/enroll/requests"))
        .json(&json!({"name": "bob-laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // bob opens the link, names his organisation, and picks its sign-in.
    c.goto(request["verify_url_complete"].as_str().unwrap()).await.unwrap();
    wait_path(&c, "/portal/login").await;
    let org = c
        .find(Locator::Css("form[method=\"get\"] [name=\"tenant\"]"))
        .await
        .unwrap();
    org.send_keys("default").await.unwrap();
    press(&c, "Continue").await;
    wait_text(&c, "Sign in with corp").await;
    shot(&c, "portal-sign-in-oidc").await;
    c.find(Locator::LinkText("Sign in with corp"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The provider's own sign-in and consent pages.
    let login = wait_for(&c, "[name=\"login\"]").await;
    assert!(
        c.current_url().await.unwrap().as_str().starts_with(&provider.issuer),
        "the browser went to the provider"
    );
    login.send_keys("sub-bob").await.unwrap();
    fill(&c, "password", "any").await;
    press(&c, "Sign-in").await;
    wait_for(&c, "button.login-submit").await;
    press(&c, "Continue").await;

    // Back at the portal, signed in, at the request it started from.
    wait_text(&c, "Enrol this device as yours?").await;
    let text = body(&c).await;
    assert!(text.contains("bob-laptop") && text.contains("bob"), "{text}");
    press(&c, "Approve").await;
    wait_text(&c, "Approved.").await;
    let polled: serde_json::Value = http
        .post(format!("{url}/api/v1/enroll/requests/poll"))
        .json(&json!({"request": request["request"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["state"], "approved", "{polled}");
    assert!(polled["code"].as_str().is_some_and(|c| !c.is_empty()), "{polled}");

    // bob came from the source, with the provider's groups.
    let (status, bob) = server
        .api(reqwest::Method::GET, "/api/v1/users/bob", &owner, None)
        .await;
    assert_eq!(status, 200, "{bob}");
    assert_eq!(bob["groups"], json!(["eng"]), "{bob}");
    c.close().await.unwrap();
}

/// Waits until an element matching `css` is on the page.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} on {}",
            c.current_url().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
