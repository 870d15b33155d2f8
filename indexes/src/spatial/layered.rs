//! Spatial indexes that take changes without a rebuild: the packed, immutable base
//! ([`PointIndex`], [`PolygonIndex`]) with the ids of its entries that are no longer current
//! masked, and a small mutable rstar tree of what was added since the base was built. A change
//! makes a new value (copy on write of the small parts), so the value a reader holds never
//! changes under it. When the added part grows past a fraction of the base, the caller builds
//! a new base ([`LayeredPoints::delta_len`]).
//!
//! Answers are exact and in the same order as the base alone would give them: the added part
//! is searched with a box that holds every point within the distance in question (a box in
//! degrees around a circle on the sphere), and distances are great-circle distances.

use super::grid;
use super::points::Hit;
use super::polygons::Area;
use super::region::{Circle, Region};
use super::sphere::haversine_m;
use super::{BBox, PointIndex, PolygonIndex};
use geo::{BoundingRect, Coord, CoordinatePosition, MapCoords, MultiPolygon, coordinate_position::CoordPos};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

type AddedPoint = GeomWithData<[f64; 2], u32>;
type AddedBox = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// Metres per degree of latitude (the mean Earth radius the distances use).
const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

/// A box in degrees holding every point within `m` metres of `(lon, lat)`, or None when the
/// circle reaches a pole or spans the antimeridian's neighbourhood (then everything qualifies).
fn circle_box(lon: f64, lat: f64, m: f64) -> Option<AABB<[f64; 2]>> {
    if !m.is_finite() {
        return None;
    }
    let dlat = m / M_PER_DEG * 1.000_001 + 1e-9;
    let (lo, hi) = (lat - dlat, lat + dlat);
    if lo <= -89.9 || hi >= 89.9 {
        return None;
    }
    let widest = lo.abs().max(hi.abs()).to_radians().cos();
    let dlon = dlat / widest;
    if dlon >= 180.0 {
        return None;
    }
    Some(AABB::from_corners([lon - dlon, lo], [lon + dlon, hi]))
}

/// Points (citizens', entities' locations) with changes layered over a packed base.
#[derive(Clone, Debug)]
pub struct LayeredPoints {
    base: Arc<PointIndex>,
    masked: Arc<HashSet<u32>>,
    /// The masked base points where they lie, so that a count can take them off the base's.
    masked_points: Arc<RTree<AddedPoint>>,
    added: Arc<RTree<AddedPoint>>,
}

impl LayeredPoints {
    pub fn new(base: PointIndex) -> LayeredPoints {
        LayeredPoints {
            base: Arc::new(base),
            masked: Arc::default(),
            masked_points: Arc::default(),
            added: Arc::default(),
        }
    }

    pub fn base(&self) -> &PointIndex {
        &self.base
    }

