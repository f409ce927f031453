//! TLS inspection: a rule asking for it, a tenant with it on, and the
//! gateway ends the device's TLS with a certificate minted from the
//! tenant's inspection CA, forwards over its own TLS to the real site (an
//! in-process HTTPS server on 127.0.0.1 with a certificate from a "public"
//! CA the gateway is told to trust), and records each request with its URL
//! and upload. Names resolve through a zone server on loopback.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/zone.rs"]
mod zone;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::Request;
use http_body_util::{BodyExt, Full};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use ward_api::{GatewaySnapshot, InspectionCa, InternetSnapshot, SnapshotProxyCredential};
use ward_inet::{DomainList, InternetAction, InternetPolicyInput, InternetRule, NamedDomainList};
use ward_pki::CertificateAuthority;
use zone::Zone;

fn rule(id: &str, priority: u32, action: InternetAction, lists: &[&str], inspect: bool) -> InternetRule {
    InternetRule {
        id: id.into(),
        priority,
        action,
        global_allow: false,
        users: vec![],
        groups: vec![],
        lists: lists.iter().map(|s| s.to_string()).collect(),
        inspect,
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

/// Acme with inspection on: `shop.test` and `bank.test` allowed and
/// inspected (but `bank.test` is on the do-not-inspect list `banking`),
/// `news.test` warned and inspected, `tracker.test` blocked and inspected,
/// `site-a.test` allowed without inspection.
fn inspecting(version: i64, pki: &Pki, ca: &CertificateAuthority, on: bool) -> GatewaySnapshot {
    let mut snapshot = snapshot(version, pki);
    let acme = acme(&mut snapshot);
    acme.policy = ward_policy::PolicyInput::default();
    acme.internet = InternetSnapshot {
        enabled: true,
        policy: InternetPolicyInput {
            default_action: InternetAction::Allow,
            rules: vec![
                rule("block-trackers", 10, InternetAction::Block, &["trackers"], true),
                rule("warn-news", 20, InternetAction::Warn, &["news"], true),
                rule("inspect-shops", 30, InternetAction::Allow, &["shops", "banking"], true),
            ],
            lists: vec![
                list("trackers", &["tracker.test"]),
                list("news", &["news.test"]),
                list("shops", &["shop.test"]),
                list("banking", &["bank.test"]),
            ],
        },
        inspection: on,
        do_not_inspect: vec!["banking".into()],
        inspection_ca: on.then(|| InspectionCa {
            cert_pem: ca.cert_pem(),
            key_pem: ca.key_pem(),
        }),
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

const PROXY_PASSWORD: &str = "wpx_alice1.s3cret-value";

/// An HTTPS site on 127.0.0.1 for `names`, its certificate from `ca`:
/// `GET /host` answers the Host header, other `GET`s `hello from PATH`, a
/// request with a body `got N bytes`.
async fn https_site(ca: &CertificateAuthority, names: &[&str]) -> SocketAddr {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let issued = ca.issue_server(&names, &[], DAY).unwrap();
    let config = ward_pki::server_config(
        issued.chain_der().unwrap(),
        issued.private_key_der().unwrap(),
        &[b"http/1.1"],
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                serve_site(tls).await;
            });
        }
    });
    addr
}

/// A plain-HTTP site on 127.0.0.1, the same as [`https_site`].
async fn http_site() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_site(tcp));
        }
    });
    addr
}

