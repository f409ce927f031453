//! Agents' tunnels: accept, authenticate the device, serve HTTP/2 CONNECT
//! streams. Each stream is decided, dialled, journaled, answered and relayed
//! in its own task, and leaves exactly one access record.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderValue, Method, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use ward_pki::Identity;

use crate::config::{
    CONNECTION_WINDOW, HANDSHAKE_TIMEOUT, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, STREAM_WINDOW,
};
use crate::records::{now_ms, ConnectionResult, End};
use crate::registry::LiveConn;
use crate::relay::{relay, RelayEnd, Transferred};
use crate::state::{Destination, Verdict};
use crate::workers::Workers;
use crate::Gateway;

/// The size the future of one stream's task must stay under (it is
/// allocated once per TCP connection carried). Checked in debug builds at
/// every spawn and by a unit test.
pub(crate) const MAX_STREAM_FUTURE_BYTES: usize = 8 * 1024;

/// One authenticated tunnel: which device of which tenant, from where.
pub(crate) struct Tunnel {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) tenant_id: Arc<str>,
    pub(crate) device_id: Arc<str>,
    pub(crate) peer: SocketAddr,
    /// When its device certificate expires (ms since epoch): its live
    /// connections are cut then, and new streams refused.
    pub(crate) cert_expires_ms: i64,
}

/// Accepts agents until the gateway drains, handing each to a worker
/// thread (workers.rs), then waits for every tunnel.
pub(crate) async fn serve(listener: TcpListener, gateway: Arc<Gateway>, workers: Workers) {
    loop {
        tokio::select! {
            _ = gateway.drain.draining().cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => workers.dispatch(tcp, peer),
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    workers.finish().await;
}

pub(crate) async fn serve_tunnel(gateway: Arc<Gateway>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = gateway.tls.acceptor() else {
        tracing::debug!(%peer, "refusing an agent: no policy yet");
        return;
    };
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (tenant_id, device_id, cert_expires_ms) = match authenticate(&gateway, &tls) {
        Ok(who) => who,
        Err(why) => {
            tracing::info!(%peer, reason = %why, "agent refused");
            return;
        }
    };
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .handshake::<_, Bytes>(tls);
    let mut conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    tracing::debug!(%peer, tenant = %tenant_id, device = %device_id, "tunnel up");
    let _counted = gateway.tunnels.open(tenant_id.clone());
    let tunnel = Arc::new(Tunnel {
        gateway: gateway.clone(),
        tenant_id,
        device_id,
        peer,
        cert_expires_ms,
    });

    let keepalive = keepalive(conn.ping_pong());
    tokio::pin!(keepalive);
    // When the certificate expires the tunnel goes away (the agent comes
    // back with its renewed one); the re-checker cuts what it still carries.
    let valid_for = u64::try_from(cert_expires_ms.saturating_sub(now_ms())).unwrap_or(0);
    let expired = tokio::time::sleep(Duration::from_millis(valid_for));
    tokio::pin!(expired);
    let mut streams = JoinSet::new();
    let mut going_away = false;
    loop {
        tokio::select! {
            biased;
            _ = gateway.drain.stop_now().cancelled() => break,
            _ = &mut keepalive => {
                tracing::info!(%peer, "agent stopped answering pings; closing its tunnel");
                break;
            }
            _ = gateway.drain.draining().cancelled(), if !going_away => {
                conn.graceful_shutdown();
                going_away = true;
            }
            _ = &mut expired, if !going_away => {
                tracing::info!(%peer, "device certificate expired; closing its tunnel");
                conn.graceful_shutdown();
                going_away = true;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            next = conn.accept() => match next {
                Some(Ok((request, respond))) => {
                    let task = serve_stream(tunnel.clone(), request, respond);
                    debug_assert!(
                        std::mem::size_of_val(&task) <= MAX_STREAM_FUTURE_BYTES,
                        "per-stream future is {} bytes",
                        std::mem::size_of_val(&task)
                    );
                    streams.spawn(task);
                }
                Some(Err(e)) => {
                    // A stream-level error is handled inside h2; here the
                    // whole connection failed.
                    tracing::debug!(%peer, error = %e, "tunnel failed");
                    break;
                }
                None => break,
            }
        }
    }
    // Without the connection the streams cannot move: dropping it fails them
    // at once, and each still leaves its record.
    drop(conn);
    while streams.join_next().await.is_some() {}
    tracing::debug!(%peer, "tunnel closed");
}

/// The device behind a verified client certificate: its identity must name
/// a device of a tenant in the policy, and that tenant's CA must have issued
/// it (`ward_pki::verify_issued_by`; the TLS layer only knows it chains to
/// *some* tenant CA).
fn authenticate(gateway: &Gateway, tls: &TlsStream<TcpStream>) -> Result<(Arc<str>, Arc<str>, i64), String> {
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no client certificate")?;
    let identity = Identity::from_cert_der(leaf).map_err(|e| e.to_string())?;
    let Identity::Device { tenant_id, device_id } = identity else {
        return Err(format!("{identity} is not a device"));
    };
    let policy = gateway.state.current().ok_or("no policy")?;
    let tenant = policy
        .tenant(&tenant_id)
        .ok_or_else(|| format!("tenant {tenant_id} is not in the policy"))?;
    tenant
        .issued(leaf)
        .map_err(|e| format!("not issued by the CA of tenant {tenant_id}: {e}"))?;
    let expires = ward_pki::not_after_ms(leaf).map_err(|e| e.to_string())?;
    Ok((tenant_id.into(), device_id.into(), expires))
}

/// Resolves when the agent fails to answer a PING in time.
async fn keepalive(ping_pong: Option<h2::PingPong>) {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "keepalive ping failed");
                return;
            }
            Err(_) => return,
        }
    }
}

