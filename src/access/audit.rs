//! The audit trail: every request that returned personal or sensitive values, every
//! administrator action and every denied request, as one JSON object a line in
//! `DATA_DIR/audit/audit.jsonl` (mode 0600). Each line carries its sequence number and the
//! SHA-256 of the line before it (a hash chain); every second with new lines, and at shutdown,
//! the head (sequence, hash) is signed with the service's Ed25519 key and appended to
//! `heads.jsonl`. Editing, deleting, reordering or truncating lines breaks the chain or a
//! signed head ([`verify`]).
//!
//! Written off the request path: requests hand their entry to a bounded queue (waiting when
//! it is full, never dropping); one thread appends batches and syncs each. If a batch cannot
//! be written (a full disk) the file is cut back to its last whole batch, the batch is retried
//! every second, and until it is written [`AuditLog::available`] is false: personal reads are
//! refused rather than left unrecorded. A closing log retries for `CLOSE_RETRIES` (5) seconds,
//! then logs how many entries it could not write: a full disk must not keep the process alive.
//!
//! Searches read only the blocks of lines that may match ([`super::trail_index`]), which the
//! writer indexes as they fill, and which opening the log brings up to the trail.

use super::trail_index::{self, Builder};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const LOG: &str = "audit.jsonl";
pub const HEADS: &str = "heads.jsonl";
pub const SIGNING_KEY: &str = "signing.key";
const QUEUE: usize = 65_536;
/// Entries are gathered for this long after the first of a batch, then written and synced
/// together: one fsync (and one wake of the writer) per batch, not per request.
const GATHER: Duration = Duration::from_millis(25);
/// Seconds a closing log keeps retrying entries it cannot write (a full disk) before it gives up.
const CLOSE_RETRIES: u32 = 5;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited request (the line adds `seq` and `prev`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// `read` (personal values returned), `admin` (an administrator's action), `denied`.
    pub kind: String,
    pub key_id: Option<String>,
    pub department: Option<String>,
    pub purpose: Option<String>,
    pub method: String,
    pub route: String,
    pub registry: Option<String>,
    /// `registry:key` of every record whose personal values were returned.
    pub records: Vec<String>,
    /// The personal or sensitive fields returned.
    pub fields: Vec<String>,
    pub status: u16,
    pub request_id: String,
    /// What a read covered when it is too large to list its records (an export: the
    /// registry and the feed positions of the state it was taken from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A line of the log.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    prev: String,
    #[serde(flatten)]
    entry: Entry,
}

/// A line as written (borrowing its entry).
#[derive(Serialize)]
struct LineRef<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    entry: &'a Entry,
}

/// A signed head: the log's last sequence number and hash at a moment.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    time: DateTime<Utc>,
    signature: String,
}

fn head_message(seq: u64, hash: &str, time: &DateTime<Utc>) -> String {
    format!("jichu-audit-head\n{seq}\n{hash}\n{}", time.to_rfc3339())
}

fn hash_line(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Opens (creating, mode 0600) a file for appending.
fn append(path: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true).read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(Error::io(path))
}

/// The signing key of the log in `dir`, made on first use (mode 0600).
pub fn signing_key(dir: &Path) -> Result<SigningKey> {
    let path = dir.join(SIGNING_KEY);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .get(..32)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Invalid(format!("{}: not a 32-byte Ed25519 seed", path.display())))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
            let seed: [u8; 32] = rand::random();
            let mut f = append(&path)?;
            f.write_all(&seed).and_then(|_| f.sync_all()).map_err(Error::io(&path))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(Error::io(&path)(e)),
    }
}

/// The log's public key (hex), to check its signed heads with.
pub fn public_key(dir: &Path) -> Result<String> {
    Ok(hex::encode(signing_key(dir)?.verifying_key().as_bytes()))
}

