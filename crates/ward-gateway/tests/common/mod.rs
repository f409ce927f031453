//! A real gateway on 127.0.0.1 with a CA made in memory, a policy snapshot
//! built in code and fed through a channel, a record sink that behaves like
//! the server (stores each id once, can be taken down), real agents (rustls
//! + h2 with a device certificate) and an echo server as the destination.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{Method, Request, Response};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;
use ward_api::{AccessRecord, GatewaySnapshot, SnapshotDevice, SnapshotUser, TenantSnapshot};
use ward_gateway::{GatewayConfig, RecordSink, RunningGateway, SnapshotSource};
use ward_pki::{CertificateAuthority, CertificateDer, Identity, PrivateKeyDer};

pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "globex";
pub const DAY: Duration = Duration::from_secs(86_400);
pub const MIB: usize = 1024 * 1024;

// ---- PKI --------------------------------------------------------------------

/// The service CA (signs the gateway) and two tenant CAs (sign devices).
pub struct Pki {
    pub service_ca: CertificateAuthority,
    pub tenant_ca: CertificateAuthority,
    pub other_ca: CertificateAuthority,
    pub gateway_chain_pem: String,
    pub gateway_key_pem: String,
}

/// A device's certificate and key, as the agent holds them.
pub struct DeviceCert {
    pub cert: CertificateDer<'static>,
    pub key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let service_ca = CertificateAuthority::generate("Ward service CA").unwrap();
        let tenant_ca = CertificateAuthority::generate("Ward tenant acme").unwrap();
        let other_ca = CertificateAuthority::generate("Ward tenant globex").unwrap();
        let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("gw-1").unwrap();
        let leaf = service_ca
            .sign_csr_with_names(
                &csr_pem,
                &Identity::gateway("gw-1").unwrap(),
                &["localhost".to_owned()],
                &["127.0.0.1".parse().unwrap()],
                DAY,
            )
            .unwrap();
        Pki {
            gateway_chain_pem: format!("{}{}", leaf.cert_pem, service_ca.cert_pem()),
            gateway_key_pem: key_pem,
            service_ca,
            tenant_ca,
            other_ca,
        }
    }

    /// A device certificate from `ca` naming `tenant`/`device`.
    pub fn device_from(ca: &CertificateAuthority, tenant: &str, device: &str) -> DeviceCert {
        let (key_pem, csr_pem) = ward_pki::generate_key_and_csr(device).unwrap();
        let leaf = ca
            .sign_csr(&csr_pem, &Identity::device(tenant, device).unwrap(), DAY)
            .unwrap();
        DeviceCert {
            cert: leaf.cert_der().unwrap(),
            key_pem,
        }
    }

    pub fn device(&self, device: &str) -> DeviceCert {
        Pki::device_from(&self.tenant_ca, TENANT, device)
    }

    /// What an agent with this device certificate uses.
    pub fn client_config(&self, device: &DeviceCert) -> Arc<ClientConfig> {
        ward_pki::client_config_mtls(
            &[self.service_ca.cert_der()],
            vec![device.cert.clone()],
            PrivateKeyDer::from_pem_slice(device.key_pem.as_bytes()).unwrap(),
            &[b"h2"],
        )
        .unwrap()
    }

    /// A client that presents no certificate.
    pub fn anonymous_client_config(&self) -> Arc<ClientConfig> {
        ward_pki::client_config(&[self.service_ca.cert_der()], &[b"h2"]).unwrap()
    }
}

// ---- policy -----------------------------------------------------------------

/// `echo` (127.0.0.1 and localhost, any port) is allowed to group `eng`;
/// `secret` (secret.corp.example:443) is blocked for everyone.
pub fn policy() -> ward_policy::PolicyInput {
    serde_json::from_value(serde_json::json!({
        "apps": [
            { "id": "echo", "name": "Echo", "addresses": ["127.0.0.1", "::1", "localhost"], "ports": ["1-65535"] },
            { "id": "secret", "name": "Secret", "addresses": ["secret.corp.example"], "ports": ["443"] }
        ],
        "rules": [
            { "id": "block-secret", "priority": 5, "action": "block", "target": { "apps": ["secret"] } },
            { "id": "allow-eng", "priority": 10, "action": "allow", "target": { "apps": ["echo"] }, "groups": ["eng"] }
        ]
    }))
    .unwrap()
}

