//! The full-text layer: `jichu-indexes`' text index, fed from the store and kept in step.
//!
//! The model says which fields are searchable ([`crate::model::Search`]); this module turns
//! records into documents, and keeps the index in step with the store by *load ids*: every
//! stored value carries the id of the load that last changed it (loads only ever add or
//! change records — an ending is a change — and ids only grow). Each index commit records in
//! its payload the store sequence and the highest load id it has seen. [`TextLayer::sync`]
//! then re-indexes exactly the records whose load id is newer, so a kill between a store
//! write and an index commit is repaired by the next `sync` (every `jichu load` ends with
//! one, and `jichu serve` runs one before answering). An index whose payload is missing,
//! or ahead of the store, is rebuilt.

use crate::error::{Error, Result};
use crate::load::Progress;
use crate::model::{Lineage, Record, Registry, Search};
use crate::store::{Reader, Store, codec};
use chrono::Datelike;
use jichu_indexes::text::{FieldId, Grams, TextDoc, TextField, TextIndex, TextSpec, TextWriter, WriterOptions};
use jichu_ingest::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Records whose documents one delete operation replaces ([`TextWriter::delete_many`]): each
/// costs every segment of the registry a lookup per key (or a pass over its uid dictionary)
/// and one pass over its uid ordinals, whatever its size, so they are large; an operation
/// holds its keys (~30 bytes each) until the commit.
const DELETES_AT_ONCE: usize = 1 << 20;

/// The keyword every document has: the district (county-level GB/T 2260 code) its record
/// belongs to, read from its key or its subject's identifier.
pub const DISTRICT: &str = "district";

/// The documents of one bulk load, fed as the load writes its records
/// ([`TextLayer::bulk_feed`]) and committed when it has finished ([`BulkFeed::finish`]).
pub struct BulkFeed<'a> {
    layer: &'a TextLayer,
    writer: TextWriter,
    registry: Registry,
    /// The last finished load the index had seen when the feed began.
    since: u64,
    fed: u64,
    /// The first record that could not be indexed: the feed stops there, and its load is
    /// indexed by a sync instead.
    failed: Option<Error>,
}

impl std::fmt::Debug for BulkFeed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkFeed").field("registry", &self.registry).field("fed", &self.fed).finish_non_exhaustive()
    }
}

impl BulkFeed<'_> {
    /// Indexes a record as the store will hold it (its key and stored value).
    pub fn record(&mut self, key: &[u8], value: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let added = std::str::from_utf8(key)
            .map_err(|_| Error::Codec("record key".into()))
            .and_then(|key| codec::decode(self.registry, key, value))
            .and_then(|record| self.writer.add(self.layer.document(&self.writer, &record)).map_err(text_err));
        match added {
            Ok(()) => self.fed += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    /// Commits the documents fed when the loads the store finished since the feed began are
    /// exactly `load_id`, a bulk load into the feed's registry that wrote every record fed;
    /// otherwise (a load that took another path, another load in between, a record that
    /// could not be indexed) drops them and brings the index in step by [`TextLayer::sync`].
    pub fn finish(
        mut self,
        at: Reader<'_>,
        load_id: u32,
        options: WriterOptions,
        progress: &Progress,
    ) -> Result<SyncReport> {
        let started = Instant::now();
        let (loads, target) = finished_loads(at)?;
        let newer: Vec<&Lineage> = loads.iter().filter(|l| l.finish_order().unwrap_or(0) > self.since).collect();
        let whole = match (self.failed.take(), newer.as_slice()) {
            (None, newer) => {
                Lineage::only_bulk(newer, load_id, self.registry).is_some()
                    && at.stored_count(self.registry)? == self.fed
            }
            (Some(e), _) => {
                tracing::warn!(error = %e, "a record of the load could not be indexed as it was written: indexing the load from the store");
                false
            }
        };
        if !whole {
            drop(self.writer);
            return self.layer.sync(at, options, progress);
        }
        tracing::debug!(registry = %self.registry, documents = self.fed, "committing the documents fed by the load");
        self.writer.commit(&serde_json::to_string(&target).unwrap_or_default()).map_err(text_err)?;
        self.writer.finish().map_err(text_err)?;
        self.layer.index.reload().map_err(text_err)?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(mode = "fed", indexed = self.fed, seconds, "full-text index in step with the store");
        Ok(SyncReport { mode: "fed", indexed: self.fed, seconds, docs_per_second: self.fed as f64 / seconds.max(1e-9) })
    }
}

/// What a commit has seen of the store: its sequence, and the last load in the order loads
/// finished (`Lineage::finish_order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub sequence: u64,
    #[serde(alias = "load_id")]
    pub finished: u64,
}

