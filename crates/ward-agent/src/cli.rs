//! `ward agent ...`: the agent's command line, for the `ward` binary.
//!
//! ```text
//! ward agent enroll --server URL --code CODE [--state-dir DIR] [--force]
//! ward agent up [--state-dir DIR] [--socks ADDR] [--http ADDR] [--dns-listen ADDR]
//! ward agent forward LOCAL_ADDR HOST:PORT [--state-dir DIR]
//! ward agent status [--state-dir DIR] [-o text|json]
//! ward agent login [--state-dir DIR]
//! ward agent logout [--state-dir DIR]
//! ```
//!
//! The binary parses [`AgentArgs`] and awaits [`run`], which prints one
//! `error: ...` line on failure. Logging goes through `tracing`; the binary
//! installs the subscriber.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;
use ward_api::Posture;

use crate::proxy::Target;
use crate::state::{resolve_state_dir, AgentState, DeviceInfo};
use crate::status::AgentStatus;
use crate::up::{self, UpOptions, DEFAULT_HTTP, DEFAULT_SOCKS};

/// `ward agent`: the endpoint agent.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Enrol this device with a one-time code from an administrator.
    Enroll(EnrollArgs),
    /// Serve the local SOCKS5 and HTTP proxies, carried through the gateway.
    Up(UpArgs),
    /// Carry every connection to LOCAL_ADDR to HOST:PORT through the gateway.
    Forward(ForwardArgs),
    /// Show the enrolment, certificate, session, posture, and whether `up` is running.
    Status(StatusArgs),
    /// Sign this device in again (renew its user session): approve the code
    /// it shows in the user portal. No new enrolment.
    Login(StateOnlyArgs),
    /// Sign this device out: gateways refuse it and close its connections
    /// until `ward agent login`.
    Logout(StateOnlyArgs),
}

#[derive(Debug, clap::Args)]
pub struct StateOnlyArgs {
    #[command(flatten)]
    pub state: StateDirArg,
}

/// `--state-dir`, common to every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// The agent's state directory [default: $XDG_STATE_HOME/ward or ~/.local/state/ward].
    #[arg(long, value_name = "DIR", env = "WARD_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The Ward server's URL, e.g. https://ward.example.com:7600.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The enrolment code (`wen_...`) the administrator gave you. Without
    /// one, the agent asks the server and shows a short code to approve in
    /// the user portal (`/portal/activate`).
    #[arg(long, value_name = "CODE", env = "WARD_ENROLL_CODE", hide_env_values = true)]
    pub code: Option<String>,
    /// Without a code: the fingerprint (`sha256:...`) of the server's CA,
    /// which `ward server` prints, for a server the system does not trust.
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "code")]
    pub pin: Option<String>,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Replace an existing enrolment in the state directory.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub state: StateDirArg,
    /// Where the SOCKS5 proxy listens.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_SOCKS, value_parser = parse_local_addr)]
    pub socks: SocketAddr,
    /// Where the HTTP proxy listens.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP, value_parser = parse_local_addr)]
    pub http: SocketAddr,
    /// Serve DNS here (UDP and TCP), answered by the gateway's DNS filter
    /// [default: none]; e.g. `127.0.0.1:53`.
    #[arg(long, value_name = "ADDR", value_parser = parse_local_addr)]
    pub dns_listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The local address to listen on: `127.0.0.1:5432`, or a port alone.
    #[arg(value_name = "LOCAL_ADDR", value_parser = parse_local_addr)]
    pub local: SocketAddr,
    /// The destination, reached from the gateway: `db.internal:5432`.
    #[arg(value_name = "HOST:PORT")]
    pub target: Target,
    #[command(flatten)]
    pub state: StateDirArg,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateDirArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `ADDR` or a bare port (on 127.0.0.1).
pub fn parse_local_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an address such as 127.0.0.1:1080 (or a port)"))
}

