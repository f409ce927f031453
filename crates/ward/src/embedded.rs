//! The gateway embedded in `ward server`: the gateway crate's traits over the
//! server's in-process link, so neither crate depends on the other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ward_api::{AccessRecord, GatewaySnapshot, WebSession};
use ward_gateway::{BoxFuture, RecordSink, SnapshotSource, WebBackend, WebConfig};
use ward_server::gateway_link::GatewayLink;

/// How long one in-process wait for a new snapshot lasts before it is renewed.
const WAIT: Duration = Duration::from_secs(30);

pub struct LocalSnapshots(pub GatewayLink);

impl SnapshotSource for LocalSnapshots {
    async fn next(&mut self, after: Option<i64>) -> anyhow::Result<GatewaySnapshot> {
        self.0.snapshot_after(after, WAIT).await
    }

    async fn domain_list(&mut self, sha256: &str) -> anyhow::Result<String> {
        self.0.domain_list(sha256).await
    }
}

pub struct LocalRecords(pub GatewayLink);

impl RecordSink for LocalRecords {
    async fn ship(&self, batch: Vec<AccessRecord>) -> anyhow::Result<()> {
        self.0.store_records(batch).await
    }

    async fn report_status(&self, status: ward_api::GatewayStatusReport) -> anyhow::Result<()> {
        self.0.report_status(status);
        Ok(())
    }
}

/// The embedded gateway's web listener: codes redeemed in the process, and
/// certificates from the service CA naming the published hosts.
pub struct LocalWeb {
    link: GatewayLink,
    /// Issue certificates (no certificate files were given).
    issue: bool,
}

impl WebBackend for LocalWeb {
    fn redeem<'a>(&'a self, host: &'a str, code: &'a str) -> BoxFuture<'a, anyhow::Result<Option<WebSession>>> {
        Box::pin(self.link.redeem_web_code(host, code))
    }

    fn certificate<'a>(&'a self, hosts: &'a [String]) -> BoxFuture<'a, Option<anyhow::Result<(String, String)>>> {
        Box::pin(async move {
            if self.issue {
                Some(self.link.web_certificate(hosts).await)
            } else {
                None
            }
        })
    }
}

/// The web listener's settings from the server's configuration. Without
/// certificate files, the service CA's certificate is written to
/// `<data_dir>/service-ca.pem` for browsers and tests to trust.
pub async fn web_config(link: &GatewayLink, listen: SocketAddr, portal_url: String) -> anyhow::Result<WebConfig> {
    let config = link.config();
    let cert = match &config.web_cert {
        Some((cert, key)) => Some((
            std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?,
            std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?,
        )),
        None => {
            let path = config.data_dir.join("service-ca.pem");
            std::fs::write(&path, link.service_ca_pem().await?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            None
        }
    };
    Ok(WebConfig {
        listen,
        portal_url,
        key_dir: config.data_dir.join("gateway"),
        backend: Arc::new(LocalWeb {
            link: link.clone(),
            issue: cert.is_none(),
        }),
        cert,
    })
}
