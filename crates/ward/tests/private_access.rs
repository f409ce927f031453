//! Private access end to end, with the real binary and real clients: a
//! server with its embedded gateway (and a standalone gateway), an agent
//! enrolled with a one-time code, curl through its SOCKS5 and HTTP proxies,
//! psql through a port forward, access records, revocation cutting a live
//! transfer, and a gateway killed with SIGKILL losing no record.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, is_listening, ward, Ctl, Db, ServerSpec, PASSWORD};
use serde_json::Value;

// ---- real peers on loopback ---------------------------------------------------

/// An HTTP server answering every request with `body`, on its own thread.
fn http_upstream(body: &'static str) -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// An HTTP server that streams a long body slowly (8 KiB every 20 ms, at most 60 s).
fn slow_upstream() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(60) {
                    if conn.write_all(&[b'x'; 8192]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    port
}

struct Curl {
    code: i32,
    stdout: String,
}

fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is installed");
    Curl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(what: &str, mut cmd: Command) -> Proc {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WARD_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            child,
            what: what.to_owned(),
        }
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = &self.what;
    }
}

/// `ward agent ...` to completion: (exit code, stdout + stderr).
fn run_agent(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(ward());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.arg("agent").args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The tenant's admin, logged in.
fn admin(url: &str) -> Ctl {
    let ctl = Ctl::new();
    ctl.login(url, "default", "default", "admin", PASSWORD).ok();
    ctl
}

/// Users, applications and an allow rule; an enrolment code for alice.
fn set_up_policy(ctl: &Ctl, allowed_port: u16, denied_port: u16) -> String {
    ctl.run(&["user", "create", "alice"], None).ok();
    let web = format!("{allowed_port}");
    ctl.run(
        &[
            "app",
            "create",
            "web",
            "--address",
            "127.0.0.1,localhost",
            "--ports",
            &web,
        ],
        None,
    )
    .ok();
    let other = format!("{denied_port}");
    ctl.run(
        &["app", "create", "other", "--address", "127.0.0.1", "--ports", &other],
        None,
    )
    .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "10",
            "--action",
            "allow",
            "--app",
            "web",
            "--user",
            "alice",
        ],
        None,
    )
    .ok();
    let out = ctl.run(&["enroll", "create", "--user", "alice"], None);
    out.ok();
    out.stdout.split_whitespace().last().unwrap().to_owned()
}

struct Agent {
    _proc: Proc,
    socks: u16,
    http: u16,
    state: PathBuf,
}

