//! `jichu recompute` and `POST /v1/admin/recompute`: every golden record recomputed by the
//! survivorship rules as they are now, after the rules file changed. It runs as a load of the
//! source `recompute` (lineage, history and feed entries where a value changes, undone whole if
//! it fails), one per registry. Only records with kept contributions are visited: a record one
//! source supplies is that source's values under any rule.

use super::apply::{Written, write};
use super::golden::{Merged, Merger};
use crate::error::{Error, Result};
use crate::golden::Rules;
use crate::model::Registry;
use crate::store::{Store, Writer, cf};
use rocksdb::{IteratorMode, PrefixRange, ReadOptions};
use serde::Serialize;
use std::time::Instant;

/// The source recomputations write as.
pub const RECOMPUTE: &str = "recompute";

/// What recomputing one registry did.
#[derive(Clone, Debug, Serialize)]
pub struct Recomputed {
    pub load_id: u32,
    pub registry: String,
    /// Records in the registry.
    pub records: u64,
    /// Records with kept contributions (the ones recomputed).
    pub sourced: u64,
    /// Golden records whose value changed.
    pub changed: u64,
    pub review_items_opened: u64,
    pub seconds: f64,
    /// Records of the registry covered per second.
    pub records_per_second: f64,
}

/// Recomputes the golden records of `registries` by `rules`.
pub fn recompute(store: &Store, rules: &Rules, registries: &[Registry]) -> Result<Vec<Recomputed>> {
    let mut writer = store.writer();
    registries.iter().map(|r| recompute_with(&mut writer, rules, *r)).collect()
}

/// Recomputes one registry with the writer held.
pub fn recompute_with(writer: &mut Writer<'_>, rules: &Rules, registry: Registry) -> Result<Recomputed> {
    let started = Instant::now();
    let load_id = writer.begin_load(None, registry, RECOMPUTE, Vec::new(), RECOMPUTE)?;
    let merger = Merger {
        rules: rules.clone(),
        registry,
        load_id,
        source: RECOMPUTE.into(),
        opened: Default::default(),
        coding: writer.store().value_coding(),
    };
    match run(writer, &merger) {
        Ok((sourced, changed)) => {
            let records = writer.store().count(registry);
            let seconds = started.elapsed().as_secs_f64();
            let report = Recomputed {
                load_id,
                registry: registry.to_string(),
                records,
                sourced,
                changed,
                review_items_opened: merger.opened.get(),
                seconds,
                records_per_second: records as f64 / seconds.max(1e-9),
            };
            writer.finish_load(load_id, serde_json::to_value(&report).map_err(|e| Error::Codec(e.to_string()))?)?;
            tracing::info!(load_id, %registry, sourced, changed, seconds, "golden records recomputed");
            Ok(report)
        }
        Err(e) => {
            writer.undo(load_id, &format!("failed: {e}"))?;
            Err(e)
        }
    }
}

/// Visits every record with contributions, in key order: `(visited, changed)`.
fn run(writer: &mut Writer<'_>, merger: &Merger) -> Result<(u64, u64)> {
    let store = writer.store();
    let registry = merger.registry;
    let mut opts = ReadOptions::default();
    opts.set_iterate_range(PrefixRange([registry as u8]));
    opts.fill_cache(false);
    let it = store.db().iterator_cf_opt(store.cf(cf::CONTRIBUTIONS), opts, IteratorMode::Start);
    let (mut visited, mut changed) = (0, 0);
    for item in it {
        let (k, v) = item?;
        let len = usize::from(*k.get(1).ok_or_else(|| Error::Codec("contributions key".into()))?);
        let id = k.get(2..2 + len).ok_or_else(|| Error::Codec("contributions key".into()))?;
        let id = std::str::from_utf8(id).map_err(|_| Error::Codec("record key".into()))?;
        let Some(old) = store.reader().get_raw(registry, id)? else { continue };
        let contributions = crate::store::decode_contributions(&v, &old)?;
        visited += 1;
        if let Merged::Rewritten(golden) = merger.rewrite(writer, id, &contributions, Some(&v), &old)? {
            let written = Written { value: &golden.value, targets: &golden.targets() };
            write(writer, registry, id, written, Some(&old), merger.load_id)?;
            changed += 1;
        }
        if writer.pending() >= 4096 {
            writer.commit()?;
        }
    }
    writer.commit()?;
    Ok((visited, changed))
}
