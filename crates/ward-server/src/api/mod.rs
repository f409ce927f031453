//! The REST API under `/api/v1`, and its OpenAPI document.
//!
//! Every handler is annotated for the OpenAPI document and registered with
//! `routes!`, so the document cannot list a route the router lacks or miss
//! one it has.

pub(crate) mod accounts;
pub(crate) mod apikeys;
pub(crate) mod audit;
pub(crate) mod auth;
pub mod devices;
pub(crate) mod enroll_requests;
pub mod gateways;
pub(crate) mod identity_sources;
pub(crate) mod internet;
mod lockouts;
pub(crate) mod mfa;
pub(crate) mod policy;
mod tenants;
pub(crate) mod users;

use axum::extract::DefaultBodyLimit;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use ward_store::PageRequest;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ward API", description = "Ward's control-plane API. Authenticate with `Authorization: Bearer <token>`: a session token from `POST /api/v1/auth/login` or an API key."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in, sign out, who am I"),
        (name = "tenants", description = "The service's tenants (operators only)"),
        (name = "accounts", description = "Administrator accounts: the owner and its sub-accounts"),
        (name = "apikeys", description = "The caller's API keys"),
        (name = "mfa", description = "Multi-factor authentication of administrator accounts"),
        (name = "audit", description = "The admin audit trail (read-only)"),
        (name = "users", description = "End users and groups"),
                (name = "policy", description = "Applications and access rules"),
                (name = "devices", description = "Devices, enrolment, posture"),
        (name = "gateways", description = "Gateways, policy snapshots and access records"),
        (name = "internet", description = "Internet access control: settings, domain lists, internet rules, proxy credentials, web and DNS logs"),
        (name = "identity-sources", description = "OpenID Connect providers and LDAP directories end users sign in to the portal with"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router and the OpenAPI document describing it.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::whoami))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::show, tenants::update))
        .routes(routes!(tenants::show_settings, tenants::set_settings))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::show, accounts::delete))
        .routes(routes!(accounts::set_role))
        .routes(routes!(accounts::set_password))
        .routes(routes!(accounts::unlock))
        .routes(routes!(mfa::enroll, mfa::disable))
        .routes(routes!(mfa::confirm))
        .routes(routes!(mfa::reset))
        .routes(routes!(lockouts::list))
        .routes(routes!(lockouts::clear_address))
        .routes(routes!(apikeys::list, apikeys::create))
        .routes(routes!(apikeys::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::set_password, users::clear_password))
        .routes(routes!(users::unlock))
        .routes(routes!(users::mfa_reset))
        .routes(routes!(users::list_groups, users::create_group))
        .routes(routes!(users::update_group, users::delete_group))
        .routes(routes!(users::add_member))
        .routes(routes!(users::remove_member))
        .routes(routes!(policy::list_apps, policy::create_app))
        .routes(routes!(policy::delete_app, policy::update_app))
        .routes(routes!(policy::list_rules, policy::create_rule))
        .routes(routes!(policy::delete_rule, policy::update_rule))
        .routes(routes!(policy::reorder_rules))
        .routes(routes!(policy::test_rules))
        .routes(routes!(devices::create_code))
        .routes(routes!(devices::enroll))
        .routes(routes!(enroll_requests::create))
        .routes(routes!(enroll_requests::poll))
        .routes(routes!(devices::renew))
        .routes(routes!(devices::report_posture))
        .routes(routes!(devices::logout))
        .routes(routes!(devices::session))
        .routes(routes!(enroll_requests::device_login))
        .routes(routes!(devices::list))
        .routes(routes!(devices::show))
        .routes(routes!(devices::revoke))
        .routes(routes!(devices::get_requirements, devices::set_requirements))
        .routes(routes!(gateways::create_join_code))
        .routes(routes!(gateways::list))
        .routes(routes!(gateways::join))
        .routes(routes!(gateways::get_snapshot))
        .routes(routes!(gateways::get_domain_list))
        .routes(routes!(gateways::ship_records))
        .routes(routes!(gateways::redeem_web_code))
        .routes(routes!(gateways::report_status))
        .routes(routes!(gateways::list_records))
        .routes(routes!(identity_sources::list, identity_sources::create))
        .routes(routes!(identity_sources::show, identity_sources::delete))
        .routes(routes!(identity_sources::sync))
        .routes(routes!(internet::get_settings, internet::set_settings))
        .routes(routes!(internet::inspection_ca))
        .routes(routes!(internet::list_lists, internet::create_list))
        .routes(routes!(
            internet::show_list,
            internet::update_list,
            internet::delete_list
        ))
        .routes(routes!(internet::refresh_list))
        .merge(
            // A list file may be far larger than any other body.
            OpenApiRouter::new()
                .routes(routes!(internet::import_entries, internet::list_entries))
                .layer(DefaultBodyLimit::max(internet::MAX_LIST_BYTES)),
        )
        .routes(routes!(internet::list_rules, internet::create_rule))
        .routes(routes!(
            internet::show_rule,
            internet::update_rule,
            internet::delete_rule
        ))
        .routes(routes!(internet::test_rules))
        .routes(routes!(internet::list_credentials, internet::create_credential))
        .routes(routes!(internet::delete_credential))
        .routes(routes!(internet::routing))
        .routes(routes!(internet::web_logs))
        .routes(routes!(internet::dns_logs))
        .routes(routes!(internet::web_top))
        .split_for_parts()
}

