//! The user portal at `/portal`: end users sign in with their password,
//! see the applications the rules open to them and their devices (and
//! remove one), and approve an agent's enrolment request
//! (`api::enroll_requests`) by the code it printed.
//!
//! Sessions are the portal's own: a `wu_` token in a cookie
//! (`ward_portal`, `__Host-ward_portal` over HTTPS, `HttpOnly; Secure;
//! SameSite=Strict`), stored hashed in `user_sessions`, never valid for the
//! console or the API. Every `POST` carries a CSRF token derived from the
//! session token, checked by [`csrf_guard`] before any handler; the sign-in
//! form has its own double-submit token. Pages reuse the console's frame,
//! its Content-Security-Policy and its escaping.

use std::collections::HashSet;

use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use maud::{html, Markup};
use serde::Deserialize;
use ward_store::{TenantRow, UserRow};

use crate::api::enroll_requests;
use crate::auth::token;
use crate::console::layout::{self, csrf_field, notice};
use crate::console::session::{self, cookie, csrf_for, set_cookie, FormCheck};
use crate::ctx::Anonymous;
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

mod account;
mod ldap;
mod oidc;
mod twostep;

const TOKEN_PREFIX: &str = "wu_";

/// The route of the sign-in through an identity source's callback, a GET
/// the audit trail records like the portal's POSTs.
pub(crate) const OIDC_CALLBACK_ROUTE: &str = "/portal/oidc/callback";

/// The audit trail's names for the portal's actions (the end user is the
/// actor, `user:<name>`).
pub fn action_name(method: &str, route: &str) -> Option<&'static str> {
    Some(match (method, route) {
        ("POST", "/portal/login") => "portal.login",
        ("GET", OIDC_CALLBACK_ROUTE) => "portal.login",
        ("POST", "/portal/ldap/{id}/login") => "portal.login",
        ("POST", "/portal/login/mfa") => "portal.login_code",
        ("POST", "/portal/account/mfa") => "portal.mfa_enroll",
        ("POST", "/portal/account/mfa/confirm") => "portal.mfa_confirm",
        ("POST", "/portal/account/mfa/disable") => "portal.mfa_disable",
        ("POST", "/portal/logout") => "portal.logout",
        ("POST", "/portal/activate") => "portal.enroll_decide",
        ("GET", "/portal/activate") => "portal.enroll_lookup",
        ("POST", "/portal/devices/{id}/remove") => "portal.device_remove",
        ("POST", "/portal/devices/{id}/rename") => "portal.device_rename",
        ("POST", "/portal/devices/{id}/signout") => "portal.device_signout",
        _ => return None,
    })
}

pub(crate) fn https(state: &AppState) -> bool {
    state.config.url().starts_with("https://")
}

fn session_cookie(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-ward_portal"
    } else {
        "ward_portal"
    }
}

fn signin_cookie(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-ward_portal_signin"
    } else {
        "ward_portal_signin"
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/login", get(login_form).post(login_submit))
        .route("/portal/login/mfa", post(twostep::submit))
        .route("/portal/logout", post(logout))
        .route("/portal/account", get(account::show))
        .route("/portal/account/mfa", post(account::enroll))
        .route("/portal/account/mfa/confirm", post(account::confirm))
        .route("/portal/account/mfa/disable", post(account::disable))
        .route("/portal/oidc/{id}/start", get(oidc::start))
        .route(OIDC_CALLBACK_ROUTE, get(oidc::callback))
        .route("/portal/ldap/{id}/login", post(ldap::login))
        .route("/portal/activate", get(activate_form).post(activate_submit))
        .route("/portal/web/start", get(web_start))
        .route("/portal/devices/{id}/remove", post(remove_device))
        .route("/portal/devices/{id}/rename", post(rename_device))
        .route("/portal/devices/{id}/signout", post(sign_out_device))
        .route_layer(from_fn_with_state(state, csrf_guard))
}

/// A signed-in end user.
pub struct Portal {
    state: AppState,
    tenant: TenantRow,
    user: UserRow,
    session_hash: String,
    csrf: String,
    /// The request's audit note (the trail records the portal's posts).
    audit: Option<crate::audit::AuditSlot>,
}

