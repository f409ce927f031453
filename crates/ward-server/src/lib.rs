//! Ward's control plane: `ward server`.
//!
//! The REST API (`/api/v1`, with its OpenAPI document), sign-in and
//! credentials, the admin audit trail, health, readiness and metrics, served
//! over HTTP on loopback or HTTPS elsewhere.
//!
//! **Architecture invariants:**
//! - Every protected handler takes a [`ctx::Ctx`] (there is none without an
//!   authenticated principal) and calls [`ctx::Ctx::authorize`] — the one
//!   authorisation check — before it reads or writes anything of the tenant.
//!   (`whoami`, which only echoes the caller's own principal, is the one
//!   handler with nothing to authorise.)
//! - The audit trail is written in one place, [`audit::authenticate_and_record`];
//!   handlers only describe their action.
//! - Handlers reach the store only with the caller's tenant id; nothing here
//!   builds SQL.

pub mod api;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod console;
pub mod ctx;
pub mod directory;
pub mod error;
pub mod extract;
pub mod gateway_link;
pub mod metrics;
mod pages;
pub mod policy;
pub mod portal;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod tenant_ca;
pub mod web_access;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use ward_core::ErrorCode;
use ward_store::Store;

pub use bootstrap::Bootstrapped;
pub use config::{LogFormat, LoginLimits, Secret, ServerArgs, ServerConfig, TlsMode};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The largest request body the API accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// Build the whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api::router();
    Router::new()
        .merge(api)
        .route("/api/v1/openapi.json", get(api::openapi_json(doc)))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route("/metrics", get(pages::metrics))
        .merge(console::router(state.clone()))
        .merge(portal::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the audit layer, so a request that panics is still recorded (as an error).
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .layer(from_fn_with_state(state.clone(), audit::authenticate_and_record))
        .layer(from_fn_with_state(state.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such endpoint; the API is described at /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not support that method",
    )
}

async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    state.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A started server.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The URL of the console and API.
    pub url: String,
    /// Set when the listener uses a certificate from Ward's own CA.
    pub ca: Option<OwnCa>,
    /// Set on the first start: the bootstrap accounts' passwords.
    pub bootstrapped: Option<Bootstrapped>,
    pub store: Store,
    /// For the gateway embedded in the same process.
    pub gateway_link: gateway_link::GatewayLink,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    jobs: JoinHandle<()>,
}

/// Ward's own CA, when it signed the listener's certificate.
#[derive(Debug, Clone)]
pub struct OwnCa {
    pub fingerprint: String,
    pub cert_path: PathBuf,
}

impl Running {
    /// Stop accepting, let open requests finish, close the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        self.jobs.abort();
        self.store.close().await;
    }
}

/// Open the store (migrating it), bootstrap an empty one, bind, and serve.
pub async fn start(mut config: ServerConfig) -> anyhow::Result<Running> {
    // The data directory holds the SQLite database, the master key and Ward's own CA.
    create_private_dir(&config.data_dir)?;
    let master_key = load_master_key(&config)?;
    let store = Store::connect(&config.database).await?;
    store.migrate().await.context("applying database migrations")?;
    let region = config.regions.first().cloned().unwrap_or_else(|| "local".into());
    let bootstrapped = bootstrap::bootstrap(&store, &region, config.bootstrap_password.as_ref()).await?;
    let system = store
        .tenant_by_name(ward_core::SYSTEM_TENANT)
        .await?
        .context("the store has tenants but no system tenant; it was not created by Ward")?;

    let (tls, ca, server_pin) = tls_config(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    config.listen = addr;
    let url = config.url();

    let metrics = Arc::new(Metrics::new());
    metrics.store_ready.set(1);
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
        metrics: metrics.clone(),
        system_tenant_id: system.id.into(),
        master_key: Arc::new(master_key),
        server_pin: server_pin.map(Into::into),
        gateway_reports: Default::default(),
    };
    let (tx, rx) = oneshot::channel();
    let gateway_link = gateway_link::GatewayLink::new(state.clone());
    let sync_state = state.clone();
    let task = tokio::spawn(serve::serve(listener, tls, app(state), async {
        let _ = rx.await;
    }));
    let jobs = tokio::spawn({
        let store = store.clone();
        async move {
            tokio::join!(background_jobs(store, metrics), directory::sync_loop(sync_state));
        }
    });
    tracing::info!(%addr, %url, backend = store.backend().as_str(), "ward server listening");
    Ok(Running {
        addr,
        url,
        ca,
        bootstrapped,
        store,
        gateway_link,
        shutdown: Some(tx),
        task,
        jobs,
    })
}

/// Housekeeping: expired sessions, and the readiness gauge.
async fn background_jobs(store: Store, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        metrics.store_ready.set(i64::from(store.ready().await.is_ok()));
        let now = state::now_ms();
        match store.delete_expired_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "removed expired sessions"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
        }
        match store.delete_expired_user_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "removed expired portal sessions"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired portal sessions"),
        }
        if let Err(e) = store.delete_old_enroll_requests(now).await {
            tracing::warn!(error = %e, "cannot remove old enrolment requests");
        }
        if let Err(e) = store.delete_expired_oidc_logins(now).await {
            tracing::warn!(error = %e, "cannot remove unfinished OIDC sign-ins");
        }
        if let Err(e) = store.delete_expired_web_codes(now).await {
            tracing::warn!(error = %e, "cannot remove expired web sign-in codes");
        }
    }
}

