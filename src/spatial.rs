//! The spatial layer: `jichu-indexes`' point and polygon indexes over the store's current
//! records (ended ones are left out), kept in step with published loads.
//!
//! Built from a snapshot of the store: points read in place from the records' `location`
//! ([`crate::store::codec::location`]), parcels by decoding their records;
//! the three layers build in parallel. Ids are positions in key order, so a key finds its id
//! by binary search. A finished load's changes are applied without a rebuild
//! ([`SpatialIndex::apply`]): the keys it wrote (its change log) are masked in the packed base
//! and their new positions added to a small rstar layer ([`LayeredPoints`]); a layer whose
//! changes pass [`FOLD_FRACTION`] of its base is rebuilt instead. Each layer's packed base is
//! saved beside the store (`spatial/citizens.idx`, `entities.idx`, `parcels.idx`) with the
//! last load it reflects, and served from that file, memory-mapped: a start maps each layer's
//! file and applies the loads finished since, as a running server does, instead of rebuilding
//! it, and a base costs the process no heap — the kernel keeps what queries touch in the page
//! cache, and can take it back.

use crate::error::Result;
use crate::model::{Lineage, Registry};
use crate::store::{Reader, Store, codec};
use jichu_indexes::spatial::grid;
use jichu_indexes::spatial::keys::{KeysBuilder, PushError, SortedKeys, SpillingKeys};
use jichu_indexes::spatial::persist::{self, Mapped, Packed};
use jichu_indexes::spatial::{LayeredPoints, LayeredPolygons, PointIndex, PolygonBuilder, PolygonIndex, SpilledPoints};
use jichu_ingest::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A layer whose changed part passes this fraction of its base (and [`FOLD_MIN`] entries) is
/// rebuilt from the store rather than layered further.
pub const FOLD_FRACTION: f64 = 0.05;
pub const FOLD_MIN: usize = 50_000;

/// Set when the server stops: a build from the store that sees it gives up with
/// [`crate::Error::Stopping`] before the layer it builds saves its file (a fold of 100M points
/// read the store for ~74 s, and a stop waited for it); a layer finished before is kept. The
/// flag is looked at while records are read and while a point layer's file is sorted and
/// written (its external sort, after the read: a stop 5 s into an 8.2 s fold at 10M had
/// waited 3.5 s for it). A layer not rebuilt is built or stepped at the next start.
pub type Stop = AtomicBool;

/// For builds no stop interrupts (tools, benchmarks, a publication's step).
static NEVER: Stop = AtomicBool::new(false);

/// The records a build takes (located ones, for a point layer) between two looks at the stop
/// flag.
const STOP_EVERY: usize = 1 << 16;

/// Yields the items of a scan, then `Err(Stopping)` once `stop` is set.
fn until_stopped<'a, T: 'a>(
    items: impl Iterator<Item = Result<T>> + 'a,
    stop: &'a Stop,
) -> impl Iterator<Item = Result<T>> + 'a {
    items.enumerate().map(move |(n, item)| {
        if n % STOP_EVERY == 0 && stop.load(Ordering::Relaxed) { Err(crate::Error::Stopping) } else { item }
    })
}

fn push_key(keys: &mut KeysBuilder, key: &[u8]) -> Result<u32> {
    keys.push(key).map_err(|e| crate::Error::Internal(format!("spatial layer keys: {e:?}")))
}

/// A base key as text (keys are the store's keys: UTF-8).
fn base_key(keys: &SortedKeys, id: u32) -> Cow<'static, str> {
    Cow::Owned(String::from_utf8(keys.get(id)).unwrap_or_default())
}

/// Keys of entries added after a base was built: ids from the base's length on.
#[derive(Clone, Debug, Default)]
struct Added<P> {
    keys: Vec<Box<str>>,
    /// The current added entry of a key: its id and what was added.
    by_key: HashMap<Box<str>, (u32, P)>,
}

/// Points of one registry and the keys of their records.
#[derive(Clone, Debug)]
pub struct PointLayer {
    pub index: LayeredPoints,
    keys: Arc<SortedKeys>,
    added: Arc<Added<[f64; 2]>>,
}

impl PointLayer {
    fn new(index: PointIndex, keys: SortedKeys) -> PointLayer {
        PointLayer { index: LayeredPoints::new(index), keys: Arc::new(keys), added: Arc::default() }
    }

