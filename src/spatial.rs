//! The spatial layer: `jichu-indexes`' point and polygon indexes, built from the store.
//!
//! Kept in step by construction: a serving process owns its store (RocksDB's lock), so loads
//! run while it is stopped, and the index is built from the store when the process opens it.
//! Ended records are left out. The build reads only each point's bytes (no record decoding)
//! and builds the three layers in parallel.

use crate::error::Result;
use crate::model::Registry;
use crate::store::{Store, codec};
use jichu_indexes::spatial::{PointIndex, PolygonIndex};
use jichu_ingest::Value;
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
    pub build_seconds: f64,
}

fn point_layer(store: &Store, registry: Registry) -> Result<PointLayer> {
    let field = registry.schema().field_index("location").unwrap_or(usize::MAX);
    let mut keys = Keys::default();
    let mut points = Vec::new();
    for item in store.scan(registry) {
        let (k, v) = item?;
        let (header, body) = codec::split(&v)?;
        if header.ended {
            continue;
        }
        if let Some((lon, lat)) = codec::point_at(body, field)? {
            points.push(([lon, lat], keys.push(&k)?));
        }
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

impl SpatialIndex {
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