/// Runs a `ward agent` command. Prints one `error: ...` line and returns
/// failure when it fails.
pub async fn run(args: AgentArgs) -> ExitCode {
    match dispatch(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: AgentArgs) -> anyhow::Result<()> {
    match args.command {
        AgentCommand::Enroll(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            if !a.force {
                if let Ok(existing) = crate::state::AgentState::load(&dir) {
                    return Err(crate::enroll::EnrollError::AlreadyEnrolled {
                        dir,
                        device: existing.device.device_id,
                        tenant: existing.device.tenant,
                    }
                    .into());
                }
            }
            let code = match a.code {
                Some(code) => code,
                None => {
                    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
                    crate::enroll::request_code(
                        &a.server,
                        a.pin.as_deref(),
                        |ask| {
                            println!("To enrol this device, open this page, sign in and approve it:");
                            println!("  {}", ask.verify_url_complete);
                            println!("or open {} and enter the code {}", ask.verify_url, ask.user_code);
                            println!("Code: {}", ask.user_code);
                            println!("Waiting for approval (until {})...", ask.expires_at);
                            let _ = std::io::Write::flush(&mut std::io::stdout());
                        },
                        |elapsed| {
                            if tty {
                                eprint!("\r  waiting {:>3} s", elapsed.as_secs());
                            }
                        },
                    )
                    .await?
                }
            };
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!();
            }
            let state = crate::enroll::enroll(&a.server, &code, &dir, a.force).await?;
            print!("{}", enrol_summary(&state));
            Ok(())
        }
        AgentCommand::Up(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            let opts = UpOptions {
                socks: Some(a.socks),
                http: Some(a.http),
                dns: a.dns_listen,
                ..UpOptions::new(dir)
            };
            serve_until_signal(opts).await
        }
        AgentCommand::Forward(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            serve_until_signal(UpOptions::forward(dir, a.local, a.target)).await
        }
        AgentCommand::Login(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let until = crate::enroll::login(
                &dir,
                |ask| {
                    println!("To sign this device in, open this page, sign in and approve it:");
                    println!("  {}", ask.verify_url_complete);
                    println!("or open {} and enter the code {}", ask.verify_url, ask.user_code);
                    println!("Code: {}", ask.user_code);
                    println!("Waiting for approval (until {})...", ask.expires_at);
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                },
                |elapsed| {
                    if tty {
                        eprint!("\r  waiting {:>3} s", elapsed.as_secs());
                    }
                },
            )
            .await?;
            if tty {
                eprintln!();
            }
            println!("Signed in: this device's session lasts until {until}.");
            Ok(())
        }
        AgentCommand::Logout(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            crate::enroll::logout(&dir).await?;
            println!("Signed out: gateways refuse this device until `ward agent login`.");
            Ok(())
        }
        AgentCommand::Status(a) => {
            let dir = resolve_state_dir(a.state.state_dir.as_deref())?;
            let mut report = status_report(&dir)?;
            // The server's word on the session, when it answers quickly;
            // otherwise what it last said.
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(3), crate::enroll::session(&dir)).await {
                report.session_expires_at = s.session_expires_at;
                report.session_checked = true;
            }
            match a.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Text => print!("{}", render_status(&report)),
            }
            Ok(())
        }
    }
}

async fn serve_until_signal(opts: UpOptions) -> anyhow::Result<()> {
    let running = up::start(opts).await?;
    let state = running.agent().state()?;
    let d = &state.device;
    println!(
        "ward agent: device {} of {} in tenant {}, through the gateway at {}",
        d.device_id, d.user, d.tenant, d.gateway
    );
    if let Some(addr) = running.socks_addr() {
        println!("  SOCKS5 proxy:  {addr}  (e.g. curl --socks5-hostname {addr} ...)");
    }
    if let Some(addr) = running.http_addr() {
        println!("  HTTP proxy:    {addr}  (e.g. https_proxy=http://{addr})");
    }
    if let Some(addr) = running.dns_addr() {
        println!(
            "  DNS:           {addr}  (e.g. dig @{} -p {} example.com)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(status) = running.agent().status(true).forwards.first() {
        println!("  forwarding:    {status}");
    }
    wait_for_signal().await?;
    println!("stopping");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// What `enroll` prints.
pub fn enrol_summary(state: &AgentState) -> String {
    let d = &state.device;
    let compliant = if d.compliant {
        "yes".to_owned()
    } else {
        "no: the device does not meet the tenant's posture requirements (see `ward agent status`)".to_owned()
    };
    format!(
        "Enrolled device {} for user {} in tenant {}.\n  \
         gateway:      {}\n  \
         certificate:  expires {}\n  \
         compliant:    {compliant}\n  \
         state:        {}\n\
         Next: ward agent up{}\n",
        d.device_id,
        d.user,
        d.tenant,
        d.gateway,
        d.cert_expires_at,
        state.dir().display(),
        state_dir_flag(state.dir()),
    )
}

/// ` --state-dir DIR` when `dir` is not the default.
fn state_dir_flag(dir: &Path) -> String {
    match crate::state::default_state_dir() {
        Ok(default) if default == dir => String::new(),
        _ => format!(" --state-dir {}", dir.display()),
    }
}

/// Everything `ward agent status` shows (`-o json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_dir: String,
    /// The enrolment (`device.json`, without the server CA).
    pub device: DeviceInfo,
    /// When the certificate in `device.crt` expires (RFC 3339).
    pub cert_not_after: Option<String>,
    /// Seconds until then (negative once it has expired).
    pub cert_expires_in_secs: Option<i64>,
    /// When the device's user session ends (RFC 3339); absent: signed out.
    pub session_expires_at: Option<String>,
    /// Whether the server confirmed the session just now (else it is what
    /// the server last said).
    pub session_checked: bool,
    /// The posture as collected now.
    pub posture: Posture,
    /// Whether `ward agent up` is running (its `status.json` is fresh).
    pub running: bool,
    /// The last `status.json`, fresh or not.
    pub agent: Option<AgentStatus>,
}

/// Builds the status report of a state directory.
pub fn status_report(dir: &Path) -> anyhow::Result<StatusReport> {
    let state = AgentState::load(dir)?;
    let mut device = state.device.clone();
    device.server_ca_pem = None;
    let not_after = state
        .cert_pem()
        .ok()
        .and_then(|pem| up::cert_validity(&pem).ok())
        .map(|(_, not_after)| not_after);
    let cert_expires_in_secs = not_after.map(|t| match t.duration_since(SystemTime::now()) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    });
    let cert_not_after = not_after.map(|t| crate::rfc3339(time::OffsetDateTime::from(t)));
    let agent = AgentStatus::read(dir);
    let running = agent.as_ref().is_some_and(|a| a.is_live(crate::now_ms()));
    let session_expires_at = state.device.session_expires_at.clone();
    Ok(StatusReport {
        session_expires_at,
        session_checked: false,
        state_dir: dir.display().to_string(),
        device,
        cert_not_after,
        cert_expires_in_secs,
        posture: crate::posture::collect(),
        running,
        agent,
    })
}

