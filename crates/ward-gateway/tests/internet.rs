//! The filtering proxy: internet traffic on agents' tunnels (CONNECT and
//! plain-HTTP streams) and on the explicit proxy port, against in-process
//! origin servers on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ward_api::{AccessRecord, GatewaySnapshot, InternetSnapshot, SnapshotProxyCredential};
use ward_inet::{DomainList, InternetAction, InternetPolicyInput, InternetRule, NamedDomainList};

const PROXY_PASSWORD: &str = "wpx_alice1.s3cret-value";

fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rule(id: &str, priority: u32, action: InternetAction, lists: &[&str], users: &[&str]) -> InternetRule {
    InternetRule {
        id: id.into(),
        priority,
        action,
        global_allow: false,
        users: users.iter().map(|s| s.to_string()).collect(),
        groups: vec![],
        lists: lists.iter().map(|s| s.to_string()).collect(),
        inspect: false,
        valid_from: None,
        valid_until: None,
        enabled: true,
    }
}

fn list(id: &str, names: &[&str]) -> NamedDomainList {
    NamedDomainList {
        id: id.into(),
        domains: DomainList::from_entries(names.iter().copied()).unwrap(),
    }
}

/// Acme with no private applications and internet access control on:
/// `blocked.example`, `*.evil.example` and `bücher.example` blocked for
/// everyone; `localhost` warned for bob; everything else of bob's monitored;
/// alice allowed by default.
fn internet_snapshot(version: i64, pki: &Pki) -> GatewaySnapshot {
    let mut snapshot = snapshot(version, pki);
    let acme = acme(&mut snapshot);
    acme.policy = ward_policy::PolicyInput::default();
    acme.internet = InternetSnapshot {
        enabled: true,
        policy: InternetPolicyInput {
            default_action: InternetAction::Allow,
            rules: vec![
                rule("block-bad", 10, InternetAction::Block, &["bad"], &[]),
                rule("warn-local", 20, InternetAction::Warn, &["local"], &["bob"]),
                rule("monitor-bob", 30, InternetAction::Monitor, &[], &["bob"]),
            ],
            lists: vec![
                list("bad", &["blocked.example", "*.evil.example", "bücher.example"]),
                list("local", &["localhost"]),
            ],
        },
        proxy_credentials: vec![SnapshotProxyCredential {
            id: "wpx_alice1".into(),
            user_id: "alice".into(),
            secret_sha256: sha256_hex(PROXY_PASSWORD.as_bytes()),
        }],
        warn_minutes: 60,
        ..Default::default()
    };
    snapshot
}

/// The same with a rule blocking `localhost` for everyone.
fn localhost_blocked(version: i64, pki: &Pki) -> GatewaySnapshot {
    let mut snapshot = internet_snapshot(version, pki);
    let internet = &mut acme(&mut snapshot).internet;
    internet
        .policy
        .rules
        .push(rule("block-local", 5, InternetAction::Block, &["local"], &[]));
    snapshot
}

struct Net {
    harness: Harness,
    origin: SocketAddr,
}

async fn start(allow_private: bool) -> Net {
    start_with(allow_private, None).await
}

async fn start_with(allow_private: bool, dns: Option<SocketAddr>) -> Net {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.internet_allow_private = allow_private;
    config.proxy_listen = Some("127.0.0.1:0".parse().unwrap());
    config.dns_upstreams = dns.into_iter().collect();
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let harness = Harness {
        pki: pki.clone(),
        dir,
        server,
        snapshots,
        gateway: Some(gateway),
        echo: echo_server().await,
    };
    harness.push(internet_snapshot(1, &pki)).await;
    Net {
        harness,
        origin: origin_server().await,
    }
}

/// A website: `GET` answers `hello from PATH`; a request with a body
/// answers `got N bytes`.
async fn origin_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let path = request.uri().path().to_owned();
                    if path == "/host" {
                        let host = request.headers().get("host").map(|h| h.to_str().unwrap().to_owned());
                        return Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                            host.unwrap_or_default(),
                        ))));
                    }
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let text = if body.is_empty() {
                        format!("hello from {path}")
                    } else {
                        format!("got {} bytes", body.len())
                    };
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

async fn phone(h: &Harness) -> SendRequest<Bytes> {
    h.tunnel_as(&h.pki.device("phone")).await.unwrap()
}

