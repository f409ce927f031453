//! What administrators write: applications and priority-ordered rules.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::port::{PortRange, Protocol};

/// A private application: where it lives, on which ports, and the tags rules
/// can name it by.
///
/// An application with no port ranges matches no port (write `1-65535` for
/// every port): nothing is reachable by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub addresses: Vec<Address>,
    pub ports: Vec<PortRange>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Application {
    /// Whether the application serves this port over this protocol.
    pub fn covers(&self, port: u16, protocol: Protocol) -> bool {
        self.protocol == protocol && self.ports.iter().any(|r| r.contains(port))
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Block,
}

/// Which applications a rule is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleTarget {
    /// Applications by id.
    Apps(Vec<String>),
    /// Every application carrying any of these tags.
    Tags(Vec<String>),
}

/// How a rule's device-compliance requirement is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostureMode {
    /// A non-compliant (or unknown) device does not match the rule.
    #[default]
    Enforce,
    /// The rule matches whatever the device's state, and the decision
    /// records that the device was non-compliant (to roll a requirement out
    /// safely before enforcing it).
    Observe,
}

/// One priority-ordered rule.
///
/// It applies to a request when all of these hold: it is enabled; `now` is in
/// `[valid_from, valid_until)`; the principal matches (no users and no groups
/// listed means everyone; otherwise the user is listed or one of the user's
/// groups is); the source address is in one of `sources` (empty means any);
/// when `require_compliant_device` is set in [`PostureMode::Enforce`],
/// the device is known and compliant; and, for a clientless request (one
/// without the agent, [`Request::agentless`](crate::Request::agentless)),
/// the rule admits agentless access. A clientless request has no device, so
/// a rule enforcing device compliance never admits one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub id: String,
    /// 1 is the highest priority. Ties are broken by `id`.
    pub priority: u32,
    pub action: Action,
    pub target: RuleTarget,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub require_compliant_device: bool,
    #[serde(default)]
    pub posture: PostureMode,
    /// Milliseconds since the epoch; the rule applies from this instant on.
    #[serde(default)]
    pub valid_from: Option<i64>,
    /// Milliseconds since the epoch; the rule no longer applies from this instant on.
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// Source networks (`192.0.2.0/24`); empty means any source.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub sources: Vec<IpNet>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Whether the rule also applies to clientless requests (a browser
    /// through the gateway's HTTPS listener, with no agent). False: the rule
    /// never matches one.
    #[serde(default)]
    pub agentless: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Everything a tenant's policy is made of, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyInput {
    #[serde(default)]
    pub apps: Vec<Application>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}
