//! Exports: a registry as one consistent state holds it — whole, or only the records changed
//! after a feed position, in their current state — as NDJSON (each line a record as the API
//! renders it) or CSV (the registry's canonical field names as headers, UTF-8; with the spec
//! [`csv_spec`] writes it re-loads with `jichu load` into an equal registry). Ended records are
//! included and marked. The cursor for the next delta is the state's last feed position.

use super::caller::{Caller, Shape};
use super::error::{QueryError, QueryResult};
use crate::access::Operation;
use crate::model::{FieldRule, Lineage, Record, Registry};
use crate::store::{Reader, codec};
use jichu_ingest::{FieldKind, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

/// Records read (and keys decoded) per multi-get of a delta export, and per batch a worker
/// renders in a whole one.
const BATCH: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = QueryError;
    fn from_str(s: &str) -> QueryResult<Format> {
        match s {
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            other => {
                Err(QueryError::BadRequest(format!("format is ndjson or csv, not `{}`", super::records::clip(other))))
            }
        }
    }
}

/// One consistent state to export from: a published view's, or a snapshot's (`jichu export`).
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub at: Reader<'a>,
    /// The finished loads of the state, by id.
    pub loads: &'a BTreeMap<u32, Arc<Lineage>>,
    /// The state's last feed position: the cursor for the next delta.
    pub feed_last: u64,
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportQuery {
    pub registry: Registry,
    /// Only the records changed after this feed position.
    pub since: Option<u64>,
    pub format: Format,
    /// Threads decoding and rendering a whole NDJSON export beside the calling thread, which
    /// scans and writes (so the order is the key order whatever the count); 0: the calling
    /// thread does everything.
    pub threads: usize,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    pub records: u64,
    /// The cursor for the next delta (`since`).
    pub cursor: u64,
}

/// The caller's shape for exporting a registry (the `export` operation).
pub fn shape(caller: &Caller, registry: Registry) -> QueryResult<Shape> {
    caller.shape(registry, Operation::Export, None::<[&str; 0]>, false)
}

/// The CSV columns of a registry's export, as the caller may see them: `id`, each visible
/// field (a point as `lon` and `lat`); `ended`, `effective_from` and the extras follow.
fn columns(shape: &Shape) -> Vec<(String, Option<usize>)> {
    let schema = shape.registry.schema();
    let mut out = Vec::new();
    if shape.rule("id") != FieldRule::Hidden {
        out.push(("id".to_string(), None));
    }
    for (i, f) in schema.fields.iter().enumerate() {
        if shape.rule(f.name) == FieldRule::Hidden {
            continue;
        }
        match f.kind {
            FieldKind::Point => {
                out.push(("lon".into(), Some(i)));
                out.push(("lat".into(), Some(i)));
            }
            _ => out.push((f.name.to_string(), Some(i))),
        }
    }
    out
}

/// A mapping spec that loads a CSV export of `registry` back (`jichu load --spec`): every
/// column mapped to its own name, the extra attributes kept, `ended` carried.
pub fn csv_spec(registry: Registry) -> String {
    let schema = registry.schema();
    let mut spec = format!(
        "# Written by `jichu export`: loads the CSV beside it into {registry}.\nregistry = \"{registry}\"\nsource = \"jichu export\"\nkeep_unmapped = true\nnull_values = [\"\"]\n# Pilot codes were accepted when first loaded; they stay flagged for review.\naccept_fujian_pilot_codes = true\n\n[columns]\nid = \"id\"\nended = \"ended\"\neffective_from = \"effective_from\"\n"
    );
    for f in schema.fields {
        match f.kind {
            FieldKind::Point => spec.push_str("lon = \"lon\"\nlat = \"lat\"\n"),
            _ => spec.push_str(&format!("{0} = \"{0}\"\n", f.name)),
        }
    }
    spec
}

/// The keys to export, in key order: every record's, or those changed after `since`.
fn keys_since(src: Source<'_>, registry: Registry, since: u64) -> QueryResult<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for entry in src.at.feed(since) {
        let entry = entry?;
        if entry.position > src.feed_last {
            break;
        }
        if entry.registry == registry {
            keys.insert(entry.key);
        }
    }
    Ok(keys)
}

