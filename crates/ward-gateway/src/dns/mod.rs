//! The DNS filter: `POST /dns-query` ([`ward_api::PATH_DNS_QUERY`]) on an
//! agent's tunnel, body one DNS message, answer one DNS message.
//!
//! ```text
//! body (≤ 65535 bytes) ─► wire.rs: one standard query, one question
//!   │                      └─ otherwise FORMERR / NOTIMP (HTTP 400 without an id)
//!   ─► name ─► ward_inet::Host ─► TenantPolicy::decide_internet (port 53)
//!      ├─ internet off, device refused, unreadable name ─► REFUSED
//!      ├─ block / warn ─► NXDOMAIN, or the block address (tenant's setting)
//!      └─ allow / monitor ─► upstream.rs: the configured resolvers in turn
//!                            (SERVFAIL when none answers)
//!   ─► one access record (kind `dns`) per query
//! ```
//!
//! A tunnel has at most [`MAX_QUERIES_PER_TUNNEL`] queries in flight; more
//! are answered `SERVFAIL` at once (the client retries).

pub(crate) mod upstream;
pub(crate) mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use hickory_proto::op::ResponseCode;
use http::{HeaderValue, Response, StatusCode};
use ward_api::AccessRecord;
use ward_inet::{InternetAction, Reason};

use crate::records::{new_record_id, now_ms, RecordEmitter};
use crate::state::InternetVerdict;
use crate::Gateway;
use wire::{BlockMode, Parsed, Question};

/// Queries one tunnel may have in flight at once.
pub(crate) const MAX_QUERIES_PER_TUNNEL: usize = 128;
/// How long an agent may take to send a query's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// `Content-Type` of DNS messages (RFC 8484).
const DNS_MESSAGE: &str = "application/dns-message";

/// The DNS filter's share of the gateway: where to forward, and the queries
/// in flight per tunnel.
pub(crate) struct DnsFilter {
    upstreams: Vec<SocketAddr>,
    /// Queries in flight, by the tunnel's peer address (unique while the
    /// tunnel is up).
    inflight: Mutex<HashMap<SocketAddr, usize>>,
}

impl DnsFilter {
    pub(crate) fn new(upstreams: Vec<SocketAddr>) -> DnsFilter {
        DnsFilter {
            upstreams,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more query of the tunnel from `peer`, if it has one.
    fn slot(&self, peer: SocketAddr) -> Option<Slot<'_>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let count = inflight.entry(peer).or_insert(0);
        if *count >= MAX_QUERIES_PER_TUNNEL {
            return None;
        }
        *count += 1;
        Some(Slot { filter: self, peer })
    }
}

struct Slot<'a> {
    filter: &'a DnsFilter,
    peer: SocketAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut inflight = self.filter.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = inflight.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inflight.remove(&self.peer);
            }
        }
    }
}

/// The tunnel a query came on.
pub(crate) struct Client {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) tenant_id: Arc<str>,
    pub(crate) device_id: Arc<str>,
    pub(crate) peer: SocketAddr,
    pub(crate) cert_expires_ms: i64,
}

/// One query, from body to record.
pub(crate) async fn serve(client: Client, request: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let gateway = &client.gateway;
    let mut record = DnsRecord::new(gateway.records.clone(), &gateway.gateway_id, &client);
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(why) => {
            record.set("block", "bad_request", None);
            http_error(&mut respond, why);
            record.finish("denied");
            return;
        }
    };
    let question = match wire::parse_query(&body) {
        Parsed::Query(question) => question,
        Parsed::Reply { reply, rcode } => {
            record.set("block", "bad_request", None);
            record.answer(wire::rcode_text(rcode));
            send(&mut respond, reply);
            record.finish("denied");
            return;
        }
        Parsed::Unreadable => {
            record.set("block", "bad_request", None);
            http_error(&mut respond, "not a DNS message");
            record.finish("denied");
            return;
        }
    };
    record.question(&question);
    let (answer, end) = decide_and_answer(&client, &question, &mut record).await;
    match answer {
        Some(bytes) => {
            record.answer(wire::answer_text(&bytes));
            send(&mut respond, bytes);
        }
        None => http_error(&mut respond, "cannot encode the answer"),
    }
    record.finish(end);
}

