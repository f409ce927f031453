//! Ward's data plane: the gateway that agents tunnel through.
//!
//! An agent keeps one TLS 1.3 connection to the gateway, authenticated both
//! ways (the device's certificate from its tenant's CA; the gateway's from
//! the service CA), speaking HTTP/2. Each TCP connection the agent carries is
//! one `CONNECT host:port` stream (the protocol is described next to
//! [`ward_api::HEADER_RULE`]). For each stream the gateway decides, dials,
//! answers, relays, and writes one [`ward_api::AccessRecord`]:
//!
//! ```text
//! accept TCP ─► TLS (tls.rs: client roots = every tenant CA)
//!   ─► device identity + issuing tenant CA (inbound.rs) ─► HTTP/2
//!   ─► per CONNECT stream: decide (state.rs → ward-policy) ─► resolve, decide
//!      again on the address ─► dial ─► journal "open" (journal.rs, written)
//!      ─► 200 ─► relay (relay.rs)
//!      └─ registered while live (registry.rs): re-decided after every snapshot
//!         and every `recheck_interval`; cut with `policy_changed` when denied
//!   ─► one record (records.rs) ─► spool (spool.rs, batched each 20 ms, fsync)
//!      ─► journal "closed" (written) ─► RecordSink
//! snapshots: SnapshotSource ─► sync.rs ─► state.rs (+ snapshot.json) ─► tls.rs
//! start: spool ─► journal recovery (connections left open by a crash become
//!        `gateway_restart` records) ─► listen
//! shutdown: drain.rs (GOAWAY, grace period, flush the spool)
//! ```
//!
//! Internet access control (internet/): a stream to a destination that is no
//! private application of a tenant with internet access control on is
//! decided with the tenant's internet rules instead (`ward_inet`): relayed,
//! refused (`internet_blocked`, `internet_warn` with a click-through token),
//! or, for `ward-protocol: http` streams, served request by request with
//! block and warning pages. The same handler serves the explicit proxy port
//! (`GatewayConfig::proxy_listen`) for devices without the agent.
//!
//! The `ward` binary embeds it: `ward server` runs it in-process with a
//! [`SnapshotSource`] and [`RecordSink`] over its own store; `ward gateway`
//! runs it alone with both over the server's API. [`start`] returns a
//! [`RunningGateway`].
//!
//! Runtime: tunnels and the proxy port's connections run on the gateway's
//! own worker threads, one single-threaded runtime each (workers.rs); a
//! tunnel and all its streams, or a proxy-port connection and its own
//! upstream connections (internet/upstream.rs), stay on one thread. One task
//! per tunnel drives its HTTP/2 connection (and its keepalive pings); one
//! task per stream decides and relays; one task per proxy-port connection.
//! The rest runs on the caller's tokio runtime: one task each accepts and
//! hands tunnels, or proxy-port connections, to the workers. The spool writer, the
//! journal keeper, the shipper, the snapshot follower and the re-checker are
//! one task each. File I/O goes through `spawn_blocking`, with one
//! exception: a connection's task appends its journal entries itself (a
//! small `write` to the page cache, never an `fsync`), which keeps thread
//! hand-offs off a new connection's path. The journal's recovery, like the
//! spool's opening, runs in `start`.
//!
//! **Architecture invariant:** one access record per connection attempt,
//! emitted once. Every stream builds one `ConnectionResult` before anything
//! else; `finish` consumes it and its `Drop` emits whatever is known if the
//! task ends any other way. Refusals (400, 403, 502, 503) are recorded at
//! once; relayed connections when they end.
//!
//! **Architecture invariant:** a connection that was answered `200` always
//! produces exactly one record, even across a SIGKILL. Before the `200` it is
//! journaled as open (written: it survives a process kill; synced within a
//! second, journal.rs); its record is made durable in the spool before it
//! is journaled closed, and shipped only after that; at
//! start, every connection still open in the journal whose id the spool
//! does not hold gets its record (same id, `end = "gateway_restart"`, bytes
//! and time as of the last heartbeat) before anything is accepted. When the
//! journal cannot be written, the connection is refused with `503`.
//!
//! **Architecture invariant:** decide and dial before answering `200`. An
//! agent that sees `200` has a connected socket behind it; a refusal names
//! the rule (`ward-rule`) and the reason (`ward-reason`). A name that policy
//! denies is not resolved.
//!
//! **Architecture invariant:** decisions only through `ward-policy`. The
//! gateway adds only what the policy cannot know (tenant suspended, device
//! unknown or revoked, user unknown or disabled) and then asks
//! `CompiledPolicy::decide`; live connections are re-checked with the same
//! function.
//!
//! **Architecture invariant:** TLS only through `ward-pki`. The server
//! configuration comes from `ward_pki::server_config_mtls`; the device's
//! identity from `ward_pki::Identity::from_cert_der` and its tenant from
//! `ward_pki::verify_issued_by`.
//!
//! **Architecture invariant:** nothing is dropped from the spool before the
//! sink acknowledged it. The cursor moves only after `RecordSink::ship`
//! returned `Ok`; a segment is deleted only once the cursor is past it. The
//! price is at-least-once delivery, which the server turns into exactly-once
//! by storing each record id once.

