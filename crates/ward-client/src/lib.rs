//! The typed async HTTP client of Ward's REST API (`/api/v1`).
//!
//! [`Client`] has one method per endpoint, taking and returning the wire types
//! of [`ward_api`], so the client and the server cannot drift apart. Every
//! failure is a [`ClientError`]: an error the API answered with
//! ([`ClientError::Api`], carrying the stable error code), a server that
//! cannot be reached ([`ClientError::Connect`]), a response that cannot be
//! understood ([`ClientError::Decode`]) or a bad configuration
//! ([`ClientError::Config`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ward_client::ClientError> {
//! use ward_client::{Client, ClientConfig};
//! let client = Client::new(ClientConfig {
//!     server: "http://127.0.0.1:7600".into(),
//!     token: Some("wk_...".into()),
//!     ca_cert_pem: None,
//!     pin: None,
//! })?;
//! let accounts = client.list_all(|page| client.list_accounts(page)).await?;
//! # Ok(()) }
//! ```
//!
//! **Architecture invariant:** this crate holds no business logic. It maps
//! methods to HTTP requests and responses to types, nothing more; what to ask
//! and what the answers mean is for its callers (`ward ctl`) and the server.
//! HTTPS trust is built by `ward-pki`, the one place that configures TLS.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use reqwest::Url;
use ward_api::{
    Account, ApiKey, ApiKeyCreated, Application, AuditEvent, AuditQuery, CreateAccount, CreateApiKey,
    CreateApplication, CreateGroup, CreateRule, CreateTenant, CreateUser, ErrorBody, Group, GroupMember, Lockout,
    LoginRequest, LoginResponse, MfaCode, Page, PageQuery, RecoveryCodes, Rule, RuleTest, RuleTestResult, SetPassword,
    SetRole, SetUserPassword, Tenant, TenantSettings, TotpEnrollment, UpdateTenant, UpdateUser, User, WhoAmI,
    API_PREFIX,
};
use ward_api::{
    CreateEnrollCode, Device, EnrollCode, EnrollRequest, EnrollResponse, PostureReport, PostureRequirements,
    PostureVerdict, RenewRequest, RenewResponse,
};

/// How long establishing a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request, response body included, may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("ward-ctl/", env!("CARGO_PKG_VERSION"));

/// Most items a single page may hold (the server accepts 1 to 500).
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Everything that can go wrong talking to Ward.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status.
    ///
    /// `code` is the stable code of the [`ErrorBody`] (`not_found`,
    /// `forbidden`, ...), or `http_<status>` when the body was not one.
    #[error("{message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The server could not be reached, or the exchange broke off (refused
    /// connection, DNS, TLS, timeout).
    #[error("cannot reach the Ward server at {server}: {}", innermost_cause(.source))]
    Connect { server: String, source: reqwest::Error },
    /// A 2xx response whose body is not what the endpoint returns.
    #[error("unexpected response from the Ward server: {0}")]
    Decode(String),
    /// The client was configured wrongly (a bad URL, an unusable CA).
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// `Result` with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The message of the deepest cause of a transport error: "Connection refused
/// (os error 111)" says more than "error sending request for url (...)".
fn innermost_cause(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let mut last: Option<&dyn std::error::Error> = None;
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        last = Some(e);
        cur = e.source();
    }
    match last {
        Some(e) => e.to_string(),
        None => {
            let msg = err.to_string();
            match msg.split_once(" for url (") {
                Some((head, _)) => head.to_owned(),
                None => msg,
            }
        }
    }
}

/// How to reach a Ward server.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// The server's base URL, `http://` or `https://` (e.g.
    /// `https://ward.example.com:7600`). A path prefix is kept.
    pub server: String,
    /// Bearer token: a session token from login, or an API key `wk_<id>_<secret>`.
    pub token: Option<String>,
    /// PEM of the CA certificate(s) to trust for an `https` server, instead of
    /// the system's roots. Ignored for `http`.
    pub ca_cert_pem: Option<String>,
    /// Trust an `https` server only through the CA certificate with this
    /// SHA-256 fingerprint, `sha256:<64 hex digits>` (the pin an enrolment
    /// code carries): the server must present that CA in its chain and its
    /// certificate must verify up to it. Takes precedence over
    /// [`ca_cert_pem`](Self::ca_cert_pem). Ignored for `http`.
    pub pin: Option<String>,
}

