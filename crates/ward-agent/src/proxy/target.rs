//! Where a proxied connection is going: an IP address or an unresolved domain
//! name, with a port.
//!
//! Domain names are validated here and never resolved: they are passed on and
//! resolved at the gateway side, so the agent leaks no DNS queries for
//! internal names and the gateway's policy sees the name the user asked for.
//!
//! Validation rules for names: 1 to 253 characters (plus an optional trailing
//! root dot, which is kept), labels of 1 to 63 characters of `[A-Za-z0-9-_]`,
//! stored lowercased. A name whose last label is numeric (`10.1`, `1.0x7f`)
//! must be a canonical dotted-quad IPv4 address, which becomes
//! [`Target::Ip`]: anything else would be read as an address by some
//! resolvers (`inet_aton`) and as a name by others. Port 0 is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Longest domain name accepted, without its optional trailing dot.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest label (dot-separated part) of a domain name.
pub const MAX_LABEL_LEN: usize = 63;

/// A destination asked for by a local client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IP address and port. IPv6 flow info and scope id are always 0.
    Ip(SocketAddr),
    /// A validated, lowercased domain name, to be resolved by the gateway.
    Domain {
        /// The name, lowercase; a trailing root dot, if given, is kept.
        host: String,
        /// The port, never 0.
        port: u16,
    },
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host is empty.
    #[error("empty host name")]
    EmptyHost,
    /// The name is longer than [`MAX_DOMAIN_LEN`].
    #[error("host name longer than {MAX_DOMAIN_LEN} characters")]
    HostTooLong,
    /// Two dots in a row, or a leading dot.
    #[error("empty label in host name")]
    EmptyLabel,
    /// A label is longer than [`MAX_LABEL_LEN`].
    #[error("label longer than {MAX_LABEL_LEN} characters in host name")]
    LabelTooLong,
    /// The name has a non-ASCII character (internationalised names must be
    /// sent in their punycode `xn--` form).
    #[error("host name is not ASCII (use its xn-- form)")]
    NonAscii,
    /// The name has a character outside `[A-Za-z0-9-_.]`.
    #[error("invalid character {0:?} in host name")]
    InvalidChar(char),
    /// The name ends in a numeric label but is not a dotted-quad IPv4 address.
    #[error("numeric host name that is not a dotted-quad IPv4 address")]
    AmbiguousNumeric,
    /// `[...]` does not hold a valid IPv6 address, or an IPv6 address is
    /// written without brackets.
    #[error("invalid IPv6 address (IPv6 addresses go in brackets: [::1]:443)")]
    InvalidIpv6,
    /// No port where one is required.
    #[error("missing port (expected host:port)")]
    MissingPort,
    /// The port is not a decimal number from 1 to 65535.
    #[error("invalid port")]
    InvalidPort,
    /// Port 0.
    #[error("port 0 is not a valid destination")]
    PortZero,
}

impl Target {
    /// A target for an IP address. Refuses port 0; clears IPv6 flow info
    /// and scope id.
    pub fn ip(addr: SocketAddr) -> Result<Target, TargetError> {
        if addr.port() == 0 {
            return Err(TargetError::PortZero);
        }
        Ok(Target::Ip(SocketAddr::new(addr.ip(), addr.port())))
    }

