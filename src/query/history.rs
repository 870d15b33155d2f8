//! A record's kept versions, and reads as of a past moment.
//!
//! Versions are the current value and the values loads replaced (`history`), each written by
//! one load; ordered by the order their loads finished, a version holds from its load's
//! `finished_at` (recorded) until the next version's. The record as of a moment is the last
//! version recorded by then. Relations as of a moment are the current edges and the edges loads
//! removed (`unlinked`), each kept only if the record holding the reference held it then; the
//! parcels at a location then are the indexed ones and those changed since, each tested against
//! its polygon then.

use super::caller::{Caller, Shape};
use super::error::{QueryError, QueryResult};
use super::view::View;
use crate::model::{FieldRule, Record, RecordJson, Registry};
use crate::store::{Edge, codec, feed, held_edges};
use chrono::{DateTime, NaiveDate, Utc};
use geo::Intersects;
use jichu_ingest::Value;
use serde::Serialize;
use std::collections::BTreeSet;

/// The most versions one page of a history holds.
pub const MAX_VERSIONS: usize = 1000;

/// A past moment, checked against what the view holds: the loads recorded by then.
#[derive(Clone, Copy, Debug)]
pub struct AsOf {
    pub time: DateTime<Utc>,
    /// The finish order of the last load recorded at `time`.
    order: u64,
}

/// Where reads by key come from: the view's current state, or its state as of a past moment.
#[derive(Clone, Copy, Debug)]
pub enum At {
    Now,
    Then(AsOf),
}

/// Parses `as_of` (RFC 3339) and checks it: not in the future, not before the store held
/// anything, not older than the kept history (the store's retention).
pub fn as_of(view: &View, raw: &str) -> QueryResult<AsOf> {
    let time = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| {
            QueryError::BadRequest(format!(
                "as_of `{}` is not an RFC 3339 time such as 2026-11-20T08:00:00Z",
                super::records::clip(raw)
            ))
        })?
        .with_timezone(&Utc);
    let now = Utc::now();
    if time > now {
        return Err(QueryError::BadRequest(format!("as_of {time} is in the future (it is {now} now)")));
    }
    let first = view.loads.values().filter_map(|l| l.finished_at).min();
    match first {
        Some(first) if time >= first => {}
        Some(first) => {
            return Err(QueryError::BadRequest(format!(
                "as_of {time} is before the store held anything: its first load was recorded at {first}"
            )));
        }
        None => return Err(QueryError::BadRequest("the store holds no load yet: there is no past to read".into())),
    }
    if let Some(days) = view.snapshot.store().history_retention_days() {
        let horizon = now - chrono::Duration::days(i64::from(days));
        if time < horizon {
            return Err(QueryError::BadRequest(format!(
                "as_of {time} is older than the kept history: versions are kept {days} days (history_retention_days)"
            )));
        }
    }
    let order = view
        .loads
        .values()
        .filter(|l| l.finished_at.is_some_and(|f| f <= time))
        .filter_map(|l| l.finish_order())
        .max()
        .unwrap_or(0);
    Ok(AsOf { time, order })
}

/// One kept version of a record.
#[derive(Debug)]
struct Version {
    record: Record,
    /// Its load's place in the finish order.
    order: u64,
}

/// A record's kept versions in the view, oldest first, and whether the record's insertion is
/// among them (false: earlier versions were dropped by the retention).
fn versions(view: &View, registry: Registry, id: &str) -> QueryResult<(Vec<Version>, bool)> {
    let at = view.reader();
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut insert_marker = false;
    for (_, value) in at.replaced(registry, id)? {
        if value.is_empty() {
            insert_marker = true;
        } else {
            values.push(value);
        }
    }
    values.extend(at.get_raw(registry, id)?);
    let mut out: Vec<Version> = Vec::with_capacity(values.len());
    for value in values {
        let record = codec::decode(registry, id, &value)?;
        let Some(order) = view.lineage(record.load_id).and_then(|l| l.finish_order()) else { continue };
        out.push(Version { record, order });
    }
    out.sort_by_key(|v| v.order);
    out.dedup_by_key(|v| v.order);
    // The oldest kept version was an insert when the load that wrote it logged no change
    // (a bulk load, into an empty registry) or left an insert marker.
    let complete = match out.first() {
        Some(v) => insert_marker || !at.logged(v.record.load_id, registry, id)?,
        None => true,
    };
    Ok((out, complete))
}

impl At {
    /// One record by key at this state.
    pub fn get(self, view: &View, registry: Registry, id: &str) -> QueryResult<Option<Record>> {
        match self {
            At::Now => Ok(view.reader().get(registry, id)?),
            At::Then(t) => {
                let (versions, _) = versions(view, registry, id)?;
                Ok(versions.into_iter().rev().find(|v| v.order <= t.order).map(|v| v.record))
            }
        }
    }

    /// Many records by key, in the order asked.
    pub fn get_many(self, view: &View, registry: Registry, ids: &[String]) -> QueryResult<Vec<Option<Record>>> {
        match self {
            At::Now => Ok(view.reader().get_many(registry, ids)?),
            At::Then(_) => ids.iter().map(|id| self.get(view, registry, id)).collect(),
        }
    }

