//! Reads at one state of the store: the latest ([`Store::reader`]) or a pinned snapshot
//! ([`Snapshot`]). A snapshot is what a published view answers from: loads keep writing while
//! every reader of the view sees the store as it was when the view was published.

use super::feed::{self, FeedEntry};
use super::{Edge, KeyValue, Store, cf, codec, keys};
use crate::error::{Error, Result};
use crate::model::{Lineage, Record, Registry};
use rocksdb::{IteratorMode, PrefixRange, ReadOptions};
use std::sync::Arc;

type DbSnapshot<'a> = rocksdb::Snapshot<'a>;

self_cell::self_cell!(
    /// A RocksDB snapshot that owns a handle to its store, so that it can live in a published
    /// view for as long as a request or a search cursor needs it.
    struct Pinned {
        owner: Arc<Store>,
        #[covariant]
        dependent: DbSnapshot,
    }
);

/// The store as it was at one moment: every read through it sees that moment, whatever has
/// been written since. Cheap to keep (RocksDB retains the overwritten values it needs).
pub struct Snapshot {
    pinned: Pinned,
    sequence: u64,
    counts: [u64; 6],
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("sequence", &self.sequence).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Pins the store's current state.
    pub fn new(store: Arc<Store>) -> Result<Snapshot> {
        let pinned = Pinned::new(store, |s| s.db().snapshot());
        // Writes racing the snapshot may be counted in the sequence, never missed by it.
        let sequence = pinned.borrow_owner().sequence();
        let mut snapshot = Snapshot { pinned, sequence, counts: [0; 6] };
        for r in Registry::ALL {
            snapshot.counts[r as usize] = snapshot.reader().stored_count(r)?;
        }
        Ok(snapshot)
    }

    pub fn store(&self) -> &Arc<Store> {
        self.pinned.borrow_owner()
    }

    /// Reads at this snapshot.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            store: self.pinned.borrow_owner(),
            snapshot: Some(self.pinned.borrow_dependent()),
            sequence: self.sequence,
        }
    }

    /// The store's sequence number when the snapshot was taken (at least; writes racing the
    /// snapshot may be counted, never missed by a later snapshot).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Records stored in a registry at this snapshot (ended ones included).
    pub fn count(&self, registry: Registry) -> u64 {
        self.counts[registry as usize]
    }
}

/// Reads at one state. Every read of the store goes through one of these, so that a view and
/// a load use the same code.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    store: &'a Store,
    snapshot: Option<&'a DbSnapshot<'a>>,
    sequence: u64,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("pinned", &self.snapshot.is_some()).finish()
    }
}

