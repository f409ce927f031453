//! [`CompiledInternetPolicy`]: a tenant's internet rules and lists compiled
//! into an immutable snapshot with a decision function.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::decision::{InternetDecision, InternetExplanation, ListHit, Mismatch, Reason, RuleEvaluation, RuleRef};
use crate::list::{DomainList, EntryKind};
use crate::model::{InternetAction, InternetPolicyInput, InternetRule, Stage};
use crate::name::Host;
use crate::set::DomainSet;

/// One request to the internet, as the gateway sees it.
#[derive(Debug, Clone, Copy)]
pub struct InternetRequest<'a> {
    pub user_id: &'a str,
    pub groups: &'a [String],
    /// Already normalised ([`Host::parse`]); a host that does not parse
    /// never reaches a decision.
    pub host: &'a Host,
    /// Carried for the records; no rule has a port condition yet.
    pub port: u16,
    /// Milliseconds since the epoch.
    pub now: i64,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: Arc<str>,
    priority: u32,
    stage: Stage,
    action: InternetAction,
    enabled: bool,
    inspect: bool,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    /// Interned user and group ids.
    users: Box<[u32]>,
    groups: Box<[u32]>,
    /// Whether the rule names lists at all (if not, every destination matches).
    names_lists: bool,
    /// Indices into the set's lists, in the order the rule names them.
    lists: Box<[u32]>,
    /// The rule as written, for `explain`.
    source: InternetRule,
}

/// A tenant's internet policy, compiled. Immutable; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct CompiledInternetPolicy {
    default_action: InternetAction,
    /// Every rule, in evaluation order: (stage, priority, id).
    rules: Vec<CompiledRule>,
    /// The lists named by enabled rules.
    set: DomainSet,
    /// Set list index -> list id.
    list_ids: Vec<Arc<str>>,
    /// Set list index -> enabled rules naming it (ascending rule indices).
    list_rules: Vec<Box<[u32]>>,
    /// Enabled rules naming no list: candidates for every request.
    unlisted: Box<[u32]>,
    users: FxHashMap<Box<str>, u32>,
    groups: FxHashMap<Box<str>, u32>,
}

fn intern(map: &mut FxHashMap<Box<str>, u32>, s: &str) -> u32 {
    if let Some(&id) = map.get(s) {
        return id;
    }
    let id = map.len() as u32;
    map.insert(s.into(), id);
    id
}

impl CompiledInternetPolicy {
    /// Compile `input` with a fixed hash seed (see
    /// [`CompiledInternetPolicy::compile_seeded`]). Never fails: a rule
    /// naming a list that does not exist simply cannot match through it.
    pub fn compile(input: InternetPolicyInput) -> CompiledInternetPolicy {
        CompiledInternetPolicy::compile_seeded(input, 0)
    }

    /// Compile `input`, keying the lists' hash table with `seed`. A gateway
    /// passes a secret random seed (chosen once per process), so that no
    /// tenant can import names prepared to collide; this crate takes no
    /// randomness itself. The seed never changes a decision.
    pub fn compile_seeded(input: InternetPolicyInput, seed: u64) -> CompiledInternetPolicy {
        let InternetPolicyInput {
            default_action,
            mut rules,
            lists,
        } = input;
        rules.sort_by(|a, b| (a.stage(), a.priority, &a.id).cmp(&(b.stage(), b.priority, &b.id)));

        // The lists enabled rules name, once each, in first-named order; several
        // input lists with one id are one list.
        let mut by_id: FxHashMap<&str, Vec<&DomainList>> = FxHashMap::default();
        for list in &lists {
            by_id.entry(list.id.as_str()).or_default().push(&list.domains);
        }
        let mut list_index: FxHashMap<String, u32> = FxHashMap::default();
        let mut list_ids: Vec<Arc<str>> = Vec::new();
        let mut members: Vec<(u32, &DomainList)> = Vec::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            for id in &rule.lists {
                if list_index.contains_key(id) {
                    continue;
                }
                let Some(found) = by_id.get(id.as_str()) else {
                    continue;
                };
                let index = list_ids.len() as u32;
                list_index.insert(id.clone(), index);
                list_ids.push(id.as_str().into());
                members.extend(found.iter().map(|l| (index, *l)));
            }
        }
        let set = build_set(&members, list_ids.len(), seed);

