//! The console's pages. Each one reads and writes through the API's own
//! handlers (`crate::api`), called in-process with the signed-in account's
//! [`Ctx`], so a page can show or change exactly what the API would let
//! that account see or change, checked by the same `Ctx::authorize`. Pages
//! hide the forms an account may not use; a post that is refused anyway
//! answers 403, which the audit trail records as denied.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use ward_api::{
    AccessQuery, AuditQuery, CreateApplication, CreateEnrollCode, CreateGroup, CreateRule, CreateUser, PageQuery,
    RuleTest, SetUserPassword, UpdateRule, UpdateUser,
};
use ward_core::{ErrorCode, Permission};

use super::layout::{self, csrf_field, notice, page, Who};
use super::session::{self, csrf_for, ConsoleSession};
use crate::api;
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{now_ms, AppState};

pub mod internet;

/// A signed-in console request: the API context of its account, and the
/// CSRF token its forms carry. Without a valid session cookie the browser
/// is sent to the sign-in page, and comes back here afterwards.
pub struct Console {
    pub ctx: Ctx,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
        let Some(ConsoleSession(token)) = parts.extensions.get::<ConsoleSession>().cloned() else {
            return Err(layout::redirect_to_login(&back));
        };
        match Ctx::from_request_parts(parts, state).await {
            Ok(ctx) => Ok(Console {
                ctx,
                csrf: csrf_for(&token),
            }),
            Err(e) if e.code == ErrorCode::TenantSuspended => Err(layout::error_page(e.status(), &e.message)),
            Err(e) if e.code == ErrorCode::MfaEnrollmentRequired => Err(Redirect::to("/account").into_response()),
            Err(_) => Err(layout::redirect_to_login(&back)),
        }
    }
}

impl Console {
    fn can(&self, perm: Permission) -> bool {
        ward_core::authorize(&self.ctx.principal.actor(), perm, self.ctx.tenant_target()).is_ok()
    }

    fn who(&self) -> Who<'_> {
        Who {
            tenant: &self.ctx.principal.tenant.name,
            account: &self.ctx.principal.account.name,
            role: self.ctx.principal.account.role.as_str(),
            csrf: &self.csrf,
        }
    }

    fn page(&self, title: &str, current: &str, body: Markup) -> Response {
        page(title, current, Some(&self.who()), body)
    }

    /// The page with a notice, answered with `status` (a refused or failed
    /// form keeps the API's status, so the trail records it as such).
    fn page_with(&self, status: StatusCode, title: &str, current: &str, body: Markup) -> Response {
        let mut r = self.page(title, current, body);
        *r.status_mut() = status;
        r
    }
}

fn fail(e: ApiError) -> Response {
    if e.code == ErrorCode::MfaEnrollmentRequired {
        return Redirect::to("/account").into_response();
    }
    layout::error_page(e.status(), &e.message)
}

fn list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn all() -> ApiQuery<PageQuery> {
    ApiQuery(PageQuery {
        cursor: None,
        limit: Some(500),
    })
}

/// Messages for `?done=`, from a fixed table: a link cannot make the
/// console say something of its choosing.
fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "user" => "User created.",
        "group" => "Group created.",
        "user-updated" => "User updated.",
        "user-password" => "Password set; the user can sign in to the user portal with it.",
        "user-mfa-reset" => {
            "Two-step sign-in turned off; the user's portal sessions ended. They can turn it on again in the portal."
        }
        "app" => "Application created.",
        "app-deleted" => "Application deleted.",
        "rule" => "Rule created.",
        "rule-updated" => "Rule updated.",
        "rule-deleted" => "Rule deleted.",
        "rule-moved" => "Rule moved; the gateways apply the new order at once.",
        "device-revoked" => "Device revoked; its connections are closed.",
        "account" => "Account created.",
        "account-deleted" => "Account deleted; its sessions and keys ended with it.",
        "account-unlocked" => "Account unlocked.",
        "apikey-revoked" => "API key revoked.",
        "idp" => "Identity source added.",
        "idp-deleted" => "Identity source deleted; its users and groups stay, unlinked.",
        "idp-synced" => "Directory synced.",
        "user-attributes" => "Attributes saved.",
        "group-conditions" => "Conditions saved.",
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    }
}

fn when(ts: &str) -> String {
    // RFC 3339 to "2026-11-28 07:30:12Z": shorter, still unambiguous.
    ts.replacen('T', " ", 1)
        .split('.')
        .next()
        .unwrap_or(ts)
        .trim_end_matches('Z')
        .to_owned()
        + "Z"
}

// ---- sign-in --------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    login_page(&state, q.next.as_deref(), None, StatusCode::OK)
}

fn login_page(state: &AppState, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    let token = session::new_login_token();
    let next = layout::safe_next(next);
    let body = html! {
        div.signin.card {
            (notice(error, true))
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "Tenant" input name="tenant" required autocomplete="organization" value="default"; }
                label { "Account" input name="username" required autocomplete="username" autofocus; }
                label { "Password" input name="password" type="password" required autocomplete="current-password"; }
                label { "Authenticator code (if the account uses one)"
                    input name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="32"; }
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut r = page("Sign in", "", None, body);
    *r.status_mut() = status;
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::login_cookie_name(state), &token, 600),
    );
    r
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    tenant: String,
    username: String,
    password: String,
    #[serde(default)]
    otp: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    anon: crate::ctx::Anonymous,
    Form(f): Form<LoginForm>,
) -> Response {
    let req = ward_api::LoginRequest {
        tenant: f.tenant,
        username: f.username,
        password: f.password,
        otp: Some(f.otp.trim().to_owned()).filter(|c| !c.is_empty()),
    };
    match crate::auth::login::login(&state, anon.peer, &anon.audit, req).await {
        Ok(ok) => {
            let ttl = state.config.session_ttl.as_secs() as i64;
            let mut r = Redirect::to(layout::safe_next(f.next.as_deref())).into_response();
            // A new session at every sign-in: a cookie planted before cannot be carried over.
            r.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(session::session_cookie_name(&state), &ok.token, ttl),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(session::login_cookie_name(&state), "", 0),
            );
            r
        }
        Err(e) if e.code == ErrorCode::MfaRequired => login_page(
            &state,
            f.next.as_deref(),
            Some("This account signs in with a second factor: enter the password again with the code from your authenticator app (or a recovery code)."),
            e.status(),
        ),
        Err(e) => login_page(&state, f.next.as_deref(), Some(&e.message), e.status()),
    }
}

pub async fn logout(State(state): State<AppState>, c: Console) -> Response {
    let _ = api::auth::logout(c.ctx).await;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::session_cookie_name(&state), "", 0),
    );
    r
}

// ---- dashboard ------------------------------------------------------------

const HOUR_MS: i64 = 3_600_000;

