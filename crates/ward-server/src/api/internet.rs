//! Internet access control: the tenant's internet settings, domain lists
//! (imported from files or URLs), internet rules and their what-if, proxy
//! credentials, the agent's routing, and the web and DNS logs.
//!
//! Big lists are parsed, edited and compiled on blocking threads
//! (`spawn_blocking`), never on the async workers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, StatusCode};
use axum::Json;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ward_api::{
    AccessLogEntry, CreateDomainList, CreateInternetRule, DeviceRouting, DnsSettings, DomainListEntries,
    DomainListImport, DomainListInfo, ErrorBody, InternetRuleInfo, InternetRuleTest, InternetRuleTestResult,
    InternetSettings, NewProxyCredential, Page, ProxyCredential, TopEntry, TopQuery, UpdateDomainList,
    UpdateInternetRule, UpdateInternetSettings, WebLogQuery,
};
use ward_core::time::{parse_rfc3339, rfc3339};
use ward_core::{ErrorCode, Name, Permission};
use ward_inet::{
    CompiledInternetPolicy, DomainList, Host, InternetAction, InternetPolicyInput, InternetRequest, InternetRule,
    ListFormat, NamedDomainList,
};
use ward_pki::CertificateAuthority;
use ward_store::{
    AccessFilter, DefaultList, DomainListRow, InternetRuleRow, InternetSettingsRow, ListContent, ListDeletion,
    PageRequest, ProxyCredentialRow, Store, TenantCaRow,
};

use super::{opt_time, page};
use crate::api::devices::DeviceCaller;
use crate::api::gateways::log_entry;
use crate::ctx::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{now_ms, AppState};

/// The largest list file (or download) imported.
pub const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// How long a download of a list may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The lists every tenant gets with its internet settings, never inspected by default.
const DEFAULT_LISTS: [(&str, &str, &str); 2] = [
    (
        "banking",
        "Banks and payment services: never inspected by default",
        "*.americanexpress.com\n*.bankofamerica.com\n*.barclays.co.uk\n*.bnpparibas\n*.chase.com\n\
         *.citi.com\n*.citibank.com\n*.commerzbank.de\n*.creditagricole.fr\n*.db.com\n*.deutsche-bank.de\n\
         *.discover.com\n*.hsbc.com\n*.hsbc.co.uk\n*.ing.com\n*.intesasanpaolo.com\n*.lloydsbank.com\n\
         *.mastercard.com\n*.natwest.com\n*.paypal.com\n*.rbc.com\n*.santander.com\n*.societegenerale.fr\n\
         *.tdbank.com\n*.ubs.com\n*.usbank.com\n*.visa.com\n*.wellsfargo.com\n*.wise.com\n",
    ),
    (
        "health",
        "Health care and health records: never inspected by default",
        "*.aetna.com\n*.anthem.com\n*.cigna.com\n*.clevelandclinic.org\n*.cvs.com\n*.healthcare.gov\n\
         *.kaiserpermanente.org\n*.mayoclinic.org\n*.medicare.gov\n*.mychart.com\n*.myhealth.va.gov\n\
         *.nhs.uk\n*.uhc.com\n*.walgreens.com\n*.webmd.com\n*.who.int\n",
    ),
];

// ---- shared helpers -------------------------------------------------------------

/// A list's content from its parsed form.
fn content_of(list: &DomainList) -> ListContent {
    let text = list.as_text().to_owned();
    ListContent {
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        entries: i64::try_from(list.len()).unwrap_or(i64::MAX),
        text,
    }
}

fn default_lists() -> Vec<DefaultList> {
    DEFAULT_LISTS
        .iter()
        .map(|(name, description, text)| DefaultList {
            name: (*name).into(),
            description: (*description).into(),
            content: content_of(&DomainList::from_text(text).unwrap_or_default()),
        })
        .collect()
}

/// The tenant's settings, made with their defaults the first time.
pub(crate) async fn settings_row(store: &Store, tenant_id: &str) -> ApiResult<InternetSettingsRow> {
    Ok(store
        .internet_settings_or_init(tenant_id, &default_lists(), now_ms())
        .await?)
}

/// Settings of a tenant that never touched them: what the snapshot and the
/// agent's routing assume (internet access control on, allow by default).
pub(crate) fn default_settings() -> InternetSettingsRow {
    InternetSettingsRow {
        enabled: true,
        default_action: "allow".into(),
        dns_block_mode: "nxdomain".into(),
        warn_minutes: 60,
        ..Default::default()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::internal()
    })
}

fn parse_action(s: &str) -> Option<InternetAction> {
    match s {
        "allow" => Some(InternetAction::Allow),
        "block" => Some(InternetAction::Block),
        "warn" => Some(InternetAction::Warn),
        "monitor" => Some(InternetAction::Monitor),
        _ => None,
    }
}

fn action_str(a: InternetAction) -> &'static str {
    match a {
        InternetAction::Allow => "allow",
        InternetAction::Block => "block",
        InternetAction::Warn => "warn",
        InternetAction::Monitor => "monitor",
    }
}

/// The tenant's rules (ids) and the ids of the lists they or `extra_lists`
/// (the do-not-inspect ones) name, each once.
async fn rules_and_named_lists(
    store: &Store,
    tenant_id: &str,
    extra_lists: &[String],
) -> ApiResult<(Vec<InternetRule>, Vec<String>)> {
    let rows = store.all_internet_rules(tenant_id).await?;
    let mut named: Vec<String> = Vec::new();
    for id in rows.iter().flat_map(|r| r.list_ids.iter()).chain(extra_lists) {
        if !named.contains(id) {
            named.push(id.clone());
        }
    }
    let rules = rows
        .into_iter()
        .map(|r| InternetRule {
            id: r.id,
            priority: u32::try_from(r.priority).unwrap_or(u32::MAX),
            action: parse_action(&r.action).unwrap_or(InternetAction::Block),
            global_allow: r.global_allow,
            users: r.user_ids,
            groups: r.group_ids,
            lists: r.list_ids,
            inspect: r.inspect,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            enabled: r.enabled,
        })
        .collect();
    Ok((rules, named))
}

