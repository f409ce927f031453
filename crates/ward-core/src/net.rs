//! Which addresses are not the internet: where traffic meant for the
//! internet (the filtering proxy's, a list download's) must not go unless
//! the operator says the "internet" really is local.

use std::net::IpAddr;

/// Loopback, private (RFC 1918, unique local), link-local, shared
/// (100.64.0.0/10), unspecified, broadcast and `0.0.0.0/8` addresses, and
/// IPv4-mapped IPv6 forms of them.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_public_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(a.parse().unwrap_or_else(|_| unreachable!())), "{a}");
        }
        for a in ["192.0.2.1", "8.8.8.8", "100.128.0.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            assert!(!is_internal(a.parse().unwrap_or_else(|_| unreachable!())), "{a}");
        }
    }
}
