//! The store: RocksDB, the source of truth.
//!
//! One column family per registry (records by key), one for relation edges (keyed by the
//! record a reference points at; the holder's side is its record), one for metadata
//! ([`cf`]). Every change to a record and to its edges and counts is one atomic `WriteBatch`
//! ([`Writer`]); bulk loads ingest sorted SST files.
//! Only one writer runs at a time (a mutex inside, RocksDB's lock file across processes).

pub mod cf;
pub mod codec;
pub mod feed;
pub mod keys;
mod read;
mod rollback;
mod sources;
mod writer;

pub use read::{Reader, Snapshot, held_edges};
pub use sources::{Resolution, ReviewItem, ReviewStatus, SourceValue, decode_contributions, encode_contributions};
pub use writer::Writer;

use crate::error::{Error, Result};
use crate::model::{Lineage, Link, Record, Registry, Relation};
use rocksdb::{Cache, ColumnFamily, DB, IteratorMode, Options, ReadOptions, WriteBatch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Store settings; defaults in one place.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The block cache shared by every column family (data, index and filter blocks).
    pub block_cache_bytes: usize,
    /// Days the versions loads replaced (and the edges they removed) are kept; None: forever.
    pub history_retention_days: Option<u32>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { block_cache_bytes: crate::config::default_block_cache(), history_retention_days: None }
    }
}

/// What [`Store::memory`] reports.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StoreMemory {
    pub block_cache_bytes: u64,
    /// Of the block cache, what readers (iterators, pinned slices) hold and cannot be evicted.
    pub block_cache_pinned_bytes: u64,
    pub memtable_bytes: u64,
    /// Table readers' memory outside the block cache.
    pub table_readers_bytes: u64,
}

/// A raw stored key and value.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// One edge of a record: the relation's name and the record at its other end. Ordered as
/// their keys are: by relation, then the other end.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub relation: Relation,
    pub registry: Registry,
    pub id: String,
}

/// Which keys a registry holds ([`Store::presence`]).
pub struct Presence<'a>(rocksdb::DBRawIterator<'a>);

impl std::fmt::Debug for Presence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").finish_non_exhaustive()
    }
}

impl Presence<'_> {
    pub fn contains(&mut self, key: &[u8]) -> Result<bool> {
        self.0.seek(key);
        if self.0.key() == Some(key) {
            return Ok(true);
        }
        self.0.status()?;
        Ok(false)
    }
}