/// The tenant's internet policy input: every rule (ids), and only the lists
/// named by rules or by `extra_lists` (the do-not-inspect ones), parsed.
pub(crate) async fn load_policy(
    store: &Store,
    tenant_id: &str,
    default_action: &str,
    extra_lists: &[String],
) -> ApiResult<InternetPolicyInput> {
    let (rules, named) = rules_and_named_lists(store, tenant_id, extra_lists).await?;
    let contents = store.domain_list_contents(tenant_id, &named).await?;
    let lists = blocking(move || {
        contents
            .into_iter()
            .map(|(id, text)| NamedDomainList {
                domains: DomainList::from_text(&text).unwrap_or_else(|e| {
                    tracing::error!(list = %id, error = %e, "a stored domain list does not parse; it is left empty");
                    DomainList::new()
                }),
                id,
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(InternetPolicyInput {
        default_action: parse_action(default_action).unwrap_or_default(),
        rules,
        lists,
    })
}

/// The same as gateways get it: the rules, and the lists by digest (never
/// their content, which gateways fetch once per digest).
pub(crate) async fn load_policy_refs(
    store: &Store,
    tenant_id: &str,
    default_action: &str,
    extra_lists: &[String],
) -> ApiResult<(InternetPolicyInput, Vec<ward_api::SnapshotListRef>)> {
    let (rules, named) = rules_and_named_lists(store, tenant_id, extra_lists).await?;
    let refs = store
        .domain_list_digests(tenant_id, &named)
        .await?
        .into_iter()
        .map(|(id, sha256, entries)| ward_api::SnapshotListRef {
            id,
            sha256,
            entries: u64::try_from(entries).unwrap_or(0),
        })
        .collect();
    let policy = InternetPolicyInput {
        default_action: parse_action(default_action).unwrap_or_default(),
        rules,
        lists: Vec::new(),
    };
    Ok((policy, refs))
}

/// The inspection CA's context when sealed under the master key: bound to
/// the tenant and to this use.
fn inspection_context(tenant_id: &str) -> Vec<u8> {
    format!("{tenant_id}/inspection-ca").into_bytes()
}

/// The tenant's inspection CA, unsealed (cert and key PEM).
pub(crate) fn open_inspection_ca(state: &AppState, tenant_id: &str, row: &TenantCaRow) -> Option<(String, String)> {
    match CertificateAuthority::from_sealed(
        &row.cert_pem,
        &row.sealed_key,
        &state.master_key,
        &inspection_context(tenant_id),
    ) {
        Ok(ca) => Some((ca.cert_pem(), ca.key_pem())),
        Err(e) => {
            tracing::error!(tenant = %tenant_id, error = %e, "cannot open the inspection CA: is this the master key it was sealed with?");
            None
        }
    }
}

async fn ensure_inspection_ca(ctx: &Ctx, tenant: &str) -> ApiResult<()> {
    let ca =
        CertificateAuthority::generate(&format!("Ward inspection {}", ctx.principal.tenant.name)).map_err(pki_error)?;
    let (cert_pem, sealed_key) = ca
        .to_sealed(&ctx.state.master_key, &inspection_context(tenant))
        .map_err(pki_error)?;
    ctx.state
        .store
        .set_inspection_ca(tenant, &TenantCaRow { cert_pem, sealed_key })
        .await?;
    Ok(())
}

fn pki_error(e: ward_pki::PkiError) -> ApiError {
    tracing::error!(error = %e, "certificate authority error");
    ApiError::internal()
}

/// Ids to names, for lists, users and groups.
struct Names(HashMap<String, String>);

impl Names {
    async fn load(store: &Store, t: &str) -> ApiResult<Names> {
        let mut m = HashMap::new();
        m.extend(store.all_domain_lists(t).await?.into_iter().map(|l| (l.id, l.name)));
        m.extend(store.all_users(t).await?.into_iter().map(|u| (u.id, u.name)));
        m.extend(store.all_groups(t).await?.into_iter().map(|g| (g.id, g.name)));
        Ok(Names(m))
    }

    fn of(&self, ids: &[String]) -> Vec<String> {
        ids.iter().map(|id| self.one(id)).collect()
    }

    fn one(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

// ---- settings ---------------------------------------------------------------------

fn settings_view(s: &InternetSettingsRow, names: &Names) -> InternetSettings {
    InternetSettings {
        enabled: s.enabled,
        default_action: parse_action(&s.default_action).unwrap_or_default(),
        dns: DnsSettings {
            block_mode: s.dns_block_mode.clone(),
            block_ipv4: s.dns_block_ipv4.clone(),
            block_ipv6: s.dns_block_ipv6.clone(),
        },
        inspection: s.inspection,
        do_not_inspect: names.of(&s.do_not_inspect),
        bypass: s.bypass.clone(),
        warn_minutes: u32::try_from(s.warn_minutes).unwrap_or(60),
    }
}

/// A bypass entry normalised: `name`, `*.name` or a CIDR block.
fn parse_bypass(entry: &str) -> ApiResult<String> {
    let e = entry.trim();
    let bad = || {
        ApiError::invalid(format!(
            "bypass entry {entry:?} is not a domain, a *.wildcard or a CIDR block"
        ))
    };
    if e.contains('/') {
        let net: ward_policy::IpNet = e.parse().map_err(|_| bad())?;
        return Ok(net.to_string());
    }
    if let Ok(ip) = e.parse::<std::net::IpAddr>() {
        return Ok(ward_policy::IpNet::from(ip).to_string());
    }
    let (prefix, name) = match e.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", e),
    };
    let name = ward_inet::DomainName::parse(name).map_err(|_| bad())?;
    Ok(format!("{prefix}{name}"))
}

/// The tenant's internet settings (made with their defaults the first time).
#[utoipa::path(get, path = "/api/v1/internet/settings", tag = "internet", security(("bearer" = [])),
    responses((status = 200, body = InternetSettings), (status = 403, body = ErrorBody)))]
pub async fn get_settings(ctx: Ctx) -> ApiResult<Json<InternetSettings>> {
    ctx.target("internet-settings");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let s = settings_row(store, ctx.tenant_id()).await?;
    let names = Names::load(store, ctx.tenant_id()).await?;
    Ok(Json(settings_view(&s, &names)))
}

/// Change the tenant's internet settings; absent fields stay as they are.
#[utoipa::path(put, path = "/api/v1/internet/settings", tag = "internet", request_body = UpdateInternetSettings,
    security(("bearer" = [])),
    responses((status = 200, body = InternetSettings), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_settings(
    ctx: Ctx,
    ApiJson(req): ApiJson<UpdateInternetSettings>,
) -> ApiResult<Json<InternetSettings>> {
    ctx.target("internet-settings");
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let mut s = settings_row(store, t).await?;
    if let Some(e) = req.enabled {
        s.enabled = e;
    }
    if let Some(a) = req.default_action {
        if !matches!(a, InternetAction::Allow | InternetAction::Block) {
            return Err(ApiError::invalid("default_action must be allow or block"));
        }
        s.default_action = action_str(a).into();
    }
    if let Some(dns) = req.dns {
        if !matches!(dns.block_mode.as_str(), "nxdomain" | "address") {
            return Err(ApiError::invalid("dns.block_mode must be nxdomain or address"));
        }
        let v4 = dns
            .block_ipv4
            .map(|a| {
                a.parse::<std::net::Ipv4Addr>()
                    .map(|a| a.to_string())
                    .map_err(|_| ApiError::invalid(format!("dns.block_ipv4 {a:?} is not an IPv4 address")))
            })
            .transpose()?;
        let v6 = dns
            .block_ipv6
            .map(|a| {
                a.parse::<std::net::Ipv6Addr>()
                    .map(|a| a.to_string())
                    .map_err(|_| ApiError::invalid(format!("dns.block_ipv6 {a:?} is not an IPv6 address")))
            })
            .transpose()?;
        if dns.block_mode == "address" && v4.is_none() && v6.is_none() {
            return Err(ApiError::invalid(
                "dns.block_mode address needs block_ipv4, block_ipv6 or both",
            ));
        }
        s.dns_block_mode = dns.block_mode;
        s.dns_block_ipv4 = v4;
        s.dns_block_ipv6 = v6;
    }
    if let Some(i) = req.inspection {
        s.inspection = i;
    }
    if let Some(lists) = req.do_not_inspect {
        let mut ids = Vec::new();
        for name in &lists {
            let l = store
                .domain_list_by_name(t, name)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("domain list {name}")))?;
            if !ids.contains(&l.id) {
                ids.push(l.id);
            }
        }
        s.do_not_inspect = ids;
    }
    if let Some(bypass) = req.bypass {
        if bypass.len() > 10_000 {
            return Err(ApiError::invalid("at most 10000 bypass entries"));
        }
        s.bypass = bypass.iter().map(|b| parse_bypass(b)).collect::<ApiResult<_>>()?;
    }
    if let Some(m) = req.warn_minutes {
        if !(1..=1440).contains(&m) {
            return Err(ApiError::invalid("warn_minutes must be 1 to 1440"));
        }
        s.warn_minutes = i64::from(m);
    }
    if s.inspection && s.inspection_ca.is_none() {
        ensure_inspection_ca(&ctx, t).await?;
    }
    store.update_internet_settings(t, &s, now_ms()).await?;
    let names = Names::load(store, t).await?;
    Ok(Json(settings_view(&s, &names)))
}

/// How a downloaded inspection CA certificate is saved.
const INSPECTION_CA_DISPOSITION: &str = "attachment; filename=\"ward-inspection-ca.pem\"";

/// The tenant's TLS-inspection CA certificate (PEM), for admins to install
/// as trusted on the endpoints whose traffic is inspected. Made the first
/// time inspection is turned on; `inspection_ca_missing` until then.
#[utoipa::path(get, path = "/api/v1/internet/inspection-ca", tag = "internet", security(("bearer" = [])),
    responses((status = 200, description = "The CA certificate, as `ward-inspection-ca.pem`", content_type = "application/x-pem-file", body = String),
    (status = 403, body = ErrorBody),
    (status = 404, description = "The tenant never turned inspection on (`inspection_ca_missing`)", body = ErrorBody)))]
