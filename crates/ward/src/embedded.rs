//! The gateway embedded in `ward server`: the gateway crate's traits over the
//! server's in-process link, so neither crate depends on the other.

use std::time::Duration;

use ward_api::{AccessRecord, GatewaySnapshot};
use ward_gateway::{RecordSink, SnapshotSource};
use ward_server::gateway_link::GatewayLink;

/// How long one in-process wait for a new snapshot lasts before it is renewed.
const WAIT: Duration = Duration::from_secs(30);

pub struct LocalSnapshots(pub GatewayLink);

impl SnapshotSource for LocalSnapshots {
    async fn next(&mut self, after: Option<i64>) -> anyhow::Result<GatewaySnapshot> {
        self.0.snapshot_after(after, WAIT).await
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
