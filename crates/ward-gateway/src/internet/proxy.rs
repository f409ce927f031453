//! The explicit proxy port for devices without the agent: a plain-TCP
//! HTTP/1.1 forward proxy. Users authenticate with `Proxy-Authorization:
//! Basic` (their name and a proxy credential, `wpx_<id>.<secret>`);
//! `CONNECT` is decided on its authority and relayed, absolute-form
//! requests go through the same handler as the agent's plain-HTTP streams.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use ward_inet::Host;

use super::http::{handle, server_builder, Front, Principal, ProxyBody};
use super::upstream::Upstreams;
use super::{dial, judge, DialError, Outcome, Who};
use crate::inbound::Target;
use crate::records::{now_ms, ConnectionResult, End};
use crate::registry::LiveConn;
use crate::relay::Transferred;
use crate::state::PolicyState;
use crate::workers::ProxyDispatch;
use crate::Gateway;

/// The proxy port running in the background; stops when dropped.
pub(crate) struct RunningProxy {
    pub(crate) local_addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Connections are served on the gateway's worker threads (workers.rs), like
/// tunnels: a connection, its requests and its own upstream connections stay
/// on one thread.
pub(crate) async fn start(
    listen: SocketAddr,
    gateway: Arc<Gateway>,
    workers: ProxyDispatch,
) -> anyhow::Result<RunningProxy> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (proxy port)"))?;
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(accept_loop(listener, gateway, workers, stop.clone()));
    tracing::info!(listen = %local_addr, "internet proxy port");
    Ok(RunningProxy { local_addr, stop })
}

/// Accepts until the proxy stops or the gateway drains; the connections end
/// then too (`serve_connection`).
async fn accept_loop(listener: TcpListener, gateway: Arc<Gateway>, workers: ProxyDispatch, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = gateway.drain.draining().cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => workers.dispatch(tcp, peer, stop.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// One proxy-port connection, on a worker thread: served until the client
/// closes it, the proxy stops or the gateway starts to drain.
pub(crate) async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let draining = gateway.drain.draining().clone();
    let connection = Arc::new(PerConnection::default());
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let gateway = gateway.clone();
            let connection = connection.clone();
            async move { Ok::<_, Infallible>(serve_request(&gateway, &connection, peer, request).await) }
        })
    };
    let conn = server_builder()
        .serve_connection(TokioIo::new(super::framing::Guarded::new(tcp)), service)
        .with_upgrades();
    tokio::select! {
        served = conn => if let Err(e) = served {
            tracing::debug!(%peer, error = %e, "proxy connection ended");
        },
        _ = stop.cancelled() => {}
        _ = draining.cancelled() => {}
    }
    // A CONNECT answered 200: its relay (or inspected TLS) goes on in this
    // task, so the worker waits for it as for a tunnel.
    let relay = connection.after.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(relay) = relay {
        relay.await;
    }
}

/// What one proxy-port connection keeps between its requests.
#[derive(Default)]
struct PerConnection {
    /// Its own upstream connections.
    upstreams: Upstreams,
    after: After,
    auth: AuthCache,
}

/// The last credential the connection presented that was valid, and the
/// snapshot it was checked against: the same `Proxy-Authorization` under the
/// same snapshot gets the same answer without decoding and hashing it again.
/// A new snapshot (a revoked credential, a renamed user) checks it afresh.
#[derive(Default)]
struct AuthCache(std::sync::Mutex<Option<CachedAuth>>);

struct CachedAuth {
    header: HeaderValue,
    /// Weak: an idle connection does not keep an old snapshot alive.
    policy: Weak<PolicyState>,
    tenant_id: Arc<str>,
    user_id: Arc<str>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CachedAuth>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant and user of a valid `Proxy-Authorization` under `policy`.
    fn check(&self, policy: &Arc<PolicyState>, headers: &HeaderMap) -> Option<(Arc<str>, Arc<str>)> {
        let header = headers.get(header::PROXY_AUTHORIZATION)?;
        if let Some(cached) = self.lock().as_ref() {
            if cached.header == header && std::ptr::eq(cached.policy.as_ptr(), Arc::as_ptr(policy)) {
                return Some((cached.tenant_id.clone(), cached.user_id.clone()));
            }
        }
        let (tenant_id, user_id) = authenticate(policy, headers)?;
        let (tenant_id, user_id): (Arc<str>, Arc<str>) = (tenant_id.into(), user_id.into());
        *self.lock() = Some(CachedAuth {
            header: header.clone(),
            policy: Arc::downgrade(policy),
            tenant_id: tenant_id.clone(),
            user_id: user_id.clone(),
        });
        Some((tenant_id, user_id))
    }
}

