//! The answers' schemas in the OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses).
//!
//! Records are described from the registries' own schemas (`Registry::schema()`), field by
//! field, with `additionalProperties: false`, so that a field added to a registry without its
//! schema here — or an answer that drifts from its description — fails the test that validates
//! real answers of every route against this document (`tests/it/openapi.rs`). Envelopes (search
//! pages, spatial answers, feeds, loads…) are written out here once; the parts whose contents
//! are open by design (a catalog entry, a load report, an audit entry) are objects with their
//! known keys required.

use crate::model::Registry;
use jichu_ingest::FieldKind;
use serde_json::{Map, Value, json};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, {"type": "null"}] })
}

/// A closed object: these properties, those required, nothing else.
fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// An object whose contents are open, with some keys required.
fn open_object(required: &[&str]) -> Value {
    json!({"type": "object", "required": required})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// A field's value on the wire: in full, masked (masks are text; a withheld value is `***`), or
/// null when absent.
fn field(kind: FieldKind) -> Value {
    match kind {
        FieldKind::Number => json!({"type": ["number", "string", "null"]}),
        FieldKind::Point => json!({"anyOf": [r("Point"), {"type": ["string", "null"]}]}),
        FieldKind::Geometry => {
            json!({"anyOf": [{"type": "object", "required": ["type"]}, {"type": ["string", "null"]}]})
        }
        _ => json!({"type": ["string", "null"]}),
    }
}

/// The schema name of a registry's records.
pub fn record_name(registry: Registry) -> String {
    let s = registry.as_str();
    format!("{}{}Record", s[..1].to_uppercase(), &s[1..])
}

fn record(registry: Registry) -> Value {
    let schema = registry.schema();
    let mut properties = Map::new();
    properties.insert("id".into(), json!({"type": "string"}));
    for f in schema.fields {
        let mut p = field(f.kind);
        p["description"] = json!(f.doc);
        properties.insert(f.name.into(), p);
    }
    properties.insert("open_ended".into(), json!({"type": "boolean"}));
    properties.insert("extras".into(), json!({"type": "object", "additionalProperties": {"type": "string"}}));
    properties.insert("ended".into(), json!({"type": "boolean"}));
    properties.insert("needs_review".into(), json!({"type": "boolean"}));
    properties.insert("lineage".into(), r("Lineage"));
    properties.insert("provenance".into(), json!({"type": "object"}));
    let mut o = object(Value::Object(properties), &["id"]);
    o["description"] = json!(format!("A record of {registry}: {}", schema.doc));
    o
}

/// Every schema the document names, by name.
pub fn components() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Registry::ALL.iter().map(|&g| (record_name(g), record(g))).collect();
    let records: Vec<Value> = Registry::ALL.iter().map(|&g| r(&record_name(g))).collect();
    let string = json!({"type": "string"});
    let integer = json!({"type": "integer"});
    let strings = array(string.clone());
    let time = json!({"type": "string", "format": "date-time"});
    let cursor = nullable(string.clone());
    let linked =
        object(json!({"registry": string, "id": string, "loaded": {"type": "boolean"}}), &["registry", "id", "loaded"]);
    let schemas = [
        ("Record", json!({"description": "A record of any registry", "anyOf": records})),
        ("Point", object(json!({"lon": {"type": "number"}, "lat": {"type": "number"}}), &["lon", "lat"])),
        (
            "Lineage",
            object(
                json!({"load_id": integer, "source": string, "files": strings, "loaded_at": string, "sources": strings}),
                &["load_id"],
            ),
        ),
        (
            "Health",
            object(
                json!({"status": string, "generation": integer, "sequence": integer, "spatial_index": {"type": "string", "enum": ["ready", "loading"]}}),
                &["status", "generation", "sequence", "spatial_index"],
            ),
        ),
        (
            "Lookup",
            object(
                json!({
                    "records": array(nullable(r("Record"))),
                    "not_found": strings,
                    "invalid": array(object(json!({"id": string, "message": string}), &["id", "message"])),
                }),
                &["records", "not_found", "invalid"],
            ),
        ),
        (
            "Relations",
            object(
                json!({"registry": string, "id": string, "loaded": {"type": "boolean"},
                       "relations": {"type": "object", "additionalProperties": array(linked)}}),
                &["registry", "id", "loaded", "relations"],
            ),
        ),
        (
            "Profile",
            object(
                json!({
                    "record": r("Record"),
                    "represents": array(r("EntitiesRecord")),
                    "legal_rep": nullable(r("CitizensRecord")),
                    "licences": array(r("LicencesRecord")),
                    "credit_records": array(r("CreditRecord")),
                    "parcels": array(r("ParcelsRecord")),
                }),
                &["record"],
            ),
        ),
        (
            "History",
            object(
                json!({
                    "registry": string, "id": string,
                    "versions": array(object(json!({
                        "recorded_at": nullable(time.clone()), "recorded_until": time, "effective_from": string,
                        "load_id": integer, "source": nullable(string.clone()), "change": {"enum": ["insert", "update", "end", "reopen"]},
                        "fields_changed": strings, "record": r("Record"),
                    }), &["load_id", "change", "record"])),
                    "earlier_versions_dropped": {"type": "boolean"},
                    "next": cursor,
                }),
                &["registry", "id", "versions", "next"],
            ),
        ),
        (
            "Sources",
            object(
                json!({"id": string, "sources": array(object(json!({
                    "source": string, "ended": {"type": "boolean"}, "recorded_at": nullable(time.clone()), "contribution": r("Record"),
                }), &["source", "contribution"]))}),
                &["id", "sources"],
            ),
        ),
        (
            "SearchPage",
            object(
                json!({
                    "total": integer, "total_exact": {"type": "boolean"},
                    "hits": array(object(json!({"registry": string, "id": string, "score": {"type": "number"}, "record": r("Record")}), &["id", "record"])),
                    "next_cursor": cursor,
                }),
                &["total", "total_exact", "hits", "next_cursor"],
            ),
        ),
        (
            "Spatial",
            object(
                json!({
                    "count": integer,
                    "hits": array(object(json!({"id": string, "distance_m": {"type": "number"}, "record": r("Record")}), &["id", "record"])),
                }),
                &["count"],
            ),
        ),
        (
            "Catalog",
            object(
                json!({
                    "registries": array(open_object(&["name", "count", "fields"])),
                    "sources": array(open_object(&["source", "registry", "last_load"])),
                    "published": open_object(&["generation", "published_at"]),
                }),
                &["registries", "sources", "published"],
            ),
        ),
        (
            "Changes",
            object(
                json!({
                    "changes": array(object(json!({
                        "position": integer, "registry": string, "id": string, "change": {"enum": ["insert", "update", "end", "reopen"]},
                        "load_id": integer, "source": nullable(string.clone()), "recorded_at": nullable(time.clone()),
                        "fields_changed": strings, "record": nullable(r("Record")),
                    }), &["position", "registry", "id", "change"])),
                    "next": cursor, "last_position": integer,
                }),
                &["changes", "next", "last_position"],
            ),
        ),
        (
            "Me",
            object(
                json!({"department": nullable(string.clone()), "role": string, "purposes": strings, "rate_limit": {},
                       "key_id": nullable(string.clone()), "registries": {"type": "object", "additionalProperties": open_object(&["operations", "fields"])}}),
                &["role", "registries"],
            ),
        ),
        (
            "AuditPage",
            object(
                json!({"entries": array(open_object(&["seq"])), "next_cursor": cursor}),
                &["entries", "next_cursor"],
            ),
        ),
        (
            "AuditKey",
            object(json!({"public_key": nullable(string.clone()), "algorithm": string}), &["public_key", "algorithm"]),
        ),
        (
            "Load",
            object(
                json!({
                    "load_id": integer, "status": {"enum": ["queued", "running", "indexing", "published", "failed", "cancelled"]},
                    "registry": string, "source": string, "files": strings, "progress": {"type": "object"},
                    "queued_at": time, "started_at": nullable(time.clone()), "published_at": nullable(time.clone()),
                    "ended_at": nullable(time.clone()), "publish_seconds": nullable(json!({"type": "number"})),
                    "report": nullable(json!({"type": "object"})), "error": nullable(string.clone()),
                }),
                &["load_id", "status", "registry", "source", "files", "queued_at"],
            ),
        ),
        ("Loads", object(json!({"loads": array(r("Load"))}), &["loads"])),
        ("LoadQueued", object(json!({"load_id": integer, "status": {"const": "queued"}}), &["load_id", "status"])),
        (
            "Backup",
            object(
                json!({"backup_id": integer, "timestamp": integer, "store_bytes": integer, "store_files": integer}),
                &["backup_id", "timestamp", "store_bytes", "store_files"],
            ),
        ),
        ("Backups", array(r("Backup"))),
        (
            "BackupTaken",
            object(
                json!({"backup": r("Backup"), "bytes_copied": integer, "seconds": {"type": "number"}}),
                &["backup", "bytes_copied", "seconds"],
            ),
        ),
        ("ReviewItem", open_object(&["registry", "id", "field", "status"])),
        ("ReviewPage", object(json!({"items": array(r("ReviewItem")), "next": cursor}), &["items", "next"])),
        (
            "Recomputed",
            array(object(
                json!({"load_id": integer, "registry": string, "records": integer, "sourced": integer, "changed": integer,
                       "review_items_opened": integer, "seconds": {"type": "number"}, "records_per_second": {"type": "number"}}),
                &["load_id", "registry", "records", "sourced", "changed"],
            )),
        ),
    ];
    out.extend(schemas.into_iter().map(|(n, s)| (n.to_string(), s)));
    out
}

