//! `ward agent up` and `ward agent forward`: the running agent.
//!
//! [`start`] loads the state, builds the [`Tunnel`], binds the local
//! listeners (SOCKS5, HTTP proxy, port forwards, DNS) and starts the background
//! work:
//!
//! - renewal of the device certificate at half its lifetime, with a new key
//!   each time (`POST /api/v1/device/renew`), after which the tunnel
//!   reconnects with the new certificate; a lock file keeps two agents on the
//!   same state directory (`up` and a `forward`) from renewing at once;
//! - a posture report at start and every five minutes
//!   (`POST /api/v1/device/posture`), whose verdict is kept in `device.json`;
//! - `status.json` every two seconds, with the tunnel's state and the last
//!   decisions (for `ward agent status`).
//!
//! Each accepted connection is read by its front end ([`crate::proxy`]),
//! carried through [`Tunnel::open`], answered (success, or the failure in
//! the protocol's terms) and relayed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use ward_api::{PostureReport, PostureVerdict, RenewRequest};
use ward_client::{Client, ClientConfig};

use crate::proxy::http::{self as http_proxy, ProxyRequest};
use crate::proxy::socks5::{self, Reply};
use crate::proxy::Target;
use crate::routing::{Route, Routing};
use crate::state::AgentState;
use crate::status::{AgentStatus, Decision, Decisions, Outcome, STATUS_INTERVAL};
use crate::tunnel::{relay, Tunnel, TunnelConfig, TunnelError, TunnelStream, EARLY_DATA_MAX};

/// Default SOCKS5 listen address.
pub const DEFAULT_SOCKS: &str = "127.0.0.1:1080";
/// Default HTTP proxy listen address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:3128";
/// How often posture is reported.
pub const POSTURE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How often the routing (private applications, bypass, internet on or
/// off) is asked for again.
pub const ROUTING_INTERVAL: Duration = Duration::from_secs(60);
/// How long a direct (bypassed) connection may take to open.
const DIRECT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Internet warnings kept for the agent's page.
const WARNINGS_KEPT: usize = 20;
/// How long a local client may take over its proxy handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The lock file that serialises renewals between agents on one state
/// directory.
const RENEW_LOCK: &str = "renew.lock";
/// A renewal lock older than this was left by a crashed agent.
const RENEW_LOCK_STALE: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub state_dir: PathBuf,
    /// The SOCKS5 proxy's address, if one is served.
    pub socks: Option<SocketAddr>,
    /// The HTTP proxy's address, if one is served.
    pub http: Option<SocketAddr>,
    /// Port forwards: local address, destination.
    pub forwards: Vec<(SocketAddr, Target)>,
    /// The local DNS server's address (UDP and TCP), if one is served.
    pub dns: Option<SocketAddr>,
    /// Write `status.json` (only `up` does, so a `forward` beside it does not
    /// overwrite it).
    pub write_status: bool,
    /// Renew the certificate and report posture.
    pub maintenance: bool,
    pub status_interval: Duration,
    pub posture_interval: Duration,
    /// Tunnel settings; `None` for the defaults of the state.
    pub tunnel: Option<TunnelConfig>,
}

impl UpOptions {
    /// `ward agent up` with its defaults.
    pub fn new(state_dir: impl Into<PathBuf>) -> UpOptions {
        UpOptions {
            state_dir: state_dir.into(),
            socks: DEFAULT_SOCKS.parse().ok(),
            http: DEFAULT_HTTP.parse().ok(),
            forwards: Vec::new(),
            dns: None,
            write_status: true,
            maintenance: true,
            status_interval: STATUS_INTERVAL,
            posture_interval: POSTURE_INTERVAL,
            tunnel: None,
        }
    }

    /// `ward agent forward LOCAL TARGET`: one forward, no proxies, no
    /// status file.
    pub fn forward(state_dir: impl Into<PathBuf>, local: SocketAddr, target: Target) -> UpOptions {
        UpOptions {
            socks: None,
            http: None,
            forwards: vec![(local, target)],
            write_status: false,
            ..UpOptions::new(state_dir)
        }
    }
}