    /// The key of a hit's id.
    pub fn key(&self, id: u32) -> Cow<'_, str> {
        match (id as usize).checked_sub(self.keys.len()) {
            None => base_key(&self.keys, id),
            Some(i) => Cow::Borrowed(self.added.keys.get(i).map_or("", |k| k)),
        }
    }

    /// A new layer with each key moved to its new point (None: no longer located).
    fn changed(&self, changes: Vec<(String, Option<[f64; 2]>)>) -> PointLayer {
        let mut added = Added::clone(&self.added);
        let (mut mask, mut remove, mut add) = (Vec::new(), Vec::new(), Vec::new());
        for (key, point) in changes {
            if let Some(id) = self.keys.find(key.as_bytes()) {
                mask.push(id);
            }
            if let Some((id, p)) = added.by_key.remove(key.as_str()) {
                remove.push((p, id));
            }
            if let Some(p) = point {
                let id = (self.keys.len() + added.keys.len()) as u32;
                added.keys.push(key.clone().into());
                added.by_key.insert(key.into(), (id, p));
                add.push((p, id));
            }
        }
        PointLayer { index: self.index.changed(&mask, &remove, &add), keys: self.keys.clone(), added: Arc::new(added) }
    }
}

fn due(changed: usize, base: usize) -> bool {
    changed >= FOLD_MIN && changed as f64 > FOLD_FRACTION * base as f64
}

/// Parcels' polygons and their keys.
#[derive(Clone, Debug)]
pub struct PolygonLayer {
    pub index: LayeredPolygons,
    keys: Arc<SortedKeys>,
    added: Arc<Added<()>>,
}

impl PolygonLayer {
    fn new(index: PolygonIndex, keys: SortedKeys) -> PolygonLayer {
        PolygonLayer { index: LayeredPolygons::new(index), keys: Arc::new(keys), added: Arc::default() }
    }

    pub fn key(&self, id: u32) -> Cow<'_, str> {
        match (id as usize).checked_sub(self.keys.len()) {
            None => base_key(&self.keys, id),
            Some(i) => Cow::Borrowed(self.added.keys.get(i).map_or("", |k| k)),
        }
    }

    fn changed(&self, changes: Vec<(String, Option<geo::MultiPolygon<f64>>)>) -> PolygonLayer {
        let mut added = Added::clone(&self.added);
        let (mut mask, mut remove, mut add) = (Vec::new(), Vec::new(), Vec::new());
        for (key, shape) in changes {
            if let Some(id) = self.keys.find(key.as_bytes()) {
                mask.push(id);
            }
            if let Some((id, ())) = added.by_key.remove(key.as_str()) {
                remove.push(id);
            }
            if let Some(g) = shape {
                let id = (self.keys.len() + added.keys.len()) as u32;
                added.keys.push(key.clone().into());
                added.by_key.insert(key.into(), (id, ()));
                add.push((g, id));
            }
        }
        PolygonLayer { index: self.index.changed(&mask, &remove, add), keys: self.keys.clone(), added: Arc::new(added) }
    }
}

#[derive(Clone, Debug)]
pub struct SpatialIndex {
    pub citizens: PointLayer,
    pub entities: PointLayer,
    pub parcels: PolygonLayer,
    /// The last load it reflects, in the order loads finished (`Lineage::finish_order`).
    pub finished: u64,
    /// Seconds spent building (or reading) the index.
    pub build_seconds: f64,
    /// Every layer was mapped from its saved file rather than built from the store.
    pub from_file: bool,
    /// Keys that loads newer than a mapped file changed, applied over it when it was opened.
    pub applied_at_open: usize,
}

fn point_layer(at: Reader<'_>, registry: Registry, stop: &Stop) -> Result<PointLayer> {
    let mut keys = KeysBuilder::default();
    // Sized once from the registry's count (points are at most that many): no doubling, no
    // copy of a vector of tens of millions of points while it grows.
    let count = usize::try_from(at.stored_count(registry)?).unwrap_or(0);
    let (mut points, mut ids) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for item in until_stopped(at.points(registry), stop) {
        let (k, lon, lat) = item?;
        points.push(grid::point([lon, lat]));
        ids.push(push_key(&mut keys, &k)?);
    }
    Ok(PointLayer::new(PointIndex::from_parts(points, ids), keys.finish()))
}

