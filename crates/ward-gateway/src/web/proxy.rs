//! One request on a published host: route by host, sign in, decide, proxy,
//! record.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use ward_api::AccessRecord;

use super::assertion::{self, Claims, Signer};
use super::hosts::WebTarget;
use super::pages::{self, Page};
use super::session::{self, Session, Sessions};
use super::{WebBackend, ASSERTION_HEADER, CALLBACK_PATH, JWKS_PATH};
use crate::records::{new_record_id, now_ms};
use crate::state::{Destination, Verdict};
use crate::Gateway;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ResBody = BoxBody<Bytes, BoxError>;

/// How long the upstream may take to answer with its response head.
const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request of the web listener shares.
pub(crate) struct Shared {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) signer: Signer,
    pub(crate) sessions: Sessions,
    pub(crate) portal_url: String,
    pub(crate) backend: Arc<dyn WebBackend>,
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r
}

fn page(p: &Page<'_>) -> Response<ResBody> {
    pages::render(p).map(|b| b.map_err(|e| match e {}).boxed())
}

fn redirect(location: &str, set_cookies: &[String]) -> Response<ResBody> {
    let mut r = full(StatusCode::FOUND, Bytes::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in set_cookies.iter().filter_map(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, std::convert::Infallible> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let Some(host) = session::request_host(&authority) else {
        return Ok(full(StatusCode::BAD_REQUEST, "bad host\n"));
    };
    let hosts = shared.gateway.web_hosts.current();
    let Some(target) = hosts.targets.get(&host).cloned() else {
        let request_id = new_record_id();
        return Ok(page(&Page {
            status: StatusCode::NOT_FOUND,
            title: "Unknown application",
            message: "No application is published under this host name.",
            facts: &[("Host", &host), ("Request id", &request_id)],
        }));
    };
    let path = req.uri().path().to_owned();
    if path == JWKS_PATH {
        let mut r = full(StatusCode::OK, shared.signer.jwks().to_owned());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        return Ok(r);
    }
    let cookies = || req.headers().get_all(header::COOKIE).iter().map(|v| v.as_bytes());
    if path == CALLBACK_PATH {
        let state = session::cookie_named(session::STATE_COOKIE, cookies()).map(str::to_owned);
        return Ok(callback(&shared, &host, &target, req.uri(), state.as_deref()).await);
    }
    let now = now_ms();
    let Some(session) = session::ward_cookie(cookies())
        .and_then(|id| shared.sessions.get(id, &host, now))
        .filter(|s| s.tenant_id == target.tenant_id)
    else {
        // To the portal, with a state this browser must bring back (a state
        // from an earlier redirect is kept, so parallel tabs agree).
        let state = session::cookie_named(session::STATE_COOKIE, cookies())
            .map(str::to_owned)
            .unwrap_or_else(session::new_id);
        let back = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let q = serde_urlencoded::to_string([("host", host.as_str()), ("return", back), ("state", state.as_str())])
            .unwrap_or_default();
        return Ok(redirect(
            &format!("{}/portal/web/start?{q}", shared.portal_url),
            &[session::set_state_cookie(&state, STATE_MAX_AGE_SECS)],
        ));
    };
    Ok(proxy(shared, peer, host, target, session, req).await)
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: String,
    state: Option<String>,
    #[serde(rename = "return")]
    ret: Option<String>,
}

/// How long a sign-in may take from the redirect to the portal to the callback.
const STATE_MAX_AGE_SECS: i64 = 900;

async fn callback(
    shared: &Shared,
    host: &str,
    target: &WebTarget,
    uri: &Uri,
    state_cookie: Option<&str>,
) -> Response<ResBody> {
    let refused = |why: &str| {
        let request_id = new_record_id();
        page(&Page {
            status: StatusCode::FORBIDDEN,
            title: "Sign-in link not valid",
            message: why,
            facts: &[("Host", host), ("Request id", &request_id)],
        })
    };
    let Some(q) = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<CallbackQuery>(q).ok())
    else {
        return refused("The sign-in link is incomplete. Open the application's address again.");
    };
    let ret = q
        .ret
        .as_deref()
        .and_then(ward_api::safe_web_return)
        .unwrap_or("/")
        .to_owned();
    // The sign-in must have started in this browser: a code minted for
    // someone else's sign-in cannot sign this browser in.
    let same_browser = match (state_cookie, q.state.as_deref()) {
        (Some(c), Some(s)) => aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), s.as_bytes()).is_ok(),
        _ => false,
    };
    if !same_browser {
        return refused("This sign-in did not start in this browser. Open the application's address again.");
    }
    match shared.backend.redeem(host, &q.code).await {
        Ok(Some(web)) if web.tenant_id == target.tenant_id => {
            let now = now_ms();
            let id = shared.sessions.create(
                Session {
                    host: host.to_owned(),
                    tenant_id: web.tenant_id,
                    user_id: web.user_id,
                    expires_ms: web.expires_ms,
                },
                now,
            );
            let max_age = (web.expires_ms - now).max(0) / 1000;
            redirect(
                &ret,
                &[session::set_cookie(&id, max_age), session::set_state_cookie("", 0)],
            )
        }
        Ok(_) => refused("This sign-in link is not valid: it is unknown, expired, for another address, or was already used. Open the application's address again."),
        Err(e) => {
            tracing::warn!(error = %e, "cannot redeem a web sign-in code");
            let mut r = refused("Ward cannot reach its server right now. Try again in a moment.");
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

/// Headers never forwarded: hop-by-hop ones (RFC 9110 7.6.1), and what only
/// the gateway may say.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    ASSERTION_HEADER,
];

fn is_websocket(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The record of one request, emitted once: when the response body ends
/// (or is dropped), or at once for a refusal.
struct RequestRecord {
    gateway: Arc<Gateway>,
    record: Option<AccessRecord>,
    started: Instant,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl RequestRecord {
    fn emit(&mut self, end: &str) {
        if let Some(mut r) = self.record.take() {
            r.bytes_up = self.up.load(Ordering::Relaxed);
            r.bytes_down = self.down.load(Ordering::Relaxed);
            r.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            r.end = end.to_owned();
            self.gateway.records.emit(r, false);
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.emit("closed");
    }
}

/// A body that counts the bytes through it and, when given a record,
/// emits it when the body ends or is dropped.
struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
    record: Option<RequestRecord>,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut r) = this.record.take() {
                    r.emit("error");
                }
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                if let Some(mut r) = this.record.take() {
                    r.emit("closed");
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn base_record(
    shared: &Shared,
    peer: SocketAddr,
    host: &str,
    target: &WebTarget,
    session: &Session,
    method: &Method,
    path: &str,
) -> AccessRecord {
    AccessRecord {
        id: new_record_id(),
        started_ms: now_ms(),
        tenant_id: session.tenant_id.clone(),
        user_id: session.user_id.clone(),
        device_id: String::new(),
        gateway_id: shared.gateway.gateway_id.clone(),
        source: peer.ip().to_canonical().to_string(),
        dest_host: host.to_owned(),
        dest_addr: None,
        port: target.upstream_port,
        protocol: "http".into(),
        method: Some(method.as_str().chars().take(32).collect()),
        path: Some(path.chars().take(1024).collect()),
        ..Default::default()
    }
}

/// Decides `session`'s user on `target` from the current snapshot.
pub(crate) fn decide(gateway: &Gateway, session: &Session, target: &WebTarget, source: IpAddr) -> Verdict {
    let Some(state) = gateway.state.current() else {
        return Verdict {
            allowed: false,
            rule_id: None,
            reason: "not_decided",
        };
    };
    let Some(tenant) = state.tenant(&session.tenant_id) else {
        return Verdict {
            allowed: false,
            rule_id: None,
            reason: "tenant_unknown",
        };
    };
    tenant.decide_web(
        &session.user_id,
        source,
        Destination {
            host: &target.upstream_host,
            resolved: None,
            port: target.upstream_port,
        },
        now_ms(),
    )
}

fn why(reason: &str) -> &'static str {
    match reason {
        "user_disabled" => "Your account is disabled.",
        "user_unknown" => "Your account no longer exists.",
        "tenant_suspended" => "Your organisation is suspended.",
        "no_rule_matched" => "No access rule admits you to this application from a browser.",
        "rule_matched" => "An access rule blocks you from this application.",
        "no_application" => "The published application no longer exists.",
        _ => "The gateway cannot decide on this request yet.",
    }
}

async fn proxy(
    shared: Arc<Shared>,
    peer: SocketAddr,
    host: String,
    target: WebTarget,
    session: Session,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let source = peer.ip().to_canonical();
    let mut record = base_record(&shared, peer, &host, &target, &session, req.method(), req.uri().path());
    let verdict = decide(&shared.gateway, &session, &target, source);
    record.action = if verdict.allowed { "allow" } else { "deny" }.into();
    record.rule_id = verdict.rule_id.as_deref().map(str::to_owned);
    record.reason = verdict.reason.into();
    let hosts = shared.gateway.web_hosts.current();
    let directory = hosts.directories.get(&session.tenant_id);
    let user_name = directory
        .and_then(|d| d.users.get(&session.user_id))
        .cloned()
        .unwrap_or_else(|| session.user_id.clone());
    if !verdict.allowed {
        record.status = Some(403);
        record.end = "denied".into();
        let request_id = record.id.clone();
        shared.gateway.records.emit(record, false);
        let rule = verdict.rule_id.as_deref().unwrap_or("none (default deny)").to_owned();
        return page(&Page {
            status: StatusCode::FORBIDDEN,
            title: "Access denied",
            message: why(verdict.reason),
            facts: &[
                ("Signed in as", &user_name),
                ("Application", &host),
                ("Deciding rule", &rule),
                ("Request id", &request_id),
            ],
        });
    }

    // The assertion.
    let now_s = now_ms() / 1000;
    let groups: Vec<&str> = match (shared.gateway.state.current(), directory) {
        (Some(state), Some(d)) => {
            let ids = state
                .tenant(&session.tenant_id)
                .and_then(|t| t.groups_of(&session.user_id).map(<[String]>::to_vec))
                .unwrap_or_default();
            let mut names: Vec<&str> = ids
                .iter()
                .filter_map(|id| d.groups.get(id).map(String::as_str))
                .collect();
            names.sort_unstable();
            names
        }
        _ => Vec::new(),
    };
    let claims = Claims {
        iss: shared.signer.issuer(),
        aud: format!("https://{host}"),
        sub: &session.user_id,
        name: &user_name,
        groups,
        tenant: &session.tenant_id,
        iat: now_s,
        exp: now_s + assertion::LIFETIME_SECS,
        jti: record.id.clone(),
    };
    let jwt = match shared.signer.sign(&claims) {
        Ok(jwt) => jwt,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign the identity assertion");
            record.status = Some(500);
            record.end = "error".into();
            shared.gateway.records.emit(record, false);
            return full(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
    };

    let websocket = is_websocket(&req);
    let (parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 5);
    // Headers the client named in `Connection` are hop-by-hop too.
    let named: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if DROPPED.contains(&n) || named.iter().any(|x| x == n) || n == "host" {
            continue;
        }
        if name == header::COOKIE {
            if let Some(rest) = session::strip_ward_cookie(value.as_bytes()) {
                if let Ok(v) = HeaderValue::from_str(&rest) {
                    headers.append(header::COOKIE, v);
                }
            }
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert(header::HOST, v);
    }
    if let Ok(v) = HeaderValue::from_str(&source.to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&jwt) {
        headers.insert(HeaderName::from_static(ASSERTION_HEADER), v);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }

    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
    let mut upstream_req = Request::new(
        Counted {
            inner: body,
            count: up.clone(),
            record: None,
        }
        .boxed(),
    );
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.uri_mut() = path_and_query.parse().unwrap_or_else(|_| Uri::from_static("/"));
    *upstream_req.headers_mut() = headers;

    // For a WebSocket, the client's side of the upgrade.
    let mut client_req_for_upgrade = if websocket {
        let mut r = Request::new(());
        *r.extensions_mut() = parts.extensions;
        Some(r)
    } else {
        None
    };

    let started = Instant::now();
    let sender = match connect(&shared.gateway, &target).await {
        Ok((sender, addr)) => {
            record.dest_addr = Some(addr.to_string());
            sender
        }
        Err(e) => {
            tracing::info!(host = %host, error = %e, "cannot reach a published application");
            record.status = Some(502);
            record.end = "dial_failed".into();
            let request_id = record.id.clone();
            shared.gateway.records.emit(record, false);
            return page(&Page {
                status: StatusCode::BAD_GATEWAY,
                title: "Application unreachable",
                message: "The gateway cannot reach this application right now.",
                facts: &[("Application", &host), ("Request id", &request_id)],
            });
        }
    };
    let mut sender = sender;
    let response = match tokio::time::timeout(UPSTREAM_RESPONSE_TIMEOUT, sender.send_request(upstream_req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::info!(host = %host, error = %e, "the published application failed");
            record.status = Some(502);
            record.end = "error".into();
            shared.gateway.records.emit(record, false);
            return full(StatusCode::BAD_GATEWAY, "bad gateway\n");
        }
        Err(_) => {
            record.status = Some(504);
            record.end = "error".into();
            shared.gateway.records.emit(record, false);
            return full(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n");
        }
    };
    record.status = Some(response.status().as_u16());

    if websocket && response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_req_for_upgrade.take() {
            let (parts, _) = response.into_parts();
            let mut upstream_res = Response::from_parts(parts.clone(), ());
            let mut answer = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
            for (name, value) in &parts.headers {
                answer.headers_mut().append(name.clone(), value.clone());
            }
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_res);
            let client_upgrade = hyper::upgrade::on(client);
            tokio::spawn(relay_websocket(
                shared.clone(),
                peer,
                target,
                session,
                record,
                started,
                client_upgrade,
                upstream_upgrade,
            ));
            return answer;
        }
    }

    let (mut parts, body) = response.into_parts();
    let named: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in DROPPED.iter().map(|s| s.to_string()).chain(named) {
        if name != ASSERTION_HEADER && !name.starts_with("x-forwarded") && name != "forwarded" {
            parts.headers.remove(name.as_str());
        }
    }
    let guard = RequestRecord {
        gateway: shared.gateway.clone(),
        record: Some(record),
        started,
        up,
        down: down.clone(),
    };
    let body = Counted {
        inner: body,
        count: down,
        record: Some(guard),
    }
    .boxed();
    Response::from_parts(parts, body)
}

type Sender = hyper::client::conn::http1::SendRequest<BoxBody<Bytes, BoxError>>;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

fn upstream_tls() -> Option<Arc<tokio_rustls::rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<tokio_rustls::rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| ward_pki::client_config_platform_roots(&[b"http/1.1"]).ok())
        .clone()
}

/// A new HTTP/1.1 connection to the upstream (TLS when it says so).
async fn connect(gateway: &Gateway, target: &WebTarget) -> anyhow::Result<(Sender, SocketAddr)> {
    let host = target
        .upstream_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = tokio::time::timeout(
        gateway.dial_timeout,
        TcpStream::connect((host.as_str(), target.upstream_port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let addr = tcp.peer_addr()?;
    let io: Box<dyn Io> = if target.upstream_tls {
        let config = upstream_tls().ok_or_else(|| anyhow::anyhow!("no TLS client configuration"))?;
        let name = rustls_pki_types::ServerName::try_from(host.clone())?;
        let tls = tokio::time::timeout(
            gateway.dial_timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| anyhow::anyhow!("TLS handshake timed out"))??;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, BoxBody<Bytes, BoxError>>(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok((sender, addr))
}

/// Relays an upgraded WebSocket both ways until either side closes, or a
/// new snapshot no longer allows the user; then records it once.
#[allow(clippy::too_many_arguments)]
async fn relay_websocket(
    shared: Arc<Shared>,
    peer: SocketAddr,
    target: WebTarget,
    session: Session,
    record: AccessRecord,
    started: Instant,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let mut guard = RequestRecord {
        gateway: shared.gateway.clone(),
        record: Some(record),
        started,
        up: up.clone(),
        down: down.clone(),
    };
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        _ => {
            guard.emit("error");
            return;
        }
    };
    // Bytes the client writes go up; bytes read from it never count.
    let mut client = CountingIo {
        inner: TokioIo::new(client),
        read: up.clone(),
    };
    let mut upstream = CountingIo {
        inner: TokioIo::new(upstream),
        read: down.clone(),
    };
    let mut changed = shared.gateway.web_hosts.changed.subscribe();
    let source = peer.ip().to_canonical();
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    let end = loop {
        tokio::select! {
            result = &mut copy => {
                break if result.is_ok() { "closed" } else { "error" };
            }
            c = changed.changed() => {
                if c.is_err() {
                    break "gateway_shutdown";
                }
                let hosts = shared.gateway.web_hosts.current();
                let still = hosts.targets.values().any(|t| *t == target)
                    && decide(&shared.gateway, &session, &target, source).allowed;
                if !still {
                    break "policy_changed";
                }
            }
        }
    };
    guard.emit(end);
}

/// An upgraded connection that counts the bytes read from it, so a
/// WebSocket cut by a new policy still records what it carried.
struct CountingIo<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
