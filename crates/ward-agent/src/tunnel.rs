//! The agent's one connection to the gateway, and the streams carried in it.
//!
//! A [`Tunnel`] holds one long-lived TLS 1.3 connection to the gateway,
//! mutually authenticated with the device certificate, speaking HTTP/2 (ALPN
//! `h2`), and shares it among every local connection: each one is an HTTP/2
//! `CONNECT host:port` stream (the protocol is written down in `ward-api`).
//! [`Tunnel::open`] asks for a stream and returns a [`TunnelStream`] once the
//! gateway has decided and dialled (`200`), or a [`TunnelError`] saying why
//! not (`403` with the rule and reason, `502` dial failure, `503` ...).
//!
//! The connection is made on the first `open` and remade by the first `open`
//! after it died (the gateway restarted, the network dropped, pings went
//! unanswered). Failed attempts back off exponentially (0.5 s doubling to
//! 30 s, with jitter); an `open` waits for the next attempt when it is close
//! and fails at once otherwise, so a missing gateway costs one attempt per
//! back-off period, never a busy loop. Opens that queued behind a failing
//! attempt share its error.
//!
//! The credentials (device certificate and key, gateway CA) are read from
//! the state directory when a connection is made, and re-read when their
//! files change (a renewal): the current connection is then retired (streams
//! on it run to their end) and the next `open` connects with the new
//! certificate.
//!
//! Windows follow the brief (Istio's ztunnel): 4 MiB per stream, 16 MiB for
//! the connection. A ping every 10 s that is not answered within 10 s marks
//! the gateway dead and closes the connection.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;
use ward_api::{HEADER_ERROR, HEADER_REASON, HEADER_RULE};

use crate::proxy::Target;
use crate::state::{AgentState, CERT_FILE, GATEWAY_CA_FILE, KEY_FILE};

/// The ALPN protocol of the tunnel.
pub const ALPN_H2: &[u8] = b"h2";
/// HTTP/2 flow-control window of each stream.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 flow-control window of the connection (above the stream window, so
/// one busy stream cannot stall the others).
pub const CONNECTION_WINDOW: u32 = 16 << 20;
/// Largest HTTP/2 frame the gateway may send.
pub const MAX_FRAME_SIZE: u32 = 256 << 10;
/// Buffer size of each direction of [`relay`].
pub const RELAY_BUFFER: usize = 64 << 10;
/// At most this much of what a local client sent first goes out with the
/// `CONNECT` request, before the gateway's answer (see [`Tunnel::open_with`]).
pub const EARLY_DATA_MAX: usize = 16 << 10;

/// How long the gateway may take to answer a DNS query (its own upstream
/// resolvers have 2 s each).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest DNS message.
pub const DNS_MESSAGE_MAX: usize = 65535;

/// How the tunnel connects and keeps its connection.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The gateway, `host:port` (IPv6 in brackets); `host` is also the name
    /// its certificate must carry.
    pub gateway: String,
    /// The device certificate (PEM).
    pub cert_path: PathBuf,
    /// The device key (PEM).
    pub key_path: PathBuf,
    /// The CA(s) the gateway's certificate must chain to (PEM).
    pub gateway_ca_path: PathBuf,
    /// Limit for TCP connect, TLS and HTTP/2 handshakes together.
    pub connect_timeout: Duration,
    /// Limit for the gateway's answer to a `CONNECT` (it dials first).
    pub open_timeout: Duration,
    /// Time between pings on the connection.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the gateway counts as dead.
    pub ping_timeout: Duration,
    /// Wait after the first failed connection attempt; doubles after each.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// An `open` waits for the next attempt if it comes within this time;
    /// otherwise it fails at once.
    pub max_retry_wait: Duration,
}

impl TunnelConfig {
    /// Defaults for a gateway and the credentials in `state_dir`.
    pub fn new(gateway: impl Into<String>, state_dir: &Path) -> TunnelConfig {
        TunnelConfig {
            gateway: gateway.into(),
            cert_path: state_dir.join(CERT_FILE),
            key_path: state_dir.join(KEY_FILE),
            gateway_ca_path: state_dir.join(GATEWAY_CA_FILE),
            connect_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(2),
        }
    }

    /// Defaults for an enrolled state.
    pub fn from_state(state: &AgentState) -> TunnelConfig {
        TunnelConfig::new(state.device.gateway.clone(), state.dir())
    }

