//! `jichu load`: a department extract into a registry, with every row accounted for.
//!
//! 1. [`read`]: rows are read, mapped, validated and encoded in parallel; bad rows go to the
//!    rejects file in line order; good rows go to an external [`sort`] by key.
//! 2. [`apply`]: the sorted stream is grouped by key (duplicate conflicts found here) and
//!    written — by SST ingestion into an empty registry, or by atomic write batches.
//! 3. Conflicting rows are fetched again from the files for the rejects file; the report is
//!    stored with the load's lineage entry.

mod apply;
pub(crate) mod golden;
mod payload;
mod progress;
mod read;
pub mod recompute;
mod sort;
mod sst;
pub mod steward;

pub use progress::{Progress, ProgressStatus};

use crate::error::{Error, Result};
use crate::model::Registry;
use crate::store::Store;
use jichu_indexes::text::WriterOptions;
use jichu_ingest::{KeyKind, LoadReport, Mode, Reason, Reject, RejectWriter, RowMapper, Source, Spec};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

/// How a load runs; defaults in one place.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Where the rejects CSV goes; default `<work_dir>/rejects/load-<id>.csv`.
    pub rejects: Option<PathBuf>,
    /// Scratch space for sort runs and SST files (under the data directory).
    pub work_dir: PathBuf,
    /// Memory for the external sort, per sorter.
    pub sort_budget: usize,
    /// Worker threads mapping and validating rows.
    pub threads: usize,
    pub progress: Progress,
    /// Credit codes that fail their check but are known genuine pilot codes (canonical).
    pub pilot_codes: Arc<HashSet<String>>,
    /// The load id reserved when the load was queued (a running server's loads); a new one
    /// otherwise.
    pub load_id: Option<u32>,
    /// Stops the load: it is undone and returns [`Error::Cancelled`].
    pub cancel: Cancel,
    /// The survivorship rules' file, read when the load starts (absent: the defaults).
    pub survivorship: Option<PathBuf>,
    /// For benchmarks only (see `Writer::without_changes`): false loads without history and
    /// feed entries, the baseline their cost is measured against.
    #[doc(hidden)]
    pub record_changes: bool,
    /// [`load_indexed`]: a bulk load feeds the full-text index as it writes (true), or the
    /// index reads the load back from the store after it (false: how benchmarks time the
    /// store alone).
    pub index_as_written: bool,
}

/// A running load's stop switch. A stop asked before the load commits (records itself
/// finished) is honoured at its next batch; once it has committed, a stop is refused, so a
/// load is never both "cancelled" and published.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicU8>);

const RUNNING: u8 = 0;
const STOP: u8 = 1;
const COMMITTED: u8 = 2;

impl Cancel {
    /// Asks the load to stop; false when it has already committed.
    pub fn request(&self) -> bool {
        match self.0.compare_exchange(RUNNING, STOP, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => true,
            Err(state) => state == STOP,
        }
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) == STOP
    }

    /// The point of no return: true when no stop was asked first.
    fn commit(&self) -> bool {
        match self.0.compare_exchange(RUNNING, COMMITTED, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => true,
            Err(state) => state == COMMITTED,
        }
    }
}

impl LoadOptions {
    pub fn new(work_dir: &Path) -> Self {
        LoadOptions {
            rejects: None,
            work_dir: work_dir.into(),
            sort_budget: 512 << 20,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            progress: Progress::quiet(),
            pilot_codes: Arc::default(),
            load_id: None,
            cancel: Cancel::default(),
            survivorship: None,
            record_changes: true,
            index_as_written: true,
        }
    }
}

/// What a load carries between its stages.
pub(crate) struct LoadState {
    pub report: LoadReport,
    /// `(tag, message)` of every row whose key conflicts with another row's.
    pub conflicts: Vec<(u64, String)>,
    /// The source whose absent records a snapshot load ends.
    pub snapshot_source: Option<String>,
    /// Keys of rows rejected in a snapshot load: present in the extract, so never ended
    /// (memory grows with rejected rows only).
    pub rejected_keys: BTreeSet<Vec<u8>>,
    pub progress: Progress,
    pub cancel: Cancel,
    /// Merges rows into records other sources also supply.
    pub merger: golden::Merger,
}

impl LoadState {
    /// Stops the load if it was cancelled (checked between batches).
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.requested() { Err(Error::Cancelled) } else { Ok(()) }
    }
}

