//! Stage one of a load: read, map, validate and encode every row, in parallel.
//!
//! One thread reads CSV batches in file order; worker threads map and encode them; the
//! caller receives the outcomes batch by batch *in input order* (so rejects come out in
//! line order) and feeds the sorter. Channels are bounded, so memory stays bounded.

use super::payload;
use crate::error::{Error, Result};
use crate::model::Schema;
use crate::store::codec::{self, Header, ValueCoding};
use jichu_ingest::{RawRow, Reason, Reject, RowMapper, Source};
use std::collections::BTreeMap;
use std::sync::Arc;

const BATCH_ROWS: usize = 4096;

/// A row ready for the sorter: its key and its payload (link targets + encoded value).
#[derive(Debug)]
pub struct Prepared {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub line: u64,
    pub needs_review: bool,
}

#[derive(Debug)]
pub enum Outcome {
    Good(Prepared),
    Bad(Reject),
}

/// Turns a row's key into the registry's key (an old identifier into the record it names), or
/// says why it cannot.
pub type Resolve<'a> = dyn Fn(&str) -> std::result::Result<String, String> + Sync + 'a;

/// Maps, checks and encodes one raw row.
pub fn prepare(
    schema: &Schema,
    mapper: &RowMapper,
    load_id: u32,
    coding: ValueCoding,
    row: &RawRow,
    resolve: Option<&Resolve<'_>>,
) -> Outcome {
    let mut mapped = match mapper.map(row) {
        Ok(m) => m,
        Err(r) => return Outcome::Bad(r),
    };
    if let Some(resolve) = resolve {
        match resolve(&mapped.id) {
            Ok(id) => mapped.id = id,
            Err(message) => {
                let raw = mapper.raw_text(&row.record);
                return Outcome::Bad(Reject { line: row.line, reason: Reason::UnresolvedKey, message, raw, key: None });
            }
        }
    }
    if let Some(check) = schema.row_check
        && let Err((reason, message)) = check(&mut mapped)
    {
        let raw = mapper.raw_text(&row.record);
        return Outcome::Bad(Reject { line: row.line, reason, message, raw, key: Some(mapped.id) });
    }
    let targets: Vec<&str> =
        schema.links().map(|(i, _)| mapped.values[i].as_ref().and_then(|v| v.as_text()).unwrap_or("")).collect();
    let header = Header {
        load_id,
        ended: mapped.ended,
        needs_review: mapped.needs_review,
        effective_from: mapped.effective_from,
        sourced: false,
    };
    let value = codec::encode(header, &mapped.values, &mapped.extras, coding);
    Outcome::Good(Prepared {
        payload: payload::join(&targets, &value),
        key: mapped.id.into_bytes(),
        line: row.line,
        needs_review: mapped.needs_review,
    })
}

/// Reads every source, calling `on_batch(file index, outcomes)` in input order.
pub fn read_all(
    sources: Vec<(Source, Arc<RowMapper>)>,
    schema: &'static Schema,
    load_id: u32,
    coding: ValueCoding,
    threads: usize,
    resolve: Option<&Resolve<'_>>,
    mut on_batch: impl FnMut(usize, Vec<Outcome>) -> Result<()>,
) -> Result<()> {
    type Work = (u64, usize, Arc<RowMapper>, Vec<RawRow>);
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Work>(threads * 2);
    // Batches go back to the reader for reuse: their records keep their allocations.
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<RawRow>>(threads * 4);
    // Tickets bound how far reading runs ahead of the in-order consumer, so the re-ordering
    // buffer stays small even when one batch is slow.
    let ahead = threads.max(1) * 4;
    let (ticket_tx, ticket_rx) = crossbeam_channel::bounded::<()>(ahead);
    for _ in 0..ahead {
        let _ = ticket_tx.send(());
    }
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, usize, Vec<Outcome>)>(threads * 2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<()> {
            let mut seq = 0u64;
            for (file, (mut source, mapper)) in sources.into_iter().enumerate() {
                loop {
                    if ticket_rx.recv().is_err() {
                        return Ok(()); // the consumer is gone
                    }
                    let mut rows = spare_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH_ROWS));
                    if !source.next_batch(BATCH_ROWS, &mut rows)? {
                        break;
                    }
                    if work_tx.send((seq, file, mapper.clone(), rows)).is_err() {
                        return Ok(()); // the consumer stopped on an error of its own
                    }
                    seq += 1;
                }
            }
            Ok(())
        });
        for _ in 0..threads.max(1) {
            let (rx, tx, spare) = (work_rx.clone(), done_tx.clone(), spare_tx.clone());
            scope.spawn(move || {
                for (seq, file, mapper, rows) in rx {
                    let out = rows.iter().map(|r| prepare(schema, &mapper, load_id, coding, r, resolve)).collect();
                    let _ = spare.try_send(rows);
                    if tx.send((seq, file, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((work_rx, done_tx, spare_tx));
        let mut next = 0u64;
        let mut waiting = BTreeMap::new();
        let mut result = Ok(());
        let mut tickets = Some(ticket_tx);
        for (seq, file, out) in &done_rx {
            if result.is_err() {
                continue; // drain so that the workers can finish
            }
            waiting.insert(seq, (file, out));
            while let Some((file, out)) = waiting.remove(&next) {
                next += 1;
                if let Some(t) = &tickets {
                    let _ = t.send(());
                }
                if let Err(e) = on_batch(file, out) {
                    result = Err(e);
                    // No more tickets: the reader stops once those it holds are spent.
                    tickets = None;
                    break;
                }
            }
        }
        let read = reader.join().unwrap_or_else(|_| Err(Error::Internal("the reader thread panicked".into())));
        result.and(read)
    })
}
