//! The question a decision answers: who, from where, on which device, to
//! which host and port, at what time.

use std::net::IpAddr;

use crate::address::{normalize_request_name, NameBuf};
use crate::port::Protocol;

/// What the gateway knows about the device making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeviceState {
    pub compliant: bool,
}

/// The destination as the client named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    Ip(IpAddr),
    /// A domain name. Matching is case-insensitive and ignores one trailing
    /// dot; a name that is not a valid host name matches no application.
    Domain(&'a str),
}

impl<'a> Host<'a> {
    /// Classify the host part of `host:port` text: an IP literal (IPv6 with
    /// or without brackets) becomes [`Host::Ip`], anything else [`Host::Domain`].
    pub fn parse(s: &'a str) -> Host<'a> {
        match ip_literal(s) {
            Some(ip) => Host::Ip(ip),
            None => Host::Domain(s),
        }
    }
}

fn ip_literal(s: &str) -> Option<IpAddr> {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    let first = *inner.as_bytes().first()?;
    if first.is_ascii_digit() || inner.contains(':') {
        inner.parse().ok()
    } else {
        None
    }
}

/// One access request. Borrowed, so building one costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub user_id: &'a str,
    /// Every group the user is in.
    pub groups: &'a [String],
    /// `None` when the device is unknown; an unknown device is never compliant.
    pub device: Option<DeviceState>,
    /// The address the request comes from (the client's address as the gateway sees it).
    pub source: IpAddr,
    pub host: Host<'a>,
    /// The address a domain resolved to, so applications defined by IP or
    /// CIDR match it too.
    pub resolved: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    /// Milliseconds since the epoch (the caller's clock: decisions read none).
    pub now: i64,
    /// A clientless request: a browser through the gateway's HTTPS listener,
    /// without the agent (and so without a device). Only rules with
    /// [`Rule::agentless`](crate::Rule::agentless) match one.
    pub agentless: bool,
}

impl Request<'_> {
    pub(crate) fn device_compliant(&self) -> bool {
        self.device.is_some_and(|d| d.compliant)
    }
}

/// The destination in the form the index looks up: at most one normalised
/// name and at most two canonical IPs.
pub(crate) struct Destination<'b> {
    pub(crate) name: Option<&'b str>,
    pub(crate) ips: [Option<IpAddr>; 2],
}

/// Normalise a request's destination. `None` when the host is a domain that
/// is not a valid name: such a request matches no application, whatever it
/// resolved to (fail closed, so `SECRET.corp..example` cannot dodge a rule
/// about `secret.corp.example` and reach a CIDR rule instead).
pub(crate) fn destination<'b>(req: &Request<'_>, buf: &'b mut NameBuf) -> Option<Destination<'b>> {
    let (name, host_ip) = match req.host {
        Host::Ip(ip) => (None, Some(ip)),
        Host::Domain(s) => match ip_literal(s) {
            Some(ip) => (None, Some(ip)),
            None => (Some(normalize_request_name(s, buf)?), None),
        },
    };
    let host_ip = host_ip.map(|ip| ip.to_canonical());
    let mut resolved = req.resolved.map(|ip| ip.to_canonical());
    if resolved == host_ip {
        resolved = None;
    }
    Some(Destination {
        name,
        ips: [host_ip, resolved],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parse() {
        assert_eq!(Host::parse("10.0.0.1"), Host::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(Host::parse("[fd00::1]"), Host::Ip("fd00::1".parse().unwrap()));
        assert_eq!(Host::parse("fd00::1"), Host::Ip("fd00::1".parse().unwrap()));
        assert_eq!(Host::parse("db.corp.example"), Host::Domain("db.corp.example"));
        assert_eq!(Host::parse("1password.com"), Host::Domain("1password.com"));
        assert_eq!(Host::parse(""), Host::Domain(""));
        assert_eq!(Host::parse("[]"), Host::Domain("[]"));
    }
}
