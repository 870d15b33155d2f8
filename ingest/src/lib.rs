//! Reading department extracts: decoding, CSV, mapping specs, cell normalisation and
//! validation, rejects and load reports.
//!
//! This crate turns bytes into typed, validated rows. It knows nothing of storage or HTTP:
//! the service composes it with the store. The registry schemas are the service's; this crate
//! only defines the vocabulary they are written in ([`FieldKind`], [`Value`]).

mod coords;
mod error;
mod geometry;
mod mapper;
mod normalize;
mod reject;
mod report;
mod source;
mod spec;
mod value;

pub use coords::{Crs, gcj02_to_wgs84, snap, wgs84_to_gcj02};
pub use error::{Error, Result};
pub use geometry::parse_geometry;
pub use mapper::{FieldDef, MappedRow, RowMapper};
pub use normalize::{normalize_name, normalize_text, parse_code};
pub use reject::{Reason, Reject, RejectWriter};
pub use report::LoadReport;
pub use source::{RawRow, Source};
pub use spec::{KeyKind, Mode, OPEN_ENDED_VALUES, Spec, TextEncoding};
pub use value::{CheckedId, CodeList, FieldKind, IdCheck, IdRejection, OPEN_END, Value};