/// The running agent's shared parts.
pub struct Agent {
    state: Mutex<AgentState>,
    tunnel: Tunnel,
    decisions: Decisions,
    started_at: String,
    errors: Mutex<Errors>,
    listening: Mutex<Listening>,
    routing: RwLock<Arc<Routing>>,
    /// The last internet refusals with a warning, newest last.
    warnings: Mutex<VecDeque<Warning>>,
    /// Guards the agent page's forms against other sites posting to them.
    page_token: String,
}

/// An internet destination a rule warns about, and the token that clicks
/// the warning through.
#[derive(Debug, Clone)]
pub struct Warning {
    pub host: String,
    pub rule: Option<String>,
    pub at: String,
    pub(crate) token: String,
}

#[derive(Default)]
struct Errors {
    renewal: Option<String>,
    posture: Option<String>,
}

#[derive(Default)]
struct Listening {
    socks: Option<String>,
    http: Option<String>,
    forwards: Vec<String>,
}

impl Agent {
    /// An agent for an enrolled state.
    pub fn new(state: AgentState, tunnel: Tunnel) -> Agent {
        let routing = Routing::load(state.dir()).unwrap_or_default();
        Agent {
            routing: RwLock::new(Arc::new(routing)),
            warnings: Mutex::new(VecDeque::new()),
            page_token: crate::local::new_page_token(),
            state: Mutex::new(state),
            tunnel,
            decisions: Decisions::default(),
            started_at: crate::now_rfc3339(),
            errors: Mutex::new(Errors::default()),
            listening: Mutex::new(Listening::default()),
        }
    }

    pub fn tunnel(&self) -> &Tunnel {
        &self.tunnel
    }

