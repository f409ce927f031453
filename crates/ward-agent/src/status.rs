//! What a running `ward agent up` tells `ward agent status`: `status.json`
//! in the state directory, rewritten every few seconds, with the tunnel's
//! state and the last decisions.
//!
//! `status` counts the agent as running while the file is younger than
//! [`STALE_AFTER`] and does not say it stopped.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxy::Target;
use crate::state::{write_atomic_unsynced, PUBLIC_MODE, STATUS_FILE};
use crate::tunnel::{TunnelError, TunnelStatus};

/// Decisions kept in memory and in `status.json`.
pub const MAX_DECISIONS: usize = 20;
/// How often a running agent rewrites `status.json`.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// A `status.json` older than this is from an agent that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// What became of one local connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    DialFailed,
    BadRequest,
    Unavailable,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::DialFailed => "dial failed",
            Outcome::BadRequest => "bad request",
            Outcome::Unavailable => "unavailable",
            Outcome::Error => "error",
        }
    }
}

/// One local connection and what the gateway decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// When (RFC 3339).
    pub at: String,
    /// Which front end: `socks`, `http` or `forward`.
    pub via: String,
    /// The destination, `host:port`.
    pub target: String,
    pub outcome: Outcome,
    /// The rule that denied it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, for anything but `allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Decision {
    /// The decision for the outcome of `Tunnel::open`.
    pub fn new<T>(via: &str, target: &Target, result: &Result<T, TunnelError>) -> Decision {
        let (outcome, rule, reason) = match result {
            Ok(_) => (Outcome::Allowed, None, None),
            Err(TunnelError::Denied { rule, reason, .. }) => (Outcome::Denied, rule.clone(), Some(reason.clone())),
            Err(e @ TunnelError::DialFailed(_)) => (Outcome::DialFailed, None, Some(e.to_string())),
            Err(e @ TunnelError::BadRequest) => (Outcome::BadRequest, None, Some(e.to_string())),
            Err(e @ TunnelError::Unavailable(_)) => (Outcome::Unavailable, None, Some(e.to_string())),
            Err(e) => (Outcome::Error, None, Some(e.to_string())),
        };
        Decision {
            at: crate::now_rfc3339(),
            via: via.to_owned(),
            target: target.authority(),
            outcome,
            rule,
            reason,
        }
    }
}

/// The last [`MAX_DECISIONS`] decisions; cheap to clone, shared.
#[derive(Debug, Clone, Default)]
pub struct Decisions(Arc<Mutex<VecDeque<Decision>>>);

impl Decisions {
    /// Adds one, dropping the oldest beyond [`MAX_DECISIONS`].
    pub fn record(&self, decision: Decision) {
        if let Ok(mut ring) = self.0.lock() {
            if ring.len() == MAX_DECISIONS {
                ring.pop_front();
            }
            ring.push_back(decision);
        }
    }

    /// The decisions kept, oldest first.
    pub fn recent(&self) -> Vec<Decision> {
        self.0.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
}

/// A running agent's `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    /// False in the last file an agent writes as it stops.
    pub running: bool,
    pub started_at: String,
    /// When this was written (RFC 3339 and ms since the epoch).
    pub updated_at: String,
    pub updated_ms: i64,
    /// The SOCKS5 proxy's address, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socks: Option<String>,
    /// The HTTP proxy's address, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Port forwards: `local -> host:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<String>,
    pub tunnel: TunnelStatus,
    /// Oldest first.
    pub decisions: Vec<Decision>,
    /// Why the last certificate renewal failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_error: Option<String>,
    /// Why the last posture report failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_error: Option<String>,
}

impl AgentStatus {
    /// Reads `status.json` from a state directory; `None` if there is none
    /// or it does not parse.
    pub fn read(dir: &Path) -> Option<AgentStatus> {
        let text = std::fs::read_to_string(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes it to a state directory, atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        write_atomic_unsynced(&dir.join(STATUS_FILE), &json, PUBLIC_MODE)
    }

    /// Whether the agent that wrote it is running, at `now_ms`: it said so
    /// less than [`STALE_AFTER`] ago.
    pub fn is_live(&self, now_ms: i64) -> bool {
        let age = now_ms.saturating_sub(self.updated_ms);
        self.running && (-1000..i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX)).contains(&age)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tunnel::LinkState;

    #[test]
    fn ring_keeps_the_last_twenty() {
        let ring = Decisions::default();
        let target: Target = "db.internal:5432".parse().unwrap();
        for i in 0..25 {
            let result: Result<(), TunnelError> = if i % 2 == 0 {
                Ok(())
            } else {
                Err(TunnelError::Denied {
                    rule: Some(format!("rul_{i}")),
                    reason: "rule_matched".into(),
                    proceed: None,
                })
            };
            ring.record(Decision::new("socks", &target, &result));
        }
        let recent = ring.recent();
        assert_eq!(recent.len(), MAX_DECISIONS);
        assert_eq!(recent[0].rule.as_deref(), Some("rul_5"));
        assert_eq!(recent[19].outcome, Outcome::Allowed);
        assert_eq!(recent[19].target, "db.internal:5432");
    }

    #[test]
    fn liveness_from_age() {
        let status = AgentStatus {
            pid: 1,
            running: true,
            started_at: String::new(),
            updated_at: String::new(),
            updated_ms: 100_000,
            socks: None,
            http: None,
            forwards: vec![],
            tunnel: TunnelStatus {
                gateway: "gw:1".into(),
                state: LinkState::Idle,
                connected_since: None,
                last_error: None,
                connections: 0,
                failed_attempts: 0,
                streams_opened: 0,
                streams_refused: 0,
                active_streams: 0,
            },
            decisions: vec![],
            renewal_error: None,
            posture_error: None,
        };
        assert!(status.is_live(105_000));
        assert!(!status.is_live(111_000));
        let stopped = AgentStatus {
            running: false,
            ..status.clone()
        };
        assert!(!stopped.is_live(100_500));
        let dir = tempfile::tempdir().unwrap();
        status.write(dir.path()).unwrap();
        assert_eq!(AgentStatus::read(dir.path()), Some(status));
    }
}