    /// The wait before attempt number `failures + 1`: `backoff_min` doubled
    /// per earlier failure, capped at `backoff_max`, times a jitter factor
    /// (`0.8..1.2`, drawn by the caller), and never above `backoff_max`.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        let base = self.backoff_min.saturating_mul(1 << doublings).min(self.backoff_max);
        base.mul_f64(jitter.clamp(0.5, 1.5)).min(self.backoff_max)
    }
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// `403`: policy refused the connection.
    #[error("denied by {}: {reason}", rule_name(.rule))]
    Denied {
        /// The deciding rule's id; `None` for the default deny.
        rule: Option<String>,
        /// Why (`rule_matched`, `no_application`, `device_revoked`,
        /// `internet_blocked`, `internet_warn`, ...).
        reason: String,
        /// For `internet_warn`: the token that clicks the warning through
        /// ([`Tunnel::proceed`]).
        proceed: Option<String>,
    },
    /// `502`: allowed, but the gateway could not reach the destination.
    #[error("the gateway could not reach the destination: {0}")]
    DialFailed(String),
    /// `400`: the gateway found the destination malformed.
    #[error("the gateway refused the destination as malformed")]
    BadRequest,
    /// The gateway cannot be reached or is not accepting connections
    /// (`503`, a failed connection attempt, a timeout).
    #[error("the gateway is unavailable: {0}")]
    Unavailable(String),
    /// The device's certificate, key or gateway CA cannot be used.
    #[error("cannot use the device's credentials: {0}")]
    Credentials(String),
    /// Another answer from the gateway.
    #[error("unexpected answer from the gateway: HTTP {0}")]
    Unexpected(u16),
}

fn rule_name(rule: &Option<String>) -> String {
    match rule {
        Some(rule) => format!("rule {rule}"),
        None => "the gateway".to_owned(),
    }
}

/// The connection's state, for `ward agent status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// No connection yet: none was needed.
    Idle,
    /// A connection attempt is under way.
    Connecting,
    /// Connected.
    Connected,
    /// The last connection ended or the last attempt failed.
    Disconnected,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Idle => "idle (connects when needed)",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
        })
    }
}

/// A snapshot of the tunnel, for `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    pub gateway: String,
    pub state: LinkState,
    /// When the current connection was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    /// Why the last connection ended or the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// TLS connections made to the gateway.
    pub connections: u64,
    /// Connection attempts that failed.
    pub failed_attempts: u64,
    /// Streams the gateway accepted.
    pub streams_opened: u64,
    /// Streams refused (denied, dial failed, unavailable).
    pub streams_refused: u64,
    /// Streams open now.
    pub active_streams: u64,
}

/// A handle on the tunnel; cheap to clone, shared by all local connections.
#[derive(Clone)]
pub struct Tunnel {
    inner: Arc<Inner>,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("gateway", &self.inner.config.gateway)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: TunnelConfig,
    /// The connection new streams go to.
    current: Mutex<Option<Arc<Conn>>>,
    /// Held while connecting, so one attempt runs at a time.
    attempts: tokio::sync::Mutex<Attempts>,
    /// Attempts finished so far (mirrors `Attempts::finished`, readable
    /// without the lock).
    attempts_finished: AtomicU64,
    creds: Mutex<CredCache>,
    info: Mutex<Info>,
    next_conn_id: AtomicU64,
    connections: AtomicU64,
    failed_attempts: AtomicU64,
    streams_opened: AtomicU64,
    streams_refused: AtomicU64,
    active_streams: Arc<AtomicU64>,
}

#[derive(Default)]
struct Attempts {
    /// Consecutive failed attempts.
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<TunnelError>,
    finished: u64,
}

struct Info {
    state: LinkState,
    connected_since: Option<String>,
    last_error: Option<String>,
}

struct Conn {
    id: u64,
    send: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
    /// The credential files it was made with.
    stamp: CredStamp,
}

/// Identity of the credential files: inode, size and modification time of
/// each (a rename gives a new inode, so an atomic rewrite always shows).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CredStamp(Vec<Option<(u64, u64, Option<SystemTime>)>>);

#[derive(Default)]
struct CredCache {
    loaded: Option<(CredStamp, Arc<ClientConfig>)>,
    checked_at: Option<Instant>,
    last_stamp: Option<CredStamp>,
}

/// How often an `open` looks at the credential files.
const CRED_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A failed stream request: the connection is broken (try another), or the
/// gateway answered.
enum RequestError {
    Connection(String),
    Answer(TunnelError),
}

