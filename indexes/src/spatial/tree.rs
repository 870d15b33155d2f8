//! A packed, immutable R-tree (the flatbush layout): leaves sorted along a Hilbert curve,
//! grouped [`NODE`] to a node, node boxes built bottom-up level by level. No pointers: a
//! leaf costs its own bytes plus 1/16 of a box, and building is one sort.

use super::BBox;
use super::grid::{self, EMPTY, GridBox, GridPoint, union};
use super::ids::{Ids, put_ids};
use super::persist::{Fixed, Mapped, Run, bad};
use super::region::{Overlap, Region};
use crate::partition_point;
use std::ops::ControlFlow;

pub(crate) const NODE: usize = 16;

/// Something with a bounding box on the grid ([`grid`]): a point or a box. In a tree it is
/// kept as its [`Leaf::Steps`] from its node's lower-left corner when the node is narrow
/// ([`narrow`]): half its own bytes.
pub(crate) trait Leaf: Fixed {
    /// The leaf as steps from a corner, each below 2^16.
    type Steps: Fixed + Default;
    fn grid_box(&self) -> GridBox;
    fn bbox(&self) -> BBox {
        grid::box_of(self.grid_box())
    }
    /// The leaf as steps from `corner`: the lower-left corner of a narrow box holding it.
    fn steps(&self, corner: GridPoint) -> Self::Steps;
    fn from_steps(steps: Self::Steps, corner: GridPoint) -> Self;
}

/// `v` as its step from `from`, when `from <= v < from + 2^16` (a narrow node's leaf).
fn step(v: i32, from: i32) -> u16 {
    (i64::from(v) - i64::from(from)) as u16
}

fn unstep(s: u16, from: i32) -> i32 {
    from.saturating_add(i32::from(s))
}

/// Whether a node's leaves can be kept as steps from its corner: it spans fewer than 2^16 grid
/// steps (about 700 m) each way. At 10M citizens in one city nearly every node does; the
/// leaves of the others are kept whole.
pub(crate) fn narrow(b: GridBox) -> bool {
    i64::from(b[2]) - i64::from(b[0]) < 1 << 16 && i64::from(b[3]) - i64::from(b[1]) < 1 << 16
}

impl Leaf for GridPoint {
    type Steps = [u16; 2];
    fn grid_box(&self) -> GridBox {
        [self[0], self[1], self[0], self[1]]
    }
    fn steps(&self, c: GridPoint) -> [u16; 2] {
        [step(self[0], c[0]), step(self[1], c[1])]
    }
    fn from_steps(s: [u16; 2], c: GridPoint) -> GridPoint {
        [unstep(s[0], c[0]), unstep(s[1], c[1])]
    }
}

/// A leaf that is a point.
pub(crate) trait Located: Leaf {
    fn point(&self) -> [f64; 2];
}

impl Located for GridPoint {
    #[inline]
    fn point(&self) -> [f64; 2] {
        grid::point_of(*self)
    }
}

impl Leaf for GridBox {
    type Steps = [u16; 4];
    fn grid_box(&self) -> GridBox {
        *self
    }
    fn steps(&self, c: GridPoint) -> [u16; 4] {
        [step(self[0], c[0]), step(self[1], c[1]), step(self[2], c[0]), step(self[3], c[1])]
    }
    fn from_steps(s: [u16; 4], c: GridPoint) -> GridBox {
        [unstep(s[0], c[0]), unstep(s[1], c[1]), unstep(s[2], c[0]), unstep(s[3], c[1])]
    }
}

/// Appends the leaves of one node (at most [`NODE`], in tree order) whose box is `b` to
/// `steps`, as their steps from its corner; zeros, and `false`, for a node that is not
/// [`narrow`], whose leaves the caller keeps whole.
pub(crate) fn put_node<L: Leaf>(node: &[L], b: GridBox, steps: &mut Vec<L::Steps>) -> bool {
    let narrow = narrow(b);
    steps.extend(node.iter().map(|l| if narrow { l.steps([b[0], b[1]]) } else { L::Steps::default() }));
    narrow
}

