//! Test doubles for the agent's tests, all on 127.0.0.1:
//!
//! - [`Pki`]: a tenant CA (devices), a gateway CA, and an API server CA.
//! - [`TestGateway`]: a small gateway speaking the real data-plane protocol
//!   (TLS 1.3 with client certificates verified by `ward_pki::server_config_mtls`,
//!   HTTP/2 CONNECT): it dials loopback targets, answers 403 with `ward-rule`
//!   / `ward-reason` for denied hosts, 502 for closed ports; it counts
//!   accepted TLS connections and keeps the certificates devices presented.
//! - [`MockApi`]: the three device endpoints of the Ward API (enrol, renew,
//!   posture), over plain HTTP or HTTPS, written by hand on HTTP/1.1.
//! - origins: an HTTP server that says which request it got, and a TCP echo.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_rustls::TlsAcceptor;
use ward_agent::state::{AgentState, Credentials, DeviceInfo};
use ward_agent::tunnel::TunnelStream;
use ward_pki::{CertificateAuthority, Identity};

pub const TENANT_ID: &str = "ten_1";
pub const DEVICE_ID: &str = "dev_1";
pub const DEVICE_TOKEN: &str = "wd_0123456789abcdef";
/// The rule the test gateway names when it denies.
pub const DENY_RULE: &str = "rul_deny";

/// Certificate authorities of one test world.
pub struct Pki {
    pub tenant_ca: CertificateAuthority,
    pub gateway_ca: CertificateAuthority,
    pub api_ca: CertificateAuthority,
}

impl Pki {
    pub fn new() -> Arc<Pki> {
        Arc::new(Pki {
            tenant_ca: CertificateAuthority::generate("Test tenant CA").unwrap(),
            gateway_ca: CertificateAuthority::generate("Test gateway CA").unwrap(),
            api_ca: CertificateAuthority::generate("Test server CA").unwrap(),
        })
    }

    /// Signs a CSR for the test device with the tenant CA.
    pub fn sign_device(&self, csr_pem: &str, valid_for: Duration) -> ward_pki::IssuedLeaf {
        let identity = Identity::device(TENANT_ID, DEVICE_ID).unwrap();
        self.tenant_ca.sign_csr(csr_pem, &identity, valid_for).unwrap()
    }

    /// A fresh device key and certificate: (key PEM, certificate PEM).
    pub fn device_credentials(&self) -> (String, String) {
        let (key, csr) = ward_pki::generate_key_and_csr("test-device").unwrap();
        (key, self.sign_device(&csr, Duration::from_secs(3600)).cert_pem)
    }

    /// The gateway's TLS acceptor: a certificate for 127.0.0.1/localhost
    /// from the gateway CA, client certificates from the tenant CA required.
    pub fn gateway_acceptor(&self) -> TlsAcceptor {
        let leaf = self
            .gateway_ca
            .issue_server(
                &["localhost".to_owned()],
                &["127.0.0.1".parse().unwrap()],
                Duration::from_secs(3600),
            )
            .unwrap();
        let config = ward_pki::server_config_mtls(
            leaf.chain_der().unwrap(),
            leaf.private_key_der().unwrap(),
            &[self.tenant_ca.cert_der()],
            &[b"h2"],
        )
        .unwrap();
        TlsAcceptor::from(config)
    }

    /// The API server's TLS acceptor (HTTP/1.1), certificate from `ca`
    /// with the CA in the chain, as Ward's server sends it.
    pub fn api_acceptor(ca: &CertificateAuthority) -> TlsAcceptor {
        let leaf = ca
            .issue_server(
                &["localhost".to_owned()],
                &["127.0.0.1".parse().unwrap()],
                Duration::from_secs(3600),
            )
            .unwrap();
        let config = ward_pki::server_config(
            leaf.chain_der().unwrap(),
            leaf.private_key_der().unwrap(),
            &[b"http/1.1"],
        )
        .unwrap();
        TlsAcceptor::from(config)
    }