mod config;
mod dns;
mod drain;
mod inbound;
mod internet;
mod journal;
mod lists;
mod records;
mod registry;
mod relay;
pub mod remote;
mod spool;
mod state;
mod status;
mod sync;
mod tls;
mod web;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use config::GatewayConfig;
pub use spool::RecordSink;
pub use sync::SnapshotSource;
pub use web::{BoxFuture, WebBackend, WebConfig, WebSession};

/// What every task of one gateway shares.
pub(crate) struct Gateway {
    pub(crate) gateway_id: String,
    pub(crate) dial_timeout: std::time::Duration,
    pub(crate) state: state::SharedState,
    pub(crate) tls: tls::TlsSetup,
    pub(crate) registry: registry::Registry,
    pub(crate) records: records::RecordEmitter,
    pub(crate) journal: journal::Journal,
    pub(crate) drain: drain::Drain,
    /// The published hosts of the current snapshot (web listener).
    pub(crate) web_hosts: web::HostTable,
    /// Tunnels open per tenant, for the status reports.
    pub(crate) tunnels: status::TunnelCounts,
    /// Tenants' compiled internet policies, reused across snapshots.
    pub(crate) internet_cache: state::InternetCache,
    /// The DNS filter: upstream resolvers, queries in flight per tunnel.
    pub(crate) dns: dns::DnsFilter,
    /// The filtering proxy's state: click-throughs, token key, upstream pool.
    pub(crate) internet: internet::Internet,
}

/// A gateway serving in the background.
///
/// Stop it with [`shutdown`](Self::shutdown). Dropping it instead stops every
/// task at once, as a crash would: records already in the spool ship at the
/// next start, connections still relayed are recorded from the journal at
/// the next start (`end = "gateway_restart"`), and the last snapshot is
/// enforced again.
pub struct RunningGateway {
    local_addr: SocketAddr,
    gateway: Arc<Gateway>,
    tasks: drain::Tasks,
    web: Option<web::RunningWeb>,
    proxy: Option<internet::proxy::RunningProxy>,
}