fn enrol_and_start_agent(server_url: &str, code: &str, dir: &Path) -> Agent {
    let state = dir.join("agent");
    let (code_, text) = run_agent(&[
        "enroll",
        "--server",
        server_url,
        "--code",
        code,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code_, Some(0), "enrol failed: {text}");
    let (socks, http) = (free_port(), free_port());
    let mut cmd = Command::new(ward());
    cmd.arg("agent").arg("up").arg("--state-dir").arg(&state);
    cmd.arg("--socks")
        .arg(format!("127.0.0.1:{socks}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{http}"));
    let proc = Proc::spawn("ward agent up", cmd);
    wait_until("the agent's proxies", Duration::from_secs(20), || {
        is_listening(socks) && is_listening(http)
    });
    Agent {
        _proc: proc,
        socks,
        http,
        state,
    }
}

fn access_records(ctl: &Ctl) -> Vec<Value> {
    let out = ctl.run(&["logs", "access", "-o", "json", "--limit", "500"], None);
    out.ok();
    out.json().as_array().unwrap().clone()
}

// ---- scenarios ------------------------------------------------------------------

macro_rules! on_both_backends {
    ($scenario:ident, $sqlite:ident, $postgres:ident) => {
        #[test]
        fn $sqlite() {
            $scenario(&Db::sqlite());
        }

        #[test]
        fn $postgres() {
            let Some(db) = Db::postgres() else {
                eprintln!(
                    "skipped {}: set WARD_TEST_POSTGRES to run it",
                    stringify!($postgres)
                );
                return;
            };
            $scenario(&db);
        }
    };
}

on_both_backends!(
    curl_through_the_agent,
    sqlite_curl_through_the_agent,
    postgres_curl_through_the_agent
);

/// The story: create a user, an application and an allow rule, enrol
/// an agent, curl an allowed service through it, fail to reach a denied one,
/// see both in the access records, revoke the device and watch the open
/// connection close.
fn curl_through_the_agent(db: &Db) {
    if !have("curl") {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let allowed = http_upstream("hello through ward");
    let denied = http_upstream("you should not see this");
    let slow = slow_upstream();
    let mut spec = ServerSpec::new(db);
    let server = spec.start();
    let ctl = admin(server.url());
    let code = set_up_policy(&ctl, allowed, denied);
    let slow_port = slow.to_string();
    ctl.run(
        &["app", "create", "slow", "--address", "127.0.0.1", "--ports", &slow_port],
        None,
    )
    .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "20",
            "--action",
            "allow",
            "--app",
            "slow",
        ],
        None,
    )
    .ok();
    let work = tempfile::tempdir().unwrap();
    let agent = enrol_and_start_agent(server.url(), &code, work.path());
    let socks = format!("127.0.0.1:{}", agent.socks);
    let proxy = format!("http://127.0.0.1:{}", agent.http);

    // Allowed, through both proxies, by address and by name (resolved at the
    // gateway) — once the gateway's snapshot has the new device (a moment).
    wait_until("the gateway to know the device", Duration::from_secs(10), || {
        curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]).code == 0
    });
    let r = curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello through ward"));
    let r = curl(&["--socks5-hostname", &socks, &format!("http://localhost:{allowed}/")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello through ward"));
    let r = curl(&["--proxy", &proxy, &format!("http://127.0.0.1:{allowed}/path?q=1")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello through ward"));
    let r = curl(&["-p", "--proxy", &proxy, &format!("http://127.0.0.1:{allowed}/")]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello through ward"),
        "CONNECT through the HTTP proxy"
    );

    // Denied: no rule allows it.
    let r = curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{denied}/")]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("should not"));
    let r = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--proxy",
        &proxy,
        &format!("http://127.0.0.1:{denied}/"),
    ]);
    assert_eq!(r.stdout, "403");

    // Both are recorded, with the deciding rule and the reason.
    wait_until("the access records", Duration::from_secs(15), || {
        let recs = access_records(&ctl);
        recs.iter().filter(|r| r["action"] == "allow").count() >= 4
            && recs.iter().filter(|r| r["action"] == "deny").count() >= 2
    });
    let recs = access_records(&ctl);
    let allow = recs
        .iter()
        .find(|r| r["action"] == "allow" && r["port"] == allowed)
        .unwrap();
    assert_eq!(allow["user"], "alice");
    assert!(allow["rule_id"].as_str().unwrap().starts_with("rul_"));
    assert!(allow["bytes_down"].as_u64().unwrap() > 0);
    let deny = recs
        .iter()
        .find(|r| r["action"] == "deny" && r["port"] == denied)
        .unwrap();
    assert_eq!(deny["reason"], "no_rule_matched");
    let out = ctl.run(&["logs", "access", "--action", "deny", "-o", "json"], None);
    assert!(out.json().as_array().unwrap().iter().all(|r| r["action"] == "deny"));

    // `agent status` knows where it stands.
    // (it writes its state every few seconds).
    wait_until("agent status to show the tunnel", Duration::from_secs(15), || {
        let (code_, text) = run_agent(&["status", "--state-dir", agent.state.to_str().unwrap()]);
        code_ == Some(0) && text.contains("alice") && text.contains("connected since")
    });

    // Revoking the device closes the open transfer within 2 seconds.
    let device = ctl.run(&["device", "list", "-o", "json"], None).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let socks_ = socks.clone();
    let transfer = std::thread::spawn(move || {
        let started = Instant::now();
        let r = curl(&[
            "-o",
            "/dev/null",
            "--socks5-hostname",
            &socks_,
            &format!("http://127.0.0.1:{slow}/"),
        ]);
        (r.code, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let revoked_at = Instant::now();
    ctl.run(&["device", "revoke", &device], None).ok();
    let (code_, _) = transfer.join().unwrap();
    let cut_after = revoked_at.elapsed();
    assert_ne!(code_, 0, "the transfer was cut");
    assert!(
        cut_after < Duration::from_secs(3),
        "cut {cut_after:?} after the revocation"
    );
    wait_until("the cut transfer's record", Duration::from_secs(15), || {
        access_records(&ctl)
            .iter()
            .any(|r| r["port"] == slow && r["end"] == "policy_changed")
    });
    // And nothing new gets through.
    let r = curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]);
    assert_ne!(r.code, 0);
}

/// psql through `ward agent forward` to the local PostgreSQL (needs WARD_TEST_POSTGRES and psql).
#[test]
fn psql_through_a_port_forward() {
    let Some(db) = Db::postgres() else {
        eprintln!("skipped: set WARD_TEST_POSTGRES to run it");
        return;
    };
    if !have("psql") {
        panic!("psql is needed when WARD_TEST_POSTGRES is set");
    }
    let pg_port = std::env::var("WARD_TEST_POSTGRES")
        .ok()
        .and_then(|u| {
            u.rsplit_once(':')
                .and_then(|(_, rest)| rest.split('/').next().and_then(|p| p.parse::<u16>().ok()))
        })
        .unwrap_or(5432);
    let mut spec = ServerSpec::new(&db);
    let server = spec.start();
    let ctl = admin(server.url());
    let code = set_up_policy(&ctl, 1, 2);
    let pg = pg_port.to_string();
    ctl.run(&["app", "create", "pg", "--address", "127.0.0.1", "--ports", &pg], None)
        .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "5",
            "--action",
            "allow",
            "--app",
            "pg",
            "--user",
            "alice",
        ],
        None,
    )
    .ok();
    let work = tempfile::tempdir().unwrap();
    let agent_ = enrol_and_start_agent(server.url(), &code, work.path());
    let local = free_port();
    let mut cmd = Command::new(ward());
    cmd.args(["agent", "forward"])
        .arg(format!("127.0.0.1:{local}"))
        .arg(format!("127.0.0.1:{pg_port}"));
    cmd.arg("--state-dir").arg(&agent_.state);
    let _forward = Proc::spawn("ward agent forward", cmd);
    wait_until("the forward", Duration::from_secs(20), || is_listening(local));
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &local.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "select 40 + 2",
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the psql record", Duration::from_secs(15), || {
        access_records(&ctl)
            .iter()
            .any(|r| r["port"] == pg_port && r["action"] == "allow")
    });
}

