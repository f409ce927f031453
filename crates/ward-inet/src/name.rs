//! Host names the way a browser resolves them.
//!
//! A host a client sends (`CONNECT Exämple.COM.:443`), a name an
//! administrator types and a line of a domain list all go through the same
//! normalisation, so that they meet as the same key:
//!
//! 1. IP literals first: `[2001:db8::1]` and `2001:db8::1` are IPv6 (an
//!    IPv4-mapped address becomes the IPv4 address it carries), and a name
//!    whose last label is a number is read as IPv4 the way the WHATWG URL
//!    standard does (`127.1`, `0x7f.0.0.1`, `2130706433` are all
//!    `127.0.0.1`), or refused if it is not a valid one.
//! 2. UTS-46 processing (the `idna` crate, non-transitional, as browsers do):
//!    case folding, width and compatibility mapping (`ｅｘａｍｐｌｅ` and the
//!    ideographic full stop `。`), and every non-ASCII label to its punycode
//!    A-label (`bücher` -> `xn--bcher-kva`). A label that is already punycode
//!    must decode to a valid label. A Unicode lookalike and its punycode form
//!    are therefore the same key. Pure-ASCII names skip the `idna` crate
//!    (lowercase only) unless a label starts with `xn--`.
//! 3. One trailing dot is removed (`example.com.` is `example.com`).
//! 4. The result must be a DNS name: at most 253 characters, labels of 1 to
//!    63 characters, each made of `a-z`, `0-9`, `-` and `_`. Hyphens at the
//!    edge of a label are accepted, as browsers and resolvers do.
//!
//! Normalising is idempotent: a normalised name normalises to itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest domain name, in characters, without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label of a domain name (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// The longest input accepted at all, in bytes, before any mapping: UTS-46
/// can remove characters (soft hyphens), so a longer input could still map
/// to a short name, but nothing legitimate needs it.
pub const MAX_INPUT_LEN: usize = 1024;

/// Why text is not a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a host name cannot be empty")]
    Empty,
    #[error("a domain name is at most 253 characters")]
    TooLong,
    #[error("a domain name cannot have an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("a label of a domain name is at most 63 characters")]
    LabelTooLong,
    #[error("a domain name may contain only letters, digits, '-' and '_' between dots (found {0:?})")]
    BadChar(char),
    #[error("not a valid internationalised domain name")]
    Idna,
    #[error("the name ends in a number but is not a valid IPv4 address")]
    BadIpv4,
    #[error("not a valid IPv6 address")]
    BadIpv6,
    #[error("an IP address is not a domain name")]
    IpLiteral,
}

/// A normalised domain name: lowercase ASCII (A-labels), no trailing dot,
/// valid as a DNS name, and not an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Box<str>);

impl DomainName {
    /// Normalise `input` as a domain name; an IP literal is an error
    /// ([`NameError::IpLiteral`]).
    pub fn parse(input: &str) -> Result<DomainName, NameError> {
        match Host::parse(input)? {
            Host::Name(name) => Ok(name),
            Host::Ip(_) => Err(NameError::IpLiteral),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name and each of its parent suffixes, longest first:
    /// `a.b.example` gives `a.b.example`, `b.example`, `example`.
    pub fn suffixes(&self) -> impl Iterator<Item = &str> {
        suffixes(&self.0)
    }
}

/// `name` and each of its parent suffixes, longest first.
pub(crate) fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(name);
    std::iter::from_fn(move || {
        let current = rest?;
        rest = current.find('.').map(|i| &current[i + 1..]);
        Some(current)
    })
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::parse(s)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for DomainName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DomainName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A destination: a normalised domain name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(DomainName),
    /// Canonical: an IPv4-mapped IPv6 address is stored as IPv4.
    Ip(IpAddr),
}

impl Host {
    /// Normalise what a client or an administrator wrote (see the module
    /// documentation). Never panics, whatever the input.
    pub fn parse(input: &str) -> Result<Host, NameError> {
        let mut out = String::with_capacity(input.len().min(MAX_NAME_LEN + 1));
        match normalize_into(input, &mut out)? {
            Normalized::Name => Ok(Host::Name(DomainName(out.into_boxed_str()))),
            Normalized::Ip(ip) => Ok(Host::Ip(ip)),
        }
    }

