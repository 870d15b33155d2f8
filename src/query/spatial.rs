//! Spatial queries over a view: nearest, within an area, containing a point. Answers render as
//! JSON or as a GeoJSON FeatureCollection.

use super::caller::{Caller, Shape};
use super::cancel::Ticker;
use super::error::{QueryError, QueryResult};
use super::view::View;
use crate::model::{Record, Registry};
use crate::spatial::PointLayer;
use jichu_indexes::spatial::Hit;
use jichu_indexes::spatial::{Area, Circle, PolygonArea, Region};
use jichu_ingest::Value;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::ops::ControlFlow;
use utoipa::ToSchema;

/// Largest radius a query may ask for, and most hits it may return.
pub const MAX_RADIUS_M: f64 = 50_000.0;
pub const MAX_HITS: usize = 1000;
/// Vertices a `within` polygon may have (rings together): checking a polygon's validity grows
/// with the square of its vertices, so the bound keeps any accepted request cheap.
pub const MAX_VERTICES: usize = 1000;

/// `{"lon", "lat", "k"}` for the k nearest, or `{"lon", "lat", "radius_m", "limit"}` for all
/// within a radius (nearest first); `count_only` answers just the count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NearRequest {
    pub lon: f64,
    pub lat: f64,
    pub k: Option<usize>,
    pub radius_m: Option<f64>,
    pub limit: Option<usize>,
    #[serde(default)]
    pub count_only: bool,
    pub fields: Option<Vec<String>>,
}

/// `{"bbox": [min_lon, min_lat, max_lon, max_lat]}` or `{"polygon": <GeoJSON Polygon>}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithinRequest {
    pub bbox: Option<[f64; 4]>,
    #[schema(value_type = Option<Object>)]
    pub polygon: Option<Json>,
    pub limit: Option<usize>,
    pub fields: Option<Vec<String>>,
}

/// Records found, in answer order, with their distances for nearest queries, and how many
/// matched in all.
#[derive(Debug)]
pub struct Found {
    pub records: Vec<Option<Record>>,
    pub distances: Option<Vec<f64>>,
    pub count: usize,
    /// Only the count was asked for.
    pub count_only: bool,
}

pub fn check_point(lon: f64, lat: f64) -> QueryResult<()> {
    if !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
        return Err(QueryError::BadRequest(format!("({lon}, {lat}) is not a longitude/latitude on Earth")));
    }
    Ok(())
}

/// The nearest points first, each with its great-circle distance in metres; only points in
/// the caller's rows count.
pub fn near(view: &View, shape: &Shape, req: &NearRequest) -> QueryResult<Found> {
    let registry = shape.registry;
    let spatial = view.spatial()?;
    let layer = spatial.points(registry).ok_or_else(|| {
        QueryError::BadRequest(format!("{registry} has no point locations; near works on citizens and entities"))
    })?;
    check_point(req.lon, req.lat)?;
    let hits: Vec<Hit> = match (req.k, req.radius_m) {
        (Some(k), None) if (1..=MAX_HITS).contains(&k) => {
            layer.index.nearest_where(req.lon, req.lat, k, None, |id| shape.sees_key(&layer.key(id)))
        }
        (Some(k), None) => return Err(QueryError::BadRequest(format!("k must be 1 to {MAX_HITS}, got {k}"))),
        (None, Some(r)) if r.is_finite() && r > 0.0 && r <= MAX_RADIUS_M => {
            if req.count_only {
                let count = if shape.rows.is_none() {
                    layer.index.count_within_radius(req.lon, req.lat, r)
                } else {
                    // Rows to check one by one: cancellable.
                    let (mut n, mut tick) = (0, shape.cancel.ticker());
                    let circle = Circle { lon: req.lon, lat: req.lat, radius_m: r };
                    let flow = layer.index.visit_in(&circle, |id, _| {
                        n += shape.sees_key(&layer.key(id)) as usize;
                        if tick.stop() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                    });
                    if flow.is_break() {
                        return Err(QueryError::Cancelled);
                    }
                    n
                };
                return Ok(Found { records: vec![], distances: None, count, count_only: true });
            }
            // Nearest-first with a distance cap: work bounded by `limit`, not by the area.
            let limit = hits_limit(req.limit)?;
            layer.index.nearest_where(req.lon, req.lat, limit, Some(r), |id| shape.sees_key(&layer.key(id)))
        }
        (None, Some(r)) => {
            return Err(QueryError::BadRequest(format!(
                "radius_m must be more than 0 and at most {MAX_RADIUS_M}, got {r}"
            )));
        }
        _ => return Err(QueryError::BadRequest("give exactly one of `k` or `radius_m`".into())),
    };
    if req.count_only {
        return Ok(Found { records: vec![], distances: None, count: hits.len(), count_only: true });
    }
    let keys: Vec<String> = hits.iter().map(|h| layer.key(h.id).to_string()).collect();
    let distances: Vec<f64> = hits.iter().map(|h| (h.distance_m * 100.0).round() / 100.0).collect();
    let records = view.reader().get_many(registry, &keys)?;
    Ok(Found { records, distances: Some(distances), count: hits.len(), count_only: false })
}

