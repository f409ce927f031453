//! Decisions as an administrator would check them: one scenario per test.

#![allow(clippy::unwrap_used)]

use ward_policy::*;

const NOW: i64 = 1_800_000_000_000;

fn app(id: &str, addresses: &[&str], ports: &str, tags: &[&str]) -> Application {
    Application {
        id: id.into(),
        name: format!("{id} app"),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ports: PortRange::parse_list(ports).unwrap(),
        protocol: Protocol::Tcp,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn rule(id: &str, priority: u32, action: Action, apps: &[&str]) -> Rule {
    Rule {
        id: id.into(),
        priority,
        action,
        target: RuleTarget::Apps(apps.iter().map(|a| a.to_string()).collect()),
        users: vec![],
        groups: vec![],
        require_compliant_device: false,
        posture: PostureMode::Enforce,
        valid_from: None,
        valid_until: None,
        sources: vec![],
        enabled: true,
        agentless: false,
    }
}

fn allow(id: &str, priority: u32, apps: &[&str]) -> Rule {
    rule(id, priority, Action::Allow, apps)
}

fn block(id: &str, priority: u32, apps: &[&str]) -> Rule {
    rule(id, priority, Action::Block, apps)
}

fn compile(apps: Vec<Application>, rules: Vec<Rule>) -> CompiledPolicy {
    CompiledPolicy::compile(PolicyInput { apps, rules })
}

/// A request from alice (group "eng") on a compliant device.
fn req<'a>(host: &'a str, port: u16) -> Request<'a> {
    static GROUPS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    Request {
        user_id: "alice",
        groups: GROUPS.get_or_init(|| vec!["eng".to_string()]),
        device: Some(DeviceState { compliant: true }),
        source: "192.0.2.10".parse().unwrap(),
        host: Host::parse(host),
        resolved: None,
        port,
        protocol: Protocol::Tcp,
        now: NOW,
        agentless: false,
    }
}

fn decided_by(policy: &CompiledPolicy, r: &Request<'_>) -> (Verdict, Option<String>, Reason) {
    let d = policy.decide(r);
    assert_eq!(policy.explain(r).decision, d, "explain agrees with decide");
    (d.action, d.rule.map(|r| r.id.to_string()), d.reason)
}

fn allowed_by(id: &str) -> (Verdict, Option<String>, Reason) {
    (Verdict::Allow, Some(id.into()), Reason::RuleMatched)
}

fn blocked_by(id: &str) -> (Verdict, Option<String>, Reason) {
    (Verdict::Deny, Some(id.into()), Reason::RuleMatched)
}

fn denied(reason: Reason) -> (Verdict, Option<String>, Reason) {
    (Verdict::Deny, None, reason)
}

#[test]
fn exact_domain_and_case_and_trailing_dot() {
    let p = compile(
        vec![app("db", &["db.corp.example"], "5432", &[])],
        vec![allow("r", 1, &["db"])],
    );
    assert_eq!(decided_by(&p, &req("db.corp.example", 5432)), allowed_by("r"));
    assert_eq!(decided_by(&p, &req("DB.Corp.Example.", 5432)), allowed_by("r"));
    assert_eq!(
        decided_by(&p, &req("x.db.corp.example", 5432)),
        denied(Reason::NoApplication)
    );
    assert_eq!(
        decided_by(&p, &req("corp.example", 5432)),
        denied(Reason::NoApplication)
    );
}

#[test]
fn wildcard_is_strictly_below_at_any_depth() {
    let p = compile(
        vec![app("corp", &["*.corp.example"], "443", &[])],
        vec![allow("r", 1, &["corp"])],
    );
    assert_eq!(decided_by(&p, &req("wiki.corp.example", 443)), allowed_by("r"));
    assert_eq!(decided_by(&p, &req("a.b.c.corp.example", 443)), allowed_by("r"));
    assert_eq!(decided_by(&p, &req("corp.example", 443)), denied(Reason::NoApplication));
    assert_eq!(
        decided_by(&p, &req("evilcorp.example", 443)),
        denied(Reason::NoApplication)
    );
    assert_eq!(
        decided_by(&p, &req("wiki.corp.example.evil", 443)),
        denied(Reason::NoApplication)
    );
}

