//! The index must never change the answer: on random small policies and
//! requests, `decide` agrees with a naive reference that sorts every rule
//! into its stage and scans them, matching every list entry by brute force.
//! `explain` agrees with both.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::subsequence;
use ward_inet::*;

// ---------- the naive reference ----------

fn entry_matches(entry: &Entry<'_>, name: &str) -> bool {
    match entry.kind {
        EntryKind::Exact => entry.name == name,
        EntryKind::Subdomains => name.ends_with(&format!(".{}", entry.name)),
    }
}

/// The first of the rule's lists (in the rule's order) with an entry matching the host.
fn ref_list<'a>(input: &InternetPolicyInput, rule: &'a InternetRule, host: &Host) -> Option<&'a str> {
    let Host::Name(name) = host else { return None };
    rule.lists.iter().map(String::as_str).find(|id| {
        input
            .lists
            .iter()
            .filter(|l| l.id == *id)
            .any(|l| l.domains.entries().any(|e| entry_matches(&e, name.as_str())))
    })
}

fn ref_stage(rule: &InternetRule) -> Stage {
    let lets_through = matches!(rule.action, InternetAction::Allow | InternetAction::Monitor);
    if rule.global_allow && lets_through {
        Stage::GlobalAllow
    } else if lets_through {
        Stage::Allow
    } else {
        Stage::Block
    }
}

/// `Some(list)` when every condition of the rule holds.
fn ref_holds<'a>(input: &InternetPolicyInput, rule: &'a InternetRule, req: &Req) -> Option<Option<&'a str>> {
    let in_window = rule.valid_from.is_none_or(|f| req.now >= f) && rule.valid_until.is_none_or(|u| req.now < u);
    let principal = (rule.users.is_empty() && rule.groups.is_empty())
        || rule.users.contains(&req.user)
        || rule.groups.iter().any(|g| req.groups.contains(g));
    let list = ref_list(input, rule, &req.host);
    let destination = rule.lists.is_empty() || list.is_some();
    (rule.enabled && in_window && principal && destination).then_some(list)
}

type RefAnswer = (InternetAction, Option<(String, u32)>, Stage, Option<String>, bool);

fn reference(input: &InternetPolicyInput, req: &Req) -> RefAnswer {
    let mut rules: Vec<&InternetRule> = input.rules.iter().collect();
    rules.sort_by(|a, b| (ref_stage(a), a.priority, &a.id).cmp(&(ref_stage(b), b.priority, &b.id)));
    for rule in rules {
        if let Some(list) = ref_holds(input, rule, req) {
            return (
                rule.action,
                Some((rule.id.clone(), rule.priority)),
                ref_stage(rule),
                list.map(String::from),
                rule.inspect,
            );
        }
    }
    (input.default_action, None, Stage::Default, None, false)
}

// ---------- random small policies and requests ----------

const LABELS: &[&str] = &["a", "b", "c", "d"];
const LIST_IDS: &[&str] = &["l0", "l1", "l2", "ghost"];
const USERS: &[&str] = &["u0", "u1", "u2"];
const GROUPS: &[&str] = &["g0", "g1", "g2"];

fn name(max_labels: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..=max_labels).prop_map(|v| v.join("."))
}

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    subsequence(pool, 0..=pool.len()).prop_map(|v| v.into_iter().map(String::from).collect())
}

fn action() -> impl Strategy<Value = InternetAction> {
    prop::sample::select(vec![
        InternetAction::Allow,
        InternetAction::Block,
        InternetAction::Warn,
        InternetAction::Monitor,
    ])
}

fn list() -> impl Strategy<Value = NamedDomainList> {
    let entry = (name(3), 0u8..3).prop_map(|(n, kind)| match kind {
        0 => n,
        1 => format!("*.{n}"),
        _ => format!("||{}^", n),
    });
    (prop::sample::select(&LIST_IDS[..3]), prop::collection::vec(entry, 0..6)).prop_map(|(id, lines)| {
        let adblock = lines.iter().any(|l| l.starts_with("||"));
        let text: String = if adblock {
            // Adblock has no plain wildcard; write it as ||*.name^.
            lines
                .iter()
                .map(|l| match l.strip_prefix("*.") {
                    Some(n) => format!("||*.{n}^\n"),
                    None if l.starts_with("||") => format!("{l}\n"),
                    None => format!("||{l}^\n"),
                })
                .collect()
        } else {
            lines.iter().map(|l| format!("{l}\n")).collect()
        };
        let parsed = parse_list(text.as_bytes(), None);
        assert_eq!(parsed.report.invalid, 0, "{text}");
        NamedDomainList {
            id: id.into(),
            domains: parsed.list,
        }
    })
}

