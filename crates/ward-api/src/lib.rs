//! The wire types of Ward's REST API, `/api/v1`.
//!
//! The server serialises these and the client (`ward ctl`) deserialises the
//! same types, so the two cannot drift apart. The OpenAPI document is
//! generated from them.
//!
//! Conventions: times are RFC 3339 strings in UTC; lists are [`Page`]s with an
//! opaque `next_cursor`; request bodies refuse unknown fields; errors are
//! [`ErrorBody`].
//!
//! **Architecture invariant:** no I/O and no server logic here; plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
pub use ward_core::{Posture, PostureRequirements, Role, TenantState};

mod internet;
pub use internet::*;

/// The prefix of every API path.
pub const API_PREFIX: &str = "/api/v1";

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`forbidden`, `not_found`, ...).
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

/// A page of a list. Pass `next_cursor` back as `cursor` to get the next one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `?cursor=&limit=` on every list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// At most this many items (1 to 500; default 100).
    pub limit: Option<u32>,
}

// ---- sessions -------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The tenant's name; operators use `system`.
    pub tenant: String,
    pub username: String,
    pub password: String,
    /// The second factor of an account with MFA on: the current six-digit
    /// code of its authenticator app, or one of its recovery codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer ...`.
    pub token: String,
    pub expires_at: String,
    pub whoami: WhoAmI,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Session,
    ApiKey,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub tenant: String,
    pub account: String,
    pub role: Role,
    /// True for the service's operators (accounts of tenant `system`).
    pub operator: bool,
    pub credential: CredentialKind,
    /// The API key in use, when `credential` is `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// What this credential may do.
    pub permissions: Vec<String>,
    /// True when the account signs in with a second factor.
    #[serde(default)]
    pub mfa_enabled: bool,
    /// True when the tenant requires MFA and this account has not enrolled
    /// yet: its sessions reach only whoami, sign-out and MFA enrolment.
    #[serde(default)]
    pub mfa_enrollment_required: bool,
}

// ---- multi-factor authentication ----------------------------------------------

/// A TOTP enrolment, started: add the secret to an authenticator app (scan
/// the QR code or type the secret), then confirm with a code it shows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrollment {
    /// The secret, base32 (RFC 4648, no padding).
    pub secret: String,
    /// `otpauth://totp/Ward:<account>@<tenant>?secret=...&issuer=Ward`.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// A second-factor code: a TOTP code, or (where the endpoint says so) a recovery code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    pub code: String,
}

/// One-time recovery codes, shown once: each signs in once in place of a TOTP code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The tenant's own settings, which its owner changes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Every administrator account of the tenant must use MFA: an account
    /// without it can sign in, but its sessions reach only whoami, sign-out
    /// and MFA enrolment until it enrols. API keys are not affected.
    pub require_admin_mfa: bool,
    /// How long a device's user session lasts from its enrolment or its
    /// `ward agent login`, in hours (1 to 8760; default 168). When it ends,
    /// gateways refuse the device until its user signs in again. Absent in
    /// a change: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_session_hours: Option<u32>,
}

// ---- tenants --------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Where the tenant's data is stored; chosen at creation.
    pub region: String,
    pub state: TenantState,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    /// One of the regions the operator configured; the first one when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// Password of the new tenant's owner account, `admin`.
    pub owner_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// `active` or `suspended`.
    pub state: TenantState,
}

// ---- accounts -------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    /// The account that created this one (absent for bootstrap accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    /// Failed sign-ins since the last success.
    pub failed_logins: u32,
    /// Set while the account is locked out after repeated failed sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// True when the account signs in with a second factor.
    #[serde(default)]
    pub mfa_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub name: String,
    pub role: Role,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// Required when changing one's own password.
    #[serde(default)]
    pub current_password: Option<String>,
    pub new_password: String,
}

/// A sign-in lock-out, per account or per source address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lockout {
    /// `account` or `address`.
    pub scope: String,
    /// The account name or the source address.
    pub subject: String,
    pub failures: u32,
    pub locked_until: String,
}

// ---- API keys -------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The account that owns the key.
    pub account: String,
    /// The key never does more than this role (and never more than its account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_cap: Option<Role>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// Limit the key to this role's permissions.
    #[serde(default)]
    pub role_cap: Option<Role>,
    /// Lifetime in seconds; no expiry when absent.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// The only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    pub key: ApiKey,
    /// `wk_<id>_<secret>`: use as `Authorization: Bearer ...` or `WARD_TOKEN`.
    pub token: String,
}

