//! The policy the gateway enforces: the latest snapshot, compiled per tenant,
//! swapped atomically, and kept on disk so a restarted gateway enforces the
//! last one it saw even when the server is unreachable.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ward_api::{DnsSettings, GatewaySnapshot, InternetSnapshot};
use ward_inet::{CompiledInternetPolicy, InternetDecision, InternetRequest};
use ward_pki::CertificateDer;
use ward_policy::{CompiledPolicy, DeviceState, Host, Protocol, Reason, Request};

/// File under the spool directory holding the last applied snapshot.
const SNAPSHOT_FILE: &str = "snapshot.json";

/// The compiled form of one [`GatewaySnapshot`].
pub(crate) struct PolicyState {
    pub(crate) version: i64,
    tenants: HashMap<String, TenantPolicy>,
    /// Every tenant's CA, sorted and without duplicates: the client roots of
    /// the TLS listener.
    client_roots: Vec<CertificateDer<'static>>,
    /// Proxy credential id -> tenant id, for the proxy port.
    proxy_credentials: HashMap<String, String>,
}

/// One tenant's part of a snapshot.
pub(crate) struct TenantPolicy {
    active: bool,
    /// The CA certificates that sign this tenant's devices: usually one,
    /// two while the CA is being replaced.
    cas: Vec<CertificateDer<'static>>,
    policy: CompiledPolicy,
    users: HashMap<String, UserState>,
    devices: HashMap<String, DeviceEntry>,
    /// The tenant's internet access control; `None` when it is off.
    internet: Option<InternetState>,
}

/// A tenant's internet access control, compiled: what the filtering proxy
/// and the DNS filter decide with.
pub(crate) struct InternetState {
    /// Shared between snapshots while the tenant's rules and lists stay the
    /// same (see [`InternetCache`]).
    pub(crate) policy: Arc<CompiledInternetPolicy>,
    pub(crate) dns: DnsSettings,
    /// Proxy credentials by id: (user id, SHA-256 of the whole password).
    pub(crate) proxy_credentials: HashMap<String, (String, [u8; 32])>,
    pub(crate) warn_minutes: u32,
    /// TLS inspection, when the tenant has it on (rules still have to ask).
    pub(crate) inspection: Option<Arc<Inspection>>,
}

/// A tenant's TLS inspection: the certificates minted from its inspection
/// CA, and the names never inspected.
pub(crate) struct Inspection {
    pub(crate) minter: ward_pki::Minter,
    /// The do-not-inspect lists (banking and health by default).
    do_not_inspect: ward_inet::DomainSet,
}

impl Inspection {
    /// Whether traffic to `host` may be inspected: never for a name on a
    /// do-not-inspect list. An address literal is on no list.
    pub(crate) fn applies_to(&self, host: &ward_inet::Host) -> bool {
        match host.as_name() {
            Some(name) => !self.do_not_inspect.contains(name),
            None => true,
        }
    }
}

/// Compiled internet policies of the last snapshot, by tenant, with a
/// fingerprint of their input: a new snapshot (and the epoch moves for every
/// enrolment or posture change) recompiles a tenant's lists, which can hold a
/// million names, only when its rules or lists changed.
pub(crate) struct InternetCache {
    /// The hash seed of every compiled list set: random per process, so no
    /// tenant can import names prepared to collide.
    seed: u64,
    entries: Mutex<HashMap<String, (u64, Arc<CompiledInternetPolicy>)>>,
    /// Inspection by tenant, with a fingerprint of the CA and the
    /// do-not-inspect lists: the minted certificates outlive snapshots.
    inspections: Mutex<HashMap<String, (u64, Arc<Inspection>)>>,
    /// The lists snapshots name by digest.
    pub(crate) lists: crate::lists::ListStore,
}

