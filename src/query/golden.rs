//! Golden records as a caller reads them: each source's contribution (`/sources`) and where
//! each returned value came from (`?explain=true`).

use super::caller::Shape;
use super::error::QueryResult;
use super::view::View;
use crate::golden::{self, Contribution, Rules};
use crate::model::{FieldRule, Record, Registry};
use crate::store::codec;
use serde_json::{Map, Value, json};

/// Each source's latest contribution to a record, newest first: the record itself when only
/// one source has supplied it. None: no such record.
pub fn sources(view: &View, registry: Registry, id: &str) -> QueryResult<Option<Vec<(String, Record)>>> {
    let reader = view.reader();
    let Some(raw) = reader.get_raw(registry, id)? else { return Ok(None) };
    let record = codec::decode(registry, id, &raw)?;
    if !record.sourced {
        let source = view.lineage(record.load_id).map_or_else(String::new, |l| l.source.clone());
        return Ok(Some(vec![(source, record)]));
    }
    let stored = reader.contributions_raw(registry, id)?.unwrap_or_default();
    let mut out = Vec::new();
    for (source, value) in crate::store::decode_contributions(&stored, &raw)? {
        out.push((source, codec::decode(registry, id, &value)?));
    }
    let order = |r: &Record| view.lineage(r.load_id).and_then(|l| l.finish_order()).unwrap_or(0);
    out.sort_by_key(|(_, r)| std::cmp::Reverse(order(r)));
    Ok(Some(out))
}

/// The provenance of each field the caller sees of `record` (at this view): the source, its
/// load and when that load was recorded, and the rule that chose the value. Computed from the
/// contributions by `rules` (the file as it is now: after a rules change, until `recompute`
/// runs, a value may show the rule that will choose it).
pub fn explain(view: &View, shape: &Shape, record: &Record, rules: &Rules) -> QueryResult<Value> {
    let registry = record.registry;
    let contributions: Vec<Contribution> = match sources(view, registry, &record.id)? {
        Some(list) => list
            .into_iter()
            .map(|(source, record)| {
                let recency = view.lineage(record.load_id).and_then(|l| l.finish_order()).unwrap_or(0);
                Contribution { source, recency, record }
            })
            .collect(),
        None => Vec::new(),
    };
    let survived = golden::survive(registry, rules, &contributions);
    let mut out = Map::new();
    for (i, field) in registry.schema().fields.iter().enumerate() {
        let returned = shape.only.as_ref().is_none_or(|o| o.contains(&i));
        if !returned || shape.rule(field.name) == FieldRule::Hidden || record.values[i].is_none() {
            continue;
        }
        let Some(p) = &survived.provenance[i] else { continue };
        let c = &contributions[p.contribution];
        let recorded_at = view.lineage(c.record.load_id).and_then(|l| l.finished_at);
        out.insert(
            field.name.to_string(),
            json!({"source": c.source, "load_id": c.record.load_id, "recorded_at": recorded_at, "rule": p.rule(rules, registry, i)}),
        );
    }
    Ok(Value::Object(out))
}