/// Where a portal page sends a browser that is not signed in.
fn to_login(back: &str) -> Response {
    let next = layout::safe_next(Some(back));
    let next = if next.starts_with("/portal") { next } else { "/portal" };
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/portal/login?{q}")).into_response()
}

impl FromRequestParts<AppState> for Portal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/portal")
            .to_owned();
        let Some(tok) = cookie(&parts.headers, session_cookie(state)).filter(|t| t.starts_with(TOKEN_PREFIX)) else {
            return Err(to_login(&back));
        };
        let csrf = csrf_for(tok);
        let hash = token::hash(tok);
        let found = async {
            let Some(s) = state.store.user_session(&hash, now_ms()).await? else {
                return Ok::<_, ApiError>(None);
            };
            let Some(tenant) = state.store.tenant_by_id(&s.tenant_id).await? else {
                return Ok(None);
            };
            let user = state.store.user_by_id(&s.tenant_id, &s.user_id).await?;
            Ok(user.map(|u| (tenant, u)))
        }
        .await;
        match found {
            Ok(Some((tenant, user))) if !user.disabled && tenant.state == ward_core::TenantState::Active => {
                if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
                    slot.update(|n| {
                        n.tenant_id = Some(tenant.id.clone());
                        n.user = Some((user.id.clone(), user.name.clone()));
                    });
                }
                Ok(Portal {
                    state: state.clone(),
                    tenant,
                    user,
                    session_hash: hash,
                    csrf,
                    audit: parts.extensions.get::<crate::audit::AuditSlot>().cloned(),
                })
            }
            Ok(_) => Err(to_login(&back)),
            Err(e) => Err(layout::error_page(e.status(), &e.message)),
        }
    }
}

/// A portal page: the console's document, the portal's own navigation.
pub(crate) fn page(title: &str, who: Option<&Portal>, body: Markup) -> Response {
    let header = html! {
        @if let Some(p) = who {
            nav {
                a href="/portal" { "My applications and devices" }
                a href="/portal/activate" { "Approve a device" }
                a href="/portal/account" { "My account" }
            }
            div.who {
                span { (p.user.name) " · " (p.tenant.name) }
                form method="post" action="/portal/logout" {
                    (csrf_field(&p.csrf))
                    label.inline { input type="checkbox" name="devices" value="yes"; " and my devices" }
                    " "
                    button.link type="submit" { "Sign out" }
                }
            }
        }
    };
    let main = html! { h1 { (title) } (body) };
    layout::html_response(StatusCode::OK, layout::document(title, "/portal", header, main))
}

pub(crate) fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// Checks every portal `POST` for its CSRF token before the handler runs.
async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let path = req.uri().path();
    // The sign-in forms (password, each LDAP source's, and the second
    // step's code) carry the double-submit token of the sign-in cookie:
    // there is no session yet.
    let login = path == "/portal/login"
        || path == "/portal/login/mfa"
        || (path.starts_with("/portal/ldap/") && path.ends_with("/login"));
    let expected = if login {
        cookie(req.headers(), signin_cookie(&state)).map(str::to_owned)
    } else {
        cookie(req.headers(), session_cookie(&state)).map(csrf_for)
    };
    match session::check_form(req, expected, "portal").await {
        FormCheck::Passed(req) => next.run(req).await,
        FormCheck::NoSession(path) if !login => to_login(&path),
        FormCheck::NoSession(_) => session::refused("portal"),
        FormCheck::Refused(response) => response,
    }
}

// ---- clientless web access ---------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct WebStart {
    host: String,
    #[serde(rename = "return")]
    ret: Option<String>,
    /// The gateway's state for this browser, handed back with the code.
    state: Option<String>,
}