impl InternetCache {
    /// A cache keeping fetched lists in `lists_dir`.
    pub(crate) fn new(lists_dir: PathBuf) -> InternetCache {
        InternetCache {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5741_5244u64),
            entries: Mutex::default(),
            inspections: Mutex::default(),
            lists: crate::lists::ListStore::new(lists_dir),
        }
    }

    /// The tenant's compiled policy: its rules with the lists carried inline
    /// and those named by digest. Compiled again only when the rules, the
    /// inline lists or the digests changed; then the lists by digest are
    /// read from [`crate::lists::ListStore`] (a missing one is logged and
    /// left out: sync fetches every digest before it applies a snapshot).
    fn compile(&self, tenant_id: &str, snapshot: &InternetSnapshot) -> Arc<CompiledInternetPolicy> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        // serde_json of the input is stable for equal inputs (field order is
        // the struct's, lists keep their canonical text); lists by digest
        // enter by digest.
        match serde_json::to_vec(&snapshot.policy) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(_) => 0u8.hash(&mut hasher),
        }
        snapshot.list_refs.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, policy)) = entries.get(tenant_id) {
            if *seen == fingerprint {
                return policy.clone();
            }
        }
        let mut input = snapshot.policy.clone();
        for list in self.resolve(tenant_id, &snapshot.list_refs, |_| true) {
            input.lists.push(list);
        }
        let policy = Arc::new(CompiledInternetPolicy::compile_seeded(input, self.seed));
        entries.insert(tenant_id.to_owned(), (fingerprint, policy.clone()));
        policy
    }

    /// The lists of `refs` that `wanted` names, from the list store.
    fn resolve(
        &self,
        tenant_id: &str,
        refs: &[ward_api::SnapshotListRef],
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<ward_inet::NamedDomainList> {
        refs.iter()
            .filter(|r| wanted(&r.id))
            .filter_map(|r| match self.lists.get(&r.sha256) {
                Some(domains) => Some(ward_inet::NamedDomainList {
                    id: r.id.clone(),
                    domains,
                }),
                None => {
                    tracing::error!(tenant = %tenant_id, list = %r.id, digest = %r.sha256, "a domain list the snapshot names is missing; its rules match nothing until it is fetched");
                    None
                }
            })
            .collect()
    }

    /// The tenant's inspection, when it is on and its CA parses.
    fn inspection(&self, tenant_id: &str, snapshot: &InternetSnapshot) -> Option<Arc<Inspection>> {
        let ca = snapshot.inspection_ca.as_ref().filter(|_| snapshot.inspection)?;
        let wanted = |id: &str| snapshot.do_not_inspect.iter().any(|d| d == id);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        ca.cert_pem.hash(&mut hasher);
        ca.key_pem.hash(&mut hasher);
        for list in snapshot.policy.lists.iter().filter(|l| wanted(&l.id)) {
            list.domains.as_text().hash(&mut hasher);
        }
        for r in snapshot.list_refs.iter().filter(|r| wanted(&r.id)) {
            r.sha256.hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let mut inspections = self.inspections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, inspection)) = inspections.get(tenant_id) {
            if *seen == fingerprint {
                return Some(inspection.clone());
            }
        }
        let resolved = self.resolve(tenant_id, &snapshot.list_refs, wanted);
        let lists: Vec<&ward_inet::DomainList> = snapshot
            .policy
            .lists
            .iter()
            .filter(|l| wanted(&l.id))
            .chain(resolved.iter())
            .map(|l| &l.domains)
            .collect();
        let minter = match ward_pki::Minter::from_pem(&ca.cert_pem, &ca.key_pem) {
            Ok(minter) => minter,
            Err(e) => {
                tracing::error!(tenant = %tenant_id, error = %e, "the inspection CA in the snapshot does not load; nothing of this tenant is inspected");
                return None;
            }
        };
        let inspection = Arc::new(Inspection {
            minter,
            do_not_inspect: ward_inet::DomainSet::build_seeded(&lists, self.seed),
        });
        inspections.insert(tenant_id.to_owned(), (fingerprint, inspection.clone()));
        Some(inspection)
    }
}

fn compile_internet(cache: &InternetCache, tenant_id: &str, snapshot: &InternetSnapshot) -> Option<InternetState> {
    if !snapshot.enabled {
        return None;
    }
    let proxy_credentials = snapshot
        .proxy_credentials
        .iter()
        .filter_map(|c| {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&c.secret_sha256, &mut hash).ok()?;
            Some((c.id.clone(), (c.user_id.clone(), hash)))
        })
        .collect();
    Some(InternetState {
        policy: cache.compile(tenant_id, snapshot),
        dns: snapshot.dns.clone(),
        proxy_credentials,
        warn_minutes: snapshot.warn_minutes.max(1),
        inspection: cache.inspection(tenant_id, snapshot),
    })
}