// ---- CONNECT through the tunnel ---------------------------------------------

#[tokio::test]
async fn connect_allowed_blocked_warned_monitored() {
    let net = start(true).await;
    let h = &net.harness;
    let laptop = h.laptop().await;

    // Allowed: alice reaches the echo server by name.
    let authority = format!("localhost:{}", h.echo.port());
    let (response, mut send) = connect(&laptop, &authority).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    send_all(&mut send, Bytes::from_static(b"ping"), true).await.unwrap();
    assert_eq!(read_body(&mut body, None).await.unwrap(), b"ping");
    let allowed = h
        .server
        .record("allowed web record", |r| r.kind == "web" && r.action == "allow")
        .await;
    assert_eq!(allowed.dest_host, "localhost");
    assert_eq!(allowed.user_id, "alice");
    assert_eq!((allowed.bytes_up, allowed.bytes_down), (4, 4));
    assert!(allowed.dest_addr.is_some());

    // Blocked: by name, before any resolution.
    let (response, _) = connect(&laptop, "blocked.example:443").await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, "ward-reason"), Some("internet_blocked"));
    assert_eq!(header(&response, "ward-rule"), Some("block-bad"));
    let (response, _) = connect(&laptop, "www.EVIL.example:443").await.unwrap();
    assert_eq!(header(&response, "ward-reason"), Some("internet_blocked"));
    // An IDN is decided as its punycode.
    let (response, _) = connect(&laptop, "xn--bcher-kva.example:443").await.unwrap();
    assert_eq!(header(&response, "ward-rule"), Some("block-bad"));
    let blocked = h
        .server
        .record("blocked record", |r| r.kind == "web" && r.action == "block")
        .await;
    assert_eq!(blocked.rule_id.as_deref(), Some("block-bad"));
    assert_eq!(blocked.end, "denied");
    assert_eq!(blocked.dest_addr, None);

    // Warned: bob gets a token; clicking through lets him in.
    let phone = phone(h).await;
    let (response, _) = connect(&phone, &authority).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, "ward-reason"), Some("internet_warn"));
    assert_eq!(header(&response, "ward-rule"), Some("warn-local"));
    let token = header(&response, "ward-proceed").unwrap().to_owned();
    h.server
        .record("warn record", |r| r.action == "warn" && r.user_id == "bob")
        .await;
    // Alice cannot use bob's token.
    assert_eq!(proceed(&laptop, &token).await, 403);
    assert_eq!(proceed(&phone, "garbage").await, 403);
    assert_eq!(proceed(&phone, &token).await, 204);
    let proceeded = h.server.record("proceed record", |r| r.action == "proceed").await;
    assert_eq!(
        (proceeded.user_id.as_str(), proceeded.dest_host.as_str()),
        ("bob", "localhost")
    );
    assert_eq!(proceeded.rule_id.as_deref(), Some("warn-local"));
    let (response, _) = connect(&phone, &authority).await.unwrap();
    assert_eq!(response.status(), 200, "clicked through");

    // Monitored: bob's other destinations go through, marked.
    let (response, _) = connect(&phone, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let monitored = h.server.record("monitor record", |r| r.action == "monitor").await;
    assert_eq!(monitored.rule_id.as_deref(), Some("monitor-bob"));

    // Bad input: no valid host, port 0.
    let (response, _) = connect(&laptop, "bad_host!:443").await.unwrap();
    assert_eq!(response.status(), 400);
    let (response, _) = connect(&laptop, "example.com:0").await.unwrap();
    assert_eq!(response.status(), 400);
}

async fn proceed(tunnel: &SendRequest<Bytes>, token: &str) -> u16 {
    let request = Request::builder()
        .method(Method::POST)
        .uri("https://gateway/.ward/proceed")
        .header("ward-proceed", token)
        .body(())
        .unwrap();
    let mut ready = tunnel.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let net = start(false).await;
    let h = &net.harness;
    let laptop = h.laptop().await;
    for authority in [format!("localhost:{}", h.echo.port()), h.echo_authority()] {
        let (response, _) = connect(&laptop, &authority).await.unwrap();
        assert_eq!(response.status(), 403, "{authority}");
        assert_eq!(header(&response, "ward-reason"), Some("internet_private_address"));
    }
    let record = h
        .server
        .record("private refusal", |r| r.reason == "internet_private_address")
        .await;
    assert_eq!(record.kind, "web");
    assert_eq!(record.action, "block");
}

