//! The single writer: atomic batches of record, edge and count changes; load bookkeeping;
//! SST ingestion for bulk loads.

use super::{Store, cf, feed, keys};
use crate::error::{Error, Result};
use crate::model::{Lineage, Registry};
use rocksdb::{IngestExternalFileOptions, WriteBatch};
use std::path::PathBuf;
use std::sync::MutexGuard;

/// Holds the store's write lock. Changes accumulate in a batch; [`Writer::commit`] writes
/// them, with the new counts, atomically.
pub struct Writer<'s> {
    store: &'s Store,
    _guard: MutexGuard<'s, ()>,
    batch: WriteBatch,
    deltas: [i64; 6],
    /// The feed position the next change in the batch takes.
    feed_next: u64,
    /// Whether changes keep their versions and feed entries (always, but in benchmarks).
    record_changes: bool,
    /// The next review item number, once read.
    pub(super) review_next: Option<u64>,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("pending", &self.batch.len()).finish()
    }
}

impl<'s> Writer<'s> {
    pub(super) fn new(store: &'s Store, guard: MutexGuard<'s, ()>) -> Self {
        let feed_next = store.feed_next();
        Writer {
            store,
            _guard: guard,
            batch: WriteBatch::default(),
            deltas: [0; 6],
            feed_next,
            record_changes: true,
            review_next: None,
        }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Writes a record, its change-log entry (under the load id in its header), the value it
    /// replaces (`old`; None: the record is new) in the history, so the load can be undone and
    /// the version is kept, and its entry in the feed.
    pub fn put_record(&mut self, registry: Registry, id: &[u8], value: &[u8], old: Option<&[u8]>) -> Result<()> {
        let (header, _) = super::codec::split(value)?;
        self.batch.put_cf(self.store.cf(cf::records(registry)), id, value);
        self.batch.put_cf(self.store.cf(cf::CHANGES), keys::change(header.load_id, registry, id), []);
        if !self.record_changes {
            return Ok(());
        }
        let (kind, fields) = feed::classify(old, value)?;
        self.batch.put_cf(self.store.cf(cf::HISTORY), keys::history(registry, id, header.load_id), old.unwrap_or(&[]));
        let entry = feed::encode_value(registry, kind, header.load_id, fields, id);
        self.batch.put_cf(self.store.cf(cf::FEED), feed::key(self.feed_next), entry);
        self.feed_next += 1;
        Ok(())
    }

    /// For benchmarks only, to measure what history and the feed cost: the changes written
    /// from now on keep no version and take no feed position. Such a load cannot be undone
    /// (the versions are its undo log) and the feed no longer replays to the registries.
    #[doc(hidden)]
    pub fn without_changes(&mut self) {
        self.record_changes = false;
    }

    /// Whether changes keep their versions and take feed positions (see [`Writer::without_changes`]).
    pub fn records_changes(&self) -> bool {
        self.record_changes
    }

    /// The feed position the next change takes (a bulk load numbers its records from here).
    pub fn feed_position(&self) -> u64 {
        self.feed_next
    }

    /// Marks feed positions up to `next` taken by ingested files.
    pub fn feed_ingested(&mut self, next: u64) {
        self.feed_next = next;
        self.store.set_feed_next(next);
    }

    /// Puts a raw value, unlogged (undoing a load restores values this way).
    pub(super) fn put_raw(&mut self, cf_name: &str, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.store.cf(cf_name), key, value);
    }

    pub(super) fn delete_raw(&mut self, cf_name: &str, key: &[u8]) {
        self.batch.delete_cf(self.store.cf(cf_name), key);
    }

    pub fn put_edge(&mut self, key: &[u8]) {
        self.batch.put_cf(self.store.cf(cf::RELATIONS), key, []);
    }

    pub fn delete_edge(&mut self, key: &[u8]) {
        self.batch.delete_cf(self.store.cf(cf::RELATIONS), key);
    }

    /// Deletes an edge a load removed, noting it in `unlinked` (as-of reads look there for the
    /// records that linked to one before).
    pub fn remove_edge(&mut self, key: &[u8], load_id: u32) {
        self.delete_edge(key);
        self.batch.put_cf(self.store.cf(cf::UNLINKED), keys::unlinked(key, load_id), []);
    }

    /// Indexes a new entity by the organisation code its credit code embeds.
    pub fn put_organisation_code(&mut self, credit_code: &[u8]) {
        if let Some(k) = keys::organisation_code(credit_code) {
            self.batch.put_cf(self.store.cf(cf::ORGANISATION_CODES), k, []);
        }
    }

    /// Fills `organisation_codes` from the stored entities (a store from before it existed).
    pub(super) fn backfill_organisation_codes(&mut self) -> Result<()> {
        let store = self.store;
        let mut n = 0u64;
        for item in store.reader().scan(Registry::Entities) {
            let (k, _) = item?;
            self.put_organisation_code(&k);
            n += 1;
            if self.batch.len() >= 4096 {
                self.commit()?;
            }
        }
        self.batch.put_cf(store.cf(cf::META), keys::ORGANISATION_CODES_READY, []);
        self.commit()?;
        if n > 0 {
            tracing::info!(entities = n, "entities indexed by organisation code");
        }
        Ok(())
    }

    pub fn add_count(&mut self, registry: Registry, delta: i64) {
        self.deltas[registry as usize] += delta;
    }

