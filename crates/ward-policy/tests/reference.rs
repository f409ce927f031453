//! The index must never change the answer: on random small policies and
//! requests, `decide` agrees with a naive reference that scans every rule in
//! priority order and matches every application by brute force.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::subsequence;
use ward_policy::*;

// ---------- the naive reference ----------

/// The destination as the reference sees it: `None` if the host is a domain
/// that is not a valid name.
fn ref_destination(req: &Request<'_>) -> Option<(Option<String>, Vec<IpAddr>)> {
    let mut ips = Vec::new();
    let mut name = None;
    match req.host {
        Host::Ip(ip) => ips.push(ip.to_canonical()),
        Host::Domain(s) => {
            let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
            if let Ok(ip) = inner.parse::<IpAddr>() {
                ips.push(ip.to_canonical());
            } else {
                let lower = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
                match lower.parse::<Address>() {
                    Ok(Address::Domain(n)) if n == lower => name = Some(n),
                    _ => return None,
                }
            }
        }
    }
    if let Some(ip) = req.resolved {
        ips.push(ip.to_canonical());
    }
    Some((name, ips))
}

/// `ip` is canonical. A block written in IPv4-mapped form (`::ffff:10.0.0.0/120`)
/// covers the IPv4 addresses it maps; `::/0` and other short IPv6 blocks do not.
fn ref_net_contains(net: &IpNet, ip: &IpAddr) -> bool {
    net.contains(ip) || (net.prefix_len() >= 96 && net.contains(&mapped(*ip)))
}

fn ref_app_covers(app: &Application, name: &Option<String>, ips: &[IpAddr], req: &Request<'_>) -> bool {
    let address_matches = app.addresses.iter().any(|a| match a {
        Address::Domain(d) => name.as_deref() == Some(d.as_str()),
        Address::Wildcard(s) => name.as_deref().is_some_and(|n| n.ends_with(&format!(".{s}"))),
        Address::Ip(a) => ips.contains(&a.to_canonical()),
        Address::Cidr(net) => ips.iter().any(|ip| ref_net_contains(net, ip)),
    });
    let port_matches =
        app.protocol == req.protocol && app.ports.iter().any(|r| r.start <= req.port && req.port <= r.end);
    address_matches && port_matches
}

fn ref_rule_targets(rule: &Rule, apps: &[&Application]) -> bool {
    match &rule.target {
        RuleTarget::Apps(ids) => apps.iter().any(|a| ids.contains(&a.id)),
        RuleTarget::Tags(tags) => apps.iter().any(|a| a.tags.iter().any(|t| tags.contains(t))),
    }
}

/// `Some(observed_noncompliant)` if every condition holds.
fn ref_rule_holds(rule: &Rule, req: &Request<'_>) -> Option<bool> {
    let in_window = rule.valid_from.is_none_or(|f| req.now >= f) && rule.valid_until.is_none_or(|u| req.now < u);
    let principal = (rule.users.is_empty() && rule.groups.is_empty())
        || rule.users.iter().any(|u| u == req.user_id)
        || rule.groups.iter().any(|g| req.groups.contains(g));
    let source = req.source.to_canonical();
    let source_ok = rule.sources.is_empty() || rule.sources.iter().any(|n| ref_net_contains(n, &source));
    let compliant = req.device.is_some_and(|d| d.compliant);
    let (device_ok, observed) = match (rule.require_compliant_device, compliant, rule.posture) {
        (false, _, _) | (true, true, _) => (true, false),
        (true, false, PostureMode::Enforce) => (false, false),
        (true, false, PostureMode::Observe) => (true, true),
    };
    let via_ok = rule.agentless || !req.agentless;
    (rule.enabled && via_ok && in_window && principal && source_ok && device_ok).then_some(observed)
}

/// (verdict, deciding rule, reason, observed, ids of every targeting rule in order)
type RefAnswer = (Verdict, Option<(String, u32)>, Reason, bool, Vec<String>);