pub async fn dashboard(c: Console) -> Response {
    let ctx = &c.ctx;
    let mut tiles: Vec<(String, &str)> = Vec::new();
    let mut chart = html! {};
    let mut compliance = html! {};
    if c.can(Permission::LogsRead) {
        if let Err(e) = ctx.authorize(Permission::LogsRead, ctx.tenant_target()) {
            return fail(e);
        }
        let now = now_ms();
        let first = (now / HOUR_MS - 23) * HOUR_MS;
        let counts = match ctx.state.store.access_counts(ctx.tenant_id(), first, HOUR_MS).await {
            Ok(c) => c,
            Err(e) => return fail(e.into()),
        };
        let by_hour: HashMap<i64, (u64, u64)> = counts.into_iter().map(|(b, a, d)| (b, (a, d))).collect();
        let bars: Vec<(u64, u64)> = (0..24)
            .map(|i| by_hour.get(&(first + i * HOUR_MS)).copied().unwrap_or((0, 0)))
            .collect();
        let allowed: u64 = bars.iter().map(|b| b.0).sum();
        let denied: u64 = bars.iter().map(|b| b.1).sum();
        tiles.push((allowed.to_string(), "connections allowed, last 24 h"));
        tiles.push((denied.to_string(), "connections denied, last 24 h"));
        let label = |ms: i64| ward_core::time::rfc3339(ms).get(11..16).unwrap_or("").to_owned() + " UTC";
        chart = html! {
            section {
                h2 { "Connections per hour, last 24 hours" }
                (layout::stacked_bars(&bars, [&label(first), &label(first + 12 * HOUR_MS), &label(first + 23 * HOUR_MS)]))
            }
        };
    }
    if c.can(Permission::DevicesRead) {
        let devices = match api::devices::list(ctx.clone(), all()).await {
            Ok(d) => d.0.items,
            Err(e) => return fail(e),
        };
        let active: Vec<_> = devices.iter().filter(|d| d.state == "active").collect();
        let compliant = active.iter().filter(|d| d.compliant).count();
        let failing = active.len() - compliant;
        let (tunnels, connections) = ctx.state.gateway_reports.open_now(ctx.tenant_id(), now_ms());
        tiles.push((tunnels.to_string(), "tunnels open now"));
        tiles.push((connections.to_string(), "connections open now"));
        tiles.push((active.len().to_string(), "devices enrolled"));
        tiles.push((failing.to_string(), "devices not compliant"));
        let total = active.len().max(1) as f64;
        let w = compliant as f64 / total * 100.0;
        compliance = html! {
            section {
                h2 { "Device compliance" }
                svg.meter viewBox="0 0 100 6" preserveAspectRatio="none" role="img"
                    aria-label=(format!("{compliant} compliant, {failing} not compliant")) {
                    rect class="allow" x="0" y="0" height="6" width=(format!("{w:.2}")) {}
                    rect class="deny" x=(format!("{w:.2}")) y="0" height="6" width=(format!("{:.2}", 100.0 - w)) {}
                }
                p.muted { span.key.allow { (compliant) " compliant" } " · " span.key.deny { (failing) " not compliant" } }
            }
        };
    }
    if c.can(Permission::UsersRead) {
        if let Ok(users) = api::users::list(ctx.clone(), all()).await {
            tiles.push((users.0.items.len().to_string(), "users"));
        }
    }
    if c.can(Permission::PolicyRead) {
        if let Ok(rules) = api::policy::list_rules(ctx.clone()).await {
            tiles.push((rules.0.items.len().to_string(), "access rules"));
        }
    }
    let body = html! {
        div.tiles {
            @for (n, l) in &tiles { div.tile { div.n { (n) } div.l { (l) } } }
        }
        (chart)
        (compliance)
    };
    c.page("Dashboard", "/", body)
}

// ---- users and groups ---------------------------------------------------

pub async fn users(c: Console, Query(q): Query<Done>) -> Response {
    users_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK, None).await
}

