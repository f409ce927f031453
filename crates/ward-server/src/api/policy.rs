//! Applications, access rules, and the "would U reach H:P" what-if.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::StatusCode;
use axum::Json;
use ward_api::{
    Application, CreateApplication, CreateRule, ErrorBody, Page, Rule, RuleRef, RuleTest, RuleTestResult, RuleTestStep,
};
use ward_core::time::{parse_rfc3339, rfc3339};
use ward_core::{ErrorCode, Name, Permission};
use ward_policy::{Address, DeviceState, Host, PortRange, Protocol, Reason, Request, Verdict};
use ward_store::{AppRow, RuleRow};

use super::opt_time;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::policy::{self, parse_action, parse_posture};
use crate::state::now_ms;

fn app_view(a: AppRow) -> Application {
    Application {
        id: a.id,
        name: a.name,
        addresses: a.addresses,
        ports: a.ports,
        protocol: a.protocol,
        tags: a.tags,
        created_at: rfc3339(a.created_at),
        public_host: a.public_host,
        upstream_scheme: a.upstream_scheme,
    }
}

/// Names for ids, to show rules as people wrote them.
struct Names(HashMap<String, String>);

impl Names {
    async fn load(ctx: &Ctx) -> ApiResult<Names> {
        let store = &ctx.state.store;
        let t = ctx.tenant_id();
        let mut m = HashMap::new();
        m.extend(store.all_apps(t).await?.into_iter().map(|a| (a.id, a.name)));
        m.extend(store.all_users(t).await?.into_iter().map(|u| (u.id, u.name)));
        m.extend(store.all_groups(t).await?.into_iter().map(|g| (g.id, g.name)));
        Ok(Names(m))
    }

    fn of(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| self.0.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect()
    }
}

fn rule_view(r: RuleRow, names: &Names) -> Rule {
    Rule {
        apps: names.of(&r.app_ids),
        users: names.of(&r.user_ids),
        groups: names.of(&r.group_ids),
        id: r.id,
        priority: u32::try_from(r.priority).unwrap_or(u32::MAX),
        action: r.action,
        tags: r.tags,
        require_compliant_device: r.require_compliant,
        posture: r.posture,
        valid_from: opt_time(r.valid_from),
        valid_until: opt_time(r.valid_until),
        sources: r.sources,
        enabled: r.enabled,
        created_at: rfc3339(r.created_at),
        agentless: r.agentless,
    }
}

/// The tenant's applications.
#[utoipa::path(get, path = "/api/v1/apps", tag = "policy", security(("bearer" = [])),
    responses((status = 200, body = Page<Application>), (status = 403, body = ErrorBody)))]
pub async fn list_apps(ctx: Ctx) -> ApiResult<Json<Page<Application>>> {
    ctx.target("apps");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let apps = ctx.state.store.all_apps(ctx.tenant_id()).await?;
    Ok(Json(Page {
        items: apps.into_iter().map(app_view).collect(),
        next_cursor: None,
    }))
}

/// Create an application. It is denied to everyone until a rule allows it.
#[utoipa::path(post, path = "/api/v1/apps", tag = "policy", request_body = CreateApplication, security(("bearer" = [])),
    responses((status = 201, body = Application), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_app(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateApplication>,
) -> ApiResult<(StatusCode, Json<Application>)> {
    ctx.target(format!("app:{}", req.name));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let name = Name::parse(&req.name)?;
    let row = validated_app(
        AppRow {
            name: name.into_string(),
            ..Default::default()
        },
        &req.addresses,
        &req.ports,
        req.protocol.as_deref().unwrap_or("tcp"),
        &req.tags,
        req.public_host.as_deref(),
        req.upstream_scheme.as_deref().unwrap_or("http"),
    )?;
    let app = ctx.state.store.create_app(ctx.tenant_id(), &row, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(app_view(app))))
}

