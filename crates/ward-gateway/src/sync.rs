//! Following the server's policy: ask for the next snapshot, apply it,
//! persist it, re-check live connections. On errors, back off and keep
//! enforcing what we have.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ward_api::GatewaySnapshot;

use crate::state::{self, PolicyState};
use crate::Gateway;

/// Where snapshots come from: the server's long-poll endpoint, or the
/// server's store directly when the gateway runs in-process.
pub trait SnapshotSource: Send + 'static {
    /// Waits for a snapshot newer than `after` (the current one when `after`
    /// is `None`) and returns it. May take as long as it likes (a long
    /// poll); an error makes the gateway back off and ask again.
    fn next(&mut self, after: Option<i64>) -> impl Future<Output = anyhow::Result<GatewaySnapshot>> + Send;

    /// The text of the domain list whose canonical text has this SHA-256
    /// (a snapshot's `list_refs`). Asked once per digest the gateway does not
    /// have; the gateway checks the digest. Without lists by digest (a
    /// source whose snapshots carry their lists inline), an error.
    fn domain_list(&mut self, sha256: &str) -> impl Future<Output = anyhow::Result<String>> + Send {
        let sha256 = sha256.to_owned();
        async move { Err(anyhow::anyhow!("this snapshot source has no domain list {sha256}")) }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

pub(crate) async fn run<S: SnapshotSource>(mut source: S, gateway: Arc<Gateway>, spool_dir: PathBuf) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let after = gateway.state.version();
        match source.next(after).await {
            Ok(snapshot) if after.is_some_and(|a| snapshot.version <= a) => {
                // Versions only grow; an old answer is ignored. Pause so a
                // source that keeps answering with it cannot spin us.
                tracing::debug!(version = snapshot.version, "ignoring a snapshot that is not newer");
                tokio::time::sleep(BACKOFF_MIN).await;
            }
            Ok(snapshot) => {
                // The lists it names by digest, fetched before it is saved
                // or enforced: a snapshot is applied whole or not at all.
                if let Err(e) = fetch_lists(&mut source, &gateway, &snapshot).await {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot get the snapshot's domain lists; enforcing the last one");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                backoff = BACKOFF_MIN;
                let dir = spool_dir.clone();
                let g = gateway.clone();
                // Compiling a tenant's lists (up to millions of names) takes
                // long enough to keep it off the runtime's threads.
                // Saved before it is enforced: a snapshot a gateway has
                // shown as applied is the one a restart enforces.
                let saved = tokio::task::spawn_blocking(move || {
                    let saved = state::persist(&dir, &snapshot);
                    apply(&g, &snapshot);
                    if saved.is_ok() {
                        g.internet_cache.lists.retain(&snapshot);
                    }
                    saved
                });
                match saved.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot save the policy snapshot; a restart would use an older one")
                    }
                    Err(e) => tracing::error!(error = %e, "snapshot save task failed"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot get a policy snapshot; enforcing the last one");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Fetches, checks and keeps the lists `snapshot` names by digest that the
/// gateway does not have yet.
async fn fetch_lists<S: SnapshotSource>(
    source: &mut S,
    gateway: &Arc<Gateway>,
    snapshot: &GatewaySnapshot,
) -> anyhow::Result<()> {
    for sha256 in gateway.internet_cache.lists.missing(snapshot)? {
        let text = source.domain_list(&sha256).await?;
        let g = gateway.clone();
        // Hashing and parsing a million names: off the runtime's threads.
        tokio::task::spawn_blocking(move || g.internet_cache.lists.put(&sha256, &text)).await??;
    }
    Ok(())
}

/// Makes a snapshot the one enforced: compile, update the TLS client roots,
/// swap, and re-check live connections at once.
pub(crate) fn apply(gateway: &Gateway, snapshot: &GatewaySnapshot) {
    let compiled = PolicyState::compile_with(snapshot, &gateway.internet_cache);
    gateway.tls.update(compiled.client_roots());
    gateway.state.swap(Arc::new(compiled));
    gateway.web_hosts.apply(snapshot);
    gateway.registry.changed.notify_one();
    tracing::info!(
        version = snapshot.version,
        tenants = snapshot.tenants.len(),
        "policy snapshot applied"
    );
}
