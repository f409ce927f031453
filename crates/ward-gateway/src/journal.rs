//! The journal of open connections: how a relayed connection keeps its
//! access record through a crash (SIGKILL, power loss) of the gateway.
//!
//! A relayed connection's record is written when the connection ends, and a
//! killed process ends nothing. So, before a connection is answered `200`,
//! what is known of it (the record so far: who, from where, to where, which
//! rule, when it started) is appended to `spool_dir/open/journal.jsonl` and
//! made durable. Once its final record is durable in the spool, a `closed`
//! entry follows. At the next start, before accepting anything, every entry
//! opened and never closed becomes a record in the spool, with the same id,
//! the last byte counts journaled, and `end = "gateway_restart"`.
//!
//! One JSON object per line, `op` telling which:
//!
//! ```text
//! {"op":"open","record":{...the AccessRecord so far...}}
//! {"op":"progress","id":"acr_...","up":1200,"down":53000}   bytes so far
//! {"op":"beat","ms":1700000000000}                          still alive at
//! {"op":"closed","id":"acr_..."}
//! ```
//!
//! A line torn by a crash (no final `\n`) is ignored, as is a line that does
//! not parse.
//!
//! Exactly one record, whatever the timing of the crash:
//! - the `open` entry is written to the journal file before the `200`: an
//!   agent that saw `200` has a journaled connection, whatever happens to the
//!   gateway process (a SIGKILL included: what was written is in the kernel).
//!   It reaches the disk itself with the next `fsync`, at the latest at the
//!   next heartbeat: an operating-system crash or a power cut within that
//!   second can lose it. Not waiting for the disk before answering keeps a
//!   new connection's cost off the storage's latency;
//! - the spool writer appends (and fsyncs) the final record first, then has
//!   the `closed` entry made durable, and only then lets the shipper see the
//!   record. A crash in between leaves an entry open whose record is still
//!   in the spool (nothing shipped, so nothing deleted): recovery looks for
//!   the id there and writes nothing when it is found;
//! - recovery appends its records to the spool (fsync) before it rewrites the
//!   journal without them; a crash in between finds them in the spool at the
//!   next start.
//!
//! Cost per connection: one line serialised by the connection's task and one
//! share of a group write. A single writer task collects what arrived while
//! the previous write was under way, appends it with one `write` on a
//! blocking thread (with an `fsync` when the batch holds `closed` entries, or
//! at a heartbeat), and answers everyone in the batch. Byte
//! counts are journaled by the writer itself: every [`JOURNAL_HEARTBEAT`] it
//! reads the counters of the open connections (the relay updates them as it
//! goes) and appends the ones that moved, plus a `beat` with the time, which
//! bounds the duration of a recovered connection; neither waits for a fsync.
//! The journal is rewritten with only the open entries (to a temporary file,
//! renamed over it) whenever it has grown past [`COMPACT_MIN_BYTES`] and four
//! times what is open, at every start, and after a failed write.
//!
//! When the journal cannot be written, connections are refused (`503` with
//! `ward-error`, record `end = "error"`) rather than relayed without a trace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use ward_api::AccessRecord;

use crate::config::JOURNAL_HEARTBEAT;
use crate::records::{now_ms, End};
use crate::relay::Transferred;
use crate::spool::{Position, Spool};
use crate::state::{sync_dir, write_atomically};

const JOURNAL_DIR: &str = "open";
const JOURNAL_FILE: &str = "journal.jsonl";

/// The journal is rewritten once it is past this size...
pub(crate) const COMPACT_MIN_BYTES: u64 = 1024 * 1024;
/// ...and this many times the size of what is still open.
const COMPACT_RATIO: u64 = 4;
/// Messages per write (and fsync).
const WRITE_BATCH: usize = 4096;