    /// Writes an enrolled state for the test device into `dir`.
    pub fn write_state(&self, dir: &Path, gateway: &str, server: &str) -> AgentState {
        let (key, cert) = self.device_credentials();
        let device = DeviceInfo {
            server: server.to_owned(),
            tenant: "acme".into(),
            device_id: DEVICE_ID.into(),
            user: "alice".into(),
            gateway: gateway.to_owned(),
            cert_expires_at: "2099-01-01T00:00:00Z".into(),
            server_ca_pem: None,
            compliant: true,
            compliance_failures: vec![],
            posture: None,
            posture_reported_at: None,
            enrolled_at: None,
            renewed_at: None,
            session_expires_at: None,
        };
        AgentState::create(
            dir,
            device,
            &Credentials {
                key_pem: &key,
                cert_pem: &cert,
                tenant_ca_pem: &self.tenant_ca.cert_pem(),
                gateway_ca_pem: &self.gateway_ca.cert_pem(),
                token: DEVICE_TOKEN,
            },
        )
        .unwrap()
    }
}

/// How the test gateway behaves.
#[derive(Clone, Default)]
pub struct GatewayBehaviour {
    /// Hosts denied by [`DENY_RULE`].
    pub deny: Vec<String>,
    /// Hang after the HTTP/2 handshake: never read from the connection
    /// again (a dead gateway, for ping tests).
    pub freeze: bool,
}

/// A gateway on 127.0.0.1 that speaks the data-plane protocol.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// TLS connections accepted (handshake completed).
    pub accepted: Arc<AtomicUsize>,
    /// The DER of each device certificate presented, in order.
    pub peer_certs: Arc<Mutex<Vec<Vec<u8>>>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    listener: JoinHandle<()>,
}

impl TestGateway {
    /// Starts on `addr` (port 0 for any).
    pub async fn start(acceptor: TlsAcceptor, addr: SocketAddr, behaviour: GatewayBehaviour) -> TestGateway {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let peer_certs = Arc::new(Mutex::new(Vec::new()));
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(behaviour);
        let listener = {
            let (accepted, peer_certs, tasks) = (accepted.clone(), peer_certs.clone(), tasks.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, accepted, peer_certs, behaviour) = (
                        acceptor.clone(),
                        accepted.clone(),
                        peer_certs.clone(),
                        behaviour.clone(),
                    );
                    let task = tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                            peer_certs.lock().unwrap().push(cert.as_ref().to_vec());
                        }
                        accepted.fetch_add(1, Ordering::SeqCst);
                        serve_h2(tls, behaviour).await;
                    });
                    tasks.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        TestGateway {
            addr,
            accepted,
            peer_certs,
            tasks,
            listener,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops: closes the listener and every connection (as a crash or
    /// restart would).
    pub async fn stop(self) {
        self.listener.abort();
        let _ = self.listener.await;
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        // Let the aborted tasks drop their sockets.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serve_h2<S>(tls: S, behaviour: Arc<GatewayBehaviour>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(mut conn) = h2::server::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tls)
        .await
    else {
        return;
    };
    if behaviour.freeze {
        // Hold the connection without polling it: nothing is answered.
        std::future::pending::<()>().await;
    }
    while let Some(Ok((request, respond))) = conn.accept().await {
        let behaviour = behaviour.clone();
        tokio::spawn(async move { handle_connect(request, respond, &behaviour).await });
    }
}

async fn handle_connect(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    behaviour: &GatewayBehaviour,
) {
    let answer = |status: u16, headers: &[(&str, &str)]| {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    };
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let parsed = authority.as_deref().and_then(|a| {
        let (host, port) = a.rsplit_once(':')?;
        Some((
            host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port.parse::<u16>().ok()?,
        ))
    });
    let Some((host, port)) = parsed.filter(|_| request.method() == http::Method::CONNECT) else {
        let _ = respond.send_response(answer(400, &[]), true);
        return;
    };
    if behaviour.deny.contains(&host) {
        let headers = [
            (ward_api::HEADER_RULE, DENY_RULE),
            (ward_api::HEADER_REASON, "rule_matched"),
        ];
        let _ = respond.send_response(answer(403, &headers), true);
        return;
    }
    if host == "default-deny.test" {
        let _ = respond.send_response(answer(403, &[(ward_api::HEADER_REASON, "no_rule_matched")]), true);
        return;
    }
    if host == "draining.test" {
        let _ = respond.send_response(answer(503, &[(ward_api::HEADER_REASON, "draining")]), true);
        return;
    }
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        let _ = respond.send_response(
            answer(502, &[(ward_api::HEADER_ERROR, "test gateway dials loopback only")]),
            true,
        );
        return;
    }
    let mut tcp = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(tcp) => tcp,
        Err(e) => {
            let _ = respond.send_response(answer(502, &[(ward_api::HEADER_ERROR, &e.to_string())]), true);
            return;
        }
    };
    let Ok(send) = respond.send_response(answer(200, &[]), false) else {
        return;
    };
    let mut stream = TunnelStream::from_parts(send, request.into_body());
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
}