impl Tunnel {
    /// A tunnel to the gateway of `config`; connects on the first
    /// [`open`](Tunnel::open).
    pub fn new(config: TunnelConfig) -> Tunnel {
        Tunnel {
            inner: Arc::new(Inner {
                config,
                current: Mutex::new(None),
                attempts: tokio::sync::Mutex::new(Attempts::default()),
                attempts_finished: AtomicU64::new(0),
                creds: Mutex::new(CredCache::default()),
                info: Mutex::new(Info {
                    state: LinkState::Idle,
                    connected_since: None,
                    last_error: None,
                }),
                next_conn_id: AtomicU64::new(1),
                connections: AtomicU64::new(0),
                failed_attempts: AtomicU64::new(0),
                streams_opened: AtomicU64::new(0),
                streams_refused: AtomicU64::new(0),
                active_streams: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TunnelConfig {
        &self.inner.config
    }

    /// Opens a stream to `target` through the gateway.
    ///
    /// Connects first when there is no live connection. If the connection
    /// turns out to be broken when the stream is asked for, it is dropped and
    /// the request is made once more on a new connection (nothing reached the
    /// destination: the gateway dials only after accepting the stream).
    pub async fn open(&self, target: &Target) -> Result<TunnelStream, TunnelError> {
        self.open_with(target, Bytes::new()).await
    }

    /// Like [`open`](Self::open), and sends `early` (at most
    /// [`EARLY_DATA_MAX`] bytes; what a local client already sent) on the
    /// stream right after the request, without waiting for the answer. The
    /// gateway holds it, within the stream's flow-control window, until it
    /// has decided and dialled; it relays it only after an allow, and drops
    /// it with the stream otherwise. This saves a round trip to the gateway
    /// for protocols whose client speaks first (HTTP, TLS, PostgreSQL).
    pub async fn open_with(&self, target: &Target, early: Bytes) -> Result<TunnelStream, TunnelError> {
        self.open_as(target, early, false).await
    }

    /// Like [`open_with`](Self::open_with), for a stream carrying plain
    /// HTTP/1.1 requests (`ward-protocol: http`): for internet traffic the
    /// gateway then reads and decides each request, and answers a refused
    /// one with a block or warning page on the stream itself.
    pub async fn open_http(&self, target: &Target, early: Bytes) -> Result<TunnelStream, TunnelError> {
        self.open_as(target, early, true).await
    }

    /// Clicks an internet warning through: `POST /.ward/proceed` with the
    /// token the refusal carried. The gateway records it and lets this
    /// device's user reach that destination for a while.
    pub async fn proceed(&self, token: &str) -> Result<(), TunnelError> {
        let conn = self.connection().await?;
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(ward_api::PATH_PROCEED)
            .header(ward_api::HEADER_PROCEED, token)
            .body(())
            .map_err(|_| TunnelError::BadRequest)?;
        let mut send = conn
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| TunnelError::Unavailable(e.to_string()))?;
        let (response, _) = send
            .send_request(request, true)
            .map_err(|e| TunnelError::Unavailable(e.to_string()))?;
        let response = tokio::time::timeout(self.inner.config.open_timeout, response)
            .await
            .map_err(|_| TunnelError::Unavailable("no answer from the gateway".to_owned()))?
            .map_err(|e| TunnelError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 | 204 => Ok(()),
            403 => Err(TunnelError::Denied {
                rule: None,
                reason: "proceed_refused".to_owned(),
                proceed: None,
            }),
            400 => Err(TunnelError::BadRequest),
            other => Err(TunnelError::Unexpected(other)),
        }
    }

    async fn open_as(&self, target: &Target, early: Bytes, http: bool) -> Result<TunnelStream, TunnelError> {
        debug_assert!(early.len() <= EARLY_DATA_MAX);
        let result = self.open_inner(target, &early, http).await;
        let counter = match &result {
            Ok(_) => &self.inner.streams_opened,
            Err(_) => &self.inner.streams_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn open_inner(&self, target: &Target, early: &Bytes, http: bool) -> Result<TunnelStream, TunnelError> {
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            // On a retry the early data goes again: the broken stream's copy
            // reached no destination.
            match self.request(&conn, target, early.clone(), http).await {
                Ok(stream) => return Ok(stream),
                Err(RequestError::Answer(e)) => return Err(e),
                Err(RequestError::Connection(why)) => {
                    tracing::debug!(conn = conn.id, %why, "tunnel connection broken; retiring it");
                    self.inner.retire(conn.id, Some(&why));
                    if retried {
                        return Err(TunnelError::Unavailable(why));
                    }
                    retried = true;
                }
            }
        }
    }

    /// Sends one DNS message to the gateway's DNS filter (`POST /dns-query`
    /// on the tunnel, [`ward_api::PATH_DNS_QUERY`]) and returns its answer,
    /// one DNS message. Connects (or reconnects) as [`open`](Self::open)
    /// does; a query lost with a broken connection is sent once more on a
    /// new one. Waits at most [`DNS_TIMEOUT`] for the answer.
    pub async fn dns_query(&self, query: Bytes) -> Result<Bytes, TunnelError> {
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            match self.dns_request(&conn, query.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(RequestError::Answer(e)) => return Err(e),
                Err(RequestError::Connection(why)) => {
                    tracing::debug!(conn = conn.id, %why, "tunnel connection broken; retiring it");
                    self.inner.retire(conn.id, Some(&why));
                    if retried {
                        return Err(TunnelError::Unavailable(why));
                    }
                    retried = true;
                }
            }
        }
    }

    async fn dns_request(&self, conn: &Conn, query: Bytes) -> Result<Bytes, RequestError> {
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "https://{}{}",
                self.inner.config.gateway,
                ward_api::PATH_DNS_QUERY
            ))
            .header(http::header::CONTENT_TYPE, "application/dns-message")
            .body(())
            .map_err(|_| RequestError::Answer(TunnelError::BadRequest))?;
        let mut send = conn
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| RequestError::Connection(e.to_string()))?;
        let (response, mut stream) = send
            .send_request(request, false)
            .map_err(|e| RequestError::Connection(e.to_string()))?;
        // A DNS message (at most 64 KiB) fits the stream's initial window.
        stream
            .send_data(query, true)
            .map_err(|e| RequestError::Connection(e.to_string()))?;
        let exchange = async {
            let response = response.await.map_err(|e| classify_stream_error(&e))?;
            let status = response.status().as_u16();
            if status != 200 {
                let err = match status {
                    400 => TunnelError::BadRequest,
                    503 => TunnelError::Unavailable("the gateway is not accepting queries".to_owned()),
                    other => TunnelError::Unexpected(other),
                };
                return Err(RequestError::Answer(err));
            }
            let mut body = response.into_body();
            let mut answer = BytesMut::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| classify_stream_error(&e))?;
                let _ = body.flow_control().release_capacity(chunk.len());
                if answer.len() + chunk.len() > DNS_MESSAGE_MAX {
                    return Err(RequestError::Answer(TunnelError::Unexpected(status)));
                }
                answer.extend_from_slice(&chunk);
            }
            Ok(answer.freeze())
        };
        match tokio::time::timeout(DNS_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RequestError::Answer(TunnelError::Unavailable(format!(
                "no DNS answer from the gateway within {}s",
                DNS_TIMEOUT.as_secs()
            )))),
        }
    }

    /// Connects now if not connected (e.g. at start, to report problems
    /// early).
    pub async fn connect(&self) -> Result<(), TunnelError> {
        self.connection().await.map(drop)
    }

    /// Drops the current connection (its streams run to their end) and
    /// forgets the back-off, so the next `open` connects afresh with the
    /// credential files as they are now. Called after a renewal.
    pub async fn reconnect(&self) {
        if let Ok(mut creds) = self.inner.creds.lock() {
            *creds = CredCache::default();
        }
        let current = self.inner.current.lock().ok().and_then(|c| c.as_ref().map(|c| c.id));
        if let Some(id) = current {
            self.inner.retire(id, None);
        }
        let mut attempts = self.inner.attempts.lock().await;
        attempts.failures = 0;
        attempts.retry_at = None;
    }

    /// A snapshot of the tunnel's state and counters.
    pub fn status(&self) -> TunnelStatus {
        let inner = &self.inner;
        let (state, connected_since, last_error) = match inner.info.lock() {
            Ok(info) => (info.state, info.connected_since.clone(), info.last_error.clone()),
            Err(_) => (LinkState::Disconnected, None, None),
        };
        TunnelStatus {
            gateway: inner.config.gateway.clone(),
            state,
            connected_since,
            last_error,
            connections: inner.connections.load(Ordering::Relaxed),
            failed_attempts: inner.failed_attempts.load(Ordering::Relaxed),
            streams_opened: inner.streams_opened.load(Ordering::Relaxed),
            streams_refused: inner.streams_refused.load(Ordering::Relaxed),
            active_streams: inner.active_streams.load(Ordering::Relaxed),
        }
    }

    /// A live connection: the current one, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, TunnelError> {
        if let Some(conn) = self.inner.live() {
            return Ok(conn);
        }
        let seen = self.inner.attempts_finished.load(Ordering::Acquire);
        let mut attempts = self.inner.attempts.lock().await;
        if let Some(conn) = self.inner.live() {
            return Ok(conn);
        }
        // An attempt finished while this open waited for the lock, and it
        // failed (else `live` would have found its connection): share its
        // outcome rather than queue another attempt.
        if attempts.finished > seen {
            if let Some(err) = &attempts.last_error {
                return Err(err.clone());
            }
        }
        if let Some(at) = attempts.retry_at {
            let now = Instant::now();
            if at > now {
                let wait = at - now;
                if wait > self.inner.config.max_retry_wait {
                    let last = attempts
                        .last_error
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "the last attempt failed".to_owned());
                    return Err(TunnelError::Unavailable(format!(
                        "{}; next attempt in {:.1}s",
                        strip_unavailable(&last),
                        wait.as_secs_f64()
                    )));
                }
                tokio::time::sleep(wait).await;
            }
        }
        self.inner.set_info(LinkState::Connecting, None);
        let result = self.inner.connect(&self.inner).await;
        attempts.finished += 1;
        match result {
            Ok(conn) => {
                attempts.failures = 0;
                attempts.retry_at = None;
                attempts.last_error = None;
                self.inner.attempts_finished.store(attempts.finished, Ordering::Release);
                if let Ok(mut current) = self.inner.current.lock() {
                    *current = Some(conn.clone());
                }
                self.inner.connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut info) = self.inner.info.lock() {
                    info.state = LinkState::Connected;
                    info.connected_since = Some(crate::now_rfc3339());
                    info.last_error = None;
                }
                tracing::info!(gateway = %self.inner.config.gateway, conn = conn.id, "tunnel connected");
                Ok(conn)
            }
            Err(e) => {
                attempts.failures = attempts.failures.saturating_add(1);
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                let delay = self.inner.config.backoff(attempts.failures, jitter);
                attempts.retry_at = Some(Instant::now() + delay);
                attempts.last_error = Some(e.clone());
                self.inner.attempts_finished.store(attempts.finished, Ordering::Release);
                self.inner.failed_attempts.fetch_add(1, Ordering::Relaxed);
                self.inner.set_info(LinkState::Disconnected, Some(e.to_string()));
                tracing::warn!(
                    gateway = %self.inner.config.gateway,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to the gateway"
                );
                Err(e)
            }
        }
    }

    /// Sends `CONNECT target` (and `early`) on `conn` and waits for the answer.
    async fn request(
        &self,
        conn: &Conn,
        target: &Target,
        early: Bytes,
        http_mode: bool,
    ) -> Result<TunnelStream, RequestError> {
        let mut request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(target.authority());
        if http_mode {
            request = request.header(ward_api::HEADER_PROTOCOL, "http");
        }
        let request = request
            .body(())
            .map_err(|_| RequestError::Answer(TunnelError::BadRequest))?;
        let send = conn
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| RequestError::Connection(e.to_string()))?;
        let mut send = send;
        let (response, mut send_stream) = send
            .send_request(request, false)
            .map_err(|e| RequestError::Connection(e.to_string()))?;
        if !early.is_empty() {
            // Within the stream's initial window (far above EARLY_DATA_MAX),
            // so h2 sends it at once.
            send_stream
                .send_data(early, false)
                .map_err(|e| RequestError::Connection(e.to_string()))?;
        }
        let limit = self.inner.config.open_timeout;
        let response = match tokio::time::timeout(limit, response).await {
            Err(_) => {
                return Err(RequestError::Answer(TunnelError::Unavailable(format!(
                    "no answer from the gateway within {}s",
                    limit.as_secs()
                ))))
            }
            Ok(Err(e)) => return Err(classify_stream_error(&e)),
            Ok(Ok(response)) => response,
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(printable)
                .filter(|v| !v.is_empty())
        };
        let err = match response.status().as_u16() {
            200 => {
                let guard = ActiveGuard::new(self.inner.active_streams.clone());
                return Ok(TunnelStream::with_guard(send_stream, response.into_body(), Some(guard)));
            }
            403 => TunnelError::Denied {
                rule: header(HEADER_RULE),
                reason: header(HEADER_REASON).unwrap_or_else(|| "denied".to_owned()),
                proceed: response
                    .headers()
                    .get(ward_api::HEADER_PROCEED)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 1024)
                    .map(str::to_owned),
            },
            502 => TunnelError::DialFailed(
                header(HEADER_ERROR).unwrap_or_else(|| "the destination could not be reached".to_owned()),
            ),
            400 => TunnelError::BadRequest,
            503 => TunnelError::Unavailable(
                header(HEADER_REASON)
                    .or_else(|| header(HEADER_ERROR))
                    .unwrap_or_else(|| "the gateway is not accepting connections".to_owned()),
            ),
            other => TunnelError::Unexpected(other),
        };
        Err(RequestError::Answer(err))
    }
}