/// A sort tag: file index and line, so that equal keys keep input order.
fn tag(file: usize, line: u64) -> u64 {
    ((file as u64) << 48) | line
}
pub(crate) fn line_of(tag: u64) -> u64 {
    tag & ((1 << 48) - 1)
}
fn file_of(tag: u64) -> usize {
    (tag >> 48) as usize
}
/// A row's place for messages: its line, prefixed with its file when a load has several.
pub(crate) fn place_of(tag: u64, files: &[String]) -> String {
    match files {
        [_] | [] => line_of(tag).to_string(),
        _ => format!("{}:{}", files.get(file_of(tag)).map_or("?", String::as_str), line_of(tag)),
    }
}

/// A load as `jichu load` runs it: [`load`] into the store and the full-text index brought in
/// step — fed as the load writes when it takes the bulk path into an empty registry
/// ([`crate::text::BulkFeed`]), else synced from the store after it. Such a load feeds its
/// registry's spatial point layer too, saved to its file after the load
/// ([`crate::spatial::BulkFeed`]). `text_index` and `spatial_index` in the report's stages
/// are each index's own time after the store's write (its commit, its file); rows/s counts
/// all.
pub fn load_indexed(
    store: &Store,
    spec: &Spec,
    spec_path: &Path,
    files: &[PathBuf],
    opts: &LoadOptions,
    text: WriterOptions,
) -> Result<(LoadReport, crate::text::SyncReport)> {
    let layer = crate::text::TextLayer::open(store)?;
    // A bulk load into an empty registry hands its records to the index as it writes them.
    // The index's writer then runs beside the load's sorter, whose last run (up to half its
    // budget) is held until the load ends: the writer gives up that much of its memory, so
    // that the two together hold about what each held alone, one after the other.
    let beside_the_load = WriterOptions {
        memory_bytes: text.memory_bytes.saturating_sub(opts.sort_budget / 2).max(text.memory_bytes / 4),
        ..text
    };
    let registry = spec.registry.parse::<Registry>().ok().filter(|_| opts.index_as_written);
    let (mut words, mut places) = match registry {
        Some(r) => {
            (layer.bulk_feed(store.reader(), r, beside_the_load)?, crate::spatial::BulkFeed::start(store.reader(), r)?)
        }
        None => (None, None),
    };
    let mut report = if words.is_some() || places.is_some() {
        let mut record = |k: &[u8], v: &[u8]| {
            if let Some(f) = words.as_mut() {
                f.record(k, v);
            }
            if let Some(f) = places.as_mut() {
                f.record(k, v);
            }
        };
        load_feeding(store, spec, spec_path, files, opts, Some(&mut record))?
    } else {
        load(store, spec, spec_path, files, opts)?
    };
    let synced = match words {
        Some(feed) => feed.finish(store.reader(), report.load_id as u32, text, &opts.progress)?,
        None => layer.sync(store.reader(), text, &opts.progress)?,
    };
    report.stage_seconds.insert("text_index".into(), synced.seconds);
    report.seconds += synced.seconds;
    if let Some(feed) = places {
        save_fed_layer(feed, store, &mut report);
    }
    report.rows_per_second = report.read as f64 / report.seconds.max(1e-9);
    Ok((report, synced))
}

/// Saves the spatial layer a load fed to its file (the next open, or the publication, maps
/// it), timed in the load's report as its `spatial_index` stage and counted in its rows/s.
pub fn save_fed_layer(feed: crate::spatial::BulkFeed, store: &Store, report: &mut LoadReport) {
    let t = std::time::Instant::now();
    feed.finish(store.reader(), report.load_id as u32);
    let seconds = t.elapsed().as_secs_f64();
    report.stage_seconds.insert("spatial_index".into(), seconds);
    report.seconds += seconds;
    report.rows_per_second = report.read as f64 / report.seconds.max(1e-9);
}

/// The registry a spec names, and a source and row mapper per file: everything `jichu load`
/// checks before it reads a row (registry, fields, headers). A running server makes the same
/// checks when a load is submitted, before queueing it.
pub fn check(spec: &Spec, spec_path: &Path, files: &[PathBuf], opts: &LoadOptions) -> Result<Checked> {
    let registry: Registry =
        spec.registry.parse().map_err(|m| Error::Invalid(format!("mapping spec {}: {m}", spec_path.display())))?;
    let schema = registry.schema();
    let defs = schema.defs();
    let key = match spec.key_kind {
        KeyKind::Canonical => schema.key.def(),
        KeyKind::OrganisationCode if registry == Registry::Entities => crate::model::organisation_code_key(),
        KeyKind::OrganisationCode => {
            return Err(Error::Invalid(format!(
                "mapping spec {}: key_kind = \"organisation_code\" is for entities",
                spec_path.display()
            )));
        }
    };
    let mut sources = Vec::with_capacity(files.len());
    for f in files {
        let source = Source::open(f, spec)?;
        let mapper =
            RowMapper::new(spec, key, &defs, source.headers(), spec_path)?.with_allowed_ids(opts.pilot_codes.clone());
        sources.push((source, Arc::new(mapper)));
    }
    Ok(Checked { registry, sources })
}

