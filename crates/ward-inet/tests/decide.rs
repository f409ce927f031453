//! Decisions by example: the stages' order, each action, principals, the
//! default, international names, and `explain`.

#![allow(clippy::unwrap_used)]

use ward_inet::*;

fn rule(id: &str, priority: u32, action: InternetAction, lists: &[&str]) -> InternetRule {
    InternetRule {
        id: id.into(),
        priority,
        action,
        global_allow: false,
        users: vec![],
        groups: vec![],
        lists: lists.iter().map(|s| s.to_string()).collect(),
        inspect: false,
        valid_from: None,
        valid_until: None,
        enabled: true,
    }
}

fn list(id: &str, text: &str) -> NamedDomainList {
    let parsed = parse_list(text.as_bytes(), None);
    assert_eq!(parsed.report.invalid, 0, "{:?}", parsed.report);
    NamedDomainList {
        id: id.into(),
        domains: parsed.list,
    }
}

fn policy(rules: Vec<InternetRule>, default_action: InternetAction) -> CompiledInternetPolicy {
    CompiledInternetPolicy::compile(InternetPolicyInput {
        default_action,
        rules,
        lists: vec![
            list("ads", "||ads.example^\n"),
            list("news", "news.example\n*.news.example\n"),
            list("idn", "bücher.example\n"),
            list("wild", "*.wild.example\n"),
        ],
    })
}

fn decide(policy: &CompiledInternetPolicy, user: &str, groups: &[&str], host: &str) -> InternetDecision {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let host = Host::parse(host).unwrap();
    policy.decide(&InternetRequest {
        user_id: user,
        groups: &groups,
        host: &host,
        port: 443,
        now: 0,
    })
}

fn rule_id(d: &InternetDecision) -> Option<&str> {
    d.rule.as_ref().map(|r| r.id.as_ref())
}

#[test]
fn block_beats_allow_whatever_the_priority_and_global_allow_beats_block() {
    let mut vip = rule("vip", 50, InternetAction::Allow, &[]);
    vip.global_allow = true;
    vip.users = vec!["ceo".into()];
    let p = policy(
        vec![
            rule("allow-news", 1, InternetAction::Allow, &["news"]),
            rule("block-news", 100, InternetAction::Block, &["news"]),
            vip,
        ],
        InternetAction::Allow,
    );
    let d = decide(&p, "alice", &[], "www.news.example");
    assert_eq!(
        (d.action, rule_id(&d), d.stage),
        (InternetAction::Block, Some("block-news"), Stage::Block)
    );
    assert_eq!(d.list.as_deref(), Some("news"));
    let d = decide(&p, "ceo", &[], "www.news.example");
    assert_eq!(
        (d.action, rule_id(&d), d.stage),
        (InternetAction::Allow, Some("vip"), Stage::GlobalAllow)
    );
    assert_eq!(d.list, None);
}

#[test]
fn warn_and_monitor() {
    let p = policy(
        vec![
            rule("warn-ads", 10, InternetAction::Warn, &["ads"]),
            rule("watch-news", 10, InternetAction::Monitor, &["news"]),
        ],
        InternetAction::Allow,
    );
    let d = decide(&p, "alice", &[], "ads.example");
    assert_eq!(
        (d.action, d.stage, d.lets_through()),
        (InternetAction::Warn, Stage::Block, false)
    );
    let d = decide(&p, "alice", &[], "x.news.example");
    assert_eq!(
        (d.action, d.stage, d.lets_through()),
        (InternetAction::Monitor, Stage::Allow, true)
    );
}

#[test]
fn groups_and_the_default() {
    let mut interns = rule("interns", 10, InternetAction::Block, &["ads"]);
    interns.groups = vec!["interns".into()];
    let p = policy(vec![interns], InternetAction::Block);
    let d = decide(&p, "bob", &["staff", "interns"], "ads.example");
    assert_eq!(rule_id(&d), Some("interns"));
    let d = decide(&p, "bob", &["staff"], "ads.example");
    assert_eq!(
        (d.action, d.reason, d.stage),
        (InternetAction::Block, Reason::NoRuleMatched, Stage::Default)
    );
    let p = policy(vec![], InternetAction::Allow);
    assert_eq!(decide(&p, "bob", &[], "anything.example").action, InternetAction::Allow);
}

