//! Passwords, hashed with argon2id (OWASP's parameters: 19 MiB, 2 passes).
//!
//! Hashing costs tens of milliseconds of CPU, so it runs on the blocking pool,
//! never on the async workers that serve other requests.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

pub const MIN_LEN: usize = 10;
/// Longer inputs are refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_LEN: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuse passwords that are too short or too long.
pub fn check_policy(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_LEN {
        return Err(ApiError::invalid(format!(
            "a password needs at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(ApiError::invalid(format!("a password is at most {MAX_LEN} bytes")));
    }
    Ok(())
}

/// Hash a password (PHC string, argon2id).
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|_| ApiError::internal())?
}

pub fn hash_now(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ApiError::internal()
        })
}

/// Check a password against a stored hash. `None` checks against a dummy
/// hash, so an unknown account takes as long to refuse as a known one.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = match &stored {
            Some(s) => s.as_str(),
            None => dummy_hash(),
        };
        let ok = PasswordHash::new(stored)
            .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        ok && stored != dummy_hash()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now("ward-dummy-password-for-timing").unwrap_or_default())
}

/// A random password for bootstrap accounts: 20 characters, about 116 bits.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(h)).await);
        assert!(!verify("ward-dummy-password-for-timing".into(), None).await);
        assert!(!verify("x".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(2000)).is_err());
        assert!(check_policy("long enough pw").is_ok());
        assert_eq!(generate().len(), 20);
        assert_ne!(generate(), generate());
    }
}
