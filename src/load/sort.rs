//! External sort of `(key, tag, payload)` entries with bounded memory.
//!
//! Entries accumulate in one arena; when it passes the budget the run is sorted and spilled
//! to a temporary file. Reading merges the spilled runs with the last one, kept in memory (or
//! walks that run alone), in `(key, tag)` order, so equal keys come out together, in input
//! order.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

#[derive(Clone, Copy)]
pub struct Item {
    /// The key's first 16 bytes, big-endian, zero-padded: most comparisons end here, without
    /// touching the arena.
    prefix: u128,
    offset: usize,
    key_len: u32,
    payload_len: u32,
    tag: u64,
}

/// One sorted entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub tag: u64,
    pub payload: Vec<u8>,
}

/// One run being filled: entries in an arena, and their index.
#[derive(Default)]
struct Run {
    arena: Vec<u8>,
    items: Vec<Item>,
}

/// The most address space a run reserves up front (a sort with a larger budget grows past it).
const RESERVE_CAP: usize = 1 << 30;

impl Run {
    /// A run with room for `budget` bytes of entries reserved: address space only, as pages
    /// are touched when the run fills them. Grown by doubling instead, a run was copied as it
    /// grew and about twice its size was faulted in and zeroed (a profile of a licences load
    /// put 14% of its CPU in the kernel zeroing pages, most of it for the sorters).
    fn reserved(budget: usize) -> Run {
        let budget = budget.min(RESERVE_CAP);
        Run { arena: Vec::with_capacity(budget), items: Vec::with_capacity(budget / size_of::<Item>()) }
    }

    fn bytes(&self) -> usize {
        self.arena.len() + self.items.len() * size_of::<Item>()
    }

    fn key<'a>(arena: &'a [u8], it: &Item) -> &'a [u8] {
        &arena[it.offset..it.offset + it.key_len as usize]
    }

    /// Sorts on every core.
    fn sort(&mut self) {
        use rayon::slice::ParallelSliceMut;
        let arena = &self.arena;
        self.items.par_sort_unstable_by(|a, b| {
            a.prefix.cmp(&b.prefix).then_with(|| Self::key(arena, a).cmp(Self::key(arena, b))).then(a.tag.cmp(&b.tag))
        });
    }

    fn write(&self, path: &Path) -> Result<()> {
        let file = File::create(path).map_err(Error::io(path))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for it in &self.items {
            let start = it.offset;
            let end = start + (it.key_len + it.payload_len) as usize;
            let write = |w: &mut BufWriter<File>| -> std::io::Result<()> {
                w.write_all(&it.key_len.to_le_bytes())?;
                w.write_all(&it.payload_len.to_le_bytes())?;
                w.write_all(&it.tag.to_le_bytes())?;
                w.write_all(&self.arena[start..end])
            };
            write(&mut w).map_err(Error::io(path))?;
        }
        w.flush().map_err(Error::io(path))
    }
}

/// Holds at most two runs: one filling, one being sorted and written by a background thread,
/// so that reading goes on while a run spills. A written run's buffers, emptied, are filled
/// again, so a sort faults its pages in once rather than once a run.
pub struct Sorter {
    dir: PathBuf,
    name: &'static str,
    run_budget: usize,
    current: Run,
    spilling: Option<JoinHandle<Result<Run>>>,
    runs: Vec<PathBuf>,
}

