//! Polygons (parcels): which contain a point (boundary included, holes respected), which
//! intersect an area. The tree holds envelopes; exact predicates from `geo` decide, on the
//! shapes as the grid ([`grid`]) holds them.

use super::BBox;
use super::grid::{self, GridBox, GridPoint};
use super::ids::Ids;
use super::persist::{Mapped, Packed, Run, put_bytes, put_fixed, put_u64, put_var};
use super::tree::PackedTree;
use geo::{
    BoundingRect, Coord, CoordinatePosition, CoordsIter, Intersects, MultiPolygon, Polygon,
    coordinate_position::CoordPos,
};
use integer_encoding::VarInt;
use std::ops::ControlFlow;
use tantivy::directory::OwnedBytes;

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

/// Geometries coded flat, their points on the grid, as varints (LEB128, `integer-encoding`):
/// shape after shape, its polygon count; for each polygon its ring count; for each ring its
/// point count, then its points, each as its zigzag step in x and in y from the point before
/// (the shape's first from its envelope's lower-left corner, which the tree holds as its leaf).
/// Neighbouring vertices of a parcel are close, so a vertex takes 2–6 bytes instead of the 8
/// of an `i32` pair, and a count one byte instead of four. A shape is decoded into a
/// `MultiPolygon` only for the exact test of a candidate.
#[derive(Debug)]
struct Shapes {
    coded: OwnedBytes,
    /// Where each shape starts in `coded`, and one past the last.
    at: Run<u64>,
}

/// [`Shapes`] as a build appends them.
#[derive(Debug)]
struct FlatShapes {
    coded: Vec<u8>,
    at: Vec<u64>,
}

impl Default for FlatShapes {
    fn default() -> FlatShapes {
        FlatShapes::with_capacity(0, 0)
    }
}

impl FlatShapes {
    /// No shapes yet, with room for `shapes` of them in `bytes`.
    fn with_capacity(shapes: usize, bytes: usize) -> FlatShapes {
        let mut at = Vec::with_capacity(shapes + 1);
        at.push(0);
        FlatShapes { coded: Vec::with_capacity(bytes), at }
    }

    /// Appends a shape, its points snapped to the grid and coded from `origin` (its
    /// envelope's lower-left corner).
    fn push(&mut self, g: &MultiPolygon<f64>, origin: GridPoint) {
        let out = &mut self.coded;
        put_var(out, g.0.len() as u64);
        let mut last = origin;
        for p in &g.0 {
            put_var(out, 1 + p.interiors().len() as u64);
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                put_var(out, ring.0.len() as u64);
                for c in &ring.0 {
                    let q = grid::point([c.x, c.y]);
                    put_var(out, i64::from(q[0]) - i64::from(last[0]));
                    put_var(out, i64::from(q[1]) - i64::from(last[1]));
                    last = q;
                }
            }
        }
        self.at.push(out.len() as u64);
    }

    /// The bytes of shape `i`.
    fn shape(&self, i: usize) -> &[u8] {
        &self.coded[self.at[i] as usize..self.at[i + 1] as usize]
    }

    fn finish(self) -> Shapes {
        Shapes { coded: OwnedBytes::new(self.coded), at: self.at.into() }
    }

    /// The same shapes in another order (`order[k]` is the shape to put at `k`), finished.
    fn reorder(&self, order: impl ExactSizeIterator<Item = u32>) -> Shapes {
        let mut out = FlatShapes::with_capacity(order.len(), self.coded.len());
        for i in order {
            out.coded.extend_from_slice(self.shape(i as usize));
            out.at.push(out.coded.len() as u64);
        }
        out.finish()
    }
}

impl Shapes {
    fn len(&self) -> usize {
        self.at.len().saturating_sub(1)
    }

    /// Whether the shapes are a file's bytes (mapped), not the heap's.
    fn mapped(&self) -> bool {
        matches!(self.at, Run::Mapped(_))
    }

