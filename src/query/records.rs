//! Records by key, in batches, their relations and the cross-registry profile — all read from
//! one view.

use super::error::{QueryError, QueryResult};
use super::view::View;
use crate::model::{Record, RecordJson, Registry, Relation, Schema};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub fn registry(name: &str) -> QueryResult<Registry> {
    name.parse().map_err(QueryError::UnknownRegistry)
}

/// The canonical key of a client's key (a malformed one is refused, not looked up).
pub fn key(schema: &Schema, raw: &str) -> QueryResult<String> {
    schema.parse_key(raw).map_err(|message| QueryError::MalformedId { registry: schema.registry.as_str(), message })
}

/// Resolves a `fields` list to schema indices (None: every field); an unknown name is refused
/// by name.
pub fn projection<'a>(
    schema: &Schema,
    names: Option<impl IntoIterator<Item = &'a str>>,
) -> QueryResult<Option<Vec<usize>>> {
    let Some(names) = names else { return Ok(None) };
    let mut out = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        if name == "id" {
            continue;
        }
        let i = schema.field_index(name).ok_or_else(|| {
            let known: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
            QueryError::UnknownField(format!(
                "unknown field `{name}` for {}; its fields are: id, {}",
                schema.registry,
                known.join(", ")
            ))
        })?;
        out.push(i);
    }
    Ok(Some(out))
}

/// A whole record as JSON, with its lineage from the view.
pub fn render(view: &View, record: &Record) -> Value {
    record.to_json(None, view.lineage(record.load_id))
}

/// A record with the fields in `only` (all when None), its lineage from the view.
pub fn record_json<'a>(view: &'a View, record: &'a Record, only: Option<&'a [usize]>) -> RecordJson<'a> {
    RecordJson { record, only, lineage: view.lineage(record.load_id) }
}

/// The answer of a batch lookup, aligned with the keys asked.
#[derive(Debug)]
pub struct Lookup {
    /// One entry per key asked: the record, or None (absent or malformed).
    pub records: Vec<Option<Record>>,
    /// Keys asked that are well formed but absent.
    pub not_found: Vec<String>,
    /// Malformed keys: `{"id", "message"}`.
    pub invalid: Vec<Value>,
}

/// Many records by key in one read (RocksDB's batched multi-get).
pub fn lookup(view: &View, registry: Registry, ids: &[String]) -> QueryResult<Lookup> {
    let schema = registry.schema();
    let mut invalid = Vec::new();
    let mut keys = Vec::with_capacity(ids.len());
    for raw in ids {
        match schema.parse_key(raw) {
            Ok(k) => keys.push(Some(k)),
            Err(message) => {
                invalid.push(json!({"id": raw, "message": message}));
                keys.push(None);
            }
        }
    }
    let valid: Vec<String> = keys.iter().flatten().cloned().collect();
    let mut found = view.reader().get_many(registry, &valid)?.into_iter();
    let records: Vec<Option<Record>> = keys.iter().map(|k| k.as_ref().and_then(|_| found.next().flatten())).collect();
    let not_found = ids
        .iter()
        .zip(&keys)
        .zip(&records)
        .filter(|((_, k), r)| k.is_some() && r.is_none())
        .map(|((id, _), _)| id.clone())
        .collect();
    Ok(Lookup { records, not_found, invalid })
}

/// The records linked to one, both directions, grouped by relation; None when neither the
/// record nor any edge to it exists.
pub fn relations(view: &View, registry: Registry, id: &str) -> QueryResult<Option<Value>> {
    let at = view.reader();
    let exists = at.exists(registry, id)?;
    let edges = at.relations(registry, id)?;
    if !exists && edges.is_empty() {
        return Ok(None);
    }
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for e in edges {
        let loaded = at.exists(e.registry, &e.id)?;
        groups
            .entry(e.relation.as_str())
            .or_default()
            .push(json!({"registry": e.registry, "id": e.id, "loaded": loaded}));
    }
    Ok(Some(json!({"registry": registry, "id": id, "loaded": exists, "relations": groups})))
}

/// The whole picture of a citizen or an entity: the record, the entities it represents or its
/// legal representative, its licences and credit records, the parcels at its location.
pub fn profile(view: &View, registry: Registry, id: &str) -> QueryResult<Option<Value>> {
    if !matches!(registry, Registry::Citizens | Registry::Entities) {
        return Err(QueryError::UnknownRegistry(format!("profiles exist for citizens and entities, not {registry}")));
    }
    let at = view.reader();
    let Some(record) = at.get(registry, id)? else { return Ok(None) };
    let mut profile = Map::new();
    profile.insert("record".into(), render(view, &record));
    let edges = at.relations(registry, id)?;
    let sections: &[(Relation, bool)] = match registry {
        Registry::Citizens => {
            &[(Relation::Represents, false), (Relation::Licences, false), (Relation::CreditRecords, false)]
        }
        _ => &[(Relation::LegalRep, true), (Relation::Licences, false), (Relation::CreditRecords, false)],
    };
    for &(relation, single) in sections {
        let mut records = Vec::new();
        for target in Registry::ALL {
            let ids: Vec<String> =
                edges.iter().filter(|e| e.relation == relation && e.registry == target).map(|e| e.id.clone()).collect();
            if !ids.is_empty() {
                records.extend(at.get_many(target, &ids)?.into_iter().flatten().map(|r| render(view, &r)));
            }
        }
        let value = if single { records.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(records) };
        profile.insert(relation.as_str().into(), value);
    }
    let parcels = match record.value("location") {
        Some(jichu_ingest::Value::Point(p)) => {
            let keys = super::spatial::parcels_at(view, p.x(), p.y());
            at.get_many(Registry::Parcels, &keys)?.into_iter().flatten().map(|r| render(view, &r)).collect()
        }
        _ => Vec::new(),
    };
    profile.insert("parcels".into(), Value::Array(parcels));
    Ok(Some(Value::Object(profile)))
}