/// The sites' answers; `GET /ws` with a WebSocket upgrade answers `101`
/// and then echoes whatever comes, upper-cased.
async fn serve_site<I>(io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    {
        {
            {
                let service = hyper::service::service_fn(|mut request: Request<hyper::body::Incoming>| async move {
                    if request.uri().path() == "/ws" {
                        let upgrade = request.headers().get("upgrade").map(|v| v.to_str().unwrap().to_owned());
                        if upgrade.as_deref() != Some("websocket") {
                            let mut response = http::Response::new(Full::new(Bytes::from_static(b"upgrade required")));
                            *response.status_mut() = http::StatusCode::UPGRADE_REQUIRED;
                            return Ok::<_, Infallible>(response);
                        }
                        let on_upgrade = hyper::upgrade::on(&mut request);
                        tokio::spawn(async move {
                            let Ok(upgraded) = on_upgrade.await else { return };
                            let mut io = hyper_util::rt::TokioIo::new(upgraded);
                            let mut buf = [0u8; 1024];
                            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut io, &mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                let upper = buf[..n].to_ascii_uppercase();
                                if tokio::io::AsyncWriteExt::write_all(&mut io, &upper).await.is_err() {
                                    break;
                                }
                            }
                        });
                        let mut response = http::Response::new(Full::default());
                        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                        response.headers_mut().insert("connection", "upgrade".parse().unwrap());
                        response.headers_mut().insert("upgrade", "websocket".parse().unwrap());
                        response
                            .headers_mut()
                            .insert("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().unwrap());
                        return Ok(response);
                    }
                    let path = request.uri().path().to_owned();
                    let host = request.headers().get("host").map(|h| h.to_str().unwrap().to_owned());
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let text = match (path.as_str(), body.is_empty()) {
                        ("/host", _) => host.unwrap_or_default(),
                        (_, true) => format!("hello from {path}"),
                        (_, false) => format!("got {} bytes", body.len()),
                    };
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                    .with_upgrades()
                    .await;
            }
        }
    }
}

/// A `CONNECT` stream as a byte stream, for the device's own TLS.
struct Stream {
    recv: RecvStream,
    send: SendStream<Bytes>,
    pending: Bytes,
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.pending = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.send.reserve_capacity(buf.len());
        loop {
            let capacity = this.send.capacity();
            if capacity > 0 {
                let n = capacity.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(io::Error::other)?;
                return Poll::Ready(Ok(n));
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

type Https = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// `CONNECT host:port`, then the device's TLS to `host` trusting only
/// `roots_pem`, then HTTP/1.1: the request sender, or why the TLS failed.
async fn https(tunnel: &SendRequest<Bytes>, host: &str, port: u16, roots_pem: &str) -> Result<Https, String> {
    let (response, send) = connect(tunnel, &format!("{host}:{port}")).await.unwrap();
    assert_eq!(response.status(), 200, "{host}: {:?}", response.headers());
    let stream = Stream {
        recv: response.into_body(),
        send,
        pending: Bytes::new(),
    };
    let config = ward_pki::client_config_from_pem(roots_pem, &[b"http/1.1"]).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(host.to_owned()).unwrap(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Ok(sender)
}

async fn get(sender: &mut Https, host: &str, path: &str) -> (u16, String) {
    send(
        sender,
        Request::get(path).header("host", host).body(Full::default()).unwrap(),
    )
    .await
}

async fn send(sender: &mut Https, request: Request<Full<Bytes>>) -> (u16, String) {
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn sha256_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Setup {
    harness: Harness,
    inspection_ca: CertificateAuthority,
    /// The CA of the "public" sites.
    public_ca: CertificateAuthority,
    site: SocketAddr,
    _zone: Zone,
}

async fn set_up() -> Setup {
    let zone = Zone::start().await;
    let public_ca = CertificateAuthority::generate("Public sites CA").unwrap();
    let site = https_site(&public_ca, &["shop.test", "bank.test", "news.test", "tracker.test"]).await;
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.internet_allow_private = true;
    config.dns_upstreams = vec![zone.addr];
    config.inspection_roots_pem = Some(public_ca.cert_pem());
    config.proxy_listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let harness = Harness {
        pki: pki.clone(),
        dir,
        server,
        snapshots,
        gateway: Some(gateway),
        echo: echo_server().await,
    };
    let inspection_ca = CertificateAuthority::generate("Acme inspection CA").unwrap();
    harness.push(inspecting(1, &pki, &inspection_ca, true)).await;
    Setup {
        harness,
        inspection_ca,
        public_ca,
        site,
        _zone: zone,
    }
}

#[tokio::test]
async fn inspected_requests_are_decided_forwarded_and_recorded_by_url() {
    let s = set_up().await;
    let h = &s.harness;
    let laptop = h.laptop().await;
    let port = s.site.port();
    let ca = s.inspection_ca.cert_pem();
    let shop = format!("shop.test:{port}");

    // The device trusts the inspection CA: the gateway's certificate for
    // shop.test passes, and the requests reach the real site over the
    // gateway's own TLS.
    let mut tls = https(&laptop, "shop.test", port, &ca).await.unwrap();
    assert_eq!(
        get(&mut tls, &shop, "/cart?item=7").await,
        (200, "hello from /cart".to_owned())
    );
    assert_eq!(get(&mut tls, &shop, "/host").await, (200, shop.clone()));
    let record = h
        .server
        .record("inspected GET", |r| {
            r.url.as_deref().is_some_and(|u| u.ends_with("/cart?item=7"))
        })
        .await;
    assert_eq!(
        record.url.as_deref(),
        Some(format!("https://shop.test:{port}/cart?item=7").as_str())
    );
    assert!(record.inspected);
    assert_eq!(
        (
            record.kind.as_str(),
            record.action.as_str(),
            record.method.as_deref(),
            record.status
        ),
        ("web", "allow", Some("GET"), Some(200))
    );
    assert_eq!(record.rule_id.as_deref(), Some("inspect-shops"));
    assert_eq!(record.user_id, "alice");
    assert_eq!(record.dest_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.bytes_down, "hello from /cart".len() as u64);

    // An upload over HTTPS: size, type, file name and SHA-256, not the content.
    let data = pattern(300_000);
    let mut multipart = Vec::new();
    multipart.extend_from_slice(
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plans.pdf\"\r\n\
          Content-Type: application/pdf\r\n\r\n",
    );
    multipart.extend_from_slice(&data);
    multipart.extend_from_slice(b"\r\n--b0undary--\r\n");
    let upload = Request::post("/upload")
        .header("host", &shop)
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(Full::new(Bytes::from(multipart.clone())))
        .unwrap();
    assert_eq!(
        send(&mut tls, upload).await,
        (200, format!("got {} bytes", multipart.len()))
    );
    let record = h.server.record("inspected upload", |r| r.upload.is_some()).await;
    let upload = record.upload.unwrap();
    assert_eq!(upload.file_name.as_deref(), Some("plans.pdf"));
    assert_eq!(upload.size, multipart.len() as u64);
    assert_eq!(upload.sha256, sha256_hex(&multipart));
    assert!(record.inspected);
    assert_eq!(record.method.as_deref(), Some("POST"));

    // Another site through this connection: refused, recorded.
    let (status, _) = get(&mut tls, "bank.test", "/").await;
    assert_eq!(status, 421);
    h.server
        .record("misdirected", |r| r.status == Some(421) && r.dest_host == "bank.test")
        .await;

    // A do-not-inspect destination is relayed untouched: the device sees the
    // site's own certificate, never one of the inspection CA.
    let err = https(&laptop, "bank.test", port, &ca).await.err();
    assert!(err.is_some(), "bank.test must not be inspected");
    let mut bank = https(&laptop, "bank.test", port, &s.public_ca.cert_pem())
        .await
        .unwrap();
    assert_eq!(get(&mut bank, "bank.test", "/account").await.0, 200);
    drop(bank);
    let record = h
        .server
        .record("bank tunnel", |r| {
            r.dest_host == "bank.test" && r.end == "closed" && r.bytes_down > 0
        })
        .await;
    assert!(!record.inspected);
    assert_eq!(record.url, None);

    // A blocked site with inspection: the browser gets the block page.
    let mut tracker = https(&laptop, "tracker.test", port, &ca).await.unwrap();
    let (status, page) = get(&mut tracker, &format!("tracker.test:{port}"), "/pixel.gif").await;
    assert_eq!(status, 403);
    assert!(page.contains("Site blocked"), "{page}");
    let record = h
        .server
        .record("inspected block", |r| {
            r.action == "block" && r.dest_host == "tracker.test"
        })
        .await;
    assert!(record.inspected);
    assert_eq!(record.rule_id.as_deref(), Some("block-trackers"));
    assert_eq!(
        record.url.as_deref(),
        Some(format!("https://tracker.test:{port}/pixel.gif").as_str())
    );

    // A warned site with inspection: the warning page, its Continue link
    // over HTTPS, then the site.
    let news = format!("news.test:{port}");
    let mut warned = https(&laptop, "news.test", port, &ca).await.unwrap();
    let (status, page) = get(&mut warned, &news, "/today").await;
    assert_eq!(status, 403);
    let start = page.find("https://news.test").expect("an https Continue link");
    let link = &page[start..];
    let link = &link[..link.find('"').unwrap()].replace("&amp;", "&");
    let path = &link[link.find("/.ward/").unwrap()..];
    let (status, _) = get(&mut warned, &news, path).await;
    assert_eq!(status, 303);
    assert_eq!(
        get(&mut warned, &news, "/today").await,
        (200, "hello from /today".to_owned())
    );
    h.server
        .record("inspected proceed", |r| r.action == "proceed" && r.inspected)
        .await;
}

#[tokio::test]
async fn inspection_failures_are_clear_and_recorded() {
    let s = set_up().await;
    let h = &s.harness;
    let laptop = h.laptop().await;
    let port = s.site.port();

    // A device that does not trust the inspection CA fails its own check;
    // the gateway records why.
    let err = https(&laptop, "shop.test", port, &s.public_ca.cert_pem()).await.err();
    assert!(err.is_some());
    let record = h
        .server
        .record("handshake failure", |r| r.reason == "inspection_handshake_failed")
        .await;
    assert!(record.inspected);
    assert_eq!(record.dest_host, "shop.test");

    // A site whose certificate the gateway cannot verify: a page saying so,
    // never the site.
    let rogue_ca = CertificateAuthority::generate("Unknown CA").unwrap();
    let rogue = https_site(&rogue_ca, &["shop.test"]).await;
    let mut tls = https(&laptop, "shop.test", rogue.port(), &s.inspection_ca.cert_pem())
        .await
        .unwrap();
    let (status, page) = get(&mut tls, &format!("shop.test:{}", rogue.port()), "/").await;
    assert_eq!(status, 502);
    assert!(page.contains("Site not trusted"), "{page}");
    let record = h
        .server
        .record("untrusted site", |r| r.reason == "upstream_tls_failed")
        .await;
    assert!(record.inspected);
    assert_eq!(record.status, Some(502));

    // Inspection turned off for the tenant: the same rule relays untouched.
    h.push(inspecting(2, &h.pki, &s.inspection_ca, false)).await;
    assert!(https(&laptop, "shop.test", port, &s.inspection_ca.cert_pem())
        .await
        .is_err());
    let mut plain = https(&laptop, "shop.test", port, &s.public_ca.cert_pem())
        .await
        .unwrap();
    assert_eq!(get(&mut plain, "shop.test", "/").await.0, 200);
}

/// curl through the proxy port: `(status, body)`.
async fn curl(args: Vec<String>) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .env_clear()
            .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.to_owned(), body.to_owned())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_proxy_port_inspects_too() {
    let s = set_up().await;
    let h = &s.harness;
    let proxy = format!("http://Alice:{PROXY_PASSWORD}@{}", h.gateway().proxy_addr().unwrap());
    let port = s.site.port();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("inspection-ca.pem");
    std::fs::write(&ca, s.inspection_ca.cert_pem()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();

    // curl trusting the inspection CA reaches the site through the proxy;
    // the request is recorded with its URL, for the proxy's user.
    let url = format!("https://shop.test:{port}/basket");
    let (code, body) = curl(vec![
        "-x".into(),
        proxy.clone(),
        "--cacert".into(),
        ca.clone(),
        url.clone(),
    ])
    .await;
    assert_eq!((code.as_str(), body.as_str()), ("200", "hello from /basket"));
    let record = h
        .server
        .record("proxy inspected", |r| r.url.as_deref() == Some(url.as_str()))
        .await;
    assert!(record.inspected);
    assert_eq!((record.user_id.as_str(), record.device_id.as_str()), ("alice", ""));

    // A warned site: the warning page in the browser, not a bare refusal.
    let (code, body) = curl(vec![
        "-x".into(),
        proxy.clone(),
        "--cacert".into(),
        ca.clone(),
        format!("https://news.test:{port}/"),
    ])
    .await;
    assert_eq!(code, "403");
    assert!(body.contains("Continue to the site"), "{body}");

    // A do-not-inspect site keeps its own certificate.
    let (code, _) = curl(vec![
        "-x".into(),
        proxy.clone(),
        "--cacert".into(),
        ca,
        format!("https://bank.test:{port}/"),
    ])
    .await;
    assert_eq!(code, "000", "the inspection CA does not sign bank.test");
}

/// A WebSocket opening on `io` (raw HTTP/1.1), then `hello` sent and the
/// echo read: the status and the echo.
async fn websocket<I: AsyncRead + AsyncWrite + Unpin>(io: &mut I, host: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let opening = format!(
        "GET /ws?room=1 HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(opening.as_bytes()).await.unwrap();
    io.flush().await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "the connection ended in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    if status != 101 {
        return (status, text);
    }
    io.write_all(b"hello").await.unwrap();
    io.flush().await.unwrap();
    let mut echo = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    (status, String::from_utf8_lossy(&echo).into_owned())
}

#[tokio::test]
async fn websockets_go_through_plain_and_inspected() {
    let s = set_up().await;
    let h = &s.harness;
    let laptop = h.laptop().await;

    // Plain HTTP: the agent's ward-protocol: http stream.
    let plain = http_site().await;
    let request = Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("site-a.test:{}", plain.port()))
        .header("ward-protocol", "http")
        .body(())
        .unwrap();
    let mut ready = laptop.clone().ready().await.unwrap();
    let (response, send) = ready.send_request(request, false).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = Stream {
        recv: response.into_body(),
        send,
        pending: Bytes::new(),
    };
    let host = format!("site-a.test:{}", plain.port());
    assert_eq!(websocket(&mut stream, &host).await, (101, "HELLO".to_owned()));
    drop(stream);
    let record = h
        .server
        .record("the plain WebSocket", |r| {
            r.url.as_deref().is_some_and(|u| u.contains("/ws?room=1")) && !r.inspected
        })
        .await;
    assert_eq!(record.status, Some(101));
    assert_eq!((record.bytes_up, record.bytes_down), (5, 5));
    assert!(record.url.as_deref().unwrap().starts_with("http://site-a.test:"));

    // Inspected HTTPS: wss:// inside the gateway's TLS.
    let port = s.site.port();
    let (response, send) = connect(&laptop, &format!("shop.test:{port}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let stream = Stream {
        recv: response.into_body(),
        send,
        pending: Bytes::new(),
    };
    let config = ward_pki::client_config_from_pem(&s.inspection_ca.cert_pem(), &[b"http/1.1"]).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("shop.test").unwrap(), stream)
        .await
        .unwrap();
    assert_eq!(
        websocket(&mut tls, &format!("shop.test:{port}")).await,
        (101, "HELLO".to_owned())
    );
    drop(tls);
    let record = h
        .server
        .record("the inspected WebSocket", |r| {
            r.url.as_deref().is_some_and(|u| u.contains("/ws?room=1")) && r.inspected
        })
        .await;
    assert_eq!(
        record.url.as_deref(),
        Some(format!("https://shop.test:{port}/ws?room=1").as_str())
    );
    assert_eq!((record.status, record.bytes_up, record.bytes_down), (Some(101), 5, 5));
}
