//! The spatial layer: `jichu-indexes`' point and polygon indexes, built from the store.
//!
//! Kept in step by construction: a serving process owns its store (RocksDB's lock), so loads
//! run while it is stopped, and the index is built from the store when the process opens it.
//! Ended records are left out. Points come from the store's `points` column family (written
//! with each record, 16 bytes a point), so no record is read; the three layers build in
//! parallel. The built index is saved beside the store
//! (`spatial.idx`) with the store's sequence number; a later start whose store has not
//! changed since reads the file instead of rebuilding.

use crate::error::Result;
use crate::model::Registry;
use crate::store::{Store, codec};
use jichu_indexes::spatial::{PointIndex, PolygonIndex, persist};
use jichu_ingest::Value;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Record keys by dense position: one byte arena and 32-bit end offsets (22 bytes for an
/// identity number). Up to 4 GiB of keys per registry: about 200M identity numbers.
#[derive(Debug, Default)]
pub struct Keys {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Keys {
    fn push(&mut self, key: &[u8]) -> Result<u32> {
        self.bytes.extend_from_slice(key);
        let end = u32::try_from(self.bytes.len())
            .map_err(|_| crate::Error::Invalid("more than 4 GiB of keys in one spatial layer".into()))?;
        self.ends.push(end);
        Ok((self.ends.len() - 1) as u32)
    }

    fn shrink(mut self) -> Self {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
        self
    }

    pub fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        std::str::from_utf8(&self.bytes[start..self.ends[i] as usize]).unwrap_or_default()
    }

    fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

/// Points of one registry and the keys of their records.
#[derive(Debug)]
pub struct PointLayer {
    pub index: PointIndex,
    pub keys: Keys,
}

/// Parcels' polygons and their keys.
#[derive(Debug)]
pub struct PolygonLayer {
    pub index: PolygonIndex,
    pub keys: Keys,
}

#[derive(Debug)]
pub struct SpatialIndex {
    pub citizens: PointLayer,
    pub entities: PointLayer,
    pub parcels: PolygonLayer,
    /// Seconds spent building (or reading) the index.
    pub build_seconds: f64,
    /// Read from the saved file rather than built from the store.
    pub from_file: bool,
}

fn point_layer(store: &Store, registry: Registry) -> Result<PointLayer> {
    let mut keys = Keys::default();
    let mut points = Vec::new();
    for item in store.points(registry) {
        let (k, lon, lat) = item?;
        points.push(([lon, lat], keys.push(&k)?));
    }
    Ok(PointLayer { index: PointIndex::build(points), keys: keys.shrink() })
}

fn polygon_layer(store: &Store) -> Result<PolygonLayer> {
    let field = Registry::Parcels.schema().field_index("geometry").unwrap_or(usize::MAX);
    let mut keys = Keys::default();
    let mut shapes = Vec::new();
    for item in store.scan(Registry::Parcels) {
        let (k, v) = item?;
        let record = codec::decode(Registry::Parcels, "", &v)?;
        if record.ended {
            continue;
        }
        if let Some(Some(Value::Geometry(g))) = record.values.into_iter().nth(field) {
            shapes.push((g, keys.push(&k)?));
        }
    }
    Ok(PolygonLayer { index: PolygonIndex::build(shapes), keys: keys.shrink() })
}

const MAGIC: &[u8; 8] = b"JICHUSP1";

impl Keys {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        persist::put_bytes(w, &self.bytes)?;
        persist::put_u32s(w, &self.ends)
    }

    fn read(r: &mut impl Read) -> std::io::Result<Keys> {
        let keys = Keys { bytes: persist::get_bytes(r)?, ends: persist::get_u32s(r)? };
        if keys.ends.last().is_some_and(|&e| e as usize != keys.bytes.len()) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "spatial index file: bad keys"));
        }
        Ok(keys)
    }
}

impl SpatialIndex {
    /// The index file of a store: beside it, in the data directory.
    pub fn file_of(store: &Store) -> PathBuf {
        store.path().with_file_name("spatial.idx")
    }

    /// Reads the saved index if it was built from the store as it is now; otherwise builds
    /// it and saves it from a background thread (serving does not wait for the disk; a
    /// failure to save is logged, and the next start rebuilds).
    pub fn open(store: &Store) -> Result<Arc<SpatialIndex>> {
        let path = Self::file_of(store);
        let started = Instant::now();
        match Self::read(&path, store.sequence()) {
            Ok(Some(mut index)) => {
                index.build_seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    seconds = format!("{:.2}", index.build_seconds),
                    "spatial index read from {}",
                    path.display()
                );
                return Ok(Arc::new(index));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "spatial index file unreadable: rebuilding"),
        }
        let index = Arc::new(Self::build(store)?);
        let (saved, sequence) = (index.clone(), store.sequence());
        std::thread::spawn(move || {
            if let Err(e) = saved.save(&path, sequence) {
                tracing::warn!(error = %e, "could not save the spatial index to {}", path.display());
            }
        });
        Ok(index)
    }

    fn save(&self, path: &Path, sequence: u64) -> std::io::Result<()> {
        let tmp = path.with_extension("idx.tmp");
        let mut w = BufWriter::with_capacity(8 << 20, File::create(&tmp)?);
        w.write_all(MAGIC)?;
        persist::put_u64(&mut w, sequence)?;
        for layer in [&self.citizens, &self.entities] {
            layer.index.write(&mut w)?;
            layer.keys.write(&mut w)?;
        }
        self.parcels.index.write(&mut w)?;
        self.parcels.keys.write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The saved index, if there is one for this exact store sequence.
    fn read(path: &Path, sequence: u64) -> std::io::Result<Option<SpatialIndex>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = BufReader::with_capacity(8 << 20, file);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC || persist::get_u64(&mut r)? != sequence {
            return Ok(None);
        }
        let point_layer = |r: &mut BufReader<File>| -> std::io::Result<PointLayer> {
            Ok(PointLayer { index: PointIndex::read(r)?, keys: Keys::read(r)? })
        };
        let citizens = point_layer(&mut r)?;
        let entities = point_layer(&mut r)?;
        let parcels = PolygonLayer { index: PolygonIndex::read(&mut r)?, keys: Keys::read(&mut r)? };
        Ok(Some(SpatialIndex { citizens, entities, parcels, build_seconds: 0.0, from_file: true }))
    }

    /// Builds every layer from the store, in parallel.
    pub fn build(store: &Store) -> Result<SpatialIndex> {
        let started = Instant::now();
        let (citizens, entities, parcels) = std::thread::scope(|s| {
            let c = s.spawn(|| point_layer(store, Registry::Citizens));
            let e = s.spawn(|| point_layer(store, Registry::Entities));
            let p = polygon_layer(store);
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<PointLayer>>| {
                h.join().unwrap_or_else(|_| Err(crate::Error::Invalid("spatial index build panicked".into())))
            };
            (join(c), join(e), p)
        });
        let index = SpatialIndex {
            citizens: citizens?,
            entities: entities?,
            parcels: parcels?,
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
