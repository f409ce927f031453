//! Who is calling: passwords, session tokens, API keys, sign-in limits, and
//! the second factor (TOTP and recovery codes).

pub mod login;
pub mod mfa;
pub mod password;
pub mod principal;
pub mod token;
pub mod totp;

pub use principal::{AuthFailure, Credential, Principal, Refusal};
