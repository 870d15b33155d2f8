//! Distances on the Earth: haversine on a sphere of the mean Earth radius (as `geo`'s
//! `Haversine` uses), and the exact least distance from a point to a longitude/latitude box,
//! which bounds the search of an R-tree built over degrees.

use super::BBox;

/// Mean Earth radius in metres (IUGG), the radius `geo::Haversine` uses.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two points given in degrees.
pub fn haversine_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// The least great-circle distance in metres from a point to any point of a box.
///
/// Inside the box's longitudes the nearest point is straight north or south (a meridian arc).
/// Outside, it lies on the nearer bounding meridian (for any latitude, a smaller longitude gap
/// is nearer), at an end of the box's latitudes or at the meridian's closest point to the
/// query when that lies between them. So pruning with this bound never drops a neighbour.
pub fn min_dist_to_box_m(lon: f64, lat: f64, b: &BBox) -> f64 {
    exact_min_dist_to_box_m(lon, lat, b) - BOUND_SLACK_M
}

/// Taken off every bound: rounding may make a computed minimum exceed, by a few ulps, the
/// computed distance of a point at that minimum, which could reorder ties in a search.
const BOUND_SLACK_M: f64 = 1e-6;

fn exact_min_dist_to_box_m(lon: f64, lat: f64, b: &BBox) -> f64 {
    let [min_lon, min_lat, max_lon, max_lat] = *b;
    if (min_lon..=max_lon).contains(&lon) {
        // Computed as a leaf's distance is, so a point straight north or south ties exactly.
        return haversine_m(lon, lat, lon, lat.clamp(min_lat, max_lat));
    }
    let wrap = |d: f64| {
        let d = d.rem_euclid(360.0);
        d.min(360.0 - d)
    };
    let (d1, d2) = (wrap(lon - min_lon), wrap(lon - max_lon));
    let (edge, dlon) = if d1 <= d2 { (min_lon, d1) } else { (max_lon, d2) };
    // Along the meridian, cos(distance) = A sin φ + B cos φ = K cos(φ − θ): its maximum over
    // an interval is at an end, or at θ = atan2(A, B) when θ lies inside (only if B > 0).
    let (a, b) = (lat.to_radians().sin(), lat.to_radians().cos() * dlon.to_radians().cos());
    let mut best = haversine_m(lon, lat, edge, min_lat).min(haversine_m(lon, lat, edge, max_lat));
    if b > 0.0 {
        let theta = a.atan2(b).to_degrees();
        if (min_lat..=max_lat).contains(&theta) {
            best = best.min(haversine_m(lon, lat, edge, theta));
        }
    }
    best
}

/// The greatest great-circle distance in metres from a point to any point of a box, or
/// infinity where that is not certain (a box reaching a pole or the point's antipodal
/// meridian).
///
/// Along a parallel the distance grows with the longitude gap, so the farthest points lie on a
/// bounding meridian; along one, `cos(distance) = A sin φ + B cos φ = K cos(φ − θ)` is least at
/// an end of the box's latitudes or at `θ + 180°` when that lies between them (only if B < 0).
pub fn max_dist_to_box_m(lon: f64, lat: f64, b: &BBox) -> f64 {
    let [min_lon, min_lat, max_lon, max_lat] = *b;
    let antipode = if lon > 0.0 { lon - 180.0 } else { lon + 180.0 };
    if min_lat <= -89.9 || max_lat >= 89.9 || (min_lon..=max_lon).contains(&antipode) || max_lon - min_lon >= 180.0 {
        return f64::INFINITY;
    }
    let mut worst: f64 = 0.0;
    for edge in [min_lon, max_lon] {
        worst = worst.max(haversine_m(lon, lat, edge, min_lat)).max(haversine_m(lon, lat, edge, max_lat));
        let (a, b) = (lat.to_radians().sin(), lat.to_radians().cos() * (lon - edge).to_radians().cos());
        if b < 0.0 {
            let far = (-a).atan2(-b).to_degrees();
            if (min_lat..=max_lat).contains(&far) {
                worst = worst.max(haversine_m(lon, lat, edge, far));
            }
        }
    }
    worst + BOUND_SLACK_M
}

/// A box certain to contain every point within `radius_m` of a point (for box queries).
pub fn radius_bbox(lon: f64, lat: f64, radius_m: f64) -> BBox {
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees();
    let max_abs_lat = (lat.abs() + dlat).min(90.0);
    let dlon = if max_abs_lat >= 89.999 { 180.0 } else { (dlat / max_abs_lat.to_radians().cos()).min(180.0) };
    [lon - dlon, (lat - dlat).max(-90.0), lon + dlon, (lat + dlat).min(90.0)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Distance, Haversine, Point};
    use proptest::prelude::*;

    #[test]
    fn agrees_with_geo() {
        let (a, b) = (Point::new(118.08, 24.45), Point::new(118.20, 24.60));
        let ours = haversine_m(118.08, 24.45, 118.20, 24.60);
        assert!((ours - Haversine.distance(a, b)).abs() < 1e-6, "{ours}");
    }

    proptest! {
        #[test]
        fn box_bound_is_exact_lower_bound(
            lon in -179.0f64..179.0, lat in -85.0f64..85.0,
            bx in -179.0f64..170.0, by in -85.0f64..80.0, w in 0.0001f64..8.0, h in 0.0001f64..4.0,
        ) {
            let b = [bx, by, bx + w, by + h];
            let bound = min_dist_to_box_m(lon, lat, &b);
            // Never more than the distance to any point of the box (sampled on a grid).
            let mut best = f64::INFINITY;
            for i in 0..=40 {
                for j in 0..=40 {
                    let (x, y) = (bx + w * i as f64 / 40.0, by + h * j as f64 / 40.0);
                    best = best.min(haversine_m(lon, lat, x, y));
                }
            }
            prop_assert!(bound <= best, "bound {} > sampled {}", bound, best);
            let far = max_dist_to_box_m(lon, lat, &b);
            let mut worst: f64 = 0.0;
            for i in 0..=40 {
                for j in 0..=40 {
                    worst = worst.max(haversine_m(lon, lat, bx + w * i as f64 / 40.0, by + h * j as f64 / 40.0));
                }
            }
            prop_assert!(far >= worst, "bound {} < sampled {}", far, worst);
        }
    }
}
