//! The agent end to end on loopback: real TLS 1.3 with client certificates,
//! real HTTP/2, a test gateway (`common::TestGateway`), curl as the local
//! application where it is installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_agent::enroll::{self, EnrollError};
use ward_agent::proxy::socks5::{Command as SocksCommand, Request as SocksRequest};
use ward_agent::proxy::Target;
use ward_agent::state::{self, AgentState};
use ward_agent::status::Outcome;
use ward_agent::tunnel::{LinkState, Tunnel, TunnelConfig, TunnelError};
use ward_agent::up::{self, RunningAgent, UpOptions};

const ANY: &str = "127.0.0.1:0";

fn any() -> SocketAddr {
    ANY.parse().unwrap()
}

/// A world: PKI, gateway, an enrolled state directory.
struct World {
    pki: Arc<Pki>,
    gateway: Option<TestGateway>,
    gateway_addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(behaviour: GatewayBehaviour) -> World {
        World::with_server(behaviour, "http://127.0.0.1:9").await
    }

    async fn with_server(behaviour: GatewayBehaviour, server: &str) -> World {
        let pki = Pki::new();
        let gateway = TestGateway::start(pki.gateway_acceptor(), any(), behaviour).await;
        let dir = tempfile::tempdir().unwrap();
        pki.write_state(dir.path(), &gateway.addr.to_string(), server);
        World {
            pki,
            gateway_addr: gateway.addr,
            gateway: Some(gateway),
            dir,
        }
    }

    fn gateway(&self) -> &TestGateway {
        self.gateway.as_ref().unwrap()
    }

    fn tunnel_config(&self) -> TunnelConfig {
        TunnelConfig::new(self.gateway_addr.to_string(), self.dir.path())
    }

    /// `up` with both proxies on free ports, no background work.
    async fn up(&self) -> RunningAgent {
        up::start(UpOptions {
            socks: Some(any()),
            http: Some(any()),
            maintenance: false,
            write_status: false,
            tunnel: Some(self.tunnel_config()),
            ..UpOptions::new(self.dir.path())
        })
        .await
        .unwrap()
    }

    async fn forward(&self, target: &str, config: TunnelConfig) -> RunningAgent {
        let mut opts = UpOptions::forward(self.dir.path(), any(), target.parse().unwrap());
        opts.maintenance = false;
        opts.tunnel = Some(config);
        up::start(opts).await.unwrap()
    }
}

/// Sends `data` through a local connection to an echo and reads it back
/// after half-closing.
async fn echo_through(local: SocketAddr, data: &[u8]) -> Vec<u8> {
    try_echo_through(local, data).await.unwrap()
}

/// [`echo_through`], with the error of the read side.
async fn try_echo_through(local: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(local).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let payload = data.to_vec();
    let writer = tokio::spawn(async move {
        // A refused connection may be reset under the writer: not its concern.
        let _ = w.write_all(&payload).await;
        let _ = w.shutdown().await;
    });
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut back))
        .await
        .expect("echo timed out")?;
    writer.await.unwrap();
    Ok(back)
}

/// A SOCKS5 CONNECT by hand; returns the reply code.
async fn socks_connect(proxy: SocketAddr, target: Target) -> (TcpStream, u8) {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0; 2];
    tcp.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0]);
    let request = SocksRequest {
        command: SocksCommand::Connect,
        target,
    };
    tcp.write_all(&request.to_bytes()).await.unwrap();
    let mut reply = [0; 10];
    tcp.read_exact(&mut reply).await.unwrap();
    (tcp, reply[1])
}