/// A browser the gateway sent here from a published host: once the user is
/// signed in to the tenant that published it, a one-time code bound to the
/// host and the user, and back to `https://<host>/.ward/callback`. The
/// return target is always that host plus a path.
async fn web_start(
    State(state): State<AppState>,
    Query(q): Query<WebStart>,
    portal: Result<Portal, Response>,
) -> Response {
    let (host, app_tenant, ret, browser_state) = match web_target(&state, &q).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match portal {
        Ok(p) if p.tenant.id == app_tenant => {
            match web_callback(&state, &p.tenant.id, &p.user.id, &host, &ret, &browser_state).await {
                Ok(url) => Redirect::to(&url).into_response(),
                Err(r) => r,
            }
        }
        // Not signed in, or signed in to another organisation: sign in to
        // the one that published the host, then come back here.
        _ => {
            let tenant = match state.store.tenant_by_id(&app_tenant).await {
                Ok(Some(t)) => t.name,
                _ => return web_not_found(),
            };
            let back = format!(
                "/portal/web/start?{}",
                serde_urlencoded::to_string([
                    ("host", host.as_str()),
                    ("return", ret.as_str()),
                    ("state", browser_state.as_str())
                ])
                .unwrap_or_default()
            );
            let q =
                serde_urlencoded::to_string([("next", back.as_str()), ("tenant", tenant.as_str())]).unwrap_or_default();
            Redirect::to(&format!("/portal/login?{q}")).into_response()
        }
    }
}

fn web_not_found() -> Response {
    layout::error_page(
        StatusCode::NOT_FOUND,
        "No application is published under this host name.",
    )
}

/// The published host, its tenant, the return path and the browser's state of a web start.
async fn web_target(state: &AppState, q: &WebStart) -> Result<(String, String, String, String), Response> {
    use crate::web_access::{parse_public_host, safe_return};
    let host = parse_public_host(&q.host).ok_or_else(web_not_found)?;
    let ret = q.ret.as_deref().and_then(safe_return).unwrap_or("/").to_owned();
    let browser_state = q
        .state
        .as_deref()
        .filter(|s| s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or("")
        .to_owned();
    match state.store.app_by_public_host(&host).await {
        Ok(Some(app)) => Ok((host, app.tenant_id, ret, browser_state)),
        Ok(None) => Err(web_not_found()),
        Err(e) => {
            let e = ApiError::from(e);
            Err(layout::error_page(e.status(), &e.message))
        }
    }
}

/// Mints a code for the user and gives the callback URL on the published
/// host: `https://<host>[:port]/.ward/callback?...`, nowhere else.
async fn web_callback(
    state: &AppState,
    tenant_id: &str,
    user_id: &str,
    host: &str,
    ret: &str,
    browser_state: &str,
) -> Result<String, Response> {
    let code = crate::web_access::mint(state, tenant_id, user_id, host)
        .await
        .map_err(|e| layout::error_page(e.status(), &e.message))?;
    let port = match state.config.web_public_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let q = serde_urlencoded::to_string([("code", code.as_str()), ("state", browser_state), ("return", ret)])
        .unwrap_or_default();
    Ok(format!("https://{host}{port}/.ward/callback?{q}"))
}

/// After a sign-in that started on a published host: a page that sends the
/// browser on to the host's callback. A page, not a redirect: a redirect
/// chain begun by the sign-in form's POST would not carry the cookies a
/// browser keeps for the published host (`SameSite`), while a navigation
/// this page starts does. No script: a `meta` refresh and a link.
async fn web_handoff(state: &AppState, tenant: &TenantRow, user: &UserRow, next: &str) -> Option<Response> {
    let query = next.strip_prefix("/portal/web/start?")?;
    let q: WebStart = serde_urlencoded::from_str(query).ok()?;
    let (host, app_tenant, ret, browser_state) = match web_target(state, &q).await {
        Ok(t) => t,
        Err(r) => return Some(r),
    };
    if app_tenant != tenant.id {
        return None;
    }
    let url = match web_callback(state, &tenant.id, &user.id, &host, &ret, &browser_state).await {
        Ok(url) => url,
        Err(r) => return Some(r),
    };
    let main = html! {
        h1 { "Signed in" }
        p { "Taking you to " strong { (host) } "…" }
        p { a.button id="continue" href=(url) { "Continue to " (host) } }
    };
    let doc = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={url}"));
                title { "Signed in · Ward" }
                link rel="stylesheet" href="/static/ward.css";
            }
            body { main { (main) } }
        }
    };
    Some(layout::html_response(StatusCode::OK, doc))
}

