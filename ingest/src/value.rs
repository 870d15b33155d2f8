use chrono::NaiveDate;
use geo::{MultiPolygon, Point};
use rust_decimal::Decimal;

/// Checks and normalises an identifier: returns the canonical form, or why it is invalid.
/// The check-digit algorithms belong to the service's model; ingest only calls them.
pub type IdCheck = fn(&str) -> std::result::Result<CheckedId, String>;

/// An identifier that passed its check, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedId {
    pub id: String,
    /// Legal but failing its check character (a Fujian pilot credit code): load and flag.
    pub needs_review: bool,
}

/// What a field holds, and so how a cell is normalised and validated.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// Free text (names, addresses): trimmed, full-width folded.
    Text,
    /// A calendar date, parsed with the spec's `date_formats`.
    Date,
    /// An exact decimal; thousands separators and a trailing `万元`/`万` unit are dropped.
    Decimal,
    /// A non-negative real number (areas).
    Number,
    /// One of a closed set of labels; each entry is `(canonical, aliases)`.
    Code(&'static [(&'static str, &'static [&'static str])]),
    /// An identifier checked by the model's algorithm.
    Identifier(IdCheck),
    /// A WGS84 point, read from the spec's `lon` and `lat` columns.
    Point,
    /// A polygon or multipolygon, as WKT or GeoJSON.
    Geometry,
}

/// A normalised, validated cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Date(NaiveDate),
    Decimal(Decimal),
    Number(f64),
    Point(Point<f64>),
    Geometry(MultiPolygon<f64>),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}