impl<'a> Reader<'a> {
    pub(super) fn latest(store: &'a Store) -> Reader<'a> {
        Reader { store, snapshot: None, sequence: store.sequence() }
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The store's sequence number at this state (indexes record what they have seen).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Read options at this state (for reads of other modules of the store).
    pub(super) fn read_options(&self) -> ReadOptions {
        self.opts()
    }

    fn opts(self) -> ReadOptions {
        let mut o = ReadOptions::default();
        if let Some(s) = self.snapshot {
            o.set_snapshot(s);
        }
        o
    }

    fn records(self, registry: Registry) -> &'a rocksdb::ColumnFamily {
        self.store.cf(cf::records(registry))
    }

    /// The raw stored value of a key.
    pub fn get_raw(&self, registry: Registry, id: &str) -> Result<Option<Vec<u8>>> {
        let v = self.store.db().get_pinned_cf_opt(self.records(registry), id, &self.opts())?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// The entities whose credit codes embed an organisation code (canonical), in key order.
    pub fn entities_by_organisation_code(&self, code: &str) -> Result<Vec<String>> {
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(code.as_bytes()));
        let mut out = Vec::new();
        let it = self.store.db().iterator_cf_opt(self.store.cf(cf::ORGANISATION_CODES), opts, IteratorMode::Start);
        for item in it {
            let (k, _) = item?;
            let id = std::str::from_utf8(&k[code.len()..]).map_err(|_| Error::Codec("organisation code key".into()))?;
            if self.exists(Registry::Entities, id)? {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    /// Whether a record is stored under a key.
    pub fn exists(&self, registry: Registry, id: &str) -> Result<bool> {
        Ok(self.store.db().get_pinned_cf_opt(self.records(registry), id, &self.opts())?.is_some())
    }

    /// One record by its canonical key.
    pub fn get(&self, registry: Registry, id: &str) -> Result<Option<Record>> {
        match self.store.db().get_pinned_cf_opt(self.records(registry), id, &self.opts())? {
            Some(v) => Ok(Some(codec::decode(registry, id, &v)?)),
            None => Ok(None),
        }
    }

    /// One record if the answer is in memory (memtable or block cache): `None` when it would
    /// need a file read. Lets the async API answer hot keys without a thread hand-off.
    pub fn get_cached(&self, registry: Registry, id: &str) -> Result<Option<Option<Record>>> {
        self.get_in_memory(registry, id, &self.in_memory_opts())
    }

    /// Read options that stop at the block cache (`Incomplete` where a file would be read).
    fn in_memory_opts(&self) -> ReadOptions {
        let mut opts = self.opts();
        opts.set_read_tier(rocksdb::ReadTier::BlockCache);
        opts
    }

    /// One record read with `opts` (see [`Reader::get_cached`]).
    fn get_in_memory(&self, registry: Registry, id: &str, opts: &ReadOptions) -> Result<Option<Option<Record>>> {
        match self.store.db().get_pinned_cf_opt(self.records(registry), id, opts) {
            Ok(Some(v)) => Ok(Some(Some(codec::decode(registry, id, &v)?))),
            Ok(None) => Ok(Some(None)),
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Many records by key, in the order asked (RocksDB's batched multi-get).
    pub fn get_many(&self, registry: Registry, ids: &[String]) -> Result<Vec<Option<Record>>> {
        self.store
            .db()
            .batched_multi_get_cf_opt(self.records(registry), ids.iter().map(String::as_str), false, &self.opts())
            .into_iter()
            .zip(ids)
            .map(|(v, id)| match v? {
                Some(v) => codec::decode(registry, id, &v).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Many records by key if every answer is in memory (memtable or block cache): `None`
    /// when one would need a file read. The batch counterpart of [`Reader::get_cached`].
    ///
    /// Point reads, not a multi-get: RocksDB's multi-get (10.4) reads and decompresses the
    /// blocks the cache misses even at the block-cache tier, and then, that tier forbidding
    /// it, does not keep them; so a server answering batches did file reads on its async
    /// workers and never filled its cache (1M citizens, `wrk` with 100-key batches only:
    /// the cache stayed at 7 MB, zstd half the server's CPU).
    pub fn get_many_cached(&self, registry: Registry, ids: &[String]) -> Result<Option<Vec<Option<Record>>>> {
        let opts = self.in_memory_opts();
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get_in_memory(registry, id, &opts)? {
                Some(found) => records.push(found),
                None => return Ok(None),
            }
        }
        Ok(Some(records))
    }

    /// Raw stored values of keys given in sorted order (a load's read-before-write).
    pub fn get_many_raw(&self, registry: Registry, sorted_ids: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        self.store
            .db()
            .batched_multi_get_cf_opt(self.records(registry), sorted_ids.iter().copied(), true, &self.opts())
            .into_iter()
            .map(|v| Ok(v?.map(|v| v.to_vec())))
            .collect()
    }

    /// Every edge of `(registry, id)`, ordered by relation: the references its record holds
    /// (read from the record) and the records that refer to it ([`Reader::referring`]).
    pub fn relations(&self, registry: Registry, id: &str) -> Result<Vec<Edge>> {
        let holds_links = registry.schema().links().next().is_some();
        let held = if holds_links { self.get(registry, id)? } else { None };
        self.relations_of(registry, id, held.as_ref())
    }

    /// [`Reader::relations`] for a caller that has read the record already (`None`: absent).
    pub fn relations_of(&self, registry: Registry, id: &str, record: Option<&Record>) -> Result<Vec<Edge>> {
        let mut edges = record.map_or_else(Vec::new, held_edges);
        edges.extend(self.referring(registry, id)?);
        edges.sort_unstable();
        Ok(edges)
    }

    /// The edges of the records that refer to `(registry, id)`: one prefix scan of the
    /// relations column family, grouped by relation.
    pub fn referring(&self, registry: Registry, id: &str) -> Result<Vec<Edge>> {
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(keys::edge_prefix(registry, id)));
        let mut edges = Vec::new();
        for item in self.store.db().iterator_cf_opt(self.store.cf(cf::RELATIONS), opts, IteratorMode::Start) {
            let (k, _) = item?;
            let (relation, other, other_id) =
                keys::decode_edge(&k).ok_or_else(|| Error::Codec("relation key".into()))?;
            if !holds_relation(registry, relation) {
                edges.push(Edge { relation, registry: other, id: other_id.to_string() });
            }
        }
        Ok(edges)
    }

    /// Every edge from a record that referred to `(registry, id)` and that a load removed
    /// (each once).
    pub fn unlinked(&self, registry: Registry, id: &str) -> Result<Vec<Edge>> {
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(keys::edge_prefix(registry, id)));
        let mut edges: Vec<Edge> = Vec::new();
        for item in self.store.db().iterator_cf_opt(self.store.cf(cf::UNLINKED), opts, IteratorMode::Start) {
            let (k, _) = item?;
            let edge = k.get(..k.len().saturating_sub(4)).and_then(keys::decode_edge);
            let (relation, other, other_id) = edge.ok_or_else(|| Error::Codec("unlinked key".into()))?;
            if holds_relation(registry, relation) {
                continue;
            }
            if !edges.iter().any(|e| e.relation == relation && e.registry == other && e.id == other_id) {
                edges.push(Edge { relation, registry: other, id: other_id.to_string() });
            }
        }
        Ok(edges)
    }

    /// Whether load `load_id` wrote `(registry, id)` on its batch path (bulk loads log nothing).
    pub fn logged(&self, load_id: u32, registry: Registry, id: &str) -> Result<bool> {
        let key = keys::change(load_id, registry, id.as_bytes());
        Ok(self.store.db().get_pinned_cf_opt(self.store.cf(cf::CHANGES), key, &self.opts())?.is_some())
    }

    /// Iterates a registry's stored values in key order.
    pub fn scan(self, registry: Registry) -> impl Iterator<Item = Result<KeyValue>> + 'a {
        let mut opts = self.opts();
        opts.fill_cache(false);
        self.store
            .db()
            .iterator_cf_opt(self.records(registry), opts, IteratorMode::Start)
            .map(|r| r.map_err(Error::Store))
    }

    /// Every current point of a registry, as `(key, lon, lat)`, in key order: read from the
    /// records themselves (their `location`), which are the only copy.
    pub fn points(self, registry: Registry) -> impl Iterator<Item = Result<(Box<[u8]>, f64, f64)>> + 'a {
        self.scan(registry).filter_map(move |item| {
            let located = |(k, v): KeyValue| Ok(codec::location(registry, &v)?.map(|(lon, lat)| (k, lon, lat)));
            item.and_then(located).transpose()
        })
    }

    /// Keys of `registry`'s records that load `load_id` wrote on its batch path, in key order.
    pub fn changed_keys(self, load_id: u32, registry: Registry) -> impl Iterator<Item = Result<Box<[u8]>>> + 'a {
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(keys::change_prefix(load_id, registry)));
        self.store
            .db()
            .iterator_cf_opt(self.store.cf(cf::CHANGES), opts, IteratorMode::Start)
            .map(|item| item.map(|(k, _)| k[5..].into()).map_err(Error::Store))
    }

    /// Feed entries after position `after`, in feed order: from the stored entry at or before
    /// the first position wanted (a run may start before it), then onwards.
    pub fn feed(self, after: u64) -> impl Iterator<Item = Result<FeedEntry>> + 'a {
        let from = after.saturating_add(1);
        let mut it = self.store.db().raw_iterator_cf_opt(self.store.cf(cf::FEED), self.opts());
        it.seek_for_prev(feed::key(from));
        if !it.valid() && it.status().is_ok() {
            it.seek_to_first();
        }
        let mut pending = Vec::new().into_iter();
        let mut done = false;
        std::iter::from_fn(move || {
            loop {
                if let Some(e) = pending.next() {
                    return Some(Ok(e));
                }
                if done {
                    return None;
                }
                let Some((k, v)) = it.item() else {
                    done = true;
                    return it.status().err().map(|e| Err(e.into()));
                };
                match feed::read(k, v).and_then(|s| s.entries_from(from)) {
                    Ok(entries) => pending = entries.into_iter(),
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
                it.next();
            }
        })
    }

    /// The last feed position at this state (0: the feed is empty).
    pub fn feed_last(&self) -> Result<u64> {
        let mut it = self.store.db().raw_iterator_cf_opt(self.store.cf(cf::FEED), self.opts());
        it.seek_to_last();
        it.status()?;
        match (it.key(), it.value()) {
            (Some(k), Some(v)) => Ok(feed::read(k, v)?.last()),
            _ => Ok(0),
        }
    }

    /// A record's earlier versions: `(load id, value)` for each load that replaced one, the
    /// value as it was before that load (empty: the load inserted the record), in load-id
    /// order.
    pub fn replaced(&self, registry: Registry, id: &str) -> Result<Vec<(u32, Vec<u8>)>> {
        let prefix = keys::history_prefix(registry, id.as_bytes());
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(prefix.clone()));
        let mut out = Vec::new();
        for item in self.store.db().iterator_cf_opt(self.store.cf(cf::HISTORY), opts, IteratorMode::Start) {
            let (k, v) = item?;
            // A key of another record that shares the (length-prefixed) prefix cannot exist;
            // the load id is the last four bytes.
            let load = k.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
            let load = load.ok_or_else(|| Error::Codec("history key".into()))?;
            out.push((load, v.to_vec()));
        }
        Ok(out)
    }

    /// A record's value as load `load_id` wrote it: the current value, or the earlier version
    /// a later load replaced. None when no kept version was written by that load.
    pub fn version_by(&self, registry: Registry, id: &str, load_id: u32) -> Result<Option<Vec<u8>>> {
        let written_by = |v: &[u8]| codec::split(v).map(|(h, _)| h.load_id == load_id);
        if let Some(v) = self.get_raw(registry, id)?
            && written_by(&v)?
        {
            return Ok(Some(v));
        }
        for (_, v) in self.replaced(registry, id)? {
            if !v.is_empty() && written_by(&v)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The count of a registry as stored in `meta` (written in the same batch as its records).
    pub fn stored_count(&self, registry: Registry) -> Result<u64> {
        let meta = self.store.cf(cf::META);
        match self.store.db().get_pinned_cf_opt(meta, keys::count(registry), &self.opts())? {
            Some(v) => Ok(u64::from_le_bytes(v.as_ref().try_into().map_err(|_| Error::Codec("count".into()))?)),
            None => Ok(0),
        }
    }

    /// The load table as stored: every load begun, oldest first.
    pub fn stored_loads(&self) -> Result<Vec<Lineage>> {
        let mut opts = self.opts();
        opts.set_iterate_range(PrefixRange(keys::LOAD_PREFIX));
        let mut out = Vec::new();
        for item in self.store.db().iterator_cf_opt(self.store.cf(cf::META), opts, IteratorMode::Start) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| Error::Codec(e.to_string()))?);
        }
        Ok(out)
    }

    /// The loads this state holds (those finished), by id: the lineage records are shown with.
    pub fn finished_loads(&self) -> Result<std::collections::BTreeMap<u32, Arc<Lineage>>> {
        Ok(self
            .stored_loads()?
            .into_iter()
            .filter(|l| l.finished_at.is_some())
            .map(|l| (l.load_id, Arc::new(l)))
            .collect())
    }
}

/// The edges a record's references make (owner → target). Derived from the record, never
/// stored: the record holds them, and a key for each was half the relations column family.
pub fn held_edges(record: &Record) -> Vec<Edge> {
    let registry = record.registry;
    registry
        .schema()
        .links()
        .filter_map(|(i, link)| {
            let target = record.values[i].as_ref()?.as_text().filter(|t| !t.is_empty())?;
            Some(Edge {
                relation: link.forward,
                registry: keys::target_registry(&link, target),
                id: target.to_string(),
            })
        })
        .collect()
}

/// Whether `relation` is one a record of `registry` holds in its own fields. Such edges are
/// derived from the record; stores written before kept them as keys too, which reads skip.
fn holds_relation(registry: Registry, relation: crate::model::Relation) -> bool {
    registry.schema().links().any(|(_, l)| l.forward == relation)
}