/// "the gateway is unavailable: X" → "X", to avoid saying it twice.
fn strip_unavailable(msg: &str) -> &str {
    msg.strip_prefix("the gateway is unavailable: ").unwrap_or(msg)
}

/// A stream-level reset by the gateway is its answer; anything else (I/O,
/// GOAWAY, a refused stream, a closed connection) means the connection is
/// unusable.
fn classify_stream_error(e: &h2::Error) -> RequestError {
    if e.is_reset() && e.is_remote() && e.reason() != Some(Reason::REFUSED_STREAM) {
        let reason = e.reason().map(|r| r.to_string()).unwrap_or_default();
        return RequestError::Answer(TunnelError::Unavailable(format!(
            "the gateway reset the stream ({reason})"
        )));
    }
    RequestError::Connection(e.to_string())
}

/// Header values shown to people: printable ASCII only, at most 200 characters.
fn printable(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Inner {
    /// The current connection if it is alive and its credentials are
    /// current.
    fn live(&self) -> Option<Arc<Conn>> {
        let conn = self.current.lock().ok()?.clone()?;
        if !conn.alive.load(Ordering::Acquire) {
            return None;
        }
        if self.credentials_changed(&conn.stamp) {
            tracing::info!(conn = conn.id, "device credentials changed; reconnecting with them");
            self.retire(conn.id, None);
            return None;
        }
        Some(conn)
    }

    /// Whether the credential files differ from `stamp` (looked at once a
    /// second at most).
    fn credentials_changed(&self, stamp: &CredStamp) -> bool {
        let Ok(mut cache) = self.creds.lock() else {
            return false;
        };
        let now = Instant::now();
        let fresh = cache
            .checked_at
            .is_some_and(|t| now.duration_since(t) < CRED_CHECK_INTERVAL);
        if !fresh {
            cache.checked_at = Some(now);
            cache.last_stamp = Some(self.stamp());
        }
        cache.last_stamp.as_ref().is_some_and(|s| s != stamp)
    }

    fn stamp(&self) -> CredStamp {
        let c = &self.config;
        CredStamp(
            [&c.cert_path, &c.key_path, &c.gateway_ca_path]
                .iter()
                .map(|p| std::fs::metadata(p).ok().map(|m| (m.ino(), m.len(), m.modified().ok())))
                .collect(),
        )
    }

    /// Stops sending new streams to connection `id`.
    fn retire(&self, id: u64, why: Option<&str>) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
            drop(current);
            let state = if why.is_some() {
                LinkState::Disconnected
            } else {
                LinkState::Idle
            };
            self.set_info(state, why.map(str::to_owned));
        }
    }

    fn set_info(&self, state: LinkState, error: Option<String>) {
        if let Ok(mut info) = self.info.lock() {
            info.state = state;
            if state != LinkState::Connected {
                info.connected_since = None;
            }
            if error.is_some() {
                info.last_error = error;
            }
        }
    }

    /// A TLS client configuration from the credential files, cached until
    /// they change.
    fn client_config(&self) -> Result<(CredStamp, Arc<ClientConfig>), TunnelError> {
        let stamp = self.stamp();
        if let Ok(cache) = self.creds.lock() {
            if let Some((s, config)) = &cache.loaded {
                if *s == stamp {
                    return Ok((stamp, config.clone()));
                }
            }
        }
        let c = &self.config;
        let bad = |what: &str, e: ward_pki::PkiError| TunnelError::Credentials(format!("{what}: {e}"));
        let chain = ward_pki::load_certs(&c.cert_path).map_err(|e| bad("device certificate", e))?;
        let key = ward_pki::load_private_key(&c.key_path).map_err(|e| bad("device key", e))?;
        let roots = ward_pki::load_certs(&c.gateway_ca_path).map_err(|e| bad("gateway CA", e))?;
        let config =
            ward_pki::client_config_mtls(&roots, chain, key, &[ALPN_H2]).map_err(|e| bad("TLS configuration", e))?;
        if let Ok(mut cache) = self.creds.lock() {
            cache.loaded = Some((stamp.clone(), config.clone()));
            cache.last_stamp = Some(stamp.clone());
            cache.checked_at = Some(Instant::now());
        }
        Ok((stamp, config))
    }

    /// Makes a connection: TCP, TLS with the device certificate, HTTP/2;
    /// spawns the task that drives it and pings the gateway.
    async fn connect(&self, me: &Arc<Inner>) -> Result<Arc<Conn>, TunnelError> {
        let (stamp, tls_config) = self.client_config()?;
        let gateway = &self.config.gateway;
        let (host, port) = split_host_port(gateway).ok_or_else(|| {
            TunnelError::Unavailable(format!("invalid gateway address {gateway:?} (expected host:port)"))
        })?;
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TunnelError::Unavailable(format!("invalid gateway host name {host:?}")))?;
        let unavailable = |what: &str, e: &dyn fmt::Display| {
            TunnelError::Unavailable(format!("cannot connect to the gateway at {gateway}: {what}{e}"))
        };
        let handshake = async {
            let tcp = TcpStream::connect((host, port))
                .await
                .map_err(|e| unavailable("", &e))?;
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(tls_config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| unavailable("TLS: ", &e))?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return Err(unavailable("", &"the gateway did not agree to HTTP/2 (ALPN h2)"));
            }
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_frame_size(MAX_FRAME_SIZE)
                .enable_push(false)
                .handshake::<_, Bytes>(tls)
                .await
                .map_err(|e| unavailable("HTTP/2: ", &e))
        };
        let (send, mut connection) = match tokio::time::timeout(self.config.connect_timeout, handshake).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(unavailable(
                    "",
                    &format_args!("timed out after {}s", self.config.connect_timeout.as_secs()),
                ))
            }
        };
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let alive = Arc::new(AtomicBool::new(true));
        let ping_pong = connection.ping_pong();
        let (interval, ping_timeout) = (self.config.ping_interval, self.config.ping_timeout);
        let weak: Weak<Inner> = Arc::downgrade(me);
        let task_alive = alive.clone();
        tokio::spawn(async move {
            let pinger = async move {
                let Some(mut ping_pong) = ping_pong else {
                    return std::future::pending::<String>().await;
                };
                loop {
                    tokio::time::sleep(interval).await;
                    match tokio::time::timeout(ping_timeout, ping_pong.ping(h2::Ping::opaque())).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("ping failed: {e}"),
                        Err(_) => {
                            return format!(
                                "the gateway did not answer a ping within {}s",
                                ping_timeout.as_secs_f64()
                            )
                        }
                    }
                }
            };
            let why = tokio::select! {
                result = &mut connection => match result {
                    Ok(()) => None,
                    Err(e) => Some(format!("connection to the gateway lost: {e}")),
                },
                why = pinger => Some(why),
            };
            // Dropping the connection (on a failed ping) fails its streams.
            drop(connection);
            task_alive.store(false, Ordering::Release);
            match &why {
                Some(why) => tracing::warn!(conn = id, %why, "tunnel connection ended"),
                None => tracing::debug!(conn = id, "tunnel connection closed"),
            }
            if let Some(inner) = weak.upgrade() {
                inner.retire(id, Some(why.as_deref().unwrap_or("the gateway closed the connection")));
            }
        });
        Ok(Arc::new(Conn { id, send, alive, stamp }))
    }
}

