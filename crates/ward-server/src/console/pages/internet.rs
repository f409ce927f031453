//! The console's internet access control pages: the overview with its
//! charts and settings (`/internet`), the rules (`/internet/rules`), the
//! domain lists (`/internet/lists`) and the web and DNS records
//! (`/internet/records`). Like every page, they go through the API's
//! handlers (`crate::api::internet`) with the signed-in account's `Ctx`.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use ward_api::{
    CreateDomainList, CreateInternetRule, DnsSettings, InternetRuleTest, TopQuery, UpdateDomainList,
    UpdateInternetRule, UpdateInternetSettings, WebLogQuery,
};
use ward_core::Permission;
use ward_inet::InternetAction;

use super::{fail, list, when, Console, Done};
use crate::api;
use crate::console::layout::{self, csrf_field, notice};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The sub-navigation of the internet pages.
fn tabs(current: &str) -> Markup {
    let items = [
        ("/internet", "Overview"),
        ("/internet/rules", "Rules"),
        ("/internet/lists", "Domain lists"),
        ("/internet/records", "Web records"),
        ("/internet/records?kind=dns", "DNS records"),
    ];
    html! {
        p.tabs {
            @for (href, label) in items {
                @if href == current { strong { (label) } } @else { a href=(href) { (label) } }
                " "
            }
        }
    }
}

fn done_text(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "settings" => "Settings saved; the gateways and agents apply them within a minute.",
        "rule" => "Rule created.",
        "rule-updated" => "Rule updated.",
        "rule-deleted" => "Rule deleted.",
        "list" => "Domain list created.",
        "list-updated" => "Domain list updated.",
        "list-deleted" => "Domain list deleted.",
        _ => return None,
    })
}

fn action_from(s: &str) -> Option<InternetAction> {
    match s {
        "allow" => Some(InternetAction::Allow),
        "block" => Some(InternetAction::Block),
        "warn" => Some(InternetAction::Warn),
        "monitor" => Some(InternetAction::Monitor),
        _ => None,
    }
}

fn action_name(a: InternetAction) -> &'static str {
    match a {
        InternetAction::Allow => "allow",
        InternetAction::Block => "block",
        InternetAction::Warn => "warn",
        InternetAction::Monitor => "monitor",
    }
}

fn action_class(action: &str) -> &'static str {
    match action {
        "allow" | "monitor" | "proceed" => "allow",
        _ => "deny",
    }
}

// ---- overview --------------------------------------------------------------------

pub async fn overview(c: Console, Query(q): Query<Done>) -> Response {
    overview_page(&c, done_text(q.done.as_deref()), false, StatusCode::OK).await
}

async fn overview_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let ctx = &c.ctx;
    let settings = match api::internet::get_settings(ctx.clone()).await {
        Ok(s) => s.0,
        Err(e) => return fail(e),
    };
    let mut charts = html! {};
    if c.can(Permission::LogsRead) {
        let top = |by: &str, action: Option<&str>| TopQuery {
            by: by.to_owned(),
            action: action.map(str::to_owned),
            since: Some("24h".to_owned()),
            limit: Some(10),
        };
        let blocked = match api::internet::web_top(ctx.clone(), ApiQuery(top("domain", Some("block")))).await {
            Ok(t) => t.0,
            Err(e) => return fail(e),
        };
        let users = match api::internet::web_top(ctx.clone(), ApiQuery(top("user", None))).await {
            Ok(t) => t.0,
            Err(e) => return fail(e),
        };
        let bars = |entries: &[ward_api::TopEntry]| -> Vec<(String, u64)> {
            entries.iter().map(|e| (e.key.clone(), e.count)).collect()
        };
        charts = html! {
            div.cols {
                section {
                    h2 { "Top blocked sites, last 24 hours" }
                    (layout::horizontal_bars(&bars(&blocked), "deny", "No site was blocked in the last 24 hours."))
                }
                section {
                    h2 { "Top users by requests, last 24 hours" }
                    (layout::horizontal_bars(&bars(&users), "allow", "No web traffic in the last 24 hours."))
                }
            }
        };
    }
    let manage = c.can(Permission::PolicyManage);
    let body = html! {
        (tabs("/internet"))
        (notice(message, error))
        (charts)
        section {
            h2 { "Settings" }
            form.grid method="post" action="/internet/settings" {
                (csrf_field(&c.csrf))
                label.check { input type="checkbox" name="enabled" value="on" checked[settings.enabled] disabled[!manage];
                    " Internet access control: agents send internet traffic through the gateways" }
                label { "When no rule matches" select name="default_action" disabled[!manage] {
                    option value="allow" selected[settings.default_action == InternetAction::Allow] { "allow" }
                    option value="block" selected[settings.default_action == InternetAction::Block] { "block" }
                } }
                label { "Blocked names in DNS" select name="dns_block_mode" disabled[!manage] {
                    option value="nxdomain" selected[settings.dns.block_mode != "address"] { "answer NXDOMAIN (no such name)" }
                    option value="address" selected[settings.dns.block_mode == "address"] { "answer a block address" }
                } }
                label { "Block address (IPv4)" input name="dns_block_ipv4" value=(settings.dns.block_ipv4.clone().unwrap_or_default()) disabled[!manage]; }
                label { "A click-through of a warning lasts (minutes)" input name="warn_minutes" type="number" min="1" max="1440" value=(settings.warn_minutes) disabled[!manage]; }
                label { "Sent directly, never through Ward (domains, *.wildcards, CIDR blocks; one a line)"
                    textarea name="bypass" rows="3" disabled[!manage] { (settings.bypass.join("\n")) } }
                label.check { input type="checkbox" name="inspection" value="on" checked[settings.inspection] disabled[!manage];
                    " TLS inspection for rules that ask for it (never for " (settings.do_not_inspect.join(", ")) ")" }
                @if manage { button type="submit" { "Save settings" } }
            }
            @if settings.inspection {
                p {
                    a href="/internet/inspection-ca" download="ward-inspection-ca.pem" { "Download the inspection CA" }
                    ": install this certificate as a trusted root on the endpoints whose traffic is inspected, \
                     or their browsers will refuse the inspected sites."
                }
            }
        }
    };
    c.page_with(status, "Internet", "/internet", body)
}

