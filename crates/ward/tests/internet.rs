//! Internet access control end to end, with the real binary and real peers
//! on loopback: nginx with several virtual hosts standing in for internet
//! sites, dnsmasq serving their names (a local zone), a server whose
//! embedded gateway filters, an enrolled agent, and curl and dig as the
//! user's programs.
//!
//! Needs nginx, dnsmasq, dig and curl (`apt-get install nginx-light
//! dnsmasq-base dnsutils curl`); runs when `WARD_TEST_INTERNET=1` (CI sets
//! it, so a missing tool fails there instead of skipping).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, is_listening, ward, Ctl, Db, ServerSpec, PASSWORD};
use serde_json::Value;

/// The scenarios run one at a time: each starts nginx, dnsmasq, a server
/// and an agent on ports picked free a moment before, and two at once
/// could pick the same one.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn enabled() -> bool {
    if std::env::var("WARD_TEST_INTERNET").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: set WARD_TEST_INTERNET=1 (needs nginx, dnsmasq, dig, curl)");
    false
}

/// A child process killed when dropped.
struct Proc(Child);

impl Proc {
    fn spawn(mut cmd: Command, log: &Path) -> Proc {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WARD_") {
                cmd.env_remove(&key);
            }
        }
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Proc(cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[&str]) -> Run {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn curl(args: &[&str]) -> Run {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    run("curl", &all)
}

/// HTTPS for the sites: nginx's port, and its certificate's chain and key
/// files (signed by a CA the test makes, standing in for a public CA).
struct Tls {
    port: u16,
    chain: PathBuf,
    key: PathBuf,
}

/// nginx with one virtual host per site name, each answering with its name
/// (over HTTPS too, on `tls`'s port, when given).
fn nginx(dir: &Path, port: u16, sites: &[&str], tls: Option<&Tls>) -> Proc {
    let mut servers = String::new();
    for site in sites {
        let listen = match tls {
            Some(tls) => format!(
                "listen 127.0.0.1:{port}; listen 127.0.0.1:{} ssl; ssl_certificate {}; ssl_certificate_key {};",
                tls.port,
                tls.chain.display(),
                tls.key.display()
            ),
            None => format!("listen 127.0.0.1:{port};"),
        };
        // An upload is read whole (proxied, so nginx takes the body) before
        // the answer; a bare `return` would answer before the body is sent.
        servers.push_str(&format!(
            "  server {{ {listen} server_name {site};\n\
             \x20   location /upload {{ client_max_body_size 20m; proxy_pass http://127.0.0.1:{port}/stored; \
             proxy_set_header Host {site}; }}\n\
             \x20   location /stored {{ return 200 \"stored by {site}\\n\"; }}\n\
             \x20   location / {{ return 200 \"this is {site}\\n\"; }} }}\n"
        ));
    }
    // One process (no master): killing it when the scenario ends leaves no
    // orphaned worker behind.
    let conf = format!(
        "master_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n{servers}}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"]);
    let proc = Proc::spawn(cmd, &dir.join("nginx.out"));
    wait_until("nginx", Duration::from_secs(10), || {
        is_listening(port) && tls.is_none_or(|t| is_listening(t.port))
    });
    proc
}

/// dnsmasq answering `name -> 127.0.0.1` for each of `names`, and nothing
/// else (no upstream, no /etc/hosts).
fn dnsmasq(dir: &Path, port: u16, names: &[&str]) -> Proc {
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--user=root",
        "--pid-file",
    ])
    .arg(format!("--port={port}"));
    for name in names {
        cmd.arg(format!("--address=/{name}/127.0.0.1"));
    }
    let proc = Proc::spawn(cmd, &dir.join("dnsmasq.out"));
    wait_until("dnsmasq", Duration::from_secs(10), || {
        run(
            "dig",
            &[
                "+short",
                "+time=1",
                "+tries=1",
                "-p",
                &port.to_string(),
                "@127.0.0.1",
                names[0],
            ],
        )
        .stdout
        .contains("127.0.0.1")
    });
    proc
}

