//! Key encodings, in one place.
//!
//! - record: the canonical key text's bytes (in the registry's column family);
//! - edge: `[owner registry][owner key length][owner key][relation][other registry][other key]`,
//!   so that one prefix scan lists every reverse relation of a record (who refers to it),
//!   grouped by relation;
//! - meta: ASCII tags followed by a registry byte or a big-endian load id.

use crate::model::ids::{SubjectKind, subject_kind};
use crate::model::{Link, Registry, Relation, Target};

/// The prefix shared by every edge that starts at `(registry, id)`.
pub fn edge_prefix(registry: Registry, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 2);
    k.push(registry as u8);
    k.push(id.len().min(255) as u8);
    k.extend_from_slice(&id.as_bytes()[..id.len().min(255)]);
    k
}

/// The key of the edge `(owner) —relation→ (other)`.
pub fn edge(owner: Registry, owner_id: &str, relation: Relation, other: Registry, other_id: &str) -> Vec<u8> {
    let mut k = edge_prefix(owner, owner_id);
    k.push(relation as u8);
    k.push(other as u8);
    k.extend_from_slice(other_id.as_bytes());
    k
}

/// The registry a reference points into: citizens, or for a subject the registry its
/// identifier's form says.
pub fn target_registry(link: &Link, id: &str) -> Registry {
    match link.target {
        Target::Citizens => Registry::Citizens,
        Target::Subject => match subject_kind(id) {
            Some(SubjectKind::Entity) => Registry::Entities,
            _ => Registry::Citizens,
        },
    }
}

/// The stored edge of one reference: target → owner. The forward edge (owner → target) is
/// not stored: the owner's record holds the reference, and reads derive it from there.
pub fn link_edge(registry: Registry, id: &str, link: &Link, target: &str) -> Vec<u8> {
    edge(target_registry(link, target), target, link.reverse, registry, id)
}

/// The record an edge key starts at: `(registry, key)`.
pub fn edge_owner(key: &[u8]) -> Option<(Registry, &[u8])> {
    let registry = Registry::from_byte(*key.first()?)?;
    let len = usize::from(*key.get(1)?);
    Some((registry, key.get(2..2 + len)?))
}

/// Decodes an edge key into `(relation, other registry, other key)`.
pub fn decode_edge(key: &[u8]) -> Option<(Relation, Registry, &str)> {
    let owner_len = usize::from(*key.get(1)?);
    let rest = key.get(2 + owner_len..)?;
    let relation = Relation::from_byte(*rest.first()?)?;
    let other = Registry::from_byte(*rest.get(1)?)?;
    Some((relation, other, std::str::from_utf8(rest.get(2..)?).ok()?))
}

pub fn count(registry: Registry) -> [u8; 7] {
    let mut k = *b"count/\0";
    k[6] = registry as u8;
    k
}

pub fn bulk_marker(registry: Registry) -> [u8; 6] {
    let mut k = *b"bulk/\0";
    k[5] = registry as u8;
    k
}

pub const LOAD_PREFIX: &[u8] = b"load/";
/// A load submitted to a running server: its task (status, spec, files), by load id.
pub const TASK_PREFIX: &[u8] = b"task/";

pub fn task(id: u32) -> Vec<u8> {
    [TASK_PREFIX, &id.to_be_bytes()].concat()
}
pub const NEXT_LOAD: &[u8] = b"next_load";

pub fn load(id: u32) -> Vec<u8> {
    [LOAD_PREFIX, &id.to_be_bytes()].concat()
}

/// A change-log entry: `[load id, big-endian][registry][key]`, so a load's changes to one
/// registry are one key range.
pub fn change(load_id: u32, registry: Registry, id: &[u8]) -> Vec<u8> {
    [&load_id.to_be_bytes()[..], &[registry as u8], id].concat()
}

/// Every change-log entry of one load.
pub fn load_changes_prefix(load_id: u32) -> [u8; 4] {
    load_id.to_be_bytes()
}

/// A history entry: the value a load replaced, `[registry][key length][key][load id, big-endian]`,
/// so a record's versions are one key range, in load order.
pub fn history(registry: Registry, id: &[u8], load_id: u32) -> Vec<u8> {
    let mut k = history_prefix(registry, id);
    k.extend_from_slice(&load_id.to_be_bytes());
    k
}

pub fn history_prefix(registry: Registry, id: &[u8]) -> Vec<u8> {
    let len = id.len().min(255);
    let mut k = Vec::with_capacity(len + 6);
    k.push(registry as u8);
    k.push(len as u8);
    k.extend_from_slice(&id[..len]);
    k
}

