//! Ward's endpoint agent.
//!
//! The agent runs on a user's machine. It enrols the device ([`enroll`]),
//! exposes local SOCKS5 and HTTP proxies and port forwards ([`up`]) and
//! carries each connection they accept to the Ward gateway over an HTTP/2
//! CONNECT stream of one mutually authenticated TLS connection ([`tunnel`]),
//! where access policy is enforced and the destination is reached. In the
//! background it renews its certificate and reports the device's posture
//! ([`posture`]).
//!
//! - [`cli`]: `ward agent enroll | up | forward | status`, as
//!   [`cli::AgentArgs`] and [`cli::run`] for the `ward` binary.
//! - [`dns`]: `--dns-listen`, a local DNS server whose queries go to the
//!   gateway's DNS filter on the tunnel ([`tunnel::Tunnel::dns_query`]).
//! - [`state`]: the state directory (identity, key, certificates, token).
//! - [`status`]: what a running agent writes for `ward agent status`.
//! - [`proxy`]: the protocol front ends of the local proxies: it turns what a
//!   local application sends into a [`proxy::Target`] (and, for plain HTTP, a
//!   rewritten request head), and writes the answers the protocols call for.
//!   It knows nothing of the tunnel: names are never resolved locally, they
//!   are passed on to be resolved at the gateway side.

pub mod cli;
pub mod dns;
pub mod enroll;
mod local;
pub mod posture;
pub mod proxy;
pub mod routing;
pub mod state;
pub mod status;
pub mod tunnel;
pub mod up;

/// Now, as RFC 3339 in UTC (seconds precision).
pub(crate) fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// A time as RFC 3339 in UTC, whole seconds.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

/// An error as one line for people: the message, then each cause not
/// already said. The chain stops at a `ward_client::ClientError`, whose
/// message already names the innermost cause (transport layers below it only
/// repeat it at length).
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
        if cause.downcast_ref::<ward_client::ClientError>().is_some() {
            break;
        }
    }
    msg.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_say_each_thing_once() {
        let inner = std::io::Error::other("disk full");
        let e = anyhow::Error::new(inner)
            .context("cannot write x: disk full")
            .context("saving");
        assert_eq!(error_line(&e), "saving: cannot write x: disk full");
        let api = ward_client::ClientError::Config("bad".into());
        let e = anyhow::Error::new(api).context("posture report failed");
        assert_eq!(error_line(&e), "posture report failed: bad");
    }
}