/// Bytes of sort entries a layer built to its file holds at once (16 bytes a point): the
/// rest of its points wait in sorted runs in a scratch file.
const SORT_BUDGET: usize = 64 << 20;

/// A point layer built straight to its file and served from it: its keys and points go to
/// scratch files as they are read ([`SpillingKeys`], [`SpilledPoints`]), and its tree is
/// written by an external sort along the curve ([`PointIndex::write_spilled`]), so the build
/// holds [`SORT_BUDGET`] and about a byte a point, where building it in memory first held
/// about 28 bytes a point (the built tree and its keys). None when the files could not be
/// written or mapped (logged): the caller builds the layer in memory instead.
fn point_layer_saved(
    at: Reader<'_>,
    registry: Registry,
    path: &Path,
    mark: u64,
    stop: &Stop,
) -> Result<Option<PointLayer>> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "could not build the spatial layer {} in its file: building it in memory", path.display());
        Ok(None)
    };
    let mut spilled = match Spilled::new(path) {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    for item in until_stopped(at.points(registry), stop) {
        let (k, lon, lat) = item?;
        match spilled.push(&k, lon, lat) {
            Ok(()) => {}
            Err(Unspilled::Io(e)) => return failed(&e),
            Err(Unspilled::Keys(e)) => return Err(crate::Error::Internal(format!("spatial layer keys: {e:?}"))),
        }
    }
    spilled.write(path, mark, stop)
}

/// A point layer on its way to its file: its keys and points moved out to scratch files
/// beside it as they come, in key order (a build from the store, or a bulk load feeding it).
struct Spilled {
    keys: SpillingKeys,
    points: SpilledPoints,
    runs: std::fs::File,
}

/// Why a point could not be taken.
#[derive(Debug)]
enum Unspilled {
    Io(std::io::Error),
    Keys(PushError),
}

impl std::fmt::Display for Unspilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unspilled::Io(e) => write!(f, "{e}"),
            Unspilled::Keys(e) => write!(f, "spatial layer keys: {e:?}"),
        }
    }
}

impl Spilled {
    /// Scratch files in the directory of the layer's file `path` (removed when dropped).
    fn new(path: &Path) -> std::io::Result<Spilled> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let scratch = || tempfile::tempfile_in(dir);
        Ok(Spilled { keys: SpillingKeys::new(scratch()?), points: SpilledPoints::new(scratch()?), runs: scratch()? })
    }

    fn push(&mut self, key: &[u8], lon: f64, lat: f64) -> std::result::Result<(), Unspilled> {
        self.points.push(grid::point([lon, lat])).map_err(Unspilled::Io)?;
        match self.keys.push(key) {
            Ok(_) => Ok(()),
            Err(PushError::Spill(kind)) => Err(Unspilled::Io(kind.into())),
            Err(e) => Err(Unspilled::Keys(e)),
        }
    }

    /// Sorts the points along the curve into the layer's file ([`written`]).
    fn write(self, path: &Path, mark: u64, stop: &Stop) -> Result<Option<PointLayer>> {
        let Spilled { keys, points, runs } = self;
        written(path, mark, stop, |mut w| {
            PointIndex::write_spilled(points, runs, SORT_BUDGET, stop, &mut w)?;
            keys.write(&mut w)
        })
    }
}

/// A point layer fed by a bulk load into an empty registry as it writes its records
/// ([`crate::load::Feed`]), and saved to its file once the load has finished, marked with the
/// load's place in the order loads finished: the next open maps that file instead of reading
/// every record back from the store to build it. Its points go to scratch files as they come
/// ([`Spilled`]). The parcels' layer is not fed: its shapes would be held in the heap beside
/// the load (0.5 GiB more at the peak of a 100M run's parcels load, for no time saved).
pub struct BulkFeed {
    registry: Registry,
    path: PathBuf,
    spilled: Spilled,
    /// The last load of the registry finished when the feed began.
    since: u64,
    /// Records fed (located or not).
    fed: u64,
    failed: Option<String>,
}

impl std::fmt::Debug for BulkFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkFeed").field("registry", &self.registry).field("fed", &self.fed).finish_non_exhaustive()
    }
}