/// Splits `host:port` or `[v6]:port` into a host (no brackets) and a port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// Counts a stream as active while it lives.
struct ActiveGuard(Arc<AtomicU64>);

impl ActiveGuard {
    fn new(counter: Arc<AtomicU64>) -> ActiveGuard {
        counter.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(counter)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One `CONNECT` stream to a destination, as a byte stream.
///
/// Reading gives what the destination sends; end of file when the gateway
/// ends the stream (the destination closed its side). Writing sends to the
/// destination, within HTTP/2 flow control (a write waits for window);
/// [`shutdown`](tokio::io::AsyncWriteExt::shutdown) ends our side
/// (`END_STREAM`), a half-close the gateway passes on. Dropping it before
/// both sides ended resets the stream.
pub struct TunnelStream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received and not yet read.
    buf: Bytes,
    /// What writes are copied into before they go to h2; reused once h2
    /// has sent what was carved from it, so a transfer does not allocate
    /// per write.
    wbuf: BytesMut,
    write_closed: bool,
    _active: Option<ActiveGuard>,
}

impl fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelStream")
            .field("stream_id", &self.send.stream_id().as_u32())
            .field("buffered", &self.buf.len())
            .field("write_closed", &self.write_closed)
            .finish()
    }
}

impl TunnelStream {
    /// A byte stream over the two halves of an HTTP/2 stream. The tunnel
    /// makes these; public so that a test gateway can use the same adapter
    /// on its side of a stream.
    pub fn from_parts(send: SendStream<Bytes>, recv: RecvStream) -> TunnelStream {
        TunnelStream::with_guard(send, recv, None)
    }