/// The answer to a readable query, and the record's `end`.
async fn decide_and_answer(
    client: &Client,
    question: &Question,
    record: &mut DnsRecord,
) -> (Option<Vec<u8>>, &'static str) {
    let gateway = &client.gateway;
    let refuse = |record: &mut DnsRecord, reason: &str| {
        record.set("block", reason, None);
        (wire::error_answer(question, ResponseCode::Refused), "denied")
    };
    let Some(_slot) = gateway.dns.slot(client.peer) else {
        record.set("block", "busy", None);
        return (wire::error_answer(question, ResponseCode::ServFail), "error");
    };
    let (Some(policy), false) = (gateway.state.current(), gateway.drain.is_draining()) else {
        record.set("block", "gateway_draining", None);
        return (wire::error_answer(question, ResponseCode::ServFail), "gateway_shutdown");
    };
    let now = now_ms();
    if now >= client.cert_expires_ms {
        return refuse(record, "certificate_expired");
    }
    let Some(tenant) = policy.tenant(&client.tenant_id) else {
        return refuse(record, "tenant_unknown");
    };
    if let Some(user) = tenant.user_of(&client.device_id) {
        record.user(user);
    }
    let Ok(host) = ward_inet::Host::parse(&question.name_text()) else {
        return refuse(record, "bad_name");
    };
    record.host(&host.to_string());
    let (user_id, decision) = match tenant.decide_internet(&client.device_id, &host, 53, now) {
        InternetVerdict::Refused(reason) => return refuse(record, reason),
        InternetVerdict::Decided { user_id, decision } => {
            record.user(&user_id);
            (user_id, decision)
        }
    };
    let reason = match decision.reason {
        Reason::RuleMatched => "rule_matched",
        Reason::NoRuleMatched => "no_rule_matched",
    };
    let rule = decision.rule.as_ref().map(|r| r.id.as_ref());
    // A warned name resolves once the user has clicked the warning through
    // (on a page, or on the agent's); until then it is answered as blocked,
    // and recorded as the warning it is.
    let warned = decision.action == InternetAction::Warn;
    let granted = warned
        && gateway
            .internet
            .grants
            .is_live(&client.tenant_id, &user_id, &host.to_string(), now);
    if !decision.lets_through() && !granted {
        record.set(if warned { "warn" } else { "block" }, reason, rule);
        let mode = tenant
            .internet()
            .map(|i| BlockMode::from_settings(&i.dns))
            .unwrap_or(BlockMode::NxDomain);
        return (wire::blocked_answer(question, mode).map(|(bytes, _)| bytes), "denied");
    }
    let action = if decision.action == InternetAction::Monitor {
        "monitor"
    } else {
        "allow"
    };
    record.set(action, reason, rule);
    match upstream::forward(&gateway.dns.upstreams, question).await {
        Some(bytes) => (Some(bytes), "closed"),
        None => (wire::error_answer(question, ResponseCode::ServFail), "dial_failed"),
    }
}

/// The body, at most one DNS message long, within [`BODY_TIMEOUT`].
async fn read_body(mut body: RecvStream) -> Result<Vec<u8>, &'static str> {
    let read = async {
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|_| "the query's stream failed")?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if out.len() + chunk.len() > wire::MAX_MESSAGE {
                return Err("a DNS message is at most 65535 bytes");
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err("the query's body did not arrive in time"))
}

/// `200` with one DNS message.
fn send(respond: &mut SendResponse<Bytes>, message: Vec<u8>) {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    match respond.send_response(response, false) {
        Ok(mut stream) => {
            if let Err(e) = stream.send_data(Bytes::from(message), true) {
                tracing::debug!(error = %e, "agent went away before the DNS answer");
            }
        }
        Err(e) => tracing::debug!(error = %e, "agent went away before the DNS answer"),
    }
}

/// `400` naming what was wrong (`ward-reason: bad_request`, `ward-error`).
fn http_error(respond: &mut SendResponse<Bytes>, why: &'static str) {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .headers_mut()
        .insert(ward_api::HEADER_REASON, HeaderValue::from_static("bad_request"));
    response
        .headers_mut()
        .insert(ward_api::HEADER_ERROR, HeaderValue::from_static(why));
    if let Err(e) = respond.send_response(response, true) {
        tracing::debug!(error = %e, "agent went away before the answer");
    }
}

/// The record of one query; emitted once, by `finish` or, if the task ends
/// any other way, by `Drop` (`end = "error"`).
struct DnsRecord {
    record: Option<AccessRecord>,
    started: Instant,
    emitter: RecordEmitter,
}

impl DnsRecord {
    fn new(emitter: RecordEmitter, gateway_id: &str, client: &Client) -> DnsRecord {
        DnsRecord {
            record: Some(AccessRecord {
                id: new_record_id(),
                started_ms: now_ms(),
                tenant_id: client.tenant_id.to_string(),
                device_id: client.device_id.to_string(),
                gateway_id: gateway_id.to_owned(),
                source: client.peer.ip().to_string(),
                port: 53,
                protocol: "dns".to_owned(),
                action: "block".to_owned(),
                reason: "not_decided".to_owned(),
                kind: "dns".to_owned(),
                ..AccessRecord::default()
            }),
            started: Instant::now(),
            emitter,
        }
    }

    fn with(&mut self, f: impl FnOnce(&mut AccessRecord)) {
        if let Some(record) = self.record.as_mut() {
            f(record);
        }
    }

    fn set(&mut self, action: &str, reason: &str, rule: Option<&str>) {
        self.with(|r| {
            action.clone_into(&mut r.action);
            reason.clone_into(&mut r.reason);
            r.rule_id = rule.map(str::to_owned);
        });
    }

    fn question(&mut self, question: &Question) {
        let name = question.name_text();
        let qtype = question.qtype_text();
        self.with(|r| {
            r.dest_host = name;
            r.qtype = Some(qtype);
        });
    }

    fn host(&mut self, host: &str) {
        self.with(|r| host.clone_into(&mut r.dest_host));
    }

    fn user(&mut self, user_id: &str) {
        self.with(|r| user_id.clone_into(&mut r.user_id));
    }

    fn answer(&mut self, text: String) {
        self.with(|r| r.answer = Some(text));
    }

    fn finish(mut self, end: &str) {
        self.emit(end);
    }

    fn emit(&mut self, end: &str) {
        if let Some(mut record) = self.record.take() {
            end.clone_into(&mut record.end);
            record.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.emitter.emit(record, false);
        }
    }
}

impl Drop for DnsRecord {
    fn drop(&mut self) {
        self.emit("error");
    }
}