/// A journal line, as written.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line<'a> {
    Open { record: &'a AccessRecord },
    Progress { id: &'a str, up: u64, down: u64 },
    Beat { ms: i64 },
    Closed { id: &'a str },
}

/// A journal line, as read back.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Entry {
    Open { record: Box<AccessRecord> },
    Progress { id: String, up: u64, down: u64 },
    Beat { ms: i64 },
    Closed { id: String },
}

fn push_line(buf: &mut Vec<u8>, line: &Line<'_>) {
    let start = buf.len();
    match serde_json::to_writer(&mut *buf, line) {
        Ok(()) => buf.push(b'\n'),
        Err(e) => {
            buf.truncate(start);
            tracing::error!(error = %e, "cannot serialise a journal entry");
        }
    }
}

enum JournalMsg {
    /// Answered `true` once the line is durable.
    Open {
        id: Box<str>,
        line: Vec<u8>,
        progress: Arc<Transferred>,
        done: oneshot::Sender<bool>,
    },
    /// Answered once the `closed` entries are durable (or could not be made so).
    Closed {
        ids: Vec<String>,
        done: oneshot::Sender<()>,
    },
}

/// Hands entries to the journal writer.
#[derive(Clone)]
pub(crate) struct Journal {
    tx: mpsc::UnboundedSender<JournalMsg>,
}

impl Journal {
    pub(crate) fn new() -> (Journal, JournalReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Journal { tx }, JournalReceiver(rx))
    }

    /// Journals `record` (as known now) as an open connection whose bytes
    /// `progress` counts, and waits until that is durable. `false` when it
    /// could not be made durable: the connection must not be relayed.
    pub(crate) async fn open(&self, record: &AccessRecord, progress: Arc<Transferred>) -> bool {
        let mut line = Vec::with_capacity(512);
        push_line(&mut line, &Line::Open { record });
        if line.is_empty() {
            return false;
        }
        let (done, answer) = oneshot::channel();
        let msg = JournalMsg::Open {
            id: record.id.as_str().into(),
            line,
            progress,
            done,
        };
        if self.tx.send(msg).is_err() {
            tracing::error!(id = %record.id, "the journal writer is gone");
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Journals these connections as closed (their records are durable in
    /// the spool) and waits until that is durable too.
    pub(crate) async fn closed(&self, ids: Vec<String>) {
        let (done, answer) = oneshot::channel();
        if self.tx.send(JournalMsg::Closed { ids, done }).is_ok() {
            let _ = answer.await;
        }
    }
}

/// The writer's end of the channel.
pub(crate) struct JournalReceiver(mpsc::UnboundedReceiver<JournalMsg>);

/// An open connection as the journal writer keeps it: enough to rewrite it.
struct OpenConn {
    line: Vec<u8>,
    progress: Arc<Transferred>,
    /// The counts last journaled.
    journaled: (u64, u64),
}

/// The journal file, ready for appending.
pub(crate) struct JournalFile {
    path: PathBuf,
    /// `None` after a failed write: the file must be rewritten before the
    /// next append, since it may end with a torn line.
    file: Option<File>,
    len: u64,
    compact_min: u64,
    heartbeat: Duration,
}

fn journal_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(JOURNAL_DIR).join(JOURNAL_FILE)
}

/// Replaces the journal with `bytes`, durably, and opens it for appending.
fn rewrite(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    write_atomically(path, bytes)?;
    File::options().append(true).open(path)
}

/// Appends `bytes` (and fsyncs if `sync`).
fn append(file: &mut File, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    file.write_all(bytes)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// A connection the journal says is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphan {
    pub(crate) record: AccessRecord,
    pub(crate) up: u64,
    pub(crate) down: u64,
}

/// What a journal says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Opened and never closed, by id (so in the order they started).
    pub(crate) open: BTreeMap<String, Orphan>,
    /// The latest time the journal shows the gateway alive: its last beat,
    /// or the start of the last connection it opened (0 if none).
    pub(crate) last_ms: i64,
}

/// Reads a journal. Stops at a torn last line; skips lines that do not parse.
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.last() != Some(&b'\n') {
            tracing::warn!(line = n + 1, "the journal ends with a torn line; ignoring it");
            break;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(Entry::Open { record }) => {
                parsed.last_ms = parsed.last_ms.max(record.started_ms);
                parsed.open.insert(
                    record.id.clone(),
                    Orphan {
                        record: *record,
                        up: 0,
                        down: 0,
                    },
                );
            }
            Ok(Entry::Progress { id, up, down }) => {
                if let Some(orphan) = parsed.open.get_mut(&id) {
                    orphan.up = orphan.up.max(up);
                    orphan.down = orphan.down.max(down);
                }
            }
            Ok(Entry::Beat { ms }) => parsed.last_ms = parsed.last_ms.max(ms),
            Ok(Entry::Closed { id }) => {
                parsed.open.remove(&id);
            }
            Err(e) => tracing::warn!(line = n + 1, error = %e, "unreadable journal entry; skipping it"),
        }
    }
    parsed
}