impl Watermark {
    /// Whether a commit that saw `self` has seen the store at `now`: the same finished loads,
    /// and no write the store has not made.
    fn covers(self, now: Watermark) -> bool {
        self.finished == now.finished && self.sequence <= now.sequence
    }
}

/// What a sync did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// `up_to_date`, `caught_up`, `rebuilt`, or `fed` (a bulk load's documents, fed as it
    /// wrote its records: [`BulkFeed`]).
    pub mode: &'static str,
    /// Documents written.
    pub indexed: u64,
    pub seconds: f64,
    pub docs_per_second: f64,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Keyword,
    Date,
}

/// How one registry's records become documents: (value index, index field, the field for an
/// ended record's text, kind).
#[derive(Debug, Default)]
struct Plan {
    fields: Vec<(usize, FieldId, FieldId, Kind)>,
}

/// One registry's share of a sync: records last written by the `newer` loads (every record
/// when None), replacing their documents or (a registry with none yet) only adding.
#[derive(Clone, Copy, Debug)]
struct Pass<'a> {
    registry: Registry,
    newer: Option<&'a std::collections::HashSet<u32>>,
    replace: bool,
}

/// The index and the plans of the five registries.
#[derive(Debug)]
pub struct TextLayer {
    pub index: TextIndex,
    plans: Vec<Plan>,
    district: FieldId,
}

/// The index field of a registry's text field: `citizens.name`. Text fields are per
/// registry, so a query on them needs no registry filter — a filter would turn a pure term
/// intersection, which tantivy prunes with block-max WAND, into a scan of every match.
/// Keyword and date fields are shared (`status`, `district`): they only ever narrow.
pub fn field_name(registry: Registry, field: &str) -> String {
    format!("{registry}.{field}")
}

/// The index field holding the text of *ended* records: `citizens.ended.name`. Current and
/// ended text are apart, so a default search needs no clause excluding ended records (an
/// exclusion would make tantivy score every match instead of pruning).
pub fn ended_field_name(registry: Registry, field: &str) -> String {
    format!("{registry}.ended.{field}")
}

/// The index's fields: every registry's text fields, and the union of keywords and dates.
/// Norms cost a byte a document of the whole index per tantivy field, whether a document has
/// the field or not. So each registry's own name (its first name field) is length-normed and
/// the registries' names share one tantivy field ([`TextSpec::shared`]): the three name
/// fields over 22M documents at 10M citizens cost 1 byte a record, not 3. A registry's other
/// name fields (an entity's legal representative) are not normed: ranked by matching
/// tokens alone, they would cost a byte a record of their own (a field 14% of documents
/// have).
pub fn spec() -> TextSpec {
    let mut spec = TextSpec { keywords: vec![DISTRICT.into()], ..TextSpec::default() };
    for r in Registry::ALL {
        let mut named = false;
        for f in r.schema().fields {
            let name = f.name.to_string();
            match (f.kind, f.search) {
                (k, _) if k.is_date() => push_unique(&mut spec.dates, name),
                // A reference (a licence's holder, a credit record's subject, an entity's
                // legal representative) is a filter answered from the store's relation edges:
                // as a keyword it cost every document a term of its own (see `by_reference`).
                _ if f.link.is_some() => {}
                (_, Search::Keyword) => push_unique(&mut spec.keywords, name),
                (_, Search::Name | Search::Text) => {
                    let grams = if f.search == Search::Name { Grams::UniAndBi } else { Grams::Bi };
                    // Length normalisation (a byte per document of the whole index, per field)
                    // only where it ranks: a full name before longer names holding it. Ended
                    // records' text is found on request, unranked by length.
                    let norms = grams == Grams::UniAndBi && !named;
                    named |= grams == Grams::UniAndBi;
                    for (name, norms) in
                        [(field_name(r, f.search_as), norms), (ended_field_name(r, f.search_as), false)]
                    {
                        match spec.text.iter_mut().find(|t| t.name == name) {
                            Some(t) if grams == Grams::UniAndBi => t.grams = grams,
                            Some(_) => {}
                            None if norms => {
                                match spec.shared.first_mut() {
                                    Some(group) => group.push(name.clone()),
                                    None => spec.shared.push(vec![name.clone()]),
                                }
                                spec.text.push(TextField { name, grams, norms })
                            }
                            None => spec.text.push(TextField { name, grams, norms }),
                        }
                    }
                }
                _ => {}
            }
        }
    }
    spec.shared.retain(|group| group.len() > 1);
    spec
}