#[test]
fn exact_block_beats_wildcard_allow_whatever_the_spelling() {
    let p = compile(
        vec![
            app("corp", &["*.corp.example"], "443", &[]),
            app("secret", &["secret.corp.example"], "443", &[]),
        ],
        vec![block("no-secret", 1, &["secret"]), allow("corp", 2, &["corp"])],
    );
    assert_eq!(
        decided_by(&p, &req("secret.corp.example", 443)),
        blocked_by("no-secret")
    );
    assert_eq!(
        decided_by(&p, &req("SECRET.corp.example.", 443)),
        blocked_by("no-secret")
    );
    assert_eq!(decided_by(&p, &req("wiki.corp.example", 443)), allowed_by("corp"));
    // Not a valid host name: matches nothing, even if it resolved somewhere.
    let mut r = req("secret..corp.example", 443);
    r.resolved = Some("10.0.0.1".parse().unwrap());
    assert_eq!(decided_by(&p, &r), denied(Reason::NoApplication));
    assert!(!p.explain(&r).host_valid);
}

#[test]
fn ip_and_cidr_including_ipv6_and_resolved_addresses() {
    let p = compile(
        vec![
            app("net", &["10.0.0.0/24"], "22", &[]),
            app("one", &["10.0.0.5"], "22", &[]),
            app("v6", &["fd00:1::/64", "2001:db8::1"], "22", &[]),
        ],
        vec![
            block("one", 1, &["one"]),
            allow("net", 2, &["net"]),
            allow("v6", 3, &["v6"]),
        ],
    );
    assert_eq!(decided_by(&p, &req("10.0.0.7", 22)), allowed_by("net"));
    assert_eq!(decided_by(&p, &req("10.0.0.5", 22)), blocked_by("one"));
    assert_eq!(decided_by(&p, &req("::ffff:10.0.0.7", 22)), allowed_by("net"));
    assert_eq!(decided_by(&p, &req("10.0.1.7", 22)), denied(Reason::NoApplication));
    assert_eq!(decided_by(&p, &req("fd00:1::abcd", 22)), allowed_by("v6"));
    assert_eq!(decided_by(&p, &req("[fd00:1::abcd]", 22)), allowed_by("v6"));
    assert_eq!(decided_by(&p, &req("fd00:2::1", 22)), denied(Reason::NoApplication));
    assert_eq!(decided_by(&p, &req("2001:db8::1", 22)), allowed_by("v6"));
    // A domain that resolved into a CIDR application matches it.
    let mut r = req("build.corp.example", 22);
    assert_eq!(decided_by(&p, &r), denied(Reason::NoApplication));
    r.resolved = Some("10.0.0.9".parse().unwrap());
    assert_eq!(decided_by(&p, &r), allowed_by("net"));
    r.resolved = Some("10.0.0.5".parse().unwrap());
    assert_eq!(decided_by(&p, &r), blocked_by("one"));
}

#[test]
fn overlapping_cidrs_of_many_lengths() {
    let p = compile(
        vec![
            app("all", &["0.0.0.0/0"], "1-65535", &[]),
            app("ten", &["10.0.0.0/8"], "443", &[]),
            app("lab", &["10.1.0.0/16"], "443", &[]),
            app("host", &["10.1.2.3/32"], "443", &[]),
        ],
        vec![
            allow("host", 1, &["host"]),
            block("lab", 2, &["lab"]),
            allow("ten", 3, &["ten"]),
            block("all", 4, &["all"]),
        ],
    );
    assert_eq!(decided_by(&p, &req("10.1.2.3", 443)), allowed_by("host"));
    assert_eq!(decided_by(&p, &req("10.1.2.4", 443)), blocked_by("lab"));
    assert_eq!(decided_by(&p, &req("10.2.0.1", 443)), allowed_by("ten"));
    assert_eq!(decided_by(&p, &req("10.2.0.1", 80)), blocked_by("all"));
    assert_eq!(decided_by(&p, &req("192.0.2.1", 443)), blocked_by("all"));
}

