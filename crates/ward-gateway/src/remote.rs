//! `ward gateway`: a gateway run alone, next to the resources it protects.
//!
//! On its first start it joins the server with a one-time join code: it
//! makes its key, sends a CSR and the addresses agents will dial, and keeps
//! the certificate and token it gets in its state directory. The code
//! carries the fingerprint of the CA behind the server's HTTPS certificate,
//! and every call to the server is pinned to it. Then it follows the
//! server's policy snapshots and ships its access records over the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use ward_api::{AccessRecord, AccessRecordBatch, GatewayJoinRequest, GatewaySnapshot};
use ward_client::{Client, ClientConfig};

use crate::{GatewayConfig, RecordSink, SnapshotSource};

/// `ward gateway` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// The Ward server's URL.
    #[arg(long, env = "WARD_SERVER", value_name = "URL")]
    pub server: String,
    /// One-time join code from `ward ctl gateway join-code NAME` (first start only).
    #[arg(long, env = "WARD_JOIN_CODE", value_name = "CODE", hide_env_values = true)]
    pub join_code: Option<String>,
    /// Where agents connect.
    #[arg(
        long,
        env = "WARD_GATEWAY_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:7601"
    )]
    pub listen: SocketAddr,
    /// Host name or IP agents dial to reach this gateway (repeatable; default: the listen address,
    /// or 127.0.0.1 when it listens on every address).
    #[arg(long = "address", value_name = "HOST")]
    pub addresses: Vec<String>,
    /// Where the gateway keeps its key, certificate, token, last snapshot and record spool.
    #[arg(
        long,
        env = "WARD_GATEWAY_STATE_DIR",
        value_name = "DIR",
        default_value = "./ward-gateway"
    )]
    pub state_dir: PathBuf,
    /// Worker threads serving tunnels [default: one per core].
    #[arg(long, env = "WARD_GATEWAY_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// HTTPS listener for published applications (clientless web access) [default: none].
    #[arg(long, env = "WARD_WEB_LISTEN", value_name = "ADDR", requires_all = ["web_cert", "web_key"])]
    pub web_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) of the web listener, covering every published host.
    #[arg(long, env = "WARD_WEB_CERT", value_name = "FILE")]
    pub web_cert: Option<PathBuf>,
    /// Private key (PEM) of the web listener's certificate.
    #[arg(long, env = "WARD_WEB_KEY", value_name = "FILE")]
    pub web_key: Option<PathBuf>,
    /// DNS resolvers the DNS filter forwards allowed queries to, comma-separated
    /// [default: none: the filter answers SERVFAIL].
    #[arg(
        long = "dns-upstream",
        env = "WARD_DNS_UPSTREAM",
        value_name = "IP:PORT[,IP:PORT...]",
        value_delimiter = ','
    )]
    pub dns_upstreams: Vec<SocketAddr>,
    /// Internet proxy port for devices without the agent (users sign in
    /// with a proxy credential) [default: none].
    #[arg(long, env = "WARD_PROXY_LISTEN", value_name = "ADDR")]
    pub proxy_listen: Option<SocketAddr>,
    /// Let internet traffic reach loopback, private and link-local
    /// addresses [default: refused].
    #[arg(long, env = "WARD_INTERNET_ALLOW_PRIVATE")]
    pub internet_allow_private: bool,
    /// CA certificates (PEM file) that sites this gateway inspects may be
    /// signed by, besides the system's trust store [default: none].
    #[arg(long, env = "WARD_INSPECTION_EXTRA_ROOTS", value_name = "FILE")]
    pub inspection_extra_roots: Option<PathBuf>,
    /// Log format: human or json.
    #[arg(long, env = "WARD_LOG_FORMAT", default_value = "human")]
    pub log_format: String,
    /// Log filter, such as `info`.
    #[arg(long, env = "WARD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl GatewayArgs {
    pub fn log_json(&self) -> bool {
        self.log_format.eq_ignore_ascii_case("json")
    }
}

/// What a joined gateway keeps (`gateway.json`, mode 0600; the key in `gateway.key`).
#[derive(Debug, Serialize, Deserialize)]
struct Joined {
    server: String,
    gateway_id: String,
    name: String,
    token: String,
    cert_chain_pem: String,
    /// The pin every call to the server is checked against (absent on plain HTTP).
    pin: Option<String>,
}