/// `ward agent status` as text.
pub fn render_status(r: &StatusReport) -> String {
    use std::fmt::Write;
    let d = &r.device;
    let mut out = String::new();
    let yes_no = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    let _ = writeln!(out, "Device:       {} ({})", d.device_id, r.posture.hostname);
    let _ = writeln!(out, "User:         {}", d.user);
    let _ = writeln!(out, "Tenant:       {}", d.tenant);
    let _ = writeln!(out, "Server:       {}", d.server);
    let _ = writeln!(out, "Gateway:      {}", d.gateway);
    let expires_at = r.cert_not_after.as_deref().unwrap_or(&d.cert_expires_at);
    let expiry = match r.cert_expires_in_secs {
        Some(s) if s >= 0 => format!("{expires_at} (in {})", human(Duration::from_secs(s.unsigned_abs()))),
        Some(s) => format!(
            "{expires_at} (EXPIRED {} ago; start `ward agent up` to renew, or enrol again)",
            human(Duration::from_secs(s.unsigned_abs()))
        ),
        None => format!("{} (cannot read device.crt)", d.cert_expires_at),
    };
    let _ = writeln!(out, "Certificate:  expires {expiry}");
    let as_of = if r.session_checked { "" } else { " (as last known)" };
    let left = |t: &str| {
        let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
        let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
        Some(secs)
    };
    match r.session_expires_at.as_deref() {
        Some(t) => match left(t) {
            Some(s) if s > 0 => {
                let _ = writeln!(
                    out,
                    "Session:      signed in until {t} (in {}){as_of}",
                    human(Duration::from_secs(s.unsigned_abs()))
                );
            }
            _ => {
                let _ = writeln!(out, "Session:      EXPIRED at {t}{as_of}; run `ward agent login`");
            }
        },
        None => {
            let _ = writeln!(out, "Session:      signed out{as_of}; run `ward agent login`");
        }
    }
    let p = &r.posture;
    let _ = writeln!(
        out,
        "Posture:      {} {}{}, disk encryption {}, firewall {}, screen lock {}",
        p.os,
        p.os_version,
        p.kernel
            .as_deref()
            .map(|k| format!(" (kernel {k})"))
            .unwrap_or_default(),
        yes_no(p.disk_encryption),
        yes_no(p.firewall),
        yes_no(p.screen_lock),
    );
    let reported = d
        .posture_reported_at
        .as_deref()
        .map(|t| format!(" (as of {t})"))
        .unwrap_or_default();
    if d.compliant {
        let _ = writeln!(out, "Compliant:    yes{reported}");
    } else if d.compliance_failures.is_empty() {
        let _ = writeln!(out, "Compliant:    no{reported}");
    } else {
        let _ = writeln!(out, "Compliant:    no{reported}: {}", d.compliance_failures.join("; "));
    }
    match (&r.agent, r.running) {
        (Some(a), true) => {
            let _ = writeln!(out, "Agent:        running (pid {}, since {})", a.pid, a.started_at);
            let t = &a.tunnel;
            let since = t
                .connected_since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "Tunnel:       {}{since}; {} streams open, {} carried, {} refused",
                t.state, t.active_streams, t.streams_opened, t.streams_refused
            );
            if let Some(err) = &t.last_error {
                let _ = writeln!(out, "              last error: {err}");
            }
            for (name, addr) in [("SOCKS5 proxy", &a.socks), ("HTTP proxy", &a.http)] {
                if let Some(addr) = addr {
                    let _ = writeln!(out, "{:<14}{addr}", format!("{name}:"));
                }
            }
            for f in &a.forwards {
                let _ = writeln!(out, "Forward:      {f}");
            }
            if let Some(e) = &a.renewal_error {
                let _ = writeln!(out, "Renewal:      failing: {e}");
            }
            if let Some(e) = &a.posture_error {
                let _ = writeln!(out, "Reporting:    failing: {e}");
            }
        }
        (Some(a), false) => {
            let _ = writeln!(out, "Agent:        not running (last seen {})", a.updated_at);
        }
        (None, _) => {
            let _ = writeln!(out, "Agent:        not running (start it with `ward agent up`)");
        }
    }
    if let Some(a) = &r.agent {
        if !a.decisions.is_empty() {
            let _ = writeln!(out, "Last decisions (newest first):");
            for dec in a.decisions.iter().rev() {
                let mut why = String::new();
                if let Some(rule) = &dec.rule {
                    let _ = write!(why, " rule {rule}");
                }
                if let Some(reason) = &dec.reason {
                    let _ = write!(why, " ({reason})");
                }
                let _ = writeln!(
                    out,
                    "  {}  {:<7} {:<11} {}{why}",
                    dec.at,
                    dec.via,
                    dec.outcome.as_str(),
                    dec.target
                );
            }
        }
    }
    out
}