pub async fn inspection_ca(ctx: Ctx) -> ApiResult<([(header::HeaderName, &'static str); 2], String)> {
    ctx.target("internet-inspection-ca");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let settings = ctx.state.store.internet_settings(ctx.tenant_id()).await?;
    let Some(ca) = settings.and_then(|s| s.inspection_ca) else {
        return Err(ApiError::new(
            ErrorCode::InspectionCaMissing,
            "this tenant has no inspection CA: it is made when TLS inspection is first turned on",
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (header::CONTENT_DISPOSITION, INSPECTION_CA_DISPOSITION),
        ],
        ca.cert_pem,
    ))
}

// ---- domain lists -----------------------------------------------------------------

fn list_view(l: DomainListRow) -> DomainListInfo {
    DomainListInfo {
        id: l.id,
        name: l.name,
        description: l.description,
        entries: u64::try_from(l.entries).unwrap_or(0),
        source_url: l.source_url,
        sha256: l.sha256,
        created_at: rfc3339(l.created_at),
        updated_at: rfc3339(l.updated_at),
    }
}

async fn list_by_name(store: &Store, t: &str, name: &str) -> ApiResult<DomainListRow> {
    store
        .domain_list_by_name(t, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("domain list {name}")))
}

/// Parse a file, then store it as the list `name` (made if missing).
async fn import_bytes(
    ctx: &Ctx,
    name: &str,
    body: Vec<u8>,
    format: Option<ListFormat>,
    source_url: Option<&str>,
    description: &str,
) -> ApiResult<(StatusCode, DomainListImport)> {
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let (content, report) = blocking(move || {
        let parsed = ward_inet::parse_list(&body, format);
        (content_of(&parsed.list), parsed.report)
    })
    .await?;
    let now = now_ms();
    let (status, row) = match store.domain_list_by_name(t, name).await? {
        Some(l) => {
            if !store
                .set_domain_list_content(t, &l.id, &content, source_url, now)
                .await?
            {
                return Err(ApiError::not_found(format!("domain list {name}")));
            }
            (StatusCode::OK, list_by_name(store, t, name).await?)
        }
        None => (
            StatusCode::CREATED,
            store
                .create_domain_list(t, name, description, &content, source_url, now)
                .await?,
        ),
    };
    Ok((
        status,
        DomainListImport {
            list: list_view(row),
            report,
        },
    ))
}

/// Download a list file: http or https, 30 s, at most 64 MiB.
/// Resolves names for list downloads and keeps only public addresses: a
/// tenant's admin must not make the server fetch from the server's own
/// network (its loopback services, a cloud's metadata address).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<std::net::SocketAddr> = found
                .into_iter()
                .filter(|a| !ward_core::net::is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address (internal addresses are refused)").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// An internal address written in a URL (a name is checked when resolved).
fn internal_literal(u: &reqwest::Url) -> bool {
    let host = u.host_str().unwrap_or_default();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<std::net::IpAddr>().is_ok_and(ward_core::net::is_internal)
}

/// Downloads a list. Unless the operator lets internet traffic reach
/// internal addresses (`--internet-allow-private`), a URL, a redirect or a
/// name resolving to a loopback, private or link-local address is refused.
async fn fetch(url: &str, allow_internal: bool) -> ApiResult<Vec<u8>> {
    let u = reqwest::Url::parse(url).map_err(|e| ApiError::invalid(format!("url {url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url must be an http:// or https:// URL with a host"));
    }
    if !allow_internal && internal_literal(&u) {
        return Err(ApiError::invalid(format!(
            "url {url:?} points at an internal address; lists are downloaded from the internet"
        )));
    }
    let mut builder = reqwest::Client::builder();
    builder = if allow_internal {
        builder.redirect(reqwest::redirect::Policy::limited(5))
    } else {
        builder
            .dns_resolver(PublicOnly)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if internal_literal(attempt.url()) {
                    attempt.error("redirected to an internal address")
                } else {
                    attempt.follow()
                }
            }))
    };
    let client = builder
        .connect_timeout(Duration::from_secs(10))
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build the HTTP client");
            ApiError::internal()
        })?;
    let failed = |e: reqwest::Error| ApiError::invalid(format!("cannot download {url}: {}", short(&e)));
    let mut resp = client.get(u).send().await.map_err(failed)?;
    if !resp.status().is_success() {
        return Err(ApiError::invalid(format!(
            "cannot download {url}: HTTP {}",
            resp.status()
        )));
    }
    if resp.content_length().is_some_and(|n| n > MAX_LIST_BYTES as u64) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{url} is larger than {MAX_LIST_BYTES} bytes"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_LIST_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("{url} is larger than {MAX_LIST_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        // The innermost cause says why (refused, no such name, an internal
        // address refused by `PublicOnly`).
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        let mut last = None;
        while let Some(inner) = cause {
            last = Some(inner.to_string());
            cause = inner.source();
        }
        return match last {
            Some(why) => format!("cannot connect: {why}"),
            None => "cannot connect".into(),
        };
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    s
}

