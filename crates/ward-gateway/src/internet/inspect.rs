//! TLS inspection of an agent's `CONNECT`: the gateway answers `200`, ends
//! the device's TLS itself with a certificate for the host the device asked
//! for (minted from the tenant's inspection CA, which the tenant's admins
//! install on their endpoints), and serves the requests inside as it serves
//! plain HTTP (http.rs): each one decided, paged or forwarded over the
//! gateway's own TLS to the site, and recorded with its URL and upload.
//!
//! Chosen in tunnel.rs when the deciding rule asks for inspection, the
//! tenant has it on, and the host is on none of the tenant's do-not-inspect
//! lists. A blocked or warned host is inspected too, when its rule asks: the
//! browser then shows the block page or the warning with its **Continue**.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Response, StatusCode};
use ward_inet::Host;

use super::http::{serve_streams, Front, H2Io};
use crate::inbound::{answer, Tunnel};
use crate::records::{ConnectionResult, End};
use crate::state::Inspection;

/// The device's TLS handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The record's reason when the device's TLS to the gateway fails: most
/// often the device does not trust the tenant's inspection CA.
pub(crate) const REASON_INSPECTION_HANDSHAKE: &str = "inspection_handshake_failed";

/// Inspects the `CONNECT` to `host:port`. `result` is the tunnel's record:
/// finished when the device's TLS fails, dropped once the requests inside
/// have their own records.
pub(crate) async fn serve(
    tunnel: Arc<Tunnel>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    mut result: ConnectionResult,
    inspection: Arc<Inspection>,
    host: Host,
    port: u16,
) {
    result.record_mut().inspected = true;
    let config = match inspection.minter.server_config(&host.to_string()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(host = %host, error = %e, "cannot mint an inspection certificate");
            result.set_reason("inspection_failed");
            answer(
                &mut respond,
                StatusCode::BAD_GATEWAY,
                &[(ward_api::HEADER_ERROR, "the gateway cannot inspect this site")],
            );
            result.finish(End::Error);
            return;
        }
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
    serve_streams(&tunnel, tls, Front::Inspected { host, port }).await;
}
