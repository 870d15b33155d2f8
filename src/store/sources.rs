//! Beside the records: each source's contribution to a record more than one source supplies,
//! and the review items of identity conflicts between sources. The single writer writes them
//! in the record's batch, each with a side entry in `history` holding what it replaced, so
//! that undoing a load restores them as it restores the record.

use super::keys::{self, Side};
use super::{Reader, Writer, cf, codec};
use crate::error::{Error, Result};
use crate::model::Registry;
use chrono::{DateTime, Utc};
use rocksdb::{IteratorMode, PrefixRange};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// An identity conflict for a data steward: the sources' values of one field of one record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReviewItem {
    /// The item's number (in `/v1/review/{item}`).
    pub item: u64,
    pub registry: String,
    pub id: String,
    pub field: String,
    /// Each live source's value, newest first.
    pub values: Vec<SourceValue>,
    pub opened_at: DateTime<Utc>,
    pub status: ReviewStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceValue {
    pub source: String,
    pub value: Json,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    /// Waiting for a steward.
    Open,
    /// A steward chose; the choice stands until the field's authority agrees.
    Resolved,
    /// The sources came to agree (or the authority agreed with the steward).
    Agreed,
}

impl std::str::FromStr for ReviewStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "open" => Ok(ReviewStatus::Open),
            "resolved" => Ok(ReviewStatus::Resolved),
            "agreed" => Ok(ReviewStatus::Agreed),
            _ => Err(format!("unknown status `{s}`: open, resolved or agreed")),
        }
    }
}

/// A steward's decision: who, when, what (a source's value or a value of their own).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    pub by: String,
    pub at: DateTime<Utc>,
    /// The load that wrote the decision (its lineage: source `steward`).
    pub load_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Codec(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| Error::Codec(e.to_string()))
}

/// A record's contributions in one value, each stored as its difference to the golden value
/// beside it (`codec::GoldenSpans::diff`): `[count]([source length][source][difference])…`,
/// by source. One key per record: a load merging a row reads and writes one. `parts` are the
/// contributions' encoded fields and extras, as `codec::fields` gives them, in the same order.
pub fn encode_contributions(
    all: &[(String, Vec<u8>)],
    parts: &[codec::Parts<'_>],
    golden: &codec::GoldenSpans<'_>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 + all.iter().map(|(s, _)| 32 + s.len()).sum::<usize>());
    out.push(all.len().min(255) as u8);
    for ((source, value), (_, fields, extras)) in all.iter().zip(parts).take(255) {
        let s = &source.as_bytes()[..source.len().min(255)];
        out.push(s.len() as u8);
        out.extend_from_slice(s);
        out.extend_from_slice(&golden.diff_parts(value, fields, extras)?);
    }
    Ok(out)
}

/// The contributions [`encode_contributions`] stored beside `golden`: each source and its value.
pub fn decode_contributions(stored: &[u8], golden: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::Codec("contributions".into());
    let (&n, mut b) = stored.split_first().ok_or_else(bad)?;
    let mut out = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let (&len, rest) = b.split_first().ok_or_else(bad)?;
        let source = rest.get(..usize::from(len)).ok_or_else(bad)?;
        let source = String::from_utf8(source.to_vec()).map_err(|_| bad())?;
        let (value, used) = codec::apply_diff(golden, &rest[usize::from(len)..])?;
        out.push((source, value));
        b = &rest[usize::from(len) + used..];
    }
    Ok(out)
}

