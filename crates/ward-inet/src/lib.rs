//! Ward's internet access policy: "may user U reach this website now, and
//! which rule decided". The pure engine only: no I/O, no clock, no sockets,
//! no store; the gateway, the DNS filter and the server build on it.
//!
//! - [`name`]: host names normalised the way a browser resolves them
//!   (lowercase, no trailing dot, UTS-46 to punycode A-labels, WHATWG IPv4
//!   forms), so that a Unicode lookalike and its punycode are one key.
//! - [`list`]: [`DomainList`]s, exact (`ads.example`) and wildcard
//!   (`*.ads.example`: strictly below, not the name itself) entries, and
//!   [`parse_list`] for hosts, adblock and plain files with an
//!   [`ImportReport`] of what was accepted, ignored and refused, by line.
//! - [`DomainSet`]: lists compiled into one arena and a hash table of
//!   offsets; a look-up hashes the name and each parent suffix (one per
//!   label), never scans, and a million names take about 35 bytes each.
//! - [`InternetRule`]s and [`CompiledInternetPolicy`]: rules run in three
//!   stages, each in priority order (1 first, ties by id): the global
//!   allow-list ([`Stage::GlobalAllow`], rules marked `global_allow`) ends
//!   evaluation, then block and warn rules ([`Stage::Block`]), then allow and
//!   monitor rules ([`Stage::Allow`]); nothing matched: the tenant's
//!   `default_action`, allow unless the tenant says otherwise.
//!   [`CompiledInternetPolicy::explain`] gives the same decision with every
//!   rule and why it did or did not match.
//!
//! ```
//! use ward_inet::*;
//!
//! let ads = parse_list(b"0.0.0.0 ads.example\n0.0.0.0 tracker.example\n", None);
//! assert_eq!(ads.report.format, ListFormat::Hosts);
//! let input = InternetPolicyInput {
//!     default_action: InternetAction::Allow,
//!     lists: vec![NamedDomainList { id: "ads".into(), domains: ads.list }],
//!     rules: vec![InternetRule {
//!         id: "block-ads".into(), priority: 10, action: InternetAction::Block, global_allow: false,
//!         users: vec![], groups: vec![], lists: vec!["ads".into()], inspect: false,
//!         valid_from: None, valid_until: None, enabled: true,
//!     }],
//! };
//! let policy = CompiledInternetPolicy::compile(input);
//! let host = Host::parse("ADS.example.").unwrap();
//! let request = InternetRequest { user_id: "alice", groups: &[], host: &host, port: 443, now: 0 };
//! let decision = policy.decide(&request);
//! assert_eq!(decision.action, InternetAction::Block);
//! assert_eq!(decision.rule.unwrap().id.as_ref(), "block-ads");
//! ```
//!
//! **Architecture invariant:** no I/O, no clock and no randomness; the caller
//! passes `now`. A decision depends only on (compiled policy, request).
//!
//! **Architecture invariant:** the cost of a decision does not grow with the
//! size of the lists: one hash look-up per label of the destination, then
//! only the rules naming a list that matched (and the rules naming no list)
//! are evaluated. A property test holds the index to a naive scan of every
//! rule and every list entry.

pub mod list;
pub mod name;

mod compiled;
mod decision;
mod model;
mod set;

pub use compiled::{CompiledInternetPolicy, InternetRequest};
pub use decision::{InternetDecision, InternetExplanation, ListHit, Mismatch, Reason, RuleEvaluation, RuleRef};
pub use list::{parse_list, DomainList, Entry, EntryKind, ImportReport, LineIssue, ListFormat, ParsedList};
pub use model::{InternetAction, InternetPolicyInput, InternetRule, NamedDomainList, Stage};
pub use name::{DomainName, Host, NameError};
pub use set::{DomainSet, ListMatch};
