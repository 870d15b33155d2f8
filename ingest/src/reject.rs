//! Rejected rows: why, where, and the rejects CSV.

use serde::Serialize;
use std::io::Write;

/// The stable reason codes of the rejects file and the load report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    InvalidId,
    MissingField,
    InvalidDate,
    InvalidCoordinate,
    InvalidGeometry,
    InvalidValue,
    DuplicateConflict,
    MalformedRow,
    /// A row keyed by an old identifier (an organisation code) that names no record, or several.
    UnresolvedKey,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidId => "invalid_id",
            Reason::MissingField => "missing_field",
            Reason::InvalidDate => "invalid_date",
            Reason::InvalidCoordinate => "invalid_coordinate",
            Reason::InvalidGeometry => "invalid_geometry",
            Reason::InvalidValue => "invalid_value",
            Reason::DuplicateConflict => "duplicate_conflict",
            Reason::MalformedRow => "malformed_row",
            Reason::UnresolvedKey => "unresolved_key",
        }
    }
}

/// A row that was not loaded. `line` is the 1-based physical line where the row starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    pub line: u64,
    pub reason: Reason,
    pub message: String,
    pub raw: String,
    /// The row's key when it could be read: a rejected row still tells that its record is in
    /// the extract (a snapshot load must not end it).
    pub key: Option<String>,
}

/// Writes rejects as CSV with the header `line,reason,message,raw`.
#[derive(Debug)]
pub struct RejectWriter<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> RejectWriter<W> {
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut inner = csv::Writer::from_writer(out);
        inner.write_record(["line", "reason", "message", "raw"])?;
        Ok(Self { inner })
    }

    pub fn write(&mut self, r: &Reject) -> std::io::Result<()> {
        self.inner.write_record([r.line.to_string().as_str(), r.reason.code(), &r.message, &r.raw])?;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
