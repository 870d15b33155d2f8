//! Points (citizens' and entities' locations): nearest neighbours, radius and box queries
//! with great-circle distances in metres.

use super::BBox;
use super::external::SpilledLeaves;
use super::grid::{self, GridPoint};
use super::persist::{Mapped, Packed};
use super::region::{Circle, Region};
use super::sphere::{haversine_m, min_dist_to_box_m};
use super::tree::{NodeRef, PackedTree};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::HashSet;
use std::ops::ControlFlow;

/// A point found: the caller's id and its distance from the query point in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: u32,
    pub distance_m: f64,
}

/// An immutable index of points on the grid ([`grid`]); about 8 bytes per point at 10M (its
/// steps from its node's corner, its id bit-packed, and a node box per 16).
#[derive(Debug)]
pub struct PointIndex {
    tree: PackedTree<GridPoint>,
}

/// A best-first search entry: nodes before leaves at equal distance, so that every leaf tied
/// with a popped leaf is already in the heap and ties resolve by id.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    dist: f64,
    leaf: bool,
    id: u32,
    node: NodeRef,
    pos: usize,
}

impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap and we want the least first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.dist.total_cmp(&self.dist).then(o.leaf.cmp(&self.leaf)).then(o.id.cmp(&self.id))
    }
}

/// Points moved out to a scratch file as a build reads them, for
/// [`PointIndex::write_spilled`].
#[derive(Debug)]
pub struct SpilledPoints(SpilledLeaves<GridPoint>);

impl SpilledPoints {
    /// Points moved out to `file` (an empty scratch file).
    pub fn new(file: std::fs::File) -> SpilledPoints {
        SpilledPoints(SpilledLeaves::new(file))
    }

    pub fn push(&mut self, point: GridPoint) -> std::io::Result<()> {
        self.0.push(point)
    }
}

impl PointIndex {
    /// Builds from `([lon, lat], id)` pairs (WGS84 degrees, snapped to the grid).
    pub fn build(points: Vec<([f64; 2], u32)>) -> PointIndex {
        PointIndex { tree: PackedTree::build(points.into_iter().map(|(p, id)| (grid::point(p), id)).collect()) }
    }

    /// Builds from grid points and their ids (same length), sorted in place: what a large
    /// build uses, holding 20 bytes per point at its peak.
    pub fn from_parts(points: Vec<GridPoint>, ids: Vec<u32>) -> PointIndex {
        PointIndex { tree: PackedTree::from_parts(points, ids) }
    }

    /// Writes what [`Packed::write`] writes of `from_parts(points, 0..n)` for the points pushed
    /// to `points` (each point's id is its position), by an external sort in runs of `budget`
    /// bytes (`runs`: an empty scratch file): the build holds the budget and a byte a point,
    /// however many points there are. Once `stop` is set it gives up with an `Interrupted`
    /// error.
    pub fn write_spilled(
        points: SpilledPoints,
        runs: std::fs::File,
        budget: usize,
        stop: &std::sync::atomic::AtomicBool,
        w: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        super::external::write_built(points.0, runs, budget, stop, w)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.tree.memory_bytes()
    }

    /// The `k` points nearest to `(lon, lat)`, nearest first (ties by id), optionally no
    /// farther than `max_m`.
    pub fn nearest(&self, lon: f64, lat: f64, k: usize, max_m: Option<f64>) -> Vec<Hit> {
        self.nearest_where(lon, lat, k, max_m, |_| true)
    }