/// A request's `limit`: 1 to [`MAX_HITS`], 100 when absent.
fn hits_limit(limit: Option<usize>) -> QueryResult<usize> {
    match limit.unwrap_or(100) {
        n @ 1..=MAX_HITS => Ok(n),
        n => Err(QueryError::BadRequest(format!("limit must be 1 to {MAX_HITS}, got {n}"))),
    }
}

fn polygon_of(v: &Json) -> QueryResult<geo::Polygon<f64>> {
    let gj: geojson::Geometry = serde_json::from_value(v.clone())
        .map_err(|e| QueryError::BadRequest(format!("polygon: not a GeoJSON geometry: {e}")))?;
    let g = geo::Geometry::<f64>::try_from(gj).map_err(|e| QueryError::BadRequest(format!("polygon: {e}")))?;
    let geo::Geometry::Polygon(p) = g else {
        return Err(QueryError::BadRequest("polygon must be a GeoJSON Polygon".into()));
    };
    let vertices: usize = std::iter::once(p.exterior()).chain(p.interiors()).map(|r| r.0.len()).sum();
    if vertices > MAX_VERTICES {
        return Err(QueryError::BadRequest(format!(
            "polygon has {vertices} vertices; at most {MAX_VERTICES} are allowed"
        )));
    }
    for c in std::iter::once(p.exterior()).chain(p.interiors()).flat_map(|r| r.0.iter()) {
        check_point(c.x, c.y)?;
    }
    use geo::Validation;
    if let Some(problem) = p.validation_errors().into_iter().next() {
        return Err(QueryError::BadRequest(format!("polygon is not valid: {problem}")));
    }
    Ok(p)
}

/// What lies in an area: points inside it (edges included), or parcels intersecting it.
///
/// The count is of every match: for points from the tree's node counts (a node wholly inside
/// the area adds its count unvisited), so a city-wide area costs its boundary. The records are
/// the first `limit` matches in the index's order (nearby records together), returned by key:
/// the work is bounded by `limit`. Visits one by one (a caller who sees only some rows, parcels)
/// look at the request's cancellation.
pub fn within(view: &View, shape: &Shape, req: &WithinRequest) -> QueryResult<Found> {
    let registry = shape.registry;
    let area = match (&req.bbox, &req.polygon) {
        (Some(b), None) => {
            check_point(b[0], b[1])?;
            check_point(b[2], b[3])?;
            if b[0] > b[2] || b[1] > b[3] {
                return Err(QueryError::BadRequest("bbox must be [min_lon, min_lat, max_lon, max_lat]".into()));
            }
            None
        }
        (None, Some(p)) => {
            Some(PolygonArea::new(polygon_of(p)?).ok_or_else(|| QueryError::BadRequest("empty polygon".into()))?)
        }
        _ => return Err(QueryError::BadRequest("give exactly one of `bbox` or `polygon`".into())),
    };
    let limit = hits_limit(req.limit)?;
    let (count, mut keys) = if registry == Registry::Parcels {
        let area = match (&area, &req.bbox) {
            (Some(p), _) => Area::Polygon(p.polygon()),
            (None, Some(b)) => Area::Box(*b),
            _ => unreachable!("checked above"),
        };
        parcels_within(view, &area, shape, limit)?
    } else {
        let spatial = view.spatial()?;
        let layer =
            spatial.points(registry).ok_or_else(|| QueryError::BadRequest(format!("{registry} has no locations")))?;
        match (&area, &req.bbox) {
            (Some(p), _) => points_within(layer, p, shape, limit)?,
            (None, Some(b)) => points_within(layer, b, shape, limit)?,
            _ => unreachable!("checked above"),
        }
    };
    keys.sort_unstable();
    let records = view.reader().get_many(registry, &keys)?;
    Ok(Found { records, distances: None, count, count_only: false })
}

/// How many points a region holds that the caller sees, and the keys of the first `limit`.
fn points_within(
    layer: &PointLayer,
    region: &impl Region,
    shape: &Shape,
    limit: usize,
) -> QueryResult<(usize, Vec<String>)> {
    let mut keys = Vec::with_capacity(limit);
    if shape.rows.is_none() {
        let _ = layer.index.visit_in(region, |id, _| {
            keys.push(layer.key(id).to_string());
            if keys.len() < limit { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
        });
        return Ok((layer.index.count_in(region), keys));
    }
    let mut gather = Gather::new(shape, limit);
    let flow = layer.index.visit_in(region, |id, _| gather.offer(&layer.key(id)));
    gather.finish(flow)
}

/// Counts the keys a caller sees, keeps the first `limit`, and stops when the request is
/// cancelled (a visit one by one costs what the area holds).
struct Gather<'a> {
    shape: &'a Shape,
    limit: usize,
    count: usize,
    keys: Vec<String>,
    tick: Ticker<'a>,
}

