//! A tree's ids, one a leaf, bit-packed at the width the largest one needs: a layer of 10M
//! points needs 24 bits an id, not 32 (the spatial files 10.0 → 9.3 bytes a record at 10M
//! citizens). Read where they lie, as a [`super::persist::Run`] is.
//!
//! Form: `[count u64][bits u64][the ids, little-endian bit order][7 zero bytes]`. The padding
//! lets any id be read with one unaligned 8-byte load.

use super::persist::{CHUNK, Mapped, bad, put_u64};
use std::io::{self, Write};
use tantivy::directory::OwnedBytes;

const PAD: usize = 7;

/// Ids by position.
pub struct Ids {
    len: usize,
    bits: u32,
    packed: OwnedBytes,
    /// The bytes are a file's (mapped), not the heap's.
    mapped: bool,
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ids").field("len", &self.len).field("bits", &self.bits).finish_non_exhaustive()
    }
}

impl From<&[u32]> for Ids {
    /// Ids packed in memory.
    fn from(ids: &[u32]) -> Ids {
        let mut out = Vec::new();
        let max = ids.iter().copied().max().unwrap_or(0);
        put_ids(&mut out, ids.len(), max, ids.iter().copied()).expect("a vector takes any write");
        let mut ids = Ids::map(&mut Mapped::of(out)).expect("ids read back as written");
        ids.mapped = false;
        ids
    }
}

/// Bits an id of at most `max` takes.
fn bits_for(max: u32) -> u32 {
    u32::BITS - max.leading_zeros()
}

/// Writes `n` ids, none above `max`, as [`Ids::map`] reads them, a chunk at a time.
pub fn put_ids(w: &mut impl Write, n: usize, max: u32, ids: impl IntoIterator<Item = u32>) -> io::Result<()> {
    let bits = bits_for(max);
    put_u64(w, n as u64)?;
    put_u64(w, u64::from(bits))?;
    let mut buf = Vec::with_capacity(CHUNK + 8);
    let (mut acc, mut filled, mut count) = (0u64, 0u32, 0usize);
    for id in ids {
        if id > max {
            return Err(io::Error::other(format!("id {id} above the largest announced, {max}")));
        }
        acc |= u64::from(id) << filled;
        filled += bits;
        while filled >= 8 {
            buf.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
        count += 1;
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    if count != n {
        return Err(io::Error::other(format!("{n} ids announced, {count} given")));
    }
    if filled > 0 {
        buf.push(acc as u8);
    }
    buf.extend_from_slice(&[0; PAD]);
    w.write_all(&buf)
}

impl Ids {
    /// The ids [`put_ids`] wrote, where they lie.
    pub fn map(m: &mut Mapped) -> io::Result<Ids> {
        let len = usize::try_from(m.u64()?).map_err(|_| bad("ids"))?;
        let bits = u32::try_from(m.u64()?).ok().filter(|&b| b <= u32::BITS).ok_or_else(|| bad("id width"))?;
        let bytes = len.checked_mul(bits as usize).ok_or_else(|| bad("ids"))?.div_ceil(8) + PAD;
        let packed = m.take(bytes as u64)?;
        Ok(Ids { len, bits, packed, mapped: true })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The id at `i` (which must be below [`Ids::len`]).
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        let at = i * self.bits as usize;
        let word = self.packed.as_slice().get(at / 8..at / 8 + 8).map_or([0; 8], |b| b.try_into().unwrap_or([0; 8]));
        let mask = (1u64 << self.bits) - 1;
        ((u64::from_le_bytes(word) >> (at % 8)) & mask) as u32
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    /// Heap bytes (mapped ids hold none).
    pub fn heap_bytes(&self) -> usize {
        if self.mapped { 0 } else { self.packed.len() }
    }

    /// Bytes of a file mapped.
    pub fn mapped_bytes(&self) -> usize {
        if self.mapped { self.packed.len() } else { 0 }
    }

    /// As [`put_ids`] wrote them.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        put_u64(w, self.len as u64)?;
        put_u64(w, u64::from(self.bits))?;
        w.write_all(self.packed.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids of any width come back as given, from memory and from their written form.
        #[test]
        fn ids_come_back_as_given(ids in prop::collection::vec(any::<u32>(), 0..300), shift in 0u32..32) {
            let ids: Vec<u32> = ids.into_iter().map(|i| i >> shift).collect();
            let packed = Ids::from(&ids[..]);
            let mut file = Vec::new();
            packed.write(&mut file).unwrap();
            let mapped = Ids::map(&mut Mapped::of(file.clone())).unwrap();
            for got in [&packed, &mapped] {
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), ids.clone());
            }
            let max = ids.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(file.len(), 16 + (ids.len() * bits_for(max) as usize).div_ceil(8) + PAD);
            prop_assert_eq!(mapped.mapped_bytes(), file.len() - 16);
            prop_assert_eq!(packed.heap_bytes(), file.len() - 16);
        }
    }

    #[test]
    fn ten_million_positions_take_three_bytes_each_and_bad_forms_are_refused() {
        let mut file = Vec::new();
        put_ids(&mut file, 1000, 9_999_999, (0..1000).map(|i| i * 10_000)).unwrap();
        assert_eq!(file.len(), 16 + 3000 + PAD);
        assert_eq!(Ids::map(&mut Mapped::of(file.clone())).unwrap().get(999), 9_990_000);
        assert!(Ids::map(&mut Mapped::of(file[..file.len() - 1].to_vec())).is_err(), "cut short");
        let mut wide = file.clone();
        wide[8] = 33;
        assert!(Ids::map(&mut Mapped::of(wide)).is_err(), "wider than 32 bits");
        assert!(put_ids(&mut Vec::new(), 2, 5, [1, 6]).is_err(), "above the largest");
        assert!(put_ids(&mut Vec::new(), 3, 5, [1, 2]).is_err(), "fewer than announced");
    }
}
