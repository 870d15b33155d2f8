//! The record keys of a layer's ids, front-coded in memory and on disk.
//!
//! Ids are positions in key order, so the keys are pushed sorted and consecutive keys share
//! most of their bytes. Keys are kept packed four bits a digit ([`crate::digits`], which keeps
//! their order), and each is stored as the length it shares with the one before and the
//! length of the rest (one byte when both are short, as they are between identity numbers;
//! else `0xFF` and two LEB128s), then the rest, with a full key every [`RESTART`] keys. An
//! 18-character identity number takes about 4 bytes among 10M (7 unpacked, 22 as its bytes
//! and a 32-bit offset); a key is found by a binary search over the restarts and a scan of at
//! most [`RESTART`] entries. The file form is the memory form.

use super::persist::{Mapped, Run, bad, put_bytes, put_u64, put_var};
use crate::digits;
use integer_encoding::VarInt;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use tantivy::directory::OwnedBytes;

/// Keys between two full ones.
pub const RESTART: usize = 16;

/// Keys in ascending order, by position: built by a [`KeysBuilder`], or read where they lie in
/// a file ([`SortedKeys::map`]).
#[derive(Debug)]
pub struct SortedKeys {
    coded: OwnedBytes,
    /// Where every `RESTART`-th key starts in `coded`.
    restarts: Run<u32>,
    len: usize,
}

impl Default for SortedKeys {
    fn default() -> Self {
        KeysBuilder::default().finish()
    }
}

/// Takes keys in ascending order and codes them.
#[derive(Debug, Default)]
pub struct KeysBuilder {
    coded: Vec<u8>,
    /// Coded bytes moved out before `coded`'s first ([`SpillingKeys`]; none otherwise):
    /// restarts count from the first byte of all.
    spilled: usize,
    restarts: Vec<u32>,
    len: usize,
    /// The last key pushed, packed.
    last: Vec<u8>,
    /// The key being pushed, packed.
    packed: Vec<u8>,
}

/// Why a key cannot be pushed.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// Keys must come in strictly ascending order.
    OutOfOrder,
    /// More than 4 GiB of coded keys in one set.
    TooLarge,
    /// The file coded keys are moved out to could not be written.
    Spill(io::ErrorKind),
}

impl KeysBuilder {
    /// Appends a key greater than every key before it; returns its position.
    pub fn push(&mut self, key: &[u8]) -> Result<u32, PushError> {
        self.packed.clear();
        digits::pack(key, &mut self.packed);
        let key = self.packed.as_slice();
        if self.len > 0 && key <= self.last.as_slice() {
            return Err(PushError::OutOfOrder);
        }
        let shared = if self.len.is_multiple_of(RESTART) {
            self.restarts.push(u32::try_from(self.spilled + self.coded.len()).map_err(|_| PushError::TooLarge)?);
            0
        } else {
            self.last.iter().zip(key).take_while(|(a, b)| a == b).count()
        };
        put_lengths(&mut self.coded, shared, key.len() - shared);
        self.coded.extend_from_slice(&key[shared..]);
        if self.spilled + self.coded.len() > u32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        std::mem::swap(&mut self.last, &mut self.packed);
        self.len += 1;
        u32::try_from(self.len - 1).map_err(|_| PushError::TooLarge)
    }

    /// The keys pushed, in as little memory as they need.
    pub fn finish(mut self) -> SortedKeys {
        self.coded.shrink_to_fit();
        self.restarts.shrink_to_fit();
        SortedKeys { coded: OwnedBytes::new(self.coded), restarts: self.restarts.into(), len: self.len }
    }
}

/// Coded bytes are moved out to the file once this many have gathered.
const SPILL: usize = 1 << 20;

/// Keys coded as a [`KeysBuilder`] codes them, their bytes moved out to a file as they come,
/// and written where [`SortedKeys::write`] would write them: the keys of a layer built to its
/// file (about 4 bytes a key, 0.5 GB at 100M) need not be held while its points are sorted.
#[derive(Debug)]
pub struct SpillingKeys {
    keys: KeysBuilder,
    file: File,
    /// Bytes gathered before they are moved out ([`SPILL`]).
    chunk: usize,
}

impl SpillingKeys {
    /// Keys moved out to `file` (an empty scratch file, read back once by [`SpillingKeys::write`]).
    pub fn new(file: File) -> SpillingKeys {
        SpillingKeys { keys: KeysBuilder::default(), file, chunk: SPILL }
    }

