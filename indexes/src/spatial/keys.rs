//! The record keys of a layer's ids, as steps or front-coded, in memory and on disk.
//!
//! Ids are positions in key order, so the keys are pushed sorted and consecutive keys share
//! most of their bytes. Keys are kept packed four bits a digit ([`crate::digits`], which keeps
//! their order), a full key every [`RESTART`] keys; a key between is stored as a *step* from
//! the one before where it can be, else front-coded:
//!
//! - a step: the key is the one before with its tail counted up by `d`. The tail is its run
//!   of `0-9A-Z` at the end, read as a number whose positions count in tens where the key
//!   before has a digit, in 36s where it has a letter and at the last (a check character):
//!   identity numbers, credit codes and parcel numbers are digits ending in a check
//!   character, so between neighbours `d` is their distance, one or two bytes
//!   (`d ≤ 128`: one byte; `≤ 16512`: two; else [`STEP_LONG`] and a LEB128);
//! - else [`FRONT`], the length shared with the one before and the length of the rest
//!   (LEB128s), then the rest.
//!
//! An 18-character identity number takes about 2.8 bytes among 10M (a model of the
//! generator's keys; 3.8 front-coded, 7 unpacked, 22 as its bytes and a 32-bit offset); a
//! key is found by a binary search over the restarts and a scan of at most [`RESTART`]
//! entries. The file form is the memory form.

use super::persist::{Mapped, Run, bad, put_bytes, put_u64, put_var};
use crate::digits;
use integer_encoding::VarInt;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use tantivy::directory::OwnedBytes;

/// Keys between two full ones.
pub const RESTART: usize = 16;

/// An entry's first byte: below [`STEP2`] a step of `b + 1`; below [`STEP_LONG`] a step of two
/// bytes; then a long step, a front-coded key. Any other byte is not an entry.
const STEP2: u8 = 0x80;
const STEP_LONG: u8 = 0xC0;
const FRONT: u8 = 0xC1;
/// The largest step of one byte, and of two.
const STEP1_MAX: u64 = 128;
const STEP2_MAX: u64 = STEP1_MAX + (1 << 14);

/// A character's value in a tail (`0-9A-Z`).
fn tail_value(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'A'..=b'Z' => Some(u64::from(c - b'A') + 10),
        _ => None,
    }
}

/// What a position of the tail counts in: 36 at the last and where the key has a letter, else 10.
fn radix(key: &[u8], at: usize) -> u64 {
    if at + 1 == key.len() || key[at].is_ascii_uppercase() { 36 } else { 10 }
}

/// How far `next` is from `prev` counting up `prev`'s tail: None when `next` is not `prev`
/// with its tail counted up (another length or prefix, a character its position cannot hold),
/// or the distance needs more than 64 bits.
fn step_between(prev: &[u8], next: &[u8]) -> Option<u64> {
    if prev.len() != next.len() {
        return None;
    }
    // The tail: as many positions from the end as a 64-bit number holds.
    let (mut start, mut span) = (prev.len(), 1u64);
    while start > 0 && tail_value(prev[start - 1]).is_some() {
        let r = radix(prev, start - 1);
        match span.checked_mul(r) {
            Some(s) => (span, start) = (s, start - 1),
            None => break,
        }
    }
    if start == prev.len() || prev[..start] != next[..start] {
        return None;
    }
    let (mut a, mut b) = (0u64, 0u64);
    for at in start..prev.len() {
        let r = radix(prev, at);
        let y = tail_value(next[at]).filter(|&y| y < r)?;
        // Both below `span`, which fits: no overflow.
        a = a * r + tail_value(prev[at])?;
        b = b * r + y;
    }
    b.checked_sub(a).filter(|&d| d > 0)
}

/// Counts `key`'s tail up by `d`, in place; false when it does not hold `d` more.
fn count_up(key: &mut [u8], mut d: u64) -> bool {
    let mut at = key.len();
    while d > 0 {
        let Some(i) = at.checked_sub(1) else { return false };
        at = i;
        let Some(x) = tail_value(key[i]) else { return false };
        let r = radix(key, i);
        let sum = x + d % r;
        d = d / r + sum / r;
        let v = (sum % r) as u8;
        key[i] = if v < 10 { b'0' + v } else { b'A' + v - 10 };
    }
    true
}