/// Where a CONNECT request wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Lowercased; IPv6 literals keep their brackets.
    pub(crate) host: String,
    /// Set when the host is an IP literal.
    pub(crate) ip: Option<IpAddr>,
    pub(crate) port: u16,
}

/// Longest host name (RFC 1035), plus room for an IPv6 literal.
const MAX_HOST_LEN: usize = 255;

impl Target {
    /// Parses `host:port` (`[v6]:port` for IPv6); the port must be 1-65535.
    pub(crate) fn parse(authority: &str) -> Option<Target> {
        let (host, port) = authority.rsplit_once(':')?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        if host.is_empty() || host.len() > MAX_HOST_LEN {
            return None;
        }
        let ip = if let Some(inner) = host.strip_prefix('[') {
            Some(IpAddr::V6(inner.strip_suffix(']')?.parse().ok()?))
        } else if host.contains(':') {
            return None; // an IPv6 literal must be bracketed
        } else {
            host.parse().ok()
        };
        if ip.is_none()
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return None;
        }
        Some(Target {
            host: host.to_ascii_lowercase(),
            ip,
            port,
        })
    }

    fn destination(&self, resolved: Option<IpAddr>) -> Destination<'_> {
        Destination {
            host: &self.host,
            resolved,
            port: self.port,
        }
    }
}

