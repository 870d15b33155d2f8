//! The record keys of a layer's ids, front-coded in memory and on disk.
//!
//! Ids are positions in key order, so the keys are pushed sorted and consecutive keys share
//! most of their bytes: each is stored as the length it shares with the one before, the length
//! of the rest (LEB128) and the rest, with a full key every [`RESTART`] keys. An 18-character
//! identity number takes about 7 bytes instead of 22 (the bytes and a 32-bit offset), which at
//! 130M located records is about 2 GB of memory; a key is found by a binary search over the
//! restarts and a scan of at most [`RESTART`] entries. The file form is the memory form.

use super::persist::{bad, get_bytes, get_u32s, get_u64, put_bytes, put_u32s, put_u64};
use std::cmp::Ordering;
use std::io::{self, Read, Write};

/// Keys between two full ones.
pub const RESTART: usize = 16;

/// Keys in ascending order, by position.
#[derive(Debug, Default)]
pub struct SortedKeys {
    coded: Vec<u8>,
    /// Where every `RESTART`-th key starts in `coded`.
    restarts: Vec<u32>,
    len: usize,
    last: Vec<u8>,
}

/// Why a key cannot be pushed.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// Keys must come in strictly ascending order.
    OutOfOrder,
    /// More than 4 GiB of coded keys in one set.
    TooLarge,
}

impl SortedKeys {
    /// Appends a key greater than every key before it; returns its position.
    pub fn push(&mut self, key: &[u8]) -> Result<u32, PushError> {
        if self.len > 0 && key <= self.last.as_slice() {
            return Err(PushError::OutOfOrder);
        }
        let shared = if self.len.is_multiple_of(RESTART) {
            self.restarts.push(u32::try_from(self.coded.len()).map_err(|_| PushError::TooLarge)?);
            0
        } else {
            self.last.iter().zip(key).take_while(|(a, b)| a == b).count()
        };
        put_leb128(&mut self.coded, shared);
        put_leb128(&mut self.coded, key.len() - shared);
        self.coded.extend_from_slice(&key[shared..]);
        if self.coded.len() > u32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        self.last.clear();
        self.last.extend_from_slice(key);
        self.len += 1;
        u32::try_from(self.len - 1).map_err(|_| PushError::TooLarge)
    }