// ---- audit ----------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub time: String,
    pub tenant: String,
    /// The acting account's name (absent for anonymous attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The acting account's role at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_role: Option<Role>,
    /// The owner account the actor acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The API key used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    pub source_ip: String,
    /// What was attempted, such as `account.create` or `auth.login`.
    pub action: String,
    /// What it was aimed at, such as `account:auditor1`.
    pub target: String,
    /// `ok`, `denied`, `failed` or `error`.
    pub result: String,
    /// HTTP status of the response.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /api/v1/audit` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events by this account name.
    pub actor: Option<String>,
    /// Only events of this action (`account.create`, ...).
    pub action: Option<String>,
    /// Only events with this result (`ok`, `denied`, `failed`, `error`).
    pub result: Option<String>,
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

// ---- health ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

// ---- end users and groups ---------------------------------------------------

/// An end user of the tenant (a person whose devices reach applications).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    /// A disabled user's connections are refused and closed.
    pub disabled: bool,
    /// Names of the groups the user belongs to.
    pub groups: Vec<String>,
    pub created_at: String,
    /// True when the user has a password, and so can sign in to the user portal.
    #[serde(default)]
    pub has_password: bool,
    /// Set while the user is locked out of signing in after repeated failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// Attributes (`email`, `department`, ...): from its identity source,
    /// or set by an administrator. Dynamic groups match on them.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The identity source the user came from; absent for a local user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// True when the user signs in to the portal in two steps (TOTP).
    #[serde(default)]
    pub mfa_enabled: bool,
}

/// An end user's new password (`PUT /api/v1/users/{name}/password`).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserPassword {
    /// At least 10 characters.
    pub password: String,
}

impl std::fmt::Debug for SetUserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetUserPassword")
            .field("password", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    /// Groups (by name) to add the user to; each must exist.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disable (true) or enable (false) the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Replace the user's attributes (keys: lower-case letters, digits,
    /// `_` and `-`; values: up to 256 bytes). `email_domain` cannot be set:
    /// it follows from `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// Names of the members: listed ones, and for a dynamic group the users
    /// whose attributes meet its conditions.
    pub members: Vec<String>,
    pub created_at: String,
    /// A dynamic group's conditions (`key=value`, all must hold; exact
    /// match, `email_domain` without regard to case). Empty: a static group.
    #[serde(default)]
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    /// Conditions that make it a dynamic group, e.g. `department=Engineering`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// A change to a group (`PATCH /api/v1/groups/{name}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// Replace the conditions; an empty list makes the group static.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// The user's name.
    pub user: String,
}

// ---- applications and rules -------------------------------------------------

/// Something users reach: addresses and ports.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Application {
    pub id: String,
    pub name: String,
    /// IPs, CIDRs, domains and wildcard domains (`*.corp.example`).
    pub addresses: Vec<String>,
    /// Ports and port ranges (`443`, `8000-8100`).
    pub ports: Vec<String>,
    /// `tcp`.
    pub protocol: String,
    pub tags: Vec<String>,
    pub created_at: String,
    /// The host name the application is published under through the
    /// gateway's HTTPS listener (clientless web access), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// `http` or `https`: how the gateway reaches a published application
    /// (its first address and first port).
    #[serde(default = "default_upstream_scheme")]
    pub upstream_scheme: String,
}

fn default_upstream_scheme() -> String {
    "http".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApplication {
    pub name: String,
    pub addresses: Vec<String>,
    pub ports: Vec<String>,
    /// `tcp` (the default).
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Publish the application for clientless web access under this host
    /// name (a DNS name, unique across the service; stored lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// `http` (the default) or `https` (the gateway then checks the
    /// application's certificate against the platform's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_scheme: Option<String>,
}

/// `PATCH /api/v1/apps/{name}`: what to change; a field left out stays as
/// it is. Lists replace the application's whole list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApplication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A host name to publish the application under (or move it to), or
    /// `""` to stop publishing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_scheme: Option<String>,
}