fn reference(input: &PolicyInput, req: &Request<'_>) -> RefAnswer {
    let Some((name, ips)) = ref_destination(req) else {
        return (Verdict::Deny, None, Reason::NoApplication, false, vec![]);
    };
    let apps: Vec<&Application> = input
        .apps
        .iter()
        .filter(|a| ref_app_covers(a, &name, &ips, req))
        .collect();
    if apps.is_empty() {
        return (Verdict::Deny, None, Reason::NoApplication, false, vec![]);
    }
    let mut rules: Vec<&Rule> = input.rules.iter().collect();
    rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    let targeting: Vec<&Rule> = rules.into_iter().filter(|r| ref_rule_targets(r, &apps)).collect();
    let ids = targeting.iter().map(|r| r.id.clone()).collect();
    for rule in targeting {
        if let Some(observed) = ref_rule_holds(rule, req) {
            let verdict = if rule.action == Action::Allow {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            return (
                verdict,
                Some((rule.id.clone(), rule.priority)),
                Reason::RuleMatched,
                observed,
                ids,
            );
        }
    }
    (Verdict::Deny, None, Reason::NoRuleMatched, false, ids)
}

// ---------- random small policies and requests ----------

const LABELS: &[&str] = &["a", "b", "c", "d"];
const APP_IDS: &[&str] = &["a0", "a1", "a2", "a3", "ghost"];
const TAGS: &[&str] = &["t0", "t1", "t2", "tx"];
const USERS: &[&str] = &["u0", "u1", "u2"];
const GROUPS: &[&str] = &["g0", "g1", "g2"];

fn name(max_labels: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..=max_labels).prop_map(|v| v.join("."))
}

fn v4() -> impl Strategy<Value = IpAddr> {
    (0u8..4, 0u8..8).prop_map(|(c, d)| IpAddr::from([10, 0, c, d]))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    (0u16..3, 0u16..16).prop_map(|(b, h)| IpAddr::from([0xfd00, b, 0, 0, 0, 0, 0, h]))
}

fn mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![4 => v4(), 3 => v6(), 1 => v4().prop_map(mapped)]
}

fn cidr() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (v4(), prop::sample::select(&[0u8, 8, 16, 22, 24, 29, 30, 31, 32][..])).prop_map(|(ip, len)| IpNet::new(
            ip, len
        )
        .unwrap()
        .trunc()),
        (v6(), prop::sample::select(&[0u8, 16, 32, 64, 124, 126, 128][..]))
            .prop_map(|(ip, len)| IpNet::new(ip, len).unwrap().trunc()),
        (v4(), prop::sample::select(&[120u8, 126, 128][..]))
            .prop_map(|(ip, len)| IpNet::new(mapped(ip), len).unwrap().trunc()),
    ]
}

fn address() -> impl Strategy<Value = Address> {
    // A few shared addresses make applications overlap, so rule lists merge.
    let shared = prop::sample::select(vec!["*.a", "b.a", "10.0.0.0/16", "10.0.0.1", "fd00::/16", "0.0.0.0/0"])
        .prop_map(|s| s.parse::<Address>().unwrap());
    prop_oneof![
        shared,
        name(3).prop_map(Address::Domain),
        name(2).prop_map(Address::Wildcard),
        ip().prop_map(Address::Ip),
        cidr().prop_map(Address::Cidr),
    ]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (1u16..10, 0u16..4).prop_map(|(s, len)| PortRange::new(s, s + len).unwrap())
}

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    subsequence(pool, 0..=pool.len()).prop_map(|v| v.into_iter().map(String::from).collect())
}

fn application() -> impl Strategy<Value = Application> {
    (
        prop::sample::select(&APP_IDS[..4]),
        prop_oneof![1 => Just(vec![]), 9 => prop::collection::vec(address(), 1..4)],
        prop_oneof![1 => Just(vec![]), 9 => prop::collection::vec(port_range(), 1..3)],
        strings(&TAGS[..3]),
    )
        .prop_map(|(id, addresses, ports, tags)| Application {
            id: id.into(),
            name: id.to_uppercase(),
            addresses,
            ports,
            protocol: Protocol::Tcp,
            tags,
        })
}

fn time() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(0i64..20)
}

