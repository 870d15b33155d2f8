//! A skip index over the audit trail, so that a search by record or department reads the
//! blocks that may hold a match rather than the whole trail (Parquet's row-group filters and
//! ClickHouse's skip indexes work the same way).
//!
//! The trail is cut into blocks of [`BLOCK`] lines by sequence number. As each block fills,
//! the audit's writer appends to `audit/blocks.idx` its byte range in the trail, its time range
//! and a Bloom filter of the record keys (without their registry) and the department its lines
//! name, about ten bits each. Only whole blocks are written; the lines after the last one are
//! always read. The index is derived: [`read`] keeps the blocks that follow one another and fit
//! the trail, and the audit log rebuilds what is missing from the trail when it opens.
//!
//! The filter is written here rather than taken from a crate because its bytes are stored:
//! its hash (FNV-1a, 64 bits) and layout must never change under a file.

use std::io::Write;
use std::path::Path;

/// The index's file in the audit folder.
pub const FILE: &str = "blocks.idx";
/// Lines a block holds.
pub const BLOCK: u64 = 4096;
/// Filter bits per distinct term (about 1% false positives with [`PROBES`]).
const BITS_PER_TERM: usize = 10;
const PROBES: u64 = 7;
const HEADER: usize = 8 * 5 + 4;

/// A department's term, apart from record keys.
pub fn department_term(name: &str) -> Vec<u8> {
    let mut t = vec![0x01];
    t.extend_from_slice(name.as_bytes());
    t
}

/// A record's term: its key without the registry (`citizens:350…` → `350…`), as searches name it.
pub fn record_term(record: &str) -> &[u8] {
    record.rsplit(':').next().unwrap_or(record).as_bytes()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bit positions of a term in a filter of `bits` bits (a power of two): double hashing.
fn probes(hash: u64, bits: u64) -> impl Iterator<Item = u64> {
    let step = hash.rotate_left(32) | 1;
    (0..PROBES).map(move |i| hash.wrapping_add(i.wrapping_mul(step)) & (bits - 1))
}

/// A whole block of the trail.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Sequence number of its first line (`n × BLOCK + 1`).
    pub first_seq: u64,
    /// Byte range of its lines in the trail.
    pub start: u64,
    pub end: u64,
    /// Its lines' earliest and latest times (microseconds since the epoch).
    pub min_time: i64,
    pub max_time: i64,
    bits: Vec<u64>,
}

impl Block {
    /// Whether a line of the block may name `term` (false: none does).
    pub fn may_hold(&self, term: &[u8]) -> bool {
        let n = self.bits.len() as u64 * 64;
        probes(fnv1a(term), n).all(|b| self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Whether the block's time range meets `[from, to]` (microseconds; open ends as None).
    pub fn meets(&self, from: Option<i64>, to: Option<i64>) -> bool {
        from.is_none_or(|f| self.max_time >= f) && to.is_none_or(|t| self.min_time <= t)
    }

    /// Its bytes in the index file.
    pub fn encoded_len(&self) -> u64 {
        (HEADER + self.bits.len() * 8 + 4) as u64
    }

    /// The sequence number of its last line.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + BLOCK - 1
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len() as usize);
        for v in [self.first_seq, self.start, self.end, self.min_time as u64, self.max_time as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.bits.len() as u32).to_le_bytes());
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The next block of `bytes` and what follows it; None if it is cut short or damaged.
    fn decode(bytes: &[u8]) -> Option<(Block, &[u8])> {
        let u64_at = |i: usize| bytes.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        let words = u32::from_le_bytes(bytes.get(40..44)?.try_into().ok()?) as usize;
        let len = HEADER + words * 8;
        let crc = u32::from_le_bytes(bytes.get(len..len + 4)?.try_into().ok()?);
        if crc32fast::hash(&bytes[..len]) != crc || words == 0 || !words.is_power_of_two() {
            return None;
        }
        let bits =
            bytes[HEADER..len].chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8]))).collect();
        let block = Block {
            first_seq: u64_at(0)?,
            start: u64_at(1)?,
            end: u64_at(2)?,
            min_time: u64_at(3)? as i64,
            max_time: u64_at(4)? as i64,
            bits,
        };
        Some((block, &bytes[len + 4..]))
    }
}

/// The block being filled: its lines' ranges and times, and their terms' hashes.
#[derive(Debug, Default)]
pub struct Builder {
    first_seq: u64,
    start: u64,
    end: u64,
    lines: u64,
    min_time: i64,
    max_time: i64,
    hashes: Vec<u64>,
}

impl Builder {
    /// A builder whose next line is `seq`, at byte `offset` of the trail (a block boundary).
    pub fn at(seq: u64, offset: u64) -> Builder {
        Builder { first_seq: seq, start: offset, end: offset, ..Builder::default() }
    }

