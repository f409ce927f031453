//! Helpers for the end-to-end tests: the real `ward` binary, run as
//! subprocesses.
//!
//! - [`Db`]: the database a scenario runs on (the server's own SQLite file,
//!   or a fresh PostgreSQL database when `WARD_TEST_POSTGRES` is set).
//! - [`ServerSpec`] / [`Server`]: `ward server` on a loopback port, waited for
//!   with `GET /readyz`, stopped with SIGTERM; a leftover server is killed
//!   when its [`Server`] is dropped, so a failing test leaves no process.
//! - [`Ctl`] / [`Out`]: `ward ctl` with its own config directory and none of
//!   the caller's `WARD_*` variables.

#![allow(clippy::unwrap_used)]
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_store::testing::TestStore;

pub mod browser;

/// The bootstrap password every scenario's server starts with.
pub const PASSWORD: &str = "Bootstrap-pass-word-1";

/// How long a server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one `ward ctl` (or a server expected to fail) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub fn ward() -> &'static str {
    env!("CARGO_BIN_EXE_ward")
}

/// Removes every `WARD_*` variable (and `RUST_LOG`) the test runner has, so
/// only what a test sets reaches the binary.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARD_") || key == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn is_listening(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(500)).is_ok()
}

/// Sends `GET path HTTP/1.0` in plain text to 127.0.0.1:`port` and returns
/// whatever came back (possibly nothing, or not HTTP at all).
pub fn raw_http_get(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(buf)
}

/// A plain-HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A plain-HTTP `GET path`, if the answer is HTTP.
pub fn http_get(port: u16, path: &str) -> Option<HttpAnswer> {
    let buf = raw_http_get(port, path).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The HTTP status of a plain-HTTP `GET path`, if the answer is HTTP.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path).map(|a| a.status)
}

/// The HTTPS status of `GET path`, checked against the CA in `ca` (by curl).
pub fn https_status(port: u16, path: &str, ca: &Path) -> Option<u16> {
    if !ca.exists() {
        return None;
    }
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Sends SIGTERM (or another signal) to a process by id.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---- databases --------------------------------------------------------------

/// The database of a scenario.
pub struct Db {
    /// `--database` for the server; None for its own SQLite file.
    pub url: Option<String>,
    /// Kept alive for the whole test: dropping it drops the database.
    _pg: Option<TestStore>,
}

impl Db {
    pub fn sqlite() -> Db {
        Db { url: None, _pg: None }
    }

    /// A fresh PostgreSQL database, or None when `WARD_TEST_POSTGRES` is unset.
    pub fn postgres() -> Option<Db> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ts = rt.block_on(async {
            let ts = TestStore::postgres().await?;
            // Only the server under test uses the database.
            ts.store.close().await;
            Some(ts)
        })?;
        Some(Db {
            url: Some(ts.url.clone()),
            _pg: Some(ts),
        })
    }
}

// ---- the server -------------------------------------------------------------

static STARTS: AtomicUsize = AtomicUsize::new(0);

/// How to start `ward server`; `start` may be called again (after the first
/// server stopped) to restart on the same data directory, database and port.
pub struct ServerSpec {
    work: Arc<tempfile::TempDir>,
    data_dir: PathBuf,
    database: Option<String>,
    host: Ipv4Addr,
    port: Option<u16>,
    listen_flag: bool,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    bootstrap_password: Option<String>,
    /// The embedded gateway's port: each server gets its own, so parallel
    /// tests never collide on the default one.
    gateway_port: u16,
}

impl ServerSpec {
    /// Loopback, a data directory of its own, `--database` of `db` (if any),
    /// `WARD_BOOTSTRAP_PASSWORD` = [`PASSWORD`].
    pub fn new(db: &Db) -> ServerSpec {
        let work = tempfile::tempdir().unwrap();
        let data_dir = work.path().join("data");
        ServerSpec {
            work: Arc::new(work),
            data_dir,
            database: db.url.clone(),
            host: Ipv4Addr::LOCALHOST,
            port: None,
            listen_flag: true,
            args: Vec::new(),
            envs: Vec::new(),
            bootstrap_password: Some(PASSWORD.to_owned()),
            gateway_port: free_port(),
        }
    }

    /// The embedded gateway's port.
    pub fn gateway_port(&self) -> u16 {
        self.gateway_port
    }

    /// Another server's data directory and database.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory that lives as long as the spec.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// Listen on `0.0.0.0` (HTTPS with Ward's own CA) instead of 127.0.0.1.
    pub fn all_interfaces(mut self) -> Self {
        self.host = Ipv4Addr::UNSPECIFIED;
        self
    }