/// The document as served at `/api/v1/openapi.json`.
pub fn openapi_json(
    doc: utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<Json<utoipa::openapi::OpenApi>> + Clone {
    move || std::future::ready(Json(doc.clone()))
}

/// The stable name of each API action, as the audit trail records it.
///
/// One table for every route, so an action is named the same whether the
/// handler ran or the request was refused before it (bad JSON, no
/// credentials). A test checks that every route in the OpenAPI document has
/// a name here.
pub fn action_name(method: &str, route: &str) -> Option<&'static str> {
    Some(match (method, route) {
        ("POST", "/api/v1/auth/login") => "auth.login",
        ("POST", "/api/v1/auth/logout") => "auth.logout",
        ("GET", "/api/v1/whoami") => "auth.whoami",
        ("GET", "/api/v1/tenants") => "tenant.list",
        ("POST", "/api/v1/tenants") => "tenant.create",
        ("GET", "/api/v1/tenants/{name}") => "tenant.show",
        ("PATCH", "/api/v1/tenants/{name}") => "tenant.update",
        ("GET", "/api/v1/tenant/settings") => "tenant.show_settings",
        ("PUT", "/api/v1/tenant/settings") => "tenant.settings",
        ("GET", "/api/v1/accounts") => "account.list",
        ("POST", "/api/v1/accounts") => "account.create",
        ("GET", "/api/v1/accounts/{name}") => "account.show",
        ("DELETE", "/api/v1/accounts/{name}") => "account.delete",
        ("PUT", "/api/v1/accounts/{name}/role") => "account.set_role",
        ("PUT", "/api/v1/accounts/{name}/password") => "account.set_password",
        ("POST", "/api/v1/accounts/{name}/unlock") => "account.unlock",
        ("POST", "/api/v1/accounts/{name}/mfa/reset") => "mfa.reset",
        ("POST", "/api/v1/me/mfa/totp") => "mfa.enroll",
        ("POST", "/api/v1/me/mfa/totp/confirm") => "mfa.confirm",
        ("DELETE", "/api/v1/me/mfa/totp") => "mfa.disable",
        ("GET", "/api/v1/lockouts") => "lockout.list",
        ("DELETE", "/api/v1/lockouts/addresses/{address}") => "lockout.clear",
        ("GET", "/api/v1/apikeys") => "apikey.list",
        ("POST", "/api/v1/apikeys") => "apikey.create",
        ("DELETE", "/api/v1/apikeys/{id}") => "apikey.revoke",
        ("GET", "/api/v1/audit") => "audit.list",
        ("GET", "/api/v1/users") => "user.list",
        ("POST", "/api/v1/users") => "user.create",
        ("GET", "/api/v1/users/{name}") => "user.show",
        ("PATCH", "/api/v1/users/{name}") => "user.update",
        ("DELETE", "/api/v1/users/{name}") => "user.delete",
        ("PUT", "/api/v1/users/{name}/password") => "user.set_password",
        ("DELETE", "/api/v1/users/{name}/password") => "user.clear_password",
        ("POST", "/api/v1/users/{name}/unlock") => "user.unlock",
        ("POST", "/api/v1/users/{name}/mfa/reset") => "user.mfa_reset",
        ("GET", "/api/v1/groups") => "group.list",
        ("POST", "/api/v1/groups") => "group.create",
        ("DELETE", "/api/v1/groups/{name}") => "group.delete",
        ("PATCH", "/api/v1/groups/{name}") => "group.update",
        ("POST", "/api/v1/groups/{name}/members") => "group.add_member",
        ("DELETE", "/api/v1/groups/{name}/members/{user}") => "group.remove_member",
        ("GET", "/api/v1/apps") => "app.list",
        ("POST", "/api/v1/apps") => "app.create",
        ("DELETE", "/api/v1/apps/{name}") => "app.delete",
        ("PATCH", "/api/v1/apps/{name}") => "app.update",
        ("GET", "/api/v1/rules") => "rule.list",
        ("POST", "/api/v1/rules") => "rule.create",
        ("DELETE", "/api/v1/rules/{id}") => "rule.delete",
        ("PATCH", "/api/v1/rules/{id}") => "rule.update",
        ("POST", "/api/v1/rules/test") => "rule.test",
        ("POST", "/api/v1/rules/reorder") => "rule.reorder",
        ("POST", "/api/v1/enroll-codes") => "device.enroll_code",
        ("POST", "/api/v1/enroll") => "device.enroll",
        ("POST", "/api/v1/enroll/requests") => "device.enroll_request",
        ("POST", "/api/v1/enroll/requests/poll") => "device.enroll_request_poll",
        ("POST", "/api/v1/device/renew") => "device.renew",
        ("POST", "/api/v1/device/posture") => "device.posture",
        ("POST", "/api/v1/device/logout") => "device.logout",
        ("GET", "/api/v1/device/session") => "device.session",
        ("POST", "/api/v1/device/login") => "device.login_request",
        ("GET", "/api/v1/devices") => "device.list",
        ("GET", "/api/v1/devices/{id}") => "device.show",
        ("POST", "/api/v1/devices/{id}/revoke") => "device.revoke",
        ("GET", "/api/v1/posture-requirements") => "posture.show",
        ("PUT", "/api/v1/posture-requirements") => "posture.set",
        ("POST", "/api/v1/gateway-join-codes") => "gateway.join_code",
        ("GET", "/api/v1/gateways") => "gateway.list",
        ("POST", "/api/v1/gateway/join") => "gateway.join",
        ("GET", "/api/v1/gateway/snapshot") => "gateway.snapshot",
        ("GET", "/api/v1/gateway/domain-lists/{sha256}") => "gateway.domain_list",
        ("POST", "/api/v1/gateway/records") => "gateway.records",
        ("POST", "/api/v1/gateway/web-sessions") => "gateway.web_session",
        ("POST", "/api/v1/gateway/status") => "gateway.status",
        ("GET", "/api/v1/access-records") => "access.list",
        ("GET", "/api/v1/identity-sources") => "idp.list",
        ("POST", "/api/v1/identity-sources") => "idp.create",
        ("DELETE", "/api/v1/identity-sources/{name}") => "idp.delete",
        ("GET", "/api/v1/identity-sources/{name}") => "idp.show",
        ("POST", "/api/v1/identity-sources/{name}/sync") => "idp.sync",
        ("GET", "/api/v1/internet/settings") => "internet.show_settings",
        ("PUT", "/api/v1/internet/settings") => "internet.settings",
        ("GET", "/api/v1/internet/inspection-ca") => "internet.inspection_ca",
        ("GET", "/api/v1/domain-lists") => "domain_list.list",
        ("POST", "/api/v1/domain-lists") => "domain_list.create",
        ("GET", "/api/v1/domain-lists/{name}") => "domain_list.show",
        ("PATCH", "/api/v1/domain-lists/{name}") => "domain_list.update",
        ("DELETE", "/api/v1/domain-lists/{name}") => "domain_list.delete",
        ("PUT", "/api/v1/domain-lists/{name}/entries") => "domain_list.import",
        ("GET", "/api/v1/domain-lists/{name}/entries") => "domain_list.entries",
        ("POST", "/api/v1/domain-lists/{name}/refresh") => "domain_list.refresh",
        ("GET", "/api/v1/internet/rules") => "internet_rule.list",
        ("POST", "/api/v1/internet/rules") => "internet_rule.create",
        ("GET", "/api/v1/internet/rules/{id}") => "internet_rule.show",
        ("PATCH", "/api/v1/internet/rules/{id}") => "internet_rule.update",
        ("DELETE", "/api/v1/internet/rules/{id}") => "internet_rule.delete",
        ("POST", "/api/v1/internet/rules/test") => "internet_rule.test",
        ("GET", "/api/v1/users/{name}/proxy-credentials") => "proxy_credential.list",
        ("POST", "/api/v1/users/{name}/proxy-credentials") => "proxy_credential.create",
        ("DELETE", "/api/v1/users/{name}/proxy-credentials/{id}") => "proxy_credential.delete",
        ("GET", "/api/v1/device/routing") => "device.routing",
        ("GET", "/api/v1/logs/web") => "logs.web",
        ("GET", "/api/v1/logs/dns") => "logs.dns",
        ("GET", "/api/v1/logs/web/top") => "logs.web_top",
        _ => return None,
    })
}

fn page_request(q: &ward_api::PageQuery) -> PageRequest {
    PageRequest::new(q.cursor.clone(), q.limit)
}

fn page<T, U>(p: ward_store::Page<T>, f: impl FnMut(T) -> U) -> ward_api::Page<U> {
    let p = p.map(f);
    ward_api::Page {
        items: p.items,
        next_cursor: p.next_cursor,
    }
}

fn opt_time(t: Option<i64>) -> Option<String> {
    t.map(ward_core::time::rfc3339)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_has_an_action_name() {
        let (_, doc) = super::router();
        let mut n = 0;
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (m, present) in methods {
                if present {
                    n += 1;
                    assert!(super::action_name(m, path).is_some(), "{m} {path} has no action name");
                }
            }
        }
        assert!(n >= 20, "only {n} operations found");
    }
}
