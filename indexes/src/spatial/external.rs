//! A packed tree written by an external sort along its curve: the build holds a budget, not
//! its leaves.
//!
//! Sorting in memory ([`PackedTree::write_ordered`](super::tree::PackedTree::write_ordered))
//! holds every leaf and its place on the curve (16 bytes a point): 1.6 GB for the fold of a
//! hundred million points, while the layer it replaces still serves. Here the leaves go to a
//! scratch file as they are read ([`SpilledLeaves`]), with their extent, which fixes the
//! curve. They are then read back a budget's worth at a time, each batch sorted by (place on
//! the curve, position) and written to a second scratch file as a run. The runs are merged
//! and the leaves written in tree order. Each leaf's id is its position: the ids go to the
//! first scratch file, which is free by then, and are copied after the leaves. The file is
//! byte for byte what the sort in memory writes; the build holds the budget, a read buffer
//! per run and the bottom level of node boxes (one byte a leaf).

use super::grid::{EMPTY, GridBox, union};
use super::ids::put_ids;
use super::persist::{Fixed, put_u64};
use super::tree::{Curve, Leaf, NODE, levels_from, put_node};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes read or written at a time.
const BUF: usize = 1 << 16;

/// Leaves between two looks at the caller's stop flag.
const STOP_EVERY: usize = 1 << 16;

fn look(stop: &AtomicBool, i: usize) -> io::Result<()> {
    if i.is_multiple_of(STOP_EVERY) && stop.load(Ordering::Relaxed) {
        Err(io::Error::new(io::ErrorKind::Interrupted, "the build was stopped"))
    } else {
        Ok(())
    }
}

/// Leaves written to a scratch file as they come, with their count and extent.
#[derive(Debug)]
pub(crate) struct SpilledLeaves<L> {
    out: BufWriter<File>,
    n: usize,
    extent: GridBox,
    buf: Vec<u8>,
    leaf: PhantomData<L>,
}

impl<L: Leaf> SpilledLeaves<L> {
    /// Leaves moved out to `file`, an empty scratch file that [`write_built`] reuses.
    pub fn new(file: File) -> SpilledLeaves<L> {
        SpilledLeaves {
            out: BufWriter::with_capacity(BUF, file),
            n: 0,
            extent: EMPTY,
            buf: Vec::new(),
            leaf: PhantomData,
        }
    }

    pub fn push(&mut self, leaf: L) -> io::Result<()> {
        if self.n == u32::MAX as usize {
            return Err(io::Error::other("at most 2^32 leaves"));
        }
        self.buf.clear();
        leaf.put(&mut self.buf);
        self.out.write_all(&self.buf)?;
        self.extent = union(self.extent, leaf.grid_box());
        self.n += 1;
        Ok(())
    }
}

/// A run's entry: place on the curve above, position below (the sort key), and the leaf.
fn entry_width<L: Fixed>() -> usize {
    8 + L::WIDTH
}

/// One sorted run in the runs file, read forward a buffer at a time.
struct RunReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl RunReader<'_> {
    /// The next entry's bytes, if the run has one.
    fn next(&mut self, width: usize) -> io::Result<Option<&[u8]>> {
        if self.pos + width > self.buf.len() {
            let left = self.buf.len() - self.pos;
            self.buf.copy_within(self.pos.., 0);
            let want = ((BUF / width).max(1) * width).min((self.end - self.at) as usize + left);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf[left..], self.at)?;
            self.at += (want - left) as u64;
            self.pos = 0;
            if self.buf.len() < width {
                return Ok(None);
            }
        }
        let e = &self.buf[self.pos..self.pos + width];
        self.pos += width;
        Ok(Some(e))
    }
}

fn key_of(e: &[u8]) -> u64 {
    u64::from_le_bytes(e[..8].try_into().unwrap_or_default())
}