fn agent(args: &[&str]) -> Run {
    let mut cmd = Command::new(ward());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.arg("agent").args(args).stdin(Stdio::null()).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn records(ctl: &Ctl, kind: &str) -> Vec<Value> {
    let out = ctl.run(&["logs", kind, "-o", "json", "--limit", "500"], None);
    out.ok();
    out.json().as_array().unwrap().clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything a scenario runs against, stopped when dropped.
struct Env {
    _nginx: Proc,
    _dns: Proc,
    _server: common::Server,
    _agent: Proc,
    _work: tempfile::TempDir,
    ctl: Ctl,
    web_port: u16,
    proxy_port: u16,
    socks: u16,
    http: u16,
    agent_dns: u16,
}

impl Env {
    fn site(&self, name: &str, path: &str) -> String {
        format!("http://{name}:{}{path}", self.web_port)
    }

    fn dir(&self) -> &Path {
        self._work.path()
    }
}

/// Sites `site-a.test`, `ads.test` (blocked) and `news.test` (warned), a
/// server filtering through its embedded gateway, and alice's agent.
fn set_up() -> Env {
    set_up_with(false).0
}

/// [`set_up`], and with `https`: the sites (and `shop.test`, `bank.test`)
/// over HTTPS too, their certificates from a CA the gateway is told to
/// trust (`--inspection-extra-roots`); the CA's PEM file is returned.
fn set_up_with(https: bool) -> (Env, Option<(PathBuf, u16)>) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (web_port, dns_port) = (free_port(), free_port());
    let sites = [
        "site-a.test",
        "ads.test",
        "news.test",
        "blog.test",
        "shop.test",
        "bank.test",
    ];
    let tls = https.then(|| {
        let ca = ward_pki::CertificateAuthority::generate("Test public sites CA").unwrap();
        let names: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
        let leaf = ca.issue_server(&names, &[], Duration::from_secs(86_400)).unwrap();
        let (chain, key, ca_file) = (dir.join("sites.pem"), dir.join("sites.key"), dir.join("sites-ca.pem"));
        std::fs::write(&chain, &leaf.chain_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        (
            Tls {
                port: free_port(),
                chain,
                key,
            },
            ca_file,
        )
    });
    let nginx = nginx(dir, web_port, &sites, tls.as_ref().map(|(t, _)| t));
    let dns = dnsmasq(dir, dns_port, &sites);

    let proxy_port = free_port();
    let mut spec = ServerSpec::new(&Db::sqlite())
        .arg("--proxy-listen")
        .arg(format!("127.0.0.1:{proxy_port}"))
        .arg("--dns-upstream")
        .arg(format!("127.0.0.1:{dns_port}"))
        // The sites stand in for the internet on loopback.
        .arg("--internet-allow-private");
    if let Some((_, ca_file)) = &tls {
        spec = spec.arg("--inspection-extra-roots").arg(ca_file.to_str().unwrap());
    }
    let server = spec.start();
    let ctl = Ctl::new();
    ctl.login(server.url(), "default", "default", "admin", PASSWORD).ok();
    ctl.run(&["user", "create", "alice"], None).ok();
    ctl.run(&["domain-list", "create", "ads", "--domain", "ads.test"], None)
        .ok();
    ctl.run(
        &["domain-list", "create", "news", "--domain", "news.test,blog.test"],
        None,
    )
    .ok();
    ctl.run(
        &[
            "internet",
            "rule",
            "create",
            "--priority",
            "10",
            "--action",
            "block",
            "--list",
            "ads",
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
            "20",
            "--action",
            "warn",
            "--list",
            "news",
        ],
        None,
    )
    .ok();

    // An enrolled agent with its proxies and its DNS listener.
    let code = ctl.run(&["enroll", "create", "--user", "alice"], None);
    code.ok();
    let code = code.stdout.split_whitespace().last().unwrap().to_owned();
    let state: PathBuf = dir.join("agent");
    let enrolled = agent(&[
        "enroll",
        "--server",
        server.url(),
        "--code",
        &code,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(enrolled.code, 0, "{}{}", enrolled.stdout, enrolled.stderr);
    let (socks, http, agent_dns) = (free_port(), free_port(), free_port());
    let mut cmd = Command::new(ward());
    cmd.arg("agent").arg("up").arg("--state-dir").arg(&state);
    cmd.args(["--socks", &format!("127.0.0.1:{socks}")]);
    cmd.args(["--http", &format!("127.0.0.1:{http}")]);
    cmd.args(["--dns-listen", &format!("127.0.0.1:{agent_dns}")]);
    let agent = Proc::spawn(cmd, &dir.join("agent.out"));
    wait_until("the agent", Duration::from_secs(20), || {
        is_listening(socks) && is_listening(http)
    });
    let env = Env {
        _nginx: nginx,
        _dns: dns,
        _server: server,
        _agent: agent,
        _work: work,
        ctl,
        web_port,
        proxy_port,
        socks,
        http,
        agent_dns,
    };
    // An allowed site, by name, resolved at the gateway through the zone,
    // once the gateway knows the device and the rules (a moment).
    let via_socks = format!("socks5h://127.0.0.1:{socks}");
    wait_until(
        "the gateway to know the device and the rules",
        Duration::from_secs(20),
        || {
            curl(&["-x", &via_socks, &env.site("site-a.test", "/")]).stdout == "this is site-a.test\n"
                && curl(&["-x", &via_socks, &env.site("ads.test", "/")]).code != 0
        },
    );
    let https = tls.map(|(t, ca_file)| (ca_file, t.port));
    (env, https)
}

#[test]
fn sites_through_the_filtering_proxy_and_the_dns_filter() {
    if !enabled() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = set_up();
    let (ctl, dir, web_port, proxy_port, agent_dns) =
        (&env.ctl, env.dir(), env.web_port, env.proxy_port, env.agent_dns);
    let via_http = format!("http://127.0.0.1:{}", env.http);
    let via_socks = format!("socks5h://127.0.0.1:{}", env.socks);
    let site = |name: &str, path: &str| env.site(name, path);

    let a = curl(&["-x", &via_http, &site("site-a.test", "/")]);
    assert_eq!(a.stdout, "this is site-a.test\n", "{}", a.stderr);

    // A blocked site: plain HTTP gets the block page; a tunnel is refused.
    let blocked = curl(&["-x", &via_http, "-w", "\n%{http_code}", &site("ads.test", "/")]);
    assert!(blocked.stdout.ends_with("\n403"), "{}", blocked.stdout);
    assert!(blocked.stdout.contains("ads.test"), "{}", blocked.stdout);
    let tunnel = curl(&["-x", &via_socks, &site("ads.test", "/")]);
    assert_ne!(tunnel.code, 0, "the tunnel to a blocked site must be refused");
    let tunnel = curl(&["-p", "-x", &via_http, &site("ads.test", "/")]);
    assert_ne!(tunnel.code, 0, "a CONNECT to a blocked site must be refused");

    // A warned site: the warning page, its Continue link, then the site.
    let warned = curl(&["-x", &via_http, "-w", "\n%{http_code}", &site("news.test", "/")]);
    assert!(warned.stdout.ends_with("\n403"), "{}", warned.stdout);
    let link = warned
        .stdout
        .split('"')
        .find(|s| s.contains("/.ward/proceed?"))
        .unwrap_or_else(|| panic!("no Continue link in {}", warned.stdout))
        .replace("&amp;", "&");
    let link = if link.starts_with("http") {
        link
    } else {
        site("news.test", &link)
    };
    let proceed = curl(&["-x", &via_http, "-L", &link]);
    assert_eq!(proceed.stdout, "this is news.test\n", "{}", proceed.stderr);
    let again = curl(&["-x", &via_http, &site("news.test", "/")]);
    assert_eq!(again.stdout, "this is news.test\n");

    // A warned site through a tunnel (as HTTPS would go): refused, listed on
    // the agent's page, continued there, then open.
    let tunnel = curl(&["-p", "-x", &via_http, &site("blog.test", "/")]);
    assert_ne!(tunnel.code, 0, "a CONNECT to a warned site is refused until continued");
    let agent_page = format!("http://127.0.0.1:{}/", env.http);
    let page = curl(&[&agent_page]).stdout;
    assert!(page.contains("Continue to blog.test"), "{page}");
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no token in {page}"))
        .to_owned();
    // Another site's form (no token) is refused; so is the page under another name.
    let forged = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "-d",
        "host=blog.test",
        &format!("{agent_page}proceed"),
    ]);
    assert_eq!(forged.stdout, "403");
    let rebound = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "-H",
        "Host: evil.example",
        &agent_page,
    ]);
    assert_eq!(rebound.stdout, "421");
    let continued = curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "-d",
        &format!("host=blog.test&token={token}"),
        &format!("{agent_page}proceed"),
    ]);
    assert_eq!(continued.stdout, "303");
    let open = curl(&["-p", "-x", &via_http, &site("blog.test", "/")]);
    assert_eq!(open.stdout, "this is blog.test\n", "{}", open.stderr);

    // Uploads: the body's SHA-256 and size; a form's file name.
    let file = dir.join("report.csv");
    let content = b"quarter,revenue\nq3,1200\n".repeat(100);
    std::fs::write(&file, &content).unwrap();
    let up = curl(&[
        "-x",
        &via_http,
        "--data-binary",
        &format!("@{}", file.display()),
        "-H",
        "Content-Type: text/csv",
        &site("site-a.test", "/upload"),
    ]);
    assert_eq!(up.stdout, "stored by site-a.test\n", "{}", up.stderr);
    let form = curl(&[
        "-x",
        &via_http,
        "-F",
        &format!("file=@{}", file.display()),
        &site("site-a.test", "/upload/form"),
    ]);
    assert_eq!(form.stdout, "stored by site-a.test\n", "{}", form.stderr);

    // DNS through the agent: answered, blocked, recorded.
    let dig = |name: &str| {
        run(
            "dig",
            &["+time=3", "+tries=1", "-p", &agent_dns.to_string(), "@127.0.0.1", name],
        )
    };
    let answer = dig("site-a.test");
    assert!(answer.stdout.contains("status: NOERROR"), "{}", answer.stdout);
    assert!(answer.stdout.contains("127.0.0.1"), "{}", answer.stdout);
    let answer = dig("ads.test");
    assert!(answer.stdout.contains("status: NXDOMAIN"), "{}", answer.stdout);

    // The explicit proxy port, for a device without the agent.
    let cred = ctl.run(&["user", "proxy-credential", "create", "alice", "-o", "json"], None);
    cred.ok();
    let cred = cred.json();
    let (user, pass) = (cred["username"].as_str().unwrap(), cred["password"].as_str().unwrap());
    let explicit = format!("http://127.0.0.1:{proxy_port}");
    let userpass = format!("{user}:{pass}");
    // The gateway learns the new credential with the next snapshot.
    wait_until("the gateway to know the credential", Duration::from_secs(20), || {
        curl(&["-x", &explicit, "-U", &userpass, &site("site-a.test", "/")]).stdout == "this is site-a.test\n"
    });
    let refused = curl(&[
        "-x",
        &explicit,
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &site("site-a.test", "/"),
    ]);
    assert_eq!(refused.stdout, "407");
    let wrong = curl(&[
        "-x",
        &explicit,
        "-U",
        &format!("{user}:wpx_nope.nope"),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &site("site-a.test", "/"),
    ]);
    assert_eq!(wrong.stdout, "407");
    let blocked = curl(&[
        "-x",
        &explicit,
        "-U",
        &format!("{user}:{pass}"),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &site("ads.test", "/"),
    ]);
    assert_eq!(blocked.stdout, "403");

    // The records: every request and query, with what the issue asks for.
    let started = Instant::now();
    let web = loop {
        let web = records(ctl, "web");
        let complete = web.iter().any(|r| r["upload"]["file_name"] == "report.csv")
            && web
                .iter()
                .any(|r| r["action"] == "proceed" && r["dest_host"] == "blog.test")
            && web
                .iter()
                .any(|r| r["dest_host"] == "site-a.test" && r["device_id"] == "");
        if complete {
            break web;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "records incomplete: {web:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let find = |host: &str, action: &str| {
        web.iter()
            .find(|r| r["dest_host"] == host && r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} record for {host} in {web:#?}"))
    };
    let a = find("site-a.test", "allow");
    assert_eq!(a["user"], "alice");
    assert_eq!(a["kind"], "web");
    assert_eq!(a["port"], web_port);
    let b = find("ads.test", "block");
    assert!(b["rule_id"].as_str().is_some_and(|r| !r.is_empty()), "{b:#?}");
    find("news.test", "warn");
    find("news.test", "proceed");
    let upload = web
        .iter()
        .find(|r| r["upload"]["content_type"] == "text/csv")
        .unwrap_or_else(|| panic!("no upload record in {web:#?}"));
    assert_eq!(upload["upload"]["sha256"], sha256_hex(&content));
    assert_eq!(upload["upload"]["size"], content.len());
    assert_eq!(upload["method"], "POST");
    assert!(upload["url"].as_str().unwrap().ends_with("/upload"), "{upload:#?}");

    let mut dns = Vec::new();
    wait_until("the DNS records", Duration::from_secs(20), || {
        dns = records(ctl, "dns");
        dns.iter().any(|r| r["dest_host"] == "ads.test") && dns.iter().any(|r| r["dest_host"] == "site-a.test")
    });
    let q = dns.iter().find(|r| r["dest_host"] == "ads.test").unwrap();
    assert_eq!(q["action"], "block");
    assert_eq!(q["qtype"], "A");
    let q = dns.iter().find(|r| r["dest_host"] == "site-a.test").unwrap();
    assert_eq!(q["action"], "allow");
    assert!(q["answer"].as_str().unwrap().contains("127.0.0.1"), "{q:#?}");
}

/// The same sites in Chromium, configured by the agent's proxy
/// auto-config file: an allowed site, the block page, the warning page
/// and its Continue button. Needs `WARD_TEST_BROWSER=1` too;
/// `WARD_SCREENSHOTS=DIR` saves `internet-blocked.png` and
/// `internet-warning.png`.
/// Turns inspection on: the do-not-inspect list `banking` names bank.test;
/// shop.test and bank.test are allowed and inspected, ads.test blocked and
/// blog.test warned, both inspected (ahead of the suite's own rules). The
/// inspection CA's file, as an admin downloads it for the endpoints.
fn inspect_sites(env: &Env) -> PathBuf {
    let ctl = &env.ctl;
    ctl.run(&["internet", "settings", "--inspection", "on"], None).ok();
    ctl.run(&["domain-list", "add", "banking", "bank.test"], None).ok();
    for (list, names) in [
        ("shops", "shop.test,bank.test"),
        ("https-ads", "ads.test"),
        ("https-blogs", "blog.test"),
    ] {
        ctl.run(&["domain-list", "create", list, "--domain", names], None).ok();
    }
    for (priority, action, list) in [
        ("1", "block", "https-ads"),
        ("2", "warn", "https-blogs"),
        ("5", "allow", "shops"),
    ] {
        ctl.run(
            &[
                "internet",
                "rule",
                "create",
                "--priority",
                priority,
                "--action",
                action,
                "--list",
                list,
                "--inspect",
            ],
            None,
        )
        .ok();
    }
    let ca = env.dir().join("inspection-ca.pem");
    ctl.run(&["internet", "inspection-ca", "--out", ca.to_str().unwrap()], None)
        .ok();
    ca
}

#[test]
fn https_sites_inspected_through_the_agent() {
    if !enabled() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (env, https) = set_up_with(true);
    let (sites_ca, tls_port) = https.unwrap();
    let sites_ca = sites_ca.to_str().unwrap();
    let ctl = &env.ctl;
    let via_http = format!("http://127.0.0.1:{}", env.http);
    let via_socks = format!("socks5h://127.0.0.1:{}", env.socks);
    let site = |name: &str, path: &str| format!("https://{name}:{tls_port}{path}");

    let ca = inspect_sites(&env);
    let ca = ca.to_str().unwrap();

    // curl trusting the inspection CA: the gateway's certificate for
    // shop.test passes, and the page is the real site's (once the gateway
    // has the new rule).
    let started = Instant::now();
    loop {
        let got = curl(&["-x", &via_http, "--cacert", ca, &site("shop.test", "/")]);
        if got.stdout == "this is shop.test\n" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no inspection at the gateway: {} {}\n{}",
            got.stdout,
            got.stderr,
            env._server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let q = curl(&["-x", &via_socks, "--cacert", ca, &site("shop.test", "/search?q=shoes")]);
    assert_eq!(q.stdout, "this is shop.test\n", "{}", q.stderr);
    // Without the inspection CA the device's check fails (as a browser's would).
    let untrusted = curl(&["-x", &via_http, "--cacert", sites_ca, &site("shop.test", "/")]);
    assert_ne!(
        untrusted.code, 0,
        "shop.test is inspected: its certificate is the gateway's"
    );

    // An upload over HTTPS is recorded like a plain-HTTP one.
    let file = env.dir().join("plans.txt");
    let content = b"confidential plans\n".repeat(500);
    std::fs::write(&file, &content).unwrap();
    let up = curl(&[
        "-x",
        &via_http,
        "--cacert",
        ca,
        "-F",
        &format!("file=@{}", file.display()),
        &site("shop.test", "/upload"),
    ]);
    assert_eq!(up.stdout, "stored by shop.test\n", "{}", up.stderr);

    // Blocked and warned sites with inspection: the pages, over HTTPS.
    let blocked = curl(&[
        "-x",
        &via_http,
        "--cacert",
        ca,
        "-w",
        "\n%{http_code}",
        &site("ads.test", "/"),
    ]);
    assert!(blocked.stdout.ends_with("\n403"), "{}", blocked.stdout);
    assert!(blocked.stdout.contains("Site blocked"), "{}", blocked.stdout);
    let warned = curl(&["-x", &via_http, "--cacert", ca, &site("blog.test", "/")]);
    assert!(warned.stdout.contains("Continue to the site"), "{}", warned.stdout);

    // bank.test is on the do-not-inspect list: its own certificate.
    let bank = curl(&["-x", &via_http, "--cacert", sites_ca, &site("bank.test", "/")]);
    assert_eq!(bank.stdout, "this is bank.test\n", "{}", bank.stderr);
    let bank = curl(&["-x", &via_http, "--cacert", ca, &site("bank.test", "/")]);
    assert_ne!(bank.code, 0, "bank.test is never inspected");

    // The records: by URL, marked inspected, the upload's hash; bank.test
    // one tunnel, not inspected.
    let mut web = Vec::new();
    wait_until("the inspected records", Duration::from_secs(20), || {
        web = records(ctl, "web");
        web.iter().any(|r| r["upload"].is_object() && r["inspected"] == true)
            && web
                .iter()
                .any(|r| r["dest_host"] == "bank.test" && r["bytes_down"].as_u64() > Some(0))
    });
    let search = web
        .iter()
        .find(|r| r["url"] == site("shop.test", "/search?q=shoes").as_str())
        .unwrap_or_else(|| panic!("no record of the search in {web:#?}"));
    assert_eq!(search["inspected"], true);
    assert_eq!(
        (search["method"].as_str(), search["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert_eq!(search["user"], "alice");
    let upload = web.iter().find(|r| r["upload"].is_object()).unwrap();
    assert_eq!(upload["url"], site("shop.test", "/upload").as_str());
    assert_eq!(upload["upload"]["file_name"], "plans.txt");
    assert!(upload["upload"]["size"].as_u64().unwrap() > content.len() as u64);
    assert_eq!(upload["upload"]["sha256"].as_str().unwrap().len(), 64);
    let bank = web.iter().find(|r| r["dest_host"] == "bank.test").unwrap();
    assert!(bank.get("inspected").is_none_or(|v| v == false), "{bank:#?}");
    assert!(bank.get("url").is_none_or(|v| v.is_null()), "{bank:#?}");
    assert!(
        web.iter()
            .any(|r| r["reason"] == "inspection_handshake_failed" && r["dest_host"] == "shop.test"),
        "the untrusted handshake is recorded: {web:#?}"
    );
}

#[test]
fn sites_in_a_browser_through_the_pac_file() {
    if !enabled() {
        return;
    }
    if std::env::var("WARD_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!("skipped: set WARD_TEST_BROWSER=1 too");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = set_up();
    let pac = format!("http://127.0.0.1:{}/proxy.pac", env.http);
    let text = curl(&[&pac]).stdout;
    assert!(text.contains("FindProxyForURL"), "{text}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use common::browser::{chromium, page_text, screenshot, wait_for_text};
        use fantoccini::Locator;
        // Names resolve to nothing in the browser: it must go through the
        // proxy the PAC file names, which resolves them at the gateway.
        let (_driver, c) = chromium(&[
            format!("--proxy-pac-url={pac}"),
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".to_owned(),
        ])
        .await;
        c.goto(&env.site("site-a.test", "/")).await.unwrap();
        wait_for_text(&c, "this is site-a.test").await;

        c.goto(&env.site("ads.test", "/")).await.unwrap();
        wait_for_text(&c, "ads.test").await;
        let blocked = page_text(&c).await;
        assert!(!blocked.contains("this is ads.test"), "{blocked}");
        screenshot(&c, "internet-blocked").await;

        c.goto(&env.site("news.test", "/")).await.unwrap();
        wait_for_text(&c, "news.test").await;
        assert!(!page_text(&c).await.contains("this is news.test"));
        screenshot(&c, "internet-warning").await;
        c.find(Locator::XPath(
            "//a[contains(@href, '/.ward/proceed')] | //button[contains(., 'Continue')]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        wait_for_text(&c, "this is news.test").await;
        let _ = c.close().await;
    });
}

/// The base64 SHA-256 of a PEM certificate's public key, as Chromium's
/// `--ignore-certificate-errors-spki-list` takes it: the test's browser
/// trusts the inspection CA as an endpoint with the CA installed would.
fn spki_hash(pem: &Path) -> String {
    use base64::Engine as _;
    let text = std::fs::read_to_string(pem).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(text.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[test]
fn https_sites_inspected_in_a_browser() {
    if !enabled() {
        return;
    }
    if std::env::var("WARD_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!("skipped: set WARD_TEST_BROWSER=1 too");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (env, https) = set_up_with(true);
    let (_, tls_port) = https.unwrap();
    let ca = inspect_sites(&env);
    let site = |name: &str, path: &str| format!("https://{name}:{tls_port}{path}");
    let pac = format!("http://127.0.0.1:{}/proxy.pac", env.http);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use common::browser::{chromium, page_text, screenshot, wait_for_text};
        use fantoccini::Locator;
        let (_driver, c) = chromium(&[
            format!("--proxy-pac-url={pac}"),
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".to_owned(),
            format!("--ignore-certificate-errors-spki-list={}", spki_hash(&ca)),
        ])
        .await;
        // The gateway has the rules a moment after they are made.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            c.goto(&site("shop.test", "/")).await.unwrap();
            if page_text(&c).await.contains("this is shop.test") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shop.test never opened: {}",
                page_text(&c).await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // A blocked HTTPS site: the block page, in the browser.
        c.goto(&site("ads.test", "/")).await.unwrap();
        wait_for_text(&c, "Site blocked").await;
        assert!(!page_text(&c).await.contains("this is ads.test"));
        screenshot(&c, "internet-https-blocked").await;

        // A warned HTTPS site: the warning, Continue, the site.
        c.goto(&site("blog.test", "/")).await.unwrap();
        wait_for_text(&c, "Continue to the site").await;
        screenshot(&c, "internet-https-warning").await;
        c.find(Locator::XPath("//a[contains(@href, '/.ward/proceed')]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&c, "this is blog.test").await;
        let _ = c.close().await;
    });
}
