//! Sorted SST files for bulk ingestion, written by several threads at once.
//!
//! The caller hands over strictly increasing keys; every [`FILE_BYTES`] of them become one
//! file, so files cover consecutive, non-overlapping key ranges and can be built in parallel
//! (compression and filter building are the expensive part) while the caller merges on.

use crate::error::{Error, Result};
use crate::store::cf;
use crossbeam_channel::{Receiver, Sender, bounded};
use rocksdb::{Cache, SstFileWriter};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Input bytes per SST file.
const FILE_BYTES: usize = 32 << 20;

struct Job {
    path: PathBuf,
    /// `[key len u32][value len u32][key][value]…`
    packed: Vec<u8>,
}

pub struct SstFiles {
    dir: PathBuf,
    name: &'static str,
    tx: Option<Sender<Job>>,
    /// Buffers the writers are done with: reused, so their pages are not faulted in again.
    spare: Receiver<Vec<u8>>,
    workers: Vec<JoinHandle<Result<()>>>,
    buf: Vec<u8>,
    paths: Vec<PathBuf>,
}

impl SstFiles {
    /// Files named `name-N.sst` in `dir`, with the options of column family `cf_name`.
    pub fn new(cf_name: &'static str, dir: &Path, name: &'static str, threads: usize) -> SstFiles {
        let (tx, rx) = bounded::<Job>(threads.max(1));
        let (spare_tx, spare) = bounded::<Vec<u8>>(threads.max(1) + 1);
        let workers = (0..threads.max(1))
            .map(|_| {
                let (rx, spare_tx) = (rx.clone(), spare_tx.clone());
                std::thread::spawn(move || -> Result<()> {
                    let cache = Cache::new_lru_cache(8 << 20);
                    let opts = cf::bulk_file_options(cf_name, &cache);
                    for mut job in rx {
                        write_file(&opts, &job)?;
                        job.packed.clear();
                        let _ = spare_tx.try_send(job.packed);
                    }
                    Ok(())
                })
            })
            .collect();
        SstFiles {
            dir: dir.into(),
            name,
            tx: Some(tx),
            spare,
            workers,
            buf: Vec::with_capacity(FILE_BYTES + 4096),
            paths: Vec::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        if self.buf.len() >= FILE_BYTES { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let path = self.dir.join(format!("{}-{}.sst", self.name, self.paths.len()));
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(FILE_BYTES + 4096));
        let packed = std::mem::replace(&mut self.buf, next);
        self.paths.push(path.clone());
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(Job { path, packed }).is_ok());
        if sent { Ok(()) } else { self.join().map(|_| ()) }
    }

    fn join(&mut self) -> Result<Vec<PathBuf>> {
        self.tx = None;
        for w in self.workers.drain(..) {
            w.join().map_err(|_| Error::Internal("an SST writer thread panicked".into()))??;
        }
        Ok(std::mem::take(&mut self.paths))
    }

    /// Waits for every file; their paths in key order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.flush()?;
        self.join()
    }
}

fn write_file(opts: &rocksdb::Options, job: &Job) -> Result<()> {
    let mut w = SstFileWriter::create(opts);
    w.open(&job.path)?;
    let p = &job.packed;
    let mut at = 0;
    while at < p.len() {
        let k = u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize;
        let v = u32::from_le_bytes([p[at + 4], p[at + 5], p[at + 6], p[at + 7]]) as usize;
        at += 8;
        w.put(&p[at..at + k], &p[at + k..at + k + v])?;
        at += k + v;
    }
    w.finish()?;
    Ok(())
}