impl<'a> Gather<'a> {
    fn new(shape: &'a Shape, limit: usize) -> Gather<'a> {
        Gather { shape, limit, count: 0, keys: Vec::with_capacity(limit), tick: shape.cancel.ticker() }
    }

    fn offer(&mut self, key: &str) -> ControlFlow<()> {
        if self.shape.sees_key(key) {
            self.count += 1;
            if self.keys.len() < self.limit {
                self.keys.push(key.to_string());
            }
        }
        if self.tick.stop() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn finish(self, flow: ControlFlow<()>) -> QueryResult<(usize, Vec<String>)> {
        if flow.is_break() { Err(QueryError::Cancelled) } else { Ok((self.count, self.keys)) }
    }
}

/// How many parcels intersecting an area the caller sees, and the keys of the first `limit`:
/// each candidate is tested exactly, so this visits every one (cancellable).
fn parcels_within(view: &View, area: &Area<'_>, shape: &Shape, limit: usize) -> QueryResult<(usize, Vec<String>)> {
    let spatial = view.spatial()?;
    let layer = &spatial.parcels;
    let mut gather = Gather::new(shape, limit);
    let flow = layer.index.visit_intersecting(area, |i| gather.offer(&layer.key(i)));
    gather.finish(flow)
}

/// The parcels whose polygon contains the point (boundary included, holes excluded).
pub fn containing(view: &View, shape: &Shape, lon: f64, lat: f64) -> QueryResult<Found> {
    check_point(lon, lat)?;
    let keys: Vec<String> = parcels_at(view, lon, lat)?.into_iter().filter(|k| shape.sees_key(k)).collect();
    let count = keys.len();
    let records = view.reader().get_many(Registry::Parcels, &keys)?;
    Ok(Found { records, distances: None, count, count_only: false })
}

/// Keys of the parcels containing a point.
pub fn parcels_at(view: &View, lon: f64, lat: f64) -> QueryResult<Vec<String>> {
    let spatial = view.spatial()?;
    let layer = &spatial.parcels;
    Ok(layer.index.containing(lon, lat).iter().map(|&i| layer.key(i).to_string()).collect())
}

fn geometry_of(record: &Record) -> Option<geojson::Geometry> {
    record.values.iter().flatten().find_map(|v| match v {
        Value::Point(p) => Some(geojson::Geometry::from(p)),
        Value::Geometry(g) => Some(geojson::Geometry::from(g)),
        _ => None,
    })
}

/// Renders an answer as `{"count", "hits": [{"id", "distance_m"?, "record"}]}`, or as a GeoJSON
/// FeatureCollection, as the caller may see the records (a geometry is a field like the
/// others: shown only when granted in full).
pub fn render(view: &View, caller: &Caller, shape: &Shape, found: &Found, geojson: bool) -> Json {
    if found.count_only {
        return json!({"count": found.count});
    }
    let located = shape
        .registry
        .schema()
        .fields
        .iter()
        .find(|f| matches!(f.kind, jichu_ingest::FieldKind::Point | jichu_ingest::FieldKind::Geometry));
    let show_geometry = located.is_some_and(|f| shape.rule(f.name) == crate::model::FieldRule::Full);
    let hits = found.records.iter().enumerate().filter_map(|(i, r)| r.as_ref().map(|r| (i, r)));
    if geojson {
        let features: Vec<Json> = hits
            .map(|(i, r)| {
                let mut props = match serde_json::to_value(caller.render(view, shape, r)) {
                    Ok(Json::Object(m)) => m,
                    _ => Map::new(),
                };
                if let Some(d) = &found.distances {
                    props.insert("distance_m".into(), json!(d[i]));
                }
                let id = props.get("id").cloned().unwrap_or(Json::Null);
                let geometry = if show_geometry { geometry_of(r) } else { None };
                json!({"type": "Feature", "id": id, "geometry": geometry, "properties": props})
            })
            .collect();
        return json!({"type": "FeatureCollection", "features": features});
    }
    let hits: Vec<Json> = hits
        .map(|(i, r)| {
            let record = serde_json::to_value(caller.render(view, shape, r)).unwrap_or(Json::Null);
            let id = record.get("id").cloned().unwrap_or(Json::Null);
            match &found.distances {
                Some(d) => json!({"id": id, "distance_m": d[i], "record": record}),
                None => json!({"id": id, "record": record}),
            }
        })
        .collect();
    json!({"count": found.count, "hits": hits})
}
