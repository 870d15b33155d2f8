//! Areas a query asks about (a box, or a polygon with holes), and how a node's box lies
//! against them: wholly inside (its count is added without visiting its points), wholly
//! outside, or across the boundary (visit its children).

use super::BBox;
use super::sphere::{haversine_m, max_dist_to_box_m, min_dist_to_box_m, radius_bbox};
use geo::{BoundingRect, Coord, CoordinatePosition, Intersects, Polygon, coordinate_position::CoordPos};
use rstar::primitives::{GeomWithData, Line};
use rstar::{AABB, RTree};

/// How a box lies against a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    Outside,
    Across,
    Inside,
}

/// An area whose points (its boundary included) a query selects.
pub trait Region {
    /// Where a box lies. `Inside` and `Outside` must be certain; `Across` is always safe.
    fn overlap(&self, b: &BBox) -> Overlap;
    /// Whether a point is in the region, its boundary included.
    fn contains(&self, p: [f64; 2]) -> bool;
    /// A box holding the region.
    fn envelope(&self) -> BBox;
}

impl Region for BBox {
    fn overlap(&self, b: &BBox) -> Overlap {
        if b[0] > self[2] || b[2] < self[0] || b[1] > self[3] || b[3] < self[1] {
            Overlap::Outside
        } else if b[0] >= self[0] && b[2] <= self[2] && b[1] >= self[1] && b[3] <= self[3] {
            Overlap::Inside
        } else {
            Overlap::Across
        }
    }

    fn contains(&self, p: [f64; 2]) -> bool {
        p[0] >= self[0] && p[0] <= self[2] && p[1] >= self[1] && p[1] <= self[3]
    }

    fn envelope(&self) -> BBox {
        *self
    }
}

/// The points within a great-circle distance of a centre.
#[derive(Clone, Copy, Debug)]
pub struct Circle {
    pub lon: f64,
    pub lat: f64,
    pub radius_m: f64,
}

impl Region for Circle {
    fn overlap(&self, b: &BBox) -> Overlap {
        if min_dist_to_box_m(self.lon, self.lat, b) > self.radius_m {
            Overlap::Outside
        } else if max_dist_to_box_m(self.lon, self.lat, b) <= self.radius_m {
            Overlap::Inside
        } else {
            Overlap::Across
        }
    }

    fn contains(&self, p: [f64; 2]) -> bool {
        haversine_m(self.lon, self.lat, p[0], p[1]) <= self.radius_m
    }

    /// The whole world when the circle crosses the antimeridian.
    fn envelope(&self) -> BBox {
        let b = radius_bbox(self.lon, self.lat, self.radius_m);
        if b[0] < -180.0 || b[2] > 180.0 { [-180.0, -90.0, 180.0, 90.0] } else { b }
    }
}

/// A polygon prepared for many box tests: its edges in an R-tree, so that telling whether a
/// box meets the boundary costs the few edges near it, not all of them.
#[derive(Debug)]
pub struct PolygonArea {
    polygon: Polygon<f64>,
    edges: RTree<GeomWithData<Line<[f64; 2]>, ()>>,
    envelope: BBox,
}

impl PolygonArea {
    /// None for an empty polygon.
    pub fn new(polygon: Polygon<f64>) -> Option<PolygonArea> {
        let r = polygon.bounding_rect()?;
        let edges = std::iter::once(polygon.exterior())
            .chain(polygon.interiors())
            .flat_map(|ring| ring.lines())
            .map(|l| GeomWithData::new(Line::new([l.start.x, l.start.y], [l.end.x, l.end.y]), ()))
            .collect();
        Some(PolygonArea {
            edges: RTree::bulk_load(edges),
            envelope: [r.min().x, r.min().y, r.max().x, r.max().y],
            polygon,
        })
    }

    pub fn polygon(&self) -> &Polygon<f64> {
        &self.polygon
    }
}

impl Region for PolygonArea {
    /// A box no edge touches lies wholly on one side of the boundary: the side of its centre.
    fn overlap(&self, b: &BBox) -> Overlap {
        if self.envelope.overlap(b) == Overlap::Outside {
            return Overlap::Outside;
        }
        let rect = geo::Rect::new(Coord { x: b[0], y: b[1] }, Coord { x: b[2], y: b[3] });
        let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        let touched = self.edges.locate_in_envelope_intersecting(&env).any(|e| {
            let (from, to) = (e.geom().from, e.geom().to);
            geo::Line::new(Coord { x: from[0], y: from[1] }, Coord { x: to[0], y: to[1] }).intersects(&rect)
        });
        if touched {
            Overlap::Across
        } else if self.contains([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]) {
            Overlap::Inside
        } else {
            Overlap::Outside
        }
    }

    fn contains(&self, p: [f64; 2]) -> bool {
        self.envelope.contains(p) && self.polygon.coordinate_position(&Coord { x: p[0], y: p[1] }) != CoordPos::Outside
    }

    fn envelope(&self) -> BBox {
        self.envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn courtyard() -> Polygon<f64> {
        let outer = vec![(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)];
        let hole = vec![(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)];
        Polygon::new(outer.into(), vec![hole.into()])
    }

    #[test]
    fn boxes_inside_outside_and_across() {
        let area = PolygonArea::new(courtyard()).unwrap();
        assert_eq!(area.overlap(&[1.0, 1.0, 2.0, 2.0]), Overlap::Inside);
        assert_eq!(area.overlap(&[4.5, 4.5, 5.5, 5.5]), Overlap::Outside, "in the hole");
        assert_eq!(area.overlap(&[11.0, 1.0, 12.0, 2.0]), Overlap::Outside);
        assert_eq!(area.overlap(&[3.0, 3.0, 5.0, 5.0]), Overlap::Across);
        assert_eq!(area.overlap(&[-1.0, -1.0, 11.0, 11.0]), Overlap::Across);
        assert!(area.contains([10.0, 5.0]), "the boundary is in");
    }

    proptest! {
        /// A box said to be inside (outside) has every sampled point in (out of) the polygon.
        #[test]
        fn certain_answers_are_true(x in -2.0f64..12.0, y in -2.0f64..12.0, w in 0.0f64..5.0, h in 0.0f64..5.0) {
            let area = PolygonArea::new(courtyard()).unwrap();
            let b = [x, y, x + w, y + h];
            let overlap = area.overlap(&b);
            for i in 0..=8 {
                for j in 0..=8 {
                    let p = [x + w * f64::from(i) / 8.0, y + h * f64::from(j) / 8.0];
                    match overlap {
                        Overlap::Inside => prop_assert!(area.contains(p)),
                        Overlap::Outside => prop_assert!(!area.contains(p)),
                        Overlap::Across => {}
                    }
                }
            }
        }
    }
}
