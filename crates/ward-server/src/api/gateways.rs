//! Gateways: join codes and joining (operator), the snapshot stream and
//! record shipping (the gateway's side), and access records (admins).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use ward_api::{
    AccessLogEntry, AccessQuery, AccessRecordBatch, AccessRecordBatchResult, CreateGatewayJoinCode, ErrorBody, Gateway,
    GatewayJoinCode, GatewayJoinRequest, GatewayJoinResponse, GatewaySnapshot, Page, SnapshotQuery,
};
use ward_core::time::{parse_rfc3339, rfc3339};
use ward_core::{ErrorCode, Name, Permission, Target};
use ward_pki::Identity;
use ward_store::{AccessFilter, AccessRecordRow, GatewayRow, PageRequest};

use super::page;
use crate::audit::AuditNote;
use crate::auth::token;
use crate::ctx::{Anonymous, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::{now_ms, AppState};
use crate::{snapshot, tenant_ca};

const CODE_PREFIX: &str = "wgj_";
/// Prefix of gateway tokens.
pub const GATEWAY_TOKEN_PREFIX: &str = "wg_";
/// Gateway certificates last a year; a gateway rejoins to renew.
const GATEWAY_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a snapshot request waits for a change.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(25);
const MAX_BATCH: usize = 5000;

/// Make a one-time code with which a gateway joins the service (operators).
#[utoipa::path(post, path = "/api/v1/gateway-join-codes", tag = "gateways", request_body = CreateGatewayJoinCode,
    security(("bearer" = [])), responses((status = 201, body = GatewayJoinCode), (status = 403, body = ErrorBody)))]
pub async fn create_join_code(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateGatewayJoinCode>,
) -> ApiResult<(StatusCode, Json<GatewayJoinCode>)> {
    ctx.target(format!("gateway:{}", req.name));
    ctx.authorize(Permission::TenantsManage, Target::Tenants)?;
    let name = Name::parse(&req.name)?;
    let ttl = req.ttl_secs.unwrap_or(24 * 3600);
    if ttl == 0 || ttl > 30 * 24 * 3600 {
        return Err(ApiError::invalid("ttl_secs must be between 1 and 30 days"));
    }
    let secret = token::new_api_key_secret();
    let now = now_ms();
    let expires_at = now + i64::try_from(ttl).unwrap_or(0) * 1000;
    ctx.state
        .store
        .create_gateway_join_code(
            name.as_str(),
            &token::hash(&secret),
            &ctx.principal.account.name,
            now,
            expires_at,
        )
        .await?;
    let code = token::one_time_code(CODE_PREFIX, &secret, ctx.state.server_pin.as_deref());
    Ok((
        StatusCode::CREATED,
        Json(GatewayJoinCode {
            code,
            name: name.into_string(),
            expires_at: rfc3339(expires_at),
        }),
    ))
}

/// The gateways that joined (operators).
#[utoipa::path(get, path = "/api/v1/gateways", tag = "gateways", security(("bearer" = [])),
    responses((status = 200, body = Page<Gateway>), (status = 403, body = ErrorBody)))]