    /// The last decisions, oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions.recent()
    }

    /// A copy of the state as it is now.
    pub fn state(&self) -> anyhow::Result<AgentState> {
        self.state
            .lock()
            .map(|s| s.clone())
            .map_err(|_| anyhow!("agent state lock poisoned"))
    }

    fn state_dir(&self) -> PathBuf {
        self.state.lock().map(|s| s.dir().to_path_buf()).unwrap_or_default()
    }

    /// Where a connection to `target` goes (see [`crate::routing`]).
    pub fn route(&self, target: &Target) -> Route {
        self.routing().route(target)
    }

    /// The routing as it is now.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Asks the server for the routing, uses it and saves it for the next
    /// start.
    pub async fn refresh_routing(&self) -> anyhow::Result<()> {
        let routing = self.api_client()?.device_routing().await?;
        let routing = Routing::from_api(&routing);
        if let Err(e) = routing.save(&self.state_dir()) {
            tracing::warn!(error = %e, "cannot save the routing");
        }
        if let Ok(mut current) = self.routing.write() {
            *current = Arc::new(routing);
        }
        Ok(())
    }

    /// The internet warnings seen lately, newest last.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings
            .lock()
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Clicks the latest warning about `host` through (see
    /// [`Tunnel::proceed`]).
    pub async fn proceed(&self, host: &str) -> Result<(), TunnelError> {
        let token = self
            .warnings
            .lock()
            .ok()
            .and_then(|w| w.iter().rev().find(|w| w.host == host).map(|w| w.token.clone()))
            .ok_or(TunnelError::BadRequest)?;
        self.tunnel.proceed(&token).await?;
        if let Ok(mut warnings) = self.warnings.lock() {
            warnings.retain(|w| w.host != host);
        }
        tracing::info!(%host, "internet warning clicked through");
        Ok(())
    }

    /// Where the HTTP proxy listens (for the proxy auto-config file).
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        self.listening.lock().ok()?.http.as_deref()?.parse().ok()
    }

    pub(crate) fn page_token(&self) -> &str {
        &self.page_token
    }

    /// Opens a stream through the tunnel and records the decision.
    pub async fn open(&self, via: &str, target: &Target) -> Result<TunnelStream, TunnelError> {
        self.open_with(via, target, Bytes::new()).await
    }

    /// [`open`](Self::open), sending `early` with the request (see
    /// [`Tunnel::open_with`]).
    pub async fn open_with(&self, via: &str, target: &Target, early: Bytes) -> Result<TunnelStream, TunnelError> {
        let result = self.tunnel.open_with(target, early).await;
        self.note(via, target, &result);
        result
    }

    /// [`open_with`](Self::open_with) for a plain-HTTP request (see
    /// [`Tunnel::open_http`]).
    pub async fn open_http(&self, via: &str, target: &Target, early: Bytes) -> Result<TunnelStream, TunnelError> {
        let result = self.tunnel.open_http(target, early).await;
        self.note(via, target, &result);
        result
    }

    fn note(&self, via: &str, target: &Target, result: &Result<TunnelStream, TunnelError>) {
        if let Err(TunnelError::Denied {
            rule,
            reason,
            proceed: Some(token),
        }) = result
        {
            if reason == ward_api::REASON_INTERNET_WARN {
                let host = target.host();
                tracing::warn!(
                    %host,
                    rule = rule.as_deref().unwrap_or(""),
                    "a rule warns about this site; open the agent's page (http://<HTTP proxy>/) to continue"
                );
                if let Ok(mut warnings) = self.warnings.lock() {
                    warnings.retain(|w| w.host != host);
                    warnings.push_back(Warning {
                        host,
                        rule: rule.clone(),
                        at: crate::now_rfc3339(),
                        token: token.clone(),
                    });
                    while warnings.len() > WARNINGS_KEPT {
                        warnings.pop_front();
                    }
                }
            }
        }
        let decision = Decision::new(via, target, result);
        match decision.outcome {
            Outcome::Allowed => tracing::debug!(%via, %target, "connection allowed"),
            outcome => tracing::info!(
                %via,
                %target,
                outcome = outcome.as_str(),
                rule = decision.rule.as_deref().unwrap_or(""),
                reason = decision.reason.as_deref().unwrap_or(""),
                "connection not carried"
            ),
        }
        if decision.reason.as_deref() == Some(ward_api::REASON_DEVICE_SIGNED_OUT) {
            tracing::warn!("this device is signed out (its session ended or expired): run `ward agent login`");
        }
        self.decisions.record(decision);
    }

    /// A client of the Ward server authenticated with the device token.
    fn api_client(&self) -> anyhow::Result<Client> {
        let state = self.state()?;
        let token = state.token()?;
        Ok(Client::new(ClientConfig {
            server: state.device.server.clone(),
            token: Some(token),
            ca_cert_pem: state.device.server_ca_pem.clone(),
            pin: None,
        })?)
    }

    /// When the certificate on disk is due for renewal: see [`renewal_time`].
    pub fn renewal_due(&self) -> anyhow::Result<SystemTime> {
        let state = self.state()?;
        let pem = state.cert_pem()?;
        let (not_before, not_after) = cert_validity(&pem)?;
        let written = std::fs::metadata(state.path(crate::state::CERT_FILE))
            .and_then(|m| m.modified())
            .ok();
        Ok(renewal_time(not_before, not_after, written))
    }

    /// Renews the certificate if it is due (or `force`): a new key and CSR,
    /// the new certificate checked against the key, both written, the
    /// tunnel reconnected. `Ok(false)` when nothing was done (not due, or
    /// another agent on the same state directory is renewing).
    pub async fn renew_if_due(&self, force: bool) -> anyhow::Result<bool> {
        let dir = self.state_dir();
        let Some(_lock) = RenewLock::acquire(&dir)? else {
            tracing::debug!("another agent is renewing the certificate");
            return Ok(false);
        };
        // Another agent may have renewed just now: look at the file again.
        if let Ok(mut state) = self.state.lock() {
            let _ = state.reload();
        }
        if !force && self.renewal_due()? > SystemTime::now() {
            return Ok(false);
        }
        let hostname = crate::posture::hostname();
        let (key_pem, csr_pem) =
            ward_pki::generate_key_and_csr(&hostname).map_err(|e| anyhow!("cannot make a new device key: {e}"))?;
        let response = self
            .api_client()?
            .renew_device(&RenewRequest { csr_pem })
            .await
            .context("certificate renewal failed")?;
        let state = self.state()?;
        let roots = ward_pki::load_certs(&state.path(crate::state::GATEWAY_CA_FILE))?;
        let chain = ward_pki::certs_from_pem(&response.cert_pem).context("the renewed certificate is not valid PEM")?;
        let key = crate::enroll::parse_key(&key_pem)?;
        ward_pki::client_config_mtls(&roots, chain, key, &[crate::tunnel::ALPN_H2])
            .context("the renewed certificate does not fit the new key")?;
        {
            let mut state = self.state.lock().map_err(|_| anyhow!("agent state lock poisoned"))?;
            state.install_certificate(&key_pem, &response.cert_pem, &response.cert_expires_at)?;
        }
        self.tunnel.reconnect().await;
        tracing::info!(expires = %response.cert_expires_at, "device certificate renewed");
        Ok(true)
    }

    /// Collects and reports the posture; keeps the verdict in `device.json`.
    pub async fn report_posture(&self) -> anyhow::Result<PostureVerdict> {
        let posture = crate::posture::collect();
        let verdict = self
            .api_client()?
            .report_posture(&PostureReport {
                posture: posture.clone(),
            })
            .await
            .context("posture report failed")?;
        let mut state = self.state.lock().map_err(|_| anyhow!("agent state lock poisoned"))?;
        // Keep what another agent wrote (a renewal) and change only ours.
        let _ = state.reload();
        state.device.compliant = verdict.compliant;
        state.device.compliance_failures = verdict.failures.clone();
        state.device.posture = Some(posture);
        state.device.posture_reported_at = Some(crate::now_rfc3339());
        state.save_device()?;
        if !verdict.compliant {
            tracing::warn!(failures = ?verdict.failures, "the device does not meet the tenant's posture requirements");
        }
        Ok(verdict)
    }

    /// The status as it is now.
    pub fn status(&self, running: bool) -> AgentStatus {
        let now = SystemTime::now();
        let updated_ms = crate::now_ms();
        let (renewal_error, posture_error) = self
            .errors
            .lock()
            .map(|e| (e.renewal.clone(), e.posture.clone()))
            .unwrap_or_default();
        let (socks, http, forwards) = self
            .listening
            .lock()
            .map(|l| (l.socks.clone(), l.http.clone(), l.forwards.clone()))
            .unwrap_or_default();
        AgentStatus {
            pid: std::process::id(),
            running,
            started_at: self.started_at.clone(),
            updated_at: crate::rfc3339(time::OffsetDateTime::from(now)),
            updated_ms,
            socks,
            http,
            forwards,
            tunnel: self.tunnel.status(),
            decisions: self.decisions.recent(),
            renewal_error,
            posture_error,
        }
    }

    /// Writes `status.json`.
    pub fn write_status(&self, running: bool) {
        if let Err(e) = self.status(running).write(&self.state_dir()) {
            tracing::warn!(error = %e, "cannot write status.json");
        }
    }

    fn set_error(&self, renewal: bool, error: Option<String>) {
        if let Ok(mut errors) = self.errors.lock() {
            if renewal {
                errors.renewal = error;
            } else {
                errors.posture = error;
            }
        }
    }
}

