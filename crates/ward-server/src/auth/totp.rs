//! Time-based one-time passwords (RFC 6238) and recovery codes: the second
//! factor of administrator accounts, kept free of accounts and the store so
//! end users can use it too.
//!
//! A code is six digits of HMAC-SHA-1 over the 30-second time step since the
//! Unix epoch; the step before and the step after the current one are
//! accepted too, for clocks that drift. [`verify`] answers the time step a
//! code belongs to: the caller remembers the last step it accepted and
//! accepts only later ones, so a code works once.
//!
//! A secret is 20 random bytes (160 bits, RFC 4226's recommendation); it is
//! shown once, base32, in an `otpauth://` URI and as a QR code, and stored
//! only sealed. A recovery code is 12 random base32 characters written
//! `xxxx-xxxx-xxxx` (60 bits), stored only as its SHA-256 hash; it is read
//! without regard to case, spaces or dashes.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::{Rng, RngCore};
use totp_rs::{Algorithm, TOTP};

use super::token;
use crate::error::ApiError;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of a time step.
pub const STEP_SECS: u64 = 30;
/// Bytes of a secret.
pub const SECRET_LEN: usize = 20;
/// How many recovery codes an enrolment gives.
pub const RECOVERY_CODES: usize = 10;
/// The issuer named in the `otpauth://` URI; authenticator apps show it.
pub const ISSUER: &str = "Ward";

/// RFC 4648's base32 alphabet, in lower case, for recovery codes.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const RECOVERY_GROUPS: usize = 3;
const RECOVERY_GROUP_LEN: usize = 4;

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn generator(secret: &[u8]) -> Result<TOTP, ApiError> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECS, secret.to_vec()).map_err(|e| {
        tracing::error!(error = %e, "a TOTP secret is not usable");
        ApiError::internal()
    })
}

/// The secret as authenticator apps take it: base32, upper case, no padding.
pub fn base32(secret: &[u8]) -> Result<String, ApiError> {
    Ok(generator(secret)?.get_secret_base32())
}

/// The `otpauth://` URI of a secret for `account` of `tenant` (both [`ward_core::Name`]s,
/// so nothing in them needs escaping).
pub fn otpauth_uri(secret: &[u8], account: &str, tenant: &str) -> Result<String, ApiError> {
    Ok(format!(
        "otpauth://totp/{ISSUER}:{account}@{tenant}?secret={}&issuer={ISSUER}",
        base32(secret)?
    ))
}

/// `text` (an `otpauth://` URI) as a QR code, an SVG document.
pub fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| {
        tracing::error!(error = %e, "cannot draw a QR code");
        ApiError::internal()
    })?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The time step of `unix_secs`.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The code of time step `step`.
pub fn code_at(secret: &[u8], step: u64) -> Result<String, ApiError> {
    Ok(generator(secret)?.generate(step.saturating_mul(STEP_SECS)))
}

/// True when `code` has the shape of a TOTP code (six digits; spaces are ignored).
pub fn is_totp_code(code: &str) -> bool {
    let digits: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == DIGITS && digits.iter().all(char::is_ascii_digit)
}

/// The time step `code` belongs to, if it is the code of the step of
/// `unix_secs` or of the one before or after. Each candidate is compared in
/// constant time.
pub fn verify(secret: &[u8], code: &str, unix_secs: u64) -> Result<Option<u64>, ApiError> {
    if !is_totp_code(code) {
        return Ok(None);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = generator(secret)?;
    let now = step_of(unix_secs);
    let mut found = None;
    // Every candidate is compared, the current step's first, so the time taken tells nothing.
    for step in [now, now.saturating_sub(1), now + 1] {
        let expected = totp.generate(step.saturating_mul(STEP_SECS));
        if token::hashes_equal(&expected, &code) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// New recovery codes, `xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            (0..RECOVERY_GROUPS)
                .map(|_| {
                    (0..RECOVERY_GROUP_LEN)
                        .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The hash a recovery code is stored as, or None when `code` cannot be one.
pub fn recovery_hash(code: &str) -> Option<String> {
    let clean: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok =
        clean.len() == RECOVERY_GROUPS * RECOVERY_GROUP_LEN && clean.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    ok.then(|| token::hash(&clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 test vectors (8 digits there; the last six here).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, step_of(time)).unwrap(), &eight[2..], "at {time}");
        }
    }

    #[test]
    fn one_step_either_way_and_no_further() {
        let secret = new_secret();
        assert_eq!(secret.len(), SECRET_LEN);
        let now = 1_800_000_000u64;
        let step = step_of(now);
        for s in [step - 1, step, step + 1] {
            let code = code_at(&secret, s).unwrap();
            assert_eq!(verify(&secret, &code, now).unwrap(), Some(s));
        }
        for s in [step - 2, step + 2] {
            let code = code_at(&secret, s).unwrap();
            // Another step's code matches only by a one-in-a-million chance.
            if [step - 1, step, step + 1]
                .iter()
                .all(|n| code_at(&secret, *n).unwrap() != code)
            {
                assert_eq!(verify(&secret, &code, now).unwrap(), None);
            }
        }
        let spaced = code_at(&secret, step).unwrap();
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(verify(&secret, &spaced, now).unwrap(), Some(step));
        assert_eq!(verify(&secret, "12345", now).unwrap(), None);
        assert_eq!(verify(&secret, "abcdef", now).unwrap(), None);
    }

    #[test]
    fn uri_and_qr_code() {
        let secret = b"12345678901234567890";
        assert_eq!(base32(secret).unwrap(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            otpauth_uri(secret, "admin", "acme").unwrap(),
            "otpauth://totp/Ward:admin@acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Ward"
        );
        let svg = qr_svg("otpauth://totp/Ward:admin@acme?secret=X&issuer=Ward").unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.ends_with("</svg>"),
            "{svg}"
        );
        assert!(base32(b"short").is_err(), "a secret under 128 bits is refused");
    }

    #[test]
    fn recovery_codes_are_random_and_read_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for c in &codes {
            assert_eq!(c.len(), 14, "{c}");
            assert_eq!(c.matches('-').count(), 2, "{c}");
            let h = recovery_hash(c).unwrap();
            assert_eq!(recovery_hash(&c.to_ascii_uppercase()), Some(h.clone()));
            assert_eq!(recovery_hash(&c.replace('-', " ")), Some(h));
            assert!(!is_totp_code(c));
        }
        assert_eq!(recovery_hash("123456"), None);
        assert_eq!(recovery_hash("abcd-efgh-ijk1"), None, "1 is not base32");
    }
}
