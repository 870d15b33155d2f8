//! The service catalogue: what each registry holds in a view and where its data came from.

use super::caller::Caller;
use super::view::View;
use crate::model::{Registry, Target};
use serde_json::{Value, json};

/// Each registry the caller has a grant on, with its fields, record count (every record held,
/// ended ones included; null when the caller sees only some rows: a count must not tell what
/// it cannot see) and what search
/// offers (text fields, filters), and each source with its last published load.
pub fn catalog(view: &View, caller: &Caller) -> Value {
    let registries: Vec<Value> = Registry::ALL
        .into_iter()
        .filter_map(|r| caller.grant_on(r).map(|rows| (r, rows)))
        .map(|(r, some_rows)| {
            let schema = r.schema();
            let fields: Vec<Value> = std::iter::once(&schema.key)
                .chain(schema.fields)
                .map(|f| {
                    json!({
                        "name": f.name,
                        "type": f.type_name(),
                        "required": f.required || f.name == "id",
                        "sensitivity": f.sensitivity,
                        "description": f.doc,
                        "references": f.link.map(|l| json!({"relation": l.forward.as_str(), "reverse": l.reverse.as_str(), "target": match l.target {
                            Target::Citizens => "citizens",
                            Target::Subject => "citizens or entities",
                        }})),
                    })
                })
                .collect();
            let search = json!({
                "text": crate::text::text_fields(r).collect::<Vec<_>>(),
                "filters": crate::text::filter_fields(r).map(|(f, is_date)| json!({"name": f, "type": if is_date { "date" } else { "keyword" }})).collect::<Vec<_>>(),
            });
            let count = if some_rows { Value::Null } else { json!(view.count(r)) };
            json!({"name": r, "description": schema.doc, "count": count, "fields": fields, "search": search})
        })
        .collect();
    // The last load of each (registry, source), newest last.
    let mut last = std::collections::BTreeMap::new();
    for l in view.loads.values() {
        last.insert((l.registry.clone(), l.source.clone()), l);
    }
    let sources: Vec<Value> = last
        .into_values()
        .map(|l| {
            let report = l.report.as_ref();
            let n = |k: &str| report.and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null);
            json!({
                "source": l.source,
                "registry": l.registry,
                "last_load": {
                    "load_id": l.load_id,
                    "started_at": l.started_at,
                    "finished_at": l.finished_at,
                    "completed": l.finished_at.is_some(),
                    "read": n("read"),
                    "accepted": n("accepted"),
                    "rejected": n("rejected"),
                },
            })
        })
        .collect();
    json!({
        "registries": registries,
        "sources": sources,
        "published": {"generation": view.generation, "published_at": view.published_at, "last_load": view.last_load()},
    })
}
