//! Clientless web access: the gateway's HTTPS listener for applications
//! published under a host name.
//!
//! ```text
//! browser ─TLS 1.3 (h2 | http/1.1; certificate: files, or from the WebBackend
//!   naming every published host, reissued when that set changes)─► listener.rs
//!   ─► per request (proxy.rs): host ─► HostTable (hosts.rs, from the snapshot)
//!      /.well-known/ward/jwks.json ─► the assertion key's JWKS (assertion.rs)
//!      /.ward/callback?code ─► WebBackend::redeem ─► session (session.rs) ─► cookie
//!      no session ─► 302 to the portal's /portal/web/start?host=H&return=/path
//!      decide (state.rs decide_web: no device, agentless) ─► 403 page (pages.rs)
//!      allow ─► strip the Ward cookie and assertion headers, add X-Forwarded-*
//!        and X-Ward-Assertion (ES256 JWT) ─► upstream over HTTP/1.1 (upgrades
//!        for WebSockets) ─► stream both bodies ─► one access record per request
//!        (per WebSocket, at its close)
//! snapshot applied ─► HostTable rebuilt ─► live WebSockets re-decided (cut when denied)
//! ```
//!
//! **Invariant:** a request reaches an upstream only after a decision by
//! `ward-policy` for the session's user from the current snapshot, with
//! `agentless` set: rules that do not admit agentless access never match,
//! and a rule that enforces device compliance never admits (no device).
//!
//! **Invariant:** the upstream never sees the Ward session cookie, nor an
//! `X-Ward-Assertion` or `X-Forwarded-*` header the client sent.

mod assertion;
mod hosts;
mod listener;
pub(crate) mod pages;
mod proxy;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use hosts::HostTable;
pub(crate) use listener::{start, RunningWeb};

/// A future the [`WebBackend`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whose sign-in a redeemed web code carries.
pub use ward_api::WebSession;

/// What the web listener needs from the server: redeeming the one-time
/// codes browsers bring back from the portal, and (when no certificate
/// files are given) a certificate naming the published hosts.
pub trait WebBackend: Send + Sync + 'static {
    /// Redeems `code` for `host`: `Ok(None)` when the server refuses it
    /// (unknown, expired, used, another host, a disabled user).
    fn redeem<'a>(&'a self, host: &'a str, code: &'a str) -> BoxFuture<'a, anyhow::Result<Option<WebSession>>>;

    /// A certificate (chain PEM, key PEM) naming every one of `hosts`.
    /// `None` when the backend cannot issue one (certificate files are
    /// then required).
    fn certificate<'a>(&'a self, hosts: &'a [String]) -> BoxFuture<'a, Option<anyhow::Result<(String, String)>>>;
}

/// The web listener's settings (`GatewayConfig::web`).
#[derive(Clone)]
pub struct WebConfig {
    /// Where browsers connect (`0.0.0.0:443`).
    pub listen: SocketAddr,
    /// A fixed certificate (chain PEM, key PEM) covering every published
    /// host; `None`: ask the backend for one when the hosts change.
    pub cert: Option<(String, String)>,
    /// The server's URL, where browsers are sent to sign in.
    pub portal_url: String,
    /// Where the assertion signing key is kept (`web-assertion.key`, 0600).
    pub key_dir: PathBuf,
    pub backend: Arc<dyn WebBackend>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("portal_url", &self.portal_url)
            .field("key_dir", &self.key_dir)
            .finish_non_exhaustive()
    }
}

/// Names of the Ward cookie and headers.
pub(crate) const COOKIE: &str = "__Host-ward_web";
pub(crate) const ASSERTION_HEADER: &str = "x-ward-assertion";
pub(crate) const CALLBACK_PATH: &str = "/.ward/callback";
pub(crate) const JWKS_PATH: &str = "/.well-known/ward/jwks.json";
