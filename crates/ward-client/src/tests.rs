#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use ward_api::Role;

use super::*;

// ---- URL validation -------------------------------------------------------

#[test]
fn accepts_http_and_https_urls() {
    for (given, want) in [
        ("http://127.0.0.1:7600", "http://127.0.0.1:7600"),
        ("https://ward.example.com/", "https://ward.example.com"),
        ("  http://localhost:7600/  ", "http://localhost:7600"),
        ("HTTPS://Ward.Example.com:443", "https://ward.example.com"),
        ("http://[::1]:7600", "http://[::1]:7600"),
        ("https://example.com/ward/", "https://example.com/ward"),
    ] {
        let url = parse_server_url(given).unwrap();
        assert_eq!(display_url(&url), want, "{given}");
    }
}

#[test]
fn refuses_bad_urls_with_a_clear_message() {
    for (given, why) in [
        ("", "it is empty"),
        ("ftp://example.com", "the scheme must be http or https"),
        ("localhost:7600", "the scheme must be http or https"),
        ("127.0.0.1:7600", "invalid server URL"),
        ("http://", "invalid server URL"),
        ("http://user:pw@example.com", "user name or password"),
        ("http://example.com/?x=1", "query or fragment"),
        ("http://example.com/#x", "query or fragment"),
        ("unix:/run/ward.sock", "the scheme must be http or https"),
    ] {
        let err = parse_server_url(given).unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{given}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(why), "{given}: {msg}");
        assert!(msg.contains("http://127.0.0.1:7600"), "{given}: {msg}");
    }
}

fn client(server: &str) -> Client {
    Client::new(ClientConfig {
        server: server.to_owned(),
        token: Some("wk_abc_def".to_owned()),
        ca_cert_pem: None,
        pin: None,
    })
    .unwrap()
}

#[test]
fn builds_percent_encoded_urls_under_the_base_path() {
    let c = client("http://127.0.0.1:7600");
    let url = c.url(&["accounts", "a b/c?d#e"], &[]).unwrap();
    assert_eq!(url.as_str(), "http://127.0.0.1:7600/api/v1/accounts/a%20b%2Fc%3Fd%23e");
    for bad in ["", ".", ".."] {
        let err = c.url(&["accounts", bad], &[]).unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{bad:?}");
    }
    let url = c.url(&["accounts", "..x"], &[]).unwrap();
    assert_eq!(url.path(), "/api/v1/accounts/..x");
    let c = client("https://example.com/ward/");
    let url = c
        .url(&["audit"], &[("since", "2026-01-01T00:00:00+01:00".to_owned())])
        .unwrap();
    assert_eq!(
        url.as_str(),
        "https://example.com/ward/api/v1/audit?since=2026-01-01T00%3A00%3A00%2B01%3A00"
    );
}

#[test]
fn refuses_tokens_that_cannot_be_sent() {
    for token in ["", "a b", "tok\n", "tök"] {
        let err = Client::new(ClientConfig {
            server: "http://127.0.0.1:7600".to_owned(),
            token: Some(token.to_owned()),
            ca_cert_pem: None,
            pin: None,
        })
        .unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{token:?}");
    }
}

#[test]
fn refuses_a_ca_that_is_not_pem() {
    let err = Client::new(ClientConfig {
        server: "https://127.0.0.1:7600".to_owned(),
        token: None,
        ca_cert_pem: Some("not a certificate".to_owned()),
        pin: None,
    })
    .unwrap_err();
    assert!(matches!(err, ClientError::Config(_)));
    assert!(err.to_string().starts_with("cannot use the CA certificate"), "{err}");
    // Irrelevant for http: ignored.
    Client::new(ClientConfig {
        server: "http://127.0.0.1:7600".to_owned(),
        token: None,
        ca_cert_pem: Some("not a certificate".to_owned()),
        pin: None,
    })
    .unwrap();
}

// ---- error bodies ---------------------------------------------------------

#[test]
fn maps_an_error_body() {
    let body = br#"{"error":{"code":"not_found","message":"no account named bob"}}"#;
    let err = api_error(StatusCode::NOT_FOUND, body);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert_eq!(err.to_string(), "no account named bob (not_found, HTTP 404)");
}