/// Least time between two renewals, whatever the certificates say.
pub const MIN_RENEWAL_GAP: Duration = Duration::from_secs(60);

/// When to renew a certificate valid from `not_before` to `not_after` that
/// was written to disk at `written`: half-way through its life, counted
/// from when it was written (Ward's CA back-dates `not_before` by a few
/// minutes for clock skew, so the midpoint of the validity alone comes too
/// early for short lifetimes, and at once for a 10-minute one), and never
/// sooner than [`MIN_RENEWAL_GAP`] after the last one.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, written: Option<SystemTime>) -> SystemTime {
    let start = match written {
        Some(w) => w.max(not_before).min(not_after),
        None => not_before,
    };
    let half = start + not_after.duration_since(start).unwrap_or_default() / 2;
    match written {
        Some(w) => half.max(w + MIN_RENEWAL_GAP),
        None => half,
    }
}

/// The validity of a PEM certificate: not before, not after.
pub fn cert_validity(pem: &str) -> anyhow::Result<(SystemTime, SystemTime)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| anyhow!("bad certificate PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| anyhow!("bad certificate: {e}"))?;
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = cert.validity();
    Ok((at(validity.not_before.timestamp()), at(validity.not_after.timestamp())))
}

/// The renewal lock: a file made with `create_new`, removed on drop.
struct RenewLock(PathBuf);