/// One CONNECT stream, from request to record.
pub(crate) async fn serve_stream(
    tunnel: Arc<Tunnel>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    if request.method() == Method::POST && request.uri().path() == ward_api::PATH_DNS_QUERY {
        let client = crate::dns::Client {
            gateway: tunnel.gateway.clone(),
            tenant_id: tunnel.tenant_id.clone(),
            device_id: tunnel.device_id.clone(),
            peer: tunnel.peer,
            cert_expires_ms: tunnel.cert_expires_ms,
        };
        // Boxed: the DNS path must not grow every CONNECT stream's future.
        return Box::pin(crate::dns::serve(client, request, respond)).await;
    }
    let gateway = &tunnel.gateway;
    // Internet access control: an agent clicking through a warning.
    if request.method() == Method::POST && request.uri().path() == ward_api::PATH_PROCEED {
        crate::internet::tunnel::serve_proceed(&tunnel, &request, respond);
        return;
    }
    let source = tunnel.peer.ip();
    let mut result = ConnectionResult::new(
        gateway.records.clone(),
        &gateway.gateway_id,
        &tunnel.tenant_id,
        &tunnel.device_id,
        source,
    );

    let target = if request.method() == Method::CONNECT {
        request.uri().authority().and_then(|a| Target::parse(a.as_str()))
    } else {
        None
    };
    let Some(target) = target else {
        let asked = request.uri().authority().map(|a| a.as_str()).unwrap_or_default();
        result.set_destination(&asked.chars().take(MAX_HOST_LEN).collect::<String>(), 0);
        result.set_reason("bad_request");
        answer(
            &mut respond,
            StatusCode::BAD_REQUEST,
            &[(ward_api::HEADER_REASON, "bad_request")],
        );
        result.finish(End::Denied);
        return;
    };
    result.set_destination(&target.host, target.port);

    let (Some(policy), false) = (gateway.state.current(), gateway.drain.is_draining()) else {
        result.set_reason("gateway_draining");
        answer(&mut respond, StatusCode::SERVICE_UNAVAILABLE, &[]);
        result.finish(End::GatewayShutdown);
        return;
    };
    if let Some(user) = policy
        .tenant(&tunnel.tenant_id)
        .and_then(|t| t.user_of(&tunnel.device_id))
    {
        result.set_user(user);
    }

    // Decide on the name (or address) as asked, before anything touches the
    // network: a denied name is not even resolved.
    let now = now_ms();
    if now >= tunnel.cert_expires_ms {
        result.set_reason("certificate_expired");
        answer(
            &mut respond,
            StatusCode::FORBIDDEN,
            &[(ward_api::HEADER_REASON, "certificate_expired")],
        );
        result.finish(End::Denied);
        return;
    }
    let mut verdict = policy.decide(
        &tunnel.tenant_id,
        &tunnel.device_id,
        source,
        target.destination(None),
        now,
    );
    if !verdict.allowed {
        // Internet access control: no private application is internet traffic.
        if verdict.reason == "no_application"
            && policy.tenant(&tunnel.tenant_id).is_some_and(|t| t.internet().is_some())
        {
            let task = crate::internet::tunnel::serve_connect(tunnel.clone(), request, respond, result, policy, target);
            Box::pin(task).await;
            return;
        }
        refuse(&mut respond, result, &verdict);
        return;
    }

    // An address needs no resolving and no allocation; a name gives a list.
    let single;
    let resolved_addrs;
    let candidates: &[SocketAddr] = match target.ip {
        Some(ip) => {
            single = [SocketAddr::new(ip, target.port)];
            &single
        }
        None => match resolve(&target, gateway.dial_timeout).await {
            Ok(addrs) => {
                resolved_addrs = addrs;
                &resolved_addrs
            }
            Err(error) => {
                result.set_verdict(&verdict);
                answer(
                    &mut respond,
                    StatusCode::BAD_GATEWAY,
                    &[(ward_api::HEADER_ERROR, &error)],
                );
                result.finish(End::DialFailed);
                return;
            }
        },
    };
    // Try each address the name resolved to, in order (`localhost` may give
    // ::1 before 127.0.0.1): each is decided again before it is dialled, so
    // applications defined by address apply to what the name resolved to.
    let deadline = tokio::time::Instant::now() + gateway.dial_timeout;
    let mut last_error = String::from("no address");
    let mut refused_verdict = None;
    let mut connected = None;
    for &addr in candidates {
        let resolved = target.ip.is_none().then_some(addr.ip());
        if resolved.is_some() {
            let v = policy.decide(
                &tunnel.tenant_id,
                &tunnel.device_id,
                source,
                target.destination(resolved),
                now,
            );
            if !v.allowed {
                refused_verdict = Some(v);
                continue;
            }
            verdict = v;
        }
        // The record names the address dialled (the last one tried, if all fail).
        result.set_dest_addr(addr);
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                connected = Some((tcp, addr, resolved));
                break;
            }
            Ok(Err(e)) => last_error = format!("connect {addr}: {e}"),
            Err(_) => {
                last_error = format!("connect {addr}: timed out");
                break;
            }
        }
    }
    let Some((tcp, _addr, resolved)) = connected else {
        match refused_verdict {
            // Every address the name resolved to was denied.
            Some(v) if last_error == "no address" => refuse(&mut respond, result, &v),
            _ => {
                result.set_verdict(&verdict);
                answer(
                    &mut respond,
                    StatusCode::BAD_GATEWAY,
                    &[(ward_api::HEADER_ERROR, &last_error)],
                );
                result.finish(End::DialFailed);
            }
        }
        return;
    };
    result.set_verdict(&verdict);
    let _ = tcp.set_nodelay(true);

    let registered = gateway.registry.register(LiveConn::new(
        tunnel.tenant_id.clone(),
        tunnel.device_id.clone(),
        source,
        target.host.clone(),
        resolved,
        target.port,
        tunnel.cert_expires_ms,
    ));
    // A snapshot applied while we dialled was re-checked without us.
    if gateway.state.version() != Some(policy.version) {
        if let Some(latest) = gateway.state.current() {
            let again = latest.decide(
                &tunnel.tenant_id,
                &tunnel.device_id,
                source,
                target.destination(resolved),
                now_ms(),
            );
            if !again.allowed {
                drop(registered);
                refuse(&mut respond, result, &again);
                return;
            }
        }
    }

    journal_and_relay(gateway, request.into_body(), respond, tcp, result, registered).await;
}

