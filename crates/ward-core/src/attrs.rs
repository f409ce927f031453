//! End users' attributes and the conditions of dynamic groups.
//!
//! A user has attributes: a map from a key (`department`, `email`, ...) to
//! one text value. A group may have conditions, `key=value` each; a user is
//! a member of such a group when every condition holds (AND). A condition
//! compares the user's attribute exactly, except `email_domain`, which is
//! the part of the `email` attribute after its last `@`, compared without
//! regard to ASCII case. A user without the attribute never matches.
//!
//! Pure functions only: the server evaluates them when it builds the
//! policy input of a tenant.

use std::collections::BTreeMap;
use std::fmt;

/// The attribute derived from `email`.
pub const EMAIL_DOMAIN: &str = "email_domain";
/// The attribute holding a user's email address.
pub const EMAIL: &str = "email";

/// The longest attribute value accepted.
pub const MAX_VALUE_LEN: usize = 256;
/// The most attributes one user may have.
pub const MAX_ATTRIBUTES: usize = 32;
/// The most conditions one group may have.
pub const MAX_CONDITIONS: usize = 16;

/// A user's attributes.
pub type Attributes = BTreeMap<String, String>;

/// Why an attribute or a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AttrError(pub String);

/// Checks an attribute key: 1 to 64 of `a-z`, `0-9`, `_` and `-`,
/// starting with a letter.
pub fn check_key(key: &str) -> Result<(), AttrError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(AttrError(format!(
            "attribute {key:?}: a key is 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter"
        )))
    }
}

/// Checks an attribute value: 1 to 256 bytes without control characters.
pub fn check_value(key: &str, value: &str) -> Result<(), AttrError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
        return Err(AttrError(format!(
            "attribute {key}: a value is 1 to {MAX_VALUE_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks a whole attribute map. `email_domain` cannot be set: it follows
/// from `email`.
pub fn check_attributes(attrs: &Attributes) -> Result<(), AttrError> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(AttrError(format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for (k, v) in attrs {
        check_key(k)?;
        if k == EMAIL_DOMAIN {
            return Err(AttrError(
                "email_domain cannot be set: it is the domain of the email attribute".into(),
            ));
        }
        check_value(k, v)?;
    }
    Ok(())
}

/// The value of `key` for a user: its attribute, or for `email_domain` the
/// domain of its `email`, lower-cased.
pub fn value_of(attrs: &Attributes, key: &str) -> Option<String> {
    if key == EMAIL_DOMAIN {
        let email = attrs.get(EMAIL)?;
        let (_, domain) = email.rsplit_once('@')?;
        return (!domain.is_empty()).then(|| domain.to_ascii_lowercase());
    }
    attrs.get(key).cloned()
}

/// One condition of a dynamic group: `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Condition {
    pub key: String,
    pub value: String,
}

impl Condition {
    /// Parses `key=value` (spaces around either side are trimmed).
    pub fn parse(text: &str) -> Result<Self, AttrError> {
        let Some((k, v)) = text.split_once('=') else {
            return Err(AttrError(format!("condition {text:?}: expected key=value")));
        };
        let (key, value) = (k.trim(), v.trim());
        check_key(key)?;
        check_value(key, value)?;
        let value = if key == EMAIL_DOMAIN {
            value.to_ascii_lowercase()
        } else {
            value.to_owned()
        };
        Ok(Condition {
            key: key.to_owned(),
            value,
        })
    }

    /// Whether a user with these attributes meets the condition.
    pub fn holds(&self, attrs: &Attributes) -> bool {
        match value_of(attrs, &self.key) {
            Some(v) if self.key == EMAIL_DOMAIN => v.eq_ignore_ascii_case(&self.value),
            Some(v) => v == self.value,
            None => false,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Parses a group's conditions (at most [`MAX_CONDITIONS`]), sorted and
/// without duplicates.
pub fn parse_conditions<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Condition>, AttrError> {
    if texts.len() > MAX_CONDITIONS {
        return Err(AttrError(format!("at most {MAX_CONDITIONS} conditions")));
    }
    let mut out = texts
        .iter()
        .map(|t| Condition::parse(t.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether a user meets every condition. No conditions: never (a group
/// without conditions is a static group, whose members are listed).
pub fn matches_all(conditions: &[Condition], attrs: &Attributes) -> bool {
    !conditions.is_empty() && conditions.iter().all(|c| c.holds(attrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn conditions_and_together() {
        let c = parse_conditions(&["department=Engineering", "email_domain=Corp.Example"]).unwrap();
        assert!(matches_all(
            &c,
            &attrs(&[("department", "Engineering"), ("email", "a@CORP.example")])
        ));
        assert!(!matches_all(
            &c,
            &attrs(&[("department", "engineering"), ("email", "a@corp.example")])
        ));
        assert!(!matches_all(&c, &attrs(&[("department", "Engineering")])));
        assert!(!matches_all(&[], &attrs(&[("department", "Engineering")])));
    }

    #[test]
    fn email_domain_is_after_the_last_at() {
        let a = attrs(&[("email", "x@evil.example@corp.example")]);
        assert_eq!(value_of(&a, EMAIL_DOMAIN).as_deref(), Some("corp.example"));
        let c = Condition::parse("email_domain=corp.example").unwrap();
        assert!(!c.holds(&attrs(&[("email", "x@corp.example.evil")])));
        assert!(!c.holds(&attrs(&[("email", "corp.example")])));
    }

    #[test]
    fn bad_conditions_refused() {
        for bad in ["department", "=x", "Dept=x", "department=", "a=b\nc", "1a=b"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
        assert!(check_attributes(&attrs(&[("email_domain", "x")])).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in ".{0,80}") {
            if let Ok(c) = Condition::parse(&s) {
                let again = Condition::parse(&c.to_string()).unwrap();
                prop_assert_eq!(again, c);
            }
        }

        #[test]
        fn a_user_holding_the_exact_value_matches(key in "[a-z][a-z0-9_]{0,10}", value in "[A-Za-z0-9 .@-]{1,20}") {
            prop_assume!(key != EMAIL_DOMAIN && !value.trim().is_empty());
            let c = Condition::parse(&format!("{key}={value}")).unwrap();
            prop_assert!(c.holds(&attrs(&[(&key, value.trim())])));
            let other = format!("{}x", value.trim());
            prop_assert!(!c.holds(&attrs(&[(&key, &other)])));
        }
    }
}