    /// As [`KeysBuilder::push`].
    pub fn push(&mut self, key: &[u8]) -> Result<u32, PushError> {
        let id = self.keys.push(key)?;
        if self.keys.coded.len() >= self.chunk {
            self.file.write_all(&self.keys.coded).map_err(|e| PushError::Spill(e.kind()))?;
            self.keys.spilled += self.keys.coded.len();
            self.keys.coded.clear();
        }
        Ok(id)
    }

    /// Writes what [`SortedKeys::write`] writes of the keys pushed.
    pub fn write(mut self, w: &mut impl Write) -> io::Result<()> {
        let k = self.keys;
        put_u64(w, k.len as u64)?;
        put_u64(w, (k.spilled + k.coded.len()) as u64)?;
        self.file.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut (&mut self.file).take(k.spilled as u64), w)?;
        if copied != k.spilled as u64 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spilled keys cut short"));
        }
        w.write_all(&k.coded)?;
        Run::from(k.restarts).write(w)
    }
}

impl SortedKeys {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rest of the entry at `at`, its shared length, and where the next entry starts.
    /// Bytes that are not an entry read as an empty one: never a panic.
    fn step(&self, at: usize) -> (usize, &[u8], usize) {
        let coded = self.coded.as_slice();
        let (shared, rest, start) = entry(coded, at);
        (shared, coded.get(start..start.saturating_add(rest)).unwrap_or_default(), start.saturating_add(rest))
    }

    /// The key at position `i` into `out` (cleared first); false when there is none, or its
    /// bytes are not a packed key (a damaged file: its CRC refuses it before it is mapped).
    pub fn get_into(&self, i: u32, out: &mut Vec<u8>) -> bool {
        let i = i as usize;
        out.clear();
        if i >= self.len {
            return false;
        }
        let mut at = self.restarts.at(i / RESTART).unwrap_or(0) as usize;
        let mut packed = Vec::with_capacity(16);
        for _ in 0..=i % RESTART {
            let (shared, rest, next) = self.step(at);
            packed.truncate(shared);
            packed.extend_from_slice(rest);
            at = next;
        }
        digits::unpack(&packed, out)
    }

    /// The key at position `i` (empty when there is none).
    pub fn get(&self, i: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.get_into(i, &mut out);
        out
    }

