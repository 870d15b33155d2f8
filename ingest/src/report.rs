//! The load report: what happened to every row.

use crate::reject::Reason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of one load. Invariant: `read == accepted + rejected`; every accepted row is one of
/// `inserted`, `updated`, `unchanged` or `duplicates` (an identical repeat of a key in the
/// same extract, counted once).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LoadReport {
    pub load_id: u64,
    pub registry: String,
    pub source: String,
    pub files: Vec<String>,
    pub mode: String,
    /// `bulk` (sorted SST files ingested into an empty registry) or `batch` (write batches).
    pub path: String,
    pub read: u64,
    pub accepted: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub duplicates: u64,
    pub ended: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub dangling_references: u64,
    /// Credit codes that fail their check but are Fujian pilot codes: loaded, flagged for review.
    pub flagged_for_review: u64,
    /// Rows whose record another source (or a steward) also supplies: their source's
    /// contribution was merged and the golden record recomputed (counted as updated or
    /// unchanged too).
    pub merged: u64,
    /// Identity conflicts between sources opened for review.
    pub review_items_opened: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Wall-clock seconds per stage: `read` (decode, parse, validate, encode, sort runs),
    /// `merge_write` (merge, resolve duplicates, write records and edges), `ingest`.
    pub stage_seconds: BTreeMap<String, f64>,
}

impl LoadReport {
    /// Adds the time since `since` to a stage and returns now.
    pub fn stage(&mut self, name: &str, since: std::time::Instant) -> std::time::Instant {
        let now = std::time::Instant::now();
        *self.stage_seconds.entry(name.to_string()).or_default() += (now - since).as_secs_f64();
        now
    }

    pub fn count_reject(&mut self, reason: Reason) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(reason.code().to_string()).or_default() += 1;
    }

    /// A short human summary for stderr.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {}: read {} accepted {} (inserted {}, updated {}, unchanged {}, duplicates {}) ended {} rejected {} dangling {} in {:.1}s ({:.0} rows/s, {} path)",
            self.registry,
            self.source,
            self.read,
            self.accepted,
            self.inserted,
            self.updated,
            self.unchanged,
            self.duplicates,
            self.ended,
            self.rejected,
            self.dangling_references,
            self.seconds,
            self.rows_per_second,
            self.path
        );
        for (reason, n) in &self.rejected_by_reason {
            s.push_str(&format!("\n  rejected {reason}: {n}"));
        }
        if self.merged > 0 {
            s.push_str(&format!("\n  merged with other sources: {}", self.merged));
        }
        if self.review_items_opened > 0 {
            s.push_str(&format!("\n  identity conflicts opened for review: {}", self.review_items_opened));
        }
        if self.flagged_for_review > 0 {
            s.push_str(&format!("\n  flagged for review: {}", self.flagged_for_review));
        }
        s
    }
}
