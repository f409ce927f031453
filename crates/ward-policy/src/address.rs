//! Where an application lives: an IP, a CIDR block, a domain name or a
//! wildcard domain.
//!
//! Text form (what admins type and what the API stores):
//!
//! | text | meaning |
//! |---|---|
//! | `10.0.0.5`, `::1` | exactly that address |
//! | `10.0.0.0/24`, `fd00::/64` | every address in the block (host bits must be zero) |
//! | `db.corp.example` | exactly that name (case-insensitive, a trailing dot is ignored) |
//! | `*.corp.example` | every name strictly below `corp.example`, at any depth, but not `corp.example` itself |
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.5`) are matched as the IPv4
//! address they carry, on both sides, so one destination has one spelling.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// The longest domain name, in characters, without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label of a domain name (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Why text is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address cannot be empty")]
    Empty,
    #[error("a domain name is at most 253 characters (this one has {0})")]
    TooLong(usize),
    #[error("{0:?} is not a CIDR block (write it as 10.0.0.0/24 or fd00::/64)")]
    BadCidr(String),
    #[error("{given} has host bits set; did you mean {network}?")]
    CidrHostBits { given: String, network: IpNet },
    #[error("a domain name cannot have an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("a label of a domain name is at most 63 characters")]
    LabelTooLong,
    #[error("a domain name may contain only letters, digits, '-' and '_' between dots (found {0:?})")]
    BadChar(char),
    #[error("a label of a domain name cannot start or end with '-'")]
    HyphenAtLabelEdge,
    #[error("the last label of a domain name cannot be all digits (is it a mistyped IP address?)")]
    NumericTopLabel,
    #[error("a wildcard is written *.suffix, with '*' alone as the first label (e.g. *.corp.example)")]
    BadWildcard,
}

/// One address of an application. Parse it with [`str::parse`]; it prints
/// back in the same form, and (de)serialises as that text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// Exactly one IP address.
    Ip(IpAddr),
    /// A CIDR block whose host bits are zero.
    Cidr(IpNet),
    /// Exactly one domain name, lowercase, without a trailing dot.
    Domain(String),
    /// Every name strictly below this suffix (stored without the `*.`).
    Wildcard(String),
}

impl Address {
    /// Whether this address covers the IP (after IPv4-mapped canonicalisation).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            Address::Ip(a) => a.to_canonical() == ip,
            Address::Cidr(net) => canonical_net(*net).contains(&ip),
            Address::Domain(_) | Address::Wildcard(_) => false,
        }
    }

    /// Whether this address covers the name. `name` must already be
    /// normalised: lowercase, no trailing dot.
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            Address::Domain(d) => d == name,
            Address::Wildcard(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            Address::Ip(_) | Address::Cidr(_) => false,
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| AddressError::BadCidr(s.to_owned()))?;
            let network = net.trunc();
            if network != net {
                return Err(AddressError::CidrHostBits {
                    given: s.to_owned(),
                    network,
                });
            }
            return Ok(Address::Cidr(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Address::Ip(ip));
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(AddressError::BadWildcard);
            }
            let suffix = parse_name(suffix, 2)?;
            return Ok(Address::Wildcard(suffix));
        }
        if s.contains('*') {
            return Err(AddressError::BadWildcard);
        }
        parse_name(s, 0).map(Address::Domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => write!(f, "{ip}"),
            Address::Cidr(net) => write!(f, "{net}"),
            Address::Domain(name) => f.write_str(name),
            Address::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lowercase and validate a domain name; `prefix_len` is the length of text
/// before it (`*.`) that counts toward the 253-character limit.
fn parse_name(s: &str, prefix_len: usize) -> Result<String, AddressError> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        return Err(AddressError::BadChar(c));
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let lower = s.to_ascii_lowercase();
    check_name(lower.as_bytes(), prefix_len)?;
    Ok(lower)
}

/// Validate a lowercase ASCII name without its trailing dot.
fn check_name(name: &[u8], prefix_len: usize) -> Result<(), AddressError> {
    if name.is_empty() {
        return Err(AddressError::EmptyLabel);
    }
    if name.len() + prefix_len > MAX_NAME_LEN {
        return Err(AddressError::TooLong(name.len() + prefix_len));
    }
    let mut last_label: &[u8] = &[];
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(AddressError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AddressError::LabelTooLong);
        }
        if let Some(&b) = label
            .iter()
            .find(|&&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
        {
            return Err(AddressError::BadChar(char::from(b)));
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return Err(AddressError::HyphenAtLabelEdge);
        }
        last_label = label;
    }
    if last_label.iter().all(u8::is_ascii_digit) {
        return Err(AddressError::NumericTopLabel);
    }
    Ok(())
}

/// The buffer a request's host name is normalised into, on the stack.
pub(crate) type NameBuf = [u8; MAX_NAME_LEN + 1];

/// Normalise a request's host name the way application domains are stored:
/// ASCII-lowercase, one trailing dot dropped, then validated with the same
/// rules as [`Address`] domains. `None` if it is not a valid name: such a
/// destination matches no application (fail closed).
pub(crate) fn normalize_request_name<'b>(name: &str, buf: &'b mut NameBuf) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    let out = buf.get_mut(..name.len())?;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    check_name(out, 0).ok()?;
    std::str::from_utf8(out).ok()
}

/// A CIDR block with IPv4-mapped IPv6 blocks (`::ffff:10.0.0.0/120`) turned
/// into the IPv4 block they cover, so they match canonical addresses.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if n.prefix_len() >= 96 {
            if let Some(v4) = n.network().to_ipv4_mapped() {
                if let Ok(v4net) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(v4net);
                }
            }
        }
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(a("10.0.0.5"), Address::Ip("10.0.0.5".parse().unwrap()));
        assert_eq!(a("::1"), Address::Ip("::1".parse().unwrap()));
        assert_eq!(a("10.0.0.0/24"), Address::Cidr("10.0.0.0/24".parse().unwrap()));
        assert_eq!(a("fd00::/64"), Address::Cidr("fd00::/64".parse().unwrap()));
        assert_eq!(a("DB.Corp.Example"), Address::Domain("db.corp.example".into()));
        assert_eq!(a("db.corp.example."), Address::Domain("db.corp.example".into()));
        assert_eq!(a("intranet"), Address::Domain("intranet".into()));
        assert_eq!(
            a("_ldap.corp-1.example"),
            Address::Domain("_ldap.corp-1.example".into())
        );
        assert_eq!(a("*.Corp.Example"), Address::Wildcard("corp.example".into()));
        assert_eq!(a("*.example"), Address::Wildcard("example".into()));
        assert_eq!(a("0.0.0.0/0"), Address::Cidr("0.0.0.0/0".parse().unwrap()));
    }

    #[test]
    fn displays_as_parsed() {
        for s in [
            "10.0.0.5",
            "::1",
            "10.0.0.0/24",
            "fd00::/64",
            "db.corp.example",
            "*.corp.example",
            "10.0.0.5/32",
        ] {
            assert_eq!(a(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_text() {
        let bad = |s: &str| s.parse::<Address>().unwrap_err();
        assert_eq!(bad(""), AddressError::Empty);
        assert!(matches!(bad("10.0.0.5/24"), AddressError::CidrHostBits { .. }));
        assert!(bad("10.0.0.5/24").to_string().contains("10.0.0.0/24"));
        assert!(matches!(bad("10.0.0.0/33"), AddressError::BadCidr(_)));
        assert!(matches!(bad("db.example/24"), AddressError::BadCidr(_)));
        assert!(matches!(bad("10.0.0.0/"), AddressError::BadCidr(_)));
        assert_eq!(bad("a..b"), AddressError::EmptyLabel);
        assert_eq!(bad(".a"), AddressError::EmptyLabel);
        assert_eq!(bad("."), AddressError::EmptyLabel);
        assert_eq!(bad("a b.example"), AddressError::BadChar(' '));
        assert_eq!(bad("bücher.example"), AddressError::BadChar('ü'));
        assert_eq!(bad("-a.example"), AddressError::HyphenAtLabelEdge);
        assert_eq!(bad("a-.example"), AddressError::HyphenAtLabelEdge);
        assert_eq!(bad("10.0.0"), AddressError::NumericTopLabel);
        assert_eq!(bad("256.1.1.1"), AddressError::NumericTopLabel);
        assert_eq!(bad("*"), AddressError::BadWildcard);
        assert_eq!(bad("*."), AddressError::EmptyLabel);
        assert_eq!(bad("a.*.example"), AddressError::BadWildcard);
        assert_eq!(bad("*.*.example"), AddressError::BadWildcard);
        assert_eq!(bad("*corp.example"), AddressError::BadWildcard);
        assert_eq!(bad(&format!("{}.example", "a".repeat(64))), AddressError::LabelTooLong);
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert_eq!(long.len(), 253);
        assert!(long.parse::<Address>().is_ok());
        assert_eq!(bad(&format!("x{long}")), AddressError::TooLong(254));
        assert_eq!(bad(&format!("*.{long}")), AddressError::TooLong(255));
    }

    #[test]
    fn wildcard_matches_strictly_below_at_any_depth() {
        let w = a("*.corp.example");
        assert!(w.matches_name("db.corp.example"));
        assert!(w.matches_name("a.b.c.corp.example"));
        assert!(!w.matches_name("corp.example"));
        assert!(!w.matches_name("evilcorp.example"));
        assert!(!w.matches_name("db.corp.example.org"));
        assert!(!w.matches_name("example"));
        assert!(!w.matches_ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ip_and_cidr_matching_with_mapped_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a("10.0.0.0/24").matches_ip(ip("10.0.0.255")));
        assert!(!a("10.0.0.0/24").matches_ip(ip("10.0.1.0")));
        assert!(a("10.0.0.0/24").matches_ip(ip("::ffff:10.0.0.7")));
        assert!(a("::ffff:10.0.0.0/120").matches_ip(ip("10.0.0.7")));
        assert!(a("10.0.0.7").matches_ip(ip("::ffff:10.0.0.7")));
        assert!(a("fd00::/64").matches_ip(ip("fd00::1:2")));
        assert!(!a("fd00::/64").matches_ip(ip("fd00:0:0:1::1")));
        assert!(!a("db.example").matches_ip(ip("10.0.0.1")));
    }

    #[test]
    fn request_names_are_normalised_or_refused() {
        let mut buf = [0u8; MAX_NAME_LEN + 1];
        assert_eq!(
            normalize_request_name("DB.Corp.Example.", &mut buf),
            Some("db.corp.example")
        );
        assert_eq!(normalize_request_name("a..b", &mut buf), None);
        assert_eq!(normalize_request_name("", &mut buf), None);
        assert_eq!(normalize_request_name("*.corp.example", &mut buf), None);
        assert_eq!(normalize_request_name("10.0.0.1", &mut buf), None);
        assert_eq!(normalize_request_name(&"a.".repeat(200), &mut buf), None);
    }

    #[test]
    fn serde_uses_text() {
        let v: Vec<Address> = serde_json::from_str(r#"["10.0.0.0/8","*.corp.example","::1"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["10.0.0.0/8","*.corp.example","::1"]"#
        );
        assert!(serde_json::from_str::<Address>(r#""a..b""#).is_err());
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?"
    }

    fn name() -> impl Strategy<Value = String> {
        (prop::collection::vec(label(), 0..4), "[a-z][a-z0-9]{0,5}").prop_map(|(mut v, top)| {
            v.push(top);
            v.join(".")
        })
    }

    fn any_address() -> impl Strategy<Value = Address> {
        prop_oneof![
            any::<IpAddr>().prop_map(Address::Ip),
            (any::<std::net::Ipv4Addr>(), 0u8..=32)
                .prop_map(|(ip, len)| Address::Cidr(IpNet::new(IpAddr::V4(ip), len).unwrap().trunc())),
            (any::<std::net::Ipv6Addr>(), 0u8..=128)
                .prop_map(|(ip, len)| Address::Cidr(IpNet::new(IpAddr::V6(ip), len).unwrap().trunc())),
            name().prop_map(Address::Domain),
            name().prop_map(Address::Wildcard),
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(addr in any_address()) {
            let text = addr.to_string();
            prop_assert_eq!(text.parse::<Address>(), Ok(addr));
        }

        #[test]
        fn parse_display_is_stable(s in "\\PC{0,40}") {
            if let Ok(addr) = s.parse::<Address>() {
                prop_assert_eq!(addr.to_string().parse::<Address>(), Ok(addr));
            }
        }

        #[test]
        fn random_text_never_panics(s in "[*a-zA-Z0-9.:/_ -]{0,60}") {
            let _ = s.parse::<Address>();
            let mut buf = [0u8; MAX_NAME_LEN + 1];
            let _ = normalize_request_name(&s, &mut buf);
        }

        #[test]
        fn random_long_text_never_panics(s in "\\PC{200,300}") {
            let _ = s.parse::<Address>();
            let mut buf = [0u8; MAX_NAME_LEN + 1];
            let _ = normalize_request_name(&s, &mut buf);
        }

        #[test]
        fn wildcard_agrees_with_suffix_rule(sub in name(), suffix in name()) {
            let w = Address::Wildcard(suffix.clone());
            let below = format!("{sub}.{suffix}");
            prop_assert!(w.matches_name(&below));
            prop_assert!(!w.matches_name(&suffix));
        }
    }
}
