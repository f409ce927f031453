//! The server's configuration: one typed struct, one loader.
//!
//! Precedence: command-line flags, then `WARD_*` environment variables (clap
//! reads both), then the TOML file named by `--config`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `ward server` flags. Every flag also reads the `WARD_*` variable named below.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "WARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Ward keeps its SQLite database, CA and other state [default: ./ward-data].
    #[arg(long, env = "WARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API and console [default: 127.0.0.1:7600]. Any address
    /// other than loopback is served over HTTPS only.
    #[arg(long, env = "WARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Database URL: postgres://... to scale out [default: SQLite in the data directory].
    #[arg(long, env = "WARD_DATABASE", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// TLS certificate chain (PEM) for the listener.
    #[arg(long, env = "WARD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the listener.
    #[arg(long, env = "WARD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format [default: human].
    #[arg(long, env = "WARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, such as `info` or `ward_server=debug` [default: info].
    #[arg(long, env = "WARD_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// How long a sign-in session lasts [default: 12h].
    #[arg(long, env = "WARD_SESSION_TTL", value_name = "DURATION")]
    pub session_ttl: Option<humantime::Duration>,
    /// Regions tenants can choose, comma-separated; the first is the default [default: local].
    #[arg(long, env = "WARD_REGIONS", value_name = "LIST", value_delimiter = ',')]
    pub regions: Option<Vec<String>>,
    /// The URL people use to reach this server, if not the listen address.
    #[arg(long, env = "WARD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// File with the master key that seals tenant CA keys [default: DATA_DIR/master.key].
    /// Every replica of a scaled-out server needs the same key.
    #[arg(long, env = "WARD_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Address of the embedded gateway [default: 127.0.0.1:7601].
    #[arg(long, env = "WARD_GATEWAY_LISTEN", value_name = "ADDR")]
    pub gateway_listen: Option<SocketAddr>,
    /// `host:port` agents use to reach the gateway, if not the listen address.
    #[arg(long, env = "WARD_GATEWAY_ADVERTISE", value_name = "HOST:PORT")]
    pub gateway_advertise: Option<String>,
    /// Threads of the embedded gateway's data plane [default: one per core].
    #[arg(long, env = "WARD_GATEWAY_THREADS", value_name = "N")]
    pub gateway_threads: Option<usize>,
    /// Address of the embedded gateway's HTTPS listener for published
    /// applications (clientless web access) [default: none].
    #[arg(long, env = "WARD_WEB_LISTEN", value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) of the web listener, covering every published
    /// host [default: one from the service CA naming the published hosts].
    #[arg(long, env = "WARD_WEB_CERT", value_name = "FILE", requires = "web_key")]
    pub web_cert: Option<PathBuf>,
    /// Private key (PEM) of the web listener's certificate.
    #[arg(long, env = "WARD_WEB_KEY", value_name = "FILE", requires = "web_cert")]
    pub web_key: Option<PathBuf>,
    /// The port browsers reach published hosts on [default: the web listener's port].
    #[arg(long, env = "WARD_WEB_PUBLIC_PORT", value_name = "PORT")]
    pub web_public_port: Option<u16>,
    /// Address of the embedded gateway's internet proxy port, for devices
    /// without the agent (users sign in with a proxy credential) [default: none].
    #[arg(long, env = "WARD_PROXY_LISTEN", value_name = "ADDR")]
    pub proxy_listen: Option<SocketAddr>,
    /// Let internet traffic through the embedded gateway reach loopback,
    /// private and link-local addresses [default: refused].
    #[arg(long, env = "WARD_INTERNET_ALLOW_PRIVATE")]
    pub internet_allow_private: bool,
    /// CA certificates (PEM file) that sites the embedded gateway inspects
    /// may be signed by, besides the system's trust store [default: none].
    #[arg(long, env = "WARD_INSPECTION_EXTRA_ROOTS", value_name = "FILE")]
    pub inspection_extra_roots: Option<PathBuf>,
    /// Lifetime of device certificates; agents renew at half-life [default: 24h].
    #[arg(long, env = "WARD_DEVICE_CERT_TTL", value_name = "DURATION")]
    pub device_cert_ttl: Option<humantime::Duration>,
    /// DNS resolvers the embedded gateway's DNS filter forwards allowed
    /// queries to, comma-separated [default: none: the filter answers SERVFAIL].
    #[arg(
        long = "dns-upstream",
        env = "WARD_DNS_UPSTREAM",
        value_name = "IP:PORT[,IP:PORT...]",
        value_delimiter = ','
    )]
    pub dns_upstreams: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// The TOML file: the same settings as the flags, plus sign-in limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    database: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    session_ttl: Option<String>,
    regions: Option<Vec<String>>,
    public_url: Option<String>,
    master_key_file: Option<PathBuf>,
    device_cert_ttl: Option<String>,
    gateway_listen: Option<SocketAddr>,
    gateway_advertise: Option<String>,
    gateway_threads: Option<usize>,
    web_listen: Option<SocketAddr>,
    web_cert: Option<PathBuf>,
    web_key: Option<PathBuf>,
    web_public_port: Option<u16>,
    /// `["192.0.2.53:53"]`.
    dns_upstream: Option<Vec<SocketAddr>>,
    proxy_listen: Option<SocketAddr>,
    internet_allow_private: Option<bool>,
    inspection_extra_roots: Option<PathBuf>,
    #[serde(default)]
    login: LoginFile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFile {
    slow_after: Option<u32>,
    lock_after: Option<u32>,
    lock_for: Option<String>,
    address_lock_after: Option<u32>,
    address_window: Option<String>,
}