/// Writes the export to `out`.
pub fn export(
    src: Source<'_>,
    caller: &Caller,
    shape: &Shape,
    q: &ExportQuery,
    out: &mut dyn Write,
) -> QueryResult<Exported> {
    let registry = q.registry;
    let mut sink = Sink::new(q.format, shape, out);
    let mut n = 0u64;
    let emit = |record: &Record, sink: &mut Sink<'_>| -> QueryResult<u64> {
        if !shape.sees(record) {
            return Ok(0);
        }
        sink.write(caller, src.loads.get(&record.load_id).map(|l| &**l), shape, record)?;
        Ok(1)
    };
    match q.since {
        None if q.format == Format::Ndjson && q.threads > 0 => {
            let Sink::Ndjson { out, .. } = &mut sink else { unreachable!("an NDJSON sink") };
            n = ndjson_in_parallel(src, caller, shape, registry, q.threads, &mut **out)?;
        }
        None => {
            if q.format == Format::Csv {
                sink.extras(extras_keys(src, registry)?);
            }
            for item in src.at.scan(registry) {
                let (k, v) = item?;
                let id = std::str::from_utf8(&k).map_err(|_| crate::Error::Codec("record key".into()))?;
                n += emit(&codec::decode(registry, id, &v)?, &mut sink)?;
            }
        }
        Some(since) => {
            let keys: Vec<String> = keys_since(src, registry, since)?.into_iter().collect();
            let mut records = Vec::with_capacity(keys.len().min(BATCH));
            for chunk in keys.chunks(BATCH) {
                records.extend(src.at.get_many(registry, chunk)?.into_iter().flatten());
            }
            if q.format == Format::Csv {
                sink.extras(records.iter().flat_map(|r| r.extras.iter().map(|(k, _)| k.clone())).collect());
            }
            for r in &records {
                n += emit(r, &mut sink)?;
            }
        }
    }
    sink.finish(src.feed_last)?;
    Ok(Exported { records: n, cursor: src.feed_last })
}

/// A whole registry as NDJSON, decoded and rendered by `threads` workers: the scan hands
/// batches out in turn and takes the rendered ones back in the same turn, so they are written
/// in key order; at most two batches a worker are in flight, so memory stays bounded.
fn ndjson_in_parallel(
    src: Source<'_>,
    caller: &Caller,
    shape: &Shape,
    registry: Registry,
    threads: usize,
    out: &mut dyn Write,
) -> QueryResult<u64> {
    use std::sync::mpsc::{Receiver, sync_channel};
    type Rendered = QueryResult<(Vec<u8>, u64)>;
    let render = |batch: Vec<crate::store::KeyValue>| -> Rendered {
        let mut bytes = Vec::with_capacity(batch.len() * 512);
        let mut n = 0;
        for (k, v) in batch {
            let id = std::str::from_utf8(&k).map_err(|_| crate::Error::Codec("record key".into()))?;
            let record = codec::decode(registry, id, &v)?;
            if shape.sees(&record) {
                let lineage = src.loads.get(&record.load_id).map(|l| &**l);
                serde_json::to_writer(&mut bytes, &caller.render_in(lineage, shape, &record))
                    .map_err(|e| crate::Error::Codec(e.to_string()))?;
                bytes.push(b'\n');
                n += 1;
            }
        }
        Ok((bytes, n))
    };
    std::thread::scope(|scope| {
        let (mut work, mut done) = (Vec::new(), Vec::<Receiver<Rendered>>::new());
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Vec<crate::store::KeyValue>>(2);
            let (rtx, rrx) = sync_channel::<Rendered>(2);
            scope.spawn(move || {
                for batch in rx {
                    if rtx.send(render(batch)).is_err() {
                        break;
                    }
                }
            });
            work.push(tx);
            done.push(rrx);
        }
        let (mut sent, mut received, mut n) = (0usize, 0usize, 0u64);
        let mut take = |received: &mut usize| -> QueryResult<()> {
            let (bytes, count) = done[*received % threads].recv().map_err(|_| worker_gone())??;
            out.write_all(&bytes).map_err(io)?;
            n += count;
            *received += 1;
            Ok(())
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut items = src.at.scan(registry);
        loop {
            let item = items.next().transpose()?;
            let last = item.is_none();
            batch.extend(item);
            if batch.len() == BATCH || (last && !batch.is_empty()) {
                if sent - received == 2 * threads {
                    take(&mut received)?;
                }
                work[sent % threads]
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .map_err(|_| worker_gone())?;
                sent += 1;
            }
            if last {
                break;
            }
        }
        drop(work);
        while received < sent {
            take(&mut received)?;
        }
        Ok(n)
    })
}

fn worker_gone() -> QueryError {
    QueryError::Internal(crate::Error::Internal("an export worker stopped".into()))
}

/// The names of the extra attributes any record of a registry has (a CSV's extra columns).
fn extras_keys(src: Source<'_>, registry: Registry) -> QueryResult<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for item in src.at.scan(registry) {
        let (k, v) = item?;
        let id = std::str::from_utf8(&k).map_err(|_| crate::Error::Codec("record key".into()))?;
        keys.extend(codec::decode(registry, id, &v)?.extras.into_iter().map(|(k, _)| k));
    }
    Ok(keys)
}

fn io(e: std::io::Error) -> QueryError {
    QueryError::Internal(crate::Error::Internal(format!("writing the export: {e}")))
}

