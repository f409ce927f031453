//! Graceful shutdown: stop accepting, send GOAWAY on every tunnel, let the
//! streams in flight finish for a grace period, cut the rest, then make every
//! access record durable and give the spool a last chance to ship.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DRAIN_GRACE, FLUSH_DEADLINE};
use crate::records::End;

/// The two signals every task watches.
#[derive(Default)]
pub(crate) struct Drain {
    /// Stop accepting; tunnels send GOAWAY and close once their streams end.
    draining: CancellationToken,
    /// The grace period is over: tunnels drop their connections now.
    stop_now: CancellationToken,
}

impl Drain {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    pub(crate) fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    pub(crate) fn stop_now(&self) -> &CancellationToken {
        &self.stop_now
    }
}

/// The tasks a running gateway owns.
#[derive(Default)]
pub(crate) struct Tasks {
    /// The accept loop; it owns the worker threads, which own the tunnel
    /// tasks, which own their streams.
    pub(crate) accept: Option<JoinHandle<()>>,
    pub(crate) sync: Option<JoinHandle<()>>,
    pub(crate) recheck: Option<JoinHandle<()>>,
    /// The status reporter (status.rs).
    pub(crate) status: Option<JoinHandle<()>>,
    pub(crate) spool_writer: Option<JoinHandle<()>>,
    pub(crate) shipper: Option<JoinHandle<()>>,
    /// The keeper of the journal of open connections (heartbeats, fsyncs,
    /// compaction).
    pub(crate) journal: Option<JoinHandle<()>>,
    /// Tells the shipper to exit once it has shipped everything durable.
    pub(crate) shipper_finish: CancellationToken,
    /// Makes the worker threads drop their tunnels at once (workers.rs).
    pub(crate) kill_workers: CancellationToken,
}

impl Tasks {
    /// Stops everything at once, as a crash would (used by `Drop`).
    pub(crate) fn abort_all(&mut self) {
        self.kill_workers.cancel();
        for task in [
            self.accept.take(),
            self.sync.take(),
            self.recheck.take(),
            self.status.take(),
            self.shipper.take(),
            self.spool_writer.take(),
            self.journal.take(),
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
        }
    }
}

/// Waits for `task` up to `limit`; aborts it if it is still running then.
async fn join_within(task: Option<JoinHandle<()>>, limit: Duration) -> bool {
    let Some(mut task) = task else { return true };
    match tokio::time::timeout(limit, &mut task).await {
        Ok(_) => true,
        Err(_) => {
            task.abort();
            false
        }
    }
}

/// The shutdown sequence.
pub(crate) async fn shutdown(gateway: &crate::Gateway, tasks: &mut Tasks) {
    gateway.drain.draining.cancel();
    tracing::info!(live = gateway.registry.len(), "draining: GOAWAY sent to every tunnel");

    if let Some(accept) = tasks.accept.as_mut() {
        if tokio::time::timeout(DRAIN_GRACE, accept).await.is_err() {
            tracing::warn!(
                live = gateway.registry.len(),
                "drain grace period over; closing the connections still open"
            );
            gateway.registry.cancel_all(End::GatewayShutdown);
            gateway.drain.stop_now.cancel();
            if let Some(accept) = tasks.accept.as_mut() {
                if tokio::time::timeout(Duration::from_secs(2), accept).await.is_err() {
                    // Drop what is left on the worker threads: each dropped
                    // stream still emits its record.
                    tasks.kill_workers.cancel();
                    join_within(tasks.accept.take(), Duration::from_secs(2)).await;
                }
            }
        }
    }
    tasks.accept = None;

    // No connection is left to emit records or to be re-checked.
    for task in [tasks.sync.take(), tasks.recheck.take(), tasks.status.take()]
        .into_iter()
        .flatten()
    {
        task.abort();
    }

    if tokio::time::timeout(FLUSH_DEADLINE, gateway.records.flush())
        .await
        .is_err()
    {
        tracing::error!("the spool did not make the last records durable in time");
    }
    tasks.shipper_finish.cancel();
    if !join_within(tasks.shipper.take(), FLUSH_DEADLINE).await {
        tracing::warn!("records remain in the spool; they ship at the next start");
    }
    if let Some(writer) = tasks.spool_writer.take() {
        writer.abort();
    }
    if let Some(keeper) = tasks.journal.take() {
        keeper.abort();
    }
    // Every connection has ended and its record is in the spool: make the
    // journal's last `closed` entries durable too.
    gateway.journal.tick().await;
    tracing::info!("gateway stopped");
}
