//! A tenant's access policy, loaded from the store and compiled.
//!
//! Stored rows keep addresses and ports as text and rules name applications,
//! users and groups by id; this module turns them into the policy crate's
//! types. The same compiled form serves the `rule test` what-if here and, as
//! a snapshot, the gateways.

use std::collections::{HashMap, HashSet};

use ward_core::attrs;
use ward_policy::{
    Action, Address, Application, CompiledPolicy, PolicyInput, PortRange, PostureMode, Protocol, Rule, RuleTarget,
};
use ward_store::{AppRow, GroupRow, RuleRow, Store, UserRow};

use crate::error::{ApiError, ApiResult};

/// A tenant's compiled policy and what is needed to apply it to a user.
pub struct TenantPolicy {
    pub compiled: CompiledPolicy,
    /// Group ids by user id.
    pub groups_of: HashMap<String, Vec<String>>,
}

pub async fn load(store: &Store, tenant_id: &str) -> ApiResult<TenantPolicy> {
    let (input, groups_of) = load_input(store, tenant_id).await?;
    Ok(TenantPolicy {
        compiled: CompiledPolicy::compile(input),
        groups_of,
    })
}

/// The tenant's policy as input to the policy crate, and group ids by user id.
pub async fn load_input(store: &Store, tenant_id: &str) -> ApiResult<(PolicyInput, HashMap<String, Vec<String>>)> {
    let apps = store.all_apps(tenant_id).await?;
    let rules = store.all_rules(tenant_id).await?;
    let groups = store.all_groups(tenant_id).await?;
    let users = store.all_users(tenant_id).await?;
    let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
    for (group, user) in memberships(&groups, &users, store.all_memberships(tenant_id).await?) {
        groups_of.entry(user).or_default().push(group);
    }
    // Fail closed: a row that does not parse (changed behind Ward's back)
    // makes the whole policy an error, never a policy without that rule — a
    // dropped block rule would widen access.
    let input = PolicyInput {
        apps: apps.iter().map(app_from_row).collect::<ApiResult<_>>()?,
        rules: rules.iter().map(rule_from_row).collect::<ApiResult<_>>()?,
    };
    Ok((input, groups_of))
}

/// Every (group id, user id) membership: the listed ones, and for each
/// dynamic group (one with conditions) every user whose attributes meet
/// all its conditions. This is how rules, snapshots, the `rule test`
/// what-if and the portal see groups, so a rule naming a dynamic group
/// applies to a user as soon as its attributes match.
pub fn memberships(groups: &[GroupRow], users: &[UserRow], listed: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::new();
    for pair in listed {
        if seen.insert(pair.clone()) {
            out.push(pair);
        }
    }
    for g in groups.iter().filter(|g| !g.conditions.is_empty()) {
        // Fail closed: a stored condition that no longer parses (changed
        // behind Ward's back) makes the group match nobody.
        let Ok(conditions) = attrs::parse_conditions(&g.conditions) else {
            tracing::error!(group = %g.id, "stored group conditions are invalid; the group matches nobody");
            continue;
        };
        for u in users.iter().filter(|u| attrs::matches_all(&conditions, &u.attributes)) {
            let pair = (g.id.clone(), u.id.clone());
            if seen.insert(pair.clone()) {
                out.push(pair);
            }
        }
    }
    out
}

/// Parse a stored application. Rows were validated on the way in, so a
/// failure here means the row was changed behind Ward's back.
pub fn app_from_row(a: &AppRow) -> ApiResult<Application> {
    let corrupt = |what: String| {
        tracing::error!(app = %a.id, "stored application is invalid: {what}");
        ApiError::internal()
    };
    Ok(Application {
        id: a.id.clone(),
        name: a.name.clone(),
        addresses: a
            .addresses
            .iter()
            .map(|s| s.parse::<Address>())
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?,
        ports: a
            .ports
            .iter()
            .map(|s| s.parse::<PortRange>())
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?,
        protocol: a.protocol.parse::<Protocol>().map_err(|e| corrupt(e.to_string()))?,
        tags: a.tags.clone(),
    })
}

pub fn rule_from_row(r: &RuleRow) -> ApiResult<Rule> {
    let corrupt = |what: &str| {
        tracing::error!(rule = %r.id, "stored rule is invalid: {what}");
        ApiError::internal()
    };
    Ok(Rule {
        id: r.id.clone(),
        priority: u32::try_from(r.priority).map_err(|_| corrupt("priority"))?,
        action: parse_action(&r.action).ok_or_else(|| corrupt("action"))?,
        target: if r.tags.is_empty() {
            RuleTarget::Apps(r.app_ids.clone())
        } else {
            RuleTarget::Tags(r.tags.clone())
        },
        users: r.user_ids.clone(),
        groups: r.group_ids.clone(),
        require_compliant_device: r.require_compliant,
        posture: parse_posture(&r.posture).ok_or_else(|| corrupt("posture"))?,
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        sources: r
            .sources
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("sources"))?,
        enabled: r.enabled,
    })
}

pub fn parse_action(s: &str) -> Option<Action> {
    match s {
        "allow" => Some(Action::Allow),
        "block" => Some(Action::Block),
        _ => None,
    }
}

pub fn parse_posture(s: &str) -> Option<PostureMode> {
    match s {
        "enforce" => Some(PostureMode::Enforce),
        "observe" => Some(PostureMode::Observe),
        _ => None,
    }
}
