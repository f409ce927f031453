//! The web listener: TLS 1.3 with ALPN `h2` and `http/1.1`, one task per
//! connection, HTTP/1.1 and HTTP/2 through hyper, and the task that keeps
//! the certificate in step with the published hosts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use ward_pki::SwappableCert;

use super::assertion::Signer;
use super::proxy::{self, Shared};
use super::session::Sessions;
use super::WebConfig;
use crate::Gateway;

/// TLS handshake, and the request head, must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many request headers (HTTP/1.1) and this many bytes of
/// them (both versions).
const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Concurrent HTTP/2 streams per connection.
const MAX_STREAMS: u32 = 250;
/// Before the first certificate, and after a failure, try again this often.
const CERT_RETRY: Duration = Duration::from_secs(5);

/// The web listener running in the background; stops when dropped.
pub(crate) struct RunningWeb {
    pub(crate) local_addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for RunningWeb {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn start(config: WebConfig, gateway: Arc<Gateway>) -> anyhow::Result<RunningWeb> {
    let cert = SwappableCert::new();
    let tls = ward_pki::server_config_swappable(cert.clone(), &[b"h2", b"http/1.1"])?;
    if let Some((chain, key)) = &config.cert {
        cert.set_pem(chain, key)
            .context("the web listener's certificate and key do not form a usable TLS identity")?;
    }
    let signer = Signer::load_or_create(&config.key_dir, &gateway.gateway_id)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (web)", config.listen))?;
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let shared = Arc::new(Shared {
        gateway: gateway.clone(),
        signer,
        sessions: Sessions::default(),
        portal_url: config.portal_url.trim_end_matches('/').to_owned(),
        backend: config.backend.clone(),
    });
    if config.cert.is_none() {
        tokio::spawn(follow_hosts(config, gateway, cert, stop.clone()));
    }
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), shared, stop.clone()));
    tracing::info!(listen = %local_addr, "web listener for published applications");
    Ok(RunningWeb { local_addr, stop })
}

/// Asks the backend for a certificate naming the published hosts whenever
/// that set changes.
async fn follow_hosts(config: WebConfig, gateway: Arc<Gateway>, cert: Arc<SwappableCert>, stop: CancellationToken) {
    let mut names = gateway.web_hosts.watch_names();
    loop {
        let hosts = names.borrow_and_update().clone();
        let done = match config.backend.certificate(&hosts).await {
            Some(Ok((chain, key))) => match cert.set_pem(&chain, &key) {
                Ok(()) => {
                    tracing::info!(
                        hosts = hosts.len(),
                        "web listener certificate issued for the published hosts"
                    );
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "the web certificate does not load");
                    false
                }
            },
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot get a certificate for the published hosts");
                false
            }
            None => {
                tracing::error!("no certificate for the web listener: give one (--web-cert, --web-key)");
                return;
            }
        };
        let wait = async {
            if done {
                names.changed().await.map_err(drop)
            } else {
                tokio::time::sleep(CERT_RETRY).await;
                Ok(())
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = wait => if changed.is_err() { return },
        }
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>, stop: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shared.gateway.drain.draining().cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(tcp, peer, acceptor.clone(), shared.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "web accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    connections.abort_all();
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "web TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |req| proxy::handle(shared.clone(), peer, req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES)
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::select! {
        result = conn => if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "web connection ended with an error");
        },
        _ = stop.cancelled() => {}
    }
}