impl Writer<'_> {
    /// Writes a record's contributions, encoded beside its golden value
    /// ([`encode_contributions`]; `old`: the stored value they replace, None when the record
    /// had none). Only a replacement is logged for
    /// undo: a record gets its first contributions with its first golden value, and undoing
    /// that value (back to a record one source supplied) removes them.
    pub fn put_contributions(
        &mut self,
        registry: Registry,
        id: &[u8],
        encoded: &[u8],
        old: Option<&[u8]>,
        load_id: u32,
    ) -> Result<()> {
        self.put_raw(cf::CONTRIBUTIONS, &keys::history_prefix(registry, id), encoded);
        if old.is_some() {
            // A load writes a record's contributions once: no earlier entry of its own to keep.
            self.log_side(Side::Contribution, registry, id, &[], old, load_id, false);
        }
        Ok(())
    }

    /// Writes a review item (`old`: the stored one it replaces), logged for undo.
    pub fn put_review(
        &mut self,
        registry: Registry,
        id: &[u8],
        field: u8,
        item: &ReviewItem,
        old: Option<&[u8]>,
        load_id: u32,
    ) -> Result<()> {
        let key = keys::review_item(registry, id, field);
        self.put_raw(cf::REVIEW, &key, &to_json(item)?);
        self.put_raw(cf::REVIEW, &keys::review_number(item.item), &key);
        self.log_side(Side::Review, registry, id, &[field], old, load_id, true);
        Ok(())
    }

    /// A new review item number.
    pub fn next_review_number(&mut self) -> Result<u64> {
        let next = match self.review_next {
            Some(n) => n,
            None => {
                let store = self.store();
                let stored = store.db().get_cf(store.cf(cf::REVIEW), keys::REVIEW_NEXT)?;
                stored.and_then(|v| v.try_into().ok()).map_or(1, u64::from_be_bytes)
            }
        };
        self.review_next = Some(next + 1);
        self.put_raw(cf::REVIEW, keys::REVIEW_NEXT, &(next + 1).to_be_bytes());
        Ok(next)
    }

    /// Logs what a side write replaced; with `first_only`, only the first value this load
    /// replaced (a review item a load may write twice), which is what undo restores.
    #[allow(clippy::too_many_arguments)]
    fn log_side(
        &mut self,
        side: Side,
        registry: Registry,
        id: &[u8],
        part: &[u8],
        old: Option<&[u8]>,
        load_id: u32,
        first_only: bool,
    ) {
        let history = keys::side_history(side, registry, id, part, load_id);
        let logged = first_only
            && self.store().db().get_pinned_cf(self.store().cf(cf::HISTORY), &history).ok().flatten().is_some();
        if !logged {
            self.put_raw(cf::HISTORY, &history, old.unwrap_or(&[]));
        }
        self.put_raw(cf::CHANGES, &keys::change(load_id, registry, id), &[]);
    }

    /// Puts back the contributions and review items of `(registry, id)` that load `load_id`
    /// replaced (part of undoing it).
    pub(super) fn restore_side(&mut self, registry: Registry, id: &[u8], load_id: u32) -> Result<()> {
        let store = self.store();
        for side in [Side::Contribution, Side::Review] {
            let prefix = keys::side_history_prefix(side, registry, id);
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_iterate_range(PrefixRange(prefix.clone()));
            let entries: Vec<super::KeyValue> = store
                .db()
                .iterator_cf_opt(store.cf(cf::HISTORY), opts, IteratorMode::Start)
                .collect::<std::result::Result<_, _>>()?;
            for (k, old) in entries {
                let (part, load) =
                    keys::decode_side_history(&k[prefix.len()..]).ok_or_else(|| Error::Codec("side key".into()))?;
                if load != load_id {
                    continue;
                }
                match side {
                    Side::Contribution => {
                        let key = keys::history_prefix(registry, id);
                        if old.is_empty() {
                            self.delete_raw(cf::CONTRIBUTIONS, &key);
                        } else {
                            self.put_raw(cf::CONTRIBUTIONS, &key, &old);
                        }
                    }
                    Side::Review => {
                        let key = keys::review_item(registry, id, part[0]);
                        if let Some(now) = store.db().get_cf(store.cf(cf::REVIEW), &key)? {
                            let now: ReviewItem = from_json(&now)?;
                            self.delete_raw(cf::REVIEW, &keys::review_number(now.item));
                        }
                        if old.is_empty() {
                            self.delete_raw(cf::REVIEW, &key);
                        } else {
                            let before: ReviewItem = from_json(&old)?;
                            self.put_raw(cf::REVIEW, &keys::review_number(before.item), &key);
                            self.put_raw(cf::REVIEW, &key, &old);
                        }
                    }
                }
                self.delete_raw(cf::HISTORY, &k);
            }
        }
        Ok(())
    }
}

impl Reader<'_> {
    /// Every contribution to a record: `(source, encoded contribution)`; none for a record one
    /// source supplies.
    pub fn contributions(&self, registry: Registry, id: &str) -> Result<Vec<(String, Vec<u8>)>> {
        match (self.contributions_raw(registry, id)?, self.get_raw(registry, id)?) {
            (Some(raw), Some(golden)) => decode_contributions(&raw, &golden),
            _ => Ok(Vec::new()),
        }
    }

    /// A record's contributions as stored (see [`encode_contributions`]).
    pub fn contributions_raw(&self, registry: Registry, id: &str) -> Result<Option<Vec<u8>>> {
        let store = self.store();
        let key = keys::history_prefix(registry, id.as_bytes());
        Ok(store.db().get_pinned_cf_opt(store.cf(cf::CONTRIBUTIONS), key, &self.read_options())?.map(|v| v.to_vec()))
    }

    /// A record's review items: `(field index, item, stored bytes)`.
    pub fn review_items_of(&self, registry: Registry, id: &str) -> Result<Vec<(u8, ReviewItem, Vec<u8>)>> {
        let prefix = keys::review_prefix(registry, id.as_bytes());
        let mut opts = self.read_options();
        opts.set_iterate_range(PrefixRange(prefix.clone()));
        let store = self.store();
        let mut out = Vec::new();
        for item in store.db().iterator_cf_opt(store.cf(cf::REVIEW), opts, IteratorMode::Start) {
            let (k, v) = item?;
            let field = *k.get(prefix.len()).ok_or_else(|| Error::Codec("review key".into()))?;
            out.push((field, from_json(&v)?, v.to_vec()));
        }
        Ok(out)
    }

    /// One review item by number, with its key.
    pub fn review_item(&self, item: u64) -> Result<Option<(ReviewItem, Vec<u8>)>> {
        let store = self.store();
        let opts = self.read_options();
        let Some(key) = store.db().get_cf_opt(store.cf(cf::REVIEW), keys::review_number(item), &opts)? else {
            return Ok(None);
        };
        match store.db().get_cf_opt(store.cf(cf::REVIEW), &key, &opts)? {
            Some(v) => Ok(Some((from_json(&v)?, v))),
            None => Ok(None),
        }
    }

    /// Review items numbered after `after`, in number order, that `keep` accepts; at most
    /// `limit`, and whether more follow.
    pub fn review_items(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&ReviewItem) -> bool,
    ) -> Result<(Vec<ReviewItem>, bool)> {
        let store = self.store();
        let mut opts = self.read_options();
        opts.set_iterate_range(PrefixRange(&b"#"[..]));
        let start = keys::review_number(after.saturating_add(1));
        let mut out = Vec::new();
        let it = store.db().iterator_cf_opt(
            store.cf(cf::REVIEW),
            opts,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for entry in it {
            let (_, key) = entry?;
            let Some(v) = store.db().get_cf_opt(store.cf(cf::REVIEW), &key, &self.read_options())? else { continue };
            let item: ReviewItem = from_json(&v)?;
            if keep(&item) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(item);
            }
        }
        Ok((out, false))
    }
}
