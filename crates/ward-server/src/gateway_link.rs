//! What the embedded gateway needs from the server in the same process:
//! snapshots, record storage and its certificate. The `ward` binary adapts
//! this to the gateway crate's traits, so neither crate depends on the other.

use std::net::IpAddr;
use std::time::Duration;

use ward_api::{AccessRecord, AccessRecordBatch, GatewaySnapshot};
use ward_pki::Identity;

use crate::state::AppState;
use crate::{snapshot, tenant_ca};

/// The id the embedded gateway's records and certificate carry.
pub const EMBEDDED_GATEWAY_ID: &str = "embedded";

/// A handle on a running server for its embedded gateway.
#[derive(Clone)]
pub struct GatewayLink {
    state: AppState,
}

impl GatewayLink {
    pub(crate) fn new(state: AppState) -> Self {
        GatewayLink { state }
    }

    /// Wait up to `wait` for a snapshot newer than `after`.
    pub async fn snapshot_after(&self, after: Option<i64>, wait: Duration) -> anyhow::Result<GatewaySnapshot> {
        snapshot::next_after(&self.state, after, wait)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }

    /// The text of a domain list a snapshot names by digest.
    pub async fn domain_list(&self, sha256: &str) -> anyhow::Result<String> {
        self.state
            .store
            .domain_list_content_by_digest(sha256)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("no domain list with digest {sha256}"))
    }

    /// Store records shipped by the embedded gateway.
    pub async fn store_records(&self, records: Vec<AccessRecord>) -> anyhow::Result<()> {
        crate::api::gateways::store_records(&self.state, EMBEDDED_GATEWAY_ID, AccessRecordBatch { records })
            .await
            .map(drop)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    }

    /// Keep the embedded gateway's status report (tunnels and connections open).
    pub fn report_status(&self, report: ward_api::GatewayStatusReport) {
        self.state
            .gateway_reports
            .put(EMBEDDED_GATEWAY_ID, report, crate::state::now_ms());
    }

    /// A certificate for the embedded gateway from the service CA, naming
    /// where agents dial it: (chain PEM, key PEM).
    pub async fn embedded_certificate(&self) -> anyhow::Result<(String, String)> {
        let config = &self.state.config;
        let mut names = vec!["localhost".to_owned()];
        let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
        if !config.gateway_listen.ip().is_unspecified() && !ips.contains(&config.gateway_listen.ip()) {
            ips.push(config.gateway_listen.ip());
        }
        let advertised = config.gateway_advertise();
        let host = advertised.rsplit_once(':').map(|(h, _)| h).unwrap_or(&advertised);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !names.iter().any(|n| n == host) => names.push(host.to_ascii_lowercase()),
            Err(_) => {}
        }
        let ca = tenant_ca::get_or_create(&self.state, &self.state.system_tenant_id, ward_core::SYSTEM_TENANT)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot open the service CA stored in the database with this server's master key; \
                     every server sharing a database needs the same key (WARD_MASTER_KEY or --master-key-file)"
                )
            })?;
        let (key_pem, csr_pem) = ward_pki::generate_key_and_csr(EMBEDDED_GATEWAY_ID)?;
        let identity = Identity::gateway(EMBEDDED_GATEWAY_ID)?;
        let leaf = ca.sign_csr_with_names(&csr_pem, &identity, &names, &ips, Duration::from_secs(30 * 24 * 3600))?;
        Ok((format!("{}{}", leaf.cert_pem, ca.cert_pem()), key_pem))
    }

    /// Redeems a web sign-in code brought to `host` (see [`crate::web_access`]);
    /// `Ok(None)` when it is refused.
    pub async fn redeem_web_code(&self, host: &str, code: &str) -> anyhow::Result<Option<ward_api::WebSession>> {
        match crate::web_access::redeem(&self.state, host, code).await {
            Ok(session) => Ok(Some(session)),
            Err(e) if e.status().is_client_error() => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}", e.message)),
        }
    }

    /// A certificate from the service CA for the web listener, naming the
    /// published `hosts` (and `localhost`), for 30 days: (chain PEM, key PEM).
    pub async fn web_certificate(&self, hosts: &[String]) -> anyhow::Result<(String, String)> {
        let ca = self.service_ca().await?;
        let mut names = vec!["localhost".to_owned()];
        names.extend(hosts.iter().cloned());
        let (key_pem, csr_pem) = ward_pki::generate_key_and_csr(EMBEDDED_GATEWAY_ID)?;
        let identity = Identity::gateway(EMBEDDED_GATEWAY_ID)?;
        let leaf = ca.sign_csr_with_names(&csr_pem, &identity, &names, &[], Duration::from_secs(30 * 24 * 3600))?;
        Ok((format!("{}{}", leaf.cert_pem, ca.cert_pem()), key_pem))
    }

    /// The service CA's certificate (PEM): what browsers trust the web
    /// listener's certificate through when it comes from the service CA.
    pub async fn service_ca_pem(&self) -> anyhow::Result<String> {
        Ok(self.service_ca().await?.cert_pem())
    }

    async fn service_ca(&self) -> anyhow::Result<ward_pki::CertificateAuthority> {
        tenant_ca::get_or_create(&self.state, &self.state.system_tenant_id, ward_core::SYSTEM_TENANT)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot open the service CA stored in the database with this server's master key; \
                     every server sharing a database needs the same key (WARD_MASTER_KEY or --master-key-file)"
                )
            })
    }

    pub fn config(&self) -> &crate::config::ServerConfig {
        &self.state.config
    }
}