/// A priority-ordered access rule. Priority 1 is the highest; the first rule
/// that matches decides; when none matches, access is denied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rule {
    pub id: String,
    pub priority: u32,
    /// `allow` or `block`.
    pub action: String,
    /// Applications (by name) the rule covers.
    pub apps: Vec<String>,
    /// Application tags the rule covers.
    pub tags: Vec<String>,
    /// Users (by name); with `groups`, the rule covers anyone in either. Both empty: everyone.
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub require_compliant_device: bool,
    /// `enforce` (a non-compliant device does not match) or `observe` (it matches; the record says so).
    pub posture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// Source networks (CIDRs); empty: any.
    pub sources: Vec<String>,
    pub enabled: bool,
    pub created_at: String,
    /// Whether the rule admits clientless web access (a browser through the
    /// gateway, without the agent). A rule enforcing a compliant device never
    /// admits it.
    #[serde(default)]
    pub agentless: bool,
}

/// What to change in a rule; at least one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A new priority (1 is the highest); one another rule has is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// The tenant's rules in a new order: the priority numbers in use are given
/// out again, the smallest to the first id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderRules {
    /// Every rule id of the tenant, each once, highest priority first.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    pub priority: u32,
    pub action: String,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub require_compliant_device: bool,
    /// `enforce` (default) or `observe`.
    #[serde(default)]
    pub posture: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Admit clientless web access too (default false).
    #[serde(default)]
    pub agentless: bool,
}