/// The tenant's domain lists.
#[utoipa::path(get, path = "/api/v1/domain-lists", tag = "internet", security(("bearer" = [])),
    responses((status = 200, body = Page<DomainListInfo>), (status = 403, body = ErrorBody)))]
pub async fn list_lists(ctx: Ctx) -> ApiResult<Json<Page<DomainListInfo>>> {
    ctx.target("domain-lists");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let lists = ctx.state.store.all_domain_lists(ctx.tenant_id()).await?;
    Ok(Json(Page {
        items: lists.into_iter().map(list_view).collect(),
        next_cursor: None,
    }))
}

/// Create a list from names, from a URL, or empty.
#[utoipa::path(post, path = "/api/v1/domain-lists", tag = "internet", request_body = CreateDomainList, security(("bearer" = [])),
    responses((status = 201, body = DomainListImport), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_list(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateDomainList>,
) -> ApiResult<(StatusCode, Json<DomainListImport>)> {
    ctx.target(format!("domain-list:{}", req.name));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let name = Name::parse(&req.name)?.into_string();
    let store = &ctx.state.store;
    if store.domain_list_by_name(ctx.tenant_id(), &name).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("domain list {name} already exists"),
        ));
    }
    if let Some(url) = &req.url {
        if !req.domains.is_empty() {
            return Err(ApiError::invalid("give domains or a url, not both"));
        }
        let body = fetch(url, ctx.state.config.internet_allow_private).await?;
        let (_, import) = import_bytes(&ctx, &name, body, None, Some(url), &req.description).await?;
        return Ok((StatusCode::CREATED, Json(import)));
    }
    // Typed names must all be right: nothing is made otherwise.
    if let Err(e) = DomainList::from_entries(req.domains.iter().map(String::as_str)) {
        return Err(ApiError::invalid(format!(
            "invalid domain {:?}: {}",
            req.domains.get(e.line - 1).cloned().unwrap_or_default(),
            e.error
        )));
    }
    let text = req.domains.join("\n");
    let (_, mut import) = import_bytes(
        &ctx,
        &name,
        text.into_bytes(),
        Some(ListFormat::Plain),
        None,
        &req.description,
    )
    .await?;
    import.report.first_ignored.clear();
    Ok((StatusCode::CREATED, Json(import)))
}

