//! The filtering proxy: internet traffic of the tenant's users, decided with
//! the tenant's internet rules (`ward_inet`) instead of the private-access
//! rules.
//!
//! ```text
//! agent tunnel: CONNECT host:port, no private application (inbound.rs)
//!   ├─ no ward-protocol ─► tunnel.rs: decide ─► resolve + refuse private
//!   │    addresses ─► dial ─► journal ─► 200 ─► relay (registered: re-decided)
//!   └─ ward-protocol: http ─► http.rs: HTTP/1.1 server on the stream, each
//!        request decided on its Host: block page, warning page (+ proceed),
//!        or forwarded through the pooled upstream client; one record each
//! proxy port (proxy.rs): HTTP/1.1 forward proxy, Proxy-Authorization with a
//!   proxy credential; CONNECT as tunnel.rs, absolute-form requests as http.rs
//! ```
//!
//! A warning's click-through is a signed token (token.rs); redeeming it
//! grants that user that host for the tenant's `warn_minutes`, kept in
//! memory here ([`Grants`]).

pub(crate) mod framing;
pub(crate) mod http;
pub(crate) mod inspect;
pub(crate) mod proxy;
pub(crate) mod resolve;
pub(crate) mod token;
pub(crate) mod tunnel;
pub(crate) mod upgrade;
pub(crate) mod upload;
pub(crate) mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ward_inet::{Host, InternetAction, InternetDecision};

use crate::state::{InternetVerdict, TenantPolicy};

/// How long a warning's token can be redeemed.
const TOKEN_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// The filtering proxy's shared state (one per gateway).
pub(crate) struct Internet {
    /// Let internet traffic reach private addresses (`--internet-allow-private`).
    pub(crate) allow_private: bool,
    /// The system's resolver, or the gateway's DNS upstreams.
    pub(crate) resolver: resolve::Resolver,
    pub(crate) grants: Grants,
    pub(crate) tokens: token::TokenKey,
    /// Dials upstream connections (refusing private addresses, TLS for
    /// inspected sites): for the connections downstream connections own
    /// (upstream.rs) and WebSockets (upgrade.rs).
    pub(crate) dialer: http::Dialer,
    /// Requests go out through this (pooled connections) when their
    /// downstream connection has none of its own for them (upstream.rs).
    pub(crate) client: http::UpstreamClient,
}

impl Internet {
    /// `inspection_roots_pem`: CA certificates inspected sites may also be
    /// signed by, besides the system's trust store.
    pub(crate) fn new(
        allow_private: bool,
        dial_timeout: Duration,
        dns_upstreams: &[SocketAddr],
        inspection_roots_pem: Option<&str>,
    ) -> Internet {
        let resolver = resolve::Resolver::new(dns_upstreams);
        let tls = match ward_pki::inspection_upstream_config(inspection_roots_pem) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(error = %e, "no trust store for inspected sites; inspected HTTPS requests will fail");
                None
            }
        };
        let dialer = http::Dialer::new(resolver.clone(), allow_private, dial_timeout, tls);
        Internet {
            allow_private,
            resolver: resolver.clone(),
            grants: Grants::default(),
            tokens: token::TokenKey::generate(),
            dialer: dialer.clone(),
            client: http::upstream_client(dialer),
        }
    }
}

/// Click-throughs of warnings: (tenant, user, host) until when (ms).
#[derive(Default)]
pub(crate) struct Grants {
    map: Mutex<HashMap<(String, String, String), i64>>,
}

impl Grants {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), i64>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn grant(&self, tenant_id: &str, user_id: &str, host: &str, until_ms: i64) {
        let mut map = self.lock();
        // Forget the expired ones now and then, so the map stays small.
        if map.len() > 4096 {
            let now = crate::records::now_ms();
            map.retain(|_, until| *until > now);
        }
        map.insert((tenant_id.to_owned(), user_id.to_owned(), host.to_owned()), until_ms);
    }

    pub(crate) fn is_live(&self, tenant_id: &str, user_id: &str, host: &str, now_ms: i64) -> bool {
        let map = self.lock();
        if map.is_empty() {
            return false;
        }
        map.get(&(tenant_id.to_owned(), user_id.to_owned(), host.to_owned()))
            .is_some_and(|until| *until > now_ms)
    }
}

