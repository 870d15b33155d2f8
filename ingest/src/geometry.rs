//! Parcel geometry: WKT or GeoJSON in, a valid WGS84 multipolygon out.

use crate::coords::{Crs, snap};
use geo::{CoordsIter, Geometry, MapCoords, MultiPolygon, Validation};
use wkt::TryFromWkt;

/// Parses a polygon or multipolygon given as WKT (`POLYGON ((…))`) or a GeoJSON geometry
/// object, converts it from `crs` to WGS84, snaps it to the stored grid ([`snap`]) and checks that it is valid (closed rings, no
/// self-intersection, holes inside their shell) with `geo`'s OGC validation.
pub fn parse_geometry(text: &str, crs: Crs) -> Result<MultiPolygon<f64>, String> {
    let geometry = if text.starts_with('{') {
        let gj: geojson::Geometry = text.parse().map_err(|e| format!("GeoJSON does not parse: {e}"))?;
        Geometry::<f64>::try_from(gj).map_err(|e| format!("GeoJSON geometry: {e}"))?
    } else {
        Geometry::<f64>::try_from_wkt_str(text).map_err(|e| format!("WKT does not parse: {e}"))?
    };
    let multi = match geometry {
        Geometry::Polygon(p) => MultiPolygon(vec![p]),
        Geometry::MultiPolygon(m) => m,
        other => return Err(format!("expected a Polygon or MultiPolygon, got {}", kind_name(&other))),
    };
    if multi.0.is_empty() {
        return Err("empty geometry".into());
    }
    let on_earth = |c: &geo::Coord<f64>| {
        c.x.is_finite() && c.y.is_finite() && (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y)
    };
    if !multi.coords_iter().all(|c| on_earth(&c)) {
        return Err("a coordinate is not a longitude/latitude on Earth".into());
    }
    let multi = multi.map_coords(|c| {
        let (x, y) = crs.to_wgs84(c.x, c.y);
        geo::coord! { x: snap(x), y: snap(y) }
    });
    if let Some(problem) = multi.validation_errors().into_iter().next() {
        return Err(format!("invalid polygon: {problem}"));
    }
    Ok(multi)
}

fn kind_name(g: &Geometry<f64>) -> &'static str {
    match g {
        Geometry::Point(_) => "Point",
        Geometry::Line(_) | Geometry::LineString(_) | Geometry::MultiLineString(_) => "a line",
        Geometry::MultiPoint(_) => "MultiPoint",
        Geometry::GeometryCollection(_) => "GeometryCollection",
        _ => "another geometry type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkt_and_geojson_polygons_parse() {
        let wkt = "POLYGON((118.1 24.5,118.2 24.5,118.2 24.6,118.1 24.6,118.1 24.5))";
        assert_eq!(parse_geometry(wkt, Crs::Wgs84).unwrap().0.len(), 1);
        let gj = r#"{"type":"Polygon","coordinates":[[[118.1,24.5],[118.2,24.5],[118.2,24.6],[118.1,24.5]]]}"#;
        assert_eq!(parse_geometry(gj, Crs::Wgs84).unwrap().0.len(), 1);
    }

    #[test]
    fn invalid_geometries_are_refused_with_a_reason() {
        let bowtie = "POLYGON((0 0,1 1,1 0,0 1,0 0))";
        assert!(parse_geometry(bowtie, Crs::Wgs84).unwrap_err().contains("invalid polygon"));
        assert!(parse_geometry("POINT(1 2)", Crs::Wgs84).unwrap_err().contains("Point"));
        assert!(parse_geometry("POLYGON((", Crs::Wgs84).unwrap_err().contains("parse"));
        assert!(parse_geometry("POLYGON((0 0,200 0,200 1,0 0))", Crs::Wgs84).is_err());
    }
}