#[test]
fn ports_and_port_ranges() {
    let p = compile(
        vec![app("web", &["web.example"], "80,443,8000-8100", &[])],
        vec![allow("r", 1, &["web"])],
    );
    for port in [80, 443, 8000, 8050, 8100] {
        assert_eq!(
            decided_by(&p, &req("web.example", port)),
            allowed_by("r"),
            "port {port}"
        );
    }
    for port in [22, 444, 7999, 8101] {
        assert_eq!(
            decided_by(&p, &req("web.example", port)),
            denied(Reason::NoApplication),
            "port {port}"
        );
    }
    let e = p.explain(&req("web.example", 22));
    assert_eq!(e.applications.len(), 1);
    assert!(!e.applications[0].serves_port);
    assert!(e.rules.is_empty());
}

#[test]
fn first_match_wins_in_priority_order() {
    let apps = vec![app("db", &["db.example"], "5432", &[])];
    let p = compile(
        apps.clone(),
        vec![allow("allow", 20, &["db"]), block("block", 10, &["db"])],
    );
    assert_eq!(decided_by(&p, &req("db.example", 5432)), blocked_by("block"));
    let p = compile(
        apps.clone(),
        vec![allow("allow", 10, &["db"]), block("block", 20, &["db"])],
    );
    assert_eq!(decided_by(&p, &req("db.example", 5432)), allowed_by("allow"));
    // Equal priority: ties broken by id.
    let p = compile(apps, vec![block("b", 5, &["db"]), allow("a", 5, &["db"])]);
    assert_eq!(decided_by(&p, &req("db.example", 5432)), allowed_by("a"));
    assert_eq!(p.rules()[0].id, "a");
}

#[test]
fn new_application_is_denied_until_a_rule_allows_it() {
    let p = compile(
        vec![
            app("old", &["old.example"], "443", &[]),
            app("new", &["new.example"], "443", &[]),
        ],
        vec![allow("old", 1, &["old"])],
    );
    assert_eq!(decided_by(&p, &req("new.example", 443)), denied(Reason::NoRuleMatched));
}

#[test]
fn principals_users_groups_and_anyone() {
    let apps = vec![app("db", &["db.example"], "5432", &[])];
    let mut by_user = allow("by-user", 1, &["db"]);
    by_user.users = vec!["bob".into(), "alice".into()];
    let mut by_group = allow("by-group", 2, &["db"]);
    by_group.groups = vec!["ops".into()];
    let everyone = block("everyone", 3, &["db"]);
    let p = compile(apps, vec![by_user, by_group, everyone]);

    let ops = vec!["staff".to_string(), "ops".to_string()];
    let mut r = req("db.example", 5432);
    assert_eq!(decided_by(&p, &r), allowed_by("by-user"));
    r.user_id = "carol";
    assert_eq!(decided_by(&p, &r), blocked_by("everyone"));
    r.groups = &ops;
    assert_eq!(decided_by(&p, &r), allowed_by("by-group"));

    let e = p.explain(&req("db.example", 5432));
    assert!(e.rules[0].decided && e.rules[0].matched);
    assert!(
        e.rules[2].matched && !e.rules[2].decided,
        "rules after the decider are still shown"
    );
    let mut r = req("db.example", 5432);
    r.user_id = "carol";
    let e = p.explain(&r);
    assert_eq!(e.rules[0].mismatches, vec![Mismatch::PrincipalNotMatched]);
    assert_eq!(e.rules[1].mismatches, vec![Mismatch::PrincipalNotMatched]);
}