/// What the gateway concluded about one request to the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InternetVerdict {
    /// Refused before the internet rules: `tenant_suspended`,
    /// `device_revoked`, `user_disabled`, ... (as [`Verdict::reason`]), or
    /// `internet_off` when the tenant has internet access control off.
    Refused(&'static str),
    /// The internet rules decided.
    Decided {
        user_id: String,
        decision: InternetDecision,
    },
}

struct UserState {
    /// The user's name: the proxy port's user name.
    name: String,
    disabled: bool,
    groups: Vec<String>,
}

struct DeviceEntry {
    user_id: String,
    compliant: bool,
    revoked: bool,
    /// When the device's user session ends; `None`: not enforced.
    session_expires_ms: Option<i64>,
}

/// What the gateway concluded about one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) allowed: bool,
    /// The deciding rule; `None` for a default deny or a refusal before policy.
    pub(crate) rule_id: Option<Arc<str>>,
    /// `rule_matched`, `no_application`, `device_revoked`, ... (see
    /// [`ward_api::AccessRecord::reason`]).
    pub(crate) reason: &'static str,
}

impl Verdict {
    fn refuse(reason: &'static str) -> Verdict {
        Verdict {
            allowed: false,
            rule_id: None,
            reason,
        }
    }
}

/// The destination of one connection, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination<'a> {
    /// Lowercased host as asked: a name or an IP literal (IPv6 in brackets).
    pub(crate) host: &'a str,
    /// What the name resolved to, once it has been resolved.
    pub(crate) resolved: Option<IpAddr>,
    pub(crate) port: u16,
}

impl PolicyState {
    /// Compiles a snapshot, reusing the internet policies in `cache` whose
    /// input did not change. A tenant whose CA does not parse is left out
    /// (none of its devices can connect) and logged.
    pub(crate) fn compile_with(snapshot: &GatewaySnapshot, cache: &InternetCache) -> PolicyState {
        let mut tenants = HashMap::with_capacity(snapshot.tenants.len());
        for tenant in &snapshot.tenants {
            let cas = match ward_pki::certs_from_pem(&tenant.ca_pem) {
                // No CA: a tenant with only published applications; no device connects.
                _ if tenant.ca_pem.trim().is_empty() => Vec::new(),
                Ok(cas) if !cas.is_empty() => cas,
                Ok(_) | Err(_) => {
                    tracing::error!(tenant = %tenant.id, "tenant CA in the snapshot does not parse; its devices cannot connect");
                    continue;
                }
            };
            let users = tenant
                .users
                .iter()
                .map(|u| {
                    (
                        u.id.clone(),
                        UserState {
                            name: u.name.clone(),
                            disabled: u.disabled,
                            groups: u.groups.clone(),
                        },
                    )
                })
                .collect();
            let devices = tenant
                .devices
                .iter()
                .map(|d| {
                    (
                        d.id.clone(),
                        DeviceEntry {
                            user_id: d.user_id.clone(),
                            compliant: d.compliant,
                            revoked: d.revoked,
                            session_expires_ms: d.session_expires_ms,
                        },
                    )
                })
                .collect();
            tenants.insert(
                tenant.id.clone(),
                TenantPolicy {
                    active: tenant.active,
                    cas,
                    policy: CompiledPolicy::compile(tenant.policy.clone()),
                    users,
                    devices,
                    internet: compile_internet(cache, &tenant.id, &tenant.internet),
                },
            );
        }
        let mut client_roots: Vec<CertificateDer<'static>> =
            tenants.values().flat_map(|t| t.cas.iter().cloned()).collect();
        client_roots.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        client_roots.dedup();
        let mut proxy_credentials = HashMap::new();
        for (tenant_id, tenant) in &tenants {
            for id in tenant.internet.iter().flat_map(|i| i.proxy_credentials.keys()) {
                proxy_credentials.insert(id.clone(), tenant_id.clone());
            }
        }
        PolicyState {
            version: snapshot.version,
            tenants,
            client_roots,
            proxy_credentials,
        }
    }

    pub(crate) fn tenant(&self, tenant_id: &str) -> Option<&TenantPolicy> {
        self.tenants.get(tenant_id)
    }

    /// The tenant, user and expected SHA-256 of a proxy credential, by id.
    pub(crate) fn proxy_credential(&self, id: &str) -> Option<(&str, &TenantPolicy, &str, &[u8; 32])> {
        let (tenant_id, tenant) = self.tenants.get_key_value(self.proxy_credentials.get(id)?)?;
        let (user_id, hash) = tenant.internet()?.proxy_credentials.get(id)?;
        Some((tenant_id, tenant, user_id, hash))
    }

