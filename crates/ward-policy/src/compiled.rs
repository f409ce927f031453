//! A policy compiled for deciding: rules sorted, indexed by application.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::address::{canonical_net, NameBuf, MAX_NAME_LEN};
use crate::decision::{AppMatch, Decision, Explanation, Mismatch, Reason, RuleEvaluation, RuleRef};
use crate::index::DestinationIndex;
use crate::model::{Action, Application, PolicyInput, PostureMode, Rule, RuleTarget};
use crate::request::{destination, Destination, Request};

/// A rule's conditions in the form the hot path checks them.
#[derive(Debug)]
struct RuleConditions {
    id: Arc<str>,
    priority: u32,
    action: Action,
    enabled: bool,
    /// Admits clientless requests.
    agentless: bool,
    /// No users and no groups: everyone.
    anyone: bool,
    /// Interned ids ([`Principals`]), sorted; inline for up to two.
    users: SmallVec<[u32; 2]>,
    groups: SmallVec<[u32; 2]>,
    require_compliant_device: bool,
    posture: PostureMode,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    /// Canonical (IPv4-mapped blocks as IPv4); empty means any source.
    sources: Box<[IpNet]>,
}

/// The users and groups that rules name, interned to small integers so a
/// rule's principal check compares integers, not strings.
#[derive(Debug, Default)]
struct Principals {
    users: FxHashMap<Box<str>, u32>,
    groups: FxHashMap<Box<str>, u32>,
}

fn intern_all(table: &mut FxHashMap<Box<str>, u32>, names: &[String]) -> SmallVec<[u32; 2]> {
    let mut ids: SmallVec<[u32; 2]> = names
        .iter()
        .map(|name| {
            // Four billion distinct names would not fit in memory first.
            let next = u32::try_from(table.len()).unwrap_or(u32::MAX);
            *table.entry(name.as_str().into()).or_insert(next)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The request's user and groups as interned ids. Names no rule mentions
/// are dropped: they can only match rules that name nobody.
struct Principal {
    user: Option<u32>,
    /// Sorted.
    groups: SmallVec<[u32; 8]>,
}

/// Whether two sorted id lists share an element: walk the shorter, search the longer.
fn intersects(a: &[u32], b: &[u32]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.iter().any(|x| long.binary_search(x).is_ok())
}

impl Principals {
    fn resolve(&self, req: &Request<'_>) -> Principal {
        let user = self.users.get(req.user_id).copied();
        let mut groups: SmallVec<[u32; 8]> = SmallVec::new();
        if !self.groups.is_empty() {
            groups.extend(req.groups.iter().filter_map(|g| self.groups.get(g.as_str()).copied()));
            groups.sort_unstable();
        }
        Principal { user, groups }
    }
}

impl RuleConditions {
    fn new(rule: &Rule, principals: &mut Principals) -> RuleConditions {
        RuleConditions {
            id: rule.id.as_str().into(),
            priority: rule.priority,
            action: rule.action,
            enabled: rule.enabled,
            agentless: rule.agentless,
            anyone: rule.users.is_empty() && rule.groups.is_empty(),
            users: intern_all(&mut principals.users, &rule.users),
            groups: intern_all(&mut principals.groups, &rule.groups),
            require_compliant_device: rule.require_compliant_device,
            posture: rule.posture,
            valid_from: rule.valid_from,
            valid_until: rule.valid_until,
            sources: rule.sources.iter().map(|n| canonical_net(*n)).collect(),
        }
    }

    fn in_window(&self, now: i64) -> bool {
        self.valid_from.is_none_or(|from| now >= from) && self.valid_until.is_none_or(|until| now < until)
    }

    fn principal_matches(&self, who: &Principal) -> bool {
        self.anyone
            || who.user.is_some_and(|u| self.users.binary_search(&u).is_ok())
            || intersects(&self.groups, &who.groups)
    }

    fn source_allowed(&self, source: IpAddr) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|n| n.contains(&source))
    }

    /// `(device requirement met, met only by observing)`.
    fn device_check(&self, req: &Request<'_>) -> (bool, bool) {
        if !self.require_compliant_device || req.device_compliant() {
            return (true, false);
        }
        match self.posture {
            PostureMode::Enforce => (false, false),
            PostureMode::Observe => (true, true),
        }
    }

    /// `Some(observed_noncompliant)` when every condition holds.
    #[inline]
    fn check(&self, req: &Request<'_>, who: &Principal, source: IpAddr) -> Option<bool> {
        if !(self.enabled
            && (self.agentless || !req.agentless)
            && self.in_window(req.now)
            && self.principal_matches(who)
            && self.source_allowed(source))
        {
            return None;
        }
        match self.device_check(req) {
            (true, observed) => Some(observed),
            (false, _) => None,
        }
    }

    /// Every condition that does not hold, and whether the device
    /// requirement was met only by observing.
    fn mismatches(&self, req: &Request<'_>, who: &Principal, source: IpAddr) -> (Vec<Mismatch>, bool) {
        let mut out = Vec::new();
        if !self.enabled {
            out.push(Mismatch::Disabled);
        }
        if req.agentless && !self.agentless {
            out.push(Mismatch::NotAgentless);
        }
        if !self.in_window(req.now) {
            out.push(Mismatch::OutsideValidity);
        }
        if !self.source_allowed(source) {
            out.push(Mismatch::SourceNotAllowed);
        }
        if !self.principal_matches(who) {
            out.push(Mismatch::PrincipalNotMatched);
        }
        let (met, observed) = self.device_check(req);
        if !met {
            out.push(Mismatch::DeviceNotCompliant);
        }
        (out, observed)
    }

    fn rule_ref(&self) -> RuleRef {
        RuleRef {
            id: Arc::clone(&self.id),
            priority: self.priority,
        }
    }
}

/// Rule indices, in priority order.
type RuleList = Box<[u32]>;

/// An immutable, compiled policy snapshot. Share it behind an `Arc` and swap
/// in a new one when the policy changes.
///
/// Compiling never fails: a rule that names an application id or a tag that
/// no application has simply matches nothing, so a half-edited policy cannot
/// stop the gateway from deciding, and can only deny more.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    apps: Vec<Application>,
    /// Sorted by (priority, id); ties keep their input order.
    rules: Vec<Rule>,
    conditions: Vec<RuleConditions>,
    principals: Principals,
    /// Per application: the enabled rules about it (the hot path).
    app_rules: Vec<RuleList>,
    /// Per application: every rule about it, disabled ones too (for `explain`).
    app_rules_all: Vec<RuleList>,
    index: DestinationIndex,
}

