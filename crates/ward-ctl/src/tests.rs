//! Command-line parsing, and whole commands against a tiny canned HTTP
//! server on loopback.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use ward_core::Role;

use super::*;
use crate::args::*;
use crate::profile::{ConfigFile, Profile};

#[derive(Debug, Parser)]
#[command(name = "ctl")]
struct T {
    #[command(flatten)]
    a: CtlArgs,
}

fn parse(line: &str) -> CtlArgs {
    let argv = std::iter::once("ctl").chain(line.split_whitespace());
    match T::try_parse_from(argv) {
        Ok(t) => t.a,
        Err(e) => panic!("{line}: {e}"),
    }
}

fn parse_err(line: &str) -> clap::Error {
    let argv = std::iter::once("ctl").chain(line.split_whitespace());
    match T::try_parse_from(argv) {
        Ok(t) => panic!("{line}: parsed as {t:?}"),
        Err(e) => e,
    }
}

// ---- parsing --------------------------------------------------------------

#[test]
fn the_command_definition_is_valid() {
    use clap::CommandFactory;
    T::command().debug_assert();
}

#[test]
fn parses_login_and_global_flags_anywhere() {
    let a = parse("--server http://127.0.0.1:7600 login --tenant acme --user admin --password-stdin");
    assert_eq!(a.server.as_deref(), Some("http://127.0.0.1:7600"));
    assert_eq!(a.output, OutputFormat::Table);
    let CtlCommand::Login(l) = a.command else {
        panic!("not login")
    };
    assert_eq!((l.tenant.as_str(), l.user.as_str()), ("acme", "admin"));
    assert!(l.password_stdin);

    let a = parse(
        "login --tenant acme --user admin --server https://w:1 --profile prod -o json --ca-cert ca.pem --token tk",
    );
    assert_eq!(a.server.as_deref(), Some("https://w:1"));
    assert_eq!(a.profile.as_deref(), Some("prod"));
    assert_eq!(a.output, OutputFormat::Json);
    assert_eq!(a.ca_cert.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(a.token.as_deref(), Some("tk"));
    let CtlCommand::Login(l) = a.command else {
        panic!("not login")
    };
    assert!(!l.password_stdin);

    let a = parse("account list --output json");
    assert_eq!(a.output, OutputFormat::Json);
    parse_err("account list -o yaml");
    parse_err("login --user admin --password-stdin");
}

#[test]
fn parses_session_commands() {
    assert!(matches!(parse("logout").command, CtlCommand::Logout));
    assert!(matches!(parse("whoami").command, CtlCommand::Whoami));
}

#[test]
fn parses_tenant_commands() {
    assert!(matches!(
        parse("tenant list").command,
        CtlCommand::Tenant(TenantCommand::List)
    ));
    assert!(matches!(
        parse("tenant show acme").command,
        CtlCommand::Tenant(TenantCommand::Show { name }) if name == "acme"
    ));
    match parse("tenant create acme --region eu --owner-password-stdin").command {
        CtlCommand::Tenant(TenantCommand::Create {
            name,
            region,
            owner_password_stdin,
        }) => {
            assert_eq!(name, "acme");
            assert_eq!(region.as_deref(), Some("eu"));
            assert!(owner_password_stdin);
        }
        other => panic!("{other:?}"),
    }
    match parse("tenant create acme").command {
        CtlCommand::Tenant(TenantCommand::Create {
            region,
            owner_password_stdin,
            ..
        }) => {
            assert_eq!(region, None);
            assert!(!owner_password_stdin);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("tenant suspend acme").command,
        CtlCommand::Tenant(TenantCommand::Suspend { name }) if name == "acme"
    ));
    assert!(matches!(
        parse("tenant resume acme").command,
        CtlCommand::Tenant(TenantCommand::Resume { name }) if name == "acme"
    ));
    parse_err("tenant show");
}

#[test]
fn parses_account_commands() {
    assert!(matches!(
        parse("account list").command,
        CtlCommand::Account(AccountCommand::List)
    ));
    assert!(matches!(
        parse("account show bob").command,
        CtlCommand::Account(AccountCommand::Show { name }) if name == "bob"
    ));
    match parse("account create bob --role auditor --password-stdin").command {
        CtlCommand::Account(AccountCommand::Create {
            name,
            role,
            password_stdin,
        }) => {
            assert_eq!(name, "bob");
            assert_eq!(role, Role::Auditor);
            assert!(password_stdin);
        }
        other => panic!("{other:?}"),
    }
    parse_err("account create bob --password-stdin");
    let err = parse_err("account create bob --role root --password-stdin");
    assert!(err.to_string().contains("helpdesk"), "{err}");
    assert!(matches!(
        parse("account delete bob").command,
        CtlCommand::Account(AccountCommand::Delete { name }) if name == "bob"
    ));
    assert!(matches!(
        parse("account set-role bob helpdesk").command,
        CtlCommand::Account(AccountCommand::SetRole { name, role: Role::Helpdesk }) if name == "bob"
    ));
    parse_err("account set-role bob");
    assert!(matches!(
        parse("account unlock bob").command,
        CtlCommand::Account(AccountCommand::Unlock { name }) if name == "bob"
    ));
    assert!(matches!(
        parse("account passwd --password-stdin").command,
        CtlCommand::Account(AccountCommand::Passwd {
            name: None,
            password_stdin: true
        })
    ));
    assert!(matches!(
        parse("account passwd bob --password-stdin").command,
        CtlCommand::Account(AccountCommand::Passwd { name: Some(n), password_stdin: true }) if n == "bob"
    ));
}

#[test]
fn parses_lockout_apikey_and_audit_commands() {
    assert!(matches!(
        parse("lockout list").command,
        CtlCommand::Lockout(LockoutCommand::List)
    ));
    match parse("apikey create ci --role auditor --expires-in 30d").command {
        CtlCommand::Apikey(ApikeyCommand::Create { name, role, expires_in }) => {
            assert_eq!(name, "ci");
            assert_eq!(role, Some(Role::Auditor));
            assert_eq!(expires_in, Some(Duration::from_secs(30 * 86_400)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("apikey create ci").command,
        CtlCommand::Apikey(ApikeyCommand::Create {
            role: None,
            expires_in: None,
            ..
        })
    ));
    parse_err("apikey create ci --expires-in soon");
    assert!(matches!(
        parse("apikey list").command,
        CtlCommand::Apikey(ApikeyCommand::List)
    ));
    assert!(matches!(
        parse("apikey revoke 01JABC").command,
        CtlCommand::Apikey(ApikeyCommand::Revoke { id }) if id == "01JABC"
    ));
    let CtlCommand::Audit(AuditCommand::List(a)) =
        parse("audit list --actor bob --action account.create --result denied --since 1h --limit 20").command
    else {
        panic!("not audit list")
    };
    assert_eq!(a.actor.as_deref(), Some("bob"));
    assert_eq!(a.action.as_deref(), Some("account.create"));
    assert_eq!(a.result.as_deref(), Some("denied"));
    assert_eq!(a.since, Some(Duration::from_secs(3600)));
    assert_eq!(a.limit, Some(20));
    let CtlCommand::Audit(AuditCommand::List(a)) = parse("audit list").command else {
        panic!("not audit list")
    };
    assert_eq!((a.actor, a.since, a.limit), (None, None, None));
    parse_err("audit list --limit 0");
    parse_err("audit list --since tomorrow");
}

// ---- errors ---------------------------------------------------------------

#[test]
fn api_errors_print_with_code_and_status() {
    let e = anyhow::Error::from(ClientError::Api {
        status: 403,
        code: "forbidden".into(),
        message: "this needs the permission accounts.manage".into(),
    });
    assert_eq!(
        error_message(&e),
        "this needs the permission accounts.manage (forbidden, HTTP 403)"
    );
    let e = anyhow::anyhow!("line one\nline two").context("outer");
    assert_eq!(error_message(&e), "outer: line one line two");
}

#[test]
fn run_is_send() {
    fn assert_send<F: Send>(_: &F) {}
    let fut = run(parse("whoami"));
    assert_send(&fut);
}

// ---- whole commands against a canned server -------------------------------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

type Responder = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

async fn serve(respond: Arc<Responder>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let respond = respond.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut start = lines.next().unwrap().split(' ');
                let method = start.next().unwrap().to_owned();
                let target = start.next().unwrap().to_owned();
                let mut len = 0;
                let mut authorization = None;
                for l in lines {
                    if let Some((k, v)) = l.split_once(": ") {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.parse().unwrap();
                        }
                        if k.eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.to_owned());
                        }
                    }
                }
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = Seen {
                    method,
                    target,
                    authorization,
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                };
                let (status, body) = respond(&req);
                log.lock().unwrap().push(req);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.ok();
                sock.shutdown().await.ok();
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn whoami_json() -> serde_json::Value {
    serde_json::json!({
        "tenant": "acme", "account": "admin", "role": "owner", "operator": false,
        "credential": "session", "permissions": ["accounts.read", "accounts.manage"]
    })
}

fn account_json(name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("id-{name}"), "name": name, "role": "auditor",
        "created_at": "2026-01-01T00:00:00.250Z", "failed_logins": 0
    })
}