const STATE_FILE: &str = "gateway.json";
const KEY_FILE: &str = "gateway.key";

/// Join if needed, then run until `shutdown` resolves (the binary passes
/// SIGTERM or Ctrl-C).
pub async fn run(args: GatewayArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let (joined, key_pem) = match load(&args.state_dir)? {
        Some(state) => state,
        None => join(&args).await?,
    };
    if joined.server.trim_end_matches('/') != args.server.trim_end_matches('/') {
        bail!(
            "this gateway joined {}, not {}; use another --state-dir to join another server",
            joined.server,
            args.server
        );
    }
    let client = Client::new(ClientConfig {
        server: joined.server.clone(),
        token: Some(joined.token.clone()),
        ca_cert_pem: None,
        pin: joined.pin.clone(),
    })?;
    let mut config = GatewayConfig::new(
        joined.gateway_id.clone(),
        args.listen,
        joined.cert_chain_pem.clone(),
        key_pem,
        args.state_dir.join("spool"),
    );
    config.threads = args.threads.unwrap_or(0);
    config.dns_upstreams = args.dns_upstreams.clone();
    config.proxy_listen = args.proxy_listen;
    config.internet_allow_private = args.internet_allow_private;
    if let Some(path) = &args.inspection_extra_roots {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("--inspection-extra-roots {}", path.display()))?;
        if ward_pki::certs_from_pem(&pem).map_or(true, |c| c.is_empty()) {
            bail!(
                "--inspection-extra-roots {}: no PEM certificate in the file",
                path.display()
            );
        }
        config.inspection_roots_pem = Some(pem);
    }
    if let (Some(listen), Some(cert), Some(key)) = (args.web_listen, &args.web_cert, &args.web_key) {
        config.web = Some(crate::WebConfig {
            listen,
            cert: Some((
                std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?,
                std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?,
            )),
            portal_url: joined.server.clone(),
            key_dir: args.state_dir.clone(),
            backend: std::sync::Arc::new(RemoteWeb(client.clone())),
        });
    }
    let gateway = crate::start(config, RemoteSnapshots(client.clone()), RemoteRecords(client)).await?;
    println!(
        "Gateway {} ({}) listening on {}; server {}",
        joined.name,
        joined.gateway_id,
        gateway.local_addr(),
        joined.server
    );
    if let Some(proxy) = gateway.proxy_addr() {
        println!("Internet proxy port on {proxy}");
    }
    shutdown.await;
    tracing::info!("shutting down");
    gateway.shutdown().await;
    Ok(())
}

fn load(dir: &Path) -> anyhow::Result<Option<(Joined, String)>> {
    let state = dir.join(STATE_FILE);
    if !state.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&state).with_context(|| format!("cannot read {}", state.display()))?;
    let joined: Joined = serde_json::from_str(&text).with_context(|| format!("{} is damaged", state.display()))?;
    let key = std::fs::read_to_string(dir.join(KEY_FILE))
        .with_context(|| format!("cannot read {}", dir.join(KEY_FILE).display()))?;
    Ok(Some((joined, key)))
}

async fn join(args: &GatewayArgs) -> anyhow::Result<(Joined, String)> {
    let Some(code) = args.join_code.as_deref() else {
        bail!("this gateway has not joined yet: pass --join-code from `ward ctl gateway join-code NAME`");
    };
    let pin = code_pin(code)?;
    let server = ward_client::parse_server_url(&args.server)?;
    match (&pin, server.scheme()) {
        (Some(_), "http") => bail!("the join code pins an HTTPS server, but --server is http://"),
        // No pin over HTTPS: the server's certificate comes from a public CA,
        // which the platform's trust store vouches for.
        (None, "https") => {}
        (None, _) if !server.host_str().is_some_and(is_loopback) => {
            bail!("refusing to join over plain HTTP to a server that is not on this machine")
        }
        _ => {}
    }
    let addresses = if args.addresses.is_empty() {
        let ip = args.listen.ip();
        vec![if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            ip.to_string()
        }]
    } else {
        args.addresses.clone()
    };
    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("ward-gateway")?;
    let client = Client::new(ClientConfig {
        server: args.server.clone(),
        token: None,
        ca_cert_pem: None,
        pin: pin.clone(),
    })?;
    let response = client
        .join_gateway(&GatewayJoinRequest {
            code: code.trim().to_owned(),
            csr_pem,
            addresses,
        })
        .await?;
    let joined = Joined {
        server: args.server.trim_end_matches('/').to_owned(),
        gateway_id: response.gateway_id,
        name: response.name,
        token: response.token,
        cert_chain_pem: response.cert_chain_pem,
        pin,
    };
    save(&args.state_dir, &joined, &key_pem)?;
    println!("Joined as gateway {} ({}).", joined.name, joined.gateway_id);
    Ok((joined, key_pem))
}