/// One list.
#[utoipa::path(get, path = "/api/v1/domain-lists/{name}", tag = "internet", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = DomainListInfo), (status = 404, body = ErrorBody)))]
pub async fn show_list(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<DomainListInfo>> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    Ok(Json(list_view(
        list_by_name(&ctx.state.store, ctx.tenant_id(), &name).await?,
    )))
}

/// Add or remove entries, or change the description.
#[utoipa::path(patch, path = "/api/v1/domain-lists/{name}", tag = "internet", params(("name" = String, Path)),
    request_body = UpdateDomainList, security(("bearer" = [])),
    responses((status = 200, body = DomainListInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_list(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateDomainList>,
) -> ApiResult<Json<DomainListInfo>> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let list = list_by_name(store, t, &name).await?;
    if req.add.is_empty() && req.remove.is_empty() && req.description.is_none() {
        return Err(ApiError::invalid("nothing to change: give add, remove or description"));
    }
    let add = DomainList::from_entries(req.add.iter().map(String::as_str)).map_err(|e| {
        ApiError::invalid(format!(
            "invalid domain {:?}: {}",
            req.add.get(e.line - 1).cloned().unwrap_or_default(),
            e.error
        ))
    })?;
    let remove = DomainList::from_entries(req.remove.iter().map(String::as_str)).map_err(|e| {
        ApiError::invalid(format!(
            "invalid domain {:?}: {}",
            req.remove.get(e.line - 1).cloned().unwrap_or_default(),
            e.error
        ))
    })?;
    if !add.is_empty() || !remove.is_empty() {
        let text = store
            .domain_list_content(t, &list.id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("domain list {name}")))?;
        let content = blocking(move || {
            let gone: HashSet<&str> = remove.as_text().lines().collect();
            let mut seen = HashSet::new();
            let mut out = String::with_capacity(text.len() + add.as_text().len());
            for line in text.lines().chain(add.as_text().lines()) {
                if !gone.contains(line) && seen.insert(line) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            DomainList::from_text(&out).map(|l| content_of(&l))
        })
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "a stored domain list does not parse");
            ApiError::internal()
        })?;
        store
            .set_domain_list_content(t, &list.id, &content, None, now_ms())
            .await?;
    }
    if let Some(d) = &req.description {
        store.set_domain_list_description(t, &list.id, d, now_ms()).await?;
    }
    Ok(Json(list_view(list_by_name(store, t, &name).await?)))
}

/// Delete a list no rule and no setting names.
#[utoipa::path(delete, path = "/api/v1/domain-lists/{name}", tag = "internet", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody),
    (status = 409, description = "A rule or the do-not-inspect setting names the list", body = ErrorBody)))]
pub async fn delete_list(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let list = list_by_name(store, ctx.tenant_id(), &name).await?;
    match store.delete_domain_list(ctx.tenant_id(), &list.id).await? {
        ListDeletion::Deleted => Ok(StatusCode::NO_CONTENT),
        ListDeletion::NotFound => Err(ApiError::not_found(format!("domain list {name}"))),
        ListDeletion::InUse => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "domain list {name} is in use by an internet rule or the do-not-inspect setting; change those first"
            ),
        )),
    }
}

/// `PUT .../entries` and `GET .../entries` query parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// Import: `hosts`, `adblock` or `plain` (detected when absent).
    pub format: Option<String>,
    /// Import: download the list from this http(s) URL instead of reading
    /// the body (the URL is kept for a refresh).
    pub url: Option<String>,
    /// Read: only entries containing this text.
    pub contains: Option<String>,
    /// Read: at most this many (default 100, at most 10000).
    pub limit: Option<u32>,
}

/// Replace the list's entries with a file (hosts, adblock or plain; up to
/// 64 MiB), making the list if it is missing.
#[utoipa::path(put, path = "/api/v1/domain-lists/{name}/entries", tag = "internet", params(("name" = String, Path), EntriesQuery),
    request_body(content = String, content_type = "text/plain"), security(("bearer" = [])),
    responses((status = 200, body = DomainListImport), (status = 201, body = DomainListImport), (status = 400, body = ErrorBody),
    (status = 413, body = ErrorBody)))]
pub async fn import_entries(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<DomainListImport>)> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let name = Name::parse(&name)?.into_string();
    let format = q
        .format
        .as_deref()
        .map(|f| {
            f.parse::<ListFormat>()
                .map_err(|_| ApiError::invalid("format must be hosts, adblock or plain"))
        })
        .transpose()?;
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the list is larger than {MAX_LIST_BYTES} bytes"),
        ),
        _ => ApiError::new(
            ErrorCode::InvalidRequest,
            format!("cannot read the body: {}", r.body_text()),
        ),
    })?;
    let (status, import) = match &q.url {
        Some(url) => {
            if !body.is_empty() {
                return Err(ApiError::invalid("give a url or a body, not both"));
            }
            let fetched = fetch(url, ctx.state.config.internet_allow_private).await?;
            import_bytes(&ctx, &name, fetched, format, Some(url), "").await?
        }
        None => import_bytes(&ctx, &name, body.to_vec(), format, None, "").await?,
    };
    Ok((status, Json(import)))
}

/// The list's entries (canonical form), optionally only those containing a text.
#[utoipa::path(get, path = "/api/v1/domain-lists/{name}/entries", tag = "internet", params(("name" = String, Path), EntriesQuery),
    security(("bearer" = [])), responses((status = 200, body = DomainListEntries), (status = 404, body = ErrorBody)))]
pub async fn list_entries(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> ApiResult<Json<DomainListEntries>> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let list = list_by_name(store, ctx.tenant_id(), &name).await?;
    let text = store
        .domain_list_content(ctx.tenant_id(), &list.id)
        .await?
        .unwrap_or_default();
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000) as usize;
    let contains = q.contains.unwrap_or_default().to_ascii_lowercase();
    let out = blocking(move || {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for line in text.lines().filter(|l| l.contains(contains.as_str())) {
            total += 1;
            if entries.len() < limit {
                entries.push(line.to_owned());
            }
        }
        DomainListEntries { entries, total }
    })
    .await?;
    Ok(Json(out))
}

