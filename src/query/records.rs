//! Records by key, in batches, their relations and the cross-registry profile — all read from
//! one view.

use super::caller::{Caller, Shape};
use super::error::{QueryError, QueryResult};
use super::history::At;
use super::view::View;
use crate::model::{Record, Registry, Relation, Schema};
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

/// The answer of a batch lookup, aligned with the keys asked.
#[derive(Debug)]
pub struct Lookup {
    /// One entry per key asked: the record, or None (absent, not visible, or malformed).
    pub records: Vec<Option<Record>>,
    /// Keys asked that are well formed but absent (or outside the caller's rows).
    pub not_found: Vec<String>,
    /// Malformed keys: `{"id", "message"}`.
    pub invalid: Vec<Value>,
}

/// One record by key, if it exists (at `at`) and the caller may see its row.
pub fn get(view: &View, shape: &Shape, id: &str, at: At) -> QueryResult<Option<Record>> {
    Ok(at.get(view, shape.registry, id)?.filter(|r| shape.sees(r)))
}

/// Many records by key in one read (RocksDB's batched multi-get).
pub fn lookup(view: &View, shape: &Shape, ids: &[String], at: At) -> QueryResult<Lookup> {
    let keys = Keys::parse(shape.registry, ids);
    let found = at.get_many(view, shape.registry, &keys.valid)?;
    Ok(keys.answer(shape, ids, found))
}

/// [`lookup`] of the current records if every answer is in memory: `None` when one would
/// need a file read, so that the async API answers hot batches without a thread hand-off.
pub fn lookup_cached(view: &View, shape: &Shape, ids: &[String]) -> QueryResult<Option<Lookup>> {
    let keys = Keys::parse(shape.registry, ids);
    let found = view.reader().get_many_cached(shape.registry, &keys.valid)?;
    Ok(found.map(|found| keys.answer(shape, ids, found)))
}

/// A lookup's ids parsed: each id's key (`None`: invalid), the valid keys in order, and what
/// is wrong with the others.
struct Keys {
    keys: Vec<Option<String>>,
    valid: Vec<String>,
    invalid: Vec<Value>,
}

impl Keys {
    fn parse(registry: Registry, ids: &[String]) -> Keys {
        let schema = registry.schema();
        let mut invalid = Vec::new();
        let mut keys = Vec::with_capacity(ids.len());
        for raw in ids {
            match schema.parse_key(raw) {
                Ok(k) => keys.push(Some(k)),
                Err(message) => {
                    invalid.push(json!({"id": clip(raw), "message": message}));
                    keys.push(None);
                }
            }
        }
        let valid = keys.iter().flatten().cloned().collect();
        Keys { keys, valid, invalid }
    }

    /// The answer, in the order asked, from the records found for the valid keys.
    fn answer(self, shape: &Shape, ids: &[String], found: Vec<Option<Record>>) -> Lookup {
        let mut found = found.into_iter();
        let records: Vec<Option<Record>> = self
            .keys
            .iter()
            .map(|k| k.as_ref().and_then(|_| found.next().flatten()).filter(|r| shape.sees(r)))
            .collect();
        let not_found = ids
            .iter()
            .zip(&self.keys)
            .zip(&records)
            .filter(|((_, k), r)| k.is_some() && r.is_none())
            .map(|((id, _), _)| id.clone())
            .collect();
        Lookup { records, not_found, invalid: self.invalid }
    }
}

/// A client's text in an answer, cut to a length that does not echo a huge input back.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= 64 { s.to_string() } else { format!("{}…", s.chars().take(64).collect::<String>()) }
}

/// Whether a linked record is visible: its row, for registries whose keys do not say it.
fn linked_visible(view: &View, shape: &Shape, key: &str, at: At) -> QueryResult<bool> {
    if shape.rows.is_none() {
        return Ok(true);
    }
    if matches!(shape.registry, Registry::Citizens | Registry::Entities | Registry::Parcels) {
        return Ok(shape.sees_key(key));
    }
    Ok(at.get(view, shape.registry, key)?.is_some_and(|r| shape.sees(&r)))
}

/// The records linked to one, both directions, grouped by relation, as the caller may see
/// them (linked records of registries it has no grant on, or outside its rows, are left out);
/// None when neither the record nor any edge to it exists, or the record is outside its rows.
pub fn relations(view: &View, caller: &Caller, shape: &Shape, id: &str, at: At) -> QueryResult<Option<Value>> {
    let registry = shape.registry;
    let record = at.get(view, registry, id)?;
    if record.as_ref().is_some_and(|r| !shape.sees(r)) || (record.is_none() && !shape.sees_key(id)) {
        return Ok(None);
    }
    let edges = at.relations(view, registry, id, record.as_ref())?;
    if record.is_none() && edges.is_empty() {
        return Ok(None);
    }
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut shapes: BTreeMap<Registry, Option<Shape>> = BTreeMap::new();
    for e in edges {
        let linked = match shapes.entry(e.registry) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(caller.related(e.registry)?),
        };
        let Some(linked) = linked.as_ref() else { continue };
        if !linked_visible(view, linked, &e.id, at)? {
            continue;
        }
        let Some(shown) = caller.render_key(linked, &e.id) else { continue };
        let loaded = match at {
            At::Now => view.reader().exists(e.registry, &e.id)?,
            At::Then(_) => at.get(view, e.registry, &e.id)?.is_some(),
        };
        groups
            .entry(e.relation.as_str())
            .or_default()
            .push(json!({"registry": e.registry, "id": shown, "loaded": loaded}));
    }
    Ok(Some(json!({"registry": registry, "id": id, "loaded": record.is_some(), "relations": groups})))
}

/// The whole picture of a citizen or an entity: the record, the entities it represents or its
/// legal representative, its licences and credit records, the parcels at its location — each
/// as the caller may see the registry it comes from.
pub fn profile(view: &View, caller: &Caller, shape: &Shape, id: &str, at: At) -> QueryResult<Option<Value>> {
    let registry = shape.registry;
    if !matches!(registry, Registry::Citizens | Registry::Entities) {
        return Err(QueryError::UnknownRegistry(format!("profiles exist for citizens and entities, not {registry}")));
    }
    let Some(record) = at.get(view, registry, id)?.filter(|r| shape.sees(r)) else { return Ok(None) };
    let mut profile = Map::new();
    profile.insert("record".into(), to_json(caller.render(view, shape, &record)));
    let edges = at.relations(view, registry, id, Some(&record))?;
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
            if ids.is_empty() {
                continue;
            }
            let Some(linked) = caller.related(target)? else { continue };
            for r in at.get_many(view, target, &ids)?.into_iter().flatten().filter(|r| linked.sees(r)) {
                records.push(to_json(caller.render(view, &linked, &r)));
            }
        }
        let value = if single { records.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(records) };
        profile.insert(relation.as_str().into(), value);
    }
    let mut parcels = Vec::new();
    if let (Some(jichu_ingest::Value::Point(p)), Some(linked)) =
        (record.value("location"), caller.related(Registry::Parcels)?)
    {
        let keys: Vec<String> = at.parcels_at(view, p.x(), p.y())?.into_iter().filter(|k| linked.sees_key(k)).collect();
        for r in at.get_many(view, Registry::Parcels, &keys)?.into_iter().flatten() {
            parcels.push(to_json(caller.render(view, &linked, &r)));
        }
    }
    profile.insert("parcels".into(), Value::Array(parcels));
    Ok(Some(Value::Object(profile)))
}

fn to_json(r: crate::model::RecordJson<'_>) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}