/// Tenant `acme`: alice (group eng) with device `laptop`, bob (sales) with
/// `phone`; and tenant `globex` with no one.
pub fn snapshot(version: i64, pki: &Pki) -> GatewaySnapshot {
    GatewaySnapshot {
        version,
        tenants: vec![
            TenantSnapshot {
                id: TENANT.into(),
                name: "Acme".into(),
                active: true,
                ca_pem: pki.tenant_ca.cert_pem(),
                policy: policy(),
                users: vec![
                    SnapshotUser {
                        id: "alice".into(),
                        name: "Alice".into(),
                        disabled: false,
                        groups: vec!["eng".into()],
                    },
                    SnapshotUser {
                        id: "bob".into(),
                        name: "Bob".into(),
                        disabled: false,
                        groups: vec!["sales".into()],
                    },
                ],
                devices: vec![
                    SnapshotDevice {
                        id: "laptop".into(),
                        user_id: "alice".into(),
                        compliant: true,
                        revoked: false,
                        session_expires_ms: None,
                    },
                    SnapshotDevice {
                        id: "phone".into(),
                        user_id: "bob".into(),
                        compliant: true,
                        revoked: false,
                        session_expires_ms: None,
                    },
                ],
                ..Default::default()
            },
            TenantSnapshot {
                id: OTHER_TENANT.into(),
                name: "Globex".into(),
                active: true,
                ca_pem: pki.other_ca.cert_pem(),
                policy: ward_policy::PolicyInput::default(),
                users: vec![],
                devices: vec![],
                ..Default::default()
            },
        ],
    }
}

pub fn acme(snapshot: &mut GatewaySnapshot) -> &mut TenantSnapshot {
    snapshot.tenants.iter_mut().find(|t| t.id == TENANT).unwrap()
}

// ---- control plane fakes ----------------------------------------------------

/// Snapshots pushed by the test; answers like the server's long poll, and
/// serves the domain lists in `lists` by digest (counting the fetches).
pub struct ChannelSource {
    rx: mpsc::UnboundedReceiver<GatewaySnapshot>,
    latest: Option<GatewaySnapshot>,
    pub lists: Arc<Mutex<std::collections::HashMap<String, String>>>,
    pub list_fetches: Arc<AtomicUsize>,
}

impl SnapshotSource for ChannelSource {
    async fn next(&mut self, after: Option<i64>) -> anyhow::Result<GatewaySnapshot> {
        loop {
            if let Some(latest) = &self.latest {
                if after.is_none_or(|a| latest.version > a) {
                    return Ok(latest.clone());
                }
            }
            match self.rx.recv().await {
                Some(next) => self.latest = Some(next),
                None => std::future::pending::<()>().await,
            }
        }
    }

    async fn domain_list(&mut self, sha256: &str) -> anyhow::Result<String> {
        self.list_fetches.fetch_add(1, Ordering::SeqCst);
        self.lists
            .lock()
            .unwrap()
            .get(sha256)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no list {sha256} here"))
    }
}

pub fn channel_source() -> (mpsc::UnboundedSender<GatewaySnapshot>, ChannelSource) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        tx,
        ChannelSource {
            rx,
            latest: None,
            lists: Arc::default(),
            list_fetches: Arc::default(),
        },
    )
}

/// Stores records like the server: each id once, in arrival order.
#[derive(Clone, Default)]
pub struct Server {
    inner: Arc<ServerInner>,
}