/// The last whole line's sequence number and hash; a torn last line (a crash mid-write, never
/// synced, so never acknowledged) is cut off.
fn recover_tail(path: &Path) -> Result<(u64, String)> {
    let mut f = append(path)?;
    let len = f.metadata().map_err(Error::io(path))?.len();
    if len == 0 {
        return Ok((0, GENESIS.into()));
    }
    // Read back from the end until the last two newlines are found.
    let mut start = len;
    let mut tail = Vec::new();
    loop {
        let step = 64 * 1024u64.min(start);
        let from = start.saturating_sub(step.max(1));
        let mut chunk = vec![0u8; (start - from) as usize];
        f.seek(SeekFrom::Start(from)).and_then(|_| f.read_exact(&mut chunk)).map_err(Error::io(path))?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        if start == 0 || tail.iter().filter(|&&b| b == b'\n').count() >= 2 {
            break;
        }
    }
    let whole_end = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole_end < tail.len() {
        let keep = start + whole_end as u64;
        tracing::warn!(path = %path.display(), cut = len - keep, "the audit log ends with a torn line: cut off");
        f.set_len(keep).map_err(Error::io(path))?;
        tail.truncate(whole_end);
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
    if last.is_empty() {
        return Ok((0, GENESIS.into()));
    }
    let line: Line =
        serde_json::from_slice(last).map_err(|e| Error::Invalid(format!("{}: last line: {e}", path.display())))?;
    Ok((line.seq, hash_line(last)))
}

/// What the index takes from a line.
#[derive(Deserialize)]
struct Terms {
    time: DateTime<Utc>,
    department: Option<String>,
    #[serde(default)]
    records: Vec<String>,
}

/// Adds a line's terms (its records' keys and its department) to the block being filled.
fn index_line(
    builder: &mut Builder,
    end: u64,
    entry_time: &DateTime<Utc>,
    records: &[String],
    department: Option<&str>,
) {
    let department = department.map(trail_index::department_term);
    let terms = records.iter().map(|r| trail_index::record_term(r)).chain(department.as_deref());
    builder.add(end, entry_time.timestamp_micros(), terms);
}

/// Brings the trail's index up to the trail: keeps the blocks that fit it, indexes the whole
/// blocks written since, and returns the block being filled (the lines after them).
fn catch_up_index(dir: &Path) -> Result<Builder> {
    let path = dir.join(LOG);
    let trail_len = std::fs::metadata(&path).map_err(Error::io(&path))?.len();
    let kept = trail_index::read(dir, trail_len);
    let index_len = std::fs::metadata(dir.join(trail_index::FILE)).map_or(0, |m| m.len());
    // The index is derived: failing to write it (a full disk) is logged, never a reason not to
    // start; searches read whatever it lacks line by line.
    let index_file = dir.join(trail_index::FILE);
    if index_len != kept.iter().map(trail_index::Block::encoded_len).sum::<u64>()
        && let Err(e) = trail_index::rewrite(dir, &kept)
    {
        tracing::warn!(error = %e, "cannot rewrite {}", index_file.display());
    }
    let (first_seq, start) = trail_index::after(&kept);
    let mut builder = Builder::at(first_seq, start);
    let mut f = std::fs::File::open(&path).map_err(Error::io(&path))?;
    f.seek(SeekFrom::Start(start)).map_err(Error::io(&path))?;
    let (mut end, mut added, started) = (start, Vec::new(), Instant::now());
    // No further than the length read first: lines written since are the writer's to index.
    for raw in std::io::BufReader::new(f.take(trail_len.saturating_sub(start))).split(b'\n') {
        let raw = raw.map_err(Error::io(&path))?;
        end += raw.len() as u64 + 1;
        // Lines are counted by position, as searches count them; a line that does not parse
        // (`jichu audit verify` names it) names nothing, and no search can match it either.
        match serde_json::from_slice::<Terms>(&raw) {
            Ok(line) => index_line(&mut builder, end, &line.time, &line.records, line.department.as_deref()),
            Err(_) => builder.add(end, builder.max_time(), std::iter::empty()),
        }
        if builder.full() {
            added.push(builder.finish());
        }
    }
    if !added.is_empty() {
        if let Err(e) = trail_index::append(dir, &added) {
            tracing::warn!(error = %e, "cannot append to {}", index_file.display());
        }
        tracing::info!(
            blocks = added.len(),
            seconds = started.elapsed().as_secs_f64(),
            "indexed the audit trail's new blocks"
        );
    }
    Ok(builder)
}

struct Shared {
    available: AtomicBool,
    /// Seconds from each entry's request to its line being synced (for benchmarks), the last
    /// 100,000.
    lags: Mutex<std::collections::VecDeque<f64>>,
}

/// The audit log of a running service.
pub struct AuditLog {
    dir: PathBuf,
    tx: Mutex<Option<tokio::sync::mpsc::Sender<Entry>>>,
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The log cannot take entries (its disk is full or failing): personal reads must wait.
#[derive(Debug)]
pub struct Unavailable;

impl AuditLog {
    /// Opens the log in `dir` (mode 0700), resuming its chain, and starts its writer.
    pub fn open(dir: &Path) -> Result<AuditLog> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(Error::io(dir))?;
        }
        let key = signing_key(dir)?;
        let (seq, hash) = recover_tail(&dir.join(LOG))?;
        let index = catch_up_index(dir)?;
        let log = append(&dir.join(LOG))?;
        let heads = append(&dir.join(HEADS))?;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let shared = Arc::new(Shared { available: AtomicBool::new(true), lags: Mutex::default() });
        let writer = Writer { dir: dir.into(), log, heads, key, seq, hash, signed: seq, shared: shared.clone(), index };
        let handle = std::thread::Builder::new()
            .name("jichu-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the audit writer: {e}")))?;
        Ok(AuditLog { dir: dir.into(), tx: Mutex::new(Some(tx)), shared, writer: Mutex::new(Some(handle)) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether entries are being written (false while a batch cannot be).
    pub fn available(&self) -> bool {
        self.shared.available.load(Ordering::Relaxed)
    }

    /// Queues an entry, waiting while the queue is full.
    pub async fn record(&self, entry: Entry) -> std::result::Result<(), Unavailable> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Unavailable)?;
        tx.send(entry).await.map_err(|_| Unavailable)
    }

    /// Seconds from request to synced line of recent entries.
    pub fn lags(&self) -> Vec<f64> {
        self.shared.lags.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// Writes what is queued, signs the head and stops the writer.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    dir: PathBuf,
    log: std::fs::File,
    heads: std::fs::File,
    key: SigningKey,
    seq: u64,
    hash: String,
    /// The sequence number of the last signed head.
    signed: u64,
    shared: Arc<Shared>,
    /// The block of lines being filled for the trail's index.
    index: Builder,
}