impl RenewLock {
    fn acquire(dir: &Path) -> anyhow::Result<Option<RenewLock>> {
        let path = dir.join(RENEW_LOCK);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Some(RenewLock(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default();
                    if age < RENEW_LOCK_STALE {
                        return Ok(None);
                    }
                    tracing::warn!(path = %path.display(), "removing a stale renewal lock");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(anyhow!("cannot create {}: {e}", path.display())),
            }
        }
        Ok(None)
    }
}

impl Drop for RenewLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A started agent: its addresses and tasks.
pub struct RunningAgent {
    agent: Arc<Agent>,
    socks_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    forward_addrs: Vec<SocketAddr>,
    dns_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    write_status: bool,
}

impl RunningAgent {
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub fn tunnel(&self) -> &Tunnel {
        &self.agent.tunnel
    }

    /// Where the SOCKS5 proxy listens.
    pub fn socks_addr(&self) -> Option<SocketAddr> {
        self.socks_addr
    }

    /// Where the HTTP proxy listens.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where the DNS server listens (UDP and TCP).
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// Where the forwards listen, in the order given.
    pub fn forward_addrs(&self) -> &[SocketAddr] {
        &self.forward_addrs
    }

    /// Stops listening and the background work; connections in progress
    /// run to their end. Writes a last `status.json` saying it stopped.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if self.write_status {
            self.agent.write_status(false);
        }
    }
}

/// Loads the state, binds the listeners and starts serving.
pub async fn start(opts: UpOptions) -> anyhow::Result<RunningAgent> {
    let state = AgentState::load(&opts.state_dir)?;
    let tunnel_config = opts.tunnel.clone().unwrap_or_else(|| TunnelConfig::from_state(&state));
    let agent = Arc::new(Agent::new(state, Tunnel::new(tunnel_config)));
    let mut tasks = Vec::new();

    let socks_addr = match opts.socks {
        Some(addr) => {
            let listener = bind(addr, "SOCKS5 proxy").await?;
            let local = listener.local_addr()?;
            tasks.push(tokio::spawn(serve(listener, agent.clone(), Front::Socks)));
            Some(local)
        }
        None => None,
    };
    let http_addr = match opts.http {
        Some(addr) => {
            let listener = bind(addr, "HTTP proxy").await?;
            let local = listener.local_addr()?;
            tasks.push(tokio::spawn(serve(listener, agent.clone(), Front::Http)));
            Some(local)
        }
        None => None,
    };
    let mut forward_addrs = Vec::new();
    let mut forwards = Vec::new();
    for (addr, target) in &opts.forwards {
        let listener = bind(*addr, "port forward").await?;
        let local = listener.local_addr()?;
        forwards.push(format!("{local} -> {target}"));
        tasks.push(tokio::spawn(serve(
            listener,
            agent.clone(),
            Front::Forward(Arc::new(target.clone())),
        )));
        forward_addrs.push(local);
    }
    let dns_addr = match opts.dns {
        Some(addr) => {
            let listener = crate::dns::DnsListener::bind(addr)
                .await
                .map_err(|e| anyhow!("cannot listen on {addr} for the DNS server: {e}"))?;
            let local = listener.local_addr()?;
            tracing::info!(addr = %local, "DNS server listening (UDP and TCP)");
            tasks.push(tokio::spawn(listener.serve(agent.tunnel.clone())));
            Some(local)
        }
        None => None,
    };
    if let Ok(mut l) = agent.listening.lock() {
        l.socks = socks_addr.map(|a| a.to_string());
        l.http = http_addr.map(|a| a.to_string());
        l.forwards = forwards;
    }

    if opts.maintenance {
        tasks.push(tokio::spawn(routing_loop(agent.clone())));
        tasks.push(tokio::spawn(renew_loop(agent.clone())));
        tasks.push(tokio::spawn(posture_loop(agent.clone(), opts.posture_interval)));
    }
    if opts.write_status {
        let (agent, every) = (agent.clone(), opts.status_interval);
        tasks.push(tokio::spawn(async move {
            loop {
                agent.write_status(true);
                tokio::time::sleep(every).await;
            }
        }));
    }
    // Connect now, so a problem shows at start rather than at first use.
    let warm = agent.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = warm.tunnel.connect().await {
            tracing::warn!(error = %e, "the gateway is not reachable yet; retrying when a connection needs it");
        }
    }));

    Ok(RunningAgent {
        agent,
        socks_addr,
        http_addr,
        forward_addrs,
        dns_addr,
        tasks,
        write_status: opts.write_status,
    })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (is `ward agent up` already running? choose another address)"
        } else {
            ""
        };
        anyhow!("cannot listen on {addr} for the {what}: {e}{hint}")
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the {what} listens beyond loopback and has no authentication: anyone who reaches it uses this \
             device's access"
        );
    }
    tracing::info!(addr = %listener.local_addr()?, "{what} listening");
    Ok(listener)
}

