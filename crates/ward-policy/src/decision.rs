//! What a decision says, and the longer account the what-if command shows.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Action;

/// Whether the connection may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A rule matched and its action decided.
    RuleMatched,
    /// No application serves this host, port and protocol.
    NoApplication,
    /// Applications serve the destination but no rule about them matched:
    /// a new application is denied until a rule allows it.
    NoRuleMatched,
}

/// The rule that made a decision. The id is shared with the compiled policy,
/// so naming it costs a reference-count increment, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleRef {
    #[schema(value_type = String)]
    pub id: Arc<str>,
    pub priority: u32,
}

/// The answer to "may this request go through, and which rule said so".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    pub action: Verdict,
    /// The rule that decided; `None` when no rule did (default deny).
    pub rule: Option<RuleRef>,
    pub reason: Reason,
    /// The deciding rule requires a compliant device in observe mode and the
    /// device was not compliant (or unknown): allowed, but worth recording.
    pub observed_noncompliant: bool,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.action == Verdict::Allow
    }

    pub(crate) fn default_deny(reason: Reason) -> Decision {
        Decision {
            action: Verdict::Deny,
            rule: None,
            reason,
            observed_noncompliant: false,
        }
    }

    pub(crate) fn by_rule(action: Action, rule: RuleRef, observed_noncompliant: bool) -> Decision {
        let action = match action {
            Action::Allow => Verdict::Allow,
            Action::Block => Verdict::Deny,
        };
        Decision {
            action,
            rule: Some(rule),
            reason: Reason::RuleMatched,
            observed_noncompliant,
        }
    }
}

/// One condition of a rule that a request did not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mismatch {
    /// The rule is disabled.
    Disabled,
    /// `now` is before `valid_from` or at/after `valid_until`.
    OutsideValidity,
    /// The source address is in none of the rule's source networks.
    SourceNotAllowed,
    /// The user is not listed and none of the user's groups is.
    PrincipalNotMatched,
    /// The rule enforces a compliant device and the device is not compliant (or unknown).
    DeviceNotCompliant,
    /// The request is clientless (no agent) and the rule does not admit agentless access.
    NotAgentless,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Disabled => "the rule is disabled",
            Mismatch::OutsideValidity => "outside the rule's validity window",
            Mismatch::SourceNotAllowed => "the source address is not in the rule's source networks",
            Mismatch::PrincipalNotMatched => "neither the user nor any of the user's groups is named by the rule",
            Mismatch::DeviceNotCompliant => "the rule requires a compliant device",
            Mismatch::NotAgentless => {
                "the request comes without the agent and the rule does not admit agentless access"
            }
        })
    }
}

/// An application whose addresses cover the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppMatch {
    pub id: String,
    pub name: String,
    /// The first of the application's addresses that covers the destination.
    pub matched_address: String,
    /// Whether the application serves the requested port and protocol; only
    /// applications that do make their rules candidates.
    pub serves_port: bool,
}

/// How one candidate rule fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleEvaluation {
    pub id: String,
    pub priority: u32,
    pub action: Action,
    /// The candidate applications this rule is about (by id, or by tag).
    pub apps: Vec<String>,
    /// Every condition held.
    pub matched: bool,
    /// This is the first rule that matched, the one that decided.
    pub decided: bool,
    /// The conditions that did not hold (empty when `matched`).
    pub mismatches: Vec<Mismatch>,
    /// Matched only because its device requirement is in observe mode.
    pub observed_noncompliant: bool,
}

/// The decision plus the reasoning behind it, for the `rule test` what-if
/// command and the API that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Explanation {
    pub decision: Decision,
    /// False when the host was a domain that is not a valid host name: such
    /// a destination matches no application.
    pub host_valid: bool,
    /// Applications whose addresses cover the destination.
    pub applications: Vec<AppMatch>,
    /// Every rule about an application that serves the destination, in
    /// priority order, including those after the deciding rule.
    pub rules: Vec<RuleEvaluation>,
}