/// Who asks: a device (agent tunnel) or a user (proxy port).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who<'a> {
    Device(&'a str),
    User(&'a str),
}

/// What happens to one internet request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Let through; `action` is `allow` or `monitor` (`allow` for a warned
    /// host the user clicked through).
    Through {
        action: &'static str,
    },
    Block,
    /// A warning; the token clicks it through.
    Warn {
        token: String,
    },
    /// Refused before the internet rules (device revoked, user disabled...).
    Refused(&'static str),
}

/// An [`Outcome`] with what decided it.
#[derive(Debug, Clone)]
pub(crate) struct Judgement {
    pub(crate) outcome: Outcome,
    pub(crate) user_id: Option<String>,
    pub(crate) rule_id: Option<Arc<str>>,
    /// `rule_matched`, `no_rule_matched`, or the refusal's reason.
    pub(crate) reason: &'static str,
    /// The deciding rule asks for TLS inspection.
    pub(crate) inspect: bool,
}

impl Judgement {
    pub(crate) fn lets_through(&self) -> bool {
        matches!(self.outcome, Outcome::Through { .. })
    }

    /// The record's `action`.
    pub(crate) fn action(&self) -> &'static str {
        match &self.outcome {
            Outcome::Through { action } => action,
            Outcome::Block | Outcome::Refused(_) => "block",
            Outcome::Warn { .. } => "warn",
        }
    }

    /// The record's `reason`.
    pub(crate) fn reason(&self) -> &'static str {
        match &self.outcome {
            Outcome::Refused(reason) => reason,
            _ => self.reason,
        }
    }
}

/// Decides one request to `host:port` of `who` in `tenant`: the rules, then
/// for a warning the user's live click-throughs.
pub(crate) fn judge(
    internet: &Internet,
    tenant_id: &str,
    tenant: &TenantPolicy,
    who: Who<'_>,
    host: &Host,
    port: u16,
    now_ms: i64,
) -> Judgement {
    let verdict = match who {
        Who::Device(device) => tenant.decide_internet(device, host, port, now_ms),
        Who::User(user) => tenant.decide_internet_user(user, host, port, now_ms),
    };
    let (user_id, decision) = match verdict {
        InternetVerdict::Refused(reason) => {
            return Judgement {
                outcome: Outcome::Refused(reason),
                user_id: match who {
                    Who::Device(device) => tenant.user_of(device).map(str::to_owned),
                    Who::User(user) => Some(user.to_owned()),
                },
                rule_id: None,
                reason,
                inspect: false,
            }
        }
        InternetVerdict::Decided { user_id, decision } => (user_id, decision),
    };
    let InternetDecision {
        action,
        rule,
        reason,
        inspect,
        ..
    } = decision;
    let reason = match reason {
        ward_inet::Reason::RuleMatched => "rule_matched",
        ward_inet::Reason::NoRuleMatched => "no_rule_matched",
    };
    let rule_id = rule.map(|r| r.id);
    let outcome = match action {
        InternetAction::Allow => Outcome::Through { action: "allow" },
        InternetAction::Monitor => Outcome::Through { action: "monitor" },
        InternetAction::Block => Outcome::Block,
        InternetAction::Warn => {
            let host_text = host.to_string();
            if internet.grants.is_live(tenant_id, &user_id, &host_text, now_ms) {
                Outcome::Through { action: "allow" }
            } else {
                let token = internet.tokens.issue(&token::Claim {
                    tenant_id: tenant_id.to_owned(),
                    user_id: user_id.clone(),
                    host: host_text,
                    rule_id: rule_id.as_deref().unwrap_or_default().to_owned(),
                    expires_ms: now_ms.saturating_add(TOKEN_LIFETIME_MS),
                });
                Outcome::Warn { token }
            }
        }
    };
    Judgement {
        outcome,
        user_id: Some(user_id),
        rule_id,
        reason,
        inspect,
    }
}