/// Built in memory, or mapped from its file ([`PackedTree::write`], [`PackedTree::map`]).
#[derive(Debug)]
pub(crate) struct PackedTree<L: Leaf> {
    /// Each leaf as its steps from its node's corner ([`put_node`]); zeros in a wide node.
    steps: Run<L::Steps>,
    /// The bottom-level nodes that are not [`narrow`], ascending, and their leaves whole
    /// ([`NODE`] a node; only the last node of the tree may have fewer).
    wide: Run<u32>,
    whole: Run<L>,
    /// The caller's id of each leaf.
    pub ids: Ids,
    /// `levels[0]` holds the boxes of groups of leaves, `levels[k]` of groups of level k-1
    /// boxes; the last level is the root (one box). Empty when there are no leaves. Boxes of
    /// grid values are exact, so a box holds every leaf below it.
    pub levels: Vec<Run<GridBox>>,
}

/// Where a bottom-level node's leaves are read ([`PackedTree::leaves_of`]).
#[derive(Clone, Copy)]
struct NodeReader {
    corner: GridPoint,
    /// Where its leaves start in the whole leaves, if it is wide.
    whole: Option<usize>,
}

impl NodeReader {
    #[inline]
    fn get<L: Leaf>(&self, tree: &PackedTree<L>, i: usize) -> L {
        match self.whole.and_then(|at| tree.whole.at(at + i % NODE)) {
            Some(leaf) => leaf,
            None => L::from_steps(tree.steps.get(i), self.corner),
        }
    }
}

/// Leaves in tree order as a tree keeps them: steps, wide nodes, whole leaves.
fn coded<L: Leaf>(leaves: &[L], bottom: &[GridBox]) -> (Vec<L::Steps>, Vec<u32>, Vec<L>) {
    let (mut steps, mut wide, mut whole) = (Vec::with_capacity(leaves.len()), Vec::new(), Vec::new());
    for (k, (node, b)) in leaves.chunks(NODE).zip(bottom).enumerate() {
        if !put_node(node, *b, &mut steps) {
            wide.push(k as u32);
            whole.extend_from_slice(node);
        }
    }
    (steps, wide, whole)
}

/// A node: its level and its index in that level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeRef {
    pub level: usize,
    pub index: usize,
}

/// Puts `items` in the order `order` gives (position k takes the element at index
/// `order[k]`, each below 2^32), in place, following each cycle of the permutation once; a
/// bitmap (a bit per item) marks the positions done, so `order` is left as it was.
fn permute<T: Copy>(items: &mut [T], order: &[u64]) {
    let mut done = vec![0u64; items.len().div_ceil(64)];
    for start in 0..order.len() {
        if done[start / 64] & (1 << (start % 64)) != 0 {
            continue;
        }
        let first = items[start];
        let mut k = start;
        loop {
            let from = order[k] as usize;
            done[k / 64] |= 1 << (k % 64);
            if from == start {
                items[k] = first;
                break;
            }
            items[k] = items[from];
            k = from;
        }
    }
}