/// "Would this user, on this device, reach this destination now, and why?"
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// The user's name.
    pub user: String,
    /// The device's id; without one, rules that require a compliant device do not match.
    #[serde(default)]
    pub device: Option<String>,
    /// `host:port`, such as `db.corp.example:5432` or `10.0.0.5:22`.
    pub to: String,
    /// The source address of the connection (default 0.0.0.0).
    #[serde(default)]
    pub source: Option<String>,
    /// RFC 3339 time to test at (default now).
    #[serde(default)]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleTestResult {
    /// `allow` or `deny`.
    pub decision: String,
    /// The deciding rule, when one matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// `rule_matched`, `no_application` or `no_rule_matched`.
    pub reason: String,
    /// Applications the destination belongs to.
    pub applications: Vec<String>,
    /// Each candidate rule in order, and why it did or did not match.
    pub steps: Vec<RuleTestStep>,
    /// The deciding rule only observes device compliance, and the device is not compliant.
    pub observed_noncompliant: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleRef {
    pub id: String,
    pub priority: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleTestStep {
    pub rule: RuleRef,
    pub matched: bool,
    /// Why it did not match, as a sentence (the first condition that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

// ---- devices and enrolment --------------------------------------------------

/// A device enrolled by an end user's agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: String,
    pub name: String,
    /// The end user it belongs to.
    pub user: String,
    /// `active` or `revoked`.
    pub state: String,
    /// Whether it meets the tenant's posture requirements.
    pub compliant: bool,
    /// Why it does not, when it does not.
    pub compliance_failures: Vec<String>,
    pub posture: Posture,
    /// When its current certificate expires.
    pub cert_expires_at: String,
    pub enrolled_at: String,
    pub last_seen_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// When the device's user session ends; absent when signed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

/// A device's user session, as the agent sees it (`POST /device/logout`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceSession {
    /// Whether the session is open now.
    pub signed_in: bool,
    /// When it ends, if it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollCode {
    /// The end user the device will belong to.
    pub user: String,
    /// How long the code may be used, in seconds (default one day, at most 30 days).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollCode {
    /// One-time code for `ward agent enroll --code`. It carries the
    /// fingerprint of the server's CA, so the agent can check it talks to
    /// this server.
    pub code: String,
    pub user: String,
    pub expires_at: String,
}

/// `ward agent enroll` without a code asks to enrol; the device's user
/// approves the request in the portal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollRequest {
    /// The device's name (its host name, usually), shown to the user who approves.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollRequestCreated {
    /// The agent's secret handle on the request, for polling: `wer_...`.
    pub request: String,
    /// What the user types in the portal, such as `BCDF-GHJK`.
    pub user_code: String,
    /// Where the user approves: the portal's page for it.
    pub verify_url: String,
    /// The same page with the code filled in.
    pub verify_url_complete: String,
    pub expires_at: String,
    /// How often to poll, in seconds.
    pub interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollEnrollRequest {
    pub request: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollRequestState {
    /// `pending`, `approved` (then `code` is set, once), `denied`, `expired`
    /// or `collected` (approved, and the code was handed out already).
    pub state: String,
    /// The one-time enrolment code for `POST /api/v1/enroll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For a device's sign-in (`POST /device/login`), once approved: when
    /// the renewed session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

/// Sent by the agent, authenticated by the code alone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub code: String,
    /// PKCS#10 request for the device's key, which never leaves the device.
    pub csr_pem: String,
    /// A name for the device (its host name, usually).
    pub name: String,
    pub posture: Posture,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    pub tenant: String,
    pub device_id: String,
    pub user: String,
    /// The device's certificate (PEM), signed by the tenant's CA.
    pub cert_pem: String,
    pub cert_expires_at: String,
    /// The tenant's CA certificate.
    pub tenant_ca_pem: String,
    /// The CA that signs gateways' certificates: the agent trusts gateways through it.
    pub gateway_ca_pem: String,
    /// Secret for the agent's own calls (renewal, posture): `Authorization: Bearer wd_...`.
    pub device_token: String,
    pub compliant: bool,
    /// Where the agent reaches the gateway: `host:port`.
    pub gateway: String,
    /// When the device's user session ends (`ward agent login` renews it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub csr_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenewResponse {
    pub cert_pem: String,
    pub cert_expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PostureReport {
    pub posture: Posture,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PostureVerdict {
    pub compliant: bool,
    pub failures: Vec<String>,
}

// ---- gateways: join, policy snapshots, access records -------------------------
//
// The data-plane protocol between agent and gateway (not JSON; written here so
// both sides read it in one place):
// - TLS 1.3, ALPN `h2`; the agent presents its device certificate, the gateway
//   a certificate from the service CA (`EnrollResponse::gateway_ca_pem`).
// - One HTTP/2 `CONNECT` stream per TCP connection, `:authority` = `host:port`
//   (IPv6 in brackets). Stream window 4 MiB, connection window 16 MiB.
// - The gateway decides and dials before it answers: `200` then bytes flow
//   both ways as DATA frames; `403` with headers `ward-rule` (deciding rule id,
//   absent on default deny) and `ward-reason`; `502` when the dial failed
//   (`ward-error`); `400` for a bad authority; `503` while draining, or when
//   the gateway cannot journal the connection (`ward-error`). Before the
//   gateway has its first policy snapshot it refuses the TLS handshake.

/// Header naming the rule that decided a refusal.
pub const HEADER_RULE: &str = "ward-rule";
/// Header with the reason of a refusal (`rule_matched`, `no_application`, ...).
/// `device_signed_out` means the device's user session ended or expired:
/// the agent tells its user to run `ward agent login`.
pub const HEADER_REASON: &str = "ward-reason";
/// The reason a gateway gives when the device's user session ended.
pub const REASON_DEVICE_SIGNED_OUT: &str = "device_signed_out";
/// Header with the dial error behind a 502.
pub const HEADER_ERROR: &str = "ward-error";

/// Everything a gateway enforces, versioned by the policy epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatewaySnapshot {
    /// The policy epoch this snapshot reflects; it only grows.
    pub version: i64,
    pub tenants: Vec<TenantSnapshot>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantSnapshot {
    pub id: String,
    pub name: String,
    /// False when the operator suspended the tenant: nothing of it connects.
    pub active: bool,
    /// The tenant CA that signs its devices' certificates; empty for a
    /// tenant that has none yet but publishes applications for browsers.
    pub ca_pem: String,
    pub policy: ward_policy::PolicyInput,
    pub users: Vec<SnapshotUser>,
    pub devices: Vec<SnapshotDevice>,
    /// The tenant's groups (ids and names), for the identity assertion of
    /// clientless requests.
    #[serde(default)]
    pub groups: Vec<SnapshotGroup>,
    /// The tenant's applications published for clientless web access.
    #[serde(default)]
    pub web_apps: Vec<WebApp>,
    /// The tenant's internet access control.
    #[serde(default)]
    pub internet: InternetSnapshot,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotGroup {
    pub id: String,
    pub name: String,
}

/// An application published through the gateway's HTTPS listener. The
/// gateway proxies to the application's first address and first port.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebApp {
    /// The application's id in the tenant's policy.
    pub app_id: String,
    /// Lowercase; unique across the service.
    pub public_host: String,
    /// `http` or `https`.
    pub upstream_scheme: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotUser {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    /// Group ids.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotDevice {
    pub id: String,
    pub user_id: String,
    pub compliant: bool,
    pub revoked: bool,
    /// When the device's user session ends (ms since the epoch; 0 when
    /// signed out). From then on the gateway refuses it (`device_signed_out`)
    /// and closes its live connections. Absent (from an older server): no
    /// session is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_ms: Option<i64>,
}

/// One connection attempt through a gateway, allowed or denied, written once
/// when the connection ends (denied ones at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessRecord {
    /// Made by the gateway (time-ordered, unique); the server stores each id once.
    pub id: String,
    /// When the attempt started (ms since the epoch).
    pub started_ms: i64,
    pub tenant_id: String,
    pub user_id: String,
    pub device_id: String,
    pub gateway_id: String,
    /// The agent's address as the gateway saw it.
    pub source: String,
    /// The destination as asked (a name or an address).
    pub dest_host: String,
    /// The address dialled, when it got that far.
    pub dest_addr: Option<String>,
    pub port: u16,
    /// `tcp`.
    pub protocol: String,
    /// Private access: `allow` or `deny`. Web: `allow`, `block`, `warn` (the
    /// warning shown), `proceed` (clicked through), `monitor`. DNS: `allow`,
    /// `block`, `monitor`.
    pub action: String,
    pub rule_id: Option<String>,
    /// Why: `rule_matched`, `no_application`, `no_rule_matched`, `device_revoked`,
    /// `device_signed_out`, `device_unknown`, `user_unknown`, `user_disabled`, `tenant_unknown`,
    /// `tenant_suspended`, `observed_noncompliant`, `bad_request`,
    /// `gateway_draining`, `not_decided`.
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// Why it ended: `closed`, `denied`, `dial_failed`, `policy_changed`,
    /// `certificate_expired`, `gateway_shutdown`, `gateway_restart`, `error`.
    pub end: String,
    /// Clientless web requests only: the HTTP method (`GET`; `WEBSOCKET` for
    /// an upgraded connection), the path without the query string, and the
    /// status answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `private` (private access, clientless included; the default), `web`
    /// (internet traffic through the filtering proxy: one record per plain
    /// HTTP request, or per tunnel) or `dns` (one DNS query).
    #[serde(default = "kind_private", skip_serializing_if = "is_private")]
    pub kind: String,
    /// Web: the URL of a plain-HTTP (or inspected) request, query string
    /// included, at most 2,048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Web: the request body of a plain-HTTP (or inspected) upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    /// Web: the TLS of the tunnel was inspected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inspected: bool,
    /// DNS: the query type (`A`, `AAAA`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// DNS: the answer's records as text (`A 192.0.2.1, A 192.0.2.2`), or the
    /// response code (`NXDOMAIN`, `SERVFAIL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl Default for AccessRecord {
    /// An empty record of kind `private` (so that a record built from the
    /// default keeps its kind through serialisation).
    fn default() -> AccessRecord {
        AccessRecord {
            id: Default::default(),
            started_ms: Default::default(),
            tenant_id: Default::default(),
            user_id: Default::default(),
            device_id: Default::default(),
            gateway_id: Default::default(),
            source: Default::default(),
            dest_host: Default::default(),
            dest_addr: Default::default(),
            port: Default::default(),
            protocol: Default::default(),
            action: Default::default(),
            rule_id: Default::default(),
            reason: Default::default(),
            bytes_up: Default::default(),
            bytes_down: Default::default(),
            duration_ms: Default::default(),
            end: Default::default(),
            method: Default::default(),
            path: Default::default(),
            status: Default::default(),
            url: Default::default(),
            upload: Default::default(),
            inspected: Default::default(),
            qtype: Default::default(),
            answer: Default::default(),
            kind: kind_private(),
        }
    }
}

/// A batch of records shipped by a gateway.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessRecordBatch {
    pub records: Vec<AccessRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessRecordBatchResult {
    /// Records stored now.
    pub accepted: u32,
    /// Records already stored before (a retried batch).
    pub duplicates: u32,
}

/// An access record as administrators read it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessLogEntry {
    pub id: String,
    /// When the attempt started.
    pub time: String,
    /// The end user's name (the id when the user was deleted since).
    pub user: String,
    pub device_id: String,
    pub source: String,
    pub dest_host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_addr: Option<String>,
    pub port: u16,
    pub protocol: String,
    /// `allow` or `deny`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// Why it ended.
    pub end: String,
    pub gateway_id: String,
    /// Clientless web requests: method, path (no query string), status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `private` (private access, clientless included; the default), `web`
    /// (internet traffic through the filtering proxy: one record per plain
    /// HTTP request, or per tunnel) or `dns` (one DNS query).
    #[serde(default = "kind_private", skip_serializing_if = "is_private")]
    pub kind: String,
    /// Web: the URL of a plain-HTTP (or inspected) request, query string
    /// included, at most 2,048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Web: the request body of a plain-HTTP (or inspected) upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    /// Web: the TLS of the tunnel was inspected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inspected: bool,
    /// DNS: the query type (`A`, `AAAA`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// DNS: the answer's records as text (`A 192.0.2.1, A 192.0.2.2`), or the
    /// response code (`NXDOMAIN`, `SERVFAIL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// `GET /api/v1/access-records` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// Only this end user's (by name).
    pub user: Option<String>,
    /// Only this device's.
    pub device: Option<String>,
    /// `allow` or `deny`.
    pub action: Option<String>,
    /// Only attempts started at or after this RFC 3339 time.
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGatewayJoinCode {
    /// The gateway's name (unique).
    pub name: String,
    /// How long the code may be used, in seconds (default one day).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayJoinCode {
    /// For `ward gateway --join-code`; carries the pin of the server's CA like enrolment codes.
    pub code: String,
    pub name: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayJoinRequest {
    pub code: String,
    pub csr_pem: String,
    /// Host names and IP addresses agents will dial; the certificate names them.
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayJoinResponse {
    pub gateway_id: String,
    pub name: String,
    /// The gateway's certificate followed by the service CA.
    pub cert_chain_pem: String,
    /// Secret for the gateway's own calls (snapshots, records): `Bearer wg_...`.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Gateway {
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub cert_expires_at: String,
    pub created_at: String,
    pub last_seen_at: String,
    /// When its last status report arrived (since the server started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report_at: Option<String>,
    /// Tunnels (agents connected) open at its last report, all tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnels_open: Option<u64>,
    /// Connections relayed at its last report, all tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_open: Option<u64>,
}

/// A gateway's live state, reported about every 15 seconds
/// (`POST /api/v1/gateway/status`, or in-process for the embedded one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayStatusReport {
    /// One entry per tenant with something open.
    pub tenants: Vec<GatewayTenantLoad>,
}

/// What one tenant has open through a gateway now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayTenantLoad {
    pub tenant_id: String,
    /// Agents' tunnels (one per connected device).
    pub tunnels: u64,
    /// TCP connections relayed through them.
    pub connections: u64,
}

/// The `return` target of a clientless sign-in (the gateway's redirect to
/// the portal, and the portal's back to the published host): a path with
/// its query on the same host, never another site. `None` when it is not one.
pub fn safe_web_return(ret: &str) -> Option<&str> {
    (ret.starts_with('/')
        && !ret.starts_with("//")
        && !ret.starts_with("/\\")
        && ret.len() <= 2048
        && ret.bytes().all(|b| b.is_ascii_graphic()))
    .then_some(ret)
}

/// `POST /api/v1/gateway/web-sessions`: a gateway redeems the one-time code
/// a browser brought back from the portal to a published host.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemWebCode {
    /// The published host the browser is on; the code must be bound to it.
    pub host: String,
    pub code: String,
}

impl std::fmt::Debug for RedeemWebCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemWebCode")
            .field("host", &self.host)
            .field("code", &"[redacted]")
            .finish()
    }
}

/// Whose sign-in a redeemed web code carried, and until when the gateway
/// may keep the browser's session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebSession {
    pub tenant_id: String,
    pub user_id: String,
    /// Milliseconds since the epoch.
    pub expires_ms: i64,
}

