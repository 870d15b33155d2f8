//! Mapping one CSV record onto a registry's canonical fields, normalising and validating each
//! cell. A row either maps completely or becomes one [`Reject`] with the first reason found.

use crate::coords::{Crs, snap};
use crate::error::{Error, Result};
use crate::geometry::parse_geometry;
use crate::normalize::{
    DateError, DateFormats, identifier_cell, normalize_name, normalize_text, parse_code, parse_decimal, parse_number,
};
use crate::reject::{Reason, Reject};
use crate::source::RawRow;
use crate::spec::{OPEN_ENDED_VALUES, Spec};
use crate::value::{FieldKind, OPEN_END, Value};
use csv::ByteRecord;
use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// One canonical field of a registry, as the service's model declares it.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

/// A row that mapped: the key, one value per schema field (in schema order), and the
/// unmapped columns kept as extra attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct MappedRow {
    pub id: String,
    pub values: Vec<Option<Value>>,
    pub extras: Vec<(String, String)>,
    pub needs_review: bool,
    /// When the row's values took effect in the real world (the spec's `effective_from`
    /// column): a version's time of effect, beside the time jichu recorded it.
    pub effective_from: Option<chrono::NaiveDate>,
    /// The row is of an ended record (the spec's `ended` column: how jichu's own exports carry
    /// it, so that they re-load into an equal registry).
    pub ended: bool,
}

/// The column a spec may map to a row's time of effect (any registry).
pub const EFFECTIVE_FROM: FieldDef = FieldDef { name: "effective_from", kind: FieldKind::Date, required: false };
/// The column a spec may map to whether a record is ended (`true`/`false`, `1`/`0`, `是`/`否`).
pub const ENDED: &str = "ended";

#[derive(Clone, Copy, Debug)]
enum Column {
    Unmapped,
    Cell(usize),
    LonLat(usize, usize),
}

/// Maps records of one file; built once per file from the spec, the schema and the header.
#[derive(Debug)]
pub struct RowMapper {
    key: FieldDef,
    key_column: usize,
    effective_column: Option<usize>,
    ended_column: Option<usize>,
    fields: Vec<(FieldDef, Column)>,
    extras: Vec<(usize, String)>,
    width: usize,
    null_values: Vec<String>,
    date_formats: DateFormats,
    crs: Crs,
    extent: Option<[f64; 4]>,
    delimiter: u8,
    /// Words (normalised) meaning "no end" in an end-of-validity field.
    open_ended: Vec<String>,
    /// Identifiers that fail their check but are known to be genuine (canonical forms).
    allowed_ids: Arc<HashSet<String>>,
    /// Accept other such identifiers, flagged for review (`accept_fujian_pilot_codes`).
    accept_flagged: bool,
}

type CellResult<T> = std::result::Result<T, (Reason, String)>;

