//! The admin console: server-rendered pages at `/` for a tenant's
//! administrators, usable without JavaScript (there is none) on a laptop
//! or a phone.
//!
//! - `session.rs`: the session cookie (the API's own session token, read by
//!   the audit middleware for console paths only) and the CSRF guard every
//!   console `POST` passes.
//! - `layout.rs`: the page frame, the strict Content-Security-Policy, error
//!   pages, the SVG chart, and the check on where a sign-in may return to.
//! - `pages.rs`: the pages. They call the API's handlers in-process with the
//!   signed-in account's `Ctx`, so they are bound by the same authorisation.
//!
//! Mutating requests and refusals are written to the audit trail by the
//! same middleware as the API's, under the names of [`action_name`].

pub(crate) mod layout;
mod pages;
pub mod session;

use axum::http::{header, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{name}/state", post(pages::set_user_state))
        .route("/users/{name}/attributes", post(pages::set_user_attributes))
        .route("/groups/{name}/conditions", post(pages::set_group_conditions))
        .route("/users/{name}/enroll-code", post(pages::enroll_code))
        .route("/users/{name}/password", post(pages::set_user_password))
        .route("/users/{name}/mfa-reset", post(pages::reset_user_mfa))
        .route("/groups", post(pages::create_group))
        .route("/devices", get(pages::devices))
        .route("/devices/{id}/revoke", post(pages::revoke_device))
        .route("/apps", get(pages::apps).post(pages::create_app))
        .route("/apps/{name}/delete", post(pages::delete_app))
        .route("/rules", get(pages::rules).post(pages::create_rule))
        .route("/rules/test", post(pages::test_rules))
        .route("/rules/{id}/state", post(pages::set_rule_state))
        .route("/rules/{id}/delete", post(pages::delete_rule))
        .route("/rules/{id}/move", post(pages::move_rule))
        .route("/records", get(pages::records))
        .route("/internet", get(pages::internet::overview))
        .route("/internet/settings", post(pages::internet::save_settings))
        .route("/internet/inspection-ca", get(pages::internet::inspection_ca))
        .route(
            "/internet/rules",
            get(pages::internet::rules).post(pages::internet::create_rule),
        )
        .route("/internet/rules/test", post(pages::internet::test_rules))
        .route("/internet/rules/{id}/state", post(pages::internet::set_rule_state))
        .route("/internet/rules/{id}/delete", post(pages::internet::delete_rule))
        .route(
            "/internet/lists",
            get(pages::internet::lists).post(pages::internet::create_list),
        )
        .route("/internet/lists/{name}/add", post(pages::internet::add_to_list))
        .route("/internet/lists/{name}/delete", post(pages::internet::delete_list))
        .route("/internet/records", get(pages::internet::records))
        .route("/audit", get(pages::audit))
        .route("/accounts", get(pages::accounts).post(pages::create_account))
        .route("/accounts/{name}/delete", post(pages::delete_account))
        .route("/accounts/{name}/unlock", post(pages::unlock_account))
        .route("/apikeys", get(pages::apikeys).post(pages::create_apikey))
        .route("/apikeys/{id}/revoke", post(pages::revoke_apikey))
        .route(
            "/identity-sources",
            get(pages::identity_sources).post(pages::create_identity_source),
        )
        .route("/identity-sources/{name}/delete", post(pages::delete_identity_source))
        .route("/identity-sources/ldap", post(pages::create_ldap_source))
        .route("/identity-sources/{name}/sync", post(pages::sync_identity_source))
        .route("/account", get(pages::account))
        .route("/account/mfa", post(pages::account_mfa_start))
        .route("/account/mfa/confirm", post(pages::account_mfa_confirm))
        .route_layer(from_fn_with_state(state, session::csrf_guard))
        .route("/static/ward.css", get(style))
}

async fn style() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        layout::STYLE,
    )
}

/// Whether a request path belongs to the console (its session cookie is
/// read, and its posts are audited).
pub fn is_console_path(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path.starts_with("/static/")
        || path == "/portal"
        || path.starts_with("/portal/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics"))
}

/// The audit trail's name for a console action, as the API names the same
/// action.
pub fn action_name(method: &str, route: &str) -> Option<&'static str> {
    if method == "GET" && route == "/account" {
        // Reading one's own account, as whoami does: open to a session that
        // must enrol in MFA before anything else.
        return Some("auth.whoami");
    }
    if method != "POST" {
        return None;
    }
    Some(match route {
        "/account/mfa" => "mfa.enroll",
        "/account/mfa/confirm" => "mfa.confirm",
        "/login" => "auth.login",
        "/logout" => "auth.logout",
        "/users" => "user.create",
        "/users/{name}/state" => "user.update",
        "/users/{name}/attributes" => "user.update",
        "/groups/{name}/conditions" => "group.update",
        "/users/{name}/enroll-code" => "device.enroll_code",
        "/users/{name}/password" => "user.set_password",
        "/users/{name}/mfa-reset" => "user.mfa_reset",
        "/groups" => "group.create",
        "/accounts" => "account.create",
        "/accounts/{name}/delete" => "account.delete",
        "/accounts/{name}/unlock" => "account.unlock",
        "/apikeys" => "apikey.create",
        "/apikeys/{id}/revoke" => "apikey.revoke",
        "/identity-sources" => "idp.create",
        "/identity-sources/{name}/delete" => "idp.delete",
        "/identity-sources/ldap" => "idp.create",
        "/identity-sources/{name}/sync" => "idp.sync",
        "/devices/{id}/revoke" => "device.revoke",
        "/apps" => "app.create",
        "/apps/{name}/delete" => "app.delete",
        "/rules" => "rule.create",
        "/rules/test" => "rule.test",
        "/rules/{id}/state" => "rule.update",
        "/rules/{id}/delete" => "rule.delete",
        "/rules/{id}/move" => "rule.reorder",
        "/internet/settings" => "internet.settings",
        "/internet/rules" => "internet_rule.create",
        "/internet/rules/test" => "internet_rule.test",
        "/internet/rules/{id}/state" => "internet_rule.update",
        "/internet/rules/{id}/delete" => "internet_rule.delete",
        "/internet/lists" => "domain_list.create",
        "/internet/lists/{name}/add" => "domain_list.update",
        "/internet/lists/{name}/delete" => "domain_list.delete",
        _ => return None,
    })
}