/// `GET /api/v1/gateway/snapshot?after=N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// Wait (up to about 25 s) for a snapshot newer than this version.
    pub after: Option<i64>,
}

/// An OpenID Connect identity source of the tenant: end users sign in to
/// the portal with it. Its client secret is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentitySource {
    /// `idp_...`
    pub id: String,
    pub name: String,
    /// `oidc`.
    pub kind: String,
    /// The issuer URL, exactly as the provider names itself.
    pub issuer: String,
    pub client_id: String,
    /// Space-separated scopes asked for.
    pub scopes: String,
    /// The claim the user name is taken from (`sub` when it is absent).
    pub username_claim: String,
    /// The claim listing the user's groups.
    pub groups_claim: String,
    /// Where the provider must send browsers back (register it there).
    pub redirect_uri: String,
    pub created_at: String,
    /// OIDC: claims copied to the user's attributes (besides `email`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribute_claims: Vec<String>,
    /// An LDAP source's settings (its bind password is never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapSource>,
}

/// An LDAP / Active Directory source's settings, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LdapSource {
    /// `ldaps://host:port`, or `ldap://host:port` (always upgraded with StartTLS).
    pub url: String,
    /// True when a CA certificate to trust was given (else the platform's roots).
    pub has_ca: bool,
    pub bind_dn: String,
    pub user_base: String,
    /// With `{username}` where the escaped user name goes.
    pub user_filter: String,
    pub username_attribute: String,
    pub email_attribute: String,
    pub display_attribute: String,
    /// The attribute that identifies an entry for good (`entryUUID`, AD `objectGUID`); `dn` for the DN.
    pub id_attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_base: Option<String>,
    /// `member`, `uniqueMember` (groups list their members) or `memberOf` (users list their groups).
    pub group_membership: String,
    pub group_name_attribute: String,
    /// Directory attributes copied to the user's attributes (lower-cased keys).
    pub sync_attributes: Vec<String>,
    /// Seconds between scheduled syncs; 0: only on demand.
    pub sync_interval_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_result: Option<String>,
}