/// What a connection does once its HTTP is over (after a `CONNECT`'s 200).
#[derive(Clone, Default)]
struct After(Arc<std::sync::Mutex<Option<Relay>>>);

type Relay = Pin<Box<dyn Future<Output = ()> + Send>>;

impl After {
    fn set(&self, relay: impl Future<Output = ()> + Send + 'static) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(relay));
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Page(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn serve_request(
    gateway: &Arc<Gateway>,
    connection: &PerConnection,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let Some(policy) = gateway.state.current() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway has no policy yet\n".into(),
        );
    };
    let Some((tenant_id, user_id)) = connection.auth.check(&policy, request.headers()) else {
        let mut response = text(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "proxy authentication required: your name and a proxy credential\n".into(),
        );
        response.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ward\""),
        );
        return response;
    };
    drop(policy);
    let who = Principal {
        tenant_id,
        device_id: Arc::from(""),
        user_id: Some(user_id),
        source: peer.ip(),
    };
    if request.method() == Method::CONNECT {
        return connect(gateway, who, &connection.after, request).await;
    }
    if request.uri().authority().is_none() {
        return text(
            StatusCode::BAD_REQUEST,
            "a proxy request needs an absolute URL (http://host/path)\n".into(),
        );
    }
    handle(
        gateway,
        &who,
        &Front::Plain { default_port: 80 },
        &connection.upstreams,
        request,
    )
    .await
}

/// The tenant and user of a valid `Proxy-Authorization`.
fn authenticate(policy: &PolicyState, headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 1024 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    let (id, _secret) = password.split_once('.')?;
    let (tenant_id, tenant, user_id, expected) = policy.proxy_credential(id)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, password.as_bytes());
    #[allow(deprecated)]
    aws_lc_rs::constant_time::verify_slices_are_equal(digest.as_ref(), expected).ok()?;
    if tenant.user_name(user_id)? != username {
        return None;
    }
    Some((tenant_id.to_owned(), user_id.to_owned()))
}