    /// Current points.
    pub fn len(&self) -> usize {
        self.base.len() - self.masked.len() + self.added.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of the changed part: masked base points and added points.
    pub fn delta_len(&self) -> usize {
        self.masked.len() + self.added.size()
    }

    /// Base points masked.
    pub fn masked_len(&self) -> usize {
        self.masked.len()
    }

    /// A new value with base points `mask`ed, added points `remove`d and points `add`ed (ids
    /// are the caller's; an added id must not be a base id). Points are snapped to the grid, as
    /// the base holds them, so a point answers the same from either part.
    pub fn changed(&self, mask: &[u32], remove: &[([f64; 2], u32)], add: &[([f64; 2], u32)]) -> LayeredPoints {
        let mut masked = HashSet::clone(&self.masked);
        let new: HashSet<u32> = mask.iter().copied().filter(|id| masked.insert(*id)).collect();
        let found = self.base.points_of(&new);
        // Many at once: one bulk load beats inserting them one by one.
        let masked_points = if found.len() > 1024 && found.len() * 4 > self.masked_points.size() {
            let all = self.masked_points.iter().copied().chain(found.into_iter().map(|(p, id)| AddedPoint::new(p, id)));
            RTree::bulk_load(all.collect())
        } else {
            let mut tree = RTree::clone(&self.masked_points);
            for (p, id) in found {
                tree.insert(AddedPoint::new(p, id));
            }
            tree
        };
        let mut added = RTree::clone(&self.added);
        let on_grid = |p: [f64; 2]| grid::point_of(grid::point(p));
        for &(p, id) in remove {
            added.remove(&AddedPoint::new(on_grid(p), id));
        }
        for &(p, id) in add {
            added.insert(AddedPoint::new(on_grid(p), id));
        }
        LayeredPoints {
            base: self.base.clone(),
            masked: Arc::new(masked),
            masked_points: Arc::new(masked_points),
            added: Arc::new(added),
        }
    }

    /// The `k` current points nearest to `(lon, lat)`, nearest first (ties by id), optionally
    /// no farther than `max_m`.
    pub fn nearest(&self, lon: f64, lat: f64, k: usize, max_m: Option<f64>) -> Vec<Hit> {
        self.nearest_where(lon, lat, k, max_m, |_| true)
    }

    /// [`LayeredPoints::nearest`] among the points whose id `keep` accepts.
    pub fn nearest_where(
        &self,
        lon: f64,
        lat: f64,
        k: usize,
        max_m: Option<f64>,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<Hit> {
        let mut hits = if self.masked.is_empty() {
            self.base.nearest_where(lon, lat, k, max_m, &keep)
        } else {
            self.base.nearest_where(lon, lat, k, max_m, |id| !self.masked.contains(&id) && keep(id))
        };
        if self.added.size() == 0 {
            return hits;
        }
        // Added points can only enter the answer if they are nearer than its farthest hit.
        let reach = if hits.len() == k { hits.last().map_or(f64::INFINITY, |h| h.distance_m) } else { f64::INFINITY };
        let reach = reach.min(max_m.unwrap_or(f64::INFINITY));
        self.added_within(lon, lat, reach, |id, d| {
            if keep(id) {
                hits.push(Hit { id, distance_m: d })
            }
        });
        hits.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then(a.id.cmp(&b.id)));
        hits.truncate(k);
        hits
    }

    /// Calls `visit(id, distance)` for every added point within `m` metres.
    fn added_within(&self, lon: f64, lat: f64, m: f64, mut visit: impl FnMut(u32, f64)) {
        let mut check = |p: &AddedPoint| {
            let [x, y] = *p.geom();
            let d = haversine_m(lon, lat, x, y);
            if d <= m {
                visit(p.data, d);
            }
        };
        match circle_box(lon, lat, m) {
            Some(b) => self.added.locate_in_envelope(&b).for_each(&mut check),
            None => self.added.iter().for_each(&mut check),
        }
    }

    /// How many current points lie within `radius_m` (see [`PointIndex::count_within_radius`]).
    pub fn count_within_radius(&self, lon: f64, lat: f64, radius_m: f64) -> usize {
        self.count_in(&Circle { lon, lat, radius_m })
    }

    /// How many current points lie in a region: the base's count from its nodes, less its
    /// masked points there, plus the added points there.
    pub fn count_in(&self, region: &impl Region) -> usize {
        let in_region = |tree: &RTree<AddedPoint>| {
            let b = region.envelope();
            let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
            tree.locate_in_envelope(&env).filter(|p| region.contains(*p.geom())).count()
        };
        // Saturating: a masked point is a base point, so it was counted, but never panic on it.
        (self.base.count_in(region) + in_region(&self.added)).saturating_sub(in_region(&self.masked_points))
    }

    /// Calls `visit(id, [lon, lat])` for every current point in a region until it breaks: the
    /// base's in tree order, then the added ones.
    pub fn visit_in(
        &self,
        region: &impl Region,
        mut visit: impl FnMut(u32, [f64; 2]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.base.visit_in(
            region,
            |id, p| if self.masked.contains(&id) { ControlFlow::Continue(()) } else { visit(id, p) },
        )?;
        let b = region.envelope();
        let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        self.added
            .locate_in_envelope(&env)
            .filter(|p| region.contains(*p.geom()))
            .try_for_each(|p| visit(p.data, *p.geom()))
    }

    /// Heap bytes: the base and the changed part (estimated: rstar nodes are not exposed).
    pub fn memory_bytes(&self) -> usize {
        self.base.memory_bytes() + self.masked.len() * 56 + self.added.size() * 48
    }
}

/// Polygons (parcels) with changes layered over a packed base.
#[derive(Clone, Debug)]
pub struct LayeredPolygons {
    base: Arc<PolygonIndex>,
    masked: Arc<HashSet<u32>>,
    added: Arc<RTree<AddedBox>>,
    shapes: Arc<HashMap<u32, MultiPolygon<f64>>>,
}

fn envelope(g: &MultiPolygon<f64>) -> Option<Rectangle<[f64; 2]>> {
    g.bounding_rect().map(|r| Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]))
}

