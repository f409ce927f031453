//! The durable spool of access records, and the shipper that empties it.
//!
//! Layout under `spool_dir/records/`: segment files `<first seq>.jsonl`
//! (20 digits, so names sort by sequence), one JSON record per line, and
//! `cursor`, the sequence number of the first record not yet acknowledged by
//! the server.
//!
//! The writer appends what connections emit in batches (what arrives within
//! 20 ms of a batch's first record, or while the previous batch was being
//! written: group commit), fsyncs, and only then publishes the new durable
//! end. The shipper reads from the
//! cursor up to that end, calls [`RecordSink::ship`] with up to 500 records,
//! and advances and fsyncs the cursor only after `Ok`. A crash between the
//! two re-ships the same records, with the same ids, which the server
//! stores once: nothing is lost and nothing is stored twice. Segments
//! entirely before the cursor are deleted. While the server is unreachable
//! the shipper retries with backoff and the spool grows.
//!
//! Records of relayed connections are also in the journal of open
//! connections (journal.rs). After the fsync of a batch the writer journals
//! those connections closed before it publishes the new durable end. So a
//! record the shipper may have shipped (and whose segment may be gone) is
//! closed in the journal file, and a record still open there after a crash
//! is still in a segment on disk, where the recovery at start finds its id
//! ([`Spool::find_ids`]) and writes no second record. (The `closed` entry
//! reaches the disk with the journal's next heartbeat; should an OS crash
//! lose it after the record shipped, the record recovery writes has the id
//! the server already stored, and the server keeps the first.) The records that recovery writes, with
//! `end = "gateway_restart"`, are appended here before anything else at
//! start.

use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use ward_api::AccessRecord;

use crate::journal::Journal;
use crate::records::SpoolMsg;
use crate::state::{sync_dir, write_atomically};

/// Where the access records go: the server's ingestion endpoint, or the
/// server's store directly when the gateway runs in-process.
pub trait RecordSink: Send + Sync + 'static {
    /// Stores a batch. `Ok` only once the server has stored every record in
    /// it; the same batch may be shipped again after an error or a crash, so
    /// the server must store each record id once.
    fn ship(&self, batch: Vec<AccessRecord>) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Reports what the gateway has open now (for the dashboard), about
    /// every 15 seconds. Losing one is harmless; by default nothing is sent.
    fn report_status(&self, status: ward_api::GatewayStatusReport) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = status;
        async { Ok(()) }
    }
}

impl<S: RecordSink> RecordSink for Arc<S> {
    fn ship(&self, batch: Vec<AccessRecord>) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).ship(batch)
    }

    fn report_status(&self, status: ward_api::GatewayStatusReport) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).report_status(status)
    }
}

const RECORDS_DIR: &str = "records";
const CURSOR_FILE: &str = "cursor";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// A segment is closed and a new one started past this size.
pub(crate) const SEGMENT_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Records per [`RecordSink::ship`] call.
pub(crate) const MAX_BATCH: usize = 500;
/// Records per write (and fsync).
const WRITE_BATCH: usize = 1024;
const SHIP_BACKOFF_MIN: Duration = Duration::from_millis(100);
const SHIP_BACKOFF_MAX: Duration = Duration::from_secs(5);
const WRITE_RETRY: Duration = Duration::from_secs(1);

/// The records directory and its files.
pub(crate) struct Spool {
    dir: PathBuf,
    segment_max: u64,
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The sequence number the next record will get.
    pub(crate) next_seq: u64,
    /// The first record not yet shipped.
    pub(crate) cursor: u64,
}

/// The segment the writer appends to.
pub(crate) struct Segment {
    file: File,
    len: u64,
}

/// Where a read stopped, so the next read need not scan the segment again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPos {
    segment: u64,
    offset: u64,
    seq: u64,
}

/// Records read from the spool.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) records: Vec<AccessRecord>,
    /// The cursor once these are shipped (past unreadable lines too).
    pub(crate) next: u64,
    pos: Option<ReadPos>,
}

impl Spool {
    /// Opens (creating) `spool_dir/records`, works out the sequence numbers,
    /// and deletes segments already shipped.
    pub(crate) fn open(spool_dir: &Path) -> std::io::Result<(Spool, Position)> {
        Spool::open_with(spool_dir, SEGMENT_MAX_BYTES)
    }

