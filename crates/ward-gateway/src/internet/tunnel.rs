//! Internet traffic on an agent's tunnel: a `CONNECT` stream to a
//! destination that is no private application (decided, dialled, journaled,
//! answered and relayed like a private connection, but with the internet
//! rules and never to a private address), and the click-through of a
//! warning (`POST /.ward/proceed`).

use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::StatusCode;
use ward_api::{HEADER_PROCEED, HEADER_PROTOCOL, REASON_INTERNET_BLOCKED, REASON_INTERNET_WARN};
use ward_inet::Host;

use super::{dial, judge, DialError, Judgement, Outcome, Who};
use crate::inbound::{answer, Target, Tunnel};
use crate::records::{now_ms, ConnectionResult, End};
use crate::registry::LiveConn;
use crate::state::PolicyState;

/// `ward-reason` of internet traffic to a private address.
pub(crate) const REASON_PRIVATE_ADDRESS: &str = "internet_private_address";

/// Marks a record as web traffic decided by `judgement`.
pub(crate) fn set_judgement(result: &mut ConnectionResult, judgement: &Judgement) {
    let reason = judgement.reason();
    let record = result.record_mut();
    record.kind = "web".to_owned();
    record.action = judgement.action().to_owned();
    record.rule_id = judgement.rule_id.as_deref().map(str::to_owned);
    reason.clone_into(&mut record.reason);
    if let Some(user) = &judgement.user_id {
        user.clone_into(&mut record.user_id);
    }
}

/// The `ward-reason`, `ward-rule` and `ward-proceed` of a refusal.
pub(crate) fn refusal_headers(judgement: &Judgement) -> Vec<(&'static str, &str)> {
    let mut headers = Vec::with_capacity(3);
    match &judgement.outcome {
        Outcome::Block => headers.push((ward_api::HEADER_REASON, REASON_INTERNET_BLOCKED)),
        Outcome::Warn { token } => {
            headers.push((ward_api::HEADER_REASON, REASON_INTERNET_WARN));
            headers.push((HEADER_PROCEED, token.as_str()));
        }
        Outcome::Refused(reason) => headers.push((ward_api::HEADER_REASON, reason)),
        Outcome::Through { .. } => {}
    }
    if let Some(rule) = judgement.rule_id.as_deref() {
        headers.push((ward_api::HEADER_RULE, rule));
    }
    headers
}