    pub(crate) fn client_roots(&self) -> &[CertificateDer<'static>] {
        &self.client_roots
    }

    /// Decides one connection of `device_id` in `tenant_id`; a tenant that
    /// is no longer in the snapshot connects nothing.
    pub(crate) fn decide(
        &self,
        tenant_id: &str,
        device_id: &str,
        source: IpAddr,
        dest: Destination<'_>,
        now_ms: i64,
    ) -> Verdict {
        match self.tenant(tenant_id) {
            Some(tenant) => tenant.decide(device_id, source, dest, now_ms),
            None => Verdict::refuse("tenant_unknown"),
        }
    }
}

impl TenantPolicy {
    /// Whether one of this tenant's CAs issued `leaf` (the TLS layer only
    /// knows it chains to *some* tenant's CA).
    pub(crate) fn issued(&self, leaf: &CertificateDer<'_>) -> Result<(), ward_pki::PkiError> {
        let mut last = None;
        for ca in &self.cas {
            match ward_pki::verify_issued_by(leaf, ca) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ward_pki::PkiError::InvalidInput("the tenant has no CA".to_owned())))
    }

    /// The user a device belongs to, if the device is known.
    pub(crate) fn user_of(&self, device_id: &str) -> Option<&str> {
        self.devices.get(device_id).map(|d| d.user_id.as_str())
    }

    /// The gateway's checks (tenant active, device known, not revoked and
    /// signed in, user known and enabled), then the tenant's policy.
    pub(crate) fn decide(&self, device_id: &str, source: IpAddr, dest: Destination<'_>, now_ms: i64) -> Verdict {
        let (device, user) = match self.check_device(device_id, now_ms) {
            Ok(found) => found,
            Err(reason) => return Verdict::refuse(reason),
        };
        let decision = self.policy.decide(&Request {
            user_id: &device.user_id,
            groups: &user.groups,
            device: Some(DeviceState {
                compliant: device.compliant,
            }),
            source,
            host: Host::parse(dest.host),
            resolved: dest.resolved,
            port: dest.port,
            protocol: Protocol::Tcp,
            now: now_ms,
            agentless: false,
        });
        let allowed = decision.is_allowed();
        let reason = match decision.reason {
            Reason::RuleMatched if allowed && decision.observed_noncompliant => "observed_noncompliant",
            Reason::RuleMatched => "rule_matched",
            Reason::NoApplication => "no_application",
            Reason::NoRuleMatched => "no_rule_matched",
        };
        Verdict {
            allowed,
            rule_id: decision.rule.map(|r| r.id),
            reason,
        }
    }
}