/// Import the list again from its URL.
#[utoipa::path(post, path = "/api/v1/domain-lists/{name}/refresh", tag = "internet", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = DomainListImport), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
pub async fn refresh_list(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<DomainListImport>> {
    ctx.target(format!("domain-list:{name}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let list = list_by_name(&ctx.state.store, ctx.tenant_id(), &name).await?;
    let url = list
        .source_url
        .ok_or_else(|| ApiError::invalid(format!("domain list {name} was not imported from a URL")))?;
    let body = fetch(&url, ctx.state.config.internet_allow_private).await?;
    let (_, import) = import_bytes(&ctx, &name, body, None, Some(&url), "").await?;
    Ok(Json(import))
}

// ---- internet rules ---------------------------------------------------------------

fn rule_view(r: InternetRuleRow, names: &Names) -> InternetRuleInfo {
    InternetRuleInfo {
        users: names.of(&r.user_ids),
        groups: names.of(&r.group_ids),
        lists: names.of(&r.list_ids),
        id: r.id,
        description: r.description,
        priority: u32::try_from(r.priority).unwrap_or(u32::MAX),
        action: parse_action(&r.action).unwrap_or(InternetAction::Block),
        global_allow: r.global_allow,
        inspect: r.inspect,
        enabled: r.enabled,
        valid_from: opt_time(r.valid_from),
        valid_until: opt_time(r.valid_until),
        created_at: rfc3339(r.created_at),
    }
}

async fn user_ids(store: &Store, t: &str, names: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for u in names {
        out.push(
            store
                .user_by_name(t, u)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user {u}")))?
                .id,
        );
    }
    Ok(out)
}

async fn group_ids(store: &Store, t: &str, names: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for g in names {
        out.push(
            store
                .group_by_name(t, g)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("group {g}")))?
                .id,
        );
    }
    Ok(out)
}

async fn list_ids(store: &Store, t: &str, names: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for l in names {
        out.push(list_by_name(store, t, l).await?.id);
    }
    Ok(out)
}

/// Refuse a rule that would mean something other than it seems.
fn check_rule(r: &InternetRuleRow) -> ApiResult<()> {
    if r.priority < 1 {
        return Err(ApiError::invalid("priority starts at 1 (the highest)"));
    }
    if r.user_ids.len() > 10_000 || r.group_ids.len() > 10_000 || r.list_ids.len() > 1000 {
        return Err(ApiError::invalid("too many users, groups or lists"));
    }
    let rule = InternetRule {
        id: r.id.clone(),
        priority: u32::try_from(r.priority).unwrap_or(u32::MAX),
        action: parse_action(&r.action).unwrap_or(InternetAction::Block),
        global_allow: r.global_allow,
        users: vec![],
        groups: vec![],
        lists: vec![],
        inspect: r.inspect,
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        enabled: r.enabled,
    };
    match rule.problems().first() {
        Some(p) => Err(ApiError::invalid(*p)),
        None => Ok(()),
    }
}

/// A rule's `valid_from` or `valid_until`: an RFC 3339 time.
fn rule_time(field: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|s| {
        parse_rfc3339(s).ok_or_else(|| ApiError::invalid(format!("{field} must be an RFC 3339 time (got {s:?})")))
    })
    .transpose()
}

/// A changed `valid_from` or `valid_until`: an RFC 3339 time, or empty
/// (`""`, or `null`) for no bound.
fn changed_rule_time(field: &str, v: &str) -> ApiResult<Option<i64>> {
    match v.trim() {
        "" => Ok(None),
        t => rule_time(field, Some(t)),
    }
}

/// The tenant's internet rules, by priority.
#[utoipa::path(get, path = "/api/v1/internet/rules", tag = "internet", security(("bearer" = [])),
    responses((status = 200, body = Page<InternetRuleInfo>), (status = 403, body = ErrorBody)))]
pub async fn list_rules(ctx: Ctx) -> ApiResult<Json<Page<InternetRuleInfo>>> {
    ctx.target("internet-rules");
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let rules = store.all_internet_rules(ctx.tenant_id()).await?;
    let names = Names::load(store, ctx.tenant_id()).await?;
    Ok(Json(Page {
        items: rules.into_iter().map(|r| rule_view(r, &names)).collect(),
        next_cursor: None,
    }))
}