#[test]
fn maps_other_bodies_to_http_codes() {
    let err = api_error(StatusCode::BAD_GATEWAY, b"upstream\n  connect error");
    assert_eq!(err.code(), Some("http_502"));
    assert_eq!(
        err.to_string(),
        "the server answered 502 Bad Gateway: upstream connect error (http_502, HTTP 502)"
    );
    let err = api_error(StatusCode::NOT_FOUND, b"<html><body>nope</body></html>");
    assert_eq!(
        err.to_string(),
        "the server answered 404 Not Found (http_404, HTTP 404)"
    );
    let err = api_error(StatusCode::INTERNAL_SERVER_ERROR, br#"{"error":"flat"}"#);
    assert_eq!(err.code(), Some("http_500"));
    let long = "x".repeat(1000);
    let err = api_error(StatusCode::SERVICE_UNAVAILABLE, long.as_bytes());
    assert!(err.to_string().len() < 250);
    assert!(err.to_string().contains("..."));
}

// ---- against a real (tiny) HTTP server on loopback ------------------------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Responder = dyn Fn(&Seen) -> (u16, &'static str, String) + Send + Sync;

/// Serves canned HTTP/1.1 responses on 127.0.0.1; returns its URL and what it saw.
async fn serve(respond: Arc<Responder>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    serve_on(respond, None).await
}

/// [`serve`], over TLS when an acceptor is given.
async fn serve_on(respond: Arc<Responder>, tls: Option<tokio_rustls::TlsAcceptor>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let respond = respond.clone();
            let log = log.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(sock) = acceptor.accept(sock).await {
                            answer(sock, respond, log).await;
                        }
                    }
                    None => answer(sock, respond, log).await,
                }
            });
        }
    });
    (format!("{scheme}://{addr}"), seen)
}

async fn answer<S>(mut sock: S, respond: Arc<Responder>, log: Arc<Mutex<Vec<Seen>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap().split(' ');
    let method = start.next().unwrap().to_owned();
    let target = start.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let req = Seen {
        method,
        target,
        headers,
        body,
    };
    let (status, content_type, body) = respond(&req);
    log.lock().unwrap().push(req);
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await.ok();
    sock.shutdown().await.ok();
}

const JSON: &str = "application/json";

fn account_json(name: &str) -> String {
    serde_json::json!({
        "id": format!("id-{name}"), "name": name, "role": "auditor",
        "created_at": "2026-01-01T00:00:00Z", "failed_logins": 0
    })
    .to_string()
}

#[tokio::test]
async fn sends_the_token_and_user_agent_and_decodes() {
    let (url, seen) = serve(Arc::new(|req: &Seen| {
        if req.target == "/api/v1/accounts/bob" {
            (200, JSON, account_json("bob"))
        } else {
            (
                404,
                JSON,
                r#"{"error":{"code":"not_found","message":"nothing here"}}"#.into(),
            )
        }
    }))
    .await;
    let c = client(&url);
    let bob = c.get_account("bob").await.unwrap();
    assert_eq!(bob.name, "bob");
    assert_eq!(bob.role, Role::Auditor);
    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(req.method, "GET");
    assert_eq!(req.header("authorization"), Some("Bearer wk_abc_def"));
    assert_eq!(req.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("ward-ctl/"));

    let err = c.get_tenant("acme").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert_eq!(err.to_string(), "nothing here (not_found, HTTP 404)");
}

