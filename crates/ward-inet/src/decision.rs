//! What [`crate::CompiledInternetPolicy::decide`] answers, and what
//! `explain` adds for a what-if.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{InternetAction, Stage};

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: Arc<str>,
    pub priority: u32,
}

/// Why the decision is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A rule matched; the decision names it.
    RuleMatched,
    /// No rule matched: the tenant's default action.
    NoRuleMatched,
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetDecision {
    pub action: InternetAction,
    pub rule: Option<RuleRef>,
    pub stage: Stage,
    pub reason: Reason,
    /// The list (by id) through which the deciding rule matched, if it names lists.
    pub list: Option<Arc<str>>,
    /// The deciding rule asks for TLS inspection.
    pub inspect: bool,
}

impl InternetDecision {
    /// Whether traffic goes through without the user doing anything.
    pub fn lets_through(&self) -> bool {
        self.action.lets_through()
    }
}

/// Why a rule did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mismatch {
    Disabled,
    OutsideValidity,
    /// Neither the user nor any of the user's groups is named.
    Principal,
    /// The destination is in none of the rule's lists.
    Destination,
}

/// One rule, as `explain` saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvaluation {
    pub id: String,
    pub priority: u32,
    pub stage: Stage,
    pub action: InternetAction,
    /// `None`: the rule matches the request (the first such rule decides).
    pub mismatch: Option<Mismatch>,
    /// The list through which the destination matched, if any.
    pub list: Option<String>,
}

/// An entry of a list that the destination matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    pub list: String,
    /// As written in the list's canonical form: `name` or `*.suffix`.
    pub entry: String,
}

/// The decision, every rule in evaluation order with why it did or did not
/// match, and every list entry the destination matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetExplanation {
    pub decision: InternetDecision,
    pub rules: Vec<RuleEvaluation>,
    pub lists: Vec<ListHit>,
}