impl BulkFeed {
    /// A feed for a load into `registry` when it has a point layer and holds no record (a
    /// load into it takes the bulk path); None otherwise, or when its scratch files cannot be
    /// made (logged: the layer is built from the store when next opened).
    pub fn start(at: Reader<'_>, registry: Registry) -> Result<Option<BulkFeed>> {
        if !matches!(registry, Registry::Citizens | Registry::Entities) || at.stored_count(registry)? > 0 {
            return Ok(None);
        }
        let dir = SpatialIndex::dir_of(at.store());
        let path = layer_file(&dir, registry);
        let spilled = match std::fs::create_dir_all(&dir).and_then(|()| Spilled::new(&path)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not feed the spatial layer {} from the load", path.display());
                return Ok(None);
            }
        };
        let since = loads_after(&at.stored_loads()?, registry, 0).iter().filter_map(|l| l.finish_order()).max();
        let since = since.unwrap_or(0);
        Ok(Some(BulkFeed { registry, path, spilled, since, fed: 0, failed: None }))
    }

    /// Takes a record as the store will hold it (its key and stored value).
    pub fn record(&mut self, key: &[u8], value: &[u8]) {
        self.fed += 1;
        if self.failed.is_some() {
            return;
        }
        let taken = match codec::location(self.registry, value) {
            Ok(Some((lon, lat))) => self.spilled.push(key, lon, lat).map_err(|e| e.to_string()),
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        self.failed = taken.err();
    }

    /// Saves the layer fed when the one load of its registry finished since the feed began is
    /// `load_id`, a bulk load that wrote every record fed; otherwise (a load that took another
    /// path, another load in between, a record that could not be taken, a save that failed:
    /// logged) drops it, and the layer is built from the store when next opened. The load is
    /// written either way. True when it was saved.
    pub fn finish(self, at: Reader<'_>, load_id: u32) -> bool {
        self.save(at, load_id).unwrap_or_else(|e| {
            tracing::warn!(load_id, error = %e, "could not save the spatial layer the load fed");
            false
        })
    }

    fn save(self, at: Reader<'_>, load_id: u32) -> Result<bool> {
        if let Some(e) = &self.failed {
            tracing::warn!(error = %e, "a record of the load could not feed the spatial layer: it is built from the store");
            return Ok(false);
        }
        let loads = at.stored_loads()?;
        let newer = loads_after(&loads, self.registry, self.since);
        let Some(mark) = Lineage::only_bulk(&newer, load_id, self.registry).and_then(Lineage::finish_order) else {
            return Ok(false);
        };
        if at.stored_count(self.registry)? != self.fed {
            return Ok(false);
        }
        tracing::debug!(registry = %self.registry, "saving the spatial layer fed by the load");
        let saved = self.spilled.write(&self.path, mark, &NEVER)?.is_some();
        tracing::info!(registry = %self.registry, records = self.fed, saved, "spatial layer fed by the load");
        Ok(saved)
    }
}