    /// Every edge of a record at this state: the references its version then held, and the
    /// records that referred to it then. `record` is the record at this state, as the caller
    /// read it ([`At::get`]).
    pub fn relations(
        self,
        view: &View,
        registry: Registry,
        id: &str,
        record: Option<&Record>,
    ) -> QueryResult<Vec<Edge>> {
        let at = view.reader();
        let At::Then(_) = self else { return Ok(at.relations_of(registry, id, record)?) };
        let mut out = record.map_or_else(Vec::new, held_edges);
        // Candidates: the records referring to it now, and those whose reference a load removed.
        let mut candidates = at.referring(registry, id)?;
        for e in at.unlinked(registry, id)? {
            if !candidates.contains(&e) {
                candidates.push(e);
            }
        }
        for e in candidates {
            // The edge existed then if the record holding the reference held it then.
            let Some((i, _)) = e.registry.schema().links().find(|(_, l)| l.reverse == e.relation) else { continue };
            let holder = self.get(view, e.registry, &e.id)?;
            if holder.is_some_and(|r| r.values[i].as_ref().and_then(Value::as_text) == Some(id)) {
                out.push(e);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The parcels containing a point at this state.
    pub fn parcels_at(self, view: &View, lon: f64, lat: f64) -> QueryResult<Vec<String>> {
        let indexed = super::spatial::parcels_at(view, lon, lat)?;
        let At::Then(t) = self else { return Ok(indexed) };
        // Candidates: those containing it now, and every parcel changed since.
        let mut candidates: BTreeSet<String> = indexed.into_iter().collect();
        let at = view.reader();
        for l in view.loads.values().filter(|l| l.finish_order().is_some_and(|o| o > t.order)) {
            for key in at.changed_keys(l.load_id, Registry::Parcels) {
                candidates.insert(String::from_utf8_lossy(&key?).into_owned());
            }
        }
        let point = geo::Point::new(lon, lat);
        let mut out = Vec::new();
        for key in candidates {
            let Some(parcel) = self.get(view, Registry::Parcels, &key)? else { continue };
            let contains = !parcel.ended
                && parcel.values.iter().flatten().any(|v| matches!(v, Value::Geometry(g) if g.intersects(&point)));
            if contains {
                out.push(key);
            }
        }
        Ok(out)
    }
}

/// One version as the caller may see it.
#[derive(Serialize)]
struct VersionJson<'a> {
    recorded_at: Option<DateTime<Utc>>,
    /// When the next version was recorded; absent for the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_until: Option<DateTime<Utc>>,
    /// When it took effect in the world, if its extract said.
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_from: Option<NaiveDate>,
    load_id: u32,
    source: Option<&'a str>,
    change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields_changed: Option<Vec<&'static str>>,
    record: RecordJson<'a>,
}

/// A page of a record's history, newest first.
#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub registry: Registry,
    pub id: String,
    pub versions: Vec<serde_json::Value>,
    /// Versions older than the retention are no longer kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub earlier_versions_dropped: bool,
    /// The cursor of the next (older) page.
    pub next: Option<String>,
}

/// A record's versions, newest first, from `cursor` (the `next` of the page before), as the
/// caller may see them; None when it has no version the caller may see.
pub fn history(
    view: &View,
    caller: &Caller,
    shape: &Shape,
    id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> QueryResult<Option<HistoryPage>> {
    let registry = shape.registry;
    let before = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => u64::MAX,
        Some(c) => {
            c.parse().map_err(|_| QueryError::BadRequest("not a history cursor (give `next` as it was)".into()))?
        }
    };
    let (versions, complete) = versions(view, registry, id)?;
    if versions.last().is_none_or(|v| !shape.sees(&v.record)) {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut next = None;
    for i in (0..versions.len()).rev().filter(|&i| versions[i].order < before) {
        let v = &versions[i];
        if !shape.sees(&v.record) {
            continue;
        }
        if out.len() == limit.clamp(1, MAX_VERSIONS) {
            next = Some(versions[i + 1].order.to_string());
            break;
        }
        let earlier = i.checked_sub(1).map(|p| &versions[p].record);
        let (change, fields) = match earlier {
            None if complete => (feed::ChangeKind::Insert, None),
            None => (feed::ChangeKind::Update, None),
            Some(p) => {
                let kind = match (p.ended, v.record.ended) {
                    (false, true) => feed::ChangeKind::End,
                    (true, false) => feed::ChangeKind::Reopen,
                    _ => feed::ChangeKind::Update,
                };
                let names = feed::field_names(registry, feed::changed_fields(p, &v.record))
                    .filter(|(i, name)| match i {
                        Some(_) => shape.rule(name) != FieldRule::Hidden,
                        None => shape.access.as_ref().is_none_or(|a| a.extras != FieldRule::Hidden),
                    })
                    .map(|(_, n)| n)
                    .collect();
                (kind, Some(names))
            }
        };
        let lineage = view.lineage(v.record.load_id);
        let json = VersionJson {
            recorded_at: lineage.and_then(|l| l.finished_at),
            recorded_until: versions
                .get(i + 1)
                .and_then(|n| view.lineage(n.record.load_id))
                .and_then(|l| l.finished_at),
            effective_from: v.record.effective_from,
            load_id: v.record.load_id,
            source: lineage.map(|l| l.source.as_str()),
            change: change.as_str(),
            fields_changed: fields,
            record: caller.render(view, shape, &v.record),
        };
        out.push(serde_json::to_value(json).map_err(|e| crate::Error::Codec(e.to_string()))?);
    }
    Ok(Some(HistoryPage { registry, id: id.to_string(), versions: out, earlier_versions_dropped: !complete, next }))
}
