//! HTTP through the filtering proxy, one request at a time: the agent's
//! `ward-protocol: http` streams, the proxy port's absolute-form requests,
//! and the requests inside an inspected TLS connection (inspect.rs). Each
//! request is decided on its host and leaves one record (method, URL,
//! status, bytes, upload); blocked and warned requests get a page, allowed
//! ones go out through a pooled HTTP/1.1 client whose connector refuses
//! private addresses and, for `https`, checks the site's certificate.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use ward_inet::Host;

use super::resolve::Resolver;
use super::upload::{UploadBody, UploadSlot};
use super::upstream::{self, Answer, Lease, Upstreams};
use super::{dial, judge, DialError, Outcome, Who};
use crate::inbound::Tunnel;
use crate::records::{now_ms, ConnectionResult, End};
use crate::state::PolicyState;
use crate::web::pages::{render_with_link, Page};
use crate::Gateway;

/// The record's reason when an inspected site's certificate fails the
/// gateway's check (or its TLS breaks).
pub(crate) const REASON_UPSTREAM_TLS: &str = "upstream_tls_failed";

/// Longest request target accepted (longer: `414`).
pub(crate) const MAX_URI_LEN: usize = 8 * 1024;
/// Longest URL written into a record.
const MAX_RECORD_URL: usize = 2048;
/// The request head must arrive within this (slow clients are cut).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many request headers, and this many bytes of head (`431`).
pub(crate) const MAX_HEADERS: usize = 100;
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Idle upstream connections kept per host.
const POOL_PER_HOST: usize = 64;
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(60);

/// Request bodies as they go upstream: hashed and counted.
pub(crate) type ReqBody = UploadBody<Incoming>;
/// The pooled upstream client.
pub(crate) type UpstreamClient = Client<Dialer, ReqBody>;

/// The pooled upstream client over `dialer`.
pub(crate) fn upstream_client(dialer: Dialer) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_PER_HOST)
        .pool_timer(TokioTimer::new())
        .build(dialer)
}

/// The HTTP/1.1 server settings of both front ends.
pub(crate) fn server_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    builder
}

// ---- upstream connections ---------------------------------------------------

/// Connects the upstream client: resolve, refuse private addresses (unless
/// allowed), dial, and for `https` the gateway's own TLS to the site.
#[derive(Clone)]
pub(crate) struct Dialer {
    resolver: Resolver,
    allow_private: bool,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    /// `tls` connects `https` requests (inspected connections), which fail
    /// without it.
    pub(crate) fn new(
        resolver: Resolver,
        allow_private: bool,
        timeout: Duration,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Dialer {
        Dialer {
            resolver,
            allow_private,
            timeout,
            tls: tls.map(tokio_rustls::TlsConnector::from),
        }
    }
}

/// An upstream connection: plain TCP, or TLS over it.
pub(crate) enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(tcp) => tcp.is_write_vectored(),
            UpstreamIo::Tls(tls) => tls.is_write_vectored(),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

/// The address an upstream connection went to (in the response's extensions).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DialedAddr(pub(crate) SocketAddr);

pub(crate) struct Dialed {
    io: TokioIo<UpstreamIo>,
    addr: SocketAddr,
}

impl Dialed {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        Connected::new().extra(DialedAddr(self.addr))
    }
}

impl hyper::rt::Read for Dialed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Dialed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl tower::Service<Uri> for Dialer {
    type Response = Dialed;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Dialed, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await })
    }
}