/// Position of `(x, y)` (each in 0..2^16) along a Hilbert curve of order 16.
fn hilbert(mut x: u32, mut y: u32) -> u64 {
    let n: u32 = 1 << 16;
    let mut d: u64 = 0;
    let mut s = n / 2;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

/// Where leaves fall along a Hilbert curve of order 16 laid over an extent: their boxes'
/// centres, scaled to the curve's 2^16 × 2^16 cells.
pub(crate) struct Curve {
    lo: [f64; 2],
    span: [f64; 2],
}

impl Curve {
    /// The curve over `extent` (the union of the leaves' grid boxes).
    pub fn over(extent: GridBox) -> Curve {
        let e = grid::box_of(extent);
        Curve { lo: [e[0], e[1]], span: [(e[2] - e[0]).max(1e-12), (e[3] - e[1]).max(1e-12)] }
    }

    /// The leaf's position on the curve (below 2^32).
    pub fn position<L: Leaf>(&self, leaf: &L) -> u64 {
        let b = leaf.bbox();
        let scale = |v: f64, i: usize| (((v - self.lo[i]) / self.span[i]) * 65535.0).clamp(0.0, 65535.0) as u32;
        hilbert(scale((b[0] + b[2]) / 2.0, 0), scale((b[1] + b[3]) / 2.0, 1))
    }
}

/// The order of `leaves` along a Hilbert curve over their extent: position k of the tree
/// takes leaf `order[k]` (ties by position).
fn curve_order<L: Leaf>(leaves: &[L]) -> Vec<u64> {
    assert!(leaves.len() <= u32::MAX as usize, "at most 2^32 leaves");
    let curve = Curve::over(leaves.iter().fold(EMPTY, |acc, l| union(acc, l.grid_box())));
    // Position on the curve (< 2^32 at order 16) above, leaf index below: sorting the
    // packed words orders by curve, then by index, as sorting the pairs did.
    let mut order: Vec<u64> = leaves.iter().enumerate().map(|(i, l)| (curve.position(l) << 32) | i as u64).collect();
    order.sort_unstable();
    for o in &mut order {
        *o &= u64::from(u32::MAX);
    }
    order
}

/// The node boxes over leaves in tree order, bottom level first (none without leaves).
fn levels_over<L: Leaf>(leaves: &[L]) -> Vec<Vec<GridBox>> {
    levels_from(leaves.chunks(NODE).map(|c| c.iter().fold(EMPTY, |a, l| union(a, l.grid_box()))).collect())
}

/// The levels whose bottom one is `boxes` (the boxes of the leaves' groups), bottom first.
pub(crate) fn levels_from(mut boxes: Vec<GridBox>) -> Vec<Vec<GridBox>> {
    let mut levels: Vec<Vec<GridBox>> = Vec::new();
    if boxes.is_empty() {
        return levels;
    }
    loop {
        let done = boxes.len() == 1;
        levels.push(boxes);
        if done {
            return levels;
        }
        let below = levels.last().map_or(&[][..], |v| v.as_slice());
        boxes = below.chunks(NODE).map(|c| c.iter().fold(EMPTY, |a, b| union(a, *b))).collect();
    }
}

impl<L: Leaf> PackedTree<L> {
    /// The tree of leaves in tree order, with their ids and levels.
    fn of(leaves: &[L], ids: Ids, levels: Vec<Vec<GridBox>>) -> Self {
        let (steps, wide, whole) = coded(leaves, levels.first().map_or(&[][..], |l| l.as_slice()));
        PackedTree {
            steps: steps.into(),
            wide: wide.into(),
            whole: whole.into(),
            ids,
            levels: levels.into_iter().map(Run::from).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// The same tree with other ids, one a leaf.
    pub fn with_ids(self, ids: Ids) -> Self {
        assert_eq!(ids.len(), self.len(), "one id per leaf");
        PackedTree { ids, ..self }
    }

    /// The leaf at tree position `i` (below [`PackedTree::len`]).
    #[inline]
    pub fn leaf(&self, i: usize) -> L {
        self.node_reader(i / NODE).get(self, i)
    }

    /// The leaves of bottom-level node `k` with their positions, its box read once.
    #[inline]
    pub fn leaves_of(&self, k: usize) -> impl Iterator<Item = (usize, L)> + '_ {
        let reader = self.node_reader(k);
        (k * NODE..((k + 1) * NODE).min(self.len())).map(move |i| (i, reader.get(self, i)))
    }

    /// How the leaves of bottom-level node `k` are read: as steps from its corner, or whole.
    fn node_reader(&self, k: usize) -> NodeReader {
        let b = self.levels.first().map_or(EMPTY, |l| l.get(k));
        let corner = [b[0], b[1]];
        if narrow(b) {
            return NodeReader { corner, whole: None };
        }
        let rank = partition_point(self.wide.len(), |j| (self.wide.get(j) as usize) < k);
        // Only a damaged file has a wide node it does not list: wrong leaves, not a panic.
        let listed = self.wide.at(rank) == Some(k as u32);
        NodeReader { corner, whole: listed.then_some(rank * NODE) }
    }

    pub fn build(items: Vec<(L, u32)>) -> Self {
        let (leaves, ids) = items.into_iter().unzip();
        Self::from_parts(leaves, ids)
    }

    /// Builds from leaves and their ids (same length), sorting both in place: the build holds
    /// 8 bytes per leaf beyond them (its Hilbert order), so a fold of 30M points does not hold
    /// several copies of them at once.
    pub fn from_parts(mut leaves: Vec<L>, mut ids: Vec<u32>) -> Self {
        assert_eq!(leaves.len(), ids.len(), "one id per leaf");
        let order = curve_order(&leaves);
        permute(&mut leaves, &order);
        permute(&mut ids, &order);
        drop(order);
        let levels = levels_over(&leaves);
        Self::of(&leaves, Ids::from(&ids[..]), levels)
    }

    /// Writes what [`PackedTree::write`] writes of the tree of `leaves`, each with its position
    /// as its id, without building that tree: the ids are written from the sort's order, so
    /// the build holds 8 bytes per leaf beyond the leaves (their order), where
    /// [`PackedTree::from_parts`] holds 12 (the ids too). Builds go to their files by the
    /// external sort ([`super::external`]); this is what the tests check it against.
    #[cfg(test)]
    pub fn write_built(leaves: Vec<L>, w: &mut impl std::io::Write) -> std::io::Result<()> {
        Self::write_ordered(leaves, |i| i, w).map(drop)
    }

    /// Writes what [`PackedTree::write`] writes of the tree of `leaves`, leaf `i` having the
    /// id `id(i)`, and returns the tree's order: position k holds leaf `order[k]`.
    pub fn write_ordered(
        mut leaves: Vec<L>,
        id: impl Fn(u32) -> u32,
        w: &mut impl std::io::Write,
    ) -> std::io::Result<Vec<u64>> {
        let order = curve_order(&leaves);
        permute(&mut leaves, &order);
        let levels = levels_over(&leaves);
        let (steps, wide, whole) = coded(&leaves, levels.first().map_or(&[][..], |l| l.as_slice()));
        drop(leaves);
        Run::from(steps).write(w)?;
        Run::from(wide).write(w)?;
        Run::from(whole).write(w)?;
        let max = order.iter().map(|&o| id(o as u32)).max().unwrap_or(0);
        put_ids(w, order.len(), max, order.iter().map(|&o| id(o as u32)))?;
        super::persist::put_u64(w, levels.len() as u64)?;
        levels.into_iter().try_for_each(|l| Run::from(l).write(w))?;
        Ok(order)
    }

    pub fn root(&self) -> Option<NodeRef> {
        self.levels.last().map(|_| NodeRef { level: self.levels.len() - 1, index: 0 })
    }

    /// A node's box in degrees, a little wider than its grid box ([`grid::box_around`]): it
    /// prunes, so it must hold every leaf below it, and may hold a little more.
    pub fn bbox(&self, n: NodeRef) -> BBox {
        grid::box_around(self.levels[n.level].get(n.index))
    }

    /// The children of a node: nodes one level down, or (at level 0) leaf positions.
    pub fn children(&self, n: NodeRef) -> std::ops::Range<usize> {
        let len = if n.level == 0 { self.len() } else { self.levels[n.level - 1].len() };
        n.index * NODE..((n.index + 1) * NODE).min(len)
    }

    /// The leaf positions under a node: packed, a node of level `L` holds `NODE^(L+1)`
    /// consecutive leaves, so its count is known without being stored.
    pub fn leaf_range(&self, n: NodeRef) -> std::ops::Range<usize> {
        let span = NODE.pow(n.level as u32 + 1);
        n.index * span..((n.index + 1) * span).min(self.len())
    }

    /// How many leaves lie in a region: a node wholly inside adds its count without a visit, so
    /// the cost follows the region's boundary, not its area.
    pub fn count_in(&self, region: &impl Region) -> usize
    where
        L: Located,
    {
        let mut n = 0;
        let mut stack: Vec<NodeRef> = self.root().into_iter().collect();
        while let Some(node) = stack.pop() {
            match region.overlap(&self.bbox(node)) {
                Overlap::Outside => {}
                Overlap::Inside => n += self.leaf_range(node).len(),
                Overlap::Across if node.level == 0 => {
                    n += self.leaves_of(node.index).filter(|(_, l)| region.contains(l.point())).count()
                }
                Overlap::Across => {
                    stack.extend(self.children(node).map(|index| NodeRef { level: node.level - 1, index }))
                }
            }
        }
        n
    }

    /// Calls `visit` with the position of every leaf in a region, in tree order (nearby
    /// leaves together), until it breaks.
    pub fn visit_in(&self, region: &impl Region, mut visit: impl FnMut(usize) -> ControlFlow<()>) -> ControlFlow<()>
    where
        L: Located,
    {
        let mut stack: Vec<NodeRef> = self.root().into_iter().collect();
        while let Some(node) = stack.pop() {
            match region.overlap(&self.bbox(node)) {
                Overlap::Outside => {}
                Overlap::Inside => self.leaf_range(node).try_for_each(&mut visit)?,
                Overlap::Across if node.level == 0 => self
                    .leaves_of(node.index)
                    .filter(|(_, l)| region.contains(l.point()))
                    .try_for_each(|(c, _)| visit(c))?,
                // Reversed onto the stack, so that children come off it in tree order.
                Overlap::Across => {
                    stack.extend(self.children(node).rev().map(|index| NodeRef { level: node.level - 1, index }))
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Leaves whose boxes intersect `b`, with their positions, until `visit` breaks. Compared in grid steps
    /// (the box's edges converted once), exactly as the boxes' degrees would compare.
    pub fn search(&self, b: &BBox, mut visit: impl FnMut(usize, L) -> ControlFlow<()>) -> ControlFlow<()> {
        let q = grid::steps_within(b);
        let hits = |x: GridBox| {
            i64::from(x[0]) <= q[2] && i64::from(x[2]) >= q[0] && i64::from(x[1]) <= q[3] && i64::from(x[3]) >= q[1]
        };
        let level = |n: NodeRef| self.levels[n.level].get(n.index);
        let mut stack: Vec<NodeRef> = self.root().into_iter().filter(|r| hits(level(*r))).collect();
        while let Some(n) = stack.pop() {
            if n.level == 0 {
                for (c, leaf) in self.leaves_of(n.index) {
                    if hits(leaf.grid_box()) {
                        visit(c, leaf)?;
                    }
                }
                continue;
            }
            for c in self.children(n) {
                let child = NodeRef { level: n.level - 1, index: c };
                if hits(level(child)) {
                    stack.push(child);
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Heap bytes held (leaves, ids, node boxes); a mapped tree holds none.
    pub fn memory_bytes(&self) -> usize {
        self.steps.heap_bytes()
            + self.wide.heap_bytes()
            + self.whole.heap_bytes()
            + self.ids.heap_bytes()
            + self.levels.iter().map(Run::heap_bytes).sum::<usize>()
    }

    /// Bytes of a file the tree reads where they lie.
    pub fn mapped_bytes(&self) -> usize {
        self.steps.mapped_bytes()
            + self.wide.mapped_bytes()
            + self.whole.mapped_bytes()
            + self.ids.mapped_bytes()
            + self.levels.iter().map(Run::mapped_bytes).sum::<usize>()
    }

    /// Leaves (steps, wide nodes, whole leaves), ids, then the levels (their count first).
    pub fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        self.steps.write(w)?;
        self.wide.write(w)?;
        self.whole.write(w)?;
        self.ids.write(w)?;
        super::persist::put_u64(w, self.levels.len() as u64)?;
        self.levels.iter().try_for_each(|l| l.write(w))
    }

    /// The tree [`PackedTree::write`] wrote, where it lies. Its shape is checked (an id per
    /// leaf, each level a box per [`NODE`] entries below it, one root, wide nodes ascending
    /// among the bottom ones with their leaves whole), so that no query indexes past a run.
    pub fn map(m: &mut Mapped) -> std::io::Result<Self> {
        let steps: Run<L::Steps> = m.run()?;
        let wide: Run<u32> = m.run()?;
        let whole: Run<L> = m.run()?;
        let ids = Ids::map(m)?;
        let n = m.u64()?;
        let mut levels: Vec<Run<GridBox>> = Vec::new();
        let mut below = steps.len();
        for _ in 0..n.min(64) {
            let level: Run<GridBox> = m.run()?;
            if level.len() != below.div_ceil(NODE) {
                return Err(bad("tree levels"));
            }
            below = level.len();
            levels.push(level);
        }
        let shaped = if steps.is_empty() { levels.is_empty() && n == 0 } else { below == 1 && (1..=64).contains(&n) };
        if ids.len() != steps.len() || !shaped {
            return Err(bad("tree"));
        }
        let nodes = steps.len().div_ceil(NODE);
        let ascending = wide.iter().try_fold(None, |last: Option<u32>, k| {
            (last.is_none_or(|l| l < k) && (k as usize) < nodes).then_some(Some(k))
        });
        let in_wide = wide.iter().map(|k| NODE.min(steps.len() - k as usize * NODE)).sum::<usize>();
        if ascending.is_none() || in_wide != whole.len() {
            return Err(bad("wide nodes"));
        }
        Ok(PackedTree { steps, wide, whole, ids, levels })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Points anywhere, or most in a district (nodes narrow enough to hold their leaves as
    /// steps) and a few far away (nodes that keep them whole).
    pub(crate) fn places() -> impl Strategy<Value = (f64, f64)> {
        prop_oneof![
            1 => (-180.0..180.0f64, -90.0..90.0f64),
            6 => (118.0..118.02f64, 24.4..24.42f64),
        ]
    }

    /// A district's points are kept as steps from their nodes' corners, points spread over the
    /// globe whole; both read back exactly, built or mapped from the written bytes.
    #[test]
    fn leaves_of_narrow_nodes_are_steps_and_of_wide_ones_whole() {
        let mut leaves: Vec<GridPoint> = (0..320)
            .map(|i| grid::point([118.1 + f64::from(i % 19) * 1e-4, 24.5 + f64::from(i / 19) * 1e-4]))
            .collect();
        leaves.extend((0..40).map(|i| grid::point([-179.0 + f64::from(i) * 8.9, -89.0 + f64::from(i) * 4.4])));
        leaves.push([i32::MAX, i32::MIN]);
        let tree = PackedTree::from_parts(leaves.clone(), (0..leaves.len() as u32).collect());
        assert!(tree.wide.len() >= 2 && tree.wide.len() + 10 < tree.levels[0].len(), "{} wide", tree.wide.len());
        let mut bytes = Vec::new();
        tree.write(&mut bytes).unwrap();
        let back = PackedTree::<GridPoint>::map(&mut Mapped::of(bytes)).unwrap();
        for t in [&tree, &back] {
            for i in 0..t.len() {
                assert_eq!(t.leaf(i), leaves[t.ids.get(i) as usize], "leaf {i}");
            }
        }
    }

    proptest! {
        /// Sorting in place gives the order a gather by the sorted (curve, index) pairs gives.
        #[test]
        fn in_place_build_orders_as_a_gather(points in prop::collection::vec(places(), 0..300)) {
            let leaves: Vec<GridPoint> = points.iter().map(|&(x, y)| grid::point([x, y])).collect();
            let ids: Vec<u32> = (0..leaves.len() as u32).map(|i| i * 7 + 1).collect();
            let tree = PackedTree::from_parts(leaves.clone(), ids.clone());
            let extent = grid::box_of(leaves.iter().fold(EMPTY, |acc, l| union(acc, l.grid_box())));
            let (w, h) = ((extent[2] - extent[0]).max(1e-12), (extent[3] - extent[1]).max(1e-12));
            let scale = |v: f64, lo: f64, span: f64| (((v - lo) / span) * 65535.0).clamp(0.0, 65535.0) as u32;
            let mut pairs: Vec<(u64, u32)> = leaves
                .iter()
                .map(|l| l.point())
                .enumerate()
                .map(|(i, l)| (hilbert(scale(l[0], extent[0], w), scale(l[1], extent[1], h)), i as u32))
                .collect();
            pairs.sort_unstable();
            let expected: Vec<GridPoint> = pairs.iter().map(|&(_, i)| leaves[i as usize]).collect();
            let expected_ids: Vec<u32> = pairs.iter().map(|&(_, i)| ids[i as usize]).collect();
            prop_assert_eq!((0..tree.len()).map(|i| tree.leaf(i)).collect::<Vec<_>>(), expected);
            prop_assert_eq!(tree.ids.iter().collect::<Vec<_>>(), expected_ids);
        }

        /// A tree written as it is built is the tree built and then written, with positions
        /// as ids.
        #[test]
        fn written_as_built_is_built_then_written(points in prop::collection::vec(places(), 0..600)) {
            let leaves: Vec<GridPoint> = points.iter().map(|&(x, y)| grid::point([x, y])).collect();
            let (mut built, mut direct) = (Vec::new(), Vec::new());
            PackedTree::from_parts(leaves.clone(), (0..leaves.len() as u32).collect()).write(&mut built).unwrap();
            PackedTree::write_built(leaves, &mut direct).unwrap();
            prop_assert_eq!(direct, built);
        }
    }
}
