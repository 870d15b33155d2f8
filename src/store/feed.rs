//! The change feed: every change to a record, at its place in one store-wide, gap-free,
//! strictly increasing order (positions 1, 2, 3, …), written in the same atomic batch as the
//! change itself (bulk loads: in SST files ingested with the records).
//!
//! Entry: position (u64, big-endian: the key order is the feed order) →
//! `[registry][change kind][load id: u32 LE][changed fields: u64 LE][record key]`. The changed
//! fields are a bit set of schema field indices (bit 63: the extra attributes), computed
//! when the change is written, so a consumer learns what changed without reading versions.

use super::codec;
use crate::error::{Error, Result};
use crate::model::{Record, Registry};
use serde::Serialize;

/// Bit of the extra attributes in a changed-fields set.
pub const EXTRAS_BIT: u32 = 63;

/// What a change did to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The record did not exist before.
    Insert = 1,
    /// Its values changed.
    Update = 2,
    /// It was ended (a snapshot load no longer holds it; never erased).
    End = 3,
    /// An ended record came back.
    Reopen = 4,
}

impl ChangeKind {
    fn from_byte(b: u8) -> Option<ChangeKind> {
        Some(match b {
            1 => ChangeKind::Insert,
            2 => ChangeKind::Update,
            3 => ChangeKind::End,
            4 => ChangeKind::Reopen,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::End => "end",
            ChangeKind::Reopen => "reopen",
        }
    }
}

/// One entry of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntry {
    pub position: u64,
    pub registry: Registry,
    pub kind: ChangeKind,
    pub load_id: u32,
    /// Bit set of schema field indices (and [`EXTRAS_BIT`]) whose values changed; 0 for an
    /// insert (everything is new).
    pub fields: u64,
    pub key: String,
}

pub fn key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

pub fn encode_value(registry: Registry, kind: ChangeKind, load_id: u32, fields: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + key.len());
    v.push(registry as u8);
    v.push(kind as u8);
    v.extend_from_slice(&load_id.to_le_bytes());
    v.extend_from_slice(&fields.to_le_bytes());
    v.extend_from_slice(key);
    v
}

pub fn decode(k: &[u8], v: &[u8]) -> Result<FeedEntry> {
    let bad = || Error::Codec("feed entry".into());
    let position = u64::from_be_bytes(k.try_into().map_err(|_| bad())?);
    if v.len() < 14 {
        return Err(bad());
    }
    Ok(FeedEntry {
        position,
        registry: Registry::from_byte(v[0]).ok_or_else(bad)?,
        kind: ChangeKind::from_byte(v[1]).ok_or_else(bad)?,
        load_id: u32::from_le_bytes(v[2..6].try_into().map_err(|_| bad())?),
        fields: u64::from_le_bytes(v[6..14].try_into().map_err(|_| bad())?),
        key: String::from_utf8(v[14..].to_vec()).map_err(|_| bad())?,
    })
}

/// The kind of a change from the value it replaces (None: none) to `new`, and the fields whose
/// values differ.
pub fn classify(old: Option<&[u8]>, new: &[u8]) -> Result<(ChangeKind, u64)> {
    let Some(old) = old else { return Ok((ChangeKind::Insert, 0)) };
    let (old_header, old_body) = codec::split(old)?;
    let (new_header, new_body) = codec::split(new)?;
    let kind = match (old_header.ended, new_header.ended) {
        (false, true) => ChangeKind::End,
        (true, false) => ChangeKind::Reopen,
        _ => ChangeKind::Update,
    };
    if old_body == new_body {
        return Ok((kind, 0));
    }
    Ok((kind, codec::changed_fields(old, new, EXTRAS_BIT)?))
}

/// The bit set of fields whose values differ between two versions of a record.
pub fn changed_fields(a: &Record, b: &Record) -> u64 {
    let mut mask = 0u64;
    for (i, (x, y)) in a.values.iter().zip(&b.values).enumerate().take(EXTRAS_BIT as usize) {
        if x != y {
            mask |= 1 << i;
        }
    }
    if a.extras != b.extras {
        mask |= 1 << EXTRAS_BIT;
    }
    mask
}

/// The names of the fields in a changed-fields set (`extras` for the extra attributes).
pub fn field_names(registry: Registry, fields: u64) -> impl Iterator<Item = (Option<usize>, &'static str)> {
    let schema = registry.schema();
    (0..schema.fields.len().min(EXTRAS_BIT as usize))
        .filter(move |i| fields & (1 << i) != 0)
        .map(move |i| (Some(i), schema.fields[i].name))
        .chain((fields & (1 << EXTRAS_BIT) != 0).then_some((None, "extras")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let v = encode_value(Registry::Licences, ChangeKind::Reopen, 7, 0b101 | 1 << EXTRAS_BIT, "证-001".as_bytes());
        let e = decode(&key(42), &v).unwrap();
        assert_eq!(
            e,
            FeedEntry {
                position: 42,
                registry: Registry::Licences,
                kind: ChangeKind::Reopen,
                load_id: 7,
                fields: 0b101 | 1 << EXTRAS_BIT,
                key: "证-001".into()
            }
        );
        let names: Vec<&str> = field_names(Registry::Licences, e.fields).map(|(_, n)| n).collect();
        assert_eq!(names.len(), 3);
        assert_eq!(names[2], "extras");
        assert!(decode(&key(1), &v[..10]).is_err());
    }
}
