//! Derived indexes over registry records.
//!
//! [`spatial`]: packed, immutable R-trees over points (citizens' and entities' locations) and
//! polygons (parcels), answering nearest, radius, box and containing queries with true
//! distances on the Earth. The full-text index comes with its issue.
//!
//! The crate takes plain points, boxes and geometries from the service and never sees the
//! store or HTTP, so an index can always be rebuilt from the store, the source of truth.

pub mod spatial;