/// Whether a live internet connection may go on under the current policy
/// (the re-check after a snapshot): it may unless it is now refused,
/// blocked, or warned without a live click-through.
pub(crate) fn still_allowed(
    internet: &Internet,
    tenant_id: &str,
    tenant: &TenantPolicy,
    who: Who<'_>,
    host: &str,
    port: u16,
    now_ms: i64,
) -> bool {
    let Ok(host) = Host::parse(host) else { return false };
    judge(internet, tenant_id, tenant, who, &host, port, now_ms).lets_through()
}

/// Redeems a click-through token for `user_id` of `tenant_id`: grants the
/// host for the tenant's `warn_minutes`. Returns the claim.
pub(crate) fn redeem(
    internet: &Internet,
    tenant_id: &str,
    user_id: &str,
    warn_minutes: u32,
    token: &str,
    now_ms: i64,
) -> Option<token::Claim> {
    let claim = internet.tokens.verify(token, now_ms)?;
    if claim.tenant_id != tenant_id || claim.user_id != user_id {
        return None;
    }
    let until = now_ms.saturating_add(i64::from(warn_minutes) * 60_000);
    internet.grants.grant(tenant_id, user_id, &claim.host, until);
    Some(claim)
}

/// Addresses internet traffic must not reach (unless allowed): loopback,
/// private, link-local, unspecified, and the like.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    ward_core::net::is_internal(ip)
}

/// Why a destination could not be reached.
#[derive(Debug)]
pub(crate) enum DialError {
    /// Every address the name resolved to is private (and that is not allowed).
    Private(IpAddr),
    /// Resolution or connection failed.
    Failed(String),
    /// The site's TLS failed (an inspected connection's own TLS to the
    /// site): its certificate is not trusted, or the handshake broke.
    Tls(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Private(ip) => write!(f, "{ip} is a private address"),
            DialError::Failed(e) | DialError::Tls(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for DialError {}

/// Resolves `host` (a normalised name or an address), refuses private
/// addresses unless `allow_private`, and connects to the first address that
/// answers, within `timeout`.
pub(crate) async fn dial(
    resolver: &resolve::Resolver,
    host: &Host,
    port: u16,
    allow_private: bool,
    timeout: Duration,
) -> Result<(tokio::net::TcpStream, SocketAddr), DialError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => match tokio::time::timeout_at(deadline, resolver.lookup(name.as_str(), port)).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(DialError::Failed(e)),
            Err(_) => return Err(DialError::Failed(format!("resolve {name}: timed out"))),
        },
    };
    if addrs.is_empty() {
        return Err(DialError::Failed(format!("resolve {host}: no address")));
    }
    let mut last = None;
    let mut refused_private = None;
    for addr in addrs {
        if !allow_private && is_private(addr.ip()) {
            refused_private = Some(addr.ip());
            continue;
        }
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, addr));
            }
            Ok(Err(e)) => last = Some(format!("connect {addr}: {e}")),
            Err(_) => return Err(DialError::Failed(format!("connect {addr}: timed out"))),
        }
    }
    match (last, refused_private) {
        (Some(e), _) => Err(DialError::Failed(e)),
        (None, Some(ip)) => Err(DialError::Private(ip)),
        (None, None) => Err(DialError::Failed(format!("resolve {host}: no address"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["192.0.2.1", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn grants_expire() {
        let grants = Grants::default();
        assert!(!grants.is_live("acme", "alice", "news.example", 0));
        grants.grant("acme", "alice", "news.example", 1_000);
        assert!(grants.is_live("acme", "alice", "news.example", 999));
        assert!(!grants.is_live("acme", "alice", "news.example", 1_000));
        assert!(!grants.is_live("acme", "bob", "news.example", 0));
        assert!(!grants.is_live("globex", "alice", "news.example", 0));
    }
}