/// Limits on failed sign-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one account after which each further attempt is delayed.
    pub slow_after: u32,
    /// Failures of one account after which it is locked for `lock_for`.
    pub lock_after: u32,
    pub lock_for: Duration,
    /// Failures from one source address (any account) within `address_window`
    /// after which the address is locked for `lock_for`.
    pub address_lock_after: u32,
    pub address_window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            slow_after: 3,
            lock_after: 10,
            lock_for: Duration::from_secs(15 * 60),
            address_lock_after: 30,
            address_window: Duration::from_secs(15 * 60),
        }
    }
}

/// Where the server's listener gets its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP: only on loopback addresses.
    Off,
    /// The operator's own certificate and key.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate from Ward's own CA in the data directory.
    OwnCa,
}

/// The server's whole configuration, after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`.
    pub database: String,
    pub tls: TlsMode,
    pub log_format: LogFormat,
    pub log_level: String,
    pub session_ttl: Duration,
    pub regions: Vec<String>,
    pub public_url: Option<String>,
    pub login: LoginLimits,
    pub master_key_file: PathBuf,
    pub device_cert_ttl: Duration,
    /// How soon after an issuance a device may renew again (60 s).
    pub renew_min_interval: Duration,
    /// The embedded gateway's address.
    pub gateway_listen: SocketAddr,
    /// What agents dial, when not `gateway_listen`.
    pub gateway_advertise: Option<String>,
    /// The embedded gateway's worker threads; 0 means one per core.
    pub gateway_threads: usize,
    /// The embedded gateway's HTTPS listener for published applications.
    pub web_listen: Option<SocketAddr>,
    /// Its certificate chain and key files; `None`: from the service CA.
    pub web_cert: Option<(PathBuf, PathBuf)>,
    /// The port browsers reach published hosts on.
    pub web_public_port: u16,
    /// The embedded gateway's upstream DNS resolvers.
    pub dns_upstreams: Vec<SocketAddr>,
    /// The embedded gateway's internet proxy port.
    pub proxy_listen: Option<SocketAddr>,
    /// Internet traffic may reach private addresses.
    pub internet_allow_private: bool,
    /// Extra CA certificates (PEM) for the sites the embedded gateway inspects.
    pub inspection_roots_pem: Option<String>,
    /// Password for the bootstrap accounts, from `WARD_BOOTSTRAP_PASSWORD`
    /// (environment only, so it never shows in a process list or a file).
    pub bootstrap_password: Option<Secret>,
}