/// `row` with these addresses, ports, protocol, tags, public host (`None`
/// or `""`: not published) and upstream scheme, each checked.
fn validated_app(
    row: AppRow,
    addresses_in: &[String],
    ports_in: &[String],
    protocol: &str,
    tags: &[String],
    public_host: Option<&str>,
    upstream_scheme: &str,
) -> ApiResult<AppRow> {
    if addresses_in.is_empty() || ports_in.is_empty() {
        return Err(ApiError::invalid(
            "an application needs at least one address and one port",
        ));
    }
    if addresses_in.len() > 1000 || ports_in.len() > 1000 || tags.len() > 100 {
        return Err(ApiError::invalid("too many addresses, ports or tags"));
    }
    let mut addresses = Vec::new();
    for a in addresses_in {
        let parsed: Address = a
            .trim()
            .parse()
            .map_err(|e| ApiError::invalid(format!("address {a:?}: {e}")))?;
        addresses.push(parsed.to_string());
    }
    let mut ports = Vec::new();
    for p in ports_in {
        for range in PortRange::parse_list(p).map_err(|e| ApiError::invalid(format!("ports {p:?}: {e}")))? {
            ports.push(range.to_string());
        }
    }
    let protocol: Protocol = protocol
        .parse()
        .map_err(|e: ward_policy::UnknownProtocol| ApiError::invalid(e.to_string()))?;
    let tags = tags
        .iter()
        .map(|t| Name::parse(t).map(Name::into_string))
        .collect::<Result<Vec<_>, _>>()?;
    let public_host = public_host
        .filter(|h| !h.is_empty())
        .map(|h| parse_public_host(h).ok_or_else(|| ApiError::invalid(format!("public host {h:?} is not a DNS name"))))
        .transpose()?;
    let upstream_scheme = match upstream_scheme {
        s @ ("http" | "https") => s.to_owned(),
        other => {
            return Err(ApiError::invalid(format!(
                "upstream scheme must be http or https (got {other:?})"
            )))
        }
    };
    if public_host.is_some() && !matches!(parsed_first(&addresses), Some(Address::Domain(_) | Address::Ip(_))) {
        return Err(ApiError::invalid(
            "a published application's first address must be a host name or an IP address: the gateway proxies to it",
        ));
    }
    Ok(AppRow {
        addresses,
        ports,
        protocol: protocol.to_string(),
        tags,
        public_host,
        upstream_scheme,
        ..row
    })
}

/// Change an application: addresses, ports, protocol, tags, its public host
/// (publish, move or, with `""`, unpublish) and upstream scheme. Gateways
/// enforce the change with the next snapshot; connections to what the
/// application no longer covers are closed then.
#[utoipa::path(patch, path = "/api/v1/apps/{name}", tag = "policy", params(("name" = String, Path)),
    request_body = ward_api::UpdateApplication, security(("bearer" = [])),
    responses((status = 200, body = Application), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody)))]
pub async fn update_app(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<ward_api::UpdateApplication>,
) -> ApiResult<Json<Application>> {
    ctx.target(format!("app:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let app = store
        .app_by_name(ctx.tenant_id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("application {name}")))?;
    let public_host = match &req.public_host {
        Some(h) => Some(h.as_str()),
        None => app.public_host.as_deref(),
    };
    let row = validated_app(
        app.clone(),
        req.addresses.as_deref().unwrap_or(&app.addresses),
        req.ports.as_deref().unwrap_or(&app.ports),
        req.protocol.as_deref().unwrap_or(&app.protocol),
        req.tags.as_deref().unwrap_or(&app.tags),
        public_host,
        req.upstream_scheme.as_deref().unwrap_or(&app.upstream_scheme),
    )?;
    if !store.update_app(ctx.tenant_id(), &row).await? {
        return Err(ApiError::not_found(format!("application {name}")));
    }
    Ok(Json(app_view(row)))
}

/// Delete an application no rule names.
#[utoipa::path(delete, path = "/api/v1/apps/{name}", tag = "policy", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_app(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("app:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let app = store
        .app_by_name(ctx.tenant_id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("application {name}")))?;
    if let Some(r) = store
        .all_rules(ctx.tenant_id())
        .await?
        .iter()
        .find(|r| r.app_ids.contains(&app.id))
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "application {name} is named by the rule of priority {}; delete that rule first",
                r.priority
            ),
        ));
    }
    store.delete_app(ctx.tenant_id(), &app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's rules, highest priority first.
#[utoipa::path(get, path = "/api/v1/rules", tag = "policy", security(("bearer" = [])),
    responses((status = 200, body = Page<Rule>), (status = 403, body = ErrorBody)))]
