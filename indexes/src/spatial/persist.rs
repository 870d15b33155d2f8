//! An index's file: written once, then opened where it lies. The values of an index are runs of
//! fixed-width little-endian values ([`Run`]) — built in memory, or slices of a memory-mapped
//! file — so a process opens an index of a hundred million points without reading it into its
//! heap: the kernel pages in what queries touch and can drop those pages again under pressure
//! (they are the page cache's, not the process's own memory).
//!
//! A file is `[magic][mark u64][body][crc32 u64]`: the caller's magic and mark (what the index
//! was built from), the runs, and a CRC-32 of every byte before it. A file is written beside
//! its place and renamed over it, and its CRC is checked by reading it (not through the
//! mapping, so a check leaves nothing resident) before it is mapped: a damaged file is an
//! error, never a wrong answer.

use integer_encoding::VarInt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use tantivy::directory::{Advice, Directory, MmapDirectory, OwnedBytes};

/// An index kept in a file: written once by [`Packed::write`], then opened where it lies.
pub trait Packed: Sized {
    fn write<W: Write>(&self, w: &mut W) -> io::Result<()>;
    /// The index `write` wrote, where it lies (its shape checked, so reads cannot fail).
    fn map(m: &mut Mapped) -> io::Result<Self>;
}

/// A value of a fixed width, stored little-endian.
pub trait Fixed: Copy {
    const WIDTH: usize;
    fn put(&self, out: &mut Vec<u8>);
    /// The value in `b` (exactly [`Fixed::WIDTH`] bytes).
    fn get(b: &[u8]) -> Self;
}

/// Little-endian integers of their own width.
macro_rules! fixed_int {
    ($($t:ty),*) => {$(
        impl Fixed for $t {
            const WIDTH: usize = size_of::<$t>();
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().unwrap_or_default())
            }
        }
    )*};
}

fixed_int!(u16, i32, u32, u64);

/// An array of fixed values, one after the other (grid points and boxes, their steps).
impl<T: Fixed + Default, const N: usize> Fixed for [T; N] {
    const WIDTH: usize = T::WIDTH * N;
    fn put(&self, out: &mut Vec<u8>) {
        for v in self {
            v.put(out);
        }
    }
    fn get(b: &[u8]) -> Self {
        std::array::from_fn(|i| b.get(T::WIDTH * i..T::WIDTH * (i + 1)).map_or_else(T::default, T::get))
    }
}

/// Values of one kind, by position: built in memory, or read where they lie in a file.
#[derive(Debug)]
pub enum Run<T> {
    Built(Vec<T>),
    Mapped(OwnedBytes),
}

impl<T> Default for Run<T> {
    fn default() -> Self {
        Run::Built(Vec::new())
    }
}

impl<T> From<Vec<T>> for Run<T> {
    fn from(v: Vec<T>) -> Self {
        Run::Built(v)
    }
}

impl<T: Fixed> Run<T> {
    pub fn len(&self) -> usize {
        match self {
            Run::Built(v) => v.len(),
            Run::Mapped(b) => b.len() / T::WIDTH,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `i` (which must be below [`Run::len`]).
    #[inline]
    pub fn get(&self, i: usize) -> T {
        match self {
            Run::Built(v) => v[i],
            Run::Mapped(b) => T::get(&b.as_slice()[i * T::WIDTH..(i + 1) * T::WIDTH]),
        }
    }

    /// The value at `i`, if there is one.
    pub fn at(&self, i: usize) -> Option<T> {
        (i < self.len()).then(|| self.get(i))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = T> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Heap bytes (a mapped run holds none).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Run::Built(v) => v.capacity() * size_of::<T>(),
            Run::Mapped(_) => 0,
        }
    }

    /// Bytes of a file mapped.
    pub fn mapped_bytes(&self) -> usize {
        match self {
            Run::Built(_) => 0,
            Run::Mapped(b) => b.len(),
        }
    }

    /// The run, length first, a chunk at a time (no second copy of it in memory).
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        match self {
            Run::Built(v) => put_fixed(w, v.len(), v.iter().copied()),
            Run::Mapped(b) => {
                put_u64(w, self.len() as u64)?;
                w.write_all(b.as_slice())
            }
        }
    }
}