/// Which schema each route's answer has: `(path, method, status, schema)`. Routes whose
/// answer is not JSON (metrics, exports, rejects) are not here.
pub const ANSWERS: &[(&str, &str, &str, &str)] = &[
    ("/healthz", "get", "200", "Health"),
    ("/v1/{registry}/{id}", "get", "200", "Record"),
    ("/v1/entities/by-organisation-code/{code}", "get", "200", "EntitiesRecord"),
    ("/v1/{registry}/lookup", "post", "200", "Lookup"),
    ("/v1/{registry}/{id}/relations", "get", "200", "Relations"),
    ("/v1/{registry}/{id}/profile", "get", "200", "Profile"),
    ("/v1/{registry}/{id}/history", "get", "200", "History"),
    ("/v1/{registry}/{id}/sources", "get", "200", "Sources"),
    ("/v1/{registry}/search", "post", "200", "SearchPage"),
    ("/v1/search", "post", "200", "SearchPage"),
    ("/v1/{registry}/near", "post", "200", "Spatial"),
    ("/v1/{registry}/within", "post", "200", "Spatial"),
    ("/v1/parcels/containing", "get", "200", "Spatial"),
    ("/v1/catalog", "get", "200", "Catalog"),
    ("/v1/changes", "get", "200", "Changes"),
    ("/v1/me", "get", "200", "Me"),
    ("/v1/audit", "get", "200", "AuditPage"),
    ("/v1/audit/public-key", "get", "200", "AuditKey"),
    ("/v1/loads", "get", "200", "Loads"),
    ("/v1/loads", "post", "202", "LoadQueued"),
    ("/v1/loads/{load_id}", "get", "200", "Load"),
    ("/v1/loads/{load_id}", "delete", "200", "Load"),
    ("/v1/loads/{load_id}", "delete", "202", "Load"),
    ("/v1/admin/backups", "get", "200", "Backups"),
    ("/v1/admin/backups", "post", "201", "BackupTaken"),
    ("/v1/review", "get", "200", "ReviewPage"),
    ("/v1/review/{item}", "post", "200", "ReviewItem"),
    ("/v1/admin/recompute", "post", "200", "Recomputed"),
];

/// Puts the schemas into a document (as JSON) and points each route's answer at its own.
pub fn apply(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    if !schemas.is_object() {
        *schemas = json!({});
    }
    for (name, schema) in components() {
        schemas[name] = schema;
    }
    for (path, method, status, name) in ANSWERS {
        let response = &mut doc["paths"][*path][*method]["responses"][*status];
        if response.is_object() {
            response["content"] = json!({"application/json": {"schema": r(name)}});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_names_a_documented_route_and_status() {
        let (_, doc) = super::super::routes();
        let doc = serde_json::to_value(&doc).unwrap();
        for (path, method, status, name) in ANSWERS {
            assert!(
                doc["paths"][*path][*method]["responses"][*status].is_object(),
                "{method} {path} {status} ({name})"
            );
        }
        let names: Vec<String> = components().into_iter().map(|(n, _)| n).collect();
        for (_, _, _, name) in ANSWERS {
            assert!(names.iter().any(|n| n == name), "{name} is not a schema");
        }
    }
}