/// Candidate applications found for one request: most requests have one or two.
type Candidates = SmallVec<[u32; 8]>;

impl CompiledPolicy {
    /// Compile a policy. Rules are ordered by `(priority, id)`; applications
    /// are indexed by address and each one gets the sorted list of rules that
    /// name it, directly or by tag. Several applications may share an id: a
    /// rule naming that id is about all of them.
    pub fn compile(input: PolicyInput) -> CompiledPolicy {
        let PolicyInput { apps, mut rules } = input;
        rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));

        let mut by_id: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
        let mut by_tag: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
        for (i, app) in apps.iter().enumerate() {
            by_id.entry(app.id.as_str()).or_default().push(i);
            for tag in &app.tags {
                by_tag.entry(tag.as_str()).or_default().push(i);
            }
        }

        let mut app_rules: Vec<Vec<u32>> = vec![Vec::new(); apps.len()];
        let mut app_rules_all: Vec<Vec<u32>> = vec![Vec::new(); apps.len()];
        for (r, rule) in rules.iter().enumerate() {
            let Ok(r) = u32::try_from(r) else { break };
            let (names, map) = match &rule.target {
                RuleTarget::Apps(ids) => (ids, &by_id),
                RuleTarget::Tags(tags) => (tags, &by_tag),
            };
            for app in names.iter().filter_map(|n| map.get(n.as_str())).flatten() {
                // Rules are visited in order, so each list stays sorted; a
                // rule naming one application twice is listed once.
                if app_rules_all[*app].last() != Some(&r) {
                    app_rules_all[*app].push(r);
                    if rule.enabled {
                        app_rules[*app].push(r);
                    }
                }
            }
        }

        let mut principals = Principals::default();
        let conditions = rules
            .iter()
            .map(|rule| RuleConditions::new(rule, &mut principals))
            .collect();
        let index = DestinationIndex::build(&apps);
        CompiledPolicy {
            conditions,
            principals,
            app_rules: app_rules.into_iter().map(Vec::into_boxed_slice).collect(),
            app_rules_all: app_rules_all.into_iter().map(Vec::into_boxed_slice).collect(),
            index,
            apps,
            rules,
        }
    }

    /// The applications, as given.
    pub fn applications(&self) -> &[Application] {
        &self.apps
    }

    /// The rules in decision order: by priority (1 first), then id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Applications whose addresses cover the destination and that serve its
    /// port and protocol, without duplicates.
    fn serving_apps(&self, dest: &Destination<'_>, req: &Request<'_>) -> Candidates {
        let mut apps = Candidates::new();
        self.index.for_each_app(dest, |a| {
            if !apps.contains(&a) && self.apps[a as usize].covers(req.port, req.protocol) {
                apps.push(a);
            }
        });
        apps
    }

    /// Decide a request. Pure: the answer depends only on this snapshot and
    /// the request. Does not allocate (the working sets live on the stack)
    /// unless a request finds more than eight applications or the user is in
    /// more than eight groups that rules name; naming the deciding rule is a
    /// reference-count increment.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let mut buf: NameBuf = [0; MAX_NAME_LEN + 1];
        let Some(dest) = destination(req, &mut buf) else {
            return Decision::default_deny(Reason::NoApplication);
        };
        let apps = self.serving_apps(&dest, req);
        if apps.is_empty() {
            return Decision::default_deny(Reason::NoApplication);
        }
        let source = req.source.to_canonical();
        let who = self.principals.resolve(req);
        let decide_by = |r: u32| {
            let rule = &self.conditions[r as usize];
            rule.check(req, &who, source)
                .map(|observed| Decision::by_rule(rule.action, rule.rule_ref(), observed))
        };

        if let [only] = apps.as_slice() {
            for &r in self.app_rules[*only as usize].iter() {
                if let Some(decision) = decide_by(r) {
                    return decision;
                }
            }
            return Decision::default_deny(Reason::NoRuleMatched);
        }

        // k-way merge of the candidates' sorted rule lists, lazily, so the
        // walk stops at the first matching rule.
        let mut heads: SmallVec<[&[u32]; 8]> = apps.iter().map(|&a| &*self.app_rules[a as usize]).collect();
        loop {
            let Some(next) = heads.iter().filter_map(|l| l.first().copied()).min() else {
                return Decision::default_deny(Reason::NoRuleMatched);
            };
            for list in heads.iter_mut() {
                if let [first, rest @ ..] = *list {
                    if *first == next {
                        *list = rest;
                    }
                }
            }
            if let Some(decision) = decide_by(next) {
                return decision;
            }
        }
    }

    /// Decide a request and say why: which applications cover the
    /// destination, and for each rule about them, in order, whether it
    /// matched and which conditions did not hold. Its `decision` is always
    /// the one [`CompiledPolicy::decide`] returns.
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let mut buf: NameBuf = [0; MAX_NAME_LEN + 1];
        let Some(dest) = destination(req, &mut buf) else {
            return Explanation {
                decision: Decision::default_deny(Reason::NoApplication),
                host_valid: false,
                applications: Vec::new(),
                rules: Vec::new(),
            };
        };

        let mut covering: Vec<u32> = Vec::new();
        self.index.for_each_app(&dest, |a| {
            if !covering.contains(&a) {
                covering.push(a);
            }
        });
        covering.sort_unstable();
        let mut applications = Vec::with_capacity(covering.len());
        let mut serving = Vec::new();
        for &a in &covering {
            let app = &self.apps[a as usize];
            let serves_port = app.covers(req.port, req.protocol);
            if serves_port {
                serving.push(a);
            }
            let matched_address = app
                .addresses
                .iter()
                .find(|addr| {
                    dest.name.is_some_and(|n| addr.matches_name(n))
                        || dest.ips.iter().flatten().any(|ip| addr.matches_ip(*ip))
                })
                .map(ToString::to_string)
                .unwrap_or_default();
            applications.push(AppMatch {
                id: app.id.clone(),
                name: app.name.clone(),
                matched_address,
                serves_port,
            });
        }

        let mut candidates: Vec<u32> = serving
            .iter()
            .flat_map(|&a| self.app_rules_all[a as usize].iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();

        let source = req.source.to_canonical();
        let who = self.principals.resolve(req);
        let mut decision = None;
        let mut rules = Vec::with_capacity(candidates.len());
        for r in candidates {
            let cond = &self.conditions[r as usize];
            let (mismatches, observed) = cond.mismatches(req, &who, source);
            let matched = mismatches.is_empty();
            let decided = matched && decision.is_none();
            if decided {
                decision = Some(Decision::by_rule(cond.action, cond.rule_ref(), observed));
            }
            let apps = serving
                .iter()
                .filter(|&&a| self.app_rules_all[a as usize].binary_search(&r).is_ok())
                .map(|&a| self.apps[a as usize].id.clone())
                .collect();
            rules.push(RuleEvaluation {
                id: cond.id.to_string(),
                priority: cond.priority,
                action: cond.action,
                apps,
                matched,
                decided,
                mismatches,
                observed_noncompliant: matched && observed,
            });
        }

        let decision = decision.unwrap_or_else(|| {
            Decision::default_deny(if serving.is_empty() {
                Reason::NoApplication
            } else {
                Reason::NoRuleMatched
            })
        });
        Explanation {
            decision,
            host_valid: true,
            applications,
            rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CompiledPolicy>();
        assert_send_sync::<Decision>();
    }

    #[test]
    fn empty_policy_denies() {
        let policy = CompiledPolicy::default();
        let req = Request {
            user_id: "u",
            groups: &[],
            device: None,
            source: "192.0.2.1".parse().unwrap(),
            host: crate::Host::Domain("db.example"),
            resolved: None,
            port: 443,
            protocol: crate::Protocol::Tcp,
            now: 0,
            agentless: false,
        };
        assert_eq!(policy.decide(&req), Decision::default_deny(Reason::NoApplication));
    }
}