    fn with_guard(send: SendStream<Bytes>, recv: RecvStream, guard: Option<ActiveGuard>) -> TunnelStream {
        TunnelStream {
            send,
            recv,
            buf: Bytes::new(),
            wbuf: BytesMut::new(),
            write_closed: false,
            _active: guard,
        }
    }

    /// The error for a write on a stream the peer reset or that ended.
    fn poll_reset_error(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        Poll::Ready(match ready!(self.send.poll_reset(cx)) {
            Ok(Reason::NO_ERROR) | Ok(Reason::CANCEL) | Ok(Reason::STREAM_CLOSED) => io::ErrorKind::BrokenPipe.into(),
            Ok(reason) => io::Error::new(io::ErrorKind::ConnectionReset, format!("stream reset: {reason}")),
            Err(e) => h2_to_io(e),
        })
    }
}

fn h2_to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::ErrorKind::Other.into());
    }
    io::Error::other(e)
}

impl AsyncRead for TunnelStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.buf.is_empty() {
            self.buf = loop {
                match ready!(self.recv.poll_data(cx)) {
                    None => return Poll::Ready(Ok(())),
                    Some(Ok(chunk)) if chunk.is_empty() && !self.recv.is_end_stream() => continue,
                    Some(Ok(chunk)) => break chunk,
                    Some(Err(e)) => {
                        return Poll::Ready(match e.reason() {
                            // The peer ended the stream early: end of file.
                            Some(Reason::NO_ERROR) | Some(Reason::CANCEL) => Ok(()),
                            Some(Reason::STREAM_CLOSED) => Err(io::ErrorKind::BrokenPipe.into()),
                            _ => Err(h2_to_io(e)),
                        });
                    }
                }
            };
        }
        let n = self.buf.len().min(out.remaining());
        let chunk = self.buf.split_to(n);
        out.put_slice(&chunk);
        // Window is given back as the reader consumes, so a slow local
        // client slows the destination down instead of filling memory.
        let _ = self.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.send.reserve_capacity(buf.len());
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.wbuf.reserve(n);
                    self.wbuf.extend_from_slice(&buf[..n]);
                    let chunk = self.wbuf.split().freeze();
                    if self.send.send_data(chunk, false).is_ok() {
                        return Poll::Ready(Ok(n));
                    }
                    break;
                }
                // The stream was reset or has ended: say why.
                Some(Err(_)) | None => break,
            }
        }
        self.poll_reset_error(cx).map(Err)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data handed to h2 is sent by the connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_closed {
            return Poll::Ready(Ok(()));
        }
        if self.send.send_data(Bytes::new(), true).is_ok() {
            self.write_closed = true;
            return Poll::Ready(Ok(()));
        }
        self.poll_reset_error(cx).map(Err)
    }
}

