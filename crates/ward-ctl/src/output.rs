//! Printing results: plain aligned tables for people, pretty JSON for scripts.
//!
//! Tables look like kubectl's: a header row, then one row per item, columns
//! separated by spaces, no borders. Missing values print as `-`; times drop
//! their fraction of a second. JSON is the API's own objects, unchanged; a
//! list is one array of all its items.

use std::io::Write;

use anyhow::Result;
use comfy_table::{presets, CellAlignment, ColumnConstraint, ContentArrangement, Table};
use serde::Serialize;
use ward_api::{Account, ApiKey, AuditEvent, Lockout, Tenant, WhoAmI};

use crate::args::OutputFormat;

/// Something that prints as a table row.
pub trait Tabular {
    /// The column titles.
    const HEADERS: &'static [&'static str];
    /// The cells, one per header.
    fn row(&self) -> Vec<String>;
}

/// Prints one object: a one-row table, or the JSON object.
pub fn show<T: Tabular + Serialize>(out: &mut dyn Write, format: OutputFormat, item: &T) -> Result<()> {
    match format {
        OutputFormat::Table => write_text(out, &table(T::HEADERS, [item.row()])),
        OutputFormat::Json => json(out, item),
    }
}

/// Prints a list: a table, or one JSON array.
pub fn list<T: Tabular + Serialize>(out: &mut dyn Write, format: OutputFormat, items: &[T]) -> Result<()> {
    match format {
        OutputFormat::Table => write_text(out, &render_table(items)),
        OutputFormat::Json => json(out, &items),
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints a line of text.
pub fn line(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "{text}")?;
    Ok(())
}

fn write_text(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The table of a list of items, ending in a newline.
pub fn render_table<T: Tabular>(items: &[T]) -> String {
    table(T::HEADERS, items.iter().map(Tabular::row))
}

/// A plain table: header row, then rows; no borders; three spaces between
/// columns; no trailing spaces.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for row in rows {
        t.add_row(row.into_iter().map(|c| one_line(&c)));
    }
    let last = headers.len().saturating_sub(1);
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 3 }));
        column.set_cell_alignment(CellAlignment::Left);
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let mut text = String::new();
    for l in t.lines() {
        text.push_str(l.trim_end());
        text.push('\n');
    }
    text
}

/// Control characters (a newline in a detail) would break the columns.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `-` for a missing value.
fn opt(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

/// A time for a table: RFC 3339 without the fraction of a second.
pub fn time(rfc3339: &str) -> String {
    if let Some((head, rest)) = rfc3339.split_once('.') {
        if let Some(i) = rest.find(|c: char| !c.is_ascii_digit()) {
            return format!("{head}{}", &rest[i..]);
        }
        if rest.chars().all(|c| c.is_ascii_digit()) {
            return head.to_owned();
        }
    }
    rfc3339.to_owned()
}

fn opt_time(value: Option<&str>) -> String {
    value.map(time).unwrap_or_else(|| "-".to_owned())
}

impl Tabular for Tenant {
    const HEADERS: &'static [&'static str] = &["NAME", "REGION", "STATE", "CREATED", "ID"];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.region.clone(),
            self.state.to_string(),
            time(&self.created_at),
            self.id.clone(),
        ]
    }
}

impl Tabular for Account {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "ROLE",
        "CREATED",
        "CREATED BY",
        "LAST LOGIN",
        "FAILED LOGINS",
        "LOCKED UNTIL",
        "MFA",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.role.to_string(),
            time(&self.created_at),
            opt(self.created_by.as_deref()),
            opt_time(self.last_login_at.as_deref()),
            self.failed_logins.to_string(),
            opt_time(self.locked_until.as_deref()),
            on_off(self.mfa_enabled),
        ]
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_owned()
}

impl Tabular for ward_api::IdentitySource {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "KIND",
        "ISSUER / URL",
        "CLIENT ID / BIND DN",
        "USERNAME CLAIM",
        "GROUPS CLAIM",
        "REDIRECT URI / LAST SYNC",
    ];
    fn row(&self) -> Vec<String> {
        match &self.ldap {
            Some(l) => vec![
                self.name.clone(),
                self.kind.clone(),
                l.url.clone(),
                l.bind_dn.clone(),
                l.username_attribute.clone(),
                dash_if_empty(l.group_base.clone().unwrap_or_default()),
                match (&l.last_sync_at, l.last_sync_ok) {
                    (Some(at), Some(true)) => format!("{} ok", time(at)),
                    (Some(at), _) => format!("{} failed: {}", time(at), l.last_sync_result.as_deref().unwrap_or("")),
                    _ => "-".to_owned(),
                },
            ],
            None => vec![
                self.name.clone(),
                self.kind.clone(),
                self.issuer.clone(),
                self.client_id.clone(),
                self.username_claim.clone(),
                self.groups_claim.clone(),
                self.redirect_uri.clone(),
            ],
        }
    }
}