#[tokio::test]
async fn a_new_block_rule_cuts_a_live_internet_tunnel() {
    let net = start(true).await;
    let h = &net.harness;
    let laptop = h.laptop().await;
    let (response, mut send) = connect(&laptop, &format!("localhost:{}", h.echo.port())).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    send_all(&mut send, Bytes::from_static(b"one"), false).await.unwrap();
    assert_eq!(read_body(&mut body, Some(3)).await.unwrap(), b"one");
    assert_eq!(h.gateway().live_connections(), 1);

    h.push(localhost_blocked(2, &h.pki)).await;
    let record = h
        .server
        .record("cut record", |r| r.kind == "web" && r.end == "policy_changed")
        .await;
    assert_eq!(record.action, "allow", "what it was allowed as");
    eventually("connection gone", Duration::from_secs(5), || {
        (h.gateway().live_connections() == 0).then_some(())
    })
    .await;
    // New attempts are refused.
    let (response, _) = connect(&laptop, &format!("localhost:{}", h.echo.port())).await.unwrap();
    assert_eq!(header(&response, "ward-rule"), Some("block-local"));
}

/// A DNS server on 127.0.0.1 answering every A query with 127.0.0.1 and
/// every other query with no records; counts the queries.
async fn dns_server() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80;
            if n > 16 && buf[n - 3] == 1 {
                answer[7] = 1;
                answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = socket.send_to(&answer, from).await;
        }
    });
    (addr, queries)
}

