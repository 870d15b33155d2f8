//! A stored record and its JSON form.

use super::Registry;
use chrono::Datelike;
use chrono::{DateTime, Utc};
use jichu_ingest::Value;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value as Json;

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
    /// When this version took effect in the real world, if the extract said.
    pub effective_from: Option<chrono::NaiveDate>,
    /// More than one source has contributed: it is a golden record computed from their
    /// contributions (`crate::golden`).
    pub sourced: bool,
    /// For a golden record (`sourced`): the sources contributing now.
    pub sources: Vec<String>,
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
    /// Set when the load was undone before it finished (killed, cancelled, failed): none of
    /// its changes remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_reason: Option<String>,
    /// The order in which loads finished (1, 2, …): what indexes record they have seen.
    /// Load ids are given when a load is accepted, and a queued load can finish after one
    /// accepted later (an offline load while the server is stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// The feed position of the load's first change: its changes are the positions from here
    /// up to the next load's (undoing the load removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_from: Option<u64>,
    /// `started_at` as the wire writes it, formatted once (every returned record shows it).
    #[serde(skip)]
    pub started_text: TextOnce,
}

/// A text computed once and kept; not part of what a value is (always equal).
#[derive(Clone, Debug, Default)]
pub struct TextOnce(std::sync::OnceLock<String>);

impl PartialEq for TextOnce {
    fn eq(&self, _: &TextOnce) -> bool {
        true
    }
}

impl Lineage {
    /// Whether `newer` (the loads finished since a feed began) is exactly the load a feed was
    /// given: `load_id`, into `registry`, by the bulk path — so the feed saw every record it
    /// wrote and nothing else changed the registry. That load when it is.
    pub fn only_bulk<'a>(newer: &[&'a Lineage], load_id: u32, registry: Registry) -> Option<&'a Lineage> {
        match newer {
            [l] if l.load_id == load_id && l.registry == registry.as_str() && l.was_bulk() => Some(l),
            _ => None,
        }
    }

    /// Whether the load took the bulk path (filled an empty registry by SST ingestion): its
    /// records are in no change log, so indexes build its registry anew rather than by key.
    pub fn was_bulk(&self) -> bool {
        self.report.as_ref().and_then(|r| r.get("path")).and_then(|p| p.as_str()) == Some("bulk")
    }

    /// The load's place in the order loads finished; None until it has. (Loads recorded before
    /// this order existed finished in the order of their ids.)
    pub fn finish_order(&self) -> Option<u64> {
        self.finished_at.map(|_| self.finished.unwrap_or(u64::from(self.load_id)))
    }

    /// When the load started, as the wire shows it (RFC 3339).
    pub fn started_text(&self) -> &str {
        self.started_text.0.get_or_init(|| match serde_json::to_value(self.started_at) {
            Ok(Json::String(s)) => s,
            _ => self.started_at.to_rfc3339(),
        })
    }
}

impl Record {
    pub fn value(&self, field: &str) -> Option<&Value> {
        let i = self.registry.schema().field_index(field)?;
        self.values[i].as_ref()
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.value(field).and_then(Value::as_text)
    }

    /// The record as a JSON value, in full (see [`RecordJson`] for the shape).
    pub fn to_json(&self, only: Option<&[usize]>, lineage: Option<&Lineage>) -> Json {
        serde_json::to_value(RecordJson { record: self, only, lineage, access: None }).unwrap_or(Json::Null)
    }
}

/// What a caller sees of a field: nothing, its value, or its masked form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldRule {
    Hidden,
    Full,
    Masked,
}

/// A caller's view of one registry's records: the key's rule, each field's (schema order),
/// and the extra attributes'.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordAccess {
    pub id: FieldRule,
    pub fields: Vec<FieldRule>,
    pub extras: FieldRule,
}

impl RecordAccess {
    /// Everything in full.
    pub fn full(registry: Registry) -> RecordAccess {
        RecordAccess {
            id: FieldRule::Full,
            fields: vec![FieldRule::Full; registry.schema().fields.len()],
            extras: FieldRule::Full,
        }
    }
}

/// A record on the wire, serialised straight from the record (no intermediate JSON tree):
/// `id`, then the fields (all, or the indices in `only`, in schema order) as `access` lets the
/// caller see them (hidden ones left out, masked ones masked); `open_ended: true` when a
/// returned end of validity has no end (its value is then null); for whole records also
/// `extras`, `ended`, `needs_review` (when set) and the lineage.
#[derive(Clone, Copy, Debug)]
pub struct RecordJson<'a> {
    pub record: &'a Record,
    pub only: Option<&'a [usize]>,
    pub lineage: Option<&'a Lineage>,
    /// None: everything in full.
    pub access: Option<&'a RecordAccess>,
}

