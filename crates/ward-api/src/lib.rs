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

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
pub use ward_core::{Role, TenantState};

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
