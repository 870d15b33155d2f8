//! The value codec of records, in one place.
//!
//! Layout: `[format][flags][load id: u32 LE][effective from: i32 LE days, when the flag says
//! so][body]`. The body is the count of values, the values in schema order, then postcard
//! (compact, varint-based serde) of the extra attributes (and a golden record's sources). A
//! value is one self-delimiting field, readable on its own (a golden record is assembled from
//! its contributions' encoded fields, and loads compare them byte for byte):
//!
//! - format 1: postcard of `Option<Wire>`: an option byte, the variant's index, its payload;
//! - format 2 ([`ValueCoding::Compact`]): one head byte, `0` for none, `9 + n` for a text of
//!   `n` ≤ 246 bytes (its bytes follow), else the variant's index + 1 and its payload: two
//!   bytes less for most values, where zstd kept these bytes as literals.
//!
//! Coordinates are grid steps or `f64` pairs. Each store writes one format and one coordinate
//! coding ([`ValueCoding`]); the fixed header lets a load compare bodies byte for byte to tell
//! "unchanged" from "updated", and rewrite flags without decoding. Readers decode every
//! format.

use crate::error::{Error, Result};
use crate::model::{Record, Registry};
use chrono::{Datelike, NaiveDate};
use geo::{LineString, MultiPolygon, Point, Polygon};
use jichu_indexes::spatial::grid::{self, from_grid};
use jichu_ingest::Value;
use serde::{Deserialize, Serialize};

/// Values as postcard `Option<Wire>`s.
const FORMAT_POSTCARD: u8 = 1;
/// Values with one head byte ([`put_compact`]).
const FORMAT_COMPACT: u8 = 2;
/// The head of a text of `n` bytes is `TEXT_HEAD + n` (format 2).
const TEXT_HEAD: u8 = 9;
const HEADER: usize = 6;
const ENDED: u8 = 1;
const NEEDS_REVIEW: u8 = 2;
const EFFECTIVE: u8 = 4;
const SOURCED: u8 = 8;

/// The fixed part of a stored value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub load_id: u32,
    pub ended: bool,
    pub needs_review: bool,
    /// When the version took effect in the real world, as the extract said (a spec's
    /// `effective_from` column): kept beside the values, so a re-sent row with another date
    /// is still unchanged.
    pub effective_from: Option<NaiveDate>,
    /// More than one source has contributed: the contributions are kept apart (in
    /// `contributions`) and the value is the golden record computed from them.
    pub sourced: bool,
}

fn put_header(out: &mut Vec<u8>, h: Header, format: u8) {
    out.push(format);
    out.push(flags(h));
    out.extend_from_slice(&h.load_id.to_le_bytes());
    if let Some(d) = h.effective_from {
        out.extend_from_slice(&d.num_days_from_ce().to_le_bytes());
    }
}

/// A value on the wire. Variants only ever get added at the end (postcard writes the
/// variant's index), so a value written by any earlier version still decodes.
#[derive(Serialize)]
enum WireRef<'a> {
    Text(&'a str),
    Date(i32),
    Decimal(String),
    Number(f64),
    /// A point as an `f64` pair: what stores created before the grid coding write, and any
    /// point off the grid.
    Point(f64, f64),
    /// Geometry as `f64` pairs (as `Point`).
    Geometry(Vec<Vec<Vec<(f64, f64)>>>),
    /// A point on the 1e-7 degree grid, in grid steps: 11 bytes instead of 17.
    GridPoint(i32, i32),
    /// Geometry on the grid: each ring's first vertex in grid steps, then each vertex as its
    /// step from the one before (1–3 bytes a coordinate on the generated parcels' edges).
    GridGeometry(GridPolygons),
}

#[derive(Deserialize)]
enum Wire {
    Text(String),
    Date(i32),
    Decimal(String),
    Number(f64),
    Point(f64, f64),
    Geometry(Vec<Vec<Vec<(f64, f64)>>>),
    GridPoint(i32, i32),
    GridGeometry(GridPolygons),
}

fn ring(ls: &LineString<f64>) -> Vec<(f64, f64)> {
    ls.0.iter().map(|c| (c.x, c.y)).collect()
}

/// `v` in grid steps, when it lies exactly on the grid (every coordinate a load stores does:
/// `jichu_ingest::snap` and the spatial index use the same grid).
fn on_grid(v: f64) -> Option<i32> {
    let n = grid::to_grid(v);
    (from_grid(n).to_bits() == v.to_bits()).then_some(n)
}

/// A ring on the grid, its vertices after the first as steps from the one before; None when a
/// vertex is off the grid.
fn grid_ring(ls: &LineString<f64>) -> Option<Vec<(i32, i32)>> {
    let mut last = (0i32, 0i32);
    ls.0.iter()
        .map(|c| {
            let at = (on_grid(c.x)?, on_grid(c.y)?);
            let step = (at.0.wrapping_sub(last.0), at.1.wrapping_sub(last.1));
            last = at;
            Some(step)
        })
        .collect()
}