/// The tenant's inspection CA certificate as a file, for the overview's
/// link (the console signs in with a cookie, so it cannot link the API).
pub async fn inspection_ca(c: Console) -> Response {
    match api::internet::inspection_ca(c.ctx.clone()).await {
        Ok(file) => file.into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    dns_block_mode: String,
    #[serde(default)]
    dns_block_ipv4: String,
    #[serde(default)]
    warn_minutes: String,
    #[serde(default)]
    bypass: String,
    #[serde(default)]
    inspection: Option<String>,
}

pub async fn save_settings(c: Console, Form(f): Form<SettingsForm>) -> Response {
    let warn_minutes = match f.warn_minutes.trim().parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            return overview_page(
                &c,
                Some("Minutes: a whole number from 1 to 1440."),
                true,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let ipv4 = f.dns_block_ipv4.trim();
    let req = UpdateInternetSettings {
        enabled: Some(f.enabled.is_some()),
        default_action: action_from(f.default_action.trim()),
        dns: Some(DnsSettings {
            block_mode: f.dns_block_mode.trim().to_owned(),
            block_ipv4: (!ipv4.is_empty()).then(|| ipv4.to_owned()),
            block_ipv6: None,
        }),
        inspection: Some(f.inspection.is_some()),
        do_not_inspect: None,
        bypass: Some(list(&f.bypass)),
        warn_minutes,
    };
    match api::internet::set_settings(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/internet?done=settings").into_response(),
        Err(e) => overview_page(&c, Some(&e.message), true, e.status()).await,
    }
}

// ---- rules ---------------------------------------------------------------------------

pub async fn rules(c: Console, Query(q): Query<Done>) -> Response {
    rules_page(&c, done_text(q.done.as_deref()), false, StatusCode::OK, None).await
}

async fn rules_page(
    c: &Console,
    message: Option<&str>,
    error: bool,
    status: StatusCode,
    test: Option<Markup>,
) -> Response {
    let rules = match api::internet::list_rules(c.ctx.clone()).await {
        Ok(r) => r.0.items,
        Err(e) => return fail(e),
    };
    let lists = match api::internet::list_lists(c.ctx.clone()).await {
        Ok(l) => l.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::PolicyManage);
    let body = html! {
        (tabs("/internet/rules"))
        (notice(message, error))
        p.muted { "Evaluated in three stages, each by priority (1 first): global allow-list rules end evaluation; \
                   then block and warn rules; then allow and monitor rules; nothing matched: the default action." }
        div.scroll { table {
            thead { tr { th { "Priority" } th { "Action" } th { "Who" } th { "Lists" } th { "Id" } th { "State" } @if manage { th {} } } }
            tbody {
                @for r in &rules {
                    tr {
                        td.num { (r.priority) }
                        td class=(action_class(action_name(r.action))) {
                            (action_name(r.action)) @if r.global_allow { " (global allow-list)" } @if r.inspect { " · inspect" }
                        }
                        td { @if r.users.is_empty() && r.groups.is_empty() { span.muted { "everyone" } }
                             @else { (r.users.join(", ")) @if !r.groups.is_empty() { " " span.muted { "groups: " } (r.groups.join(", ")) } } }
                        td { @if r.lists.is_empty() { span.muted { "every site" } } @else { (r.lists.join(", ")) } }
                        td { code { (r.id) } }
                        td { @if r.enabled { "on" } @else { span.muted { "off" } } }
                        @if manage { td.actions {
                            form.inline method="post" action=(format!("/internet/rules/{}/state", r.id)) {
                                (csrf_field(&c.csrf))
                                input type="hidden" name="enabled" value=(if r.enabled { "false" } else { "true" });
                                button type="submit" { @if r.enabled { "Disable" } @else { "Enable" } }
                            }
                            form.inline method="post" action=(format!("/internet/rules/{}/delete", r.id)) {
                                (csrf_field(&c.csrf))
                                button.danger type="submit" { "Delete" }
                            }
                        } }
                    }
                }
                @if rules.is_empty() { tr { td colspan="7" .muted { "No internet rules: every site gets the default action." } } }
            }
        } }
        @if manage {
            section {
                h2 { "New rule" }
                form.grid method="post" action="/internet/rules" {
                    (csrf_field(&c.csrf))
                    label { "Priority" input name="priority" type="number" min="1" required; }
                    label { "Action" select name="action" {
                        option value="block" { "block" } option value="warn" { "warn (the user may click through)" }
                        option value="allow" { "allow" } option value="monitor" { "monitor (allow and mark)" }
                    } }
                    label { "Domain lists (comma-separated; empty: every site)"
                        input name="lists" list="list-names" placeholder=(lists.first().map(|l| l.name.as_str()).unwrap_or("ads")); }
                    datalist id="list-names" { @for l in &lists { option value=(l.name) {} } }
                    label { "Users (names, comma-separated; empty and no groups: everyone)" input name="users"; }
                    label { "Groups" input name="groups"; }
                    label.check { input type="checkbox" name="global_allow" value="on"; " Global allow-list (allow or monitor only: ends evaluation)" }
                    label.check { input type="checkbox" name="inspect" value="on"; " Inspect TLS (when inspection is on)" }
                    button type="submit" { "Create rule" }
                }
            }
        }
        section {
            h2 { "Test" }
            form.inline method="post" action="/internet/rules/test" {
                (csrf_field(&c.csrf))
                label { "User " input name="user" required; }
                label { " Site " input name="host" required placeholder="news.example"; }
                " " button type="submit" { "What would happen?" }
            }
            @if let Some(t) = test { (t) }
        }
    };
    c.page_with(status, "Internet rules", "/internet", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    priority: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    lists: String,
    #[serde(default)]
    users: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    global_allow: Option<String>,
    #[serde(default)]
    inspect: Option<String>,
}

pub async fn create_rule(c: Console, Form(f): Form<RuleForm>) -> Response {
    let (Ok(priority), Some(action)) = (f.priority.trim().parse::<u32>(), action_from(f.action.trim())) else {
        return rules_page(
            &c,
            Some("Priority: a whole number; action: allow, block, warn or monitor."),
            true,
            StatusCode::BAD_REQUEST,
            None,
        )
        .await;
    };
    let req = CreateInternetRule {
        priority,
        action,
        global_allow: f.global_allow.is_some(),
        users: list(&f.users),
        groups: list(&f.groups),
        lists: list(&f.lists),
        inspect: f.inspect.is_some(),
        ..CreateInternetRule::default()
    };
    match api::internet::create_rule(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/internet/rules?done=rule").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StateForm {
    #[serde(default)]
    enabled: String,
}

pub async fn set_rule_state(c: Console, Path(id): Path<String>, Form(f): Form<StateForm>) -> Response {
    let req = UpdateInternetRule {
        enabled: Some(f.enabled == "true"),
        ..UpdateInternetRule::default()
    };
    match api::internet::update_rule(c.ctx.clone(), ApiPath(id), ApiJson(req)).await {
        Ok(_) => Redirect::to("/internet/rules?done=rule-updated").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

pub async fn delete_rule(c: Console, Path(id): Path<String>) -> Response {
    match api::internet::delete_rule(c.ctx.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/internet/rules?done=rule-deleted").into_response(),
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    host: String,
}

pub async fn test_rules(c: Console, Form(f): Form<TestForm>) -> Response {
    let req = InternetRuleTest {
        user: f.user.trim().to_owned(),
        host: f.host.trim().to_owned(),
        port: None,
    };
    match api::internet::test_rules(c.ctx.clone(), ApiJson(req)).await {
        Ok(r) => {
            let r = r.0;
            let verdict = action_name(r.action);
            let result = html! {
                p {
                    (f.user.trim()) " → " code { (r.host) } ": "
                    strong class=(action_class(verdict)) { (verdict) }
                    @if let Some(rule) = &r.rule_id { " by rule " code { (rule) } } @else { " (the default action)" }
                    @if let Some(l) = &r.list { " through list " (l) }
                    span.muted { " · stage " (r.stage) }
                }
            };
            rules_page(&c, None, false, StatusCode::OK, Some(result)).await
        }
        Err(e) => rules_page(&c, Some(&e.message), true, e.status(), None).await,
    }
}

// ---- lists ---------------------------------------------------------------------------

pub async fn lists(c: Console, Query(q): Query<Done>) -> Response {
    lists_page(&c, done_text(q.done.as_deref()), false, StatusCode::OK).await
}

async fn lists_page(c: &Console, message: Option<&str>, error: bool, status: StatusCode) -> Response {
    let lists = match api::internet::list_lists(c.ctx.clone()).await {
        Ok(l) => l.0.items,
        Err(e) => return fail(e),
    };
    let manage = c.can(Permission::PolicyManage);
    let body = html! {
        (tabs("/internet/lists"))
        (notice(message, error))
        div.scroll { table {
            thead { tr { th { "Name" } th { "Entries" } th { "Source" } th { "Updated" } @if manage { th {} } } }
            tbody {
                @for l in &lists {
                    tr {
                        td { strong { (l.name) } @if !l.description.is_empty() { br; span.muted { (l.description) } } }
                        td.num { (l.entries) }
                        td { @if let Some(u) = &l.source_url { code { (u) } } @else { span.muted { "entered or imported" } } }
                        td { (when(&l.updated_at)) }
                        @if manage { td.actions {
                            form.inline method="post" action=(format!("/internet/lists/{}/add", l.name)) {
                                (csrf_field(&c.csrf))
                                input name="domains" placeholder="more.example, *.ads.example" size="24";
                                button type="submit" { "Add" }
                            }
                            form.inline method="post" action=(format!("/internet/lists/{}/delete", l.name)) {
                                (csrf_field(&c.csrf))
                                button.danger type="submit" { "Delete" }
                            }
                        } }
                    }
                }
                @if lists.is_empty() { tr { td colspan="5" .muted { "No domain lists yet." } } }
            }
        } }
        @if manage {
            section {
                h2 { "New list" }
                p.muted { "Exact names (ads.example) and wildcards (*.ads.example: every name below, not the name itself). \
                           For a large file (hosts, adblock or plain; up to 1,000,000 names), use "
                          code { "ward ctl domain-list import NAME FILE" } ", or give a URL here." }
                form.grid method="post" action="/internet/lists" {
                    (csrf_field(&c.csrf))
                    label { "Name" input name="name" required; }
                    label { "Description" input name="description"; }
                    label { "Domains (one a line, or comma-separated)" textarea name="domains" rows="4" {} }
                    label { "Or import from a URL (http or https)" input name="url" type="url"; }
                    button type="submit" { "Create list" }
                }
            }
        }
    };
    c.page_with(status, "Domain lists", "/internet", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    url: String,
}

pub async fn create_list(c: Console, Form(f): Form<ListForm>) -> Response {
    let url = f.url.trim();
    let req = CreateDomainList {
        name: f.name.trim().to_owned(),
        description: f.description.trim().to_owned(),
        domains: list(&f.domains),
        url: (!url.is_empty()).then(|| url.to_owned()),
    };
    match api::internet::create_list(c.ctx.clone(), ApiJson(req)).await {
        Ok(_) => Redirect::to("/internet/lists?done=list").into_response(),
        Err(e) => lists_page(&c, Some(&e.message), true, e.status()).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    domains: String,
}

pub async fn add_to_list(c: Console, Path(name): Path<String>, Form(f): Form<AddForm>) -> Response {
    let req = UpdateDomainList {
        add: list(&f.domains),
        ..UpdateDomainList::default()
    };
    match api::internet::update_list(c.ctx.clone(), ApiPath(name), ApiJson(req)).await {
        Ok(_) => Redirect::to("/internet/lists?done=list-updated").into_response(),
        Err(e) => lists_page(&c, Some(&e.message), true, e.status()).await,
    }
}

pub async fn delete_list(c: Console, Path(name): Path<String>) -> Response {
    match api::internet::delete_list(c.ctx.clone(), ApiPath(name)).await {
        Ok(_) => Redirect::to("/internet/lists?done=list-deleted").into_response(),
        Err(e) => lists_page(&c, Some(&e.message), true, e.status()).await,
    }
}

// ---- records ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct RecordFilter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    since: String,
}

pub async fn records(c: Console, Query(f): Query<RecordFilter>) -> Response {
    let dns = f.kind == "dns";
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let q = WebLogQuery {
        user: opt(&f.user),
        device: None,
        action: opt(&f.action),
        domain: opt(&f.domain),
        since: opt(&f.since),
        cursor: None,
        limit: Some(500),
    };
    let page = if dns {
        api::internet::dns_logs(c.ctx.clone(), ApiQuery(q)).await
    } else {
        api::internet::web_logs(c.ctx.clone(), ApiQuery(q)).await
    };
    let items = match page {
        Ok(p) => p.0.items,
        Err(e) => return fail(e),
    };
    let actions: &[&str] = if dns {
        &["allow", "block", "monitor"]
    } else {
        &["allow", "block", "warn", "proceed", "monitor"]
    };
    let body = html! {
        (tabs(if dns { "/internet/records?kind=dns" } else { "/internet/records" }))
        form.filters method="get" action="/internet/records" {
            @if dns { input type="hidden" name="kind" value="dns"; }
            label { "User" input name="user" value=(f.user); }
            label { "Domain (and below)" input name="domain" value=(f.domain); }
            label { "Action" select name="action" {
                option value="" selected[f.action.is_empty()] { "any" }
                @for a in actions { option value=(a) selected[f.action == *a] { (a) } }
            } }
            label { "Within the last" input name="since" value=(f.since) placeholder="24h"; }
            button type="submit" { "Filter" }
        }
        p.muted { (items.len()) " records (newest first, at most 500)" }
        div.scroll { table {
            @if dns {
                thead { tr { th { "Time" } th { "User" } th { "Device" } th { "Name" } th { "Type" } th { "Answer" } th { "Action" } th { "Rule" } } }
                tbody {
                    @for r in &items { tr {
                        td { (when(&r.time)) } td { (r.user) } td { (r.device_id) } td { (r.dest_host) }
                        td { (r.qtype.as_deref().unwrap_or("")) } td { (r.answer.as_deref().unwrap_or("")) }
                        td class=(action_class(&r.action)) { (r.action) } td { (r.rule_id.as_deref().unwrap_or("")) }
                    } }
                    @if items.is_empty() { tr { td colspan="8" .muted { "No records match." } } }
                }
            } @else {
                thead { tr { th { "Time" } th { "User" } th { "Device" } th { "Source" } th { "Site" } th { "Action" }
                             th { "Rule" } th { "Bytes up" } th { "Bytes down" } th { "Upload" } } }
                tbody {
                    @for r in &items { tr {
                        td { (when(&r.time)) }
                        td { (r.user) }
                        td { @if r.device_id.is_empty() { span.muted { "proxy port" } } @else { (r.device_id) } }
                        td { (r.source) }
                        td {
                            @if let (Some(m), Some(u)) = (&r.method, &r.url) {
                                (m) " " (u) @if let Some(s) = r.status { " → " (s) }
                            } @else { (r.dest_host) ":" (r.port) }
                            @if r.inspected { " " span.muted title="The gateway inspected this HTTPS traffic" { "(inspected)" } }
                            @if let Some(a) = &r.dest_addr { br; span.muted { (a) } }
                        }
                        td class=(action_class(&r.action)) { (r.action) }
                        td { (r.rule_id.as_deref().unwrap_or("")) }
                        td.num { (r.bytes_up) }
                        td.num { (r.bytes_down) }
                        td { @if let Some(u) = &r.upload {
                            (u.file_name.as_deref().unwrap_or("(body)")) " · " (u.size) " B" br;
                            span.muted title=(u.sha256) { "sha256 " (u.sha256.get(..16).unwrap_or(&u.sha256)) "…" }
                        } }
                    } }
                    @if items.is_empty() { tr { td colspan="10" .muted { "No records match." } } }
                }
            }
        } }
    };
    c.page(if dns { "DNS records" } else { "Web records" }, "/internet", body)
}
