//! Records' uids in the index, and the documents of a set of them (deletes, and queries
//! restricted to records found elsewhere: `Filter::Keys`).
//!
//! A document's uid (its registry and packed key, `super::uid`) is kept in one place: a
//! dictionary-encoded fast column (a sorted dictionary of the segment's uids, and each
//! document's ordinal in it).
//! A hit reads its uid there; a set of uids is looked up in each segment's dictionary, and
//! the ordinals found are checked where a segment written in uid order holds them (ordinal
//! `o` at document `o`), or else the segment's ordinals are scanned once. Before, the uid was an indexed term
//! (for deletes) *and* a stored value (for hits): rebuilding the full-text index of the 2M
//! extracts took 27.4 and 25.3 s against 23.3 and 23.1 s, and the index was 260 against 216
//! MiB (ARCHITECTURE, *Decisions*).

use crate::partition_point;
use std::fmt;
use std::sync::Arc;
use tantivy::columnar::{BytesColumn, Cardinality, Dictionary};
use tantivy::query::{BitSetDocSet, ConstScorer, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{BitSet, DocAddress, DocId, DocSet, Score, SegmentReader, TERMINATED, TantivyError};

/// The name of the uid column. `_v2`: uids hold their keys packed (`super::uid`); an index
/// written before, with `{registry}:{key}` as text, no longer matches the schema and is
/// rebuilt from the store at the next start.
pub(super) const UID: &str = "uid_v2";

/// The uid of a document, read from its segment's column (`columns`, by segment); `false` for
/// a document without.
pub(super) fn uid_of(columns: &[Option<BytesColumn>], at: DocAddress, buf: &mut Vec<u8>) -> tantivy::Result<bool> {
    buf.clear();
    let Some(column) = columns.get(at.segment_ord as usize).and_then(Option::as_ref) else {
        return Ok(false);
    };
    match column.term_ords(at.doc_id).next() {
        Some(ord) => Ok(column.ord_to_bytes(ord, buf)?),
        None => Ok(false),
    }
}

/// Uids, sorted and distinct, in one buffer (a delete of millions holds no allocation each).
struct Sorted {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Sorted {
    fn new(mut uids: Vec<Vec<u8>>) -> Sorted {
        if !uids.is_sorted() {
            uids.sort_unstable();
        }
        uids.dedup();
        let mut sorted = Sorted { bytes: Vec::with_capacity(uids.iter().map(Vec::len).sum()), ends: Vec::new() };
        sorted.ends.reserve_exact(uids.len());
        for uid in uids {
            sorted.bytes.extend_from_slice(&uid);
            sorted.ends.push(sorted.bytes.len());
        }
        sorted
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The positions of the uids within `first..=last`.
    fn within(&self, first: &[u8], last: &[u8]) -> std::ops::Range<usize> {
        let lo = partition_point(self.len(), |i| self.get(i) < first);
        let hi = partition_point(self.len(), |i| self.get(i) <= last);
        lo..hi.max(lo)
    }
}

/// The documents of some uids: a query for [`tantivy::IndexWriter::delete_query`].
#[derive(Clone)]
pub(super) struct UidSet(Arc<Sorted>);

impl fmt::Debug for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UidSet").field("uids", &self.0.len()).finish()
    }
}

impl UidSet {
    pub(super) fn new(uids: Vec<Vec<u8>>) -> UidSet {
        UidSet(Arc::new(Sorted::new(uids)))
    }
}

impl Query for UidSet {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

/// A lookup per uid costs a partial decode of one dictionary block; past this many uids per
/// term of a segment, one pass over the dictionary's terms within the uids' range is cheaper. Measured on one segment
/// of 2M uids: 1.4 µs a lookup, 19.5 ns a term of a pass (39 ms), so the two cost the same
/// at about one uid per 72 terms.
const STREAM_WHEN_TERMS_PER_UID_UNDER: usize = 64;

impl UidSet {
    /// The ordinals, in `dict`, of the uids it holds, ascending (`None`: none of them).
    fn ordinals(&self, dict: &Dictionary) -> tantivy::Result<Option<Vec<u32>>> {
        let terms = dict.num_terms();
        if terms == 0 {
            return Ok(None);
        }
        let (mut first, mut last) = (Vec::new(), Vec::new());
        dict.ord_to_term(0, &mut first)?;
        dict.ord_to_term(terms as u64 - 1, &mut last)?;
        let range = self.0.within(&first, &last);
        if range.is_empty() {
            return Ok(None);
        }
        let mut wanted = Vec::new();
        if range.len() * STREAM_WHEN_TERMS_PER_UID_UNDER >= terms {
            let (low, high) = (self.0.get(range.start), self.0.get(range.end - 1));
            let mut stream = dict.range().ge(low).le(high).into_stream()?;
            let mut i = range.start;
            while i < range.end && stream.advance() {
                let term = stream.key();
                while i < range.end && self.0.get(i) < term {
                    i += 1;
                }
                if i < range.end && self.0.get(i) == term {
                    wanted.push(stream.term_ord() as u32);
                    i += 1;
                }
            }
        } else {
            for i in range {
                if let Some(ord) = dict.term_ord(self.0.get(i))? {
                    wanted.push(ord as u32);
                }
            }
        }
        Ok((!wanted.is_empty()).then_some(wanted))
    }

    /// The documents of a segment whose ordinal is `wanted` (ascending). A segment whose
    /// documents were added in uid order (a bulk build feeds each registry in key order, and
    /// each indexing thread takes its documents in that order), with one distinct uid each,
    /// holds ordinal `o` at document `o`: each wanted ordinal is checked there, one read. Any
    /// other segment is read whole, one pass over its ordinals (2.4 ns a document).
    fn documents(column: &BytesColumn, wanted: Vec<u32>, max_doc: DocId) -> Box<dyn DocSet> {
        let ords = column.ords();
        let full = ords.get_cardinality() == Cardinality::Full;
        if one_uid_a_document(column, max_doc) {
            // Every document has one uid and every uid one document: a permutation, so a
            // document that holds ordinal `o` is the only one.
            if wanted.iter().all(|&o| o < max_doc && ords.values.get_val(o) == o as u64) {
                return Box::new(Listed { docs: wanted, at: 0 });
            }
        }
        let mut docs = BitSet::with_max_value(max_doc);
        let mut set = BitSet::with_max_value(column.dictionary().num_terms().max(1) as u32);
        for &o in &wanted {
            set.insert(o);
        }
        let wanted = set;
        if full {
            let mut buf = vec![0u64; 4096];
            let mut start = 0;
            while start < max_doc {
                let n = (max_doc - start).min(buf.len() as u32) as usize;
                ords.values.get_range(start as u64, &mut buf[..n]);
                for (i, &ord) in buf[..n].iter().enumerate() {
                    if wanted.contains(ord as u32) {
                        docs.insert(start + i as u32);
                    }
                }
                start += n as u32;
            }
        } else {
            for doc in 0..max_doc {
                if ords.values_for_doc(doc).any(|ord| wanted.contains(ord as u32)) {
                    docs.insert(doc);
                }
            }
        }
        Box::new(BitSetDocSet::from(docs))
    }
}

/// Whether every document of a segment has one uid and every uid one document: its
/// ordinals are then a permutation of its documents.
fn one_uid_a_document(column: &BytesColumn, max_doc: DocId) -> bool {
    column.ords().get_cardinality() == Cardinality::Full && column.dictionary().num_terms() == max_doc as usize
}

/// Whether a segment holds ordinal `o` at document `o` for every document: what a bulk build
/// writes (each registry fed in key order), and what lets [`UidSet`] check the ordinals it
/// wants in place. In any other segment (merged ones, mostly) it reads every ordinal.
pub(super) fn in_uid_order(column: &BytesColumn, max_doc: DocId) -> bool {
    if !one_uid_a_document(column, max_doc) {
        return false;
    }
    let ords = column.ords();
    let mut buf = vec![0u64; 4096];
    let mut start = 0;
    while start < max_doc {
        let n = (max_doc - start).min(buf.len() as u32) as usize;
        ords.values.get_range(start as u64, &mut buf[..n]);
        if buf[..n].iter().enumerate().any(|(i, &o)| o != u64::from(start) + i as u64) {
            return false;
        }
        start += n as u32;
    }
    true
}

/// Documents listed in ascending order: what a lookup in a segment in uid order finds. A
/// reference filter finds a handful, so no bit set of the whole segment is made for them.
struct Listed {
    docs: Vec<DocId>,
    at: usize,
}

impl DocSet for Listed {
    fn advance(&mut self) -> DocId {
        self.at = (self.at + 1).min(self.docs.len());
        self.doc()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.at += self.docs[self.at..].partition_point(|&d| d < target);
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        (self.docs.len() - self.at) as u32
    }
}

impl Weight for UidSet {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let Some(column) = reader.fast_fields().bytes(UID)? else {
            return Ok(Box::new(EmptyScorer));
        };
        let Some(wanted) = self.ordinals(column.dictionary())? else {
            return Ok(Box::new(EmptyScorer));
        };
        Ok(Box::new(ConstScorer::new(Self::documents(&column, wanted, reader.max_doc()), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) == doc {
            Ok(Explanation::new("one of the uids", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!("document {doc} has none of the uids")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::text::{Grams, SearchQuery, TextField, TextIndex, TextSpec, WriterOptions};
    use std::collections::BTreeSet;

    /// An empty index of one text field, `r.name`.
    fn names_index() -> (tempfile::TempDir, TextIndex) {
        let dir = tempfile::tempdir().unwrap();
        let spec = TextSpec {
            text: vec![TextField { name: "r.name".into(), grams: Grams::Bi, norms: false }],
            ..TextSpec::default()
        };
        let index = TextIndex::open(dir.path(), &spec).unwrap();
        (dir, index)
    }

    fn keys_of(index: &TextIndex, registry: u8) -> BTreeSet<String> {
        let q = SearchQuery { registries: vec![registry], limit: 100_000, ..SearchQuery::default() };
        index.search(&q).unwrap().hits.into_iter().map(|h| h.key).collect()
    }

    /// A filter by keys finds exactly their documents: in a segment written in uid order (an
    /// ordinal read where its document must be), in one written out of order, and in one
    /// holding a uid twice (a document deleted and added again: a pass over its ordinals);
    /// never a deleted document, nor the same key in another registry.
    #[test]
    fn keys_find_their_documents_in_segments_in_uid_order_or_not() {
        use crate::text::{Filter, Match};
        let (dir, index) = names_index();
        let name = index.field("r.name").unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        let add = |w: &mut crate::text::TextWriter, registry: u8, i: u32, text: &str| {
            let mut doc = w.doc(registry, &format!("K{i:05}"), false);
            doc.text(name, text);
            w.add(doc).unwrap();
        };
        for i in 0..3000 {
            add(&mut w, 1, i, "中山路");
        }
        add(&mut w, 2, 7, "中山路"); // registry 2 sorts after every uid of registry 1
        w.commit("").unwrap();
        for i in (3000..4000).rev() {
            add(&mut w, 1, i, "中山路");
        }
        w.commit("").unwrap();
        for i in 4000..4100 {
            add(&mut w, 1, i, "中山路");
        }
        w.delete_many(1, &["K04050"]).unwrap();
        add(&mut w, 1, 4050, "湖滨路"); // the same segment: 101 documents, 100 uids
        w.commit("").unwrap();
        w.delete_many(1, &["K00008"]).unwrap();
        w.commit("").unwrap();
        index.reload().unwrap();
        let find = |keys: &[&str], text: Option<&str>| -> BTreeSet<(u8, String)> {
            let q = SearchQuery {
                matches: text.map(|t| Match { text: t.into(), fields: vec!["r.name".into()] }).into_iter().collect(),
                filters: vec![Filter::Keys { registry: 1, keys: keys.iter().map(|k| k.to_string()).collect() }],
                limit: 100,
                ..SearchQuery::default()
            };
            index.search(&q).unwrap().hits.into_iter().map(|h| (h.registry, h.key)).collect()
        };
        let wanted = ["K00007", "K02999", "K00000", "K03500", "K04050", "K04099", "K00008", "absent"];
        let found = |keys: &[&str]| keys.iter().map(|k| (1u8, k.to_string())).collect::<BTreeSet<_>>();
        assert_eq!(find(&wanted, None), found(&["K00000", "K00007", "K02999", "K03500", "K04050", "K04099"]));
        assert_eq!(find(&wanted, Some("中山路")), found(&["K00000", "K00007", "K02999", "K03500", "K04099"]));
        assert_eq!(find(&wanted, Some("湖滨路")), found(&["K04050"]));
        assert_eq!(find(&["K00008"], None), BTreeSet::new(), "deleted");
        w.finish().unwrap();
        let mut shapes: Vec<(u32, bool)> =
            crate::text::segment_shapes(dir.path()).unwrap().iter().map(|s| (s.docs, s.in_uid_order)).collect();
        shapes.sort_unstable();
        // Live documents: the first segment less its deleted one, the reversed one, and the one
        // holding a uid twice less its deleted copy.
        assert_eq!(shapes, [(100, false), (1000, false), (3000, true)]);
    }

    /// Deletes by uid remove exactly the named records' documents, in every segment, whether
    /// the keys are looked up one by one (few) or by one pass over a dictionary (many); the same
    /// key in another registry, absent keys, and a document re-added after its delete stay.
    #[test]
    fn deletes_remove_exactly_the_named_records() {
        let (_dir, index) = names_index();
        let name = index.field("r.name").unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        let key = |i: u32| format!("K{:05}", i * 7 % 5000);
        for i in 0..5000 {
            for registry in [1, 2] {
                let mut doc = w.doc(registry, &key(i), false);
                doc.text(name, "中山路");
                w.add(doc).unwrap();
            }
            if i % 1500 == 1499 {
                w.commit("").unwrap(); // several segments
            }
        }
        w.commit("").unwrap();
        index.reload().unwrap();
        let mut expected: BTreeSet<String> = (0..5000).map(key).collect();
        assert_eq!(keys_of(&index, 1), expected);

        // Few keys (a lookup each), some absent, one re-added in the same commit.
        let few = ["K00003", "K04999", "K00100", "absent", "K00100"];
        w.delete_many(1, &few).unwrap();
        let mut doc = w.doc(1, "K00003", false);
        doc.text(name, "湖滨路");
        w.add(doc).unwrap();
        w.commit("").unwrap();
        index.reload().unwrap();
        expected.remove("K04999");
        expected.remove("K00100");
        assert_eq!(keys_of(&index, 1), expected);
        let moved = SearchQuery {
            matches: vec![crate::text::Match { text: "湖滨路".into(), fields: vec!["r.name".into()] }],
            limit: 10,
            ..SearchQuery::default()
        };
        let hits = index.search(&moved).unwrap().hits;
        assert_eq!(hits.iter().map(|h| (h.registry, h.key.as_str())).collect::<Vec<_>>(), [(1, "K00003")]);

        // Many keys (a pass over each dictionary), unsorted.
        let many: Vec<String> = (0..5000).rev().filter(|i| i % 3 != 0).map(|i| format!("K{i:05}")).collect();
        w.delete_many(1, &many).unwrap();
        w.commit("").unwrap();
        index.reload().unwrap();
        for k in &many {
            expected.remove(k);
        }
        assert_eq!(keys_of(&index, 1), expected);
        assert_eq!(keys_of(&index, 2).len(), 5000, "the other registry keeps its documents");
        w.finish().unwrap();
    }
}