#[tokio::test]
async fn posts_json_and_accepts_empty_answers() {
    let (url, seen) = serve(Arc::new(|req: &Seen| {
        match (req.method.as_str(), req.target.as_str()) {
            ("POST", "/api/v1/auth/login") => (
                200,
                JSON,
                serde_json::json!({
                    "token": "sess-1", "expires_at": "2026-01-01T00:00:00Z",
                    "whoami": {"tenant": "acme", "account": "admin", "role": "owner", "operator": false,
                               "credential": "session", "permissions": ["accounts.read"]}
                })
                .to_string(),
            ),
            ("POST", "/api/v1/auth/logout") | ("DELETE", "/api/v1/accounts/bob") => (204, JSON, String::new()),
            ("PUT", "/api/v1/accounts/bob/password") => (204, JSON, String::new()),
            _ => (500, "text/plain", "boom".into()),
        }
    }))
    .await;
    let anon = Client::new(ClientConfig {
        server: url.clone(),
        token: None,
        ca_cert_pem: None,
        pin: None,
    })
    .unwrap();
    let login = anon
        .login(&LoginRequest {
            tenant: "acme".into(),
            username: "admin".into(),
            password: "pw with spaces".into(),
            otp: None,
        })
        .await
        .unwrap();
    assert_eq!(login.token, "sess-1");
    assert_eq!(login.whoami.role, Role::Owner);
    let c = anon.with_token(login.token).unwrap();
    c.set_account_password(
        "bob",
        &SetPassword {
            current_password: None,
            new_password: "new".into(),
        },
    )
    .await
    .unwrap();
    c.delete_account("bob").await.unwrap();
    c.logout().await.unwrap();
    let err = c.whoami().await.unwrap_err();
    assert_eq!(err.code(), Some("http_500"));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("authorization"), None, "login sends no token");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["password"], "pw with spaces");
    assert_eq!(seen[1].header("authorization"), Some("Bearer sess-1"));
    let body: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"current_password": null, "new_password": "new"})
    );
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(seen[3].target, "/api/v1/auth/logout");
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_decode_error() {
    let (url, _) = serve(Arc::new(|_: &Seen| (200, JSON, r#"{"items": 3}"#.into()))).await;
    let err = client(&url).list_accounts(PageQuery::default()).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
    assert!(err.to_string().starts_with("unexpected response from the Ward server"));
}

#[tokio::test]
async fn list_all_follows_cursors() {
    let (url, seen) = serve(Arc::new(|req: &Seen| {
        let (items, next) = if req.target.contains("cursor=c2") {
            (vec!["carol"], None)
        } else if req.target.contains("cursor=c1") {
            (vec!["bob"], Some("c2"))
        } else {
            (vec!["alice"], Some("c1"))
        };
        let items: Vec<serde_json::Value> = items
            .iter()
            .map(|n| serde_json::from_str(&account_json(n)).unwrap())
            .collect();
        let mut page = serde_json::json!({ "items": items });
        if let Some(next) = next {
            page["next_cursor"] = next.into();
        }
        (200, JSON, page.to_string())
    }))
    .await;
    let c = client(&url);
    let all = c.list_all(|p| c.list_accounts(p)).await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let targets: Vec<_> = seen.lock().unwrap().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        targets,
        [
            "/api/v1/accounts",
            "/api/v1/accounts?cursor=c1",
            "/api/v1/accounts?cursor=c2"
        ]
    );

    let two = c.list_up_to(Some(2), |p| c.list_accounts(p)).await.unwrap();
    assert_eq!(two.len(), 2);
    let targets: Vec<_> = seen.lock().unwrap().iter().skip(3).map(|s| s.target.clone()).collect();
    assert_eq!(
        targets,
        ["/api/v1/accounts?limit=2", "/api/v1/accounts?cursor=c1&limit=1"]
    );
}

#[tokio::test]
async fn list_all_stops_on_a_repeated_cursor() {
    let (url, _) = serve(Arc::new(|_: &Seen| {
        (200, JSON, r#"{"items": [], "next_cursor": "same"}"#.into())
    }))
    .await;
    let c = client(&url);
    let err = c.list_all(|p| c.list_lockouts(p)).await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)));
}