    /// A target for a host name (as sent in a SOCKS5 domain request), validated
    /// and lowercased. An IP literal (`192.0.2.1`, `::1`, no brackets) gives a
    /// [`Target::Ip`].
    pub fn domain(host: &str, port: u16) -> Result<Target, TargetError> {
        if port == 0 {
            return Err(TargetError::PortZero);
        }
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            return Target::ip(SocketAddr::new(IpAddr::V6(ip), port));
        }
        match validate_name(host)? {
            Host::V4(ip) => Target::ip(SocketAddr::new(IpAddr::V4(ip), port)),
            Host::Name(host) => Ok(Target::Domain { host, port }),
        }
    }

    /// Parses an authority: `host:port`, `192.0.2.1:port` or `[v6]:port`.
    ///
    /// Without a port the authority takes `default_port`, or is refused with
    /// [`TargetError::MissingPort`] when that is `None`. Nothing may precede
    /// or follow the authority (no user info, path or whitespace).
    pub fn parse_authority(s: &str, default_port: Option<u16>) -> Result<Target, TargetError> {
        if s.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or(TargetError::InvalidIpv6)?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| TargetError::InvalidIpv6)?;
            let port = match after {
                "" => default_port.ok_or(TargetError::MissingPort)?,
                _ => parse_port(after.strip_prefix(':').ok_or(TargetError::InvalidIpv6)?)?,
            };
            return Target::ip(SocketAddr::new(IpAddr::V6(ip), port));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(TargetError::InvalidIpv6),
            Some((host, port)) => (host, parse_port(port)?),
            None => (s, default_port.ok_or(TargetError::MissingPort)?),
        };
        if host.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        match validate_name(host)? {
            Host::V4(ip) => Target::ip(SocketAddr::new(IpAddr::V4(ip), port)),
            Host::Name(host) => {
                if port == 0 {
                    return Err(TargetError::PortZero);
                }
                Ok(Target::Domain { host, port })
            }
        }
    }

    /// The host as written in an authority: a name, a dotted quad, or an IPv6
    /// address in brackets.
    pub fn host(&self) -> String {
        match self {
            Target::Ip(SocketAddr::V4(a)) => a.ip().to_string(),
            Target::Ip(SocketAddr::V6(a)) => format!("[{}]", a.ip()),
            Target::Domain { host, .. } => host.clone(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Ip(addr) => addr.port(),
            Target::Domain { port, .. } => *port,
        }
    }

    /// `host:port`, with an IPv6 address in brackets: the form of an HTTP
    /// CONNECT request target, and the same as [`Display`](fmt::Display).
    pub fn authority(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Scope id and flow info are always 0, so this is `[v6]:port`.
            Target::Ip(addr) => write!(f, "{addr}"),
            Target::Domain { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    /// Parses `host:port` or `[v6]:port`; the port is required.
    fn from_str(s: &str) -> Result<Target, TargetError> {
        Target::parse_authority(s, None)
    }
}

enum Host {
    V4(Ipv4Addr),
    Name(String),
}

fn parse_port(s: &str) -> Result<u16, TargetError> {
    if s.is_empty() {
        return Err(TargetError::MissingPort);
    }
    // `u16::from_str` would take a leading `+`; only digits are a port.
    if s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::InvalidPort);
    }
    match s.parse::<u16>() {
        Ok(0) => Err(TargetError::PortZero),
        Ok(port) => Ok(port),
        Err(_) => Err(TargetError::InvalidPort),
    }
}

