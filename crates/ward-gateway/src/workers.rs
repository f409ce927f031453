//! The data plane's threads: one single-threaded runtime per worker (by
//! default one per core), each serving whole tunnels and whole proxy-port
//! connections.
//!
//! A tunnel, its HTTP/2 connection and every stream it carries live on one
//! worker thread for their whole life. A new connection through an open
//! tunnel then costs no hand-off between threads: the frames that open it,
//! the dial, the answer and the relay are driven by one event loop, as in
//! haproxy or Envoy. On a work-stealing runtime the same steps wake other
//! threads several times per connection, which on a small virtual machine
//! cost more than the work itself.
//!
//! The accept loop runs on the caller's runtime and hands each accepted TCP
//! connection to the worker serving the fewest tunnels. Everything else the
//! gateway does (the spool, the journal keeper, the shipper, snapshots, the
//! re-checker) stays on the caller's runtime; the workers reach it only
//! through channels that do not wake it per connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::inbound::serve_tunnel;
use crate::internet::proxy::serve_connection as serve_proxy_connection;
use crate::Gateway;

/// A connection handed to a worker.
enum Accepted {
    /// An agent's tunnel.
    Tunnel(std::net::TcpStream, SocketAddr),
    /// A connection to the proxy port, served until it ends or `stop`.
    Proxy(std::net::TcpStream, SocketAddr, CancellationToken),
}

struct Worker {
    tx: mpsc::UnboundedSender<Accepted>,
    /// Connections (tunnels, proxy-port connections) it serves now.
    tunnels: Arc<AtomicUsize>,
    /// Answered (or dropped) when its thread is done.
    done: oneshot::Receiver<()>,
}

/// The worker threads of one gateway.
pub(crate) struct Workers {
    workers: Vec<Worker>,
}

/// Hands proxy-port connections to the workers (held by the proxy port's
/// accept loop; the workers finish once it and [`Workers`] are gone).
#[derive(Clone)]
pub(crate) struct ProxyDispatch {
    lanes: Arc<[(mpsc::UnboundedSender<Accepted>, Arc<AtomicUsize>)]>,
}

impl ProxyDispatch {
    /// Hands a proxy-port connection to the worker with the fewest connections.
    pub(crate) fn dispatch(&self, tcp: tokio::net::TcpStream, peer: SocketAddr, stop: CancellationToken) {
        let Some((tx, count)) = self.lanes.iter().min_by_key(|(_, c)| c.load(Ordering::Relaxed)) else {
            return;
        };
        match tcp.into_std() {
            Ok(std) => {
                count.fetch_add(1, Ordering::Relaxed);
                if tx.send(Accepted::Proxy(std, peer, stop)).is_err() {
                    count.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%peer, "a gateway worker is gone; dropping the proxy connection");
                }
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the proxy connection to a worker"),
        }
    }
}

/// How many workers when the configuration says 0: one per core.
pub(crate) fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Workers {
    /// Starts `count` worker threads (at least one). Cancelling `kill` makes
    /// them drop every tunnel at once: as a crash when the gateway is
    /// dropped without a shutdown, or at the end of a shutdown's grace.
    pub(crate) fn start(gateway: &Arc<Gateway>, count: usize, kill: CancellationToken) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done) = oneshot::channel();
            let tunnels = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (gateway, kill, count) = (gateway.clone(), kill.clone(), tunnels.clone());
            std::thread::Builder::new()
                .name(format!("ward-gw-{index}"))
                .spawn(move || {
                    runtime.block_on(run(gateway, rx, count, kill));
                    // Dropping the runtime drops what is left of its tasks.
                    drop(runtime);
                    let _ = done_tx.send(());
                })?;
            workers.push(Worker { tx, tunnels, done });
        }
        Ok(Workers { workers })
    }

    /// For the proxy port's accept loop.
    pub(crate) fn proxy_dispatch(&self) -> ProxyDispatch {
        ProxyDispatch {
            lanes: self.workers.iter().map(|w| (w.tx.clone(), w.tunnels.clone())).collect(),
        }
    }

    /// Hands an accepted connection to the worker with the fewest tunnels.
    pub(crate) fn dispatch(&self, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let Some(worker) = self.workers.iter().min_by_key(|w| w.tunnels.load(Ordering::Relaxed)) else {
            return;
        };
        match tcp.into_std() {
            Ok(std) => {
                worker.tunnels.fetch_add(1, Ordering::Relaxed);
                if worker.tx.send(Accepted::Tunnel(std, peer)).is_err() {
                    worker.tunnels.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%peer, "a gateway worker is gone; dropping the connection");
                }
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker"),
        }
    }

    /// No more connections: waits until every worker has served its last
    /// tunnel to its end (or has been killed).
    pub(crate) async fn finish(self) {
        let mut done = Vec::with_capacity(self.workers.len());
        for Worker { tx, done: d, .. } in self.workers {
            drop(tx);
            done.push(d);
        }
        for d in done {
            let _ = d.await;
        }
    }
}

/// One worker: serves the tunnels it is handed until the channel closes,
/// then waits for them to end.
async fn run(
    gateway: Arc<Gateway>,
    mut rx: mpsc::UnboundedReceiver<Accepted>,
    count: Arc<AtomicUsize>,
    kill: CancellationToken,
) {
    let mut tunnels = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => return,
            Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {
                count.fetch_sub(1, Ordering::Relaxed);
            }
            next = rx.recv() => match next {
                Some(Accepted::Tunnel(std, peer)) => match tokio::net::TcpStream::from_std(std) {
                    Ok(tcp) => {
                        tunnels.spawn(serve_tunnel(gateway.clone(), tcp, peer));
                    }
                    Err(e) => {
                        count.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(%peer, error = %e, "cannot take over a connection");
                    }
                },
                Some(Accepted::Proxy(std, peer, stop)) => match tokio::net::TcpStream::from_std(std) {
                    Ok(tcp) => {
                        tunnels.spawn(serve_proxy_connection(tcp, peer, gateway.clone(), stop));
                    }
                    Err(e) => {
                        count.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(%peer, error = %e, "cannot take over a proxy connection");
                    }
                },
                None => break,
            }
        }
    }
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => return,
            next = tunnels.join_next() => match next {
                Some(_) => {
                    count.fetch_sub(1, Ordering::Relaxed);
                }
                None => return,
            }
        }
    }
}
