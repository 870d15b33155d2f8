//! Records by key, in batches, their relations and the cross-registry profile.

use super::extract::{Json, Path, Query};
use super::problem::{ApiError, Problem};
use super::{AppState, blocking, json_body};
use crate::model::{Lineage, Record, RecordJson, Registry, Relation, Schema};
use crate::store::Store;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// `?fields=a,b`: project the answer to these fields.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FieldsQuery {
    /// Comma-separated field names; all fields when absent.
    pub fields: Option<String>,
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
    not_found: Vec<&'a str>,
    invalid: Vec<Value>,
}

pub(super) fn registry(name: &str) -> Result<Registry, ApiError> {
    name.parse().map_err(ApiError::UnknownRegistry)
}

pub(super) fn key(schema: &Schema, raw: &str) -> Result<String, ApiError> {
    schema.parse_key(raw).map_err(|message| ApiError::MalformedId { registry: schema.registry.as_str(), message })
}

/// Resolves a `fields` list to schema indices (None: every field); an unknown name is a 400
/// that names it.
pub(super) fn projection<'a>(
    schema: &Schema,
    names: Option<impl IntoIterator<Item = &'a str>>,
) -> Result<Option<Vec<usize>>, ApiError> {
    let Some(names) = names else { return Ok(None) };
    let mut out = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        if name == "id" {
            continue;
        }
        let i = schema.field_index(name).ok_or_else(|| {
            let known: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
            ApiError::UnknownField(format!(
                "unknown field `{name}` for {}; its fields are: id, {}",
                schema.registry,
                known.join(", ")
            ))
        })?;
        out.push(i);
    }
    Ok(Some(out))
}

pub(super) fn render(store: &Store, record: &Record, only: Option<&[usize]>) -> Value {
    record.to_json(only, store.lineage(record.load_id).as_deref())
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
    Path((registry_name, raw_id)): Path<(String, String)>,
    Query(q): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let schema = registry.schema();
    let id = key(schema, &raw_id)?;
    let only = projection(schema, q.fields.as_ref().map(|f| f.split(',')))?;
    // In memory: answered here; otherwise read on the blocking pool.
    let record = match state.store.get_cached(registry, &id)? {
        Some(found) => found,
        None => {
            let store = state.store.clone();
            blocking(move || store.get(registry, &id)).await?
        }
    };
    let record = record.ok_or(ApiError::NotFound(registry.as_str()))?;
    let lineage = state.store.lineage(record.load_id);
    json_body(&RecordJson { record: &record, only: only.as_deref(), lineage: lineage.as_deref() })
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
    Path(registry_name): Path<String>,
    Json(req): Json<LookupRequest>,
) -> Result<Response, ApiError> {
    let registry = registry(&registry_name)?;
    let schema = registry.schema();
    let max = state.config.max_lookup_ids;
    if req.ids.len() > max {
        return Err(ApiError::TooManyIds { given: req.ids.len(), max });
    }
    let only = projection(schema, req.fields.as_ref().map(|f| f.iter().map(String::as_str)))?;
    let mut invalid = Vec::new();
    let mut keys = Vec::with_capacity(req.ids.len());
    for raw in &req.ids {
        match schema.parse_key(raw) {
            Ok(k) => keys.push(Some(k)),
            Err(message) => {
                invalid.push(json!({"id": raw, "message": message}));
                keys.push(None);
            }
        }
    }
    let valid: Vec<String> = keys.iter().flatten().cloned().collect();
    let store = state.store.clone();
    let found = blocking(move || store.get_many(registry, &valid)).await?;
    // Align the answers with the request; lineage entries are looked up once per load.
    let mut found = found.into_iter();
    let aligned: Vec<Option<Record>> = keys.iter().map(|k| k.as_ref().and_then(|_| found.next().flatten())).collect();
    let not_found: Vec<&str> = req
        .ids
        .iter()
        .zip(&keys)
        .zip(&aligned)
        .filter(|((_, k), r)| k.is_some() && r.is_none())
        .map(|((id, _), _)| id.as_str())
        .collect();
    let mut lineages: HashMap<u32, Option<Arc<Lineage>>> = HashMap::new();
    for r in aligned.iter().flatten() {
        lineages.entry(r.load_id).or_insert_with(|| state.store.lineage(r.load_id));
    }
    let records: Vec<Option<RecordJson<'_>>> = aligned
        .iter()
        .map(|r| {
            r.as_ref().map(|record| RecordJson {
                record,
                only: only.as_deref(),
                lineage: lineages[&record.load_id].as_deref(),
            })
        })
        .collect();
    json_body(&LookupResponse { records, not_found, invalid })
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
    Path((registry_name, raw_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let registry = registry(&registry_name)?;
    let id = key(registry.schema(), &raw_id)?;
    let store = state.store.clone();
    let out = blocking(move || -> crate::Result<Option<Value>> {
        let exists = store.get_raw(registry, &id)?.is_some();
        let edges = store.relations(registry, &id)?;
        if !exists && edges.is_empty() {
            return Ok(None);
        }
        let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for e in edges {
            let loaded = store.get_raw(e.registry, &e.id)?.is_some();
            groups
                .entry(e.relation.as_str())
                .or_default()
                .push(json!({"registry": e.registry, "id": e.id, "loaded": loaded}));
        }
        Ok(Some(json!({"registry": registry, "id": id, "loaded": exists, "relations": groups})))
    })
    .await?;
    out.map(axum::Json).ok_or(ApiError::NotFound(registry.as_str()))
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
    Path((registry_name, raw_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let registry = registry(&registry_name)?;
    if !matches!(registry, Registry::Citizens | Registry::Entities) {
        return Err(ApiError::UnknownRegistry(format!("profiles exist for citizens and entities, not {registry}")));
    }
    let id = key(registry.schema(), &raw_id)?;
    let (store, spatial) = (state.store.clone(), state.spatial.clone());
    let out = blocking(move || -> crate::Result<Option<Value>> {
        let Some(record) = store.get(registry, &id)? else { return Ok(None) };
        let mut profile = Map::new();
        profile.insert("record".into(), render(&store, &record, None));
        let edges = store.relations(registry, &id)?;
        let sections: &[(Relation, bool)] = match registry {
            Registry::Citizens => {
                &[(Relation::Represents, false), (Relation::Licences, false), (Relation::CreditRecords, false)]
            }
            _ => &[(Relation::LegalRep, true), (Relation::Licences, false), (Relation::CreditRecords, false)],
        };
        for &(relation, single) in sections {
            let mut records = Vec::new();
            for target in Registry::ALL {
                let ids: Vec<String> = edges
                    .iter()
                    .filter(|e| e.relation == relation && e.registry == target)
                    .map(|e| e.id.clone())
                    .collect();
                if !ids.is_empty() {
                    records
                        .extend(store.get_many(target, &ids)?.into_iter().flatten().map(|r| render(&store, &r, None)));
                }
            }
            let value = if single { records.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(records) };
            profile.insert(relation.as_str().into(), value);
        }
        if let Some(jichu_ingest::Value::Point(p)) = record.value("location") {
            let keys = super::spatial::parcels_at(&spatial, p.x(), p.y());
            let parcels: Vec<Value> = store
                .get_many(Registry::Parcels, &keys)?
                .into_iter()
                .flatten()
                .map(|r| render(&store, &r, None))
                .collect();
            profile.insert("parcels".into(), Value::Array(parcels));
        } else {
            profile.insert("parcels".into(), json!([]));
        }
        Ok(Some(Value::Object(profile)))
    })
    .await?;
    out.map(axum::Json).ok_or(ApiError::NotFound(registry.as_str()))
}