pub async fn list(ctx: Ctx) -> ApiResult<Json<Page<Gateway>>> {
    ctx.target("gateways");
    ctx.authorize(Permission::TenantsRead, Target::Tenants)?;
    let items = ctx
        .state
        .store
        .list_gateways()
        .await?
        .into_iter()
        .map(|g| {
            let report = ctx.state.gateway_reports.get(&g.id);
            with_report(
                Gateway {
                    id: g.id,
                    name: g.name,
                    addresses: g.addresses,
                    cert_expires_at: rfc3339(g.cert_not_after),
                    created_at: rfc3339(g.created_at),
                    last_seen_at: rfc3339(g.last_seen_at),
                    last_report_at: None,
                    tunnels_open: None,
                    connections_open: None,
                },
                report,
            )
        })
        .collect::<Vec<_>>();
    // The embedded gateway is not a joined one; it is listed last once it reports.
    let mut items = items;
    if let Some((at, report)) = ctx.state.gateway_reports.get(crate::gateway_link::EMBEDDED_GATEWAY_ID) {
        items.push(with_report(
            Gateway {
                id: crate::gateway_link::EMBEDDED_GATEWAY_ID.into(),
                name: crate::gateway_link::EMBEDDED_GATEWAY_ID.into(),
                addresses: vec![ctx.state.config.gateway_advertise()],
                cert_expires_at: String::new(),
                created_at: String::new(),
                last_seen_at: rfc3339(at),
                last_report_at: None,
                tunnels_open: None,
                connections_open: None,
            },
            Some((at, report)),
        ));
    }
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

fn with_report(mut g: Gateway, report: Option<(i64, ward_api::GatewayStatusReport)>) -> Gateway {
    if let Some((at, r)) = report {
        g.last_report_at = Some(rfc3339(at));
        g.tunnels_open = Some(r.tenants.iter().map(|l| l.tunnels).sum());
        g.connections_open = Some(r.tenants.iter().map(|l| l.connections).sum());
    }
    g
}

/// Join with a one-time code: the gateway sends a CSR and the addresses
/// agents dial, and gets its certificate from the service CA and its token.
#[utoipa::path(post, path = "/api/v1/gateway/join", tag = "gateways", request_body = GatewayJoinRequest,
    responses((status = 201, body = GatewayJoinResponse), (status = 401, body = ErrorBody)))]
pub async fn join(
    State(state): State<AppState>,
    anon: Anonymous,
    ApiJson(req): ApiJson<GatewayJoinRequest>,
) -> ApiResult<(StatusCode, Json<GatewayJoinResponse>)> {
    anon.note(AuditNote::target("gateway"));
    let refused = || ApiError::new(ErrorCode::Unauthenticated, "the join code is unknown, used or expired");
    let secret = token::code_secret(&req.code, CODE_PREFIX).ok_or_else(refused)?;
    if req.addresses.is_empty() || req.addresses.len() > 32 {
        return Err(ApiError::invalid("name 1 to 32 addresses agents will dial"));
    }
    let (mut names, mut ips) = (Vec::new(), Vec::new());
    for a in &req.addresses {
        match a.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => names.push(a.to_ascii_lowercase()),
        }
    }
    let gateway_id = ward_store::new_id("gw");
    let identity = Identity::gateway(&gateway_id).map_err(|_| ApiError::internal())?;
    let ca = tenant_ca::get_or_create(&state, &state.system_tenant_id, ward_core::SYSTEM_TENANT).await?;
    let leaf = ca
        .sign_csr_with_names(&req.csr_pem, &identity, &names, &ips, GATEWAY_CERT_TTL)
        .map_err(|e| ApiError::invalid(format!("the certificate request or addresses are not acceptable: {e}")))?;
    let gw_token = format!("{GATEWAY_TOKEN_PREFIX}{}", token::new_api_key_secret());
    let row = GatewayRow {
        id: gateway_id,
        addresses: req.addresses.clone(),
        cert_not_after: leaf.not_after_unix * 1000,
        ..Default::default()
    };
    let now = now_ms();
    let gw = state
        .store
        .join_gateway(&token::hash(secret), &row, &token::hash(&gw_token), now)
        .await?
        .ok_or_else(refused)?;
    anon.audit.update(|n| {
        n.target = Some(format!("gateway:{}", gw.name));
        n.detail = Some(format!("gateway {} joined", gw.id));
    });
    Ok((
        StatusCode::CREATED,
        Json(GatewayJoinResponse {
            gateway_id: gw.id,
            name: gw.name,
            cert_chain_pem: format!("{}{}", leaf.cert_pem, ca.cert_pem()),
            token: gw_token,
        }),
    ))
}

/// A gateway, by its `wg_` token.
pub struct GatewayCaller(pub GatewayRow);

impl FromRequestParts<AppState> for GatewayCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unknown = || ApiError::new(ErrorCode::Unauthenticated, "unknown gateway token");
        let bearer = token::bearer_with_prefix(&parts.headers, GATEWAY_TOKEN_PREFIX).ok_or_else(unknown)?;
        let gw = state
            .store
            .gateway_by_token_hash(&token::hash(bearer))
            .await?
            .ok_or_else(unknown)?;
        state.store.touch_gateway(&gw.id, now_ms()).await?;
        Ok(GatewayCaller(gw))
    }
}

