//! A synthetic policy of N applications and N rules, and requests against it,
//! shared by the benchmarks.
//!
//! Applications rotate through the address kinds: an exact domain, a
//! wildcard domain, an IPv4 block (/24, /28 or a single /32), and an IPv6
//! /48; ports rotate through `443`, `8000-8100` and `22,5432`. Each carries a
//! department tag (`dept0`..`dept9`) and the tag `all`.
//!
//! Rules: rule i names application i (9 in 10) or a department tag (1 in
//! 10), with principal conditions (user i, or group `grp{i % 50}`); one in
//! seven blocks, one in five requires a compliant device, one in eleven
//! limits the source network. The last rule is a catch-all block on tag
//! `all` with no conditions. Priorities follow the index.

#![allow(dead_code)]

use std::net::IpAddr;

use ward_policy::{
    Action, Application, CompiledPolicy, DeviceState, Host, PolicyInput, PortRange, PostureMode, Protocol, Request,
    Rule, RuleTarget,
};

/// xorshift64*: a small deterministic generator, so runs are comparable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn v4_block(i: usize) -> String {
    let (b, c) = ((i >> 8) & 255, i & 255);
    match i % 3 {
        0 => format!("10.{b}.{c}.0/24"),
        1 => format!("10.{b}.{c}.16/28"),
        _ => format!("10.{b}.{c}.1"),
    }
}

fn app(i: usize) -> Application {
    let address = match i % 4 {
        0 => format!("svc{i}.corp.example"),
        1 => format!("*.team{i}.corp.example"),
        2 => v4_block(i),
        _ => format!("fd00:0:{i:x}::/48"),
    };
    let ports = ["443", "8000-8100", "22,5432"][i % 3];
    Application {
        id: format!("app{i}"),
        name: format!("Application {i}"),
        addresses: vec![address.parse().expect("synthetic address")],
        ports: PortRange::parse_list(ports).expect("synthetic ports"),
        protocol: Protocol::Tcp,
        tags: vec![format!("dept{}", i % 10), "all".into()],
    }
}

fn rule(i: usize, n: usize) -> Rule {
    let last = i + 1 == n;
    let target = if last {
        RuleTarget::Tags(vec!["all".into()])
    } else if i % 10 == 9 {
        RuleTarget::Tags(vec![format!("dept{}", (i / 10) % 10)])
    } else {
        RuleTarget::Apps(vec![format!("app{i}")])
    };
    Rule {
        id: if last {
            "catch-all".into()
        } else {
            format!("rule{i:05}")
        },
        priority: i as u32 + 1,
        action: if last || i % 7 == 3 {
            Action::Block
        } else {
            Action::Allow
        },
        target,
        users: if last { vec![] } else { vec![format!("user{i}")] },
        groups: if last { vec![] } else { vec![format!("grp{}", i % 50)] },
        require_compliant_device: !last && i % 5 == 0,
        posture: if i % 10 == 5 {
            PostureMode::Observe
        } else {
            PostureMode::Enforce
        },
        valid_from: None,
        valid_until: if i % 13 == 0 { Some(4_000_000_000_000) } else { None },
        sources: if !last && i % 11 == 0 {
            vec!["192.0.2.0/24".parse().expect("net")]
        } else {
            vec![]
        },
        enabled: true,
        agentless: false,
    }
}

pub fn input(n: usize) -> PolicyInput {
    PolicyInput {
        apps: (0..n).map(app).collect(),
        rules: (0..n).map(|i| rule(i, n)).collect(),
    }
}

pub fn policy(n: usize) -> CompiledPolicy {
    CompiledPolicy::compile(input(n))
}

/// The parts of a request, owned, so a list of them can be prepared.
pub struct OwnedRequest {
    pub user: String,
    pub groups: Vec<String>,
    pub host: OwnedHost,
    pub port: u16,
}

pub enum OwnedHost {
    Ip(IpAddr),
    Domain(String),
}