#[test]
fn users_and_groups_both_listed_match_either() {
    let mut r1 = allow("r", 1, &["db"]);
    r1.users = vec!["alice".into()];
    r1.groups = vec!["ops".into()];
    let p = compile(vec![app("db", &["db.example"], "5432", &[])], vec![r1]);
    let ops = vec!["ops".to_string()];
    let mut r = req("db.example", 5432);
    assert_eq!(decided_by(&p, &r), allowed_by("r"));
    r.user_id = "dave";
    assert_eq!(decided_by(&p, &r), denied(Reason::NoRuleMatched));
    r.groups = &ops;
    assert_eq!(decided_by(&p, &r), allowed_by("r"));
}

#[test]
fn posture_enforce_and_observe() {
    let apps = vec![
        app("db", &["db.example"], "5432", &[]),
        app("wiki", &["wiki.example"], "443", &[]),
    ];
    let mut enforce = allow("enforce", 1, &["db"]);
    enforce.require_compliant_device = true;
    let mut observe = allow("observe", 1, &["wiki"]);
    observe.require_compliant_device = true;
    observe.posture = PostureMode::Observe;
    let p = compile(apps, vec![enforce, observe]);

    let mut r = req("db.example", 5432);
    let d = p.decide(&r);
    assert!(d.is_allowed() && !d.observed_noncompliant);
    r.device = Some(DeviceState { compliant: false });
    assert_eq!(decided_by(&p, &r), denied(Reason::NoRuleMatched));
    assert_eq!(p.explain(&r).rules[0].mismatches, vec![Mismatch::DeviceNotCompliant]);
    r.device = None;
    assert_eq!(decided_by(&p, &r), denied(Reason::NoRuleMatched));

    let mut r = req("wiki.example", 443);
    assert!(!p.decide(&r).observed_noncompliant);
    r.device = Some(DeviceState { compliant: false });
    let d = p.decide(&r);
    assert!(d.is_allowed() && d.observed_noncompliant);
    let e = p.explain(&r);
    assert!(e.rules[0].matched && e.rules[0].observed_noncompliant);
    r.device = None;
    assert!(p.decide(&r).observed_noncompliant);
}

#[test]
fn validity_window_is_half_open() {
    let mut windowed = allow("windowed", 1, &["db"]);
    windowed.valid_from = Some(NOW);
    windowed.valid_until = Some(NOW + 1000);
    let p = compile(vec![app("db", &["db.example"], "5432", &[])], vec![windowed]);
    let at = |now| {
        let mut r = req("db.example", 5432);
        r.now = now;
        decided_by(&p, &r)
    };
    assert_eq!(at(NOW - 1), denied(Reason::NoRuleMatched));
    assert_eq!(at(NOW), allowed_by("windowed"));
    assert_eq!(at(NOW + 999), allowed_by("windowed"));
    assert_eq!(at(NOW + 1000), denied(Reason::NoRuleMatched));
    let mut r = req("db.example", 5432);
    r.now = NOW + 5000;
    assert_eq!(p.explain(&r).rules[0].mismatches, vec![Mismatch::OutsideValidity]);
}

#[test]
fn source_networks() {
    let mut office = allow("office", 1, &["db"]);
    office.sources = vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:5::/48".parse().unwrap()];
    let p = compile(vec![app("db", &["db.example"], "5432", &[])], vec![office]);
    let from = |src: &str| {
        let mut r = req("db.example", 5432);
        r.source = src.parse().unwrap();
        decided_by(&p, &r)
    };
    assert_eq!(from("192.0.2.200"), allowed_by("office"));
    assert_eq!(from("::ffff:192.0.2.200"), allowed_by("office"));
    assert_eq!(from("2001:db8:5:1::9"), allowed_by("office"));
    assert_eq!(from("198.51.100.1"), denied(Reason::NoRuleMatched));
    assert_eq!(from("2001:db8:6::1"), denied(Reason::NoRuleMatched));
}

#[test]
fn disabled_rules_never_match_but_are_explained() {
    let mut off = block("off", 1, &["db"]);
    off.enabled = false;
    let p = compile(
        vec![app("db", &["db.example"], "5432", &[])],
        vec![off, allow("on", 2, &["db"])],
    );
    assert_eq!(decided_by(&p, &req("db.example", 5432)), allowed_by("on"));
    let e = p.explain(&req("db.example", 5432));
    assert_eq!(e.rules.len(), 2);
    assert_eq!(e.rules[0].id, "off");
    assert_eq!(e.rules[0].mismatches, vec![Mismatch::Disabled]);
    assert!(e.rules[1].decided);
}