fn rule() -> impl Strategy<Value = Rule> {
    let target = prop_oneof![
        strings(APP_IDS).prop_map(RuleTarget::Apps),
        strings(TAGS).prop_map(RuleTarget::Tags)
    ];
    let sources = subsequence(
        vec!["10.0.0.0/24", "192.0.2.0/24", "fd00::/8", "::ffff:192.0.2.0/120"],
        0..=2,
    )
    .prop_map(|v| v.into_iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>());
    (
        (0u8..8, 1u32..5, any::<bool>(), target),
        (
            prop_oneof![3 => Just(vec![]), 1 => strings(USERS)],
            prop_oneof![2 => Just(vec![]), 1 => strings(GROUPS)],
        ),
        (
            any::<bool>(),
            any::<bool>(),
            time(),
            time(),
            sources,
            prop::bool::weighted(0.85),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (id, priority, allow, target),
                (users, groups),
                (require, observe, from, until, sources, enabled, agentless),
            )| {
                Rule {
                    id: format!("r{id}"),
                    priority,
                    action: if allow { Action::Allow } else { Action::Block },
                    target,
                    users,
                    groups,
                    require_compliant_device: require,
                    posture: if observe {
                        PostureMode::Observe
                    } else {
                        PostureMode::Enforce
                    },
                    valid_from: from,
                    valid_until: until,
                    sources,
                    enabled,
                    agentless,
                }
            },
        )
}

fn policy() -> impl Strategy<Value = PolicyInput> {
    (
        prop::collection::vec(application(), 0..7),
        prop::collection::vec(rule(), 0..14),
    )
        .prop_map(|(apps, rules)| PolicyInput { apps, rules })
}

/// Owned parts of a request, so the strategy can produce them.
#[derive(Debug, Clone)]
struct RequestParts {
    user: String,
    groups: Vec<String>,
    device: Option<DeviceState>,
    source: IpAddr,
    host: HostParts,
    resolved: Option<IpAddr>,
    port: u16,
    now: i64,
    agentless: bool,
}

#[derive(Debug, Clone)]
enum HostParts {
    Ip(IpAddr),
    Domain(String),
}

impl RequestParts {
    fn request(&self) -> Request<'_> {
        Request {
            user_id: &self.user,
            groups: &self.groups,
            device: self.device,
            source: self.source,
            host: match &self.host {
                HostParts::Ip(ip) => Host::Ip(*ip),
                HostParts::Domain(s) => Host::Domain(s),
            },
            resolved: self.resolved,
            port: self.port,
            protocol: Protocol::Tcp,
            now: self.now,
            agentless: self.agentless,
        }
    }
}

fn host() -> impl Strategy<Value = HostParts> {
    prop_oneof![
        4 => name(4).prop_map(HostParts::Domain),
        1 => name(3).prop_map(|n| HostParts::Domain(format!("{}.", n.to_uppercase()))),
        1 => prop::sample::select(vec!["a..b", "", "*.a", "-a.b", "a b", "1.2", "[fd00::1]", "10.0.1.1", "::ffff:10.0.0.1"])
            .prop_map(|s| HostParts::Domain(s.into())),
        3 => ip().prop_map(HostParts::Ip),
    ]
}

/// A destination and a port.
type Target = (HostParts, u16);

/// Destinations taken from the policy's own applications, with ports the
/// same application serves (`hits`), and their neighbours (`near`: parents
/// of wildcards, ports just past a range), so most requests reach applications.
fn targets(input: &PolicyInput) -> (Vec<Target>, Vec<Target>) {
    let (mut hits, mut near) = (Vec::new(), Vec::new());
    for app in &input.apps {
        let (mut hosts, mut near_hosts) = (Vec::new(), Vec::new());
        for address in &app.addresses {
            match address {
                Address::Domain(d) => {
                    hosts.push(HostParts::Domain(d.clone()));
                    hosts.push(HostParts::Domain(format!("{}.", d.to_uppercase())));
                }
                Address::Wildcard(s) => {
                    hosts.push(HostParts::Domain(format!("c.{s}")));
                    hosts.push(HostParts::Domain(format!("a.b.{s}")));
                    near_hosts.push(HostParts::Domain(s.clone()));
                }
                Address::Ip(ip) => {
                    hosts.push(HostParts::Ip(*ip));
                    hosts.push(HostParts::Ip(mapped(*ip)));
                }
                Address::Cidr(net) => {
                    hosts.push(HostParts::Ip(net.network()));
                    hosts.push(HostParts::Ip(net.broadcast()));
                }
            }
        }
        let ports: Vec<u16> = app.ports.iter().flat_map(|r| [r.start, r.end]).collect();
        let near_ports: Vec<u16> = app.ports.iter().map(|r| r.end + 1).chain([13]).collect();
        for host in &hosts {
            hits.extend(ports.iter().map(|&p| (host.clone(), p)));
            near.extend(near_ports.iter().map(|&p| (host.clone(), p)));
        }
        for host in &near_hosts {
            near.extend(ports.iter().map(|&p| (host.clone(), p)));
        }
    }
    (hits, near)
}