    pub fn as_name(&self) -> Option<&DomainName> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n.as_str()),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl FromStr for Host {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Host::parse(s)
    }
}

/// What [`normalize_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Normalized {
    /// A domain name was appended to the buffer.
    Name,
    /// An IP literal; the buffer is unchanged.
    Ip(IpAddr),
}

/// Normalise `input` and append the name to `out` (the list parsers build
/// their arena this way, without one allocation per name). On error, and
/// for an IP, `out` is left as it was.
pub(crate) fn normalize_into(input: &str, out: &mut String) -> Result<Normalized, NameError> {
    if input.is_empty() {
        return Err(NameError::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(NameError::TooLong);
    }
    // IPv6 literals, bracketed or not (UTS-46 would refuse ':' anyway).
    if let Some(inner) = input.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(NameError::BadIpv6)?;
        return parse_ipv6(inner);
    }
    if input.contains(':') {
        return parse_ipv6(input);
    }
    let start = out.len();
    let result = map_to_ascii(input, out).and_then(|()| {
        if out.ends_with('.') {
            out.pop();
        }
        check_ascii_name(&out[start..])?;
        if ends_in_number(&out[start..]) {
            return whatwg_ipv4(&out[start..]).map(|v4| Normalized::Ip(IpAddr::V4(v4)));
        }
        Ok(Normalized::Name)
    });
    if !matches!(result, Ok(Normalized::Name)) {
        out.truncate(start);
    }
    result
}

fn parse_ipv6(s: &str) -> Result<Normalized, NameError> {
    let ip: Ipv6Addr = s.parse().map_err(|_| NameError::BadIpv6)?;
    Ok(Normalized::Ip(IpAddr::V6(ip).to_canonical()))
}

/// Append the ASCII (A-label) form of `input`, lowercase, to `out`.
fn map_to_ascii(input: &str, out: &mut String) -> Result<(), NameError> {
    let bytes = input.as_bytes();
    if bytes.is_ascii() && !has_punycode_label(bytes) {
        let start = out.len();
        out.push_str(input);
        out[start..].make_ascii_lowercase();
        return Ok(());
    }
    let ascii = idna::domain_to_ascii_cow(bytes, idna::AsciiDenyList::URL).map_err(|_| NameError::Idna)?;
    out.push_str(&ascii);
    Ok(())
}

/// Whether a label starts with `xn--` (any case).
fn has_punycode_label(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'.')
        .any(|label| label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--"))
}

/// Check a lowercase ASCII name without a trailing dot.
fn check_ascii_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut label_len = 0usize;
    for b in name.bytes() {
        match b {
            b'.' => {
                if label_len == 0 {
                    return Err(NameError::EmptyLabel);
                }
                label_len = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                label_len += 1;
                if label_len > MAX_LABEL_LEN {
                    return Err(NameError::LabelTooLong);
                }
            }
            // Report the character, not a byte of it.
            _ => {
                let bad = name
                    .chars()
                    .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'));
                return Err(NameError::BadChar(bad.unwrap_or('?')));
            }
        }
    }
    if label_len == 0 {
        return Err(NameError::EmptyLabel);
    }
    Ok(())
}

/// The WHATWG "ends in a number" check: the last label is all digits, or
/// parses as an IPv4 number (`0x1f`). `name` has no trailing dot.
fn ends_in_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || ipv4_number(last).is_some())
}

/// One part of a WHATWG IPv4 address: decimal, `0x` hex or `0`-prefixed octal.
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        return Some(0);
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)? as u64;
        // Anything past 2^32 is invalid whatever its length: stop growing.
        value = (value * radix as u64 + d).min(1 << 33);
    }
    Some(value)
}