    pub(crate) fn open_with(spool_dir: &Path, segment_max: u64) -> std::io::Result<(Spool, Position)> {
        let dir = spool_dir.join(RECORDS_DIR);
        std::fs::create_dir_all(&dir)?;
        let spool = Spool { dir, segment_max };
        let cursor = spool.read_cursor()?;
        let segments = spool.segments()?;
        let mut next_seq = cursor;
        spool.delete_shipped(cursor)?;
        if let Some(&last) = segments.last() {
            let lines = count_complete_lines(&spool.segment_path(last))?;
            next_seq = next_seq.max(last + lines);
            // The writer never appends to a segment of an earlier run, so the
            // last one is closed now: delete it too once shipped (or empty).
            if lines == 0 || last + lines <= cursor {
                remove_if_exists(&spool.segment_path(last))?;
            }
        }
        Ok((spool, Position { next_seq, cursor }))
    }

    fn segment_path(&self, start: u64) -> PathBuf {
        self.dir.join(format!("{start:020}{SEGMENT_SUFFIX}"))
    }

    /// First sequence numbers of the segments on disk, in order.
    fn segments(&self) -> std::io::Result<Vec<u64>> {
        let mut starts = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(start) = name.strip_suffix(SEGMENT_SUFFIX).and_then(|s| s.parse().ok()) {
                starts.push(start);
            }
        }
        starts.sort_unstable();
        Ok(starts)
    }

    fn read_cursor(&self) -> std::io::Result<u64> {
        match std::fs::read_to_string(self.dir.join(CURSOR_FILE)) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|e| std::io::Error::other(format!("spool cursor is corrupt: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Persists the cursor (fsync'd) and deletes the segments wholly before it.
    pub(crate) fn advance(&self, cursor: u64) -> std::io::Result<()> {
        write_atomically(&self.dir.join(CURSOR_FILE), format!("{cursor}\n").as_bytes())?;
        self.delete_shipped(cursor)
    }

    /// Deletes each segment whose successor starts at or before `cursor`.
    /// The last segment may be the one being written, so it stays.
    fn delete_shipped(&self, cursor: u64) -> std::io::Result<()> {
        let segments = self.segments()?;
        for pair in segments.windows(2) {
            if let [start, next] = pair {
                if *next <= cursor {
                    remove_if_exists(&self.segment_path(*start))?;
                }
            }
        }
        Ok(())
    }

    /// Appends `lines` (complete JSON lines) as records `next_seq..` and
    /// fsyncs. Starts a new segment when there is none or the current one is
    /// full. On a failed write the segment is cut back to where it was, or
    /// abandoned if that fails too, so the next attempt starts clean.
    pub(crate) fn append(
        &self,
        segment: Option<Segment>,
        next_seq: u64,
        lines: &[u8],
    ) -> (Option<Segment>, std::io::Result<()>) {
        let mut segment = match segment {
            Some(s) if s.len < self.segment_max => s,
            _ => match self.open_segment(next_seq) {
                Ok(s) => s,
                Err(e) => return (None, Err(e)),
            },
        };
        let result = segment.file.write_all(lines).and_then(|()| segment.file.sync_data());
        match result {
            Ok(()) => {
                segment.len += lines.len() as u64;
                (Some(segment), Ok(()))
            }
            Err(e) => {
                let cut = segment
                    .file
                    .set_len(segment.len)
                    .and_then(|()| segment.file.seek(SeekFrom::Start(segment.len)).map(|_| ()));
                (cut.ok().map(|()| segment), Err(e))
            }
        }
    }

    /// Opens the segment starting at `start` for appending, creating it, or
    /// cutting a torn last line left by a crash.
    fn open_segment(&self, start: u64) -> std::io::Result<Segment> {
        let path = self.segment_path(start);
        let mut file = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        let len = complete_prefix_len(&mut file)?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        Ok(Segment { file, len })
    }

    /// Which of `ids` a segment on disk holds (shipped or not). Reads every
    /// segment: used once at start, and only when the journal has connections
    /// left open.
    pub(crate) fn find_ids(&self, ids: &HashSet<&str>) -> std::io::Result<HashSet<String>> {
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: String,
        }
        let mut found = HashSet::new();
        let mut line = Vec::new();
        for start in self.segments()? {
            let mut reader = match File::open(self.segment_path(start)) {
                Ok(file) => BufReader::new(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                // The id is the first field the writer serialises: no need to
                // parse the rest, except for a line written otherwise.
                let quick = line
                    .strip_prefix(br#"{"id":""#)
                    .and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[..end]))
                    .and_then(|id| std::str::from_utf8(id).ok())
                    .filter(|id| !id.contains('\\'));
                match quick {
                    Some(id) => {
                        if ids.contains(id) {
                            found.insert(id.to_owned());
                        }
                    }
                    None => {
                        if let Ok(IdOnly { id }) = serde_json::from_slice(&line) {
                            if ids.contains(id.as_str()) {
                                found.insert(id);
                            }
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// Reads up to `max` records from `cursor`, stopping before `durable`.
    /// Lines that do not parse are skipped (logged) but counted, so one bad
    /// line cannot stop the spool.
    pub(crate) fn read_batch(
        &self,
        cursor: u64,
        durable: u64,
        max: usize,
        hint: Option<ReadPos>,
    ) -> std::io::Result<Batch> {
        let segments = self.segments()?;
        let mut records = Vec::new();
        let mut seq = cursor;
        let mut pos = None;
        let mut idx = match segments.iter().rposition(|&s| s <= seq) {
            Some(i) => i,
            None => match segments.first() {
                // The records before the first segment are gone (deleted by
                // hand?): carry on from what is there.
                Some(&first) if first < durable => {
                    tracing::warn!(cursor, first, "spool records before the first segment are missing");
                    seq = first;
                    0
                }
                _ => {
                    return Ok(Batch {
                        records,
                        next: seq,
                        pos,
                    })
                }
            },
        };
        let mut line = Vec::new();
        while idx < segments.len() && records.len() < max && seq < durable {
            let start = segments[idx];
            let next_start = segments.get(idx + 1).copied();
            let limit = next_start.unwrap_or(u64::MAX).min(durable);
            let mut reader = BufReader::new(File::open(self.segment_path(start))?);
            let (mut line_seq, mut offset) = match hint {
                Some(h) if h.segment == start && h.seq <= seq => {
                    reader.seek(SeekFrom::Start(h.offset))?;
                    (h.seq, h.offset)
                }
                _ => (start, 0),
            };
            while line_seq < limit && records.len() < max {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break; // end of the segment, or a line torn by a crash
                }
                offset += n as u64;
                if line_seq >= seq {
                    match serde_json::from_slice::<AccessRecord>(&line) {
                        Ok(record) => records.push(record),
                        Err(e) => {
                            tracing::error!(seq = line_seq, error = %e, "unreadable access record in the spool; skipping it")
                        }
                    }
                    seq = line_seq + 1;
                }
                line_seq += 1;
            }
            pos = Some(ReadPos {
                segment: start,
                offset,
                seq: line_seq,
            });
            if records.len() >= max || seq >= durable {
                break;
            }
            match next_start {
                // Whatever this segment lacks (a torn end) is skipped.
                Some(next) => seq = seq.max(next),
                None => break,
            }
            idx += 1;
        }
        Ok(Batch {
            records,
            next: seq,
            pos,
        })
    }
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Lines ending in `\n` in the file.
fn count_complete_lines(path: &Path) -> std::io::Result<u64> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut count = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Length of the file up to and including its last `\n`.
fn complete_prefix_len(file: &mut File) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let (mut pos, mut last_end) = (0u64, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(last_end);
        }
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            last_end = pos + i as u64 + 1;
        }
        let n = buf.len();
        pos += n as u64;
        reader.consume(n);
    }
}

/// How long the writer gathers records after the first of a batch before it
/// writes and fsyncs them together, unless a flush is asked for or the
/// batch is full. Connections never wait for this: records are written
/// after their connection has ended.
const WRITE_LINGER: Duration = Duration::from_millis(20);

/// One batch of the writer.
#[derive(Default)]
struct WriteBatch {
    lines: Vec<u8>,
    count: u64,
    /// Ids of the relayed connections among them, to journal closed.
    closed: Vec<String>,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    messages: usize,
}

impl WriteBatch {
    fn take(&mut self, msg: SpoolMsg) {
        self.messages += 1;
        match msg {
            SpoolMsg::Record(mut record, journaled) => match serde_json::to_writer(&mut self.lines, &record) {
                Ok(()) => {
                    self.lines.push(b'\n');
                    self.count += 1;
                    if journaled {
                        self.closed.push(std::mem::take(&mut record.id));
                    }
                }
                Err(e) => tracing::error!(id = %record.id, error = %e, "cannot serialise an access record"),
            },
            SpoolMsg::Flush(done) => self.waiters.push(done),
        }
    }

    /// Full, or someone waits for it.
    fn due(&self) -> bool {
        self.messages >= WRITE_BATCH || !self.waiters.is_empty()
    }
}

/// Appends what connections emit, a batch at a time (what arrives within
/// [`WRITE_LINGER`] of the first record); after each fsync, journals the
/// relayed connections among them closed, then publishes the durable end.
pub(crate) async fn run_writer(
    spool: Arc<Spool>,
    mut rx: mpsc::UnboundedReceiver<SpoolMsg>,
    mut next_seq: u64,
    durable: watch::Sender<u64>,
    journal: Journal,
) {
    let mut segment: Option<Segment> = None;
    let mut batch = WriteBatch::default();
    while let Some(first) = rx.recv().await {
        batch.take(first);
        if !batch.due() {
            // Gather by sleeping, not by waiting on the channel: records
            // sent meanwhile wake nothing (the connections that send them run
            // on the gateway's worker threads).
            tokio::time::sleep(WRITE_LINGER).await;
        }
        while batch.messages < WRITE_BATCH {
            match rx.try_recv() {
                Ok(msg) => batch.take(msg),
                Err(_) => break,
            }
        }
        let count = batch.count;
        if count > 0 {
            loop {
                let task_spool = spool.clone();
                let task_segment = segment.take();
                let task_lines = std::mem::take(&mut batch.lines);
                let written = tokio::task::spawn_blocking(move || {
                    let (segment, result) = task_spool.append(task_segment, next_seq, &task_lines);
                    (segment, task_lines, result)
                })
                .await;
                match written {
                    Ok((s, l, Ok(()))) => {
                        segment = s;
                        batch.lines = l;
                        break;
                    }
                    Ok((s, l, Err(e))) => {
                        tracing::error!(error = %e, records = count, "cannot write the access-record spool; retrying");
                        segment = s;
                        batch.lines = l;
                        tokio::time::sleep(WRITE_RETRY).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = count, "spool write task failed; these access records are lost");
                        // Those of relayed connections stay open in the
                        // journal: the next start records them.
                        batch.closed.clear();
                        segment = None;
                        break;
                    }
                }
            }
            next_seq += count;
            if !batch.closed.is_empty() {
                journal.closed(&batch.closed);
            }
            durable.send_replace(next_seq);
        }
        for done in batch.waiters.drain(..) {
            let _ = done.send(());
        }
        batch.lines.clear();
        batch.closed.clear();
        batch.count = 0;
        batch.messages = 0;
    }
}

/// Ships from `cursor` up to the durable end, in order, until `finish` is
/// cancelled and everything durable has shipped.
/// How long the shipper waits after new records, to ship them together.
const SHIP_LINGER: Duration = Duration::from_millis(100);

pub(crate) async fn run_shipper<S: RecordSink>(
    spool: Arc<Spool>,
    sink: S,
    mut durable: watch::Receiver<u64>,
    mut cursor: u64,
    finish: CancellationToken,
) {
    let mut hint = None;
    let mut backoff = SHIP_BACKOFF_MIN;
    loop {
        let available = *durable.borrow_and_update();
        if cursor >= available {
            if finish.is_cancelled() {
                return;
            }
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() && cursor >= *durable.borrow() {
                        return; // the writer is gone: nothing more will come
                    }
                    // Let a few more records arrive, so the server stores them
                    // in one batch rather than one commit per connection.
                    tokio::select! {
                        _ = tokio::time::sleep(SHIP_LINGER) => {}
                        _ = finish.cancelled() => {}
                    }
                }
                _ = finish.cancelled() => {}
            }
            continue;
        }

        let task_spool = spool.clone();
        let batch = match tokio::task::spawn_blocking(move || task_spool.read_batch(cursor, available, MAX_BATCH, hint))
            .await
        {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the access-record spool");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(SHIP_BACKOFF_MAX);
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "spool read task failed");
                return;
            }
        };
        if batch.next <= cursor && batch.records.is_empty() {
            // Durable records that cannot be found: wait rather than spin.
            tracing::error!(cursor, available, "spool records announced but not found");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SHIP_BACKOFF_MAX);
            hint = None;
            continue;
        }
        if !batch.records.is_empty() {
            let count = batch.records.len();
            if let Err(e) = sink.ship(batch.records).await {
                // Read again after the pause: the retry carries the same
                // records first, plus whatever was spooled meanwhile.
                tracing::warn!(error = %e, records = count, retry_in = ?backoff, "cannot ship access records; keeping them spooled");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(SHIP_BACKOFF_MAX);
                continue;
            }
            backoff = SHIP_BACKOFF_MIN;
        }
        cursor = batch.next;
        hint = batch.pos;
        let task_spool = spool.clone();
        match tokio::task::spawn_blocking(move || task_spool.advance(cursor)).await {
            Ok(Ok(())) => {}
            // Not fatal: after a restart these records ship again, same ids.
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist the spool cursor"),
            Err(e) => tracing::error!(error = %e, "spool cursor task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn record(n: u64) -> AccessRecord {
        AccessRecord {
            id: format!("acr_{n:026}"),
            started_ms: 0,
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            device_id: "laptop".into(),
            gateway_id: "gw".into(),
            source: "127.0.0.1".into(),
            dest_host: "127.0.0.1".into(),
            dest_addr: None,
            port: 80,
            protocol: "tcp".into(),
            action: "deny".into(),
            rule_id: None,
            reason: "no_application".into(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            end: "denied".into(),
            ..Default::default()
        }
    }

    fn lines(range: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for n in range {
            serde_json::to_writer(&mut out, &record(n)).unwrap();
            out.push(b'\n');
        }
        out
    }

    fn ids(batch: &Batch) -> Vec<String> {
        batch.records.iter().map(|r| r.id.clone()).collect()
    }

    fn expected(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|n| record(n).id).collect()
    }

    /// Writes `count` records in batches of `per`, as the writer would.
    fn fill(spool: &Spool, mut next: u64, count: u64, per: u64) -> u64 {
        let mut segment = None;
        let end = next + count;
        while next < end {
            let upto = (next + per).min(end);
            let (s, r) = spool.append(segment, next, &lines(next..upto));
            r.unwrap();
            segment = s;
            next = upto;
        }
        next
    }

    #[test]
    fn reads_in_order_across_segments_and_deletes_shipped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, pos) = Spool::open_with(dir.path(), 2_000).unwrap();
        assert_eq!(pos, Position { next_seq: 0, cursor: 0 });
        let durable = fill(&spool, 0, 100, 7);
        assert!(spool.segments().unwrap().len() > 3, "small segments rotate");

        let mut cursor = 0;
        let mut hint = None;
        let mut seen = Vec::new();
        while cursor < durable {
            let batch = spool.read_batch(cursor, durable, 13, hint).unwrap();
            assert!(batch.records.len() <= 13);
            seen.extend(ids(&batch));
            cursor = batch.next;
            hint = batch.pos;
            spool.advance(cursor).unwrap();
        }
        assert_eq!(seen, expected(0..100));
        assert_eq!(spool.segments().unwrap().len(), 1, "only the active segment is left");

        // A restart picks up where the cursor is, with nothing left to ship.
        let (spool, pos) = Spool::open_with(dir.path(), 2_000).unwrap();
        assert_eq!(
            pos,
            Position {
                next_seq: 100,
                cursor: 100
            }
        );
        assert!(spool.segments().unwrap().is_empty());
    }

    #[test]
    fn reading_without_a_hint_gives_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open_with(dir.path(), 1_500).unwrap();
        let durable = fill(&spool, 0, 40, 3);
        for cursor in 0..40 {
            let batch = spool.read_batch(cursor, durable, 5, None).unwrap();
            assert_eq!(ids(&batch), expected(cursor..(cursor + 5).min(40)));
        }
    }

    #[test]
    fn a_torn_line_is_cut_and_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open_with(dir.path(), SEGMENT_MAX_BYTES).unwrap();
        fill(&spool, 0, 5, 5);
        let path = spool.segment_path(0);
        let mut file = File::options().append(true).open(&path).unwrap();
        file.write_all(br#"{"id":"acr_torn"#).unwrap();
        drop(file);

        let (spool, pos) = Spool::open_with(dir.path(), SEGMENT_MAX_BYTES).unwrap();
        assert_eq!(pos, Position { next_seq: 5, cursor: 0 });
        let durable = fill(&spool, 5, 3, 3);
        let batch = spool.read_batch(0, durable, 100, None).unwrap();
        assert_eq!(ids(&batch), expected(0..8));
        assert_eq!(batch.next, 8);
    }

    #[test]
    fn an_unreadable_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open_with(dir.path(), SEGMENT_MAX_BYTES).unwrap();
        let mut data = lines(0..2);
        data.extend_from_slice(b"not json\n");
        data.extend(lines(3..4));
        let (_, r) = spool.append(None, 0, &data);
        r.unwrap();
        let batch = spool.read_batch(0, 4, 100, None).unwrap();
        assert_eq!(ids(&batch), vec![record(0).id, record(1).id, record(3).id]);
        assert_eq!(batch.next, 4);
    }

    #[test]
    fn ids_are_found_in_every_segment_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open_with(dir.path(), 1_500).unwrap();
        let durable = fill(&spool, 0, 20, 3);
        assert!(spool.segments().unwrap().len() > 2);
        // Shipped records still on disk count too.
        spool.advance(10).unwrap();
        // A record whose id is not its first field, and a torn one.
        let mut odd = br#"{"port":80,"id":"acr_odd"}"#.to_vec();
        odd.push(b'\n');
        odd.extend_from_slice(br#"{"id":"acr_torn","#);
        let (_, r) = spool.append(None, durable, &odd);
        r.unwrap();

        let last = record(19).id;
        let wanted: HashSet<&str> = [last.as_str(), "acr_odd", "acr_torn", "acr_missing"].into();
        let found = spool.find_ids(&wanted).unwrap();
        let expected: HashSet<String> = [last.clone(), "acr_odd".to_owned()].into();
        assert_eq!(found, expected);
    }

    /// A sink that stores (deduplicating by id, as the server does) and can
    /// be told to fail after storing, as when the answer is lost.
    #[derive(Clone, Default)]
    struct Server {
        stored: Arc<Mutex<Vec<String>>>,
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        lose_answers: Arc<std::sync::atomic::AtomicBool>,
    }

    impl RecordSink for Server {
        fn ship(&self, batch: Vec<AccessRecord>) -> impl Future<Output = anyhow::Result<()>> + Send {
            let this = self.clone();
            async move {
                let ids: Vec<String> = batch.into_iter().map(|r| r.id).collect();
                this.calls.lock().unwrap().push(ids.clone());
                let mut stored = this.stored.lock().unwrap();
                for id in ids {
                    if !stored.contains(&id) {
                        stored.push(id);
                    }
                }
                if this.lose_answers.load(std::sync::atomic::Ordering::SeqCst) {
                    anyhow::bail!("answer lost");
                }
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn shipped_but_unacknowledged_records_ship_again_with_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, pos) = Spool::open(dir.path()).unwrap();
        let durable = fill(&spool, pos.next_seq, 12, 12);
        let spool = Arc::new(spool);

        // The server stores the batch but the gateway never hears back, then dies.
        let server = Server::default();
        server.lose_answers.store(true, std::sync::atomic::Ordering::SeqCst);
        let (_tx, rx) = watch::channel(durable);
        let shipper = tokio::spawn(run_shipper(
            spool.clone(),
            server.clone(),
            rx,
            pos.cursor,
            CancellationToken::new(),
        ));
        while server.calls.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shipper.abort();
        let _ = shipper.await;
        let first_calls = server.calls.lock().unwrap().clone();
        assert!(
            first_calls.iter().all(|c| c == &expected(0..12)),
            "retries carry the same ids"
        );

        // Restart: the cursor did not move, so the same ids go again; the
        // server keeps one copy.
        let (spool, pos) = Spool::open(dir.path()).unwrap();
        assert_eq!(
            pos,
            Position {
                next_seq: 12,
                cursor: 0
            }
        );
        server.lose_answers.store(false, std::sync::atomic::Ordering::SeqCst);
        let finish = CancellationToken::new();
        finish.cancel();
        let (_tx, rx) = watch::channel(pos.next_seq);
        run_shipper(Arc::new(spool), server.clone(), rx, pos.cursor, finish).await;
        assert_eq!(server.calls.lock().unwrap().last().unwrap(), &expected(0..12));
        assert_eq!(*server.stored.lock().unwrap(), expected(0..12));

        let (_, pos) = Spool::open(dir.path()).unwrap();
        assert_eq!(
            pos,
            Position {
                next_seq: 12,
                cursor: 12
            }
        );
    }
}