#[derive(Clone)]
enum Front {
    Socks,
    Http,
    Forward(Arc<Target>),
}

async fn serve(listener: TcpListener, agent: Arc<Agent>, front: Front) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (agent, front) = (agent.clone(), front.clone());
        tokio::spawn(async move {
            match front {
                Front::Socks => handle_socks(&agent, stream).await,
                Front::Http => handle_http(&agent, stream).await,
                Front::Forward(target) => handle_forward(&agent, stream, &target).await,
            }
            tracing::trace!(%peer, "local connection done");
        });
    }
}

/// The SOCKS5 reply for a failure to open a stream.
pub fn socks_reply(err: &TunnelError) -> Reply {
    match err {
        TunnelError::Denied { .. } => Reply::NotAllowed,
        TunnelError::DialFailed(why) if why.to_ascii_lowercase().contains("refused") => Reply::ConnectionRefused,
        TunnelError::DialFailed(_) | TunnelError::BadRequest => Reply::HostUnreachable,
        _ => Reply::GeneralFailure,
    }
}

/// The HTTP status and one-line body for a failure to open a stream.
pub fn http_answer(err: &TunnelError, target: &Target) -> (u16, String) {
    let status = match err {
        TunnelError::Denied { .. } => 403,
        TunnelError::DialFailed(_) => 502,
        TunnelError::BadRequest => 400,
        TunnelError::Unavailable(_) => 503,
        TunnelError::Credentials(_) | TunnelError::Unexpected(_) => 502,
    };
    (status, format!("ward: {target}: {err}\n"))
}

async fn handle_socks(agent: &Agent, mut client: TcpStream) {
    let target = match tokio::time::timeout(HANDSHAKE_TIMEOUT, socks5::accept(&mut client)).await {
        Ok(Ok(target)) => target,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "SOCKS5 handshake failed");
            return;
        }
        Err(_) => return,
    };
    if agent.route(&target) == Route::Direct {
        match dial_direct(&target).await {
            Ok(mut upstream) => {
                if socks5::reply(&mut client, Reply::Succeeded).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            }
            Err(e) => {
                let _ = socks5::reply(&mut client, Reply::for_io_error(&e)).await;
            }
        }
        return;
    }
    match agent.open("socks", &target).await {
        Ok(mut stream) => {
            if socks5::reply(&mut client, Reply::Succeeded).await.is_ok() {
                finish(relay(&mut client, &mut stream).await, &target);
            }
        }
        Err(e) => {
            let _ = socks5::reply(&mut client, socks_reply(&e)).await;
        }
    }
}