/// `n` values as [`Run::write`] writes a run of them (its length first), converted a chunk at a
/// time: a run written from values computed as they go, never held.
pub fn put_fixed<T: Fixed>(w: &mut impl Write, n: usize, values: impl IntoIterator<Item = T>) -> io::Result<()> {
    put_u64(w, n as u64)?;
    let mut buf = Vec::with_capacity(CHUNK + T::WIDTH);
    let mut count = 0;
    for x in values {
        x.put(&mut buf);
        count += 1;
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    if count != n {
        return Err(io::Error::other(format!("a run of {n} values was given {count}")));
    }
    w.write_all(&buf)
}

/// Bytes converted a chunk at a time.
pub(crate) const CHUNK: usize = 1 << 16;

pub fn put_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

/// Appends `v` as a varint (LEB128; zigzag for a signed `v`).
pub fn put_var(out: &mut Vec<u8>, v: impl VarInt) {
    let mut buf = [0u8; 10];
    let n = v.encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Length-prefixed bytes.
pub fn put_bytes(w: &mut impl Write, v: &[u8]) -> io::Result<()> {
    put_u64(w, v.len() as u64)?;
    w.write_all(v)
}

pub(crate) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spatial index file: bad {what}"))
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "spatial index file: truncated")
}

/// The body of a file (or any bytes), read run by run without copying.
#[derive(Debug)]
pub struct Mapped {
    rest: OwnedBytes,
}

impl Mapped {
    pub fn new(bytes: OwnedBytes) -> Mapped {
        Mapped { rest: bytes }
    }

    /// Bytes written to a vector, as a file's body would be read (tests).
    pub fn of(bytes: Vec<u8>) -> Mapped {
        Mapped::new(OwnedBytes::new(bytes))
    }

    pub(crate) fn take(&mut self, n: u64) -> io::Result<OwnedBytes> {
        let n = usize::try_from(n).map_err(|_| bad("length"))?;
        if n > self.rest.len() {
            return Err(truncated());
        }
        let (head, rest) = std::mem::replace(&mut self.rest, OwnedBytes::empty()).split(n);
        self.rest = rest;
        Ok(head)
    }

    pub fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::get(self.take(8)?.as_slice()))
    }

    /// A run written by [`Run::write`].
    pub fn run<T: Fixed>(&mut self) -> io::Result<Run<T>> {
        let n = self.u64()?;
        let len = n.checked_mul(T::WIDTH as u64).ok_or_else(|| bad("length"))?;
        Ok(Run::Mapped(self.take(len)?))
    }

    /// Bytes written by [`put_bytes`].
    pub fn bytes(&mut self) -> io::Result<OwnedBytes> {
        let n = self.u64()?;
        self.take(n)
    }

    /// Whether every byte was read: a file with bytes left over is not what its reader wrote.
    pub fn finish(self) -> io::Result<()> {
        if self.rest.is_empty() { Ok(()) } else { Err(bad("length (bytes left over)")) }
    }
}

/// A writer that keeps the CRC-32 of what went through it.
struct Summed<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Files are written and opened one at a time in a process, so an open never maps a file a
/// save is renaming over it.
static FILES: Mutex<()> = Mutex::new(());

