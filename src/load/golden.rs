//! The golden path: a source's contribution merged into a record that another source (or a
//! steward) also supplies, the golden record recomputed from the contributions by the
//! survivorship rules, and identity conflicts opened for review — all in the load's batch.

use crate::error::Result;
use crate::golden::{self, Contribution, Golden, Rules, STEWARD};
use crate::model::{Registry, value_json};
use crate::store::codec::{self, Header};
use crate::store::{ReviewItem, ReviewStatus, SourceValue, Store, Writer};
use jichu_ingest::Value;

/// Who merges: the rules, and the load writing as one source.
pub(crate) struct Merger {
    pub rules: Rules,
    pub registry: Registry,
    pub load_id: u32,
    pub source: String,
    /// Review items opened so far.
    pub opened: std::cell::Cell<u64>,
}

/// A golden record to write anew.
pub(crate) struct Rewritten {
    pub value: Vec<u8>,
    pub values: Vec<Option<Value>>,
    pub ended: bool,
}

impl Rewritten {
    /// Its references, in the order of the schema's links ("" for none).
    pub fn targets(&self, registry: Registry) -> Vec<&str> {
        registry.schema().links().map(|(i, _)| self.values[i].as_ref().and_then(Value::as_text).unwrap_or("")).collect()
    }

    /// Its current location (none once ended).
    pub fn point(&self) -> Option<(f64, f64)> {
        if self.ended {
            return None;
        }
        self.values.iter().flatten().find_map(|v| match v {
            Value::Point(p) => Some((p.x(), p.y())),
            _ => None,
        })
    }
}

/// What merging a contribution did.
pub(crate) enum Merged {
    /// The source's contribution was already as sent.
    Unchanged,
    /// The contribution changed; the golden record did not.
    Contributed,
    Rewritten(Rewritten),
}

/// The source of a record only one source supplies: its load's.
pub(crate) fn sole_source(store: &Store, load_id: u32) -> String {
    store.lineage(load_id).map_or_else(|| format!("load {load_id}"), |l| l.source.clone())
}

/// Whether two encodings hold the same contribution (values, extras, end, effective date).
fn same(a: &[u8], b: &[u8]) -> Result<bool> {
    let ((ha, ba), (hb, bb)) = (codec::split(a)?, codec::split(b)?);
    Ok(ba == bb && ha.ended == hb.ended && ha.effective_from == hb.effective_from && ha.needs_review == hb.needs_review)
}

impl Merger {
    /// Whether a row of this load for the record stored as `old` takes the golden path: the
    /// record has contributions, or another source supplied it.
    pub fn applies(&self, store: &Store, old: &Header) -> bool {
        old.sourced || sole_source(store, old.load_id) != self.source
    }

    /// Merges this source's contribution `new` (None: its snapshot no longer holds the record)
    /// into the record stored as `old`.
    pub fn merge(&self, writer: &mut Writer<'_>, id: &str, new: Option<&[u8]>, old: &[u8]) -> Result<Merged> {
        let (mut contributions, stored) = self.contributions(writer, id, old)?;
        let at = contributions.iter().position(|(s, _)| *s == self.source);
        let previous = at.map(|i| contributions[i].1.as_slice());
        let next = match (new, previous) {
            (Some(new), Some(prev)) if same(new, prev)? => return Ok(Merged::Unchanged),
            (Some(new), _) => new.to_vec(),
            (None, Some(prev)) => {
                let (h, _) = codec::split(prev)?;
                if h.ended {
                    return Ok(Merged::Unchanged);
                }
                codec::with_header(prev, Header { load_id: self.load_id, ended: true, effective_from: None, ..h })?
            }
            (None, None) => return Ok(Merged::Unchanged),
        };
        match at {
            Some(i) => contributions[i].1 = next,
            None => contributions.push((self.source.clone(), next)),
        }
        self.steward_agreement(id, &mut contributions)?;
        self.rewrite(writer, id, &contributions, stored.as_deref(), old)
    }

    /// The record's contributions, and their stored value: as stored, or the record itself
    /// (nothing stored) when only one source has supplied it.
    #[allow(clippy::type_complexity)]
    pub fn contributions(
        &self,
        writer: &Writer<'_>,
        id: &str,
        old: &[u8],
    ) -> Result<(Vec<(String, Vec<u8>)>, Option<Vec<u8>>)> {
        let store = writer.store();
        let (header, _) = codec::split(old)?;
        if header.sourced {
            let stored = store.reader().contributions_raw(self.registry, id)?;
            let all = match &stored {
                Some(raw) => crate::store::decode_contributions(raw, old)?,
                None => Vec::new(),
            };
            return Ok((all, stored));
        }
        let value = codec::with_header(old, Header { sourced: false, ..header })?;
        Ok((vec![(sole_source(store, header.load_id), value)], None))
    }

    /// A steward's value of a field stands until the field's authority sends the same value:
    /// then it is cleared, and the authority's value rules again.
    fn steward_agreement(&self, id: &str, contributions: &mut [(String, Vec<u8>)]) -> Result<()> {
        if self.source == STEWARD {
            return Ok(());
        }
        let find = |name: &str| contributions.iter().position(|(s, _)| s == name);
        let (Some(s), Some(mine)) = (find(STEWARD), find(&self.source)) else { return Ok(()) };
        let mut steward = codec::decode(self.registry, id, &contributions[s].1)?;
        let own = codec::decode(self.registry, id, &contributions[mine].1)?;
        let mut cleared = false;
        for (field, value) in steward.values.iter_mut().enumerate() {
            if value.is_some()
                && self.rules.authority(self.registry, field) == Some(self.source.as_str())
                && own.values[field] == *value
            {
                *value = None;
                cleared = true;
            }
        }
        if cleared {
            let empty = steward.values.iter().all(Option::is_none);
            let header = Header { load_id: self.load_id, ended: empty, ..Header::default() };
            contributions[s].1 = codec::encode(header, &steward.values, &[]);
        }
        Ok(())
    }

