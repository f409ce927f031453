//! Internet access control: the wire types of domain lists, internet rules,
//! the tenant's internet settings, proxy credentials, the device's routing,
//! web and DNS records, and what gateways get in their snapshot.
//!
//! The agent-gateway protocol grows three things for it (written here, next
//! to the private-access protocol in `lib.rs`, so both sides read it in one
//! place):
//!
//! - A `CONNECT host:port` stream whose destination is no private application
//!   of the tenant is internet traffic when the tenant has internet access
//!   control on: the gateway decides it with the tenant's internet rules
//!   (`ward_inet`), not the private-access rules. A stream whose request has
//!   `ward-protocol: http` ([`HEADER_PROTOCOL`]) carries plain HTTP/1.1
//!   requests (the agent's HTTP proxy forwards its clients' plain-HTTP
//!   requests that way): the gateway then reads each request, decides on its
//!   `Host`, records method, URL and status, and answers a blocked request
//!   with a block page (or a warning page) instead of refusing the stream.
//! - Refusals of internet traffic: `403` with `ward-reason: internet_blocked`
//!   or `internet_warn` ([`REASON_INTERNET_BLOCKED`], [`REASON_INTERNET_WARN`]),
//!   `ward-rule`, and for a warning `ward-proceed` ([`HEADER_PROCEED`]), an
//!   opaque token. The agent shows the refusal to its user; to click through
//!   a warning it sends `POST /.ward/proceed` ([`PATH_PROCEED`]) on the tunnel
//!   with `ward-proceed: TOKEN`; the gateway records the click and lets that
//!   user reach that host for the tenant's `warn_minutes`.
//! - DNS: `POST /dns-query` ([`PATH_DNS_QUERY`]) on the tunnel, body one DNS
//!   message (`application/dns-message`, RFC 8484 without the HTTP cache
//!   rules), answer one DNS message. The gateway applies the tenant's domain
//!   rules, answers blocked names per the tenant's DNS settings, forwards the
//!   rest to its upstream resolvers and records every query.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Request header on a `CONNECT` stream: what the stream carries. `http`:
/// plain HTTP/1.1 requests, read one by one by the gateway.
pub const HEADER_PROTOCOL: &str = "ward-protocol";
/// Header with the click-through token of an internet warning.
pub const HEADER_PROCEED: &str = "ward-proceed";
/// `ward-reason` of internet traffic a rule blocks.
pub const REASON_INTERNET_BLOCKED: &str = "internet_blocked";
/// `ward-reason` of internet traffic a rule warns about.
pub const REASON_INTERNET_WARN: &str = "internet_warn";
/// The tunnel path an agent posts a click-through to.
pub const PATH_PROCEED: &str = "/.ward/proceed";
/// The tunnel path of DNS queries.
pub const PATH_DNS_QUERY: &str = "/dns-query";

// ---- snapshots ------------------------------------------------------------------

/// A tenant's internet access control, as a gateway enforces it
/// (`TenantSnapshot::internet`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InternetSnapshot {
    /// Internet access control is on: agents send internet traffic to the
    /// gateway, which decides it. Off: the gateway refuses internet traffic
    /// (`no_application`), as before.
    pub enabled: bool,
    /// Rules (users and groups by id, lists by id) and the default action.
    /// The lists they name travel by digest in `list_refs`; lists carried
    /// here inline (a gateway's own tests) are used as they are.
    pub policy: ward_inet::InternetPolicyInput,
    /// The lists the rules and the do-not-inspect setting name, by the
    /// SHA-256 of their canonical text: a gateway fetches a digest it has not
    /// seen once (`GET /api/v1/gateway/domain-lists/{sha256}`) and keeps it,
    /// so a snapshot stays small however long the lists are.
    #[serde(default)]
    pub list_refs: Vec<SnapshotListRef>,
    pub dns: DnsSettings,
    /// TLS inspection is on for the tenant; only rules with `inspect` use it.
    #[serde(default)]
    pub inspection: bool,
    /// Lists (by id, carried in `policy.lists`) never inspected.
    #[serde(default)]
    pub do_not_inspect: Vec<String>,
    /// The inspection CA (PEM, certificate and sealed-free key for the
    /// gateway); absent when inspection is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection_ca: Option<InspectionCa>,
    /// Credentials of the explicit proxy port.
    #[serde(default)]
    pub proxy_credentials: Vec<SnapshotProxyCredential>,
    /// How long a click-through of a warning lasts, in minutes.
    pub warn_minutes: u32,
}

/// A domain list a snapshot names by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotListRef {
    /// The list's id, as rules name it.
    pub id: String,
    /// Lowercase hex SHA-256 of the list's canonical text (one entry a line).
    pub sha256: String,
    pub entries: u64,
}

/// Whether `text` is a lowercase hex SHA-256 (64 characters): what a list
/// digest must be before it names a file or a route.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The tenant's inspection CA as a gateway needs it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InspectionCa {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A proxy credential as gateways check it: the secret's SHA-256, never the
/// secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotProxyCredential {
    /// `wpx_...`: the part of the password before the dot.
    pub id: String,
    pub user_id: String,
    /// Lowercase hex SHA-256 of the whole password.
    pub secret_sha256: String,
}

/// How the DNS filter answers a blocked name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DnsSettings {
    /// `nxdomain` (default) or `address`: A and AAAA queries are answered
    /// with `block_ipv4` / `block_ipv6`, other types with no records.
    pub block_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_ipv6: Option<String>,
}

// ---- settings and routing ----------------------------------------------------