/// The WHATWG IPv4 parser, for a name that ends in a number.
fn whatwg_ipv4(name: &str) -> Result<Ipv4Addr, NameError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return Err(NameError::BadIpv4);
    }
    let mut numbers = Vec::with_capacity(4);
    for part in &parts {
        numbers.push(ipv4_number(part).ok_or(NameError::BadIpv4)?);
    }
    let (last, init) = numbers.split_last().ok_or(NameError::BadIpv4)?;
    if init.iter().any(|&n| n > 255) {
        return Err(NameError::BadIpv4);
    }
    let width = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << width {
        return Err(NameError::BadIpv4);
    }
    let mut ipv4 = *last;
    for (i, n) in init.iter().enumerate() {
        ipv4 += n << (8 * (3 - i as u32));
    }
    let ipv4 = u32::try_from(ipv4).map_err(|_| NameError::BadIpv4)?;
    Ok(Ipv4Addr::from(ipv4))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(s: &str) -> String {
        DomainName::parse(s).unwrap().to_string()
    }

    #[test]
    fn lowercase_and_trailing_dot() {
        assert_eq!(name("WWW.Example.COM."), "www.example.com");
        assert_eq!(name("_dmarc.example.com"), "_dmarc.example.com");
        assert_eq!(name("a-.blogspot.com"), "a-.blogspot.com");
    }

    #[test]
    fn unicode_becomes_punycode() {
        assert_eq!(name("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(name("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
        // Cyrillic 'а' (U+0430) lookalike of "apple".
        assert_eq!(name("\u{0430}pple.com"), "xn--pple-43d.com");
        assert_eq!(name("xn--pple-43d.com"), "xn--pple-43d.com");
        // Full-width letters and the ideographic full stop map to ASCII.
        assert_eq!(name("ｅｘａｍｐｌｅ。com"), "example.com");
        // Soft hyphen is ignored by UTS-46.
        assert_eq!(name("exam\u{00AD}ple.com"), "example.com");
    }

    #[test]
    fn invalid_names() {
        for (input, err) in [
            ("", NameError::Empty),
            (".", NameError::Empty),
            ("a..b", NameError::EmptyLabel),
            (".a.b", NameError::EmptyLabel),
            ("a.b..", NameError::EmptyLabel),
            ("a b.com", NameError::BadChar(' ')),
            ("*.example.com", NameError::BadChar('*')),
            ("exa%mple.com", NameError::BadChar('%')),
            ("exä%mple.com", NameError::Idna),
            ("xn--zz-.com", NameError::Idna),
        ] {
            assert_eq!(DomainName::parse(input), Err(err), "{input:?}");
        }
        assert_eq!(DomainName::parse(&"a".repeat(64)), Err(NameError::LabelTooLong));
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert_eq!(long.len(), 253);
        assert!(DomainName::parse(&long).is_ok());
        assert_eq!(DomainName::parse(&format!("{long}x")), Err(NameError::TooLong));
        assert_eq!(DomainName::parse(&"a".repeat(2000)), Err(NameError::TooLong));
    }

    #[test]
    fn ip_literals() {
        let v4 = |s: &str| Host::parse(s).unwrap();
        let lo = Host::Ip("127.0.0.1".parse().unwrap());
        for s in [
            "127.0.0.1",
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "2130706433",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
        ] {
            assert_eq!(v4(s), lo, "{s}");
        }
        assert_eq!(v4("[2001:db8::1]"), Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(v4("2001:DB8::1"), Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(Host::parse("256.0.0.1"), Err(NameError::BadIpv4));
        assert_eq!(Host::parse("a.1"), Err(NameError::BadIpv4));
        assert_eq!(Host::parse("1.2.3.4.5"), Err(NameError::BadIpv4));
        assert_eq!(Host::parse("99999999999999999999999"), Err(NameError::BadIpv4));
        assert_eq!(Host::parse("[::1"), Err(NameError::BadIpv6));
        assert_eq!(Host::parse("fe80::1%eth0"), Err(NameError::BadIpv6));
        assert_eq!(DomainName::parse("10.0.0.1"), Err(NameError::IpLiteral));
        // A last label that is not a number is a name.
        assert_eq!(name("1.2.3.com"), "1.2.3.com");
        assert_eq!(name("a.0xg"), "a.0xg");
    }

    #[test]
    fn suffixes_longest_first() {
        let n = DomainName::parse("a.b.example").unwrap();
        assert_eq!(
            n.suffixes().collect::<Vec<_>>(),
            ["a.b.example", "b.example", "example"]
        );
    }
}