/// The record of a connection the gateway was killed under.
fn restart_record(orphan: Orphan, last_ms: i64) -> AccessRecord {
    let Orphan { mut record, up, down } = orphan;
    record.bytes_up = up;
    record.bytes_down = down;
    record.duration_ms = u64::try_from(last_ms.saturating_sub(record.started_ms)).unwrap_or(0);
    record.end = End::GatewayRestart.as_str().to_owned();
    record
}

fn modified_ms(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// At start, before accepting: turns every connection the journal says is
/// open into a record in the spool (unless the spool already holds its id),
/// advancing `position`, then rewrites the journal empty. Returns the
/// journal, ready for the writer, and how many records it wrote.
pub(crate) fn recover(
    spool_dir: &Path,
    spool: &Spool,
    position: &mut Position,
) -> std::io::Result<(JournalFile, usize)> {
    let path = journal_path(spool_dir);
    if !spool_dir.join(JOURNAL_DIR).is_dir() {
        std::fs::create_dir_all(spool_dir.join(JOURNAL_DIR))?;
        sync_dir(spool_dir)?;
    }
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut parsed = parse(&bytes);
    let mut recovered = 0;
    if !parsed.open.is_empty() {
        // The file was last written when the gateway was last seen alive.
        let last_ms = parsed.last_ms.max(modified_ms(&path).unwrap_or(0));
        let wanted: HashSet<&str> = parsed.open.keys().map(String::as_str).collect();
        let spooled = spool.find_ids(&wanted)?;
        let mut lines = Vec::new();
        for (id, orphan) in std::mem::take(&mut parsed.open) {
            if spooled.contains(&id) {
                // Its record made it to the spool before the closed entry
                // made it here.
                continue;
            }
            let record = restart_record(orphan, last_ms);
            tracing::debug!(id = %record.id, "connection open when the gateway stopped; recording it as gateway_restart");
            serde_json::to_writer(&mut lines, &record).map_err(std::io::Error::other)?;
            lines.push(b'\n');
            recovered += 1;
        }
        if recovered > 0 {
            let (_segment, written) = spool.append(None, position.next_seq, &lines);
            written?;
            position.next_seq += recovered as u64;
        }
    }
    let file = rewrite(&path, b"")?;
    Ok((
        JournalFile {
            path,
            file: Some(file),
            len: 0,
            compact_min: COMPACT_MIN_BYTES,
            heartbeat: JOURNAL_HEARTBEAT,
        },
        recovered,
    ))
}

/// The writer task's state.
struct Writer {
    journal: JournalFile,
    open: HashMap<Box<str>, OpenConn>,
    /// Bytes of the `open` lines of `open`.
    live_bytes: u64,
    /// What the next write appends.
    buf: Vec<u8>,
    /// Whether the next write is fsync'd (closes and heartbeats; not opens).
    sync: bool,
    /// Opens in this batch: answered once it is written.
    opening: Vec<Opening>,
    closing: Vec<oneshot::Sender<()>>,
}

struct Opening {
    id: Box<str>,
    conn: OpenConn,
    done: oneshot::Sender<bool>,
    /// Closed in the same batch (its task was cut while it waited).
    closed: bool,
}

impl Writer {
    fn take(&mut self, msg: JournalMsg) {
        match msg {
            JournalMsg::Open {
                id,
                line,
                progress,
                done,
            } => {
                // Written before the 200 is answered; made durable by the
                // next heartbeat or close (see the module docs).
                self.buf.extend_from_slice(&line);
                self.opening.push(Opening {
                    id,
                    conn: OpenConn {
                        line,
                        progress,
                        journaled: (0, 0),
                    },
                    done,
                    closed: false,
                });
            }
            JournalMsg::Closed { ids, done } => {
                for id in &ids {
                    if let Some(conn) = self.open.remove(id.as_str()) {
                        self.live_bytes -= conn.line.len() as u64;
                    } else if let Some(opening) = self.opening.iter_mut().find(|o| *o.id == **id) {
                        // Rare: a task cut while it waited for its open entry.
                        opening.closed = true;
                    }
                    // Also for an id not known here (an open entry whose write
                    // failed may still have reached the disk).
                    push_line(&mut self.buf, &Line::Closed { id });
                }
                self.sync = true;
                self.closing.push(done);
            }
        }
    }

    /// Journals the byte counts that moved, and the time.
    fn heartbeat(&mut self) {
        for (id, conn) in &mut self.open {
            let now = conn.progress.get();
            if now != conn.journaled {
                push_line(
                    &mut self.buf,
                    &Line::Progress {
                        id,
                        up: now.0,
                        down: now.1,
                    },
                );
                conn.journaled = now;
            }
        }
        push_line(&mut self.buf, &Line::Beat { ms: now_ms() });
        // Opens written since the last fsync reach the disk now.
        self.sync = true;
    }

    /// What a rewrite writes: every open connection (those being opened in
    /// this batch included), its progress, and the time.
    fn compacted(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.live_bytes).unwrap_or(0) + 64);
        let all = self.open.iter_mut().chain(
            self.opening
                .iter_mut()
                .filter(|o| !o.closed)
                .map(|o| (&o.id, &mut o.conn)),
        );
        for (id, conn) in all {
            out.extend_from_slice(&conn.line);
            let now = conn.progress.get();
            if now != (0, 0) {
                push_line(
                    &mut out,
                    &Line::Progress {
                        id,
                        up: now.0,
                        down: now.1,
                    },
                );
            }
            conn.journaled = now;
        }
        push_line(&mut out, &Line::Beat { ms: now_ms() });
        out
    }

    /// Rewrites the journal from memory; `false` if that failed.
    async fn rewrite(&mut self) -> bool {
        let bytes = self.compacted();
        let path = self.journal.path.clone();
        let len = bytes.len() as u64;
        match tokio::task::spawn_blocking(move || rewrite(&path, &bytes)).await {
            Ok(Ok(file)) => {
                self.journal.file = Some(file);
                self.journal.len = len;
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot rewrite the journal of open connections");
                self.journal.file = None;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "journal rewrite task failed");
                self.journal.file = None;
                false
            }
        }
    }

    /// Writes what was collected, then answers everyone waiting on it.
    async fn commit(&mut self) {
        if self.buf.is_empty() && self.opening.is_empty() && self.closing.is_empty() {
            return;
        }
        let mut written = false;
        if let Some(mut file) = self.journal.file.take() {
            let bytes = std::mem::take(&mut self.buf);
            let sync = self.sync;
            match tokio::task::spawn_blocking(move || {
                let result = append(&mut file, &bytes, sync);
                (file, bytes, result)
            })
            .await
            {
                Ok((file, bytes, Ok(()))) => {
                    self.journal.len += bytes.len() as u64;
                    self.journal.file = Some(file);
                    self.buf = bytes;
                    written = true;
                }
                Ok((_, bytes, Err(e))) => {
                    // The file may now end with part of this batch: never
                    // append to it again.
                    tracing::error!(error = %e, "cannot append to the journal of open connections; rewriting it");
                    self.buf = bytes;
                }
                Err(e) => tracing::error!(error = %e, "journal write task failed; rewriting it"),
            }
        }
        if !written {
            // Everything this batch says is in what a rewrite writes: opens
            // included, closed ones left out, progress current.
            written = self.rewrite().await;
        }
        self.buf.clear();
        self.sync = false;
        for Opening { id, conn, done, closed } in self.opening.drain(..) {
            if written && !closed {
                self.live_bytes += conn.line.len() as u64;
                self.open.insert(id, conn);
            }
            let _ = done.send(written);
        }
        // Not waiting for a later success: the spool would stop shipping.
        // At worst a crash then recovers a record the server already has,
        // with the same id, which it stores once.
        for done in self.closing.drain(..) {
            let _ = done.send(());
        }
        if self.journal.file.is_some()
            && self.journal.len > self.journal.compact_min
            && self.journal.len > COMPACT_RATIO * self.live_bytes
        {
            let before = self.journal.len;
            if self.rewrite().await {
                tracing::debug!(before, after = self.journal.len, "journal compacted");
            }
        }
    }
}

