//! Full-text search: `POST /v1/{registry}/search` and `POST /v1/search` (every registry). A
//! request with a cursor answers from the view the first page came from.

use super::AppState;
use super::extract::{Json, Path};
use super::problem::{ApiError, Problem};
use crate::model::Registry;
use crate::query::records::registry;
use crate::query::search::{self, SearchRequest};
use crate::query::{Caller, QueryError};
use axum::extract::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};

async fn run(
    state: AppState,
    caller: Caller,
    registries: Vec<Registry>,
    req: SearchRequest,
) -> Result<Response, ApiError> {
    let current = state.view();
    let view = match req.cursor.as_deref() {
        Some(c) => {
            let (_, generation, _) = search::parse_cursor(c, current.epoch)?;
            state.service.views.at(generation).ok_or(QueryError::StaleCursor)?
        }
        None => current,
    };
    let body = state.query(caller.cancel.clone(), move || search::run(&view, &caller, &registries, &req)).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Searches one registry.
#[utoipa::path(
    post, path = "/v1/{registry}/search", tag = "search",
    params(("registry" = String, Path, description = "citizens, entities, parcels, credit or licences")),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "`total`, `total_exact`, `hits` (registry, id, score, record) in relevance order, `next_cursor`", body = Object),
        (status = 400, description = "empty or too long query, unknown field or filter, bad filter value, bad cursor", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the cursor belongs to a state no longer kept (superseded more than 10 minutes ago, or before a restart)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(registry_name): Path<String>,
    Json(req): Json<SearchRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    run(state, caller, vec![registry], req).await
}

/// Searches every registry at once (`q`, `in`, `filters` on `district`).
#[utoipa::path(
    post, path = "/v1/search", tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "as for one registry; each hit names its registry", body = Object),
        (status = 400, description = "empty or too long query, unknown field or filter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search_all(
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<SearchRequest>,
) -> Result<Response, ApiError> {
    run(state, caller, Registry::ALL.to_vec(), req).await
}