impl Sorter {
    /// A sorter holding about `budget` bytes, spilling runs named `name-N.run` into `dir`.
    pub fn new(dir: &Path, name: &'static str, budget: usize) -> Sorter {
        let run_budget = budget / 2;
        Sorter {
            dir: dir.into(),
            name,
            run_budget,
            current: Run::reserved(run_budget),
            spilling: None,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, key: &[u8], tag: u64, payload: &[u8]) -> Result<()> {
        let run = &mut self.current;
        let offset = run.arena.len();
        run.arena.extend_from_slice(key);
        run.arena.extend_from_slice(payload);
        let mut head = [0u8; 16];
        let n = key.len().min(16);
        head[..n].copy_from_slice(&key[..n]);
        let prefix = u128::from_be_bytes(head);
        run.items.push(Item { prefix, offset, key_len: key.len() as u32, payload_len: payload.len() as u32, tag });
        if run.bytes() >= self.run_budget { self.spill() } else { Ok(()) }
    }

    /// Waits for the run being spilled, if any; returns it emptied, its buffers kept.
    fn wait(&mut self) -> Result<Option<Run>> {
        match self.spilling.take() {
            Some(h) => h.join().map_err(|_| Error::Internal("a sort thread panicked".into()))?.map(Some),
            None => Ok(None),
        }
    }

    /// Hands the current run to a background thread; waits first for the previous one, so
    /// that memory stays at two runs.
    fn spill(&mut self) -> Result<()> {
        let spare = match self.wait()? {
            Some(run) => run,
            None => Run::reserved(self.run_budget),
        };
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let path = self.dir.join(format!("{}-{}.run", self.name, self.runs.len()));
        self.runs.push(path.clone());
        let mut run = std::mem::replace(&mut self.current, spare);
        self.spilling = Some(std::thread::spawn(move || {
            run.sort();
            run.write(&path)?;
            run.arena.clear();
            run.items.clear();
            Ok(run)
        }));
        Ok(())
    }

    /// Every entry pushed, in `(key, tag)` order. The last run is merged from memory: writing
    /// it out and reading it back was a wait of its own on one core at the end of every
    /// large load's read stage.
    pub fn finish(mut self) -> Result<Sorted> {
        self.wait()?;
        let mut last = std::mem::take(&mut self.current);
        last.sort();
        if self.runs.is_empty() {
            return Ok(Sorted::Memory { arena: last.arena, items: last.items.into_iter() });
        }
        let mut runs = Vec::with_capacity(self.runs.len() + 1);
        for path in &self.runs {
            let file = File::open(path).map_err(Error::io(path))?;
            let reader = BufReader::with_capacity(1 << 20, file);
            runs.push(RunReader { source: RunSource::File { path: path.clone(), reader }, head: None });
        }
        let memory = RunSource::Memory { arena: last.arena, items: last.items.into_iter() };
        runs.push(RunReader { source: memory, head: None });
        for run in &mut runs {
            run.advance()?;
        }
        let mut heap: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].head.is_some()).collect();
        for i in (0..heap.len() / 2).rev() {
            sift_down(&runs, &mut heap, i);
        }
        Ok(Sorted::Merge { runs, heap })
    }
}

/// Where a run of a merge is read from: its file, or (the last run) the sorter's memory.
enum RunSource {
    File { path: PathBuf, reader: BufReader<File> },
    Memory { arena: Vec<u8>, items: std::vec::IntoIter<Item> },
}

pub struct RunReader {
    source: RunSource,
    head: Option<Entry>,
}

impl RunReader {
    /// Reads the run's next entry into `head` (reusing its buffers); `None` at the end.
    fn advance(&mut self) -> Result<()> {
        let mut e = self.head.take().unwrap_or_default();
        let (path, reader) = match &mut self.source {
            RunSource::File { path, reader } => (path, reader),
            RunSource::Memory { arena, items } => {
                if let Some(it) = items.next() {
                    let k = it.offset + it.key_len as usize;
                    e.key.clear();
                    e.key.extend_from_slice(&arena[it.offset..k]);
                    e.payload.clear();
                    e.payload.extend_from_slice(&arena[k..k + it.payload_len as usize]);
                    e.tag = it.tag;
                    self.head = Some(e);
                }
                return Ok(());
            }
        };
        let mut header = [0u8; 16];
        // The end of a run is the end of a whole entry; a run cut anywhere else is an error.
        if reader.fill_buf().map_err(Error::io(&*path))?.is_empty() {
            let _ = std::fs::remove_file(&*path);
            return Ok(());
        }
        reader.read_exact(&mut header).map_err(Error::io(&*path))?;
        let key_len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
        let payload_len = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default()) as usize;
        let tag = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        e.key.resize(key_len, 0);
        e.payload.resize(payload_len, 0);
        e.tag = tag;
        reader.read_exact(&mut e.key).map_err(Error::io(&*path))?;
        reader.read_exact(&mut e.payload).map_err(Error::io(&*path))?;
        self.head = Some(e);
        Ok(())
    }
}