    /// Shape `i` as `geo` has it, coded from `origin` (bytes that are not a shape read as
    /// fewer points or none: never a panic).
    fn get(&self, i: usize, origin: GridPoint) -> MultiPolygon<f64> {
        let (a, b) = (self.at.at(i).unwrap_or(0) as usize, self.at.at(i + 1).unwrap_or(0) as usize);
        let mut s = self.coded.as_slice().get(a..b).unwrap_or_default();
        let next = |s: &mut &[u8]| -> Option<i64> {
            let (v, n) = i64::decode_var(s)?;
            *s = s.get(n..)?;
            Some(v)
        };
        let count = |s: &mut &[u8]| -> usize {
            let Some((v, n)) = u64::decode_var(s) else { return 0 };
            *s = s.get(n..).unwrap_or_default();
            // A count is never more than the bytes left could code (two a point, one a count).
            (v as usize).min(s.len())
        };
        let mut last = origin;
        let polygons = count(&mut s);
        let mut out = Vec::with_capacity(polygons);
        for _ in 0..polygons {
            let rings = count(&mut s);
            let mut ring = |s: &mut &[u8]| {
                let n = count(s);
                let mut r = Vec::with_capacity(n.min(s.len() / 2));
                for _ in 0..n {
                    let (Some(dx), Some(dy)) = (next(s), next(s)) else { break };
                    let step = |v: i32, d: i64| i32::try_from(i64::from(v) + d).unwrap_or(v);
                    last = [step(last[0], dx), step(last[1], dy)];
                    let [x, y] = grid::point_of(last);
                    r.push(Coord { x, y });
                }
                geo::LineString(r)
            };
            let exterior = ring(&mut s);
            let interiors = (1..rings).map(|_| ring(&mut s)).collect();
            out.push(Polygon::new(exterior, interiors));
        }
        MultiPolygon(out)
    }

    fn memory_bytes(&self) -> usize {
        self.at.heap_bytes() + if self.mapped() { 0 } else { self.coded.len() }
    }

    fn mapped_bytes(&self) -> usize {
        self.at.mapped_bytes() + if self.mapped() { self.coded.len() } else { 0 }
    }

    fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        put_bytes(w, self.coded.as_slice())?;
        self.at.write(w)
    }

    /// Shapes [`Shapes::write`] wrote for `n` leaves, where they lie; their offsets are
    /// checked to start at 0 and end at the bytes' end (the file's CRC covers the rest).
    fn map(m: &mut Mapped, n: usize) -> std::io::Result<Shapes> {
        let shapes = Shapes { coded: m.bytes()?, at: m.run()? };
        if shapes.at.len() != n + 1 || shapes.at.at(0) != Some(0) || shapes.at.at(n) != Some(shapes.coded.len() as u64)
        {
            return Err(super::persist::bad("geometry offsets"));
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
        self.shapes.push(g, [envelope[0], envelope[1]]);
    }

    pub fn finish(self) -> PolygonIndex {
        let tree = PackedTree::build(self.boxes);
        let shapes = self.shapes.reorder(tree.ids.iter());
        let ids: Vec<u32> = tree.ids.iter().map(|i| self.ids[i as usize]).collect();
        PolygonIndex { tree: tree.with_ids(Ids::from(&ids[..])), shapes }
    }

    /// Writes what [`Packed::write`] writes of [`PolygonBuilder::finish`]'s index without
    /// building it: the shapes are written in tree order from where they were pushed, so the
    /// build never holds the reordered copy `finish` makes (about half its memory).
    pub fn write_built(self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let PolygonBuilder { shapes: s, boxes, ids } = self;
        let leaves: Vec<GridBox> = boxes.into_iter().map(|(b, _)| b).collect();
        let order = PackedTree::write_ordered(leaves, |i| ids[i as usize], w)?;
        let shapes = || order.iter().map(|&o| s.shape(o as usize));
        put_u64(w, s.coded.len() as u64)?;
        for shape in shapes() {
            w.write_all(shape)?;
        }
        // Where each shape starts, in tree order, and one past the last.
        let ends = std::iter::once(0).chain(shapes().scan(0u64, |at, shape| {
            *at += shape.len() as u64;
            Some(*at)
        }));
        put_fixed(w, order.len() + 1, ends)
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

    /// The shape at tree position `i`, whose envelope (the tree's leaf) is `e`.
    fn shape(&self, i: usize, e: GridBox) -> MultiPolygon<f64> {
        self.shapes.get(i, [e[0], e[1]])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the polygons containing the point, its boundary included; ordered by id.
    pub fn containing(&self, lon: f64, lat: f64) -> Vec<u32> {
        let c = Coord { x: lon, y: lat };
        let mut out = Vec::new();
        let _ = self.tree.search(&[lon, lat, lon, lat], |i, e| {
            if self.shape(i, e).coordinate_position(&c) != CoordPos::Outside {
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
        self.tree.search(&b, |i, e| {
            let inside = |e: &BBox| e[0] >= b[0] && e[1] >= b[1] && e[2] <= b[2] && e[3] <= b[3];
            let meets = match area {
                Area::Box(_) if inside(&grid::box_of(e)) => true,
                _ => area.meets(&self.shape(i, e)),
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
        let shapes = Shapes::map(m, tree.len())?;
        Ok(PolygonIndex { tree, shapes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MapCoords, polygon};

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
            assert_eq!(back.shape(i, back.tree.leaf(i)), index.shape(i, index.tree.leaf(i)));
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

    /// Shapes of many vertices anywhere on the globe (negative, at ±180 and ±90, holes,
    /// several polygons, far-apart parts) come back from their file exactly as the grid
    /// holds them; and a file with any byte flipped is refused or reads without a panic.
    #[test]
    fn coded_shapes_come_back_exactly_and_damage_never_panics() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let coord = (-180.0f64..=180.0, -90.0f64..=90.0);
        let ring = prop::collection::vec(coord, 1..40);
        let polygon = (ring.clone(), prop::collection::vec(ring, 0..3));
        let shape = prop::collection::vec(polygon, 1..4);
        let mut runner = TestRunner::new(Config { cases: 64, ..Config::default() });
        runner
            .run(&prop::collection::vec(shape, 1..30), |shapes| {
                let shapes: Vec<MultiPolygon<f64>> = shapes
                    .into_iter()
                    .map(|ps| {
                        let ring = |r: Vec<(f64, f64)>| LineString::from(r);
                        MultiPolygon(
                            ps.into_iter()
                                .map(|(ext, holes)| Polygon::new(ring(ext), holes.into_iter().map(ring).collect()))
                                .collect(),
                        )
                    })
                    .collect();
                let on_grid = |g: &MultiPolygon<f64>| {
                    g.map_coords(|c| {
                        let [x, y] = grid::point_of(grid::point([c.x, c.y]));
                        Coord { x, y }
                    })
                };
                let index = PolygonIndex::build(shapes.iter().cloned().zip(0u32..).collect());
                let mut bytes = Vec::new();
                index.write(&mut bytes).unwrap();
                let back = PolygonIndex::map(&mut Mapped::of(bytes.clone())).unwrap();
                for i in 0..back.len() {
                    let id = back.tree.ids.get(i) as usize;
                    prop_assert_eq!(back.shape(i, back.tree.leaf(i)), on_grid(&shapes[id]));
                }
                for k in (0..bytes.len()).step_by(7) {
                    let mut bad = bytes.clone();
                    bad[k] ^= 0x5a;
                    if let Ok(b) = PolygonIndex::map(&mut Mapped::of(bad)) {
                        for i in 0..b.len() {
                            let _ = b.shape(i, b.tree.leaf(i));
                        }
                        let _ = b.containing(0.0, 0.0);
                    }
                }
                Ok(())
            })
            .unwrap();
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