fn push_unique(v: &mut Vec<String>, name: String) {
    if !v.contains(&name) {
        v.push(name);
    }
}

/// The registry's searchable text fields (groups counted once), for the API.
pub fn text_fields(registry: Registry) -> impl Iterator<Item = &'static str> + Clone {
    let fields = registry.schema().fields;
    fields.iter().enumerate().filter_map(move |(i, f)| {
        let first = fields[..i].iter().all(|g| g.search_as != f.search_as);
        (matches!(f.search, Search::Text | Search::Name) && first).then_some(f.search_as)
    })
}

/// The registry's filter fields: its keywords and dates, and the district.
pub fn filter_fields(registry: Registry) -> impl Iterator<Item = (&'static str, bool)> {
    let fields = registry.schema().fields.iter().filter_map(|f| match (f.kind, f.search) {
        (k, _) if k.is_date() => Some((f.name, true)),
        (_, Search::Keyword) => Some((f.name, false)),
        _ => None,
    });
    std::iter::once((DISTRICT, false)).chain(fields)
}

/// Whether a stored value was last written by one of the `newer` loads (any value when None).
fn written_by(value: &[u8], newer: Option<&std::collections::HashSet<u32>>) -> Result<bool> {
    let (header, _) = codec::split(value)?;
    Ok(newer.is_none_or(|ids| ids.contains(&header.load_id)))
}

/// The store's finished loads, and the watermark a commit that has seen them all records.
/// The store's log is synced first: what the index commits to having seen must survive a
/// power loss in the store too.
fn finished_loads(at: Reader<'_>) -> Result<(Vec<Lineage>, Watermark)> {
    at.store().sync_wal()?;
    let loads: Vec<Lineage> = at.stored_loads()?.into_iter().filter(|l| l.finished_at.is_some()).collect();
    let finished = loads.iter().filter_map(Lineage::finish_order).max().unwrap_or(0);
    Ok((loads, Watermark { sequence: at.sequence(), finished }))
}

fn text_err(e: jichu_indexes::text::TextError) -> Error {
    Error::Text(e)
}

impl TextLayer {
    /// The index's folder: `text/` beside the store in the data directory.
    pub fn dir_of(store: &Store) -> PathBuf {
        store.path().with_file_name("text")
    }

    /// Opens (or creates) the index beside the store. It may be behind: call [`Self::sync`].
    pub fn open(store: &Store) -> Result<TextLayer> {
        Self::open_in(&Self::dir_of(store))
    }

    /// Opens (or creates) an index in `dir` (benchmarks build side indexes this way).
    pub fn open_in(dir: &Path) -> Result<TextLayer> {
        let index = TextIndex::open(dir, &spec()).map_err(text_err)?;
        let mut plans = Vec::new();
        for r in Registry::ALL {
            let mut plan = Plan::default();
            for (i, f) in r.schema().fields.iter().enumerate() {
                let (kind, name, ended) = match (f.kind, f.search) {
                    (k, _) if k.is_date() => (Kind::Date, f.name.to_string(), f.name.to_string()),
                    _ if f.link.is_some() => continue,
                    (_, Search::Keyword) => (Kind::Keyword, f.name.to_string(), f.name.to_string()),
                    (_, Search::Text | Search::Name) => {
                        (Kind::Text, field_name(r, f.search_as), ended_field_name(r, f.search_as))
                    }
                    _ => continue,
                };
                let field = |n: &str| index.field(n).map_err(text_err);
                plan.fields.push((i, field(&name)?, field(&ended)?, kind));
            }
            plans.push(plan);
        }
        let district = index.field(DISTRICT).map_err(text_err)?;
        Ok(TextLayer { index, plans, district })
    }

