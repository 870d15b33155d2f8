//! Spatial queries: nearest, within an area, containing a point. Answers are JSON, or a
//! GeoJSON FeatureCollection when the client sends `Accept: application/geo+json`.

use super::extract::{Json, Path, Query};
use super::problem::{ApiError, Problem};
use super::records::{projection, registry};
use super::{AppState, blocking, json_body};
use crate::model::{Record, RecordJson, Registry};
use crate::spatial::SpatialIndex;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use jichu_indexes::spatial::Hit;
use jichu_ingest::Value;
use serde::Deserialize;
use serde_json::{Map, Value as Json_, json};
use std::collections::BinaryHeap;
use utoipa::{IntoParams, ToSchema};

/// Largest radius a query may ask for, and most hits it may return.
const MAX_RADIUS_M: f64 = 50_000.0;
const MAX_HITS: usize = 1000;

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
    #[schema(value_type = Object)]
    pub polygon: Option<Json_>,
    pub limit: Option<usize>,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PointQuery {
    pub lon: f64,
    pub lat: f64,
}

fn check_point(lon: f64, lat: f64) -> Result<(), ApiError> {
    if !(lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)) {
        return Err(ApiError::BadRequest(format!("({lon}, {lat}) is not a longitude/latitude on Earth")));
    }
    Ok(())
}

fn wants_geojson(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/geo+json"))
}

/// Hits as records (projected), in hit order, with an optional distance each.
async fn fetch(state: &AppState, registry: Registry, keys: Vec<String>) -> Result<Vec<Option<Record>>, ApiError> {
    let store = state.store.clone();
    blocking(move || store.get_many(registry, &keys)).await
}

fn geometry_of(record: &Record) -> Option<geojson::Geometry> {
    record.values.iter().flatten().find_map(|v| match v {
        Value::Point(p) => Some(geojson::Geometry::from(p)),
        Value::Geometry(g) => Some(geojson::Geometry::from(g)),
        _ => None,
    })
}

/// Renders hits as `{"count", "hits": [{"id", "distance_m"?, "record"}]}` or as GeoJSON.
fn answer(
    state: &AppState,
    geo: bool,
    records: &[Option<Record>],
    distances: Option<&[f64]>,
    only: Option<&[usize]>,
    count: usize,
) -> Result<Response, ApiError> {
    if geo {
        let features: Vec<Json_> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
            .map(|(i, r)| {
                let lineage = state.store.lineage(r.load_id);
                let mut props = match serde_json::to_value(RecordJson { record: r, only, lineage: lineage.as_deref() })
                {
                    Ok(Json_::Object(m)) => m,
                    _ => Map::new(),
                };
                if let Some(d) = distances {
                    props.insert("distance_m".into(), json!(d[i]));
                }
                json!({"type": "Feature", "id": r.id, "geometry": geometry_of(r), "properties": props})
            })
            .collect();
        let body = json!({"type": "FeatureCollection", "features": features});
        let mut response = json_body(&body)?;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
        return Ok(response);
    }
    let hits: Vec<Json_> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
        .map(|(i, r)| {
            let lineage = state.store.lineage(r.load_id);
            let record = RecordJson { record: r, only, lineage: lineage.as_deref() };
            match distances {
                Some(d) => json!({"id": r.id, "distance_m": d[i], "record": record}),
                None => json!({"id": r.id, "record": record}),
            }
        })
        .collect();
    json_body(&json!({"count": count, "hits": hits}))
}