impl Tabular for ward_api::TenantSettings {
    const HEADERS: &'static [&'static str] = &["REQUIRE ADMIN MFA", "DEVICE SESSION HOURS"];
    fn row(&self) -> Vec<String> {
        vec![
            if self.require_admin_mfa { "yes" } else { "no" }.to_owned(),
            self.device_session_hours.map(|h| h.to_string()).unwrap_or_default(),
        ]
    }
}

impl Tabular for Lockout {
    const HEADERS: &'static [&'static str] = &["SCOPE", "SUBJECT", "FAILURES", "LOCKED UNTIL"];
    fn row(&self) -> Vec<String> {
        vec![
            self.scope.clone(),
            self.subject.clone(),
            self.failures.to_string(),
            time(&self.locked_until),
        ]
    }
}

impl Tabular for ApiKey {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "ACCOUNT",
        "ROLE CAP",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "REVOKED",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.account.clone(),
            opt(self.role_cap.map(|r| r.as_str())),
            time(&self.created_at),
            opt_time(self.expires_at.as_deref()),
            opt_time(self.last_used_at.as_deref()),
            opt_time(self.revoked_at.as_deref()),
        ]
    }
}

impl Tabular for AuditEvent {
    const HEADERS: &'static [&'static str] = &["TIME", "ACTOR", "ON BEHALF OF", "SOURCE", "ACTION", "TARGET", "RESULT"];
    fn row(&self) -> Vec<String> {
        vec![
            time(&self.time),
            opt(self.actor.as_deref()),
            opt(self.on_behalf_of.as_deref()),
            opt(Some(&self.source_ip)),
            self.action.clone(),
            opt(Some(&self.target)),
            self.result.clone(),
        ]
    }
}

impl Tabular for WhoAmI {
    const HEADERS: &'static [&'static str] = &[
        "TENANT",
        "ACCOUNT",
        "ROLE",
        "OPERATOR",
        "CREDENTIAL",
        "MFA",
        "PERMISSIONS",
    ];
    fn row(&self) -> Vec<String> {
        let credential = match (&self.credential, &self.api_key_id) {
            (ward_api::CredentialKind::ApiKey, Some(id)) => format!("api_key {id}"),
            (ward_api::CredentialKind::ApiKey, None) => "api_key".to_owned(),
            (ward_api::CredentialKind::Session, _) => "session".to_owned(),
        };
        vec![
            self.tenant.clone(),
            self.account.clone(),
            self.role.to_string(),
            if self.operator { "yes" } else { "no" }.to_owned(),
            credential,
            match (self.mfa_enabled, self.mfa_enrollment_required) {
                (true, _) => "on".to_owned(),
                (false, true) => "off (required: enrol with `ward ctl mfa enable`)".to_owned(),
                (false, false) => "off".to_owned(),
            },
            if self.permissions.is_empty() {
                "-".to_owned()
            } else {
                self.permissions.join(",")
            },
        ]
    }
}

impl Tabular for ward_api::User {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "GROUPS",
        "DISABLED",
        "PASSWORD",
        "MFA",
        "LOCKED UNTIL",
        "CREATED",
        "ATTRIBUTES",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            dash_if_empty(self.groups.join(",")),
            if self.disabled { "yes" } else { "no" }.to_owned(),
            if self.has_password { "yes" } else { "no" }.to_owned(),
            if self.mfa_enabled { "yes" } else { "no" }.to_owned(),
            opt_time(self.locked_until.as_deref()),
            time(&self.created_at),
            dash_if_empty(
                self.attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }
}

impl Tabular for ward_api::Group {
    const HEADERS: &'static [&'static str] = &["NAME", "MEMBERS", "CREATED", "CONDITIONS"];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            dash_if_empty(self.members.join(",")),
            time(&self.created_at),
            dash_if_empty(self.conditions.join(" AND ")),
        ]
    }
}