// ---- sign-in ----------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// The organisation whose identity sources the page offers.
    tenant: Option<String>,
}

async fn login_form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    let sources = match q.tenant.as_deref().filter(|t| !t.is_empty() && t.len() <= 64) {
        Some(t) => oidc::sources_of(&state, t).await,
        None => Vec::new(),
    };
    login_page_with(
        &state,
        q.next.as_deref(),
        q.tenant.as_deref(),
        &sources,
        None,
        StatusCode::OK,
    )
}

pub(crate) fn portal_next(next: Option<&str>) -> &str {
    let n = layout::safe_next(next);
    if n == "/portal" || n.starts_with("/portal/") || n.starts_with("/portal?") {
        n
    } else {
        "/portal"
    }
}

fn login_page(state: &AppState, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    login_page_with(state, next, None, &[], error, status)
}

/// The sign-in page of an organisation, with a refusal.
pub(crate) async fn tenant_login_page(
    state: &AppState,
    next: Option<&str>,
    tenant: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let sources = oidc::sources_of(state, tenant).await;
    login_page_with(state, next, Some(tenant), &sources, Some(error), status)
}

/// The sign-in page: a "Sign in with ..." link per identity source of the
/// organisation named (`?tenant=`), and the password form.
fn login_page_with(
    state: &AppState,
    next: Option<&str>,
    tenant: Option<&str>,
    sources: &[(String, String, String)],
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let tok = session::new_login_token();
    let next = portal_next(next);
    let body = html! {
        div.signin.card {
            (notice(error, true))
            @if !sources.is_empty() {
                @for (id, name, kind) in sources {
                    @if kind == "ldap" {
                        form method="post" action=(format!("/portal/ldap/{id}/login")) {
                            h2 { "Sign in with " (name) }
                            input type="hidden" name="csrf" value=(tok);
                            input type="hidden" name="next" value=(next);
                            label { "User name" input name="username" required autocomplete="username"; }
                            label { "Password" input name="password" type="password" required autocomplete="current-password"; }
                            button type="submit" { "Sign in with " (name) }
                        }
                    } @else {
                        p { a.button href=(format!("/portal/oidc/{id}/start?{}", serde_urlencoded::to_string([("next", next)]).unwrap_or_default())) { "Sign in with " (name) } }
                    }
                }
                p.muted { "Or with a password:" }
            } @else {
                form.inline method="get" action="/portal/login" {
                    input type="hidden" name="next" value=(next);
                    label { "Organisation with its own sign-in" input name="tenant" autocomplete="organization" value=(tenant.unwrap_or("")); }
                    " "
                    button.secondary type="submit" { "Continue" }
                }
            }
            p.muted { "Sign in with the account your organisation gave you." }
            form method="post" action="/portal/login" {
                input type="hidden" name="csrf" value=(tok);
                input type="hidden" name="next" value=(next);
                label { "Organisation (tenant)" input name="tenant" required autocomplete="organization" value=(tenant.unwrap_or("default")); }
                label { "User name" input name="username" required autocomplete="username" autofocus; }
                label { "Password" input name="password" type="password" required autocomplete="current-password"; }
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut r = with_status(page("Sign in to Ward", None, body), status);
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(signin_cookie(state), &tok, 600));
    r
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    tenant: String,
    username: String,
    password: String,
    next: Option<String>,
}

async fn login_submit(State(state): State<AppState>, anon: Anonymous, Form(f): Form<LoginForm>) -> Response {
    let checked =
        crate::auth::user_login::user_login(&state, anon.peer, &anon.audit, &f.tenant, &f.username, &f.password).await;
    let (tenant, user) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            // The trail names the user the attempt was for, when it exists.
            let mut tenant_id = None;
            anon.audit.update(|n| tenant_id = n.tenant_id.clone());
            if let Some(tenant_id) = tenant_id {
                if let Ok(Some(u)) = state.store.user_by_name(&tenant_id, f.username.trim()).await {
                    anon.audit.update(|n| n.user = Some((u.id, u.name)));
                }
            }
            return login_page(&state, f.next.as_deref(), Some(&e.message), e.status());
        }
    };
    anon.audit.update(|n| {
        n.tenant_id = Some(tenant.id.clone());
        n.user = Some((user.id.clone(), user.name.clone()));
    });
    if user.mfa_enabled {
        // The password was right; the session waits for the second factor.
        return twostep::ask(&state, &tenant, &user, portal_next(f.next.as_deref()), "", &anon.audit);
    }
    start_session(&state, &tenant, &user, portal_next(f.next.as_deref())).await
}