pub async fn list_rules(ctx: Ctx) -> ApiResult<Json<Page<Rule>>> {
    ctx.target("rules");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let rules = ctx.state.store.all_rules(ctx.tenant_id()).await?;
    let names = Names::load(&ctx).await?;
    Ok(Json(Page {
        items: rules.into_iter().map(|r| rule_view(r, &names)).collect(),
        next_cursor: None,
    }))
}

/// Create a rule. Priorities are unique within the tenant; 1 is the highest.
#[utoipa::path(post, path = "/api/v1/rules", tag = "policy", request_body = CreateRule, security(("bearer" = [])),
    responses((status = 201, body = Rule), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_rule(ctx: Ctx, ApiJson(req): ApiJson<CreateRule>) -> ApiResult<(StatusCode, Json<Rule>)> {
    ctx.target(format!("rule:priority:{}", req.priority));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    if req.priority == 0 {
        return Err(ApiError::invalid("priority starts at 1 (the highest)"));
    }
    let action = parse_action(&req.action).ok_or_else(|| ApiError::invalid("action must be allow or block"))?;
    let posture = parse_posture(req.posture.as_deref().unwrap_or("enforce"))
        .ok_or_else(|| ApiError::invalid("posture must be enforce or observe"))?;
    if req.apps.is_empty() == req.tags.is_empty() {
        return Err(ApiError::invalid(
            "name the applications the rule covers, either by name (apps) or by tag (tags)",
        ));
    }
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let mut app_ids = Vec::new();
    for a in &req.apps {
        app_ids.push(
            store
                .app_by_name(t, a)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("application {a}")))?
                .id,
        );
    }
    let mut user_ids = Vec::new();
    for u in &req.users {
        user_ids.push(
            store
                .user_by_name(t, u)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user {u}")))?
                .id,
        );
    }
    let mut group_ids = Vec::new();
    for g in &req.groups {
        group_ids.push(
            store
                .group_by_name(t, g)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("group {g}")))?
                .id,
        );
    }
    let tags = req
        .tags
        .iter()
        .map(|t| Name::parse(t).map(Name::into_string))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                parse_rfc3339(s)
                    .ok_or_else(|| ApiError::invalid(format!("{field} must be an RFC 3339 time (got {s:?})")))
            })
            .transpose()
    };
    let valid_from = time("valid_from", &req.valid_from)?;
    let valid_until = time("valid_until", &req.valid_until)?;
    if let (Some(f), Some(u)) = (valid_from, valid_until) {
        if f >= u {
            return Err(ApiError::invalid("valid_from must be before valid_until"));
        }
    }
    let mut sources = Vec::new();
    for s in &req.sources {
        let net: ward_policy::IpNet = match s.parse() {
            Ok(n) => n,
            Err(_) => s
                .parse::<IpAddr>()
                .map(ward_policy::IpNet::from)
                .map_err(|_| ApiError::invalid(format!("source {s:?} is not a CIDR or an IP address")))?,
        };
        sources.push(net.to_string());
    }
    let row = RuleRow {
        priority: i64::from(req.priority),
        action: match action {
            ward_policy::Action::Allow => "allow".into(),
            ward_policy::Action::Block => "block".into(),
        },
        app_ids,
        tags,
        user_ids,
        group_ids,
        require_compliant: req.require_compliant_device,
        posture: match posture {
            ward_policy::PostureMode::Enforce => "enforce".into(),
            ward_policy::PostureMode::Observe => "observe".into(),
        },
        valid_from,
        valid_until,
        sources,
        enabled: req.enabled.unwrap_or(true),
        agentless: req.agentless,
        ..Default::default()
    };
    let rule = store.create_rule(t, &row, now_ms()).await?;
    let names = Names::load(&ctx).await?;
    Ok((StatusCode::CREATED, Json(rule_view(rule, &names))))
}