/// The sorted entries of a [`Sorter`].
pub enum Sorted {
    Memory {
        arena: Vec<u8>,
        items: std::vec::IntoIter<Item>,
    },
    /// A k-way merge: `heap` is a min-heap of the runs that still have a head.
    Merge {
        runs: Vec<RunReader>,
        heap: Vec<usize>,
    },
}

impl Iterator for Sorted {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        match self {
            Sorted::Memory { arena, items } => items.next().map(|it| {
                let k = it.offset + it.key_len as usize;
                Ok(Entry {
                    key: arena[it.offset..k].to_vec(),
                    tag: it.tag,
                    payload: arena[k..k + it.payload_len as usize].to_vec(),
                })
            }),
            Sorted::Merge { runs, heap } => {
                let best = *heap.first()?;
                let entry = runs[best].head.take();
                if let Err(e) = runs[best].advance() {
                    return Some(Err(e));
                }
                if runs[best].head.is_none() {
                    heap.swap_remove(0);
                }
                if !heap.is_empty() {
                    sift_down(runs, heap, 0);
                }
                entry.map(Ok)
            }
        }
    }
}

/// Whether run `a`'s head sorts before run `b`'s (both have heads).
fn before(runs: &[RunReader], a: usize, b: usize) -> bool {
    match (&runs[a].head, &runs[b].head) {
        (Some(x), Some(y)) => (&x.key, x.tag) < (&y.key, y.tag),
        _ => false,
    }
}

/// Restores the min-heap order below position `i`.
fn sift_down(runs: &[RunReader], heap: &mut [usize], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut least = i;
        if l < heap.len() && before(runs, heap[l], heap[least]) {
            least = l;
        }
        if r < heap.len() && before(runs, heap[r], heap[least]) {
            least = r;
        }
        if least == i {
            return;
        }
        heap.swap(i, least);
        i = least;
    }
}

/// Groups a sorted stream into runs of equal keys.
pub struct Groups<I: Iterator<Item = Result<Entry>>> {
    inner: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = Result<Entry>>> Groups<I> {
    pub fn new(inner: I) -> Self {
        Groups { inner: inner.peekable() }
    }
}

impl<I: Iterator<Item = Result<Entry>>> Iterator for Groups<I> {
    type Item = Result<Vec<Entry>>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = match self.inner.next()? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let mut group = vec![first];
        while let Some(Ok(next)) = self.inner.peek() {
            if next.key != group[0].key {
                break;
            }
            if let Some(Ok(e)) = self.inner.next() {
                group.push(e);
            }
        }
        Some(Ok(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn spilled_and_in_memory_sorts_agree(entries in prop::collection::vec((prop::collection::vec(0u8..4, 1..4), any::<u16>()), 0..300), budget in 64usize..4096) {
            let dir = tempfile::tempdir().unwrap();
            let mut small = Sorter::new(dir.path(), "t", budget);
            let mut whole = Sorter::new(dir.path(), "w", usize::MAX);
            for (tag, (k, p)) in entries.iter().enumerate() {
                small.push(k, tag as u64, &p.to_le_bytes()).unwrap();
                whole.push(k, tag as u64, &p.to_le_bytes()).unwrap();
            }
            let a: Vec<Entry> = small.finish().unwrap().map(Result::unwrap).collect();
            let b: Vec<Entry> = whole.finish().unwrap().map(Result::unwrap).collect();
            let mut want: Vec<Entry> = entries.iter().enumerate().map(|(t, (k, p))| Entry { key: k.clone(), tag: t as u64, payload: p.to_le_bytes().to_vec() }).collect();
            want.sort_by(|x, y| x.key.cmp(&y.key).then(x.tag.cmp(&y.tag)));
            prop_assert_eq!(&a, &want);
            prop_assert_eq!(&b, &want);
            let groups: Vec<Vec<Entry>> = Groups::new(a.into_iter().map(Ok)).map(Result::unwrap).collect();
            prop_assert!(groups.iter().all(|g| g.iter().all(|e| e.key == g[0].key)));
            prop_assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), want.len());
        }
    }
}