/// The tail every relayed `CONNECT` stream shares (private and internet):
/// journal the connection before the `200` (from then on even a SIGKILL
/// leaves a record; `503` when it cannot be journaled), answer, relay until
/// either side ends or the connection is cancelled, and record it once.
pub(crate) async fn journal_and_relay(
    gateway: &Gateway,
    recv: RecvStream,
    mut respond: SendResponse<Bytes>,
    tcp: TcpStream,
    mut result: ConnectionResult,
    registered: crate::registry::Registered<'_>,
) {
    let bytes = Arc::new(Transferred::default());
    result.set_journaled();
    if !gateway.journal.open(result.record(), bytes.clone()) {
        drop(registered);
        answer(
            &mut respond,
            StatusCode::SERVICE_UNAVAILABLE,
            &[(ward_api::HEADER_ERROR, "the gateway cannot journal the connection")],
        );
        result.finish(End::Error);
        return;
    }
    let mut send = match respond.send_response(Response::new(()), false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(error = %e, "agent went away before the answer");
            result.finish(End::Closed);
            return;
        }
    };
    let end = relay(recv, &mut send, tcp, &bytes, registered.conn.cancelled_token()).await;
    let (up, down) = bytes.get();
    result.set_bytes(up, down);
    let end = match end {
        RelayEnd::Closed => End::Closed,
        RelayEnd::Cancelled => registered.conn.cancelled_because().unwrap_or(End::GatewayShutdown),
        RelayEnd::Error(e) => {
            tracing::debug!(error = %e, "relay failed");
            End::Error
        }
    };
    drop(registered);
    result.finish(end);
}

/// Every address the name resolves to, in the resolver's order.
async fn resolve(target: &Target, limit: Duration) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(limit, tokio::net::lookup_host((target.host.as_str(), target.port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("resolve {}: no address", target.host))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(format!("resolve {}: {e}", target.host)),
        Err(_) => Err(format!("resolve {}: timed out", target.host)),
    }
}

/// 403 naming the rule and the reason; the record goes out at once.
fn refuse(respond: &mut SendResponse<Bytes>, mut result: ConnectionResult, verdict: &Verdict) {
    result.set_verdict(verdict);
    let mut headers = vec![(ward_api::HEADER_REASON, verdict.reason)];
    if let Some(rule) = verdict.rule_id.as_deref() {
        headers.push((ward_api::HEADER_RULE, rule));
    }
    answer(respond, StatusCode::FORBIDDEN, &headers);
    result.finish(End::Denied);
}

/// A final answer without a body.
pub(crate) fn answer(respond: &mut SendResponse<Bytes>, status: StatusCode, headers: &[(&'static str, &str)]) {
    let mut response = Response::new(());
    *response.status_mut() = status;
    for (name, value) in headers {
        // Error texts come from the OS; keep only what a header can carry.
        let value = HeaderValue::from_str(value).unwrap_or_else(|_| {
            HeaderValue::from_str(&value.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?"))
                .unwrap_or(HeaderValue::from_static("error"))
        });
        response.headers_mut().insert(*name, value);
    }
    if let Err(e) = respond.send_response(response, true) {
        tracing::debug!(error = %e, "agent went away before the answer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of three arguments returns,
    /// without having to build the arguments.
    fn future_size<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn per_stream_future_stays_small() {
        let size = future_size(serve_stream);
        println!("serve_stream future: {size} bytes");
        assert!(
            size <= MAX_STREAM_FUTURE_BYTES,
            "serve_stream's future is {size} bytes; keep it under {MAX_STREAM_FUTURE_BYTES}"
        );
    }

    #[test]
    fn per_tunnel_future_stays_small() {
        let size = future_size(serve_tunnel);
        println!("serve_tunnel future: {size} bytes");
        assert!(size <= 16 * 1024, "serve_tunnel's future is {size} bytes");
    }

    #[test]
    fn authorities() {
        let t = Target::parse("DB.Corp.Example:5432").unwrap();
        assert_eq!((t.host.as_str(), t.ip, t.port), ("db.corp.example", None, 5432));
        let t = Target::parse("127.0.0.1:80").unwrap();
        assert_eq!(t.ip, Some("127.0.0.1".parse().unwrap()));
        let t = Target::parse("[::1]:443").unwrap();
        assert_eq!((t.host.as_str(), t.ip), ("[::1]", Some("::1".parse().unwrap())));
        for bad in [
            "",
            ":0",
            ":80",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "::1:80",
            "[::1:80",
            "[nope]:80",
            "a b:80",
            "host:8o",
            "[::1]]:80",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad:?}");
        }
    }
}