/// Enable or disable a rule, or give it another priority.
#[utoipa::path(patch, path = "/api/v1/rules/{id}", tag = "policy", params(("id" = String, Path)), request_body = ward_api::UpdateRule,
    security(("bearer" = [])), responses((status = 200, body = Rule), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "Another rule has that priority", body = ErrorBody)))]
pub async fn update_rule(
    ctx: Ctx,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ward_api::UpdateRule>,
) -> ApiResult<Json<Rule>> {
    ctx.target(format!("rule:{id}"));
    let mut detail = Vec::new();
    if let Some(enabled) = req.enabled {
        detail.push(if enabled {
            "enabled".to_owned()
        } else {
            "disabled".to_owned()
        });
    }
    if let Some(p) = req.priority {
        detail.push(format!("priority {p}"));
    }
    ctx.detail(detail.join(", "));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    if req.enabled.is_none() && req.priority.is_none() {
        return Err(ApiError::invalid("nothing to change: give enabled, priority or both"));
    }
    if req.priority == Some(0) {
        return Err(ApiError::invalid("priority starts at 1 (the highest)"));
    }
    let store = &ctx.state.store;
    if let Some(p) = req.priority {
        if !store.set_rule_priority(ctx.tenant_id(), &id, i64::from(p)).await? {
            return Err(ApiError::not_found(format!("rule {id}")));
        }
    }
    if let Some(enabled) = req.enabled {
        if !store.set_rule_enabled(ctx.tenant_id(), &id, enabled).await? {
            return Err(ApiError::not_found(format!("rule {id}")));
        }
    }
    let rule = store
        .rule_by_id(ctx.tenant_id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("rule {id}")))?;
    let names = Names::load(&ctx).await?;
    Ok(Json(rule_view(rule, &names)))
}

/// Put every rule of the tenant in a new order, at once: the priority
/// numbers in use are given out again, the smallest to the first id.
#[utoipa::path(post, path = "/api/v1/rules/reorder", tag = "policy", request_body = ward_api::ReorderRules,
    security(("bearer" = [])), responses((status = 200, body = Page<Rule>), (status = 400, body = ErrorBody),
    (status = 409, description = "The list is not exactly the tenant's rules (they changed meanwhile)", body = ErrorBody)))]
pub async fn reorder_rules(ctx: Ctx, ApiJson(req): ApiJson<ward_api::ReorderRules>) -> ApiResult<Json<Page<Rule>>> {
    ctx.target("rules");
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    if req.ids.len() > 10_000 {
        return Err(ApiError::invalid("too many ids"));
    }
    if !ctx.state.store.reorder_rules(ctx.tenant_id(), &req.ids).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "ids must name every rule of the tenant exactly once; the rules may have changed: list them and try again",
        ));
    }
    list_rules(ctx).await
}

/// Delete a rule.
#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "policy", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_rule(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("rule:{id}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    if ctx.state.store.delete_rule(ctx.tenant_id(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("rule {id}")))
    }
}