fn time() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(0i64..20)
}

fn rule() -> impl Strategy<Value = InternetRule> {
    (
        (0u8..8, 1u32..4, action(), prop::bool::weighted(0.3)),
        (
            prop_oneof![3 => Just(vec![]), 1 => strings(USERS)],
            prop_oneof![2 => Just(vec![]), 1 => strings(GROUPS)],
            prop_oneof![1 => Just(vec![]), 4 => strings(LIST_IDS)],
        ),
        (any::<bool>(), time(), time(), prop::bool::weighted(0.85)),
    )
        .prop_map(
            |((id, priority, action, global_allow), (users, groups, lists), (inspect, from, until, enabled))| {
                InternetRule {
                    id: format!("r{id}"),
                    priority,
                    action,
                    global_allow,
                    users,
                    groups,
                    lists,
                    inspect,
                    valid_from: from,
                    valid_until: until,
                    enabled,
                }
            },
        )
}

fn policy() -> impl Strategy<Value = InternetPolicyInput> {
    (
        action(),
        prop::collection::vec(rule(), 0..12),
        prop::collection::vec(list(), 0..5),
    )
        .prop_map(|(default_action, rules, lists)| InternetPolicyInput {
            default_action,
            rules,
            lists,
        })
}

#[derive(Debug, Clone)]
struct Req {
    user: String,
    groups: Vec<String>,
    host: Host,
    now: i64,
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        6 => name(5).prop_map(|n| Host::parse(&n).unwrap()),
        1 => (0u8..4).prop_map(|d| Host::Ip(IpAddr::from([10, 0, 0, d]))),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    (prop::sample::select(USERS), strings(GROUPS), host(), 0i64..22).prop_map(|(user, groups, host, now)| Req {
        user: user.into(),
        groups,
        host,
        now,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn indexed_decision_equals_naive_scan(input in policy(), requests in prop::collection::vec(request(), 1..10), seed in any::<u64>()) {
        let compiled = CompiledInternetPolicy::compile_seeded(input.clone(), seed);
        for req in &requests {
            let request = InternetRequest { user_id: &req.user, groups: &req.groups, host: &req.host, port: 443, now: req.now };
            let decision = compiled.decide(&request);
            let got = (
                decision.action,
                decision.rule.as_ref().map(|r| (r.id.to_string(), r.priority)),
                decision.stage,
                decision.list.as_deref().map(String::from),
                decision.inspect,
            );
            prop_assert_eq!(&got, &reference(&input, req), "request {:?}", req);
            prop_assert_eq!(decision.reason == Reason::RuleMatched, decision.rule.is_some());

            // explain: the same decision; the first rule it says matches decided.
            let explanation = compiled.explain(&request);
            prop_assert_eq!(&explanation.decision, &decision);
            let first = explanation.rules.iter().find(|e| e.mismatch.is_none());
            prop_assert_eq!(first.map(|e| e.id.as_str()), decision.rule.as_ref().map(|r| r.id.as_ref()));
            prop_assert_eq!(explanation.rules.len(), input.rules.len());
        }
    }

    #[test]
    fn domain_set_equals_naive_scan(lists in prop::collection::vec(list(), 0..5), hosts in prop::collection::vec(name(5), 1..10), seed in any::<u64>()) {
        let refs: Vec<&DomainList> = lists.iter().map(|l| &l.domains).collect();
        let set = DomainSet::build_seeded(&refs, seed);
        for h in &hosts {
            let name = DomainName::parse(h).unwrap();
            let mut got: Vec<(usize, bool)> = set.matches(&name).iter().map(|m| (m.list, m.kind == EntryKind::Exact)).collect();
            got.sort();
            got.dedup();
            let mut want: Vec<(usize, bool)> = Vec::new();
            for (i, l) in lists.iter().enumerate() {
                for e in l.domains.entries() {
                    if entry_matches(&e, name.as_str()) {
                        want.push((i, e.kind == EntryKind::Exact));
                    }
                }
            }
            want.sort();
            want.dedup();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(set.contains(&name), !want.is_empty());
        }
    }
}
