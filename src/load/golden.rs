//! The golden path: a source's contribution merged into a record that another source (or a
//! steward) also supplies, the golden record recomputed from the contributions by the
//! survivorship rules, and identity conflicts opened for review — all in the load's batch.

use crate::error::Result;
use crate::golden::{self, Candidate, Cell, Conflict, Contribution, Rules, STEWARD};
use crate::model::{Registry, value_json};
use crate::store::codec::{self, Header};
use crate::store::{ReviewItem, ReviewStatus, SourceValue, Store, Writer};

/// Who merges: the rules, and the load writing as one source.
pub(crate) struct Merger {
    pub rules: Rules,
    pub registry: Registry,
    pub load_id: u32,
    pub source: String,
    /// Review items opened so far.
    pub opened: std::cell::Cell<u64>,
    /// How the store writes values.
    pub coding: codec::ValueCoding,
}

/// A golden record to write anew, with what its edges need.
pub(crate) struct Rewritten {
    pub value: Vec<u8>,
    /// Its references, in the order of the schema's links ("" for none).
    targets: Vec<String>,
}

impl Rewritten {
    /// Its references, in the order of the schema's links ("" for none).
    pub fn targets(&self) -> Vec<&str> {
        self.targets.iter().map(String::as_str).collect()
    }

    /// Reads references from the chosen encoded fields (the rest stay encoded).
    fn new(registry: Registry, value: Vec<u8>, fields: &[&[u8]]) -> Result<Rewritten> {
        let schema = registry.schema();
        let format = codec::format(&value);
        let field = |i: usize| fields.get(i).map_or(Ok(None), |f| codec::decode_field(format, f));
        let targets = schema
            .links()
            .map(|(i, _)| Ok(field(i)?.and_then(|v| v.as_text().map(str::to_string)).unwrap_or_default()))
            .collect::<Result<Vec<String>>>()?;
        Ok(Rewritten { value, targets })
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
            contributions[s].1 = codec::encode(header, &steward.values, &[], self.coding);
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
    ///
    /// The rules run on the encoded fields ([`golden::choose`]) and the golden value is
    /// assembled from the chosen ones: nothing is decoded unless sources disagree on what
    /// identifies the record, or their extras differ.
    pub fn rewrite(
        &self,
        writer: &mut Writer<'_>,
        id: &str,
        contributions: &[(String, Vec<u8>)],
        stored: Option<&[u8]>,
        old: &[u8],
    ) -> Result<Merged> {
        let store = writer.store();
        let parts = contributions.iter().map(|(_, v)| codec::fields(v)).collect::<Result<Vec<_>>>()?;
        let candidates: Vec<Candidate<'_, &[u8]>> = contributions
            .iter()
            .zip(&parts)
            .map(|((source, _), (header, cells, _))| Candidate {
                source,
                recency: store.lineage(header.load_id).and_then(|l| l.finish_order()).unwrap_or(u64::MAX),
                ended: header.ended,
                cells,
            })
            .collect();
        let choice = golden::choose(self.registry, &self.rules, &candidates);
        const NONE: &[u8] = &[0];
        let fields: Vec<&[u8]> = choice
            .provenance
            .iter()
            .enumerate()
            .map(|(field, p)| p.and_then(|p| parts[p.contribution].1.get(field).copied()).unwrap_or(NONE))
            .collect();
        // Extras: every candidate's, a newer value for the same name replacing an older one.
        let first_extras = choice.order.first().map_or(&[0u8][..], |&i| parts[i].2);
        let merged_extras;
        let extras = if choice.order.iter().all(|&i| parts[i].2 == first_extras) {
            first_extras
        } else {
            let mut all = std::collections::BTreeMap::new();
            for &i in choice.order.iter().rev() {
                all.extend(codec::decode_extras(parts[i].2)?);
            }
            merged_extras = codec::encode_extras(&all.into_iter().collect::<Vec<_>>());
            &merged_extras[..]
        };
        let conflicts = if golden::may_conflict(self.registry, &candidates, &choice) {
            let decoded = self.decode(store, id, contributions)?;
            golden::conflicts(self.registry, &decoded, &choice.order, choice.steward)
        } else {
            Vec::new()
        };
        // A record has review items to revisit only if it has a conflict now, was flagged
        // (an open item), or holds a steward's decision (a resolved one).
        let (old_header, _) = codec::split(old)?;
        let stewarded = candidates.iter().any(|c| c.source == STEWARD);
        if !conflicts.is_empty() || old_header.needs_review || stewarded {
            let decided: Vec<bool> = (0..fields.len())
                .map(|f| choice.steward.is_some_and(|s| candidates[s].cells.get(f).is_some_and(|c| c.present())))
                .collect();
            self.review(writer, id, &conflicts, &decided)?;
        }
        let flagged = choice.order.iter().any(|&i| parts[i].0.needs_review);
        let header = Header {
            load_id: self.load_id,
            ended: choice.ended,
            needs_review: flagged || !conflicts.is_empty(),
            effective_from: choice.order.iter().find_map(|&i| parts[i].0.effective_from),
            sourced: true,
        };
        let sources: Vec<String> = candidates.iter().filter(|c| !c.ended).map(|c| c.source.to_string()).collect();
        let value = codec::encode_golden_spans(header, &fields, extras, &sources, self.coding);
        let ((oh, ob), (nh, nb)) = (codec::split(old)?, codec::split(&value)?);
        let unstamped = |h: Header| Header { load_id: 0, ..h };
        let (merged, beside) = if ob == nb && unstamped(oh) == unstamped(nh) {
            (Merged::Contributed, codec::GoldenSpans::of(old)?)
        } else {
            let rewritten = Rewritten::new(self.registry, value, &fields)?;
            (Merged::Rewritten(rewritten), codec::GoldenSpans::from_parts(fields, extras))
        };
        let encoded = crate::store::encode_contributions(contributions, &parts, &beside)?;
        if stored != Some(encoded.as_slice()) {
            writer.put_contributions(self.registry, id.as_bytes(), &encoded, stored, self.load_id)?;
        }
        Ok(merged)
    }

    /// Opens (or refreshes) an item per identity conflict; an open item whose sources now agree,
    /// or a steward's decision its authority has come to agree with, is marked agreed.
    /// `decided`: per field, whether a steward's value stands for it.
    fn review(&self, writer: &mut Writer<'_>, id: &str, conflicts: &[Conflict], decided: &[bool]) -> Result<()> {
        let store = writer.store();
        let existing = store.reader().review_items_of(self.registry, id)?;
        let fields = self.registry.schema().fields;
        for conflict in conflicts {
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
            if conflicts.iter().any(|c| c.field == i) {
                continue;
            }
            let decided = decided.get(i).copied().unwrap_or(false);
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