/// Would this user, on this device, reach this destination, and which rule decides? No traffic is sent.
#[utoipa::path(post, path = "/api/v1/rules/test", tag = "policy", request_body = RuleTest, security(("bearer" = [])),
    responses((status = 200, body = RuleTestResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_rules(ctx: Ctx, ApiJson(req): ApiJson<RuleTest>) -> ApiResult<Json<RuleTestResult>> {
    ctx.target(format!("user:{}", req.user));
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let (host, port) = split_host_port(&req.to)?;
    let source: IpAddr = match &req.source {
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::invalid(format!("source {s:?} is not an IP address")))?,
        None => IpAddr::from([0, 0, 0, 0]),
    };
    let now = match &req.at {
        Some(s) => {
            parse_rfc3339(s).ok_or_else(|| ApiError::invalid(format!("at must be an RFC 3339 time (got {s:?})")))?
        }
        None => now_ms(),
    };
    let store = &ctx.state.store;
    let user = store
        .user_by_name(ctx.tenant_id(), &req.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {}", req.user)))?;
    let device = match &req.device {
        Some(id) => {
            let d = store
                .device_by_id(ctx.tenant_id(), id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("device {id}")))?;
            if d.user_id != user.id {
                return Err(ApiError::invalid(format!("device {id} belongs to another user")));
            }
            Some(d)
        }
        None => None,
    };
    let tenant = policy::load(store, ctx.tenant_id()).await?;
    let groups = tenant.groups_of.get(&user.id).cloned().unwrap_or_default();
    let lower = host.to_ascii_lowercase();
    let request = Request {
        user_id: &user.id,
        groups: &groups,
        device: device.as_ref().map(|d| DeviceState { compliant: d.compliant }),
        source,
        host: Host::parse(&lower),
        resolved: None,
        port,
        protocol: Protocol::Tcp,
        now,
        agentless: false,
    };
    let explanation = tenant.compiled.explain(&request);
    let steps = explanation
        .rules
        .iter()
        .map(|r| RuleTestStep {
            rule: RuleRef {
                id: r.id.clone(),
                priority: r.priority,
            },
            matched: r.matched,
            why_not: r.mismatches.first().map(|m| m.to_string()),
        })
        .collect();
    let applications = explanation
        .applications
        .iter()
        .filter(|a| a.serves_port)
        .map(|a| a.name.clone())
        .collect();
    let decision = &explanation.decision;
    let mut result = RuleTestResult {
        decision: match decision.action {
            Verdict::Allow => "allow".into(),
            Verdict::Deny => "deny".into(),
        },
        rule: decision.rule.as_ref().map(|r| RuleRef {
            id: r.id.to_string(),
            priority: r.priority,
        }),
        reason: match decision.reason {
            Reason::RuleMatched => "rule_matched".into(),
            Reason::NoApplication => "no_application".into(),
            Reason::NoRuleMatched => "no_rule_matched".into(),
        },
        applications,
        steps,
        observed_noncompliant: decision.observed_noncompliant,
    };
    // A disabled user, or a revoked device, reaches nothing, whatever the rules say.
    let refusal = if user.disabled {
        Some("user_disabled")
    } else if device.as_ref().is_some_and(|d| d.is_revoked()) {
        Some("device_revoked")
    } else {
        None
    };
    if let Some(reason) = refusal {
        result.decision = "deny".into();
        result.rule = None;
        result.reason = reason.into();
    }
    Ok(Json(result))
}

fn parsed_first(addresses: &[String]) -> Option<Address> {
    addresses.first().and_then(|a| a.parse().ok())
}

/// A published host: a DNS name of at least two labels, each 1 to 63 of
/// letters, digits and inner hyphens, 253 characters at most; lowercased.
/// No IP addresses, wildcards, ports or trailing dots.
pub fn parse_public_host(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 253 || lower.parse::<IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = lower.split('.').collect();
    if labels.len() < 2 {
        return None;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // The last label is not all digits (no dotted numbers).
    let tld_ok = labels.last().is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()));
    (labels.iter().all(label_ok) && tld_ok).then_some(lower)
}

/// `host:port`, `[v6]:port`.
fn split_host_port(s: &str) -> ApiResult<(String, u16)> {
    let bad = || {
        ApiError::invalid(format!(
            "to must be HOST:PORT, such as db.corp.example:5432 (got {s:?})"
        ))
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        s.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    if host.is_empty() || host.len() > 253 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}