impl Dialer {
    /// A new connection to `uri`'s host (resolved, private addresses refused
    /// unless allowed), with TLS for `https`.
    pub(crate) async fn connect(&self, uri: Uri) -> Result<Dialed, DialError> {
        let (allow_private, timeout, resolver) = (self.allow_private, self.timeout, &self.resolver);
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let host = Host::parse(host).map_err(|e| DialError::Failed(format!("bad host {host}: {e}")))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let started = tokio::time::Instant::now();
        let (tcp, addr) = dial(resolver, &host, port, allow_private, timeout).await?;
        if !https {
            return Ok(Dialed {
                io: TokioIo::new(UpstreamIo::Plain(tcp)),
                addr,
            });
        }
        let Some(tls) = &self.tls else {
            return Err(DialError::Tls(
                "this gateway has no trust store for inspected sites".to_owned(),
            ));
        };
        let name = match &host {
            Host::Ip(ip) => rustls_pki_types::ServerName::IpAddress((*ip).into()),
            Host::Name(name) => rustls_pki_types::ServerName::try_from(name.as_str().to_owned())
                .map_err(|e| DialError::Tls(format!("{host}: {e}")))?,
        };
        let left = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tls.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(Dialed {
                io: TokioIo::new(UpstreamIo::Tls(Box::new(stream))),
                addr,
            }),
            Ok(Err(e)) => Err(DialError::Tls(format!("TLS to {host}: {e}"))),
            Err(_) => Err(DialError::Tls(format!("TLS to {host}: timed out"))),
        }
    }
}

// ---- bodies -----------------------------------------------------------------

/// One request's record while its answer streams; finished when the
/// answer's body ends or is dropped.
pub(crate) struct RequestRecord {
    result: Option<ConnectionResult>,
    upload: Option<Arc<UploadSlot>>,
    down: u64,
}

impl RequestRecord {
    /// The record of one request (with its upload's slot when it has a body).
    pub(crate) fn new(result: ConnectionResult, upload: Option<Arc<UploadSlot>>) -> Box<RequestRecord> {
        Box::new(RequestRecord {
            result: Some(result),
            upload,
            down: 0,
        })
    }

    fn finish(&mut self, end: End) {
        if let Some(mut result) = self.result.take() {
            let up = match &self.upload {
                Some(slot) => {
                    let upload = slot.take();
                    let up = slot.size.load(std::sync::atomic::Ordering::Relaxed);
                    result.record_mut().upload = upload;
                    up
                }
                None => 0,
            };
            result.set_bytes(up, self.down);
            result.finish(end);
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.finish(End::Closed);
    }
}

/// What the front ends answer with: one of the gateway's pages, or the
/// origin's answer streamed through (counted; the record goes out at its end).
pub(crate) enum ProxyBody {
    Page(Full<Bytes>),
    Upstream {
        inner: Incoming,
        record: Box<RequestRecord>,
        /// The downstream connection's own upstream connection it comes
        /// over (driven here; given back at the body's end), if any.
        lease: Option<Box<Lease>>,
    },
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Page(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Upstream { inner, record, lease } => {
                if let Some(lease) = lease.as_mut() {
                    lease.drive(cx);
                }
                let polled = match Pin::new(&mut *inner).poll_frame(cx) {
                    Poll::Ready(polled) => polled,
                    Poll::Pending => {
                        // Asking for more may have let the connection read it.
                        match lease.as_mut() {
                            Some(lease) => {
                                lease.drive(cx);
                                ready!(Pin::new(&mut *inner).poll_frame(cx))
                            }
                            None => return Poll::Pending,
                        }
                    }
                };
                let ended = match &polled {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            record.down += data.len() as u64;
                        }
                        inner.is_end_stream().then_some(End::Closed)
                    }
                    Some(Err(_)) => {
                        // A broken answer: its connection is not reused.
                        drop(lease.take());
                        Some(End::Error)
                    }
                    None => Some(End::Closed),
                };
                if let Some(end) = ended {
                    record.finish(end);
                    if let Some(lease) = lease.take() {
                        lease.release();
                    }
                }
                Poll::Ready(polled)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Page(full) => full.is_end_stream(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Page(full) => full.size_hint(),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

// ---- one request ------------------------------------------------------------

/// Who a request is from.
pub(crate) struct Principal {
    pub(crate) tenant_id: Arc<str>,
    /// Empty on the proxy port.
    pub(crate) device_id: Arc<str>,
    /// Set on the proxy port (decided by user, no device).
    pub(crate) user_id: Option<Arc<str>>,
    pub(crate) source: IpAddr,
}

impl Principal {
    /// The device at the other end of an agent's tunnel.
    pub(crate) fn of_tunnel(tunnel: &Tunnel) -> Principal {
        Principal {
            tenant_id: tunnel.tenant_id.clone(),
            device_id: tunnel.device_id.clone(),
            user_id: None,
            source: tunnel.peer.ip(),
        }
    }

    fn who(&self) -> Who<'_> {
        match &self.user_id {
            Some(user) => Who::User(user),
            None => Who::Device(&self.device_id),
        }
    }
}

/// Where requests come in.
pub(crate) enum Front {
    /// Plain HTTP: the host is the request's (absolute form or `Host`),
    /// on this port when it names none.
    Plain { default_port: u16 },
    /// Inside an inspected TLS connection to `host:port` (a `CONNECT`):
    /// every request must be for that host (`421` otherwise).
    Inspected { host: Host, port: u16 },
}

impl Front {
    fn scheme(&self) -> &'static str {
        match self {
            Front::Plain { .. } => "http",
            Front::Inspected { .. } => "https",
        }
    }

