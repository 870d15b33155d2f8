//! Coordinates on a grid of 1e-7 degree (about 1.1 cm on the ground), each an `i32`: half the
//! bytes of an `f64` pair, as OpenStreetMap keeps its nodes. Loads snap every stored coordinate
//! to this grid (`jichu_ingest::snap`), so an index holding grid values holds exactly what the
//! store holds and its answers stay exact.
//!
//! A grid value is read back by division (`n / 1e7`, correctly rounded), which gives the `f64`
//! nearest to the decimal with at most seven places: the value a parse of that decimal gives,
//! so a coordinate written `121.4737021` comes back as that number.

use super::BBox;

/// Grid steps per degree.
pub const PER_DEGREE: f64 = 1e7;

/// `[lon, lat]` in grid steps.
pub type GridPoint = [i32; 2];

/// `[min_lon, min_lat, max_lon, max_lat]` in grid steps.
pub type GridBox = [i32; 4];

/// The grid step nearest to `v` degrees (saturating outside ±214 degrees; NaN is 0).
pub fn to_grid(v: f64) -> i32 {
    (v * PER_DEGREE).round() as i32
}

/// The degrees of a grid step.
#[inline]
pub fn from_grid(n: i32) -> f64 {
    f64::from(n) / PER_DEGREE
}

/// `v` on the grid: what an index built from `v` answers with.
pub fn snap(v: f64) -> f64 {
    from_grid(to_grid(v))
}

pub fn point(p: [f64; 2]) -> GridPoint {
    [to_grid(p[0]), to_grid(p[1])]
}

#[inline]
pub fn point_of(g: GridPoint) -> [f64; 2] {
    [from_grid(g[0]), from_grid(g[1])]
}

#[inline]
pub fn box_of(g: GridBox) -> BBox {
    [from_grid(g[0]), from_grid(g[1]), from_grid(g[2]), from_grid(g[3])]
}

/// The least grid step whose degrees are at least `v` (an `i64`, so that any `v` has one:
/// beyond the Earth's range it is far past every stored step).
pub fn ceil(v: f64) -> i64 {
    if v.is_nan() || v > 1e6 {
        return i64::MAX;
    }
    if v < -1e6 {
        return i64::MIN;
    }
    let at = |n: i64| n as f64 / PER_DEGREE;
    let mut n = (v * PER_DEGREE).ceil() as i64;
    while at(n - 1) >= v {
        n -= 1;
    }
    while at(n) < v {
        n += 1;
    }
    n
}

/// The greatest grid step whose degrees are at most `v` (steps read back symmetrically:
/// `-n` is the negation of `n`'s degrees).
pub fn floor(v: f64) -> i64 {
    ceil(-v).saturating_neg()
}

/// A box in degrees as the steps it holds, `[min_lon, min_lat, max_lon, max_lat]`: a grid
/// value lies in the box exactly when its steps lie in these (a NaN edge holds none).
pub fn steps_within(b: &BBox) -> [i64; 4] {
    [ceil(b[0]), ceil(b[1]), floor(b[2]), floor(b[3])]
}

/// A box holding [`box_of`]'s, a little wider (about 1e-13 degree), read without a division:
/// what a node of a tree is pruned by, where a division for each edge of each child visited
/// cost nearest-neighbour searches 10–44% at 2M points. `n * 1e-7` is within 2.5 units in
/// the last place of `n / 1e7`, and each edge moves out by at least four.
#[inline]
pub fn box_around(g: GridBox) -> BBox {
    const STEP: f64 = 1.0 / PER_DEGREE;
    const OUT: f64 = 1e-15;
    let v = |n: i32| f64::from(n) * STEP;
    let (a, b, c, d) = (v(g[0]), v(g[1]), v(g[2]), v(g[3]));
    [a - a.abs() * OUT, b - b.abs() * OUT, c + c.abs() * OUT, d + d.abs() * OUT]
}

/// The grid box of grid points (None when there are none).
pub fn envelope(points: impl IntoIterator<Item = GridPoint>) -> Option<GridBox> {
    let b = points.into_iter().fold(EMPTY, |acc, [x, y]| union(acc, [x, y, x, y]));
    (b != EMPTY).then_some(b)
}

/// The smallest box holding both.
pub fn union(a: GridBox, b: GridBox) -> GridBox {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

/// The box that holds nothing: the identity of [`union`].
pub const EMPTY: GridBox = [i32::MAX, i32::MAX, i32::MIN, i32::MIN];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every step of the Earth's range reads back as itself, and as the decimal it names.
        #[test]
        fn grid_values_round_trip(n in -1_800_000_000i32..=1_800_000_000) {
            prop_assert_eq!(to_grid(from_grid(n)), n);
            let decimal = format!("{}{}.{:07}", if n < 0 { "-" } else { "" }, n.unsigned_abs() / 10_000_000, n.unsigned_abs() % 10_000_000);
            prop_assert_eq!(decimal.parse::<f64>().unwrap(), from_grid(n));
        }

        /// Snapping moves a coordinate by at most half a step and is idempotent.
        #[test]
        fn snapping_is_near_and_idempotent(v in -180.0f64..=180.0) {
            let s = snap(v);
            prop_assert!((s - v).abs() <= 0.5 / PER_DEGREE + 1e-15);
            prop_assert_eq!(snap(s), s);
        }
    }

    proptest! {
        /// A grid value is in a box exactly when its steps are in the box's steps.
        #[test]
        fn steps_within_agree_with_degrees(n in -1_800_000_000i32..=1_800_000_000, lo in -200.0f64..200.0, w in 0.0f64..1e-5) {
            let v = from_grid(n);
            let near = [lo, v - w, v, v + w, from_grid(n.saturating_add(1)), from_grid(n - 1)];
            for edge in near {
                prop_assert_eq!(i64::from(n) >= ceil(edge), v >= edge, "ceil {}", edge);
                prop_assert_eq!(i64::from(n) <= floor(edge), v <= edge, "floor {}", edge);
            }
        }
    }

    proptest! {
        #[test]
        fn a_box_around_holds_the_exact_box(a in -1_800_000_000i32..=1_800_000_000, b in -900_000_000i32..=900_000_000, w in 0i32..1000, h in 0i32..1000) {
            let g = [a, b, a.saturating_add(w), b + h];
            let (exact, around) = (box_of(g), box_around(g));
            prop_assert!(around[0] <= exact[0] && around[1] <= exact[1] && around[2] >= exact[2] && around[3] >= exact[3]);
            prop_assert!((0..4).all(|i| (around[i] - exact[i]).abs() <= 1e-12));
        }
    }

    #[test]
    fn steps_of_edges_past_the_earth_hold_everything_or_nothing() {
        assert_eq!(
            steps_within(&[f64::NEG_INFINITY, -1e300, f64::INFINITY, 1e300]),
            [i64::MIN, i64::MIN, i64::MAX, i64::MAX]
        );
        let none = steps_within(&[f64::NAN, 0.0, 1.0, f64::NAN]);
        assert!(none[0] > none[2] && none[1] > none[3]);
    }

    #[test]
    fn a_seven_place_decimal_is_kept_as_written() {
        for text in ["121.4737021", "24.4798", "-0.0000001", "180", "-90", "118.0894"] {
            let v: f64 = text.parse().unwrap();
            assert_eq!(snap(v), v, "{text}");
            assert_eq!(snap(v).to_string(), text.trim_start_matches('+'));
        }
    }
}