/// Checks and normalises a server URL: `http` or `https`, a host, no
/// credentials, query or fragment. The result has no trailing slash.
pub fn parse_server_url(server: &str) -> Result<Url> {
    let server = server.trim();
    let bad = |why: &str| {
        ClientError::Config(format!(
            "invalid server URL {server:?}: {why} (expected e.g. http://127.0.0.1:7600 or https://ward.example.com)"
        ))
    };
    if server.is_empty() {
        return Err(bad("it is empty"));
    }
    let url = Url::parse(server).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(&format!("the scheme must be http or https, not {other:?}"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(url)
}

/// The display form of a base URL: no trailing slash.
fn display_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// A client of one Ward server, with or without a token. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    server: String,
    token: Option<String>,
}

impl Client {
    /// Builds a client; fails with [`ClientError::Config`] on a bad URL, a bad
    /// CA certificate or a token that cannot be sent in a header.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let base = parse_server_url(&config.server)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if base.scheme() == "https" {
            const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
            let tls = match (&config.pin, &config.ca_cert_pem) {
                (Some(pin), _) => ward_pki::client_config_pinned(pin, ALPN)
                    .map_err(|e| ClientError::Config(format!("cannot use the CA pin: {e}")))?,
                (None, Some(pem)) => ward_pki::certs_from_pem(pem)
                    .and_then(|roots| ward_pki::client_config(&roots, ALPN))
                    .map_err(|e| ClientError::Config(format!("cannot use the CA certificate: {e}")))?,
                (None, None) => ward_pki::client_config_platform_roots(ALPN)
                    .map_err(|e| ClientError::Config(format!("cannot use the system's trusted CAs: {e}")))?,
            };
            builder = builder.tls_backend_preconfigured((*tls).clone());
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up the HTTP client: {e}")))?;
        if let Some(token) = &config.token {
            check_token(token)?;
        }
        Ok(Client {
            http,
            server: display_url(&base),
            base,
            token: config.token,
        })
    }

    /// The same client with another token (e.g. the one login returned).
    pub fn with_token(&self, token: impl Into<String>) -> Result<Client> {
        let token = token.into();
        check_token(&token)?;
        Ok(Client {
            token: Some(token),
            ..self.clone()
        })
    }

    /// The server's normalised base URL, without a trailing slash.
    pub fn server(&self) -> &str {
        &self.server
    }

    // ---- sessions ---------------------------------------------------------

    /// `POST /auth/login`. The client's own token, if any, is not sent.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse> {
        let url = self.url(&["auth", "login"], &[])?;
        let rb = self.http.post(url).json(req);
        self.send_json(rb).await
    }

    /// `POST /auth/logout`: ends the session of the client's token.
    pub async fn logout(&self) -> Result<()> {
        self.empty(Method::POST, &["auth", "logout"], None::<&()>).await
    }

    /// `GET /whoami`.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.call(Method::GET, &["whoami"], &[], None::<&()>).await
    }

    // ---- multi-factor authentication --------------------------------------

    /// `POST /me/mfa/totp`: start enrolling a TOTP authenticator.
    pub async fn start_totp(&self) -> Result<TotpEnrollment> {
        self.call(Method::POST, &["me", "mfa", "totp"], &[], None::<&()>).await
    }

    /// `POST /me/mfa/totp/confirm`: turn MFA on with a first code; returns the recovery codes.
    pub async fn confirm_totp(&self, req: &MfaCode) -> Result<RecoveryCodes> {
        self.call(Method::POST, &["me", "mfa", "totp", "confirm"], &[], Some(req))
            .await
    }

    /// `DELETE /me/mfa/totp`: turn MFA off with a TOTP or recovery code.
    pub async fn disable_totp(&self, req: &MfaCode) -> Result<()> {
        self.empty(Method::DELETE, &["me", "mfa", "totp"], Some(req)).await
    }

    /// `POST /accounts/{name}/mfa/reset`: remove another account's MFA.
    pub async fn reset_account_mfa(&self, name: &str) -> Result<Account> {
        self.call(Method::POST, &["accounts", name, "mfa", "reset"], &[], None::<&()>)
            .await
    }

    // ---- tenants ----------------------------------------------------------

    /// `GET /tenant/settings`: the caller's own tenant's settings.
    pub async fn tenant_settings(&self) -> Result<TenantSettings> {
        self.call(Method::GET, &["tenant", "settings"], &[], None::<&()>).await
    }

    /// `PUT /tenant/settings`.
    pub async fn set_tenant_settings(&self, req: &TenantSettings) -> Result<TenantSettings> {
        self.call(Method::PUT, &["tenant", "settings"], &[], Some(req)).await
    }

    /// `GET /tenants`: one page.
    pub async fn list_tenants(&self, page: PageQuery) -> Result<Page<Tenant>> {
        self.call(Method::GET, &["tenants"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /tenants`.
    pub async fn create_tenant(&self, req: &CreateTenant) -> Result<Tenant> {
        self.call(Method::POST, &["tenants"], &[], Some(req)).await
    }

    /// `GET /tenants/{name}`.
    pub async fn get_tenant(&self, name: &str) -> Result<Tenant> {
        self.call(Method::GET, &["tenants", name], &[], None::<&()>).await
    }

    /// `PATCH /tenants/{name}`.
    pub async fn update_tenant(&self, name: &str, req: &UpdateTenant) -> Result<Tenant> {
        self.call(Method::PATCH, &["tenants", name], &[], Some(req)).await
    }

    // ---- accounts ---------------------------------------------------------

    /// `GET /accounts`: one page.
    pub async fn list_accounts(&self, page: PageQuery) -> Result<Page<Account>> {
        self.call(Method::GET, &["accounts"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /accounts`.
    pub async fn create_account(&self, req: &CreateAccount) -> Result<Account> {
        self.call(Method::POST, &["accounts"], &[], Some(req)).await
    }

    /// `GET /accounts/{name}`.
    pub async fn get_account(&self, name: &str) -> Result<Account> {
        self.call(Method::GET, &["accounts", name], &[], None::<&()>).await
    }

    /// `DELETE /accounts/{name}`.
    pub async fn delete_account(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["accounts", name], None::<&()>).await
    }

    /// `PUT /accounts/{name}/role`.
    pub async fn set_account_role(&self, name: &str, req: &SetRole) -> Result<Account> {
        self.call(Method::PUT, &["accounts", name, "role"], &[], Some(req))
            .await
    }

    /// `PUT /accounts/{name}/password`.
    pub async fn set_account_password(&self, name: &str, req: &SetPassword) -> Result<()> {
        self.empty(Method::PUT, &["accounts", name, "password"], Some(req))
            .await
    }

    /// `POST /accounts/{name}/unlock`.
    pub async fn unlock_account(&self, name: &str) -> Result<Account> {
        self.call(Method::POST, &["accounts", name, "unlock"], &[], None::<&()>)
            .await
    }

    // ---- lock-outs --------------------------------------------------------

    /// `GET /lockouts`: one page.
    pub async fn list_lockouts(&self, page: PageQuery) -> Result<Page<Lockout>> {
        self.call(Method::GET, &["lockouts"], &page_params(&page), None::<&()>)
            .await
    }

    /// `DELETE /lockouts/addresses/{address}`: lift a source address's lock-out.
    pub async fn clear_address_lockout(&self, address: &str) -> Result<()> {
        self.empty(Method::DELETE, &["lockouts", "addresses", address], None::<&()>)
            .await
    }

    // ---- end users and groups ---------------------------------------------

    /// `GET /users`: one page.
    pub async fn list_users(&self, page: PageQuery) -> Result<Page<User>> {
        self.call(Method::GET, &["users"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /users`.
    pub async fn create_user(&self, req: &CreateUser) -> Result<User> {
        self.call(Method::POST, &["users"], &[], Some(req)).await
    }

    /// `GET /users/{name}`.
    pub async fn get_user(&self, name: &str) -> Result<User> {
        self.call(Method::GET, &["users", name], &[], None::<&()>).await
    }

    /// `PATCH /users/{name}`.
    pub async fn update_user(&self, name: &str, req: &UpdateUser) -> Result<User> {
        self.call(Method::PATCH, &["users", name], &[], Some(req)).await
    }

    /// `DELETE /users/{name}`.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["users", name], None::<&()>).await
    }

    /// `PUT /users/{name}/password`: set an end user's password (for the user portal).
    pub async fn set_user_password(&self, name: &str, req: &SetUserPassword) -> Result<()> {
        self.empty(Method::PUT, &["users", name, "password"], Some(req)).await
    }

    /// `DELETE /users/{name}/password`: the user can no longer sign in to the portal.
    pub async fn clear_user_password(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["users", name, "password"], None::<&()>)
            .await
    }

    /// `POST /users/{name}/unlock`: lift an end user's sign-in lock-out.
    pub async fn unlock_user(&self, name: &str) -> Result<User> {
        self.call(Method::POST, &["users", name, "unlock"], &[], None::<&()>)
            .await
    }

    /// `POST /users/{name}/mfa/reset`: turn off an end user's two-step
    /// sign-in to the portal; its portal sessions end.
    pub async fn reset_user_mfa(&self, name: &str) -> Result<User> {
        self.call(Method::POST, &["users", name, "mfa", "reset"], &[], None::<&()>)
            .await
    }

    /// `GET /groups` (one page holds them all).
    pub async fn list_groups(&self, page: PageQuery) -> Result<Page<Group>> {
        self.call(Method::GET, &["groups"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /groups`.
    pub async fn create_group(&self, req: &CreateGroup) -> Result<Group> {
        self.call(Method::POST, &["groups"], &[], Some(req)).await
    }

    /// `DELETE /groups/{name}`.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["groups", name], None::<&()>).await
    }

    /// `GET /identity-sources`.
    pub async fn list_identity_sources(&self) -> Result<Vec<ward_api::IdentitySource>> {
        self.call(Method::GET, &["identity-sources"], &[], None::<&()>).await
    }

    /// `POST /identity-sources`.
    pub async fn create_identity_source(
        &self,
        req: &ward_api::CreateIdentitySource,
    ) -> Result<ward_api::IdentitySource> {
        self.call(Method::POST, &["identity-sources"], &[], Some(req)).await
    }

    /// `GET /identity-sources/{name}`.
    pub async fn get_identity_source(&self, name: &str) -> Result<ward_api::IdentitySource> {
        self.call(Method::GET, &["identity-sources", name], &[], None::<&()>)
            .await
    }

    /// `POST /identity-sources/{name}/sync`.
    pub async fn sync_identity_source(&self, name: &str) -> Result<ward_api::SyncResult> {
        self.call(Method::POST, &["identity-sources", name, "sync"], &[], None::<&()>)
            .await
    }

    /// `PATCH /groups/{name}`.
    pub async fn update_group(&self, name: &str, req: &ward_api::UpdateGroup) -> Result<Group> {
        self.call(Method::PATCH, &["groups", name], &[], Some(req)).await
    }

    /// `DELETE /identity-sources/{name}`.
    pub async fn delete_identity_source(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["identity-sources", name], None::<&()>)
            .await
    }

    /// `POST /groups/{name}/members`.
    pub async fn add_group_member(&self, group: &str, user: &str) -> Result<Group> {
        let req = GroupMember { user: user.to_owned() };
        self.call(Method::POST, &["groups", group, "members"], &[], Some(&req))
            .await
    }

    /// `DELETE /groups/{name}/members/{user}`.
    pub async fn remove_group_member(&self, group: &str, user: &str) -> Result<()> {
        self.empty(Method::DELETE, &["groups", group, "members", user], None::<&()>)
            .await
    }

    // ---- applications and rules -------------------------------------------

    /// `GET /apps` (one page holds them all).
    pub async fn list_apps(&self, page: PageQuery) -> Result<Page<Application>> {
        self.call(Method::GET, &["apps"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /apps`.
    pub async fn create_app(&self, req: &CreateApplication) -> Result<Application> {
        self.call(Method::POST, &["apps"], &[], Some(req)).await
    }

    /// `PATCH /apps/{name}`: absent fields stay as they are.
    pub async fn update_app(&self, name: &str, req: &ward_api::UpdateApplication) -> Result<Application> {
        self.call(Method::PATCH, &["apps", name], &[], Some(req)).await
    }

    /// `DELETE /apps/{name}`.
    pub async fn delete_app(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["apps", name], None::<&()>).await
    }

    /// `GET /rules` (one page holds them all, highest priority first).
    pub async fn list_rules(&self, page: PageQuery) -> Result<Page<Rule>> {
        self.call(Method::GET, &["rules"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /rules`.
    pub async fn create_rule(&self, req: &CreateRule) -> Result<Rule> {
        self.call(Method::POST, &["rules"], &[], Some(req)).await
    }

    /// `PATCH /rules/{id}`: enable, disable, or change the priority.
    pub async fn update_rule(&self, id: &str, req: &ward_api::UpdateRule) -> Result<Rule> {
        self.call(Method::PATCH, &["rules", id], &[], Some(req)).await
    }

    /// `POST /rules/reorder`: every rule, in the new order.
    pub async fn reorder_rules(&self, req: &ward_api::ReorderRules) -> Result<Page<Rule>> {
        self.call(Method::POST, &["rules", "reorder"], &[], Some(req)).await
    }

    /// `DELETE /rules/{id}`.
    pub async fn delete_rule(&self, id: &str) -> Result<()> {
        self.empty(Method::DELETE, &["rules", id], None::<&()>).await
    }

    /// `POST /rules/test`: the what-if; sends no traffic.
    pub async fn test_rules(&self, req: &RuleTest) -> Result<RuleTestResult> {
        self.call(Method::POST, &["rules", "test"], &[], Some(req)).await
    }

    // ---- devices ------------------------------------------------------------

    /// `POST /enroll-codes`.
    pub async fn create_enroll_code(&self, req: &CreateEnrollCode) -> Result<EnrollCode> {
        self.call(Method::POST, &["enroll-codes"], &[], Some(req)).await
    }

    /// `POST /enroll`: the agent's enrolment, authenticated by the code in the body.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse> {
        self.call(Method::POST, &["enroll"], &[], Some(req)).await
    }

    /// `POST /enroll/requests`: ask to enrol without a code (anonymous).
    pub async fn create_enroll_request(
        &self,
        req: &ward_api::CreateEnrollRequest,
    ) -> Result<ward_api::EnrollRequestCreated> {
        self.call(Method::POST, &["enroll", "requests"], &[], Some(req)).await
    }

    /// `POST /enroll/requests/poll`: where the request stands.
    pub async fn poll_enroll_request(&self, req: &ward_api::PollEnrollRequest) -> Result<ward_api::EnrollRequestState> {
        self.call(Method::POST, &["enroll", "requests", "poll"], &[], Some(req))
            .await
    }

    /// `POST /device/renew` (with the device token as the client's token).
    pub async fn renew_device(&self, req: &RenewRequest) -> Result<RenewResponse> {
        self.call(Method::POST, &["device", "renew"], &[], Some(req)).await
    }

    /// `POST /device/logout`: sign this device out (device token).
    pub async fn device_logout(&self) -> Result<ward_api::DeviceSession> {
        self.call(Method::POST, &["device", "logout"], &[], None::<&()>).await
    }

    /// `GET /device/session`: this device's user session (device token).
    pub async fn device_session(&self) -> Result<ward_api::DeviceSession> {
        self.call(Method::GET, &["device", "session"], &[], None::<&()>).await
    }

    /// `POST /device/login`: ask to renew this device's user session; the
    /// user approves in the portal (device token). Poll with
    /// [`Client::poll_enroll_request`].
    pub async fn device_login(&self) -> Result<ward_api::EnrollRequestCreated> {
        self.call(Method::POST, &["device", "login"], &[], None::<&()>).await
    }

    /// `POST /device/posture` (with the device token as the client's token).
    pub async fn report_posture(&self, req: &PostureReport) -> Result<PostureVerdict> {
        self.call(Method::POST, &["device", "posture"], &[], Some(req)).await
    }

    /// `GET /devices`: one page.
    pub async fn list_devices(&self, page: PageQuery) -> Result<Page<Device>> {
        self.call(Method::GET, &["devices"], &page_params(&page), None::<&()>)
            .await
    }

    /// `GET /devices/{id}`.
    pub async fn get_device(&self, id: &str) -> Result<Device> {
        self.call(Method::GET, &["devices", id], &[], None::<&()>).await
    }

    /// `POST /devices/{id}/revoke`.
    pub async fn revoke_device(&self, id: &str) -> Result<Device> {
        self.call(Method::POST, &["devices", id, "revoke"], &[], None::<&()>)
            .await
    }

    /// `GET /posture-requirements`.
    pub async fn posture_requirements(&self) -> Result<PostureRequirements> {
        self.call(Method::GET, &["posture-requirements"], &[], None::<&()>)
            .await
    }

    /// `PUT /posture-requirements`.
    pub async fn set_posture_requirements(&self, req: &PostureRequirements) -> Result<PostureRequirements> {
        self.call(Method::PUT, &["posture-requirements"], &[], Some(req)).await
    }

    // ---- gateways and access records ------------------------------------------

    /// `POST /gateway-join-codes` (operators).
    pub async fn create_gateway_join_code(
        &self,
        req: &ward_api::CreateGatewayJoinCode,
    ) -> Result<ward_api::GatewayJoinCode> {
        self.call(Method::POST, &["gateway-join-codes"], &[], Some(req)).await
    }

    /// `GET /gateways` (operators).
    pub async fn list_gateways(&self, page: PageQuery) -> Result<Page<ward_api::Gateway>> {
        self.call(Method::GET, &["gateways"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /gateway/join`: a gateway joins with a code.
    pub async fn join_gateway(&self, req: &ward_api::GatewayJoinRequest) -> Result<ward_api::GatewayJoinResponse> {
        self.call(Method::POST, &["gateway", "join"], &[], Some(req)).await
    }

    /// `GET /gateway/snapshot?after=N` (with the gateway token): waits up to ~25 s for a newer one.
    pub async fn gateway_snapshot(&self, after: Option<i64>) -> Result<ward_api::GatewaySnapshot> {
        let params: Vec<(&str, String)> = after.map(|a| ("after", a.to_string())).into_iter().collect();
        self.call(Method::GET, &["gateway", "snapshot"], &params, None::<&()>)
            .await
    }

    /// `GET /gateway/domain-lists/{sha256}` (with the gateway token): the
    /// text of a list a snapshot names by digest.
    pub async fn gateway_domain_list(&self, sha256: &str) -> Result<String> {
        let rb = self.request(Method::GET, &["gateway", "domain-lists", sha256], &[], None::<&()>)?;
        let body = self.send(rb).await?;
        String::from_utf8(body).map_err(|e| ClientError::Decode(format!("the domain list is not text: {e}")))
    }

    /// `POST /gateway/status` (with the gateway token).
    pub async fn report_gateway_status(&self, report: &ward_api::GatewayStatusReport) -> Result<()> {
        self.empty(Method::POST, &["gateway", "status"], Some(report)).await
    }

    /// `POST /gateway/records` (with the gateway token).
    pub async fn ship_records(&self, batch: &ward_api::AccessRecordBatch) -> Result<ward_api::AccessRecordBatchResult> {
        self.call(Method::POST, &["gateway", "records"], &[], Some(batch)).await
    }

    /// `POST /gateway/web-sessions` (with the gateway token): redeem a
    /// browser's one-time web sign-in code for a published host.
    pub async fn redeem_web_code(&self, req: &ward_api::RedeemWebCode) -> Result<ward_api::WebSession> {
        self.call(Method::POST, &["gateway", "web-sessions"], &[], Some(req))
            .await
    }

    /// `GET /access-records`: one page, newest first.
    pub async fn list_access_records(&self, q: ward_api::AccessQuery) -> Result<Page<ward_api::AccessLogEntry>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("user", &q.user),
            ("device", &q.device),
            ("action", &q.action),
            ("since", &q.since),
            ("cursor", &q.cursor),
        ] {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        self.call(Method::GET, &["access-records"], &params, None::<&()>).await
    }

    // ---- internet access control ------------------------------------------

    /// `GET /internet/settings`.
    pub async fn internet_settings(&self) -> Result<ward_api::InternetSettings> {
        self.call(Method::GET, &["internet", "settings"], &[], None::<&()>)
            .await
    }

    /// `GET /internet/inspection-ca`: the tenant's TLS-inspection CA
    /// certificate (PEM); `inspection_ca_missing` when inspection was never on.
    pub async fn inspection_ca(&self) -> Result<String> {
        let rb = self.request(Method::GET, &["internet", "inspection-ca"], &[], None::<&()>)?;
        let body = self.send(rb).await?;
        String::from_utf8(body).map_err(|e| ClientError::Decode(format!("the certificate is not text: {e}")))
    }

    /// `PUT /internet/settings`: absent fields stay as they are.
    pub async fn set_internet_settings(
        &self,
        req: &ward_api::UpdateInternetSettings,
    ) -> Result<ward_api::InternetSettings> {
        self.call(Method::PUT, &["internet", "settings"], &[], Some(req)).await
    }

    /// `GET /domain-lists` (one page holds them all).
    pub async fn list_domain_lists(&self) -> Result<Page<ward_api::DomainListInfo>> {
        self.call(Method::GET, &["domain-lists"], &[], None::<&()>).await
    }

    /// `POST /domain-lists`: from names, from a URL, or empty.
    pub async fn create_domain_list(&self, req: &ward_api::CreateDomainList) -> Result<ward_api::DomainListImport> {
        self.call(Method::POST, &["domain-lists"], &[], Some(req)).await
    }

    /// `GET /domain-lists/{name}`.
    pub async fn get_domain_list(&self, name: &str) -> Result<ward_api::DomainListInfo> {
        self.call(Method::GET, &["domain-lists", name], &[], None::<&()>).await
    }

    /// `PATCH /domain-lists/{name}`: add or remove entries, change the description.
    pub async fn update_domain_list(
        &self,
        name: &str,
        req: &ward_api::UpdateDomainList,
    ) -> Result<ward_api::DomainListInfo> {
        self.call(Method::PATCH, &["domain-lists", name], &[], Some(req)).await
    }

    /// `DELETE /domain-lists/{name}`.
    pub async fn delete_domain_list(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &["domain-lists", name], None::<&()>).await
    }

    /// `PUT /domain-lists/{name}/entries`: replace the entries with a file
    /// (`format` hosts, adblock or plain; detected when None), making the
    /// list if it is missing.
    pub async fn import_domain_list(
        &self,
        name: &str,
        format: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ward_api::DomainListImport> {
        let params: Vec<(&str, String)> = format.map(|f| ("format", f.to_owned())).into_iter().collect();
        let rb = self
            .request(Method::PUT, &["domain-lists", name, "entries"], &params, None::<&()>)?
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(body);
        self.send_json(rb).await
    }

    /// `PUT /domain-lists/{name}/entries?url=URL`: the server downloads the
    /// list from `url` (and keeps the URL for a refresh), making the list
    /// if it is missing.
    pub async fn import_domain_list_url(
        &self,
        name: &str,
        format: Option<&str>,
        url: &str,
    ) -> Result<ward_api::DomainListImport> {
        let mut params: Vec<(&str, String)> = vec![("url", url.to_owned())];
        if let Some(f) = format {
            params.push(("format", f.to_owned()));
        }
        let rb = self
            .request(Method::PUT, &["domain-lists", name, "entries"], &params, None::<&()>)?
            .header(reqwest::header::CONTENT_TYPE, "text/plain");
        self.send_json(rb).await
    }

    /// `GET /domain-lists/{name}/entries`: entries containing `contains`, at most `limit`.
    pub async fn domain_list_entries(
        &self,
        name: &str,
        contains: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ward_api::DomainListEntries> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(c) = contains {
            params.push(("contains", c.to_owned()));
        }
        if let Some(l) = limit {
            params.push(("limit", l.to_string()));
        }
        self.call(Method::GET, &["domain-lists", name, "entries"], &params, None::<&()>)
            .await
    }

    /// `POST /domain-lists/{name}/refresh`: import again from its URL.
    pub async fn refresh_domain_list(&self, name: &str) -> Result<ward_api::DomainListImport> {
        self.call(Method::POST, &["domain-lists", name, "refresh"], &[], None::<&()>)
            .await
    }

    /// `GET /internet/rules`.
    pub async fn list_internet_rules(&self) -> Result<Page<ward_api::InternetRuleInfo>> {
        self.call(Method::GET, &["internet", "rules"], &[], None::<&()>).await
    }

    /// `POST /internet/rules`.
    pub async fn create_internet_rule(&self, req: &ward_api::CreateInternetRule) -> Result<ward_api::InternetRuleInfo> {
        self.call(Method::POST, &["internet", "rules"], &[], Some(req)).await
    }

    /// `GET /internet/rules/{id}`.
    pub async fn get_internet_rule(&self, id: &str) -> Result<ward_api::InternetRuleInfo> {
        self.call(Method::GET, &["internet", "rules", id], &[], None::<&()>)
            .await
    }

    /// `PATCH /internet/rules/{id}`.
    pub async fn update_internet_rule(
        &self,
        id: &str,
        req: &ward_api::UpdateInternetRule,
    ) -> Result<ward_api::InternetRuleInfo> {
        self.call(Method::PATCH, &["internet", "rules", id], &[], Some(req))
            .await
    }

    /// `DELETE /internet/rules/{id}`.
    pub async fn delete_internet_rule(&self, id: &str) -> Result<()> {
        self.empty(Method::DELETE, &["internet", "rules", id], None::<&()>)
            .await
    }

    /// `POST /internet/rules/test`: the what-if; sends no traffic.
    pub async fn test_internet_rules(
        &self,
        req: &ward_api::InternetRuleTest,
    ) -> Result<ward_api::InternetRuleTestResult> {
        self.call(Method::POST, &["internet", "rules", "test"], &[], Some(req))
            .await
    }

    /// `GET /users/{name}/proxy-credentials`.
    pub async fn list_proxy_credentials(&self, user: &str) -> Result<Vec<ward_api::ProxyCredential>> {
        self.call(Method::GET, &["users", user, "proxy-credentials"], &[], None::<&()>)
            .await
    }

    /// `POST /users/{name}/proxy-credentials`: the password is in this answer only.
    pub async fn create_proxy_credential(&self, user: &str) -> Result<ward_api::NewProxyCredential> {
        self.call(Method::POST, &["users", user, "proxy-credentials"], &[], None::<&()>)
            .await
    }

    /// `DELETE /users/{name}/proxy-credentials/{id}`.
    pub async fn delete_proxy_credential(&self, user: &str, id: &str) -> Result<()> {
        self.empty(Method::DELETE, &["users", user, "proxy-credentials", id], None::<&()>)
            .await
    }

    /// `GET /device/routing` (device token): where the agent sends what.
    pub async fn device_routing(&self) -> Result<ward_api::DeviceRouting> {
        self.call(Method::GET, &["device", "routing"], &[], None::<&()>).await
    }

    /// `GET /logs/web` (`kind` `web`) or `GET /logs/dns` (`dns`): one page, newest first.
    pub async fn list_internet_logs(
        &self,
        kind: &str,
        q: ward_api::WebLogQuery,
    ) -> Result<Page<ward_api::AccessLogEntry>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("user", &q.user),
            ("device", &q.device),
            ("action", &q.action),
            ("domain", &q.domain),
            ("since", &q.since),
            ("cursor", &q.cursor),
        ] {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        self.call(Method::GET, &["logs", kind], &params, None::<&()>).await
    }

    /// `GET /logs/web/top`: the most frequent domains or users.
    pub async fn web_top(&self, q: &ward_api::TopQuery) -> Result<Vec<ward_api::TopEntry>> {
        let mut params: Vec<(&str, String)> = vec![("by", q.by.clone())];
        if let Some(a) = &q.action {
            params.push(("action", a.clone()));
        }
        if let Some(s) = &q.since {
            params.push(("since", s.clone()));
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        self.call(Method::GET, &["logs", "web", "top"], &params, None::<&()>)
            .await
    }

    // ---- API keys ---------------------------------------------------------

    /// `GET /apikeys`: one page of the caller's own keys.
    pub async fn list_api_keys(&self, page: PageQuery) -> Result<Page<ApiKey>> {
        self.call(Method::GET, &["apikeys"], &page_params(&page), None::<&()>)
            .await
    }

    /// `POST /apikeys`: the answer holds the secret token, shown only this once.
    pub async fn create_api_key(&self, req: &CreateApiKey) -> Result<ApiKeyCreated> {
        self.call(Method::POST, &["apikeys"], &[], Some(req)).await
    }

    /// `DELETE /apikeys/{id}`.
    pub async fn revoke_api_key(&self, id: &str) -> Result<()> {
        self.empty(Method::DELETE, &["apikeys", id], None::<&()>).await
    }

    // ---- audit ------------------------------------------------------------

    /// `GET /audit`: one page of events matching the filters.
    pub async fn list_audit(&self, query: AuditQuery) -> Result<Page<AuditEvent>> {
        let mut params = Vec::new();
        let filters = [
            ("actor", query.actor),
            ("action", query.action),
            ("result", query.result),
            ("since", query.since),
        ];
        for (key, value) in filters {
            if let Some(v) = value {
                params.push((key, v));
            }
        }
        params.extend(page_params(&PageQuery {
            cursor: query.cursor,
            limit: query.limit,
        }));
        self.call(Method::GET, &["audit"], &params, None::<&()>).await
    }

    // ---- pagination -------------------------------------------------------

    /// Every item of a list, following `next_cursor` page after page.
    ///
    /// `fetch` gets the [`PageQuery`] of each page and fetches it, e.g.
    /// `client.list_all(|p| client.list_accounts(p))`.
    pub async fn list_all<T, F, Fut>(&self, fetch: F) -> Result<Vec<T>>
    where
        F: FnMut(PageQuery) -> Fut,
        Fut: Future<Output = Result<Page<T>>>,
    {
        self.list_up_to(None, fetch).await
    }

    /// Like [`Client::list_all`], but stops after `max` items when it is set.
    pub async fn list_up_to<T, F, Fut>(&self, max: Option<usize>, mut fetch: F) -> Result<Vec<T>>
    where
        F: FnMut(PageQuery) -> Fut,
        Fut: Future<Output = Result<Page<T>>>,
    {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let limit = match max {
                Some(max) => {
                    let left = max.saturating_sub(items.len());
                    if left == 0 {
                        break;
                    }
                    Some(u32::try_from(left).unwrap_or(MAX_PAGE_LIMIT).min(MAX_PAGE_LIMIT))
                }
                None => None,
            };
            let page = fetch(PageQuery {
                cursor: cursor.clone(),
                limit,
            })
            .await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) if !next.is_empty() => {
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Err(ClientError::Decode(
                            "the server returned the same page cursor twice".to_owned(),
                        ));
                    }
                    cursor = Some(next);
                }
                _ => break,
            }
        }
        if let Some(max) = max {
            items.truncate(max);
        }
        Ok(items)
    }

    // ---- plumbing ---------------------------------------------------------

    /// `base` + `/api/v1` + the segments, each percent-encoded, + the query.
    fn url(&self, segments: &[&str], params: &[(&str, String)]) -> Result<Url> {
        if let Some(bad) = segments.iter().find(|s| s.is_empty() || **s == "." || **s == "..") {
            return Err(ClientError::Config(format!("{bad:?} is not a valid name or id")));
        }
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| ClientError::Config(format!("{} cannot be a base URL", self.server)))?;
            path.pop_if_empty();
            path.extend(API_PREFIX.split('/').filter(|s| !s.is_empty()));
            path.extend(segments);
        }
        if !params.is_empty() {
            let mut query = url.query_pairs_mut();
            for (key, value) in params {
                query.append_pair(key, value);
            }
        }
        Ok(url)
    }

    fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        params: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<RequestBuilder> {
        let url = self.url(segments, params)?;
        let mut rb = self.http.request(method, url);
        if let Some(token) = &self.token {
            rb = rb.header(AUTHORIZATION, bearer(token)?);
        }
        if let Some(body) = body {
            rb = rb.json(body);
        }
        Ok(rb)
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        params: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T> {
        let rb = self.request(method, segments, params, body)?;
        self.send_json(rb).await
    }

    async fn empty<B: Serialize + ?Sized>(&self, method: Method, segments: &[&str], body: Option<&B>) -> Result<()> {
        let rb = self.request(method, segments, &[], body)?;
        self.send(rb).await.map(drop)
    }

    /// Sends and returns the body of a 2xx response; anything else is an error.
    async fn send(&self, rb: RequestBuilder) -> Result<Vec<u8>> {
        let connect = |source| ClientError::Connect {
            server: self.server.clone(),
            source,
        };
        let resp = rb.send().await.map_err(connect)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(connect)?;
        if status.is_success() {
            Ok(body.to_vec())
        } else {
            Err(api_error(status, &body))
        }
    }

    async fn send_json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let body = self.send(rb).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

fn page_params(page: &PageQuery) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if let Some(cursor) = &page.cursor {
        params.push(("cursor", cursor.clone()));
    }
    if let Some(limit) = page.limit {
        params.push(("limit", limit.to_string()));
    }
    params
}

fn check_token(token: &str) -> Result<()> {
    bearer(token).map(drop)
}

fn bearer(token: &str) -> Result<HeaderValue> {
    let bad =
        || ClientError::Config("the token is not usable: it must be non-empty visible ASCII without spaces".to_owned());
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Maps a non-2xx response to [`ClientError::Api`].
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        return ClientError::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        };
    }
    let reason = status.canonical_reason().unwrap_or("unknown status");
    let mut message = format!("the server answered {} {reason}", status.as_u16());
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !snippet.is_empty() && !snippet.starts_with('<') {
        let short: String = snippet.chars().take(120).collect();
        let ellipsis = if short.len() < snippet.len() { "..." } else { "" };
        message.push_str(&format!(": {short}{ellipsis}"));
    }
    ClientError::Api {
        status: status.as_u16(),
        code: format!("http_{}", status.as_u16()),
        message,
    }
}

#[cfg(test)]
mod tests;
