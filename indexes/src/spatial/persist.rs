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
    let n = get_u64(r)?;
    let buf = read_n(r, n.checked_mul(8).ok_or_else(|| bad("length"))?)?;
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
    let n = get_u64(r)?;
    let buf = read_n(r, n.checked_mul(4).ok_or_else(|| bad("length"))?)?;
    Ok(buf.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

/// Length-prefixed bytes.
pub fn put_bytes(w: &mut impl Write, v: &[u8]) -> io::Result<()> {
    put_u64(w, v.len() as u64)?;
    w.write_all(v)
}

pub fn get_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let n = get_u64(r)?;
    read_n(r, n)
}

/// Exactly `n` bytes. The buffer grows with what is read, so a damaged length cannot make
/// one huge allocation before the short read is noticed.
fn read_n(r: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n.min(64 << 20) as usize);
    r.take(n).read_to_end(&mut buf)?;
    if buf.len() as u64 != n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spatial index file: truncated"));
    }
    Ok(buf)
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
