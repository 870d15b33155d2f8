//! Writing an index to bytes and reading it back, so that a process can open a large index
//! in a fraction of the time a rebuild takes. Little-endian, length-prefixed; the caller adds
//! its own header (what the index was built from) and decides when a file is still valid.

use super::BBox;
use super::tree::{Leaf, PackedTree};
use std::io::{self, Read, Write};

pub fn put_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

pub fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// A length-prefixed run of f64s.
pub(crate) fn put_f64s(w: &mut impl Write, v: impl ExactSizeIterator<Item = f64>) -> io::Result<()> {
    put_u64(w, v.len() as u64)?;
    let mut buf = Vec::with_capacity(v.len() * 8);
    for x in v {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    w.write_all(&buf)
}

pub(crate) fn get_f64s(r: &mut impl Read) -> io::Result<Vec<f64>> {
    let n = get_u64(r)? as usize;
    let mut buf = vec![0u8; n.checked_mul(8).ok_or_else(|| bad("length"))?];
    r.read_exact(&mut buf)?;
    Ok(buf.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

/// A length-prefixed run of u32s.
pub fn put_u32s(w: &mut impl Write, v: &[u32]) -> io::Result<()> {
    put_u64(w, v.len() as u64)?;
    let mut buf = Vec::with_capacity(v.len() * 4);
    for x in v {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    w.write_all(&buf)
}

pub fn get_u32s(r: &mut impl Read) -> io::Result<Vec<u32>> {
    let n = get_u64(r)? as usize;
    let mut buf = vec![0u8; n.checked_mul(4).ok_or_else(|| bad("length"))?];
    r.read_exact(&mut buf)?;
    Ok(buf.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

/// Length-prefixed bytes.
pub fn put_bytes(w: &mut impl Write, v: &[u8]) -> io::Result<()> {
    put_u64(w, v.len() as u64)?;
    w.write_all(v)
}

pub fn get_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = get_u64(r)? as usize;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Keys in ascending order, front-coded: each as the length it shares with the one before, the
/// length of the rest, and the rest (lengths as LEB128). Sorted identifiers share most of their
/// prefix, so an 18-character identity number takes about 6 bytes instead of 18 and an offset.
pub fn put_front_coded<'a>(w: &mut impl Write, keys: impl ExactSizeIterator<Item = &'a [u8]>) -> io::Result<()> {
    put_u64(w, keys.len() as u64)?;
    let mut out = Vec::new();
    let mut prev: &[u8] = &[];
    for key in keys {
        let shared = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
        put_leb128(&mut out, shared);
        put_leb128(&mut out, key.len() - shared);
        out.extend_from_slice(&key[shared..]);
        prev = key;
    }
    put_bytes(w, &out)
}

/// Reads keys written by [`put_front_coded`]: their bytes end to end and each one's end.
pub fn get_front_coded(r: &mut impl Read) -> io::Result<(Vec<u8>, Vec<u32>)> {
    let n = get_u64(r)? as usize;
    let coded = get_bytes(r)?;
    let mut bytes: Vec<u8> = Vec::with_capacity(coded.len() * 3);
    let mut ends = Vec::with_capacity(n.min(coded.len()));
    let (mut at, mut start) = (0usize, 0usize);
    for _ in 0..n {
        let shared = get_leb128(&coded, &mut at)?;
        let rest = get_leb128(&coded, &mut at)?;
        let prev_len = bytes.len() - start;
        let suffix = coded.get(at..at + rest).ok_or_else(|| bad("keys"))?;
        if shared > prev_len {
            return Err(bad("keys"));
        }
        let new_start = bytes.len();
        bytes.extend_from_within(start..start + shared);
        bytes.extend_from_slice(suffix);
        at += rest;
        start = new_start;
        ends.push(u32::try_from(bytes.len()).map_err(|_| bad("keys (over 4 GiB)"))?);
    }
    if at != coded.len() {
        return Err(bad("keys"));
    }
    bytes.shrink_to_fit();
    Ok((bytes, ends))
}

fn put_leb128(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_leb128(b: &[u8], at: &mut usize) -> io::Result<usize> {
    let mut v = 0usize;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| bad("keys"))?;
        *at += 1;
        v |= ((byte & 0x7f) as usize) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(bad("keys"))
}

pub(crate) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spatial index file: bad {what}"))
}

/// Leaves that know how to flatten themselves to f64s.
pub(crate) trait Flat: Leaf {
    const WIDTH: usize;
    fn push(&self, out: &mut Vec<f64>);
    fn from(v: &[f64]) -> Self;
}

impl Flat for [f64; 2] {
    const WIDTH: usize = 2;
    fn push(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
    fn from(v: &[f64]) -> Self {
        [v[0], v[1]]
    }
}

impl Flat for BBox {
    const WIDTH: usize = 4;
    fn push(&self, out: &mut Vec<f64>) {
        out.extend_from_slice(self);
    }
    fn from(v: &[f64]) -> Self {
        [v[0], v[1], v[2], v[3]]
    }
}

impl<L: Flat> PackedTree<L> {
    pub(crate) fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut flat = Vec::with_capacity(self.leaves.len() * L::WIDTH);
        self.leaves.iter().for_each(|l| l.push(&mut flat));
        put_f64s(w, flat.into_iter())?;
        put_u32s(w, &self.ids)?;
        put_u64(w, self.levels.len() as u64)?;
        for level in &self.levels {
            put_f64s(w, level.iter().flatten().copied().collect::<Vec<_>>().into_iter())?;
        }
        Ok(())
    }

    pub(crate) fn read(r: &mut impl Read) -> io::Result<Self> {
        let leaves: Vec<L> = get_f64s(r)?.chunks_exact(L::WIDTH).map(L::from).collect();
        let ids = get_u32s(r)?;
        if ids.len() != leaves.len() {
            return Err(bad("ids"));
        }
        let n = get_u64(r)? as usize;
        let mut levels = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            levels.push(get_f64s(r)?.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect());
        }
        Ok(PackedTree { leaves, ids, levels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Front coding gives back exactly the keys written, whatever their lengths and order.
        #[test]
        fn front_coded_keys_round_trip(mut keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..200), sort in any::<bool>()) {
            if sort {
                keys.sort();
            }
            let mut buf = Vec::new();
            put_front_coded(&mut buf, keys.iter().map(Vec::as_slice)).unwrap();
            let (bytes, ends) = get_front_coded(&mut buf.as_slice()).unwrap();
            let mut start = 0;
            let back: Vec<Vec<u8>> = ends.iter().map(|&e| { let k = bytes[start..e as usize].to_vec(); start = e as usize; k }).collect();
            prop_assert_eq!(back, keys);
        }
    }

    #[test]
    fn truncated_front_coding_is_an_error() {
        let mut buf = Vec::new();
        let keys: [&[u8]; 3] = [b"350203194001010007", b"350203194001010015", b"350212195202227617"];
        put_front_coded(&mut buf, keys.into_iter()).unwrap();
        assert!(buf.len() < 8 + 8 + 54, "front coding saves bytes: {}", buf.len());
        for cut in 1..buf.len() {
            assert!(get_front_coded(&mut &buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