fn request_for(input: &PolicyInput) -> BoxedStrategy<RequestParts> {
    let (hits, near) = targets(input);
    let mut dest = (host(), 1u16..14).boxed();
    if !near.is_empty() {
        dest = prop_oneof![1 => dest, 1 => prop::sample::select(near)].boxed();
    }
    if !hits.is_empty() {
        dest = prop_oneof![1 => dest, 3 => prop::sample::select(hits)].boxed();
    }
    let source = prop::sample::select(vec![
        "10.0.0.9",
        "192.0.2.4",
        "198.51.100.1",
        "fd00::9",
        "::ffff:192.0.2.4",
    ])
    .prop_map(|s| s.parse::<IpAddr>().unwrap());
    (
        (prop::sample::select(USERS), strings(GROUPS)),
        (
            prop::option::of(any::<bool>().prop_map(|compliant| DeviceState { compliant })),
            source,
            prop::bool::weighted(0.3),
        ),
        (dest, prop::option::weighted(0.3, ip()), 0i64..22),
    )
        .prop_map(
            |((user, groups), (device, source, agentless), ((host, port), resolved, now))| RequestParts {
                user: user.into(),
                groups,
                // A clientless request never has a device.
                device: if agentless { None } else { device },
                source,
                host,
                resolved,
                port,
                now,
                agentless,
            },
        )
        .boxed()
}

fn policy_and_requests() -> impl Strategy<Value = (PolicyInput, Vec<RequestParts>)> {
    policy().prop_flat_map(|input| {
        let requests = prop::collection::vec(request_for(&input), 1..8);
        (Just(input), requests)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn index_never_changes_the_answer((input, requests) in policy_and_requests()) {
        let compiled = CompiledPolicy::compile(input.clone());
        for parts in &requests {
            let req = parts.request();
            let (verdict, rule, reason, observed, targeting) = reference(&input, &req);
            let d = compiled.decide(&req);
            prop_assert_eq!(d.action, verdict, "request {:?}", parts);
            prop_assert_eq!(d.rule.as_ref().map(|r| (r.id.to_string(), r.priority)), rule, "request {:?}", parts);
            prop_assert_eq!(d.reason, reason);
            prop_assert_eq!(d.observed_noncompliant, observed);

            let e = compiled.explain(&req);
            prop_assert_eq!(&e.decision, &d);
            let explained: Vec<String> = e.rules.iter().map(|r| r.id.clone()).collect();
            prop_assert_eq!(explained, targeting);
            prop_assert!(e.rules.iter().filter(|r| r.decided).count() <= 1);
            prop_assert!(e.rules.iter().all(|r| r.matched == r.mismatches.is_empty()));

            // A clientless request is admitted only by a rule that says it
            // admits agentless access and does not enforce device compliance.
            if req.agentless && d.is_allowed() {
                let decided = d.rule.as_ref().map(|r| (r.id.to_string(), r.priority));
                prop_assert!(input.rules.iter().any(|r| Some((r.id.clone(), r.priority)) == decided
                    && r.agentless
                    && !(r.require_compliant_device && r.posture == PostureMode::Enforce)));
            }
        }
    }
}

/// The generators must exercise every outcome, or the property above proves little.
#[test]
fn generators_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut allowed, mut blocked, mut no_app, mut no_rule, mut observed, mut multi_app) = (0, 0, 0, 0, 0, 0);
    let total = 3000;
    for _ in 0..total {
        let (input, requests) = policy_and_requests().new_tree(&mut runner).unwrap().current();
        let parts = &requests[0];
        let compiled = CompiledPolicy::compile(input);
        let e = compiled.explain(&parts.request());
        match (e.decision.action, e.decision.reason) {
            (Verdict::Allow, _) => allowed += 1,
            (Verdict::Deny, Reason::RuleMatched) => blocked += 1,
            (_, Reason::NoApplication) => no_app += 1,
            (_, Reason::NoRuleMatched) => no_rule += 1,
        }
        observed += usize::from(e.decision.observed_noncompliant);
        multi_app += usize::from(e.applications.iter().filter(|a| a.serves_port).count() > 1);
    }
    let counts = [allowed, blocked, no_app, no_rule, observed, multi_app];
    println!("{counts:?}");
    assert!(
        counts.iter().all(|&c| c * 50 > total),
        "allow, block, no app, no rule, observed, multi-app: {counts:?}"
    );
}
