//! What the console and portal tests share: a server on a fresh SQLite
//! store, and a browser made of reqwest with a cookie jar.

#![allow(dead_code, clippy::unwrap_used)]

pub mod oidc_provider;

use std::collections::HashMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use ward_server::{Running, Secret, ServerArgs, ServerConfig};
use ward_store::testing::TestStore;

pub const PW: &str = "bootstrap-pass-1";
pub const FORM: &str = "application/x-www-form-urlencoded";

pub fn encode(form: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(form).unwrap()
}

pub struct Server {
    pub running: Option<Running>,
    _store: TestStore,
    _data: tempfile::TempDir,
    pub url: String,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// A server whose configuration `tweak` adjusts first.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let store = TestStore::sqlite().await;
        let data = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            data_dir: Some(data.path().to_owned()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            database: Some(store.url.clone()),
            ..Default::default()
        };
        let mut c = ServerConfig::load(&args).unwrap();
        c.bootstrap_password = Some(Secret::new(PW));
        tweak(&mut c);
        let running = ward_server::start(c).await.unwrap();
        let url = running.url.clone();
        Server {
            running: Some(running),
            _store: store,
            _data: data,
            url,
        }
    }

    /// An API call with a bearer token.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A sub-account `name` with `role` and `password`, made by `owner`.
    pub async fn create_account(&self, owner: &str, name: &str, role: &str, password: &str) {
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/accounts",
                owner,
                Some(json!({"name": name, "role": role, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    pub async fn token(&self, tenant: &str, user: &str, password: &str) -> String {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({"tenant": tenant, "username": user, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn audit(&self, token: &str, query: &str) -> Vec<Value> {
        let (s, v) = self
            .api(reqwest::Method::GET, &format!("/api/v1/audit?{query}"), token, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                tokio::task::block_in_place(|| handle.block_on(r.stop()));
            }
        }
    }
}

/// A browser: a cookie jar, no automatic redirects (the tests look at them).
pub struct Browser {
    pub url: String,
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a csrf field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            url: server.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
                assert!(c.contains(attr), "cookie without {attr}: {c}");
            }
            let (kv, _) = c.split_once(';').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Page { status, headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.url));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", FORM)
            .body(encode(form));
        self.send(req).await
    }

    pub async fn sign_in(&mut self, tenant: &str, user: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("tenant", tenant),
                ("username", user),
                ("password", password),
                ("next", "/rules"),
            ],
        )
        .await
    }

    /// The CSRF token of the forms on `path`.
    pub async fn csrf_of(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.csrf()
    }
}
