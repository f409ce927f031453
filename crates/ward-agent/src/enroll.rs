//! `ward agent enroll`: turn a one-time enrolment code into a device
//! identity.
//!
//! The code is `wen_<64 hex secret>[_<64 hex pin>]`. The pin, when present,
//! is the SHA-256 of the CA behind the server's HTTPS certificate, so the
//! agent can trust a server whose CA it has never seen (like `kubeadm join
//! --discovery-token-ca-cert-hash`): it connects once with a pinned TLS
//! configuration, keeps that CA for later calls, and enrols through the
//! same pin. A code without a pin comes from a server on plain HTTP (on
//! loopback only) or one with a publicly trusted certificate.
//!
//! The device key is made here and never sent: the server gets a CSR, and
//! the posture this machine reports.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use ward_api::EnrollRequest;
use ward_client::{Client, ClientConfig, ClientError, Url};
use ward_pki::CertificateDer;

use crate::posture;
use crate::state::{AgentState, Credentials, DeviceInfo, StateError};
use crate::tunnel::split_host_port;

/// Every enrolment code starts so.
pub const CODE_PREFIX: &str = "wen_";
/// How long fetching the server's CA may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed enrolment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollCode {
    /// The whole code, as sent to the server.
    pub code: String,
    /// The pin of the server's CA, `sha256:<64 lowercase hex>`.
    pub pin: Option<String>,
}

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The code is not a Ward enrolment code.
    #[error("invalid enrolment code: {0}")]
    BadCode(String),
    /// The server URL is unusable.
    #[error("{0}")]
    BadServer(String),
    /// Plain HTTP to a host that is not this machine.
    #[error(
        "refusing to enrol over plain http:// with {0}: the code and the device token would cross the network \
         unencrypted; use https:// (plain http is only accepted on loopback)"
    )]
    InsecureServer(String),
    /// The code pins a CA but the URL says `http://`.
    #[error(
        "the enrolment code carries the fingerprint of the server's CA, so the server speaks HTTPS: use https:// \
         instead of http://"
    )]
    PinOverHttp,
    /// The state directory already holds an enrolment.
    #[error(
        "already enrolled in {} as device {device} of tenant {tenant}; pass --force to replace it, or \
         --state-dir to keep both", dir.display()
    )]
    AlreadyEnrolled {
        dir: PathBuf,
        device: String,
        tenant: String,
    },
    /// The server did not prove it holds the pinned CA.
    #[error("cannot verify the server: {0}")]
    PinnedCa(String),
    /// The API call failed.
    #[error("enrolment failed: {0}")]
    Api(#[from] ClientError),
    /// Key generation or certificate checks failed.
    #[error("{0}")]
    Pki(String),
    /// The server's answer is unusable.
    #[error("unexpected enrolment answer from the server: {0}")]
    BadResponse(String),
    /// Saving the state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The user denied the enrolment request in the portal.
    #[error("the enrolment was denied in the portal")]
    Denied,
    /// Nobody approved the request in time.
    #[error("nobody approved the enrolment in time (the code lasts 10 minutes); run the command again")]
    Expired,
    /// `--pin` is not a CA fingerprint.
    #[error("invalid --pin: {0}")]
    BadPin(String),
}

/// What the user is asked to do while [`request_code`] waits.
#[derive(Debug, Clone)]
pub struct Approval {
    pub user_code: String,
    pub verify_url: String,
    pub verify_url_complete: String,
    pub expires_at: String,
}