impl Record {
    /// The county-level district (GB/T 2260 code) a record belongs to: from its key, or for
    /// credit records and licences from their subject's identifier.
    pub fn district(&self) -> Option<&str> {
        match self.registry {
            Registry::Credit => self.text("subject_id").and_then(subject_district),
            Registry::Licences => self.text("holder_id").and_then(subject_district),
            r => r.district_of_key(&self.id),
        }
    }
}

impl Registry {
    /// The district a key names (citizens, entities, parcels; others have none in their key).
    pub fn district_of_key(self, key: &str) -> Option<&str> {
        let d = match self {
            Registry::Citizens | Registry::Parcels => key.get(..6),
            Registry::Entities => key.get(2..8),
            Registry::Credit | Registry::Licences => None,
        }?;
        d.bytes().all(|b| b.is_ascii_digit()).then_some(d)
    }
}

fn subject_district(id: &str) -> Option<&str> {
    match super::ids::subject_kind(id)? {
        super::ids::SubjectKind::Citizen => Registry::Citizens.district_of_key(id),
        super::ids::SubjectKind::Entity => Registry::Entities.district_of_key(id),
    }
}

impl Serialize for RecordJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let schema = r.registry.schema();
        let rule = |i: usize| self.access.map_or(FieldRule::Full, |a| a.fields[i]);
        let mut m = s.serialize_map(None)?;
        match self.access.map_or(FieldRule::Full, |a| a.id) {
            FieldRule::Full => m.serialize_entry("id", &r.id)?,
            FieldRule::Masked => m.serialize_entry("id", &schema.key.mask.text(&r.id))?,
            FieldRule::Hidden => {}
        }
        let mut open_ended = false;
        for (i, field) in schema.fields.iter().enumerate() {
            if self.only.is_none_or(|o| o.contains(&i)) {
                let value = r.values[i].as_ref();
                match rule(i) {
                    FieldRule::Full => {
                        open_ended |= value.is_some_and(Value::is_open_end);
                        m.serialize_entry(field.name, &ValueJson(value))?;
                    }
                    FieldRule::Masked => {
                        m.serialize_entry(field.name, &value.map(|v| field.mask.value(v)))?;
                    }
                    FieldRule::Hidden => {}
                }
            }
        }
        if open_ended {
            m.serialize_entry("open_ended", &true)?;
        }
        if self.only.is_none() {
            match self.access.map_or(FieldRule::Full, |a| a.extras) {
                FieldRule::Full => m.serialize_entry("extras", &Extras(&r.extras))?,
                FieldRule::Masked => m.serialize_entry(
                    "extras",
                    &r.extras.iter().map(|(k, _)| (k.as_str(), "***")).collect::<std::collections::BTreeMap<_, _>>(),
                )?,
                FieldRule::Hidden => {}
            }
            m.serialize_entry("ended", &r.ended)?;
            if r.needs_review {
                m.serialize_entry("needs_review", &true)?;
            }
            match self.lineage {
                Some(l) => m.serialize_entry(
                    "lineage",
                    &LineageJson {
                        load_id: l.load_id,
                        source: Some(&l.source),
                        files: Some(&l.files),
                        loaded_at: Some(l.started_text()),
                        sources: (!r.sources.is_empty()).then_some(r.sources.as_slice()),
                    },
                )?,
                None => m.serialize_entry(
                    "lineage",
                    &LineageJson {
                        load_id: r.load_id,
                        source: None,
                        files: None,
                        loaded_at: None,
                        sources: (!r.sources.is_empty()).then_some(r.sources.as_slice()),
                    },
                )?,
            }
        }
        m.end()
    }
}

/// A record's lineage on the wire, borrowed from the load table's entry (built for every
/// record an answer or an export returns, so it allocates nothing).
#[derive(Serialize)]
struct LineageJson<'a> {
    load_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loaded_at: Option<&'a str>,
    /// Every source contributing to a golden record (the load above is the last change).
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [String]>,
}

struct Extras<'a>(&'a [(String, String)]);

impl Serialize for Extras<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A value as the wire shows it (see [`ValueJson`]).
pub fn value_json(v: &Value) -> Json {
    serde_json::to_value(ValueJson(Some(v))).unwrap_or(Json::Null)
}

/// A value on the wire: dates as `YYYY-MM-DD` (an open end as null), decimals as exact
/// strings, points as `{lon, lat}`, geometries as GeoJSON geometry objects.
struct ValueJson<'a>(Option<&'a Value>);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(v) if v.is_open_end() => s.serialize_none(),
            Some(Value::Text(t)) => s.serialize_str(t),
            Some(Value::Date(d)) => s.collect_str(&format_args!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())),
            Some(Value::Decimal(d)) => s.collect_str(d),
            Some(Value::Number(n)) => s.serialize_f64(*n),
            Some(Value::Point(p)) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("lon", &p.x())?;
                m.serialize_entry("lat", &p.y())?;
                m.end()
            }
            Some(Value::Geometry(g)) => geojson::Geometry::from(g).serialize(s),
        }
    }
}