impl Tabular for ward_api::Application {
    const HEADERS: &'static [&'static str] = &["NAME", "ADDRESSES", "PORTS", "PROTOCOL", "TAGS", "PUBLIC HOST"];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.addresses.join(","),
            self.ports.join(","),
            self.protocol.clone(),
            dash_if_empty(self.tags.join(",")),
            match &self.public_host {
                Some(h) => format!("https://{h} ({})", self.upstream_scheme),
                None => "-".into(),
            },
        ]
    }
}

impl Tabular for ward_api::Rule {
    const HEADERS: &'static [&'static str] = &[
        "PRIORITY", "ACTION", "COVERS", "WHO", "DEVICE", "VALID", "SOURCES", "ENABLED", "ID",
    ];
    fn row(&self) -> Vec<String> {
        let covers = if self.tags.is_empty() {
            self.apps.join(",")
        } else {
            self.tags
                .iter()
                .map(|t| format!("tag:{t}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let who: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("user:{u}"))
            .chain(self.groups.iter().map(|g| format!("group:{g}")))
            .collect();
        let mut device = match (self.require_compliant_device, self.posture.as_str()) {
            (false, _) => "-".to_owned(),
            (true, "observe") => "compliant (observe)".to_owned(),
            (true, _) => "compliant".to_owned(),
        };
        if self.agentless {
            device = if device == "-" {
                "agentless".into()
            } else {
                format!("{device}, agentless")
            };
        }
        let valid = match (&self.valid_from, &self.valid_until) {
            (None, None) => "-".to_owned(),
            (from, until) => format!(
                "{}..{}",
                from.as_deref().map(time).unwrap_or_default(),
                until.as_deref().map(time).unwrap_or_default()
            ),
        };
        vec![
            self.priority.to_string(),
            self.action.clone(),
            covers,
            if who.is_empty() {
                "everyone".to_owned()
            } else {
                who.join(",")
            },
            device,
            valid,
            if self.sources.is_empty() {
                "any".to_owned()
            } else {
                self.sources.join(",")
            },
            if self.enabled { "yes" } else { "no" }.to_owned(),
            self.id.clone(),
        ]
    }
}

impl Tabular for ward_api::RuleTestResult {
    const HEADERS: &'static [&'static str] = &["DECISION", "RULE", "PRIORITY", "REASON", "APPLICATIONS"];
    fn row(&self) -> Vec<String> {
        vec![
            self.decision.clone(),
            self.rule.as_ref().map(|r| r.id.clone()).unwrap_or_else(|| "-".into()),
            self.rule
                .as_ref()
                .map(|r| r.priority.to_string())
                .unwrap_or_else(|| "-".into()),
            self.reason.clone(),
            dash_if_empty(self.applications.join(",")),
        ]
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

impl Tabular for ward_api::Device {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "USER",
        "STATE",
        "COMPLIANT",
        "OS",
        "CERT EXPIRES",
        "LAST SEEN",
    ];
    fn row(&self) -> Vec<String> {
        let compliant = if self.compliant {
            "yes".to_owned()
        } else if self.compliance_failures.is_empty() {
            "no".to_owned()
        } else {
            format!("no: {}", self.compliance_failures.join("; "))
        };
        vec![
            self.id.clone(),
            self.name.clone(),
            self.user.clone(),
            self.state.clone(),
            compliant,
            format!("{} {}", self.posture.os, self.posture.os_version)
                .trim()
                .to_owned(),
            time(&self.cert_expires_at),
            time(&self.last_seen_at),
        ]
    }
}

impl Tabular for ward_api::PostureRequirements {
    const HEADERS: &'static [&'static str] = &["DISK ENCRYPTION", "FIREWALL", "SCREEN LOCK", "OS", "MIN AGENT VERSION"];
    fn row(&self) -> Vec<String> {
        let yes_no = |b: bool| if b { "required" } else { "-" }.to_owned();
        vec![
            yes_no(self.disk_encryption),
            yes_no(self.firewall),
            yes_no(self.screen_lock),
            dash_if_empty(self.os.join(",")),
            self.min_agent_version.clone().unwrap_or_else(|| "-".into()),
        ]
    }
}

impl Tabular for ward_api::AccessLogEntry {
    const HEADERS: &'static [&'static str] = &[
        "TIME",
        "USER",
        "DEVICE",
        "SOURCE",
        "DESTINATION",
        "ACTION",
        "RULE",
        "REASON",
        "UP",
        "DOWN",
        "END",
    ];
    fn row(&self) -> Vec<String> {
        let destination = match (&self.method, &self.path, self.status) {
            (Some(m), Some(p), status) => format!(
                "{m} https://{}{p} {}",
                self.dest_host,
                status.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
            ),
            _ => format!("{}:{}", self.dest_host, self.port),
        };
        vec![
            time(&self.time),
            self.user.clone(),
            if self.device_id.is_empty() {
                "(browser)".into()
            } else {
                self.device_id.clone()
            },
            self.source.clone(),
            destination,
            self.action.clone(),
            self.rule_id.clone().unwrap_or_else(|| "-".into()),
            self.reason.clone(),
            self.bytes_up.to_string(),
            self.bytes_down.to_string(),
            self.end.clone(),
        ]
    }
}