/// A string that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("configuration file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Merge flags and environment (already in `args`) over the TOML file over defaults.
    pub fn load(args: &ServerArgs) -> Result<ServerConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./ward-data"));
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7600)));
        let database = match args.database.clone().or(file.database) {
            Some(url) => url,
            None => sqlite_url(&data_dir.join("ward.db"))?,
        };
        let cert = args.tls_cert.clone().or(file.tls_cert);
        let key = args.tls_key.clone().or(file.tls_key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (None, None) if listen.ip().is_loopback() => TlsMode::Off,
            (None, None) => TlsMode::OwnCa,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key go together: set both or neither".into(),
                ))
            }
        };
        let session_ttl = match (args.session_ttl, file.session_ttl) {
            (Some(d), _) => d.into(),
            (None, Some(s)) => parse_duration("session_ttl", &s)?,
            (None, None) => Duration::from_secs(12 * 3600),
        };
        if session_ttl < Duration::from_secs(60) {
            return Err(ConfigError::Invalid("session_ttl must be at least 1m".into()));
        }
        let regions = args
            .regions
            .clone()
            .or(file.regions)
            .unwrap_or_else(|| vec!["local".to_owned()]);
        if regions.is_empty() {
            return Err(ConfigError::Invalid("regions must name at least one region".into()));
        }
        for r in &regions {
            ward_core::Name::parse(r).map_err(|e| ConfigError::Invalid(format!("region {r:?}: {e}")))?;
        }
        let master_key_file = args
            .master_key_file
            .clone()
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let device_cert_ttl = match (args.device_cert_ttl, file.device_cert_ttl) {
            (Some(d), _) => d.into(),
            (None, Some(s)) => parse_duration("device_cert_ttl", &s)?,
            (None, None) => Duration::from_secs(24 * 3600),
        };
        if device_cert_ttl < Duration::from_secs(300) {
            return Err(ConfigError::Invalid("device_cert_ttl must be at least 5m".into()));
        }
        let defaults = LoginLimits::default();
        let login = LoginLimits {
            slow_after: file.login.slow_after.unwrap_or(defaults.slow_after),
            lock_after: file.login.lock_after.unwrap_or(defaults.lock_after).max(1),
            lock_for: match file.login.lock_for {
                Some(s) => parse_duration("login.lock_for", &s)?,
                None => defaults.lock_for,
            },
            address_lock_after: file
                .login
                .address_lock_after
                .unwrap_or(defaults.address_lock_after)
                .max(1),
            address_window: match file.login.address_window {
                Some(s) => parse_duration("login.address_window", &s)?,
                None => defaults.address_window,
            },
        };
        Ok(ServerConfig {
            renew_min_interval: Duration::from_secs(60),
            gateway_listen: args
                .gateway_listen
                .or(file.gateway_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7601))),
            gateway_advertise: args.gateway_advertise.clone().or(file.gateway_advertise),
            gateway_threads: args.gateway_threads.or(file.gateway_threads).unwrap_or(0),
            web_listen: args.web_listen.or(file.web_listen),
            web_cert: match (
                args.web_cert.clone().or(file.web_cert),
                args.web_key.clone().or(file.web_key),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err(ConfigError::Invalid("web_cert and web_key go together".into())),
            },
            web_public_port: args
                .web_public_port
                .or(file.web_public_port)
                .or(args.web_listen.or(file.web_listen).map(|a| a.port()))
                .unwrap_or(443),
            dns_upstreams: if args.dns_upstreams.is_empty() {
                file.dns_upstream.clone().unwrap_or_default()
            } else {
                args.dns_upstreams.clone()
            },
            proxy_listen: args.proxy_listen.or(file.proxy_listen),
            internet_allow_private: args.internet_allow_private || file.internet_allow_private.unwrap_or(false),
            inspection_roots_pem: match args
                .inspection_extra_roots
                .as_ref()
                .or(file.inspection_extra_roots.as_ref())
            {
                Some(path) => Some(read_roots(path)?),
                None => None,
            },
            master_key_file,
            device_cert_ttl,
            data_dir,
            listen,
            database,
            tls,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log_level: args
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_owned()),
            session_ttl,
            regions,
            public_url: args.public_url.clone().or(file.public_url),
            login,
            bootstrap_password: std::env::var(crate::bootstrap::PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
        })
    }

    /// The URL people use to reach the console and API.
    pub fn url(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls == TlsMode::Off { "http" } else { "https" };
        let addr = if self.listen.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), self.listen.port())
        } else {
            self.listen
        };
        format!("{scheme}://{addr}")
    }

    /// `host:port` agents use to reach the embedded gateway.
    pub fn gateway_advertise(&self) -> String {
        match &self.gateway_advertise {
            Some(a) => a.clone(),
            None if self.gateway_listen.ip().is_unspecified() => {
                format!("127.0.0.1:{}", self.gateway_listen.port())
            }
            None => self.gateway_listen.to_string(),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.database.starts_with("sqlite:")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
    toml::from_str(&text).map_err(|e| {
        // One line: toml's messages may span several.
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        let at = e.span().map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        });
        ConfigError::Parse(path.to_owned(), format!("{message}{}", at.unwrap_or_default()))
    })
}

fn parse_duration(field: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s).map_err(|e| ConfigError::Invalid(format!("{field} = {s:?}: {e}")))
}

fn sqlite_url(path: &Path) -> Result<String, ConfigError> {
    let p = path
        .to_str()
        .ok_or_else(|| ConfigError::Invalid("the data directory path must be valid UTF-8".into()))?;
    Ok(format!("sqlite://{p}?mode=rwc"))
}