#[tokio::test]
async fn names_resolve_through_the_dns_upstreams_when_given() {
    let (dns, queries) = dns_server().await;
    let net = start_with(true, Some(dns)).await;
    let h = &net.harness;
    let laptop = h.laptop().await;
    let (response, mut send) = connect(&laptop, &format!("www.site.example:{}", h.echo.port()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    send_all(&mut send, Bytes::from_static(b"hi"), true).await.unwrap();
    assert_eq!(read_body(&mut body, None).await.unwrap(), b"hi");
    let record = h.server.record("resolved", |r| r.dest_host == "www.site.example").await;
    assert_eq!(record.dest_addr.as_deref(), Some("127.0.0.1"));
    assert!(queries.load(std::sync::atomic::Ordering::SeqCst) >= 2, "A and AAAA");
    // Blocked names are never asked about.
    let before = queries.load(std::sync::atomic::Ordering::SeqCst);
    let (response, _) = connect(&laptop, "x.evil.example:443").await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(queries.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[tokio::test]
async fn internet_off_still_means_no_application() {
    let h = Harness::start().await;
    let laptop = h.laptop().await;
    let (response, _) = connect(&laptop, "unknown.example:443").await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, "ward-reason"), Some("no_application"));
    let record = h.server.record("refusal", |r| r.dest_host == "unknown.example").await;
    assert_eq!(record.kind, "private");
}

// ---- plain HTTP on the tunnel -----------------------------------------------

/// A `ward-protocol: http` stream.
async fn http_stream(tunnel: &SendRequest<Bytes>, authority: &str) -> (RecvStream, SendStream<Bytes>) {
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .header("ward-protocol", "http")
        .body(())
        .unwrap();
    let mut ready = tunnel.clone().ready().await.unwrap();
    let (response, stream) = ready.send_request(request, false).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    (response.into_body(), stream)
}

/// One HTTP/1.1 response: status, headers, body (by Content-Length).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One complete response at the start of `buf`, removed from it.
fn parse_answer(buf: &mut Vec<u8>) -> Option<Answer> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = parsed.parse(buf) else {
        return None;
    };
    let status = parsed.code.unwrap();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    if buf.len() < head + len {
        return None;
    }
    let body = buf[head..head + len].to_vec();
    buf.drain(..head + len);
    Some(Answer { status, headers, body })
}

async fn h2_exchange(
    recv: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    buf: &mut Vec<u8>,
    request: String,
) -> Answer {
    send_all(send, Bytes::from(request), false).await.unwrap();
    loop {
        if let Some(answer) = parse_answer(buf) {
            return answer;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), recv.data())
            .await
            .expect("no answer within 10 s")
            .expect("stream ended before an answer")
            .unwrap();
        let _ = recv.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn plain_http_streams_block_warn_proceed_and_forward() {
    let net = start(true).await;
    let h = &net.harness;
    let origin = format!("localhost:{}", net.origin.port());

    // Alice: allowed and blocked requests on one stream, each recorded.
    let laptop = h.laptop().await;
    let (mut recv, mut send) = http_stream(&laptop, &origin).await;
    let mut buf = Vec::new();
    let ok = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        format!("GET /news?id=7 HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "hello from /news");
    let blocked = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        "GET /x HTTP/1.1\r\nHost: BLOCKED.example.\r\n\r\n".into(),
    )
    .await;
    assert_eq!(blocked.status, 403);
    assert!(blocked.text().contains("Site blocked"), "{}", blocked.text());
    assert!(blocked.text().contains("block-bad"));
    assert!(blocked.text().contains("Alice"));
    let bad = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        "GET / HTTP/1.1\r\nHost: bad host!\r\n\r\n".into(),
    )
    .await;
    assert_eq!(bad.status, 400);
    // Request smuggling ends the stream with 400; nothing reaches the origin.
    let smuggled = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        format!("POST /smuggled HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    )
    .await;
    assert_eq!(smuggled.status, 400);

    let allowed = h
        .server
        .record("allowed request", |r| {
            r.url.as_deref().is_some_and(|u| u.contains("/news"))
        })
        .await;
    assert_eq!(allowed.kind, "web");
    assert_eq!(allowed.action, "allow");
    assert_eq!(allowed.method.as_deref(), Some("GET"));
    assert_eq!(allowed.status, Some(200));
    assert_eq!(
        allowed.url.as_deref(),
        Some(format!("http://localhost:{}/news?id=7", net.origin.port()).as_str())
    );
    assert_eq!(allowed.bytes_down, "hello from /news".len() as u64);
    let blocked = h
        .server
        .record("blocked request", |r| r.dest_host == "blocked.example")
        .await;
    assert!(!h
        .server
        .stored()
        .iter()
        .any(|r| r.url.as_deref().is_some_and(|u| u.contains("smuggled"))));
    assert_eq!((blocked.action.as_str(), blocked.status), ("block", Some(403)));
    assert!(blocked.id.len() > 4 && ok.header("content-length").is_some());

    // Bob: a warning page, its Continue link, then the site.
    let phone = phone(h).await;
    let (mut recv, mut send) = http_stream(&phone, &origin).await;
    let mut buf = Vec::new();
    let warned = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        format!("GET /page HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
    )
    .await;
    assert_eq!(warned.status, 403);
    let html = warned.text();
    let start = html.find("href=\"").unwrap() + 6;
    let link = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    let prefix = format!("http://{origin}/.ward/proceed?");
    assert!(link.starts_with(&prefix), "{link}");
    let path = &link[format!("http://{origin}").len()..];
    let redirect = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        format!("GET {path} HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
    )
    .await;
    assert_eq!(redirect.status, 303);
    assert_eq!(redirect.header("location"), Some("/page"));
    let through = h2_exchange(
        &mut recv,
        &mut send,
        &mut buf,
        format!("GET /page HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
    )
    .await;
    assert_eq!(through.status, 200);
    assert_eq!(through.text(), "hello from /page");
    let bob: Vec<AccessRecord> = eventually("bob's three records", Duration::from_secs(10), || {
        let mine: Vec<AccessRecord> = h
            .server
            .stored()
            .into_iter()
            .filter(|r| r.user_id == "bob" && r.kind == "web")
            .collect();
        (mine.len() >= 3).then_some(mine)
    })
    .await;
    let actions: Vec<&str> = bob.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["warn", "proceed", "allow"]);
    assert!(bob.iter().all(|r| r.rule_id.as_deref() == Some("warn-local")));
}

// ---- the explicit proxy port ------------------------------------------------

fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

async fn curl_async(args: Vec<String>) -> (String, String) {
    tokio::task::spawn_blocking(move || curl(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

#[tokio::test]
async fn proxy_port_authenticates_decides_and_forwards() {
    let net = start(true).await;
    let h = &net.harness;
    let proxy = h.gateway().proxy_addr().unwrap();
    let with = |cred: &str| format!("http://{cred}@{proxy}");
    let site = format!("http://localhost:{}/hello", net.origin.port());

    let (code, _) = curl_async(vec!["-x".into(), format!("http://{proxy}"), site.clone()]).await;
    assert_eq!(code, "407");
    let (code, _) = curl_async(vec!["-x".into(), with("Alice:wpx_alice1.wrong"), site.clone()]).await;
    assert_eq!(code, "407");
    let (code, _) = curl_async(vec!["-x".into(), with(&format!("Bob:{PROXY_PASSWORD}")), site.clone()]).await;
    assert_eq!(code, "407", "another user's name");

    let alice = with(&format!("Alice:{PROXY_PASSWORD}"));
    let (code, body) = curl_async(vec!["-x".into(), alice.clone(), site.clone()]).await;
    assert_eq!((code.as_str(), body.as_str()), ("200", "hello from /hello"));
    let record = h
        .server
        .record("proxy GET", |r| r.url.as_deref() == Some(site.as_str()))
        .await;
    assert_eq!(
        (
            record.user_id.as_str(),
            record.device_id.as_str(),
            record.action.as_str()
        ),
        ("alice", "", "allow")
    );

    // The Host header names the host decided (no fronting a blocked one).
    let (code, body) = curl_async(vec![
        "-x".into(),
        alice.clone(),
        "-H".into(),
        "Host: blocked.example".into(),
        format!("http://localhost:{}/host", net.origin.port()),
    ])
    .await;
    assert_eq!(
        (code.as_str(), body),
        ("200", format!("localhost:{}", net.origin.port()))
    );

    // CONNECT (curl -p tunnels even plain HTTP).
    let (code, body) = curl_async(vec!["-p".into(), "-x".into(), alice.clone(), site.clone()]).await;
    assert_eq!((code.as_str(), body.as_str()), ("200", "hello from /hello"));
    let tunnel = h
        .server
        .record("proxy CONNECT", |r| {
            r.kind == "web" && r.url.is_none() && r.user_id == "alice"
        })
        .await;
    assert!(tunnel.bytes_up > 0 && tunnel.bytes_down > 0);

    // Blocked: a page for plain HTTP, a short refusal for CONNECT.
    let (code, body) = curl_async(vec!["-x".into(), alice.clone(), "http://blocked.example/".into()]).await;
    assert_eq!(code, "403");
    assert!(body.contains("Site blocked") && body.contains("block-bad"), "{body}");
    let (code, _) = curl_async(vec![
        "-p".into(),
        "-x".into(),
        alice.clone(),
        "http://blocked.example/".into(),
    ])
    .await;
    assert_ne!(code, "200");
    h.server
        .record("CONNECT refusal", |r| {
            r.dest_host == "blocked.example" && r.url.is_none()
        })
        .await;

    // Uploads: the body's SHA-256 and size; a multipart file name.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let upload_url = format!("http://localhost:{}/upload", net.origin.port());
    let (code, body) = curl_async(vec![
        "-x".into(),
        alice.clone(),
        "-H".into(),
        "Content-Type: application/octet-stream".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
        upload_url.clone(),
    ])
    .await;
    assert_eq!((code.as_str(), body.as_str()), ("200", "got 200000 bytes"));
    let record = h
        .server
        .record("upload", |r| r.upload.as_ref().is_some_and(|u| u.file_name.is_none()))
        .await;
    let upload = record.upload.unwrap();
    assert_eq!(upload.sha256, sha256_hex(&data));
    assert_eq!(upload.size, 200_000);
    assert_eq!(record.bytes_up, 200_000);
    assert_eq!(upload.content_type.as_deref(), Some("application/octet-stream"));
    let (code, _) = curl_async(vec![
        "-x".into(),
        alice.clone(),
        "-F".into(),
        format!("file=@{}", file.display()),
        upload_url,
    ])
    .await;
    assert_eq!(code, "200");
    let record = h
        .server
        .record("multipart upload", |r| {
            r.upload.as_ref().is_some_and(|u| u.file_name.is_some())
        })
        .await;
    assert_eq!(record.upload.unwrap().file_name.as_deref(), Some("report.bin"));
}

/// A website on every loopback address that counts the connections it
/// accepts; `/close` answers with `Connection: close`.
async fn counting_origin() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let path = request.uri().path().to_owned();
                    let mut response = http::Response::new(Full::new(Bytes::from(format!("hello from {path}"))));
                    if path == "/close" {
                        response
                            .headers_mut()
                            .insert("connection", http::HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (port, accepted)
}

/// One keep-alive connection to the proxy port.
async fn proxy_connection(proxy: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn through(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: Method,
    url: &str,
    password: &str,
) -> (u16, String) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("Alice:{password}"));
    sender.ready().await.unwrap();
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("host", url.split('/').nth(2).unwrap())
        .header("proxy-authorization", format!("Basic {auth}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_proxy_connection_keeps_its_own_upstream_connections() {
    use std::sync::atomic::Ordering;
    let net = start(true).await;
    let h = &net.harness;
    let proxy = h.gateway().proxy_addr().unwrap();
    let (port, accepted) = counting_origin().await;
    let mut client = proxy_connection(proxy).await;
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");

    // Requests to one site on one proxy connection: one upstream connection.
    for path in ["/a", "/b", "/c"] {
        let answer = through(&mut client, Method::GET, &url("127.0.0.1", path), PROXY_PASSWORD).await;
        assert_eq!(answer, (200, format!("hello from {path}")));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // An answer without a body gives the connection back too.
    let (status, body) = through(&mut client, Method::HEAD, &url("127.0.0.1", "/head"), PROXY_PASSWORD).await;
    assert_eq!((status, body.as_str()), (200, ""));
    through(&mut client, Method::GET, &url("127.0.0.1", "/d"), PROXY_PASSWORD).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The origin closes it: the next request goes out on a new one.
    through(&mut client, Method::GET, &url("127.0.0.1", "/close"), PROXY_PASSWORD).await;
    let answer = through(&mut client, Method::GET, &url("127.0.0.1", "/e"), PROXY_PASSWORD).await;
    assert_eq!(answer, (200, "hello from /e".to_owned()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // Other sites: one connection each up to four per proxy connection (this
    // one has one), the shared pool beyond; all answered, all reused.
    let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
    for _ in 0..2 {
        for host in hosts {
            let answer = through(&mut client, Method::GET, &url(host, "/x"), PROXY_PASSWORD).await;
            assert_eq!(answer, (200, "hello from /x".to_owned()), "{host}");
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2 + hosts.len());
    // A second proxy connection has its own.
    let mut other = proxy_connection(proxy).await;
    through(&mut other, Method::GET, &url("127.0.0.1", "/f"), PROXY_PASSWORD).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 3 + hosts.len());

    // Every request left its record, with the address it went to.
    let records = h
        .server
        .wait_stored(3 + 2 + 2 + 2 * hosts.len() + 1)
        .await
        .into_iter()
        .filter(|r| r.url.as_deref().is_some_and(|u| u.contains(&format!(":{port}/"))))
        .collect::<Vec<_>>();
    assert_eq!(records.len(), 3 + 2 + 2 + 2 * hosts.len() + 1, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r.status == Some(200) && r.end == "closed" && r.dest_addr.is_some()));

    // A credential checked once on a connection is checked again under the
    // next snapshot: revoked, the same connection is refused at once.
    let mut revoked = internet_snapshot(2, &h.pki);
    acme(&mut revoked).internet.proxy_credentials.clear();
    h.push(revoked).await;
    let (status, _) = through(&mut client, Method::GET, &url("127.0.0.1", "/g"), PROXY_PASSWORD).await;
    assert_eq!(status, 407);
    // And a wrong password on a connection that presented a good one is refused.
    h.push(internet_snapshot(3, &h.pki)).await;
    let (status, _) = through(&mut other, Method::GET, &url("127.0.0.1", "/h"), PROXY_PASSWORD).await;
    assert_eq!(status, 200);
    let (status, _) = through(&mut other, Method::GET, &url("127.0.0.1", "/i"), "wpx_alice1.wrong").await;
    assert_eq!(status, 407);
}

// ---- bad input on the proxy port --------------------------------------------

fn auth_header() -> String {
    use base64::Engine as _;
    format!(
        "Proxy-Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("Alice:{PROXY_PASSWORD}"))
    )
}

/// Sends raw bytes on a fresh connection; the status of the first answer,
/// or `None` when the gateway closes without one.
async fn raw(proxy: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(bytes).await.ok()?;
    let mut buf = Vec::new();
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = vec![0u8; 8192];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(_)) = parsed.parse(&buf) {
                return parsed.code;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    answer.expect("neither an answer nor a close within 20 s")
}

#[tokio::test]
async fn proxy_port_refuses_bad_input_cleanly() {
    let net = start(true).await;
    let h = &net.harness;
    let proxy = h.gateway().proxy_addr().unwrap();
    let auth = auth_header();
    let site = format!("localhost:{}", net.origin.port());

    // A slow client, started first: cut after the header timeout.
    let slow = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(proxy).await.unwrap();
        tcp.write_all(b"GET http://localhost/ HTTP/1.1\r\nHost: local")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = vec![0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        started.elapsed()
    });

    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            format!("POST http://{site}/ HTTP/1.1\r\nHost: {site}\r\n{auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            Some(400),
        ),
        (
            "different content lengths",
            format!("POST http://{site}/ HTTP/1.1\r\nHost: {site}\r\n{auth}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd").into_bytes(),
            Some(400),
        ),
        (
            "long URL",
            format!("GET http://{site}/{} HTTP/1.1\r\nHost: {site}\r\n{auth}\r\n", "a".repeat(10_000)).into_bytes(),
            Some(414),
        ),
        (
            "huge header section",
            format!("GET http://{site}/ HTTP/1.1\r\nHost: {site}\r\n{auth}X-Big: {}\r\n\r\n", "b".repeat(70_000)).into_bytes(),
            Some(431),
        ),
        (
            "too many headers",
            format!(
                "GET http://{site}/ HTTP/1.1\r\nHost: {site}\r\n{auth}{}\r\n",
                (0..150).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            Some(431),
        ),
        (
            "CONNECT to port 0",
            format!("CONNECT localhost:0 HTTP/1.1\r\nHost: localhost:0\r\n{auth}\r\n").into_bytes(),
            Some(400),
        ),
        (
            "CONNECT to a bad authority",
            format!("CONNECT bad_host!:443 HTTP/1.1\r\nHost: x\r\n{auth}\r\n").into_bytes(),
            Some(400),
        ),
        (
            "invalid host",
            format!("GET http://bad..host/ HTTP/1.1\r\nHost: bad..host\r\n{auth}\r\n").into_bytes(),
            Some(400),
        ),
        (
            "origin-form on a proxy",
            format!("GET / HTTP/1.1\r\nHost: {site}\r\n{auth}\r\n").into_bytes(),
            Some(400),
        ),
    ];
    for (what, bytes, expected) in cases {
        assert_eq!(raw(proxy, &bytes).await, expected, "{what}");
    }
    // Nothing above disturbed the others.
    let good = format!("GET http://{site}/fine HTTP/1.1\r\nHost: {site}\r\n{auth}\r\n");
    assert_eq!(raw(proxy, good.as_bytes()).await, Some(200));

    let took = slow.await.unwrap();
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(25),
        "slow client cut after {took:?}"
    );
}

// ---- throughput (by hand) ---------------------------------------------------

/// Requests per second through the proxy port with wrk (1 KiB GETs,
/// keep-alive, 50 connections, a 1,000,000-name block list loaded), and
/// straight to the origin for scale. Run by hand, in release:
/// `cargo test --release -p ward-gateway --test internet -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: needs wrk and a release build"]
async fn throughput_of_the_proxy_port() {
    let pki = Arc::new(Pki::new());
    let dir = tempfile::tempdir().unwrap();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.internet_allow_private = true;
    config.proxy_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::default();
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let mut snapshot = internet_snapshot(1, &pki);
    let names: Vec<String> = (0..1_000_000).map(|i| format!("blocked-{i}.example")).collect();
    acme(&mut snapshot)
        .internet
        .policy
        .lists
        .push(list("big", &names.iter().map(String::as_str).collect::<Vec<_>>()));
    acme(&mut snapshot)
        .internet
        .policy
        .rules
        .push(rule("block-big", 1, InternetAction::Block, &["big"], &[]));
    let started = std::time::Instant::now();
    snapshots.send(snapshot).unwrap();
    eventually("snapshot applied", Duration::from_secs(120), || {
        (gateway.snapshot_version() == Some(1)).then_some(())
    })
    .await;
    println!("1,000,000-name list applied in {:?}", started.elapsed());

    // A 1 KiB origin.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let body = Bytes::from(vec![b'x'; 1024]);
        while let Ok((tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("Alice:{PROXY_PASSWORD}"));
    let script = dir.path().join("proxy.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.path = \"http://127.0.0.1:{}/1k\"\nwrk.headers[\"Proxy-Authorization\"] = \"Basic {auth}\"\n",
            origin.port()
        ),
    )
    .unwrap();
    let proxy = gateway.proxy_addr().unwrap();
    for (what, args) in [
        ("origin directly", vec![format!("http://{origin}/1k")]),
        (
            "through the proxy port",
            vec!["-s".into(), script.display().to_string(), format!("http://{proxy}")],
        ),
    ] {
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("wrk")
                .args(["-t2", "-c50", "-d5s", "--latency"])
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!("--- {what}\n{text}");
    }
    println!("records stored: {}", server.stored().len());
}

// ---- lists by digest ----------------------------------------------------------

#[tokio::test]
async fn lists_travel_by_digest_fetched_once_and_kept() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let (lists, fetches) = (source.lists.clone(), source.list_fetches.clone());
    let mut config = config(&pki, &dir);
    config.internet_allow_private = true;
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let h = Harness {
        pki: pki.clone(),
        dir: dir.clone(),
        server: server.clone(),
        snapshots,
        gateway: Some(gateway),
        echo: echo_server().await,
    };
    let text = "by-digest.example\n";
    let sha = sha256_hex(text.as_bytes());
    lists.lock().unwrap().insert(sha.clone(), text.to_owned());
    // A snapshot naming the list by digest only.
    let by_ref = |version: i64, sha: &str| {
        let mut snapshot = internet_snapshot(version, &pki);
        let internet = &mut acme(&mut snapshot).internet;
        internet
            .policy
            .rules
            .push(rule("block-ref", 1, InternetAction::Block, &["refs"], &[]));
        internet.list_refs = vec![ward_api::SnapshotListRef {
            id: "refs".into(),
            sha256: sha.to_owned(),
            entries: 1,
        }];
        snapshot
    };
    h.push(by_ref(1, &sha)).await;
    let laptop = h.laptop().await;
    let (response, _) = connect(&laptop, "by-digest.example:443").await.unwrap();
    assert_eq!(header(&response, "ward-rule"), Some("block-ref"));
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The next snapshot names the same digest: not fetched again.
    h.push(by_ref(2, &sha)).await;
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A digest the source cannot serve: that snapshot is not applied (the
    // last one stays enforced) until the list can be had.
    let other = "other.example\n";
    let other_sha = sha256_hex(other.as_bytes());
    h.snapshots.send(by_ref(3, &other_sha)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.gateway().snapshot_version(), Some(2));
    let (response, _) = connect(&laptop, "by-digest.example:443").await.unwrap();
    assert_eq!(response.status(), 403);
    // A source answering the wrong text for the digest is refused too.
    lists
        .lock()
        .unwrap()
        .insert(other_sha.clone(), "forged.example\n".into());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.gateway().snapshot_version(), Some(2));
    lists.lock().unwrap().insert(other_sha.clone(), other.into());
    eventually("the snapshot with its list", Duration::from_secs(10), || {
        (h.gateway().snapshot_version() == Some(3)).then_some(())
    })
    .await;
    let (response, _) = connect(&laptop, "other.example:443").await.unwrap();
    assert_eq!(header(&response, "ward-rule"), Some("block-ref"));
    let (response, _) = connect(&laptop, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(laptop);

    // Restarted without the server: the saved snapshot with its kept list.
    let mut h = h;
    h.gateway.take().unwrap().shutdown().await;
    let h = Harness::start_on(pki.clone(), dir.clone(), Server::default()).await;
    assert_eq!(h.gateway().snapshot_version(), Some(3));
    let laptop = h.laptop().await;
    let (response, _) = connect(&laptop, "other.example:443").await.unwrap();
    assert_eq!(header(&response, "ward-rule"), Some("block-ref"));
}