    fn default_port(&self) -> u16 {
        match self {
            Front::Plain { default_port } => *default_port,
            Front::Inspected { port, .. } => *port,
        }
    }
}

/// Hop-by-hop headers, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A short page answered by the gateway itself.
fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    facts: &[(&str, &str)],
    link: Option<(&str, &str)>,
) -> Response<ProxyBody> {
    let page = Page {
        status,
        title,
        message,
        facts,
    };
    render_with_link(&page, link).map(ProxyBody::Page)
}

fn record_url(scheme: &str, host: &str, port: u16, path_and_query: &str) -> String {
    let default = if scheme == "https" { 443 } else { 80 };
    let mut url = if port == default {
        format!("{scheme}://{host}{path_and_query}")
    } else {
        format!("{scheme}://{host}:{port}{path_and_query}")
    };
    if url.len() > MAX_RECORD_URL {
        let mut cut = MAX_RECORD_URL;
        while !url.is_char_boundary(cut) {
            cut -= 1;
        }
        url.truncate(cut);
    }
    url
}

/// A return path that stays on the site: `/...`, never `//host`.
fn safe_return(path: &str) -> &str {
    if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') && !path.chars().any(char::is_control) {
        path
    } else {
        "/"
    }
}

/// Handles one HTTP request of `who` that came in at `front`: decide,
/// answer a page or forward.
pub(crate) async fn handle(
    gateway: &Arc<Gateway>,
    who: &Principal,
    front: &Front,
    upstreams: &Upstreams,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let scheme = front.scheme();
    let mut result = ConnectionResult::new(
        gateway.records.clone(),
        &gateway.gateway_id,
        &who.tenant_id,
        &who.device_id,
        who.source,
    );
    {
        let record = result.record_mut();
        record.kind = "web".to_owned();
        record.method = Some(request.method().as_str().to_owned());
        record.inspected = matches!(front, Front::Inspected { .. });
    }
    let request_id = result.record().id.clone();
    let refuse_bad = |mut result: ConnectionResult, status: StatusCode, message: &str| {
        result.set_reason("bad_request");
        result.record_mut().status = Some(status.as_u16());
        result.finish(End::Denied);
        page(status, "Bad request", message, &[("Request id", &request_id)], None)
    };

    let uri_len = request.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + request.uri().authority().map_or(0, |a| a.as_str().len());
    if uri_len > MAX_URI_LEN {
        return refuse_bad(result, StatusCode::URI_TOO_LONG, "The address is too long.");
    }
    if request.method() == Method::CONNECT {
        return refuse_bad(result, StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not served here.");
    }
    // Absolute-form (a proxy's client) or origin-form with Host (the agent).
    let authority = match request.uri().authority() {
        Some(authority) => {
            if request
                .uri()
                .scheme_str()
                .is_some_and(|s| !s.eq_ignore_ascii_case(scheme))
            {
                let message = format!("Only {scheme}:// addresses are served here.");
                return refuse_bad(result, StatusCode::BAD_REQUEST, &message);
            }
            Some(authority.clone())
        }
        None => request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok()),
    };
    let Some(authority) = authority else {
        return refuse_bad(result, StatusCode::BAD_REQUEST, "The request names no host.");
    };
    let port = authority.port_u16().unwrap_or(front.default_port());
    let bare = authority.host();
    let bare = bare.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(bare);
    let host = match (port, Host::parse(bare)) {
        (1.., Ok(host)) => host,
        _ => {
            result.set_destination(&authority.as_str().chars().take(255).collect::<String>(), port);
            return refuse_bad(result, StatusCode::BAD_REQUEST, "The host name is not valid.");
        }
    };
    if let Front::Inspected {
        host: tunnel_host,
        port: tunnel_port,
    } = front
    {
        // The TLS was decided for, and its certificate names, that host:
        // no other site through this connection.
        if host != *tunnel_host || port != *tunnel_port {
            result.set_destination(&host.to_string(), port);
            return refuse_bad(
                result,
                StatusCode::MISDIRECTED_REQUEST,
                "This connection is for another site.",
            );
        }
    }
    let host_text = host.to_string();
    let host_url = match host {
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host_text.clone(),
    };
    result.set_destination(&host_text, port);
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    result.record_mut().url = Some(record_url(scheme, &host_url, port, path_and_query));

    let Some(policy) = gateway.state.current() else {
        result.set_reason("gateway_draining");
        result.record_mut().status = Some(503);
        result.finish(End::GatewayShutdown);
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The gateway has no policy yet.",
            &[],
            None,
        );
    };
    let Some(tenant) = policy.tenant(&who.tenant_id) else {
        return refuse_bad(result, StatusCode::FORBIDDEN, "Unknown organisation.");
    };
    let now = now_ms();

    if request.uri().path() == ward_api::PATH_PROCEED {
        return proceed(gateway, who, &policy, result, &request, &host_text, &request_id, now);
    }

    let judgement = judge(&gateway.internet, &who.tenant_id, tenant, who.who(), &host, port, now);
    super::tunnel::set_judgement(&mut result, &judgement);
    let user_label = judgement
        .user_id
        .as_deref()
        .map(|u| tenant.user_name(u).unwrap_or(u).to_owned())
        .unwrap_or_default();
    let rule = judgement.rule_id.as_deref().unwrap_or("default").to_owned();
    match &judgement.outcome {
        Outcome::Through { .. } => {}
        Outcome::Block | Outcome::Refused(_) => {
            result.record_mut().status = Some(403);
            result.finish(End::Denied);
            return page(
                StatusCode::FORBIDDEN,
                "Site blocked",
                "Your organisation's policy blocks this site.",
                &[
                    ("User", &user_label),
                    ("Site", &host_text),
                    ("Rule", &rule),
                    ("Request id", &request_id),
                ],
                None,
            );
        }
        Outcome::Warn { token } => {
            result.record_mut().status = Some(403);
            result.finish(End::Denied);
            let back = format!(
                "{scheme}://{}{}?{}",
                authority.as_str(),
                ward_api::PATH_PROCEED,
                serde_urlencoded::to_string([("t", token.as_str()), ("return", safe_return(path_and_query))])
                    .unwrap_or_default()
            );
            return page(
                StatusCode::FORBIDDEN,
                "Are you sure?",
                "Your organisation's policy advises against this site. If you continue, your visit is recorded.",
                &[
                    ("User", &user_label),
                    ("Site", &host_text),
                    ("Rule", &rule),
                    ("Request id", &request_id),
                ],
                Some(("Continue to the site", &back)),
            );
        }
    }
    drop(policy);

    // Forward: absolute URI for the client (it sends origin-form), the
    // original Host, no hop-by-hop headers.
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(format!("{host_url}:{port}"))
        .path_and_query(request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build();
    let Ok(uri) = uri else {
        return refuse_bad(result, StatusCode::BAD_REQUEST, "The address is not valid.");
    };
    if super::upgrade::is_websocket(&request) {
        let Ok(host_value) = HeaderValue::from_str(authority.as_str()) else {
            return refuse_bad(result, StatusCode::BAD_REQUEST, "The host name is not valid.");
        };
        return super::upgrade::forward(gateway, who, result, request, uri, host_value).await;
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // The host decided is the host asked: an absolute-form request's Host
    // header is replaced by its authority (no fronting another site).
    match HeaderValue::from_str(authority.as_str()) {
        Ok(value) => {
            parts.headers.insert(header::HOST, value);
        }
        Err(_) => return refuse_bad(result, StatusCode::BAD_REQUEST, "The host name is not valid."),
    }
    let slot = Arc::new(UploadSlot::default());
    let upload = (!body.is_end_stream()).then(|| parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    let body = UploadBody::new(body, upload, slot.clone());
    let uploads = upload.is_some();
    let sent = upstream::send(
        &gateway.internet,
        upstreams,
        scheme == "https",
        &host_url,
        port,
        Request::from_parts(parts, body),
    )
    .await;
    match sent {
        Ok(Answer { response, addr, lease }) => {
            if let Some(addr) = addr {
                result.set_dest_addr(addr);
            }
            result.record_mut().status = Some(response.status().as_u16());
            let (mut parts, inner) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let mut record = Box::new(RequestRecord {
                result: Some(result),
                upload: uploads.then_some(slot),
                down: 0,
            });
            let mut lease = lease.map(Box::new);
            if inner.is_end_stream() {
                // No body (HEAD, 204, 304, an empty one): never polled.
                record.finish(End::Closed);
                if let Some(lease) = lease.take() {
                    lease.release();
                }
            }
            Response::from_parts(parts, ProxyBody::Upstream { inner, record, lease })
        }
        Err(error) => {
            let private = error.dial().and_then(|e| match e {
                DialError::Private(ip) => Some(*ip),
                DialError::Failed(_) | DialError::Tls(_) => None,
            });
            let tls_failed = matches!(error.dial(), Some(DialError::Tls(_)));
            let mut record = RequestRecord {
                result: Some(result),
                upload: uploads.then_some(slot),
                down: 0,
            };
            if let Some(r) = record.result.as_mut() {
                if let Some(ip) = private {
                    r.record_mut().action = "block".to_owned();
                    r.record_mut().dest_addr = Some(ip.to_string());
                    r.set_reason(super::tunnel::REASON_PRIVATE_ADDRESS);
                    r.record_mut().status = Some(403);
                } else {
                    r.record_mut().status = Some(502);
                    if tls_failed {
                        r.set_reason(REASON_UPSTREAM_TLS);
                    }
                }
            }
            if let Some(ip) = private {
                record.finish(End::Denied);
                let ip = ip.to_string();
                return page(
                    StatusCode::FORBIDDEN,
                    "Site blocked",
                    "This site resolves to a private address, which the internet proxy does not reach.",
                    &[("Site", &host_text), ("Address", &ip), ("Request id", &request_id)],
                    None,
                );
            }
            record.finish(End::DialFailed);
            if let Some(DialError::Tls(why)) = error.dial() {
                tracing::info!(host = %host_text, error = %why, "an inspected site failed the gateway's TLS check");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Site not trusted",
                    "The gateway could not verify this site's certificate, so it did not open the site.",
                    &[("Site", &host_text), ("Request id", &request_id)],
                    None,
                );
            }
            tracing::debug!(error = %error, host = %host_text, "upstream request failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Site unreachable",
                "The gateway could not reach this site.",
                &[("Site", &host_text), ("Request id", &request_id)],
                None,
            )
        }
    }
}

/// `GET http://HOST/.ward/proceed?t=TOKEN&return=/path`: the warning page's
/// "Continue". Records `proceed`, grants the host, redirects to the path.
#[allow(clippy::too_many_arguments)]
fn proceed(
    gateway: &Arc<Gateway>,
    who: &Principal,
    policy: &PolicyState,
    mut result: ConnectionResult,
    request: &Request<Incoming>,
    host: &str,
    request_id: &str,
    now: i64,
) -> Response<ProxyBody> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(request.uri().query().unwrap_or_default()).unwrap_or_default();
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let tenant = policy.tenant(&who.tenant_id);
    let user = match &who.user_id {
        Some(user) => Some(user.to_string()),
        None => tenant.and_then(|t| t.user_of(&who.device_id)).map(str::to_owned),
    };
    if let Some(user) = &user {
        result.set_user(user);
    }
    let claim = match (tenant.and_then(|t| t.internet()), &user, get("t")) {
        (Some(internet), Some(user), Some(token)) => super::redeem(
            &gateway.internet,
            &who.tenant_id,
            user,
            internet.warn_minutes,
            token,
            now,
        )
        .filter(|claim| claim.host == host),
        _ => None,
    };
    let Some(claim) = claim else {
        result.set_reason("bad_request");
        result.record_mut().status = Some(403);
        result.finish(End::Denied);
        return page(
            StatusCode::FORBIDDEN,
            "Link expired",
            "This link is not valid any more. Go back and open the site again.",
            &[("Site", host), ("Request id", request_id)],
            None,
        );
    };
    let back = safe_return(get("return").unwrap_or("/")).to_owned();
    {
        let record = result.record_mut();
        record.action = "proceed".to_owned();
        record.rule_id = (!claim.rule_id.is_empty()).then_some(claim.rule_id);
        record.status = Some(303);
    }
    result.set_reason("rule_matched");
    result.finish(End::Closed);
    let mut response = Response::new(ProxyBody::Page(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(&back) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---- the agent's plain-HTTP streams -----------------------------------------

/// A `ward-protocol: http` stream: `200`, then an HTTP/1.1 server on it.
pub(crate) async fn serve_agent_stream(
    tunnel: Arc<Tunnel>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    _policy: Arc<PolicyState>,
    default_port: u16,
) {
    let send = match respond.send_response(Response::new(()), false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(error = %e, "agent went away before the answer");
            return;
        }
    };
    let io = H2Io::new(request.into_body(), send);
    let who = Principal::of_tunnel(&tunnel);
    serve_streams(tunnel.gateway.clone(), who, io, Front::Plain { default_port }).await;
}

/// Serves the HTTP/1.1 requests of `who` on `io` until either side closes
/// it or the gateway stops.
pub(crate) async fn serve_streams<I>(gateway: Arc<Gateway>, who: Principal, io: I, front: Front)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = gateway.drain.stop_now().clone();
    let who = Arc::new(who);
    let front = Arc::new(front);
    let upstreams = Upstreams::default();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let gateway = gateway.clone();
        let who = who.clone();
        let front = front.clone();
        let upstreams = upstreams.clone();
        async move { Ok::<_, Infallible>(handle(&gateway, &who, &front, &upstreams, request).await) }
    });
    let conn = server_builder()
        .serve_connection(TokioIo::new(super::framing::Guarded::new(io)), service)
        .with_upgrades();
    tokio::select! {
        served = conn => if let Err(e) = served {
            tracing::debug!(error = %e, "HTTP stream ended");
        },
        _ = stop.cancelled() => {}
    }
}

