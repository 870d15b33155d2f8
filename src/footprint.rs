//! What the data directory costs on disk, part by part: each column family of the store,
//! the store's other files (write-ahead log, manifest), the full-text index and the saved
//! spatial index, in bytes and bytes per record. `jichu stats` prints it and `jichu bench`
//! reports it, so that a change to a format is measured before it is argued for.

use crate::model::Registry;
use crate::store::Store;
use crate::store::codec::ValueCoding;
use serde::Serialize;
use std::path::Path;

/// One part of the data directory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Part {
    /// `store/citizens`, `store/other`, `full-text`, `spatial`…
    pub part: String,
    pub bytes: u64,
    pub bytes_per_record: f64,
}

/// The data directory's parts and their sum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    pub records: u64,
    pub store_bytes: u64,
    pub full_text_bytes: u64,
    pub spatial_bytes: u64,
    pub total_bytes: u64,
    pub bytes_per_record: f64,
    /// Every part with a byte on disk, largest first.
    pub parts: Vec<Part>,
    /// The full-text index field by field, largest first (empty when it cannot be read).
    pub full_text_fields: Vec<TextFieldPart>,
    /// The full-text index's segments, and how many are in uid order.
    pub full_text_segments: TextSegments,
    /// How the records are written: `compact` (format 2, grid coordinates), `grid` (format 1,
    /// a store created before the compact format) or `float` (format 1 with `f64` coordinates,
    /// a store created before the grid coding).
    pub value_coding: ValueCoding,
}

/// One field of the full-text index: what its terms, postings, norms and fast column cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TextFieldPart {
    /// `citizens.address`, `district`, `uid`…
    pub field: String,
    pub terms: u64,
    pub postings: u64,
    pub norms: u64,
    pub fast: u64,
    pub bytes_per_record: f64,
}

/// The full-text index's segments: a filter on records found elsewhere (a reference's
/// holders, a name's subjects) checks them in place in a segment in uid order (what bulk
/// builds write) and reads every uid of any other (merged ones, mostly).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TextSegments {
    pub segments: usize,
    pub in_uid_order: usize,
    /// Live documents in the segments that are not.
    pub documents_elsewhere: u64,
}

impl TextSegments {
    fn of(shapes: &[jichu_indexes::text::SegmentShape]) -> TextSegments {
        TextSegments {
            segments: shapes.len(),
            in_uid_order: shapes.iter().filter(|s| s.in_uid_order).count(),
            documents_elsewhere: shapes.iter().filter(|s| !s.in_uid_order).map(|s| u64::from(s.docs)).sum(),
        }
    }

    /// One line of Markdown (empty when there are no segments).
    pub fn markdown(&self) -> String {
        if self.segments == 0 {
            return String::new();
        }
        format!(
            "Full-text segments: {}, of which {} in uid order ({} documents in the others).\n",
            self.segments, self.in_uid_order, self.documents_elsewhere
        )
    }
}

/// Bytes of a file, or of every file under a folder.
pub fn dir_bytes(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| dir_bytes(&e.path())).sum())
            .unwrap_or(0),
        _ => 0,
    }
}