async fn users_page(
    c: &Console,
    message: Option<&str>,
    error: bool,
    status: StatusCode,
    code: Option<ward_api::EnrollCode>,
) -> Response {
    let users = match api::users::list(c.ctx.clone(), all()).await {
        Ok(u) => u.0.items,
        Err(e) => return fail(e),
    };
    let groups = match api::users::list_groups(c.ctx.clone()).await {
        Ok(g) => g.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::UsersManage);
    let enrol = c.can(Permission::DevicesManage);
    let body = html! {
        (notice(message, error))
        @if let Some(code) = &code {
            section {
                h2 { "Enrolment code for " (code.user) }
                p { "Give it to the user; it works once, until " (when(&code.expires_at)) "." }
                pre { "ward agent enroll --server " (c.ctx.state.config.url()) " --code " (code.code) }
            }
        }
        @if manage {
            section {
                h2 { "New user" }
                form.grid method="post" action="/users" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64"; }
                    label { "Groups (comma-separated)" input name="groups"; }
                    button type="submit" { "Create user" }
                }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "User" } th { "Groups" } th { "Attributes" } th { "State" } th { "Password" } th { "Created" } @if manage || enrol { th { "Actions" } } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.name) @if u.source.is_some() { br; span.muted { "from a source" } } }
                            td { @for g in &u.groups { span.tag { (g) } } }
                            td {
                                @for (k, v) in &u.attributes { span.tag { (k) "=" (v) } }
                                @if manage && u.source.is_none() {
                                    form.inline method="post" action=(format!("/users/{}/attributes", u.name)) {
                                        (csrf_field(&c.csrf))
                                        input name="attributes" value=(u.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
                                            placeholder="department=Sales, email=x@corp.example"
                                            aria-label=(format!("Attributes of {}", u.name));
                                        button.secondary type="submit" { "Save" }
                                    }
                                }
                            }
                            td { @if u.disabled { span.deny { "disabled" } } @else { "active" } }
                            td {
                                @if u.has_password { "set" } @else { span.muted { "none" } }
                                @if let Some(until) = &u.locked_until {
                                    " " span.deny title=(format!("locked until {}", when(until))) { "locked" }
                                }
                                @if u.mfa_enabled { " " span.tag title="Two-step sign-in to the portal" { "two-step" } }
                            }
                            td { (when(&u.created_at)) }
                            @if manage || enrol {
                                td {
                                    @if manage {
                                        form.inline method="post" action=(format!("/users/{}/state", u.name)) {
                                            (csrf_field(&c.csrf))
                                            input type="hidden" name="disabled" value=(if u.disabled { "false" } else { "true" });
                                            button.secondary type="submit" { @if u.disabled { "Enable" } @else { "Disable" } }
                                        }
                                        " "
                                    }
                                    @if enrol && !u.disabled {
                                        form.inline method="post" action=(format!("/users/{}/enroll-code", u.name)) {
                                            (csrf_field(&c.csrf))
                                            button.secondary type="submit" { "Enrolment code" }
                                        }
                                    }
                                    @if manage {
                                        " "
                                        form.inline method="post" action=(format!("/users/{}/password", u.name)) {
                                            (csrf_field(&c.csrf))
                                            input type="password" name="password" required minlength="10" maxlength="1024"
                                                autocomplete="new-password" placeholder="New password"
                                                aria-label=(format!("New password for {}", u.name));
                                            button.secondary type="submit" { "Set password" }
                                        }
                                        @if u.mfa_enabled {
                                            " "
                                            form.inline method="post" action=(format!("/users/{}/mfa-reset", u.name)) {
                                                (csrf_field(&c.csrf))
                                                button.secondary type="submit" title="For a lost phone: the user signs in with the password alone and can set it up again" { "Reset two-step" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if users.is_empty() { tr { td colspan="7" .muted { "No users yet." } } }
                }
            }
        }
        h2 { "Groups" }
        @if manage {
            form.grid method="post" action="/groups" {
                (csrf_field(&c.csrf))
                label { "Name" input name="name" required maxlength="64"; }
                label { "Conditions (optional; all must hold)" input name="conditions" placeholder="department=Engineering, email_domain=corp.example"; }
                button type="submit" { "Create group" }
            }
            p.muted { "A group with conditions is dynamic: its members are the users whose attributes meet every condition (exact match; email_domain is the domain of the email attribute, in any case)." }
        }
        div.scroll {
            table {
                thead { tr { th { "Group" } th { "Members" } th { "Conditions" } th { "Created" } } }
                tbody {
                    @for g in &groups {
                        tr {
                            td { (g.name) }
                            td { @for m in &g.members { span.tag { (m) } } }
                            td {
                                @if g.conditions.is_empty() { span.muted { "static" } }
                                @for cond in &g.conditions { span.tag { (cond) } }
                                @if manage {
                                    form.inline method="post" action=(format!("/groups/{}/conditions", g.name)) {
                                        (csrf_field(&c.csrf))
                                        input name="conditions" value=(g.conditions.join(", ")) placeholder="department=Engineering"
                                            aria-label=(format!("Conditions of {}", g.name));
                                        button.secondary type="submit" { "Save" }
                                    }
                                }
                            }
                            td { (when(&g.created_at)) }
                        }
                    }
                    @if groups.is_empty() { tr { td colspan="4" .muted { "No groups yet." } } }
                }
            }
        }
    };
    c.page_with(status, "Users and groups", "/users", body)
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    name: String,
    #[serde(default)]
    groups: String,
}

pub async fn create_user(c: Console, Form(f): Form<UserForm>) -> Response {
    let req = CreateUser {
        name: f.name.trim().to_owned(),
        groups: list(&f.groups),
    };
    match api::users::create(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=user").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct GroupForm {
    name: String,
    /// Conditions, `key=value`, separated by commas or new lines.
    #[serde(default)]
    conditions: String,
}

fn conditions_list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn create_group(c: Console, Form(f): Form<GroupForm>) -> Response {
    let req = CreateGroup {
        name: f.name.trim().to_owned(),
        conditions: conditions_list(&f.conditions),
    };
    match api::users::create_group(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=group").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct AttributesForm {
    /// `key=value`, separated by commas or new lines.
    #[serde(default)]
    attributes: String,
}

pub async fn set_user_attributes(c: Console, Path(name): Path<String>, Form(f): Form<AttributesForm>) -> Response {
    let mut attributes = std::collections::BTreeMap::new();
    for pair in conditions_list(&f.attributes) {
        let Some((k, v)) = pair.split_once('=') else {
            let msg = format!("attribute {pair:?}: expected key=value");
            return users_page(&c, Some(&msg), true, StatusCode::BAD_REQUEST, None).await;
        };
        attributes.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let req = UpdateUser {
        disabled: None,
        attributes: Some(attributes),
    };
    match api::users::update(c.ctx.clone(), ApiPath(name), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=user-attributes").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ConditionsForm {
    #[serde(default)]
    conditions: String,
}

pub async fn set_group_conditions(c: Console, Path(name): Path<String>, Form(f): Form<ConditionsForm>) -> Response {
    let req = ward_api::UpdateGroup {
        conditions: Some(conditions_list(&f.conditions)),
    };
    match api::users::update_group(c.ctx.clone(), ApiPath(name), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=group-conditions").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct StateForm {
    disabled: bool,
}

pub async fn set_user_state(c: Console, Path(name): Path<String>, Form(f): Form<StateForm>) -> Response {
    let req = UpdateUser {
        disabled: Some(f.disabled),
        attributes: None,
    };
    match api::users::update(c.ctx.clone(), ApiPath(name), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=user-updated").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
}

/// Set an end user's password (for the user portal). The password is taken
/// as typed: spaces may be part of it.
pub async fn set_user_password(c: Console, Path(name): Path<String>, Form(f): Form<PasswordForm>) -> Response {
    let req = SetUserPassword { password: f.password };
    match api::users::set_password(c.ctx.clone(), ApiPath(name), ApiJson(req)).await {
        Ok(_) => Redirect::to("/users?done=user-password").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

/// Turns off an end user's two-step sign-in (a lost phone).
pub async fn reset_user_mfa(c: Console, Path(name): Path<String>) -> Response {
    match api::users::mfa_reset(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/users?done=user-mfa-reset").into_response(),
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

pub async fn enroll_code(c: Console, Path(name): Path<String>) -> Response {
    let req = CreateEnrollCode {
        user: name,
        ttl_secs: None,
    };
    match api::devices::create_code(c.ctx.clone(), ApiJson(req)).await {
        Ok((_, code)) => users_page(&c, None, false, StatusCode::OK, Some(code.0)).await,
        Err(e) => users_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

// ---- devices ----------------------------------------------------------------

pub async fn devices(c: Console, Query(q): Query<Done>) -> Response {
    devices_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK).await
}

async fn devices_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let devices = match api::devices::list(c.ctx.clone(), all()).await {
        Ok(d) => d.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::DevicesManage);
    let body = html! {
        (notice(message, error))
        div.scroll {
            table {
                thead { tr {
                    th { "Device" } th { "User" } th { "State" } th { "Compliant" } th { "OS" } th { "Disk encryption" }
                    th { "Firewall" } th { "Agent" } th { "Last seen" } th { "Certificate until" } @if manage { th { "" } }
                } }
                tbody {
                    @for d in &devices {
                        tr {
                            td { (d.name) br; span.muted { (d.id) } }
                            td { (d.user) }
                            td { @if d.state == "active" { "active" } @else { span.deny { (d.state) } } }
                            td {
                                @if d.compliant { span.allow { "yes" } } @else {
                                    span.deny { "no" }
                                    @for f in &d.compliance_failures { br; span.muted { (f) } }
                                }
                            }
                            td { (d.posture.os) " " (d.posture.os_version) }
                            td { (yes_no(d.posture.disk_encryption)) }
                            td { (yes_no(d.posture.firewall)) }
                            td { (d.posture.agent_version) }
                            td { (when(&d.last_seen_at)) }
                            td { (when(&d.cert_expires_at)) }
                            @if manage {
                                td {
                                    @if d.state == "active" {
                                        form.inline method="post" action=(format!("/devices/{}/revoke", d.id)) {
                                            (csrf_field(&c.csrf))
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if devices.is_empty() { tr { td colspan="11" .muted { "No devices yet: create an enrolment code on the Users page." } } }
                }
            }
        }
    };
    c.page_with(status, "Devices", "/devices", body)
}

pub async fn revoke_device(c: Console, Path(id): Path<String>) -> Response {
    match api::devices::revoke(c.ctx.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/devices?done=device-revoked").into_response(),
        Err(e) => devices_page(&c, Some(&e.message), true, e.status()).await,
    }
}

// ---- applications -----------------------------------------------------------

pub async fn apps(c: Console, Query(q): Query<Done>) -> Response {
    apps_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK).await
}

async fn apps_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let apps = match api::policy::list_apps(c.ctx.clone()).await {
        Ok(a) => a.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::PolicyManage);
    let body = html! {
        (notice(message, error))
        @if manage {
            section {
                h2 { "New application" }
                form.grid method="post" action="/apps" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64"; }
                    label { "Addresses (IPs, CIDRs, domains, *.domains)" input name="addresses" required placeholder="db.corp.example, 10.0.0.0/24"; }
                    label { "Ports" input name="ports" required placeholder="5432, 8000-8100"; }
                    label { "Tags" input name="tags"; }
                    label { "Public host (clientless web access)" input name="public_host" placeholder="wiki.example.com" maxlength="253"; }
                    label { "Upstream scheme" select name="upstream_scheme" { option value="http" { "http" } option value="https" { "https" } } }
                    button type="submit" { "Create application" }
                }
                p.muted { "A new application is denied to everyone until a rule allows it. With a public host, browsers reach it through the gateway's HTTPS listener (its first address and port) when a rule admits agentless access." }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "Application" } th { "Addresses" } th { "Ports" } th { "Tags" } th { "Public host" } th { "Created" } @if manage { th { "" } } } }
                tbody {
                    @for a in &apps {
                        tr {
                            td { (a.name) }
                            td { @for x in &a.addresses { span.tag { (x) } } }
                            td { @for p in &a.ports { span.tag { (p) } } " " span.muted { (a.protocol) } }
                            td { @for t in &a.tags { span.tag { (t) } } }
                            td { @if let Some(h) = &a.public_host { "https://" (h) br; span.muted { "to " (a.upstream_scheme) } } @else { span.muted { "-" } } }
                            td { (when(&a.created_at)) }
                            @if manage {
                                td {
                                    form.inline method="post" action=(format!("/apps/{}/delete", a.name)) {
                                        (csrf_field(&c.csrf))
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                    @if apps.is_empty() { tr { td colspan="7" .muted { "No applications yet." } } }
                }
            }
        }
    };
    c.page_with(status, "Applications", "/apps", body)
}

#[derive(Debug, Deserialize)]
pub struct AppForm {
    name: String,
    addresses: String,
    ports: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    public_host: String,
    #[serde(default)]
    upstream_scheme: String,
}

pub async fn create_app(c: Console, Form(f): Form<AppForm>) -> Response {
    let req = CreateApplication {
        name: f.name.trim().to_owned(),
        addresses: list(&f.addresses),
        ports: list(&f.ports),
        protocol: None,
        tags: list(&f.tags),
        public_host: Some(f.public_host.trim().to_owned()).filter(|h| !h.is_empty()),
        upstream_scheme: Some(f.upstream_scheme.trim().to_owned()).filter(|s| !s.is_empty()),
    };
    match api::policy::create_app(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/apps?done=app").into_response(),
        Err(e) => apps_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn delete_app(c: Console, Path(name): Path<String>) -> Response {
    match api::policy::delete_app(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/apps?done=app-deleted").into_response(),
        Err(e) => apps_page(&c, Some(&e.message), true, e.status()).await,
    }
}

// ---- rules --------------------------------------------------------------------

pub async fn rules(c: Console, Query(q): Query<Done>) -> Response {
    rules_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK, None).await
}

async fn rules_page(
    c: &Console,
    message: Option<&str>,
    error: bool,
    status: StatusCode,
    tested: Option<(RuleTest, ward_api::RuleTestResult)>,
) -> Response {
    let rules = match api::policy::list_rules(c.ctx.clone()).await {
        Ok(r) => r.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::PolicyManage);
    let next_priority = rules.iter().map(|r| r.priority).max().unwrap_or(0) + 10;
    let body = html! {
        (notice(message, error))
        section {
            h2 { "Would a user reach a destination?" }
            form.grid method="post" action="/rules/test" {
                (csrf_field(&c.csrf))
                label { "User" input name="user" required value=[tested.as_ref().map(|t| t.0.user.as_str())]; }
                label { "Device id (optional)" input name="device" value=[tested.as_ref().and_then(|t| t.0.device.as_deref())]; }
                label { "Destination host:port" input name="to" required placeholder="db.corp.example:5432" value=[tested.as_ref().map(|t| t.0.to.as_str())]; }
                button type="submit" { "Test" }
            }
            @if let Some((_, r)) = &tested {
                p {
                    strong class=(if r.decision == "allow" { "allow" } else { "deny" }) { (r.decision) }
                    " · " (r.reason)
                    @if let Some(rule) = &r.rule { " · rule " (rule.id) " (priority " (rule.priority) ")" }
                    @if !r.applications.is_empty() { " · applications: " (r.applications.join(", ")) }
                }
                @if !r.steps.is_empty() {
                    ol {
                        @for s in &r.steps {
                            li { "rule " (s.rule.id) " (priority " (s.rule.priority) "): "
                                @if s.matched { span.allow { "matches" } } @else { span.muted { (s.why_not.as_deref().unwrap_or("does not match")) } } }
                        }
                    }
                }
            }
        }
        @if manage {
            section {
                h2 { "New rule" }
                form.grid method="post" action="/rules" {
                    (csrf_field(&c.csrf))
                    label { "Priority (1 is first)" input name="priority" type="number" min="1" required value=(next_priority); }
                    label { "Action" select name="action" { option value="allow" { "allow" } option value="block" { "block" } } }
                    label { "Applications" input name="apps"; }
                    label { "Tags" input name="tags"; }
                    label { "Users" input name="users"; }
                    label { "Groups" input name="groups"; }
                    label { "Source networks (CIDR)" input name="sources"; }
                    label.check { input type="checkbox" name="require_compliant_device" value="true"; "Require a compliant device" }
                    label.check { input type="checkbox" name="agentless" value="true"; "Admit clientless web access (no agent)" }
                    button type="submit" { "Create rule" }
                }
                p.muted { "Name applications or tags. With no users and no groups, a rule covers everyone." }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "Priority" } th { "Action" } th { "Applications / tags" } th { "Who" } th { "Conditions" } th { "State" } @if manage { th { "" } } } }
                tbody {
                    @for r in &rules {
                        tr {
                            td.num { (r.priority) }
                            td class=(if r.action == "allow" { "allow" } else { "deny" }) { (r.action) }
                            td { @for a in &r.apps { span.tag { (a) } } @for t in &r.tags { span.tag { "#" (t) } } }
                            td {
                                @if r.users.is_empty() && r.groups.is_empty() { span.muted { "everyone" } }
                                @for u in &r.users { span.tag { (u) } }
                                @for g in &r.groups { span.tag { "group " (g) } }
                            }
                            td {
                                @if r.require_compliant_device { "compliant device (" (r.posture) ")" br; }
                                @if r.agentless { "agentless (browser)" br; }
                                @if !r.sources.is_empty() { "from " (r.sources.join(", ")) br; }
                                @if let Some(f) = &r.valid_from { "from " (when(f)) br; }
                                @if let Some(u) = &r.valid_until { "until " (when(u)) }
                            }
                            td { @if r.enabled { "enabled" } @else { span.muted { "disabled" } } }
                            @if manage {
                                td {
                                    form.inline method="post" action=(format!("/rules/{}/move", r.id)) {
                                        (csrf_field(&c.csrf))
                                        input type="hidden" name="dir" value="up";
                                        button.secondary type="submit" title="Move up (decide earlier)" aria-label="Move up" { "↑" }
                                    }
                                    " "
                                    form.inline method="post" action=(format!("/rules/{}/move", r.id)) {
                                        (csrf_field(&c.csrf))
                                        input type="hidden" name="dir" value="down";
                                        button.secondary type="submit" title="Move down (decide later)" aria-label="Move down" { "↓" }
                                    }
                                    " "
                                    form.inline method="post" action=(format!("/rules/{}/state", r.id)) {
                                        (csrf_field(&c.csrf))
                                        input type="hidden" name="enabled" value=(if r.enabled { "false" } else { "true" });
                                        button.secondary type="submit" { @if r.enabled { "Disable" } @else { "Enable" } }
                                    }
                                    " "
                                    form.inline method="post" action=(format!("/rules/{}/delete", r.id)) {
                                        (csrf_field(&c.csrf))
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                    @if rules.is_empty() { tr { td colspan="7" .muted { "No rules: every connection is denied." } } }
                }
            }
        }
    };
    c.page_with(status, "Access rules", "/rules", body)
}

#[derive(Debug, Deserialize)]
pub struct RuleForm {
    priority: u32,
    action: String,
    #[serde(default)]
    apps: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    users: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    sources: String,
    #[serde(default)]
    require_compliant_device: Option<String>,
    #[serde(default)]
    agentless: Option<String>,
}

pub async fn create_rule(c: Console, Form(f): Form<RuleForm>) -> Response {
    let req = CreateRule {
        priority: f.priority,
        action: f.action,
        apps: list(&f.apps),
        tags: list(&f.tags),
        users: list(&f.users),
        groups: list(&f.groups),
        sources: list(&f.sources),
        require_compliant_device: f.require_compliant_device.is_some(),
        agentless: f.agentless.is_some(),
        ..CreateRule::default()
    };
    match api::policy::create_rule(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/rules?done=rule").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct RuleStateForm {
    enabled: bool,
}

pub async fn set_rule_state(c: Console, Path(id): Path<String>, Form(f): Form<RuleStateForm>) -> Response {
    let req = UpdateRule {
        enabled: Some(f.enabled),
        priority: None,
    };
    match api::policy::update_rule(c.ctx.clone(), ApiPath(id), ApiJson(req)).await {
        Ok(_) => Redirect::to("/rules?done=rule-updated").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct MoveForm {
    /// `up` (earlier, a higher priority) or `down`.
    dir: String,
}

/// Swaps a rule with its neighbour: the whole order goes to the API at
/// once, so the gateways never see a half-moved list.
pub async fn move_rule(c: Console, Path(id): Path<String>, Form(f): Form<MoveForm>) -> Response {
    let rules = match api::policy::list_rules(c.ctx.clone()).await {
        Ok(r) => r.0.items,
        Err(e) => return fail(e),
    };
    let mut ids: Vec<String> = rules.into_iter().map(|r| r.id).collect();
    let Some(at) = ids.iter().position(|r| *r == id) else {
        return rules_page(&c, Some("No such rule."), true, StatusCode::NOT_FOUND, None).await;
    };
    let other = match f.dir.as_str() {
        "up" if at > 0 => at - 1,
        "down" if at + 1 < ids.len() => at + 1,
        "up" | "down" => return Redirect::to("/rules").into_response(),
        _ => return rules_page(&c, Some("dir: up or down"), true, StatusCode::BAD_REQUEST, None).await,
    };
    ids.swap(at, other);
    match api::policy::reorder_rules(c.ctx.clone(), ApiJson(ward_api::ReorderRules { ids })).await {
        Ok(_) => Redirect::to("/rules?done=rule-moved").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

pub async fn delete_rule(c: Console, Path(id): Path<String>) -> Response {
    match api::policy::delete_rule(c.ctx.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/rules?done=rule-deleted").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct TestForm {
    user: String,
    #[serde(default)]
    device: String,
    to: String,
}

pub async fn test_rules(c: Console, Form(f): Form<TestForm>) -> Response {
    let req = RuleTest {
        user: f.user.trim().to_owned(),
        device: Some(f.device.trim().to_owned()).filter(|d| !d.is_empty()),
        to: f.to.trim().to_owned(),
        ..RuleTest::default()
    };
    match api::policy::test_rules(c.ctx.clone(), ApiJson(req.clone())).await {
        Ok(result) => rules_page(&c, None, false, StatusCode::OK, Some((req, result.0))).await,
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

// ---- access records -----------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct RecordFilter {
    #[serde(default)]
    user: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    destination: String,
    #[serde(default)]
    action: String,
    /// `1h`, `24h`, `7d`...
    #[serde(default)]
    since: String,
}

pub async fn records(c: Console, Query(f): Query<RecordFilter>) -> Response {
    let since = if f.since.trim().is_empty() {
        None
    } else {
        match humantime::parse_duration(f.since.trim()) {
            Ok(d) => Some(ward_core::time::rfc3339(
                now_ms() - d.as_millis().min(i64::MAX as u128) as i64,
            )),
            Err(_) => return fail(ApiError::invalid("since: a duration such as 1h, 24h or 7d")),
        }
    };
    let q = AccessQuery {
        user: Some(f.user.trim().to_owned()).filter(|s| !s.is_empty()),
        device: Some(f.device.trim().to_owned()).filter(|s| !s.is_empty()),
        action: Some(f.action.trim().to_owned()).filter(|s| !s.is_empty()),
        since,
        cursor: None,
        limit: Some(500),
    };
    let mut items = match api::gateways::list_records(c.ctx.clone(), ApiQuery(q)).await {
        Ok(p) => p.0.items,
        Err(e) => return fail(e),
    };
    let dest = f.destination.trim().to_ascii_lowercase();
    if !dest.is_empty() {
        items.retain(|r| r.dest_host.contains(&dest) || r.dest_addr.as_deref().is_some_and(|a| a.contains(&dest)));
    }
    let body = html! {
        form.filters method="get" action="/records" {
            label { "User" input name="user" value=(f.user); }
            label { "Device id" input name="device" value=(f.device); }
            label { "Destination contains" input name="destination" value=(f.destination); }
            label { "Action" select name="action" {
                option value="" selected[f.action.is_empty()] { "any" }
                option value="allow" selected[f.action == "allow"] { "allow" }
                option value="deny" selected[f.action == "deny"] { "deny" }
            } }
            label { "Within the last" input name="since" value=(f.since) placeholder="24h"; }
            button type="submit" { "Filter" }
        }
        p.muted { (items.len()) " records (newest first, at most 500)" }
        div.scroll {
            table {
                thead { tr {
                    th { "Time" } th { "User" } th { "Device" } th { "Source" } th { "Destination" } th { "Action" }
                    th { "Rule / reason" } th { "Bytes up" } th { "Bytes down" } th { "Duration" } th { "End" }
                } }
                tbody {
                    @for r in &items {
                        tr {
                            td { (when(&r.time)) }
                            td { (r.user) }
                            td { @if r.device_id.is_empty() { span.muted { "browser" } } @else { (r.device_id) } }
                            td { (r.source) }
                            td {
                                @if let (Some(m), Some(p)) = (&r.method, &r.path) {
                                    (m) " https://" (r.dest_host) (p)
                                    @if let Some(s) = r.status { " → " (s) }
                                } @else {
                                    (r.dest_host) ":" (r.port)
                                }
                                @if let Some(a) = &r.dest_addr { @if *a != r.dest_host { br; span.muted { (a) } } }
                            }
                            td class=(if r.action == "allow" { "allow" } else { "deny" }) { (r.action) }
                            td { @if let Some(rule) = &r.rule_id { (rule) br; } span.muted { (r.reason) } }
                            td.num { (r.bytes_up) }
                            td.num { (r.bytes_down) }
                            td.num { (r.duration_ms) " ms" }
                            td { (r.end) }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="11" .muted { "No records match." } } }
                }
            }
        }
    };
    c.page("Access records", "/records", body)
}

// ---- audit trail, accounts, API keys -------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    result: String,
}

pub async fn audit(c: Console, Query(f): Query<AuditFilter>) -> Response {
    let q = AuditQuery {
        actor: Some(f.actor.trim().to_owned()).filter(|s| !s.is_empty()),
        action: Some(f.action.trim().to_owned()).filter(|s| !s.is_empty()),
        result: Some(f.result.trim().to_owned()).filter(|s| !s.is_empty()),
        since: None,
        cursor: None,
        limit: Some(500),
    };
    let items = match api::audit::list(c.ctx.clone(), ApiQuery(q)).await {
        Ok(p) => p.0.items,
        Err(e) => return fail(e),
    };
    let body = html! {
        form.filters method="get" action="/audit" {
            label { "Account (or user:NAME)" input name="actor" value=(f.actor); }
            label { "Action" input name="action" value=(f.action) placeholder="rule.create"; }
            label { "Result" select name="result" {
                option value="" selected[f.result.is_empty()] { "any" }
                @for r in ["ok", "denied", "failed", "error"] { option value=(r) selected[f.result == r] { (r) } }
            } }
            button type="submit" { "Filter" }
        }
        div.scroll {
            table {
                thead { tr { th { "Time" } th { "Account" } th { "Role" } th { "Source" } th { "Action" } th { "Target" } th { "Result" } th { "Detail" } } }
                tbody {
                    @for e in &items {
                        tr {
                            td { (when(&e.time)) }
                            td { (e.actor.as_deref().unwrap_or("-")) @if let Some(k) = &e.api_key_id { br; span.muted { "key " (k) } } }
                            td { (e.actor_role.map(|r| r.as_str()).unwrap_or("-")) }
                            td { (e.source_ip) }
                            td { (e.action) }
                            td { (e.target) }
                            td class=(if e.result == "ok" { "allow" } else { "deny" }) { (e.result) " " span.muted { (e.status) } }
                            td { (e.detail.as_deref().unwrap_or("")) }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="8" .muted { "No events match." } } }
                }
            }
        }
    };
    c.page("Audit trail", "/audit", body)
}

pub async fn accounts(c: Console, Query(q): Query<Done>) -> Response {
    accounts_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK).await
}

async fn accounts_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let items = match api::accounts::list(c.ctx.clone(), all()).await {
        Ok(p) => p.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::AccountsManage);
    let me = c.ctx.principal.account.name.clone();
    let body = html! {
        (notice(message, error))
        @if manage {
            section {
                h2 { "New sub-account" }
                form.grid method="post" action="/accounts" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64" autocomplete="off"; }
                    label { "Role" select name="role" {
                        @for r in [ward_core::Role::Admin, ward_core::Role::Auditor, ward_core::Role::Helpdesk] {
                            option value=(r.as_str()) { (r.as_str()) }
                        }
                    } }
                    label { "Password (at least 10 characters)" input name="password" type="password" required minlength="10" autocomplete="new-password"; }
                    button type="submit" { "Create account" }
                }
                p.muted { "An account never grants more than its creator has. Roles, passwords and two-step sign-in: "
                    code { "ward ctl account" } ", or My account." }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "Account" } th { "Role" } th { "Two-step" } th { "Created" } th { "Created by" } th { "Last sign-in" } th { "Failed sign-ins" } th { "Locked until" } @if manage { th { "" } } } }
                tbody {
                    @for a in &items {
                        tr {
                            td { (a.name) }
                            td { (a.role.as_str()) }
                            td { @if a.mfa_enabled { "on" } @else { span.muted { "off" } } }
                            td { (when(&a.created_at)) }
                            td { (a.created_by.as_deref().unwrap_or("-")) }
                            td { (a.last_login_at.as_deref().map(when).unwrap_or_else(|| "never".into())) }
                            td.num { (a.failed_logins) }
                            td { (a.locked_until.as_deref().map(when).unwrap_or_default()) }
                            @if manage {
                                td {
                                    @if a.locked_until.is_some() {
                                        form.inline method="post" action=(format!("/accounts/{}/unlock", a.name)) {
                                            (csrf_field(&c.csrf))
                                            button.secondary type="submit" { "Unlock" }
                                        }
                                        " "
                                    }
                                    @if a.role != ward_core::Role::Owner && a.name != me {
                                        form.inline method="post" action=(format!("/accounts/{}/delete", a.name)) {
                                            (csrf_field(&c.csrf))
                                            button.danger type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    c.page_with(status, "Accounts", "/accounts", body)
}

#[derive(Debug, Deserialize)]
pub struct AccountForm {
    name: String,
    role: String,
    password: String,
}

pub async fn create_account(c: Console, Form(f): Form<AccountForm>) -> Response {
    let Ok(role) = f.role.parse::<ward_core::Role>() else {
        return accounts_page(
            &c,
            Some("role: admin, auditor or helpdesk"),
            true,
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let req = ward_api::CreateAccount {
        name: f.name.trim().to_owned(),
        role,
        password: f.password,
    };
    match api::accounts::create(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/accounts?done=account").into_response(),
        Err(e) => accounts_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn delete_account(c: Console, Path(name): Path<String>) -> Response {
    match api::accounts::delete(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/accounts?done=account-deleted").into_response(),
        Err(e) => accounts_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn unlock_account(c: Console, Path(name): Path<String>) -> Response {
    match api::accounts::unlock(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/accounts?done=account-unlocked").into_response(),
        Err(e) => accounts_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn apikeys(c: Console, Query(q): Query<Done>) -> Response {
    apikeys_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK, None).await
}

async fn apikeys_page(
    c: &Console,
    message: Option<&str>,
    error: bool,
    status: StatusCode,
    created: Option<ward_api::ApiKeyCreated>,
) -> Response {
    let items = match api::apikeys::list(c.ctx.clone(), all()).await {
        Ok(p) => p.0.items,
        Err(e) => return fail(e),
    };
    // Keys are the caller's own credentials; offered to those who manage accounts.
    let manage = c.can(Permission::AccountsManage);
    let me = c.ctx.principal.account.name.clone();
    let body = html! {
        (notice(message, error))
        @if let Some(k) = &created {
            section {
                h2 { "Key " (k.key.name) " created" }
                p { "Copy the token now: it is shown only once." }
                pre { (k.token) }
            }
        }
        @if manage {
            section {
                h2 { "New API key (for this account)" }
                form.grid method="post" action="/apikeys" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64" autocomplete="off"; }
                    label { "Limit to role" select name="role_cap" {
                        option value="" { "this account's role" }
                        @for r in [ward_core::Role::Admin, ward_core::Role::Auditor, ward_core::Role::Helpdesk] {
                            option value=(r.as_str()) { (r.as_str()) }
                        }
                    } }
                    label { "Expires after (days; empty: never)" input name="expires_days" type="number" min="1" max="3650"; }
                    button type="submit" { "Create key" }
                }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "Id" } th { "Name" } th { "Account" } th { "Role cap" } th { "Created" } th { "Expires" } th { "Last used" } th { "State" } @if manage { th { "" } } } }
                tbody {
                    @for k in &items {
                        tr {
                            td { code { (k.id) } }
                            td { (k.name) }
                            td { (k.account) }
                            td { (k.role_cap.map(|r| r.as_str()).unwrap_or("-")) }
                            td { (when(&k.created_at)) }
                            td { (k.expires_at.as_deref().map(when).unwrap_or_else(|| "never".into())) }
                            td { (k.last_used_at.as_deref().map(when).unwrap_or_else(|| "never".into())) }
                            td { @if k.revoked_at.is_some() { span.deny { "revoked" } } @else { "active" } }
                            @if manage {
                                td {
                                    @if k.revoked_at.is_none() && k.account == me {
                                        form.inline method="post" action=(format!("/apikeys/{}/revoke", k.id)) {
                                            (csrf_field(&c.csrf))
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="9" .muted { "No API keys." } } }
                }
            }
        }
    };
    c.page_with(status, "API keys", "/apikeys", body)
}

#[derive(Debug, Deserialize)]
pub struct ApiKeyForm {
    name: String,
    #[serde(default)]
    role_cap: String,
    #[serde(default)]
    expires_days: String,
}

pub async fn create_apikey(c: Console, Form(f): Form<ApiKeyForm>) -> Response {
    let role_cap = match f.role_cap.trim() {
        "" => None,
        r => match r.parse::<ward_core::Role>() {
            Ok(r) => Some(r),
            Err(_) => {
                return apikeys_page(
                    &c,
                    Some("role: admin, auditor or helpdesk"),
                    true,
                    StatusCode::BAD_REQUEST,
                    None,
                )
                .await
            }
        },
    };
    let expires_in_secs = match f.expires_days.trim() {
        "" => None,
        d => match d.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(d * 86_400),
            _ => {
                return apikeys_page(&c, Some("expiry: 1 to 3650 days"), true, StatusCode::BAD_REQUEST, None).await;
            }
        },
    };
    let req = ward_api::CreateApiKey {
        name: f.name.trim().to_owned(),
        role_cap,
        expires_in_secs,
    };
    match api::apikeys::create(c.ctx.clone(), ApiJson(req)).await {
        Ok((_, created)) => apikeys_page(&c, None, false, StatusCode::CREATED, Some(created.0)).await,
        Err(e) => apikeys_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

pub async fn revoke_apikey(c: Console, Path(id): Path<String>) -> Response {
    match api::apikeys::revoke(c.ctx.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/apikeys?done=apikey-revoked").into_response(),
        Err(e) => apikeys_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

// ---- my account: MFA ------------------------------------------------------------

pub async fn account(c: Console) -> Response {
    account_page(&c, None, false, StatusCode::OK, AccountExtra::None)
}

enum AccountExtra {
    None,
    Enrolling(ward_api::TotpEnrollment),
    RecoveryCodes(Vec<String>),
}

fn account_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode, extra: AccountExtra) -> Response {
    let who = c.ctx.principal.whoami();
    let body = html! {
        (notice(message, error))
        @if who.mfa_enrollment_required {
            p.error role="alert" { "This tenant requires a second factor for its administrators. Turn it on below to use the console." }
        }
        section {
            h2 { "Account" }
            p { (who.account) " · tenant " (who.tenant) " · role " (who.role.as_str()) }
        }
        section {
            h2 { "Two-step sign-in (TOTP)" }
            @match &extra {
                AccountExtra::Enrolling(e) => {
                    p { "Scan the code with an authenticator app, or type the secret into it, then enter the code it shows." }
                    img.qr src=(format!("data:image/svg+xml;base64,{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &e.qr_svg)))
                        alt="QR code of the TOTP secret" width="220" height="220";
                    p { "Secret: " code { (e.secret) } }
                    form.grid method="post" action="/account/mfa/confirm" {
                        (csrf_field(&c.csrf))
                        label { "Code from the app" input name="code" required inputmode="numeric" autocomplete="one-time-code" maxlength="12"; }
                        button type="submit" { "Turn on" }
                    }
                }
                AccountExtra::RecoveryCodes(codes) => {
                    p.ok role="status" { "Two-step sign-in is on. Keep these recovery codes somewhere safe: each signs in once in place of a code, and they are shown only now." }
                    ul.codes { @for code in codes { li { code { (code) } } } }
                }
                AccountExtra::None => {
                    @if who.mfa_enabled {
                        p { "On. Signing in asks for a code from your authenticator app." }
                    } @else {
                        p { "Off. With it on, signing in also asks for a code from an authenticator app on your phone." }
                        form method="post" action="/account/mfa" {
                            (csrf_field(&c.csrf))
                            button type="submit" { "Set up two-step sign-in" }
                        }
                    }
                }
            }
        }
    };
    c.page_with(status, "My account", "/account", body)
}

pub async fn account_mfa_start(c: Console) -> Response {
    match api::mfa::enroll(c.ctx.clone()).await {
        Ok((_, e)) => account_page(&c, None, false, StatusCode::OK, AccountExtra::Enrolling(e.0)),
        Err(e) => account_page(&c, Some(&e.message), true, e.status(), AccountExtra::None),
    }
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
}

pub async fn account_mfa_confirm(c: Console, Form(f): Form<CodeForm>) -> Response {
    let req = ward_api::MfaCode {
        code: f.code.trim().to_owned(),
    };
    match api::mfa::confirm(c.ctx.clone(), ApiJson(req)).await {
        Ok(codes) => account_page(
            &c,
            None,
            false,
            StatusCode::OK,
            AccountExtra::RecoveryCodes(codes.0.recovery_codes),
        ),
        Err(e) => account_page(&c, Some(&e.message), true, e.status(), AccountExtra::None),
    }
}

// ---- identity sources ------------------------------------------------------------

pub async fn identity_sources(c: Console, Query(q): Query<Done>) -> Response {
    identity_sources_page(&c, done_message(q.done.as_deref()), false, StatusCode::OK).await
}

async fn identity_sources_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let items = match api::identity_sources::list(c.ctx.clone()).await {
        Ok(l) => l.0,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::SettingsManage);
    let portal = format!(
        "{}/portal/login?tenant={}",
        c.ctx.state.config.url(),
        c.ctx.principal.tenant.name
    );
    let body = html! {
        (notice(message, error))
        p { "End users sign in to the user portal with their password, or through one of these OpenID Connect providers or LDAP directories. Their sign-in page: " code { (portal) } }
        @if manage {
            section {
                h2 { "New OpenID Connect provider" }
                form.grid method="post" action="/identity-sources" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64" placeholder="corp-sso"; }
                    label { "Issuer URL" input name="issuer" required placeholder="https://id.example.com"; }
                    label { "Client id" input name="client_id" required autocomplete="off"; }
                    label { "Client secret" input name="client_secret" type="password" required autocomplete="off"; }
                    label { "Groups claim" input name="groups_claim" placeholder="groups"; }
                    label { "User name claim" input name="username_claim" placeholder="preferred_username"; }
                    button type="submit" { "Add provider" }
                }
                p.muted { "Ward checks the provider's discovery document first. Register the redirect URI shown below at the provider." }
            }
            section {
                h2 { "New LDAP or Active Directory source" }
                form.grid method="post" action="/identity-sources/ldap" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required maxlength="64" placeholder="corp-ad"; }
                    label { "URL (ldaps:// or ldap:// with StartTLS)" input name="url" required placeholder="ldaps://dc1.corp.example:636"; }
                    label { "Service bind DN" input name="bind_dn" required placeholder="cn=ward,ou=services,dc=corp,dc=example" autocomplete="off"; }
                    label { "Bind password" input name="bind_password" type="password" required autocomplete="off"; }
                    label { "User base DN" input name="user_base" required placeholder="ou=people,dc=corp,dc=example"; }
                    label { "User filter" input name="user_filter" placeholder="(uid={username})"; }
                    label { "User name attribute" input name="username_attribute" placeholder="uid"; }
                    label { "Id attribute" input name="id_attribute" placeholder="entryUUID"; }
                    label { "Group base DN" input name="group_base" placeholder="ou=groups,dc=corp,dc=example"; }
                    label { "Group membership" select name="group_membership" {
                        option value="member" { "member (groups list their members)" }
                        option value="uniqueMember" { "uniqueMember" }
                        option value="memberOf" { "memberOf (users list their groups)" }
                    } }
                    label { "Attributes to sync (comma-separated, key=attribute)" input name="sync_attributes" placeholder="department"; }
                    label { "Sync interval" input name="sync_interval" placeholder="15m"; }
                    label { "CA certificate (PEM), for a private CA" textarea name="ca_pem" rows="3" {} }
                    button type="submit" { "Add directory" }
                }
                p.muted { "Active Directory: user filter (sAMAccountName={username}), user name attribute sAMAccountName, id attribute objectGUID, group membership memberOf. Plain unencrypted LDAP is never used." }
            }
        }
        div.scroll {
            table {
                thead { tr { th { "Name" } th { "Issuer or URL" } th { "Client id or bind DN" } th { "Claims (user, groups) or bases" } th { "Redirect URI or last sync" } th { "Added" } @if manage { th { "" } } } }
                tbody {
                    @for i in &items {
                        tr {
                            td { (i.name) br; span.muted { (i.kind) } }
                            @if let Some(l) = &i.ldap {
                                td { (l.url) }
                                td { (l.bind_dn) }
                                td { (l.user_base) @if let Some(g) = &l.group_base { br; (g) } }
                                td {
                                    @match (&l.last_sync_at, l.last_sync_ok) {
                                        (Some(at), Some(true)) => { (when(at)) br; span.muted { (l.last_sync_result.as_deref().unwrap_or("")) } }
                                        (Some(at), _) => { (when(at)) br; span.error { "Failed: " (l.last_sync_result.as_deref().unwrap_or("")) } }
                                        _ => { span.muted { "never synced" } }
                                    }
                                    @if manage {
                                        form.inline method="post" action=(format!("/identity-sources/{}/sync", i.name)) {
                                            (csrf_field(&c.csrf))
                                            button.secondary type="submit" { "Sync now" }
                                        }
                                    }
                                }
                            } @else {
                                td { (i.issuer) }
                                td { (i.client_id) }
                                td { (i.username_claim) ", " (i.groups_claim) }
                                td { code { (i.redirect_uri) } }
                            }
                            td { (when(&i.created_at)) }
                            @if manage {
                                td {
                                    form.inline method="post" action=(format!("/identity-sources/{}/delete", i.name)) {
                                        (csrf_field(&c.csrf))
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="7" .muted { "None: end users sign in with passwords." } } }
                }
            }
        }
    };
    c.page_with(status, "Identity sources", "/identity-sources", body)
}

#[derive(Debug, Deserialize)]
pub struct IdentitySourceForm {
    name: String,
    issuer: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    groups_claim: String,
    #[serde(default)]
    username_claim: String,
}

pub async fn create_identity_source(c: Console, Form(f): Form<IdentitySourceForm>) -> Response {
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = ward_api::CreateIdentitySource {
        name: f.name.trim().to_owned(),
        issuer: f.issuer.trim().to_owned(),
        client_id: f.client_id.trim().to_owned(),
        client_secret: f.client_secret,
        scopes: None,
        username_claim: opt(&f.username_claim),
        groups_claim: opt(&f.groups_claim),
        kind: None,
        attribute_claims: Vec::new(),
        ldap: None,
    };
    match api::identity_sources::create(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/identity-sources?done=idp").into_response(),
        Err(e) => identity_sources_page(&c, Some(&e.message), true, e.status()).await,
    }
}

#[derive(Deserialize)]
pub struct LdapSourceForm {
    name: String,
    url: String,
    bind_dn: String,
    bind_password: String,
    user_base: String,
    #[serde(default)]
    user_filter: String,
    #[serde(default)]
    username_attribute: String,
    #[serde(default)]
    id_attribute: String,
    #[serde(default)]
    group_base: String,
    #[serde(default)]
    group_membership: String,
    #[serde(default)]
    sync_attributes: String,
    #[serde(default)]
    sync_interval: String,
    #[serde(default)]
    ca_pem: String,
}

pub async fn create_ldap_source(c: Console, Form(f): Form<LdapSourceForm>) -> Response {
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = ward_api::CreateIdentitySource {
        name: f.name.trim().to_owned(),
        kind: Some("ldap".into()),
        issuer: String::new(),
        client_id: String::new(),
        client_secret: String::new(),
        attribute_claims: Vec::new(),
        scopes: None,
        username_claim: None,
        groups_claim: None,
        ldap: Some(ward_api::CreateLdapSource {
            url: f.url.trim().to_owned(),
            ca_pem: opt(&f.ca_pem),
            bind_dn: f.bind_dn.trim().to_owned(),
            bind_password: f.bind_password,
            user_base: f.user_base.trim().to_owned(),
            user_filter: opt(&f.user_filter),
            username_attribute: opt(&f.username_attribute),
            email_attribute: None,
            display_attribute: None,
            id_attribute: opt(&f.id_attribute),
            group_base: opt(&f.group_base),
            group_membership: opt(&f.group_membership),
            group_name_attribute: None,
            sync_attributes: list(&f.sync_attributes),
            sync_interval: opt(&f.sync_interval),
        }),
    };
    match api::identity_sources::create(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/identity-sources?done=idp").into_response(),
        Err(e) => identity_sources_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn sync_identity_source(c: Console, Path(name): Path<String>) -> Response {
    match api::identity_sources::sync(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/identity-sources?done=idp-synced").into_response(),
        Err(e) => identity_sources_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn delete_identity_source(c: Console, Path(name): Path<String>) -> Response {
    match api::identity_sources::delete(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/identity-sources?done=idp-deleted").into_response(),
        Err(e) => identity_sources_page(&c, Some(&e.message), true, e.status()).await,
    }
}
