//! The upstream connections a downstream connection keeps for itself.
//!
//! A request forwarded through the shared pooled client costs two hand-offs
//! between tasks (the pool's connection task writes the request and reads
//! the answer, the body comes back through a channel) and the pool's lock.
//! On a proxy port that is most of what a small request costs beyond its
//! system calls. So each downstream connection (a proxy-port connection, an
//! agent's HTTP stream, an inspected TLS connection) owns a few HTTP/1.1
//! upstream connections (`OWNED_PER_CONNECTION`, one per host:port), driven
//! by its own task: polled while the answer's head is awaited and while its
//! body streams through, then kept, unpolled, for the next request to the
//! same host on that connection. Once it owns that many for other hosts, a
//! request goes through the shared pool, as before.
//!
//! An idle owned connection is checked before it is reused: one that the
//! origin closed, that is not ready for a request, or that idled longer than
//! the pool's idle time is dropped and a new one dialled; a request that a
//! reused connection failed to send at all is sent once more on a new one
//! (what the pooled client does too). Owned connections close when their
//! downstream connection does.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tower::Service as _;

use super::http::{Dialed, DialedAddr, ReqBody, POOL_IDLE};
use super::{DialError, Internet};

/// Upstream connections one downstream connection keeps (each for one
/// scheme, host and port).
const OWNED_PER_CONNECTION: usize = 4;

/// Where an owned connection goes.
#[derive(Clone, PartialEq, Eq)]
struct Key {
    https: bool,
    /// As in the URI: an IPv6 address in brackets.
    host: String,
    port: u16,
}

/// One upstream connection, driven by whoever holds it.
struct Owned {
    key: Key,
    addr: SocketAddr,
    sender: http1::SendRequest<ReqBody>,
    conn: Pin<Box<http1::Connection<Dialed, ReqBody>>>,
    /// The connection future has finished (closed or failed).
    done: bool,
    idle_since: Instant,
}

impl Owned {
    /// Lets the connection make progress; `false` once it is over.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && self.conn.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        !self.done
    }

    /// Ready for a request now (not closed by the origin, not mid-answer).
    async fn ready(&mut self) -> bool {
        if self.idle_since.elapsed() > POOL_IDLE {
            return false;
        }
        poll_fn(|cx| {
            if !self.drive(cx) {
                return Poll::Ready(false);
            }
            Poll::Ready(matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(()))))
        })
        .await
    }
}

/// The upstream connections of one downstream connection.
#[derive(Clone, Default)]
pub(crate) struct Upstreams {
    idle: Arc<Mutex<Vec<Owned>>>,
}

impl Upstreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Owned>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The idle connection to `key` (taken), and whether there is room for
    /// another connection.
    fn take(&self, key: &Key) -> (Option<Owned>, bool) {
        let mut idle = self.lock();
        match idle.iter().position(|o| o.key == *key) {
            Some(i) => (Some(idle.swap_remove(i)), true),
            None => (None, idle.len() < OWNED_PER_CONNECTION),
        }
    }

    fn put(&self, mut owned: Owned) {
        let mut idle = self.lock();
        if idle.len() < OWNED_PER_CONNECTION {
            owned.idle_since = Instant::now();
            idle.push(owned);
        }
    }
}

/// Why a request did not get an answer.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    Dial(DialError),
    Http(hyper::Error),
    Pooled(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// The connector's error, if the dial failed.
    pub(crate) fn dial(&self) -> Option<&DialError> {
        match self {
            UpstreamError::Dial(e) => Some(e),
            UpstreamError::Http(_) => None,
            UpstreamError::Pooled(error) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
                while let Some(e) = source {
                    if let Some(dial) = e.downcast_ref::<DialError>() {
                        return Some(dial);
                    }
                    source = e.source();
                }
                None
            }
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Dial(e) => write!(f, "{e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
            UpstreamError::Pooled(e) => write!(f, "{e}"),
        }
    }
}

/// The origin's answer, and the owned connection its body comes over (to
/// drive while it streams, and to give back at its end).
pub(crate) struct Answer {
    pub(crate) response: Response<Incoming>,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) lease: Option<Lease>,
}

/// An owned connection while its answer's body streams.
pub(crate) struct Lease {
    owned: Owned,
    home: Upstreams,
}

impl Lease {
    /// Lets the connection read more of the body.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        self.owned.drive(cx);
    }

    /// The body has ended: the connection can serve the next request.
    pub(crate) fn release(self) {
        if !self.owned.done {
            self.home.put(self.owned);
        }
    }
}

/// Sends `request` (absolute URI) to `https`/`host`/`port`: on this
/// downstream connection's own connection to it, or through the shared
/// pool when it owns as many as it may for other hosts.
pub(crate) async fn send(
    internet: &Internet,
    upstreams: &Upstreams,
    https: bool,
    host: &str,
    port: u16,
    request: Request<ReqBody>,
) -> Result<Answer, UpstreamError> {
    let key = Key {
        https,
        host: host.to_owned(),
        port,
    };
    let (idle, room) = upstreams.take(&key);
    let reused = match idle {
        Some(mut owned) => owned.ready().await.then_some(owned),
        None if !room => {
            let response = internet.client.request(request).await.map_err(UpstreamError::Pooled)?;
            let addr = response.extensions().get::<DialedAddr>().map(|a| a.0);
            return Ok(Answer {
                response,
                addr,
                lease: None,
            });
        }
        None => None,
    };
    // Origin-form on the wire; the Host header is the caller's.
    let (mut parts, body) = request.into_parts();
    let origin_form: Uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let absolute = std::mem::replace(&mut parts.uri, origin_form);
    let mut request = Request::from_parts(parts, body);
    if let Some(mut owned) = reused {
        match exchange(&mut owned, request).await {
            Ok(response) => return Ok(answer(owned, response, upstreams)),
            Err(mut e) => match e.take_message() {
                // Not sent at all (the origin had closed it): once more, on a new one.
                Some(unsent) => request = unsent,
                None => return Err(UpstreamError::Http(e.into_error())),
            },
        }
    }
    let mut owned = dial(internet, key, absolute).await?;
    match exchange(&mut owned, request).await {
        Ok(response) => Ok(answer(owned, response, upstreams)),
        Err(e) => Err(UpstreamError::Http(e.into_error())),
    }
}

fn answer(owned: Owned, response: Response<Incoming>, upstreams: &Upstreams) -> Answer {
    Answer {
        response,
        addr: Some(owned.addr),
        lease: Some(Lease {
            owned,
            home: upstreams.clone(),
        }),
    }
}

/// Sends the request and waits for the answer's head, driving the connection.
async fn exchange(
    owned: &mut Owned,
    request: Request<ReqBody>,
) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<ReqBody>>> {
    let mut sending = std::pin::pin!(owned.sender.try_send_request(request));
    poll_fn(|cx| {
        if !owned.done && owned.conn.as_mut().poll(cx).is_ready() {
            owned.done = true;
        }
        sending.as_mut().poll(cx)
    })
    .await
}

async fn dial(internet: &Internet, key: Key, uri: Uri) -> Result<Owned, UpstreamError> {
    let dialed = internet.dialer.clone().call(uri).await.map_err(UpstreamError::Dial)?;
    let addr = dialed.addr();
    let (sender, conn) = http1::handshake(dialed).await.map_err(UpstreamError::Http)?;
    Ok(Owned {
        key,
        addr,
        sender,
        conn: Box::pin(conn),
        done: false,
        idle_since: Instant::now(),
    })
}