/// `3d 4h`, `5h 12m`, `7m 3s`, `42s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> Result<AgentCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied())).map(|c| c.agent.command)
    }

    #[test]
    fn parses_the_subcommands() {
        match parse(&[
            "enroll",
            "--server",
            "https://w:7600",
            "--code",
            "wen_x",
            "--state-dir",
            "/s",
        ])
        .unwrap()
        {
            AgentCommand::Enroll(a) => {
                assert_eq!(a.server, "https://w:7600");
                assert_eq!(a.code.as_deref(), Some("wen_x"));
                assert_eq!(a.state.state_dir, Some(PathBuf::from("/s")));
                assert!(!a.force);
            }
            other => panic!("{other:?}"),
        }
        // Without a code: approval in the portal, optionally with a pin.
        match parse(&["enroll", "--server", "https://w:7600", "--pin", "sha256:ab"]).unwrap() {
            AgentCommand::Enroll(a) => {
                assert_eq!(a.code, None);
                assert_eq!(a.pin.as_deref(), Some("sha256:ab"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&[
                "enroll",
                "--server",
                "https://w:7600",
                "--code",
                "wen_x",
                "--pin",
                "sha256:ab"
            ])
            .is_err(),
            "a code carries its own pin"
        );
        match parse(&["up"]).unwrap() {
            AgentCommand::Up(a) => {
                assert_eq!(a.socks.to_string(), "127.0.0.1:1080");
                assert_eq!(a.http.to_string(), "127.0.0.1:3128");
            }
            other => panic!("{other:?}"),
        }
        match parse(&["up", "--socks", "127.0.0.1:9050", "--http", "3129"]).unwrap() {
            AgentCommand::Up(a) => {
                assert_eq!(a.socks.to_string(), "127.0.0.1:9050");
                assert_eq!(a.http.to_string(), "127.0.0.1:3129");
            }
            other => panic!("{other:?}"),
        }
        match parse(&["forward", "127.0.0.1:15432", "db.internal:5432", "--state-dir", "/s"]).unwrap() {
            AgentCommand::Forward(a) => {
                assert_eq!(a.local.to_string(), "127.0.0.1:15432");
                assert_eq!(a.target.to_string(), "db.internal:5432");
            }
            other => panic!("{other:?}"),
        }
        match parse(&["status", "-o", "json"]).unwrap() {
            AgentCommand::Status(a) => assert_eq!(a.output, OutputFormat::Json),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["forward", "127.0.0.1:1", "no-port"]).is_err());
        assert!(parse(&["up", "--socks", "nowhere"]).is_err());
        match parse(&["up", "--dns-listen", "5353"]).unwrap() {
            AgentCommand::Up(a) => assert_eq!(a.dns_listen.unwrap().to_string(), "127.0.0.1:5353"),
            _ => panic!("not up"),
        }
        assert!(parse(&["enroll"]).is_err(), "the server is required");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(7 * 60 + 3)), "7m 3s");
        assert_eq!(human(Duration::from_secs(5 * 3600 + 12 * 60)), "5h 12m");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
    }
}