    /// Adds the next line (lines are counted by position), which ends at byte `end` of the
    /// trail (its newline included).
    pub fn add<'t>(&mut self, end: u64, time: i64, terms: impl Iterator<Item = &'t [u8]>) {
        if self.lines == 0 {
            (self.min_time, self.max_time) = (time, time);
        }
        self.min_time = self.min_time.min(time);
        self.max_time = self.max_time.max(time);
        self.end = end;
        self.lines += 1;
        self.hashes.extend(terms.map(fnv1a));
    }

    /// The latest time of its lines (0 before the first).
    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    /// Whether it holds a whole block: time to [`Builder::finish`] it.
    pub fn full(&self) -> bool {
        self.lines == BLOCK
    }

    /// The whole block, and the builder left for the next.
    pub fn finish(&mut self) -> Block {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        let bits = (self.hashes.len() * BITS_PER_TERM).max(64).next_power_of_two();
        let mut words = vec![0u64; bits / 64];
        for &h in &self.hashes {
            for b in probes(h, bits as u64) {
                words[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        let block = Block {
            first_seq: self.first_seq,
            start: self.start,
            end: self.end,
            min_time: self.min_time,
            max_time: self.max_time,
            bits: words,
        };
        *self = Builder::at(self.first_seq + self.lines, self.end);
        block
    }
}

/// The blocks of `dir`'s index that fit a trail of `trail_len` bytes: each following the one
/// before (sequence and bytes), the first at the trail's start, none past its end. The rest of
/// the file, if any, is not to be trusted and is dropped when the index is next written.
pub fn read(dir: &Path, trail_len: u64) -> Vec<Block> {
    let bytes = std::fs::read(dir.join(FILE)).unwrap_or_default();
    let mut rest = bytes.as_slice();
    let mut blocks: Vec<Block> = Vec::new();
    while let Some((block, after)) = Block::decode(rest) {
        let (seq, start) = blocks.last().map_or((1, 0), |b| (b.first_seq + BLOCK, b.end));
        if block.first_seq != seq || block.start != start || block.end <= block.start || block.end > trail_len {
            break;
        }
        blocks.push(block);
        rest = after;
    }
    blocks
}

/// Opens (creating, mode 0600 as the trail) a file of the index.
fn open(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true).append(append).truncate(!append);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// The first line after `blocks` (whole blocks as [`read`] gives them): its sequence number
/// and byte offset in the trail. The index's builder starts there, and searches read from
/// there to the end.
pub fn after(blocks: &[Block]) -> (u64, u64) {
    blocks.last().map_or((1, 0), |b| (b.first_seq + BLOCK, b.end))
}

/// Replaces the index with `blocks` (when [`read`] dropped a tail, or at a rebuild).
pub fn rewrite(dir: &Path, blocks: &[Block]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = open(&tmp, false)?;
    for b in blocks {
        f.write_all(&b.encode())?;
    }
    f.sync_data()?;
    std::fs::rename(tmp, dir.join(FILE))
}

/// Appends whole blocks to the index, synced at once. Not for durability (a block lost in a
/// crash is rebuilt) but for the trail's latency: left dirty, the appended bytes were written
/// inside a later sync of the trail (ext4 orders a file's data before the journal commit that
/// a `fdatasync` waits for), and the audit's lag p99 in the 10M bench went from 37 to 258 and
/// 320 ms; with the append left out it was 37 ms, and synced here 39 ms.
pub fn append(dir: &Path, blocks: &[Block]) -> std::io::Result<()> {
    let mut f = open(&dir.join(FILE), true)?;
    let bytes: Vec<u8> = blocks.iter().flat_map(Block::encode).collect();
    f.write_all(&bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_of(lines: u64, first: u64, terms: &dyn Fn(u64) -> Vec<Vec<u8>>) -> (Block, Builder) {
        let mut b = Builder::at(first, (first - 1) * 100);
        for i in 0..lines {
            let t = terms(first + i);
            b.add((first + i) * 100, (first + i) as i64, t.iter().map(|v| v.as_slice()));
        }
        let block = b.finish();
        (block, b)
    }

    #[test]
    fn a_filter_holds_every_term_added_and_few_others() {
        let (block, next) =
            block_of(BLOCK, 1, &|s| vec![format!("3502{s:014}").into_bytes(), department_term("市人社局")]);
        assert!((1..=BLOCK).all(|s| block.may_hold(format!("3502{s:014}").as_bytes())));
        assert!(block.may_hold(&department_term("市人社局")));
        let false_positives =
            (BLOCK + 1..BLOCK * 11).filter(|s| block.may_hold(format!("3502{s:014}").as_bytes())).count();
        assert!(false_positives < (BLOCK * 10 / 50) as usize, "{false_positives} of {}", BLOCK * 10);
        assert_eq!(
            (block.first_seq, block.start, block.end, block.min_time, block.max_time),
            (1, 0, BLOCK * 100, 1, BLOCK as i64)
        );
        assert!(block.meets(Some(BLOCK as i64), None) && !block.meets(Some(BLOCK as i64 + 1), None));
        assert!(block.meets(None, Some(1)) && !block.meets(None, Some(0)));
        assert_eq!((next.first_seq, next.start, next.lines), (BLOCK + 1, BLOCK * 100, 0));
    }

    #[test]
    fn only_blocks_that_follow_each_other_and_fit_the_trail_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let terms = |s: u64| vec![s.to_string().into_bytes()];
        let (a, mut next) = block_of(BLOCK, 1, &terms);
        for s in BLOCK + 1..=2 * BLOCK {
            next.add(s * 100, s as i64, terms(s).iter().map(|v| v.as_slice()));
        }
        let b = next.finish();
        append(dir.path(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(read(dir.path(), 2 * BLOCK * 100), [a.clone(), b.clone()]);
        // A trail cut short keeps the blocks within it.
        assert_eq!(read(dir.path(), 2 * BLOCK * 100 - 1), std::slice::from_ref(&a));
        // A torn or damaged tail is not read; a block out of sequence neither.
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(read(dir.path(), u64::MAX), std::slice::from_ref(&a));
        rewrite(dir.path(), &[a.clone(), a.clone()]).unwrap();
        assert_eq!(read(dir.path(), u64::MAX), std::slice::from_ref(&a));
        let mut damaged = std::fs::read(&path).unwrap();
        damaged[50] ^= 1;
        std::fs::write(&path, damaged).unwrap();
        assert_eq!(read(dir.path(), u64::MAX), []);
    }
}
