use chrono::NaiveDate;
use geo::{MultiPolygon, Point};
use rust_decimal::Decimal;

/// Checks and normalises an identifier: returns the canonical form, or why it is invalid.
/// The check-digit algorithms belong to the service's model; ingest only calls them.
pub type IdCheck = fn(&str) -> std::result::Result<CheckedId, IdRejection>;

/// An identifier that passed its check, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedId {
    pub id: String,
    /// Accepted although it fails its check (an allow-listed or explicitly accepted pilot code):
    /// load and flag for review.
    pub needs_review: bool,
}

/// Why an identifier was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdRejection {
    pub message: String,
    /// Set when the identifier is well formed but fails its check in a way a genuine identifier
    /// can (an early Fujian pilot credit code): its canonical form, which an allow-list or an
    /// explicit per-extract choice may accept.
    pub allowable: Option<String>,
}

impl IdRejection {
    pub fn new(message: impl Into<String>) -> IdRejection {
        IdRejection { message: message.into(), allowable: None }
    }
}

/// A closed or open list of codes, each with its canonical value and the other forms extracts
/// use for it (the standard's code, short names, English). Declared once, as data, by the model.
#[derive(Debug)]
pub struct CodeList {
    /// The standard the list comes from, for messages and the catalogue (e.g. `GB 3304`).
    pub standard: &'static str,
    /// `(canonical, other forms)`.
    pub entries: &'static [(&'static str, &'static [&'static str])],
    /// Closed: a value not in the list is rejected. Open (no national list is in use): known
    /// forms are made canonical, other values are kept as sent.
    pub closed: bool,
}

impl CodeList {
    /// The canonical value of `s` (a canonical value or one of its forms; ASCII case ignored).
    pub fn canonical(&self, s: &str) -> Option<&'static str> {
        self.entries
            .iter()
            .find(|(canonical, forms)| *canonical == s || forms.iter().any(|f| f.eq_ignore_ascii_case(s)))
            .map(|(canonical, _)| *canonical)
    }

    /// The canonical values, for messages.
    pub fn values(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(c, _)| *c)
    }
}

/// What a field holds, and so how a cell is normalised and validated.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// Free text (addresses, descriptions): trimmed, full-width folded.
    Text,
    /// A person's or organisation's name: text, and whitespace between two CJK characters is
    /// removed (`王　磊` → `王磊`: printed lists pad two-character names).
    Name,
    /// A calendar date, parsed with the spec's `date_formats` (a date-time at midnight too).
    Date,
    /// The end of a validity: a date, or "no end" (`长期`, `永久`, `9999-12-31`…), stored as
    /// [`OPEN_END`], which sorts after every date.
    EndOfValidity,
    /// An exact decimal; thousands separators and a trailing `万元`/`万` unit are dropped.
    Decimal,
    /// A non-negative real number (areas).
    Number,
    /// A value of a code list, stored in its canonical form.
    Code(&'static CodeList),
    /// An identifier checked by the model's algorithm.
    Identifier(IdCheck),
    /// A WGS84 point, read from the spec's `lon` and `lat` columns.
    Point,
    /// A polygon or multipolygon, as WKT or GeoJSON.
    Geometry,
}

impl FieldKind {
    /// Dates and ends of validity: both are date values (ranges, `YYYY-MM-DD` on the wire).
    pub fn is_date(self) -> bool {
        matches!(self, FieldKind::Date | FieldKind::EndOfValidity)
    }
}

/// The stored value of an open-ended validity ("no end"): later than any real date, so a
/// range filter or a sort treats it as never expiring. Only [`FieldKind::EndOfValidity`]
/// fields hold it; real dates are refused outside the years 1800–2200.
pub const OPEN_END: NaiveDate = NaiveDate::MAX;

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

    /// An open-ended validity ([`OPEN_END`]).
    pub fn is_open_end(&self) -> bool {
        matches!(self, Value::Date(d) if *d == OPEN_END)
    }
}
