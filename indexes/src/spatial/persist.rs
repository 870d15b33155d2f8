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

/// Bytes converted a chunk at a time: a file of tens of millions of points is written and
/// read without a second copy of it in memory.
const CHUNK: usize = 1 << 16;

/// `n` f64s from `v`, length first.
fn write_f64s(w: &mut impl Write, n: usize, v: impl Iterator<Item = f64>) -> io::Result<()> {
    write_run(w, n, v.map(f64::to_le_bytes))
}

/// A length-prefixed run of u32s.
pub fn put_u32s(w: &mut impl Write, v: &[u32]) -> io::Result<()> {
    write_run(w, v.len(), v.iter().map(|x| x.to_le_bytes()))
}

pub fn get_u32s(r: &mut impl Read) -> io::Result<Vec<u32>> {
    get_run(r, u32::from_le_bytes)
}

/// `n` fixed-width values (their little-endian bytes), length first, through a small buffer.
fn write_run<const W: usize>(w: &mut impl Write, n: usize, v: impl Iterator<Item = [u8; W]>) -> io::Result<()> {
    put_u64(w, n as u64)?;
    let mut buf = Vec::with_capacity(CHUNK);
    for x in v {
        buf.extend_from_slice(&x);
        if buf.len() + W > CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// A run written by [`write_run`], decoded a chunk at a time into its vector.
fn get_run<T, const W: usize>(r: &mut impl Read, decode: fn([u8; W]) -> T) -> io::Result<Vec<T>> {
    let n = get_u64(r)?;
    let mut out = sized(n)?;
    read_chunks(r, n.checked_mul(W as u64).ok_or_else(|| bad("length"))?, W, |b| {
        out.extend(b.chunks_exact(W).map(|c| decode(c.try_into().unwrap_or([0; W]))));
    })?;
    Ok(out)
}

/// An empty vector with room for exactly `n` values, so that reading a run of a hundred
/// million does not double its way there (holding up to twice its size, and copying it on
/// each doubling). A damaged length that cannot be reserved is an error. One that can takes
/// address space only: its pages are not touched before the short read ends it.
fn sized<T>(n: u64) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(usize::try_from(n).map_err(|_| bad("length"))?).map_err(|_| bad("length"))?;
    Ok(out)
}

/// Reads exactly `n` bytes, passing them to `each` a chunk at a time (each a multiple of
/// `unit`, which divides `n`), through one small buffer.
fn read_chunks(r: &mut impl Read, n: u64, unit: usize, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    if !n.is_multiple_of(unit as u64) {
        return Err(bad("length"));
    }
    let mut buf = vec![0u8; CHUNK / unit * unit];
    let mut left = n;
    while left > 0 {
        let len = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..len]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(e.kind(), "spatial index file: truncated"),
            _ => e,
        })?;
        each(&buf[..len]);
        left -= len as u64;
    }
    Ok(())
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

/// Exactly `n` bytes (see [`sized`]).
fn read_n(r: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut buf = sized(n)?;
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
    /// The leaf's f64s (the first [`Flat::WIDTH`] of them).
    fn flat(&self) -> [f64; 4];
    fn from(v: &[f64]) -> Self;
}

impl Flat for [f64; 2] {
    const WIDTH: usize = 2;
    fn flat(&self) -> [f64; 4] {
        [self[0], self[1], 0.0, 0.0]
    }
    fn from(v: &[f64]) -> Self {
        [v[0], v[1]]
    }
}

impl Flat for BBox {
    const WIDTH: usize = 4;
    fn flat(&self) -> [f64; 4] {
        *self
    }
    fn from(v: &[f64]) -> Self {
        [v[0], v[1], v[2], v[3]]
    }
}

/// A run of leaves as written by [`write_flat`]: read straight into its vector.
pub(crate) fn get_flat<L: Flat>(r: &mut impl Read) -> io::Result<Vec<L>> {
    let n = get_u64(r)?;
    if !n.is_multiple_of(L::WIDTH as u64) {
        return Err(bad("length"));
    }
    let mut out = sized(n / L::WIDTH as u64)?;
    read_chunks(r, n.checked_mul(8).ok_or_else(|| bad("length"))?, 8 * L::WIDTH, |b| {
        for leaf in b.chunks_exact(8 * L::WIDTH) {
            let mut v = [0.0; 4];
            for (x, c) in v.iter_mut().zip(leaf.chunks_exact(8)) {
                *x = f64::from_le_bytes(c.try_into().unwrap_or_default());
            }
            out.push(L::from(&v[..L::WIDTH]));
        }
    })?;
    Ok(out)
}

/// Leaves as a length-prefixed run of f64s.
pub(crate) fn write_flat<L: Flat>(w: &mut impl Write, leaves: &[L]) -> io::Result<()> {
    write_f64s(w, leaves.len() * L::WIDTH, leaves.iter().flat_map(|l| l.flat().into_iter().take(L::WIDTH)))
}

impl<L: Flat> PackedTree<L> {
    pub(crate) fn write(&self, w: &mut impl Write) -> io::Result<()> {
        write_flat(w, &self.leaves)?;
        put_u32s(w, &self.ids)?;
        put_u64(w, self.levels.len() as u64)?;
        for level in &self.levels {
            write_flat(w, level)?;
        }
        Ok(())
    }

    pub(crate) fn read(r: &mut impl Read) -> io::Result<Self> {
        let leaves: Vec<L> = get_flat(r)?;
        let ids = get_u32s(r)?;
        if ids.len() != leaves.len() {
            return Err(bad("ids"));
        }
        let n = get_u64(r)? as usize;
        let mut levels = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            levels.push(get_flat::<BBox>(r)?);
        }
        Ok(PackedTree { leaves, ids, levels })
    }
}