    /// What the last commit saw; `None` for a new (or discarded) index.
    pub fn watermark(&self) -> Result<Option<Watermark>> {
        Ok(self.index.payload().map_err(text_err)?.and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// The document of a record.
    pub fn document(&self, w: &TextWriter, record: &Record) -> TextDoc {
        let mut doc = w.doc(record.registry as u8, &record.id, record.ended);
        for &(i, field, ended, kind) in &self.plans[record.registry as usize - 1].fields {
            match (kind, &record.values[i]) {
                (Kind::Text, Some(Value::Text(s))) => doc.text(if record.ended { ended } else { field }, s),
                (Kind::Keyword, Some(Value::Text(s))) => doc.keyword(field, s),
                (Kind::Date, Some(Value::Date(d))) => doc.date(field, d.num_days_from_ce()),
                _ => {}
            }
        }
        if let Some(d) = record.district() {
            doc.keyword(self.district, d);
        }
        doc
    }

    /// Brings the index in step with the store as `at` reads it: re-indexes the records
    /// changed by finished loads it has not seen, or everything when it has no (or an
    /// impossible) watermark. The commit is made visible to later searchers.
    pub fn sync(&self, at: Reader<'_>, options: WriterOptions, progress: &Progress) -> Result<SyncReport> {
        let mut writer = None;
        let report = self.sync_with(&mut writer, at, options, progress)?;
        if let Some(w) = writer {
            w.finish().map_err(text_err)?;
        }
        Ok(report)
    }

    /// [`TextLayer::sync`] with the caller's writer, made when a sync needs one; the caller
    /// finishes it (a running service does so off the publication's path, so that merges do
    /// not hold a publication up, and never keeps it for the next: see `Service::publish`).
    pub fn sync_with(
        &self,
        writer: &mut Option<TextWriter>,
        at: Reader<'_>,
        options: WriterOptions,
        progress: &Progress,
    ) -> Result<SyncReport> {
        let started = Instant::now();
        let (loads, target) = finished_loads(at)?;
        let order = |l: &Lineage| l.finish_order().unwrap_or(0);
        let seen = self.watermark()?;
        if seen.is_some_and(|s| s.covers(target)) {
            return Ok(SyncReport { mode: "up_to_date", ..SyncReport::default() });
        }
        let rebuild = seen.is_none_or(|s| s.sequence > target.sequence || s.finished > target.finished);
        let since = if rebuild { 0 } else { seen.map_or(0, |s| s.finished) };
        let newer: Vec<&Lineage> = loads.iter().filter(|l| order(l) > since).collect();
        let newer_ids: std::collections::HashSet<u32> = newer.iter().map(|l| l.load_id).collect();
        let touched: Vec<Registry> =
            Registry::ALL.into_iter().filter(|r| rebuild || newer.iter().any(|l| l.registry == r.as_str())).collect();
        let writer = match writer {
            Some(w) => w,
            None => writer.insert(self.index.writer(WriterOptions { no_merge: rebuild, ..options }).map_err(text_err)?),
        };
        let mut indexed = 0;
        let mut scanned = 0;
        let total = touched.iter().map(|r| at.stored_count(*r)).sum::<Result<u64>>()?;
        progress.start_counting("full-text index", total);
        for registry in touched {
            // Documents are replaced one by one unless the registry has none (first load).
            let replace = !rebuild && self.index.count_registry(registry as u8).map_err(text_err)? > 0;
            if rebuild {
                writer.delete_registry(registry as u8).map_err(text_err)?;
            }
            // Documents to replace: from the change log; a first load of the registry (often
            // a bulk load, which logs nothing): by a scan.
            let mine: Vec<&Lineage> = newer.iter().copied().filter(|l| l.registry == registry.as_str()).collect();
            let logged = if replace { self.feed_logged(at, writer, registry, &mine)? } else { None };
            indexed += match logged {
                Some(n) => n,
                None => {
                    let pass = Pass { registry, newer: (!rebuild).then_some(&newer_ids), replace };
                    self.feed(at, writer, pass, &mut scanned, progress)?
                }
            };
        }
        progress.finish_counting();
        writer.commit(&serde_json::to_string(&target).unwrap_or_default()).map_err(text_err)?;
        self.index.reload().map_err(text_err)?;
        let seconds = started.elapsed().as_secs_f64();
        let mode = if rebuild { "rebuilt" } else { "caught_up" };
        tracing::info!(mode, indexed, seconds, "full-text index in step with the store");
        Ok(SyncReport { mode, indexed, seconds, docs_per_second: indexed as f64 / seconds.max(1e-9) })
    }

    /// Replaces the documents of the records that `loads` wrote, as the change log lists them
    /// (each record once, as it is now). `None` when one of them has no log (a bulk load): the
    /// caller scans instead.
    fn feed_logged(
        &self,
        at: Reader<'_>,
        writer: &mut TextWriter,
        registry: Registry,
        loads: &[&Lineage],
    ) -> Result<Option<u64>> {
        if loads.iter().any(|l| l.was_bulk()) {
            return Ok(None);
        }
        let mut keys = std::collections::BTreeSet::new();
        for l in loads {
            for key in at.changed_keys(l.load_id, registry) {
                keys.insert(key?);
            }
        }
        let keys: Vec<&str> = keys.iter().filter_map(|k| std::str::from_utf8(k).ok()).collect();
        let mut n = 0;
        // One delete operation for thousands of records: each costs the registry's segments a
        // pass over their uid ordinals, so it is worth it only in bulk.
        for deleted in keys.chunks(DELETES_AT_ONCE) {
            writer.delete_many(registry as u8, deleted).map_err(text_err)?;
            for chunk in deleted.chunks(1024) {
                for (key, value) in chunk.iter().zip(at.get_many_raw(registry, chunk)?) {
                    if let Some(value) = value {
                        let doc = self.document(writer, &codec::decode(registry, key, &value)?);
                        writer.add(doc).map_err(text_err)?;
                        n += 1;
                    }
                }
            }
        }
        Ok(Some(n))
    }

    /// Indexes a registry's records last changed by a load after `since`, by a scan.
    fn feed(
        &self,
        at: Reader<'_>,
        writer: &mut TextWriter,
        Pass { registry, newer, replace }: Pass<'_>,
        scanned: &mut u64,
        progress: &Progress,
    ) -> Result<u64> {
        if replace {
            Self::delete_newer(at, writer, registry, newer)?;
        }
        let mut n = 0;
        for item in at.scan(registry) {
            *scanned += 1;
            if scanned.is_multiple_of(65_536) {
                progress.set_counted(*scanned);
            }
            let (key, value) = item?;
            if !written_by(&value, newer)? {
                continue;
            }
            let key = std::str::from_utf8(&key).map_err(|_| Error::Codec("record key".into()))?;
            let record = codec::decode(registry, key, &value)?;
            let doc = self.document(writer, &record);
            writer.add(doc).map_err(text_err)?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes the documents of a registry's records last changed by one of the `newer` loads
    /// (every record when None), in sets of keys: a scan of the store ahead of the one that
    /// adds their new documents, as a delete removes the documents added before it.
    fn delete_newer(
        at: Reader<'_>,
        writer: &mut TextWriter,
        registry: Registry,
        newer: Option<&std::collections::HashSet<u32>>,
    ) -> Result<()> {
        let mut keys: Vec<String> = Vec::new();
        for item in at.scan(registry) {
            let (key, value) = item?;
            if !written_by(&value, newer)? {
                continue;
            }
            keys.push(String::from_utf8(key.to_vec()).map_err(|_| Error::Codec("record key".into()))?);
            if keys.len() == DELETES_AT_ONCE {
                writer.delete_many(registry as u8, &keys).map_err(text_err)?;
                keys.clear();
            }
        }
        writer.delete_many(registry as u8, &keys).map_err(text_err)
    }

    /// A feed for the documents of a bulk load into `registry` (an empty registry), to be
    /// given each record as the load writes it: the load's rows are then indexed once, from
    /// what the load holds, instead of being read back from the store and decompressed after
    /// it. None when the index is not in step with the store as `at` reads it (the load is
    /// then indexed by [`Self::sync`] after it), or already holds documents of `registry`.
    pub fn bulk_feed(
        &self,
        at: Reader<'_>,
        registry: Registry,
        options: WriterOptions,
    ) -> Result<Option<BulkFeed<'_>>> {
        let (_, now) = finished_loads(at)?;
        let seen = self.watermark()?;
        let in_step = match seen {
            Some(s) => s.covers(now),
            // A new index is in step with a store that has finished no load.
            None => now.finished == 0 && self.index.num_docs() == 0,
        };
        if !in_step
            || at.stored_count(registry)? > 0
            || self.index.count_registry(registry as u8).map_err(text_err)? > 0
        {
            return Ok(None);
        }
        // A first index is built as a rebuild is: segments are not merged while it grows.
        let writer = self.index.writer(WriterOptions { no_merge: seen.is_none(), ..options }).map_err(text_err)?;
        Ok(Some(BulkFeed {
            layer: self,
            writer,
            registry,
            since: seen.map_or(0, |s| s.finished),
            fed: 0,
            failed: None,
        }))
    }

    /// Discards the index and builds it anew from the store (`jichu reindex`).
    pub fn rebuild(store: &Store, options: WriterOptions, progress: &Progress) -> Result<(TextLayer, SyncReport)> {
        let dir = Self::dir_of(store);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        let layer = TextLayer::open(store)?;
        let report = layer.sync(store.reader(), options, progress)?;
        Ok((layer, report))
    }
}