/// A server with a session `sess-1` for `admin` of `acme`.
fn fake_ward(req: &Seen) -> (u16, String) {
    let authed = req.authorization.as_deref() == Some("Bearer sess-1");
    let target = req.target.as_str();
    match (req.method.as_str(), target) {
        ("POST", "/api/v1/auth/login") => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            if body["password"] == "pw 1" {
                let resp = serde_json::json!({
                    "token": "sess-1", "expires_at": "2026-01-02T00:00:00Z", "whoami": whoami_json()
                });
                (200, resp.to_string())
            } else {
                (
                    401,
                    r#"{"error":{"code":"invalid_credentials","message":"wrong tenant, user name or password"}}"#
                        .into(),
                )
            }
        }
        _ if !authed => (
            401,
            r#"{"error":{"code":"unauthenticated","message":"sign in first"}}"#.into(),
        ),
        ("POST", "/api/v1/auth/logout") => (204, String::new()),
        ("GET", "/api/v1/whoami") => (200, whoami_json().to_string()),
        ("GET", "/api/v1/accounts") => {
            let page = serde_json::json!({"items": [account_json("admin")], "next_cursor": "p2"});
            (200, page.to_string())
        }
        ("GET", t) if t.starts_with("/api/v1/accounts?cursor=p2") => {
            let page = serde_json::json!({"items": [account_json("bob")]});
            (200, page.to_string())
        }
        ("PUT", "/api/v1/accounts/admin/password") => (204, String::new()),
        ("GET", t) if t.starts_with("/api/v1/audit") => (200, r#"{"items": []}"#.into()),
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

struct Run {
    result: anyhow::Result<()>,
    stdout: String,
}

async fn ctl(config: &Path, line: &str, stdin: &str) -> Run {
    let args = parse(line);
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    let mut out = Vec::new();
    let result = run_with(args, config.to_path_buf(), &mut input, &mut out).await;
    Run {
        result,
        stdout: String::from_utf8(out).unwrap(),
    }
}

#[tokio::test]
async fn login_saves_a_profile_that_later_commands_use() {
    let (url, seen) = serve(Arc::new(fake_ward)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward").join("config.toml");

    // Without --password-stdin: refused before anything is sent.
    let r = ctl(&config, &format!("--server {url} login --tenant acme --user admin"), "").await;
    let err = error_message(&r.result.unwrap_err());
    assert!(err.contains("--password-stdin"), "{err}");

    let r = ctl(
        &config,
        &format!("--server {url} login --tenant acme --user admin"),
        "pw 1\n",
    )
    .await;
    assert!(r.result.is_err());
    assert!(seen.lock().unwrap().is_empty());

    // A wrong password is an API error.
    let r = ctl(
        &config,
        &format!("--server {url} login --tenant acme --user admin --password-stdin"),
        "nope\n",
    )
    .await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "wrong tenant, user name or password (invalid_credentials, HTTP 401)"
    );
    assert!(!config.exists());

    let r = ctl(
        &config,
        &format!("--server {url}/ login --tenant acme --user admin --password-stdin"),
        "pw 1\r\n",
    )
    .await;
    r.result.unwrap();
    assert_eq!(
        r.stdout,
        format!("Logged in to {url} as admin (tenant acme, role owner). Profile default saved.\n")
    );
    let saved = ConfigFile::load(&config).unwrap();
    assert_eq!(saved.current.as_deref(), Some("default"));
    assert_eq!(
        saved.profiles["default"],
        Profile {
            server: url.clone(),
            tenant: Some("acme".into()),
            user: Some("admin".into()),
            token: Some("sess-1".into()),
            ca_cert: None,
        }
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The profile gives the server and the token.
    let r = ctl(&config, "whoami", "").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("TENANT   ACCOUNT   ROLE"), "{}", r.stdout);
    assert!(r.stdout.contains("acme     admin     owner"), "{}", r.stdout);

    // Lists follow cursors, as a table and as one JSON array.
    let r = ctl(&config, "account list", "").await;
    r.result.unwrap();
    let lines: Vec<_> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].starts_with("NAME    ROLE      CREATED"));
    assert!(lines[1].starts_with("admin   auditor   2026-01-01T00:00:00Z"));
    assert!(lines[2].starts_with("bob "));
    let r = ctl(&config, "account list -o json", "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["name"], "bob");

    // Own password: current then new, the name from whoami.
    let r = ctl(&config, "account passwd --password-stdin", "pw 1\npw 2\n").await;
    r.result.unwrap();
    assert!(
        r.stdout
            .starts_with("Password of account admin changed. Its sessions have ended"),
        "{}",
        r.stdout
    );
    let body = seen.lock().unwrap().last().unwrap().body.clone();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"current_password": "pw 1", "new_password": "pw 2"})
    );

    // API errors.
    let r = ctl(&config, "account show nobody", "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "no such thing (not_found, HTTP 404)"
    );

    // The audit filters reach the server.
    let r = ctl(&config, "audit list --actor bob --since 1h --limit 5", "").await;
    r.result.unwrap();
    assert_eq!(
        r.stdout,
        "TIME   ACTOR   ON BEHALF OF   SOURCE   ACTION   TARGET   RESULT\n"
    );
    let target = seen.lock().unwrap().last().unwrap().target.clone();
    assert!(target.starts_with("/api/v1/audit?actor=bob&since=20"), "{target}");
    assert!(target.ends_with("&limit=5"), "{target}");

    // The profile's token is not sent to another server.
    let r = ctl(&config, "--server http://127.0.0.1:9 whoami", "").await;
    let err = error_message(&r.result.unwrap_err());
    assert!(err.starts_with(NOT_LOGGED_IN_PREFIX), "{err}");

    // Logout forgets the token.
    let r = ctl(&config, "logout", "").await;
    r.result.unwrap();
    assert_eq!(r.stdout, format!("Logged out of {url}.\n"));
    let saved = ConfigFile::load(&config).unwrap();
    assert_eq!(saved.profiles["default"].token, None);
    assert_eq!(saved.profiles["default"].server, url);
    let r = ctl(&config, "whoami", "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "not logged in: run `ward ctl login ...` or set WARD_TOKEN"
    );
}