#[derive(Default)]
pub struct ServerInner {
    stored: Mutex<Vec<AccessRecord>>,
    /// Every id of every call, failed ones included.
    received: Mutex<Vec<String>>,
    calls: AtomicUsize,
    duplicates: AtomicUsize,
    /// Refuse everything (the server is down).
    down: AtomicBool,
    /// Store, then answer with an error (the answer is lost).
    lose_answers: AtomicBool,
}

impl RecordSink for Server {
    fn ship(&self, batch: Vec<AccessRecord>) -> impl Future<Output = anyhow::Result<()>> + Send {
        let inner = self.inner.clone();
        async move {
            inner.calls.fetch_add(1, Ordering::SeqCst);
            inner
                .received
                .lock()
                .unwrap()
                .extend(batch.iter().map(|r| r.id.clone()));
            if inner.down.load(Ordering::SeqCst) {
                anyhow::bail!("server unreachable");
            }
            {
                let mut stored = inner.stored.lock().unwrap();
                for record in batch {
                    if stored.iter().any(|r| r.id == record.id) {
                        inner.duplicates.fetch_add(1, Ordering::SeqCst);
                    } else {
                        stored.push(record);
                    }
                }
            }
            if inner.lose_answers.load(Ordering::SeqCst) {
                anyhow::bail!("connection reset before the answer");
            }
            Ok(())
        }
    }
}

impl Server {
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }
    pub fn set_lose_answers(&self, lose: bool) {
        self.inner.lose_answers.store(lose, Ordering::SeqCst);
    }
    pub fn stored(&self) -> Vec<AccessRecord> {
        self.inner.stored.lock().unwrap().clone()
    }
    pub fn received(&self) -> Vec<String> {
        self.inner.received.lock().unwrap().clone()
    }
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }
    pub fn duplicates(&self) -> usize {
        self.inner.duplicates.load(Ordering::SeqCst)
    }

    /// Waits for a stored record matching `f`.
    pub async fn record(&self, what: &str, f: impl Fn(&AccessRecord) -> bool) -> AccessRecord {
        eventually(what, Duration::from_secs(10), || {
            self.stored().into_iter().find(|r| f(r))
        })
        .await
    }

    pub async fn wait_stored(&self, n: usize) -> Vec<AccessRecord> {
        eventually(&format!("{n} records stored"), Duration::from_secs(20), || {
            let stored = self.stored();
            (stored.len() >= n).then_some(stored)
        })
        .await
    }
}

/// Polls `f` until it gives something, or panics after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- the gateway under test -------------------------------------------------

pub struct Harness {
    pub pki: Arc<Pki>,
    pub dir: Arc<TempDir>,
    pub server: Server,
    pub snapshots: mpsc::UnboundedSender<GatewaySnapshot>,
    pub gateway: Option<RunningGateway>,
    pub echo: SocketAddr,
}

pub fn config(pki: &Pki, dir: &TempDir) -> GatewayConfig {
    let mut config = GatewayConfig::new(
        "gw-1",
        "127.0.0.1:0".parse().unwrap(),
        pki.gateway_chain_pem.clone(),
        pki.gateway_key_pem.clone(),
        dir.path(),
    );
    config.recheck_interval = Duration::from_millis(200);
    config.dial_timeout = Duration::from_secs(2);
    config
}

impl Harness {
    /// A gateway enforcing [`snapshot`] version 1.
    pub async fn start() -> Harness {
        let pki = Arc::new(Pki::new());
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let harness = Harness::start_on(pki.clone(), dir, Server::default()).await;
        harness.push(snapshot(1, &pki)).await;
        harness
    }

    /// A gateway on an existing spool directory, with no snapshot pushed.
    pub async fn start_on(pki: Arc<Pki>, dir: Arc<TempDir>, server: Server) -> Harness {
        let (snapshots, source) = channel_source();
        let gateway = ward_gateway::start(config(&pki, &dir), source, server.clone())
            .await
            .unwrap();
        Harness {
            pki,
            dir,
            server,
            snapshots,
            gateway: Some(gateway),
            echo: echo_server().await,
        }
    }

    pub fn gateway(&self) -> &RunningGateway {
        self.gateway.as_ref().unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway().local_addr()
    }