/// The nearest points first, each with its great-circle distance in metres.
#[utoipa::path(
    post, path = "/v1/{registry}/near", tag = "spatial",
    params(("registry" = String, Path, description = "citizens or entities")),
    request_body = NearRequest,
    responses(
        (status = 200, description = "`count` and `hits` nearest first (GeoJSON with Accept: application/geo+json)", body = Object),
        (status = 400, description = "bad coordinates, radius, k or field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn near(
    State(state): State<AppState>,
    Path(registry_name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<NearRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let layer = state.spatial.points(registry).ok_or_else(|| {
        ApiError::BadRequest(format!("{registry} has no point locations; near works on citizens and entities"))
    })?;
    check_point(req.lon, req.lat)?;
    let only = projection(registry.schema(), req.fields.as_ref().map(|f| f.iter().map(String::as_str)))?;
    let hits: Vec<Hit> = match (req.k, req.radius_m) {
        (Some(k), None) if (1..=MAX_HITS).contains(&k) => layer.index.nearest(req.lon, req.lat, k, None),
        (Some(k), None) => return Err(ApiError::BadRequest(format!("k must be 1 to {MAX_HITS}, got {k}"))),
        (None, Some(r)) if r.is_finite() && r > 0.0 && r <= MAX_RADIUS_M => {
            if req.count_only {
                return json_body(&json!({"count": layer.index.count_within_radius(req.lon, req.lat, r)}));
            }
            // Nearest-first with a distance cap: work bounded by `limit`, not by the area.
            layer.index.nearest(req.lon, req.lat, req.limit.unwrap_or(100).min(MAX_HITS), Some(r))
        }
        (None, Some(r)) => {
            return Err(ApiError::BadRequest(format!(
                "radius_m must be more than 0 and at most {MAX_RADIUS_M}, got {r}"
            )));
        }
        _ => return Err(ApiError::BadRequest("give exactly one of `k` or `radius_m`".into())),
    };
    if req.count_only {
        return json_body(&json!({"count": hits.len()}));
    }
    let keys: Vec<String> = hits.iter().map(|h| layer.keys.get(h.id).to_string()).collect();
    let distances: Vec<f64> = hits.iter().map(|h| (h.distance_m * 100.0).round() / 100.0).collect();
    let records = fetch(&state, registry, keys).await?;
    answer(&state, wants_geojson(&headers), &records, Some(&distances), only.as_deref(), hits.len())
}

fn polygon_of(v: &Json_) -> Result<geo::Polygon<f64>, ApiError> {
    let gj: geojson::Geometry = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::BadRequest(format!("polygon: not a GeoJSON geometry: {e}")))?;
    let g = geo::Geometry::<f64>::try_from(gj).map_err(|e| ApiError::BadRequest(format!("polygon: {e}")))?;
    let geo::Geometry::Polygon(p) = g else {
        return Err(ApiError::BadRequest("polygon must be a GeoJSON Polygon".into()));
    };
    use geo::Validation;
    if let Some(problem) = p.validation_errors().into_iter().next() {
        return Err(ApiError::BadRequest(format!("polygon is not valid: {problem}")));
    }
    Ok(p)
}

/// What lies in an area: points inside it (edges included), or parcels intersecting it.
#[utoipa::path(
    post, path = "/v1/{registry}/within", tag = "spatial",
    params(("registry" = String, Path, description = "citizens, entities or parcels")),
    request_body = WithinRequest,
    responses(
        (status = 200, description = "`count` (all matches) and `hits` ordered by key, at most `limit` (GeoJSON on request)", body = Object),
        (status = 400, description = "bad box or polygon", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn within(
    State(state): State<AppState>,
    Path(registry_name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<WithinRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let only = projection(registry.schema(), req.fields.as_ref().map(|f| f.iter().map(String::as_str)))?;
    let area = match (&req.bbox, &req.polygon) {
        (Some(b), None) => {
            check_point(b[0], b[1])?;
            check_point(b[2], b[3])?;
            if b[0] > b[2] || b[1] > b[3] {
                return Err(ApiError::BadRequest("bbox must be [min_lon, min_lat, max_lon, max_lat]".into()));
            }
            None
        }
        (None, Some(p)) => Some(polygon_of(p)?),
        _ => return Err(ApiError::BadRequest("give exactly one of `bbox` or `polygon`".into())),
    };
    let limit = req.limit.unwrap_or(100).min(MAX_HITS);
    // Count every match but keep only the `limit` smallest keys (a bounded max-heap): a
    // city-wide area costs no memory.
    let spatial = state.spatial.clone();
    let mut top = TopKeys { count: 0, limit, heap: BinaryHeap::with_capacity(limit + 1) };
    let mut offer = |key| top.offer(key);
    if registry == Registry::Parcels {
        let layer = &spatial.parcels;
        let ids = match (&area, req.bbox) {
            (Some(p), _) => layer.index.intersecting(p),
            (None, Some(b)) => layer.index.intersecting_bbox(&b),
            _ => vec![],
        };
        ids.iter().for_each(|&i| offer(layer.keys.get(i)));
    } else {
        let layer =
            spatial.points(registry).ok_or_else(|| ApiError::BadRequest(format!("{registry} has no locations")))?;
        let b = match (&area, req.bbox) {
            (Some(p), _) => {
                let r =
                    geo::BoundingRect::bounding_rect(p).ok_or_else(|| ApiError::BadRequest("empty polygon".into()))?;
                [r.min().x, r.min().y, r.max().x, r.max().y]
            }
            (None, Some(b)) => b,
            _ => unreachable!("checked above"),
        };
        layer.index.for_each_in_bbox(&b, |i, pt| {
            let inside = area.as_ref().is_none_or(|p| {
                use geo::{CoordinatePosition, coordinate_position::CoordPos};
                p.coordinate_position(&geo::Coord { x: pt[0], y: pt[1] }) != CoordPos::Outside
            });
            if inside {
                offer(layer.keys.get(i));
            }
        });
    }
    let count = top.count;
    let keys: Vec<String> = top.heap.into_sorted_vec().into_iter().map(str::to_string).collect();
    let records = fetch(&state, registry, keys).await?;
    answer(&state, wants_geojson(&headers), &records, None, only.as_deref(), count)
}

/// The `limit` smallest keys offered, and how many were offered.
struct TopKeys<'a> {
    count: usize,
    limit: usize,
    heap: BinaryHeap<&'a str>,
}

impl<'a> TopKeys<'a> {
    fn offer(&mut self, key: &'a str) {
        self.count += 1;
        self.heap.push(key);
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
}

/// The parcels whose polygon contains the point (boundary included, holes excluded).
#[utoipa::path(
    get, path = "/v1/parcels/containing", tag = "spatial",
    params(PointQuery),
    responses(
        (status = 200, description = "`count` and `hits` (GeoJSON on request)", body = Object),
        (status = 400, description = "bad coordinates", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn containing(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PointQuery>,
) -> Result<Response, ApiError> {
    check_point(q.lon, q.lat)?;
    let keys = parcels_at(&state.spatial, q.lon, q.lat);
    let count = keys.len();
    let records = fetch(&state, Registry::Parcels, keys).await?;
    answer(&state, wants_geojson(&headers), &records, None, None, count)
}

/// Keys of the parcels containing a point.
pub(super) fn parcels_at(spatial: &SpatialIndex, lon: f64, lat: f64) -> Vec<String> {
    let layer = &spatial.parcels;
    layer.index.containing(lon, lat).iter().map(|&i| layer.keys.get(i).to_string()).collect()
}
