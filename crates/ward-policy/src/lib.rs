//! Ward's private-access policy: "would user U on device D reach host:port
//! now, and which rule decided".
//!
//! Administrators define [`Application`]s (addresses: IP, CIDR, domain,
//! wildcard domain; port ranges; protocol; tags) and priority-ordered
//! [`Rule`]s (allow or block; applications by id or tag; users and groups; a
//! device-compliance requirement, enforced or only observed; a validity
//! window; source networks). [`CompiledPolicy::compile`] turns a
//! [`PolicyInput`] into an immutable snapshot, and
//! [`CompiledPolicy::decide`] answers a [`Request`] with a [`Decision`]:
//!
//! 1. find the applications whose addresses cover the destination and that
//!    serve its port and protocol; none: deny, [`Reason::NoApplication`];
//! 2. walk the rules about those applications in priority order (1 first,
//!    ties by id); the first rule whose conditions all hold decides, and the
//!    decision names it;
//! 3. no rule matched: deny, [`Reason::NoRuleMatched`] (a new application is
//!    denied until a rule allows it).
//!
//! [`CompiledPolicy::explain`] gives the same decision plus, for each
//! candidate rule, whether it matched and why not: the `rule test` what-if.
//!
//! ```
//! use ward_policy::*;
//!
//! let input: PolicyInput = serde_json::from_str(r#"{
//!   "apps":  [{ "id": "db", "name": "Database", "addresses": ["db.corp.example"], "ports": ["5432"] }],
//!   "rules": [{ "id": "dba", "priority": 10, "action": "allow", "target": { "apps": ["db"] }, "groups": ["dba"] }]
//! }"#).unwrap();
//! let policy = CompiledPolicy::compile(input);
//! let groups = vec!["dba".to_string()];
//! let request = Request {
//!     user_id: "alice", groups: &groups, device: Some(DeviceState { compliant: true }),
//!     source: "192.0.2.7".parse().unwrap(), host: Host::Domain("db.corp.example"), resolved: None,
//!     port: 5432, protocol: Protocol::Tcp, now: 1_800_000_000_000, agentless: false,
//! };
//! let decision = policy.decide(&request);
//! assert!(decision.is_allowed());
//! assert_eq!(decision.rule.unwrap().id.as_ref(), "dba");
//! ```
//!
//! **Architecture invariant:** this crate does no I/O and reads no clock and
//! no randomness; the caller passes `now`. A decision depends only on
//! (snapshot, request), so the same pair always gives the same answer, and a
//! gateway can re-check live connections against a new snapshot.
//!
//! **Architecture invariant:** the cost of a decision does not grow with the
//! number of rules that cannot apply. Rules are indexed by application:
//! finding applications is hash lookups (names; one per parent suffix for
//! wildcards; one per distinct CIDR prefix length for addresses), and only
//! the rules naming a found application (directly or by tag) are evaluated.
//! A property test holds the index to a naive scan of every rule.

mod address;
mod compiled;
mod decision;
mod index;
mod model;
mod port;
mod request;

pub use address::{Address, AddressError, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use compiled::CompiledPolicy;
pub use decision::{AppMatch, Decision, Explanation, Mismatch, Reason, RuleEvaluation, RuleRef, Verdict};
pub use ipnet::IpNet;
pub use model::{Action, Application, PolicyInput, PostureMode, Rule, RuleTarget};
pub use port::{PortError, PortRange, Protocol, UnknownProtocol};
pub use request::{DeviceState, Host, Request};

/// The OpenAPI schemas of [`Address`] and [`PortRange`]: their text form.
mod schema {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    fn text(description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .into()
    }

    impl utoipa::PartialSchema for crate::Address {
        fn schema() -> RefOr<Schema> {
            text("An IP (10.0.0.5, ::1), a CIDR block (10.0.0.0/24), a domain (db.corp.example) or a wildcard domain (*.corp.example).")
        }
    }
    impl utoipa::ToSchema for crate::Address {}

    impl utoipa::PartialSchema for crate::PortRange {
        fn schema() -> RefOr<Schema> {
            text("A port (443) or an inclusive port range (8000-8100).")
        }
    }
    impl utoipa::ToSchema for crate::PortRange {}
}
