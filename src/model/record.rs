//! A stored record and its JSON form.

use super::Registry;
use chrono::{DateTime, Utc};
use jichu_ingest::Value;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

/// One record of a registry: its key, its values in schema order, the columns a department
/// sent that the model has no field for, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub registry: Registry,
    pub id: String,
    pub values: Vec<Option<Value>>,
    pub extras: Vec<(String, String)>,
    /// The load that last changed this record.
    pub load_id: u32,
    /// Absent from a later snapshot of its source: kept, marked ended, never erased.
    pub ended: bool,
    /// Its key is a legal code that fails its check (a Fujian pilot credit code).
    pub needs_review: bool,
}

/// Which department and which load supplied a record: the load table's entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    pub load_id: u32,
    pub registry: String,
    pub source: String,
    pub files: Vec<String>,
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The load report, once the load has finished.
    pub report: Option<Json>,
}

impl Record {
    pub fn value(&self, field: &str) -> Option<&Value> {
        let i = self.registry.schema().field_index(field)?;
        self.values[i].as_ref()
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.value(field).and_then(Value::as_text)
    }

    /// The record as a JSON object: `id`, then the fields (all, or the indices in `only`, in
    /// schema order), `extras`, `ended`, `needs_review` and the lineage when given.
    pub fn to_json(&self, only: Option<&[usize]>, lineage: Option<&Lineage>) -> Json {
        let schema = self.registry.schema();
        let mut m = Map::new();
        m.insert("id".into(), Json::String(self.id.clone()));
        for (i, field) in schema.fields.iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&i)) {
                continue;
            }
            m.insert(field.name.into(), self.values[i].as_ref().map_or(Json::Null, value_json));
        }
        if only.is_none() {
            let extras: Map<String, Json> =
                self.extras.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect();
            m.insert("extras".into(), Json::Object(extras));
            m.insert("ended".into(), Json::Bool(self.ended));
            if self.needs_review {
                m.insert("needs_review".into(), Json::Bool(true));
            }
            m.insert(
                "lineage".into(),
                match lineage {
                    Some(l) => {
                        json!({"load_id": l.load_id, "source": l.source, "files": l.files, "loaded_at": l.started_at})
                    }
                    None => json!({"load_id": self.load_id}),
                },
            );
        }
        Json::Object(m)
    }
}

/// A value on the wire: dates as `YYYY-MM-DD`, decimals as exact strings, points as
/// `{lon, lat}`, geometries as GeoJSON geometry objects.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Text(s) => Json::String(s.clone()),
        Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        Value::Decimal(d) => Json::String(d.to_string()),
        Value::Number(n) => json!(n),
        Value::Point(p) => json!({"lon": p.x(), "lat": p.y()}),
        Value::Geometry(g) => serde_json::to_value(geojson::Geometry::from(g)).unwrap_or(Json::Null),
    }
}