#[test]
fn tags_select_applications() {
    let p = compile(
        vec![
            app("db1", &["db1.example"], "5432", &["db", "prod"]),
            app("db2", &["db2.example"], "5432", &["db"]),
            app("wiki", &["wiki.example"], "443", &[]),
        ],
        vec![
            Rule {
                target: RuleTarget::Tags(vec!["prod".into()]),
                ..block("no-prod", 1, &[])
            },
            Rule {
                target: RuleTarget::Tags(vec!["db".into(), "nope".into()]),
                ..allow("dbs", 2, &[])
            },
        ],
    );
    assert_eq!(decided_by(&p, &req("db1.example", 5432)), blocked_by("no-prod"));
    assert_eq!(decided_by(&p, &req("db2.example", 5432)), allowed_by("dbs"));
    assert_eq!(decided_by(&p, &req("wiki.example", 443)), denied(Reason::NoRuleMatched));
}

#[test]
fn unknown_app_ids_and_tags_match_nothing() {
    let p = compile(
        vec![app("db", &["db.example"], "5432", &[])],
        vec![
            block("ghost", 1, &["no-such-app"]),
            Rule {
                target: RuleTarget::Tags(vec!["no-such-tag".into()]),
                ..block("ghost-tag", 2, &[])
            },
            block("empty", 3, &[]),
            allow("db", 4, &["db", "no-such-app"]),
        ],
    );
    assert_eq!(decided_by(&p, &req("db.example", 5432)), allowed_by("db"));
    assert_eq!(p.explain(&req("db.example", 5432)).rules.len(), 1);
}

#[test]
fn several_applications_merge_their_rules_in_priority_order() {
    // The destination is in three applications; their rules interleave.
    let p = compile(
        vec![
            app("name", &["git.corp.example"], "22", &[]),
            app("wild", &["*.corp.example"], "22", &[]),
            app("net", &["10.0.0.0/8"], "22", &[]),
        ],
        vec![
            Rule {
                users: vec!["nobody".into()],
                ..allow("n1", 1, &["name"])
            },
            Rule {
                users: vec!["nobody".into()],
                ..allow("w2", 2, &["wild"])
            },
            Rule {
                users: vec!["nobody".into()],
                ..allow("x3", 3, &["net", "name"])
            },
            block("w4", 4, &["wild"]),
            allow("n5", 5, &["name"]),
        ],
    );
    let mut r = req("git.corp.example", 22);
    r.resolved = Some("10.1.1.1".parse().unwrap());
    assert_eq!(decided_by(&p, &r), blocked_by("w4"));
    let e = p.explain(&r);
    let ids: Vec<_> = e.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["n1", "w2", "x3", "w4", "n5"]);
    assert_eq!(e.rules[2].apps, ["name", "net"]);
    assert_eq!(e.applications.len(), 3);
    assert_eq!(e.applications[1].matched_address, "*.corp.example");
}

#[test]
fn policy_from_json_and_explanation_to_json() {
    let input: PolicyInput = serde_json::from_str(
        r#"{
          "apps": [{"id": "db", "name": "DB", "addresses": ["db.corp.example", "10.0.0.0/24"],
                    "ports": [5432, "6000-6010"], "tags": ["data"]}],
          "rules": [{"id": "r1", "priority": 1, "action": "block", "target": {"tags": ["data"]},
                     "sources": ["198.51.100.0/24"], "valid_until": 1},
                    {"id": "r2", "priority": 2, "action": "allow", "target": {"apps": ["db"]},
                     "groups": ["eng"], "require_compliant_device": true, "posture": "observe"}]
        }"#,
    )
    .unwrap();
    assert_eq!(input.rules[1].posture, PostureMode::Observe);
    assert!(input.rules[0].enabled);
    let back: PolicyInput = serde_json::from_value(serde_json::to_value(&input).unwrap()).unwrap();
    assert_eq!(back, input);

    let p = CompiledPolicy::compile(input);
    let e = p.explain(&req("db.corp.example", 6005));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["decision"]["action"], "allow");
    assert_eq!(json["decision"]["rule"]["id"], "r2");
    assert_eq!(json["decision"]["reason"], "rule_matched");
    assert_eq!(
        json["rules"][0]["mismatches"],
        serde_json::json!(["outside_validity", "source_not_allowed"])
    );
    let back: Explanation = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
}