impl Footprint {
    /// Measures an open store and the indexes beside it in its data directory.
    pub fn measure(store: &Store) -> Footprint {
        let records: u64 = Registry::ALL.iter().map(|r| store.count(*r)).sum();
        let per = |bytes: u64| bytes as f64 / records.max(1) as f64;
        let store_bytes = dir_bytes(store.path());
        let full_text_bytes = dir_bytes(&crate::text::TextLayer::dir_of(store));
        let spatial_bytes = dir_bytes(&crate::spatial::SpatialIndex::dir_of(store));
        let mut parts: Vec<Part> = store
            .disk_bytes_by_column_family()
            .into_iter()
            .map(|(name, bytes)| Part { part: format!("store/{name}"), bytes, bytes_per_record: per(bytes) })
            .collect();
        let sst: u64 = parts.iter().map(|p| p.bytes).sum();
        let other = store_bytes.saturating_sub(sst);
        parts.push(Part { part: "store/other (log, manifest)".into(), bytes: other, bytes_per_record: per(other) });
        parts.push(Part { part: "full-text".into(), bytes: full_text_bytes, bytes_per_record: per(full_text_bytes) });
        parts.push(Part { part: "spatial".into(), bytes: spatial_bytes, bytes_per_record: per(spatial_bytes) });
        parts.retain(|p| p.bytes > 0);
        parts.sort_by_key(|p| std::cmp::Reverse(p.bytes));
        let total_bytes = store_bytes + full_text_bytes + spatial_bytes;
        let full_text_fields = of_text_index(store, "fields", jichu_indexes::text::space_by_field)
            .into_iter()
            .map(|f| TextFieldPart {
                bytes_per_record: per(f.total()),
                field: f.field,
                terms: f.terms,
                postings: f.postings,
                norms: f.norms,
                fast: f.fast,
            })
            .collect();
        Footprint {
            records,
            store_bytes,
            full_text_bytes,
            spatial_bytes,
            total_bytes,
            bytes_per_record: per(total_bytes),
            parts,
            full_text_fields,
            full_text_segments: TextSegments::of(&of_text_index(
                store,
                "segments",
                jichu_indexes::text::segment_shapes,
            )),
            value_coding: store.value_coding(),
        }
    }

    /// Markdown tables of the parts and of the full-text index's fields.
    pub fn markdown(&self) -> String {
        let mut s = parts_table(&self.parts, self.records, self.total_bytes);
        if self.value_coding == ValueCoding::Float {
            s.push_str(
                "\nThe records hold coordinates as f64 pairs (the store was created before the grid coding). \
                 Re-created (`jichu export`, then a load into an empty data directory, where their history starts \
                 again), they would take 6 bytes less a point and a polygon's vertices a step each (generated \
                 citizens' records a tenth smaller, parcels' a third), and a byte or two less a value in the \
                 compact value format.\n",
            );
        } else if self.value_coding == ValueCoding::Grid {
            s.push_str(
                "\nThe records are in value format 1 (the store was created before the compact format). \
                 Re-created (`jichu export`, then a load into an empty data directory, where their history starts \
                 again), they would take a byte or two less a value (generated citizens' records 3% smaller).\n",
            );
        }
        s.push('\n');
        s.push_str(&text_fields_table(&self.full_text_fields));
        s.push_str(&self.full_text_segments.markdown());
        s
    }
}

/// What `measure` reads of the full-text index (its fields' space, its segments), or none if
/// there is no index or it cannot be opened. It is opened as it is: an index of an older schema
/// is measured, not rebuilt (nor deleted).
fn of_text_index<T>(
    store: &Store,
    what: &str,
    measure: impl FnOnce(&Path) -> jichu_indexes::text::Result<Vec<T>>,
) -> Vec<T> {
    let dir = crate::text::TextLayer::dir_of(store);
    if !dir.join("meta.json").exists() {
        return Vec::new();
    }
    measure(&dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the full-text index's {what} could not be measured");
        Vec::new()
    })
}

/// The full-text index's fields as a Markdown table (empty when there are none).
pub fn text_fields_table(fields: &[TextFieldPart]) -> String {
    use std::fmt::Write;
    if fields.is_empty() {
        return String::new();
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut s = String::from(
        "| full-text field | terms MiB | postings MiB | norms MiB | fast MiB | bytes/record |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for f in fields {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            f.field,
            mib(f.terms),
            mib(f.postings),
            mib(f.norms),
            mib(f.fast),
            f.bytes_per_record
        );
    }
    s
}

/// The parts as a Markdown table, each with its share of `total_bytes`, and a total row.
pub fn parts_table(parts: &[Part], records: u64, total_bytes: u64) -> String {
    use std::fmt::Write;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut s = String::from("| part | MiB | bytes/record | share |\n|---|---:|---:|---:|\n");
    for p in parts {
        let share = 100.0 * p.bytes as f64 / total_bytes.max(1) as f64;
        let _ = writeln!(s, "| {} | {:.1} | {:.1} | {share:.1}% |", p.part, mib(p.bytes), p.bytes_per_record);
    }
    let per_record = total_bytes as f64 / records.max(1) as f64;
    let _ = writeln!(s, "| **all ({records} records)** | {:.1} | {per_record:.1} | 100% |", mib(total_bytes));
    s
}
