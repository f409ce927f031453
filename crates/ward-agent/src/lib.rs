//! Ward's endpoint agent.
//!
//! The agent runs on a user's machine. It exposes local SOCKS5 and HTTP proxies
//! and carries each connection they accept to the Ward gateway over an HTTP/2
//! CONNECT stream, where access policy is enforced and the destination is
//! reached.
//!
//! [`proxy`] holds the protocol front ends of those local proxies: it turns
//! what a local application sends into a [`proxy::Target`] (and, for plain HTTP,
//! a rewritten request head), and writes the answers the protocols call for. It
//! knows nothing of the tunnel: names are never resolved locally, they are
//! passed on to be resolved at the gateway side.

pub mod proxy;