#[test]
fn wildcards_do_not_match_their_own_name_but_adblock_rules_do() {
    let p = policy(
        vec![
            rule("wild", 1, InternetAction::Block, &["wild"]),
            rule("ads", 2, InternetAction::Block, &["ads"]),
        ],
        InternetAction::Allow,
    );
    assert_eq!(decide(&p, "a", &[], "wild.example").action, InternetAction::Allow);
    assert_eq!(decide(&p, "a", &[], "a.b.c.wild.example").action, InternetAction::Block);
    assert_eq!(decide(&p, "a", &[], "ads.example").action, InternetAction::Block);
    assert_eq!(decide(&p, "a", &[], "x.y.ads.example").action, InternetAction::Block);
    assert_eq!(decide(&p, "a", &[], "notads.example").action, InternetAction::Allow);
}

#[test]
fn international_names_match_in_either_form() {
    let p = policy(
        vec![rule("idn", 1, InternetAction::Block, &["idn"])],
        InternetAction::Allow,
    );
    assert_eq!(
        decide(&p, "a", &[], "xn--bcher-kva.example").action,
        InternetAction::Block
    );
    assert_eq!(decide(&p, "a", &[], "BÜCHER.example.").action, InternetAction::Block);
    // A lookalike with a Cyrillic 'е' is another name.
    assert_eq!(
        decide(&p, "a", &[], "büch\u{0435}r.example").action,
        InternetAction::Allow
    );
}

#[test]
fn addresses_match_only_rules_without_lists() {
    let p = policy(
        vec![
            rule("ads", 1, InternetAction::Block, &["ads"]),
            rule("everything", 2, InternetAction::Warn, &[]),
        ],
        InternetAction::Allow,
    );
    let d = decide(&p, "a", &[], "2130706433");
    assert_eq!(rule_id(&d), Some("everything"));
}

#[test]
fn disabled_rules_missing_lists_and_validity() {
    let mut off = rule("off", 1, InternetAction::Block, &["ads"]);
    off.enabled = false;
    let ghost = rule("ghost", 2, InternetAction::Block, &["no-such-list"]);
    let mut later = rule("later", 3, InternetAction::Block, &["ads"]);
    later.valid_from = Some(10);
    let p = policy(vec![off, ghost, later], InternetAction::Allow);
    let d = decide(&p, "a", &[], "ads.example");
    assert_eq!(d.reason, Reason::NoRuleMatched);

    let host = Host::parse("ads.example").unwrap();
    let request = InternetRequest {
        user_id: "a",
        groups: &[],
        host: &host,
        port: 443,
        now: 0,
    };
    let e = p.explain(&request);
    let why: Vec<(&str, Option<Mismatch>)> = e.rules.iter().map(|r| (r.id.as_str(), r.mismatch)).collect();
    assert_eq!(
        why,
        [
            ("off", Some(Mismatch::Disabled)),
            ("ghost", Some(Mismatch::Destination)),
            ("later", Some(Mismatch::OutsideValidity))
        ]
    );
    assert_eq!(
        e.lists,
        [ListHit {
            list: "ads".into(),
            entry: "ads.example".into()
        }]
    );
    let later = p.decide(&InternetRequest { now: 10, ..request });
    assert_eq!(rule_id(&later), Some("later"));
}

#[test]
fn input_round_trips_through_json() {
    let json = r#"{
      "default_action": "block",
      "rules": [{ "id": "r1", "priority": 5, "action": "warn", "lists": ["ads"], "inspect": true }],
      "lists": [{ "id": "ads", "domains": "ads.example\n*.ads.example\n" }]
    }"#;
    let input: InternetPolicyInput = serde_json::from_str(json).unwrap();
    assert!(input.rules[0].enabled && !input.rules[0].global_allow);
    let back: InternetPolicyInput = serde_json::from_str(&serde_json::to_string(&input).unwrap()).unwrap();
    assert_eq!(back, input);
    let p = CompiledInternetPolicy::compile(input);
    let d = decide(&p, "a", &[], "x.ads.example");
    assert!(d.inspect);
    assert_eq!(d.action, InternetAction::Warn);
    assert!(serde_json::from_str::<InternetPolicyInput>(r#"{"lists":[{"id":"x","domains":"bad..name"}]}"#).is_err());
}

#[test]
fn contradictory_rules_are_reported() {
    let mut r = rule("r", 1, InternetAction::Block, &[]);
    r.global_allow = true;
    assert_eq!(r.stage(), Stage::Block);
    assert_eq!(r.problems().len(), 1);
}
