//! Ward's domain types, at the bottom of the house.
//!
//! Tenants, accounts, roles, the permissions a role carries, and the one
//! authorisation rule every API call goes through ([`authz::authorize`]).
//!
//! **Architecture invariant:** this crate does no I/O (no sockets, files,
//! clocks or randomness). Everything here is a pure function of its inputs, so
//! it can be property-tested and used by every other crate.

pub mod attrs;
pub mod authz;
pub mod error;
pub mod html;
pub mod name;
pub mod net;
pub mod posture;
pub mod role;
pub mod tenant;
pub mod time;

pub use authz::{authorize, Actor, Denial, Target};
pub use error::ErrorCode;
pub use name::{Name, NameError};
pub use posture::{Posture, PostureRequirements};
pub use role::{Permission, PermissionSet, Role};
pub use tenant::{TenantState, SYSTEM_TENANT};