/// Writes what the sort in memory (`PackedTree::write_built`) writes for the leaves in
/// `spilled` (in the order pushed; each leaf's id is its position), sorting `budget` bytes of
/// entries at a time into runs in `runs` (an empty scratch file). Gives up (an `Interrupted`
/// error) once `stop` is set (looked at every [`STOP_EVERY`] leaves read or merged).
pub(crate) fn write_built<L: Leaf>(
    spilled: SpilledLeaves<L>,
    runs: File,
    budget: usize,
    stop: &AtomicBool,
    w: &mut impl Write,
) -> io::Result<()> {
    let SpilledLeaves { out, n, extent, .. } = spilled;
    let mut leaves_file = out.into_inner().map_err(|e| e.into_error())?;
    leaves_file.seek(SeekFrom::Start(0))?;
    let curve = Curve::over(extent);
    let width = entry_width::<L>();
    let cap = (budget / (8 + std::mem::size_of::<L>())).max(1);

    // Sorted runs of at most `cap` entries each.
    let mut bounds: Vec<(u64, u64)> = Vec::new();
    let mut chunk: Vec<(u64, L)> = Vec::with_capacity(cap.min(n));
    let mut input = BufReader::with_capacity(BUF, &leaves_file);
    let mut runs_out = BufWriter::with_capacity(BUF, &runs);
    let (mut written, mut bytes) = (0u64, vec![0u8; L::WIDTH]);
    let mut entry = Vec::with_capacity(width);
    for i in 0..n {
        look(stop, i)?;
        input.read_exact(&mut bytes)?;
        let leaf = L::get(&bytes);
        chunk.push(((curve.position(&leaf) << 32) | i as u64, leaf));
        if chunk.len() == cap || i + 1 == n {
            let end = written + (width * chunk.len()) as u64;
            chunk.sort_unstable_by_key(|e| e.0);
            for (k, leaf) in chunk.drain(..) {
                entry.clear();
                entry.extend_from_slice(&k.to_le_bytes());
                leaf.put(&mut entry);
                runs_out.write_all(&entry)?;
            }
            bounds.push((written, end));
            written = end;
        }
    }
    drop(input);
    runs_out.flush()?;
    drop(runs_out);
    drop(chunk);

    // The merge: the leaves in tree order, their ids to the first scratch file.
    leaves_file.set_len(0)?;
    leaves_file.seek(SeekFrom::Start(0))?;
    let mut ids = BufWriter::with_capacity(BUF, &leaves_file);
    let mut readers: Vec<RunReader<'_>> =
        bounds.iter().map(|&(at, end)| RunReader { file: &runs, at, end, buf: Vec::new(), pos: 0 }).collect();
    let mut heads: Vec<Option<L>> = vec![None; readers.len()];
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (r, reader) in readers.iter_mut().enumerate() {
        if let Some(e) = reader.next(width)? {
            heads[r] = Some(L::get(&e[8..]));
            heap.push(Reverse((key_of(e), r)));
        }
    }
    // The leaves' steps go out as each node fills; the leaves of wide nodes go whole to the
    // runs file, after the runs, and are copied out after the steps.
    put_u64(w, n as u64)?;
    let mut out = Vec::with_capacity(BUF + width);
    let mut level: Vec<GridBox> = Vec::with_capacity(n.div_ceil(NODE));
    let (mut wide, mut whole_at) = (Vec::new(), written);
    let (mut node, mut steps) = (Vec::with_capacity(NODE), Vec::with_capacity(NODE));
    let mut end_node = |node: &mut Vec<L>, level: &mut Vec<GridBox>, out: &mut Vec<u8>| -> io::Result<()> {
        let b = node.iter().fold(EMPTY, |a, l| union(a, l.grid_box()));
        steps.clear();
        if !put_node(node, b, &mut steps) {
            wide.push(level.len() as u32);
            let mut bytes = Vec::with_capacity(NODE * L::WIDTH);
            node.iter().for_each(|l| l.put(&mut bytes));
            runs.write_all_at(&bytes, whole_at)?;
            whole_at += bytes.len() as u64;
        }
        steps.iter().for_each(|s| s.put(out));
        level.push(b);
        node.clear();
        Ok(())
    };
    let mut count = 0usize;
    while let Some(Reverse((key, r))) = heap.pop() {
        look(stop, count)?;
        let Some(leaf) = heads[r].take() else { return Err(io::Error::other("a run lost its head")) };
        if let Some(e) = readers[r].next(width)? {
            heads[r] = Some(L::get(&e[8..]));
            heap.push(Reverse((key_of(e), r)));
        }
        ids.write_all(&(key as u32).to_le_bytes())?;
        node.push(leaf);
        count += 1;
        if node.len() == NODE {
            end_node(&mut node, &mut level, &mut out)?;
            if out.len() >= BUF {
                w.write_all(&out)?;
                out.clear();
            }
        }
    }
    if count != n {
        return Err(io::Error::other(format!("the runs held {count} of {n} leaves")));
    }
    if !node.is_empty() {
        end_node(&mut node, &mut level, &mut out)?;
    }
    w.write_all(&out)?;
    drop(readers);
    ids.flush()?;
    drop(ids);
    super::persist::put_fixed(w, wide.len(), wide.iter().copied())?;
    let whole_bytes = whole_at - written;
    put_u64(w, whole_bytes / L::WIDTH as u64)?;
    let mut from = &runs;
    from.seek(SeekFrom::Start(written))?;
    if io::copy(&mut BufReader::with_capacity(BUF, from).take(whole_bytes), w)? != whole_bytes {
        return Err(io::Error::other("the wide nodes' leaves were cut short"));
    }

    leaves_file.seek(SeekFrom::Start(0))?;
    let mut scratch = BufReader::with_capacity(BUF, &leaves_file);
    let mut id = [0u8; 4];
    let ids = (0..n).map_while(|_| scratch.read_exact(&mut id).is_ok().then(|| u32::from_le_bytes(id)));
    // Each leaf's id is its position: none above n - 1 (a short scratch file is an error).
    put_ids(w, n, n.saturating_sub(1) as u32, ids)?;
    let levels = levels_from(level);
    put_u64(w, levels.len() as u64)?;
    levels.into_iter().try_for_each(|l| super::persist::Run::from(l).write(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::grid::{self, GridPoint};
    use crate::spatial::tree::PackedTree;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the budget (runs of one entry to all of them), the file is the one
        /// written from memory.
        #[test]
        fn sorted_in_runs_is_written_as_built(
            points in prop::collection::vec(crate::spatial::tree::tests::places(), 0..700),
            per_run in 1usize..300,
        ) {
            let leaves: Vec<GridPoint> = points.iter().map(|&(x, y)| grid::point([x, y])).collect();
            let mut spilled = SpilledLeaves::new(tempfile::tempfile().unwrap());
            for l in &leaves {
                spilled.push(*l).unwrap();
            }
            prop_assert_eq!(spilled.n, leaves.len());
            let (mut direct, mut external) = (Vec::new(), Vec::new());
            PackedTree::write_built(leaves, &mut direct).unwrap();
            let go = AtomicBool::new(false);
            write_built(spilled, tempfile::tempfile().unwrap(), per_run * 16, &go, &mut external).unwrap();
            prop_assert_eq!(external, direct);
        }
    }

    /// A set stop flag ends the build, before the leaves are written.
    #[test]
    fn a_stop_gives_the_build_up() {
        let mut spilled = SpilledLeaves::new(tempfile::tempfile().unwrap());
        for i in 0..1000 {
            spilled.push(grid::point([118.0 + f64::from(i) * 1e-4, 24.5])).unwrap();
        }
        let (stop, mut out) = (AtomicBool::new(true), Vec::new());
        let e = write_built(spilled, tempfile::tempfile().unwrap(), 1 << 20, &stop, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{e}");
        assert!(out.is_empty());
    }
}