impl LayeredPolygons {
    pub fn new(base: PolygonIndex) -> LayeredPolygons {
        LayeredPolygons { base: Arc::new(base), masked: Arc::default(), added: Arc::default(), shapes: Arc::default() }
    }

    pub fn base(&self) -> &PolygonIndex {
        &self.base
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.masked.len() + self.added.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn delta_len(&self) -> usize {
        self.masked.len() + self.added.size()
    }

    pub fn masked_len(&self) -> usize {
        self.masked.len()
    }

    /// A new value with base polygons `mask`ed, added ones `remove`d (by id) and `add`ed
    /// (snapped to the grid, as the base holds them).
    pub fn changed(&self, mask: &[u32], remove: &[u32], add: Vec<(MultiPolygon<f64>, u32)>) -> LayeredPolygons {
        let mut masked = HashSet::clone(&self.masked);
        masked.extend(mask.iter().copied());
        let mut added = RTree::clone(&self.added);
        let mut shapes = HashMap::clone(&self.shapes);
        for id in remove {
            if let Some(g) = shapes.remove(id)
                && let Some(r) = envelope(&g)
            {
                added.remove(&AddedBox::new(r, *id));
            }
        }
        for (g, id) in add {
            let g = g.map_coords(|c| Coord { x: grid::snap(c.x), y: grid::snap(c.y) });
            if let Some(r) = envelope(&g) {
                added.insert(AddedBox::new(r, id));
                shapes.insert(id, g);
            }
        }
        LayeredPolygons {
            base: self.base.clone(),
            masked: Arc::new(masked),
            added: Arc::new(added),
            shapes: Arc::new(shapes),
        }
    }

    fn current(&self, mut ids: Vec<u32>, added: impl Iterator<Item = u32>) -> Vec<u32> {
        if !self.masked.is_empty() {
            ids.retain(|id| !self.masked.contains(id));
        }
        ids.extend(added);
        ids.sort_unstable();
        ids
    }

    /// Ids of the current polygons containing the point, boundary included; ordered by id.
    pub fn containing(&self, lon: f64, lat: f64) -> Vec<u32> {
        let c = Coord { x: lon, y: lat };
        let added = self
            .added
            .locate_all_at_point(&[lon, lat])
            .filter(|b| self.shapes.get(&b.data).is_some_and(|g| g.coordinate_position(&c) != CoordPos::Outside))
            .map(|b| b.data);
        self.current(self.base.containing(lon, lat), added)
    }

    /// Calls `visit(id)` for every current polygon intersecting an area until it breaks: the
    /// base's in tree order, then the added ones.
    pub fn visit_intersecting(
        &self,
        area: &Area<'_>,
        mut visit: impl FnMut(u32) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.base.visit_intersecting(area, |id| {
            if self.masked.contains(&id) { ControlFlow::Continue(()) } else { visit(id) }
        })?;
        let Some(b) = area.envelope() else { return ControlFlow::Continue(()) };
        let env = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        self.added
            .locate_in_envelope_intersecting(&env)
            .filter(|a| self.shapes.get(&a.data).is_some_and(|g| area.meets(g)))
            .try_for_each(|a| visit(a.data))
    }

    /// Ids of the current polygons intersecting a box; ordered by id.
    pub fn intersecting_bbox(&self, b: &BBox) -> Vec<u32> {
        let mut out = Vec::new();
        let _ = self.visit_intersecting(&Area::Box(*b), |id| {
            out.push(id);
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    pub fn memory_bytes(&self) -> usize {
        use geo::CoordsIter;
        self.base.memory_bytes()
            + self.masked.len() * 8
            + self.shapes.values().map(|s| s.coords_count() * 16 + 112).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::persist::{Mapped, Packed};
    use super::*;
    use proptest::prelude::*;

    fn brute(points: &[([f64; 2], u32)], lon: f64, lat: f64) -> Vec<Hit> {
        let mut all: Vec<Hit> =
            points.iter().map(|(p, id)| Hit { id: *id, distance_m: haversine_m(lon, lat, p[0], p[1]) }).collect();
        all.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then(a.id.cmp(&b.id)));
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A base with some points masked and others added answers as a base built from the
        /// current points would.
        #[test]
        fn layered_points_answer_as_a_rebuilt_index(
            base in prop::collection::vec((117.9f64..118.4, 24.4f64..24.8), 1..400),
            masked in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
            added in prop::collection::vec((117.9f64..118.4, 24.4f64..24.8), 0..60),
            lon in 117.8f64..118.5, lat in 24.3f64..24.9, k in 1usize..30, r in 10.0f64..20_000.0,
        ) {
            // Points as a load stores them: on the grid.
            let on_grid = |x: f64, y: f64| [grid::snap(x), grid::snap(y)];
            let base: Vec<([f64; 2], u32)> = base.into_iter().enumerate().map(|(i, (x, y))| (on_grid(x, y), i as u32)).collect();
            let n = base.len() as u32;
            let mask: Vec<u32> = masked.iter().map(|i| i.index(base.len()) as u32).collect();
            let add: Vec<([f64; 2], u32)> = added.into_iter().enumerate().map(|(i, (x, y))| (on_grid(x, y), n + i as u32)).collect();
            // The base as a server holds it: written to its file form and read where it lies.
            let mut file = Vec::new();
            PointIndex::build(base.clone()).write(&mut file).unwrap();
            let mapped = PointIndex::map(&mut Mapped::of(file)).unwrap();
            let layered = LayeredPoints::new(mapped).changed(&mask, &[], &add);
            let mut current: Vec<([f64; 2], u32)> = base.into_iter().filter(|(_, id)| !mask.contains(id)).collect();
            current.extend(add.iter().copied());
            let all = brute(&current, lon, lat);
            prop_assert_eq!(layered.len(), current.len());
            prop_assert_eq!(layered.nearest(lon, lat, k, None), all.iter().take(k).copied().collect::<Vec<_>>());
            let within: Vec<Hit> = all.iter().filter(|h| h.distance_m <= r).copied().collect();
            prop_assert_eq!(layered.count_within_radius(lon, lat, r), within.len());
            prop_assert_eq!(layered.nearest(lon, lat, usize::MAX, Some(r)), within);
            let b = [lon - 0.05, lat - 0.03, lon + 0.05, lat + 0.03];
            let mut got = Vec::new();
            let _ = layered.visit_in(&b, |id, _| {
                got.push(id);
                ControlFlow::Continue(())
            });
            prop_assert_eq!(layered.count_in(&b), got.len());
            got.sort_unstable();
            let mut want: Vec<u32> = current.iter().filter(|(p, _)| p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3]).map(|(_, id)| *id).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
            // Removing what was added gives the masked base back.
            let back = layered.changed(&[], &add, &[]);
            prop_assert_eq!(back.len(), current.len() - add.len());
        }
    }

    fn square(x: f64, y: f64, d: f64) -> MultiPolygon<f64> {
        let ring = vec![(x, y), (x + d, y), (x + d, y + d), (x, y + d), (x, y)];
        MultiPolygon(vec![geo::Polygon::new(geo::LineString::from(ring), vec![])])
    }

    #[test]
    fn layered_polygons_mask_replace_and_add() {
        let base = PolygonIndex::build(vec![(square(0.0, 0.0, 1.0), 0), (square(2.0, 0.0, 1.0), 1)]);
        let layered = LayeredPolygons::new(base);
        // Parcel 0 moves (masked, re-added as 2); a new parcel 3 appears.
        let moved = layered.changed(&[0], &[], vec![(square(5.0, 5.0, 1.0), 2), (square(0.5, 0.5, 1.0), 3)]);
        assert_eq!(moved.containing(0.2, 0.2), Vec::<u32>::new());
        assert_eq!(moved.containing(0.7, 0.7), vec![3]);
        assert_eq!(moved.containing(5.5, 5.5), vec![2]);
        assert_eq!(moved.intersecting_bbox(&[0.0, 0.0, 6.0, 6.0]), vec![1, 2, 3]);
        let again = moved.changed(&[], &[3], vec![]);
        assert_eq!(again.containing(0.7, 0.7), Vec::<u32>::new());
        assert_eq!(again.len(), 2);
        assert_eq!(layered.containing(0.2, 0.2), vec![0], "the earlier value is unchanged");
    }
}
