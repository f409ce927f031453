//! TLS inspection of an agent's `CONNECT`: the gateway answers `200`, ends
//! the device's TLS itself with a certificate for the host the device asked
//! for (minted from the tenant's inspection CA, which the tenant's admins
//! install on their endpoints), and serves the requests inside as it serves
//! plain HTTP (http.rs): each one decided, paged or forwarded over the
//! gateway's own TLS to the site, and recorded with its URL and upload.
//!
//! Chosen ([`applies`]) for an agent's `CONNECT` (tunnel.rs) and a
//! `CONNECT` on the proxy port (proxy.rs) when the deciding rule asks for
//! inspection, the tenant has it on, and the host is on none of the
//! tenant's do-not-inspect lists. A blocked or warned host is inspected
//! too, when its rule asks: the browser then shows the block page or the
//! warning with its **Continue**.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Response, StatusCode};
use ward_inet::Host;

use tokio::io::{AsyncRead, AsyncWrite};

use super::http::{serve_streams, Front, H2Io, Principal};
use super::Judgement;
use crate::inbound::{answer, Tunnel};
use crate::records::{ConnectionResult, End};
use crate::state::{Inspection, TenantPolicy};
use crate::Gateway;

/// The device's TLS handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The record's reason when the device's TLS to the gateway fails: most
/// often the device does not trust the tenant's inspection CA.
pub(crate) const REASON_INSPECTION_HANDSHAKE: &str = "inspection_handshake_failed";

/// The inspection that applies to a request to `host` decided by
/// `judgement` in `tenant`: the rule asks, the tenant has it on, and the
/// host is on no do-not-inspect list.
pub(crate) fn applies(tenant: &TenantPolicy, judgement: &Judgement, host: &Host) -> Option<Arc<Inspection>> {
    if !judgement.inspect {
        return None;
    }
    tenant
        .internet()
        .and_then(|i| i.inspection.as_ref())
        .filter(|inspection| inspection.applies_to(host))
        .cloned()
}

/// The server side of an inspected connection to `host`; `None` (logged,
/// and `result` finished) when no certificate can be minted.
pub(crate) fn mint(
    inspection: &Inspection,
    host: &Host,
    result: ConnectionResult,
) -> Option<(Arc<tokio_rustls::rustls::ServerConfig>, ConnectionResult)> {
    match inspection.minter.server_config(&host.to_string()) {
        Ok(config) => Some((config, result)),
        Err(e) => {
            tracing::error!(host = %host, error = %e, "cannot mint an inspection certificate");
            let mut result = result;
            result.record_mut().inspected = true;
            result.set_reason("inspection_failed");
            result.finish(End::Error);
            None
        }
    }
}

/// Ends the device's TLS on `io` with `config` and serves the requests
/// inside. `result` is the connection's record: finished when the TLS
/// fails, dropped once the requests inside have their own records.
pub(crate) async fn serve_tls<I>(
    gateway: Arc<Gateway>,
    who: Principal,
    io: I,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    mut result: ConnectionResult,
    host: Host,
    port: u16,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    result.record_mut().inspected = true;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(host = %host, error = %e, "device refused the inspection certificate");
            result.set_reason(REASON_INSPECTION_HANDSHAKE);
            result.finish(End::Error);
            return;
        }
        Err(_) => {
            result.set_reason(REASON_INSPECTION_HANDSHAKE);
            result.finish(End::Error);
            return;
        }
    };
    result.discard();
    serve_streams(gateway, who, tls, Front::Inspected { host, port }).await;
}

/// Inspects an agent's `CONNECT` to `host:port`: `200`, then [`serve_tls`]
/// on the stream.
pub(crate) async fn serve_connect(
    tunnel: Arc<Tunnel>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    result: ConnectionResult,
    inspection: Arc<Inspection>,
    host: Host,
    port: u16,
) {
    let Some((config, result)) = mint(&inspection, &host, result) else {
        answer(
            &mut respond,
            StatusCode::BAD_GATEWAY,
            &[(ward_api::HEADER_ERROR, "the gateway cannot inspect this site")],
        );
        return;
    };
    let send = match respond.send_response(Response::new(()), false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(error = %e, "agent went away before the answer");
            result.finish(End::Closed);
            return;
        }
    };
    let io = H2Io::new(request.into_body(), send);
    let who = Principal::of_tunnel(&tunnel);
    serve_tls(tunnel.gateway.clone(), who, io, config, result, host, port).await;
}
