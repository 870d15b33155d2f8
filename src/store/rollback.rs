//! Undoing a load that did not finish — killed, cancelled or failed — so that nothing of it
//! remains and the store is as the last finished load left it.
//!
//! A batch-path load logs every record it writes (`changes`) with the value it replaced
//! (`history`, empty for a new record) in the same batch as the record: undoing restores those
//! values, with their edges, points and counts, batch by batch. A bulk load (into an empty
//! registry, by SST ingestion) marks the registry first: undoing it empties the registry again.
//! Both are idempotent, so a kill during an undo is finished by the next open.

use super::{Writer, cf, codec, feed, keys};
use crate::error::{Error, Result};
use crate::model::{Lineage, Registry};
use jichu_ingest::Value;
use rocksdb::{IteratorMode, PrefixRange, ReadOptions};

/// Changes undone per atomic batch.
const CHUNK: usize = 1024;

/// What a stored value says about a record's edges.
struct Shape {
    targets: Vec<String>,
}

fn shape(registry: Registry, id: &str, value: &[u8]) -> Result<Shape> {
    let record = codec::decode(registry, id, value)?;
    let targets = registry
        .schema()
        .links()
        .map(|(i, _)| record.values[i].as_ref().and_then(Value::as_text).unwrap_or("").to_string())
        .collect();
    Ok(Shape { targets })
}