fn validate_name(host: &str) -> Result<Host, TargetError> {
    if host.is_empty() {
        return Err(TargetError::EmptyHost);
    }
    if !host.is_ascii() {
        return Err(TargetError::NonAscii);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err(TargetError::EmptyLabel);
    }
    if name.len() > MAX_DOMAIN_LEN {
        return Err(TargetError::HostTooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(TargetError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(TargetError::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(TargetError::InvalidChar(c));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_numeric_label(last) {
        return name
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| TargetError::AmbiguousNumeric);
    }
    Ok(Host::Name(host.to_ascii_lowercase()))
}

/// Whether a label reads as a number to an IPv4 parser (WHATWG URL's "ends
/// in a number"): decimal digits, or `0x` followed by hex digits.
fn is_numeric_label(label: &str) -> bool {
    if label.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match label.strip_prefix("0x").or_else(|| label.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(host: &str, port: u16) -> Target {
        Target::Domain {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_names_and_lowercases() {
        assert_eq!("Example.COM:443".parse(), Ok(domain("example.com", 443)));
        assert_eq!("a_b-c.internal:1".parse(), Ok(domain("a_b-c.internal", 1)));
        assert_eq!("localhost:65535".parse(), Ok(domain("localhost", 65535)));
        assert_eq!("example.com.:80".parse(), Ok(domain("example.com.", 80)));
        assert_eq!(Target::parse_authority("Host", Some(80)), Ok(domain("host", 80)));
    }

    #[test]
    fn parses_ip_literals() {
        assert_eq!("192.0.2.1:80".parse(), Ok(Target::Ip("192.0.2.1:80".parse().unwrap())));
        assert_eq!("[::1]:8080".parse(), Ok(Target::Ip("[::1]:8080".parse().unwrap())));
        assert_eq!(
            Target::parse_authority("[2001:db8::1]", Some(80)),
            Ok(Target::Ip("[2001:db8::1]:80".parse().unwrap()))
        );
        assert_eq!(
            Target::domain("192.0.2.1", 5),
            Ok(Target::Ip("192.0.2.1:5".parse().unwrap()))
        );
        assert_eq!(
            Target::domain("192.0.2.1.", 5),
            Ok(Target::Ip("192.0.2.1:5".parse().unwrap()))
        );
        assert_eq!(Target::domain("::1", 5), Ok(Target::Ip("[::1]:5".parse().unwrap())));
    }

    #[test]
    fn displays_authority() {
        let v6: Target = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(v6.to_string(), "[2001:db8::1]:443");
        assert_eq!(v6.authority(), "[2001:db8::1]:443");
        assert_eq!(v6.host(), "[2001:db8::1]");
        assert_eq!(v6.port(), 443);
        let v4: Target = "10.0.0.1:22".parse().unwrap();
        assert_eq!((v4.to_string(), v4.host()), ("10.0.0.1:22".into(), "10.0.0.1".into()));
        let name = domain("db.internal", 5432);
        assert_eq!(
            (name.authority(), name.host(), name.port()),
            ("db.internal:5432".into(), "db.internal".into(), 5432)
        );
    }

    #[test]
    fn ip_clears_scope_and_refuses_port_zero() {
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(Ipv6Addr::LOCALHOST, 80, 7, 3));
        assert_eq!(Target::ip(scoped).unwrap().to_string(), "[::1]:80");
        assert_eq!(Target::ip("127.0.0.1:0".parse().unwrap()), Err(TargetError::PortZero));
    }

    #[test]
    fn refuses_bad_authorities() {
        use TargetError::*;
        let cases: &[(&str, TargetError)] = &[
            ("", EmptyHost),
            (":80", EmptyHost),
            ("host", MissingPort),
            ("host:", MissingPort),
            ("host:0", PortZero),
            ("host:65536", InvalidPort),
            ("host:+80", InvalidPort),
            ("host:080x", InvalidPort),
            ("host:000080", InvalidPort),
            ("host:80 ", InvalidPort),
            ("host :80", InvalidChar(' ')),
            ("user@host:80", InvalidChar('@')),
            ("host/path:80", InvalidChar('/')),
            ("a..b:80", EmptyLabel),
            (".a:80", EmptyLabel),
            (".:80", EmptyLabel),
            ("a.b..:80", EmptyLabel),
            ("exämple.com:80", NonAscii),
            ("::1:80", InvalidIpv6),
            ("[::1]", MissingPort),
            ("[::1]:", MissingPort),
            ("[::1]x", InvalidIpv6),
            ("[::1]:0", PortZero),
            ("[fe80::1%eth0]:80", InvalidIpv6),
            ("[192.0.2.1]:80", InvalidIpv6),
            ("[::1:80", InvalidIpv6),
            ("127.1:80", AmbiguousNumeric),
            ("010.0.0.1:80", AmbiguousNumeric),
            ("1.2.3.4.5:80", AmbiguousNumeric),
            ("256.0.0.1:80", AmbiguousNumeric),
            ("evil.0x7f:80", AmbiguousNumeric),
            ("2130706433:80", AmbiguousNumeric),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Target>().as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert!(Target::domain(&format!("{label63}.com"), 1).is_ok());
        assert_eq!(
            Target::domain(&format!("{label63}a.com"), 1),
            Err(TargetError::LabelTooLong)
        );
        // 253 characters: 63 + 1 + 63 + 1 + 63 + 1 + 61.
        let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(name253.len(), 253);
        assert!(Target::domain(&name253, 1).is_ok());
        assert!(Target::domain(&format!("{name253}."), 1).is_ok());
        assert_eq!(Target::domain(&format!("{name253}b"), 1), Err(TargetError::HostTooLong));
        assert_eq!(Target::domain("x", 0), Err(TargetError::PortZero));
        assert_eq!(Target::domain("", 1), Err(TargetError::EmptyHost));
    }
}