/// `CONNECT host:port`: decide, dial, `200`, then relay the upgraded
/// connection in its own task (registered: re-decided on new snapshots).
async fn connect(
    gateway: &Arc<Gateway>,
    who: Principal,
    after: &After,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let mut result = ConnectionResult::new(
        gateway.records.clone(),
        &gateway.gateway_id,
        &who.tenant_id,
        "",
        who.source,
    );
    result.record_mut().kind = "web".to_owned();
    if let Some(user) = &who.user_id {
        result.set_user(user);
    }
    let target = request.uri().authority().and_then(|a| Target::parse(a.as_str()));
    let host = target.as_ref().and_then(|t| Host::parse(&t.host).ok());
    let (Some(target), Some(host)) = (target, host) else {
        let asked = request.uri().authority().map(|a| a.as_str()).unwrap_or_default();
        result.set_destination(&asked.chars().take(255).collect::<String>(), 0);
        result.set_reason("bad_request");
        result.finish(End::Denied);
        return text(
            StatusCode::BAD_REQUEST,
            "bad CONNECT authority: host:port expected\n".into(),
        );
    };
    result.set_destination(&host.to_string(), target.port);
    let Some(policy) = gateway.state.current() else {
        result.finish(End::GatewayShutdown);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway has no policy yet\n".into(),
        );
    };
    let Some(tenant) = policy.tenant(&who.tenant_id) else {
        result.finish(End::Denied);
        return text(StatusCode::FORBIDDEN, "unknown organisation\n".into());
    };
    let judgement = judge(
        &gateway.internet,
        &who.tenant_id,
        tenant,
        who_of(&who),
        &host,
        target.port,
        now_ms(),
    );
    super::tunnel::set_judgement(&mut result, &judgement);
    if let Some(inspection) = super::inspect::applies(tenant, &judgement, &host) {
        // Inspected: the block page or the warning (with its Continue)
        // shows in the browser, and allowed requests are recorded by URL.
        drop(policy);
        let Some((config, result)) = super::inspect::mint(&inspection, &host, result) else {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("{host}: the gateway cannot inspect this site\n"),
            );
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        let gateway = gateway.clone();
        after.set(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    super::inspect::serve_tls(gateway, who, io, config, result, host, target.port).await;
                }
                Err(_) => result.finish(End::Closed),
            }
        });
        return Response::new(ProxyBody::Page(Full::new(Bytes::new())));
    }
    if !judgement.lets_through() {
        result.finish(End::Denied);
        let rule = judgement.rule_id.as_deref().unwrap_or("default");
        let why = match &judgement.outcome {
            Outcome::Warn { .. } => format!(
                "{host}: your organisation warns about this site (rule {rule}); open it over plain HTTP to continue\n"
            ),
            Outcome::Refused(reason) => format!("{host}: refused ({reason})\n"),
            _ => format!("{host}: blocked by your organisation (rule {rule})\n"),
        };
        return text(StatusCode::FORBIDDEN, why);
    }
    drop(policy);
    let on_upgrade = hyper::upgrade::on(&mut request);
    // Dial before answering: a 200 means connected.
    let (tcp, addr) = match dial(
        &gateway.internet.resolver,
        &host,
        target.port,
        gateway.internet.allow_private,
        gateway.dial_timeout,
    )
    .await
    {
        Ok(dialled) => dialled,
        Err(DialError::Private(ip)) => {
            result.record_mut().action = "block".to_owned();
            result.record_mut().dest_addr = Some(ip.to_string());
            result.set_reason(super::tunnel::REASON_PRIVATE_ADDRESS);
            result.finish(End::Denied);
            return text(StatusCode::FORBIDDEN, format!("{host}: a private address ({ip})\n"));
        }
        Err(DialError::Failed(e) | DialError::Tls(e)) => {
            result.finish(End::DialFailed);
            return text(StatusCode::BAD_GATEWAY, format!("{e}\n"));
        }
    };
    result.set_dest_addr(addr);
    let bytes = Arc::new(Transferred::default());
    result.set_journaled();
    if !gateway.journal.open(result.record(), bytes.clone()) {
        result.finish(End::Error);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway cannot journal the connection\n".into(),
        );
    }
    let gateway = gateway.clone();
    after.set(async move {
        let registered = gateway.registry.register(
            LiveConn::new(
                who.tenant_id.clone(),
                who.device_id.clone(),
                who.source,
                host.to_string(),
                Some(addr.ip()),
                target.port,
                i64::MAX,
            )
            .internet(who.user_id.clone()),
        );
        let end = match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = Counted {
                    inner: TokioIo::new(upgraded),
                    bytes: bytes.clone(),
                };
                let mut tcp = tcp;
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut tcp) => match copied {
                        Ok(_) => End::Closed,
                        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => End::Closed,
                        Err(_) => End::Error,
                    },
                    _ = registered.conn.cancelled_token().cancelled() => {
                        registered.conn.cancelled_because().unwrap_or(End::GatewayShutdown)
                    }
                }
            }
            Err(_) => End::Error,
        };
        let (up, down) = bytes.get();
        result.set_bytes(up, down);
        drop(registered);
        result.finish(end);
    });
    Response::new(ProxyBody::Page(Full::new(Bytes::new())))
}

fn who_of(who: &Principal) -> Who<'_> {
    match &who.user_id {
        Some(user) => Who::User(user),
        None => Who::Device(&who.device_id),
    }
}

/// A stream that counts what passes: reads are from the proxy's client (up),
/// writes are to it (down).
pub(crate) struct Counted<T> {
    pub(crate) inner: T,
    pub(crate) bytes: Arc<Transferred>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.bytes.add_up(n as u64);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.bytes.add_down(*n as u64);
        }
        polled
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