// ---- proxies, with curl -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_socks5_and_the_tunnel() {
    if !have_curl() {
        return;
    }
    let world = World::new(GatewayBehaviour::default()).await;
    let origin = http_origin().await;
    let agent = world.up().await;
    let socks = agent.socks_addr().unwrap().to_string();

    // The name goes unresolved to the gateway, which resolves it.
    let url = format!("http://localhost:{}/hello?x=1", origin.port());
    let out = curl(&["--socks5-hostname", &socks, &url]).await;
    assert_eq!(stdout(&out), "origin saw: GET /hello?x=1\n");
    let out = curl(&["--socks5", &socks, &format!("http://127.0.0.1:{}/ip", origin.port())]).await;
    assert_eq!(stdout(&out), "origin saw: GET /ip\n");

    let decisions = agent.agent().decisions();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0].target, format!("localhost:{}", origin.port()));
    assert_eq!(decisions[0].via, "socks");
    assert_eq!(decisions[0].outcome, Outcome::Allowed);
    assert_eq!(world.gateway().accepted(), 1);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_the_http_proxy_forward_and_connect() {
    if !have_curl() {
        return;
    }
    let world = World::new(GatewayBehaviour::default()).await;
    let origin = http_origin().await;
    let agent = world.up().await;
    let proxy = format!("http://{}", agent.http_addr().unwrap());

    // Absolute form: the agent rewrites the head and sends it through.
    let url = format!("http://127.0.0.1:{}/x", origin.port());
    assert_eq!(stdout(&curl(&["--proxy", &proxy, &url]).await), "origin saw: GET /x\n");
    // CONNECT (curl -p): curl speaks to the origin itself through the tunnel.
    let url = format!("http://127.0.0.1:{}/through-connect", origin.port());
    let out = curl(&["-p", "--proxy", &proxy, &url]).await;
    assert_eq!(stdout(&out), "origin saw: GET /through-connect\n");

    let via: Vec<_> = agent.agent().decisions().iter().map(|d| d.outcome).collect();
    assert_eq!(via, [Outcome::Allowed, Outcome::Allowed]);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_application_in_its_protocol() {
    let world = World::new(GatewayBehaviour {
        deny: vec!["denied.test".into()],
        ..Default::default()
    })
    .await;
    let agent = world.up().await;
    let socks = agent.socks_addr().unwrap();
    let http = agent.http_addr().unwrap();

    // SOCKS5 reply codes, read by hand.
    let (_, code) = socks_connect(socks, "denied.test:80".parse().unwrap()).await;
    assert_eq!(code, 0x02, "denied: connection not allowed by ruleset");
    let port = closed_port().await;
    let (_, code) = socks_connect(socks, format!("127.0.0.1:{port}").parse().unwrap()).await;
    assert_eq!(code, 0x05, "dial refused: connection refused");
    let (_, code) = socks_connect(socks, "draining.test:80".parse().unwrap()).await;
    assert_eq!(code, 0x01, "503: general failure");

    let decisions = agent.agent().decisions();
    assert_eq!(decisions[0].outcome, Outcome::Denied);
    assert_eq!(decisions[0].rule.as_deref(), Some(DENY_RULE));
    assert_eq!(decisions[0].reason.as_deref(), Some("rule_matched"));
    assert_eq!(decisions[1].outcome, Outcome::DialFailed);
    assert_eq!(decisions[2].outcome, Outcome::Unavailable);

    if !have_curl() {
        return;
    }
    let out = curl(&["--socks5-hostname", &socks.to_string(), "http://denied.test/"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    assert!(err.contains("socks") || err.contains("not allowed"), "{err}");

    let proxy = format!("http://{http}");
    let out = curl(&["--proxy", &proxy, "-w", "\n%{http_code}", "http://denied.test/secret"]).await;
    let text = stdout(&out);
    assert_eq!(
        text,
        format!("ward: denied.test:80: denied by rule {DENY_RULE}: rule_matched\n\n403")
    );
    let out = curl(&[
        "--proxy",
        &proxy,
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "http://default-deny.test/",
    ])
    .await;
    assert_eq!(stdout(&out), "403");
    let url = format!("http://127.0.0.1:{port}/");
    let out = curl(&["--proxy", &proxy, "-w", "%{http_code}", "-o", "/dev/null", &url]).await;
    assert_eq!(stdout(&out), "502");
    let out = curl(&[
        "--proxy",
        &proxy,
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "http://draining.test/",
    ])
    .await;
    assert_eq!(stdout(&out), "503");
    // CONNECT refused: curl reports the proxy's answer.
    let out = curl(&["-p", "--proxy", &proxy, "http://denied.test/"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"), "{out:?}");
    agent.shutdown().await;
}

// ---- port forward, byte exactness, sharing -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_carries_bytes_exactly_with_half_close() {
    let world = World::new(GatewayBehaviour::default()).await;
    let echo = echo_server().await;
    let agent = world.forward(&echo.to_string(), world.tunnel_config()).await;
    let local = agent.forward_addrs()[0];

    assert_eq!(echo_through(local, b"hello").await, b"hello");
    // 8 MiB, more than the 4 MiB stream window: flow control at work.
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(echo_through(local, &data).await == data, "8 MiB came back changed");
    // Nothing sent, then closed: the far side sees the close and closes too.
    assert_eq!(echo_through(local, b"").await, b"");

    let status = agent.tunnel().status();
    assert_eq!(status.connections, 1);
    assert_eq!(status.streams_opened, 3);
    eventually("streams closed", || agent.tunnel().status().active_streams == 0).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_share_one_tls_connection() {
    let world = World::new(GatewayBehaviour::default()).await;
    let echo = echo_server().await;
    let agent = world.forward(&echo.to_string(), world.tunnel_config()).await;
    let local = agent.forward_addrs()[0];

    let mut tasks = Vec::new();
    for i in 0..40u32 {
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = format!("connection {i} ").repeat(1000 + i as usize).into_bytes();
            assert_eq!(echo_through(local, &data).await, data);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(world.gateway().accepted(), 1, "one TLS connection for all streams");
    assert_eq!(agent.tunnel().status().connections, 1);
    assert_eq!(agent.tunnel().status().streams_opened, 40);
    agent.shutdown().await;
}

// ---- the connection's life ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_gateway_restarts() {
    let mut world = World::new(GatewayBehaviour::default()).await;
    let echo = echo_server().await;
    let agent = world.forward(&echo.to_string(), world.tunnel_config()).await;
    let local = agent.forward_addrs()[0];
    assert_eq!(echo_through(local, b"before").await, b"before");

    // The gateway goes away: the agent notices the connection ended.
    world.gateway.take().unwrap().stop().await;
    eventually("tunnel disconnected", || {
        agent.tunnel().status().state == LinkState::Disconnected
    })
    .await;
    // While it is away, connections fail (closed by the agent, or reset
    // when the data sent was left unread), quickly.
    let started = std::time::Instant::now();
    match try_echo_through(local, b"lost").await {
        Ok(back) => assert_eq!(back, b""),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // Back on the same port: the next connection reconnects, no restart.
    let gateway = TestGateway::start(world.pki.gateway_acceptor(), world.gateway_addr, Default::default()).await;
    assert_eq!(echo_through(local, b"after").await, b"after");
    assert_eq!(gateway.accepted(), 1);
    let status = agent.tunnel().status();
    assert_eq!(status.state, LinkState::Connected);
    assert_eq!(status.connections, 2);
    assert!(status.failed_attempts >= 1);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_instead_of_hammering_a_missing_gateway() {
    let world = World::new(GatewayBehaviour::default()).await;
    let port = closed_port().await;
    let mut config = TunnelConfig::new(format!("127.0.0.1:{port}"), world.dir.path());
    config.backoff_min = Duration::from_secs(5);
    config.max_retry_wait = Duration::from_millis(100);
    let tunnel = Tunnel::new(config);
    let target: Target = "localhost:80".parse().unwrap();

    let first = tunnel.open(&target).await.unwrap_err();
    assert!(
        matches!(&first, TunnelError::Unavailable(m) if m.contains("cannot connect")),
        "{first}"
    );
    // Within the back-off, opens fail at once without a new attempt.
    for _ in 0..20 {
        let err = tunnel.open(&target).await.unwrap_err();
        assert!(err.to_string().contains("next attempt in"), "{err}");
    }
    assert_eq!(tunnel.status().failed_attempts, 1);
    assert_eq!(tunnel.status().state, LinkState::Disconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_pings_mark_the_gateway_dead() {
    let world = World::new(GatewayBehaviour {
        freeze: true,
        ..Default::default()
    })
    .await;
    let mut config = world.tunnel_config();
    config.ping_interval = Duration::from_millis(200);
    config.ping_timeout = Duration::from_millis(300);
    let tunnel = Tunnel::new(config);
    tunnel.connect().await.unwrap();
    assert_eq!(tunnel.status().state, LinkState::Connected);
    eventually("dead gateway detected", || {
        tunnel.status().state == LinkState::Disconnected
    })
    .await;
    let why = tunnel.status().last_error.unwrap();
    assert!(why.contains("ping"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_by_the_gateway() {
    let world = World::new(GatewayBehaviour::default()).await;
    // Replace the device certificate with one from a stranger CA.
    let stranger = ward_pki::CertificateAuthority::generate("stranger").unwrap();
    let (key, csr) = ward_pki::generate_key_and_csr("x").unwrap();
    let identity = ward_pki::Identity::device(TENANT_ID, DEVICE_ID).unwrap();
    let cert = stranger.sign_csr(&csr, &identity, Duration::from_secs(600)).unwrap();
    let dir = world.dir.path();
    state::write_atomic(&dir.join(state::KEY_FILE), key.as_bytes(), 0o600).unwrap();
    state::write_atomic(&dir.join(state::CERT_FILE), cert.cert_pem.as_bytes(), 0o644).unwrap();
    let tunnel = Tunnel::new(world.tunnel_config());
    let err = tunnel.open(&"localhost:80".parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, TunnelError::Unavailable(_)), "{err}");
    assert_eq!(world.gateway().accepted(), 0);
}

// ---- renewal, posture, status ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_rotates_the_key_and_the_tunnel_reconnects_with_it() {
    let pki = Pki::new();
    let gateway = TestGateway::start(pki.gateway_acceptor(), any(), Default::default()).await;
    let api = MockApi::start(pki.clone(), None, gateway.addr.to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    pki.write_state(dir.path(), &gateway.addr.to_string(), &api.url);
    let echo = echo_server().await;
    let mut opts = UpOptions::forward(dir.path(), any(), echo.to_string().parse().unwrap());
    opts.maintenance = false;
    let running = up::start(opts).await.unwrap();
    let local = running.forward_addrs()[0];
    let agent = running.agent().clone();

    assert_eq!(echo_through(local, b"one").await, b"one");
    let key_before = std::fs::read(dir.path().join(state::KEY_FILE)).unwrap();
    // Not due: a fresh one-hour certificate renews at half-life.
    assert!(!agent.renew_if_due(false).await.unwrap());
    assert!(agent.renew_if_due(true).await.unwrap());

    let key_after = std::fs::read(dir.path().join(state::KEY_FILE)).unwrap();
    assert_ne!(key_before, key_after, "a new key with each renewal");
    let mode = std::fs::metadata(dir.path().join(state::KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let renewed = AgentState::load(dir.path()).unwrap();
    assert_eq!(renewed.device.cert_expires_at, "2099-02-02T00:00:00Z");
    assert!(renewed.device.renewed_at.is_some());
    let renew = &api.requests()[0];
    assert_eq!(renew.path, "/api/v1/device/renew");
    assert_eq!(renew.authorization.as_deref(), Some(&*format!("Bearer {DEVICE_TOKEN}")));
    assert!(renew.body["csr_pem"].as_str().unwrap().contains("CERTIFICATE REQUEST"));
    assert!(!renew.body.to_string().contains("PRIVATE KEY"), "the key never leaves");

    // The next connection goes over a new TLS connection with the new certificate.
    assert_eq!(echo_through(local, b"two").await, b"two");
    assert_eq!(gateway.accepted(), 2);
    let certs = gateway.peer_certs.lock().unwrap().clone();
    assert_ne!(certs[0], certs[1]);
    let on_disk = ward_pki::certs_from_pem(&renewed.cert_pem().unwrap()).unwrap();
    assert_eq!(certs[1], on_disk[0].as_ref());

    // Posture: reported, and the verdict is kept.
    let verdict = agent.report_posture().await.unwrap();
    assert!(!verdict.compliant);
    let state = AgentState::load(dir.path()).unwrap();
    assert!(!state.device.compliant);
    assert_eq!(state.device.compliance_failures.len(), 1);
    assert!(state.device.posture.is_some());
    let report = &api.requests()[1];
    assert_eq!(report.path, "/api/v1/device/posture");
    assert_eq!(report.body["posture"]["os"], std::env::consts::OS);
    // The certificate fields written by the renewal survive the report.
    assert_eq!(state.device.cert_expires_at, "2099-02-02T00:00:00Z");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_changed_by_another_agent_are_picked_up() {
    let world = World::new(GatewayBehaviour::default()).await;
    let echo = echo_server().await;
    let agent = world.forward(&echo.to_string(), world.tunnel_config()).await;
    let local = agent.forward_addrs()[0];
    assert_eq!(echo_through(local, b"old").await, b"old");

    // Another agent on the same state directory renewed: new key and certificate.
    let (key, cert) = world.pki.device_credentials();
    let dir = world.dir.path();
    state::write_atomic(&dir.join(state::KEY_FILE), key.as_bytes(), 0o600).unwrap();
    state::write_atomic(&dir.join(state::CERT_FILE), cert.as_bytes(), 0o644).unwrap();
    // The files are looked at once a second at most.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(echo_through(local, b"new").await, b"new");
    assert_eq!(world.gateway().accepted(), 2);
    let presented = world.gateway().peer_certs.lock().unwrap()[1].clone();
    assert_eq!(presented, ward_pki::certs_from_pem(&cert).unwrap()[0].as_ref());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_running_agent_and_its_decisions() {
    let world = World::new(GatewayBehaviour {
        deny: vec!["denied.test".into()],
        ..Default::default()
    })
    .await;
    let running = up::start(UpOptions {
        socks: Some(any()),
        http: Some(any()),
        maintenance: false,
        status_interval: Duration::from_millis(50),
        tunnel: Some(world.tunnel_config()),
        ..UpOptions::new(world.dir.path())
    })
    .await
    .unwrap();
    let (_, code) = socks_connect(running.socks_addr().unwrap(), "denied.test:443".parse().unwrap()).await;
    assert_eq!(code, 2);
    let dir = world.dir.path().to_path_buf();
    eventually("status.json with the decision", || {
        ward_agent::cli::status_report(&dir).is_ok_and(|r| r.running && r.agent.is_some_and(|a| a.decisions.len() == 1))
    })
    .await;
    let report = ward_agent::cli::status_report(&dir).unwrap();
    let text = ward_agent::cli::render_status(&report);
    assert!(text.contains("Agent:        running"), "{text}");
    assert!(text.contains("denied.test:443 rule rul_deny (rule_matched)"), "{text}");
    assert!(text.contains("Tenant:       acme"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["running"], true);
    assert_eq!(json["device"]["device_id"], DEVICE_ID);
    assert_eq!(json["agent"]["decisions"][0]["outcome"], "denied");

    running.shutdown().await;
    let report = ward_agent::cli::status_report(&dir).unwrap();
    assert!(!report.running);
    assert!(ward_agent::cli::render_status(&report).contains("not running"));
}

// ---- enrolment ---------------------------------------------------------------------

const SECRET: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn code_with_pin(ca: &ward_pki::CertificateAuthority) -> String {
    format!("wen_{SECRET}_{}", ca.fingerprint().trim_start_matches("sha256:"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrols_over_https_with_a_pinned_ca() {
    let pki = Pki::new();
    let api = MockApi::start(
        pki.clone(),
        Some(Pki::api_acceptor(&pki.api_ca)),
        "127.0.0.1:7443".into(),
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ward");
    let state = enroll::enroll(&api.url, &code_with_pin(&pki.api_ca), &dir, false)
        .await
        .unwrap();

    assert_eq!(state.device.tenant, "acme");
    assert_eq!(state.device.user, "alice");
    assert_eq!(state.device.gateway, "127.0.0.1:7443");
    assert_eq!(state.device.server, api.url);
    // The CA behind the server's certificate is kept, and it is the pinned one.
    let saved = ward_pki::certs_from_pem(state.device.server_ca_pem.as_deref().unwrap()).unwrap();
    assert_eq!(saved[0].as_ref(), pki.api_ca.cert_der().as_ref());

    // What reached the server: the code, a CSR, the posture; never the key.
    let request = &api.requests()[0];
    assert_eq!(request.path, "/api/v1/enroll");
    assert!(request.body["code"].as_str().unwrap().starts_with("wen_1111"));
    assert!(request.body["csr_pem"]
        .as_str()
        .unwrap()
        .contains("CERTIFICATE REQUEST"));
    assert_eq!(request.body["posture"]["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(!request.body.to_string().contains("PRIVATE KEY"));

    // The state round-trips, with private modes.
    let loaded = AgentState::load(&dir).unwrap();
    assert_eq!(loaded.device, state.device);
    assert_eq!(loaded.token().unwrap(), DEVICE_TOKEN);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(state::KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(state::TOKEN_FILE)), 0o600);
    assert!(dir.join(state::TENANT_CA_FILE).exists());
    assert!(dir.join(state::GATEWAY_CA_FILE).exists());
    let summary = ward_agent::cli::enrol_summary(&loaded);
    assert!(
        summary.contains("Enrolled device dev_1 for user alice in tenant acme."),
        "{summary}"
    );

    // Enrolling again needs --force.
    let again = enroll::enroll(&api.url, &code_with_pin(&pki.api_ca), &dir, false).await;
    assert!(matches!(again, Err(EnrollError::AlreadyEnrolled { .. })), "{again:?}");
    enroll::enroll(&api.url, &code_with_pin(&pki.api_ca), &dir, true)
        .await
        .unwrap();

    // Later calls use the saved CA (no pin): a posture report works.
    let tunnel = Tunnel::new(TunnelConfig::new("127.0.0.1:9", &dir));
    let agent = up::Agent::new(AgentState::load(&dir).unwrap(), tunnel);
    assert!(!agent.report_posture().await.unwrap().compliant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_before_anything_is_sent() {
    let pki = Pki::new();
    let api = MockApi::start(
        pki.clone(),
        Some(Pki::api_acceptor(&pki.api_ca)),
        "127.0.0.1:7443".into(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let other = ward_pki::CertificateAuthority::generate("impostor").unwrap();
    let err = enroll::enroll(&api.url, &code_with_pin(&other), dir.path(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::PinnedCa(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("cannot verify the server: "), "{msg}");
    assert!(msg.contains("pinned CA"), "{msg}");
    assert!(api.requests().is_empty(), "no request reached the server");
    assert!(!AgentState::is_enrolled(dir.path()));

    // fetch_pinned_ca alone: the right pin gives the CA.
    let url = ward_client::Url::parse(&api.url).unwrap();
    let ca = enroll::fetch_pinned_ca(&url, &pki.api_ca.fingerprint()).await.unwrap();
    assert_eq!(ca.as_ref(), pki.api_ca.cert_der().as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_only_on_loopback_and_never_with_a_pin() {
    let pki = Pki::new();
    let api = MockApi::start(pki.clone(), None, "gw.example.com:7443".into()).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("wen_{SECRET}");

    let err = enroll::enroll("http://ward.example.com:7600", &plain, dir.path(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::InsecureServer(_)), "{err:?}");
    assert!(err.to_string().contains("use https://"), "{err}");
    let err = enroll::enroll(&api.url, &code_with_pin(&pki.api_ca), dir.path(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::PinOverHttp), "{err:?}");
    let err = enroll::enroll(&api.url, "not-a-code", dir.path(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::BadCode(_)), "{err:?}");
    // An expired code: the server's refusal, in one line.
    let err = enroll::enroll(&api.url, &format!("wen_{}", "0".repeat(64)), dir.path(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown, used or expired"), "{err}");
    assert!(api.requests().len() == 1 && !AgentState::is_enrolled(dir.path()));

    // Loopback over http, no pin: fine.
    let state = enroll::enroll(&api.url, &plain, dir.path(), false).await.unwrap();
    assert_eq!(state.device.server_ca_pem, None);
    assert_eq!(state.device.gateway, "gw.example.com:7443");
}

// ---- state ---------------------------------------------------------------------------

#[test]
fn state_round_trip_and_modes() {
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("state");
    // An existing, too-open directory is tightened.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = AgentState::load(&dir).unwrap_err();
    assert!(err.to_string().contains("not enrolled"), "{err}");
    assert!(err.to_string().contains("ward agent enroll"), "{err}");

    let written = pki.write_state(&dir, "127.0.0.1:7443", "http://127.0.0.1:7600");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(state::KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(state::TOKEN_FILE)), 0o600);
    assert_eq!(mode(&dir.join(state::DEVICE_FILE)), 0o644);
    let mut loaded = AgentState::load(&dir).unwrap();
    assert_eq!(loaded.device, written.device);
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    assert_eq!(names.len(), 6, "{names:?}");

    loaded.device.compliant = false;
    loaded.save_device().unwrap();
    assert!(!AgentState::load(&dir).unwrap().device.compliant);

    // A damaged device.json, or a missing key, is reported clearly.
    std::fs::remove_file(dir.join(state::KEY_FILE)).unwrap();
    let err = AgentState::load(&dir).unwrap_err().to_string();
    assert!(err.contains("device.key"), "{err}");
    std::fs::write(dir.join(state::DEVICE_FILE), "{").unwrap();
    let err = AgentState::load(&dir).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
}
