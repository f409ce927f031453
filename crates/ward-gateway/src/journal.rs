//! The journal of open connections: how a relayed connection keeps its
//! access record through a crash (SIGKILL, power loss) of the gateway.
//!
//! A relayed connection's record is written when the connection ends, and a
//! killed process ends nothing. So, before a connection is answered `200`,
//! what is known of it (the record so far: who, from where, to where, which
//! rule, when it started) is appended to the journal in `spool_dir/open/`.
//! Once its final record is durable in the spool, a `closed` entry follows.
//! At the next start, before accepting anything, every entry opened and
//! never closed becomes a record in the spool, with the same id, the last
//! byte counts journaled, and `end = "gateway_restart"`.
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
//! The journal is a series of files, `journal-<generation>.jsonl`, read in
//! order at start. Only the newest is appended to. Compaction starts the next
//! generation with the entries still open, and the older files are deleted
//! only once the new one is on disk, so a crash at any point leaves at least
//! one complete copy of every open entry. (A file named `journal.jsonl`, the
//! layout of earlier versions, is read as generation 0.)
//!
//! Exactly one record, whatever the timing of the crash:
//! - the `open` entry is written to the journal file before the `200`: an
//!   agent that saw `200` has a journaled connection, whatever happens to the
//!   gateway process (a SIGKILL included: what was written is in the kernel).
//!   It reaches the disk itself with the next `fsync`, at the latest at the
//!   next heartbeat: an operating-system crash or a power cut within that
//!   second can lose it. Not waiting for the disk before answering keeps a
//!   new connection's cost off the storage's latency;
//! - the spool writer appends (and fsyncs) the final record first, then
//!   journals the connection closed, and only then lets the shipper see the
//!   record. A crash in between leaves an entry open whose record is still
//!   in the spool (nothing shipped, so nothing deleted): recovery looks for
//!   the id there and writes nothing when it is found. Should the `closed`
//!   entry be lost after the record shipped (an OS crash before the next
//!   heartbeat's `fsync`), the record recovery writes carries the id the
//!   server already stored, and the server keeps the first;
//! - recovery appends its records to the spool (fsync) before it starts a
//!   new journal without them; a crash in between finds them in the spool at
//!   the next start.
//!
//! Cost per connection: one line serialised by the connection's task and
//! two small `write`s (open, closed) to the page cache under a mutex, made
//! by the task itself: no hand-off to another thread and no waiting for the
//! disk. The keeper task does the rest once per [`JOURNAL_HEARTBEAT`](crate::config::JOURNAL_HEARTBEAT): it
//! journals the byte counts of the open connections that moved (the relay
//! updates them as it goes) and a `beat` with the time, which bounds the
//! duration of a recovered connection, `fsync`s on a blocking thread
//! without holding the mutex, and compacts once the file has grown past
//! [`COMPACT_MIN_BYTES`] and four times what is open.
//!
//! When the journal cannot be written, connections are refused (`503` with
//! `ward-error`, record `end = "error"`) rather than relayed without a
//! trace, until the keeper has started a new generation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ward_api::AccessRecord;

use crate::records::{now_ms, End};
use crate::relay::Transferred;
use crate::spool::{Position, Spool};
use crate::state::sync_dir;

const JOURNAL_DIR: &str = "open";
/// The single journal file of earlier versions: read as generation 0.
const LEGACY_FILE: &str = "journal.jsonl";
const FILE_PREFIX: &str = "journal-";
const FILE_SUFFIX: &str = ".jsonl";

/// The journal is compacted once it is past this size...
pub(crate) const COMPACT_MIN_BYTES: u64 = 1024 * 1024;
/// ...and this many times the size of what is still open.
const COMPACT_RATIO: u64 = 4;

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

/// The journal of open connections; cheap to clone, shared by every
/// connection task, the spool writer and the keeper.
#[derive(Clone)]
pub(crate) struct Journal {
    shared: Arc<Mutex<Shared>>,
}

/// An open connection as the journal keeps it: enough to compact.
struct OpenConn {
    line: Vec<u8>,
    progress: Arc<Transferred>,
    /// The counts last journaled.
    journaled: (u64, u64),
}

struct Shared {
    dir: PathBuf,
    /// The newest generation's file. `None` after a failed write (the file
    /// may end with a torn line): opens are refused until the keeper starts
    /// the next generation.
    file: Option<Arc<File>>,
    generation: u64,
    len: u64,
    open: HashMap<Box<str>, OpenConn>,
    /// Bytes of the `open` lines of `open`.
    live_bytes: u64,
    /// Written since the last `fsync`.
    dirty: bool,
    /// Older generations exist: delete them once `generation` is synced.
    superseded: bool,
    compact_min: u64,
    /// Reused for the keeper's lines.
    scratch: Vec<u8>,
}

