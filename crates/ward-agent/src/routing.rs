//! Where each connection goes: through the gateway, or directly.
//!
//! The server tells the agent (`GET /api/v1/device/routing`,
//! [`ward_api::DeviceRouting`]) the address patterns of the tenant's private
//! applications, the destinations an admin marked as bypassed, and whether
//! the tenant has internet access control on. A destination then goes:
//!
//! 1. directly, when it is bypassed (bypass wins, so an admin can exempt one
//!    name below a private wildcard);
//! 2. through the gateway, when it is a private application;
//! 3. otherwise through the gateway when internet access control is on (the
//!    gateway's filtering proxy decides it), directly when it is off.
//!
//! Until the agent has heard from the server (and has no saved routing from
//! an earlier run), everything goes through the gateway, as before internet
//! access control existed: the gateway refuses what it does not carry,
//! which is safer than leaking traffic around it.
//!
//! [`Routing::pac`] writes the same choice as a proxy auto-config file for
//! browsers.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ward_api::DeviceRouting;
use ward_policy::Address;

use crate::proxy::Target;

/// The file in the state directory keeping the last routing heard.
pub const ROUTING_FILE: &str = "routing.json";

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Through the gateway (private access, or the internet proxy).
    Gateway,
    /// Straight from this device.
    Direct,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Gateway => "gateway",
            Route::Direct => "direct",
        }
    }
}

/// The routing table, compiled from a [`DeviceRouting`].
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// `None` until the server has told us: everything through the gateway.
    known: Option<Known>,
}

#[derive(Debug, Clone)]
struct Known {
    internet: bool,
    private: Vec<Address>,
    bypass: Vec<Address>,
    source: DeviceRouting,
}

impl Routing {
    /// Routing as the server gave it. Patterns that do not parse are skipped
    /// (and logged): the server validates them, so this is only an older or
    /// newer server's form.
    pub fn from_api(routing: &DeviceRouting) -> Routing {
        let parse = |patterns: &[String]| -> Vec<Address> {
            patterns
                .iter()
                .filter_map(|p| match p.parse::<Address>() {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::warn!(pattern = %p, error = %e, "ignoring a routing pattern the agent cannot read");
                        None
                    }
                })
                .collect()
        };
        Routing {
            known: Some(Known {
                internet: routing.internet,
                private: parse(&routing.private),
                bypass: parse(&routing.bypass),
                source: routing.clone(),
            }),
        }
    }

    /// The routing saved by [`Routing::save`], if there is a readable one.
    pub fn load(dir: &Path) -> Option<Routing> {
        let bytes = std::fs::read(dir.join(ROUTING_FILE)).ok()?;
        let routing: DeviceRouting = serde_json::from_slice(&bytes).ok()?;
        Some(Routing::from_api(&routing))
    }

    /// Keeps the routing for the next start (mode 0600).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let Some(known) = &self.known else { return Ok(()) };
        let json = serde_json::to_vec_pretty(&known.source).map_err(std::io::Error::other)?;
        crate::state::write_atomic_unsynced(&dir.join(ROUTING_FILE), &json, 0o600)
    }

    /// What the server said, if it said anything yet.
    pub fn source(&self) -> Option<&DeviceRouting> {
        self.known.as_ref().map(|k| &k.source)
    }

    /// Where a connection to `target` goes.
    pub fn route(&self, target: &Target) -> Route {
        let Some(known) = &self.known else {
            return Route::Gateway;
        };
        let covers = |patterns: &[Address]| match target {
            Target::Ip(addr) => patterns.iter().any(|p| p.matches_ip(addr.ip())),
            Target::Domain { host, .. } => {
                let name = host.strip_suffix('.').unwrap_or(host);
                patterns.iter().any(|p| p.matches_name(name))
            }
        };
        if covers(&known.bypass) {
            Route::Direct
        } else if covers(&known.private) || known.internet {
            Route::Gateway
        } else {
            Route::Direct
        }
    }

    /// A proxy auto-config file sending browsers to the agent's HTTP proxy
    /// at `proxy` for what goes through the gateway, and directly for the
    /// rest. Host names are never resolved by the script (`isInNet` is only
    /// applied to IP literals), so it leaks no DNS queries for private names.
    pub fn pac(&self, proxy: SocketAddr) -> String {
        let proxy = format!("PROXY {proxy}");
        let mut out = String::from(
            "// Written by ward agent: what goes through Ward, and what goes directly.\n\
             function FindProxyForURL(url, host) {\n\
             \x20 host = host.toLowerCase();\n\
             \x20 if (host.charAt(host.length - 1) == \".\") host = host.substring(0, host.length - 1);\n\
             \x20 var ip = /^[0-9.]+$/.test(host) || host.indexOf(\":\") >= 0;\n",
        );
        let Some(known) = &self.known else {
            let _ = writeln!(out, "  return \"{proxy}\";\n}}");
            return out;
        };
        let _ = writeln!(out, "  if ({}) return \"DIRECT\";", pac_test(&known.bypass));
        if known.internet {
            let _ = writeln!(out, "  return \"{proxy}\";\n}}");
        } else {
            let _ = writeln!(out, "  if ({}) return \"{proxy}\";", pac_test(&known.private));
            let _ = writeln!(out, "  return \"DIRECT\";\n}}");
        }
        out
    }
}