    pub fn shrink(mut self) -> Self {
        self.coded.shrink_to_fit();
        self.restarts.shrink_to_fit();
        self.last = Vec::new();
        self
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key at position `i` into `out` (cleared first); false when there is none.
    pub fn get_into(&self, i: u32, out: &mut Vec<u8>) -> bool {
        let i = i as usize;
        out.clear();
        if i >= self.len {
            return false;
        }
        let mut at = self.restarts[i / RESTART] as usize;
        for _ in 0..=i % RESTART {
            // Pushed by `push`: well formed.
            let (shared, rest, start) = entry(&self.coded, at);
            out.truncate(shared);
            out.extend_from_slice(&self.coded[start..start + rest]);
            at = start + rest;
        }
        true
    }

    /// The key at position `i` (empty when there is none).
    pub fn get(&self, i: u32) -> Vec<u8> {
        let mut out = Vec::new();
        self.get_into(i, &mut out);
        out
    }

    /// The position of a key.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        // The last restart whose (full) key is at most `key`.
        let restart_key = |r: usize| {
            let (_, rest, start) = entry(&self.coded, self.restarts[r] as usize);
            &self.coded[start..start + rest]
        };
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
        let mut at = self.restarts[r] as usize;
        let mut cur = Vec::with_capacity(key.len());
        for i in r * RESTART..((r + 1) * RESTART).min(self.len) {
            let (shared, rest, start) = entry(&self.coded, at);
            cur.truncate(shared);
            cur.extend_from_slice(&self.coded[start..start + rest]);
            at = start + rest;
            match cur.as_slice().cmp(key) {
                Ordering::Less => {}
                Ordering::Equal => return Some(i as u32),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// Heap bytes.
    pub fn memory_bytes(&self) -> usize {
        self.coded.capacity() + self.restarts.capacity() * 4 + self.last.capacity()
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        put_u64(w, self.len as u64)?;
        put_bytes(w, &self.coded)?;
        put_u32s(w, &self.restarts)
    }

    /// Reads what [`SortedKeys::write`] wrote, checking every entry's bounds and the order of
    /// the keys, so that a damaged file is an error, never a panic later.
    pub fn read(r: &mut impl Read) -> io::Result<SortedKeys> {
        let len = get_u64(r)? as usize;
        let coded = get_bytes(r)?;
        let restarts = get_u32s(r)?;
        if restarts.len() != len.div_ceil(RESTART) {
            return Err(bad("keys"));
        }
        let (mut at, mut prev, mut cur) = (0usize, Vec::new(), Vec::new());
        for i in 0..len {
            if i % RESTART == 0 && restarts[i / RESTART] as usize != at {
                return Err(bad("keys"));
            }
            let (shared, n) = get_leb128(&coded, at).ok_or_else(|| bad("keys"))?;
            let (rest, m) = get_leb128(&coded, at + n).ok_or_else(|| bad("keys"))?;
            let start = at + n + m;
            let suffix = coded.get(start..start.saturating_add(rest)).ok_or_else(|| bad("keys"))?;
            if shared > prev.len() || (i % RESTART == 0 && shared != 0) {
                return Err(bad("keys"));
            }
            cur.clear();
            cur.extend_from_slice(&prev[..shared]);
            cur.extend_from_slice(suffix);
            if i > 0 && cur <= prev {
                return Err(bad("keys (order)"));
            }
            std::mem::swap(&mut prev, &mut cur);
            at = start + rest;
        }
        if at != coded.len() {
            return Err(bad("keys"));
        }
        Ok(SortedKeys { coded, restarts, len, last: Vec::new() })
    }
}

/// An entry at `at`: its shared length, the length of its rest, and where the rest starts.
fn entry(coded: &[u8], at: usize) -> (usize, usize, usize) {
    let (shared, n) = get_leb128(coded, at).unwrap_or((0, 1));
    let (rest, m) = get_leb128(coded, at + n).unwrap_or((0, 1));
    (shared, rest, at + n + m)
}

fn put_leb128(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 number at `at` and the bytes it took.
fn get_leb128(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for (n, shift) in (0..10).map(|n| (n, 7 * n)) {
        let byte = *b.get(at + n)?;
        v |= ((byte & 0x7f) as usize).checked_shl(shift as u32)?;
        if byte < 0x80 {
            return Some((v, n + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(keys: &[Vec<u8>]) -> SortedKeys {
        let mut s = SortedKeys::default();
        for k in keys {
            s.push(k).unwrap();
        }
        s.shrink()
    }

    proptest! {
        /// Every key is found at its position and read back; absent keys are not found; the
        /// file form reads back the same.
        #[test]
        fn keys_round_trip(set in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..40), 0..300),
                           absent in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let keys: Vec<Vec<u8>> = set.iter().cloned().collect();
            let s = build(&keys);
            let mut buf = Vec::new();
            s.write(&mut buf).unwrap();
            let back = SortedKeys::read(&mut buf.as_slice()).unwrap();
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
        let mut s = SortedKeys::default();
        s.push(b"350203194001010007").unwrap();
        assert_eq!(s.push(b"350203194001010007"), Err(PushError::OutOfOrder));
        assert_eq!(s.push(b"1"), Err(PushError::OutOfOrder));
        let keys: Vec<Vec<u8>> = (0..40u32).map(|i| format!("35020319400101{i:04}").into_bytes()).collect();
        let s = build(&keys);
        assert!(s.memory_bytes() < keys.len() * 10, "front coding saves memory: {}", s.memory_bytes());
        let mut buf = Vec::new();
        s.write(&mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(SortedKeys::read(&mut &buf[..cut]).is_err(), "cut at {cut}");
        }
        // Any single flipped byte is an error or reads back keys in order (never a panic).
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x5a;
            if let Ok(k) = SortedKeys::read(&mut bad.as_slice()) {
                for j in 0..k.len() {
                    let _ = k.find(&k.get(j as u32));
                }
            }
        }
    }
}