/// Create an internet rule.
#[utoipa::path(post, path = "/api/v1/internet/rules", tag = "internet", request_body = CreateInternetRule, security(("bearer" = [])),
    responses((status = 201, body = InternetRuleInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_rule(
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateInternetRule>,
) -> ApiResult<(StatusCode, Json<InternetRuleInfo>)> {
    ctx.target(format!("internet-rule:priority:{}", req.priority));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let row = InternetRuleRow {
        priority: i64::from(req.priority),
        action: action_str(req.action).into(),
        global_allow: req.global_allow,
        inspect: req.inspect,
        enabled: req.enabled.unwrap_or(true),
        valid_from: rule_time("valid_from", req.valid_from.as_deref())?,
        valid_until: rule_time("valid_until", req.valid_until.as_deref())?,
        description: req.description.clone(),
        ..Default::default()
    };
    check_rule(&row)?;
    let row = InternetRuleRow {
        user_ids: user_ids(store, t, &req.users).await?,
        group_ids: group_ids(store, t, &req.groups).await?,
        list_ids: list_ids(store, t, &req.lists).await?,
        ..row
    };
    let rule = store.create_internet_rule(t, &row, now_ms()).await?;
    let names = Names::load(store, t).await?;
    Ok((StatusCode::CREATED, Json(rule_view(rule, &names))))
}

/// One internet rule.
#[utoipa::path(get, path = "/api/v1/internet/rules/{id}", tag = "internet", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = InternetRuleInfo), (status = 404, body = ErrorBody)))]
pub async fn show_rule(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<Json<InternetRuleInfo>> {
    ctx.target(format!("internet-rule:{id}"));
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let rule = store
        .internet_rule_by_id(ctx.tenant_id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("internet rule {id}")))?;
    let names = Names::load(store, ctx.tenant_id()).await?;
    Ok(Json(rule_view(rule, &names)))
}

/// Change an internet rule.
#[utoipa::path(patch, path = "/api/v1/internet/rules/{id}", tag = "internet", params(("id" = String, Path)),
    request_body = UpdateInternetRule, security(("bearer" = [])),
    responses((status = 200, body = InternetRuleInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_rule(
    ctx: Ctx,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateInternetRule>,
) -> ApiResult<Json<InternetRuleInfo>> {
    ctx.target(format!("internet-rule:{id}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let mut r = store
        .internet_rule_by_id(t, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("internet rule {id}")))?;
    if let Some(e) = req.enabled {
        r.enabled = e;
    }
    if let Some(p) = req.priority {
        r.priority = i64::from(p);
    }
    if let Some(a) = req.action {
        r.action = action_str(a).into();
    }
    if let Some(g) = req.global_allow {
        r.global_allow = g;
    }
    if let Some(i) = req.inspect {
        r.inspect = i;
    }
    if let Some(d) = req.description {
        r.description = d;
    }
    if let Some(t) = &req.valid_from {
        r.valid_from = changed_rule_time("valid_from", t)?;
    }
    if let Some(t) = &req.valid_until {
        r.valid_until = changed_rule_time("valid_until", t)?;
    }
    check_rule(&r)?;
    if let Some(u) = &req.users {
        r.user_ids = user_ids(store, t, u).await?;
    }
    if let Some(g) = &req.groups {
        r.group_ids = group_ids(store, t, g).await?;
    }
    if let Some(l) = &req.lists {
        r.list_ids = list_ids(store, t, l).await?;
    }
    if !store.update_internet_rule(t, &r).await? {
        return Err(ApiError::not_found(format!("internet rule {id}")));
    }
    let names = Names::load(store, t).await?;
    Ok(Json(rule_view(r, &names)))
}

/// Delete an internet rule.
#[utoipa::path(delete, path = "/api/v1/internet/rules/{id}", tag = "internet", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_rule(ctx: Ctx, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    ctx.target(format!("internet-rule:{id}"));
    ctx.authorize(Permission::PolicyManage, ctx.tenant_target())?;
    if ctx.state.store.delete_internet_rule(ctx.tenant_id(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("internet rule {id}")))
    }
}

/// What would happen to this user asking for this host now, and why. No traffic is sent.
#[utoipa::path(post, path = "/api/v1/internet/rules/test", tag = "internet", request_body = InternetRuleTest,
    security(("bearer" = [])),
    responses((status = 200, body = InternetRuleTestResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_rules(ctx: Ctx, ApiJson(req): ApiJson<InternetRuleTest>) -> ApiResult<Json<InternetRuleTestResult>> {
    ctx.target(format!("user:{}", req.user));
    ctx.authorize(Permission::PolicyRead, ctx.tenant_target())?;
    let store = &ctx.state.store;
    let t = ctx.tenant_id();
    let host = Host::parse(&req.host).map_err(|e| ApiError::invalid(format!("host {:?}: {e}", req.host)))?;
    let user = store
        .user_by_name(t, &req.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {}", req.user)))?;
    let (_, groups_of) = crate::policy::load_input(store, t).await?;
    let groups = groups_of.get(&user.id).cloned().unwrap_or_default();
    let settings = store.internet_settings(t).await?.unwrap_or_else(default_settings);
    let input = load_policy(store, t, &settings.default_action, &[]).await?;
    let names = Names::load(store, t).await?;
    let port = req.port.unwrap_or(443);
    let now = now_ms();
    let explanation = blocking(move || {
        let policy = CompiledInternetPolicy::compile(input);
        policy.explain(&InternetRequest {
            user_id: &user.id,
            groups: &groups,
            host: &host,
            port,
            now,
        })
    })
    .await?;
    let d = &explanation.decision;
    let stage = serde_json::to_value(d.stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Json(InternetRuleTestResult {
        host: Host::parse(&req.host).map(|h| h.to_string()).unwrap_or_default(),
        action: d.action,
        rule_id: d.rule.as_ref().map(|r| r.id.to_string()),
        stage,
        list: d.list.as_deref().map(|l| names.one(l)),
        explanation: serde_json::to_value(&explanation).unwrap_or_default(),
    }))
}

// ---- proxy credentials ------------------------------------------------------------

async fn user_named(ctx: &Ctx, name: &str) -> ApiResult<ward_store::UserRow> {
    ctx.state
        .store
        .user_by_name(ctx.tenant_id(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name}")))
}

/// The user's proxy credentials (never their secrets).
#[utoipa::path(get, path = "/api/v1/users/{name}/proxy-credentials", tag = "internet", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Vec<ProxyCredential>), (status = 404, body = ErrorBody)))]
pub async fn list_credentials(ctx: Ctx, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Vec<ProxyCredential>>> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let user = user_named(&ctx, &name).await?;
    let creds = ctx
        .state
        .store
        .proxy_credentials(ctx.tenant_id(), Some(&user.id))
        .await?;
    Ok(Json(
        creds
            .into_iter()
            .map(|c| ProxyCredential {
                id: c.id,
                user: user.name.clone(),
                created_at: rfc3339(c.created_at),
            })
            .collect(),
    ))
}

/// A new credential of the explicit proxy port for the user: the password
/// is shown this once.
#[utoipa::path(post, path = "/api/v1/users/{name}/proxy-credentials", tag = "internet", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 201, body = NewProxyCredential), (status = 404, body = ErrorBody)))]
pub async fn create_credential(
    ctx: Ctx,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<NewProxyCredential>)> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let user = user_named(&ctx, &name).await?;
    let id = ward_store::new_id("wpx");
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let password = format!("{id}.{}", hex::encode(secret));
    let row = ProxyCredentialRow {
        id: id.clone(),
        tenant_id: ctx.tenant_id().to_owned(),
        user_id: user.id,
        secret_sha256: hex::encode(Sha256::digest(password.as_bytes())),
        created_at: now_ms(),
    };
    ctx.state.store.create_proxy_credential(&row).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewProxyCredential {
            id,
            username: user.name,
            password,
        }),
    ))
}

/// Delete one of the user's proxy credentials.
#[utoipa::path(delete, path = "/api/v1/users/{name}/proxy-credentials/{id}", tag = "internet",
    params(("name" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_credential(ctx: Ctx, ApiPath((name, id)): ApiPath<(String, String)>) -> ApiResult<StatusCode> {
    ctx.target(format!("user:{name}"));
    ctx.authorize(Permission::UsersManage, ctx.tenant_target())?;
    let user = user_named(&ctx, &name).await?;
    if ctx
        .state
        .store
        .delete_proxy_credential(ctx.tenant_id(), &user.id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("proxy credential {id}")))
    }
}

// ---- the agent's routing ----------------------------------------------------------

/// Where the agent sends what: the tenant's private address patterns, the
/// bypassed destinations, and whether internet traffic goes to the gateway.
#[utoipa::path(get, path = "/api/v1/device/routing", tag = "devices",
    responses((status = 200, body = DeviceRouting), (status = 401, body = ErrorBody)))]
pub async fn routing(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: DeviceCaller,
) -> ApiResult<Json<DeviceRouting>> {
    let t = &caller.tenant.id;
    let settings = state.store.internet_settings(t).await?.unwrap_or_else(default_settings);
    let mut private = Vec::new();
    for app in state.store.all_apps(t).await? {
        for a in app.addresses {
            if !private.contains(&a) {
                private.push(a);
            }
        }
    }
    Ok(Json(DeviceRouting {
        internet: settings.enabled,
        private,
        bypass: settings.bypass,
    }))
}

// ---- logs -------------------------------------------------------------------------

/// `since`: an RFC 3339 time, or a duration ago (`30m`, `1h`, `7d`).
fn parse_since(s: &str) -> ApiResult<i64> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        ApiError::invalid(format!(
            "since must be an RFC 3339 time or a duration like 1h (got {s:?})"
        ))
    })?;
    Ok(now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

async fn logs(ctx: Ctx, kind: &'static str, q: WebLogQuery) -> ApiResult<Json<Page<AccessLogEntry>>> {
    ctx.target(format!("logs:{kind}"));
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
    let actions: &[&str] = if kind == "web" {
        &["allow", "block", "warn", "proceed", "monitor"]
    } else {
        &["allow", "block", "monitor"]
    };
    if let Some(a) = &q.action {
        if !actions.contains(&a.as_str()) {
            return Err(ApiError::invalid(format!(
                "action must be one of {}",
                actions.join(", ")
            )));
        }
    }
    let domain = q
        .domain
        .as_deref()
        .map(|d| {
            ward_inet::DomainName::parse(d)
                .map(|n| n.to_string())
                .map_err(|_| ApiError::invalid(format!("domain {d:?} is not a domain name")))
        })
        .transpose()?;
    let filter = AccessFilter {
        user_id,
        device_id: q.device,
        action: q.action,
        since: q.since.as_deref().map(parse_since).transpose()?,
        kind: Some(kind.into()),
        domain,
    };
    let p = store
        .list_access_records(ctx.tenant_id(), &filter, &PageRequest::new(q.cursor, q.limit))
        .await?;
    Ok(Json(page(p, |r| log_entry(r, &users))))
}

/// Web records (internet traffic through the gateways), newest first.
#[utoipa::path(get, path = "/api/v1/logs/web", tag = "internet", params(WebLogQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AccessLogEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn web_logs(ctx: Ctx, ApiQuery(q): ApiQuery<WebLogQuery>) -> ApiResult<Json<Page<AccessLogEntry>>> {
    logs(ctx, "web", q).await
}