/// The policy snapshot; waits up to about 25 s for one newer than `after`.
#[utoipa::path(get, path = "/api/v1/gateway/snapshot", tag = "gateways", params(SnapshotQuery),
    responses((status = 200, description = "The snapshot (JSON)"), (status = 401, body = ErrorBody)))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    _gateway: GatewayCaller,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Json<GatewaySnapshot>> {
    Ok(Json(snapshot::next_after(&state, q.after, SNAPSHOT_WAIT).await?))
}

/// A domain list a snapshot names, by the SHA-256 of its text: the text
/// (one entry a line). Gateways fetch each digest once and keep it.
#[utoipa::path(get, path = "/api/v1/gateway/domain-lists/{sha256}", tag = "gateways",
    params(("sha256" = String, Path, description = "Lowercase hex SHA-256 of the list's text")),
    responses((status = 200, description = "The list's canonical text", content_type = "text/plain", body = String),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_domain_list(
    State(state): State<AppState>,
    _gateway: GatewayCaller,
    axum::extract::Path(sha256): axum::extract::Path<String>,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    if !ward_api::is_sha256_hex(&sha256) {
        return Err(ApiError::invalid("a domain list digest is 64 lowercase hex characters"));
    }
    let text = state
        .store
        .domain_list_content_by_digest(&sha256)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("domain list {sha256}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// Ship access records. Ids already stored are skipped, so a retried batch is stored once.
#[utoipa::path(post, path = "/api/v1/gateway/records", tag = "gateways", request_body = AccessRecordBatch,
    responses((status = 200, body = AccessRecordBatchResult), (status = 401, body = ErrorBody)))]
pub async fn ship_records(
    State(state): State<AppState>,
    GatewayCaller(gw): GatewayCaller,
    ApiJson(batch): ApiJson<AccessRecordBatch>,
) -> ApiResult<Json<AccessRecordBatchResult>> {
    store_records(&state, &gw.id, batch).await.map(Json)
}

/// Redeem the one-time code a browser brought back from the portal to a
/// published host: once, bound to that host. Answers whose session it is.
#[utoipa::path(post, path = "/api/v1/gateway/web-sessions", tag = "gateways", request_body = ward_api::RedeemWebCode,
    responses((status = 200, body = ward_api::WebSession), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn redeem_web_code(
    State(state): State<AppState>,
    GatewayCaller(_gw): GatewayCaller,
    ApiJson(req): ApiJson<ward_api::RedeemWebCode>,
) -> ApiResult<Json<ward_api::WebSession>> {
    crate::web_access::redeem(&state, &req.host, &req.code).await.map(Json)
}

/// Report what the gateway has open now (tunnels and connections per
/// tenant), about every 15 seconds; kept in memory for the dashboard.
#[utoipa::path(post, path = "/api/v1/gateway/status", tag = "gateways", request_body = ward_api::GatewayStatusReport,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn report_status(
    State(state): State<AppState>,
    GatewayCaller(gw): GatewayCaller,
    ApiJson(report): ApiJson<ward_api::GatewayStatusReport>,
) -> ApiResult<StatusCode> {
    if report.tenants.len() > 100_000 {
        return Err(ApiError::invalid("too many tenants in one report"));
    }
    state.gateway_reports.put(&gw.id, report, now_ms());
    Ok(StatusCode::NO_CONTENT)
}

/// Store a batch from gateway `gateway_id` (the embedded gateway calls this directly).
pub async fn store_records(
    state: &AppState,
    gateway_id: &str,
    batch: AccessRecordBatch,
) -> ApiResult<AccessRecordBatchResult> {
    if batch.records.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("at most {MAX_BATCH} records a batch")));
    }
    let rows: Vec<AccessRecordRow> = batch
        .records
        .into_iter()
        .map(|r| AccessRecordRow {
            id: r.id,
            tenant_id: r.tenant_id,
            started_ms: r.started_ms,
            user_id: r.user_id,
            device_id: r.device_id,
            // The record names the gateway that made it; trust the credential over the body.
            gateway_id: gateway_id.to_owned(),
            source: r.source,
            dest_host: r.dest_host,
            dest_addr: r.dest_addr,
            port: i64::from(r.port),
            protocol: r.protocol,
            action: r.action,
            rule_id: r.rule_id,
            reason: r.reason,
            bytes_up: i64::try_from(r.bytes_up).unwrap_or(i64::MAX),
            bytes_down: i64::try_from(r.bytes_down).unwrap_or(i64::MAX),
            duration_ms: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
            end_reason: r.end,
            method: r.method,
            path: r.path,
            status: r.status.map(i64::from),
            kind: r.kind,
            url: r.url,
            upload_size: r.upload.as_ref().map(|u| i64::try_from(u.size).unwrap_or(i64::MAX)),
            upload_content_type: r.upload.as_ref().and_then(|u| u.content_type.clone()),
            upload_file_name: r.upload.as_ref().and_then(|u| u.file_name.clone()),
            upload_sha256: r.upload.map(|u| u.sha256),
            inspected: r.inspected,
            qtype: r.qtype,
            answer: r.answer,
        })
        .collect();
    let total = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    let accepted = u32::try_from(state.store.insert_access_records(&rows, now_ms()).await?).unwrap_or(u32::MAX);
    Ok(AccessRecordBatchResult {
        accepted,
        duplicates: total - accepted,
    })
}