fn put_step(out: &mut Vec<u8>, d: u64) {
    if d <= STEP1_MAX {
        out.push((d - 1) as u8);
    } else if d <= STEP2_MAX {
        let v = d - STEP1_MAX - 1;
        out.extend_from_slice(&[STEP2 | (v >> 8) as u8, v as u8]);
    } else {
        out.push(STEP_LONG);
        put_var(out, d - STEP2_MAX - 1);
    }
}

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
    /// The last key pushed, as it was pushed.
    last_plain: Vec<u8>,
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
    pub fn push(&mut self, plain: &[u8]) -> Result<u32, PushError> {
        self.packed.clear();
        digits::pack(plain, &mut self.packed);
        let key = self.packed.as_slice();
        if self.len > 0 && key <= self.last.as_slice() {
            return Err(PushError::OutOfOrder);
        }
        if self.len.is_multiple_of(RESTART) {
            self.restarts.push(u32::try_from(self.spilled + self.coded.len()).map_err(|_| PushError::TooLarge)?);
            put_var(&mut self.coded, key.len());
            self.coded.extend_from_slice(key);
        } else if let Some(d) = step_between(&self.last_plain, plain) {
            put_step(&mut self.coded, d);
        } else {
            let shared = self.last.iter().zip(key).take_while(|(a, b)| a == b).count();
            self.coded.push(FRONT);
            put_var(&mut self.coded, shared);
            put_var(&mut self.coded, key.len() - shared);
            self.coded.extend_from_slice(&key[shared..]);
        }
        if self.spilled + self.coded.len() > u32::MAX as usize {
            return Err(PushError::TooLarge);
        }
        std::mem::swap(&mut self.last, &mut self.packed);
        self.last_plain.clear();
        self.last_plain.extend_from_slice(plain);
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
/// file (about 3 bytes a key, 0.4 GB at 100M) need not be held while its points are sorted.
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

    /// The full (packed) key of restart `r`, and where the entry after it starts; None when
    /// its bytes are not one.
    fn restart(&self, r: usize) -> Option<(&[u8], usize)> {
        let coded = self.coded.as_slice();
        let at = self.restarts.get(r) as usize;
        let (len, n) = usize::decode_var(coded.get(at..)?)?;
        let end = (at + n).checked_add(len)?;
        Some((coded.get(at + n..end)?, end))
    }

    /// A cursor on restart `r`'s key (one that reads nothing when its bytes are not a key).
    fn cursor(&self, r: usize) -> Cursor<'_> {
        let (key, next) = self.restart(r).unwrap_or((&[], usize::MAX));
        let mut c =
            Cursor { coded: self.coded.as_slice(), at: next, packed: key.to_vec(), plain: Vec::new(), stale: false };
        if !digits::unpack(key, &mut c.plain) {
            c.at = usize::MAX;
        }
        c
    }

    /// The key at position `i` into `out` (cleared first); false when there is none, or its
    /// bytes are not a packed key (a damaged file: its CRC refuses it before it is mapped).
    pub fn get_into(&self, i: u32, out: &mut Vec<u8>) -> bool {
        let i = i as usize;
        out.clear();
        if i >= self.len {
            return false;
        }
        let mut c = self.cursor(i / RESTART);
        for _ in 0..i % RESTART {
            if !c.next() {
                return false;
            }
        }
        if c.at == usize::MAX {
            return false;
        }
        out.extend_from_slice(&c.plain);
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
        let packed = digits::packed(key);
        // The last restart whose (full) key is at most `key`.
        let (mut lo, mut hi) = (0usize, self.restarts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.restart(mid).map_or(&[][..], |(k, _)| k) <= packed.as_slice() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let r = lo.checked_sub(1)?;
        // Keys compare as their packed forms do.
        let mut c = self.cursor(r);
        for i in r * RESTART..((r + 1) * RESTART).min(self.len) {
            if i > r * RESTART && !c.next() {
                return None;
            }
            match c.plain.as_slice().cmp(key) {
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

/// Reads the keys after a restart, one entry at a time: the key as pushed (`plain`), and its
/// packed form where a front-coded entry needs it (`stale` until then).
struct Cursor<'k> {
    coded: &'k [u8],
    /// Where the next entry starts; `usize::MAX` once bytes were not an entry.
    at: usize,
    packed: Vec<u8>,
    plain: Vec<u8>,
    stale: bool,
}

impl Cursor<'_> {
    /// Moves to the next key; false (for good) when its bytes are not an entry: never a panic.
    fn next(&mut self) -> bool {
        let ok = self.step().is_some();
        if !ok {
            self.at = usize::MAX;
        }
        ok
    }

    fn step(&mut self) -> Option<()> {
        let coded = self.coded;
        let b = *coded.get(self.at)?;
        let at = self.at + 1;
        let (d, next) = match b {
            _ if b < STEP2 => (u64::from(b) + 1, at),
            _ if b < STEP_LONG => (STEP1_MAX + 1 + (u64::from(b & !STEP2) << 8 | u64::from(*coded.get(at)?)), at + 1),
            STEP_LONG => {
                let (v, n) = u64::decode_var(coded.get(at..)?)?;
                (v.checked_add(STEP2_MAX + 1)?, at + n)
            }
            FRONT => {
                let (shared, n) = usize::decode_var(coded.get(at..)?)?;
                let (rest, m) = usize::decode_var(coded.get(at + n..)?)?;
                let start = at + n + m;
                let bytes = coded.get(start..start.checked_add(rest)?)?;
                if self.stale {
                    self.packed.clear();
                    digits::pack(&self.plain, &mut self.packed);
                }
                if shared > self.packed.len() {
                    return None;
                }
                self.packed.truncate(shared);
                self.packed.extend_from_slice(bytes);
                self.plain.clear();
                self.stale = false;
                self.at = start + rest;
                return digits::unpack(&self.packed, &mut self.plain).then_some(());
            }
            _ => return None,
        };
        self.at = next;
        self.stale = true;
        count_up(&mut self.plain, d).then_some(())
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

    /// Keys of the registries' shapes: 17 digits and a check character (`0-9X`), credit codes
    /// with letters inside, parcel numbers with letters in the middle, and a few others.
    fn shaped_keys() -> impl Strategy<Value = std::collections::BTreeSet<Vec<u8>>> {
        let key = prop_oneof![
            ("3502[0-1][0-9]{12}", "[0-9X]").prop_map(|(a, b)| format!("{a}{b}")),
            "9135020[0-9]{8}[0-9A-Z]{2}[0-9A-Z]",
            "350203000000GB0[0-9]{4}",
            "Z[Z0-9]{3}",
            "[0-9]{1,3}",
            ".{0,6}",
        ];
        proptest::collection::btree_set(key.prop_map(String::into_bytes), 0..400)
    }

    #[test]
    fn steps_count_a_tail_up() {
        let step = |a: &str, b: &str| step_between(a.as_bytes(), b.as_bytes());
        // Digits count in tens, the last position in 36s.
        assert_eq!(step("350203194001010007", "350203194001010154"), Some(36 * 15 + 4 - 7));
        assert_eq!(step("35020319400101015X", "350203194001010161"), Some(36 + 1 - 33));
        // A letter in the key before counts in 36s there; in the next key a letter where the
        // key before has a digit is not a step, nor is another length or a lower key.
        assert_eq!(step("9135020300003442XQ", "91350203000034434L"), Some(36 * (36 - 33 + 4) + 21 - 26));
        assert_eq!(step("913502030000344210", "9135020300003442X1"), None);
        assert_eq!(step("12", "123"), None);
        assert_eq!(step("19", "18"), None);
        assert_eq!(step("a1", "b1"), None);
        for (a, b) in [
            ("350203194001010007", "350203194001010154"),
            ("9135020300003442XQ", "91350203000034434L"),
            ("099Z", "1000"),
        ] {
            let mut k = a.as_bytes().to_vec();
            assert!(count_up(&mut k, step(a, b).unwrap()), "{a} → {b}");
            assert_eq!(k, b.as_bytes());
        }
        // Counting past the tail fails.
        assert!(!count_up(&mut b"a9Z".to_vec(), 1));
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

        /// Every key — of any bytes, or of the registries' shapes, where most are steps — is
        /// found at its position and read back; absent keys are not found; the file form reads
        /// back the same.
        #[test]
        fn keys_round_trip(set in prop_oneof![proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..40), 0..300), shaped_keys()],
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
