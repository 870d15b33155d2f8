//! The single writer: atomic batches of record, edge and count changes; load bookkeeping;
//! SST ingestion for bulk loads.

use super::{Store, cf, keys};
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
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("pending", &self.batch.len()).finish()
    }
}

impl<'s> Writer<'s> {
    pub(super) fn new(store: &'s Store, guard: MutexGuard<'s, ()>) -> Self {
        Writer { store, _guard: guard, batch: WriteBatch::default(), deltas: [0; 6] }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Writes a record and its change-log entry (under the load id in its header).
    pub fn put_record(&mut self, registry: Registry, id: &[u8], value: &[u8]) -> Result<()> {
        let (header, _) = super::codec::split(value)?;
        self.batch.put_cf(self.store.cf(cf::records(registry)), id, value);
        self.batch.put_cf(self.store.cf(cf::CHANGES), keys::change(header.load_id, registry, id), []);
        Ok(())
    }

    pub fn put_edge(&mut self, key: &[u8]) {
        self.batch.put_cf(self.store.cf(cf::RELATIONS), key, []);
    }

    pub fn delete_edge(&mut self, key: &[u8]) {
        self.batch.delete_cf(self.store.cf(cf::RELATIONS), key);
    }

    /// Sets (or, with `None`, removes) a record's point in the `points` column family.
    pub fn set_point(&mut self, registry: Registry, id: &[u8], point: Option<(f64, f64)>) {
        let key = keys::point(registry, id);
        match point {
            Some((lon, lat)) => self.batch.put_cf(self.store.cf(cf::POINTS), key, keys::point_value(lon, lat)),
            None => self.batch.delete_cf(self.store.cf(cf::POINTS), key),
        }
    }

    pub fn add_count(&mut self, registry: Registry, delta: i64) {
        self.deltas[registry as usize] += delta;
    }

    /// Operations waiting in the batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Writes the batch and the changed counts atomically.
    pub fn commit(&mut self) -> Result<()> {
        let meta = self.store.cf(cf::META);
        let mut new_counts = Vec::new();
        for r in Registry::ALL {
            let d = self.deltas[r as usize];
            if d != 0 {
                let n = (self.store.count(r) as i64 + d).max(0) as u64;
                self.batch.put_cf(meta, keys::count(r), n.to_le_bytes());
                new_counts.push((r, n));
            }
        }
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.store.db().write(batch)?;
        }
        for (r, n) in new_counts {
            self.store.set_count(r, n);
        }
        self.deltas = [0; 6];
        Ok(())
    }

    /// Allocates a load id and records the load as started.
    pub fn begin_load(&mut self, registry: Registry, source: &str, files: Vec<String>, mode: &str) -> Result<u32> {
        let meta = self.store.cf(cf::META);
        let next = match self.store.db().get_pinned_cf(meta, keys::NEXT_LOAD)? {
            Some(v) => u32::from_le_bytes(v.as_ref().try_into().map_err(|_| Error::Codec("next_load".into()))?),
            None => 1,
        };
        let lineage = Lineage {
            load_id: next,
            registry: registry.to_string(),
            source: source.to_string(),
            files,
            mode: mode.to_string(),
            started_at: chrono::Utc::now(),
            finished_at: None,
            report: None,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, keys::NEXT_LOAD, (next + 1).to_le_bytes());
        batch.put_cf(meta, keys::load(next), serde_json::to_vec(&lineage).map_err(|e| Error::Codec(e.to_string()))?);
        self.store.db().write(batch)?;
        self.store.remember_load(lineage);
        Ok(next)
    }

    /// Records the load's report; the load is finished.
    pub fn finish_load(&mut self, load_id: u32, report: serde_json::Value) -> Result<()> {
        let known = self.store.lineage(load_id).ok_or_else(|| Error::Invalid(format!("no load {load_id}")))?;
        let mut lineage = Lineage::clone(&known);
        lineage.finished_at = Some(chrono::Utc::now());
        lineage.report = Some(report);
        let bytes = serde_json::to_vec(&lineage).map_err(|e| Error::Codec(e.to_string()))?;
        self.store.db().put_cf(self.store.cf(cf::META), keys::load(load_id), bytes)?;
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

    /// Marks (or clears) a bulk load in progress: if the process dies between ingesting the
    /// files and writing the count, the next open recounts the registry.
    pub fn bulk_marker(&mut self, registry: Registry, on: bool) -> Result<()> {
        let meta = self.store.cf(cf::META);
        if on {
            self.store.db().put_cf(meta, keys::bulk_marker(registry), [])?;
        } else {
            self.store.db().delete_cf(meta, keys::bulk_marker(registry))?;
        }
        Ok(())
    }

    /// Sets a registry's count (after a bulk load) and clears its bulk marker, atomically.
    pub fn set_count(&mut self, registry: Registry, n: u64) -> Result<()> {
        let meta = self.store.cf(cf::META);
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, keys::count(registry), n.to_le_bytes());
        batch.delete_cf(meta, keys::bulk_marker(registry));
        self.store.db().write(batch)?;
        self.store.set_count(registry, n);
        Ok(())
    }
}