/// An HTTP origin that answers every request with `origin saw: METHOD PATH`.
pub async fn http_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).await.is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let mut words = request_line.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let body = format!("origin saw: {method} {path}\n");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut tcp = reader.into_inner();
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP echo server: sends back what it reads, and closes its side after
/// the client closed its own.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A port on which nothing listens (bound, then closed).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// One request the mock API got.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

/// The Ward API's device endpoints: `POST /api/v1/enroll`,
/// `/api/v1/device/renew`, `/api/v1/device/posture`.
pub struct MockApi {
    pub url: String,
    pub requests: Arc<Mutex<Vec<ApiRequest>>>,
}

impl MockApi {
    /// Starts on 127.0.0.1; `tls` for HTTPS. Enrolments get `gateway` as the
    /// gateway address.
    pub async fn start(pki: Arc<Pki>, tls: Option<TlsAcceptor>, gateway: String) -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (pki, tls, seen, gateway) = (pki.clone(), tls.clone(), seen.clone(), gateway.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve_api(stream, &pki, &seen, &gateway).await;
                            }
                        }
                        None => serve_api(tcp, &pki, &seen, &gateway).await,
                    }
                });
            }
        });
        MockApi {
            url: format!("{scheme}://127.0.0.1:{}", addr.port()),
            requests,
        }
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve_api<S>(stream: S, pki: &Pki, seen: &Mutex<Vec<ApiRequest>>, gateway: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut content_length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let mut words = request_line.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    seen.lock().unwrap().push(ApiRequest {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let device_call = authorization.as_deref() == Some(&format!("Bearer {DEVICE_TOKEN}"));
    let (status, json) = match (method.as_str(), path.as_str()) {
        ("POST", "/api/v1/enroll") => {
            let request: ward_api::EnrollRequest = serde_json::from_value(body).unwrap();
            if request.code.starts_with("wen_0000") {
                let err = serde_json::json!({"error": {"code": "unauthenticated",
                    "message": "the enrolment code is unknown, used or expired"}});
                (401, err)
            } else {
                let leaf = pki.sign_device(&request.csr_pem, Duration::from_secs(3600));
                let response = ward_api::EnrollResponse {
                    tenant: "acme".into(),
                    device_id: DEVICE_ID.into(),
                    user: "alice".into(),
                    cert_pem: leaf.cert_pem,
                    cert_expires_at: "2099-01-01T00:00:00Z".into(),
                    tenant_ca_pem: pki.tenant_ca.cert_pem(),
                    gateway_ca_pem: pki.gateway_ca.cert_pem(),
                    device_token: DEVICE_TOKEN.into(),
                    compliant: true,
                    session_expires_at: None,
                    gateway: gateway.to_owned(),
                };
                (201, serde_json::to_value(response).unwrap())
            }
        }
        ("POST", "/api/v1/device/renew") if device_call => {
            let request: ward_api::RenewRequest = serde_json::from_value(body).unwrap();
            let leaf = pki.sign_device(&request.csr_pem, Duration::from_secs(7200));
            let response = ward_api::RenewResponse {
                cert_pem: leaf.cert_pem,
                cert_expires_at: "2099-02-02T00:00:00Z".into(),
            };
            (200, serde_json::to_value(response).unwrap())
        }
        ("POST", "/api/v1/device/posture") if device_call => {
            let verdict = ward_api::PostureVerdict {
                compliant: false,
                failures: vec!["the disk is not encrypted (or the agent cannot tell)".into()],
            };
            (200, serde_json::to_value(verdict).unwrap())
        }
        _ => (
            401,
            serde_json::json!({"error": {"code": "unauthenticated", "message": "unknown device token"}}),
        ),
    };
    let body = json.to_string();
    let answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---- curl ---------------------------------------------------------------

pub fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: curl is not installed");
    }
    found
}

/// Runs curl with `args`, ignoring any curlrc and proxy environment.
pub async fn curl(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("curl");
        cmd.args(["-q", "-sS", "--max-time", "15"]).args(&args);
        for var in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            cmd.env_remove(var).env_remove(var.to_ascii_uppercase());
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `cond` every 20 ms for up to 10 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