fn ring_of_steps(steps: Vec<(i32, i32)>) -> LineString<f64> {
    let mut at = (0i32, 0i32);
    LineString::from(
        steps
            .into_iter()
            .map(|(dx, dy)| {
                at = (at.0.wrapping_add(dx), at.1.wrapping_add(dy));
                (from_grid(at.0), from_grid(at.1))
            })
            .collect::<Vec<_>>(),
    )
}

/// Polygons of rings of grid steps ([`grid_ring`]).
type GridPolygons = Vec<Vec<Vec<(i32, i32)>>>;

fn grid_geometry(g: &MultiPolygon<f64>) -> Option<GridPolygons> {
    g.0.iter().map(|p| std::iter::once(p.exterior()).chain(p.interiors()).map(grid_ring).collect()).collect()
}

fn polygons(polys: Vec<Vec<LineString<f64>>>) -> MultiPolygon<f64> {
    MultiPolygon(
        polys
            .into_iter()
            .map(|rings| {
                let mut rings = rings.into_iter();
                let exterior = rings.next().unwrap_or_else(|| LineString(vec![]));
                Polygon::new(exterior, rings.collect())
            })
            .collect(),
    )
}

/// How a store writes values. Its `meta` says which ([`crate::store::Store::value_coding`]):
/// every value of one store is written one way, so that a re-sent, unchanged row compares equal
/// byte for byte with what it holds (loads, golden records and the feed's changed fields all
/// compare encodings, not values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueCoding {
    /// Format 1, coordinates as `f64` pairs: stores created before the grid coding.
    Float,
    /// Format 1, coordinates as grid steps, a ring's vertices as steps from the one before (a
    /// value off the grid is still written as `f64`): 6 bytes less a point; a generated
    /// parcel's record a third smaller. Stores created before the compact format.
    Grid,
    /// Format 2 (a value's head byte in place of postcard's option byte, variant index and a
    /// text's length), coordinates as in `Grid`: stores created empty since.
    #[default]
    Compact,
}

impl ValueCoding {
    fn grid(self) -> bool {
        self != ValueCoding::Float
    }

    fn format(self) -> u8 {
        if self == ValueCoding::Compact { FORMAT_COMPACT } else { FORMAT_POSTCARD }
    }
}

fn to_wire(v: &Value, coding: ValueCoding) -> WireRef<'_> {
    let grid = coding.grid();
    match v {
        Value::Text(s) => WireRef::Text(s),
        Value::Date(d) => WireRef::Date(d.num_days_from_ce()),
        Value::Decimal(d) => WireRef::Decimal(d.to_string()),
        Value::Number(n) => WireRef::Number(*n),
        Value::Point(p) => match (on_grid(p.x()).filter(|_| grid), on_grid(p.y())) {
            (Some(x), Some(y)) => WireRef::GridPoint(x, y),
            _ => WireRef::Point(p.x(), p.y()),
        },
        Value::Geometry(g) => match grid_geometry(g).filter(|_| grid) {
            Some(steps) => WireRef::GridGeometry(steps),
            None => WireRef::Geometry(
                g.0.iter().map(|p| std::iter::once(p.exterior()).chain(p.interiors()).map(ring).collect()).collect(),
            ),
        },
    }
}

fn from_wire(w: Wire) -> Result<Value> {
    Ok(match w {
        Wire::Text(s) => Value::Text(s),
        Wire::Date(days) => Value::Date(
            NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| Error::Codec(format!("bad date {days}")))?,
        ),
        Wire::Decimal(s) => Value::Decimal(s.parse().map_err(|_| Error::Codec(format!("bad decimal {s}")))?),
        Wire::Number(n) => Value::Number(n),
        Wire::Point(x, y) => Value::Point(Point::new(x, y)),
        Wire::Geometry(polys) => Value::Geometry(polygons(
            polys.into_iter().map(|rings| rings.into_iter().map(LineString::from).collect()).collect(),
        )),
        Wire::GridPoint(x, y) => Value::Point(Point::new(from_grid(x), from_grid(y))),
        Wire::GridGeometry(polys) => Value::Geometry(polygons(
            polys.into_iter().map(|rings| rings.into_iter().map(ring_of_steps).collect()).collect(),
        )),
    })
}

/// Encodes a record's values and extras under `header`, in the format and with the
/// coordinates `coding` says.
pub fn encode(header: Header, values: &[Option<Value>], extras: &[(String, String)], coding: ValueCoding) -> Vec<u8> {
    encode_golden(Header { sourced: false, ..header }, values, extras, &[], coding)
}