impl RowMapper {
    /// Resolves the spec's columns against the schema (`key` plus `fields`) and the file's
    /// `headers`. Fails, naming the field or header, before any row is read.
    pub fn new(spec: &Spec, key: FieldDef, fields: &[FieldDef], headers: &[String], path: &Path) -> Result<RowMapper> {
        let spec_err = |message: String| Error::Spec { path: path.into(), message };
        let has_point = fields.iter().any(|f| matches!(f.kind, FieldKind::Point));
        for name in spec.columns.keys() {
            let known = name == key.name
                || name == EFFECTIVE_FROM.name
                || name == ENDED
                || fields.iter().any(|f| f.name == name && !matches!(f.kind, FieldKind::Point))
                || (has_point && (name == "lon" || name == "lat"));
            if !known {
                let mut names: Vec<&str> = vec![key.name, EFFECTIVE_FROM.name, ENDED];
                for f in fields {
                    match f.kind {
                        FieldKind::Point => names.extend(["lon", "lat"]),
                        _ => names.push(f.name),
                    }
                }
                return Err(spec_err(format!(
                    "[columns] names unknown field `{name}` for registry {}; its fields are: {}",
                    spec.registry,
                    names.join(", ")
                )));
            }
        }
        let header_index = |canonical: &str| -> Result<Option<usize>> {
            let Some(header) = spec.columns.get(canonical) else { return Ok(None) };
            let header = normalize_text(header);
            match headers.iter().position(|h| *h == header) {
                Some(i) => Ok(Some(i)),
                None => Err(Error::Header {
                    path: path.into(),
                    message: format!(
                        "column `{header}` (mapped to `{canonical}`) is not in the header; the header has: {}",
                        headers.join(", ")
                    ),
                }),
            }
        };
        let key_column = header_index(key.name)?.ok_or_else(|| spec_err("[columns] must map `id`".into()))?;
        let mut mapped = vec![false; headers.len()];
        mapped[key_column] = true;
        let effective_column = header_index(EFFECTIVE_FROM.name)?;
        let ended_column = header_index(ENDED)?;
        for i in [effective_column, ended_column].into_iter().flatten() {
            mapped[i] = true;
        }
        let mut plan = Vec::with_capacity(fields.len());
        for f in fields {
            let column = match f.kind {
                FieldKind::Point => match (header_index("lon")?, header_index("lat")?) {
                    (Some(lon), Some(lat)) => Column::LonLat(lon, lat),
                    (None, None) => Column::Unmapped,
                    _ => return Err(spec_err("[columns] must map both `lon` and `lat`, or neither".into())),
                },
                _ => header_index(f.name)?.map_or(Column::Unmapped, Column::Cell),
            };
            match column {
                Column::Cell(i) => mapped[i] = true,
                Column::LonLat(a, b) => {
                    mapped[a] = true;
                    mapped[b] = true;
                }
                Column::Unmapped if f.required => {
                    return Err(spec_err(format!(
                        "required field `{}` of registry {} is not mapped in [columns]",
                        f.name, spec.registry
                    )));
                }
                Column::Unmapped => {}
            }
            plan.push((*f, column));
        }
        let extras = if spec.keep_unmapped {
            headers
                .iter()
                .enumerate()
                .filter(|(i, h)| !mapped[*i] && !h.is_empty())
                .map(|(i, h)| (i, h.clone()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(RowMapper {
            key,
            key_column,
            effective_column,
            ended_column,
            fields: plan,
            extras,
            width: headers.len(),
            null_values: spec.null_values.iter().map(|v| normalize_text(v).into_owned()).collect(),
            date_formats: DateFormats::new(&spec.date_formats),
            crs: spec.crs,
            extent: spec.extent,
            delimiter: spec.delimiter_byte(),
            open_ended: OPEN_ENDED_VALUES
                .iter()
                .copied()
                .chain(spec.open_ended_values.iter().map(String::as_str))
                .map(|v| normalize_text(v).into_owned())
                .collect(),
            allowed_ids: Arc::default(),
            accept_flagged: spec.accept_fujian_pilot_codes,
        })
    }

    /// Identifiers to accept although they fail their check (the pilot-code allow-list), in
    /// canonical form.
    pub fn with_allowed_ids(mut self, ids: Arc<HashSet<String>>) -> RowMapper {
        self.allowed_ids = ids;
        self
    }

    /// Maps one record, or says why it is rejected.
    pub fn map(&self, row: &RawRow) -> std::result::Result<MappedRow, Reject> {
        self.map_cells(&row.record).map_err(|(reason, message)| Reject {
            line: row.line,
            reason,
            message,
            raw: self.raw_text(&row.record),
            key: self.key_of(&row.record),
        })
    }

    /// The canonical key of a record, if its key cell is valid (whatever else is wrong).
    fn key_of(&self, record: &ByteRecord) -> Option<String> {
        if record.len() != self.width {
            return None;
        }
        let raw = self.cell(record, self.key_column).ok()??;
        match self.value(&self.key, &raw, &mut false).ok()? {
            Value::Text(id) => Some(id),
            _ => None,
        }
    }

    fn map_cells(&self, record: &ByteRecord) -> CellResult<MappedRow> {
        if record.len() != self.width {
            return Err((
                Reason::MalformedRow,
                format!("expected {} fields as in the header, found {}", self.width, record.len()),
            ));
        }
        let mut needs_review = false;
        let id = match self.cell(record, self.key_column)? {
            None => return Err((Reason::MissingField, format!("`{}` is empty", self.key.name))),
            Some(raw) => match self.value(&self.key, &raw, &mut needs_review)? {
                Value::Text(id) => id,
                _ => unreachable!("keys are text or identifiers"),
            },
        };
        let mut values = Vec::with_capacity(self.fields.len());
        for (field, column) in &self.fields {
            let value = match *column {
                Column::Unmapped => None,
                Column::Cell(i) => match self.cell(record, i)? {
                    Some(raw) => Some(self.value(field, &raw, &mut needs_review)?),
                    None => None,
                },
                Column::LonLat(lon, lat) => self.point(self.cell(record, lon)?, self.cell(record, lat)?)?,
            };
            if value.is_none() && field.required {
                return Err((Reason::MissingField, format!("`{}` is empty", field.name)));
            }
            values.push(value);
        }
        let mut extras = Vec::with_capacity(self.extras.len());
        for (i, header) in &self.extras {
            if let Some(v) = self.cell(record, *i)? {
                extras.push((header.clone(), v.into_owned()));
            }
        }
        let effective_from = match self.effective_column {
            Some(i) => match self.cell(record, i)? {
                Some(raw) => Some(self.date(&EFFECTIVE_FROM, &raw)?),
                None => None,
            },
            None => None,
        };
        let ended = match self.ended_column {
            Some(i) => match self.cell(record, i)?.as_deref() {
                None | Some("false" | "0" | "否" | "no") => false,
                Some("true" | "1" | "是" | "yes") => true,
                Some(other) => {
                    return Err((Reason::InvalidValue, format!("`ended`: {other:?} is not true or false")));
                }
            },
            None => false,
        };
        Ok(MappedRow { id, values, extras, needs_review, effective_from, ended })
    }

    /// The normalised text of a cell, or None when it is one of the spec's null values.
    fn cell<'r>(&self, record: &'r ByteRecord, i: usize) -> CellResult<Option<Cow<'r, str>>> {
        let bytes = &record[i];
        let text = simdutf8::basic::from_utf8(bytes).map_err(|_| {
            (Reason::MalformedRow, format!("column {} is not valid UTF-8: is the spec's `encoding` right?", i + 1))
        })?;
        if text.contains('\u{fffd}') {
            return Err((Reason::MalformedRow, format!("column {} holds bytes that do not decode", i + 1)));
        }
        let text = normalize_text(text);
        Ok(if self.null_values.iter().any(|n| *n == *text) { None } else { Some(text) })
    }

    fn value(&self, field: &FieldDef, s: &str, needs_review: &mut bool) -> CellResult<Value> {
        let invalid = |reason: Reason, what: &str| (reason, format!("`{}`: {s:?} {what}", field.name));
        Ok(match field.kind {
            FieldKind::Text => Value::Text(s.to_string()),
            FieldKind::Name => Value::Text(normalize_name(s).into_owned()),
            FieldKind::Identifier(check) => {
                let cell = identifier_cell(s).map_err(|why| invalid(Reason::InvalidId, &why))?;
                match check(cell) {
                    Ok(checked) => {
                        *needs_review |= checked.needs_review;
                        Value::Text(checked.id)
                    }
                    Err(rejection) => match rejection.allowable {
                        Some(id) if self.allowed_ids.contains(&id) => Value::Text(id),
                        Some(id) if self.accept_flagged => {
                            *needs_review = true;
                            Value::Text(id)
                        }
                        _ => return Err(invalid(Reason::InvalidId, &rejection.message)),
                    },
                }
            }
            FieldKind::Date => Value::Date(self.date(field, s)?),
            FieldKind::EndOfValidity => {
                if self.open_ended.iter().any(|w| w == s) || self.date_formats.is_far_future(s) {
                    Value::Date(OPEN_END)
                } else {
                    Value::Date(self.date(field, s)?)
                }
            }
            FieldKind::Decimal => Value::Decimal(
                parse_decimal(s).ok_or_else(|| invalid(Reason::InvalidValue, "is not a decimal number"))?,
            ),
            FieldKind::Number => Value::Number(
                parse_number(s).ok_or_else(|| invalid(Reason::InvalidValue, "is not a non-negative number"))?,
            ),
            FieldKind::Code(list) => Value::Text(
                parse_code(s, list)
                    .ok_or_else(|| {
                        let values: Vec<&str> = list.values().collect();
                        let shown = if values.len() <= 12 {
                            values.join(", ")
                        } else {
                            format!("{}, … ({} values)", values[..8].join(", "), values.len())
                        };
                        invalid(Reason::InvalidValue, &format!("is not a code of {} ({shown})", list.standard))
                    })?
                    .into_owned(),
            ),
            FieldKind::Geometry => {
                Value::Geometry(self.geometry(s).map_err(|why| invalid(Reason::InvalidGeometry, &why))?)
            }
            FieldKind::Point => unreachable!("points are read from lon/lat"),
        })
    }

    fn date(&self, field: &FieldDef, s: &str) -> CellResult<chrono::NaiveDate> {
        self.date_formats.parse_cell(s).map_err(|e| {
            let why = match e {
                DateError::Invalid if self.open_ended.iter().any(|w| w == s) => {
                    "means \"no end\", which only an end of validity may say"
                }
                DateError::Invalid => "is not a real date in any of the spec's date_formats",
                DateError::TimeOfDay => "is a date-time whose time is not midnight; the extract should give the date",
            };
            (Reason::InvalidDate, format!("`{}`: {s:?} {why}", field.name))
        })
    }

    fn geometry(&self, s: &str) -> std::result::Result<geo::MultiPolygon<f64>, String> {
        let g = parse_geometry(s, self.crs)?;
        if let (Some(extent), Some(rect)) = (self.extent, geo::BoundingRect::bounding_rect(&g))
            && (!inside(extent, rect.min().x, rect.min().y) || !inside(extent, rect.max().x, rect.max().y))
        {
            return Err(format!("lies outside the jurisdiction extent {extent:?}"));
        }
        Ok(g)
    }

    fn point(&self, lon: Option<Cow<'_, str>>, lat: Option<Cow<'_, str>>) -> CellResult<Option<Value>> {
        let bad = |m: String| (Reason::InvalidCoordinate, m);
        let (lon, lat) = match (lon, lat) {
            (None, None) => return Ok(None),
            (Some(lon), Some(lat)) => (lon, lat),
            _ => return Err(bad("`lon` and `lat` must be given together".into())),
        };
        let parse = |s: &str, name: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("`{name}`: {s:?} is not a number")))
        };
        let (x, y) = (parse(&lon, "lon")?, parse(&lat, "lat")?);
        if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
            return Err(bad(format!("({x}, {y}) is not a longitude/latitude on Earth")));
        }
        let (x, y) = self.crs.to_wgs84(x, y);
        let (x, y) = (snap(x), snap(y));
        if let Some(extent) = self.extent
            && !inside(extent, x, y)
        {
            return Err(bad(format!("({x:.6}, {y:.6}) lies outside the jurisdiction extent {extent:?}")));
        }
        Ok(Some(Value::Point(geo::Point::new(x, y))))
    }

    /// The record as CSV text again (decoded), for the rejects file.
    pub fn raw_text(&self, record: &ByteRecord) -> String {
        let mut w = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = w.write_byte_record(record);
        let mut bytes = w.into_inner().unwrap_or_default();
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn inside([min_lon, min_lat, max_lon, max_lat]: [f64; 4], x: f64, y: f64) -> bool {
    (min_lon..=max_lon).contains(&x) && (min_lat..=max_lat).contains(&y)
}