#[test]
fn bad_policy_json_is_refused_with_a_clear_message() {
    let err = serde_json::from_str::<Application>(
        r#"{"id": "x", "name": "x", "addresses": ["10.0.0.1/24"], "ports": ["443"]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("did you mean 10.0.0.0/24"), "{err}");
    let err = serde_json::from_str::<Application>(r#"{"id": "x", "name": "x", "addresses": [], "ports": ["9-8"]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("reversed"), "{err}");
}

#[test]
fn decisions_are_deterministic_across_snapshots() {
    let make = || {
        compile(
            vec![
                app("a", &["*.example"], "1-65535", &["t"]),
                app("b", &["10.0.0.0/8"], "1-65535", &["t"]),
            ],
            vec![
                Rule {
                    target: RuleTarget::Tags(vec!["t".into()]),
                    ..allow("t", 3, &[])
                },
                Rule {
                    groups: vec!["x".into()],
                    ..block("x", 1, &["a", "b"])
                },
            ],
        )
    };
    let (p1, p2) = (make(), make());
    let r = req("a.example", 80);
    assert_eq!(p1.decide(&r), p2.decide(&r));
    assert_eq!(p1.decide(&r), p1.decide(&r));
}

#[test]
fn openapi_schemas_describe_the_text_forms() {
    use utoipa::PartialSchema;
    let app = serde_json::to_value(Application::schema()).unwrap();
    assert_eq!(
        app["properties"]["addresses"]["items"]["$ref"],
        "#/components/schemas/Address"
    );
    let address = serde_json::to_value(Address::schema()).unwrap();
    assert_eq!(address["type"], "string");
    let explanation = serde_json::to_value(Explanation::schema()).unwrap();
    assert!(explanation["properties"]["rules"].is_object(), "{explanation}");
    let rule_ref = serde_json::to_value(RuleRef::schema()).unwrap();
    assert_eq!(rule_ref["properties"]["id"]["type"], "string");
}

#[test]
fn clientless_requests_need_an_agentless_rule_without_enforced_compliance() {
    let apps = vec![app("wiki", &["wiki.corp.example"], "80", &[])];
    let mut plain = allow("plain", 1, &["wiki"]);
    plain.agentless = false;
    let mut enforced = allow("enforced", 2, &["wiki"]);
    enforced.agentless = true;
    enforced.require_compliant_device = true;
    let mut web = allow("web", 3, &["wiki"]);
    web.agentless = true;
    let policy = compile(apps.clone(), vec![plain.clone(), enforced.clone(), web]);

    // With the agent, the first rule decides as always.
    assert_eq!(
        decided_by(&policy, &req("wiki.corp.example", 80)).1.as_deref(),
        Some("plain")
    );

    // Without it (no device), only the agentless rule without enforcement admits.
    let mut r = req("wiki.corp.example", 80);
    r.agentless = true;
    r.device = None;
    assert_eq!(
        decided_by(&policy, &r),
        (Verdict::Allow, Some("web".into()), Reason::RuleMatched)
    );
    let e = policy.explain(&r);
    assert_eq!(e.rules[0].mismatches, vec![Mismatch::NotAgentless]);
    assert_eq!(e.rules[1].mismatches, vec![Mismatch::DeviceNotCompliant]);

    // No agentless rule: a clientless request is denied by default.
    let policy = compile(apps, vec![plain, enforced]);
    assert_eq!(decided_by(&policy, &r), (Verdict::Deny, None, Reason::NoRuleMatched));
}