    /// The position of a key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let key = digits::packed(key);
        let key = key.as_slice();
        // The last restart whose (full) key is at most `key`.
        let restart_key = |r: usize| self.step(self.restarts.get(r) as usize).1;
        let (mut lo, mut hi) = (0usize, self.restarts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if restart_key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let r = lo.checked_sub(1)?;
        let mut at = self.restarts.get(r) as usize;
        let mut cur = Vec::with_capacity(key.len());
        for i in r * RESTART..((r + 1) * RESTART).min(self.len) {
            let (shared, rest, next) = self.step(at);
            cur.truncate(shared);
            cur.extend_from_slice(rest);
            at = next;
            match cur.as_slice().cmp(key) {
                Ordering::Less => {}
                Ordering::Equal => return Some(i as u32),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// Whether the keys are a file's bytes (mapped), not the heap's: both parts come from
    /// one place, the builder or the file.
    fn mapped(&self) -> bool {
        matches!(self.restarts, Run::Mapped(_))
    }

    /// Heap bytes (mapped keys hold none).
    pub fn memory_bytes(&self) -> usize {
        self.restarts.heap_bytes() + if self.mapped() { 0 } else { self.coded.len() }
    }

    /// Bytes of a file read where they lie.
    pub fn mapped_bytes(&self) -> usize {
        self.restarts.mapped_bytes() + if self.mapped() { self.coded.len() } else { 0 }
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        put_u64(w, self.len as u64)?;
        put_bytes(w, self.coded.as_slice())?;
        self.restarts.write(w)
    }

    /// The keys [`SortedKeys::write`] wrote, where they lie: their count is checked against
    /// the restarts (the file's CRC covers the bytes; an entry that is not one reads as empty).
    pub fn map(m: &mut Mapped) -> io::Result<SortedKeys> {
        let len = usize::try_from(m.u64()?).map_err(|_| bad("keys"))?;
        let coded = m.bytes()?;
        let restarts: Run<u32> = m.run()?;
        if restarts.len() != len.div_ceil(RESTART) {
            return Err(bad("keys"));
        }
        Ok(SortedKeys { coded, restarts, len })
    }
}

/// Marks lengths that do not fit one byte: two LEB128s follow.
const LONG: u8 = 0xFF;

/// An entry's two lengths: `shared << 4 | rest` when they fit (never [`LONG`]), else [`LONG`]
/// and each as LEB128.
fn put_lengths(out: &mut Vec<u8>, shared: usize, rest: usize) {
    if shared < 15 && rest < 16 {
        out.push((shared << 4 | rest) as u8);
    } else {
        out.push(LONG);
        put_var(out, shared);
        put_var(out, rest);
    }
}

/// An entry at `at`: its shared length, the length of its rest, and where the rest starts.
fn entry(coded: &[u8], at: usize) -> (usize, usize, usize) {
    match coded.get(at) {
        Some(&LONG) => {
            let at = at + 1;
            let (shared, n) = usize::decode_var(coded.get(at..).unwrap_or_default()).unwrap_or((0, 1));
            let (rest, m) = usize::decode_var(coded.get(at.saturating_add(n)..).unwrap_or_default()).unwrap_or((0, 1));
            (shared, rest, at.saturating_add(n + m))
        }
        Some(&h) => (usize::from(h >> 4), usize::from(h & 15), at + 1),
        None => (0, 0, at.saturating_add(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(keys: &[Vec<u8>]) -> SortedKeys {
        let mut s = KeysBuilder::default();
        for k in keys {
            s.push(k).unwrap();
        }
        s.finish()
    }

    fn map(bytes: &[u8]) -> io::Result<SortedKeys> {
        SortedKeys::map(&mut Mapped::of(bytes.to_vec()))
    }

    proptest! {
        /// Keys moved out to a file a few bytes at a time are written byte for byte as the
        /// same keys built in memory.
        #[test]
        fn spilled_keys_write_as_built_ones(set in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..40), 0..300),
                                            chunk in 1usize..200) {
            let keys: Vec<Vec<u8>> = set.iter().cloned().collect();
            let mut spilling = SpillingKeys { chunk, ..SpillingKeys::new(tempfile::tempfile().unwrap()) };
            for (i, k) in keys.iter().enumerate() {
                prop_assert_eq!(spilling.push(k), Ok(i as u32));
            }
            if let Some(last) = keys.last() {
                prop_assert_eq!(spilling.push(last), Err(PushError::OutOfOrder));
            }
            let (mut spilled, mut built) = (Vec::new(), Vec::new());
            spilling.write(&mut spilled).unwrap();
            build(&keys).write(&mut built).unwrap();
            prop_assert_eq!(spilled, built);
        }

        /// Every key is found at its position and read back; absent keys are not found; the
        /// file form reads back the same.
        #[test]
        fn keys_round_trip(set in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..40), 0..300),
                           absent in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let keys: Vec<Vec<u8>> = set.iter().cloned().collect();
            let s = build(&keys);
            let mut buf = Vec::new();
            s.write(&mut buf).unwrap();
            let back = map(&buf).unwrap();
            for s in [&s, &back] {
                prop_assert_eq!(s.len(), keys.len());
                for (i, k) in keys.iter().enumerate() {
                    prop_assert_eq!(&s.get(i as u32), k);
                    prop_assert_eq!(s.find(k), Some(i as u32));
                }
                for a in &absent {
                    if !set.contains(a) {
                        prop_assert_eq!(s.find(a), None);
                    }
                }
                prop_assert!(!s.get_into(keys.len() as u32, &mut Vec::new()));
            }
        }
    }

    #[test]
    fn out_of_order_and_damaged_input_are_errors() {
        let mut s = KeysBuilder::default();
        s.push(b"350203194001010007").unwrap();
        assert_eq!(s.push(b"350203194001010007"), Err(PushError::OutOfOrder));
        assert_eq!(s.push(b"1"), Err(PushError::OutOfOrder));
        let keys: Vec<Vec<u8>> = (0..40u32).map(|i| format!("35020319400101{i:04}").into_bytes()).collect();
        let s = build(&keys);
        assert!(s.memory_bytes() < keys.len() * 10, "front coding saves memory: {}", s.memory_bytes());
        let mut buf = Vec::new();
        s.write(&mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(map(&buf[..cut]).is_err(), "cut at {cut}");
        }
        // Any single flipped byte is an error or reads back keys, right or wrong, but never
        // panics (a file's CRC refuses it before it is read: this is the second line).
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x5a;
            if let Ok(k) = map(&bad) {
                for j in 0..k.len() {
                    let _ = k.find(&k.get(j as u32));
                }
            }
        }
    }
}