#[tokio::test]
async fn audit_filters_go_in_the_query() {
    let (url, seen) = serve(Arc::new(|_: &Seen| (200, JSON, r#"{"items": []}"#.into()))).await;
    let c = client(&url);
    let page = c
        .list_audit(AuditQuery {
            actor: Some("bob smith".into()),
            action: Some("account.create".into()),
            result: None,
            since: Some("2026-01-01T00:00:00Z".into()),
            cursor: None,
            limit: Some(10),
        })
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(
        seen.lock().unwrap()[0].target,
        "/api/v1/audit?actor=bob+smith&action=account.create&since=2026-01-01T00%3A00%3A00Z&limit=10"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(&format!("http://{addr}/"));
    let err = c.whoami().await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot reach the Ward server at http://{addr}: ")),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

// ---- HTTPS with a private CA ----------------------------------------------

fn tls_acceptor(ca: &ward_pki::CertificateAuthority) -> tokio_rustls::TlsAcceptor {
    let leaf = ca
        .issue_server(
            &["localhost".to_owned()],
            &["127.0.0.1".parse().unwrap()],
            Duration::from_secs(3600),
        )
        .unwrap();
    // HTTP/1.1 only: the test server does not speak h2.
    let config = ward_pki::server_config(
        leaf.chain_der().unwrap(),
        leaf.private_key_der().unwrap(),
        &[b"http/1.1"],
    )
    .unwrap();
    tokio_rustls::TlsAcceptor::from(config)
}

#[tokio::test]
async fn https_trusts_exactly_the_given_ca() {
    let ca = ward_pki::CertificateAuthority::generate("Ward test CA").unwrap();
    let (url, seen) = serve_on(
        Arc::new(|_: &Seen| (200, JSON, account_json("bob"))),
        Some(tls_acceptor(&ca)),
    )
    .await;
    assert!(url.starts_with("https://127.0.0.1:"));

    let trusted = Client::new(ClientConfig {
        server: url.clone(),
        token: Some("wk_a_b".into()),
        ca_cert_pem: Some(ca.cert_pem()),
        pin: None,
    })
    .unwrap();
    assert_eq!(trusted.get_account("bob").await.unwrap().name, "bob");
    assert_eq!(seen.lock().unwrap()[0].header("authorization"), Some("Bearer wk_a_b"));

    let other = ward_pki::CertificateAuthority::generate("Another CA").unwrap();
    let untrusted = Client::new(ClientConfig {
        server: url.clone(),
        token: Some("wk_a_b".into()),
        ca_cert_pem: Some(other.cert_pem()),
        pin: None,
    })
    .unwrap();
    let err = untrusted.get_account("bob").await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(seen.lock().unwrap().len(), 1, "no request reached the server");
}

#[tokio::test]
async fn https_with_a_pin_trusts_only_the_pinned_ca() {
    let ca = ward_pki::CertificateAuthority::generate("Ward test CA").unwrap();
    let (url, seen) = serve_on(
        Arc::new(|_: &Seen| (200, JSON, account_json("bob"))),
        Some(tls_acceptor(&ca)),
    )
    .await;
    let with_pin = |pin: String, ca_cert_pem: Option<String>| {
        Client::new(ClientConfig {
            server: url.clone(),
            token: None,
            ca_cert_pem,
            pin: Some(pin),
        })
        .unwrap()
    };

    // The right pin is enough on its own.
    let pinned = with_pin(ca.fingerprint(), None);
    assert_eq!(pinned.get_account("bob").await.unwrap().name, "bob");

    // A wrong pin is refused, even with the right CA next to it: the pin wins.
    let other = ward_pki::CertificateAuthority::generate("Another CA").unwrap();
    let wrong = with_pin(other.fingerprint(), Some(ca.cert_pem()));
    let err = wrong.get_account("bob").await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("pinned CA"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1, "no request reached the server");

    // A malformed pin is a configuration error.
    let err = Client::new(ClientConfig {
        server: url.clone(),
        pin: Some("sha256:nothex".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, ClientError::Config(_)), "{err:?}");
    assert!(err.to_string().starts_with("cannot use the CA pin"), "{err}");
}

#[tokio::test]
async fn imports_a_list_as_a_raw_body_and_sends_log_filters() {
    let (url, seen) = serve(Arc::new(|req: &Seen| {
        let list = serde_json::json!({"id": "dl_1", "name": "ads", "entries": 1, "sha256": "ab",
                                      "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"});
        match (req.method.as_str(), req.target.as_str()) {
            ("PUT", t) if t.starts_with("/api/v1/domain-lists/ads/entries") => (
                200,
                JSON,
                serde_json::json!({"list": list, "report": {"format": "hosts", "lines": 1, "comments": 0,
                    "accepted": 1, "ignored": 0, "invalid": 0, "entries": 1, "first_invalid": [], "first_ignored": []}})
                .to_string(),
            ),
            ("GET", t) if t.starts_with("/api/v1/logs/") => (200, JSON, r#"{"items": []}"#.into()),
            _ => (500, "text/plain", "boom".into()),
        }
    }))
    .await;
    let c = client(&url);
    let import = c
        .import_domain_list("ads", Some("hosts"), b"0.0.0.0 ads.example\n".to_vec())
        .await
        .unwrap();
    assert_eq!((import.list.entries, import.report.accepted), (1, 1));
    let req = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(req.target, "/api/v1/domain-lists/ads/entries?format=hosts");
    assert_eq!(req.header("content-type"), Some("text/plain"));
    assert_eq!(req.body, "0.0.0.0 ads.example\n");
    c.import_domain_list_url("ads", None, "https://lists.example/a b")
        .await
        .unwrap();
    let req = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        req.target,
        "/api/v1/domain-lists/ads/entries?url=https%3A%2F%2Flists.example%2Fa+b"
    );
    assert!(req.body.is_empty());
    c.list_internet_logs(
        "dns",
        ward_api::WebLogQuery {
            domain: Some("ads.example".into()),
            since: Some("1h".into()),
            limit: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let req = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(req.target, "/api/v1/logs/dns?domain=ads.example&since=1h&limit=5");
}
