//! The access record: one per connection attempt, built from one
//! [`ConnectionResult`] and emitted exactly once, when the connection ends
//! (a refusal ends it at once). A `Drop` safety net emits whatever is known
//! if a connection's task goes away without finishing it.
//!
//! A process that is killed runs no `Drop`: for a relayed connection the
//! record would be lost. So a connection is journaled (journal.rs) before it
//! is answered `200`, and its record is marked *journaled*: once the spool
//! has it, the spool writer journals the connection closed. After a crash,
//! the next start writes the record of every connection left open, with the
//! same id and `end = "gateway_restart"`.
//!
//! [`RecordEmitter::crash`] makes a dropped [`RunningGateway`](crate::RunningGateway)
//! behave like a killed process for journaled connections: their records are
//! no longer emitted, and the journal recovers them at the next start.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use ward_api::AccessRecord;

use crate::state::Verdict;

/// Why a connection ended, as written in [`AccessRecord::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Closed,
    Denied,
    DialFailed,
    PolicyChanged,
    /// The device certificate the tunnel was opened with expired.
    CertificateExpired,
    GatewayShutdown,
    /// Written at start for a connection the gateway was killed under.
    GatewayRestart,
    Error,
}

impl End {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Denied => "denied",
            End::DialFailed => "dial_failed",
            End::PolicyChanged => "policy_changed",
            End::CertificateExpired => "certificate_expired",
            End::GatewayShutdown => "gateway_shutdown",
            End::GatewayRestart => "gateway_restart",
            End::Error => "error",
        }
    }
}

/// What the spool writer receives.
pub(crate) enum SpoolMsg {
    /// A final record; `true` when its connection was journaled as open, so
    /// the spool writer journals it closed once the record is durable.
    Record(Box<AccessRecord>, bool),
    /// Answered once every record sent before it is on disk.
    Flush(oneshot::Sender<()>),
}

/// Hands finished records to the spool writer. Sending never blocks, so it
/// works from `Drop`.
#[derive(Clone)]
pub(crate) struct RecordEmitter {
    inner: Arc<EmitterInner>,
}

struct EmitterInner {
    tx: mpsc::UnboundedSender<SpoolMsg>,
    /// Set by [`RecordEmitter::crash`].
    crashed: AtomicBool,
}

impl RecordEmitter {
    pub(crate) fn new(tx: mpsc::UnboundedSender<SpoolMsg>) -> RecordEmitter {
        RecordEmitter {
            inner: Arc::new(EmitterInner {
                tx,
                crashed: AtomicBool::new(false),
            }),
        }
    }

