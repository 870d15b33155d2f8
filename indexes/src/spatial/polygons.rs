//! Polygons (parcels): which contain a point (boundary included, holes respected), which
//! intersect an area. The tree holds envelopes; exact predicates from `geo` decide, on the
//! shapes as the grid ([`grid`]) holds them.

use super::BBox;
use super::grid::{self, GridBox, GridPoint};
use super::persist::{Mapped, Packed, Run, put_fixed};
use super::tree::PackedTree;
use geo::{
    BoundingRect, Coord, CoordinatePosition, CoordsIter, Intersects, MultiPolygon, Polygon,
    coordinate_position::CoordPos,
};
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
    tree: PackedTree<GridBox>,
    /// Geometries by tree position.
    shapes: Shapes,
}

/// Geometries stored flat, their points on the grid: four runs for all of them, where `geo`'s
/// nested vectors take three or more allocations a parcel (a generated parcel with its tree
/// entry, by the layout: 206 bytes nested, 158 flat in `f64`, 93 on the grid). A shape is rebuilt as a
/// `MultiPolygon` only for the exact test of a candidate.
#[derive(Debug, Default)]
struct Shapes {
    /// Shape after shape: its polygons, then for each polygon its rings, then for each ring
    /// its points.
    counts: Run<u32>,
    coords: Run<GridPoint>,
    /// Where each shape starts in `counts` and in `coords`, and one entry past the last.
    count_at: Run<u32>,
    coord_at: Run<u64>,
}

/// [`Shapes`] as a build appends them.
#[derive(Debug)]
struct FlatShapes {
    counts: Vec<u32>,
    coords: Vec<GridPoint>,
    count_at: Vec<u32>,
    coord_at: Vec<u64>,
}

impl Default for FlatShapes {
    fn default() -> FlatShapes {
        FlatShapes::with_capacity(0, 0, 0)
    }
}

impl FlatShapes {
    /// No shapes yet, with room for `shapes` of them, `counts` counts and `coords` points.
    fn with_capacity(shapes: usize, counts: usize, coords: usize) -> FlatShapes {
        let mut out = FlatShapes {
            counts: Vec::with_capacity(counts),
            coords: Vec::with_capacity(coords),
            count_at: Vec::with_capacity(shapes + 1),
            coord_at: Vec::with_capacity(shapes + 1),
        };
        out.count_at.push(0);
        out.coord_at.push(0);
        out
    }

    /// Ends the shape whose counts and points were just appended.
    fn close(&mut self) {
        self.count_at.push(self.counts.len() as u32);
        self.coord_at.push(self.coords.len() as u64);
    }

    /// Appends a shape, its points snapped to the grid.
    fn push(&mut self, g: &MultiPolygon<f64>) {
        self.counts.push(g.0.len() as u32);
        for p in &g.0 {
            self.counts.push(1 + p.interiors().len() as u32);
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                self.counts.push(ring.0.len() as u32);
                self.coords.extend(ring.0.iter().map(|c| grid::point([c.x, c.y])));
            }
        }
        self.close();
    }

    /// The same shapes in another order (`order[k]` is the shape to put at `k`), finished.
    fn reorder(&self, order: impl ExactSizeIterator<Item = u32>) -> Shapes {
        let mut out = FlatShapes::with_capacity(order.len(), self.counts.len(), self.coords.len());
        for i in order {
            let i = i as usize;
            out.counts.extend_from_slice(&self.counts[self.count_at[i] as usize..self.count_at[i + 1] as usize]);
            out.coords.extend_from_slice(&self.coords[self.coord_at[i] as usize..self.coord_at[i + 1] as usize]);
            out.close();
        }
        Shapes {
            counts: out.counts.into(),
            coords: out.coords.into(),
            count_at: out.count_at.into(),
            coord_at: out.coord_at.into(),
        }
    }
}

impl Shapes {
    fn len(&self) -> usize {
        self.count_at.len().saturating_sub(1)
    }

    /// Shape `i` as `geo` has it (counts past what is there read as none: never a panic).
    fn get(&self, i: usize) -> MultiPolygon<f64> {
        let (c0, c1) = (self.count_at.at(i).unwrap_or(0) as usize, self.count_at.at(i + 1).unwrap_or(0) as usize);
        let mut counts = (c0..c1).map(|c| self.counts.at(c).unwrap_or(0) as usize);
        let mut at = self.coord_at.at(i).unwrap_or(0) as usize;
        let mut next = || counts.next().unwrap_or(0);
        let polygons = next();
        let mut out = Vec::with_capacity(polygons.min(1024));
        for _ in 0..polygons {
            let rings = next();
            let mut ring = |n: usize| {
                let r: Vec<Coord<f64>> = (at..at + n)
                    .map_while(|k| self.coords.at(k))
                    .map(grid::point_of)
                    .map(|[x, y]| Coord { x, y })
                    .collect();
                at += n;
                geo::LineString(r)
            };
            let exterior = ring(next());
            let interiors = (1..rings).map(|_| ring(next())).collect();
            out.push(Polygon::new(exterior, interiors));
        }
        MultiPolygon(out)
    }

