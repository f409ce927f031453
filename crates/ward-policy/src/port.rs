//! Ports and protocols of an application.
//!
//! A [`PortRange`] is written `443` or `8000-8100` (both ends included); a
//! list is written `80,443,8000-8100`. Port 0 is never valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why text is not a port range or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("a port range cannot be empty (write 443 or 8000-8100)")]
    Empty,
    #[error("{0:?} is not a port number")]
    NotANumber(String),
    #[error("port 0 is not a valid port")]
    Zero,
    #[error("a port is at most 65535 (found {0})")]
    TooLarge(String),
    #[error("a port range runs from low to high ({start}-{end} is reversed)")]
    Reversed { start: u16, end: u16 },
}

/// A range of TCP/UDP ports, both ends included: `start <= end`, `start >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// Every port, `1-65535`.
    pub const ALL: PortRange = PortRange {
        start: 1,
        end: u16::MAX,
    };

    /// A checked range.
    pub fn new(start: u16, end: u16) -> Result<PortRange, PortError> {
        if start == 0 {
            return Err(PortError::Zero);
        }
        if start > end {
            return Err(PortError::Reversed { start, end });
        }
        Ok(PortRange { start, end })
    }

    /// Exactly one port.
    pub fn single(port: u16) -> Result<PortRange, PortError> {
        PortRange::new(port, port)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }

    /// Parse a comma-separated list (`80,443,8000-8100`); spaces around
    /// items are allowed. An empty list is an error.
    pub fn parse_list(s: &str) -> Result<Vec<PortRange>, PortError> {
        s.split(',').map(|item| item.trim().parse()).collect()
    }

    /// The text form of a list, as [`PortRange::parse_list`] reads it.
    pub fn format_list(ranges: &[PortRange]) -> String {
        let parts: Vec<String> = ranges.iter().map(PortRange::to_string).collect();
        parts.join(",")
    }
}

fn parse_port(s: &str) -> Result<u16, PortError> {
    if s.is_empty() {
        return Err(PortError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber(s.to_owned()));
    }
    let port: u16 = s.parse().map_err(|_| PortError::TooLarge(s.to_owned()))?;
    if port == 0 {
        return Err(PortError::Zero);
    }
    Ok(port)
}

impl FromStr for PortRange {
    type Err = PortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('-') {
            None => PortRange::single(parse_port(s)?),
            Some((a, b)) => PortRange::new(parse_port(a)?, parse_port(b)?),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads `"8000-8100"`, `"443"` or the number `443`.
impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (443) or a port range (\"8000-8100\")")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                let port = u16::try_from(v).map_err(|_| E::custom(PortError::TooLarge(v.to_string())))?;
                PortRange::single(port).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                let v = u64::try_from(v).map_err(|_| E::custom(PortError::NotANumber(v.to_string())))?;
                self.visit_u64(v)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Transport protocol of an application. Only TCP is carried today; the
/// enum leaves room for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
}

/// Text that names no [`Protocol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (only \"tcp\" is supported)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Protocol::Tcp)
        } else {
            Err(UnknownProtocol(s.to_owned()))
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_single_and_range() {
        assert_eq!("443".parse(), Ok(PortRange { start: 443, end: 443 }));
        assert_eq!("8000-8100".parse(), Ok(PortRange { start: 8000, end: 8100 }));
        assert_eq!("1-65535".parse(), Ok(PortRange::ALL));
        assert_eq!("22-22".parse(), Ok(PortRange { start: 22, end: 22 }));
    }

    #[test]
    fn rejects_bad_ranges() {
        let bad = |s: &str| s.parse::<PortRange>().unwrap_err();
        assert_eq!(bad(""), PortError::Empty);
        assert_eq!(bad("0"), PortError::Zero);
        assert_eq!(bad("0-10"), PortError::Zero);
        assert_eq!(bad("65536"), PortError::TooLarge("65536".into()));
        assert_eq!(
            bad("99999999999999999999"),
            PortError::TooLarge("99999999999999999999".into())
        );
        assert_eq!(bad("100-10"), PortError::Reversed { start: 100, end: 10 });
        assert_eq!(bad("-10"), PortError::Empty);
        assert_eq!(bad("10-"), PortError::Empty);
        assert_eq!(bad("1-2-3"), PortError::NotANumber("2-3".into()));
        assert_eq!(bad("+80"), PortError::NotANumber("+80".into()));
        assert_eq!(bad(" 80"), PortError::NotANumber(" 80".into()));
        assert_eq!(bad("http"), PortError::NotANumber("http".into()));
    }

    #[test]
    fn lists() {
        let list = PortRange::parse_list("80, 443,8000-8100").unwrap();
        assert_eq!(
            list,
            vec![
                PortRange { start: 80, end: 80 },
                PortRange { start: 443, end: 443 },
                PortRange { start: 8000, end: 8100 },
            ]
        );
        assert_eq!(PortRange::format_list(&list), "80,443,8000-8100");
        assert_eq!(PortRange::parse_list(""), Err(PortError::Empty));
        assert_eq!(PortRange::parse_list("80,,443"), Err(PortError::Empty));
        assert_eq!(PortRange::parse_list("80,0"), Err(PortError::Zero));
    }

    #[test]
    fn contains_is_inclusive() {
        let r = PortRange::new(8000, 8100).unwrap();
        assert!(r.contains(8000) && r.contains(8100) && r.contains(8050));
        assert!(!r.contains(7999) && !r.contains(8101));
    }

    #[test]
    fn serde_text_and_numbers() {
        let v: Vec<PortRange> = serde_json::from_str(r#"[443, "8000-8100", "22"]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["443","8000-8100","22"]"#);
        assert!(serde_json::from_str::<PortRange>("0").is_err());
        assert!(serde_json::from_str::<PortRange>("70000").is_err());
        assert!(serde_json::from_str::<PortRange>("-1").is_err());
        assert!(serde_json::from_str::<PortRange>(r#""9-8""#).is_err());
    }

    #[test]
    fn protocol_text() {
        assert_eq!("TCP".parse(), Ok(Protocol::Tcp));
        assert!("udp".parse::<Protocol>().is_err());
        assert_eq!(Protocol::Tcp.to_string(), "tcp");
        assert_eq!(serde_json::to_string(&Protocol::Tcp).unwrap(), r#""tcp""#);
    }

    proptest! {
        #[test]
        fn round_trip(a in 1u16.., b in 1u16..) {
            let r = PortRange::new(a.min(b), a.max(b)).unwrap();
            prop_assert_eq!(r.to_string().parse::<PortRange>(), Ok(r));
        }

        #[test]
        fn random_text_never_panics(s in "[0-9, -]{0,30}|\\PC{0,30}") {
            if let Ok(r) = s.parse::<PortRange>() {
                prop_assert!(r.start >= 1 && r.start <= r.end);
            }
            if let Ok(list) = PortRange::parse_list(&s) {
                prop_assert_eq!(PortRange::parse_list(&PortRange::format_list(&list)), Ok(list));
            }
        }
    }
}