    /// From now on, records of journaled connections are dropped instead of
    /// emitted, as a killed process would: the journal recovers them at the
    /// next start (`end = "gateway_restart"`). Used when a running gateway is
    /// dropped without a shutdown.
    pub(crate) fn crash(&self) {
        self.inner.crashed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn emit(&self, record: AccessRecord, journaled: bool) {
        if journaled && self.inner.crashed.load(Ordering::SeqCst) {
            tracing::debug!(id = %record.id, "gateway dropped; the journal recovers this record at the next start");
            return;
        }
        if let Err(lost) = self.inner.tx.send(SpoolMsg::Record(Box::new(record), journaled)) {
            if let SpoolMsg::Record(record, journaled) = lost.0 {
                if journaled {
                    tracing::warn!(id = %record.id, "spool writer is gone; the journal recovers this record at the next start");
                } else {
                    tracing::error!(id = %record.id, "spool writer is gone; access record lost");
                }
            }
        }
    }

    /// Waits until everything emitted so far is durable.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(SpoolMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A new access-record id: `acr_` and a lowercase ULID, monotonic within
/// this process so ids sort in the order connections started.
pub(crate) fn new_record_id() -> String {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let id = match GENERATOR.lock() {
        Ok(mut g) => g.generate().unwrap_or_else(|_| ulid::Ulid::new()),
        Err(_) => ulid::Ulid::new(),
    };
    format!("acr_{}", id.to_string().to_ascii_lowercase())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One connection attempt while it is handled. Fill it in as the attempt
/// progresses and call [`finish`](Self::finish) once; dropping it unfinished
/// emits it anyway, with `end = "error"` (or the end a canceller set).
pub(crate) struct ConnectionResult {
    record: AccessRecord,
    started: Instant,
    emitter: RecordEmitter,
    emitted: bool,
    /// Journaled as open (or an attempt was made): the record must close it.
    journaled: bool,
}

impl ConnectionResult {
    pub(crate) fn new(
        emitter: RecordEmitter,
        gateway_id: &str,
        tenant_id: &str,
        device_id: &str,
        source: IpAddr,
    ) -> ConnectionResult {
        ConnectionResult {
            record: AccessRecord {
                id: new_record_id(),
                started_ms: now_ms(),
                tenant_id: tenant_id.to_owned(),
                user_id: String::new(),
                device_id: device_id.to_owned(),
                gateway_id: gateway_id.to_owned(),
                source: source.to_string(),
                dest_host: String::new(),
                dest_addr: None,
                port: 0,
                protocol: "tcp".to_owned(),
                // Until a decision says otherwise, nothing was allowed.
                action: "deny".to_owned(),
                rule_id: None,
                reason: "not_decided".to_owned(),
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0,
                end: String::new(),
                method: None,
                path: None,
                status: None,
                kind: "private".to_owned(),
                ..AccessRecord::default()
            },
            started: Instant::now(),
            emitter,
            emitted: false,
            journaled: false,
        }
    }

    /// The record as known so far.
    pub(crate) fn record(&self) -> &AccessRecord {
        &self.record
    }

    /// The record, for the fields only some kinds of traffic have (web:
    /// kind, action, url, upload...).
    pub(crate) fn record_mut(&mut self) -> &mut AccessRecord {
        &mut self.record
    }

    /// Drops the result without a record: for a stream whose requests each
    /// leave their own (the internet proxy's plain-HTTP streams).
    pub(crate) fn discard(mut self) {
        self.emitted = true;
    }

    /// The connection is being journaled as open: its record will journal it
    /// closed. Set before the attempt, so that even a failed attempt that
    /// reached the disk gets closed.
    pub(crate) fn set_journaled(&mut self) {
        self.journaled = true;
    }

    pub(crate) fn set_destination(&mut self, host: &str, port: u16) {
        host.clone_into(&mut self.record.dest_host);
        self.record.port = port;
    }

    pub(crate) fn set_user(&mut self, user_id: &str) {
        user_id.clone_into(&mut self.record.user_id);
    }

    pub(crate) fn set_reason(&mut self, reason: &str) {
        reason.clone_into(&mut self.record.reason);
    }

    pub(crate) fn set_verdict(&mut self, verdict: &Verdict) {
        self.record.action = if verdict.allowed { "allow" } else { "deny" }.to_owned();
        self.record.rule_id = verdict.rule_id.as_deref().map(str::to_owned);
        self.set_reason(verdict.reason);
    }

    pub(crate) fn set_dest_addr(&mut self, addr: SocketAddr) {
        self.record.dest_addr = Some(addr.ip().to_string());
    }

    pub(crate) fn set_bytes(&mut self, up: u64, down: u64) {
        self.record.bytes_up = up;
        self.record.bytes_down = down;
    }

    /// Emits the record with this end. Consumes the result: a record is
    /// emitted once.
    pub(crate) fn finish(mut self, end: End) {
        self.emit(end);
    }

    fn emit(&mut self, end: End) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        self.record.end = end.as_str().to_owned();
        self.record.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let record = std::mem::replace(&mut self.record, empty_record());
        self.emitter.emit(record, self.journaled);
    }
}

impl Drop for ConnectionResult {
    fn drop(&mut self) {
        if !self.emitted {
            tracing::debug!(id = %self.record.id, "connection ended without a result; recording it as an error");
            self.emit(End::Error);
        }
    }
}

fn empty_record() -> AccessRecord {
    AccessRecord {
        id: String::new(),
        started_ms: 0,
        tenant_id: String::new(),
        user_id: String::new(),
        device_id: String::new(),
        gateway_id: String::new(),
        source: String::new(),
        dest_host: String::new(),
        dest_addr: None,
        port: 0,
        protocol: String::new(),
        action: String::new(),
        rule_id: None,
        reason: String::new(),
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
        end: String::new(),
        method: None,
        path: None,
        status: None,
        ..AccessRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tx: &mpsc::UnboundedSender<SpoolMsg>) -> ConnectionResult {
        ConnectionResult::new(
            RecordEmitter::new(tx.clone()),
            "gw",
            "acme",
            "laptop",
            "127.0.0.1".parse().unwrap(),
        )
    }

    fn records(rx: &mut mpsc::UnboundedReceiver<SpoolMsg>) -> Vec<AccessRecord> {
        let mut out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let SpoolMsg::Record(r, _) = msg {
                out.push(*r);
            }
        }
        out
    }

    #[test]
    fn finish_emits_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut r = result(&tx);
        r.set_destination("db.corp.example", 5432);
        r.finish(End::Closed);
        let got = records(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].end, "closed");
        assert_eq!(got[0].port, 5432);
        assert!(got[0].id.starts_with("acr_"));
    }

    #[test]
    fn drop_is_a_safety_net() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(result(&tx));
        let got = records(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].end, "error");
        assert_eq!(got[0].action, "deny");
    }

    #[test]
    fn after_a_crash_only_journaled_records_are_left_to_the_journal() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let emitter = RecordEmitter::new(tx);
        let new = || ConnectionResult::new(emitter.clone(), "gw", "acme", "laptop", "127.0.0.1".parse().unwrap());
        let mut journaled = new();
        journaled.set_journaled();
        let refused = new();
        emitter.crash();
        drop(journaled);
        drop(refused);
        let got = records(&mut rx);
        assert_eq!(got.len(), 1, "only the one the journal does not know");
        assert_eq!(got[0].end, "error");

        // Before the crash, a journaled record is emitted, marked so.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut r = result(&tx);
        r.set_journaled();
        r.finish(End::Closed);
        assert!(matches!(rx.try_recv(), Ok(SpoolMsg::Record(_, true))));
    }

    #[test]
    fn ids_are_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_record_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| id.len() == 30 && id == &id.to_ascii_lowercase()));
    }
}