    fn memory_bytes(&self) -> usize {
        self.counts.heap_bytes() + self.coords.heap_bytes() + self.count_at.heap_bytes() + self.coord_at.heap_bytes()
    }

    fn mapped_bytes(&self) -> usize {
        self.counts.mapped_bytes()
            + self.coords.mapped_bytes()
            + self.count_at.mapped_bytes()
            + self.coord_at.mapped_bytes()
    }

    fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        self.counts.write(w)?;
        self.coords.write(w)?;
        self.count_at.write(w)?;
        self.coord_at.write(w)
    }

    /// Shapes [`Shapes::write`] wrote for `n` leaves, where they lie; their offsets are
    /// checked to be in order and within the runs at their ends (the file's CRC covers the rest).
    fn map(m: &mut Mapped, n: usize) -> std::io::Result<Shapes> {
        let shapes = Shapes { counts: m.run()?, coords: m.run()?, count_at: m.run()?, coord_at: m.run()? };
        let ends = |first: Option<u64>, last: Option<u64>, len: usize| first == Some(0) && last == Some(len as u64);
        if shapes.count_at.len() != n + 1
            || shapes.coord_at.len() != n + 1
            || !ends(shapes.count_at.at(0).map(u64::from), shapes.count_at.at(n).map(u64::from), shapes.counts.len())
            || !ends(shapes.coord_at.at(0), shapes.coord_at.at(n), shapes.coords.len())
        {
            return Err(super::persist::bad("geometry counts"));
        }
        Ok(shapes)
    }
}

/// Builds a [`PolygonIndex`] a geometry at a time, each stored flat as it comes, so that a
/// build never holds every parcel as `geo` values at once.
#[derive(Debug, Default)]
pub struct PolygonBuilder {
    shapes: FlatShapes,
    boxes: Vec<(GridBox, u32)>,
    ids: Vec<u32>,
}

impl PolygonBuilder {
    /// Adds a geometry with the caller's id; an empty one is skipped.
    pub fn push(&mut self, g: &MultiPolygon<f64>, id: u32) {
        let Some(envelope) = grid::envelope(g.coords_iter().map(|c| grid::point([c.x, c.y]))) else { return };
        self.boxes.push((envelope, self.ids.len() as u32));
        self.ids.push(id);
        self.shapes.push(g);
    }

    pub fn finish(self) -> PolygonIndex {
        let tree = PackedTree::build(self.boxes);
        let shapes = self.shapes.reorder(tree.ids.iter());
        let ids: Vec<u32> = tree.ids.iter().map(|i| self.ids[i as usize]).collect();
        PolygonIndex { tree: PackedTree { ids: ids.into(), ..tree }, shapes }
    }

    /// Writes what [`Packed::write`] writes of [`PolygonBuilder::finish`]'s index without
    /// building it: the shapes are written in tree order from where they were pushed, so the
    /// build never holds the reordered copy `finish` makes (about half its memory).
    pub fn write_built(self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let PolygonBuilder { shapes: s, boxes, ids } = self;
        let leaves: Vec<GridBox> = boxes.into_iter().map(|(b, _)| b).collect();
        let order = PackedTree::write_ordered(leaves, |i| ids[i as usize], w)?;
        let counts = |i: usize| s.count_at[i] as usize..s.count_at[i + 1] as usize;
        let coords = |i: usize| s.coord_at[i] as usize..s.coord_at[i + 1] as usize;
        let shapes = || order.iter().map(|&o| o as usize);
        put_fixed(w, s.counts.len(), shapes().flat_map(|i| s.counts[counts(i)].iter().copied()))?;
        put_fixed(w, s.coords.len(), shapes().flat_map(|i| s.coords[coords(i)].iter().copied()))?;
        // Where each shape starts, in tree order, and one past the last.
        let count_ends = std::iter::once(0).chain(shapes().scan(0u32, |at, i| {
            *at += counts(i).len() as u32;
            Some(*at)
        }));
        put_fixed(w, order.len() + 1, count_ends)?;
        let coord_ends = std::iter::once(0).chain(shapes().scan(0u64, |at, i| {
            *at += coords(i).len() as u64;
            Some(*at)
        }));
        put_fixed(w, order.len() + 1, coord_ends)
    }
}

