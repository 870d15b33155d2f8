//! The change feed as a caller may read it: every change after a position, in order, from
//! one published view (so a page never shows a change of a load not yet published), with the
//! caller's grants applied — registries it may read the feed of, its row filter, the key and
//! the changed fields' names as it may see them, and the record after the change masked as
//! its grant says.

use super::caller::{Caller, Shape};
use super::error::{QueryError, QueryResult};
use super::view::View;
use crate::access::Operation;
use crate::model::{FieldRule, Registry};
use crate::store::codec;
use crate::store::feed::{self, FeedEntry};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The most changes one page holds.
pub const MAX_LIMIT: usize = 10_000;
/// Entries read at most for one page, when filters skip most of them: the page then ends
/// early, and its `next` still moves past what was read.
const MAX_SCAN: usize = 200_000;

/// Which changes to read.
#[derive(Clone, Debug)]
pub struct ChangesQuery {
    /// Changes after this position (0: from the beginning).
    pub after: u64,
    /// One registry's changes only.
    pub registry: Option<Registry>,
    pub limit: usize,
    /// Each change with the record as it was after the change.
    pub include_record: bool,
}

/// One change, as the caller may see it.
#[derive(Debug, Serialize)]
pub struct Change {
    pub position: u64,
    pub registry: Registry,
    /// The record's key (masked, or absent, as the caller's grant on the key says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub change: &'static str,
    pub load_id: u32,
    pub source: Option<String>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// The fields whose values changed (those the caller may see); absent for an insert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_changed: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Value>,
}

/// A page of the feed.
#[derive(Debug, Serialize)]
pub struct Page {
    pub changes: Vec<Change>,
    /// The cursor to resume from: the last position this page read (past entries it skipped).
    pub next: String,
    /// The last position published: the page reached the end when `next` is this.
    pub last_position: u64,
}

/// A cursor from a client: a position.
pub fn cursor(raw: Option<&str>) -> QueryResult<u64> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| {
            QueryError::BadRequest(format!(
                "`{}` is not a feed cursor (a position, as `next` gives it)",
                super::records::clip(s)
            ))
        }),
    }
}

/// The shapes of the registries whose feed the caller reads: the one asked for (refused when
/// not granted), or every one granted the feed.
fn shapes(caller: &Caller, registry: Option<Registry>) -> QueryResult<BTreeMap<Registry, Shape>> {
    let mut shapes = BTreeMap::new();
    for r in Registry::ALL {
        if registry.is_some_and(|asked| asked != r) {
            continue;
        }
        match caller.shape(r, Operation::Changes, None::<[&str; 0]>, false) {
            Ok(s) => {
                shapes.insert(r, s);
            }
            Err(QueryError::NotGranted(_)) if registry.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    if shapes.is_empty() {
        return Err(QueryError::NotGranted("no registry's change feed is granted".into()));
    }
    Ok(shapes)
}

/// A page of changes after `q.after`.
pub fn changes(view: &View, caller: &Caller, q: &ChangesQuery) -> QueryResult<Page> {
    let shapes = shapes(caller, q.registry)?;
    let at = view.reader();
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut next = q.after;
    for (scanned, entry) in at.feed(q.after).enumerate() {
        let entry = entry?;
        // The view's feed ends where its state does.
        if entry.position > view.feed_last || scanned >= MAX_SCAN {
            break;
        }
        next = entry.position;
        let Some(shape) = shapes.get(&entry.registry) else { continue };
        if let Some(change) = render(view, caller, shape, &entry, q.include_record)? {
            out.push(change);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(Page { changes: out, next: next.to_string(), last_position: view.feed_last })
}

/// One entry as the caller may see it; None when its record is outside the caller's rows.
fn render(
    view: &View,
    caller: &Caller,
    shape: &Shape,
    entry: &FeedEntry,
    include_record: bool,
) -> QueryResult<Option<Change>> {
    let registry = entry.registry;
    let keyed_by_district = matches!(registry, Registry::Citizens | Registry::Entities | Registry::Parcels);
    let record = if include_record || (shape.rows.is_some() && !keyed_by_district) {
        let at = view.reader();
        match at.version_by(registry, &entry.key, entry.load_id)? {
            Some(v) => Some(codec::decode(registry, &entry.key, &v)?),
            None => None,
        }
    } else {
        None
    };
    let visible = match &record {
        Some(r) => shape.sees(r),
        None => shape.sees_key(&entry.key),
    };
    if !visible {
        return Ok(None);
    }
    let lineage = view.lineage(entry.load_id);
    let fields_changed = (entry.kind != feed::ChangeKind::Insert).then(|| {
        feed::field_names(registry, entry.fields)
            .filter(|(i, name)| match i {
                Some(_) => shape.rule(name) != FieldRule::Hidden,
                None => shape.access.as_ref().is_none_or(|a| a.extras != FieldRule::Hidden),
            })
            .map(|(_, name)| name)
            .collect()
    });
    let record = match (&record, include_record) {
        (Some(r), true) => {
            Some(serde_json::to_value(caller.render(view, shape, r)).map_err(|e| crate::Error::Codec(e.to_string()))?)
        }
        _ => None,
    };
    Ok(Some(Change {
        position: entry.position,
        registry,
        id: caller.render_key(shape, &entry.key),
        change: entry.kind.as_str(),
        load_id: entry.load_id,
        source: lineage.map(|l| l.source.clone()),
        recorded_at: lineage.and_then(|l| l.finished_at),
        fields_changed,
        record,
    }))
}
