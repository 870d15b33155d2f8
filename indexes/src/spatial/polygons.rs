//! Polygons (parcels): which contain a point (boundary included, holes respected), which
//! intersect an area. The tree holds envelopes; exact predicates from `geo` decide.

use super::BBox;
use super::tree::PackedTree;
use geo::{BoundingRect, Coord, CoordinatePosition, Intersects, MultiPolygon, Polygon, coordinate_position::CoordPos};

/// An immutable index of polygons by their envelopes, with the geometries for exact tests.
#[derive(Debug)]
pub struct PolygonIndex {
    tree: PackedTree<BBox>,
    /// Geometries by tree position.
    shapes: Vec<MultiPolygon<f64>>,
}

fn envelope(g: &MultiPolygon<f64>) -> BBox {
    g.bounding_rect().map_or([f64::NAN; 4], |r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

impl PolygonIndex {
    /// Builds from `(geometry, id)` pairs (WGS84 degrees). Empty geometries are skipped.
    pub fn build(items: Vec<(MultiPolygon<f64>, u32)>) -> PolygonIndex {
        let items: Vec<(MultiPolygon<f64>, u32)> =
            items.into_iter().filter(|(g, _)| g.bounding_rect().is_some()).collect();
        let tree = PackedTree::build(items.iter().enumerate().map(|(i, (g, _))| (envelope(g), i as u32)).collect());
        let ids: Vec<u32> = tree.ids.iter().map(|&i| items[i as usize].1).collect();
        let mut slots: Vec<Option<MultiPolygon<f64>>> = items.into_iter().map(|(g, _)| Some(g)).collect();
        let shapes =
            tree.ids.iter().map(|&i| slots[i as usize].take().unwrap_or_else(|| MultiPolygon(vec![]))).collect();
        PolygonIndex { tree: PackedTree { ids, ..tree }, shapes }
    }

    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// Ids of the polygons containing the point, its boundary included; ordered by id.
    pub fn containing(&self, lon: f64, lat: f64) -> Vec<u32> {
        let c = Coord { x: lon, y: lat };
        let mut out = Vec::new();
        self.tree.search(&[lon, lat, lon, lat], |i| {
            if self.shapes[i].coordinate_position(&c) != CoordPos::Outside {
                out.push(self.tree.ids[i]);
            }
        });
        out.sort_unstable();
        out
    }

    /// Ids of the polygons intersecting a box; ordered by id.
    pub fn intersecting_bbox(&self, b: &BBox) -> Vec<u32> {
        let rect = geo::Rect::new(Coord { x: b[0], y: b[1] }, Coord { x: b[2], y: b[3] });
        let mut out = Vec::new();
        self.tree.search(b, |i| {
            if self.shapes[i].intersects(&rect) {
                out.push(self.tree.ids[i]);
            }
        });
        out.sort_unstable();
        out
    }

    /// Ids of the polygons intersecting a polygon; ordered by id.
    pub fn intersecting(&self, area: &Polygon<f64>) -> Vec<u32> {
        let Some(b) = area.bounding_rect() else { return vec![] };
        let mut out = Vec::new();
        self.tree.search(&[b.min().x, b.min().y, b.max().x, b.max().y], |i| {
            if self.shapes[i].intersects(area) {
                out.push(self.tree.ids[i]);
            }
        });
        out.sort_unstable();
        out
    }

    pub fn memory_bytes(&self) -> usize {
        use geo::CoordsIter;
        self.tree.memory_bytes() + self.shapes.iter().map(|s| s.coords_count() * 16 + 64).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, polygon};

    fn square(x: f64, y: f64, d: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![
            polygon![(x: x, y: y), (x: x + d, y: y), (x: x + d, y: y + d), (x: x, y: y + d), (x: x, y: y)],
        ])
    }

    #[test]
    fn containing_respects_boundaries_and_holes() {
        let mut with_hole = square(1.0, 0.0, 1.0);
        with_hole.0[0].interiors_push(LineString::from(vec![
            (1.25, 0.25),
            (1.75, 0.25),
            (1.75, 0.75),
            (1.25, 0.75),
            (1.25, 0.25),
        ]));
        let index = PolygonIndex::build(vec![(square(0.0, 0.0, 1.0), 7), (with_hole, 8), (square(5.0, 5.0, 1.0), 9)]);
        assert_eq!(index.containing(0.5, 0.5), vec![7]);
        assert_eq!(index.containing(1.0, 0.1), vec![7, 8], "a shared edge belongs to both");
        assert_eq!(index.containing(1.5, 0.5), Vec::<u32>::new(), "inside the hole");
        assert_eq!(index.containing(1.25, 0.5), vec![8], "on the hole's boundary");
        assert_eq!(index.containing(1.1, 0.9), vec![8]);
        assert_eq!(index.containing(3.0, 3.0), Vec::<u32>::new());
        assert_eq!(index.intersecting_bbox(&[0.9, 0.9, 5.5, 5.5]), vec![7, 8, 9]);
    }

    #[test]
    fn many_parcels_match_brute_force() {
        let mut items = Vec::new();
        for i in 0..2000u32 {
            let (x, y) = (f64::from(i % 50) * 0.01, f64::from(i / 50) * 0.01);
            items.push((square(x + 0.001, y + 0.001, 0.008), i));
        }
        let index = PolygonIndex::build(items.clone());
        for k in 0..500 {
            let (x, y) = (f64::from(k % 37) * 0.0137, f64::from(k % 23) * 0.0171);
            let c = Coord { x, y };
            let want: Vec<u32> = items
                .iter()
                .filter(|(g, _)| g.coordinate_position(&c) != CoordPos::Outside)
                .map(|(_, id)| *id)
                .collect();
            assert_eq!(index.containing(x, y), want);
        }
    }
}