/// Where records go, in their format.
enum Sink<'a> {
    Ndjson {
        out: &'a mut dyn Write,
        line: Vec<u8>,
    },
    Csv {
        out: Box<csv::Writer<&'a mut dyn Write>>,
        columns: Vec<(String, Option<usize>)>,
        extras: Vec<String>,
        started: bool,
    },
}

impl<'a> Sink<'a> {
    fn new(format: Format, shape: &Shape, out: &'a mut dyn Write) -> Sink<'a> {
        match format {
            Format::Ndjson => Sink::Ndjson { out, line: Vec::with_capacity(1024) },
            Format::Csv => Sink::Csv {
                out: Box::new(csv::Writer::from_writer(out)),
                columns: columns(shape),
                extras: Vec::new(),
                started: false,
            },
        }
    }

    /// The extra columns of a CSV (the caller's grant on extras decides whether they appear).
    fn extras(&mut self, keys: BTreeSet<String>) {
        if let Sink::Csv { extras, .. } = self {
            *extras = keys.into_iter().collect();
        }
    }

    fn write(&mut self, caller: &Caller, lineage: Option<&Lineage>, shape: &Shape, record: &Record) -> QueryResult<()> {
        match self {
            Sink::Ndjson { out, line } => {
                // A line at a time: one write per record, not one per token.
                line.clear();
                serde_json::to_writer(&mut *line, &caller.render_in(lineage, shape, record))
                    .map_err(|e| crate::Error::Codec(e.to_string()))?;
                line.push(b'\n');
                out.write_all(line).map_err(io)
            }
            Sink::Csv { out, columns, extras, started } => {
                let show_extras = shape.access.as_ref().is_none_or(|a| a.extras != FieldRule::Hidden);
                if !*started {
                    out.write_record(header(columns, if show_extras { extras } else { &[] }))
                        .map_err(|e| io(e.into()))?;
                    *started = true;
                }
                // Rendered once, so the masks and the audit are those of every other answer.
                let rendered = serde_json::to_value(caller.render_in(lineage, shape, record))
                    .map_err(|e| crate::Error::Codec(e.to_string()))?;
                let mut row: Vec<String> = Vec::with_capacity(columns.len() + 2 + extras.len());
                for (name, field) in columns.iter() {
                    row.push(cell(record, shape, name, *field, &rendered));
                }
                row.push(record.ended.to_string());
                row.push(record.effective_from.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default());
                if show_extras {
                    for k in extras.iter() {
                        let v = rendered["extras"][k.as_str()].as_str().unwrap_or("");
                        row.push(v.to_string());
                    }
                }
                out.write_record(&row).map_err(|e| io(e.into()))
            }
        }
    }

    fn finish(self, cursor: u64) -> QueryResult<()> {
        match self {
            Sink::Ndjson { out, .. } => {
                // The last line: the cursor for the next delta.
                writeln!(out, "{}", serde_json::json!({ "next": cursor.to_string() })).map_err(io)?;
                out.flush().map_err(io)
            }
            Sink::Csv { mut out, started, columns, .. } => {
                if !started {
                    out.write_record(header(&columns, &[])).map_err(|e| io(e.into()))?;
                }
                out.flush().map_err(io)
            }
        }
    }
}

/// A CSV's header: the columns, `ended`, `effective_from`, the extra attributes.
fn header<'a>(columns: &'a [(String, Option<usize>)], extras: &'a [String]) -> Vec<&'a str> {
    let mut header: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    header.extend(["ended", "effective_from"]);
    header.extend(extras.iter().map(String::as_str));
    header
}

/// One CSV cell: a full value in the form the loader reads back (dates ISO, no end as `长期`,
/// geometry as WKT, a point as its two coordinates), a masked one as the API masks it.
fn cell(record: &Record, shape: &Shape, name: &str, field: Option<usize>, rendered: &serde_json::Value) -> String {
    let Some(i) = field else {
        // The key.
        return rendered["id"].as_str().unwrap_or_default().to_string();
    };
    let field_name = record.registry.schema().fields[i].name;
    if shape.rule(field_name) == FieldRule::Masked {
        let shown = &rendered[field_name];
        // A masked point is rounded, each coordinate apart.
        let shown = if matches!(name, "lon" | "lat") { &shown[name] } else { shown };
        return match shown {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
    }
    match &record.values[i] {
        None => String::new(),
        Some(Value::Text(s)) => s.clone(),
        Some(v @ Value::Date(d)) => {
            if v.is_open_end() {
                "长期".into()
            } else {
                d.format("%Y-%m-%d").to_string()
            }
        }
        Some(Value::Decimal(d)) => d.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Point(p)) => {
            if name == "lon" {
                p.x().to_string()
            } else {
                p.y().to_string()
            }
        }
        Some(Value::Geometry(g)) => wkt::ToWkt::wkt_string(g),
    }
}
