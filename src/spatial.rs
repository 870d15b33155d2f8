//! The spatial layer: `jichu-indexes`' point and polygon indexes over the store's current
//! records (ended ones are left out), kept in step with published loads.
//!
//! Built from a snapshot of the store: points from its `points` column family (written with
//! each record, 16 bytes a point, so no record is read), parcels by decoding their records;
//! the three layers build in parallel. Ids are positions in key order, so a key finds its id
//! by binary search. A finished load's changes are applied without a rebuild
//! ([`SpatialIndex::apply`]): the keys it wrote (its change log) are masked in the packed base
//! and their new positions added to a small rstar layer ([`LayeredPoints`]); a layer whose
//! changes pass [`FOLD_FRACTION`] of its base is rebuilt instead. A built index is saved
//! beside the store (`spatial.idx`) with the last load it reflects; a start with the same
//! last load reads the file instead of rebuilding.

use crate::error::Result;
use crate::model::{Lineage, Registry};
use crate::store::{Reader, Store, codec};
use jichu_indexes::spatial::keys::SortedKeys;
use jichu_indexes::spatial::{LayeredPoints, LayeredPolygons, PointIndex, PolygonBuilder, PolygonIndex, persist};
use jichu_ingest::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A layer whose changed part passes this fraction of its base (and [`FOLD_MIN`] entries) is
/// rebuilt from the store rather than layered further.
pub const FOLD_FRACTION: f64 = 0.05;
pub const FOLD_MIN: usize = 50_000;

