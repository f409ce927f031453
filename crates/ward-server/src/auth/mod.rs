//! Who is calling: passwords, session tokens, API keys, and sign-in limits.

pub mod login;
pub mod password;
pub mod principal;
pub mod token;

pub use principal::{AuthFailure, Credential, Principal, Refusal};
