//! Protocol front ends of the agent's local proxies.
//!
//! - [`socks5`]: RFC 1928 SOCKS5, no authentication, CONNECT only.
//! - [`http`]: an HTTP/1.1 forward proxy, `CONNECT` and absolute-form requests.
//! - [`target`]: where a client wants to go, as an IP address or an unresolved
//!   domain name, validated.
//!
//! Each front end reads exactly the protocol's handshake from the client and
//! nothing more: whatever follows (tunnel data, a request body) is left for the
//! caller to carry. None of them applies timeouts; callers wrap them in
//! [`tokio::time::timeout`] so a silent client cannot hold a task forever.

pub mod http;
pub mod socks5;
pub mod target;

pub use target::{Target, TargetError};