    /// Operations waiting in the batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Writes the batch and the changed counts atomically. On failure both are discarded:
    /// nothing of them is written, and nothing of them lingers for the next commit.
    pub fn commit(&mut self) -> Result<()> {
        let meta = self.store.cf(cf::META);
        let mut new_counts = Vec::new();
        let deltas = std::mem::take(&mut self.deltas);
        for r in Registry::ALL {
            let d = deltas[r as usize];
            if d != 0 {
                let n = (self.store.count(r) as i64 + d).max(0) as u64;
                self.batch.put_cf(meta, keys::count(r), n.to_le_bytes());
                new_counts.push((r, n));
            }
        }
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty()
            && let Err(e) = self.store.db().write(batch)
        {
            self.feed_next = self.store.feed_next();
            return Err(e.into());
        }
        self.store.set_feed_next(self.feed_next);
        for (r, n) in new_counts {
            self.store.set_count(r, n);
        }
        Ok(())
    }

    /// Records a load as started, under a reserved id or a new one.
    pub fn begin_load(
        &mut self,
        reserved: Option<u32>,
        registry: Registry,
        source: &str,
        files: Vec<String>,
        mode: &str,
    ) -> Result<u32> {
        let load_id = match reserved {
            Some(id) => id,
            None => self.store.reserve_load_id()?,
        };
        let lineage = Lineage {
            load_id,
            registry: registry.to_string(),
            source: source.to_string(),
            files,
            mode: mode.to_string(),
            started_at: chrono::Utc::now(),
            finished_at: None,
            report: None,
            undone_at: None,
            undo_reason: None,
            finished: None,
            feed_from: Some(self.feed_next),
            started_text: Default::default(),
        };
        self.put_lineage(lineage)?;
        Ok(load_id)
    }

    pub(super) fn put_lineage(&mut self, lineage: Lineage) -> Result<()> {
        let bytes = serde_json::to_vec(&lineage).map_err(|e| Error::Codec(e.to_string()))?;
        self.store.db().put_cf(self.store.cf(cf::META), keys::load(lineage.load_id), bytes)?;
        self.store.remember_load(lineage);
        Ok(())
    }

    /// Records the load's report; the load is finished (its changes stay through any kill).
    /// Its bulk marker, if any, goes in the same write.
    pub fn finish_load(&mut self, load_id: u32, report: serde_json::Value) -> Result<()> {
        let known = self.store.lineage(load_id).ok_or_else(|| Error::Invalid(format!("no load {load_id}")))?;
        let mut lineage = Lineage::clone(&known);
        lineage.finished_at = Some(chrono::Utc::now());
        lineage.report = Some(report);
        // The next place in the finish order: after every load finished so far.
        let last = self.store.loads().iter().filter_map(|l| l.finish_order()).max().unwrap_or(0);
        lineage.finished = Some(last + 1);
        let registry: Registry = lineage.registry.parse().map_err(Error::Invalid)?;
        let meta = self.store.cf(cf::META);
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, keys::load(load_id), serde_json::to_vec(&lineage).map_err(|e| Error::Codec(e.to_string()))?);
        if self.store.db().get_pinned_cf(meta, keys::bulk_marker(registry))?.as_deref()
            == Some(&load_id.to_le_bytes()[..])
        {
            batch.delete_cf(meta, keys::bulk_marker(registry));
        }
        self.store.db().write(batch)?;
        self.store.remember_load(lineage);
        Ok(())
    }

    /// Ingests sorted SST files into a column family (moved, not copied).
    pub fn ingest(&mut self, cf_name: &str, files: Vec<PathBuf>) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut opts = IngestExternalFileOptions::default();
        opts.set_move_files(true);
        self.store.db().ingest_external_file_cf_opts(self.store.cf(cf_name), &opts, files)?;
        Ok(())
    }

    /// Marks a bulk load of `registry` by load `load_id` in progress: if it does not finish,
    /// undoing it empties the registry again (it was empty when the load began).
    pub fn bulk_marker(&mut self, registry: Registry, load_id: u32) -> Result<()> {
        self.store.db().put_cf(self.store.cf(cf::META), keys::bulk_marker(registry), load_id.to_le_bytes())?;
        // Ingestion makes its files durable at once: the marker (and the load's lineage) must be
        // durable before them, or a power loss could keep the files and lose what undoes them.
        self.store.sync_wal()
    }

    /// Gives every stored record an `insert` entry in an empty feed (a store written before
    /// the feed existed), so that a consumer reading the feed from its start holds the
    /// registries.
    pub(super) fn backfill_feed(&mut self) -> Result<()> {
        let store = self.store;
        let mut n = 0u64;
        for r in Registry::ALL {
            for item in store.reader().scan(r) {
                let (k, v) = item?;
                let (header, _) = super::codec::split(&v)?;
                let entry = feed::encode_value(r, feed::ChangeKind::Insert, header.load_id, 0, &k);
                self.batch.put_cf(store.cf(cf::FEED), feed::key(self.feed_next), entry);
                self.feed_next += 1;
                n += 1;
                if self.batch.len() >= 4096 {
                    self.commit()?;
                }
            }
        }
        self.commit()?;
        tracing::info!(records = n, "the change feed was started from the stored records");
        Ok(())
    }

    /// Sets a registry's count (after a bulk load).
    pub fn set_count(&mut self, registry: Registry, n: u64) -> Result<()> {
        self.store.db().put_cf(self.store.cf(cf::META), keys::count(registry), n.to_le_bytes())?;
        self.store.set_count(registry, n);
        Ok(())
    }
}
