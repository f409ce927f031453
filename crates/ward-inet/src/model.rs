//! What administrators write: internet rules, the domain lists they name,
//! and the tenant's default.

use serde::{Deserialize, Serialize};

use crate::list::DomainList;

/// What an internet rule (or the tenant's default) does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InternetAction {
    /// Let it through.
    #[default]
    Allow,
    /// Refuse it.
    Block,
    /// Refuse it with a warning page the user can click through (the click is
    /// recorded, and the gateway then lets the request through).
    Warn,
    /// Let it through and mark its record, to watch a rule before enforcing it.
    Monitor,
}

impl InternetAction {
    /// Whether traffic goes through without the user doing anything.
    pub fn lets_through(self) -> bool {
        matches!(self, InternetAction::Allow | InternetAction::Monitor)
    }
}

/// The evaluation stage a rule belongs to. Stages run in this order, and the
/// first rule that matches in the first stage that has one decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Rules marked `global_allow` with action allow or monitor: exemptions
    /// that end evaluation before any block rule is looked at.
    GlobalAllow,
    /// Rules with action block or warn.
    Block,
    /// Rules with action allow or monitor.
    Allow,
    /// No rule matched: the tenant's default action.
    Default,
}

/// One internet rule.
///
/// It matches a request when all of these hold: it is enabled; `now` is in
/// `[valid_from, valid_until)`; the principal matches (no users and no groups
/// means everyone; otherwise the user is listed or one of the user's groups
/// is); and the destination is in one of `lists` (no lists means every
/// destination, IP addresses included; a rule naming only lists that do not
/// exist matches nothing). An IP destination is in no list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetRule {
    pub id: String,
    /// 1 is the highest priority within a stage. Ties are broken by `id`.
    pub priority: u32,
    pub action: InternetAction,
    /// Put the rule in the global allow-list stage. Only meaningful with
    /// action allow or monitor; on a block or warn rule it is ignored (the
    /// rule stays a block rule: never an accidental exemption), and
    /// [`InternetRule::problems`] reports it.
    #[serde(default)]
    pub global_allow: bool,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Domain lists by id.
    #[serde(default)]
    pub lists: Vec<String>,
    /// Inspect this rule's TLS traffic (when the tenant has inspection on);
    /// carried in the decision, acted on by the gateway.
    #[serde(default)]
    pub inspect: bool,
    /// Milliseconds since the epoch; the rule applies from this instant on.
    #[serde(default)]
    pub valid_from: Option<i64>,
    /// Milliseconds since the epoch; the rule no longer applies from this instant on.
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl InternetRule {
    /// The stage the rule is evaluated in.
    pub fn stage(&self) -> Stage {
        match (self.global_allow, self.action) {
            (true, InternetAction::Allow | InternetAction::Monitor) => Stage::GlobalAllow,
            (_, InternetAction::Block | InternetAction::Warn) => Stage::Block,
            (false, InternetAction::Allow | InternetAction::Monitor) => Stage::Allow,
        }
    }

    /// What an API should refuse before storing the rule (compiling never
    /// fails; these only make a rule mean something other than it seems).
    pub fn problems(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.global_allow && !self.action.lets_through() {
            out.push("a global allow-list rule must have action allow or monitor");
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until) {
            if from >= until {
                out.push("valid_from must be before valid_until");
            }
        }
        out
    }
}

/// A domain list as a policy carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDomainList {
    pub id: String,
    pub domains: DomainList,
}

/// Everything a tenant's internet policy is made of, as a snapshot carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetPolicyInput {
    /// What happens when no rule matches; allow unless the tenant says otherwise.
    #[serde(default)]
    pub default_action: InternetAction,
    #[serde(default)]
    pub rules: Vec<InternetRule>,
    /// Several lists with the same id act as one list.
    #[serde(default)]
    pub lists: Vec<NamedDomainList>,
}