    /// The port to poll (and, with the `--listen` flag, to pass).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Do not pass `--listen` (the port then comes from a file or the environment).
    pub fn without_listen_flag(mut self) -> Self {
        self.listen_flag = false;
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// Let the server generate (and print) the bootstrap passwords.
    pub fn without_bootstrap_password(mut self) -> Self {
        self.bootstrap_password = None;
        self
    }

    pub fn is_tls(&self) -> bool {
        !self.host.is_loopback()
    }

    fn command(&self, port: Option<u16>) -> Command {
        let mut cmd = Command::new(ward());
        clean_env(&mut cmd);
        cmd.arg("server").arg("--data-dir").arg(&self.data_dir);
        if let Some(port) = port.filter(|_| self.listen_flag) {
            cmd.arg("--listen").arg(format!("{}:{port}", self.host));
        }
        if let Some(db) = &self.database {
            cmd.arg("--database").arg(db);
            // Servers sharing a database share the master key, as replicas must.
            cmd.env("WARD_MASTER_KEY", "d2FyZC10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=");
        }
        if !self.args.iter().any(|a| a == "--gateway-listen") {
            cmd.arg("--gateway-listen")
                .arg(format!("127.0.0.1:{}", self.gateway_port));
        }
        cmd.args(&self.args);
        if let Some(p) = &self.bootstrap_password {
            cmd.env("WARD_BOOTSTRAP_PASSWORD", p);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ward server` expecting it to exit by itself (bad configuration).
    pub fn run_to_exit(&self) -> Out {
        let port = self.port.unwrap_or_else(free_port);
        let mut out = run_with_timeout(self.command(Some(port)), None);
        out.what = "ward server".to_owned();
        out
    }

    /// Starts the server and waits until `/readyz` answers 200. The port is
    /// chosen on the first start and kept for restarts.
    pub fn start(&mut self) -> Server {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = self.port.unwrap_or_else(free_port);
            match self.try_start(port) {
                Ok(server) => {
                    self.port = Some(port);
                    return server;
                }
                // Another process took the free port in between: try another.
                Err(stderr) if stderr.contains("cannot listen") && self.port.is_none() && attempts < 5 => {}
                Err(stderr) => panic!("ward server did not start on port {port}:\n{stderr}"),
            }
        }
    }

    /// The server logs the store it uses: make sure it is the one intended.
    fn check_backend(&self, server: &Server) {
        let expected = match &self.database {
            Some(url) if url.starts_with("postgres") => "postgres",
            _ => "sqlite",
        };
        let stderr = server.stderr();
        // Absent when the log level is above info.
        let Some(line) = stderr.lines().find(|l| l.contains("ward server listening")) else {
            return;
        };
        assert!(
            line.contains(&format!("\"{expected}\"")),
            "the server should use {expected}: {line}"
        );
    }

    fn try_start(&self, port: u16) -> Result<Server, String> {
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let stdout_path = self.work.path().join(format!("server-{n}.stdout"));
        let stderr_path = self.work.path().join(format!("server-{n}.stderr"));
        let mut cmd = self.command(Some(port));
        cmd.stdout(std::fs::File::create(&stdout_path).unwrap());
        cmd.stderr(std::fs::File::create(&stderr_path).unwrap());
        let child = cmd.spawn().unwrap();
        let scheme = if self.is_tls() { "https" } else { "http" };
        let mut server = Server {
            child: Some(child),
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
            data_dir: self.data_dir.clone(),
            stdout_path,
            stderr_path,
            _work: self.work.clone(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                server.child = None;
                return Err(format!("exited with {status}; stderr:\n{}", server.stderr()));
            }
            let status = if self.is_tls() {
                https_status(port, "/readyz", &server.ca_path())
            } else {
                http_status(port, "/readyz")
            };
            // The banner follows the listener by a moment: wait for both.
            if status == Some(200) && server.stdout().contains("Sign in") {
                self.check_backend(&server);
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready within {READY_TIMEOUT:?} (last /readyz: {status:?}); stderr:\n{}",
                    server.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `ward server`.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    url: String,
    data_dir: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _work: Arc<tempfile::TempDir>,
}

impl Server {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where Ward's own CA certificate is kept.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("pki").join("ca.pem")
    }

    /// Everything the server printed on standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything the server printed on standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then wait; returns the exit status and how long it took.
    pub fn stop(&mut self) -> (ExitStatus, Duration) {
        let started = self.terminate();
        self.wait_exit(started)
    }

    /// Sends SIGTERM; returns when.
    pub fn terminate(&self) -> Instant {
        let child = self.child.as_ref().expect("the server is running");
        let started = Instant::now();
        signal(child.id(), "TERM");
        started
    }

    /// Waits for the server to exit after [`Server::terminate`]; returns
    /// the exit status and the time since `started`.
    pub fn wait_exit(&mut self, started: Instant) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("the server is running");
        let deadline = started + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ward server did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `ward ARGS...` (not `ward ctl`), with none of the caller's `WARD_*` variables.
pub fn run_ward(args: &[&str]) -> Out {
    let mut cmd = Command::new(ward());
    clean_env(&mut cmd);
    cmd.args(args);
    let mut out = run_with_timeout(cmd, None);
    out.what = format!("ward {}", args.join(" "));
    out
}

// ---- the client -------------------------------------------------------------

/// `ward ctl` with a config directory of its own.
#[derive(Clone)]
pub struct Ctl {
    config_dir: Arc<tempfile::TempDir>,
    envs: Vec<(String, String)>,
}

impl Default for Ctl {
    fn default() -> Self {
        Ctl::new()
    }
}

impl Ctl {
    pub fn new() -> Ctl {
        Ctl {
            config_dir: Arc::new(tempfile::tempdir().unwrap()),
            envs: Vec::new(),
        }
    }

    /// The same config directory, plus an environment variable.
    pub fn with_env(&self, key: &str, value: &str) -> Ctl {
        let mut c = self.clone();
        c.envs.push((key.to_owned(), value.to_owned()));
        c
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.path().join("config.toml")
    }

    /// Runs `ward ctl ARGS...` with `stdin` (if any) on standard input.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        self.run_in(None, args, stdin)
    }

    /// [`Ctl::run`] in the working directory `cwd`.
    pub fn run_in(&self, cwd: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(ward());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        clean_env(&mut cmd);
        cmd.arg("ctl").args(args);
        cmd.env("WARD_CONFIG_DIR", self.config_dir.path());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut out = run_with_timeout(cmd, stdin);
        out.what = format!("ward ctl {}", args.join(" "));
        out
    }

    /// `login --tenant T --user U --password-stdin` into profile `profile`.
    pub fn login(&self, server: &str, profile: &str, tenant: &str, user: &str, pw: &str) -> Out {
        self.run(
            &[
                "--server",
                server,
                "--profile",
                profile,
                "login",
                "--tenant",
                tenant,
                "--user",
                user,
                "--password-stdin",
            ],
            Some(&format!("{pw}\n")),
        )
    }
}

/// Runs a command to its end (killing it after [`COMMAND_TIMEOUT`]).
fn run_with_timeout(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The command may exit without reading; that is its business.
        let _ = pipe.write_all(input.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(result) => result.unwrap(),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
    };
    Out {
        what: format!("{cmd:?}"),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success with nothing on standard error.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.is_empty(),
            "{} succeeded but wrote on stderr: {}",
            self.what,
            self.stderr
        );
        self
    }

    /// Asserts success and parses standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }

    /// Asserts failure (exit code 1) with exactly one line `error: ...` on
    /// standard error and nothing on standard output; returns that line.
    #[track_caller]
    pub fn error_line(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "{} should have failed with exit code 1:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "{} failed but wrote on stdout: {}",
            self.what,
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one line on stderr, got: {:?}",
            self.what,
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "{}: the error line should start with `error: `: {:?}",
            self.what,
            lines[0]
        );
        lines[0]
    }

    /// For `ward server`, which may log before it fails: asserts failure
    /// with nothing on standard output, and exactly one `error: ...` line on
    /// standard error, the last one (any others are log lines); returns it.
    #[track_caller]
    pub fn server_error_line(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "{} should have failed with exit code 1:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "{} failed but wrote on stdout: {}",
            self.what,
            self.stdout
        );
        let errors: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(
            errors.len(),
            1,
            "{}: expected one error line: {:?}",
            self.what,
            self.stderr
        );
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "{}: the error should come last: {:?}",
            self.what,
            self.stderr
        );
        assert!(errors[0].starts_with("error: "), "{}: {:?}", self.what, errors[0]);
        errors[0]
    }

    /// [`Out::server_error_line`], also asserting it contains every one of `words`.
    #[track_caller]
    pub fn server_fails_with(&self, words: &[&str]) -> &str {
        let line = self.server_error_line();
        for w in words {
            assert!(
                line.contains(w),
                "{}: the error should mention {w:?}: {line}",
                self.what
            );
        }
        line
    }

    /// [`Out::error_line`], also asserting it contains every one of `words`.
    #[track_caller]
    pub fn fails_with(&self, words: &[&str]) -> &str {
        let line = self.error_line();
        for w in words {
            assert!(
                line.contains(w),
                "{}: the error should mention {w:?}: {line}",
                self.what
            );
        }
        line
    }
}

/// The array items of a JSON list output.
#[track_caller]
pub fn items(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v.as_array().unwrap_or_else(|| panic!("expected a JSON array: {v}"))
}

/// The `name` fields of a JSON list.
#[track_caller]
pub fn names(v: &serde_json::Value) -> Vec<String> {
    items(v)
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}