/// A CONNECT stream the private-access rules know nothing about, of a
/// tenant with internet access control on.
pub(crate) async fn serve_connect(
    tunnel: Arc<Tunnel>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    mut result: ConnectionResult,
    policy: Arc<PolicyState>,
    target: Target,
) {
    let gateway = &tunnel.gateway;
    result.record_mut().kind = "web".to_owned();
    let plain_http = request
        .headers()
        .get(HEADER_PROTOCOL)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"http"));
    if plain_http {
        result.discard();
        super::http::serve_agent_stream(tunnel, request, respond, policy, target.port).await;
        return;
    }
    let Ok(host) = Host::parse(&target.host) else {
        result.set_reason("bad_request");
        answer(
            &mut respond,
            StatusCode::BAD_REQUEST,
            &[(ward_api::HEADER_REASON, "bad_request")],
        );
        result.finish(End::Denied);
        return;
    };
    let Some(tenant) = policy.tenant(&tunnel.tenant_id) else {
        result.set_reason("tenant_unknown");
        answer(
            &mut respond,
            StatusCode::FORBIDDEN,
            &[(ward_api::HEADER_REASON, "tenant_unknown")],
        );
        result.finish(End::Denied);
        return;
    };
    let judgement = judge(
        &gateway.internet,
        &tunnel.tenant_id,
        tenant,
        Who::Device(&tunnel.device_id),
        &host,
        target.port,
        now_ms(),
    );
    set_judgement(&mut result, &judgement);
    // Inspected (allowed, blocked or warned: the browser then shows the
    // page) when the rule asks, the tenant has it on, and the host is on no
    // do-not-inspect list.
    if let Some(inspection) = super::inspect::applies(tenant, &judgement, &host) {
        super::inspect::serve_connect(tunnel, request, respond, result, inspection, host, target.port).await;
        return;
    }
    if !judgement.lets_through() {
        answer(&mut respond, StatusCode::FORBIDDEN, &refusal_headers(&judgement));
        result.finish(End::Denied);
        return;
    }

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
            let record = result.record_mut();
            record.action = "block".to_owned();
            record.dest_addr = Some(ip.to_string());
            result.set_reason(REASON_PRIVATE_ADDRESS);
            answer(
                &mut respond,
                StatusCode::FORBIDDEN,
                &[(ward_api::HEADER_REASON, REASON_PRIVATE_ADDRESS)],
            );
            result.finish(End::Denied);
            return;
        }
        Err(DialError::Failed(error) | DialError::Tls(error)) => {
            answer(
                &mut respond,
                StatusCode::BAD_GATEWAY,
                &[(ward_api::HEADER_ERROR, &error)],
            );
            result.finish(End::DialFailed);
            return;
        }
    };
    result.set_dest_addr(addr);

    let source = tunnel.peer.ip();
    let registered = gateway.registry.register(
        LiveConn::new(
            tunnel.tenant_id.clone(),
            tunnel.device_id.clone(),
            source,
            host.to_string(),
            Some(addr.ip()),
            target.port,
            tunnel.cert_expires_ms,
        )
        .internet(None),
    );
    // A snapshot applied while we dialled was re-checked without us.
    if gateway.state.version() != Some(policy.version) {
        if let Some(latest) = gateway.state.current() {
            let again = latest
                .tenant(&tunnel.tenant_id)
                .map(|t| {
                    judge(
                        &gateway.internet,
                        &tunnel.tenant_id,
                        t,
                        Who::Device(&tunnel.device_id),
                        &host,
                        target.port,
                        now_ms(),
                    )
                })
                .filter(|j| !j.lets_through());
            if let Some(again) = again {
                drop(registered);
                set_judgement(&mut result, &again);
                answer(&mut respond, StatusCode::FORBIDDEN, &refusal_headers(&again));
                result.finish(End::Denied);
                return;
            }
        }
    }

    crate::inbound::journal_and_relay(gateway, request.into_body(), respond, tcp, result, registered).await;
}

/// `POST /.ward/proceed` with `ward-proceed: TOKEN` on a tunnel: the user
/// of the device clicks through a warning. `204` and a `proceed` record, or
/// `403 bad_request` for a token that is not this user's or has expired.
pub(crate) fn serve_proceed(tunnel: &Tunnel, request: &http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let gateway = &tunnel.gateway;
    let mut result = ConnectionResult::new(
        gateway.records.clone(),
        &gateway.gateway_id,
        &tunnel.tenant_id,
        &tunnel.device_id,
        tunnel.peer.ip(),
    );
    result.record_mut().kind = "web".to_owned();
    let now = now_ms();
    let token = request
        .headers()
        .get(HEADER_PROCEED)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let policy = gateway.state.current();
    let tenant = policy.as_deref().and_then(|p| p.tenant(&tunnel.tenant_id));
    let user = tenant.and_then(|t| t.user_of(&tunnel.device_id)).map(str::to_owned);
    if let Some(user) = &user {
        result.set_user(user);
    }
    let granted = match (tenant, tenant.and_then(|t| t.internet()), &user) {
        (Some(_), Some(internet), Some(user)) => super::redeem(
            &gateway.internet,
            &tunnel.tenant_id,
            user,
            internet.warn_minutes,
            token,
            now,
        ),
        _ => None,
    };
    match granted {
        Some(claim) => {
            result.set_destination(&claim.host, 0);
            let record = result.record_mut();
            record.action = "proceed".to_owned();
            record.rule_id = (!claim.rule_id.is_empty()).then_some(claim.rule_id);
            result.set_reason("rule_matched");
            answer(&mut respond, StatusCode::NO_CONTENT, &[]);
            result.finish(End::Closed);
        }
        None => {
            result.set_reason("bad_request");
            answer(
                &mut respond,
                StatusCode::FORBIDDEN,
                &[(ward_api::HEADER_REASON, "bad_request")],
            );
            result.finish(End::Denied);
        }
    }
}
