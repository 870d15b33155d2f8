//! Spatial indexes: a packed R-tree ([`tree`]) with great-circle geometry ([`sphere`]),
//! specialised for points ([`PointIndex`]) and polygons ([`PolygonIndex`]), areas to ask
//! about ([`region`]: boxes, circles, polygons), and layered
//! versions of both that take changes without a rebuild ([`LayeredPoints`], [`LayeredPolygons`]).

mod external;
pub mod grid;
mod ids;
pub mod keys;
mod layered;
pub mod persist;
mod points;
mod polygons;
pub mod region;
pub mod sphere;
mod tree;

pub use layered::{LayeredPoints, LayeredPolygons};
pub use points::{Hit, PointIndex, SpilledPoints};
pub use polygons::{Area, PolygonBuilder, PolygonIndex};
pub use region::{Circle, Overlap, PolygonArea, Region};

/// `[min_lon, min_lat, max_lon, max_lat]` in degrees (WGS84).
pub type BBox = [f64; 4];
