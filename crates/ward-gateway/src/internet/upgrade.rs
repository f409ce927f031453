//! WebSockets through the filtering proxy: a plain-HTTP (or inspected)
//! request asking to upgrade to `websocket`, once decided and allowed by
//! `http::handle`, goes to the site on a connection of its own (never the
//! pool); when the site answers `101`, both sides are upgraded and relayed
//! byte for byte, registered like a tunnel (a new snapshot that no longer
//! allows the host cuts it), and recorded once when it ends, with its URL,
//! `101` and the bytes each way. Any other answer goes back as it is.

use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::http::{strip_hop_by_hop, DialedAddr, Principal, ProxyBody, RequestRecord};
use super::proxy::Counted;
use crate::records::{ConnectionResult, End};
use crate::registry::LiveConn;
use crate::relay::Transferred;
use crate::Gateway;

/// Whether `request` asks to become a WebSocket.
pub(crate) fn is_websocket<B>(request: &Request<B>) -> bool {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    request.version() == http::Version::HTTP_11 && upgrade && connection
}

/// Forwards an allowed WebSocket request to `uri` (absolute, the host
/// decided), with `host` as its Host header. `result` is its record.
pub(crate) async fn forward(
    gateway: &Arc<Gateway>,
    who: &Principal,
    mut result: ConnectionResult,
    mut request: Request<Incoming>,
    uri: Uri,
    host: HeaderValue,
) -> Response<ProxyBody> {
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.insert(header::HOST, host);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut upstream_request = Request::new(Empty::<bytes::Bytes>::new());
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    *upstream_request.headers_mut() = headers;

    let failed = |mut result: ConnectionResult, status: StatusCode, why: &str| {
        tracing::debug!(error = %why, "WebSocket upstream failed");
        result.record_mut().status = Some(status.as_u16());
        result.finish(End::DialFailed);
        let mut response = Response::new(ProxyBody::Page(Full::new(bytes::Bytes::from_static(
            b"the gateway could not reach this site\n",
        ))));
        *response.status_mut() = status;
        response
    };
    let dialed = match gateway.internet.dialer.connect(uri).await {
        Ok(dialed) => dialed,
        Err(e) => return failed(result, StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let addr = dialed.addr();
    result.set_dest_addr(addr);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(dialed).await {
        Ok(handshake) => handshake,
        Err(e) => return failed(result, StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "WebSocket upstream connection ended");
        }
    });
    let mut response = match sender.send_request(upstream_request).await {
        Ok(response) => response,
        Err(e) => return failed(result, StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    result.record_mut().status = Some(response.status().as_u16());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Declined: the site's answer, as any other.
        let (mut parts, inner) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.extensions.insert(DialedAddr(addr));
        let record = RequestRecord::new(result, None);
        return Response::from_parts(
            parts,
            ProxyBody::Upstream {
                inner,
                record,
                lease: None,
            },
        );
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let mut answer = Response::new(ProxyBody::Page(Full::new(bytes::Bytes::new())));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = response.headers().clone();

    let gateway = gateway.clone();
    let live = LiveConn::new(
        who.tenant_id.clone(),
        who.device_id.clone(),
        who.source,
        result.record().dest_host.clone(),
        Some(addr.ip()),
        result.record().port,
        i64::MAX,
    )
    .internet(who.user_id.clone());
    tokio::spawn(async move {
        let registered = gateway.registry.register(live);
        let bytes = Arc::new(Transferred::default());
        let end = match tokio::join!(client_upgrade, upstream_upgrade) {
            (Ok(client), Ok(upstream)) => {
                let mut client = Counted {
                    inner: TokioIo::new(client),
                    bytes: bytes.clone(),
                };
                let mut upstream = TokioIo::new(upstream);
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                        Ok(_) => End::Closed,
                        Err(_) => End::Error,
                    },
                    _ = registered.conn.cancelled_token().cancelled() => {
                        registered.conn.cancelled_because().unwrap_or(End::GatewayShutdown)
                    }
                }
            }
            _ => End::Error,
        };
        let (up, down) = bytes.get();
        result.set_bytes(up, down);
        drop(registered);
        result.finish(end);
    });
    answer
}