fn push_key(keys: &mut SortedKeys, key: &[u8]) -> Result<u32> {
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

    /// The changed part, stale key slots included (a key changed by every load keeps adding
    /// slots), has passed the fold threshold.
    fn due_for_rebuild(&self) -> bool {
        due(self.index.masked_len() + self.added.keys.len(), self.index.base().len())
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

    fn due_for_rebuild(&self) -> bool {
        due(self.index.masked_len() + self.added.keys.len(), self.index.base().len())
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
    /// Read from the saved file rather than built from the store.
    pub from_file: bool,
}

fn point_layer(at: Reader<'_>, registry: Registry) -> Result<PointLayer> {
    let mut keys = SortedKeys::default();
    // Sized once from the registry's count (points are at most that many): no doubling, no
    // copy of a vector of tens of millions of points while it grows.
    let count = usize::try_from(at.stored_count(registry)?).unwrap_or(0);
    let (mut points, mut ids) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for item in at.points(registry) {
        let (k, lon, lat) = item?;
        points.push([lon, lat]);
        ids.push(push_key(&mut keys, &k)?);
    }
    Ok(PointLayer::new(PointIndex::from_parts(points, ids), keys.shrink()))
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

fn polygon_layer(at: Reader<'_>) -> Result<PolygonLayer> {
    let mut keys = SortedKeys::default();
    let mut shapes = PolygonBuilder::default();
    for item in at.scan(Registry::Parcels) {
        let (k, v) = item?;
        if let Some(g) = parcel_shape(&v)? {
            shapes.push(&g, push_key(&mut keys, &k)?);
        }
    }
    Ok(PolygonLayer::new(shapes.finish(), keys.shrink()))
}

/// The last load a store state holds, in the order loads finished.
pub fn last_finished(at: Reader<'_>) -> Result<u64> {
    Ok(at.stored_loads()?.iter().filter_map(Lineage::finish_order).max().unwrap_or(0))
}

const MAGIC: &[u8; 8] = b"JICHUSP4";

impl SpatialIndex {
    /// The index file of a store: beside it, in the data directory.
    pub fn file_of(store: &Store) -> PathBuf {
        store.path().with_file_name("spatial.idx")
    }

    /// The index of the store's latest state (tools, benchmarks, tests).
    pub fn open(store: &Store) -> Result<Arc<SpatialIndex>> {
        Self::open_at(store.reader()).map(Arc::new)
    }

    /// Reads the saved index if it reflects the same last load as `at`; otherwise builds it
    /// and saves it from a background thread (serving does not wait for the disk; a failure
    /// to save is logged, and the next start rebuilds).
    pub fn open_at(at: Reader<'_>) -> Result<SpatialIndex> {
        let path = Self::file_of(at.store());
        let finished = last_finished(at)?;
        let started = Instant::now();
        match Self::read(&path, finished) {
            Ok(Some(mut index)) => {
                index.build_seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    seconds = format!("{:.2}", index.build_seconds),
                    "spatial index read from {}",
                    path.display()
                );
                return Ok(index);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "spatial index file unreadable: rebuilding"),
        }
        let index = Self::build(at, finished)?;
        index.save_in_background(path);
        Ok(index)
    }

    fn save_in_background(&self, path: PathBuf) {
        let saved = self.clone();
        std::thread::spawn(move || {
            if let Err(e) = saved.save(&path) {
                tracing::warn!(error = %e, "could not save the spatial index to {}", path.display());
            }
        });
    }

    /// The index after the finished loads in `loads` newer than the one it reflects, as `at`
    /// holds them: each changed key moved in the layered index (a layer a bulk load filled is
    /// built). Layers no load touched are shared. Folding a layer whose changes have grown
    /// ([`SpatialIndex::due_for_fold`]) is left to the caller, off the publication's path.
    pub fn apply(&self, at: Reader<'_>, loads: &[Lineage]) -> Result<SpatialIndex> {
        let newer: Vec<&Lineage> =
            loads.iter().filter(|l| l.finish_order().is_some_and(|o| o > self.finished)).collect();
        let Some(last) = newer.iter().filter_map(|l| l.finish_order()).max() else { return Ok(self.clone()) };
        let started = Instant::now();
        let of =
            |r: Registry| -> Vec<&Lineage> { newer.iter().copied().filter(|l| l.registry == r.as_str()).collect() };
        let bulk = |ls: &[&Lineage]| {
            ls.iter().any(|l| l.report.as_ref().and_then(|r| r.get("path")).and_then(|p| p.as_str()) == Some("bulk"))
        };
        let changed_keys = |ls: &[&Lineage], r: Registry| -> Result<Vec<String>> {
            let mut keys = std::collections::BTreeSet::new();
            for l in ls {
                for k in at.changed_keys(l.load_id, r) {
                    keys.insert(String::from_utf8_lossy(&k?).into_owned());
                }
            }
            Ok(keys.into_iter().collect())
        };
        let mut rebuilt = false;
        let mut points = |layer: &PointLayer, r: Registry| -> Result<PointLayer> {
            let ls = of(r);
            if ls.is_empty() {
                return Ok(layer.clone());
            }
            if bulk(&ls) {
                rebuilt = true;
                return point_layer(at, r);
            }
            let mut changes = Vec::new();
            for key in changed_keys(&ls, r)? {
                let p = at.point(r, key.as_bytes())?.map(|(x, y)| [x, y]);
                changes.push((key, p));
            }
            Ok(layer.changed(changes))
        };
        let citizens = points(&self.citizens, Registry::Citizens)?;
        let entities = points(&self.entities, Registry::Entities)?;
        let ls = of(Registry::Parcels);
        let parcels = if ls.is_empty() {
            self.parcels.clone()
        } else if bulk(&ls) {
            rebuilt = true;
            polygon_layer(at)?
        } else {
            let mut changes = Vec::new();
            for key in changed_keys(&ls, Registry::Parcels)? {
                let shape = match at.get_raw(Registry::Parcels, &key)? {
                    Some(v) => parcel_shape(&v)?,
                    None => None,
                };
                changes.push((key, shape));
            }
            self.parcels.changed(changes)
        };
        let index = SpatialIndex {
            citizens,
            entities,
            parcels,
            finished: last,
            build_seconds: started.elapsed().as_secs_f64(),
            from_file: false,
        };
        tracing::info!(
            finished = last,
            rebuilt,
            seconds = format!("{:.3}", index.build_seconds),
            changed =
                index.citizens.index.delta_len() + index.entities.index.delta_len() + index.parcels.index.delta_len(),
            "spatial index in step"
        );
        if rebuilt && index.delta_len() == 0 {
            index.save_in_background(Self::file_of(at.store()));
        }
        Ok(index)
    }

    /// Whether a layer's changed part has grown past [`FOLD_FRACTION`] of its base (and
    /// [`FOLD_MIN`]): time to build it anew ([`SpatialIndex::fold`]).
    pub fn due_for_fold(&self) -> bool {
        self.citizens.due_for_rebuild() || self.entities.due_for_rebuild() || self.parcels.due_for_rebuild()
    }

    /// The same index with every layer due for it built anew from `at` (which must hold
    /// exactly the loads this index reflects), and saved when nothing is left layered.
    pub fn fold(&self, at: Reader<'_>) -> Result<SpatialIndex> {
        let started = Instant::now();
        let mut index = self.clone();
        if self.citizens.due_for_rebuild() {
            index.citizens = point_layer(at, Registry::Citizens)?;
        }
        if self.entities.due_for_rebuild() {
            index.entities = point_layer(at, Registry::Entities)?;
        }
        if self.parcels.due_for_rebuild() {
            index.parcels = polygon_layer(at)?;
        }
        index.build_seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            seconds = format!("{:.2}", index.build_seconds),
            finished = index.finished,
            "spatial index folded"
        );
        if index.delta_len() == 0 {
            index.save_in_background(Self::file_of(at.store()));
        }
        Ok(index)
    }

    /// Entries of the changed parts of every layer.
    fn delta_len(&self) -> usize {
        self.citizens.index.delta_len() + self.entities.index.delta_len() + self.parcels.index.delta_len()
    }

    /// Saves the packed bases (only an index without changed parts is saved). Saves run one
    /// at a time, each through a file of its own, so two never mix their bytes.
    fn save(&self, path: &Path) -> std::io::Result<()> {
        static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        if self.delta_len() > 0 {
            return Ok(());
        }
        let _one = SAVING.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = path.with_extension(format!("idx.{:x}.tmp", rand::random::<u64>()));
        let mut w = BufWriter::with_capacity(8 << 20, File::create(&tmp)?);
        w.write_all(MAGIC)?;
        persist::put_u64(&mut w, self.finished)?;
        for layer in [&self.citizens, &self.entities] {
            layer.index.base().write(&mut w)?;
            layer.keys.write(&mut w)?;
        }
        self.parcels.index.base().write(&mut w)?;
        self.parcels.keys.write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The saved index, if there is one reflecting this exact last load.
    fn read(path: &Path, finished: u64) -> std::io::Result<Option<SpatialIndex>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = BufReader::with_capacity(8 << 20, file);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC || persist::get_u64(&mut r)? != finished {
            return Ok(None);
        }
        let point_layer = |r: &mut BufReader<File>| -> std::io::Result<PointLayer> {
            let index = PointIndex::read(r)?;
            Ok(PointLayer::new(index, SortedKeys::read(r)?))
        };
        let citizens = point_layer(&mut r)?;
        let entities = point_layer(&mut r)?;
        let index = PolygonIndex::read(&mut r)?;
        let parcels = PolygonLayer::new(index, SortedKeys::read(&mut r)?);
        Ok(Some(SpatialIndex { citizens, entities, parcels, finished, build_seconds: 0.0, from_file: true }))
    }

    /// Builds every layer from the store as `at` reads it, in parallel.
    pub fn build(at: Reader<'_>, finished: u64) -> Result<SpatialIndex> {
        let started = Instant::now();
        let (citizens, entities, parcels) = std::thread::scope(|s| {
            let c = s.spawn(|| point_layer(at, Registry::Citizens));
            let e = s.spawn(|| point_layer(at, Registry::Entities));
            let p = polygon_layer(at);
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<PointLayer>>| {
                h.join().unwrap_or_else(|_| Err(crate::Error::Internal("spatial index build panicked".into())))
            };
            (join(c), join(e), p)
        });
        let index = SpatialIndex {
            citizens: citizens?,
            entities: entities?,
            parcels: parcels?,
            finished,
            build_seconds: started.elapsed().as_secs_f64(),
            from_file: false,
        };
        tracing::info!(
            citizens = index.citizens.index.len(),
            entities = index.entities.index.len(),
            parcels = index.parcels.index.len(),
            seconds = format!("{:.2}", index.build_seconds),
            mib = index.memory_bytes() >> 20,
            "spatial index built"
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

    /// Heap bytes of every layer, keys included.
    pub fn memory_bytes(&self) -> usize {
        [&self.citizens, &self.entities].iter().map(|l| l.index.memory_bytes() + l.keys.memory_bytes()).sum::<usize>()
            + self.parcels.index.memory_bytes()
            + self.parcels.keys.memory_bytes()
    }
}
