//! The change feed: every change to a record, at its place in one store-wide, gap-free,
//! strictly increasing order (positions 1, 2, 3, …), written in the same atomic batch as the
//! change itself (bulk loads: in SST files ingested with the records).
//!
//! Entry: position (u64, big-endian: the key order is the feed order) →
//! `[registry][change kind][load id: u32 LE][changed fields: u64 LE][record key]`. The changed
//! fields are a bit set of schema field indices (bit 63: the extra attributes), computed
//! when the change is written, so a consumer learns what changed without reading versions.
//!
//! A bulk load's inserts are stored as *runs*, as a log stores record batches (Kafka's
//! `RecordBatch`: a base offset, the fields its records share, then each record's own part):
//! the key is the run's first position, the value `[RUN][registry][kind][load id: u32
//! LE][changed fields: u64 LE][count: u16 LE]` and up to [`RUN_LEN`] keys, each front-coded
//! against the one before (postcard varints: the length shared, the length of the rest; then
//! the rest). One entry a record cost 4.8 bytes a record at 10M citizens, most of it the
//! position and the fields every entry repeated; as runs the feed is 1.2.

use super::codec;
use crate::error::{Error, Result};
use crate::model::{Record, Registry};
use serde::Serialize;

/// Bit of the extra attributes in a changed-fields set.
pub const EXTRAS_BIT: u32 = 63;

/// What a change did to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The record did not exist before.
    Insert = 1,
    /// Its values changed.
    Update = 2,
    /// It was ended (a snapshot load no longer holds it; never erased).
    End = 3,
    /// An ended record came back.
    Reopen = 4,
}

impl ChangeKind {
    fn from_byte(b: u8) -> Option<ChangeKind> {
        Some(match b {
            1 => ChangeKind::Insert,
            2 => ChangeKind::Update,
            3 => ChangeKind::End,
            4 => ChangeKind::Reopen,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::End => "end",
            ChangeKind::Reopen => "reopen",
        }
    }
}

/// One entry of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    pub position: u64,
    pub registry: Registry,
    pub kind: ChangeKind,
    pub load_id: u32,
    /// Bit set of schema field indices (and [`EXTRAS_BIT`]) whose values changed; 0 for an
    /// insert (everything is new).
    pub fields: u64,
    pub key: String,
}

pub fn key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// The first byte of a run's value (a single entry's is its registry's byte, below 0x80).
const RUN: u8 = 0x80;
/// Keys a run holds at most: a reader starting inside one decodes the keys before its start.
pub const RUN_LEN: usize = 256;
/// Where a run's count is, and where its keys start.
const RUN_COUNT: usize = 15;
const RUN_KEYS: usize = 17;

/// A bulk load's inserts gathered into runs: [`Runs::push`] each record's key in position
/// order; a full run comes back as the feed key and value to write.
#[derive(Debug)]
pub struct Runs {
    head: [u8; RUN_COUNT],
    next: u64,
    first: u64,
    count: u16,
    value: Vec<u8>,
    last: Vec<u8>,
}

impl Runs {
    /// Inserts by load `load_id` into `registry`, the first at position `first`.
    pub fn new(registry: Registry, load_id: u32, first: u64) -> Runs {
        let mut head = [0u8; RUN_COUNT];
        head[0] = RUN;
        head[1] = registry as u8;
        head[2] = ChangeKind::Insert as u8;
        head[3..7].copy_from_slice(&load_id.to_le_bytes());
        Runs { head, next: first, first, count: 0, value: Vec::new(), last: Vec::new() }
    }

    /// The next position's key; a run when this one filled it.
    pub fn push(&mut self, record_key: &[u8]) -> Option<([u8; 8], Vec<u8>)> {
        if self.count == 0 {
            self.first = self.next;
            self.value.clear();
            self.value.extend_from_slice(&self.head);
            self.value.extend_from_slice(&[0, 0]);
            self.last.clear();
        }
        let shared = self.last.iter().zip(record_key).take_while(|(a, b)| a == b).count();
        // Serialising plain data into a Vec cannot fail.
        let value = std::mem::take(&mut self.value);
        self.value = postcard::to_extend(&(shared as u32, (record_key.len() - shared) as u32), value)
            .expect("postcard into a Vec");
        self.value.extend_from_slice(&record_key[shared..]);
        self.last.clear();
        self.last.extend_from_slice(record_key);
        self.count += 1;
        self.next += 1;
        (usize::from(self.count) == RUN_LEN).then(|| self.take())
    }