impl PolygonIndex {
    /// Builds from `(geometry, id)` pairs (WGS84 degrees). Empty geometries are skipped.
    pub fn build(items: Vec<(MultiPolygon<f64>, u32)>) -> PolygonIndex {
        let mut b = PolygonBuilder::default();
        for (g, id) in items {
            b.push(&g, id);
        }
        b.finish()
    }

    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the polygons containing the point, its boundary included; ordered by id.
    pub fn containing(&self, lon: f64, lat: f64) -> Vec<u32> {
        let c = Coord { x: lon, y: lat };
        let mut out = Vec::new();
        let _ = self.tree.search(&[lon, lat, lon, lat], |i| {
            if self.shapes.get(i).coordinate_position(&c) != CoordPos::Outside {
                out.push(self.tree.ids.get(i));
            }
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    /// Calls `visit(id)` for every polygon intersecting an area, in tree order, until it breaks.
    /// A polygon whose envelope lies inside a box area meets it without an exact test.
    pub fn visit_intersecting(
        &self,
        area: &Area<'_>,
        mut visit: impl FnMut(u32) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(b) = area.envelope() else { return ControlFlow::Continue(()) };
        self.tree.search(&b, |i| {
            let inside = |e: &BBox| e[0] >= b[0] && e[1] >= b[1] && e[2] <= b[2] && e[3] <= b[3];
            let meets = match area {
                Area::Box(_) if inside(&grid::box_of(self.tree.leaves.get(i))) => true,
                _ => area.meets(&self.shapes.get(i)),
            };
            if meets { visit(self.tree.ids.get(i)) } else { ControlFlow::Continue(()) }
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

    /// Heap bytes (a mapped index holds none).
    pub fn memory_bytes(&self) -> usize {
        self.tree.memory_bytes() + self.shapes.memory_bytes()
    }

    /// Bytes of a file the index reads where they lie.
    pub fn mapped_bytes(&self) -> usize {
        self.tree.mapped_bytes() + self.shapes.mapped_bytes()
    }
}

/// The geometries are written after the tree.
impl Packed for PolygonIndex {
    fn write<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        self.tree.write(w)?;
        self.shapes.write(w)
    }

    fn map(m: &mut Mapped) -> std::io::Result<PolygonIndex> {
        let tree = PackedTree::map(m)?;
        let shapes = Shapes::map(m, tree.leaves.len())?;
        Ok(PolygonIndex { tree, shapes })
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
        let back = PolygonIndex::map(&mut Mapped::of(bytes.clone())).unwrap();
        assert_eq!(back.memory_bytes(), 0, "read where it lies");
        for i in 0..2 {
            assert_eq!(back.shapes.get(i), index.shapes.get(i));
        }
        for cut in 0..bytes.len() {
            assert!(PolygonIndex::map(&mut Mapped::of(bytes[..cut].to_vec())).is_err(), "cut at {cut}");
        }
        assert_eq!(back.containing(1.5, 0.5), Vec::<u32>::new());
        assert_eq!(back.containing(1.0, 0.1), vec![7, 8]);
    }

    /// Writing as built gives the bytes of the finished index written: shapes of one to
    /// three polygons, holes, empty geometries skipped, ids not in push order.
    #[test]
    fn written_as_built_is_finished_then_written() {
        for n in [0u32, 1, 2, 17, 300, 1000] {
            let (mut a, mut b) = (PolygonBuilder::default(), PolygonBuilder::default());
            for i in 0..n {
                let (x, y) = (f64::from(i * 37 % 101) * 0.013, f64::from(i * 53 % 89) * 0.017);
                let mut g = if i % 5 == 0 { courtyard() } else { square(x, y, 0.004 + f64::from(i % 7) * 0.001) };
                if i % 3 == 0 {
                    g.0.push(square(y, x, 0.002).0.remove(0));
                }
                if i % 11 == 0 {
                    g = MultiPolygon(vec![]);
                }
                let id = (i * 7919) % 10007;
                a.push(&g, id);
                b.push(&g, id);
            }
            let (mut finished, mut direct) = (Vec::new(), Vec::new());
            a.finish().write(&mut finished).unwrap();
            b.write_built(&mut direct).unwrap();
            assert_eq!(direct, finished, "{n} shapes");
        }
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
            // Boxes from inside one parcel to over many: envelopes inside the box skip the
            // exact test, the others take it.
            let d = f64::from(k % 11) * 0.007;
            let b = [x, y, x + d, y + d * 0.5];
            let area = Area::Box(b);
            let want: Vec<u32> = items.iter().filter(|(g, _)| area.meets(g)).map(|(_, id)| *id).collect();
            assert_eq!(index.intersecting_bbox(&b), want, "box {b:?}");
        }
        let inside_hole = [1.4, 0.4, 1.6, 0.6];
        let index = PolygonIndex::build(vec![(courtyard(), 8)]);
        assert_eq!(index.intersecting_bbox(&inside_hole), Vec::<u32>::new(), "a box inside the hole");
        assert_eq!(index.intersecting_bbox(&[0.5, -1.0, 3.0, 2.0]), vec![8], "a box around it");
    }
}