/// Encodes a golden record (`header.sourced`): its values, extras and the sources contributing
/// to it, which its reads name without reading the contributions.
pub fn encode_golden(
    header: Header,
    values: &[Option<Value>],
    extras: &[(String, String)],
    sources: &[String],
    coding: ValueCoding,
) -> Vec<u8> {
    let wire: Vec<Option<WireRef<'_>>> = values.iter().map(|v| v.as_ref().map(|v| to_wire(v, coding))).collect();
    let mut out = Vec::with_capacity(128);
    put_header(&mut out, header, coding.format());
    // Serialising plain data into a Vec cannot fail.
    if coding.format() == FORMAT_COMPACT {
        let mut out = postcard::to_extend(&wire.len(), out).expect("postcard into a Vec");
        for w in &wire {
            put_compact(&mut out, w.as_ref());
        }
        let out = postcard::to_extend(extras, out).expect("postcard into a Vec");
        if header.sourced { postcard::to_extend(sources, out).expect("postcard into a Vec") } else { out }
    } else if header.sourced {
        postcard::to_extend(&(wire, extras, sources), out).expect("postcard into a Vec")
    } else {
        postcard::to_extend(&(wire, extras), out).expect("postcard into a Vec")
    }
}

/// One value in format 2: `0` for none; a text of up to 246 bytes as its head `TEXT_HEAD + n`
/// and its bytes; anything else as postcard writes the variant, its index (one byte, below
/// 128) raised by one.
fn put_compact(out: &mut Vec<u8>, w: Option<&WireRef<'_>>) {
    match w {
        None => out.push(0),
        Some(WireRef::Text(s)) if s.len() <= usize::from(u8::MAX - TEXT_HEAD) => {
            out.push(TEXT_HEAD + s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        Some(w) => {
            let at = out.len();
            *out = postcard::to_extend(w, std::mem::take(out)).expect("postcard into a Vec");
            out[at] += 1;
        }
    }
}

/// Reads one value in format 2: the value, and the bytes after it.
fn take_compact(bytes: &[u8]) -> Result<(Option<Wire>, &[u8])> {
    let (&head, rest) = bytes.split_first().ok_or_else(|| Error::Codec("truncated value".into()))?;
    if head >= TEXT_HEAD {
        let n = usize::from(head - TEXT_HEAD);
        let text = rest.get(..n).ok_or_else(|| Error::Codec("truncated text".into()))?;
        let text = simdutf8::basic::from_utf8(text).map_err(|_| Error::Codec("a text is not UTF-8".into()))?.to_owned();
        return Ok((Some(Wire::Text(text)), &rest[n..]));
    }
    fn take<'a, T: serde::Deserialize<'a>>(rest: &'a [u8]) -> Result<(T, &'a [u8])> {
        postcard::take_from_bytes::<T>(rest).map_err(|e| Error::Codec(e.to_string()))
    }
    Ok(match head {
        0 => (None, rest),
        1 => take(rest).map(|(s, r)| (Some(Wire::Text(s)), r))?,
        2 => take(rest).map(|(d, r)| (Some(Wire::Date(d)), r))?,
        3 => take(rest).map(|(s, r)| (Some(Wire::Decimal(s)), r))?,
        4 => take(rest).map(|(n, r)| (Some(Wire::Number(n)), r))?,
        5 => take(rest).map(|((x, y), r)| (Some(Wire::Point(x, y)), r))?,
        6 => take(rest).map(|(g, r)| (Some(Wire::Geometry(g)), r))?,
        7 => take(rest).map(|((x, y), r)| (Some(Wire::GridPoint(x, y)), r))?,
        8 => take(rest).map(|(g, r)| (Some(Wire::GridGeometry(g)), r))?,
        _ => return Err(Error::Codec(format!("unknown value head {head}"))),
    })
}

/// The bytes after one value of `format`, without decoding a text.
fn skip_value(format: u8, bytes: &[u8]) -> Result<&[u8]> {
    match (format, bytes.first()) {
        (FORMAT_COMPACT, Some(&head)) if head >= TEXT_HEAD => {
            bytes.get(1 + usize::from(head - TEXT_HEAD)..).ok_or_else(|| Error::Codec("truncated text".into()))
        }
        (FORMAT_COMPACT, _) => Ok(take_compact(bytes)?.1),
        _ => postcard::take_from_bytes::<Option<WireSpan<'_>>>(bytes)
            .map(|(_, rest)| rest)
            .map_err(|e| Error::Codec(e.to_string())),
    }
}

/// Reads one value of `format`: the value, and the bytes after it.
fn take_value(format: u8, bytes: &[u8]) -> Result<(Option<Wire>, &[u8])> {
    if format == FORMAT_COMPACT {
        take_compact(bytes)
    } else {
        postcard::take_from_bytes::<Option<Wire>>(bytes).map_err(|e| Error::Codec(e.to_string()))
    }
}

fn flags(h: Header) -> u8 {
    (if h.ended { ENDED } else { 0 })
        | (if h.needs_review { NEEDS_REVIEW } else { 0 })
        | (if h.effective_from.is_some() { EFFECTIVE } else { 0 })
        | (if h.sourced { SOURCED } else { 0 })
}

/// Splits a stored value into its header and body.
pub fn split(bytes: &[u8]) -> Result<(Header, &[u8])> {
    if bytes.len() < HEADER || !matches!(bytes[0], FORMAT_POSTCARD | FORMAT_COMPACT) {
        return Err(Error::Codec(format!("unknown value format {:?}", bytes.first())));
    }
    let load_id = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let (effective_from, body) = if bytes[1] & EFFECTIVE != 0 {
        let days = bytes.get(HEADER..HEADER + 4).ok_or_else(|| Error::Codec("truncated header".into()))?;
        let days = i32::from_le_bytes([days[0], days[1], days[2], days[3]]);
        let date =
            NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| Error::Codec(format!("bad date {days}")))?;
        (Some(date), &bytes[HEADER + 4..])
    } else {
        (None, &bytes[HEADER..])
    };
    let header = Header {
        load_id,
        ended: bytes[1] & ENDED != 0,
        needs_review: bytes[1] & NEEDS_REVIEW != 0,
        effective_from,
        sourced: bytes[1] & SOURCED != 0,
    };
    Ok((header, body))
}

/// The same value under a new header (to mark a record ended without decoding it).
pub fn with_header(bytes: &[u8], header: Header) -> Result<Vec<u8>> {
    let (_, body) = split(bytes)?;
    let mut out = Vec::with_capacity(bytes.len() + 4);
    put_header(&mut out, header, bytes[0]);
    out.extend_from_slice(body);
    Ok(out)
}

/// A field's value read in place (text borrowed), only to find where its encoding ends.
#[derive(Deserialize)]
/// Text is read as bytes: postcard writes a string as its length and bytes, and only where
/// it ends matters here (UTF-8 was checked when the value was written).
enum WireSpan<'a> {
    Text(#[allow(dead_code)] &'a [u8]),
    Date(#[allow(dead_code)] i32),
    Decimal(#[allow(dead_code)] &'a [u8]),
    Number(#[allow(dead_code)] f64),
    Point(#[allow(dead_code)] f64, #[allow(dead_code)] f64),
    Geometry(#[allow(dead_code)] Vec<Vec<Vec<(f64, f64)>>>),
    GridPoint(#[allow(dead_code)] i32, #[allow(dead_code)] i32),
    GridGeometry(#[allow(dead_code)] GridPolygons),
}

/// The format of a stored value (its first byte; see the module documentation).
pub fn format(value: &[u8]) -> u8 {
    value.first().copied().unwrap_or(0)
}

/// The encoded fields of a body of `format`, one slice each, and the encoded extras after them.
fn spans(format: u8, body: &[u8]) -> Result<(Vec<&[u8]>, &[u8])> {
    let bad = |e: postcard::Error| Error::Codec(e.to_string());
    let (n, mut rest) = postcard::take_from_bytes::<usize>(body).map_err(bad)?;
    let mut fields = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let after = skip_value(format, rest)?;
        fields.push(&rest[..rest.len() - after.len()]);
        rest = after;
    }
    // The extras, exactly: a golden record's sources follow them.
    let (_, after) = postcard::take_from_bytes::<Vec<(&[u8], &[u8])>>(rest).map_err(bad)?;
    Ok((fields, &rest[..rest.len() - after.len()]))
}

/// The bit set of fields (bit `extras_bit` for the extras) whose values differ between two
/// stored values, compared in their encoded form: what every update a load writes needs for
/// the feed, without decoding either version.
pub fn changed_fields(old: &[u8], new: &[u8], extras_bit: u32) -> Result<u64> {
    let ((a, a_extras), (b, b_extras)) = (spans(format(old), split(old)?.1)?, spans(format(new), split(new)?.1)?);
    // A value written before a field was added has it empty (encoded as one 0: None).
    const NONE: &[u8] = &[0];
    let mut mask = 0u64;
    for i in 0..a.len().max(b.len()).min(extras_bit as usize) {
        if a.get(i).copied().unwrap_or(NONE) != b.get(i).copied().unwrap_or(NONE) {
            mask |= 1 << i;
        }
    }
    if a_extras != b_extras {
        mask |= 1 << extras_bit;
    }
    Ok(mask)
}

/// A value's header, encoded fields and encoded extras, read in place ([`fields`]).
pub type Parts<'a> = (Header, Vec<&'a [u8]>, &'a [u8]);

/// A value's header, encoded fields and encoded extras, read in place.
pub fn fields(value: &[u8]) -> Result<Parts<'_>> {
    let (header, body) = split(value)?;
    let (fields, extras) = spans(format(value), body)?;
    Ok((header, fields, extras))
}

/// One encoded field of a value of `format` decoded (see [`fields`]).
pub fn decode_field(format: u8, encoded: &[u8]) -> Result<Option<Value>> {
    take_value(format, encoded)?.0.map(from_wire).transpose()
}

/// The location of a current record (`None` for an ended one, or one without a point): what
/// the spatial layers index. Fields before it are skipped, not decoded.
pub fn location(registry: Registry, bytes: &[u8]) -> Result<Option<(f64, f64)>> {
    let Some(at) = registry.schema().field_index("location") else { return Ok(None) };
    let (header, body) = split(bytes)?;
    if header.ended {
        return Ok(None);
    }
    let bad = |e: postcard::Error| Error::Codec(e.to_string());
    let (n, mut rest) = postcard::take_from_bytes::<usize>(body).map_err(bad)?;
    if at >= n {
        return Ok(None); // written before the field existed
    }
    for _ in 0..at {
        rest = skip_value(format(bytes), rest)?;
    }
    Ok(match take_value(format(bytes), rest)?.0 {
        Some(Wire::Point(x, y)) => Some((x, y)),
        Some(Wire::GridPoint(x, y)) => Some((from_grid(x), from_grid(y))),
        _ => None,
    })
}

/// Extras decoded from their encoding (see [`fields`]).
pub fn decode_extras(encoded: &[u8]) -> Result<Vec<(String, String)>> {
    postcard::from_bytes(encoded).map_err(|e| Error::Codec(e.to_string()))
}

/// Extras encoded as a value holds them.
pub fn encode_extras(extras: &[(String, String)]) -> Vec<u8> {
    postcard::to_allocvec(extras).expect("postcard into a Vec")
}

/// A golden value assembled from encoded fields and extras (each as [`fields`] gives them,
/// taken from the contributions the rules chose), without decoding any.
/// The fields are of the format `coding` writes (its store's).
pub fn encode_golden_spans(
    header: Header,
    fields: &[&[u8]],
    extras: &[u8],
    sources: &[String],
    coding: ValueCoding,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + fields.iter().map(|f| f.len()).sum::<usize>() + extras.len());
    put_header(&mut out, Header { sourced: true, ..header }, coding.format());
    let mut out = postcard::to_extend(&fields.len(), out).expect("postcard into a Vec");
    for f in fields {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(extras);
    postcard::to_extend(&sources, out).expect("postcard into a Vec")
}

/// The length of a value's header.
fn header_len(bytes: &[u8]) -> usize {
    if bytes.get(1).is_some_and(|f| f & EFFECTIVE != 0) { HEADER + 4 } else { HEADER }
}

/// A golden value's encoded fields, found once for all its contributions.
#[derive(Debug)]
pub struct GoldenSpans<'a> {
    fields: Vec<&'a [u8]>,
    extras: &'a [u8],
}

impl<'a> GoldenSpans<'a> {
    pub fn of(golden: &'a [u8]) -> Result<GoldenSpans<'a>> {
        let (fields, extras) = spans(format(golden), split(golden)?.1)?;
        Ok(GoldenSpans { fields, extras })
    }

    /// The golden value's fields and extras as [`fields`] gave them.
    pub fn from_parts(fields: Vec<&'a [u8]>, extras: &'a [u8]) -> GoldenSpans<'a> {
        GoldenSpans { fields, extras }
    }

    /// `value`, a contribution, as stored beside its golden record: its header, then only the
    /// fields (and the extras) where it differs from the golden value — what the golden record
    /// holds is not stored twice. `[header length][header][diff count]([field][length u16
    /// LE][encoded field])…[0 | 1 [length u32 LE][encoded extras]]`.
    pub fn diff(&self, value: &[u8]) -> Result<Vec<u8>> {
        let (fields, extras) = spans(format(value), split(value)?.1)?;
        self.diff_parts(value, &fields, extras)
    }

    /// [`GoldenSpans::diff`] of a value whose fields and extras were found already.
    pub fn diff_parts(&self, value: &[u8], fields: &[&[u8]], extras: &[u8]) -> Result<Vec<u8>> {
        const NONE: &[u8] = &[0];
        let (g_fields, g_extras) = (&self.fields, self.extras);
        let header = &value[..header_len(value)];
        let mut out = Vec::with_capacity(header.len() + 16);
        out.push(header.len() as u8);
        out.extend_from_slice(header);
        let count_at = out.len();
        out.push(0);
        let mut count = 0u8;
        for i in 0..g_fields.len().max(fields.len()).min(255) {
            let own = fields.get(i).copied().unwrap_or(NONE);
            if own != g_fields.get(i).copied().unwrap_or(NONE) {
                out.push(i as u8);
                out.extend_from_slice(&(own.len() as u16).to_le_bytes());
                out.extend_from_slice(own);
                count += 1;
            }
        }
        out[count_at] = count;
        if extras == g_extras {
            out.push(0);
        } else {
            out.push(1);
            out.extend_from_slice(&(extras.len() as u32).to_le_bytes());
            out.extend_from_slice(extras);
        }
        Ok(out)
    }
}

/// A contribution's value rebuilt from its difference ([`GoldenSpans::diff`]) to the golden value, and the bytes of
/// `diff` it took.
pub fn apply_diff(golden: &[u8], diff: &[u8]) -> Result<(Vec<u8>, usize)> {
    let bad = || Error::Codec("contribution".into());
    let (g_fields, g_extras) = spans(format(golden), split(golden)?.1)?;
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        let s = diff.get(*at..*at + n).ok_or_else(bad)?;
        *at += n;
        Ok(s)
    };
    let mut at = 0;
    let header_len = usize::from(take(&mut at, 1)?[0]);
    let header = take(&mut at, header_len)?;
    let count = take(&mut at, 1)?[0];
    let mut fields: Vec<&[u8]> = g_fields.clone();
    for _ in 0..count {
        let i = usize::from(take(&mut at, 1)?[0]);
        let len = u16::from_le_bytes(take(&mut at, 2)?.try_into().map_err(|_| bad())?);
        let own = take(&mut at, usize::from(len))?;
        if i >= fields.len() {
            fields.resize(i + 1, &[0]);
        }
        fields[i] = own;
    }
    let extras = match take(&mut at, 1)?[0] {
        0 => g_extras,
        _ => {
            let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().map_err(|_| bad())?);
            take(&mut at, len as usize)?
        }
    };
    let mut out = Vec::with_capacity(golden.len());
    out.extend_from_slice(header);
    let mut out = postcard::to_extend(&fields.len(), out).map_err(|e| Error::Codec(e.to_string()))?;
    for f in &fields {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(extras);
    Ok((out, at))
}

/// Decodes a stored value into a record.
pub fn decode(registry: Registry, id: &str, bytes: &[u8]) -> Result<Record> {
    let (header, body) = split(bytes)?;
    let bad = |e: postcard::Error| Error::Codec(e.to_string());
    type Body = (Vec<Option<Wire>>, Vec<(String, String)>, Vec<String>);
    let (wire, extras, sources): Body = if format(bytes) == FORMAT_COMPACT {
        let (n, mut rest) = postcard::take_from_bytes::<usize>(body).map_err(bad)?;
        let mut wire = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            let (w, after) = take_compact(rest)?;
            wire.push(w);
            rest = after;
        }
        let (extras, rest) = postcard::take_from_bytes(rest).map_err(bad)?;
        let sources = if header.sourced { postcard::from_bytes(rest).map_err(bad)? } else { Vec::new() };
        (wire, extras, sources)
    } else if header.sourced {
        postcard::from_bytes(body).map_err(bad)?
    } else {
        let (wire, extras) = postcard::from_bytes(body).map_err(bad)?;
        (wire, extras, Vec::new())
    };
    let mut values = wire.into_iter().map(|w| w.map(from_wire).transpose()).collect::<Result<Vec<_>>>()?;
    // A value written before a field was added decodes with that field empty.
    values.resize(registry.schema().fields.len(), None);
    Ok(Record {
        registry,
        id: id.to_string(),
        values,
        extras,
        load_id: header.load_id,
        ended: header.ended,
        needs_review: header.needs_review,
        effective_from: header.effective_from,
        sourced: header.sourced,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jichu_ingest::snap;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            ".{0,30}".prop_map(|s| Some(Value::Text(s))),
            (-100_000i64..100_000).prop_map(|d| Some(Value::Date(
                NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(d)
            ))),
            (any::<i64>(), 0u32..6).prop_map(|(m, s)| Some(Value::Decimal(rust_decimal::Decimal::new(m, s)))),
            (-180.0f64..180.0, -90.0f64..90.0).prop_map(|(x, y)| Some(Value::Point(Point::new(x, y)))),
            // On the grid, as loads store them.
            (-1_800_000_000i32..1_800_000_000, -900_000_000i32..900_000_000)
                .prop_map(|(x, y)| Some(Value::Point(Point::new(from_grid(x), from_grid(y))))),
            (0.0f64..1e9).prop_map(|n| Some(Value::Number(n))),
        ]
    }

    fn coding() -> impl Strategy<Value = ValueCoding> {
        prop_oneof![Just(ValueCoding::Float), Just(ValueCoding::Grid), Just(ValueCoding::Compact)]
    }

    proptest! {
        #[test]
        fn records_round_trip(values in prop::collection::vec(value(), 8), extras in prop::collection::vec((".{1,8}", ".{0,8}"), 0..3), load_id: u32, ended: bool, coding in coding()) {
            let effective_from = ended.then(|| NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
            let header = Header { load_id, ended, needs_review: false, effective_from, sourced: !ended };
            let sources = if ended { vec![] } else { vec!["市公安局".to_string(), "市人社局".to_string()] };
            let bytes = encode_golden(header, &values, &extras, &sources, coding);
            let r = decode(Registry::Citizens, "x", &bytes).unwrap();
            prop_assert_eq!(r.values, values);
            prop_assert_eq!(r.extras, extras);
            prop_assert_eq!((r.load_id, r.ended, r.effective_from, r.sourced), (load_id, ended, effective_from, !ended));
            prop_assert_eq!(r.sources, sources);
            let flipped = with_header(&bytes, Header { ended: !ended, effective_from: None, ..header }).unwrap();
            prop_assert_eq!(split(&flipped).unwrap().1, split(&bytes).unwrap().1);
        }
    }

    proptest! {
        /// The location read in place is the decoded record's point, none once ended, for
        /// golden records too, and whatever fields come before it.
        #[test]
        fn location_in_place_agrees_with_decoded(
            mut values in prop::collection::vec(value(), 0..9),
            point in prop::option::of((-180.0f64..180.0, -90.0f64..90.0)),
            ended: bool,
            sourced: bool,
            coding in coding(),
        ) {
            let grid = coding != ValueCoding::Float;
            let point = point.map(|(x, y): (f64, f64)| if grid { (snap(x), snap(y)) } else { (x, y) });
            let at = Registry::Citizens.schema().field_index("location").unwrap();
            if values.len() > at {
                values[at] = point.map(|(x, y)| Value::Point(Point::new(x, y)));
            }
            let header = Header { ended, ..Header::default() };
            let bytes = if sourced {
                encode_golden(Header { sourced: true, ..header }, &values, &[], &["a".to_string()], coding)
            } else {
                encode(header, &values, &[], coding)
            };
            let record = decode(Registry::Citizens, "k", &bytes).unwrap();
            let want = match &record.values[at] {
                Some(Value::Point(p)) if !ended => Some((p.x(), p.y())),
                _ => None,
            };
            prop_assert_eq!(location(Registry::Citizens, &bytes).unwrap(), want);
            prop_assert_eq!(location(Registry::Parcels, &bytes).unwrap(), None);
        }
    }

    proptest! {
        #[test]
        fn changed_fields_in_place_agree_with_decoded(
            a in prop::collection::vec(value(), 8),
            b in prop::collection::vec(value(), 6..9),
            extras in prop::collection::vec((".{1,4}", ".{0,4}"), 0..2),
            same_extras: bool,
            coding in coding(),
        ) {
            let other_extras = if same_extras { extras.clone() } else { vec![("x".to_string(), "y".to_string())] };
            let old = encode(Header::default(), &a, &extras, coding);
            let golden = Header { sourced: true, ..Header::default() };
            let new = encode_golden(golden, &b, &other_extras, &["a".to_string()], coding);
            let (x, y) = (decode(Registry::Citizens, "k", &old).unwrap(), decode(Registry::Citizens, "k", &new).unwrap());
            let mut expected = 0u64;
            for (i, (p, q)) in x.values.iter().zip(&y.values).enumerate() {
                if p != q {
                    expected |= 1 << i;
                }
            }
            if x.extras != y.extras {
                expected |= 1 << 63;
            }
            prop_assert_eq!(changed_fields(&old, &new, 63).unwrap(), expected);
        }
    }

    proptest! {
        #[test]
        fn a_contribution_rebuilds_from_its_difference_to_the_golden_value(
            a in prop::collection::vec(value(), 8),
            b in prop::collection::vec(value(), 6..9),
            own_extras: bool,
            effective: bool,
            coding in coding(),
        ) {
            let extras = vec![("k".to_string(), "v".to_string())];
            let golden = encode_golden(Header { sourced: true, ..Header::default() }, &a, &extras, &["s".to_string()], coding);
            let header = Header {
                load_id: 7,
                effective_from: effective.then(|| NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()),
                ..Header::default()
            };
            let contribution = encode(header, &b, if own_extras { &[] } else { &extras }, coding);
            let diff = GoldenSpans::of(&golden).unwrap().diff(&contribution).unwrap();
            let (rebuilt, used) = apply_diff(&golden, &diff).unwrap();
            prop_assert_eq!(used, diff.len());
            let (x, y) = (decode(Registry::Citizens, "k", &contribution).unwrap(), decode(Registry::Citizens, "k", &rebuilt).unwrap());
            prop_assert_eq!(x, y);
        }
    }

    proptest! {
        #[test]
        fn a_golden_value_assembled_from_fields_equals_one_encoded_whole(values in prop::collection::vec(value(), 8), coding in coding()) {
            let extras = vec![("k".to_string(), "v".to_string())];
            let header = Header { load_id: 3, sourced: true, ..Header::default() };
            let sources = vec!["a".to_string(), "b".to_string()];
            let whole = encode_golden(header, &values, &extras, &sources, coding);
            let plain = encode(header, &values, &extras, coding);
            let (_, f, x) = fields(&plain).unwrap();
            prop_assert_eq!(encode_golden_spans(header, &f, x, &sources, coding), whole);
            for (span, value) in f.iter().zip(&values) {
                prop_assert_eq!(&decode_field(format(&plain), span).unwrap(), value);
            }
            prop_assert_eq!(decode_extras(x).unwrap(), extras.clone());
            prop_assert_eq!(encode_extras(&extras), x.to_vec());
        }
    }

    #[test]
    fn geometry_round_trips_with_holes_either_way() {
        let g = jichu_ingest::parse_geometry(
            "POLYGON((118.1 24.4,118.1000421 24.4,118.1000421 24.4003,118.1 24.4003,118.1 24.4),\
             (118.10001 24.40001,118.10001 24.40002,118.10002 24.40002,118.10001 24.40001))",
            jichu_ingest::Crs::Wgs84,
        )
        .unwrap();
        let values = [None, None, None, Some(Value::Geometry(g.clone()))];
        let sizes: Vec<usize> = [ValueCoding::Float, ValueCoding::Grid, ValueCoding::Compact]
            .into_iter()
            .map(|coding| {
                let bytes = encode(Header { load_id: 1, ..Header::default() }, &values, &[], coding);
                let r = decode(Registry::Parcels, "p", &bytes).unwrap();
                assert_eq!(r.values[3], Some(Value::Geometry(g.clone())), "{coding:?}");
                bytes.len()
            })
            .collect();
        // Nine vertices: 144 bytes of f64 against 10 for the first vertex and 2–4 a step.
        assert!(sizes[1] < sizes[0] / 2 && sizes[2] < sizes[1], "{sizes:?}");
    }

    #[test]
    fn points_off_the_grid_keep_their_f64_in_a_grid_store() {
        let on = Value::Point(Point::new(118.0895321, 24.4798012));
        let off = Value::Point(Point::new(118.08953214, 24.4798012));
        let grid = |v: &Value| encode(Header::default(), &[Some(v.clone())], &[], ValueCoding::Grid);
        let float = |v: &Value| encode(Header::default(), &[Some(v.clone())], &[], ValueCoding::Float);
        assert_eq!(float(&on).len() - grid(&on).len(), 6);
        assert_eq!(grid(&off), float(&off));
        for v in [&on, &off] {
            let r = decode(Registry::Citizens, "k", &grid(v)).unwrap();
            assert_eq!(r.values[0].as_ref(), Some(v));
        }
        // Values written before the grid coding (variant 4: an f64 pair) still decode.
        assert_eq!(float(&on)[HEADER + 2], 4);
        assert_eq!(grid(&on)[HEADER + 2], 6);
        let compact = encode(Header::default(), &[Some(on.clone())], &[], ValueCoding::Compact);
        assert_eq!((compact[0], compact[HEADER + 1], compact.len() + 1), (2, 7, grid(&on).len()));
    }

    /// Format 2 writes a short text as its head and bytes (two bytes less than postcard's
    /// option, variant and length), a long one and other values as postcard's variant raised
    /// by one, none as 0; text of every length and values after it read back.
    #[test]
    fn compact_values_take_one_head_byte() {
        let at = |coding| encode(Header::default(), &[Some(Value::Text("王".into())), None], &[], coding);
        let (postcard, compact) = (at(ValueCoding::Grid), at(ValueCoding::Compact));
        assert_eq!(compact.len() + 2, postcard.len());
        assert_eq!(&compact[HEADER..], &[2, TEXT_HEAD + 3, 0xe7, 0x8e, 0x8b, 0, 0]);
        for n in [0, 1, 245, 246, 247, 300] {
            let values = [Some(Value::Text("a".repeat(n))), Some(Value::Number(1.5)), None];
            let bytes = encode(Header::default(), &values, &[("k".into(), "v".into())], ValueCoding::Compact);
            let (_, f, _) = fields(&bytes).unwrap();
            assert_eq!(f[0][0], if n <= 246 { TEXT_HEAD + n as u8 } else { 1 }, "{n}");
            let r = decode(Registry::Citizens, "k", &bytes).unwrap();
            assert_eq!(&r.values[..3], &values, "{n}");
        }
        assert!(decode(Registry::Citizens, "x", &[2, 0, 0, 0, 0, 0, 1, 60]).is_err(), "truncated");
        assert!(decode(Registry::Citizens, "x", &[2, 0, 0, 0, 0, 0, 1, TEXT_HEAD + 5, b'a']).is_err(), "truncated");
    }

    #[test]
    fn unknown_format_is_an_error_not_a_panic() {
        assert!(decode(Registry::Citizens, "x", &[9, 0, 0]).is_err());
        assert!(decode(Registry::Citizens, "x", &[1, 0, 0, 0, 0, 0, 0xff]).is_err());
    }
}