/// Writes `[magic][mark][body][crc]` to `path`: beside it first, synced, then renamed over it,
/// so a reader sees the old file or the new one whole. A mapping of the old file stays valid.
pub fn save(
    path: &Path,
    magic: &[u8; 8],
    mark: u64,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let _one = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let name = path.file_name().ok_or_else(|| bad("path"))?.to_string_lossy().into_owned();
    let tmp = path.with_file_name(format!("{name}{}", tmp_suffix()));
    let written = (|| {
        let mut w =
            Summed { inner: BufWriter::with_capacity(8 << 20, File::create(&tmp)?), crc: crc32fast::Hasher::new() };
        w.write_all(magic)?;
        put_u64(&mut w, mark)?;
        body(&mut w)?;
        let crc = w.crc.clone().finalize();
        put_u64(&mut w, u64::from(crc))?;
        w.inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    written
}

/// What a save names the file it writes beside its target: `NAME.PID.tmp`.
fn tmp_suffix() -> String {
    format!(".{:x}.tmp", std::process::id())
}

/// Removes from `dir` what a save of another process left when it stopped mid-write
/// (`NAME.PID.tmp`, PID not this process's): only one process opens a data directory (the
/// store's lock), so such a file is never renamed into place. Best effort: a file that cannot
/// be removed costs disk, not an answer, and is left. Returns how many were removed.
pub fn remove_stale(dir: &Path) -> io::Result<usize> {
    let _one = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let mine = tmp_suffix();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") && !name.ends_with(&mine) && std::fs::remove_file(dir.join(name.as_ref())).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The mark of the file at `path` if it has `magic` (None: no such file, or another kind or
/// version of file), read from its header only.
pub fn mark(path: &Path, magic: &[u8; 8]) -> io::Result<Option<u64>> {
    let mut head = [0u8; 16];
    match File::open(path) {
        Ok(mut f) => match f.read_exact(&mut head) {
            Ok(()) if &head[..8] == magic => Ok(Some(u64::get(&head[8..]))),
            Ok(()) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks the file's CRC (reading it through a small buffer), then maps it and returns its
/// mark and its body, to be read by the caller. Random access is advised: no read-ahead around a page a
/// query touches.
pub fn open(path: &Path, magic: &[u8; 8]) -> io::Result<(u64, Mapped)> {
    let _one = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len < 24 {
        return Err(truncated());
    }
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len - 8;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..n])?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    let mut tail = [0u8; 8];
    f.read_exact(&mut tail)?;
    if u64::get(&tail) != u64::from(crc.finalize()) {
        return Err(bad("checksum"));
    }
    let other = |e: &dyn std::fmt::Display| io::Error::other(format!("spatial index file {}: {e}", path.display()));
    let dir = path.parent().ok_or_else(|| bad("path"))?;
    let name = path.file_name().ok_or_else(|| bad("path"))?;
    // A directory object of its own: tantivy's caches a mapping by path, and the path may
    // now name a newer file than a mapping it cached.
    let mapped = MmapDirectory::open_with_madvice(dir, Advice::Random)
        .map_err(|e| other(&e))?
        .get_file_handle(Path::new(name))
        .map_err(|e| other(&e))?
        .read_bytes(0..len as usize)?;
    if mapped.len() as u64 != len || &mapped.as_slice()[..8] != magic {
        return Err(bad("header (the file changed while it was opened)"));
    }
    let mark = u64::get(&mapped.as_slice()[8..16]);
    Ok((mark, Mapped::new(mapped.slice(16..len as usize - 8))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_through_a_file_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        let points: Run<[i32; 2]> = vec![[1_181_000_000, 245_000_000], [-5_000_000, i32::MAX]].into();
        let ids: Run<u32> = vec![7, 9].into();
        save(&path, b"TESTFILE", 42, |mut w| {
            points.write(&mut w)?;
            ids.write(&mut w)?;
            put_bytes(&mut w, b"keys")
        })
        .unwrap();
        assert_eq!(mark(&path, b"TESTFILE").unwrap(), Some(42));
        assert_eq!(mark(&path, b"OTHERONE").unwrap(), None);
        let (at, mut m) = open(&path, b"TESTFILE").unwrap();
        assert_eq!(at, 42);
        let (p, i): (Run<[i32; 2]>, Run<u32>) = (m.run().unwrap(), m.run().unwrap());
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![[1_181_000_000, 245_000_000], [-5_000_000, i32::MAX]]);
        assert_eq!(i.iter().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(p.heap_bytes(), 0);
        assert_eq!(m.bytes().unwrap().as_slice(), b"keys");
        m.finish().unwrap();
        // Any byte changed, or the file cut short, is refused.
        let good = std::fs::read(&path).unwrap();
        for at in [0, 9, 20, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(open(&path, b"TESTFILE").is_err(), "byte {at} changed");
        }
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(open(&path, b"TESTFILE").is_err());
        // A length past the end is an error, never a panic.
        let mut m = Mapped::of(u64::MAX.to_le_bytes().to_vec());
        assert!(m.run::<u32>().is_err());
    }
}