    /// The last run, unless it is empty.
    pub fn finish(mut self) -> Option<([u8; 8], Vec<u8>)> {
        (self.count > 0).then(|| self.take())
    }

    fn take(&mut self) -> ([u8; 8], Vec<u8>) {
        self.value[RUN_COUNT..RUN_KEYS].copy_from_slice(&self.count.to_le_bytes());
        self.count = 0;
        (key(self.first), std::mem::take(&mut self.value))
    }
}

pub fn encode_value(registry: Registry, kind: ChangeKind, load_id: u32, fields: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + key.len());
    v.push(registry as u8);
    v.push(kind as u8);
    v.extend_from_slice(&load_id.to_le_bytes());
    v.extend_from_slice(&fields.to_le_bytes());
    v.extend_from_slice(key);
    v
}

fn bad() -> Error {
    Error::Codec("feed entry".into())
}

/// What one stored entry holds: a change, or a run of changes at consecutive positions that
/// share all but their keys.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'v> {
    pub first: u64,
    pub count: u64,
    pub registry: Registry,
    pub kind: ChangeKind,
    pub load_id: u32,
    pub fields: u64,
    /// The key (a single entry), or the front-coded keys (a run).
    keys: &'v [u8],
    run: bool,
}

impl Stored<'_> {
    /// The position of its last change.
    pub fn last(&self) -> u64 {
        self.first.saturating_add(self.count - 1)
    }

    /// Its changes at `from` or later, in order.
    pub fn entries_from(&self, from: u64) -> Result<Vec<FeedEntry>> {
        let entry = |position: u64, key: &[u8]| -> Result<FeedEntry> {
            Ok(FeedEntry {
                position,
                registry: self.registry,
                kind: self.kind,
                load_id: self.load_id,
                fields: self.fields,
                key: String::from_utf8(key.to_vec()).map_err(|_| bad())?,
            })
        };
        if !self.run {
            return if self.first >= from { Ok(vec![entry(self.first, self.keys)?]) } else { Ok(Vec::new()) };
        }
        let mut out = Vec::with_capacity(self.last().saturating_sub(from).saturating_add(1).min(self.count) as usize);
        let (mut rest, mut key) = (self.keys, Vec::new());
        for position in self.first..=self.last() {
            let ((shared, len), after) =
                postcard::take_from_bytes::<(u32, u32)>(rest).map_err(|e| Error::Codec(e.to_string()))?;
            let (shared, len) = (shared as usize, len as usize);
            if shared > key.len() || after.len() < len {
                return Err(bad());
            }
            key.truncate(shared);
            key.extend_from_slice(&after[..len]);
            rest = &after[len..];
            if position >= from {
                out.push(entry(position, &key)?);
            }
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(out)
    }
}

/// Reads a stored entry (a single change or a run) without decoding its keys.
pub fn read<'v>(k: &[u8], v: &'v [u8]) -> Result<Stored<'v>> {
    let first = u64::from_be_bytes(k.try_into().map_err(|_| bad())?);
    let run = v.first() == Some(&RUN);
    let at = usize::from(run);
    if v.len() < at + 14 || (run && v.len() < RUN_KEYS) {
        return Err(bad());
    }
    let count = if run { u64::from(u16::from_le_bytes([v[RUN_COUNT], v[RUN_COUNT + 1]])) } else { 1 };
    if count == 0 {
        return Err(bad());
    }
    Ok(Stored {
        first,
        count,
        registry: Registry::from_byte(v[at]).ok_or_else(bad)?,
        kind: ChangeKind::from_byte(v[at + 1]).ok_or_else(bad)?,
        load_id: u32::from_le_bytes(v[at + 2..at + 6].try_into().map_err(|_| bad())?),
        fields: u64::from_le_bytes(v[at + 6..at + 14].try_into().map_err(|_| bad())?),
        keys: &v[if run { RUN_KEYS } else { 14 }..],
        run,
    })
}

