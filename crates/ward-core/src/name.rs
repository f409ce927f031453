//! Names of tenants, accounts, API keys and regions.
//!
//! Names appear in URLs, CLI arguments, logs and HTML, so they are kept to a
//! small safe alphabet: 1 to 64 characters, lowercase ASCII letters, digits,
//! `-`, `_` and `.`, starting with a letter or digit.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name is at most 64 characters")]
    TooLong,
    #[error("a name must start with a lowercase letter or a digit")]
    BadStart,
    #[error("a name may contain only lowercase letters, digits, '-', '_' and '.' (found {0:?})")]
    BadChar(char),
}

/// A validated name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Name, NameError> {
        let first = s.chars().next().ok_or(NameError::Empty)?;
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong);
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(NameError::BadStart);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
        {
            return Err(NameError::BadChar(c));
        }
        Ok(Name(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(Name::parse("default").is_ok());
        assert!(Name::parse("acme-corp.eu_1").is_ok());
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("-x"), Err(NameError::BadStart));
        assert_eq!(Name::parse("Acme"), Err(NameError::BadStart));
        assert_eq!(Name::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(Name::parse("a<script>"), Err(NameError::BadChar('<')));
        assert_eq!(Name::parse(&"a".repeat(65)), Err(NameError::TooLong));
    }

    proptest! {
        #[test]
        fn any_accepted_name_is_safe(s in "\\PC{0,80}") {
            if let Ok(n) = Name::parse(&s) {
                prop_assert!(n.as_str().len() <= 64);
                prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)));
            }
        }
    }
}