/// Appends what connections send, in batches (group commit), and the
/// heartbeat; compacts as it goes. Ends when every [`Journal`] is gone.
pub(crate) async fn run_writer(journal: JournalFile, rx: JournalReceiver) {
    let JournalReceiver(mut rx) = rx;
    let mut tick = tokio::time::interval(journal.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writer = Writer {
        journal,
        open: HashMap::new(),
        live_bytes: 0,
        buf: Vec::new(),
        sync: false,
        opening: Vec::new(),
        closing: Vec::new(),
    };
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                writer.take(msg);
                for _ in 1..WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(msg) => writer.take(msg),
                        Err(_) => break,
                    }
                }
            }
            _ = tick.tick() => {
                if writer.open.is_empty() && writer.journal.file.is_some() {
                    continue;
                }
                // Also retries a rewrite that failed.
                writer.heartbeat();
            }
        }
        writer.commit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, started_ms: i64) -> AccessRecord {
        AccessRecord {
            id: format!("acr_{n:026}"),
            started_ms,
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            device_id: "laptop".into(),
            gateway_id: "gw".into(),
            source: "127.0.0.1".into(),
            dest_host: "db.corp.example".into(),
            dest_addr: Some("10.0.0.5".into()),
            port: 5432,
            protocol: "tcp".into(),
            action: "allow".into(),
            rule_id: Some("allow-eng".into()),
            reason: "rule_matched".into(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            end: String::new(),
        }
    }

    fn lines(entries: &[Line<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in entries {
            push_line(&mut out, entry);
        }
        out
    }

    #[test]
    fn lines_round_trip_and_closed_entries_cancel_open_ones() {
        let (a, b, c) = (record(1, 1_000), record(2, 2_000), record(3, 3_000));
        let bytes = lines(&[
            Line::Open { record: &a },
            Line::Open { record: &b },
            Line::Progress {
                id: &a.id,
                up: 10,
                down: 20,
            },
            Line::Beat { ms: 5_000 },
            Line::Closed { id: &b.id },
            Line::Open { record: &c },
            Line::Progress {
                id: &a.id,
                up: 30,
                down: 40,
            },
            // Progress of a closed connection changes nothing.
            Line::Progress {
                id: &b.id,
                up: 99,
                down: 99,
            },
        ]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"op":"open","record":{"id":"acr_"#), "{text}");
        assert!(text.contains(r#"{"op":"closed","id":"acr_00000000000000000000000002"}"#));

        let parsed = parse(&bytes);
        assert_eq!(parsed.last_ms, 5_000);
        let open: Vec<&Orphan> = parsed.open.values().collect();
        assert_eq!(
            open,
            vec![
                &Orphan {
                    record: a.clone(),
                    up: 30,
                    down: 40
                },
                &Orphan {
                    record: c.clone(),
                    up: 0,
                    down: 0
                },
            ]
        );
    }

    #[test]
    fn a_torn_last_line_and_garbage_are_ignored() {
        let (a, b) = (record(1, 1_000), record(2, 9_000));
        let mut bytes = lines(&[Line::Open { record: &a }]);
        bytes.extend_from_slice(b"not json at all\n");
        bytes.extend(lines(&[Line::Beat { ms: 4_000 }]));
        // A crash in the middle of the next write.
        let torn = lines(&[Line::Open { record: &b }]);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);

        let parsed = parse(&bytes);
        assert_eq!(parsed.open.keys().collect::<Vec<_>>(), vec![&a.id]);
        assert_eq!(parsed.last_ms, 4_000);

        // Torn right before its newline: still torn.
        let mut bytes = lines(&[Line::Open { record: &a }]);
        bytes.extend_from_slice(&torn[..torn.len() - 1]);
        assert_eq!(parse(&bytes).open.len(), 1);
        assert_eq!(parse(b"").open.len(), 0);
        assert_eq!(parse(b"{\"op\":\"closed\"").open.len(), 0);
    }

    #[test]
    fn recovery_writes_one_record_per_connection_the_spool_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        // `spooled` ended normally and its record is in the spool, but the
        // closed entry never made it; `open` was live when the gateway died;
        // `closed` ended and was journaled so.
        let started = now_ms() - 60_000;
        let (spooled, open, closed) = (record(1, started), record(2, started), record(3, started));
        let mut final_record = spooled.clone();
        final_record.end = "closed".into();
        let mut line = serde_json::to_vec(&final_record).unwrap();
        line.push(b'\n');
        let (_, r) = spool.append(None, pos.next_seq, &line);
        r.unwrap();
        pos.next_seq += 1;
        std::fs::create_dir_all(dir.path().join(JOURNAL_DIR)).unwrap();
        let path = journal_path(dir.path());
        std::fs::write(
            &path,
            lines(&[
                Line::Open { record: &spooled },
                Line::Open { record: &open },
                Line::Open { record: &closed },
                Line::Progress {
                    id: &open.id,
                    up: 7,
                    down: 11,
                },
                Line::Beat { ms: started + 1_500 },
                Line::Closed { id: &closed.id },
            ]),
        )
        .unwrap();

        let (journal, recovered) = recover(dir.path(), &spool, &mut pos).unwrap();
        assert_eq!(recovered, 1);
        assert_eq!(pos.next_seq, 2);
        assert_eq!(journal.len, 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"", "the journal starts empty");
        let batch = spool.read_batch(0, pos.next_seq, 100, None).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0], final_record);
        let got = &batch.records[1];
        assert_eq!(got.id, open.id);
        assert_eq!(got.end, "gateway_restart");
        assert_eq!((got.bytes_up, got.bytes_down), (7, 11));
        // The file was written just now: that is when the gateway was last seen.
        assert!(got.duration_ms >= 60_000, "{}", got.duration_ms);
        assert_eq!(
            AccessRecord {
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0,
                end: String::new(),
                ..got.clone()
            },
            open
        );

        // Recovering again (a crash right after) adds nothing.
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (_, recovered) = recover(dir.path(), &spool, &mut pos).unwrap();
        assert_eq!(recovered, 0);
        assert_eq!(pos.next_seq, 2);
    }

    #[test]
    fn without_a_beat_the_duration_runs_to_the_last_write() {
        let mut orphan = Orphan {
            record: record(1, 10_000),
            up: 1,
            down: 2,
        };
        assert_eq!(restart_record(orphan.clone(), 12_500).duration_ms, 2_500);
        orphan.record.started_ms = 20_000;
        assert_eq!(restart_record(orphan, 12_500).duration_ms, 0, "never negative");
    }

    #[tokio::test]
    async fn the_writer_journals_opens_progress_and_closes_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (mut file, _) = recover(dir.path(), &spool, &mut pos).unwrap();
        file.compact_min = 4 * 1024;
        file.heartbeat = Duration::from_millis(20);
        let (journal, rx) = Journal::new();
        let writer = tokio::spawn(run_writer(file, rx));
        let path = journal_path(dir.path());

        // Concurrent opens share writes; each is durable when answered.
        let long_lived = record(0, now_ms());
        let progress = Arc::new(Transferred::default());
        assert!(journal.open(&long_lived, progress.clone()).await);
        let open_many = |first: u64| {
            let tasks: Vec<_> = (first..first + 50)
                .map(|n| {
                    let journal = journal.clone();
                    tokio::spawn(async move { journal.open(&record(n, now_ms()), Arc::default()).await })
                })
                .collect();
            async move {
                for task in tasks {
                    assert!(task.await.unwrap());
                }
            }
        };
        open_many(1).await;
        let parsed = parse(&std::fs::read(&path).unwrap());
        assert_eq!(parsed.open.len(), 51);

        progress.add_up(123);
        progress.add_down(456);
        let journaled = |path: &Path| {
            let parsed = parse(&std::fs::read(path).unwrap());
            let conn = &parsed.open[&long_lived.id];
            (conn.up, conn.down)
        };
        for _ in 0..500 {
            if journaled(&path) == (123, 456) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(journaled(&path), (123, 456));

        // Connections come and go, many times over: the file stays small.
        for round in 0..20u64 {
            journal
                .closed((1..=50).map(|n| record(round * 100 + n, 0).id).collect())
                .await;
            open_many((round + 1) * 100 + 1).await;
        }
        journal
            .closed((1..=50).map(|n| record(2_000 + n, 0).id).collect())
            .await;
        // Compaction follows the answers.
        for _ in 0..500 {
            if std::fs::read(&path).unwrap().len() < 4 * 1024 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() < 4 * 1024, "compacted: {} bytes", bytes.len());
        let parsed = parse(&bytes);
        assert_eq!(parsed.open.keys().collect::<Vec<_>>(), vec![&long_lived.id]);
        assert_eq!(journaled(&path), (123, 456), "progress survives compaction");

        drop(journal);
        writer.await.unwrap();
    }
    #[tokio::test]
    async fn a_connection_closed_in_the_batch_that_opens_it_is_not_kept_open() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (mut file, _) = recover(dir.path(), &spool, &mut pos).unwrap();
        file.heartbeat = Duration::from_millis(10);
        let (journal, rx) = Journal::new();
        // Both queued before the writer runs, so it takes them in one batch.
        let r = record(1, now_ms());
        let mut line = Vec::new();
        push_line(&mut line, &Line::Open { record: &r });
        let (done, opened) = oneshot::channel();
        let msg = JournalMsg::Open {
            id: r.id.as_str().into(),
            line,
            progress: Arc::default(),
            done,
        };
        assert!(journal.tx.send(msg).is_ok());
        let (done, closed) = oneshot::channel();
        assert!(journal
            .tx
            .send(JournalMsg::Closed {
                ids: vec![r.id.clone()],
                done
            })
            .is_ok());
        let writer = tokio::spawn(run_writer(file, rx));
        assert!(opened.await.unwrap());
        closed.await.unwrap();

        let path = journal_path(dir.path());
        assert!(parse(&std::fs::read(&path).unwrap()).open.is_empty());
        // Nothing open: no heartbeat is written.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("beat"), "{text}");
        drop(journal);
        writer.await.unwrap();
    }
}