/// `wgj_<secret>[_<64 hex pin>]` → the pin as `sha256:<hex>`.
fn code_pin(code: &str) -> anyhow::Result<Option<String>> {
    let rest = code
        .trim()
        .strip_prefix("wgj_")
        .context("not a gateway join code (it starts with wgj_)")?;
    let mut parts = rest.split('_');
    let secret = parts.next().unwrap_or_default();
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the join code is damaged");
    }
    match (parts.next(), parts.next()) {
        (None, _) => Ok(None),
        (Some(pin), None) if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(format!("sha256:{pin}")))
        }
        _ => bail!("the join code is damaged"),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn save(dir: &Path, joined: &Joined, key_pem: &str) -> anyhow::Result<()> {
    // The state directory holds the key, the token, and (in the spool) the last
    // snapshot, which names every tenant's users and devices: its owner only.
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(&dir.join(KEY_FILE), key_pem.as_bytes())?;
    write_private(&dir.join(STATE_FILE), serde_json::to_string_pretty(joined)?.as_bytes())?;
    Ok(())
}

/// Write a file only its owner can read, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

struct RemoteSnapshots(Client);

impl SnapshotSource for RemoteSnapshots {
    async fn next(&mut self, after: Option<i64>) -> anyhow::Result<GatewaySnapshot> {
        Ok(self.0.gateway_snapshot(after).await?)
    }

    async fn domain_list(&mut self, sha256: &str) -> anyhow::Result<String> {
        Ok(self.0.gateway_domain_list(sha256).await?)
    }
}

struct RemoteRecords(Client);

impl RecordSink for RemoteRecords {
    async fn ship(&self, batch: Vec<AccessRecord>) -> anyhow::Result<()> {
        self.0.ship_records(&AccessRecordBatch { records: batch }).await?;
        Ok(())
    }

    async fn report_status(&self, status: ward_api::GatewayStatusReport) -> anyhow::Result<()> {
        self.0.report_gateway_status(&status).await?;
        Ok(())
    }
}

/// Redeems web sign-in codes over `POST /api/v1/gateway/web-sessions`; the
/// certificate comes from files.
struct RemoteWeb(Client);

impl crate::WebBackend for RemoteWeb {
    fn redeem<'a>(
        &'a self,
        host: &'a str,
        code: &'a str,
    ) -> crate::BoxFuture<'a, anyhow::Result<Option<ward_api::WebSession>>> {
        Box::pin(async move {
            let req = ward_api::RedeemWebCode {
                host: host.to_owned(),
                code: code.to_owned(),
            };
            match self.0.redeem_web_code(&req).await {
                Ok(session) => Ok(Some(session)),
                Err(ward_client::ClientError::Api { status, .. }) if (400..500).contains(&status) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn certificate<'a>(
        &'a self,
        _hosts: &'a [String],
    ) -> crate::BoxFuture<'a, Option<anyhow::Result<(String, String)>>> {
        Box::pin(async { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let secret = "a".repeat(64);
        assert_eq!(code_pin(&format!("wgj_{secret}")).unwrap(), None);
        let pin = "b".repeat(64);
        assert_eq!(
            code_pin(&format!("wgj_{secret}_{pin}")).unwrap(),
            Some(format!("sha256:{pin}"))
        );
        assert!(code_pin("wen_x").is_err());
        assert!(code_pin(&format!("wgj_{secret}_short")).is_err());
        assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && is_loopback("localhost"));
        assert!(!is_loopback("example.com"));
    }
}
