//! Who is calling: passwords, session tokens, API keys, sign-in limits, and
//! the second factor (TOTP and recovery codes); and end users' sign-in with
//! a password, for the user portal.

pub mod ldap;
pub mod lockout;
pub mod login;
pub mod mfa;
pub mod oidc;
pub mod password;
pub mod principal;
pub mod token;
pub mod totp;
pub mod user_login;

pub use principal::{AuthFailure, Credential, Principal, Refusal};