fn generation_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{FILE_PREFIX}{generation:020}{FILE_SUFFIX}"))
}

/// The journal files in `dir`, oldest generation first.
fn generations(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let generation = if name == LEGACY_FILE {
            Some(0)
        } else {
            name.strip_prefix(FILE_PREFIX)
                .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
                .and_then(|n| n.parse().ok())
        };
        if let Some(generation) = generation {
            found.push((generation, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes every journal file older than `keep`, durably.
fn delete_older(dir: &Path, keep: u64) -> std::io::Result<()> {
    let mut deleted = false;
    for (generation, path) in generations(dir)? {
        if generation < keep {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if deleted {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Creates (or empties) the file of `generation` and writes `bytes` to it;
/// not synced.
fn create_generation(dir: &Path, generation: u64, bytes: &[u8]) -> std::io::Result<File> {
    let mut file = File::options()
        .create(true)
        .write(true)
        .truncate(true)
        .open(generation_path(dir, generation))?;
    file.write_all(bytes)?;
    Ok(file)
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves nothing half-done that
        // matters more than refusing connections would.
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Journals `record` (as known now) as an open connection whose bytes
    /// `progress` counts: written (not synced) when this returns `true`.
    /// `false` when it could not be written: the connection must not be
    /// relayed.
    pub(crate) fn open(&self, record: &AccessRecord, progress: Arc<Transferred>) -> bool {
        let mut line = Vec::with_capacity(512);
        push_line(&mut line, &Line::Open { record });
        if line.is_empty() {
            return false;
        }
        let mut shared = self.lock();
        if !shared.append(&line) {
            return false;
        }
        shared.live_bytes += line.len() as u64;
        shared.open.insert(
            record.id.as_str().into(),
            OpenConn {
                line,
                progress,
                journaled: (0, 0),
            },
        );
        true
    }

    /// Journals these connections as closed (their records are durable in
    /// the spool). Written, not synced: see the module docs.
    pub(crate) fn closed(&self, ids: &[String]) {
        let mut lines = Vec::with_capacity(ids.len() * 48);
        for id in ids {
            // Also for an id not known here (an open entry whose write
            // failed may still have reached the disk).
            push_line(&mut lines, &Line::Closed { id });
        }
        let mut shared = self.lock();
        for id in ids {
            if let Some(conn) = shared.open.remove(id.as_str()) {
                shared.live_bytes -= conn.line.len() as u64;
            }
        }
        // A failed write leaves the file to be replaced by one holding only
        // what is still open, which closes these as well.
        shared.append(&lines);
    }

    /// One heartbeat: journals progress and the time (when something is
    /// open), compacts when due, and makes everything written so far
    /// durable. Also starts a new generation after a failed write.
    pub(crate) async fn tick(&self) {
        let (file, dir, generation, delete) = {
            let mut shared = self.lock();
            let compact = shared.file.is_none()
                || (shared.len > shared.compact_min && shared.len > COMPACT_RATIO * shared.live_bytes);
            if compact {
                shared.next_generation();
            } else if !shared.open.is_empty() {
                shared.heartbeat();
            }
            let Some(file) = shared.file.clone() else { return };
            if !shared.dirty && !shared.superseded {
                return;
            }
            shared.dirty = false;
            (file, shared.dir.clone(), shared.generation, shared.superseded)
        };
        let synced = tokio::task::spawn_blocking(move || {
            file.sync_data()?;
            if delete {
                // The new generation's name must be durable before the old
                // files go.
                sync_dir(&dir)?;
                delete_older(&dir, generation)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        let failed = match synced {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let mut shared = self.lock();
        if shared.generation != generation {
            return;
        }
        match failed {
            None => shared.superseded &= !delete,
            Some(e) => {
                // What the failed fsync covered may be lost: write it all
                // again, in a new generation.
                tracing::error!(error = %e, "cannot sync the journal of open connections; starting a new one");
                shared.file = None;
            }
        }
    }
}

impl Shared {
    /// Appends `bytes`; `false` (and the file marked for replacement) when
    /// that fails.
    fn append(&mut self, bytes: &[u8]) -> bool {
        let Some(file) = &self.file else { return false };
        match (&**file).write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.dirty = true;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot append to the journal of open connections; starting a new one");
                self.file = None;
                false
            }
        }
    }

    fn heartbeat(&mut self) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        for (id, conn) in &mut self.open {
            let now = conn.progress.get();
            if now != conn.journaled {
                push_line(
                    &mut buf,
                    &Line::Progress {
                        id,
                        up: now.0,
                        down: now.1,
                    },
                );
                conn.journaled = now;
            }
        }
        push_line(&mut buf, &Line::Beat { ms: now_ms() });
        self.append(&buf);
        self.scratch = buf;
    }

    /// Everything still open, with its progress, and the time.
    fn compacted(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.live_bytes).unwrap_or(0) + 64);
        for (id, conn) in &mut self.open {
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

    /// Continues in a new generation that holds what is open. Written to
    /// the page cache only (the keeper syncs it before deleting the older
    /// files), so connections wait for no disk here either.
    fn next_generation(&mut self) {
        let bytes = self.compacted();
        let generation = self.generation + 1;
        match create_generation(&self.dir, generation, &bytes) {
            Ok(file) => {
                tracing::debug!(before = self.len, after = bytes.len(), generation, "journal compacted");
                self.file = Some(Arc::new(file));
                self.generation = generation;
                self.len = bytes.len() as u64;
                self.dirty = true;
                self.superseded = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start a new journal of open connections; refusing connections");
                self.file = None;
            }
        }
    }
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

/// Reads one journal file.
#[cfg(test)]
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    parse_into(&mut parsed, bytes);
    parsed
}

/// Reads one journal file into what the earlier ones said. Stops at a torn
/// last line; skips lines that do not parse. An entry opened again (a
/// compacted copy) keeps the progress already read.
fn parse_into(parsed: &mut Parsed, bytes: &[u8]) {
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.last() != Some(&b'\n') {
            tracing::warn!(line = n + 1, "a journal file ends with a torn line; ignoring it");
            break;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(Entry::Open { record }) => {
                parsed.last_ms = parsed.last_ms.max(record.started_ms);
                parsed.open.entry(record.id.clone()).or_insert(Orphan {
                    record: *record,
                    up: 0,
                    down: 0,
                });
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
/// advancing `position`, then continues in a new, empty generation. Returns
/// the journal, ready for connections, and how many records it wrote.
pub(crate) fn recover(spool_dir: &Path, spool: &Spool, position: &mut Position) -> std::io::Result<(Journal, usize)> {
    let dir = spool_dir.join(JOURNAL_DIR);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)?;
        sync_dir(spool_dir)?;
    }
    let files = generations(&dir)?;
    let mut parsed = Parsed::default();
    let mut last_write = 0;
    for (_, path) in &files {
        match std::fs::read(path) {
            Ok(bytes) => parse_into(&mut parsed, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        // A file was last written when the gateway was last seen alive.
        last_write = last_write.max(modified_ms(path).unwrap_or(0));
    }
    let mut recovered = 0;
    if !parsed.open.is_empty() {
        let last_ms = parsed.last_ms.max(last_write);
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
    // The recovered records are durable in the spool: start afresh.
    let generation = files.last().map_or(1, |(g, _)| g + 1);
    let file = create_generation(&dir, generation, b"")?;
    file.sync_all()?;
    sync_dir(&dir)?;
    delete_older(&dir, generation)?;
    let journal = Journal {
        shared: Arc::new(Mutex::new(Shared {
            dir,
            file: Some(Arc::new(file)),
            generation,
            len: 0,
            open: HashMap::new(),
            live_bytes: 0,
            dirty: false,
            superseded: false,
            compact_min: COMPACT_MIN_BYTES,
            scratch: Vec::new(),
        })),
    };
    Ok((journal, recovered))
}

/// The keeper: a heartbeat every `interval` (see [`Journal::tick`]).
pub(crate) async fn run_keeper(journal: Journal, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        journal.tick().await;
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
            // As the gateway makes them (the default is empty; the wire form "private").
            kind: "private".into(),
            ..Default::default()
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
        // Written by an earlier version, which kept one file.
        let path = dir.path().join(JOURNAL_DIR).join(LEGACY_FILE);
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
        assert_eq!(journal.lock().len, 0);
        assert!(!path.exists());
        assert_eq!(journal_bytes(dir.path()), b"", "the journal starts empty");
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

    /// Every journal file, oldest first, concatenated.
    fn journal_bytes(spool_dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, path) in generations(&spool_dir.join(JOURNAL_DIR)).unwrap() {
            out.extend(std::fs::read(path).unwrap());
        }
        out
    }

    fn generation_count(spool_dir: &Path) -> usize {
        generations(&spool_dir.join(JOURNAL_DIR)).unwrap().len()
    }

    #[tokio::test]
    async fn the_journal_records_opens_progress_and_closes_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (journal, _) = recover(dir.path(), &spool, &mut pos).unwrap();
        journal.lock().compact_min = 4 * 1024;

        // Opens from many tasks at once; each is in the file when answered.
        let long_lived = record(0, now_ms());
        let progress = Arc::new(Transferred::default());
        assert!(journal.open(&long_lived, progress.clone()));
        let open_many = |first: u64| {
            let tasks: Vec<_> = (first..first + 50)
                .map(|n| {
                    let journal = journal.clone();
                    tokio::spawn(async move { journal.open(&record(n, now_ms()), Arc::default()) })
                })
                .collect();
            async move {
                for task in tasks {
                    assert!(task.await.unwrap());
                }
            }
        };
        open_many(1).await;
        assert_eq!(parse(&journal_bytes(dir.path())).open.len(), 51);

        // The heartbeat journals the byte counts that moved.
        progress.add_up(123);
        progress.add_down(456);
        journal.tick().await;
        let journaled = |bytes: &[u8]| {
            let parsed = parse(bytes);
            let conn = &parsed.open[&long_lived.id];
            (conn.up, conn.down)
        };
        assert_eq!(journaled(&journal_bytes(dir.path())), (123, 456));
        assert!(!journal.lock().dirty, "synced");

        // Connections come and go, many times over: the file stays small.
        for round in 0..20u64 {
            let ids: Vec<String> = (1..=50).map(|n| record(round * 100 + n, 0).id).collect();
            journal.closed(&ids);
            open_many((round + 1) * 100 + 1).await;
        }
        let ids: Vec<String> = (1..=50).map(|n| record(2_000 + n, 0).id).collect();
        journal.closed(&ids);
        assert!(journal_bytes(dir.path()).len() > 4 * 1024);
        journal.tick().await;
        let bytes = journal_bytes(dir.path());
        assert!(bytes.len() < 4 * 1024, "compacted: {} bytes", bytes.len());
        assert_eq!(
            generation_count(dir.path()),
            1,
            "the older generation is gone once the new one is synced"
        );
        let parsed = parse(&bytes);
        assert_eq!(parsed.open.keys().collect::<Vec<_>>(), vec![&long_lived.id]);
        assert_eq!(journaled(&bytes), (123, 456), "progress survives compaction");

        // And a restart finds exactly that one connection.
        drop(journal);
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (_journal, recovered) = recover(dir.path(), &spool, &mut pos).unwrap();
        assert_eq!(recovered, 1);
        let batch = spool.read_batch(0, pos.next_seq, 10, None).unwrap();
        assert_eq!(batch.records[0].id, long_lived.id);
        assert_eq!((batch.records[0].bytes_up, batch.records[0].bytes_down), (123, 456));
    }

    #[tokio::test]
    async fn after_a_failed_write_opens_are_refused_until_a_new_generation_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let (journal, _) = recover(dir.path(), &spool, &mut pos).unwrap();
        let (a, b) = (record(1, now_ms()), record(2, now_ms()));
        assert!(journal.open(&a, Arc::default()));
        // What a failed `write` leaves behind.
        journal.lock().file = None;
        assert!(!journal.open(&b, Arc::default()), "refused, not relayed untraced");
        journal.tick().await;
        assert!(journal.open(&b, Arc::default()));
        let parsed = parse(&journal_bytes(dir.path()));
        assert_eq!(parsed.open.keys().collect::<Vec<_>>(), vec![&a.id, &b.id]);
        assert_eq!(generation_count(dir.path()), 1);
    }

    #[test]
    fn a_crash_during_compaction_leaves_both_generations_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, mut pos) = Spool::open(dir.path()).unwrap();
        let started = now_ms() - 10_000;
        let (a, b) = (record(1, started), record(2, started));
        let jdir = dir.path().join(JOURNAL_DIR);
        std::fs::create_dir_all(&jdir).unwrap();
        // Generation 4 as it was; generation 5 half-written when the
        // gateway died, the older one not yet deleted.
        let old = lines(&[
            Line::Open { record: &a },
            Line::Open { record: &b },
            Line::Progress {
                id: &a.id,
                up: 5,
                down: 5,
            },
            Line::Closed { id: &b.id },
        ]);
        std::fs::write(generation_path(&jdir, 4), old).unwrap();
        let mut new = lines(&[
            Line::Open { record: &a },
            Line::Progress {
                id: &a.id,
                up: 7,
                down: 9,
            },
        ]);
        new.extend_from_slice(br#"{"op":"beat","ms":"#);
        std::fs::write(generation_path(&jdir, 5), new).unwrap();

        let (journal, recovered) = recover(dir.path(), &spool, &mut pos).unwrap();
        assert_eq!(recovered, 1);
        let batch = spool.read_batch(0, pos.next_seq, 10, None).unwrap();
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].id, a.id);
        assert_eq!((batch.records[0].bytes_up, batch.records[0].bytes_down), (7, 9));
        let files = generations(&jdir).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, 6, "continues after the newest generation");
        assert_eq!(journal.lock().generation, 6);
    }
}