    /// Pushes a snapshot and waits until the gateway enforces it.
    pub async fn push(&self, snapshot: GatewaySnapshot) {
        let version = snapshot.version;
        self.snapshots.send(snapshot).unwrap();
        eventually("snapshot applied", Duration::from_secs(5), || {
            (self.gateway().snapshot_version() == Some(version)).then_some(())
        })
        .await;
    }

    /// A tunnel as alice's laptop.
    pub async fn laptop(&self) -> SendRequest<Bytes> {
        self.tunnel_as(&self.pki.device("laptop")).await.unwrap()
    }

    pub async fn tunnel_as(&self, device: &DeviceCert) -> anyhow::Result<SendRequest<Bytes>> {
        tunnel(self.addr(), self.pki.client_config(device)).await
    }

    pub fn echo_authority(&self) -> String {
        self.echo.to_string()
    }
}

// ---- the agent side ---------------------------------------------------------

/// TLS + HTTP/2 to the gateway, the connection driven in the background.
pub async fn tunnel(addr: SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(4 * MIB as u32)
        .initial_connection_window_size(16 * MIB as u32)
        .handshake::<_, Bytes>(tls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Sends `CONNECT authority` and waits for the answer.
pub async fn connect(
    tunnel: &SendRequest<Bytes>,
    authority: &str,
) -> anyhow::Result<(Response<RecvStream>, SendStream<Bytes>)> {
    connect_early(tunnel, authority, Bytes::new(), false).await
}

/// `CONNECT authority`, sending `early` (unless empty; with END_STREAM if
/// `end`) right after the request, before the answer, as the agent's
/// forwards do.
pub async fn connect_early(
    tunnel: &SendRequest<Bytes>,
    authority: &str,
    early: Bytes,
    end: bool,
) -> anyhow::Result<(Response<RecvStream>, SendStream<Bytes>)> {
    let request = Request::builder().method(Method::CONNECT).uri(authority).body(())?;
    let mut ready = tunnel.clone().ready().await?;
    let (response, mut stream) = ready.send_request(request, false)?;
    if !early.is_empty() {
        stream.send_data(early, end)?;
    }
    let response = tokio::time::timeout(Duration::from_secs(10), response).await??;
    Ok((response, stream))
}

/// Whether the gateway refuses this client: the handshake, the HTTP/2
/// preface or the first request fails.
pub async fn refused(addr: SocketAddr, config: Arc<ClientConfig>) -> bool {
    let attempt = async {
        let tunnel = tunnel(addr, config).await?;
        connect(&tunnel, "127.0.0.1:9").await
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(_)) => false,
        Ok(Err(_)) => true,
        Err(_) => panic!("neither served nor refused within 10 s"),
    }
}

pub fn header<'a>(response: &'a Response<RecvStream>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Sends `data` respecting flow control; ends the stream if `end`.
pub async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> anyhow::Result<()> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let mut capacity = stream.capacity();
        while capacity == 0 {
            capacity = poll_fn(|cx| stream.poll_capacity(cx))
                .await
                .ok_or_else(|| anyhow::anyhow!("stream closed"))??;
        }
        let chunk = data.split_to(capacity.min(data.len()));
        stream.send_data(chunk, false)?;
    }
    if end {
        stream.send_data(Bytes::new(), true)?;
    }
    Ok(())
}

/// Reads `n` bytes (or to the end when `n` is `None`), releasing capacity.
pub async fn read_body(body: &mut RecvStream, n: Option<usize>) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while n.is_none_or(|n| out.len() < n) {
        match body.data().await {
            Some(chunk) => {
                let chunk = chunk?;
                body.flow_control().release_capacity(chunk.len())?;
                out.extend_from_slice(&chunk);
            }
            None => break,
        }
    }
    Ok(out)
}

/// Bytes that are not all the same, so a mix-up would show.
pub fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

// ---- the destination --------------------------------------------------------

/// A TCP echo server on 127.0.0.1; half-closes back when the client does.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