/// `GET|PUT /api/v1/internet/settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InternetSettings {
    /// Agents send internet traffic through the gateways (default true).
    pub enabled: bool,
    /// `allow` (default) or `block`: what happens when no rule matches.
    #[schema(value_type = String)]
    pub default_action: ward_inet::InternetAction,
    pub dns: DnsSettings,
    /// TLS inspection (default false).
    pub inspection: bool,
    /// Domain lists (by name) never inspected; `banking` and `health`, made
    /// with the tenant, by default.
    pub do_not_inspect: Vec<String>,
    /// Destinations agents send directly, never through a gateway: domains
    /// (`example.com`), wildcards (`*.example.com`) and CIDR blocks.
    pub bypass: Vec<String>,
    /// How long a click-through of a warning lasts (1 to 1440, default 60).
    pub warn_minutes: u32,
}

/// A change to the settings: absent fields are unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInternetSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub default_action: Option<ward_inet::InternetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_inspect: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_minutes: Option<u32>,
}

/// `GET /api/v1/device/routing`: where the agent sends what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRouting {
    /// Internet access control is on: destinations that are neither private
    /// nor bypassed go to the gateway. Off: they go directly.
    pub internet: bool,
    /// The address patterns of the tenant's private applications (as in
    /// `Application::addresses`): always through the gateway.
    pub private: Vec<String>,
    /// Destinations sent directly (see [`InternetSettings::bypass`]).
    pub bypass: Vec<String>,
}

// ---- domain lists -----------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainListInfo {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Entries (exact and wildcard).
    pub entries: u64,
    /// Where it was imported from, when from a URL (`ward ctl domain-list
    /// refresh` imports it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// SHA-256 of the list's canonical text.
    pub sha256: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /api/v1/domain-lists`: a list from names, from a URL, or empty
/// (then `PUT .../entries` with a file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomainList {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Exact names and `*.` wildcards.
    #[serde(default)]
    pub domains: Vec<String>,
    /// An `http` or `https` URL to import from (hosts, adblock or plain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `PATCH /api/v1/domain-lists/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomainList {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What an import did: the list after it and the parser's report
/// (`ward_inet::ImportReport`: lines read, accepted, ignored and invalid,
/// with the first few of each by line number).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainListImport {
    pub list: DomainListInfo,
    #[schema(value_type = Object)]
    pub report: ward_inet::ImportReport,
}

/// `GET /api/v1/domain-lists/{name}/entries?contains=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainListEntries {
    pub entries: Vec<String>,
    /// Entries matching the filter in all (more than `entries` when cut).
    pub total: u64,
}

// ---- internet rules ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InternetRuleInfo {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub priority: u32,
    #[schema(value_type = String)]
    pub action: ward_inet::InternetAction,
    pub global_allow: bool,
    /// End users by name.
    pub users: Vec<String>,
    /// Groups by name.
    pub groups: Vec<String>,
    /// Domain lists by name; none: every destination.
    pub lists: Vec<String>,
    pub inspect: bool,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInternetRule {
    /// 1 is evaluated first within its stage.
    pub priority: u32,
    #[schema(value_type = String)]
    pub action: ward_inet::InternetAction,
    #[serde(default)]
    pub global_allow: bool,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub lists: Vec<String>,
    #[serde(default)]
    pub inspect: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// `PATCH /api/v1/internet/rules/{id}`: absent fields are unchanged; a
/// given list (users, groups, lists) replaces the rule's; an empty string
/// (or `null`) as `valid_from` or `valid_until` removes that bound.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInternetRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub action: Option<ward_inet::InternetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RFC 3339 time from which the rule applies; `""` or `null`: no lower bound.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// RFC 3339 time from which the rule no longer applies; `""` or `null`: no upper bound.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// A field given as `null` reads as given empty (`Some("")`), unlike a
/// field left out (`None`): `{"valid_until": null}` removes the bound.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// `POST /api/v1/internet/rules/test`: what would happen to user U asking
/// for host H.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InternetRuleTest {
    pub user: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InternetRuleTestResult {
    /// The name as the gateway matches it (lowercase, punycode).
    pub host: String,
    #[schema(value_type = String)]
    pub action: ward_inet::InternetAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// `global_allow`, `block`, `allow` or `default`.
    pub stage: String,
    /// The list through which the deciding rule matched (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// Every rule, in evaluation order, and why it did or did not match.
    #[schema(value_type = Object)]
    pub explanation: serde_json::Value,
}

// ---- proxy credentials ----------------------------------------------------------

/// A credential of the explicit proxy port, for devices without the agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProxyCredential {
    pub id: String,
    pub user: String,
    pub created_at: String,
}

/// `POST /api/v1/users/{name}/proxy-credentials`: shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewProxyCredential {
    pub id: String,
    /// The proxy user name: the end user's name.
    pub username: String,
    /// `wpx_<id>.<secret>`; the server keeps only its SHA-256.
    pub password: String,
}

// ---- records ----------------------------------------------------------------------

/// An upload seen by the gateway (a plain-HTTP request body, or an
/// inspected HTTPS one): never the content, only what identifies it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The file name of a `multipart/form-data` part, when there is one
    /// (the first one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Lowercase hex SHA-256 of the whole body as sent.
    pub sha256: String,
}

/// `GET /api/v1/logs/web` and `GET /api/v1/logs/dns` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebLogQuery {
    /// Only this end user's (by name).
    pub user: Option<String>,
    pub device: Option<String>,
    /// `allow`, `block`, `warn`, `proceed` or `monitor`.
    pub action: Option<String>,
    /// Only this domain and the names below it.
    pub domain: Option<String>,
    /// Only records at or after this RFC 3339 time, or this long ago (`1h`, `30m`, `7d`).
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /api/v1/logs/web/top?by=domain|user&action=&since=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// `domain` or `user`.
    pub by: String,
    pub action: Option<String>,
    pub since: Option<String>,
    /// At most this many (default 10, at most 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopEntry {
    pub key: String,
    pub count: u64,
}
