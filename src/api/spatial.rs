//! Spatial queries: nearest, within an area, containing a point. Answers are JSON, or a
//! GeoJSON FeatureCollection when the client sends `Accept: application/geo+json`.

use super::extract::{Json, Path, Query};
use super::problem::{ApiError, Problem};
use super::{AppState, json_body};
use crate::access::Operation;
use crate::model::Registry;
use crate::query::records::registry;
use crate::query::spatial::{self, NearRequest, WithinRequest};
use crate::query::{Caller, Shape};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PointQuery {
    pub lon: f64,
    pub lat: f64,
}

fn wants_geojson(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/geo+json"))
}

/// Renders an answer as JSON or (asked by `Accept`) GeoJSON.
fn answer(body: serde_json::Value, geojson: bool) -> Result<Response, ApiError> {
    let mut response = json_body(&body)?;
    if geojson {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    }
    Ok(response)
}

/// The caller's shape for a spatial query on `registry`: the operation granted, and (for
/// points) the location seen in full — a radius or a box is a question about it.
fn shape(caller: &Caller, registry: Registry, fields: &Option<Vec<String>>) -> Result<Shape, ApiError> {
    let shape =
        caller.shape(registry, Operation::Spatial, fields.as_ref().map(|f| f.iter().map(String::as_str)), false)?;
    if registry.schema().field_index("location").is_some() {
        caller.require_full(&shape, &["location"])?;
    }
    Ok(shape)
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
    Extension(caller): Extension<Caller>,
    Path(registry_name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<NearRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let shape = shape(&caller, registry, &req.fields)?;
    let geojson = wants_geojson(&headers);
    let view = state.view();
    let body = state
        .query(caller.cancel.clone(), move || {
            let found = spatial::near(&view, &shape, &req)?;
            Ok(spatial::render(&view, &caller, &shape, &found, geojson))
        })
        .await?;
    answer(body, geojson)
}

/// What lies in an area: points inside it (edges included), or parcels intersecting it.
#[utoipa::path(
    post, path = "/v1/{registry}/within", tag = "spatial",
    params(("registry" = String, Path, description = "citizens, entities or parcels")),
    request_body = WithinRequest,
    responses(
        (status = 200, description = "`count` (all matches) and `hits`: the first `limit` matches in the index's spatial order, sorted by key (GeoJSON on request)", body = Object),
        (status = 400, description = "bad box or polygon", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn within(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(registry_name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<WithinRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let shape = shape(&caller, registry, &req.fields)?;
    let geojson = wants_geojson(&headers);
    let view = state.view();
    let body = state
        .query(caller.cancel.clone(), move || {
            let found = spatial::within(&view, &shape, &req)?;
            Ok(spatial::render(&view, &caller, &shape, &found, geojson))
        })
        .await?;
    answer(body, geojson)
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
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<PointQuery>,
) -> Result<Response, ApiError> {
    let shape = shape(&caller, Registry::Parcels, &None)?;
    let geojson = wants_geojson(&headers);
    let view = state.view();
    let body = state
        .query(caller.cancel.clone(), move || {
            let found = spatial::containing(&view, &shape, q.lon, q.lat)?;
            Ok(spatial::render(&view, &caller, &shape, &found, geojson))
        })
        .await?;
    answer(body, geojson)
}