impl Writer<'_> {
    /// Undoes load `load_id` and marks it undone in the load table, with `reason`.
    pub fn undo(&mut self, load_id: u32, reason: &str) -> Result<u64> {
        let store = self.store();
        let known = store.lineage(load_id).ok_or_else(|| Error::Invalid(format!("no load {load_id}")))?;
        let registry: Registry = known.registry.parse().map_err(Error::Invalid)?;
        let meta = store.cf(cf::META);
        let bulk = store.db().get_pinned_cf(meta, keys::bulk_marker(registry))?.map(|v| v.to_vec());
        let mut undone = 0;
        // An empty marker is an earlier version's, which named no load: it was this one.
        if bulk.as_deref() == Some(&load_id.to_le_bytes()[..]) || bulk.as_deref() == Some(&[][..]) {
            undone += self.undo_bulk(registry)?;
        }
        undone += self.undo_logged(load_id)?;
        self.undo_feed(&known)?;
        let mut lineage = Lineage::clone(&known);
        lineage.finished_at = None;
        lineage.report = None;
        lineage.undone_at = Some(chrono::Utc::now());
        lineage.undo_reason = Some(reason.to_string());
        self.put_lineage(lineage)?;
        tracing::info!(load_id, undone, reason, "load undone");
        Ok(undone)
    }

    /// Restores what a batch-path load replaced, change by change.
    fn undo_logged(&mut self, load_id: u32) -> Result<u64> {
        let store = self.store();
        let mut undone = 0;
        let mut from: Vec<u8> = keys::load_changes_prefix(load_id).to_vec();
        loop {
            // Each pass takes the next chunk still logged: undone entries are deleted with
            // their restore, so a kill in between resumes where it stopped. A pass starts after
            // the last entry undone, not at the prefix, so it does not step over the tombstones
            // of every entry undone before it (quadratic in a large load).
            let mut opts = ReadOptions::default();
            opts.set_iterate_range(PrefixRange(keys::load_changes_prefix(load_id)));
            let entries: Vec<Box<[u8]>> = store
                .db()
                .iterator_cf_opt(store.cf(cf::CHANGES), opts, IteratorMode::From(&from, rocksdb::Direction::Forward))
                .take(CHUNK)
                .map(|item| item.map(|(k, _)| k))
                .collect::<std::result::Result<_, _>>()?;
            let Some(last) = entries.last() else { return Ok(undone) };
            from = [&last[..], &[0u8][..]].concat();
            for entry in &entries {
                let registry = Registry::from_byte(entry[4]).ok_or_else(|| Error::Codec("change key".into()))?;
                self.restore(registry, &entry[5..], load_id)?;
                self.delete_raw(cf::CHANGES, entry);
                undone += 1;
            }
            self.commit()?;
        }
    }

    /// Removes the load's entries from the feed. A load being undone is the last writer, so
    /// they are the feed's tail: the next change takes the first of their positions, and the
    /// feed stays gap-free (no reader saw them: an unfinished load is never published).
    fn undo_feed(&mut self, lineage: &Lineage) -> Result<()> {
        let Some(from) = lineage.feed_from else { return Ok(()) };
        let store = self.store();
        let mut it = store.db().raw_iterator_cf(store.cf(cf::FEED));
        it.seek(feed::key(from));
        let mut others = 0u64;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if feed::read(k, v)?.load_id == lineage.load_id {
                self.delete_raw(cf::FEED, k);
            } else {
                others += 1;
            }
            if self.pending() >= CHUNK * 4 {
                self.commit()?;
            }
            it.next();
        }
        it.status()?;
        self.commit()?;
        if others > 0 {
            tracing::warn!(
                load_id = lineage.load_id,
                others,
                "changes of other loads follow an undone load's in the feed"
            );
        }
        let next = store.feed_last()? + 1;
        self.feed_ingested(next);
        Ok(())
    }

    /// Puts back the value load `load_id` replaced for one record, with its edges and point.
    fn restore(&mut self, registry: Registry, id: &[u8], load_id: u32) -> Result<()> {
        let store = self.store();
        let key = std::str::from_utf8(id).map_err(|_| Error::Codec("record key".into()))?;
        self.restore_side(registry, id, load_id)?;
        let history_key = keys::history(registry, id, load_id);
        let Some(old) = store.db().get_pinned_cf(store.cf(cf::HISTORY), &history_key)?.map(|v| v.to_vec()) else {
            // Only what lies beside the record changed (a contribution that left the golden
            // record as it was), restored above.
            return Ok(());
        };
        let current = store.reader().get_raw(registry, key)?;
        // Only this load's own write is undone: a value a later load wrote stands (its own undo
        // or history covers it).
        let written_by = current.as_deref().map(codec::split).transpose()?.map(|(h, _)| h.load_id);
        if written_by.is_some_and(|id| id != load_id) {
            tracing::warn!(load_id, %registry, "a later load rewrote a record this load changed: left as that load wrote it");
            self.delete_raw(cf::HISTORY, &history_key);
            return Ok(());
        }
        if old.is_empty() || !codec::split(&old)?.0.sourced {
            // Back to a record one source supplies: it keeps no contributions.
            self.delete_raw(cf::CONTRIBUTIONS, &keys::history_prefix(registry, id));
        }
        let now = current.as_deref().map(|v| shape(registry, key, v)).transpose()?;
        let before = if old.is_empty() { None } else { Some(shape(registry, key, &old)?) };
        let links: Vec<_> = registry.schema().links().map(|(_, l)| l).collect();
        for (i, link) in links.iter().enumerate() {
            let now_target = now.as_ref().map_or("", |s| s.targets[i].as_str());
            let old_target = before.as_ref().map_or("", |s| s.targets[i].as_str());
            if now_target == old_target {
                continue;
            }
            if !now_target.is_empty() {
                self.delete_edge(&keys::link_edge(registry, key, link, now_target));
            }
            if !old_target.is_empty() {
                self.put_edge(&keys::link_edge(registry, key, link, old_target));
            }
        }
        match (old.is_empty(), current.is_some()) {
            (true, true) => {
                self.delete_raw(cf::records(registry), id);
                self.add_count(registry, -1);
            }
            (true, false) => {}
            (false, exists) => {
                self.put_raw(cf::records(registry), id, &old);
                if !exists {
                    self.add_count(registry, 1);
                }
            }
        }
        self.delete_raw(cf::HISTORY, &history_key);
        Ok(())
    }

    /// Empties a registry a bulk load filled: its records, their edges, its count.
    fn undo_bulk(&mut self, registry: Registry) -> Result<u64> {
        let store = self.store();
        let links: Vec<_> = registry.schema().links().map(|(_, l)| l).collect();
        let mut n = 0;
        if !links.is_empty() {
            for item in store.reader().scan(registry) {
                let (k, v) = item?;
                let key = std::str::from_utf8(&k).map_err(|_| Error::Codec("record key".into()))?;
                let s = shape(registry, key, &v)?;
                for (link, target) in links.iter().zip(&s.targets).filter(|(_, t)| !t.is_empty()) {
                    self.delete_edge(&keys::link_edge(registry, key, link, target));
                }
                if self.pending() >= CHUNK * 4 {
                    self.commit()?;
                }
                n += 1;
            }
        }
        let meta = store.cf(cf::META);
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range_cf(store.cf(cf::records(registry)), &[][..], &[0xff][..]);
        batch.put_cf(meta, keys::count(registry), 0u64.to_le_bytes());
        batch.delete_cf(meta, keys::bulk_marker(registry));
        self.commit()?;
        store.db().write(batch)?;
        store.set_count(registry, 0);
        Ok(n)
    }
}