/// Starts a gateway: loads the last saved snapshot (if any), opens the
/// record spool, records the connections a crash left open in the journal,
/// binds `config.listen`, and starts following `source` and shipping to
/// `sink`. Until a snapshot is known, agents are refused.
///
/// Fails if the certificate or key is unusable, the spool directory cannot
/// be used, or the address cannot be bound.
pub async fn start(
    config: GatewayConfig,
    source: impl SnapshotSource,
    sink: impl RecordSink,
) -> anyhow::Result<RunningGateway> {
    anyhow::ensure!(!config.gateway_id.is_empty(), "the gateway id must not be empty");
    let tls = tls::TlsSetup::from_pem(&config.cert_chain_pem, &config.key_pem)?;
    std::fs::create_dir_all(&config.spool_dir)
        .with_context(|| format!("cannot create the spool directory {}", config.spool_dir.display()))?;
    let (spool, mut position) = spool::Spool::open(&config.spool_dir)
        .with_context(|| format!("cannot open the record spool in {}", config.spool_dir.display()))?;
    let (journal, recovered) = journal::recover(&config.spool_dir, &spool, &mut position).with_context(|| {
        format!(
            "cannot recover the journal of open connections in {}",
            config.spool_dir.display()
        )
    })?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "recorded the connections left open when the gateway last stopped (end gateway_restart)"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;

    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let gateway = Arc::new(Gateway {
        gateway_id: config.gateway_id.clone(),
        dial_timeout: config.dial_timeout,
        state: state::SharedState::default(),
        tls,
        registry: registry::Registry::default(),
        records: records::RecordEmitter::new(records_tx),
        journal: journal.clone(),
        drain: drain::Drain::default(),
        web_hosts: web::HostTable::default(),
        tunnels: status::TunnelCounts::default(),
        internet_cache: state::InternetCache::new(config.spool_dir.join("lists")),
        dns: dns::DnsFilter::new(config.dns_upstreams.clone()),
        internet: internet::Internet::new(
            config.internet_allow_private,
            config.dial_timeout,
            &config.dns_upstreams,
            config.inspection_roots_pem.as_deref(),
        ),
    });
    if let Some(saved) = state::load(&config.spool_dir) {
        match gateway.internet_cache.lists.missing(&saved) {
            Ok(missing) if missing.is_empty() => {
                tracing::info!(
                    version = saved.version,
                    "enforcing the saved policy snapshot until the server answers"
                );
                sync::apply(&gateway, &saved);
            }
            // Never half a policy: without its lists the saved snapshot is
            // not enforced, and everything waits for the server's.
            _ => tracing::warn!(
                version = saved.version,
                "the saved policy snapshot's domain lists are not all here; waiting for the server's"
            ),
        }
    }

    let spool = Arc::new(spool);
    let (durable_tx, durable_rx) = watch::channel(position.next_seq);
    let sink = Arc::new(sink);
    let mut tasks = drain::Tasks::default();
    tasks.journal = Some(tokio::spawn(journal::run_keeper(
        journal.clone(),
        config::JOURNAL_HEARTBEAT,
    )));
    tasks.spool_writer = Some(tokio::spawn(spool::run_writer(
        spool.clone(),
        records_rx,
        position.next_seq,
        durable_tx,
        journal,
    )));
    tasks.status = Some(tokio::spawn(status::run_reporter(
        gateway.clone(),
        sink.clone(),
        config::STATUS_INTERVAL,
    )));
    tasks.shipper = Some(tokio::spawn(spool::run_shipper(
        spool,
        sink,
        durable_rx,
        position.cursor,
        tasks.shipper_finish.clone(),
    )));
    tasks.sync = Some(tokio::spawn(sync::run(
        source,
        gateway.clone(),
        config.spool_dir.clone(),
    )));
    tasks.recheck = Some(tokio::spawn(registry::recheck_loop(
        gateway.clone(),
        config.recheck_interval,
    )));
    let threads = if config.threads == 0 {
        workers::default_count()
    } else {
        config.threads
    };
    let workers = workers::Workers::start(&gateway, threads, tasks.kill_workers.clone())
        .context("cannot start the gateway's worker threads")?;
    let proxy_workers = workers.proxy_dispatch();
    tasks.accept = Some(tokio::spawn(inbound::serve(listener, gateway.clone(), workers)));
    let web = match config.web.clone() {
        Some(web) => Some(web::start(web, gateway.clone()).await?),
        None => None,
    };
    let proxy = match config.proxy_listen {
        Some(listen) => Some(internet::proxy::start(listen, gateway.clone(), proxy_workers).await?),
        None => None,
    };
    tracing::info!(
        gateway = %config.gateway_id,
        listen = %local_addr,
        threads,
        unshipped = position.next_seq.saturating_sub(position.cursor),
        "gateway listening"
    );
    Ok(RunningGateway {
        local_addr,
        gateway,
        tasks,
        web,
        proxy,
    })
}

impl RunningGateway {
    /// The address agents connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the web listener for published applications, if any.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().map(|w| w.local_addr)
    }

    /// The address of the internet proxy port, if any.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(|p| p.local_addr)
    }

    /// The version of the snapshot being enforced; `None` before the first.
    pub fn snapshot_version(&self) -> Option<i64> {
        self.gateway.state.version()
    }

    /// TCP connections being relayed right now.
    pub fn live_connections(&self) -> usize {
        self.gateway.registry.len()
    }

    /// Graceful stop: no new tunnels; GOAWAY on every tunnel; streams in
    /// flight may finish for a few seconds, then the rest are cut (their
    /// records end with `gateway_shutdown`); every record is made durable
    /// and the spool ships what it can for a few seconds more.
    pub async fn shutdown(mut self) {
        self.web.take();
        self.proxy.take();
        drain::shutdown(&self.gateway, &mut self.tasks).await;
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        // As a killed process: what the journal knows is left to it.
        self.gateway.records.crash();
        self.tasks.abort_all();
    }
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("local_addr", &self.local_addr)
            .field("snapshot_version", &self.snapshot_version())
            .field("live_connections", &self.live_connections())
            .finish()
    }
}
