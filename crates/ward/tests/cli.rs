//! End-to-end tests of the `ward` binary: `ward server` and `ward ctl` run
//! as subprocesses, talking over loopback.
//!
//! Every scenario runs on SQLite (`sqlite_*`) and again on PostgreSQL
//! (`postgres_*`) when `WARD_TEST_POSTGRES` names a server, e.g.
//! `WARD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres cargo test -p ward`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    free_port, http_get, http_status, is_listening, items, names, raw_http_get, run_ward, Ctl, Db, Server, ServerSpec,
    PASSWORD,
};
use serde_json::Value;

/// Defines `$sqlite` (always) and `$postgres` (skipped unless
/// `WARD_TEST_POSTGRES` is set) running `$scenario`.
macro_rules! on_both_backends {
    ($(#[$attr:meta])* $scenario:ident, $sqlite:ident, $postgres:ident) => {
        #[test]
        $(#[$attr])*
        fn $sqlite() {
            $scenario(&Db::sqlite());
        }

        #[test]
        $(#[$attr])*
        fn $postgres() {
            let Some(db) = Db::postgres() else {
                eprintln!(
                    "skipped {}: set WARD_TEST_POSTGRES to a PostgreSQL server URL to run it",
                    stringify!($postgres)
                );
                return;
            };
            $scenario(&db);
        }
    };
}

on_both_backends!(
    bootstrap_and_delegation,
    sqlite_bootstrap_and_delegation,
    postgres_bootstrap_and_delegation
);
on_both_backends!(
    operator_and_tenants,
    sqlite_operator_and_tenants,
    postgres_operator_and_tenants
);
on_both_backends!(api_keys, sqlite_api_keys, postgres_api_keys);
on_both_backends!(
    data_survives_restart,
    sqlite_data_survives_restart,
    postgres_data_survives_restart
);
on_both_backends!(lockout, sqlite_lockout, postgres_lockout);
on_both_backends!(config_precedence, sqlite_config_precedence, postgres_config_precedence);
on_both_backends!(https_own_ca, sqlite_https_own_ca, postgres_https_own_ca);
on_both_backends!(misc_cli, sqlite_misc_cli, postgres_misc_cli);
on_both_backends!(
    malformed_config_file,
    sqlite_malformed_config_file,
    postgres_malformed_config_file
);

const AUDITOR_PW: &str = "Auditor-pass-word-1";
const OTHER_PW: &str = "Another-pass-word-2";

/// Stops the server with SIGTERM and checks it shut down cleanly.
fn finish(mut server: Server) {
    let (status, took) = server.stop();
    assert!(
        status.success(),
        "ward server exited with {status} after SIGTERM; stderr:\n{}",
        server.stderr()
    );
    assert!(took < Duration::from_secs(10), "graceful shutdown took {took:?}");
    let stderr = server.stderr();
    assert!(!stderr.contains("panicked"), "the server panicked:\n{stderr}");
    assert!(!stderr.contains("ERROR"), "the server logged errors:\n{stderr}");
}

/// `["--profile", p, args...]`.
fn with_profile<'a>(profile: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--profile", profile];
    v.extend_from_slice(args);
    v
}

/// The one item of a JSON list matching `pred`.
#[track_caller]
fn find<'a>(list: &'a Value, what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = items(list).iter().filter(|e| pred(e)).collect();
    assert_eq!(found.len(), 1, "expected one {what} in {list:#}");
    found[0]
}

/// The strings of a JSON array.
#[track_caller]
fn strings(v: &Value) -> Vec<&str> {
    items(v).iter().map(|p| p.as_str().unwrap()).collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The value of a Prometheus sample line `name value`.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---- 1. bootstrap and delegation ---------------------------------------------

fn bootstrap_and_delegation(db: &Db) {
    let server = ServerSpec::new(db).start();
    let url = server.url().to_owned();

    let banner = server.stdout();
    assert!(banner.contains("Ward is running."), "{banner}");
    assert!(banner.contains(&format!("{url}/")), "{banner}");
    assert!(banner.contains("First start"), "{banner}");
    assert!(banner.contains("(from WARD_BOOTSTRAP_PASSWORD)"), "{banner}");
    assert!(
        !banner.contains(PASSWORD),
        "the bootstrap password must not be echoed: {banner}"
    );
    assert!(
        banner.contains(&format!(
            "ward ctl --server {url} login --tenant default --user admin --password-stdin"
        )),
        "{banner}"
    );
    // The data directory is private; it holds SQLite and the master key it
    // made (with PostgreSQL the servers here share WARD_MASTER_KEY instead).
    #[cfg(unix)]
    {
        assert_eq!(mode(server.data_dir()), 0o700);
        if db.url.is_none() {
            assert_eq!(mode(&server.data_dir().join("master.key")), 0o600);
        }
    }
    assert_eq!(server.data_dir().join("ward.db").is_file(), db.url.is_none());

    let ctl = Ctl::new();
    let admin = |args: &[&str], stdin: Option<&str>| ctl.run(&with_profile("admin", args), stdin);
    let aud = |args: &[&str], stdin: Option<&str>| ctl.run(&with_profile("aud", args), stdin);

    // A wrong password: one line, and no profile saved.
    ctl.login(&url, "admin", "default", "admin", "not-the-password-at-all")
        .fails_with(&["invalid_credentials"]);
    assert!(!ctl.config_file().exists());

    // The "done when".
    let out = ctl.login(&url, "admin", "default", "admin", PASSWORD);
    out.ok();
    assert!(
        out.stdout.contains("as admin (tenant default, role owner)"),
        "{}",
        out.stdout
    );
    let config = std::fs::read_to_string(ctl.config_file()).unwrap();
    assert!(config.contains("[profiles.admin]"), "{config}");
    assert!(config.contains(&format!("server = \"{url}\"")), "{config}");
    #[cfg(unix)]
    assert_eq!(mode(&ctl.config_file()), 0o600, "the config file holds tokens");

    let out = admin(
        &["account", "create", "auditor1", "--role", "auditor", "--password-stdin"],
        Some(&format!("{AUDITOR_PW}\n")),
    );
    out.ok();
    assert!(out.stdout.contains("auditor1"), "{}", out.stdout);
    let acc = admin(&["account", "show", "auditor1", "-o", "json"], None).json();
    assert_eq!(acc["name"], "auditor1");
    assert_eq!(acc["role"], "auditor");
    assert_eq!(acc["created_by"], "admin");

    // The auditor, in a second profile of the same config file.
    let out = ctl.login(&url, "aud", "default", "auditor1", AUDITOR_PW);
    out.ok();
    assert!(out.stdout.contains("role auditor"), "{}", out.stdout);
    let me = aud(&["whoami", "-o", "json"], None).json();
    assert_eq!(me["account"], "auditor1");
    assert_eq!(me["role"], "auditor");
    assert_eq!(me["credential"], "session");
    let perms = strings(&me["permissions"]);
    assert!(perms.contains(&"audit.read"), "{perms:?}");
    assert!(perms.contains(&"accounts.read"), "{perms:?}");
    assert!(!perms.contains(&"accounts.manage"), "{perms:?}");

    let trail = aud(&["audit", "list", "-o", "json"], None).json();
    assert!(!items(&trail).is_empty());
    assert!(items(&trail).iter().all(|e| e["tenant"] == "default"));
    // Reading is allowed, managing is not.
    aud(&["account", "list"], None).ok();
    let line = aud(
        &["account", "create", "x", "--role", "helpdesk", "--password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .error_line()
    .to_owned();
    assert!(line.contains("forbidden") || line.contains("permission"), "{line}");
    aud(&["account", "delete", "admin"], None).fails_with(&["forbidden"]);
    let accounts = admin(&["account", "list", "-o", "json"], None).json();
    assert_eq!(names(&accounts), ["admin", "auditor1"]);

    // The admin's delegation, in the trail.
    let by_admin = admin(&["audit", "list", "--actor", "admin", "-o", "json"], None).json();
    assert!(items(&by_admin).iter().all(|e| e["actor"] == "admin"));
    let created = find(&by_admin, "account.create of auditor1", |e| {
        e["action"] == "account.create" && e["target"] == "account:auditor1"
    });
    assert_eq!(created["result"], "ok");
    assert_eq!(created["status"], 201);
    assert_eq!(created["actor"], "admin");
    assert_eq!(created["actor_role"], "owner");
    assert_eq!(created["on_behalf_of"], "admin");
    assert_eq!(created["source_ip"], "127.0.0.1");
    assert_eq!(created["tenant"], "default");

    // The auditor's refused attempt, acting for the tenant's owner.
    let by_aud = admin(&["audit", "list", "--actor", "auditor1", "-o", "json"], None).json();
    assert!(items(&by_aud).iter().all(|e| e["actor"] == "auditor1"));
    let denied = find(&by_aud, "refused account.create", |e| e["action"] == "account.create");
    assert_eq!(denied["result"], "denied");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["target"], "account:x");
    assert_eq!(denied["actor_role"], "auditor");
    assert_eq!(denied["on_behalf_of"], "admin");
    assert!(
        denied["detail"].as_str().unwrap().contains("accounts.manage"),
        "{denied}"
    );
    let login = find(&by_aud, "the auditor's sign-in", |e| e["action"] == "auth.login");
    assert_eq!(login["result"], "ok");
    assert_eq!(login["target"], "account:auditor1");

    // Filters: result, action, limit (newest first), since.
    let refused = admin(&["audit", "list", "--result", "denied", "-o", "json"], None).json();
    assert!(!items(&refused).is_empty());
    assert!(items(&refused).iter().all(|e| e["result"] == "denied"));
    let newest = admin(
        &[
            "audit",
            "list",
            "--action",
            "account.create",
            "--limit",
            "1",
            "-o",
            "json",
        ],
        None,
    )
    .json();
    assert_eq!(items(&newest).len(), 1);
    assert_eq!(newest[0]["target"], "account:x");
    let table = admin(&["audit", "list", "--since", "1h"], None);
    table.ok();
    assert!(table.stdout.starts_with("TIME"), "{}", table.stdout);
    assert!(table.stdout.contains("account:auditor1"), "{}", table.stdout);
    let usage = admin(&["audit", "list", "--since", "yesterday"], None);
    assert_eq!(usage.code, Some(2), "a bad duration is a usage error: {usage:?}");

    // A role change is recorded with what changed.
    let promoted = admin(&["account", "set-role", "auditor1", "admin", "-o", "json"], None).json();
    assert_eq!(promoted["role"], "admin");
    let changes = admin(&["audit", "list", "--action", "account.set_role", "-o", "json"], None).json();
    let change = find(&changes, "the role change", |e| e["target"] == "account:auditor1");
    let detail = change["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("auditor") && detail.contains("admin"), "{change}");
    // The session picks up the new role at once.
    let me = aud(&["whoami", "-o", "json"], None).json();
    assert_eq!(me["role"], "admin");
    assert!(strings(&me["permissions"]).contains(&"accounts.manage"));
    // ...but still may not touch the owner or itself.
    aud(&["account", "delete", "admin"], None).fails_with(&["forbidden"]);
    aud(&["account", "set-role", "auditor1", "helpdesk"], None).fails_with(&["forbidden"]);
    aud(
        &["account", "create", "boss", "--role", "owner", "--password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["forbidden"]);

    finish(server);
}

// ---- 2. operator and tenants -------------------------------------------------

fn operator_and_tenants(db: &Db) {
    let server = ServerSpec::new(db).arg("--regions").arg("local,eu-1").start();
    let url = server.url().to_owned();
    let ctl = Ctl::new();
    let op = |args: &[&str], stdin: Option<&str>| ctl.run(&with_profile("op", args), stdin);
    let owner = |args: &[&str], stdin: Option<&str>| ctl.run(&with_profile("owner", args), stdin);
    let acme = |args: &[&str], stdin: Option<&str>| ctl.run(&with_profile("acme", args), stdin);

    ctl.login(&url, "op", "system", "operator", PASSWORD).ok();
    let me = op(&["whoami", "-o", "json"], None).json();
    assert_eq!(me["tenant"], "system");
    assert_eq!(me["account"], "operator");
    assert_eq!(me["operator"], true);

    // The default tenant's owner, with an account of its own.
    ctl.login(&url, "owner", "default", "admin", PASSWORD).ok();
    owner(
        &["account", "create", "alice", "--role", "admin", "--password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .ok();

    // Create tenants: default region, an offered region, an unknown one.
    let acme_pw = "Acme-owner-pass-1";
    let t = op(
        &["tenant", "create", "acme", "--owner-password-stdin", "-o", "json"],
        Some(&format!("{acme_pw}\n")),
    )
    .json();
    assert_eq!(t["name"], "acme");
    assert_eq!(t["region"], "local");
    assert_eq!(t["state"], "active");
    assert!(t["id"].as_str().unwrap().starts_with("ten_"), "{t}");
    let t = op(
        &[
            "tenant",
            "create",
            "beta",
            "--region",
            "eu-1",
            "--owner-password-stdin",
            "-o",
            "json",
        ],
        Some(&format!("{OTHER_PW}\n")),
    )
    .json();
    assert_eq!(t["region"], "eu-1");
    op(
        &[
            "tenant",
            "create",
            "gamma",
            "--region",
            "nope",
            "--owner-password-stdin",
        ],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["nope", "invalid_field"]);
    op(
        &["tenant", "create", "acme", "--owner-password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["conflict"]);
    op(
        &["tenant", "create", "system", "--owner-password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["invalid_field"]);
    op(
        &["tenant", "create", "Bad", "--owner-password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["invalid_field"]);
    op(
        &["tenant", "create", "delta", "--owner-password-stdin"],
        Some("123456789\n"),
    )
    .fails_with(&["10"]);
    op(&["tenant", "create", "delta"], None).fails_with(&["--owner-password-stdin"]);
    op(&["tenant", "suspend", "system"], None).error_line();

    let mut tenants = names(&op(&["tenant", "list", "-o", "json"], None).json());
    tenants.sort();
    assert_eq!(tenants, ["acme", "beta", "default", "system"]);
    // Global flags may follow the command.
    let shown = ctl
        .run(&["tenant", "show", "acme", "--profile", "op", "-o", "json"], None)
        .json();
    assert_eq!(shown["name"], "acme");
    op(&["tenant", "show", "gamma"], None).fails_with(&["not_found"]);
    // Operators see their own accounts only.
    assert_eq!(
        names(&op(&["account", "list", "-o", "json"], None).json()),
        ["operator"]
    );

    // The new tenant's owner, and tenant isolation.
    let out = ctl.login(&url, "acme", "acme", "admin", acme_pw);
    out.ok();
    assert!(out.stdout.contains("(tenant acme, role owner)"), "{}", out.stdout);
    let accounts = acme(&["account", "list", "-o", "json"], None).json();
    assert_eq!(names(&accounts), ["admin"]);
    assert_eq!(accounts[0]["role"], "owner");
    assert_eq!(accounts[0]["created_by"], "operator");
    acme(&["account", "show", "alice"], None).fails_with(&["not_found"]);
    acme(&["account", "unlock", "alice"], None).fails_with(&["not_found"]);
    let trail = acme(&["audit", "list", "-o", "json"], None).json();
    assert!(items(&trail).iter().all(|e| e["tenant"] == "acme"), "{trail:#}");
    assert!(!items(&trail).iter().any(|e| e["actor"] == "alice"), "{trail:#}");
    // The default tenant's owner password is not acme's.
    ctl.login(&url, "x", "acme", "admin", PASSWORD)
        .fails_with(&["invalid_credentials"]);

    // Suspend: sessions and sign-ins of the tenant are refused.
    let t = op(&["tenant", "suspend", "acme", "-o", "json"], None).json();
    assert_eq!(t["state"], "suspended");
    acme(&["account", "list"], None).fails_with(&["tenant_suspended"]);
    acme(&["whoami"], None).fails_with(&["tenant_suspended"]);
    ctl.login(&url, "acme2", "acme", "admin", acme_pw)
        .fails_with(&["tenant_suspended"]);
    // A wrong password still reads as a wrong password.
    ctl.login(&url, "acme2", "acme", "admin", OTHER_PW)
        .fails_with(&["invalid_credentials"]);
    owner(&["account", "list"], None).ok();
    let t = op(&["tenant", "list", "-o", "json"], None).json();
    assert_eq!(find(&t, "acme", |t| t["name"] == "acme")["state"], "suspended");
    assert_eq!(find(&t, "beta", |t| t["name"] == "beta")["state"], "active");

    let t = op(&["tenant", "resume", "acme", "-o", "json"], None).json();
    assert_eq!(t["state"], "active");
    // The session of before the suspension works again.
    acme(&["account", "list"], None).ok();
    ctl.login(&url, "acme2", "acme", "admin", acme_pw).ok();

    // The refusals are in acme's own trail, under its owner's name.
    let refused = acme(&["audit", "list", "--result", "denied", "-o", "json"], None).json();
    assert!(items(&refused).iter().all(|e| e["tenant"] == "acme"));
    let list = find(&refused, "the refused account list", |e| e["action"] == "account.list");
    assert_eq!(list["actor"], "admin");
    assert_eq!(list["status"], 403);
    let logins: Vec<&Value> = items(&refused)
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["status"] == 403)
        .collect();
    assert_eq!(logins.len(), 1, "{refused:#}");
    assert_eq!(logins[0]["actor"], "admin");

    // Tenants are the operator's business.
    owner(&["tenant", "list"], None).fails_with(&["forbidden"]);
    owner(&["tenant", "suspend", "acme"], None).fails_with(&["forbidden"]);
    owner(
        &["tenant", "create", "evil", "--owner-password-stdin"],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["forbidden"]);
    acme(&["tenant", "list", "-o", "json"], None).fails_with(&["forbidden"]);
    let state = op(&["tenant", "show", "acme", "-o", "json"], None).json();
    assert_eq!(state["state"], "active");

    // The operator's trail: who created and suspended what.
    let by_op = op(&["audit", "list", "--actor", "operator", "-o", "json"], None).json();
    assert!(items(&by_op).iter().all(|e| e["tenant"] == "system"));
    let created = find(&by_op, "tenant.create of acme", |e| {
        e["action"] == "tenant.create" && e["target"] == "tenant:acme" && e["result"] == "ok"
    });
    assert_eq!(created["status"], 201);
    assert_eq!(created["on_behalf_of"], "operator");
    find(&by_op, "the duplicate acme", |e| {
        e["target"] == "tenant:acme" && e["action"] == "tenant.create" && e["result"] == "failed"
    });
    let gamma = find(&by_op, "tenant gamma", |e| e["target"] == "tenant:gamma");
    assert_eq!(gamma["result"], "failed");
    assert_eq!(gamma["status"], 400);
    let suspended = find(&by_op, "the suspension", |e| {
        e["action"] == "tenant.update" && e["target"] == "tenant:acme" && e["result"] == "ok" && {
            e["detail"].as_str().unwrap_or_default().contains("-> suspended")
        }
    });
    assert_eq!(suspended["detail"], "state active -> suspended");
    find(&by_op, "the resumption", |e| {
        e["action"] == "tenant.update" && e["detail"] == "state suspended -> active"
    });
    // The owners' refused tenant calls are in default's trail, not the operator's.
    let system_trail = op(&["audit", "list", "-o", "json"], None).json();
    assert!(!items(&system_trail).iter().any(|e| e["target"] == "tenant:evil"));
    assert!(items(&system_trail).iter().all(|e| e["tenant"] == "system"));
    let by_owner = owner(&["audit", "list", "--result", "denied", "-o", "json"], None).json();
    let evil = find(&by_owner, "tenant evil", |e| e["action"] == "tenant.create");
    assert_eq!(evil["tenant"], "default");

    finish(server);
}

// ---- 3. API keys -------------------------------------------------------------

fn api_keys(db: &Db) {
    let server = ServerSpec::new(db).start();
    let url = server.url().to_owned();
    let ctl = Ctl::new();
    ctl.login(&url, "default", "default", "admin", PASSWORD).ok();

    let created = ctl
        .run(&["apikey", "create", "ci", "--role", "auditor", "-o", "json"], None)
        .json();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("wk_{id}_")), "{token}");
    assert_eq!(created["key"]["name"], "ci");
    assert_eq!(created["key"]["account"], "admin");
    assert_eq!(created["key"]["role_cap"], "auditor");
    assert!(created["key"].get("last_used_at").is_none());
    assert!(created["key"].get("expires_at").is_none());

    // The token alone: no profile, the server from WARD_SERVER.
    let by_key = Ctl::new().with_env("WARD_TOKEN", &token).with_env("WARD_SERVER", &url);
    let me = by_key.run(&["whoami", "-o", "json"], None).json();
    assert_eq!(me["credential"], "api_key");
    assert_eq!(me["api_key_id"], id.as_str());
    assert_eq!(me["account"], "admin");
    assert_eq!(me["tenant"], "default");
    let perms = strings(&me["permissions"]);
    assert!(perms.contains(&"audit.read"), "{perms:?}");
    assert!(!perms.contains(&"accounts.manage"), "capped at auditor: {perms:?}");
    assert!(!perms.contains(&"billing"), "capped at auditor: {perms:?}");
    by_key.run(&["audit", "list", "-o", "json"], None).json();
    by_key.run(&["account", "list", "-o", "json"], None).json();
    let line = by_key
        .run(
            &["account", "create", "y", "--role", "helpdesk", "--password-stdin"],
            Some(&format!("{OTHER_PW}\n")),
        )
        .error_line()
        .to_owned();
    assert!(line.contains("forbidden") || line.contains("permission"), "{line}");
    // A capped key may not manage its account's credentials.
    by_key
        .run(&["apikey", "create", "more"], None)
        .fails_with(&["forbidden"]);
    by_key.run(&["apikey", "list"], None).fails_with(&["forbidden"]);
    by_key.run(&["apikey", "revoke", &id], None).fails_with(&["forbidden"]);
    by_key
        .run(
            &["account", "passwd", "--password-stdin"],
            Some(&format!("{PASSWORD}\n{OTHER_PW}\n")),
        )
        .fails_with(&["forbidden"]);
    // The key was not revoked by the refused attempt.
    by_key.run(&["whoami"], None).ok();

    // Last use is tracked.
    let keys = ctl.run(&["apikey", "list", "-o", "json"], None).json();
    let key = find(&keys, "the key", |k| k["id"] == id.as_str());
    assert!(key["last_used_at"].is_string(), "{key}");
    assert!(key.get("revoked_at").is_none(), "{key}");
    let table = ctl.run(&["apikey", "list"], None);
    table.ok();
    assert!(table.stdout.contains("LAST USED"), "{}", table.stdout);
    assert!(table.stdout.contains(&id), "{}", table.stdout);

    // The refused attempt is in the trail, with the key.
    let refused = ctl
        .run(
            &["audit", "list", "--actor", "admin", "--result", "denied", "-o", "json"],
            None,
        )
        .json();
    let ev = find(&refused, "refused account.create", |e| e["action"] == "account.create");
    assert_eq!(ev["api_key_id"], id.as_str());
    assert_eq!(ev["target"], "account:y");

    // An uncapped key with an expiry, in table output; used with --token.
    let out = ctl.run(&["apikey", "create", "tmp", "--expires-in", "1h"], None);
    out.ok();
    assert!(out.stdout.contains("API key tmp created"), "{}", out.stdout);
    assert!(out.stdout.contains("expires"), "{}", out.stdout);
    let tmp_token = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Token: "))
        .unwrap_or_else(|| panic!("no token in {}", out.stdout))
        .trim()
        .to_owned();
    assert!(tmp_token.starts_with("wk_"), "{tmp_token}");
    let me = Ctl::new()
        .run(&["--server", &url, "--token", &tmp_token, "whoami", "-o", "json"], None)
        .json();
    assert_eq!(me["credential"], "api_key");
    assert!(strings(&me["permissions"]).contains(&"accounts.manage"));
    ctl.run(&["apikey", "create", "forever", "--expires-in", "3660d"], None)
        .fails_with(&["ten years"]);
    ctl.run(&["apikey", "create", "Bad Name"], None)
        .fails_with(&["invalid_field"]);

    // Revoke.
    let out = ctl.run(&["apikey", "revoke", &id], None);
    out.ok();
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    let keys = ctl.run(&["apikey", "list", "-o", "json"], None).json();
    let key = find(&keys, "the revoked key", |k| k["id"] == id.as_str());
    assert!(key["revoked_at"].is_string(), "{key}");
    assert_eq!(names(&keys), ["ci", "tmp"]);
    by_key.run(&["whoami"], None).fails_with(&["revoked"]);
    by_key.run(&["audit", "list"], None).fails_with(&["revoked"]);
    ctl.run(&["apikey", "revoke", "key_nonexistent"], None)
        .fails_with(&["not_found"]);

    // The refusal of the revoked key is in its tenant's trail, under its account.
    let refused = ctl
        .run(
            &[
                "audit",
                "list",
                "--actor",
                "admin",
                "--action",
                "auth.whoami",
                "-o",
                "json",
            ],
            None,
        )
        .json();
    let ev = find(&refused, "the revoked key's refusal", |e| e["result"] == "denied");
    assert_eq!(ev["tenant"], "default");
    assert_eq!(ev["status"], 401);
    assert!(ev["detail"].as_str().unwrap().contains("revoked"), "{ev}");
    assert_eq!(ev["api_key_id"], id.as_str(), "the event names the key used: {ev}");

    // Made-up tokens.
    for bogus in ["wk_key_bogus_0000", "ws_nonsense", "garbage"] {
        Ctl::new()
            .with_env("WARD_TOKEN", bogus)
            .with_env("WARD_SERVER", &url)
            .run(&["whoami"], None)
            .fails_with(&["HTTP 401"]);
    }

    finish(server);
}

// ---- 4. data survives a restart ----------------------------------------------

/// The password printed after `user NAME, password ` in the first banner.
fn banner_password(banner: &str, user: &str) -> String {
    let marker = format!("user {user}, password ");
    let line = banner
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no password for {user} in the banner:\n{banner}"));
    let pw = line.split(&marker).nth(1).unwrap().trim().to_owned();
    assert!(pw.len() >= 16, "a weak generated password: {pw:?}");
    pw
}

fn data_survives_restart(db: &Db) {
    // No WARD_BOOTSTRAP_PASSWORD: the first start makes up passwords and
    // shows them once. Every failed sign-in is slowed down, so one can be
    // in flight when the server is told to stop.
    let spec = ServerSpec::new(db).without_bootstrap_password();
    let config = spec.work_dir().join("ward.toml");
    std::fs::write(&config, "[login]\nslow_after = 0\n").unwrap();
    let mut spec = spec.arg("--config").arg(config.to_str().unwrap());
    let mut server = spec.start();
    let url = server.url().to_owned();
    let banner = server.stdout();
    assert!(banner.contains("shown only now"), "{banner}");
    let admin_pw = banner_password(&banner, "admin");
    let operator_pw = banner_password(&banner, "operator");
    assert_ne!(admin_pw, operator_pw);

    let ctl = Ctl::new();
    ctl.login(&url, "admin", "default", "admin", &admin_pw).ok();
    ctl.login(&url, "op", "system", "operator", &operator_pw).ok();
    ctl.run(
        &[
            "--profile",
            "admin",
            "account",
            "create",
            "keeper",
            "--role",
            "helpdesk",
            "--password-stdin",
        ],
        Some(&format!("{OTHER_PW}\n")),
    )
    .ok();

    // Graceful shutdown: a sign-in in flight (delayed 250 ms, then 500 ms,
    // then 1 s, then 2 s) is answered before the server exits.
    for _ in 0..3 {
        ctl.login(&url, "k", "default", "keeper", "wrong-pass-word-0")
            .fails_with(&["invalid_credentials"]);
    }
    let in_flight = {
        let ctl = ctl.clone();
        let url = url.clone();
        std::thread::spawn(move || ctl.login(&url, "k", "default", "keeper", "wrong-pass-word-0"))
    };
    // The failure is counted before the delay: wait until the server has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(server.port, "/metrics")
        .and_then(|m| metric(&m.body, "ward_logins_total{outcome=\"failure\"}"))
        .unwrap_or(0)
        < 4
    {
        assert!(Instant::now() < deadline, "the fourth sign-in never reached the server");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopping = server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!is_listening(server.port), "no new connections while draining");
    let (status, took) = server.wait_exit(stopping);
    let answer = in_flight.join().unwrap();
    answer.fails_with(&["invalid_credentials"]);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        took >= Duration::from_millis(500),
        "exited before the open request ended: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let stderr = server.stderr();
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("draining open connections"), "{stderr}");
    drop(server);

    // Same data directory, database and port; a bootstrap password in the
    // environment is ignored now.
    let mut spec = spec.env("WARD_BOOTSTRAP_PASSWORD", PASSWORD);
    let server = spec.start();
    assert_eq!(server.url(), url);
    let banner = server.stdout();
    assert!(banner.contains("Ward is running."), "{banner}");
    assert!(!banner.contains("First start"), "{banner}");
    assert!(!banner.contains(&admin_pw), "{banner}");
    assert!(!banner.contains(&operator_pw), "{banner}");
    assert!(!banner.contains("password "), "{banner}");
    assert!(
        banner.contains(&format!("Sign in: ward ctl --server {url} login")),
        "{banner}"
    );

    // The session of before the restart still works; so do the passwords.
    let accounts = ctl
        .run(&["--profile", "admin", "account", "list", "-o", "json"], None)
        .json();
    assert_eq!(names(&accounts), ["admin", "keeper"]);
    let keeper = find(&accounts, "keeper", |a| a["name"] == "keeper");
    assert_eq!(keeper["failed_logins"], 4, "failure counts are stored: {keeper}");
    ctl.login(&url, "keeper", "default", "keeper", OTHER_PW).ok();
    ctl.login(&url, "admin", "default", "admin", &admin_pw).ok();
    ctl.login(&url, "x", "default", "admin", PASSWORD)
        .fails_with(&["invalid_credentials"]);
    let tenants = ctl
        .run(&["--profile", "op", "tenant", "list", "-o", "json"], None)
        .json();
    assert_eq!(items(&tenants).len(), 2);
    // The trail too, with the in-flight sign-in of before the restart.
    let trail = ctl
        .run(
            &[
                "--profile",
                "admin",
                "audit",
                "list",
                "--action",
                "auth.login",
                "-o",
                "json",
            ],
            None,
        )
        .json();
    let keeper_failures = items(&trail)
        .iter()
        .filter(|e| e["target"] == "account:keeper" && e["result"] == "denied")
        .count();
    assert_eq!(keeper_failures, 4, "{trail:#}");

    finish(server);
}

// ---- 5. lock-out -------------------------------------------------------------

fn lockout(db: &Db) {
    let spec = ServerSpec::new(db);
    let config = spec.work_dir().join("ward.toml");
    std::fs::write(
        &config,
        "[login]\nslow_after = 100\nlock_after = 4\naddress_lock_after = 20\n",
    )
    .unwrap();
    let server = spec.arg("--config").arg(config.to_str().unwrap()).start();
    let url = server.url().to_owned();
    let ctl = Ctl::new();
    let admin = |args: &[&str]| ctl.run(&with_profile("admin", args), None);

    ctl.login(&url, "admin", "default", "admin", PASSWORD).ok();
    ctl.run(
        &[
            "--profile",
            "admin",
            "account",
            "create",
            "victim",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        Some(&format!("{OTHER_PW}\n")),
    )
    .ok();
    // An open session of the victim, from before the lock-out.
    ctl.login(&url, "v0", "default", "victim", OTHER_PW).ok();

    // Four wrong passwords lock the account; then even the right one is refused.
    for _ in 0..4 {
        ctl.login(&url, "v", "default", "victim", "wrong-pass-word-0")
            .fails_with(&["invalid_credentials"]);
    }
    ctl.login(&url, "v", "default", "victim", "wrong-pass-word-0")
        .fails_with(&["locked_out", "HTTP 429"]);
    ctl.login(&url, "v", "default", "victim", OTHER_PW)
        .fails_with(&["locked_out"]);
    // Only that account: the owner still signs in from the same address.
    ctl.login(&url, "admin", "default", "admin", PASSWORD).ok();
    // A lock-out does not end open sessions.
    ctl.run(&["--profile", "v0", "whoami"], None).ok();

    let locks = admin(&["lockout", "list", "-o", "json"]).json();
    let lock = find(&locks, "the victim's lock-out", |l| {
        l["scope"] == "account" && l["subject"] == "victim"
    });
    assert_eq!(lock["failures"], 4, "{lock}");
    assert!(lock["locked_until"].is_string(), "{lock}");
    let table = admin(&["lockout", "list"]);
    table.ok();
    assert!(table.stdout.starts_with("SCOPE"), "{}", table.stdout);
    assert!(table.stdout.contains("victim"), "{}", table.stdout);
    // The victim itself (an auditor) may read lock-outs, not lift them.
    ctl.run(&["--profile", "v0", "lockout", "list", "-o", "json"], None)
        .json();
    ctl.run(&["--profile", "v0", "account", "unlock", "victim"], None)
        .fails_with(&["forbidden"]);

    let accounts = admin(&["account", "list", "-o", "json"]).json();
    let victim = find(&accounts, "victim", |a| a["name"] == "victim");
    assert_eq!(victim["failed_logins"], 4, "{victim}");
    assert!(victim["locked_until"].is_string(), "{victim}");
    assert!(find(&accounts, "admin", |a| a["name"] == "admin")
        .get("locked_until")
        .is_none());
    let table = admin(&["account", "list"]);
    let row = table.stdout.lines().find(|l| l.starts_with("victim")).unwrap();
    assert!(row.contains(" 4 "), "{row}");

    // The attempts are in the trail, attributed to the account named.
    let trail = admin(&[
        "audit",
        "list",
        "--actor",
        "victim",
        "--action",
        "auth.login",
        "-o",
        "json",
    ])
    .json();
    let refused: Vec<&Value> = items(&trail).iter().filter(|e| e["result"] == "denied").collect();
    assert_eq!(refused.len(), 6, "{trail:#}");
    assert_eq!(refused.iter().filter(|e| e["status"] == 429).count(), 2, "{trail:#}");
    assert!(refused.iter().all(|e| e["target"] == "account:victim"));

    // And in the metrics.
    let metrics = http_get(server.port, "/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    let logins = |outcome: &str| metric(&metrics.body, &format!("ward_logins_total{{outcome=\"{outcome}\"}}"));
    assert_eq!(logins("failure"), Some(4), "{}", metrics.body);
    assert_eq!(logins("locked"), Some(2), "{}", metrics.body);
    assert!(logins("success").unwrap() >= 3, "{}", metrics.body);

    // Unlock.
    let unlocked = admin(&["account", "unlock", "victim", "-o", "json"]).json();
    assert!(unlocked.get("locked_until").is_none(), "{unlocked}");
    assert_eq!(unlocked["failed_logins"], 0);
    ctl.login(&url, "v", "default", "victim", OTHER_PW).ok();
    let locks = admin(&["lockout", "list", "-o", "json"]).json();
    assert!(!items(&locks).iter().any(|l| l["subject"] == "victim"), "{locks:#}");
    let unlocks = admin(&["audit", "list", "--action", "account.unlock", "-o", "json"]).json();
    let ev = find(&unlocks, "the unlock", |e| e["result"] == "ok");
    assert_eq!(ev["actor"], "admin");
    assert_eq!(ev["target"], "account:victim");

    // The owner, locked but with an open session, may unlock itself.
    for _ in 0..4 {
        ctl.login(&url, "a2", "default", "admin", "wrong-pass-word-0")
            .fails_with(&["invalid_credentials"]);
    }
    ctl.login(&url, "a2", "default", "admin", PASSWORD)
        .fails_with(&["locked_out"]);
    admin(&["account", "unlock", "admin"]).ok();
    ctl.login(&url, "admin", "default", "admin", PASSWORD).ok();

    // Too many failures from one address lock the address, for any account.
    // (8 wrong passwords so far, of 20.)
    let mut locked_after = None;
    for n in 1..=15 {
        let out = ctl.login(&url, "z", "default", &format!("nobody{n}"), "wrong-pass-word-0");
        if out.error_line().contains("locked_out") {
            locked_after = Some(n);
            break;
        }
        out.fails_with(&["invalid_credentials"]);
    }
    assert_eq!(locked_after, Some(13), "the 20th failure locks the address");
    let line = ctl
        .login(&url, "z", "default", "admin", PASSWORD)
        .fails_with(&["locked_out"])
        .to_owned();
    assert!(line.contains("address"), "{line}");
    let locks = admin(&["lockout", "list", "-o", "json"]).json();
    let lock = find(&locks, "the address lock-out", |l| l["scope"] == "address");
    assert_eq!(lock["subject"], "127.0.0.1");
    // Open sessions go on working.
    admin(&["whoami"]).ok();

    finish(server);
}

// ---- 6. configuration precedence ---------------------------------------------

fn config_precedence(db: &Db) {
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ward.toml");
    std::fs::write(&file, format!("listen = \"127.0.0.1:{p1}\"\n")).unwrap();
    let file_arg = file.to_str().unwrap().to_owned();

    // A bootstrap password that breaks the policy stops the first start.
    ServerSpec::new(db)
        .env("WARD_BOOTSTRAP_PASSWORD", "short")
        .run_to_exit()
        .server_fails_with(&["WARD_BOOTSTRAP_PASSWORD"]);

    // The flag beats the file; JSON logs on stderr. (The file's port is held
    // here, as below.)
    let hold = std::net::TcpListener::bind(("127.0.0.1", p1)).unwrap();
    let mut server = ServerSpec::new(db)
        .arg("--config")
        .arg(&file_arg)
        .arg("--log-format")
        .arg("json")
        .port(p2)
        .start();
    drop(hold);
    Ctl::new()
        .login(server.url(), "default", "default", "admin", PASSWORD)
        .ok();
    let (status, _) = server.stop();
    assert!(status.success(), "{}", server.stderr());
    let stderr = server.stderr();
    let mut messages = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        messages.push(v);
    }
    let listening = messages
        .iter()
        .find(|m| m["message"] == "ward server listening")
        .unwrap_or_else(|| panic!("no `listening` log line:\n{stderr}"));
    assert_eq!(listening["addr"], format!("127.0.0.1:{p2}"));
    assert!(messages.iter().any(|m| m["message"] == "shutting down"), "{stderr}");
    drop(server);

    // WARD_LISTEN beats the file; --log-level quietens the log. The file's
    // port is held here: a server that tried it could not start (and no
    // other test's listener can take it meanwhile).
    let hold = std::net::TcpListener::bind(("127.0.0.1", p1)).unwrap();
    let server = ServerSpec::new(db)
        .arg("--config")
        .arg(&file_arg)
        .arg("--log-level")
        .arg("warn")
        .without_listen_flag()
        .env("WARD_LISTEN", format!("127.0.0.1:{p3}"))
        .port(p3)
        .start();
    assert_eq!(http_status(p3, "/healthz"), Some(200));
    drop(hold);
    assert!(!server.stderr().contains("INFO"), "{}", server.stderr());
    let mut server = server;
    let (status, _) = server.stop();
    assert!(status.success());
    drop(server);

    // The flag beats WARD_LISTEN; the environment beats the file for other settings too.
    let p4 = free_port();
    let regions_file = dir.path().join("regions.toml");
    std::fs::write(&regions_file, "regions = [\"from-file\"]\nlog_format = \"json\"\n").unwrap();
    let server = ServerSpec::new(db)
        .arg("--config")
        .arg(regions_file.to_str().unwrap())
        .env("WARD_LISTEN", format!("127.0.0.1:{p1}"))
        .env("WARD_REGIONS", "from-env,other")
        .env("WARD_LOG_FORMAT", "human")
        .port(p4)
        .start();
    assert!(!is_listening(p1), "the environment's port must not be used");
    assert!(!server.stderr().trim_start().starts_with('{'), "{}", server.stderr());
    let ctl = Ctl::new();
    ctl.login(server.url(), "op", "system", "operator", PASSWORD).ok();
    let t = ctl
        .run(
            &["tenant", "create", "r1", "--owner-password-stdin", "-o", "json"],
            Some(&format!("{OTHER_PW}\n")),
        )
        .json();
    assert_eq!(t["region"], "from-env");
    ctl.run(
        &[
            "tenant",
            "create",
            "r2",
            "--region",
            "from-file",
            "--owner-password-stdin",
        ],
        Some(&format!("{OTHER_PW}\n")),
    )
    .fails_with(&["from-file"]);
    finish(server);

    // The file alone.
    let server = ServerSpec::new(db)
        .arg("--config")
        .arg(&file_arg)
        .without_listen_flag()
        .port(p1)
        .start();
    assert_eq!(http_status(p1, "/readyz"), Some(200));
    finish(server);

    // Bad files and values are refused, named, on one line.
    let bad = dir.path().join("bad.toml");
    let bad_arg = bad.to_str().unwrap().to_owned();
    let refused = |contents: &str, words: &[&str]| {
        std::fs::write(&bad, contents).unwrap();
        let out = ServerSpec::new(db).arg("--config").arg(&bad_arg).run_to_exit();
        out.fails_with(words);
    };
    refused(
        &format!("listen = \"127.0.0.1:{p1}\"\nlisten_adress = \"x\"\n"),
        &["listen_adress", "bad.toml"],
    );
    refused("[login]\nlock_aftr = 3\n", &["lock_aftr"]);
    refused("session_ttl = \"soon\"\n", &["session_ttl"]);
    ServerSpec::new(db)
        .arg("--config")
        .arg(dir.path().join("missing.toml").to_str().unwrap())
        .run_to_exit()
        .fails_with(&["missing.toml"]);
    ServerSpec::new(db)
        .arg("--session-ttl")
        .arg("30s")
        .run_to_exit()
        .fails_with(&["session_ttl"]);
    ServerSpec::new(db)
        .arg("--regions")
        .arg("Bad Region")
        .run_to_exit()
        .fails_with(&["region"]);
}

/// A TOML syntax error is reported like any other: one line, naming the file.
fn malformed_config_file(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for contents in ["listen = [\n", "[login\n", "listen = \"127.0.0.1:1\" x\n"] {
        std::fs::write(&bad, contents).unwrap();
        ServerSpec::new(db)
            .arg("--config")
            .arg(bad.to_str().unwrap())
            .run_to_exit()
            .fails_with(&["bad.toml"]);
    }
}

// ---- 7. HTTPS with Ward's own CA ---------------------------------------------

/// `sha256:<hex>` of the first certificate of a PEM file, in DER form.
fn pem_fingerprint(pem: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let digest = sha2::Sha256::digest(&der);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// curl over HTTPS, trusting `ca`; returns (exit success, stdout).
fn curl_https(ca: &Path, extra: &[&str], url: &str) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn https_own_ca(db: &Db) {
    let mut spec = ServerSpec::new(db).all_interfaces();
    let server = spec.start();
    let port = server.port;
    let url = server.url().to_owned();
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    let ca = server.ca_path();
    let ca_str = ca.to_str().unwrap().to_owned();

    let banner = server.stdout();
    assert!(banner.contains(&format!("{url}/")), "{banner}");
    assert!(banner.contains(&ca_str), "{banner}");
    let fingerprint = banner
        .lines()
        .find_map(|l| l.strip_prefix("  CA fingerprint:   "))
        .unwrap_or_else(|| panic!("no CA fingerprint line:\n{banner}"))
        .to_owned();
    let hex = fingerprint.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64, "{fingerprint}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{fingerprint}");
    assert!(
        banner.contains(&format!("ward ctl --server {url} --ca-cert {ca_str} login")),
        "{banner}"
    );
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(
        pem_fingerprint(&pem),
        fingerprint,
        "the fingerprint is the SHA-256 of the DER"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(server.data_dir()), 0o700);
        assert_eq!(mode(&server.data_dir().join("pki").join("ca.key")), 0o600);
    }

    // TLS 1.3 only; HTTP/2 and HTTP/1.1; valid for 127.0.0.1 and localhost.
    let (ok, body) = curl_https(&ca, &["-w", " %{http_version}"], &format!("{url}/readyz"));
    assert!(ok, "{body}");
    assert_eq!(body, "{\"status\":\"ok\"} 2");
    let (ok, body) = curl_https(
        &ca,
        &["--http1.1", "-w", " %{http_version}"],
        &format!("https://localhost:{port}/healthz"),
    );
    assert!(ok, "{body}");
    assert!(body.ends_with(" 1.1"), "{body}");
    let (ok, _) = curl_https(&ca, &["--tlsv1.2", "--tls-max", "1.2"], &format!("{url}/readyz"));
    assert!(!ok, "TLS 1.2 must be refused");

    let ctl = Ctl::new();
    // Without the CA: one line, with the hint.
    ctl.login(&url, "default", "default", "admin", PASSWORD)
        .fails_with(&["certificate", "--ca-cert"]);
    // With it, given relative to the working directory.
    let out = ctl.run_in(
        Some(server.data_dir()),
        &[
            "--server",
            &url,
            "--ca-cert",
            "pki/ca.pem",
            "login",
            "--tenant",
            "default",
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    out.ok();
    // The profile remembers the CA, as an absolute path.
    let me = ctl.run(&["whoami", "-o", "json"], None).json();
    assert_eq!(me["account"], "admin");
    let config = std::fs::read_to_string(ctl.config_file()).unwrap();
    assert!(config.contains(&format!("ca_cert = \"{ca_str}\"")), "{config}");
    // WARD_CA_CERT works too.
    Ctl::new()
        .with_env("WARD_CA_CERT", &ca_str)
        .login(&url, "default", "default", "admin", PASSWORD)
        .ok();
    // A CA file that is not there: one line naming it.
    Ctl::new()
        .run(
            &[
                "--server",
                &url,
                "--ca-cert",
                "/nonexistent/ca.pem",
                "login",
                "--tenant",
                "default",
                "--user",
                "admin",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        )
        .fails_with(&["/nonexistent/ca.pem"]);

    // No plain HTTP on that port.
    let answer = raw_http_get(port, "/readyz").unwrap_or_default();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(http_status(port, "/readyz"), None);
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-o", "/dev/null"])
        .arg(format!("http://127.0.0.1:{port}/readyz"))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "curl http:// succeeded");
    Ctl::new()
        .login(&format!("http://127.0.0.1:{port}"), "p", "default", "admin", PASSWORD)
        .error_line();

    // A restart keeps the CA (same fingerprint, the profile still works) and
    // covers the host of --public-url.
    let mut server = server;
    let (status, _) = server.stop();
    assert!(status.success(), "{}", server.stderr());
    drop(server);
    spec = spec.arg("--public-url").arg(format!("https://ward.test:{port}"));
    let server = spec.start();
    let banner = server.stdout();
    assert!(banner.contains(&format!("CA fingerprint:   {fingerprint}")), "{banner}");
    assert!(banner.contains(&format!("https://ward.test:{port}/")), "{banner}");
    ctl.run(&["whoami"], None).ok();
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    let (ok, body) = curl_https(
        &ca,
        &["--resolve", &resolve("ward.test")],
        &format!("https://ward.test:{port}/readyz"),
    );
    assert!(ok, "the certificate should cover the public URL's host: {body}");
    let (ok, _) = curl_https(
        &ca,
        &["--resolve", &resolve("other.test")],
        &format!("https://other.test:{port}/readyz"),
    );
    assert!(!ok, "the certificate must not cover other names");
    finish(server);

    // A CA key others may read is warned about.
    let key = spec.data_dir().join("pki").join("ca.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let server = spec.start();
        assert!(
            server
                .stderr()
                .contains("CA private key is readable by group or others"),
            "{}",
            server.stderr()
        );
        let mut server = server;
        assert!(server.stop().0.success());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // Half a CA: the server refuses to start rather than replace it.
    std::fs::rename(&key, key.with_extension("bak")).unwrap();
    spec.run_to_exit().server_fails_with(&["ca.key"]);
    assert!(!key.exists(), "the CA must not be replaced");
    assert_eq!(pem_fingerprint(&std::fs::read_to_string(&ca).unwrap()), fingerprint);
}

// ---- 8. miscellaneous CLI behaviour ------------------------------------------

fn misc_cli(db: &Db) {
    // Without a server or a profile.
    let ctl = Ctl::new();
    ctl.run(&["whoami"], None).fails_with(&["--server"]);
    ctl.run(&["account", "list", "-o", "json"], None)
        .fails_with(&["--server"]);
    let version = run_ward(&["--version"]);
    assert_eq!(version.code, Some(0));
    assert!(version.stdout.contains(env!("CARGO_PKG_VERSION")), "{}", version.stdout);
    let help = run_ward(&["--help"]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("server"), "{}", help.stdout);
    assert!(help.stdout.contains("ctl"), "{}", help.stdout);
    let help = ctl.run(&["--help"], None);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    for cmd in [
        "login", "logout", "whoami", "tenant", "account", "lockout", "apikey", "audit",
    ] {
        assert!(help.stdout.contains(cmd), "{cmd}: {}", help.stdout);
    }
    let help = ctl.run(&["help", "account"], None);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("unlock"), "{}", help.stdout);
    let help = ctl.run(&["account", "create", "--help"], None);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    for role in ["owner", "admin", "auditor", "helpdesk"] {
        assert!(help.stdout.contains(role), "{role}: {}", help.stdout);
    }
    let help = run_ward(&["server", "--help"]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("--listen"), "{}", help.stdout);
    // Usage errors are clap's (exit code 2).
    let usage = ctl.run(&["account", "create", "x", "--role", "wizard"], None);
    assert_eq!(usage.code, Some(2), "{usage:?}");
    assert!(usage.stderr.contains("wizard"), "{usage:?}");
    assert_eq!(ctl.run(&["frobnicate"], None).code, Some(2));
    assert_eq!(run_ward(&[]).code, Some(2));
    assert_eq!(run_ward(&["server", "--tls-cert", "x.pem"]).code, Some(2));
    ctl.run(&["--server", "not a url", "whoami"], None).error_line();
    ctl.run(&["--server", "ftp://127.0.0.1:1", "whoami"], None).error_line();

    // Against a server.
    let server = ServerSpec::new(db).start();
    let url = server.url().to_owned();
    ctl.run(&["--server", &url, "whoami"], None)
        .fails_with(&["not logged in"]);
    ctl.run(
        &["--server", &url, "login", "--tenant", "default", "--user", "admin"],
        None,
    )
    .fails_with(&["--password-stdin"]);
    ctl.run(
        &[
            "--server",
            &url,
            "login",
            "--tenant",
            "default",
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some(""),
    )
    .fails_with(&["password"]);
    // Unknown tenant and unknown user read like a wrong password.
    let a = ctl
        .login(&url, "default", "nowhere", "admin", PASSWORD)
        .error_line()
        .to_owned();
    let b = ctl
        .login(&url, "default", "default", "nobody", PASSWORD)
        .error_line()
        .to_owned();
    let c = ctl
        .login(&url, "default", "default", "admin", OTHER_PW)
        .error_line()
        .to_owned();
    assert_eq!(a, b);
    assert_eq!(b, c);

    let login = ctl.run(
        &[
            "--server",
            &url,
            "-o",
            "json",
            "login",
            "--tenant",
            "default",
            "--user",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\r\n")),
    );
    let v = login.json();
    assert_eq!(v["server"], url.as_str());
    assert_eq!(v["profile"], "default");
    assert!(v["expires_at"].is_string());
    assert_eq!(v["whoami"]["account"], "admin");
    assert!(
        !login.stdout.contains("ws_"),
        "the token stays in the profile: {}",
        login.stdout
    );

    // JSON everywhere.
    let json = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["-o", "json"]);
        ctl.run(&v, None).json()
    };
    let me = json(&["whoami"]);
    assert_eq!(me["role"], "owner");
    assert_eq!(me["operator"], false);
    for p in ["billing", "ownership", "accounts.manage", "audit.read"] {
        assert!(strings(&me["permissions"]).contains(&p), "{p}: {me}");
    }
    assert_eq!(names(&json(&["account", "list"])), ["admin"]);
    assert_eq!(json(&["account", "show", "admin"])["role"], "owner");
    assert_eq!(items(&json(&["lockout", "list"])).len(), 0);
    assert_eq!(items(&json(&["apikey", "list"])).len(), 0);
    assert!(items(&json(&["audit", "list", "--limit", "2"])).len() <= 2);
    // A password is the line as typed: spaces are part of it.
    let spaced = " spaced pass word ";
    let created = ctl
        .run(
            &[
                "account",
                "create",
                "helper",
                "--role",
                "helpdesk",
                "-o",
                "json",
                "--password-stdin",
            ],
            Some(&format!("{spaced}\n")),
        )
        .json();
    assert_eq!(created["role"], "helpdesk");
    ctl.login(&url, "helper", "default", "helper", spaced.trim())
        .fails_with(&["invalid_credentials"]);
    ctl.login(&url, "helper", "default", "helper", spaced).ok();
    let helper = |args: &[&str]| ctl.run(&with_profile("helper", args), None);
    helper(&["account", "list"]).fails_with(&["forbidden"]);
    helper(&["audit", "list"]).fails_with(&["forbidden"]);
    helper(&["apikey", "list", "-o", "json"]).json();
    let changed = json(&["--profile", "default", "account", "set-role", "helper", "auditor"]);
    assert_eq!(changed["role"], "auditor");
    helper(&["account", "list"]).ok();
    // Commands without a result print nothing in JSON mode.
    let deleted = ctl.run(
        &["--profile", "default", "account", "delete", "helper", "-o", "json"],
        None,
    );
    deleted.ok();
    assert_eq!(deleted.stdout, "");
    ctl.run(&["--profile", "default", "account", "show", "helper"], None)
        .fails_with(&["not_found"]);
    // Its session ended with it.
    helper(&["whoami"]).fails_with(&["HTTP 401"]);
    ctl.run(
        &[
            "--profile",
            "default",
            "account",
            "create",
            "short",
            "--role",
            "helpdesk",
            "--password-stdin",
        ],
        Some("short\n"),
    )
    .fails_with(&["characters"]);
    ctl.run(
        &[
            "--profile",
            "default",
            "account",
            "create",
            "nopw",
            "--role",
            "helpdesk",
        ],
        None,
    )
    .fails_with(&["--password-stdin"]);

    // Change one's own password: current, then new, on stdin. The
    // account's sessions end, this one included.
    let new_pw = "Changed-pass-word-3";
    let passwd = ["--profile", "default", "account", "passwd", "--password-stdin"];
    ctl.run(&passwd, Some(&format!("{OTHER_PW}\n{new_pw}\n")))
        .fails_with(&["current password"]);
    ctl.run(&passwd, Some(&format!("{PASSWORD}\n")))
        .fails_with(&["new password"]);
    ctl.run(&["--profile", "default", "whoami"], None).ok();
    let out = ctl.run(&passwd, Some(&format!("{PASSWORD}\n{new_pw}\n")));
    out.ok();
    assert!(out.stdout.contains("changed"), "{}", out.stdout);
    ctl.run(&["--profile", "default", "whoami"], None)
        .fails_with(&["HTTP 401"]);
    ctl.login(&url, "second", "default", "admin", PASSWORD)
        .fails_with(&["invalid_credentials"]);
    ctl.login(&url, "second", "default", "admin", new_pw).ok();
    ctl.login(&url, "third", "default", "admin", new_pw).ok();

    // Logout forgets the token, and ends only that session.
    let out = ctl.run(&["--profile", "second", "logout"], None);
    out.ok();
    assert!(out.stdout.contains("Logged out"), "{}", out.stdout);
    let config = std::fs::read_to_string(ctl.config_file()).unwrap();
    assert!(config.contains("[profiles.second]"), "{config}");
    ctl.run(&["--profile", "second", "whoami"], None)
        .fails_with(&["not logged in"]);
    ctl.run(&["--profile", "third", "whoami"], None).ok();

    // The reader of the output went away: not an error.
    {
        use std::process::Stdio;
        let mut cmd = Command::new(common::ward());
        cmd.args(["ctl", "--profile", "third", "audit", "list", "-o", "json"])
            .env("WARD_CONFIG_DIR", ctl.config_file().parent().unwrap())
            .env_remove("WARD_SERVER")
            .env_remove("WARD_TOKEN")
            .env_remove("WARD_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // A server that is not there.
    let gone = format!("http://127.0.0.1:{}", free_port());
    ctl.login(&gone, "gone", "default", "admin", PASSWORD)
        .fails_with(&["cannot reach"]);
    // A profile's token is never sent to another server.
    ctl.run(&["--profile", "third", "--server", &gone, "whoami"], None)
        .fails_with(&["not logged in"]);

    // The pages outside the API need no token.
    let health = http_get(server.port, "/healthz").unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&health.body).unwrap()["status"], "ok");
    let ready = http_get(server.port, "/readyz").unwrap();
    assert_eq!(ready.status, 200);
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    assert_eq!(ready.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(ready.header("referrer-policy"), Some("no-referrer"));
    let doc = http_get(server.port, "/api/v1/openapi.json").unwrap();
    assert_eq!(doc.status, 200);
    let doc: Value = serde_json::from_str(&doc.body).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/api/v1/whoami"].is_object(), "{:#}", doc["paths"]);
    // The console: a browser that is not signed in is sent to the sign-in page.
    assert_eq!(http_status(server.port, "/"), Some(303));
    assert_eq!(http_status(server.port, "/login"), Some(200));
    let metrics = http_get(server.port, "/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("ward_store_ready 1"), "{}", metrics.body);
    assert_eq!(
        metric(&metrics.body, "ward_audit_write_failures_total"),
        Some(0),
        "{}",
        metrics.body
    );
    let missing = http_get(server.port, "/api/v1/nope").unwrap();
    assert_eq!(missing.status, 404);
    let err: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(err["error"]["code"], "not_found");

    finish(server);
}
