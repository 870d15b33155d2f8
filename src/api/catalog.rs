//! The service catalogue: what each registry holds and where its data came from.

use super::AppState;
use super::problem::Problem;
use crate::query::Caller;
use axum::extract::{Extension, State};
use serde_json::Value;

/// Each registry with its fields, record count and what search offers (text fields, filters),
/// each source with its last published load, and the published state's generation.
#[utoipa::path(
    get, path = "/v1/catalog", tag = "catalogue",
    responses((status = 200, description = "registries, fields, counts and sources", body = Object), (status = 500, body = Problem))
)]
pub async fn catalog(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> axum::Json<Value> {
    axum::Json(crate::query::catalog::catalog(&state.view(), &caller))
}