/// A standalone gateway, killed with SIGKILL in the middle of a transfer and
/// restarted, loses no access record and stores none twice.
#[test]
fn standalone_gateway_killed_loses_no_record() {
    if !have("curl") {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let allowed = http_upstream("through the standalone gateway");
    let slow = slow_upstream();
    let gw_port = free_port();
    let mut spec = ServerSpec::new(&Db::sqlite())
        .arg("--gateway-advertise")
        .arg(format!("127.0.0.1:{gw_port}"));
    let server = spec.start();
    let op = Ctl::new();
    op.login(server.url(), "op", "system", "operator", PASSWORD).ok();
    let out = op.run(&["gateway", "join-code", "edge-1"], None);
    out.ok();
    let join_code = out.stdout.split_whitespace().last().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    let gw_state = work.path().join("gateway");
    let start_gateway = |code: Option<&str>| {
        let mut cmd = Command::new(ward());
        cmd.args(["gateway", "--server", server.url(), "--listen"])
            .arg(format!("127.0.0.1:{gw_port}"));
        cmd.arg("--state-dir").arg(&gw_state);
        if let Some(c) = code {
            cmd.args(["--join-code", c]);
        }
        let p = Proc::spawn("ward gateway", cmd);
        wait_until("the standalone gateway", Duration::from_secs(20), || {
            is_listening(gw_port)
        });
        p
    };
    let mut gateway = start_gateway(Some(&join_code));

    let ctl = admin(server.url());
    let code = set_up_policy(&ctl, allowed, 1);
    let slow_port = slow.to_string();
    ctl.run(
        &["app", "create", "slow", "--address", "127.0.0.1", "--ports", &slow_port],
        None,
    )
    .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "20",
            "--action",
            "allow",
            "--app",
            "slow",
        ],
        None,
    )
    .ok();
    let agent_ = enrol_and_start_agent(server.url(), &code, work.path());
    let socks = format!("127.0.0.1:{}", agent_.socks);
    // The gateway follows the server's snapshots: wait until it knows the rules.
    wait_until("the gateway to allow", Duration::from_secs(20), || {
        curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]).code == 0
    });
    for _ in 0..3 {
        assert_eq!(
            curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]).code,
            0
        );
    }
    // A transfer in flight when the gateway is killed.
    let socks_ = socks.clone();
    let transfer = std::thread::spawn(move || {
        curl(&[
            "-o",
            "/dev/null",
            "--socks5-hostname",
            &socks_,
            &format!("http://127.0.0.1:{slow}/"),
        ])
        .code
    });
    std::thread::sleep(Duration::from_millis(1500));
    gateway.kill9();
    assert_ne!(transfer.join().unwrap(), 0, "the transfer broke with the gateway");
    // Restarted without a join code: it keeps its identity, its spool and its last snapshot.
    let _gateway = start_gateway(None);
    wait_until("the agent to reconnect", Duration::from_secs(30), || {
        curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]).code == 0
    });
    wait_until("every record", Duration::from_secs(30), || {
        let recs = access_records(&ctl);
        recs.iter().any(|r| r["port"] == slow)
            && recs
                .iter()
                .filter(|r| r["port"] == allowed && r["action"] == "allow")
                .count()
                >= 5
    });
    // Internet rules reach the standalone gateway too, their list by digest:
    // fetched once from the server and kept in the gateway's spool.
    ctl.run(
        &[
            "domain-list",
            "create",
            "edge-blocked",
            "--domain",
            "blocked-by-edge.test",
        ],
        None,
    )
    .ok();
    ctl.run(
        &[
            "internet",
            "rule",
            "create",
            "--priority",
            "1",
            "--action",
            "block",
            "--list",
            "edge-blocked",
        ],
        None,
    )
    .ok();
    let lists_dir = gw_state.join("spool").join("lists");
    wait_until("the edge to block by the fetched list", Duration::from_secs(30), || {
        let refused = curl(&["--socks5-hostname", &socks, "http://blocked-by-edge.test/"]).code != 0;
        let kept = std::fs::read_dir(&lists_dir).is_ok_and(|d| d.count() > 0);
        refused && kept
    });
    wait_until("the edge's block record", Duration::from_secs(30), || {
        let out = ctl.run(&["logs", "web", "-o", "json", "--action", "block"], None);
        out.json().as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["dest_host"] == "blocked-by-edge.test" && r["rule_id"].is_string())
        })
    });
    let recs = access_records(&ctl);
    let mut ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no record stored twice");
    let killed: Vec<_> = recs.iter().filter(|r| r["port"] == slow).collect();
    assert_eq!(
        killed.len(),
        1,
        "exactly one record for the killed transfer: {killed:?}"
    );
    assert_eq!(killed[0]["end"], "gateway_restart");
    let out = op.run(&["gateway", "list", "-o", "json"], None);
    assert_eq!(out.json()[0]["name"], "edge-1");
    // The standalone gateway reports what it has open.
    wait_until("edge-1's status report", Duration::from_secs(30), || {
        let g = op.run(&["gateway", "list", "-o", "json"], None).json()[0].clone();
        g["last_report_at"].is_string() && g["tunnels_open"].is_u64() && g["connections_open"].is_u64()
    });
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).unwrap_or_else(|| panic!("no form in {html}")) + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// `ward agent enroll` without a code: the agent prints a short code; alice
/// signs in to the portal with curl (cookies, forms) and approves it; the
/// agent, still running, finishes enrolling by itself.
#[test]
fn an_agent_enrols_through_the_portal() {
    if !have("curl") {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let db = Db::sqlite();
    let mut spec = ServerSpec::new(&db);
    let server = spec.start();
    let url = server.url().to_owned();
    let ctl = admin(&url);
    ctl.run(&["user", "create", "alice"], None).ok();
    ctl.run(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("alice-password\n"),
    )
    .ok();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let mut cmd = Command::new(ward());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") {
            cmd.env_remove(&key);
        }
    }
    let mut agent = cmd
        .args(["agent", "enroll", "--server", &url, "--state-dir"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The agent's instructions, up to its code.
    let mut out = agent.stdout.take().unwrap();
    let mut printed = String::new();
    let started = Instant::now();
    let user_code = loop {
        let mut buf = [0u8; 256];
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the agent ended before printing a code: {printed}");
        printed.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(line) = printed.lines().find(|l| l.starts_with("Code: ") && l.len() >= 15) {
            break line["Code: ".len()..].trim().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no code: {printed}");
    };
    assert!(printed.contains(&format!("{url}/portal/activate")), "{printed}");

    // alice, in the portal, with a real HTTP client.
    let jar = dir.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let login = curl(&["-c", jar, "-b", jar, &format!("{url}/portal/login")]);
    assert_eq!(login.code, 0);
    let signed_in = curl(&[
        "-c",
        jar,
        "-b",
        jar,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--data-urlencode",
        &format!("csrf={}", csrf_of(&login.stdout)),
        "--data-urlencode",
        "tenant=default",
        "--data-urlencode",
        "username=alice",
        "--data-urlencode",
        "password=alice-password",
        &format!("{url}/portal/login"),
    ]);
    assert!(signed_in.stdout.starts_with("303"), "{}", signed_in.stdout);
    let ask = curl(&["-c", jar, "-b", jar, &format!("{url}/portal/activate?code={user_code}")]);
    assert!(ask.stdout.contains("Enrol this device as yours?"), "{}", ask.stdout);
    let approved = curl(&[
        "-c",
        jar,
        "-b",
        jar,
        "--data-urlencode",
        &format!("csrf={}", csrf_of(&ask.stdout)),
        "--data-urlencode",
        &format!("code={user_code}"),
        "--data-urlencode",
        "decision=approve",
        &format!("{url}/portal/activate"),
    ]);
    assert!(approved.stdout.contains("Approved"), "{}", approved.stdout);

    // The agent finishes on its own.
    wait_until("the agent to finish enrolling", Duration::from_secs(30), || {
        matches!(agent.try_wait(), Ok(Some(_)))
    });
    let status = agent.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{printed}{rest}");
    let (code, text) = run_agent(&["status", "--state-dir", state.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, Some(0), "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["device"]["user"], "alice", "{report:#}");
    let devices = ctl.run(&["device", "list", "-o", "json"], None);
    devices.ok();
    assert_eq!(devices.json().as_array().unwrap().len(), 1);
}

/// Signs `user` in to the portal with curl, keeping the cookies in `jar`.
fn portal_sign_in(url: &str, jar: &str, user: &str, password: &str) {
    let login = curl(&["-c", jar, "-b", jar, &format!("{url}/portal/login")]);
    assert_eq!(login.code, 0);
    let signed_in = curl(&[
        "-c",
        jar,
        "-b",
        jar,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-urlencode",
        &format!("csrf={}", csrf_of(&login.stdout)),
        "--data-urlencode",
        "tenant=default",
        "--data-urlencode",
        &format!("username={user}"),
        "--data-urlencode",
        &format!("password={password}"),
        &format!("{url}/portal/login"),
    ]);
    assert_eq!(signed_in.stdout, "303", "{user} signs in to the portal");
}

/// A portal form post with the page's CSRF token: the HTTP status and body.
fn portal_post(url: &str, jar: &str, page: &str, action: &str, fields: &[&str]) -> (String, String) {
    let html = curl(&["-c", jar, "-b", jar, &format!("{url}{page}")]).stdout;
    let mut args = vec![
        "-c".to_owned(),
        jar.to_owned(),
        "-b".to_owned(),
        jar.to_owned(),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
        "--data-urlencode".to_owned(),
        format!("csrf={}", csrf_of(&html)),
    ];
    for f in fields {
        args.push("--data-urlencode".to_owned());
        args.push((*f).to_owned());
    }
    args.push(format!("{url}{action}"));
    let r = curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (body, status) = r.stdout.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

/// Starts a slow transfer through the agent; returns its thread (exit code of curl).
fn slow_transfer(socks: &str, slow: u16) -> std::thread::JoinHandle<i32> {
    let socks = socks.to_owned();
    std::thread::spawn(move || {
        curl(&[
            "-o",
            "/dev/null",
            "--socks5-hostname",
            &socks,
            &format!("http://127.0.0.1:{slow}/"),
        ])
        .code
    })
}

/// Device sessions end to end: alice signs her device out in the portal and
/// its open transfer is cut and new connections are refused
/// (`device_signed_out`); `ward agent login`, approved by alice in the
/// portal (bob may not), opens it again; `ward agent logout` cuts it again.
#[test]
fn signing_a_device_out_cuts_it_and_agent_login_brings_it_back() {
    if !have("curl") {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let db = Db::sqlite();
    let allowed = http_upstream("hello through ward");
    let slow = slow_upstream();
    let mut spec = ServerSpec::new(&db);
    let server = spec.start();
    let url = server.url().to_owned();
    let ctl = admin(&url);
    let code = set_up_policy(&ctl, allowed, free_port());
    let slow_port = slow.to_string();
    ctl.run(
        &["app", "create", "slow", "--address", "127.0.0.1", "--ports", &slow_port],
        None,
    )
    .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "20",
            "--action",
            "allow",
            "--app",
            "slow",
        ],
        None,
    )
    .ok();
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        ctl.run(&["user", "create", user], None);
        ctl.run(
            &["user", "passwd", user, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .ok();
    }
    let settings = ctl.run(
        &["tenant", "settings", "--device-session-hours", "12", "-o", "json"],
        None,
    );
    settings.ok();
    assert_eq!(settings.json()["device_session_hours"], 12);
    let work = tempfile::tempdir().unwrap();
    let agent = enrol_and_start_agent(&url, &code, work.path());
    let state = agent.state.to_str().unwrap().to_owned();
    let socks = format!("127.0.0.1:{}", agent.socks);
    let proxy = format!("http://127.0.0.1:{}", agent.http);
    let reach = || curl(&["--socks5-hostname", &socks, &format!("http://127.0.0.1:{allowed}/")]).code == 0;
    wait_until("the gateway to know the device", Duration::from_secs(10), reach);
    let device = ctl.run(&["device", "list", "-o", "json"], None).json()[0].clone();
    let device_id = device["id"].as_str().unwrap().to_owned();
    assert!(device["session_expires_at"].is_string(), "{device:#}");
    let (code_, text) = run_agent(&["status", "--state-dir", &state]);
    assert_eq!(code_, Some(0), "{text}");
    assert!(text.contains("Session:      signed in until"), "{text}");

    // Bob cannot sign alice's device out.
    let bob_jar = work.path().join("bob-cookies");
    let bob_jar = bob_jar.to_str().unwrap();
    portal_sign_in(&url, bob_jar, "bob", "bob-password");
    let (status, _) = portal_post(
        &url,
        bob_jar,
        "/portal",
        &format!("/portal/devices/{device_id}/signout"),
        &[],
    );
    assert_eq!(status, "404");
    assert!(reach(), "bob's attempt changed nothing");

    // Alice signs it out in the portal: the live transfer is cut, new connections refused.
    let jar = work.path().join("cookies");
    let jar = jar.to_str().unwrap();
    portal_sign_in(&url, jar, "alice", "alice-password");
    let home = curl(&["-b", jar, &format!("{url}/portal")]).stdout;
    assert!(home.contains(&format!("/portal/devices/{device_id}/signout")), "{home}");
    let transfer = slow_transfer(&socks, slow);
    // The open tunnel and transfer show in the gateway list and on the dashboard.
    let op = Ctl::new();
    op.login(&url, "op", "system", "operator", PASSWORD).ok();
    wait_until(
        "the gateway to report the open transfer",
        Duration::from_secs(30),
        || {
            let out = op.run(&["gateway", "list", "-o", "json"], None);
            out.json()
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["id"] == "embedded" && g["tunnels_open"] == 1 && g["connections_open"] == 1)
        },
    );
    let console_jar = work.path().join("console-cookies");
    let console_jar = console_jar.to_str().unwrap();
    let form = curl(&["-c", console_jar, "-b", console_jar, &format!("{url}/login")]).stdout;
    let signed_in = curl(&[
        "-c",
        console_jar,
        "-b",
        console_jar,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-urlencode",
        &format!("csrf={}", csrf_of(&form)),
        "--data-urlencode",
        "tenant=default",
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        &format!("{url}/login"),
    ]);
    assert_eq!(signed_in.stdout, "303");
    let dashboard = curl(&["-b", console_jar, &format!("{url}/")]).stdout;
    let tile = |label: &str| {
        let at = dashboard
            .find(label)
            .unwrap_or_else(|| panic!("no {label} in {dashboard}"));
        dashboard[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(tile("tunnels open now"), "1", "{dashboard}");
    assert_eq!(tile("connections open now"), "1", "{dashboard}");
    let (status, _) = portal_post(
        &url,
        jar,
        "/portal",
        &format!("/portal/devices/{device_id}/signout"),
        &[],
    );
    assert_eq!(status, "303");
    assert_ne!(transfer.join().unwrap(), 0, "the transfer was cut");
    let r = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--proxy",
        &proxy,
        &format!("http://127.0.0.1:{allowed}/"),
    ]);
    assert_eq!(r.stdout, "403");
    wait_until("the refusal's record", Duration::from_secs(15), || {
        access_records(&ctl).iter().any(|r| r["reason"] == "device_signed_out")
    });
    let (_, text) = run_agent(&["status", "--state-dir", &state]);
    assert!(text.contains("signed out; run `ward agent login`"), "{text}");

    // `ward agent login`: bob may not approve it; alice does; it connects again.
    let mut cmd = Command::new(ward());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") {
            cmd.env_remove(&key);
        }
    }
    let mut login = cmd
        .args(["agent", "login", "--state-dir", &state])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = login.stdout.take().unwrap();
    let mut printed = String::new();
    let user_code = loop {
        let mut buf = [0u8; 256];
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "the agent ended before printing a code: {printed}");
        printed.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(line) = printed.lines().find(|l| l.starts_with("Code: ") && l.len() >= 15) {
            break line["Code: ".len()..].trim().to_owned();
        }
    };
    let (status, body) = portal_post(
        &url,
        bob_jar,
        "/portal",
        "/portal/activate",
        &[&format!("code={user_code}"), "decision=approve"],
    );
    assert_eq!(status, "403", "{body}");
    let ask = curl(&["-b", jar, &format!("{url}/portal/activate?code={user_code}")]).stdout;
    assert!(ask.contains("Sign your device in again?"), "{ask}");
    let (status, body) = portal_post(
        &url,
        jar,
        &format!("/portal/activate?code={user_code}"),
        "/portal/activate",
        &[&format!("code={user_code}"), "decision=approve"],
    );
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("signed in again"), "{body}");
    let status = login.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{printed}{rest}");
    assert!(rest.contains("Signed in"), "{printed}{rest}");
    wait_until("the device to connect again", Duration::from_secs(10), reach);
    assert_eq!(
        ctl.run(&["device", "list", "-o", "json"], None).json()[0]["id"],
        device_id.as_str(),
        "no new enrolment"
    );

    // `ward agent logout` cuts it again.
    let transfer = slow_transfer(&socks, slow);
    std::thread::sleep(Duration::from_millis(1500));
    let (code_, text) = run_agent(&["logout", "--state-dir", &state]);
    assert_eq!(code_, Some(0), "{text}");
    assert_ne!(transfer.join().unwrap(), 0, "the transfer was cut");
    assert!(!reach());
}