    /// Decodes contributions with their recency (the running load is the newest).
    pub fn decode(&self, store: &Store, id: &str, contributions: &[(String, Vec<u8>)]) -> Result<Vec<Contribution>> {
        contributions
            .iter()
            .map(|(source, value)| {
                let record = codec::decode(self.registry, id, value)?;
                let recency = store.lineage(record.load_id).and_then(|l| l.finish_order()).unwrap_or(u64::MAX);
                Ok(Contribution { source: source.clone(), recency, record })
            })
            .collect()
    }

    /// Recomputes the golden record from `contributions`, writes its review items and the
    /// contributions (beside the golden value; `stored`: what they replace) unless they and the
    /// golden value are unchanged, and says whether the record's stored value `old` changes.
    pub fn rewrite(
        &self,
        writer: &mut Writer<'_>,
        id: &str,
        contributions: &[(String, Vec<u8>)],
        stored: Option<&[u8]>,
        old: &[u8],
    ) -> Result<Merged> {
        let decoded = self.decode(writer.store(), id, contributions)?;
        let golden = golden::survive(self.registry, &self.rules, &decoded);
        // A record has review items to revisit only if it has a conflict now, was flagged
        // (an open item), or holds a steward's decision (a resolved one).
        let (old_header, _) = codec::split(old)?;
        if !golden.conflicts.is_empty() || old_header.needs_review || decoded.iter().any(|c| c.source == STEWARD) {
            self.review(writer, id, &golden, &decoded)?;
        }
        let header = Header {
            load_id: self.load_id,
            ended: golden.ended,
            needs_review: golden.needs_review,
            effective_from: golden.effective_from,
            sourced: true,
        };
        let sources: Vec<String> = decoded.iter().filter(|c| !c.record.ended).map(|c| c.source.clone()).collect();
        let value = codec::encode_golden(header, &golden.values, &golden.extras, &sources);
        let ((oh, ob), (nh, nb)) = (codec::split(old)?, codec::split(&value)?);
        let unstamped = |h: Header| Header { load_id: 0, ..h };
        let merged = if ob == nb && unstamped(oh) == unstamped(nh) {
            Merged::Contributed
        } else {
            Merged::Rewritten(Rewritten { value, values: golden.values, ended: golden.ended })
        };
        let beside = match &merged {
            Merged::Rewritten(r) => r.value.as_slice(),
            _ => old,
        };
        let encoded = crate::store::encode_contributions(contributions, beside)?;
        if stored != Some(encoded.as_slice()) {
            writer.put_contributions(self.registry, id.as_bytes(), &encoded, stored, self.load_id)?;
        }
        Ok(merged)
    }

    /// Opens (or refreshes) an item per identity conflict; an open item whose sources now agree,
    /// or a steward's decision its authority has come to agree with, is marked agreed.
    fn review(&self, writer: &mut Writer<'_>, id: &str, golden: &Golden, decoded: &[Contribution]) -> Result<()> {
        let store = writer.store();
        let existing = store.reader().review_items_of(self.registry, id)?;
        let fields = self.registry.schema().fields;
        for conflict in &golden.conflicts {
            let values: Vec<SourceValue> = conflict
                .values
                .iter()
                .map(|(source, v)| SourceValue { source: source.clone(), value: value_json(v) })
                .collect();
            let field = conflict.field as u8;
            let (item, old) = match existing.iter().find(|(f, ..)| *f == field) {
                Some((_, item, _)) if item.status == ReviewStatus::Open && item.values == values => continue,
                Some((_, item, bytes)) => {
                    let mut item = item.clone();
                    if item.status != ReviewStatus::Open {
                        item.status = ReviewStatus::Open;
                        item.opened_at = chrono::Utc::now();
                        item.resolution = None;
                    }
                    item.values = values;
                    (item, Some(bytes.as_slice()))
                }
                None => {
                    let item = ReviewItem {
                        item: writer.next_review_number()?,
                        registry: self.registry.to_string(),
                        id: id.to_string(),
                        field: fields[conflict.field].name.to_string(),
                        values,
                        opened_at: chrono::Utc::now(),
                        status: ReviewStatus::Open,
                        resolution: None,
                    };
                    self.opened.set(self.opened.get() + 1);
                    (item, None)
                }
            };
            writer.put_review(self.registry, id.as_bytes(), field, &item, old, self.load_id)?;
        }
        for (field, item, bytes) in &existing {
            let i = usize::from(*field);
            if golden.conflicts.iter().any(|c| c.field == i) {
                continue;
            }
            let decided =
                decoded.iter().any(|c| c.source == STEWARD && !c.record.ended && c.record.values[i].is_some());
            let agreed = match item.status {
                ReviewStatus::Open => true,
                ReviewStatus::Resolved => !decided,
                ReviewStatus::Agreed => false,
            };
            if agreed {
                let item = ReviewItem { status: ReviewStatus::Agreed, ..item.clone() };
                writer.put_review(self.registry, id.as_bytes(), *field, &item, Some(bytes), self.load_id)?;
            }
        }
        Ok(())
    }
}