impl OwnedRequest {
    pub fn request(&self) -> Request<'_> {
        Request {
            user_id: &self.user,
            groups: &self.groups,
            device: Some(DeviceState { compliant: true }),
            source: "192.0.2.44".parse().expect("ip"),
            host: match &self.host {
                OwnedHost::Ip(ip) => Host::Ip(*ip),
                OwnedHost::Domain(d) => Host::Domain(d),
            },
            resolved: None,
            port: self.port,
            protocol: Protocol::Tcp,
            now: 1_800_000_000_000,
            agentless: false,
        }
    }
}

/// A destination inside application `i`, on a port it serves.
fn destination(i: usize, rng: &mut Rng) -> (OwnedHost, u16) {
    let host = match i % 4 {
        0 => OwnedHost::Domain(format!("svc{i}.corp.example")),
        1 => OwnedHost::Domain(format!("host{}.team{i}.corp.example", rng.below(100))),
        2 => {
            let (b, c) = ((i >> 8) & 255, i & 255);
            let d = match i % 3 {
                0 => rng.below(256),
                1 => 16 + rng.below(16),
                _ => 1,
            };
            OwnedHost::Ip(format!("10.{b}.{c}.{d}").parse().expect("ip"))
        }
        _ => OwnedHost::Ip(format!("fd00:0:{i:x}::{:x}", rng.below(65536)).parse().expect("ip")),
    };
    let port = [443, 8000 + rng.below(101) as u16, 5432][i % 3];
    (host, port)
}

/// Requests that an application's own rule (or an earlier tag rule) decides.
pub fn hits(n: usize, count: usize, seed: u64) -> Vec<OwnedRequest> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            // Applications 9, 19, ... have no rule of their own, only tag rules.
            let i = loop {
                let i = rng.below(n.saturating_sub(1).max(1));
                if i % 10 != 9 {
                    break i;
                }
            };
            let (host, port) = destination(i, &mut rng);
            OwnedRequest {
                user: format!("user{i}"),
                groups: vec!["staff".into(), format!("grp{}", i % 50)],
                host,
                port,
            }
        })
        .collect()
}

/// Requests to destinations no application covers.
pub fn misses(count: usize, seed: u64) -> Vec<OwnedRequest> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|k| {
            let host = match k % 3 {
                0 => OwnedHost::Domain(format!("www{}.elsewhere.example", rng.below(1000))),
                1 => OwnedHost::Ip(
                    format!("192.168.{}.{}", rng.below(256), rng.below(256))
                        .parse()
                        .expect("ip"),
                ),
                _ => OwnedHost::Ip(format!("2001:db8::{:x}", rng.below(65536)).parse().expect("ip")),
            };
            OwnedRequest {
                user: "user1".into(),
                groups: vec!["staff".into()],
                host,
                port: 443,
            }
        })
        .collect()
}

/// Requests from a user no rule names: every candidate rule is evaluated and
/// the last rule (the catch-all block) decides.
pub fn last_rule(n: usize, count: usize, seed: u64) -> Vec<OwnedRequest> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let i = rng.below(n.saturating_sub(1).max(1));
            let (host, port) = destination(i, &mut rng);
            OwnedRequest {
                user: "nobody".into(),
                groups: vec!["staff".into(), "contractors".into()],
                host,
                port,
            }
        })
        .collect()
}

/// Check the synthetic workload does what it says before timing it.
pub fn check(policy: &CompiledPolicy, hits: &[OwnedRequest], misses: &[OwnedRequest], last: &[OwnedRequest]) {
    for r in hits {
        let d = policy.decide(&r.request());
        assert!(
            d.rule.as_ref().is_some_and(|r| &*r.id != "catch-all"),
            "hit decided by {d:?}"
        );
    }
    for r in misses {
        assert_eq!(policy.decide(&r.request()).reason, ward_policy::Reason::NoApplication);
    }
    for r in last {
        let d = policy.decide(&r.request());
        assert_eq!(d.rule.map(|r| r.id.to_string()).as_deref(), Some("catch-all"));
    }
}