pub struct Store {
    db: DB,
    /// The block cache every column family shares (kept to report its use).
    cache: Cache,
    /// Held for the store's life: one process owns a store (see [`Store::open`]).
    _lock: std::fs::File,
    path: PathBuf,
    counts: [AtomicU64; 6],
    /// The position the next change takes in the feed (committed changes only).
    feed_next: AtomicU64,
    /// Shared with the retention's compaction filter, which asks when a load finished.
    loads: Arc<RwLock<BTreeMap<u32, Arc<Lineage>>>>,
    write_lock: Mutex<()>,
    /// Days replaced versions are kept (None: forever).
    history_retention_days: Option<u32>,
    /// Serialises load-id reservations (which must not wait for a running load's writer).
    id_lock: Mutex<()>,
    /// How values are written ([`codec::ValueCoding`]): chosen once, as the store opens.
    value_coding: std::sync::OnceLock<codec::ValueCoding>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. Loads that did not finish (killed,
    /// cancelled, failed) are undone here, so the store is as the last finished load left it.
    /// Fails with [`Error::StoreInUse`] while another process holds the store.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let lock_path = dir.join("jichu.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::StoreInUse(dir.into())),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path)(e)),
        }
        // HyperClockCache: lock-free lookups. Every point read looks up a filter, an index and
        // a data block; with the sharded LRU cache each lookup took a shard's mutex.
        let cache = Cache::new_hyper_clock_cache(options.block_cache_bytes, 0);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(3);
        let loads: Arc<RwLock<BTreeMap<u32, Arc<Lineage>>>> = Arc::default();
        let expired = options.history_retention_days.map(|days| {
            let loads = loads.clone();
            let expired: cf::Expired = Arc::new(move |load_id| {
                let horizon = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
                let loads = loads.read().unwrap_or_else(|e| e.into_inner());
                loads.get(&load_id).and_then(|l| l.finished_at).is_some_and(|f| f < horizon)
            });
            expired
        });
        let db = DB::open_cf_descriptors(&db_opts, dir, cf::descriptors(&cache, expired))?;
        let store = Store {
            db,
            cache,
            _lock: lock,
            path: dir.into(),
            counts: Default::default(),
            feed_next: AtomicU64::new(1),
            loads,
            history_retention_days: options.history_retention_days,
            write_lock: Mutex::new(()),
            id_lock: Mutex::new(()),
            value_coding: std::sync::OnceLock::new(),
        };
        store.recover()?;
        Ok(store)
    }

    fn recover(&self) -> Result<()> {
        self.read_meta()?;
        self.choose_value_coding()?;
        self.feed_next.store(self.feed_last()? + 1, Ordering::SeqCst);
        let unfinished: Vec<u32> = self
            .loads()
            .iter()
            .filter(|l| l.finished_at.is_none() && l.undone_at.is_none())
            .map(|l| l.load_id)
            .collect();
        for load_id in unfinished.into_iter().rev() {
            tracing::warn!(load_id, "a load did not finish: undoing it");
            self.writer().undo(load_id, "did not finish (the process stopped)")?;
        }
        if self.feed_next() == 1 && Registry::ALL.into_iter().any(|r| self.count(r) > 0) {
            self.writer().backfill_feed()?;
        }
        if self.db.get_pinned_cf(self.cf(cf::META), keys::ORGANISATION_CODES_READY)?.is_none() {
            self.writer().backfill_organisation_codes()?;
        }
        self.empty_legacy_points()?;
        self.drop_legacy_forward_edges()
    }

    /// A store that never held a value (no load id reserved) writes the newest coding and says
    /// so in `meta`; a store that held values keeps the coding it was created with (grid
    /// coordinates, `f64` pairs), so that its encodings never mix (see [`codec::ValueCoding`]).
    /// A binary older than a coding cannot read its values: a store is not handed back to one.
    fn choose_value_coding(&self) -> Result<()> {
        use codec::ValueCoding::{Compact, Float, Grid};
        let meta = self.cf(cf::META);
        let marked = |key: &[u8]| -> Result<bool> { Ok(self.db.get_pinned_cf(meta, key)?.is_some()) };
        let coding = if marked(keys::VALUES_COMPACT)? {
            Compact
        } else if !marked(keys::NEXT_LOAD)?
            && self.loads().is_empty()
            && Registry::ALL.into_iter().all(|r| self.count(r) == 0)
        {
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, keys::POINTS_ON_GRID, []);
            batch.put_cf(meta, keys::VALUES_COMPACT, []);
            self.db.write(batch)?;
            Compact
        } else if marked(keys::POINTS_ON_GRID)? {
            Grid
        } else {
            Float
        };
        let _ = self.value_coding.set(coding);
        Ok(())
    }

    /// How this store writes values.
    pub fn value_coding(&self) -> codec::ValueCoding {
        self.value_coding.get().copied().unwrap_or(codec::ValueCoding::Float)
    }

    /// Deletes the holders' own edges a store written before keeps in `relations` (reads
    /// derive them from the records now and skip these keys), once: a range delete where no
    /// reference points into the registry (every edge it starts is a holder's), a scan of
    /// its prefix otherwise.
    fn drop_legacy_forward_edges(&self) -> Result<()> {
        let meta = self.cf(cf::META);
        if self.db.get_pinned_cf(meta, keys::EDGES_ONE_WAY)?.is_some() {
            return Ok(());
        }
        let relations = self.cf(cf::RELATIONS);
        let links: Vec<Link> = Registry::ALL.iter().flat_map(|r| r.schema().links().map(|(_, l)| l)).collect();
        let mut dropped = 0u64;
        for r in Registry::ALL {
            let held: Vec<Relation> = r.schema().links().map(|(_, l)| l.forward).collect();
            if held.is_empty() {
                continue;
            }
            let (from, to) = ([r as u8], [r as u8 + 1]);
            if !links.iter().any(|l| keys::may_target(l, r)) {
                self.db.delete_file_in_range_cf(relations, from, to)?;
                self.db.delete_range_cf(relations, from, to)?;
                continue;
            }
            let mut batch = WriteBatch::default();
            let mut opts = ReadOptions::default();
            opts.set_iterate_range(from.to_vec()..to.to_vec());
            opts.fill_cache(false);
            for item in self.db.iterator_cf_opt(relations, opts, IteratorMode::Start) {
                let (k, _) = item?;
                if keys::decode_edge(&k).is_some_and(|(relation, _, _)| held.contains(&relation)) {
                    batch.delete_cf(relations, k);
                    dropped += 1;
                }
                if batch.len() >= 1 << 16 {
                    self.db.write(std::mem::take(&mut batch))?;
                }
            }
            self.db.write(batch)?;
        }
        self.db.put_cf(meta, keys::EDGES_ONE_WAY, [])?;
        if dropped > 0 {
            tracing::info!(dropped, "relations keep one edge a reference: the holders' own edges dropped");
        }
        Ok(())
    }

    /// Empties the `points` column family a store written before carries (its locations are
    /// read from the records now) and gives its files back.
    fn empty_legacy_points(&self) -> Result<()> {
        let points = self.cf(cf::POINTS);
        let mut it = self.db.raw_iterator_cf(points);
        it.seek_to_first();
        it.status()?;
        if !it.valid() {
            return Ok(());
        }
        drop(it);
        let (first, last) = (&[][..], &[0xff; 64][..]);
        self.db.delete_range_cf(points, first, last)?;
        self.db.delete_file_in_range_cf(points, first, last)?;
        self.db.compact_range_cf(points, None::<&[u8]>, None::<&[u8]>);
        tracing::info!("the points column family emptied: locations are read from the records");
        Ok(())
    }

    /// The last position written to the feed (0: none).
    fn feed_last(&self) -> Result<u64> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf::FEED));
        it.seek_to_last();
        it.status()?;
        match it.key() {
            Some(k) => Ok(feed::read(k, it.value().unwrap_or_default())?.last()),
            None => Ok(0),
        }
    }

    /// The position the next change will take in the feed.
    pub fn feed_next(&self) -> u64 {
        self.feed_next.load(Ordering::SeqCst)
    }

    pub(crate) fn set_feed_next(&self, next: u64) {
        self.feed_next.store(next, Ordering::SeqCst);
    }

    /// Counts and the load table, from `meta`.
    fn read_meta(&self) -> Result<()> {
        for r in Registry::ALL {
            self.counts[r as usize].store(self.reader().stored_count(r)?, Ordering::Relaxed);
        }
        let mut loads = self.loads.write().unwrap_or_else(|e| e.into_inner());
        for l in self.reader().stored_loads()? {
            loads.insert(l.load_id, Arc::new(l));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every column family is created by `open`.
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// Reads of the latest state (loads, tools and tests; a served view reads a [`Snapshot`]).
    pub fn reader(&self) -> Reader<'_> {
        Reader::latest(self)
    }

    /// Pins the current state for a published view.
    pub fn snapshot(self: &Arc<Self>) -> Result<Snapshot> {
        Snapshot::new(self.clone())
    }

    /// One record by its canonical key (latest state).
    pub fn get(&self, registry: Registry, id: &str) -> Result<Option<Record>> {
        self.reader().get(registry, id)
    }

    /// Many records by key, in the order asked (latest state).
    pub fn get_many(&self, registry: Registry, ids: &[String]) -> Result<Vec<Option<Record>>> {
        self.reader().get_many(registry, ids)
    }

    /// Every edge that starts at `(registry, id)` (latest state).
    pub fn relations(&self, registry: Registry, id: &str) -> Result<Vec<Edge>> {
        self.reader().relations(registry, id)
    }

    /// A registry's stored values in key order (latest state).
    pub fn scan(&self, registry: Registry) -> impl Iterator<Item = Result<KeyValue>> + '_ {
        self.reader().scan(registry)
    }

    /// Every current point of a registry (latest state).
    pub fn points(&self, registry: Registry) -> impl Iterator<Item = Result<(Box<[u8]>, f64, f64)>> + '_ {
        self.reader().points(registry)
    }

    /// Tells which keys `registry` holds, for keys asked in ascending order: forward seeks of
    /// one iterator, so neighbouring keys share the blocks they read (not kept in the cache:
    /// a load's reference check reads each once).
    pub fn presence(&self, registry: Registry) -> Presence<'_> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        Presence(self.db.raw_iterator_cf_opt(self.cf(cf::records(registry)), opts))
    }

    /// Records stored in a registry (ended ones included).
    pub fn count(&self, registry: Registry) -> u64 {
        self.counts[registry as usize].load(Ordering::Relaxed)
    }

    /// Every load, oldest first.
    pub fn loads(&self) -> Vec<Arc<Lineage>> {
        self.loads.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn lineage(&self, load_id: u32) -> Option<Arc<Lineage>> {
        self.loads.read().unwrap_or_else(|e| e.into_inner()).get(&load_id).cloned()
    }

    /// Makes every write so far durable (syncs the write-ahead log): a derived index that is
    /// about to commit durably what it saw must not be ahead of the store after a power loss.
    pub fn sync_wal(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    /// RocksDB's sequence number: it grows with every write (indexes record what they saw).
    pub fn sequence(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// The one writer. Blocks while another write is in progress.
    pub fn writer(&self) -> Writer<'_> {
        Writer::new(self, self.write_lock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The writer if no one holds it (a request must not wait for a load to end).
    pub fn try_writer(&self) -> Option<Writer<'_>> {
        match self.write_lock.try_lock() {
            Ok(guard) => Some(Writer::new(self, guard)),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(Writer::new(self, e.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Bytes of SST files on disk, all column families.
    pub fn disk_bytes(&self) -> u64 {
        self.property_sum("rocksdb.total-sst-files-size")
    }

    /// An integer property summed over every column family.
    fn property_sum(&self, property: &str) -> u64 {
        cf::all().filter_map(|name| self.db.property_int_value_cf(self.cf(name), property).ok().flatten()).sum()
    }

    /// Memory RocksDB holds outside the files the kernel maps: the block cache (data, index
    /// and filter blocks), the memtables of every column family and the table readers.
    pub fn memory(&self) -> StoreMemory {
        StoreMemory {
            block_cache_bytes: self.cache.get_usage() as u64,
            block_cache_pinned_bytes: self.cache.get_pinned_usage() as u64,
            memtable_bytes: self.property_sum("rocksdb.cur-size-all-mem-tables"),
            table_readers_bytes: self.property_sum("rocksdb.estimate-table-readers-mem"),
        }
    }

    /// Bytes of SST files on disk per column family, in [`cf::all`] order.
    pub fn disk_bytes_by_column_family(&self) -> Vec<(&'static str, u64)> {
        cf::all()
            .map(|name| {
                let bytes = self.db.property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size").ok().flatten();
                (name, bytes.unwrap_or(0))
            })
            .collect()
    }

    /// Waits (at most `limit`) until no flush or compaction is running or pending: a benchmark
    /// measures one load without the background work the one before it left.
    pub fn settle(&self, limit: std::time::Duration) -> bool {
        const BUSY: [&str; 4] = [
            "rocksdb.mem-table-flush-pending",
            "rocksdb.compaction-pending",
            "rocksdb.num-running-flushes",
            "rocksdb.num-running-compactions",
        ];
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let busy = cf::all().any(|name| {
                BUSY.iter().any(|p| self.db.property_int_value_cf(self.cf(name), *p).ok().flatten().unwrap_or(0) > 0)
            });
            if !busy {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// Days replaced versions are kept (None: forever).
    pub fn history_retention_days(&self) -> Option<u32> {
        self.history_retention_days
    }

    /// Compacts the kept versions and removed edges now, so that the retention drops what it
    /// has expired (RocksDB otherwise does it as files are compacted, at least daily).
    pub fn compact_history(&self) {
        for name in [cf::HISTORY, cf::UNLINKED] {
            self.db.compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Counts a registry's keys by a full scan (checks, repairs; `count` is the fast path).
    pub fn count_keys(&self, registry: Registry) -> Result<u64> {
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(cf::records(registry)), IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// The next load id, taken: ids grow, so loads are numbered in the order they were
    /// accepted (a running server numbers a load when it queues it, while another runs).
    pub fn reserve_load_id(&self) -> Result<u32> {
        let _one = self.id_lock.lock().unwrap_or_else(|e| e.into_inner());
        let meta = self.cf(cf::META);
        let next = match self.db.get_pinned_cf(meta, keys::NEXT_LOAD)? {
            Some(v) => u32::from_le_bytes(v.as_ref().try_into().map_err(|_| Error::Codec("next_load".into()))?),
            None => 1,
        };
        self.db.put_cf(meta, keys::NEXT_LOAD, (next + 1).to_le_bytes())?;
        Ok(next)
    }

    /// Writes a record of the service's own bookkeeping (a queued load's task) to `meta`.
    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_cf(self.cf(cf::META), key, value)?)
    }

    /// Every `meta` entry under a prefix, in key order.
    pub fn meta_under(&self, prefix: &[u8]) -> Result<Vec<KeyValue>> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(rocksdb::PrefixRange(prefix));
        self.db
            .iterator_cf_opt(self.cf(cf::META), opts, IteratorMode::Start)
            .map(|item| item.map_err(Error::Store))
            .collect()
    }

    pub(crate) fn set_count(&self, registry: Registry, n: u64) {
        self.counts[registry as usize].store(n, Ordering::Relaxed);
    }

    pub(crate) fn remember_load(&self, l: Lineage) {
        self.loads.write().unwrap_or_else(|e| e.into_inner()).insert(l.load_id, Arc::new(l));
    }
}