async fn handle_http(agent: &Agent, client: TcpStream) {
    let mut client = BufReader::new(client);
    let request = match tokio::time::timeout(HANDSHAKE_TIMEOUT, http_proxy::read_request(&mut client)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            if e.should_respond() {
                let _ = http_proxy::respond_error(&mut client, &e).await;
            }
            tracing::debug!(error = %e, "bad proxy request");
            return;
        }
        Err(_) => {
            let _ = http_proxy::respond(&mut client, 408, "Request Timeout", "ward: request head too slow\n").await;
            return;
        }
    };
    let (target, head) = match request {
        ProxyRequest::Connect { target } => (target, None),
        ProxyRequest::Forward { target, head } => (target, Some(head)),
        ProxyRequest::Local {
            method,
            path,
            content_length,
            host,
        } => {
            crate::local::serve(agent, &mut client, &method, &path, content_length, &host).await;
            return;
        }
    };
    if agent.route(&target) == Route::Direct {
        match dial_direct(&target).await {
            Ok(mut upstream) => {
                let ready = match &head {
                    None => http_proxy::connect_established(&mut client).await,
                    Some(head) => upstream.write_all(head).await,
                };
                if ready.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            }
            Err(e) => {
                let body = format!("ward: {target}: cannot connect directly: {e}\n");
                let _ = http_proxy::respond(&mut client, 502, http_proxy::reason_phrase(502), &body).await;
            }
        }
        return;
    }
    // A forwarded request's head is known already: it goes with the
    // CONNECT (the rest of a long one follows in the relay).
    let (early, rest) = match &head {
        Some(head) => {
            let n = head.len().min(EARLY_DATA_MAX);
            (Bytes::copy_from_slice(&head[..n]), &head[n..])
        }
        None => (Bytes::new(), &[][..]),
    };
    let opened = match head {
        Some(_) => agent.open_http("http", &target, early).await,
        None => agent.open_with("http", &target, early).await,
    };
    match opened {
        Ok(mut stream) => {
            let ready = match &head {
                None => http_proxy::connect_established(&mut client).await,
                Some(_) => stream.write_all(rest).await,
            };
            if ready.is_ok() {
                finish(relay(&mut client, &mut stream).await, &target);
            }
        }
        Err(e) => {
            let (status, body) = http_answer(&e, &target);
            let _ = http_proxy::respond(&mut client, status, http_proxy::reason_phrase(status), &body).await;
        }
    }
}

/// Connects straight to a bypassed destination, resolving its name here.
async fn dial_direct(target: &Target) -> std::io::Result<TcpStream> {
    let connect = async {
        match target {
            Target::Ip(addr) => TcpStream::connect(addr).await,
            Target::Domain { host, port } => TcpStream::connect((host.trim_end_matches('.'), *port)).await,
        }
    };
    let stream = tokio::time::timeout(DIRECT_DIAL_TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))??;
    let _ = stream.set_nodelay(true);
    tracing::debug!(%target, "direct connection (bypassed)");
    Ok(stream)
}

async fn handle_forward(agent: &Agent, mut client: TcpStream, target: &Target) {
    // Whatever the client has sent already (a client that speaks first
    // usually has, by the time the connection is accepted) goes with the
    // CONNECT instead of after the gateway's answer.
    let mut early = BytesMut::with_capacity(EARLY_DATA_MAX);
    if client.try_read_buf(&mut early).is_err() {
        early.clear();
    }
    match agent.open_with("forward", target, early.freeze()).await {
        Ok(mut stream) => finish(relay(&mut client, &mut stream).await, target),
        Err(e) => tracing::warn!(%target, error = %e, "port forward connection refused"),
    }
}

fn finish(result: std::io::Result<(u64, u64)>, target: &Target) {
    match result {
        Ok((up, down)) => tracing::debug!(%target, up, down, "connection closed"),
        Err(e) => tracing::debug!(%target, error = %e, "connection ended with an error"),
    }
}