        let (mut users, mut groups) = (FxHashMap::default(), FxHashMap::default());
        let mut list_rules: Vec<Vec<u32>> = vec![Vec::new(); list_ids.len()];
        let mut unlisted = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let mut resolved: Vec<u32> = Vec::new();
            for id in &rule.lists {
                if let Some(&l) = list_index.get(id) {
                    if !resolved.contains(&l) {
                        resolved.push(l);
                    }
                }
            }
            if rule.enabled {
                if rule.lists.is_empty() {
                    unlisted.push(i as u32);
                }
                for &l in &resolved {
                    list_rules[l as usize].push(i as u32);
                }
            }
            compiled.push(CompiledRule {
                id: rule.id.as_str().into(),
                priority: rule.priority,
                stage: rule.stage(),
                action: rule.action,
                enabled: rule.enabled,
                inspect: rule.inspect,
                valid_from: rule.valid_from,
                valid_until: rule.valid_until,
                users: rule.users.iter().map(|u| intern(&mut users, u)).collect(),
                groups: rule.groups.iter().map(|g| intern(&mut groups, g)).collect(),
                names_lists: !rule.lists.is_empty(),
                lists: resolved.into(),
                source: rule,
            });
        }
        CompiledInternetPolicy {
            default_action,
            rules: compiled,
            set,
            list_ids,
            list_rules: list_rules.into_iter().map(Vec::into_boxed_slice).collect(),
            unlisted: unlisted.into(),
            users,
            groups,
        }
    }

    /// The compiled domain lists (those that enabled rules name).
    pub fn domain_set(&self) -> &DomainSet {
        &self.set
    }

    /// The default action when no rule matches.
    pub fn default_action(&self) -> InternetAction {
        self.default_action
    }

    /// Bytes of heap the compiled lists hold (the rules aside).
    pub fn list_heap_bytes(&self) -> usize {
        self.set.heap_bytes()
    }

    /// Decide a request: the first matching rule of the global allow-list
    /// stage, else of the block stage, else of the allow stage, each in
    /// priority order; no rule matched: the tenant's default action.
    ///
    /// Cost: one hash look-up per label of the destination, then only the
    /// rules naming a list that matched, plus the rules naming no list, are
    /// evaluated. The size of the lists does not enter.
    pub fn decide(&self, request: &InternetRequest<'_>) -> InternetDecision {
        let mut matched: SmallVec<[u32; 8]> = SmallVec::new();
        let mut candidates: SmallVec<[u32; 32]> = SmallVec::new();
        candidates.extend_from_slice(&self.unlisted);
        if let Host::Name(name) = request.host {
            self.set.for_each_match(name.as_str(), |list, _, _| {
                if !matched.contains(&list) {
                    matched.push(list);
                    candidates.extend_from_slice(&self.list_rules[list as usize]);
                }
            });
        }
        candidates.sort_unstable();
        candidates.dedup();
        let principal = self.principal(request);
        for &i in &candidates {
            let rule = &self.rules[i as usize];
            if self.rule_mismatch(rule, request, &principal, &matched).is_none() {
                return InternetDecision {
                    action: rule.action,
                    rule: Some(RuleRef {
                        id: rule.id.clone(),
                        priority: rule.priority,
                    }),
                    stage: rule.stage,
                    reason: Reason::RuleMatched,
                    list: rule
                        .lists
                        .iter()
                        .find(|l| matched.contains(l))
                        .map(|&l| self.list_ids[l as usize].clone()),
                    inspect: rule.inspect,
                };
            }
        }
        self.default_decision()
    }

    fn default_decision(&self) -> InternetDecision {
        InternetDecision {
            action: self.default_action,
            rule: None,
            stage: Stage::Default,
            reason: Reason::NoRuleMatched,
            list: None,
            inspect: false,
        }
    }

    /// The same decision, with every rule in evaluation order and why it did
    /// or did not match, and the list entries the destination matches (among
    /// the lists enabled rules name): the what-if an administrator runs.
    pub fn explain(&self, request: &InternetRequest<'_>) -> InternetExplanation {
        let mut matched: SmallVec<[u32; 8]> = SmallVec::new();
        let mut hits = Vec::new();
        if let Host::Name(name) = request.host {
            self.set.for_each_match(name.as_str(), |list, kind, key| {
                if !matched.contains(&list) {
                    matched.push(list);
                }
                hits.push(ListHit {
                    list: self.list_ids[list as usize].to_string(),
                    entry: match kind {
                        EntryKind::Exact => key.to_string(),
                        EntryKind::Subdomains => format!("*.{key}"),
                    },
                });
            });
        }
        let principal = self.principal(request);
        let rules = self
            .rules
            .iter()
            .map(|rule| RuleEvaluation {
                id: rule.source.id.clone(),
                priority: rule.priority,
                stage: rule.stage,
                action: rule.action,
                mismatch: self.rule_mismatch(rule, request, &principal, &matched),
                list: rule
                    .lists
                    .iter()
                    .find(|l| matched.contains(l))
                    .map(|&l| self.list_ids[l as usize].to_string()),
            })
            .collect();
        InternetExplanation {
            decision: self.decide(request),
            rules,
            lists: hits,
        }
    }

    /// The request's user and groups as interned ids (unknown ones dropped:
    /// no rule names them).
    fn principal(&self, request: &InternetRequest<'_>) -> (Option<u32>, SmallVec<[u32; 8]>) {
        let user = self.users.get(request.user_id).copied();
        let groups = request
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g.as_str()).copied())
            .collect();
        (user, groups)
    }

    fn rule_mismatch(
        &self,
        rule: &CompiledRule,
        request: &InternetRequest<'_>,
        principal: &(Option<u32>, SmallVec<[u32; 8]>),
        matched: &[u32],
    ) -> Option<Mismatch> {
        if !rule.enabled {
            return Some(Mismatch::Disabled);
        }
        if rule.valid_from.is_some_and(|f| request.now < f) || rule.valid_until.is_some_and(|u| request.now >= u) {
            return Some(Mismatch::OutsideValidity);
        }
        let everyone = rule.users.is_empty() && rule.groups.is_empty();
        let (user, groups) = principal;
        if !everyone
            && !user.is_some_and(|u| rule.users.contains(&u))
            && !groups.iter().any(|g| rule.groups.contains(g))
        {
            return Some(Mismatch::Principal);
        }
        if rule.names_lists && !rule.lists.iter().any(|l| matched.contains(l)) {
            return Some(Mismatch::Destination);
        }
        None
    }
}

fn build_set(members: &[(u32, &DomainList)], count: usize, seed: u64) -> DomainSet {
    // The set numbers lists by position; several input lists can share one id,
    // so merge them first when they do (rare: usually one list per id).
    if members.len() == count {
        let lists: Vec<&DomainList> = members.iter().map(|(_, l)| *l).collect();
        return DomainSet::build_seeded(&lists, seed);
    }
    let mut merged: Vec<DomainList> = vec![DomainList::new(); count];
    for (index, list) in members {
        merged[*index as usize].append(list);
    }
    let lists: Vec<&DomainList> = merged.iter().collect();
    DomainSet::build_seeded(&lists, seed)
}