impl Writer {
    fn run(mut self, mut rx: tokio::sync::mpsc::Receiver<Entry>) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else { return };
        let mut pending: Vec<Entry> = Vec::new();
        let mut last_head = Instant::now();
        let mut failed_at_close = 0;
        rt.block_on(async {
            loop {
                let open = tokio::select! {
                    got = rx.recv() => match got {
                        Some(e) => {
                            pending.push(e);
                            // Group commit: what arrives within GATHER goes in the same batch.
                            // The writer sleeps meanwhile rather than waiting on the queue, so
                            // a request's entry does not wake it.
                            tokio::time::sleep(GATHER).await;
                            let mut open = true;
                            loop {
                                match rx.try_recv() {
                                    Ok(e) => pending.push(e),
                                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                                        open = false;
                                        break;
                                    }
                                }
                            }
                            open
                        }
                        None => false,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => true,
                };
                if !pending.is_empty() {
                    match self.write(&pending) {
                        Ok(()) => {
                            pending.clear();
                            self.shared.available.store(true, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if self.shared.available.swap(false, Ordering::Relaxed) {
                                tracing::error!(error = %e, "the audit log cannot be written: personal reads are refused until it can");
                            }
                            if !open {
                                // Shutting down: retry for a while, then say what is lost
                                // rather than hold the process forever.
                                failed_at_close += 1;
                                if failed_at_close > CLOSE_RETRIES {
                                    tracing::error!(entries = pending.len(), error = %e, "stopping with audit entries that could not be written");
                                    return;
                                }
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                if last_head.elapsed() >= Duration::from_secs(1) || !open {
                    if let Err(e) = self.sign_head() {
                        tracing::error!(error = %e, "cannot write the audit log's signed head");
                    }
                    last_head = Instant::now();
                }
                if !open && pending.is_empty() {
                    return;
                }
            }
        });
    }

    /// Appends a batch and syncs it; on failure the file is cut back, and nothing is counted.
    fn write(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let (mut seq, mut prev) = (self.seq, self.hash.clone());
        let mut buf = Vec::with_capacity(entries.len() * 400);
        let mut ends = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let start = buf.len();
            serde_json::to_writer(&mut buf, &LineRef { seq, prev: &prev, entry })?;
            prev = hash_line(&buf[start..]);
            buf.push(b'\n');
            ends.push(buf.len() as u64);
        }
        let len = self.log.metadata()?.len();
        let written = self.log.write_all(&buf).and_then(|_| self.log.sync_data());
        if let Err(e) = written {
            let _ = self.log.set_len(len);
            return Err(e);
        }
        let mut blocks = Vec::new();
        for (entry, end) in entries.iter().zip(ends) {
            index_line(&mut self.index, len + end, &entry.time, &entry.records, entry.department.as_deref());
            if self.index.full() {
                blocks.push(self.index.finish());
            }
        }
        if !blocks.is_empty() {
            // A block that cannot be appended leaves a gap the index stops at: searches read
            // the lines after it, and the next start rebuilds it.
            if let Err(e) = trail_index::append(&self.dir, &blocks) {
                tracing::warn!(error = %e, "cannot append to the audit trail's index");
            }
        }
        self.seq = seq;
        self.hash = prev;
        let now = Utc::now();
        let histogram = metrics::histogram!("jichu_audit_lag_seconds");
        let mut lags = self.shared.lags.lock().unwrap_or_else(|e| e.into_inner());
        for e in entries {
            let lag = (now - e.time).num_microseconds().unwrap_or(0) as f64 / 1e6;
            histogram.record(lag);
            lags.push_back(lag);
            if lags.len() > 100_000 {
                lags.pop_front();
            }
        }
        Ok(())
    }

    fn sign_head(&mut self) -> Result<()> {
        if self.signed == self.seq {
            return Ok(());
        }
        let time = Utc::now();
        let signature = self.key.sign(head_message(self.seq, &self.hash, &time).as_bytes());
        let head = Head { seq: self.seq, hash: self.hash.clone(), time, signature: hex::encode(signature.to_bytes()) };
        let mut line = serde_json::to_vec(&head).map_err(|e| Error::Codec(e.to_string()))?;
        line.push(b'\n');
        let path = self.dir.join(HEADS);
        self.heads.write_all(&line).and_then(|_| self.heads.sync_data()).map_err(Error::io(&path))?;
        self.signed = self.seq;
        Ok(())
    }
}

/// What [`verify`] found.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub lines: u64,
    pub heads: u64,
    /// The first sequence number at which the log is not what was written (None: intact).
    pub first_broken: Option<u64>,
    pub problem: Option<String>,
}

/// Checks every line's place in the chain and every signed head against the log in `dir`.
pub fn verify(dir: &Path) -> Result<Verdict> {
    let key: VerifyingKey = signing_key(dir)?.verifying_key();
    let log = dir.join(LOG);
    let mut v = Verdict::default();
    let mut hashes: Vec<String> = Vec::new();
    let mut prev = GENESIS.to_string();
    let reader = std::io::BufReader::new(std::fs::File::open(&log).map_err(Error::io(&log))?);
    let broken = |v: &mut Verdict, seq: u64, why: String| {
        if v.first_broken.is_none() {
            v.first_broken = Some(seq);
            v.problem = Some(why);
        }
    };
    for (i, raw) in reader.split(b'\n').enumerate() {
        let raw = raw.map_err(Error::io(&log))?;
        let expected = i as u64 + 1;
        v.lines += 1;
        match serde_json::from_slice::<Line>(&raw) {
            Ok(line) if line.seq != expected => {
                broken(&mut v, expected, format!("line {expected} has sequence number {}", line.seq))
            }
            Ok(line) if line.prev != prev => {
                broken(&mut v, expected, format!("line {expected} does not follow the line before it (hash chain)"))
            }
            Ok(_) => {}
            Err(e) => broken(&mut v, expected, format!("line {expected} is not an audit entry: {e}")),
        }
        prev = hash_line(&raw);
        hashes.push(prev.clone());
    }
    let heads = dir.join(HEADS);
    let text = std::fs::read_to_string(&heads).unwrap_or_default();
    for (i, raw) in text.lines().enumerate() {
        v.heads += 1;
        let Ok(head) = serde_json::from_str::<Head>(raw) else {
            broken(&mut v, 0, format!("signed head {} does not parse", i + 1));
            continue;
        };
        let signed = hex::decode(&head.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .is_some_and(|s| key.verify(head_message(head.seq, &head.hash, &head.time).as_bytes(), &s).is_ok());
        if !signed {
            broken(&mut v, head.seq, format!("signed head {} has a bad signature", i + 1));
        } else if head.seq > v.lines {
            let lines = v.lines;
            broken(
                &mut v,
                lines + 1,
                format!("a signed head covers {} lines; the log has {lines} (truncated)", head.seq),
            );
        } else if head.seq > 0 && hashes[head.seq as usize - 1] != head.hash {
            broken(&mut v, head.seq, format!("line {} is not the line the signed head covers", head.seq));
        }
    }
    Ok(v)
}

/// Which entries [`search`] finds.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// A record key (any registry).
    pub record: Option<String>,
    pub department: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Lines after this sequence number.
    pub after: u64,
}

/// Entries matching `filter`, oldest first, at most `limit`, with their sequence numbers.
/// Reads the blocks of the trail its index says may hold a match (their filters and times),
/// then the lines after the last whole block.
pub fn search(dir: &Path, filter: &Filter, limit: usize) -> Result<Vec<serde_json::Value>> {
    let log = dir.join(LOG);
    let mut file = match std::fs::File::open(&log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&log)(e)),
    };
    let trail_len = file.metadata().map_err(Error::io(&log))?.len();
    let blocks = trail_index::read(dir, trail_len);
    let terms: Vec<Vec<u8>> = [
        filter.record.as_deref().map(|r| trail_index::record_term(r).to_vec()),
        filter.department.as_deref().map(trail_index::department_term),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (from, to) = (filter.from.map(|t| t.timestamp_micros()), filter.to.map(|t| t.timestamp_micros()));
    // (first byte, bytes, first sequence number) of each part to read.
    let mut parts: Vec<(u64, u64, u64)> = blocks
        .iter()
        .filter(|b| b.last_seq() > filter.after && b.meets(from, to) && terms.iter().all(|t| b.may_hold(t)))
        .map(|b| (b.start, b.end - b.start, b.first_seq))
        .collect();
    let (tail_seq, tail_start) = trail_index::after(&blocks);
    parts.push((tail_start, trail_len.saturating_sub(tail_start), tail_seq));
    // A line that does not hold the record's or the department's text, as JSON writes it,
    // cannot match: that is tested on its bytes before it is parsed, as nearly every line of a
    // long trail fails it.
    let needles: Vec<String> = [&filter.record, &filter.department]
        .into_iter()
        .flatten()
        .map(|s| serde_json::to_string(s).map(|q| q[1..q.len() - 1].to_string()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Codec(e.to_string()))?;
    let finders: Vec<memchr::memmem::Finder<'_>> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut out = Vec::new();
    for (start, bytes, first_seq) in parts {
        file.seek(SeekFrom::Start(start)).map_err(Error::io(&log))?;
        for (i, raw) in std::io::BufReader::new((&file).take(bytes)).split(b'\n').enumerate() {
            if first_seq + (i as u64) <= filter.after {
                continue;
            }
            let raw = raw.map_err(Error::io(&log))?;
            if !finders.iter().all(|f| f.find(&raw).is_some()) {
                continue;
            }
            let Ok(line) = serde_json::from_slice::<Line>(&raw) else { continue };
            let e = &line.entry;
            let hit = filter
                .record
                .as_ref()
                .is_none_or(|r| e.records.iter().any(|k| trail_index::record_term(k) == r.as_bytes()))
                && filter.department.as_ref().is_none_or(|d| e.department.as_deref() == Some(d.as_str()))
                && filter.from.is_none_or(|f| e.time >= f)
                && filter.to.is_none_or(|t| e.time <= t);
            if hit {
                out.push(serde_json::to_value(&line).map_err(|e| Error::Codec(e.to_string()))?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}
