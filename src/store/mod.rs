//! The store: RocksDB, the source of truth.
//!
//! One column family per registry (records by key), one for relation edges (both
//! directions), one for metadata ([`cf`]). Every change to a record and to its edges and
//! counts is one atomic `WriteBatch` ([`Writer`]); bulk loads ingest sorted SST files.
//! Only one writer runs at a time (a mutex inside, RocksDB's lock file across processes).

pub mod cf;
pub mod codec;
pub mod keys;
mod writer;

pub use writer::Writer;

use crate::error::{Error, Result};
use crate::model::{Lineage, Record, Registry, Relation};
use rocksdb::{Cache, ColumnFamily, DB, IteratorMode, Options, PrefixRange, ReadOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Store settings; defaults in one place.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The block cache shared by every column family (data, index and filter blocks).
    pub block_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { block_cache_bytes: crate::config::default_block_cache() }
    }
}

/// A raw stored key and value.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// One edge of a record: the relation's name and the record at its other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub relation: Relation,
    pub registry: Registry,
    pub id: String,
}

pub struct Store {
    db: DB,
    path: PathBuf,
    counts: [AtomicU64; 6],
    loads: RwLock<BTreeMap<u32, Arc<Lineage>>>,
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. A bulk load that was interrupted after
    /// its files were ingested but before its counts were written is repaired here.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(3);
        let db = DB::open_cf_descriptors(&db_opts, dir, cf::descriptors(&cache)).map_err(|e| {
            if e.to_string().contains("lock") {
                Error::Invalid(format!("the store at {} is in use by another jichu process: {e}", dir.display()))
            } else {
                Error::Store(e)
            }
        })?;
        let store = Store {
            db,
            path: dir.into(),
            counts: Default::default(),
            loads: RwLock::new(BTreeMap::new()),
            write_lock: Mutex::new(()),
        };
        store.recover()?;
        Ok(store)
    }

    fn recover(&self) -> Result<()> {
        let meta = self.cf(cf::META);
        for r in Registry::ALL {
            if self.db.get_pinned_cf(meta, keys::bulk_marker(r))?.is_some() {
                tracing::warn!(registry = %r, "an interrupted bulk load left its marker: recounting");
                let n = self.db.iterator_cf(self.cf(cf::records(r)), IteratorMode::Start).count() as u64;
                let mut batch = rocksdb::WriteBatch::default();
                if n == 0 {
                    // Killed after the points were ingested but before the records: drop them.
                    // (Edges stay: a registry's prefix also holds edges other loads wrote.)
                    batch.delete_range_cf(self.cf(cf::POINTS), [r as u8], [r as u8 + 1]);
                }
                batch.put_cf(meta, keys::count(r), n.to_le_bytes());
                batch.delete_cf(meta, keys::bulk_marker(r));
                self.db.write(batch)?;
            }
            let n = match self.db.get_pinned_cf(meta, keys::count(r))? {
                Some(v) => u64::from_le_bytes(v.as_ref().try_into().map_err(|_| Error::Codec("count".into()))?),
                None => 0,
            };
            self.counts[r as usize].store(n, Ordering::Relaxed);
        }
        let mut loads = self.loads.write().unwrap_or_else(|e| e.into_inner());
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange(keys::LOAD_PREFIX));
        for item in self.db.iterator_cf_opt(meta, opts, IteratorMode::Start) {
            let (_, v) = item?;
            let l: Lineage = serde_json::from_slice(&v).map_err(|e| Error::Codec(e.to_string()))?;
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

    /// The raw stored value of a key.
    pub fn get_raw(&self, registry: Registry, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_pinned_cf(self.cf(cf::records(registry)), id)?.map(|v| v.to_vec()))
    }

    /// One record by its canonical key.
    pub fn get(&self, registry: Registry, id: &str) -> Result<Option<Record>> {
        match self.db.get_pinned_cf(self.cf(cf::records(registry)), id)? {
            Some(v) => Ok(Some(codec::decode(registry, id, &v)?)),
            None => Ok(None),
        }
    }

    /// One record if the answer is in memory (memtable or block cache): `None` when it would
    /// need a file read. Lets the async API answer hot keys without a thread hand-off.
    pub fn get_cached(&self, registry: Registry, id: &str) -> Result<Option<Option<Record>>> {
        let mut opts = ReadOptions::default();
        opts.set_read_tier(rocksdb::ReadTier::BlockCache);
        match self.db.get_pinned_cf_opt(self.cf(cf::records(registry)), id, &opts) {
            Ok(Some(v)) => Ok(Some(Some(codec::decode(registry, id, &v)?))),
            Ok(None) => Ok(Some(None)),
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Many records by key, in the order asked (RocksDB's batched multi-get).
    pub fn get_many(&self, registry: Registry, ids: &[String]) -> Result<Vec<Option<Record>>> {
        let cf = self.cf(cf::records(registry));
        self.db
            .batched_multi_get_cf(cf, ids.iter().map(String::as_str), false)
            .into_iter()
            .zip(ids)
            .map(|(v, id)| match v? {
                Some(v) => codec::decode(registry, id, &v).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Raw stored values of keys given in sorted order (the batch path's read-before-write).
    pub fn get_many_raw(&self, registry: Registry, sorted_ids: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(cf::records(registry));
        self.db
            .batched_multi_get_cf(cf, sorted_ids.iter().copied(), true)
            .into_iter()
            .map(|v| Ok(v?.map(|v| v.to_vec())))
            .collect()
    }

    /// How many of `sorted_keys` (ascending, repeats allowed) are not in `registry`: forward
    /// seeks of one iterator, so neighbouring keys share the blocks they read.
    pub fn count_absent(&self, registry: Registry, sorted_keys: impl Iterator<Item = Result<Vec<u8>>>) -> Result<u64> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf::records(registry)), opts);
        let mut absent = 0;
        for key in sorted_keys {
            let key = key?;
            it.seek(&key);
            if it.key() != Some(key.as_slice()) {
                it.status()?;
                absent += 1;
            }
        }
        Ok(absent)
    }

    /// Every edge that starts at `(registry, id)`, grouped by relation.
    pub fn relations(&self, registry: Registry, id: &str) -> Result<Vec<Edge>> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange(keys::edge_prefix(registry, id)));
        let mut edges = Vec::new();
        for item in self.db.iterator_cf_opt(self.cf(cf::RELATIONS), opts, IteratorMode::Start) {
            let (k, _) = item?;
            let (relation, registry, id) = keys::decode_edge(&k).ok_or_else(|| Error::Codec("relation key".into()))?;
            edges.push(Edge { relation, registry, id: id.to_string() });
        }
        Ok(edges)
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

    /// Bytes of SST files on disk, all column families.
    pub fn disk_bytes(&self) -> u64 {
        cf::all()
            .filter_map(|name| {
                self.db.property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size").ok().flatten()
            })
            .sum()
    }

    /// Iterates a registry's stored values in key order (snapshot loads, index builds).
    pub fn scan(&self, registry: Registry) -> impl Iterator<Item = Result<KeyValue>> + '_ {
        self.db.iterator_cf(self.cf(cf::records(registry)), IteratorMode::Start).map(|r| r.map_err(Error::Store))
    }

    /// Every current point of a registry, as `(key, lon, lat)`, in key order.
    pub fn points(&self, registry: Registry) -> impl Iterator<Item = Result<(Box<[u8]>, f64, f64)>> + '_ {
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange([registry as u8]));
        opts.fill_cache(false);
        self.db.iterator_cf_opt(self.cf(cf::POINTS), opts, IteratorMode::Start).map(|item| {
            let (k, v) = item?;
            let (lon, lat) = keys::decode_point(&v).ok_or_else(|| Error::Codec("point".into()))?;
            Ok((k[1..].into(), lon, lat))
        })
    }

    /// Keys of `registry`'s records that load `load_id` wrote on its batch path, in key order
    /// (the change log; a bulk load into an empty registry logs nothing).
    pub fn changed_keys(&self, load_id: u32, registry: Registry) -> impl Iterator<Item = Result<Box<[u8]>>> + '_ {
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange(keys::change_prefix(load_id, registry)));
        self.db
            .iterator_cf_opt(self.cf(cf::CHANGES), opts, IteratorMode::Start)
            .map(|item| item.map(|(k, _)| k[5..].into()).map_err(Error::Store))
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

    pub(crate) fn set_count(&self, registry: Registry, n: u64) {
        self.counts[registry as usize].store(n, Ordering::Relaxed);
    }

    pub(crate) fn remember_load(&self, l: Lineage) {
        self.loads.write().unwrap_or_else(|e| e.into_inner()).insert(l.load_id, Arc::new(l));
    }
}