/// Enrolment without a code: asks the server for a request, shows the user
/// where to approve it (`show`), then polls until the user approves in the
/// portal and returns the one-time enrolment code the server then hands
/// out (once). `pin` (`sha256:...`, the server CA's fingerprint that
/// `ward server` prints) is how the agent checks an HTTPS server that the
/// system does not trust; without it, plain HTTP is accepted on loopback
/// only, and HTTPS through the system's trusted roots.
pub async fn request_code(
    server: &str,
    pin: Option<&str>,
    mut show: impl FnMut(&Approval),
    mut waiting: impl FnMut(Duration),
) -> Result<String, EnrollError> {
    let url = ward_client::parse_server_url(server).map_err(|e| EnrollError::BadServer(e.to_string()))?;
    // Checked, then written as codes carry it: `sha256:<64 lowercase hex>`.
    let pin: Option<String> = match pin {
        Some(p) => {
            let bytes = ward_pki::parse_pin(p).map_err(|e| EnrollError::BadPin(e.to_string()))?;
            Some(format!(
                "sha256:{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ))
        }
        None => None,
    };
    if url.scheme() == "http" {
        if pin.is_some() {
            return Err(EnrollError::PinOverHttp);
        }
        if !is_loopback_host(&url) {
            return Err(EnrollError::InsecureServer(
                url.host_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let server_ca_pem = match &pin {
        Some(pin) => Some(pem_encode("CERTIFICATE", &fetch_pinned_ca(&url, pin).await?)),
        None => None,
    };
    let client = Client::new(ClientConfig {
        server: url.as_str().to_owned(),
        token: None,
        ca_cert_pem: server_ca_pem,
        pin: pin.clone(),
    })?;
    let name: String = posture::collect().hostname.chars().take(64).collect();
    let created = client
        .create_enroll_request(&ward_api::CreateEnrollRequest { name })
        .await?;
    show(&Approval {
        user_code: created.user_code.clone(),
        verify_url: created.verify_url.clone(),
        verify_url_complete: created.verify_url_complete.clone(),
        expires_at: created.expires_at.clone(),
    });
    let interval = Duration::from_secs(created.interval_secs.clamp(1, 30));
    let started = std::time::Instant::now();
    let poll = ward_api::PollEnrollRequest {
        request: created.request,
    };
    loop {
        tokio::time::sleep(interval).await;
        waiting(started.elapsed());
        let state = match client.poll_enroll_request(&poll).await {
            Ok(s) => s,
            // The server restarting or a network blip: keep waiting.
            Err(ClientError::Connect { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match (state.state.as_str(), state.code) {
            ("approved", Some(code)) => {
                let parsed = parse_code(&code)?;
                let bare = |p: &str| p.trim_start_matches("sha256:").to_owned();
                if pin.is_some() && parsed.pin.as_deref().map(bare) != pin.as_deref().map(bare) {
                    return Err(EnrollError::PinnedCa(
                        "the code the server handed out names another CA than --pin".into(),
                    ));
                }
                return Ok(code);
            }
            ("pending", _) => continue,
            ("denied", _) => return Err(EnrollError::Denied),
            _ => return Err(EnrollError::Expired),
        }
    }
}

/// A client of the server authenticated with the device's own token.
fn device_client(state: &AgentState) -> Result<Client, EnrollError> {
    Ok(Client::new(ClientConfig {
        server: state.device.server.clone(),
        token: Some(state.token()?),
        ca_cert_pem: state.device.server_ca_pem.clone(),
        pin: None,
    })?)
}

/// `ward agent login`: asks the server to renew this enrolled device's user
/// session, shows the user where to approve it (`show`; only the device's
/// own user can), polls until approved, and saves the session's new end in
/// `device.json`, which it returns. No new certificate is issued.
pub async fn login(
    state_dir: &Path,
    mut show: impl FnMut(&Approval),
    mut waiting: impl FnMut(Duration),
) -> Result<String, EnrollError> {
    let mut state = AgentState::load(state_dir)?;
    let client = device_client(&state)?;
    let created = client.device_login().await?;
    show(&Approval {
        user_code: created.user_code.clone(),
        verify_url: created.verify_url.clone(),
        verify_url_complete: created.verify_url_complete.clone(),
        expires_at: created.expires_at.clone(),
    });
    let interval = Duration::from_secs(created.interval_secs.clamp(1, 30));
    let started = std::time::Instant::now();
    let poll = ward_api::PollEnrollRequest {
        request: created.request,
    };
    loop {
        tokio::time::sleep(interval).await;
        waiting(started.elapsed());
        let answer = match client.poll_enroll_request(&poll).await {
            Ok(s) => s,
            Err(ClientError::Connect { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match answer.state.as_str() {
            "approved" => {
                let until = answer
                    .session_expires_at
                    .ok_or_else(|| EnrollError::BadResponse("an approved sign-in without its end".into()))?;
                state.device.session_expires_at = Some(until.clone());
                state.save_device()?;
                return Ok(until);
            }
            "pending" => continue,
            "denied" => return Err(EnrollError::Denied),
            _ => return Err(EnrollError::Expired),
        }
    }
}

/// `ward agent logout`: signs this device out at the server; gateways then
/// refuse it and close its connections until `ward agent login`.
pub async fn logout(state_dir: &Path) -> Result<(), EnrollError> {
    let mut state = AgentState::load(state_dir)?;
    device_client(&state)?.device_logout().await?;
    state.device.session_expires_at = None;
    state.save_device()?;
    Ok(())
}

/// The device's session as the server sees it now (for `ward agent status`).
pub async fn session(state_dir: &Path) -> Result<ward_api::DeviceSession, EnrollError> {
    let state = AgentState::load(state_dir)?;
    Ok(device_client(&state)?.device_session().await?)
}

/// Parses `wen_<64 hex>[_<64 hex>]`.
pub fn parse_code(code: &str) -> Result<EnrollCode, EnrollError> {
    let code = code.trim();
    let bad = |why: &str| EnrollError::BadCode(format!("{why} (expected wen_ followed by 64 or 129 characters)"));
    let rest = code
        .strip_prefix(CODE_PREFIX)
        .ok_or_else(|| bad("it does not start with wen_ (copy the whole code your administrator gave you)"))?;
    let mut parts = rest.split('_');
    let secret = parts.next().unwrap_or_default();
    let pin = parts.next();
    if parts.next().is_some() {
        return Err(bad("it has too many parts"));
    }
    let is_hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex64(secret) {
        return Err(bad("its secret is not 64 hexadecimal digits; was it cut short?"));
    }
    let pin = match pin {
        None => None,
        Some(pin) if is_hex64(pin) => Some(format!("sha256:{}", pin.to_ascii_lowercase())),
        Some(_) => {
            return Err(bad(
                "its CA fingerprint is not 64 hexadecimal digits; was it cut short?",
            ))
        }
    };
    Ok(EnrollCode {
        code: code.to_owned(),
        pin,
    })
}

/// Whether a URL's host is this machine: `localhost` or a loopback address.
pub fn is_loopback_host(url: &Url) -> bool {
    match url_host(url) {
        Some(host) => match host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => host.eq_ignore_ascii_case("localhost"),
        },
        None => false,
    }
}

/// Enrols this device with the server at `server` using `code`, and saves
/// the identity in `state_dir`. Refuses to replace an existing enrolment
/// unless `force`.
pub async fn enroll(server: &str, code: &str, state_dir: &Path, force: bool) -> Result<AgentState, EnrollError> {
    let code = parse_code(code)?;
    let url = ward_client::parse_server_url(server).map_err(|e| EnrollError::BadServer(e.to_string()))?;
    if url.scheme() == "http" {
        if code.pin.is_some() {
            return Err(EnrollError::PinOverHttp);
        }
        if !is_loopback_host(&url) {
            return Err(EnrollError::InsecureServer(
                url.host_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    if !force {
        if let Ok(existing) = AgentState::load(state_dir) {
            return Err(EnrollError::AlreadyEnrolled {
                dir: state_dir.to_path_buf(),
                device: existing.device.device_id,
                tenant: existing.device.tenant,
            });
        }
    }

    let server_ca_pem = match &code.pin {
        Some(pin) => Some(pem_encode("CERTIFICATE", &fetch_pinned_ca(&url, pin).await?)),
        None => None,
    };

    let posture = posture::collect();
    let name: String = posture.hostname.chars().take(64).collect();
    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr(&name)
        .map_err(|e| EnrollError::Pki(format!("cannot make the device key: {e}")))?;
    let client = Client::new(ClientConfig {
        server: url.as_str().to_owned(),
        token: None,
        ca_cert_pem: server_ca_pem.clone(),
        pin: code.pin.clone(),
    })?;
    let response = client
        .enroll(&EnrollRequest {
            code: code.code.clone(),
            csr_pem,
            name,
            posture: posture.clone(),
        })
        .await?;

    // Check everything before writing anything.
    let bad = |what: &str, e: &dyn std::fmt::Display| EnrollError::BadResponse(format!("{what}: {e}"));
    let chain = ward_pki::certs_from_pem(&response.cert_pem).map_err(|e| bad("device certificate", &e))?;
    ward_pki::certs_from_pem(&response.tenant_ca_pem).map_err(|e| bad("tenant CA", &e))?;
    let gateway_roots = ward_pki::certs_from_pem(&response.gateway_ca_pem).map_err(|e| bad("gateway CA", &e))?;
    if split_host_port(&response.gateway).is_none() {
        return Err(bad(
            "gateway address",
            &format_args!("{:?} is not host:port", response.gateway),
        ));
    }
    if response.device_token.is_empty() || !response.device_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("device token", &"empty or not printable"));
    }
    let key = parse_key(&key_pem)?;
    ward_pki::client_config_mtls(&gateway_roots, chain, key, &[crate::tunnel::ALPN_H2])
        .map_err(|e| bad("device certificate", &format_args!("unusable with the device key: {e}")))?;

    let now = crate::now_rfc3339();
    let device = DeviceInfo {
        server: client.server().to_owned(),
        tenant: response.tenant,
        device_id: response.device_id,
        user: response.user,
        gateway: response.gateway,
        cert_expires_at: response.cert_expires_at,
        server_ca_pem,
        compliant: response.compliant,
        compliance_failures: Vec::new(),
        posture: Some(posture),
        posture_reported_at: Some(now.clone()),
        enrolled_at: Some(now),
        renewed_at: None,
        session_expires_at: response.session_expires_at,
    };
    // A status file from an earlier enrolment would describe another device.
    let _ = std::fs::remove_file(state_dir.join(crate::state::STATUS_FILE));
    let state = AgentState::create(
        state_dir,
        device,
        &Credentials {
            key_pem: &key_pem,
            cert_pem: &response.cert_pem,
            tenant_ca_pem: &response.tenant_ca_pem,
            gateway_ca_pem: &response.gateway_ca_pem,
            token: &response.device_token,
        },
    )?;
    tracing::info!(
        device = %state.device.device_id,
        tenant = %state.device.tenant,
        dir = %state_dir.display(),
        "device enrolled"
    );
    Ok(state)
}

/// Connects once to the server with a TLS configuration pinned to `pin`
/// and returns the CA certificate it presented that matches the pin.
pub async fn fetch_pinned_ca(url: &Url, pin: &str) -> Result<CertificateDer<'static>, EnrollError> {
    let pin_bytes = ward_pki::parse_pin(pin).map_err(|e| EnrollError::BadCode(e.to_string()))?;
    let config =
        ward_pki::client_config_pinned(pin, &[b"h2", b"http/1.1"]).map_err(|e| EnrollError::Pki(e.to_string()))?;
    let host = url_host(url).ok_or_else(|| EnrollError::BadServer(format!("{url} has no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| EnrollError::BadServer(format!("{url} has no port")))?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| EnrollError::BadServer(format!("{host:?} is not a valid server name")))?;
    let fail = |e: &dyn std::fmt::Display| {
        EnrollError::PinnedCa(format!("https://{}:{port}: {e}", url.host_str().unwrap_or_default()))
    };
    let handshake = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| fail(&e))?;
        TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| fail(&e))
    };
    let mut tls = tokio::time::timeout(FETCH_TIMEOUT, handshake)
        .await
        .map_err(|_| fail(&"timed out"))??;
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default().to_vec();
    let _ = tls.shutdown().await;
    ward_pki::pinned_ca_from_chain(&chain, &pin_bytes)
        .ok_or_else(|| fail(&"the server did not present the CA the code names"))
}

/// The URL's host as a connectable name: IPv6 without brackets.
fn url_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some(host.to_owned())
}

/// PEM text of one DER object.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The private key in PEM text.
pub(crate) fn parse_key(pem: &str) -> Result<ward_pki::PrivateKeyDer<'static>, EnrollError> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    ward_pki::PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| EnrollError::Pki(format!("cannot read the device key just made: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const PIN: &str = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";

    #[test]
    fn parses_codes_with_and_without_pin() {
        let plain = parse_code(&format!("  wen_{SECRET}\n")).unwrap();
        assert_eq!(plain.code, format!("wen_{SECRET}"));
        assert_eq!(plain.pin, None);
        let pinned = parse_code(&format!("wen_{SECRET}_{PIN}")).unwrap();
        assert_eq!(pinned.pin, Some(format!("sha256:{}", PIN.to_ascii_lowercase())));
        assert_eq!(pinned.code, format!("wen_{SECRET}_{PIN}"));
    }

    #[test]
    fn refuses_bad_codes_clearly() {
        let cases = [
            ("", "does not start with wen_"),
            (&format!("wk_{SECRET}") as &str, "does not start with wen_"),
            ("wen_", "secret is not 64"),
            (&format!("wen_{}", &SECRET[..63]), "secret is not 64"),
            (&format!("wen_{}x", &SECRET[..63]), "secret is not 64"),
            (&format!("wen_{SECRET}_{}", &PIN[..10]), "fingerprint is not 64"),
            (&format!("wen_{SECRET}_"), "fingerprint is not 64"),
            (&format!("wen_{SECRET}_{PIN}_x"), "too many parts"),
        ];
        for (code, why) in cases {
            let err = parse_code(code).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, EnrollError::BadCode(_)), "{code}: {err:?}");
            assert!(msg.contains(why), "{code}: {msg}");
            assert!(msg.starts_with("invalid enrolment code"), "{msg}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for (u, want) in [
            ("http://127.0.0.1:7600", true),
            ("http://127.1.2.3", true),
            ("http://[::1]:7600", true),
            ("http://localhost:7600", true),
            ("http://LOCALHOST", true),
            ("http://10.0.0.1", false),
            ("http://ward.example.com", false),
            ("http://localhost.example.com", false),
        ] {
            assert_eq!(is_loopback_host(&Url::parse(u).unwrap()), want, "{u}");
        }
    }

    #[test]
    fn pem_round_trip() {
        let ca = ward_pki::CertificateAuthority::generate("t").unwrap();
        let pem = pem_encode("CERTIFICATE", ca.cert_der().as_ref());
        let back = ward_pki::certs_from_pem(&pem).unwrap();
        assert_eq!(back[0].as_ref(), ca.cert_der().as_ref());
    }
}