/// A record's review items: `r[registry][key length][key]`, then the field's index.
pub fn review_prefix(registry: Registry, id: &[u8]) -> Vec<u8> {
    [&b"r"[..], &history_prefix(registry, id)].concat()
}

pub fn review_item(registry: Registry, id: &[u8], field: u8) -> Vec<u8> {
    let mut k = review_prefix(registry, id);
    k.push(field);
    k
}

/// A review item's number → its key.
pub fn review_number(item: u64) -> Vec<u8> {
    [&b"#"[..], &item.to_be_bytes()].concat()
}

pub const REVIEW_NEXT: &[u8] = b"next";

/// What a load replaced beside a record, kept in `history` so that undoing the load restores it:
/// `[side | registry][key length][key][part length][part][load id BE]` (a source's contribution,
/// a review item). The side bit keeps these apart from the record's own versions.
pub fn side_history(side: Side, registry: Registry, id: &[u8], part: &[u8], load_id: u32) -> Vec<u8> {
    let mut k = side_history_prefix(side, registry, id);
    k.push(part.len().min(255) as u8);
    k.extend_from_slice(&part[..part.len().min(255)]);
    k.extend_from_slice(&load_id.to_be_bytes());
    k
}

pub fn side_history_prefix(side: Side, registry: Registry, id: &[u8]) -> Vec<u8> {
    let mut k = history_prefix(registry, id);
    k[0] |= side as u8;
    k
}

/// What a side history entry saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Contribution = 0x80,
    Review = 0x40,
}

/// The part and load id of a side history key (after its prefix).
pub fn decode_side_history(rest: &[u8]) -> Option<(&[u8], u32)> {
    let len = usize::from(*rest.first()?);
    let part = rest.get(1..1 + len)?;
    let load = rest.get(1 + len..5 + len)?;
    Some((part, u32::from_be_bytes(load.try_into().ok()?)))
}

/// An entity's entry in `organisation_codes`: the organisation code its credit code embeds,
/// then the credit code. None for a key too short to be a credit code.
pub fn organisation_code(credit_code: &[u8]) -> Option<Vec<u8>> {
    (credit_code.len() == 18).then(|| [&credit_code[8..17], credit_code].concat())
}

/// Marks `organisation_codes` as holding every stored entity (filled once for older stores).
pub const ORGANISATION_CODES_READY: &[u8] = b"orgcodes_ready";

/// Meta key present once `relations` holds no holder's own edge (stores written before kept
/// both directions; [`super::Store::open`] drops the holder's side once).
pub const EDGES_ONE_WAY: &[u8] = b"edges_one_way";

/// Meta key present in a store that writes coordinates as grid steps (one created empty since
/// the grid coding; [`super::Store::value_coding`]).
pub const POINTS_ON_GRID: &[u8] = b"points_on_grid";

/// Meta key present in a store that writes values in the compact format (one created empty
/// since it; [`super::Store::value_coding`]).
pub const VALUES_COMPACT: &[u8] = b"values_compact";

/// Whether a reference of `link` may point into `registry`.
pub fn may_target(link: &Link, registry: Registry) -> bool {
    match link.target {
        Target::Citizens => registry == Registry::Citizens,
        Target::Subject => matches!(registry, Registry::Citizens | Registry::Entities),
    }
}

/// A removed edge's entry: the edge key, then the load that removed it.
pub fn unlinked(edge: &[u8], load_id: u32) -> Vec<u8> {
    [edge, &load_id.to_be_bytes()[..]].concat()
}

pub fn change_prefix(load_id: u32, registry: Registry) -> [u8; 5] {
    let b = load_id.to_be_bytes();
    [b[0], b[1], b[2], b[3], registry as u8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jichu_indexes::spatial::grid;
    use proptest::prelude::*;

    #[test]
    fn loads_snap_to_the_index_grid() {
        // What a load snaps is what the index grid holds.
        for v in [118.08940004, 24.47984449, -179.99999996, 0.00000005] {
            assert_eq!(jichu_ingest::snap(v), grid::snap(v));
        }
    }

    proptest! {
        #[test]
        fn edges_round_trip_and_sort_under_their_owner(a in "[0-9A-Z]{1,40}", b in "[^\u{0}]{1,40}") {
            let k = edge(Registry::Citizens, &a, Relation::Licences, Registry::Licences, &b);
            prop_assert!(k.starts_with(&edge_prefix(Registry::Citizens, &a)));
            prop_assert_eq!(edge_owner(&k), Some((Registry::Citizens, a.as_bytes())));
            prop_assert_eq!(decode_edge(&k), Some((Relation::Licences, Registry::Licences, b.as_str())));
        }
    }
}