/// DNS records (queries through the gateways' DNS filter), newest first.
#[utoipa::path(get, path = "/api/v1/logs/dns", tag = "internet", params(WebLogQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AccessLogEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dns_logs(ctx: Ctx, ApiQuery(q): ApiQuery<WebLogQuery>) -> ApiResult<Json<Page<AccessLogEntry>>> {
    logs(ctx, "dns", q).await
}

/// The most frequent domains or users of the web records.
#[utoipa::path(get, path = "/api/v1/logs/web/top", tag = "internet", params(TopQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<TopEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn web_top(ctx: Ctx, ApiQuery(q): ApiQuery<TopQuery>) -> ApiResult<Json<Vec<TopEntry>>> {
    ctx.target("logs:web");
    ctx.authorize(Permission::LogsRead, ctx.tenant_target())?;
    let by_user = match q.by.as_str() {
        "domain" => false,
        "user" => true,
        _ => return Err(ApiError::invalid("by must be domain or user")),
    };
    if let Some(a) = &q.action {
        if !["allow", "block", "warn", "proceed", "monitor"].contains(&a.as_str()) {
            return Err(ApiError::invalid(
                "action must be one of allow, block, warn, proceed, monitor",
            ));
        }
    }
    let since = q.since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
    let limit = i64::from(q.limit.unwrap_or(10).clamp(1, 100));
    let store = &ctx.state.store;
    let rows = store
        .top_access_records(ctx.tenant_id(), "web", by_user, q.action.as_deref(), since, limit)
        .await?;
    let users: HashMap<String, String> = if by_user {
        store
            .all_users(ctx.tenant_id())
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(Json(
        rows.into_iter()
            .map(|(key, count)| TopEntry {
                key: users.get(&key).cloned().unwrap_or(key),
                count: u64::try_from(count).unwrap_or(0),
            })
            .collect(),
    ))
}