/// Carries bytes both ways between a local connection and a tunnel stream
/// until both directions have ended, passing half-closes on. Returns the
/// bytes sent to and received from the destination.
pub async fn relay<C>(client: &mut C, stream: &mut TunnelStream) -> io::Result<(u64, u64)>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(client, stream, RELAY_BUFFER, RELAY_BUFFER).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let c = TunnelConfig::new("gw:1", Path::new("/nonexistent"));
        let ms = |f| c.backoff(f, 1.0).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [500, 1000, 2000, 4000]);
        assert_eq!(ms(7), 30_000);
        assert_eq!(ms(1000), 30_000);
        assert_eq!(c.backoff(1, 0.8).as_millis(), 400);
        assert_eq!(c.backoff(1, 1.2).as_millis(), 600);
        // Jitter never goes past the cap.
        assert_eq!(c.backoff(20, 1.2).as_millis(), 30_000);
    }

    #[test]
    fn splits_gateway_addresses() {
        assert_eq!(split_host_port("gw.example.com:7443"), Some(("gw.example.com", 7443)));
        assert_eq!(split_host_port("127.0.0.1:1"), Some(("127.0.0.1", 1)));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", 443)));
        for bad in ["gw", "gw:", ":443", "gw:0", "gw:x", "::1:443", "[::1:443", "gw:70000"] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_read_well() {
        let denied = TunnelError::Denied {
            rule: Some("rul_1".into()),
            reason: "rule_matched".into(),
            proceed: None,
        };
        assert_eq!(denied.to_string(), "denied by rule rul_1: rule_matched");
        let default = TunnelError::Denied {
            rule: None,
            reason: "no_rule_matched".into(),
            proceed: None,
        };
        assert_eq!(default.to_string(), "denied by the gateway: no_rule_matched");
        assert_eq!(printable("a\u{7}b\tc é"), "abc");
    }
}