/// A spec and its files, checked ([`check`]).
#[derive(Debug)]
pub struct Checked {
    pub registry: Registry,
    sources: Vec<(Source, Arc<RowMapper>)>,
}

/// Loads `files` (all in the shape `spec` describes) into the store. A load that fails or is
/// cancelled part-way is undone before this returns: the store is as it was before.
pub fn load(store: &Store, spec: &Spec, spec_path: &Path, files: &[PathBuf], opts: &LoadOptions) -> Result<LoadReport> {
    load_feeding(store, spec, spec_path, files, opts, None)
}

/// Receives each record a bulk load writes — its key and the value the store will hold — in
/// key order, before the load commits (a load that fails or is cancelled after has written
/// nothing): how [`load_indexed`] indexes a registry's first load without reading it back.
pub type Feed<'a> = &'a mut dyn FnMut(&[u8], &[u8]);

/// [`load`], handing the records to `feed` when the load takes the bulk path.
pub fn load_feeding(
    store: &Store,
    spec: &Spec,
    spec_path: &Path,
    files: &[PathBuf],
    opts: &LoadOptions,
    feed: Option<Feed<'_>>,
) -> Result<LoadReport> {
    // Every file's header is checked against the spec before any row is loaded.
    let Checked { registry, sources } = check(spec, spec_path, files, opts)?;
    let mut writer = store.writer();
    if !opts.record_changes {
        writer.without_changes();
    }
    // Lineage names the files, not the loader's folders.
    let base_names = files
        .iter()
        .map(|f| f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into_owned()))
        .collect();
    let load_id = writer.begin_load(opts.load_id, registry, &spec.source, base_names, spec.mode.as_str())?;
    let tmp = opts.work_dir.join("tmp").join(format!("load-{load_id}"));
    let result = run(&mut writer, registry, sources, spec, files, load_id, &tmp, opts, feed);
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = &result {
        let reason = match e {
            Error::Cancelled => "cancelled".to_string(),
            e => format!("failed: {e}"),
        };
        if let Err(undo) = writer.undo(load_id, &reason) {
            tracing::error!(load_id, error = %undo, "could not undo the load; the next open will");
            return Err(Error::UndoFailed { load_id, failure: reason, undo: undo.to_string() });
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    writer: &mut crate::store::Writer<'_>,
    registry: Registry,
    sources: Vec<(Source, Arc<RowMapper>)>,
    spec: &Spec,
    files: &[PathBuf],
    load_id: u32,
    tmp: &Path,
    opts: &LoadOptions,
    feed: Option<Feed<'_>>,
) -> Result<LoadReport> {
    let store = writer.store();
    let schema = registry.schema();
    let started = Instant::now();
    let file_names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let rejects_path =
        opts.rejects.clone().unwrap_or_else(|| opts.work_dir.join("rejects").join(format!("load-{load_id}.csv")));
    if let Some(dir) = rejects_path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let file = std::fs::File::create(&rejects_path).map_err(Error::io(&rejects_path))?;
    let mut rejects = RejectWriter::new(BufWriter::new(file)).map_err(Error::io(&rejects_path))?;

    let progress = opts.progress.clone();
    progress.start(registry.as_str(), sources.iter().map(|(s, _)| s.progress()).collect());
    let mut state = LoadState {
        report: jichu_ingest::LoadReport {
            load_id: u64::from(load_id),
            registry: registry.to_string(),
            source: spec.source.clone(),
            files: file_names.clone(),
            mode: spec.mode.as_str().into(),
            ..Default::default()
        },
        conflicts: Vec::new(),
        snapshot_source: (spec.mode == Mode::Snapshot).then(|| spec.source.clone()),
        rejected_keys: BTreeSet::new(),
        progress: progress.clone(),
        cancel: opts.cancel.clone(),
        merger: golden::Merger {
            rules: match &opts.survivorship {
                Some(path) => crate::golden::Rules::load(path)?,
                None => crate::golden::Rules::default(),
            },
            registry,
            load_id,
            source: spec.source.clone(),
            opened: Default::default(),
            coding: store.value_coding(),
        },
    };
    let multi_file = files.len() > 1;
    let mut sorter = sort::Sorter::new(tmp, "records", opts.sort_budget);
    let mappers: Vec<Arc<RowMapper>> = sources.iter().map(|(_, m)| m.clone()).collect();
    // Rows keyed by an organisation code attach to the entity whose credit code embeds it.
    let by_organisation_code = |code: &str| -> std::result::Result<String, String> {
        match store.reader().entities_by_organisation_code(code) {
            Ok(found) => match found.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(format!("no entity's credit code embeds organisation code {code}")),
                many => Err(format!(
                    "{} entities' credit codes embed organisation code {code}: {}",
                    many.len(),
                    many.join(", ")
                )),
            },
            Err(e) => Err(format!("organisation code {code} could not be resolved: {e}")),
        }
    };
    let resolve: Option<&read::Resolve<'_>> =
        (spec.key_kind == KeyKind::OrganisationCode).then_some(&by_organisation_code as &read::Resolve<'_>);
    read::read_all(sources, schema, load_id, store.value_coding(), opts.threads, resolve, |file, outcomes| {
        state.check_cancelled()?;
        state.report.read += outcomes.len() as u64;
        for outcome in outcomes {
            match outcome {
                read::Outcome::Good(p) => {
                    state.report.flagged_for_review += u64::from(p.needs_review);
                    sorter.push(&p.key, tag(file, p.line), &p.payload)?;
                }
                read::Outcome::Bad(mut r) => {
                    if let (Some(_), Some(key)) = (&state.snapshot_source, r.key.take()) {
                        state.rejected_keys.insert(key.into_bytes());
                    }
                    if multi_file {
                        r.message = format!("{}: {}", file_names[file], r.message);
                    }
                    state.report.count_reject(r.reason);
                    rejects.write(&r).map_err(Error::io(&rejects_path))?;
                }
            }
        }
        state.progress.set_read(state.report.read);
        Ok(())
    })?;
    let sorted = sorter.finish()?;
    let mut t = state.report.stage("read", started);
    state.progress.stage("writing");
    if store.count(registry) == 0 {
        state.report.path = "bulk".into();
        apply::bulk(writer, registry, sorted, tmp, opts.sort_budget / 2, opts.threads, &mut state, feed)?;
    } else {
        state.report.path = "batch".into();
        apply::batch(writer, registry, sorted, tmp, opts.sort_budget / 2, opts.threads, &mut state)?;
    }
    t = state.report.stage("merge_write", t);
    let ingest = state.report.stage_seconds.get("ingest").copied().unwrap_or(0.0);
    if let Some(m) = state.report.stage_seconds.get_mut("merge_write") {
        *m -= ingest;
    }
    write_conflicts(files, spec, &mappers, &state.conflicts, multi_file, &mut state.report, &mut rejects).map_err(
        |e| match e {
            Error::Io { source, .. } => Error::io(&rejects_path)(source),
            e => e,
        },
    )?;
    rejects.finish().map_err(Error::io(&rejects_path))?;
    state.report.stage("conflicts", t);
    if !opts.cancel.commit() {
        return Err(Error::Cancelled);
    }
    state.report.review_items_opened = state.merger.opened.get();
    let report = &mut state.report;
    report.accepted = report.read - report.rejected;
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.read as f64 / report.seconds.max(1e-9);
    let mut report = state.report;
    report.files = file_names;
    let mut json = serde_json::to_value(&report).map_err(|e| Error::Codec(e.to_string()))?;
    json["rejects_file"] = serde_json::Value::String(rejects_path.display().to_string());
    writer.finish_load(load_id, json)?;
    progress.finish();
    Ok(report)
}

/// Reads the files again for the raw text of conflicting rows (rare), and rejects them.
fn write_conflicts(
    files: &[PathBuf],
    spec: &Spec,
    mappers: &[Arc<RowMapper>],
    conflicts: &[(u64, String)],
    multi_file: bool,
    report: &mut LoadReport,
    rejects: &mut RejectWriter<BufWriter<std::fs::File>>,
) -> Result<()> {
    let mut wanted: HashMap<u64, &str> = conflicts.iter().map(|(t, m)| (*t, m.as_str())).collect();
    for (file, path) in files.iter().enumerate() {
        if !wanted.keys().any(|t| file_of(*t) == file) {
            continue;
        }
        let mut source = Source::open(path, spec)?;
        let mut rows = Vec::new();
        let mut found = Vec::new();
        while source.next_batch(4096, &mut rows)? {
            for row in &rows {
                if let Some(message) = wanted.remove(&tag(file, row.line)) {
                    let message =
                        if multi_file { format!("{}: {message}", path.display()) } else { message.to_string() };
                    found.push(Reject {
                        line: row.line,
                        reason: Reason::DuplicateConflict,
                        message,
                        raw: mappers[file].raw_text(&row.record),
                        key: None,
                    });
                }
            }
        }
        found.sort_by_key(|r| r.line);
        for r in found {
            report.count_reject(r.reason);
            rejects.write(&r).map_err(Error::io(path))?;
        }
    }
    Ok(())
}