/// The tenant's access records, newest first.
#[utoipa::path(get, path = "/api/v1/access-records", tag = "gateways", params(AccessQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AccessLogEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_records(ctx: Ctx, ApiQuery(q): ApiQuery<AccessQuery>) -> ApiResult<Json<Page<AccessLogEntry>>> {
    ctx.target("access-records");
    ctx.authorize(Permission::LogsRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let users: HashMap<String, String> = store
        .all_users(ctx.tenant_id())
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let user_id = match &q.user {
        Some(name) => Some(
            users
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| ApiError::not_found(format!("user {name}")))?,
        ),
        None => None,
    };
    if let Some(a) = &q.action {
        if a != "allow" && a != "deny" {
            return Err(ApiError::invalid("action must be allow or deny"));
        }
    }
    let since = match &q.since {
        Some(s) => Some(
            parse_rfc3339(s).ok_or_else(|| ApiError::invalid(format!("since must be an RFC 3339 time (got {s:?})")))?,
        ),
        None => None,
    };
    let filter = AccessFilter {
        user_id,
        device_id: q.device,
        action: q.action,
        since,
        kind: Some("private".into()),
        domain: None,
    };
    let p = store
        .list_access_records(ctx.tenant_id(), &filter, &PageRequest::new(q.cursor, q.limit))
        .await?;
    Ok(Json(page(p, |r| log_entry(r, &users))))
}

/// A stored record as administrators read it (`users`: id to name).
pub(crate) fn log_entry(r: AccessRecordRow, users: &HashMap<String, String>) -> AccessLogEntry {
    let upload = match (r.upload_size, r.upload_sha256) {
        (Some(size), Some(sha256)) => Some(ward_api::Upload {
            size: u64::try_from(size).unwrap_or(0),
            content_type: r.upload_content_type,
            file_name: r.upload_file_name,
            sha256,
        }),
        _ => None,
    };
    AccessLogEntry {
        user: users.get(&r.user_id).cloned().unwrap_or_else(|| r.user_id.clone()),
        id: r.id,
        time: rfc3339(r.started_ms),
        device_id: r.device_id,
        source: r.source,
        dest_host: r.dest_host,
        dest_addr: r.dest_addr,
        port: u16::try_from(r.port).unwrap_or(0),
        protocol: r.protocol,
        action: r.action,
        rule_id: r.rule_id,
        reason: r.reason,
        bytes_up: u64::try_from(r.bytes_up).unwrap_or(0),
        bytes_down: u64::try_from(r.bytes_down).unwrap_or(0),
        duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
        end: r.end_reason,
        gateway_id: r.gateway_id,
        method: r.method,
        path: r.path,
        status: r.status.and_then(|s| u16::try_from(s).ok()),
        kind: r.kind,
        url: r.url,
        upload,
        inspected: r.inspected,
        qtype: r.qtype,
        answer: r.answer,
    }
}