/// Reads a PEM file of CA certificates; an error unless it holds at least one.
fn read_roots(path: &std::path::Path) -> Result<String, ConfigError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("inspection_extra_roots {}: {e}", path.display())))?;
    match ward_pki::certs_from_pem(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        _ => Err(ConfigError::Invalid(format!(
            "inspection_extra_roots {}: no PEM certificate in the file",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs::default()
    }

    #[test]
    fn defaults() {
        let c = ServerConfig::load(&args()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7600");
        assert_eq!(c.data_dir, PathBuf::from("./ward-data"));
        assert!(c.database.starts_with("sqlite://./ward-data/ward.db"));
        assert_eq!(c.tls, TlsMode::Off);
        assert_eq!(c.url(), "http://127.0.0.1:7600");
        assert_eq!(c.regions, vec!["local"]);
        assert_eq!(format!("{:?}", Secret::new("hunter22")), "<redacted>");
    }

    #[test]
    fn dns_upstreams_from_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.toml");
        std::fs::write(&path, "dns_upstream = [\"127.0.0.1:5300\", \"[::1]:53\"]\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let c = ServerConfig::load(&a).unwrap();
        assert_eq!(c.dns_upstreams.len(), 2);
        a.dns_upstreams = vec!["127.0.0.1:5301".parse().unwrap()];
        let c = ServerConfig::load(&a).unwrap();
        assert_eq!(c.dns_upstreams, a.dns_upstreams, "flag wins");
        assert!(ServerConfig::load(&args()).unwrap().dns_upstreams.is_empty());
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/ward\"\nsession_ttl = \"2h\"\nregions = [\"eu-1\", \"cn-north\"]\n[login]\nlock_after = 5\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.listen = Some("127.0.0.1:9100".parse().unwrap());
        let c = ServerConfig::load(&a).unwrap();
        assert_eq!(c.listen.port(), 9100, "flag wins");
        assert_eq!(c.data_dir, PathBuf::from("/srv/ward"), "file used when no flag");
        assert_eq!(c.session_ttl, Duration::from_secs(7200));
        assert_eq!(c.regions[0], "eu-1");
        assert_eq!(c.login.lock_after, 5);
    }

    #[test]
    fn internet_proxy_flags() {
        let c = ServerConfig::load(&args()).unwrap();
        assert_eq!((c.proxy_listen, c.internet_allow_private), (None, false));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.toml");
        std::fs::write(
            &path,
            "proxy_listen = \"127.0.0.1:3128\"\ninternet_allow_private = true\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        let c = ServerConfig::load(&a).unwrap();
        assert_eq!(c.proxy_listen, Some("127.0.0.1:3128".parse().unwrap()));
        assert!(c.internet_allow_private);
        a.proxy_listen = Some("127.0.0.1:3129".parse().unwrap());
        assert_eq!(
            ServerConfig::load(&a).unwrap().proxy_listen.map(|p| p.port()),
            Some(3129),
            "flag wins"
        );
    }

    #[test]
    fn non_loopback_needs_tls() {
        let mut a = args();
        a.listen = Some("0.0.0.0:7600".parse().unwrap());
        let c = ServerConfig::load(&a).unwrap();
        assert_eq!(c.tls, TlsMode::OwnCa);
        assert_eq!(c.url(), "https://127.0.0.1:7600");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ward.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let e = ServerConfig::load(&a).unwrap_err().to_string();
        assert!(e.contains("lissten"), "{e}");
        a.config = Some(dir.path().join("missing.toml"));
        assert!(ServerConfig::load(&a).unwrap_err().to_string().contains("missing.toml"));
        std::fs::write(&path, "listen = [\n").unwrap();
        a.config = Some(path.clone());
        let e = ServerConfig::load(&a).unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("(line "), "{e}");
        std::fs::write(&path, "session_ttl = \"soon\"\n").unwrap();
        a.config = Some(path);
        assert!(ServerConfig::load(&a).unwrap_err().to_string().contains("session_ttl"));
    }

    #[test]
    fn inspection_extra_roots_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args();
        assert!(ServerConfig::load(&a).unwrap().inspection_roots_pem.is_none());
        let bad = dir.path().join("roots.pem");
        std::fs::write(&bad, "not a certificate\n").unwrap();
        a.inspection_extra_roots = Some(bad);
        let err = ServerConfig::load(&a).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        a.inspection_extra_roots = Some(dir.path().join("missing.pem"));
        assert!(ServerConfig::load(&a)
            .unwrap_err()
            .to_string()
            .contains("inspection_extra_roots"));
        let good = dir.path().join("ca.pem");
        let ca = ward_pki::CertificateAuthority::generate("Sites CA").unwrap();
        std::fs::write(&good, ca.cert_pem()).unwrap();
        a.inspection_extra_roots = Some(good);
        assert_eq!(
            ServerConfig::load(&a).unwrap().inspection_roots_pem,
            Some(ca.cert_pem())
        );
    }
}