    /// [`PointIndex::nearest`] among the points whose id `keep` accepts.
    pub fn nearest_where(
        &self,
        lon: f64,
        lat: f64,
        k: usize,
        max_m: Option<f64>,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<Hit> {
        let mut out = Vec::with_capacity(k.min(1024));
        let Some(root) = self.tree.root() else { return out };
        let limit = max_m.unwrap_or(f64::INFINITY);
        let mut heap = BinaryHeap::new();
        let node_entry = |n: NodeRef| Entry {
            dist: min_dist_to_box_m(lon, lat, &self.tree.bbox(n)),
            leaf: false,
            id: 0,
            node: n,
            pos: 0,
        };
        heap.push(node_entry(root));
        while let Some(e) = heap.pop() {
            if out.len() >= k || e.dist > limit {
                break;
            }
            if e.leaf {
                out.push(Hit { id: e.id, distance_m: e.dist });
                continue;
            }
            if e.node.level == 0 {
                for (c, leaf) in self.tree.leaves_of(e.node.index) {
                    let id = self.tree.ids.get(c);
                    if !keep(id) {
                        continue;
                    }
                    let [x, y] = grid::point_of(leaf);
                    let d = haversine_m(lon, lat, x, y);
                    if d <= limit {
                        heap.push(Entry { dist: d, leaf: true, id, node: e.node, pos: c });
                    }
                }
                continue;
            }
            for c in self.tree.children(e.node) {
                let child = node_entry(NodeRef { level: e.node.level - 1, index: c });
                if child.dist <= limit {
                    heap.push(child);
                }
            }
        }
        out
    }

    /// How many points lie within `radius_m`: nodes wholly inside the circle add their counts
    /// unvisited, so a city-wide radius costs its boundary, not its points.
    pub fn count_within_radius(&self, lon: f64, lat: f64, radius_m: f64) -> usize {
        self.tree.count_in(&Circle { lon, lat, radius_m })
    }

    /// How many points lie in a region (its boundary included), counted as
    /// [`PointIndex::count_within_radius`] is.
    pub fn count_in(&self, region: &impl Region) -> usize {
        self.tree.count_in(region)
    }

    /// Calls `visit(id, [lon, lat])` for every point in a region, in tree order (nearby points
    /// together), until it breaks: an answer of `limit` points costs about `limit` visits.
    pub fn visit_in(
        &self,
        region: &impl Region,
        mut visit: impl FnMut(u32, [f64; 2]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.tree.visit_in(region, |c| visit(self.tree.ids.get(c), grid::point_of(self.tree.leaf(c))))
    }

    /// The ids of the points in `ids` that this index holds, with their points (one pass over
    /// the ids; a point is read only for an id found, so a small change to a mapped base pages
    /// in its ids, not its points).
    pub fn points_of(&self, ids: &HashSet<u32>) -> Vec<([f64; 2], u32)> {
        if ids.is_empty() {
            return vec![];
        }
        self.tree
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| ids.contains(id))
            .map(|(at, id)| (grid::point_of(self.tree.leaf(at)), id))
            .collect()
    }

    /// Bytes of a file the index reads where they lie.
    pub fn mapped_bytes(&self) -> usize {
        self.tree.mapped_bytes()
    }

    /// Points inside a box (edges included), as `(id, [lon, lat])`, ordered by id.
    pub fn within_bbox(&self, b: &BBox) -> Vec<(u32, [f64; 2])> {
        let mut out = Vec::new();
        let _ = self.visit_in(b, |id, p| {
            out.push((id, p));
            ControlFlow::Continue(())
        });
        out.sort_unstable_by_key(|(id, _)| *id);
        out
    }
}

impl Packed for PointIndex {
    fn write<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        self.tree.write(w)
    }

