//! What a gateway is told to be, and the fixed numbers of its data path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything [`start`](crate::start) needs. The policy itself comes later,
/// from a [`SnapshotSource`](crate::SnapshotSource).
#[derive(Clone)]
pub struct GatewayConfig {
    /// This gateway's id, written into every access record.
    pub gateway_id: String,
    /// Where agents connect (`0.0.0.0:8443`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The gateway's certificate followed by the service CA, PEM.
    pub cert_chain_pem: String,
    /// The gateway's private key, PEM.
    pub key_pem: String,
    /// Durable local state: the last snapshot (`snapshot.json`), the
    /// access-record spool (`records/`) and the journal of open connections
    /// (`open/`).
    pub spool_dir: PathBuf,
    /// How long resolving and connecting to a destination may take (5 s).
    pub dial_timeout: Duration,
    /// How often live connections are re-decided even without a new snapshot,
    /// so a rule's validity window closes connections on time (1 s).
    pub recheck_interval: Duration,
    /// Worker threads serving tunnels; 0 (the default) means one per core.
    pub threads: usize,
    /// The HTTPS listener for published applications (clientless web
    /// access), if any.
    pub web: Option<crate::web::WebConfig>,
    /// The explicit proxy port for devices without the agent (internet
    /// access control; users authenticate with a proxy credential), if any.
    pub proxy_listen: Option<SocketAddr>,
    /// DNS resolvers the DNS filter forwards allowed queries to, and the
    /// internet proxy resolves names through. Empty: the system's resolver
    /// for the proxy, and the DNS filter answers SERVFAIL.
    pub dns_upstreams: Vec<SocketAddr>,
    /// Let internet traffic reach loopback, private and link-local
    /// addresses (off by default: those are reached as private
    /// applications, never through the internet proxy).
    pub internet_allow_private: bool,
    /// CA certificates (PEM) an inspected site's certificate may chain to,
    /// besides the system's trust store (`--inspection-extra-roots`).
    pub inspection_roots_pem: Option<String>,
}

impl GatewayConfig {
    /// A configuration with the default timings (dial timeout 5 s, re-check
    /// every second) and one worker thread per core.
    pub fn new(
        gateway_id: impl Into<String>,
        listen: SocketAddr,
        cert_chain_pem: impl Into<String>,
        key_pem: impl Into<String>,
        spool_dir: impl Into<PathBuf>,
    ) -> GatewayConfig {
        GatewayConfig {
            gateway_id: gateway_id.into(),
            listen,
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
            spool_dir: spool_dir.into(),
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
            threads: 0,
            web: None,
            proxy_listen: None,
            dns_upstreams: Vec::new(),
            internet_allow_private: false,
            inspection_roots_pem: None,
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    /// Never prints the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("gateway_id", &self.gateway_id)
            .field("listen", &self.listen)
            .field("spool_dir", &self.spool_dir)
            .field("dial_timeout", &self.dial_timeout)
            .field("recheck_interval", &self.recheck_interval)
            .field("threads", &self.threads)
            .field("proxy_listen", &self.proxy_listen)
            .field("dns_upstreams", &self.dns_upstreams)
            .field("internet_allow_private", &self.internet_allow_private)
            .field("inspection_roots", &self.inspection_roots_pem.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// TLS plus the HTTP/2 preface must complete within this.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-stream flow-control window (as Istio's ztunnel): enough to keep a
/// long fat pipe busy without one stream hogging the tunnel.
pub(crate) const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Connection window; must exceed the stream window so one stalled stream
/// cannot stop the others.
pub(crate) const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest DATA frame we accept from an agent.
pub(crate) const MAX_FRAME_SIZE: u32 = 256 * 1024;
/// Concurrent TCP connections one tunnel may carry.
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Headers of a CONNECT request are tiny; refuse anything large.
pub(crate) const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// A PING goes out this long after the previous answer...
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and a peer that does not answer within this is dead.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// On shutdown, streams may finish on their own for this long.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// On shutdown, the spool may ship what is left for this long; the rest
/// ships at the next start.
pub(crate) const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// While connections are open, the journal records their byte counts and
/// the time this often: after a crash, a connection's record has its bytes
/// and duration as of the last heartbeat at most this long before.
pub(crate) const JOURNAL_HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the gateway reports what it has open (tunnels, connections).
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_secs(15);

/// Bytes read from a destination at a time.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