const NOT_LOGGED_IN_PREFIX: &str = "not logged in: run `ward ctl login ...` or set WARD_TOKEN";

#[tokio::test]
async fn flags_alone_are_enough() {
    let (url, seen) = serve(Arc::new(fake_ward)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let r = ctl(&config, &format!("whoami --server {url} --token sess-1 -o json"), "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["account"], "admin");
    assert_eq!(seen.lock().unwrap()[0].authorization.as_deref(), Some("Bearer sess-1"));
    assert!(!config.exists());
}

#[tokio::test]
async fn missing_server_and_token_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let r = ctl(&config, "account list", "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "no server: pass --server URL or run `ward ctl --server URL login ...`"
    );
    let r = ctl(&config, "--server http://127.0.0.1:9 account list", "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "not logged in: run `ward ctl login ...` or set WARD_TOKEN"
    );
    let r = ctl(&config, "--server ftp://x --token t account list", "").await;
    let err = error_message(&r.result.unwrap_err());
    assert!(err.starts_with("invalid server URL \"ftp://x\""), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_one_clear_line() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let r = ctl(
        &dir.path().join("config.toml"),
        &format!("--server http://{addr} --token t tenant list"),
        "",
    )
    .await;
    let err = error_message(&r.result.unwrap_err());
    assert!(
        err.starts_with(&format!("cannot reach the Ward server at http://{addr}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_ca_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = ctl(
        &dir.path().join("config.toml"),
        "--server https://127.0.0.1:9 --token t --ca-cert /nonexistent/ca.pem whoami",
        "",
    )
    .await;
    let err = error_message(&r.result.unwrap_err());
    assert!(
        err.starts_with("cannot read the CA certificate /nonexistent/ca.pem"),
        "{err}"
    );
}

// ---- multi-factor authentication ------------------------------------------------

#[test]
fn parses_mfa_commands() {
    let CtlCommand::Login(l) = parse("login --tenant acme --user admin --password-stdin --otp 123456").command else {
        panic!("not login")
    };
    assert_eq!(l.otp.as_deref(), Some("123456"));
    assert!(matches!(
        parse("mfa enable").command,
        CtlCommand::Mfa(MfaCommand::Enable { code: None })
    ));
    assert!(matches!(
        parse("mfa enable --code 123456").command,
        CtlCommand::Mfa(MfaCommand::Enable { code: Some(c) }) if c == "123456"
    ));
    assert!(matches!(
        parse("mfa disable --code abcd-efgh-ijkl").command,
        CtlCommand::Mfa(MfaCommand::Disable { code }) if code == "abcd-efgh-ijkl"
    ));
    parse_err("mfa disable");
    assert!(matches!(
        parse("account mfa-reset bob").command,
        CtlCommand::Account(AccountCommand::MfaReset { name }) if name == "bob"
    ));
    assert!(matches!(
        parse("tenant settings").command,
        CtlCommand::Tenant(TenantCommand::Settings {
            require_admin_mfa: None,
            device_session_hours: None
        })
    ));
    assert!(matches!(
        parse("tenant settings --device-session-hours 12").command,
        CtlCommand::Tenant(TenantCommand::Settings {
            require_admin_mfa: None,
            device_session_hours: Some(12)
        })
    ));
    parse_err("tenant settings --device-session-hours 0");
    parse_err("tenant settings --device-session-hours 8761");
    assert!(matches!(
        parse("tenant settings --require-admin-mfa true").command,
        CtlCommand::Tenant(TenantCommand::Settings {
            require_admin_mfa: Some(true),
            ..
        })
    ));
    assert!(matches!(
        parse("tenant settings --require-admin-mfa false").command,
        CtlCommand::Tenant(TenantCommand::Settings {
            require_admin_mfa: Some(false),
            ..
        })
    ));
    parse_err("tenant settings --require-admin-mfa maybe");
}

const OTPAUTH: &str = "otpauth://totp/Ward:admin@acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Ward";

/// A server whose `admin` has MFA on: code `123456` signs in, once enrolment
/// is started `654321` confirms it.
fn fake_ward_mfa(req: &Seen) -> (u16, String) {
    let authed = req.authorization.as_deref() == Some("Bearer sess-1");
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
    let wrong_code = || {
        (
            400,
            r#"{"error":{"code":"invalid_field","message":"the code is wrong or was already used"}}"#.to_owned(),
        )
    };
    match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/api/v1/auth/login") => match body["otp"].as_str() {
            None => (
                401,
                r#"{"error":{"code":"mfa_required","message":"this account signs in with a second factor"}}"#.into(),
            ),
            Some("123456") => {
                let resp = serde_json::json!({
                    "token": "sess-1", "expires_at": "2026-01-02T00:00:00Z", "whoami": whoami_json()
                });
                (200, resp.to_string())
            }
            Some(_) => (
                401,
                r#"{"error":{"code":"invalid_credentials","message":"the one-time code is wrong or was already used"}}"#
                    .into(),
            ),
        },
        _ if !authed => (
            401,
            r#"{"error":{"code":"unauthenticated","message":"sign in first"}}"#.into(),
        ),
        ("POST", "/api/v1/me/mfa/totp") => {
            let resp = serde_json::json!({
                "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "otpauth_uri": OTPAUTH, "qr_svg": "<svg/>"
            });
            (201, resp.to_string())
        }
        ("POST", "/api/v1/me/mfa/totp/confirm") if body["code"] == "654321" => {
            let codes: Vec<String> = (0..10).map(|i| format!("aaaa-bbbb-ccc{}", (b'a' + i) as char)).collect();
            (200, serde_json::json!({ "recovery_codes": codes }).to_string())
        }
        ("POST", "/api/v1/me/mfa/totp/confirm") => wrong_code(),
        ("DELETE", "/api/v1/me/mfa/totp") if body["code"] == "aaaa-bbbb-ccca" => (204, String::new()),
        ("DELETE", "/api/v1/me/mfa/totp") => wrong_code(),
        ("POST", "/api/v1/accounts/bob/mfa/reset") => {
            let mut a = account_json("bob");
            a["mfa_enabled"] = false.into();
            (200, a.to_string())
        }
        ("GET", "/api/v1/tenant/settings") => (200, r#"{"require_admin_mfa": false, "device_session_hours": 168}"#.into()),
        ("PUT", "/api/v1/tenant/settings") => (200, req.body.clone()),
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

#[tokio::test]
async fn mfa_sign_in_enrolment_reset_and_settings() {
    let (url, seen) = serve(Arc::new(fake_ward_mfa)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let login = format!("--server {url} login --tenant acme --user admin --password-stdin");

    // Not on a terminal: no prompt, one line saying what to pass.
    let r = ctl(&config, &login, "pw 1\n").await;
    let err = error_message(&r.result.unwrap_err());
    assert!(err.contains("mfa_required") && err.contains("--otp CODE"), "{err}");
    assert!(!err.contains('\n'));
    let r = ctl(&config, &format!("{login} --otp 111111"), "pw 1\n").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "the one-time code is wrong or was already used (invalid_credentials, HTTP 401)"
    );
    let r = ctl(&config, &format!("{login} --otp 123456"), "pw 1\n").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("Logged in to"), "{}", r.stdout);
    let sent: serde_json::Value = serde_json::from_str(&seen.lock().unwrap().last().unwrap().body).unwrap();
    assert_eq!(sent["otp"], "123456");

    // Enrolment: the QR code in half blocks, the secret and the URI; then --code confirms.
    let r = ctl(&config, "mfa enable", "").await;
    r.result.unwrap();
    assert!(
        r.stdout.contains("Secret: GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("URI:    {OTPAUTH}")), "{}", r.stdout);
    assert!(r.stdout.contains('▀') || r.stdout.contains('▄'), "{}", r.stdout);
    assert!(r.stdout.contains("ward ctl mfa enable --code CODE"), "{}", r.stdout);
    let r = ctl(&config, "mfa enable --code 000000", "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "the code is wrong or was already used (invalid_field, HTTP 400)"
    );
    let r = ctl(&config, "mfa enable --code 654321", "").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("MFA is on for this account."), "{}", r.stdout);
    assert_eq!(r.stdout.matches("aaaa-bbbb-ccc").count(), 10, "{}", r.stdout);
    let r = ctl(&config, "-o json mfa enable --code 654321", "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
    let r = ctl(&config, "-o json mfa enable", "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["otpauth_uri"], OTPAUTH);

    let r = ctl(&config, "mfa disable --code aaaa-bbbb-ccca", "").await;
    r.result.unwrap();
    assert_eq!(r.stdout, "MFA is off for this account.\n");

    let r = ctl(&config, "account mfa-reset bob", "").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("NAME"), "{}", r.stdout);
    assert!(
        r.stdout.lines().nth(1).unwrap().trim_end().ends_with("off"),
        "{}",
        r.stdout
    );
    assert_eq!(
        seen.lock().unwrap().last().unwrap().target,
        "/api/v1/accounts/bob/mfa/reset"
    );

    let r = ctl(&config, "tenant settings", "").await;
    r.result.unwrap();
    assert_eq!(
        r.stdout,
        "REQUIRE ADMIN MFA   DEVICE SESSION HOURS\nno                  168\n"
    );
    let r = ctl(&config, "tenant settings --require-admin-mfa true", "").await;
    r.result.unwrap();
    assert!(r.stdout.ends_with("\nyes\n"), "{}", r.stdout);
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.body.as_str()),
        ("PUT", r#"{"require_admin_mfa":true}"#)
    );
    // Only the session length: the rest is read first and kept.
    let r = ctl(&config, "tenant settings --device-session-hours 12", "").await;
    r.result.unwrap();
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.body.as_str()),
        ("PUT", r#"{"require_admin_mfa":false,"device_session_hours":12}"#)
    );
}

#[test]
fn parses_user_password_commands() {
    assert!(matches!(
        parse("user passwd alice --password-stdin").command,
        CtlCommand::User(UserCommand::Passwd { name, password_stdin: true, clear: false }) if name == "alice"
    ));
    assert!(matches!(
        parse("user passwd alice --clear").command,
        CtlCommand::User(UserCommand::Passwd { name, password_stdin: false, clear: true }) if name == "alice"
    ));
    parse_err("user passwd alice --clear --password-stdin");
    parse_err("user passwd --password-stdin");
    assert!(matches!(
        parse("user unlock alice").command,
        CtlCommand::User(UserCommand::Unlock { name }) if name == "alice"
    ));
    assert!(matches!(
        parse("user mfa-reset alice").command,
        CtlCommand::User(UserCommand::MfaReset { name }) if name == "alice"
    ));
    parse_err("user mfa-reset");
}

fn user_json(has_password: bool) -> serde_json::Value {
    serde_json::json!({
        "id": "usr-1", "name": "alice", "disabled": false, "groups": ["eng"],
        "created_at": "2026-01-01T00:00:00.250Z", "has_password": has_password,
        "locked_until": "2026-01-01T00:15:00.5Z", "mfa_enabled": true
    })
}

/// A server with end user `alice` for the session `sess-1`.
fn fake_ward_users(req: &Seen) -> (u16, String) {
    if req.authorization.as_deref() != Some("Bearer sess-1") {
        return (
            401,
            r#"{"error":{"code":"unauthenticated","message":"sign in first"}}"#.into(),
        );
    }
    match (req.method.as_str(), req.target.as_str()) {
        ("GET", t) if t.starts_with("/api/v1/users?") || t == "/api/v1/users" => {
            (200, serde_json::json!({"items": [user_json(true)]}).to_string())
        }
        ("PUT", "/api/v1/users/alice/password") => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            if body["password"].as_str().is_some_and(|p| p.chars().count() >= 10) {
                (204, String::new())
            } else {
                (
                    400,
                    r#"{"error":{"code":"invalid_field","message":"a password needs at least 10 characters"}}"#.into(),
                )
            }
        }
        ("DELETE", "/api/v1/users/alice/password") => (204, String::new()),
        ("POST", "/api/v1/users/alice/unlock") => {
            let mut u = user_json(true);
            u.as_object_mut().unwrap().remove("locked_until");
            (200, u.to_string())
        }
        ("POST", "/api/v1/users/alice/mfa/reset") => {
            let mut u = user_json(true);
            u["mfa_enabled"] = serde_json::json!(false);
            (200, u.to_string())
        }
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

#[tokio::test]
async fn user_passwords_are_set_cleared_and_unlocked() {
    let (url, seen) = serve(Arc::new(fake_ward_users)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let flags = format!("--server {url} --token sess-1");

    // Without --password-stdin or --clear: refused before anything is sent.
    let r = ctl(&config, &format!("{flags} user passwd alice"), "secret pass 1\n").await;
    let err = error_message(&r.result.unwrap_err());
    assert!(err.contains("--password-stdin") && err.contains("--clear"), "{err}");
    assert!(seen.lock().unwrap().is_empty());

    // The password is the line on standard input, spaces and all.
    let r = ctl(
        &config,
        &format!("{flags} user passwd alice --password-stdin"),
        " secret pass 1 \r\n",
    )
    .await;
    r.result.unwrap();
    assert_eq!(r.stdout, "Password of user alice set.\n");
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("PUT", "/api/v1/users/alice/password")
    );
    let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(body, serde_json::json!({"password": " secret pass 1 "}));
    assert!(!r.stdout.contains("secret"));

    // An empty line or a short password is refused.
    let r = ctl(&config, &format!("{flags} user passwd alice --password-stdin"), "\n").await;
    assert!(r.result.is_err());
    let r = ctl(
        &config,
        &format!("{flags} user passwd alice --password-stdin"),
        "short\n",
    )
    .await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "a password needs at least 10 characters (invalid_field, HTTP 400)"
    );

    let r = ctl(&config, &format!("{flags} user passwd alice --clear"), "").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("Password of user alice removed"), "{}", r.stdout);
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("DELETE", "/api/v1/users/alice/password")
    );

    let r = ctl(&config, &format!("{flags} user unlock alice -o json"), "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["name"].as_str(), v.get("locked_until")), (Some("alice"), None));

    let r = ctl(&config, &format!("{flags} user mfa-reset alice -o json"), "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["mfa_enabled"].as_bool()),
        (Some("alice"), Some(false))
    );
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("POST", "/api/v1/users/alice/mfa/reset")
    );
    let r = ctl(&config, &format!("{flags} user mfa-reset bob"), "").await;
    assert_eq!(
        error_message(&r.result.unwrap_err()),
        "no such thing (not_found, HTTP 404)"
    );

    // The list shows whether each user has a password and two-step sign-in, and its lock-out.
    let r = ctl(&config, &format!("{flags} user list"), "").await;
    r.result.unwrap();
    let lines: Vec<_> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME    GROUPS   DISABLED   PASSWORD   MFA   LOCKED UNTIL           CREATED"),
        "{}",
        r.stdout
    );
    assert!(
        lines[1]
            .starts_with("alice   eng      no         yes        yes   2026-01-01T00:15:00Z   2026-01-01T00:00:00Z"),
        "{}",
        r.stdout
    );
}

// ---- identity sources -------------------------------------------------------

#[test]
fn parses_idp_commands() {
    let CtlCommand::Idp(IdpCommand::Create(create)) = parse(
        "idp create corp --oidc-issuer https://idp.example --client-id ward --client-secret-stdin --groups-claim roles",
    )
    .command
    else {
        panic!("not idp create")
    };
    let IdpCreate {
        name,
        oidc_issuer,
        client_id,
        client_secret_stdin,
        groups_claim,
        username_claim,
        scopes,
        ..
    } = *create;
    assert_eq!(
        (name.as_str(), oidc_issuer.as_deref(), client_id.as_deref()),
        ("corp", Some("https://idp.example"), Some("ward"))
    );
    assert!(client_secret_stdin);
    assert_eq!(groups_claim.as_deref(), Some("roles"));
    assert_eq!((username_claim, scopes), (None, None));
    assert!(matches!(parse("idp list").command, CtlCommand::Idp(IdpCommand::List)));
    assert!(matches!(
        parse("idp delete corp").command,
        CtlCommand::Idp(IdpCommand::Delete { name }) if name == "corp"
    ));
    parse_err("idp create corp --client-id ward --client-secret-stdin");
    // LDAP: the URL, not both kinds at once.
    let CtlCommand::Idp(IdpCommand::Create(create)) = parse(
        "idp create ad --ldap-url ldaps://dc1.corp.example --bind-dn cn=ward,dc=corp --bind-password-stdin \
         --user-base ou=people,dc=corp --user-filter (sAMAccountName={username}) --sync-interval 1h \
         --sync-attr department",
    )
    .command
    else {
        panic!("not idp create")
    };
    let IdpCreate {
        ldap_url,
        bind_dn,
        bind_password_stdin,
        user_base,
        user_filter,
        sync_interval,
        sync_attrs,
        ..
    } = *create;
    assert_eq!(ldap_url.as_deref(), Some("ldaps://dc1.corp.example"));
    assert_eq!(bind_dn.as_deref(), Some("cn=ward,dc=corp"));
    assert!(bind_password_stdin);
    assert_eq!(user_base.as_deref(), Some("ou=people,dc=corp"));
    assert_eq!(user_filter.as_deref(), Some("(sAMAccountName={username})"));
    assert_eq!(sync_interval.as_deref(), Some("1h"));
    assert_eq!(sync_attrs, vec!["department".to_owned()]);
    parse_err("idp create x --ldap-url ldaps://h --oidc-issuer https://i --client-id c");
    parse_err("idp create x");
    assert!(matches!(
        parse("idp sync ad").command,
        CtlCommand::Idp(IdpCommand::Sync { name }) if name == "ad"
    ));
    assert!(matches!(
        parse("group create eng --when department=Engineering --when email_domain=corp.example").command,
        CtlCommand::Group(GroupCommand::Create { name, when }) if name == "eng" && when.len() == 2
    ));
    parse_err("group set eng");
    parse_err("group set eng --static --when a=b");
}

/// A server with an LDAP source `ad` and group `eng` for the session `sess-1`.
fn fake_ward_ldap(req: &Seen) -> (u16, String) {
    match (req.method.as_str(), req.target.as_str()) {
        ("POST", "/api/v1/identity-sources") => (201, req.body.clone()),
        ("POST", "/api/v1/identity-sources/ad/sync") => (
            200,
            serde_json::json!({"users_seen": 4, "users_created": 3, "users_updated": 1, "users_disabled": 1,
                "users_skipped": 0, "groups_seen": 2, "synced_at": "2026-01-01T00:00:00Z"})
            .to_string(),
        ),
        ("POST", "/api/v1/groups") | ("PATCH", "/api/v1/groups/eng") => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            (
                200,
                serde_json::json!({"id": "grp-1", "name": "eng", "members": [], "created_at": "2026-01-01T00:00:00Z",
                    "conditions": body["conditions"]})
                .to_string(),
            )
        }
        ("GET", "/api/v1/users/alice") => (200, user_json(false).to_string()),
        ("PATCH", "/api/v1/users/alice") => (200, user_json(false).to_string()),
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

#[tokio::test]
async fn ldap_sources_dynamic_groups_and_attributes() {
    let (url, seen) = serve(Arc::new(fake_ward_ldap)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let flags = format!("--server {url} --token sess-1");
    let last = || seen.lock().unwrap().last().unwrap().clone();

    // Without --bind-password-stdin: refused before anything is sent.
    let r = ctl(
        &config,
        &format!("{flags} idp create ad --ldap-url ldaps://dc1 --bind-dn cn=w --user-base ou=p"),
        "pw\n",
    )
    .await;
    assert!(r.result.is_err());
    assert!(seen.lock().unwrap().is_empty());
    let r = ctl(
        &config,
        &format!(
            "{flags} idp create ad --ldap-url ldaps://dc1 --bind-dn cn=w --user-base ou=p --bind-password-stdin \
             --ca-file {} --sync-interval 30m -o json",
            ca.display()
        ),
        "bind secret 1\n",
    )
    .await;
    let _ = r.result;
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(body["kind"], "ldap");
    assert_eq!(body["ldap"]["bind_password"], "bind secret 1");
    assert_eq!(body["ldap"]["sync_interval"], "30m");
    assert!(body["ldap"]["ca_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));

    let r = ctl(&config, &format!("{flags} idp sync ad"), "").await;
    r.result.unwrap();
    assert_eq!(
        r.stdout,
        "Synced ad: 4 users seen, 3 created, 1 updated, 1 disabled, 0 skipped; 2 groups.\n"
    );

    let r = ctl(
        &config,
        &format!("{flags} group create eng --when department=Engineering"),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last().body).unwrap(),
        serde_json::json!({"name": "eng", "conditions": ["department=Engineering"]})
    );
    assert!(r.stdout.contains("department=Engineering"), "{}", r.stdout);
    let r = ctl(&config, &format!("{flags} group set eng --static"), "").await;
    r.result.unwrap();
    assert_eq!(
        (last().method.as_str(), last().body.as_str()),
        ("PATCH", r#"{"conditions":[]}"#)
    );

    let r = ctl(
        &config,
        &format!("{flags} user set alice --attr department=Sales --email alice@corp.example"),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last().body).unwrap(),
        serde_json::json!({"attributes": {"department": "Sales", "email": "alice@corp.example"}})
    );
}

// ---- internet access control -----------------------------------------------

#[test]
fn parses_internet_commands() {
    let a = parse("domain-list import ads ./ads.txt --format hosts");
    let CtlCommand::DomainList(DomainListCommand::Import { name, file, format }) = a.command else {
        panic!("not import")
    };
    assert_eq!(
        (name.as_str(), file.as_str(), format.as_deref()),
        ("ads", "./ads.txt", Some("hosts"))
    );
    parse_err("domain-list import ads f --format csv");
    let a = parse("domain-list create ads --domain a.example,*.b.example --domain c.example --description x");
    let CtlCommand::DomainList(DomainListCommand::Create { domains, url, .. }) = a.command else {
        panic!("not create")
    };
    assert_eq!(
        (domains, url),
        (vec!["a.example".into(), "*.b.example".into(), "c.example".into()], None)
    );
    parse_err("domain-list create ads --domain a.example --url http://127.0.0.1/x");
    for line in [
        "domain-list list",
        "domain-list show ads --contains ex",
        "domain-list add ads a.example b.example",
        "domain-list remove ads a.example",
        "domain-list delete ads",
        "domain-list refresh ads",
        "internet rule list",
        "internet rule show irl_1",
        "internet rule delete irl_1",
        "internet rule enable irl_1",
        "internet rule disable irl_1",
        "internet rule test --user alice ads.example",
        "internet settings",
        "internet inspection-ca",
        "internet inspection-ca --out ca.pem -o json",
        "user proxy-credential create alice",
        "user proxy-credential list alice",
        "user proxy-credential delete alice wpx_1",
        "logs access --since 1h",
        "logs web --top domain",
        "logs dns --since 30m --user alice --device d --action block --domain ads.example --limit 5 -o json",
    ] {
        parse(line);
    }
    parse_err("domain-list add ads");
    parse_err("logs web --top device");
    let a = parse("internet rule create --priority 10 --action block --list ads,trackers --list more --user alice --group eng --global-allow --inspect --disabled");
    let CtlCommand::Internet(InternetCommand::Rule(InternetRuleCommand::Create {
        priority,
        action,
        lists,
        users,
        groups,
        global_allow,
        inspect,
        disabled,
        ..
    })) = a.command
    else {
        panic!("not rule create")
    };
    assert_eq!((priority, action.as_str()), (10, "block"));
    assert_eq!(lists, ["ads", "trackers", "more"]);
    assert_eq!((users, groups), (vec!["alice".to_owned()], vec!["eng".to_owned()]));
    assert!(global_allow && inspect && disabled);
    parse_err("internet rule create --priority 0 --action block");
    parse_err("internet rule create --priority 1 --action deny");
    let a = parse("internet rule create --priority 1 --action warn --valid-from 2030-01-01T00:00:00Z --valid-until 2030-02-01T00:00:00Z");
    let CtlCommand::Internet(InternetCommand::Rule(InternetRuleCommand::Create {
        valid_from,
        valid_until,
        ..
    })) = a.command
    else {
        panic!("not rule create")
    };
    assert_eq!(
        (valid_from.as_deref(), valid_until.as_deref()),
        (Some("2030-01-01T00:00:00Z"), Some("2030-02-01T00:00:00Z"))
    );
    let a = parse("internet rule update irl_1 --valid-until 2030-02-01T00:00:00Z --valid-from= --list ads,more --enabled false --action monitor");
    let CtlCommand::Internet(InternetCommand::Rule(InternetRuleCommand::Update(u))) = a.command else {
        panic!("not rule update")
    };
    assert_eq!(u.id, "irl_1");
    assert_eq!(
        (u.valid_from.as_deref(), u.valid_until.as_deref()),
        (Some(""), Some("2030-02-01T00:00:00Z"))
    );
    assert_eq!(u.lists.unwrap(), ["ads", "more"]);
    assert_eq!(
        (u.enabled, u.action.as_deref(), u.users),
        (Some(false), Some("monitor"), None)
    );
    parse_err("internet rule update irl_1");
    let a = parse("app update wiki --ports 80,8080 --tag= --public-host wiki.example.com");
    let CtlCommand::App(AppCommand::Update {
        name,
        ports,
        tags,
        public_host,
        addresses,
        ..
    }) = a.command
    else {
        panic!("not app update")
    };
    assert_eq!(name, "wiki");
    assert_eq!(ports.unwrap(), ["80", "8080"]);
    assert_eq!(tags.unwrap(), [""]);
    assert_eq!((public_host.as_deref(), addresses), (Some("wiki.example.com"), None));
    parse_err("app update wiki");
    parse_err("app update wiki --upstream-scheme ftp");
    parse_err("internet rule update --enabled true");
    parse_err("internet rule update irl_1 --priority 0");
    let a = parse("internet settings --enabled false --default-action block --dns-block address --dns-block-ipv4 0.0.0.0 --inspection on --do-not-inspect banking,health --bypass *.corp.example,10.0.0.0/8 --warn-minutes 30");
    let CtlCommand::Internet(InternetCommand::Settings(s)) = a.command else {
        panic!("not settings")
    };
    assert_eq!(
        (s.enabled, s.inspection.as_deref(), s.warn_minutes),
        (Some(false), Some("on"), Some(30))
    );
    assert_eq!(s.bypass.unwrap(), ["*.corp.example", "10.0.0.0/8"]);
    parse_err("internet settings --inspection maybe");
    parse_err("internet settings --default-action warn");
}

fn list_json() -> serde_json::Value {
    serde_json::json!({"id": "dl_1", "name": "ads", "description": "", "entries": 2, "sha256": "ab",
                       "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
}

fn rule_json(enabled: bool) -> serde_json::Value {
    serde_json::json!({"id": "irl_1", "priority": 10, "action": "block", "global_allow": false, "users": ["alice"],
                       "groups": [], "lists": ["ads"], "inspect": false, "enabled": enabled,
                       "created_at": "2026-01-01T00:00:00Z"})
}

fn settings_json() -> serde_json::Value {
    serde_json::json!({"enabled": true, "default_action": "allow", "dns": {"block_mode": "nxdomain"},
                       "inspection": false, "do_not_inspect": ["banking", "health"], "bypass": [], "warn_minutes": 60})
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn fake_ward_internet(req: &Seen) -> (u16, String) {
    if req.authorization.as_deref() == Some("Bearer sess-new") && req.target == "/api/v1/internet/inspection-ca" {
        return (
            404,
            r#"{"error":{"code":"inspection_ca_missing","message":"this tenant has no inspection CA"}}"#.into(),
        );
    }
    if req.authorization.as_deref() != Some("Bearer sess-1") {
        return (
            401,
            r#"{"error":{"code":"unauthenticated","message":"sign in first"}}"#.into(),
        );
    }
    let import = serde_json::json!({"list": list_json(), "report": {"format": "hosts", "lines": 4, "comments": 1,
        "accepted": 2, "ignored": 0, "invalid": 1, "entries": 2,
        "first_invalid": [{"line": 4, "reason": "not a domain name"}], "first_ignored": []}});
    let record = serde_json::json!({"id": "acr_1", "time": "2026-01-01T00:00:00.5Z", "user": "alice", "device_id": "dev_1",
        "source": "127.0.0.1", "dest_host": "ads.example", "port": 443, "protocol": "tcp", "action": "block",
        "reason": "rule_matched", "bytes_up": 0, "bytes_down": 0, "duration_ms": 0, "end": "denied", "gateway_id": "gw",
        "kind": "web", "url": "http://ads.example/x"});
    let t = req.target.as_str();
    match (req.method.as_str(), t) {
        ("PUT", t) if t.starts_with("/api/v1/domain-lists/ads/entries") => (200, import.to_string()),
        ("POST", "/api/v1/domain-lists") => (201, import.to_string()),
        ("GET", "/api/v1/domain-lists") => (200, serde_json::json!({"items": [list_json()]}).to_string()),
        ("GET", "/api/v1/domain-lists/ads") => (200, list_json().to_string()),
        ("GET", t) if t.starts_with("/api/v1/domain-lists/ads/entries") => (
            200,
            serde_json::json!({"entries": ["ads.example", "*.ads.example"], "total": 5}).to_string(),
        ),
        ("PATCH", "/api/v1/domain-lists/ads") => (200, list_json().to_string()),
        ("DELETE", "/api/v1/domain-lists/ads") => (
            409,
            r#"{"error":{"code":"conflict","message":"domain list ads is in use by an internet rule"}}"#.into(),
        ),
        ("POST", "/api/v1/internet/rules") => (201, rule_json(true).to_string()),
        ("GET", "/api/v1/internet/rules") => (200, serde_json::json!({"items": [rule_json(true)]}).to_string()),
        ("PATCH", "/api/v1/internet/rules/irl_1") => (200, rule_json(false).to_string()),
        ("POST", "/api/v1/internet/rules/test") => (
            200,
            serde_json::json!({"host": "ads.example", "action": "block", "rule_id": "irl_1", "stage": "block",
                               "list": "ads", "explanation": {}})
            .to_string(),
        ),
        ("GET", "/api/v1/internet/settings") => (200, settings_json().to_string()),
        ("GET", "/api/v1/internet/inspection-ca") => (200, CA_PEM.into()),
        ("PUT", "/api/v1/internet/settings") => (200, settings_json().to_string()),
        ("POST", "/api/v1/users/alice/proxy-credentials") => (
            201,
            serde_json::json!({"id": "wpx_1", "username": "alice", "password": "wpx_1.s3cret"}).to_string(),
        ),
        ("GET", "/api/v1/users/alice/proxy-credentials") => (
            200,
            serde_json::json!([{"id": "wpx_1", "user": "alice", "created_at": "2026-01-01T00:00:00Z"}]).to_string(),
        ),
        ("DELETE", "/api/v1/users/alice/proxy-credentials/wpx_1") => (204, String::new()),
        ("GET", t) if t.starts_with("/api/v1/logs/web/top") => (
            200,
            serde_json::json!([{"key": "ads.example", "count": 10}, {"key": "news.example", "count": 5}]).to_string(),
        ),
        ("GET", t) if t.starts_with("/api/v1/logs/web") || t.starts_with("/api/v1/logs/dns") => {
            (200, serde_json::json!({"items": [record]}).to_string())
        }
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

#[tokio::test]
async fn internet_commands_send_what_they_say_and_print_clearly() {
    let (url, seen) = serve(Arc::new(fake_ward_internet)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let flags = format!("--server {url} --token sess-1");
    let last = || seen.lock().unwrap().last().unwrap().clone();

    // Import a file: the raw body, the format, and the report printed.
    let file = dir.path().join("ads.txt");
    std::fs::write(&file, "# ads\n0.0.0.0 ads.example\n0.0.0.0 b.example\n0.0.0.0 bad..x\n").unwrap();
    let r = ctl(
        &config,
        &format!("{flags} domain-list import ads {} --format hosts", file.display()),
        "",
    )
    .await;
    r.result.unwrap();
    let req = last();
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("PUT", "/api/v1/domain-lists/ads/entries?format=hosts")
    );
    assert!(req.body.contains("0.0.0.0 b.example"));
    assert!(r.stdout.contains("2 accepted, 0 ignored, 1 invalid"), "{}", r.stdout);
    assert!(r.stdout.contains("invalid line 4: not a domain name"), "{}", r.stdout);
    // From a URL: the server downloads it.
    let r = ctl(
        &config,
        &format!("{flags} domain-list import ads http://127.0.0.1:9/ads.txt"),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(
        last().target,
        "/api/v1/domain-lists/ads/entries?url=http%3A%2F%2F127.0.0.1%3A9%2Fads.txt"
    );
    // A missing file is one clear line, nothing sent.
    let n = seen.lock().unwrap().len();
    let r = ctl(
        &config,
        &format!("{flags} domain-list import ads /nonexistent/x.txt"),
        "",
    )
    .await;
    assert!(error_message(&r.result.unwrap_err()).contains("cannot open /nonexistent/x.txt"));
    assert_eq!(seen.lock().unwrap().len(), n);

    let r = ctl(
        &config,
        &format!("{flags} domain-list create ads --domain a.example,*.b.example"),
        "",
    )
    .await;
    r.result.unwrap();
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(body["domains"], serde_json::json!(["a.example", "*.b.example"]));
    let r = ctl(&config, &format!("{flags} domain-list show ads --contains ads"), "").await;
    r.result.unwrap();
    assert!(
        r.stdout.contains("*.ads.example") && r.stdout.contains("2 of 5 entries shown"),
        "{}",
        r.stdout
    );
    ctl(&config, &format!("{flags} domain-list add ads c.example"), "")
        .await
        .result
        .unwrap();
    assert_eq!(last().body, r#"{"add":["c.example"],"remove":[]}"#);
    let r = ctl(&config, &format!("{flags} domain-list delete ads"), "").await;
    assert!(error_message(&r.result.unwrap_err()).contains("in use by an internet rule"));
    let r = ctl(&config, &format!("{flags} domain-list list"), "").await;
    r.result.unwrap();
    assert!(r.stdout.starts_with("NAME") && r.stdout.contains("ads"), "{}", r.stdout);

    // Rules.
    let r = ctl(
        &config,
        &format!("{flags} internet rule create --priority 10 --action block --list ads --user alice"),
        "",
    )
    .await;
    r.result.unwrap();
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(
        (
            &body["priority"],
            &body["action"],
            &body["lists"],
            &body["users"],
            &body["enabled"]
        ),
        (
            &serde_json::json!(10),
            &serde_json::json!("block"),
            &serde_json::json!(["ads"]),
            &serde_json::json!(["alice"]),
            &serde_json::json!(true)
        )
    );
    assert!(r.stdout.contains("irl_1"));
    let r = ctl(&config, &format!("{flags} internet rule disable irl_1"), "").await;
    r.result.unwrap();
    assert_eq!(last().body, r#"{"enabled":false}"#);
    assert!(r.stdout.contains("disabled"), "{}", r.stdout);
    let r = ctl(
        &config,
        &format!("{flags} internet rule test --user alice ADS.example"),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(r.stdout, "ads.example: block (stage block, rule irl_1, list ads)\n");
    // Update: only what the flags name; "" removes a bound or empties a list.
    let r = ctl(
        &config,
        &format!("{flags} internet rule update irl_1 --valid-from 2030-01-01T00:00:00Z --valid-until= --user= --inspect true"),
        "",
    )
    .await;
    r.result.unwrap();
    let req = last();
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("PATCH", "/api/v1/internet/rules/irl_1")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&req.body).unwrap(),
        serde_json::json!({"users": [], "inspect": true, "valid_from": "2030-01-01T00:00:00Z", "valid_until": ""})
    );
    assert!(r.stdout.contains("irl_1"), "{}", r.stdout);
    let r = ctl(
        &config,
        &format!("{flags} internet rule create --priority 3 --action block --valid-until 2030-01-01T00:00:00Z"),
        "",
    )
    .await;
    r.result.unwrap();
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(body["valid_until"], "2030-01-01T00:00:00Z");
    assert!(body.get("valid_from").is_none(), "{body}");

    // The inspection CA: to standard output as it came, or to a file.
    let r = ctl(&config, &format!("{flags} internet inspection-ca"), "").await;
    r.result.unwrap();
    assert_eq!(last().target, "/api/v1/internet/inspection-ca");
    assert_eq!(r.stdout, CA_PEM);
    let pem_file = dir.path().join("ward-inspection-ca.pem");
    let r = ctl(
        &config,
        &format!("{flags} internet inspection-ca --out {}", pem_file.display()),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(std::fs::read_to_string(&pem_file).unwrap(), CA_PEM);
    assert_eq!(
        r.stdout,
        format!("Wrote the inspection CA certificate to {}.\n", pem_file.display())
    );
    let r = ctl(&config, &format!("{flags} internet inspection-ca -o json"), "").await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["certificate_pem"], CA_PEM);
    let r = ctl(
        &config,
        &format!("{flags} internet inspection-ca --out /nonexistent/dir/ca.pem"),
        "",
    )
    .await;
    assert!(error_message(&r.result.unwrap_err()).contains("cannot write /nonexistent/dir/ca.pem"));
    // None yet: one line that says how to get one, and no file.
    let missing = dir.path().join("missing.pem");
    let r = ctl(
        &config,
        &format!(
            "--server {url} --token sess-new internet inspection-ca --out {}",
            missing.display()
        ),
        "",
    )
    .await;
    let err = error_message(&r.result.unwrap_err());
    assert!(
        err.contains("no inspection CA yet") && err.contains("--inspection on") && !err.contains('\n'),
        "{err}"
    );
    assert!(!missing.exists());

    // Settings: shown; flags change only what they name.
    let r = ctl(&config, &format!("{flags} internet settings"), "").await;
    r.result.unwrap();
    assert!(
        r.stdout.contains("do not inspect") && r.stdout.contains("banking,health"),
        "{}",
        r.stdout
    );
    ctl(
        &config,
        &format!("{flags} internet settings --inspection on --bypass *.corp.example,10.0.0.0/8"),
        "",
    )
    .await
    .result
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"inspection": true, "bypass": ["*.corp.example", "10.0.0.0/8"]})
    );
    ctl(
        &config,
        &format!("{flags} internet settings --dns-block address --dns-block-ipv4 0.0.0.0"),
        "",
    )
    .await
    .result
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&last().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"dns": {"block_mode": "address", "block_ipv4": "0.0.0.0"}})
    );

    // Proxy credentials: the password printed once.
    let r = ctl(&config, &format!("{flags} user proxy-credential create alice"), "").await;
    r.result.unwrap();
    assert!(
        r.stdout.contains("username: alice\npassword: wpx_1.s3cret\n"),
        "{}",
        r.stdout
    );
    let r = ctl(&config, &format!("{flags} user proxy-credential list alice"), "").await;
    r.result.unwrap();
    assert!(r.stdout.contains("wpx_1") && !r.stdout.contains("s3cret"));
    ctl(
        &config,
        &format!("{flags} user proxy-credential delete alice wpx_1"),
        "",
    )
    .await
    .result
    .unwrap();
    assert_eq!(last().method, "DELETE");

    // Logs: filters in the query, a table or JSON, and the top chart.
    let r = ctl(
        &config,
        &format!("{flags} logs web --since 1h --user alice --action block --domain ads.example --limit 5 -o json"),
        "",
    )
    .await;
    r.result.unwrap();
    assert_eq!(
        last().target,
        "/api/v1/logs/web?user=alice&action=block&domain=ads.example&since=1h&limit=5"
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["url"], "http://ads.example/x");
    let r = ctl(&config, &format!("{flags} logs dns"), "").await;
    r.result.unwrap();
    assert!(
        r.stdout.starts_with("TIME") && r.stdout.contains("ads.example"),
        "{}",
        r.stdout
    );
    assert!(last().target.starts_with("/api/v1/logs/dns"));
    let r = ctl(&config, &format!("{flags} logs web --top domain"), "").await;
    r.result.unwrap();
    assert_eq!(last().target, "/api/v1/logs/web/top?by=domain");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("DOMAIN"), "{}", r.stdout);
    assert_eq!(lines[1].matches('█').count(), 40, "{}", r.stdout);
    assert_eq!(lines[2].matches('█').count(), 20, "{}", r.stdout);
    let r = ctl(&config, &format!("{flags} logs dns --top user"), "").await;
    assert!(error_message(&r.result.unwrap_err()).contains("--top is only for logs web"));
}