    fn map(m: &mut Mapped) -> std::io::Result<PointIndex> {
        Ok(PointIndex { tree: PackedTree::map(m)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hits in answer order: nearer first, then by id (deterministic ties).
    fn hit_order(a: &Hit, b: &Hit) -> Ordering {
        a.distance_m.total_cmp(&b.distance_m).then(a.id.cmp(&b.id))
    }

    fn brute(points: &[([f64; 2], u32)], lon: f64, lat: f64) -> Vec<Hit> {
        let mut all: Vec<Hit> =
            points.iter().map(|(p, id)| Hit { id: *id, distance_m: haversine_m(lon, lat, p[0], p[1]) }).collect();
        all.sort_by(hit_order);
        all
    }

    /// A point as a load stores it: on the grid.
    fn on_grid(x: f64, y: f64) -> [f64; 2] {
        [grid::snap(x), grid::snap(y)]
    }

    fn cloud() -> impl Strategy<Value = Vec<([f64; 2], u32)>> {
        // A city-sized cloud with a dense district (nodes that keep their points as steps
        // from their corners) and duplicates (same building) to exercise ties.
        let place = prop_oneof![(117.9f64..118.4, 24.4f64..24.8), (118.1f64..118.11, 24.5f64..24.51)];
        prop::collection::vec((place, 0u8..4), 0..600)
            .prop_map(|v| v.into_iter().map(|((x, y), d)| (x, y, d)).collect::<Vec<_>>())
            .prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(
                        |(i, (x, y, dup))| {
                            if dup == 0 && i > 0 { ([118.1, 24.5], i as u32) } else { (on_grid(x, y), i as u32) }
                        },
                    )
                    .collect()
            })
    }

    #[test]
    fn points_off_the_grid_are_answered_where_the_grid_puts_them() {
        let index = PointIndex::build(vec![([118.123456789, 24.5], 1)]);
        let hit = index.nearest(118.1234568, 24.5, 1, None);
        assert_eq!(hit, vec![Hit { id: 1, distance_m: 0.0 }]);
        assert_eq!(index.within_bbox(&[118.0, 24.0, 119.0, 25.0]), vec![(1, [118.1234568, 24.5])]);
    }

    #[test]
    fn ties_on_the_query_meridian_come_out_by_id() {
        // Forty points at one address straight north of the query fill several leaves.
        let mut points: Vec<([f64; 2], u32)> = (0..40).map(|i| ([118.28114, 24.578155], i)).collect();
        points.extend((40..400).map(|i| (on_grid(118.0 + f64::from(i) * 0.001, 24.9 - f64::from(i) * 0.0007), i)));
        let index = PointIndex::build(points.clone());
        for k in [1, 5, 17, 39, 40, 41] {
            assert_eq!(
                index.nearest(118.28114, 24.400842, k, None),
                brute(&points, 118.28114, 24.400842)[..k].to_vec()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn nearest_radius_and_box_match_brute_force(points in cloud(), lon in 117.8f64..118.5, lat in 24.3f64..24.9, k in 1usize..30, r in 10.0f64..60_000.0) {
            let index = PointIndex::build(points.clone());
            let all = brute(&points, lon, lat);
            prop_assert_eq!(index.nearest(lon, lat, k, None), all.iter().take(k).copied().collect::<Vec<_>>());
            let within: Vec<Hit> = all.iter().filter(|h| h.distance_m <= r).copied().collect();
            prop_assert_eq!(index.count_within_radius(lon, lat, r), within.len());
            prop_assert_eq!(index.nearest(lon, lat, usize::MAX, Some(r)), within);
            let b = [lon - 0.05, lat - 0.03, lon + 0.05, lat + 0.03];
            let mut want: Vec<u32> = points.iter().filter(|(p, _)| p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3]).map(|(_, id)| *id).collect();
            want.sort_unstable();
            prop_assert_eq!(index.count_in(&b), want.len());
            prop_assert_eq!(index.within_bbox(&b).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn written_and_read_back_answers_the_same() {
        let points: Vec<([f64; 2], u32)> =
            (0..5000u32).map(|i| ([118.0 + f64::from(i % 71) * 0.003, 24.4 + f64::from(i % 53) * 0.004], i)).collect();
        let index = PointIndex::build(points);
        let mut bytes = Vec::new();
        index.write(&mut bytes).unwrap();
        let map = |b: &[u8]| PointIndex::map(&mut Mapped::of(b.to_vec()));
        let back = map(&bytes).unwrap();
        assert_eq!(back.memory_bytes(), 0, "read where it lies");
        // Counts: the runs' four and the ids' width, then the levels' count and each level's.
        assert_eq!(back.mapped_bytes() + 8 * (6 + back.tree.levels.len()), bytes.len());
        for (lon, lat) in [(118.1, 24.5), (118.0, 24.4), (118.3, 24.6)] {
            assert_eq!(back.nearest(lon, lat, 20, None), index.nearest(lon, lat, 20, None));
            assert_eq!(back.count_within_radius(lon, lat, 5000.0), index.count_within_radius(lon, lat, 5000.0));
        }
        // Cut anywhere, or with a length that does not fit the data, it is an error, never a
        // panic or a huge allocation.
        for cut in (0..bytes.len()).step_by(997) {
            assert!(map(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut odd = bytes.clone();
        odd[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(map(&odd).is_err(), "a damaged length is an error");
        let mut levels = bytes.clone();
        // The levels' count: just before the levels, the last runs of the file.
        let at = bytes.len() - 8 - back.tree.levels.iter().map(|l| 8 + 16 * l.len()).sum::<usize>();
        levels[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
        assert!(map(&levels).is_err(), "a tree without its root is an error");
    }

    #[test]
    fn empty_index_answers_nothing() {
        let index = PointIndex::build(vec![]);
        assert!(index.nearest(118.0, 24.5, 10, None).is_empty());
        assert_eq!(index.count_within_radius(118.0, 24.5, 1000.0), 0);
    }
}