/// Signs `user` in: a new portal session (a cookie planted before is not
/// carried over), and a redirect to `next`, a portal path. Password and
/// OpenID Connect sign-ins both end here.
pub(crate) async fn start_session(state: &AppState, tenant: &TenantRow, user: &UserRow, next: &str) -> Response {
    let tok = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token::new_api_key_secret())
    );
    let now = now_ms();
    let ttl = state.config.session_ttl.as_millis().min(i64::MAX as u128) as i64;
    if let Err(e) = state
        .store
        .create_user_session(&token::hash(&tok), &tenant.id, &user.id, now, now + ttl)
        .await
    {
        let e = ApiError::from(e);
        return layout::error_page(e.status(), &e.message);
    }
    let mut r = match web_handoff(state, tenant, user, next).await {
        Some(page) => page,
        None => Redirect::to(portal_next(Some(next))).into_response(),
    };
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(session_cookie(state), &tok, ttl / 1000));
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(signin_cookie(state), "", 0));
    r
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutForm {
    /// `yes`: sign every device of the user out too.
    devices: Option<String>,
}

async fn logout(p: Portal, anon: Anonymous, Form(f): Form<LogoutForm>) -> Response {
    anon.audit.update(|n| n.target = Some(format!("user:{}", p.user.name)));
    if f.devices.as_deref() == Some("yes") {
        anon.audit
            .update(|n| n.detail = Some("and every device of the user".into()));
        if let Err(e) = p.state.store.end_user_device_sessions(&p.tenant.id, &p.user.id).await {
            let e = ApiError::from(e);
            return layout::error_page(e.status(), &e.message);
        }
    }
    let _ = p.state.store.delete_user_session(&p.session_hash).await;
    let mut r = Redirect::to("/portal/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(session_cookie(&p.state), "", 0));
    r
}

// ---- home: my applications, my devices --------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// The applications whose deciding rule for this user is an allow: for
/// each application, the first enabled rule (by priority) that covers it
/// and the user. Conditions of time, source network and device are shown,
/// not evaluated: they are decided per connection.
async fn my_apps(p: &Portal) -> Result<Vec<(String, Vec<String>, Vec<String>, bool)>, ApiError> {
    let store = &p.state.store;
    let tenant = &p.tenant.id;
    let listed = store.all_memberships(tenant).await?;
    let all_groups = store.all_groups(tenant).await?;
    let all_users = store.all_users(tenant).await?;
    let groups: HashSet<String> = crate::policy::memberships(&all_groups, &all_users, listed)
        .into_iter()
        .filter(|(_, u)| *u == p.user.id)
        .map(|(g, _)| g)
        .collect();
    let rules = store.all_rules(tenant).await?;
    let mut out = Vec::new();
    for app in store.all_apps(tenant).await? {
        let decides = rules.iter().find(|r| {
            r.enabled
                && (r.app_ids.contains(&app.id) || r.tags.iter().any(|t| app.tags.contains(t)))
                && ((r.user_ids.is_empty() && r.group_ids.is_empty())
                    || r.user_ids.contains(&p.user.id)
                    || r.group_ids.iter().any(|g| groups.contains(g)))
        });
        if let Some(rule) = decides.filter(|r| r.action == "allow") {
            out.push((app.name, app.addresses, app.ports, rule.require_compliant));
        }
    }
    Ok(out)
}

async fn home(p: Portal, Query(q): Query<Done>) -> Response {
    let message = match q.done.as_deref() {
        Some("removed") => Some("Device removed: it can no longer connect."),
        Some("renamed") => Some("Device renamed."),
        Some("signedout") => {
            Some("Device signed out: it can no longer connect until you run `ward agent login` on it.")
        }
        _ => None,
    };
    home_page(&p, message, false, StatusCode::OK).await
}

async fn home_page(p: &Portal, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let apps = match my_apps(p).await {
        Ok(a) => a,
        Err(e) => return layout::error_page(e.status(), &e.message),
    };
    let devices = match p.state.store.all_devices(&p.tenant.id).await {
        Ok(d) => d.into_iter().filter(|d| d.user_id == p.user.id).collect::<Vec<_>>(),
        Err(e) => {
            let e = ApiError::from(e);
            return layout::error_page(e.status(), &e.message);
        }
    };
    let now = now_ms();
    let body = html! {
        (notice(message, error))
        section {
            h2 { "My applications" }
            @if apps.is_empty() {
                p.muted { "No application is open to you yet." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Application" } th { "Addresses" } th { "Ports" } th { "" } } }
                    tbody {
                        @for (name, addresses, ports, compliant) in &apps {
                            tr {
                                td { (name) }
                                td { @for a in addresses { span.tag { (a) } } }
                                td { @for x in ports { span.tag { (x) } } }
                                td.muted { @if *compliant { "from a compliant device" } }
                            }
                        }
                    }
                } }
                p.muted { "Reach them through the Ward agent on your device. Rules may also limit the time or the network you connect from." }
            }
        }
        section {
            h2 { "My devices" }
            @if devices.is_empty() {
                p.muted { "None yet. Run " code { "ward agent enroll --server " (p.state.config.url()) } " on your device, then approve it here." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Device" } th { "State" } th { "Signed in until" } th { "Compliant" } th { "Enrolled" } th { "Last seen" } th { "" } } }
                    tbody {
                        @for d in &devices {
                            tr {
                                td {
                                    form.inline method="post" action=(format!("/portal/devices/{}/rename", d.id)) {
                                        (csrf_field(&p.csrf))
                                        input name="name" value=(d.name) required maxlength="64" aria-label="Device name";
                                        " "
                                        button.secondary type="submit" { "Rename" }
                                    }
                                    br; span.muted { (d.id) }
                                }
                                td { (d.state) }
                                td {
                                    @if d.state == "active" && d.signed_in(now) {
                                        (ward_core::time::rfc3339(d.session_expires_at.unwrap_or_default()))
                                    } @else if d.state == "active" {
                                        span.deny { "signed out" } br; span.muted { "run " code { "ward agent login" } }
                                    }
                                }
                                td { @if d.compliant { span.allow { "yes" } } @else { span.deny { "no" } } }
                                td { (ward_core::time::rfc3339(d.enrolled_at)) }
                                td { (ward_core::time::rfc3339(d.last_seen_at)) }
                                td {
                                    @if d.state == "active" && d.signed_in(now) {
                                        form.inline method="post" action=(format!("/portal/devices/{}/signout", d.id)) {
                                            (csrf_field(&p.csrf))
                                            button.secondary type="submit" { "Sign out" }
                                        }
                                        " "
                                    }
                                    @if d.state == "active" {
                                        form.inline method="post" action=(format!("/portal/devices/{}/remove", d.id)) {
                                            (csrf_field(&p.csrf))
                                            button.danger type="submit" { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    with_status(page("My applications and devices", Some(p), body), status)
}

/// Whether `id` is one of the signed-in user's devices; `Err` is the page
/// to answer with otherwise (another user's device and none look the same).
async fn own_device(p: &Portal, id: &str) -> Result<(), Response> {
    if let Some(slot) = &p.audit {
        slot.update(|n| n.target = Some(format!("device:{id}")));
    }
    match p.state.store.device_by_id(&p.tenant.id, id).await {
        Ok(Some(d)) if d.user_id == p.user.id => Ok(()),
        Ok(_) => Err(home_page(p, Some("No such device of yours."), true, StatusCode::NOT_FOUND).await),
        Err(e) => {
            let e = ApiError::from(e);
            Err(layout::error_page(e.status(), &e.message))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    name: String,
}

async fn rename_device(p: Portal, Path(id): Path<String>, Form(f): Form<RenameForm>) -> Response {
    if let Err(r) = own_device(&p, &id).await {
        return r;
    }
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return home_page(
            &p,
            Some("A device name is 1 to 64 printable characters."),
            true,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    match p.state.store.rename_device(&p.tenant.id, &id, name).await {
        Ok(_) => Redirect::to("/portal?done=renamed").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            layout::error_page(e.status(), &e.message)
        }
    }
}

async fn remove_device(p: Portal, Path(id): Path<String>) -> Response {
    let store = &p.state.store;
    if let Err(r) = own_device(&p, &id).await {
        return r;
    }
    match store.revoke_device(&p.tenant.id, &id, now_ms()).await {
        Ok(_) => Redirect::to("/portal?done=removed").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            layout::error_page(e.status(), &e.message)
        }
    }
}

/// Signs one of the user's devices out: gateways refuse it and close its
/// connections until `ward agent login` on it is approved.
async fn sign_out_device(p: Portal, Path(id): Path<String>) -> Response {
    if let Err(r) = own_device(&p, &id).await {
        return r;
    }
    match p.state.store.set_device_session(&p.tenant.id, &id, None).await {
        Ok(_) => Redirect::to("/portal?done=signedout").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            layout::error_page(e.status(), &e.message)
        }
    }
}

// ---- approving an agent's enrolment -------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

async fn activate_form(p: Portal, anon: Anonymous, Query(q): Query<CodeQuery>) -> Response {
    let code = q.code.as_deref().filter(|c| !c.trim().is_empty());
    if let Some(code) = code {
        if let Err(refused) = guard_code(&p, &anon, code).await {
            return refused;
        }
    }
    activate_page(&p, code, None, false, StatusCode::OK).await
}

/// Codes are guessed like passwords: a code that names no waiting request
/// counts as a failed sign-in from the address (slow-down, then the
/// address's lock-out, shared with sign-ins), and a locked address may
/// look up no code at all.
async fn guard_code(p: &Portal, anon: &Anonymous, code: &str) -> Result<(), Response> {
    let ip = anon.peer.to_string();
    let now = now_ms();
    if let Err(e) = crate::auth::lockout::check_address(&p.state, &p.tenant.id, &ip, &anon.audit, now).await {
        return Err(activate_page(p, None, Some(&e.message), true, e.status()).await);
    }
    match enroll_requests::pending(&p.state, code).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            let counted = crate::auth::lockout::refuse(
                &p.state,
                &p.tenant.id,
                &ip,
                None,
                "no enrolment request has that code",
                &anon.audit,
                now,
            )
            .await;
            match counted {
                Ok(()) => Ok(()),
                Err(e) => Err(layout::error_page(e.status(), &e.message)),
            }
        }
        Err(e) => Err(layout::error_page(e.status(), &e.message)),
    }
}

async fn activate_page(
    p: &Portal,
    code: Option<&str>,
    message: Option<&str>,
    error: bool,
    status: StatusCode,
) -> Response {
    let found = match code {
        Some(c) if !c.trim().is_empty() => match enroll_requests::pending(&p.state, c).await {
            Ok(r) => r,
            Err(e) => return layout::error_page(e.status(), &e.message),
        },
        _ => None,
    };
    let body = html! {
        (notice(message, error))
        @if found.as_ref().is_some_and(|r| r.device_id.is_some() && !enroll_requests::is_own_device_request(&p.tenant, &p.user, r)) {
            p.error role="alert" { "That code is a sign-in of another user's device: only its own user can approve it." }
        } @else if let Some(r) = &found {
            section {
                @if r.device_id.is_some() {
                    h2 { "Sign your device in again?" }
                } @else {
                    h2 { "Enrol this device as yours?" }
                }
                table {
                    tbody {
                        tr { th { "Device name" } td { (r.device_name) } }
                        tr { th { "Asked from" } td { (r.source) } }
                        tr { th { "Asked at" } td { (ward_core::time::rfc3339(r.created_at)) } }
                        tr { th { "Code" } td { code { (r.user_code) } } }
                    }
                }
                p { "Approve only a device you are setting up yourself, right now, that shows this code." }
                form.inline method="post" action="/portal/activate" {
                    (csrf_field(&p.csrf))
                    input type="hidden" name="code" value=(r.user_code);
                    input type="hidden" name="decision" value="approve";
                    button type="submit" { "Approve" }
                }
                " "
                form.inline method="post" action="/portal/activate" {
                    (csrf_field(&p.csrf))
                    input type="hidden" name="code" value=(r.user_code);
                    input type="hidden" name="decision" value="deny";
                    button.danger type="submit" { "Deny" }
                }
            }
        } @else {
            @if code.is_some_and(|c| !c.trim().is_empty()) {
                p.error role="alert" { "No device is waiting with that code. Check it, or run the enrolment again: a code lasts 10 minutes." }
            }
            section {
                p { "Enter the code " code { "ward agent enroll" } " shows on your device." }
                form.grid method="get" action="/portal/activate" {
                    label { "Code" input name="code" required placeholder="BCDF-GHJK" autocomplete="off" maxlength="16"; }
                    button type="submit" { "Continue" }
                }
            }
        }
    };
    with_status(page("Approve a device", Some(p), body), status)
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    code: String,
    decision: String,
}

async fn activate_submit(p: Portal, anon: Anonymous, Form(f): Form<DecisionForm>) -> Response {
    if let Err(refused) = guard_code(&p, &anon, &f.code).await {
        return refused;
    }
    let request = match enroll_requests::pending(&p.state, &f.code).await {
        Ok(Some(r)) => r,
        Ok(None) => return activate_page(&p, Some(&f.code), None, false, StatusCode::NOT_FOUND).await,
        Err(e) => return layout::error_page(e.status(), &e.message),
    };
    anon.audit.update(|n| {
        n.target = Some(match &request.device_id {
            Some(d) => format!("device:{d}"),
            None => format!("enroll-request:{}", request.user_code),
        });
        n.action = Some(match (f.decision.as_str(), request.device_id.is_some()) {
            ("approve", false) => "portal.enroll_approve",
            ("approve", true) => "portal.device_login_approve",
            (_, false) => "portal.enroll_deny",
            (_, true) => "portal.device_login_deny",
        });
        n.detail = Some(format!(
            "device name {:?}, asked from {}",
            request.device_name, request.source
        ));
    });
    let result = match f.decision.as_str() {
        "approve" => enroll_requests::approve(&p.state, &p.tenant, &p.user, &request).await,
        "deny" => enroll_requests::deny(&p.state, &p.tenant, &p.user, &request).await,
        _ => return layout::error_page(StatusCode::BAD_REQUEST, "decision: approve or deny"),
    };
    match result {
        Ok(true) if f.decision == "approve" && request.device_id.is_some() => {
            let body = html! {
                p.ok role="status" { "Approved. " (request.device_name) " is signed in again; " code { "ward agent login" } " finishes by itself in a few seconds." }
                p { a href="/portal" { "My applications and devices" } }
            };
            page("Device signed in", Some(&p), body)
        }
        Ok(true) if f.decision == "approve" => {
            let body = html! {
                p.ok role="status" { "Approved. " (request.device_name) " finishes enrolling by itself in a few seconds; it then appears under My devices." }
                p { a href="/portal" { "My applications and devices" } }
            };
            page("Device approved", Some(&p), body)
        }
        Ok(true) => {
            let body = html! {
                p.ok role="status" { "Denied. The device was not enrolled." }
                p { a href="/portal" { "My applications and devices" } }
            };
            page("Device denied", Some(&p), body)
        }
        Ok(false) => {
            activate_page(
                &p,
                None,
                Some("That request was decided or expired meanwhile."),
                true,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => activate_page(&p, None, Some(&e.message), true, e.status()).await,
    }
}