/// A JavaScript condition true when `host` is covered by one of `patterns`.
fn pac_test(patterns: &[Address]) -> String {
    let mut terms: Vec<String> = Vec::new();
    for p in patterns {
        match p {
            Address::Domain(name) => terms.push(format!("host == \"{name}\"")),
            Address::Wildcard(suffix) => terms.push(format!("dnsDomainIs(host, \".{suffix}\")")),
            Address::Ip(ip) => terms.push(format!("host == \"{}\"", ip_text(*ip))),
            Address::Cidr(net) => match net {
                ipnet::IpNet::V4(v4) => terms.push(format!(
                    "(ip && isInNet(host, \"{}\", \"{}\"))",
                    v4.network(),
                    v4.netmask()
                )),
                // PAC has no IPv6 test that does not resolve; IPv6 literals
                // in such a block reach the agent, which routes them itself.
                ipnet::IpNet::V6(_) => {}
            },
        }
    }
    if terms.is_empty() {
        "false".to_owned()
    } else {
        terms.join(" || ")
    }
}

fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> Target {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn routing(internet: bool) -> Routing {
        Routing::from_api(&DeviceRouting {
            internet,
            private: vec!["*.corp.example".into(), "10.1.0.0/16".into(), "db.example".into()],
            bypass: vec![
                "update.corp.example".into(),
                "*.bank.example".into(),
                "192.0.2.0/24".into(),
            ],
        })
    }

    #[test]
    fn unknown_routing_sends_everything_to_the_gateway() {
        let r = Routing::default();
        assert_eq!(r.route(&target("example.com:443")), Route::Gateway);
        assert_eq!(r.route(&target("10.9.9.9:22")), Route::Gateway);
        assert!(r
            .pac("127.0.0.1:3128".parse().unwrap_or_else(|_| unreachable!()))
            .contains("return \"PROXY 127.0.0.1:3128\""));
    }

    #[test]
    fn bypass_wins_then_private_then_internet() {
        for internet in [true, false] {
            let r = routing(internet);
            assert_eq!(r.route(&target("update.corp.example:443")), Route::Direct);
            assert_eq!(r.route(&target("www.bank.example:443")), Route::Direct);
            assert_eq!(r.route(&target("192.0.2.7:80")), Route::Direct);
            assert_eq!(r.route(&target("wiki.corp.example:443")), Route::Gateway);
            assert_eq!(r.route(&target("wiki.corp.example.:443")), Route::Gateway);
            assert_eq!(r.route(&target("10.1.2.3:5432")), Route::Gateway);
            assert_eq!(r.route(&target("db.example:5432")), Route::Gateway);
            // `*.corp.example` is strictly below: the apex is not private.
            let apex = r.route(&target("corp.example:443"));
            let other = r.route(&target("news.example:443"));
            let expected = if internet { Route::Gateway } else { Route::Direct };
            assert_eq!(apex, expected);
            assert_eq!(other, expected);
        }
    }

    #[test]
    fn the_pac_file_says_the_same() {
        let proxy: SocketAddr = "127.0.0.1:3128".parse().unwrap_or_else(|_| unreachable!());
        let on = routing(true).pac(proxy);
        assert!(on.contains("host == \"update.corp.example\""), "{on}");
        assert!(on.contains("dnsDomainIs(host, \".bank.example\")"), "{on}");
        assert!(on.contains("isInNet(host, \"192.0.2.0\", \"255.255.255.0\")"), "{on}");
        assert!(on.trim_end().ends_with("return \"PROXY 127.0.0.1:3128\";\n}"), "{on}");
        let off = routing(false).pac(proxy);
        assert!(off.contains("dnsDomainIs(host, \".corp.example\")"), "{off}");
        assert!(off.trim_end().ends_with("return \"DIRECT\";\n}"), "{off}");
    }

    #[test]
    fn routing_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(Routing::load(dir.path()).is_none());
        routing(false).save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let back = Routing::load(dir.path()).unwrap_or_else(|| panic!("not saved"));
        assert_eq!(back.route(&target("news.example:443")), Route::Direct);
        assert_eq!(back.route(&target("wiki.corp.example:443")), Route::Gateway);
    }
}