/// An HTTP/2 stream as a byte stream, for the HTTP/1.1 server (and the
/// TLS of an inspected connection).
pub(crate) struct H2Io {
    recv: RecvStream,
    send: SendStream<Bytes>,
    pending: Bytes,
    eof: bool,
    shut: bool,
}

impl H2Io {
    pub(crate) fn new(recv: RecvStream, send: SendStream<Bytes>) -> H2Io {
        H2Io {
            recv,
            send,
            pending: Bytes::new(),
            eof: false,
            shut: false,
        }
    }
}

impl AsyncRead for H2Io {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.pending = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => this.eof = true,
            }
        }
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        this.send.reserve_capacity(buf.len());
        loop {
            let capacity = this.send.capacity();
            if capacity > 0 {
                let n = capacity.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(io::Error::other)?;
                return Poll::Ready(Ok(n));
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            self.shut = true;
            let _ = self.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_the_site() {
        assert_eq!(safe_return("/news?id=1"), "/news?id=1");
        for bad in ["//evil.example/", "http://evil.example/", "/\\evil", "", "news"] {
            assert_eq!(safe_return(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn record_urls_are_capped() {
        assert_eq!(record_url("http", "a.example", 80, "/x?y=1"), "http://a.example/x?y=1");
        assert_eq!(record_url("http", "a.example", 8080, "/"), "http://a.example:8080/");
        assert_eq!(record_url("https", "a.example", 443, "/"), "https://a.example/");
        assert_eq!(record_url("https", "a.example", 80, "/"), "https://a.example:80/");
        let long = format!("/{}", "é".repeat(3000));
        assert!(record_url("http", "a.example", 80, &long).len() <= MAX_RECORD_URL);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