/// Renews at half-life; after a failure, retries with back-off (1 minute
/// doubling to 30).
async fn renew_loop(agent: Arc<Agent>) {
    let mut failures: u32 = 0;
    loop {
        let wait = match agent.renewal_due() {
            Ok(due) => due.duration_since(SystemTime::now()).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the device certificate");
                Duration::from_secs(60)
            }
        };
        // Wake at least hourly: a suspended laptop's clock jumps.
        tokio::time::sleep(wait.min(Duration::from_secs(3600))).await;
        if wait > Duration::from_secs(3600) {
            continue;
        }
        match agent.renew_if_due(false).await {
            Ok(renewed) => {
                failures = 0;
                agent.set_error(true, None);
                if !renewed {
                    // Another agent holds the renewal lock: look again later
                    // rather than spin on a certificate that is still due.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = Duration::from_secs(60)
                    .saturating_mul(1 << failures.saturating_sub(1).min(5))
                    .min(Duration::from_secs(30 * 60));
                tracing::warn!(error = %crate::error_line(&e), retry_in_s = delay.as_secs(), "certificate renewal failed");
                agent.set_error(true, Some(crate::error_line(&e)));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Asks for the routing at start and every [`ROUTING_INTERVAL`]; on
/// failure, keeps using the last one.
async fn routing_loop(agent: Arc<Agent>) {
    loop {
        if let Err(e) = agent.refresh_routing().await {
            tracing::debug!(error = %crate::error_line(&e), "cannot refresh the routing; using the last one");
        }
        tokio::time::sleep(ROUTING_INTERVAL).await;
    }
}

async fn posture_loop(agent: Arc<Agent>, every: Duration) {
    loop {
        match agent.report_posture().await {
            Ok(_) => agent.set_error(false, None),
            Err(e) => {
                tracing::warn!(error = %crate::error_line(&e), "posture report failed");
                agent.set_error(false, Some(crate::error_line(&e)));
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_half_life_from_when_the_certificate_arrived() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let min = |m: u64| Duration::from_secs(m * 60);
        // A 24 h certificate back-dated 5 minutes, written at t0: renew at t0 + 12 h.
        let due = renewal_time(t0 - min(5), t0 + min(24 * 60), Some(t0));
        assert_eq!(due, t0 + min(12 * 60));
        // A 5-minute one: in 2.5 minutes, not at once.
        let due = renewal_time(t0 - min(5), t0 + min(5), Some(t0));
        assert_eq!(due, t0 + Duration::from_secs(150));
        // A 1-minute one: not more often than once a minute.
        let due = renewal_time(t0 - min(5), t0 + Duration::from_secs(60), Some(t0));
        assert_eq!(due, t0 + MIN_RENEWAL_GAP);
        // Expired long ago: now (the past).
        let due = renewal_time(t0 - min(60), t0 - min(30), Some(t0 - min(59)));
        assert!(due < t0);
        // Without a file time: the validity's midpoint.
        assert_eq!(renewal_time(t0, t0 + min(10), None), t0 + min(5));
    }

    #[test]
    fn failures_map_to_protocol_answers() {
        let denied = TunnelError::Denied {
            rule: Some("rul_7".into()),
            reason: "rule_matched".into(),
            proceed: None,
        };
        assert_eq!(socks_reply(&denied), Reply::NotAllowed);
        assert_eq!(
            socks_reply(&TunnelError::DialFailed("Connection refused (os error 111)".into())),
            Reply::ConnectionRefused
        );
        assert_eq!(
            socks_reply(&TunnelError::DialFailed("no route".into())),
            Reply::HostUnreachable
        );
        assert_eq!(
            socks_reply(&TunnelError::Unavailable("draining".into())),
            Reply::GeneralFailure
        );
        let target: Target = "db.internal:5432".parse().unwrap_or_else(|_| unreachable!());
        let (status, body) = http_answer(&denied, &target);
        assert_eq!(status, 403);
        assert_eq!(body, "ward: db.internal:5432: denied by rule rul_7: rule_matched\n");
        assert_eq!(http_answer(&TunnelError::DialFailed("x".into()), &target).0, 502);
        assert_eq!(http_answer(&TunnelError::Unavailable("x".into()), &target).0, 503);
        assert_eq!(http_answer(&TunnelError::BadRequest, &target).0, 400);
    }
}