impl TenantPolicy {
    /// The checks before any rule: tenant active, device known, not revoked
    /// and signed in, user known and enabled.
    fn check_device(&self, device_id: &str, now_ms: i64) -> Result<(&DeviceEntry, &UserState), &'static str> {
        if !self.active {
            return Err("tenant_suspended");
        }
        let Some(device) = self.devices.get(device_id) else {
            return Err("device_unknown");
        };
        if device.revoked {
            return Err("device_revoked");
        }
        if device.session_expires_ms.is_some_and(|end| now_ms >= end) {
            return Err(ward_api::REASON_DEVICE_SIGNED_OUT);
        }
        let Some(user) = self.users.get(&device.user_id) else {
            return Err("user_unknown");
        };
        if user.disabled {
            return Err("user_disabled");
        }
        Ok((device, user))
    }

    /// The tenant's internet access control, when it is on.
    pub(crate) fn internet(&self) -> Option<&InternetState> {
        self.internet.as_ref()
    }

    /// Decides one request of `device_id` to the internet (the agent's
    /// tunnel): the device checks of [`TenantPolicy::decide`], then the
    /// tenant's internet rules.
    pub(crate) fn decide_internet(
        &self,
        device_id: &str,
        host: &ward_inet::Host,
        port: u16,
        now_ms: i64,
    ) -> InternetVerdict {
        let (device, user) = match self.check_device(device_id, now_ms) {
            Ok(found) => found,
            Err(reason) => return InternetVerdict::Refused(reason),
        };
        self.decide_internet_for(&device.user_id, &user.groups, host, port, now_ms)
    }

    /// Decides one request of `user_id` to the internet without a device
    /// (the explicit proxy port, authenticated by a proxy credential).
    pub(crate) fn decide_internet_user(
        &self,
        user_id: &str,
        host: &ward_inet::Host,
        port: u16,
        now_ms: i64,
    ) -> InternetVerdict {
        if !self.active {
            return InternetVerdict::Refused("tenant_suspended");
        }
        let Some(user) = self.users.get(user_id) else {
            return InternetVerdict::Refused("user_unknown");
        };
        if user.disabled {
            return InternetVerdict::Refused("user_disabled");
        }
        self.decide_internet_for(user_id, &user.groups, host, port, now_ms)
    }

    fn decide_internet_for(
        &self,
        user_id: &str,
        groups: &[String],
        host: &ward_inet::Host,
        port: u16,
        now_ms: i64,
    ) -> InternetVerdict {
        let Some(internet) = &self.internet else {
            return InternetVerdict::Refused("internet_off");
        };
        let decision = internet.policy.decide(&InternetRequest {
            user_id,
            groups,
            host,
            port,
            now: now_ms,
        });
        InternetVerdict::Decided {
            user_id: user_id.to_owned(),
            decision,
        }
    }

    /// Decides one clientless request of `user_id` (a browser through the
    /// web listener: no agent, no device): the gateway's checks (tenant
    /// active, user known and enabled), then the tenant's policy with
    /// `agentless` set, so only rules admitting agentless access match.
    pub(crate) fn decide_web(&self, user_id: &str, source: IpAddr, dest: Destination<'_>, now_ms: i64) -> Verdict {
        if !self.active {
            return Verdict::refuse("tenant_suspended");
        }
        let Some(user) = self.users.get(user_id) else {
            return Verdict::refuse("user_unknown");
        };
        if user.disabled {
            return Verdict::refuse("user_disabled");
        }
        let decision = self.policy.decide(&Request {
            user_id,
            groups: &user.groups,
            device: None,
            source,
            host: Host::parse(dest.host),
            resolved: dest.resolved,
            port: dest.port,
            protocol: Protocol::Tcp,
            now: now_ms,
            agentless: true,
        });
        let allowed = decision.is_allowed();
        let reason = match decision.reason {
            Reason::RuleMatched if allowed && decision.observed_noncompliant => "observed_noncompliant",
            Reason::RuleMatched => "rule_matched",
            Reason::NoApplication => "no_application",
            Reason::NoRuleMatched => "no_rule_matched",
        };
        Verdict {
            allowed,
            rule_id: decision.rule.map(|r| r.id),
            reason,
        }
    }

    /// The name of a known user.
    pub(crate) fn user_name(&self, user_id: &str) -> Option<&str> {
        self.users.get(user_id).map(|u| u.name.as_str())
    }

    /// The groups (ids) of a known user.
    pub(crate) fn groups_of(&self, user_id: &str) -> Option<&[String]> {
        self.users.get(user_id).map(|u| u.groups.as_slice())
    }
}

/// The current policy, shared by every task. Readers take an `Arc` and never
/// block the writer for longer than a pointer copy.
#[derive(Default)]
pub(crate) struct SharedState {
    current: RwLock<Option<Arc<PolicyState>>>,
}

impl SharedState {
    pub(crate) fn current(&self) -> Option<Arc<PolicyState>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn version(&self) -> Option<i64> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.version)
    }

    pub(crate) fn swap(&self, next: Arc<PolicyState>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(next);
    }
}

fn snapshot_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(SNAPSHOT_FILE)
}

/// Writes the snapshot durably: a temporary file, fsync, rename, fsync of
/// the directory. A crash leaves the old file or the new one, never half.
pub(crate) fn persist(spool_dir: &Path, snapshot: &GatewaySnapshot) -> std::io::Result<()> {
    let json = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    write_atomically(&snapshot_path(spool_dir), &json)
}

/// The snapshot saved by [`persist`], if there is a readable one.
pub(crate) fn load(spool_dir: &Path) -> Option<GatewaySnapshot> {
    let path = snapshot_path(spool_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the saved policy snapshot");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "saved policy snapshot is corrupt; ignoring it");
            None
        }
    }
}

/// Replaces `path` with `bytes`, durably.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename or a new file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
