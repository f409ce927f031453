//! The published hosts of the current snapshot: host name → tenant,
//! application and upstream; plus the names the identity assertion carries.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use ward_api::GatewaySnapshot;
use ward_policy::{Address, PortRange};

/// Where one published host goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebTarget {
    pub(crate) tenant_id: String,
    pub(crate) app_id: String,
    /// The application's first address (a name or an IP), lowercase.
    pub(crate) upstream_host: String,
    /// The application's first port.
    pub(crate) upstream_port: u16,
    /// Whether the upstream speaks TLS.
    pub(crate) upstream_tls: bool,
}

/// Names of one tenant's users and groups, by id.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub(crate) users: HashMap<String, String>,
    pub(crate) groups: HashMap<String, String>,
}

#[derive(Debug, Default)]
pub(crate) struct Hosts {
    pub(crate) targets: HashMap<String, WebTarget>,
    pub(crate) directories: HashMap<String, Directory>,
}

impl Hosts {
    /// The published hosts of a snapshot. An application whose first
    /// address is not a name or an IP, or that has no port, is not served
    /// (logged). A host published twice (the server refuses it) is served
    /// for neither.
    pub(crate) fn compile(snapshot: &GatewaySnapshot) -> Hosts {
        let mut targets: HashMap<String, WebTarget> = HashMap::new();
        let mut duplicates = Vec::new();
        let mut directories = HashMap::new();
        for tenant in &snapshot.tenants {
            if tenant.web_apps.is_empty() {
                continue;
            }
            for web in &tenant.web_apps {
                let Some(app) = tenant.policy.apps.iter().find(|a| a.id == web.app_id) else {
                    continue;
                };
                let host = match app.addresses.first() {
                    Some(Address::Domain(d)) => d.clone(),
                    Some(Address::Ip(ip)) => ip.to_string(),
                    _ => {
                        tracing::warn!(host = %web.public_host, "a published application's first address is not a host; not serving it");
                        continue;
                    }
                };
                let Some(port) = app.ports.first().map(|r: &PortRange| r.start) else {
                    continue;
                };
                let target = WebTarget {
                    tenant_id: tenant.id.clone(),
                    app_id: web.app_id.clone(),
                    upstream_host: host,
                    upstream_port: port,
                    upstream_tls: web.upstream_scheme == "https",
                };
                let key = web.public_host.to_ascii_lowercase();
                if targets.insert(key.clone(), target).is_some() {
                    duplicates.push(key);
                }
            }
            directories.insert(
                tenant.id.clone(),
                Directory {
                    users: tenant.users.iter().map(|u| (u.id.clone(), u.name.clone())).collect(),
                    groups: tenant.groups.iter().map(|g| (g.id.clone(), g.name.clone())).collect(),
                },
            );
        }
        for host in duplicates {
            tracing::error!(%host, "a host is published twice; serving it for neither");
            targets.remove(&host);
        }
        Hosts { targets, directories }
    }

    /// Every published host, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.targets.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The current [`Hosts`], swapped on every snapshot, and a watch of the
/// set of names (the certificate follows it).
pub(crate) struct HostTable {
    current: RwLock<Arc<Hosts>>,
    names: watch::Sender<Vec<String>>,
    /// Bumped on every snapshot: live WebSockets are re-decided.
    pub(crate) changed: watch::Sender<u64>,
}

impl Default for HostTable {
    fn default() -> Self {
        HostTable {
            current: RwLock::new(Arc::new(Hosts::default())),
            names: watch::channel(Vec::new()).0,
            changed: watch::channel(0).0,
        }
    }
}

impl HostTable {
    pub(crate) fn current(&self) -> Arc<Hosts> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn apply(&self, snapshot: &GatewaySnapshot) {
        let hosts = Hosts::compile(snapshot);
        let names = hosts.names();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(hosts);
        self.names.send_if_modified(|current| {
            if *current == names {
                false
            } else {
                *current = names;
                true
            }
        });
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn watch_names(&self) -> watch::Receiver<Vec<String>> {
        self.names.subscribe()
    }
}