impl Tabular for ward_api::Gateway {
    const HEADERS: &'static [&'static str] = &[
        "NAME",
        "ADDRESSES",
        "CERT EXPIRES",
        "LAST SEEN",
        "LAST REPORT",
        "TUNNELS",
        "CONNECTIONS",
        "ID",
    ];
    fn row(&self) -> Vec<String> {
        let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        vec![
            self.name.clone(),
            self.addresses.join(","),
            time(&self.cert_expires_at),
            time(&self.last_seen_at),
            self.last_report_at.as_deref().map(time).unwrap_or_else(|| "-".into()),
            n(self.tunnels_open),
            n(self.connections_open),
            self.id.clone(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ward_api::{Page, Role};

    fn account(name: &str, role: Role) -> Account {
        Account {
            id: format!("01J{name}"),
            name: name.to_owned(),
            role,
            created_at: "2026-03-01T10:00:00.123Z".to_owned(),
            created_by: None,
            last_login_at: None,
            failed_logins: 0,
            locked_until: None,
            mfa_enabled: name == "bob",
        }
    }

    #[test]
    fn renders_a_page_of_accounts_as_a_plain_table() {
        let mut bob = account("bob", Role::Auditor);
        bob.created_by = Some("admin".to_owned());
        bob.last_login_at = Some("2026-03-02T08:30:00Z".to_owned());
        bob.failed_logins = 3;
        bob.locked_until = Some("2026-03-02T09:00:00.5+00:00".to_owned());
        let page = Page {
            items: vec![account("admin", Role::Owner), bob],
            next_cursor: Some("c1".to_owned()),
        };
        let text = render_table(&page.items);
        let expected = "\
NAME    ROLE      CREATED                CREATED BY   LAST LOGIN             FAILED LOGINS   LOCKED UNTIL                MFA
admin   owner     2026-03-01T10:00:00Z   -            -                      0               -                           off
bob     auditor   2026-03-01T10:00:00Z   admin        2026-03-02T08:30:00Z   3               2026-03-02T09:00:00+00:00   on
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_list_is_just_the_header() {
        let text = render_table::<Lockout>(&[]);
        assert_eq!(text, "SCOPE   SUBJECT   FAILURES   LOCKED UNTIL\n");
    }

    #[test]
    fn json_lists_are_arrays() {
        let mut out = Vec::new();
        list(&mut out, OutputFormat::Json, &[account("admin", Role::Owner)]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["name"], "admin");
        assert_eq!(v[0]["created_at"], "2026-03-01T10:00:00.123Z");
        let mut out = Vec::new();
        show(&mut out, OutputFormat::Json, &account("admin", Role::Owner)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["role"], "owner");
    }

    #[test]
    fn cells_stay_on_one_line() {
        let text = table(&["A", "B"], [vec!["x\ny".to_owned(), "z".to_owned()]]);
        assert_eq!(text, "A     B\nx y   z\n");
    }

    #[test]
    fn times_drop_fractions() {
        assert_eq!(time("2026-03-01T10:00:00.123Z"), "2026-03-01T10:00:00Z");
        assert_eq!(time("2026-03-01T10:00:00.123456+02:00"), "2026-03-01T10:00:00+02:00");
        assert_eq!(time("2026-03-01T10:00:00Z"), "2026-03-01T10:00:00Z");
        assert_eq!(time("not a time"), "not a time");
    }
}
