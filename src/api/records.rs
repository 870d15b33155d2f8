//! Records by key, in batches, their relations and the cross-registry profile.

use super::extract::{Json, Path, Query};
use super::problem::{ApiError, Problem};
use super::{AppState, json_body};
use crate::access::Operation;
use crate::golden::Rules;
use crate::model::RecordJson;
use crate::model::Registry;
use crate::query::golden;
use crate::query::history::{self, At};
use crate::query::records::{self, key, registry};
use crate::query::{Caller, QueryError, View};
use axum::extract::{Extension, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The largest batch a lookup answers on the async worker when every record is in memory:
/// about 4 µs a key (100 keys in process at 10M citizens: p50 0.43 ms), so at most ~0.5 ms
/// between two awaits. Larger batches, and any that would read a file, go to the query pool
/// (a hand-off each way).
const INLINE_LOOKUP_IDS: usize = 100;

/// `?fields=a,b`: project the answer to these fields; `?as_of=`: as it was then.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FieldsQuery {
    /// Comma-separated field names; all fields when absent.
    pub fields: Option<String>,
    /// RFC 3339: the record as jichu held it at that moment (needs the `history` operation).
    pub as_of: Option<String>,
    /// Adds `provenance`: for each returned field, the source, load, time and rule that chose
    /// its value (the current record only).
    pub explain: Option<bool>,
}

/// `?as_of=`: as jichu held it at that moment.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AsOfQuery {
    /// RFC 3339: as jichu held it at that moment (needs the `history` operation).
    pub as_of: Option<String>,
}

/// `?cursor=&limit=` of a history.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// `next` of the page before.
    pub cursor: Option<String>,
    /// Versions per page, at most 1000 (default 100).
    pub limit: Option<usize>,
}

/// The state a read answers from: now, or as of `as_of` (a grant of `history` needed).
fn at(caller: &Caller, registry: Registry, view: &View, as_of: Option<&str>) -> Result<At, ApiError> {
    let Some(raw) = as_of else { return Ok(At::Now) };
    caller.shape(registry, Operation::History, None::<[&str; 0]>, true)?;
    Ok(At::Then(history::as_of(view, raw)?))
}

/// Keys travel in the body, so personal numbers stay out of URLs and access logs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Up to 1000 keys, answered in this order.
    pub ids: Vec<String>,
    /// Fields to return; all when absent.
    pub fields: Option<Vec<String>>,
}

/// The answer of a lookup, serialised without an intermediate JSON tree.
#[derive(Serialize)]
struct LookupResponse<'a> {
    records: Vec<Option<RecordJson<'a>>>,
    not_found: &'a [String],
    invalid: &'a [Value],
}

