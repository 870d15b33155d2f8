//! Coordinate reference systems of department extracts, and the GCJ-02 ↔ WGS84 shift.
//!
//! GCJ-02 is WGS84 with a published, deterministic obfuscation applied inside China. No
//! well-kept crate implements it (the crates.io candidates are single-release), so the
//! standard public formula is written here; the inverse is the usual fixed-point iteration,
//! accurate to well under a centimetre.

use serde::Deserialize;

/// The coordinate system a file's points are in.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    /// GPS; the store's system.
    #[default]
    Wgs84,
    /// The offset grid of Chinese web maps: converted to WGS84 on load.
    Gcj02,
    /// The national geodetic system: within centimetres of WGS84 at city scale, taken as is.
    Cgcs2000,
}

impl Crs {
    /// Converts a point of this system to WGS84.
    pub fn to_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            Crs::Wgs84 | Crs::Cgcs2000 => (lon, lat),
            Crs::Gcj02 => gcj02_to_wgs84(lon, lat),
        }
    }
}

/// Steps of the stored grid per degree: 1e-7 degree, about 1.1 cm on the ground.
const GRID_PER_DEGREE: f64 = 1e7;

/// A coordinate as the store keeps it: on a grid of 1e-7 degree (about 1.1 cm), as
/// OpenStreetMap keeps its nodes, far finer than any department's survey. A decimal of at
/// most seven places is kept exactly as written; the indexes hold grid values in half the
/// bytes of an `f64` pair (`jichu_indexes::spatial::grid`, the same grid), and answer exactly
/// for what is stored.
pub fn snap(v: f64) -> f64 {
    (v * GRID_PER_DEGREE).round() / GRID_PER_DEGREE
}

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn offset(lon: f64, lat: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let (x, y) = (lon - 105.0, lat - 35.0);
    let mut dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    dlat += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    dlon += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (A / sqrt_magic * rad.cos() * PI);
    (dlon, dlat)
}

/// WGS84 → GCJ-02 (the forward, published transform). Identity outside China.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = offset(lon, lat);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS84 by fixed-point iteration of the forward transform.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (elon, elat) = (glon - lon, glat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcj02_shift_is_hundreds_of_metres_in_xiamen_and_inverts() {
        let (lon, lat) = (118.0894, 24.4798);
        let (glon, glat) = wgs84_to_gcj02(lon, lat);
        let shift_m = ((glon - lon) * 101_000.0).hypot((glat - lat) * 111_000.0);
        assert!((300.0..800.0).contains(&shift_m), "shift {shift_m} m");
        let (blon, blat) = gcj02_to_wgs84(glon, glat);
        assert!((blon - lon).abs() < 1e-8 && (blat - lat).abs() < 1e-8);
    }

    #[test]
    fn snapping_keeps_seven_places_and_rounds_the_rest() {
        assert_eq!(snap(121.4737021), 121.4737021);
        assert_eq!(snap(118.08940004), 118.0894);
        assert_eq!(snap(-0.00000006), -0.0000001);
        let (lon, lat) = gcj02_to_wgs84(118.0894, 24.4798);
        assert_eq!((snap(lon) * 1e7).fract(), 0.0, "a converted point lands on the grid");
        assert!((snap(lat) - lat).abs() <= 0.5e-7);
    }

    #[test]
    fn identity_outside_china() {
        assert_eq!(gcj02_to_wgs84(2.35, 48.85), (2.35, 48.85));
    }
}