/// The master key: `WARD_MASTER_KEY` (base64) when set, else the key file,
/// created on first start.
fn load_master_key(config: &ServerConfig) -> anyhow::Result<ward_pki::MasterKey> {
    if let Ok(text) = std::env::var("WARD_MASTER_KEY") {
        return ward_pki::MasterKey::from_base64(&text).context("WARD_MASTER_KEY");
    }
    let (key, created) = ward_pki::load_or_create_master_key(&config.master_key_file)?;
    if created {
        tracing::info!(path = %config.master_key_file.display(), "created the master key; back it up with the database");
    }
    Ok(key)
}

type TlsSetup = (Option<Arc<rustls::ServerConfig>>, Option<OwnCa>, Option<String>);

/// The listener's TLS configuration, Ward's own CA when it signed the
/// certificate, and the pin enrolment codes carry: the fingerprint of the
/// last certificate of the chain the server presents (its CA).
fn tls_config(config: &ServerConfig) -> anyhow::Result<TlsSetup> {
    const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
    match &config.tls {
        TlsMode::Off => Ok((None, None, None)),
        TlsMode::Files { cert, key } => {
            let chain = ward_pki::load_certs(cert)?;
            // A pin names the CA the chain ends in. A file with only the server's
            // own certificate has no CA to pin: its codes carry none, and agents
            // trust the server through their platform's CAs instead.
            let pin = if chain.len() > 1 {
                chain.last().map(|c| ward_pki::fingerprint_der(c))
            } else {
                None
            };
            let key = ward_pki::load_private_key(key)?;
            Ok((Some(ward_pki::server_config(chain, key, ALPN)?), None, pin))
        }
        TlsMode::OwnCa => {
            let dir = config.data_dir.join("pki");
            let (ca, created) = ward_pki::load_or_create_ca(&dir, "Ward server CA")?;
            if created {
                tracing::info!(fingerprint = %ca.fingerprint(), "created Ward's own CA");
            }
            let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])];
            if !config.listen.ip().is_unspecified() {
                ips.push(config.listen.ip());
            }
            let mut names = vec!["localhost".to_owned()];
            if let Some(host) = config.public_url.as_deref().and_then(url_host) {
                match host.parse::<IpAddr>() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => names.push(host),
                }
            }
            let leaf = ca.issue_server(&names, &ips, Duration::from_secs(365 * 24 * 3600))?;
            let tls = ward_pki::server_config(leaf.chain_der()?, leaf.private_key_der()?, ALPN)?;
            let own = OwnCa {
                fingerprint: ca.fingerprint(),
                cert_path: dir.join(ward_pki::CA_CERT_FILE),
            };
            let pin = own.fingerprint.clone();
            Ok((Some(tls), Some(own), Some(pin)))
        }
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Create the data directory, readable by Ward's user only. An existing
/// directory is left as it is: it may be one the operator shares on purpose.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Tell the person who started the server where it is and how to sign in
/// (on the first start, with the bootstrap passwords).
pub fn print_banner(r: &Running, gateway: Option<SocketAddr>) {
    let ctl_ca =
        r.ca.as_ref()
            .map(|c| format!(" --ca-cert {}", c.cert_path.display()))
            .unwrap_or_default();
    println!();
    println!("Ward is running.");
    println!("  Admin console:    {}/", r.url);
    println!(
        "  API:              {}/api/v1 (described at /api/v1/openapi.json)",
        r.url
    );
    if let Some(ca) = &r.ca {
        println!("  HTTPS certificate from Ward's own CA, {}", ca.cert_path.display());
        println!("  CA fingerprint:   {}", ca.fingerprint);
    }
    if let Some(addr) = gateway {
        println!(
            "  Gateway:          {addr} (agents dial {})",
            r.gateway_link.config().gateway_advertise()
        );
    }
    if let Some(addr) = r.gateway_link.config().proxy_listen {
        println!("  Internet proxy:   {addr} (HTTP proxy; users sign in with a proxy credential)");
    }
    match &r.bootstrapped {
        Some(b) => {
            println!();
            println!("First start: created the operator and the first tenant.");
            if b.from_env {
                println!("  Both passwords are the one in WARD_BOOTSTRAP_PASSWORD.");
            } else {
                println!("  These passwords are shown only now; change them with `ward ctl account passwd`.");
            }
            println!(
                "  Tenant owner:  tenant default, user admin, password {}",
                shown(b, &b.admin_password)
            );
            println!(
                "  Operator:      tenant system,  user operator, password {}",
                shown(b, &b.operator_password)
            );
            println!();
            println!("Sign in with the command-line client:");
            println!(
                "  ward ctl --server {}{ctl_ca} login --tenant default --user admin --password-stdin",
                r.url
            );
        }
        None => {
            println!();
            println!(
                "Sign in: ward ctl --server {}{ctl_ca} login --tenant TENANT --user USER --password-stdin",
                r.url
            );
        }
    }
    println!();
}

fn shown<'a>(b: &Bootstrapped, p: &'a str) -> &'a str {
    if b.from_env {
        "(from WARD_BOOTSTRAP_PASSWORD)"
    } else {
        p
    }
}