/// One record by key.
#[utoipa::path(
    get, path = "/v1/{registry}/{id}", tag = "records",
    params(("registry" = String, Path, description = "citizens, entities, parcels, credit or licences"), ("id" = String, Path, description = "the record's key"), FieldsQuery),
    responses(
        (status = 200, description = "the record", body = Object),
        (status = 400, description = "malformed key or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown registry or no such record", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_record(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((registry_name, raw_id)): Path<(String, String)>,
    Query(q): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let shape = caller.shape(registry, Operation::Get, q.fields.as_ref().map(|f| f.split(',')), true)?;
    let view = state.view();
    let at = at(&caller, registry, &view, q.as_of.as_deref())?;
    // In memory: answered here; otherwise read on the blocking pool.
    let cached = match at {
        At::Now => view.reader().get_cached(registry, &id)?,
        At::Then(_) => None,
    };
    let record = match cached {
        Some(found) => found,
        None => {
            let v = view.clone();
            state.query(caller.cancel.clone(), move || at.get(&v, registry, &id)).await?
        }
    };
    let record = record.filter(|r| shape.sees(r)).ok_or(QueryError::NotFound(registry.as_str()))?;
    if q.explain != Some(true) {
        return json_body(&caller.render(&view, &shape, &record));
    }
    if q.as_of.is_some() {
        return Err(ApiError::BadRequest("`explain` answers the current record; leave out `as_of`".into()));
    }
    let rules = Rules::load(&state.config.survivorship_file())?;
    let (v, s, r) = (view.clone(), shape.clone(), record.clone());
    let provenance = state.query(caller.cancel.clone(), move || golden::explain(&v, &s, &r, &rules)).await?;
    let mut body =
        serde_json::to_value(caller.render(&view, &shape, &record)).map_err(|e| crate::Error::Codec(e.to_string()))?;
    body["provenance"] = provenance;
    json_body(&body)
}

/// An entity by the GB 11714 organisation code (9 characters) its credit code embeds: how
/// companies registered before 2015 are still named by some departments.
#[utoipa::path(
    get, path = "/v1/entities/by-organisation-code/{code}", tag = "records",
    params(("code" = String, Path, description = "the organisation code, with or without its hyphen"), FieldsQuery),
    responses(
        (status = 200, description = "the entity", body = Object),
        (status = 400, description = "a malformed organisation code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no entity's credit code embeds it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "several entities' credit codes embed it (listed)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn by_organisation_code(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let registry = Registry::Entities;
    let code = crate::model::ids::parse_organisation_code(&raw)
        .map_err(|e| QueryError::MalformedId { registry: "organisation code", message: e.to_string() })?;
    let shape = caller.shape(registry, Operation::Get, q.fields.as_ref().map(|f| f.split(',')), true)?;
    let view = state.view();
    let v = view.clone();
    let found =
        state.query(caller.cancel.clone(), move || Ok(v.reader().entities_by_organisation_code(&code)?)).await?;
    let id = match found.as_slice() {
        [one] => one.clone(),
        [] => return Err(QueryError::NotFound(registry.as_str()).into()),
        many => {
            return Err(ApiError::Ambiguous(format!(
                "{} entities' credit codes embed this organisation code: {}",
                many.len(),
                many.join(", ")
            )));
        }
    };
    let v = view.clone();
    let record = state.query(caller.cancel.clone(), move || Ok(v.reader().get(registry, &id)?)).await?;
    let record = record.filter(|r| shape.sees(r)).ok_or(QueryError::NotFound(registry.as_str()))?;
    json_body(&caller.render(&view, &shape, &record))
}

/// A record's sources: each one's latest contribution, newest first.
#[derive(Serialize)]
struct SourcesResponse<'a> {
    id: Option<String>,
    sources: Vec<SourceJson<'a>>,
}

#[derive(Serialize)]
struct SourceJson<'a> {
    source: &'a str,
    /// The source's snapshot no longer holds the record.
    ended: bool,
    recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    contribution: RecordJson<'a>,
}

/// Each source's contribution to a record (golden records): its values, load and time, under
/// the caller's grant on the record.
#[utoipa::path(
    get, path = "/v1/{registry}/{id}/sources", tag = "records",
    params(("registry" = String, Path, description = "citizens, entities, parcels, credit or licences"), ("id" = String, Path, description = "the record's key")),
    responses(
        (status = 200, description = "`sources`: each source's latest contribution, newest first", body = Object),
        (status = 404, description = "no such record", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((registry_name, raw_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let shape = caller.shape(registry, Operation::Get, None::<[&str; 0]>, true)?;
    let view = state.view();
    let v = view.clone();
    let list = state.query(caller.cancel.clone(), move || golden::sources(&v, registry, &id)).await?;
    let list = list
        .filter(|l| l.first().is_some_and(|(_, r)| shape.sees(r)))
        .ok_or(QueryError::NotFound(registry.as_str()))?;
    let sources = list
        .iter()
        .map(|(source, record)| SourceJson {
            source,
            ended: record.ended,
            recorded_at: view.lineage(record.load_id).and_then(|l| l.finished_at),
            contribution: caller.render(&view, &shape, record),
        })
        .collect();
    let id = list.first().and_then(|(_, r)| caller.render_key(&shape, &r.id));
    json_body(&SourcesResponse { id, sources })
}

/// Many records by key in one call (RocksDB batched multi-get).
#[utoipa::path(
    post, path = "/v1/{registry}/lookup", tag = "records",
    params(("registry" = String, Path, description = "citizens, entities, parcels, credit or licences")),
    request_body = LookupRequest,
    responses(
        (status = 200, description = "`records` aligned with `ids` (null where absent or malformed), `not_found` and `invalid` listed", body = Object),
        (status = 400, description = "bad body or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "more keys than allowed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(registry_name): Path<String>,
    Query(q): Query<AsOfQuery>,
    Json(req): Json<LookupRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let max = state.config.max_lookup_ids;
    if req.ids.len() > max {
        return Err(QueryError::TooManyIds { given: req.ids.len(), max }.into());
    }
    let fields = req.fields.as_ref().map(|f| f.iter().map(String::as_str));
    let shape = caller.shape(registry, Operation::Lookup, fields, true)?;
    let view = state.view();
    let at = at(&caller, registry, &view, q.as_of.as_deref())?;
    // A batch small enough and in memory is answered here; otherwise on the query pool.
    let cached = match at {
        At::Now if req.ids.len() <= INLINE_LOOKUP_IDS => records::lookup_cached(&view, &shape, &req.ids)?,
        _ => None,
    };
    let found = match cached {
        Some(found) => found,
        None => {
            let (v, s) = (view.clone(), shape.clone());
            state.query(caller.cancel.clone(), move || records::lookup(&v, &s, &req.ids, at)).await?
        }
    };
    let records = found.records.iter().map(|r| r.as_ref().map(|r| caller.render(&view, &shape, r))).collect();
    json_body(&LookupResponse { records, not_found: &found.not_found, invalid: &found.invalid })
}

/// The records linked to this one, both directions, grouped by relation.
#[utoipa::path(
    get, path = "/v1/{registry}/{id}/relations", tag = "records",
    params(("registry" = String, Path, description = "the registry"), ("id" = String, Path, description = "the record's key")),
    responses(
        (status = 200, description = "relation name → linked keys, with whether each linked record is loaded", body = Object),
        (status = 400, description = "malformed key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown registry or no such record", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn relations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((registry_name, raw_id)): Path<(String, String)>,
    Query(q): Query<AsOfQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let shape = caller.shape(registry, Operation::Relations, None::<[&str; 0]>, true)?;
    let view = state.view();
    let at = at(&caller, registry, &view, q.as_of.as_deref())?;
    let out = state.query(caller.cancel.clone(), move || records::relations(&view, &caller, &shape, &id, at)).await?;
    Ok(axum::Json(out.ok_or(QueryError::NotFound(registry.as_str()))?))
}

/// The whole picture of a citizen or an entity in one call.
#[utoipa::path(
    get, path = "/v1/{registry}/{id}/profile", tag = "records",
    params(("registry" = String, Path, description = "citizens or entities"), ("id" = String, Path, description = "identity number or credit code")),
    responses(
        (status = 200, description = "the record, its entities represented or legal representative, licences and credit records", body = Object),
        (status = 400, description = "malformed key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such record, or a registry without profiles", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((registry_name, raw_id)): Path<(String, String)>,
    Query(q): Query<AsOfQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let shape = caller.shape(registry, Operation::Profile, None::<[&str; 0]>, true)?;
    let view = state.view();
    let at = at(&caller, registry, &view, q.as_of.as_deref())?;
    let out = state.query(caller.cancel.clone(), move || records::profile(&view, &caller, &shape, &id, at)).await?;
    Ok(axum::Json(out.ok_or(QueryError::NotFound(registry.as_str()))?))
}

/// A record's versions, newest first: when each was recorded and until when, the load and
/// source that wrote it, the kind of change and the fields it changed.
#[utoipa::path(
    get, path = "/v1/{registry}/{id}/history", tag = "records",
    params(("registry" = String, Path, description = "the registry"), ("id" = String, Path, description = "the record's key"), HistoryQuery),
    responses(
        (status = 200, description = "`versions` newest first (`recorded_at`, `recorded_until`, `effective_from`, `load_id`, `source`, `change`, `fields_changed`, `record`), `next` (the cursor of older versions), `earlier_versions_dropped` when the retention dropped some", body = Object),
        (status = 400, description = "malformed key or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such record", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((registry_name, raw_id)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let shape = caller.shape(registry, Operation::History, None::<[&str; 0]>, true)?;
    let view = state.view();
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > history::MAX_VERSIONS {
        return Err(QueryError::BadRequest(format!("limit must be between 1 and {}", history::MAX_VERSIONS)).into());
    }
    let page = state
        .query(caller.cancel.clone(), move || history::history(&view, &caller, &shape, &id, q.cursor.as_deref(), limit))
        .await?;
    json_body(&page.ok_or(QueryError::NotFound(registry.as_str()))?)
}