/// Writes a layer's file with `body` and maps it: None when it could not be written or
/// mapped (logged), or when another save of the file carried another mark;
/// `Err(Stopping)` when the write failed with `stop` set (a build that gave up on it).
fn written<L: Persisted>(
    path: &Path,
    mark: u64,
    stop: &Stop,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<Option<L>> {
    match persist::save(path, L::MAGIC, mark, body).and_then(|()| map_layer::<L>(path)) {
        // Two saves of one mark are of one store state; another mark is another layer.
        Ok((m, layer)) if m == mark => Ok(Some(layer)),
        Ok(_) => Ok(None),
        Err(_) if stop.load(Ordering::Relaxed) => Err(crate::Error::Stopping),
        Err(e) => {
            tracing::warn!(error = %e, "could not build the spatial layer {} in its file: building it in memory", path.display());
            Ok(None)
        }
    }
}

/// A parcel's current geometry (None when ended or without one).
fn parcel_shape(value: &[u8]) -> Result<Option<geo::MultiPolygon<f64>>> {
    let field = Registry::Parcels.schema().field_index("geometry").unwrap_or(usize::MAX);
    let record = codec::decode(Registry::Parcels, "", value)?;
    if record.ended {
        return Ok(None);
    }
    Ok(match record.values.into_iter().nth(field) {
        Some(Some(Value::Geometry(g))) => Some(g),
        _ => None,
    })
}

/// The parcels' shapes and keys, as a build of their layer reads them.
fn polygon_parts(at: Reader<'_>, stop: &Stop) -> Result<(PolygonBuilder, SortedKeys)> {
    let mut keys = KeysBuilder::default();
    let mut shapes = PolygonBuilder::default();
    for item in until_stopped(at.scan(Registry::Parcels), stop) {
        let (k, v) = item?;
        if let Some(g) = parcel_shape(&v)? {
            shapes.push(&g, push_key(&mut keys, &k)?);
        }
    }
    Ok((shapes, keys.finish()))
}

fn polygon_layer(at: Reader<'_>, stop: &Stop) -> Result<PolygonLayer> {
    let (shapes, keys) = polygon_parts(at, stop)?;
    Ok(PolygonLayer::new(shapes.finish(), keys))
}

/// The parcels' layer built straight to its file and served from it: its shapes are written
/// in tree order from where they were read ([`PolygonBuilder::write_built`]), so the build
/// never holds their reordered copy. None when the file could not be written or mapped
/// (logged): the caller builds the layer in memory instead.
fn polygon_layer_saved(at: Reader<'_>, path: &Path, mark: u64, stop: &Stop) -> Result<Option<PolygonLayer>> {
    let (shapes, keys) = polygon_parts(at, stop)?;
    written(path, mark, stop, |mut w| {
        shapes.write_built(&mut w)?;
        keys.write(&mut w)
    })
}

/// A layer's packed base, as its file holds it: the base, then its keys.
trait Persisted: Sized + Clone {
    const MAGIC: &'static [u8; 8];
    type Base: Packed;
    fn of(base: Self::Base, keys: SortedKeys) -> Self;
    /// The layer as `at` holds it, written to `path` with `mark` as it is built and served
    /// from there; built in memory when the file cannot be written or mapped.
    fn build_saved(at: Reader<'_>, registry: Registry, path: &Path, mark: u64, stop: &Stop) -> Result<Self>;
    /// The layer with each of `keys` as `at` holds it (moved, added, or gone).
    fn changed_at(&self, at: Reader<'_>, registry: Registry, keys: Vec<String>) -> Result<Self>;
    /// The changed part, stale key slots included (a key changed by every load keeps adding
    /// slots), has passed the fold threshold.
    fn due_for_rebuild(&self) -> bool;

    fn map(m: &mut Mapped) -> std::io::Result<Self> {
        let base = Self::Base::map(m)?;
        Ok(Self::of(base, SortedKeys::map(m)?))
    }
}

/// Version 6: keys as steps where they count up (`keys.rs`; version 5 front-coded them all, 4
/// held ids as `u32`s, 3 its keys as their bytes, 1 `f64` coordinates; such a file is rebuilt).
impl Persisted for PointLayer {
    const MAGIC: &'static [u8; 8] = b"JICHUPT6";
    type Base = PointIndex;
    fn of(base: PointIndex, keys: SortedKeys) -> Self {
        PointLayer::new(base, keys)
    }
    fn build_saved(at: Reader<'_>, registry: Registry, path: &Path, mark: u64, stop: &Stop) -> Result<Self> {
        match point_layer_saved(at, registry, path, mark, stop)? {
            Some(layer) => Ok(layer),
            None => point_layer(at, registry, stop),
        }
    }
    fn changed_at(&self, at: Reader<'_>, registry: Registry, keys: Vec<String>) -> Result<Self> {
        Ok(self.changed(locate(at, registry, keys)?))
    }
    fn due_for_rebuild(&self) -> bool {
        due(self.index.masked_len() + self.added.keys.len(), self.index.base().len())
    }
}

/// Where each of `keys` is as `at` holds it (None: gone or without a location), in key order.
///
/// A location lives only in its record, so this reads one record a key: a publication's
/// changed keys, or at a start every key loaded since the layer files were saved (1.5M at
/// 100M in the bench, mostly from a cold cache). Sorted batches let RocksDB read each block
/// once for the keys it holds, and the batches are spread over the cores.
fn locate(at: Reader<'_>, registry: Registry, mut keys: Vec<String>) -> Result<Vec<(String, Option<[f64; 2]>)>> {
    use rayon::prelude::*;
    keys.sort_unstable();
    keys.dedup();
    let batches: Vec<Vec<(String, Option<[f64; 2]>)>> = keys
        .par_chunks(1024)
        .map(|batch| {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            let values = at.get_many_raw(registry, &ids)?;
            batch
                .iter()
                .zip(values)
                .map(|(key, value)| {
                    let p = value.map_or(Ok(None), |v| codec::location(registry, &v))?;
                    Ok((key.clone(), p.map(|(x, y)| [x, y])))
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    Ok(batches.concat())
}

/// Parcels are the one polygon layer. Version 7: keys as steps (as points' version 6).
impl Persisted for PolygonLayer {
    const MAGIC: &'static [u8; 8] = b"JICHUPL7";
    type Base = PolygonIndex;
    fn of(base: PolygonIndex, keys: SortedKeys) -> Self {
        PolygonLayer::new(base, keys)
    }
    fn build_saved(at: Reader<'_>, _: Registry, path: &Path, mark: u64, stop: &Stop) -> Result<Self> {
        match polygon_layer_saved(at, path, mark, stop)? {
            Some(layer) => Ok(layer),
            None => polygon_layer(at, stop),
        }
    }
    fn changed_at(&self, at: Reader<'_>, registry: Registry, keys: Vec<String>) -> Result<Self> {
        let mut changes = Vec::with_capacity(keys.len());
        for key in keys {
            let shape = match at.get_raw(registry, &key)? {
                Some(v) => parcel_shape(&v)?,
                None => None,
            };
            changes.push((key, shape));
        }
        Ok(self.changed(changes))
    }
    fn due_for_rebuild(&self) -> bool {
        due(self.index.masked_len() + self.added.keys.len(), self.index.base().len())
    }
}

/// The file of a registry's layer in the index directory.
fn layer_file(dir: &Path, registry: Registry) -> PathBuf {
    dir.join(format!("{}.idx", registry.as_str()))
}

/// Maps a layer's file (its mark returned with it).
fn map_layer<L: Persisted>(path: &Path) -> std::io::Result<(u64, L)> {
    let (mark, mut m) = persist::open(path, L::MAGIC)?;
    let layer = L::map(&mut m)?;
    m.finish()?;
    Ok((mark, layer))
}

/// The finished loads of a registry that finished after `mark`.
fn loads_after(loads: &[Lineage], registry: Registry, mark: u64) -> Vec<&Lineage> {
    loads.iter().filter(|l| l.registry == registry.as_str() && l.finish_order().is_some_and(|o| o > mark)).collect()
}

/// Whether one of `loads` was a bulk load: it filled an empty registry, so its layer is built
/// anew rather than changed key by key.
fn any_bulk(loads: &[&Lineage]) -> bool {
    loads.iter().any(|l| l.was_bulk())
}

/// The keys `loads` wrote in a registry (their change logs), each once.
fn changed_keys(at: Reader<'_>, loads: &[&Lineage], registry: Registry) -> Result<Vec<String>> {
    let mut keys = std::collections::BTreeSet::new();
    for l in loads {
        for k in at.changed_keys(l.load_id, registry) {
            keys.insert(String::from_utf8_lossy(&k?).into_owned());
        }
    }
    Ok(keys.into_iter().collect())
}

/// A layer after the loads of its registry that finished after `since`: the keys they changed
/// applied over it, or, after a bulk load, taken as a start takes it ([`layer_at`]): mapped
/// from the file the load fed ([`BulkFeed`]), or built anew to its file within the build's
/// budget and served from there (a registry of 100M points would otherwise sit in the heap
/// until the next start). True when it was built.
fn step<L: Persisted>(
    layer: &L,
    at: Reader<'_>,
    registry: Registry,
    loads: &[Lineage],
    since: u64,
    dir: &Path,
    last: u64,
) -> Result<(L, bool)> {
    let newer = loads_after(loads, registry, since);
    if newer.is_empty() {
        return Ok((layer.clone(), false));
    }
    if any_bulk(&newer) {
        let (layer, mapped) = layer_at::<L>(at, dir, registry, loads, last, &NEVER)?;
        return Ok((layer, mapped.is_none()));
    }
    Ok((layer.changed_at(at, registry, changed_keys(at, &newer, registry)?)?, false))
}

/// A registry's layer as `at` holds it: mapped from its file, with the keys of the batch loads
/// that finished after the file's mark applied over it, as a running server applies them
/// ([`SpatialIndex::apply`]); built and saved instead when there is no usable file, when one
/// of those loads was a bulk load, or when their changes pass the fold threshold (a file
/// whose mark is past `at`'s last load is from another store state). Returns the layer and,
/// when it came from the file, how many keys were applied over it.
fn layer_at<L: Persisted>(
    at: Reader<'_>,
    dir: &Path,
    registry: Registry,
    loads: &[Lineage],
    finished: u64,
    stop: &Stop,
) -> Result<(L, Option<usize>)> {
    let path = layer_file(dir, registry);
    let newer = |mark| loads_after(loads, registry, mark);
    match persist::mark(&path, L::MAGIC) {
        Ok(Some(mark)) if mark <= finished && !any_bulk(&newer(mark)) => match map_layer::<L>(&path) {
            Ok((m, layer)) if m == mark => {
                let keys = changed_keys(at, &newer(mark), registry)?;
                let applied = keys.len();
                if applied == 0 {
                    return Ok((layer, Some(0)));
                }
                let layer = layer.changed_at(at, registry, keys)?;
                if !layer.due_for_rebuild() {
                    return Ok((layer, Some(applied)));
                }
                tracing::info!(keys = applied, "loads since {} changed too much to apply: rebuilding", path.display());
            }
            Ok(_) => tracing::warn!("spatial layer {} changed while it was opened: rebuilding", path.display()),
            Err(e) => tracing::warn!(error = %e, "spatial layer {} unreadable: rebuilding", path.display()),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "spatial layer {} unreadable: rebuilding", path.display()),
    }
    Ok((L::build_saved(at, registry, &path, finished, stop)?, None))
}

impl SpatialIndex {
    /// The directory of a store's spatial layers: beside it, in the data directory.
    pub fn dir_of(store: &Store) -> PathBuf {
        store.path().with_file_name("spatial")
    }

    /// The index of the store's latest state (tools, benchmarks, tests).
    pub fn open(store: &Store) -> Result<Arc<SpatialIndex>> {
        Self::open_at(store.reader(), &NEVER).map(Arc::new)
    }

    /// Maps each layer's file and applies the batch loads that finished since it was saved;
    /// builds (and saves, then maps) a layer whose file is missing, damaged, or passed by a
    /// bulk load or by more changes than a fold allows. Each layer on a thread of its own
    /// (files are checked and saved one at a time: [`persist`] holds one lock for both).
    /// A build gives up when `stop` is set.
    pub fn open_at(at: Reader<'_>, stop: &Stop) -> Result<SpatialIndex> {
        // The single file of an earlier version, superseded by a file per layer.
        std::fs::remove_file(at.store().path().with_file_name("spatial.idx")).ok();
        let dir = Self::dir_of(at.store());
        std::fs::create_dir_all(&dir).map_err(crate::Error::io(&dir))?;
        let stale = persist::remove_stale(&dir).map_err(crate::Error::io(&dir))?;
        if stale > 0 {
            tracing::warn!(files = stale, "removed what a stopped save left in {}", dir.display());
        }
        let loads = at.stored_loads()?;
        let finished = loads.iter().filter_map(Lineage::finish_order).max().unwrap_or(0);
        let started = Instant::now();
        let (citizens, entities, parcels) = std::thread::scope(|s| {
            let c = s.spawn(|| layer_at::<PointLayer>(at, &dir, Registry::Citizens, &loads, finished, stop));
            let e = s.spawn(|| layer_at::<PointLayer>(at, &dir, Registry::Entities, &loads, finished, stop));
            let p = layer_at::<PolygonLayer>(at, &dir, Registry::Parcels, &loads, finished, stop);
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<(PointLayer, Option<usize>)>>| {
                h.join().unwrap_or_else(|_| Err(crate::Error::Internal("spatial index build panicked".into())))
            };
            (join(c), join(e), p)
        });
        let ((citizens, c), (entities, e), (parcels, p)) = (citizens?, entities?, parcels?);
        let index = SpatialIndex {
            citizens,
            entities,
            parcels,
            finished,
            build_seconds: started.elapsed().as_secs_f64(),
            from_file: c.is_some() && e.is_some() && p.is_some(),
            applied_at_open: [c, e, p].into_iter().flatten().sum(),
        };
        tracing::info!(
            citizens = index.citizens.index.len(),
            entities = index.entities.index.len(),
            parcels = index.parcels.index.len(),
            mapped_from_files = format!("{}/{}/{}", c.is_some(), e.is_some(), p.is_some()),
            applied = index.applied_at_open,
            seconds = format!("{:.2}", index.build_seconds),
            heap_mib = index.memory_bytes() >> 20,
            mapped_mib = index.mapped_bytes() >> 20,
            "spatial index open"
        );
        Ok(index)
    }

    /// The index after the finished loads in `loads` newer than the one it reflects, as `at`
    /// holds them: each changed key moved in the layered index (a layer a bulk load filled is
    /// built). Layers no load touched are shared. Folding a layer whose changes have grown
    /// ([`SpatialIndex::due_for_fold`]) is left to the caller, off the publication's path.
    pub fn apply(&self, at: Reader<'_>, loads: &[Lineage]) -> Result<SpatialIndex> {
        let newer = loads.iter().filter_map(Lineage::finish_order).filter(|&o| o > self.finished);
        let Some(last) = newer.max() else { return Ok(self.clone()) };
        let started = Instant::now();
        let dir = Self::dir_of(at.store());
        let (citizens, c) = step(&self.citizens, at, Registry::Citizens, loads, self.finished, &dir, last)?;
        let (entities, e) = step(&self.entities, at, Registry::Entities, loads, self.finished, &dir, last)?;
        let (parcels, p) = step(&self.parcels, at, Registry::Parcels, loads, self.finished, &dir, last)?;
        let rebuilt = c || e || p;
        let index = SpatialIndex {
            citizens,
            entities,
            parcels,
            finished: last,
            build_seconds: started.elapsed().as_secs_f64(),
            from_file: false,
            applied_at_open: 0,
        };
        tracing::info!(
            finished = last,
            rebuilt,
            seconds = format!("{:.3}", index.build_seconds),
            changed =
                index.citizens.index.delta_len() + index.entities.index.delta_len() + index.parcels.index.delta_len(),
            "spatial index in step"
        );
        Ok(index)
    }

    /// Whether a layer's changed part has grown past [`FOLD_FRACTION`] of its base (and
    /// [`FOLD_MIN`]): time to build it anew ([`SpatialIndex::fold`]).
    pub fn due_for_fold(&self) -> bool {
        self.citizens.due_for_rebuild() || self.entities.due_for_rebuild() || self.parcels.due_for_rebuild()
    }

    /// The same index with every layer due for it built anew from `at` (which must hold
    /// exactly the loads this index reflects), each saved and then served from its file; gives
    /// up, saving nothing more, when `stop` is set.
    pub fn fold(&self, at: Reader<'_>, stop: &Stop) -> Result<SpatialIndex> {
        let started = Instant::now();
        let dir = Self::dir_of(at.store());
        let mut index = self.clone();
        let rebuilt = |r: Registry| PointLayer::build_saved(at, r, &layer_file(&dir, r), self.finished, stop);
        if self.citizens.due_for_rebuild() {
            index.citizens = rebuilt(Registry::Citizens)?;
        }
        if self.entities.due_for_rebuild() {
            index.entities = rebuilt(Registry::Entities)?;
        }
        if self.parcels.due_for_rebuild() {
            index.parcels = PolygonLayer::build_saved(
                at,
                Registry::Parcels,
                &layer_file(&dir, Registry::Parcels),
                self.finished,
                stop,
            )?;
        }
        index.build_seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            seconds = format!("{:.2}", index.build_seconds),
            finished = index.finished,
            "spatial index folded"
        );
        Ok(index)
    }

    /// The point layer of a registry that has locations.
    pub fn points(&self, registry: Registry) -> Option<&PointLayer> {
        match registry {
            Registry::Citizens => Some(&self.citizens),
            Registry::Entities => Some(&self.entities),
            _ => None,
        }
    }

    /// Heap bytes of every layer, keys included (a base served from its file holds none).
    pub fn memory_bytes(&self) -> usize {
        [&self.citizens, &self.entities].iter().map(|l| l.index.memory_bytes() + l.keys.memory_bytes()).sum::<usize>()
            + self.parcels.index.memory_bytes()
            + self.parcels.keys.memory_bytes()
    }

    /// Bytes of the layers' files the index reads where they lie: resident only as far as
    /// queries have touched them, and as page cache, which the kernel can take back.
    pub fn mapped_bytes(&self) -> usize {
        [&self.citizens, &self.entities]
            .iter()
            .map(|l| l.index.base().mapped_bytes() + l.keys.mapped_bytes())
            .sum::<usize>()
            + self.parcels.index.base().mapped_bytes()
            + self.parcels.keys.mapped_bytes()
    }
}
