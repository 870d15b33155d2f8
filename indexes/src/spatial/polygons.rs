//! Polygons (parcels): which contain a point (boundary included, holes respected), which
//! intersect an area. The tree holds envelopes; exact predicates from `geo` decide.

use super::BBox;
use super::tree::PackedTree;
use geo::{BoundingRect, Coord, CoordinatePosition, Intersects, MultiPolygon, Polygon, coordinate_position::CoordPos};
use std::ops::ControlFlow;

/// An area parcels are asked to intersect.
#[derive(Clone, Copy, Debug)]
pub enum Area<'a> {
    Box(BBox),
    Polygon(&'a Polygon<f64>),
}

impl Area<'_> {
    pub fn envelope(&self) -> Option<BBox> {
        match self {
            Area::Box(b) => Some(*b),
            Area::Polygon(p) => p.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
        }
    }

    /// Whether a shape intersects the area (exact, `geo`).
    pub fn meets(&self, shape: &MultiPolygon<f64>) -> bool {
        match self {
            Area::Box(b) => shape.intersects(&geo::Rect::new(Coord { x: b[0], y: b[1] }, Coord { x: b[2], y: b[3] })),
            Area::Polygon(p) => shape.intersects(*p),
        }
    }
}

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
        let _ = self.tree.search(&[lon, lat, lon, lat], |i| {
            if self.shapes[i].coordinate_position(&c) != CoordPos::Outside {
                out.push(self.tree.ids[i]);
            }
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    /// Calls `visit(id)` for every polygon intersecting an area, in tree order, until it breaks.
    pub fn visit_intersecting(
        &self,
        area: &Area<'_>,
        mut visit: impl FnMut(u32) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(b) = area.envelope() else { return ControlFlow::Continue(()) };
        self.tree.search(&b, |i| {
            if area.meets(&self.shapes[i]) { visit(self.tree.ids[i]) } else { ControlFlow::Continue(()) }
        })
    }

    /// Ids of the polygons intersecting a box; ordered by id.
    pub fn intersecting_bbox(&self, b: &BBox) -> Vec<u32> {
        self.collect(&Area::Box(*b))
    }

    /// Ids of the polygons intersecting a polygon; ordered by id.
    pub fn intersecting(&self, area: &Polygon<f64>) -> Vec<u32> {
        self.collect(&Area::Polygon(area))
    }

    fn collect(&self, area: &Area<'_>) -> Vec<u32> {
        let mut out = Vec::new();
        let _ = self.visit_intersecting(area, |id| {
            out.push(id);
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    /// Writes the index, geometries included (see [`super::persist`]).
    pub fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        use super::persist::{put_f64s, put_u32s};
        self.tree.write(w)?;
        // Geometries: counts (polygons per shape, rings per polygon, points per ring), then coordinates.
        let mut counts = Vec::new();
        let mut coords = Vec::new();
        for shape in &self.shapes {
            counts.push(shape.0.len() as u32);
            for p in &shape.0 {
                counts.push(1 + p.interiors().len() as u32);
                for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                    counts.push(ring.0.len() as u32);
                    coords.extend(ring.0.iter().flat_map(|c| [c.x, c.y]));
                }
            }
        }
        put_u32s(w, &counts)?;
        put_f64s(w, coords.into_iter())
    }

    /// Reads an index written by [`PolygonIndex::write`].
    pub fn read(r: &mut impl std::io::Read) -> std::io::Result<PolygonIndex> {
        use super::persist::{bad, get_f64s, get_u32s};
        let tree = PackedTree::read(r)?;
        let counts = get_u32s(r)?;
        let coords = get_f64s(r)?;
        let (mut c, mut k) = (counts.iter().map(|&n| n as usize), 0usize);
        let mut next = || c.next().ok_or_else(|| bad("geometry counts"));
        let mut shapes = Vec::with_capacity(tree.leaves.len());
        for _ in 0..tree.leaves.len() {
            let mut polys = Vec::new();
            for _ in 0..next()? {
                let mut rings = Vec::new();
                for _ in 0..next()? {
                    let n = next()?;
                    let pts = coords.get(k..k + 2 * n).ok_or_else(|| bad("coordinates"))?;
                    rings.push(geo::LineString::from(pts.chunks_exact(2).map(|p| (p[0], p[1])).collect::<Vec<_>>()));
                    k += 2 * n;
                }
                let mut rings = rings.into_iter();
                let exterior = rings.next().ok_or_else(|| bad("polygon"))?;
                polys.push(Polygon::new(exterior, rings.collect()));
            }
            shapes.push(MultiPolygon(polys));
        }
        Ok(PolygonIndex { tree, shapes })
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

    /// A unit square at (1, 0) with a square hole in its middle.
    fn courtyard() -> MultiPolygon<f64> {
        let mut g = square(1.0, 0.0, 1.0);
        g.0[0].interiors_push(LineString::from(vec![
            (1.25, 0.25),
            (1.75, 0.25),
            (1.75, 0.75),
            (1.25, 0.75),
            (1.25, 0.25),
        ]));
        g
    }

    #[test]
    fn containing_respects_boundaries_and_holes() {
        let with_hole = courtyard();
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
    fn written_and_read_back_answers_the_same() {
        let with_hole = courtyard();
        let index = PolygonIndex::build(vec![(square(0.0, 0.0, 1.0), 7), (with_hole, 8)]);
        let mut bytes = Vec::new();
        index.write(&mut bytes).unwrap();
        let back = PolygonIndex::read(&mut bytes.as_slice()).unwrap();
        assert_eq!(back.shapes, index.shapes);
        assert_eq!(back.containing(1.5, 0.5), Vec::<u32>::new());
        assert_eq!(back.containing(1.0, 0.1), vec![7, 8]);
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