/// The kind of a change from the value it replaces (None: none) to `new`, and the fields whose
/// values differ.
pub fn classify(old: Option<&[u8]>, new: &[u8]) -> Result<(ChangeKind, u64)> {
    let Some(old) = old else { return Ok((ChangeKind::Insert, 0)) };
    let (old_header, old_body) = codec::split(old)?;
    let (new_header, new_body) = codec::split(new)?;
    let kind = match (old_header.ended, new_header.ended) {
        (false, true) => ChangeKind::End,
        (true, false) => ChangeKind::Reopen,
        _ => ChangeKind::Update,
    };
    if old_body == new_body {
        return Ok((kind, 0));
    }
    Ok((kind, codec::changed_fields(old, new, EXTRAS_BIT)?))
}

/// The bit set of fields whose values differ between two versions of a record.
pub fn changed_fields(a: &Record, b: &Record) -> u64 {
    let mut mask = 0u64;
    for (i, (x, y)) in a.values.iter().zip(&b.values).enumerate().take(EXTRAS_BIT as usize) {
        if x != y {
            mask |= 1 << i;
        }
    }
    if a.extras != b.extras {
        mask |= 1 << EXTRAS_BIT;
    }
    mask
}

/// The names of the fields in a changed-fields set (`extras` for the extra attributes).
pub fn field_names(registry: Registry, fields: u64) -> impl Iterator<Item = (Option<usize>, &'static str)> {
    let schema = registry.schema();
    (0..schema.fields.len().min(EXTRAS_BIT as usize))
        .filter(move |i| fields & (1 << i) != 0)
        .map(move |i| (Some(i), schema.fields[i].name))
        .chain((fields & (1 << EXTRAS_BIT) != 0).then_some((None, "extras")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let v = encode_value(Registry::Licences, ChangeKind::Reopen, 7, 0b101 | 1 << EXTRAS_BIT, "证-001".as_bytes());
        let stored = read(&key(42), &v).unwrap();
        assert_eq!((stored.first, stored.last()), (42, 42));
        let e = stored.entries_from(0).unwrap().remove(0);
        assert!(stored.entries_from(43).unwrap().is_empty());
        assert_eq!(
            e,
            FeedEntry {
                position: 42,
                registry: Registry::Licences,
                kind: ChangeKind::Reopen,
                load_id: 7,
                fields: 0b101 | 1 << EXTRAS_BIT,
                key: "证-001".into()
            }
        );
        let names: Vec<&str> = field_names(Registry::Licences, e.fields).map(|(_, n)| n).collect();
        assert_eq!(names.len(), 3);
        assert_eq!(names[2], "extras");
        assert!(read(&key(1), &v[..10]).is_err());
    }

    #[test]
    fn runs_hold_a_bulk_loads_keys_and_read_from_any_position() {
        let keys: Vec<String> = (0..600).map(|i| format!("35020319400101{:04}", i * 7)).collect();
        let mut runs = Runs::new(Registry::Citizens, 3, 10);
        let mut stored: Vec<([u8; 8], Vec<u8>)> = keys.iter().filter_map(|k| runs.push(k.as_bytes())).collect();
        stored.extend(runs.finish());
        assert_eq!(stored.len(), 3, "600 keys in runs of {RUN_LEN}");
        let mut all = Vec::new();
        for (k, v) in &stored {
            let s = read(k, v).unwrap();
            assert_eq!((s.registry, s.kind, s.load_id, s.fields), (Registry::Citizens, ChangeKind::Insert, 3, 0));
            all.extend(s.entries_from(0).unwrap());
            // From inside the run: the entries at that position on.
            let mid = s.first + s.count / 2;
            let from_mid = s.entries_from(mid).unwrap();
            assert_eq!(from_mid.first().map(|e| e.position), Some(mid));
            assert_eq!(from_mid.last().map(|e| e.position), Some(s.last()));
        }
        let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
        assert_eq!(positions, (10..610).collect::<Vec<_>>());
        assert_eq!(all.iter().map(|e| e.key.clone()).collect::<Vec<_>>(), keys);
        // A run cut short, or with bytes after its keys, is an error, never a panic.
        let (k, v) = &stored[2];
        for cut in 0..v.len() {
            assert!(read(k, &v[..cut]).and_then(|s| s.entries_from(0)).is_err(), "cut at {cut}");
        }
        let mut longer = v.clone();
        longer.push(0);
        assert!(read(k, &longer).unwrap().entries_from(0).is_err());
    }
}