/// A new LDAP / Active Directory source (`ldap` in [`CreateIdentitySource`]).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLdapSource {
    /// `ldaps://host[:port]` or `ldap://host[:port]` (StartTLS is then required).
    pub url: String,
    /// PEM of the CA certificate(s) to trust; default: the platform's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    pub bind_password: String,
    pub user_base: String,
    /// Default `(uid={username})`; Active Directory: `(sAMAccountName={username})`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_filter: Option<String>,
    /// Default `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_attribute: Option<String>,
    /// Default `mail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attribute: Option<String>,
    /// Default `cn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_attribute: Option<String>,
    /// Default `entryUUID` (Active Directory: `objectGUID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_base: Option<String>,
    /// `member` (default), `uniqueMember` or `memberOf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_membership: Option<String>,
    /// Default `cn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name_attribute: Option<String>,
    /// Directory attributes copied to users' attributes: `attribute` (the
    /// key is its name lower-cased) or `key=attribute`, e.g.
    /// `department=departmentNumber`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_attributes: Vec<String>,
    /// Like `15m` or `1h`; `0` for on-demand only. Default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<String>,
}

impl std::fmt::Debug for CreateLdapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateLdapSource")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"***")
            .finish_non_exhaustive()
    }
}

/// What a directory sync did (`POST /api/v1/identity-sources/{name}/sync`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncResult {
    /// Entries the directory returned.
    pub users_seen: u64,
    pub users_created: u64,
    /// Users whose attributes or groups changed, or who were enabled again.
    pub users_updated: u64,
    /// Users that vanished from the directory, now disabled.
    pub users_disabled: u64,
    /// Entries skipped (a user name that is not a valid Ward name, or taken by a user of another source).
    pub users_skipped: u64,
    /// Directory groups seen.
    pub groups_seen: u64,
    pub synced_at: String,
}

/// A new OpenID Connect identity source (`POST /api/v1/identity-sources`).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIdentitySource {
    pub name: String,
    /// `oidc` (default) or `ldap`; `ldap` needs the `ldap` settings, `oidc`
    /// the issuer, client id and secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The issuer URL; its discovery document must name exactly this issuer.
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    /// OIDC: claims copied to the user's attributes (the `email` claim always is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribute_claims: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<CreateLdapSource>,
    /// Default `openid profile email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    /// Default `preferred_username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// Default `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}

impl std::fmt::Debug for CreateIdentitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateIdentitySource")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish_non_exhaustive()
    }
}

fn kind_private() -> String {
    "private".to_owned()
}

fn is_private(kind: &String) -> bool {
    kind.is_empty() || kind == "private"
}
