//! Queries: text matches across chosen fields, exact and date filters, ranked by BM25.
//!
//! A match's text is cut at white space into parts; each part is analysed into bigrams and
//! must match *within one* of the match's fields (all its tokens in that field), and every
//! part must match. So `张伟 湖滨南路` finds a person named 张伟 living on 湖滨南路, while
//! the bigrams of one part are never gathered from two different fields.

use super::analyzer::{self, Grams};
use super::{FieldId, Fields, Result, TextError, TextSearcher, uids};
use std::collections::HashMap;
use std::ops::Bound;
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EnableScoring, Occur, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, FieldType, IndexRecordOption};
use tantivy::{DocAddress, DocSet, Score, Searcher, TERMINATED, Term};

/// Text to find in some fields.
#[derive(Clone, Debug)]
pub struct Match {
    pub text: String,
    pub fields: Vec<String>,
}

/// A condition that narrows without scoring.
#[derive(Clone, Debug)]
pub enum Filter {
    /// The keyword field holds one of the values.
    AnyOf { field: String, values: Vec<String> },
    /// The date field (days from the common era) lies in `from..=to`.
    Dates { field: String, from: i32, to: i32 },
    /// The documents of these records of one registry: keys the caller found elsewhere (the
    /// service's relation edges), looked up in each segment's uid column.
    Keys { registry: u8, keys: Vec<String> },
}

#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// Registries (their bytes) to search; empty means all (or: the fields say which).
    pub registries: Vec<u8>,
    /// Every match must hold; with none, every document passing the filters matches.
    pub matches: Vec<Match>,
    pub filters: Vec<Filter>,
    /// Include documents flagged ended. Applies to queries without text matches only: the
    /// service keeps ended records' text in fields of their own, so that a text query needs
    /// no exclusion clause (which would cost tantivy its block-max WAND pruning).
    pub include_ended: bool,
    /// When not empty: only documents of these registries, each passing its filter if it has
    /// one — what a caller restricted to some rows of some registries may find.
    pub scopes: Vec<(u8, Option<Filter>)>,
    pub offset: usize,
    pub limit: usize,
    /// Count matches up to this many and stop there; `None` counts them all. An exact count
    /// walks every match — millions for a road's name at 100M citizens — where the top hits
    /// need not (Elasticsearch stops at 10,000 by default for the same reason).
    pub count_limit: Option<u64>,
}

/// One hit: the record's registry byte and key, and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub registry: u8,
    pub key: String,
    pub score: f32,
}

#[derive(Clone, Debug, Default)]
pub struct Hits {
    /// Matching documents: all of them, or `count_limit` when there were at least that many.
    pub total: u64,
    /// Whether `total` counts every match (false when it stopped at `count_limit`).
    pub total_exact: bool,
    pub hits: Vec<Hit>,
}

type BoxQuery = Box<dyn Query>;

fn filter(q: BoxQuery) -> (Occur, BoxQuery) {
    (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
}

fn term_query(field: FieldId, token: &str) -> BoxQuery {
    Box::new(TermQuery::new(field.term(token), IndexRecordOption::WithFreqs))
}

impl Fields {
    fn typed_field(&self, name: &str, want: fn(&FieldType) -> bool) -> Result<Field> {
        let field = self.schema.get_field(name).map_err(|_| TextError::UnknownField(name.into()))?;
        if want(self.schema.get_field_entry(field).field_type()) {
            Ok(field)
        } else {
            Err(TextError::UnknownField(name.into()))
        }
    }
}

fn is_keyword(t: &FieldType) -> bool {
    matches!(t, FieldType::Str(o) if o.get_indexing_options().is_some_and(|i| i.tokenizer() == "raw"))
        && !matches!(t, FieldType::Str(o) if o.is_stored())
}

fn is_date(t: &FieldType) -> bool {
    matches!(t, FieldType::I64(_))
}

fn filter_query(f: &Fields, fl: &Filter) -> Result<BoxQuery> {
    Ok(match fl {
        Filter::AnyOf { field, values } => {
            let field = f.typed_field(field, is_keyword)?;
            Box::new(TermSetQuery::new(values.iter().map(|v| Term::from_field_text(field, v))))
        }
        Filter::Keys { registry, keys } => {
            Box::new(uids::UidSet::new(keys.iter().map(|k| super::uid(*registry, k)).collect()))
        }
        Filter::Dates { field, from, to } => {
            let field = f.typed_field(field, is_date)?;
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(field, *from as i64)),
                Bound::Included(Term::from_field_i64(field, *to as i64)),
            ))
        }
    })
}

/// The query for one part of a match: all its tokens within one of `fields`.
fn part_query(fields: &[FieldId], tokens: &[String]) -> BoxQuery {
    let mut per_field: Vec<BoxQuery> = fields
        .iter()
        .map(|&f| -> BoxQuery {
            if tokens.len() == 1 {
                term_query(f, &tokens[0])
            } else {
                Box::new(BooleanQuery::intersection(tokens.iter().map(|t| term_query(f, t)).collect()))
            }
        })
        .collect();
    if per_field.len() == 1 { per_field.remove(0) } else { Box::new(BooleanQuery::union(per_field)) }
}

pub(super) fn run(s: &TextSearcher, q: &SearchQuery) -> Result<Hits> {
    let f = &*s.fields;
    let mut clauses: Vec<(Occur, BoxQuery)> = Vec::new();
    // The last part's fields and tokens: when it is the whole query, its top hits can be
    // found with pruning ([`top_over_fields`]).
    let mut last_part: Option<(Vec<FieldId>, Vec<String>)> = None;
    for m in &q.matches {
        let text_field = |name: &String| f.text.get(name).copied().ok_or_else(|| TextError::UnknownField(name.into()));
        let fields = m.fields.iter().map(text_field).collect::<Result<Vec<_>>>()?;
        let before = clauses.len();
        for part in m.text.split(|c: char| analyzer::fold(c).is_whitespace()) {
            let mut tokens = analyzer::tokens(part, Grams::Bi);
            tokens.sort_unstable();
            tokens.dedup();
            if !tokens.is_empty() && !fields.is_empty() {
                clauses.push((Occur::Must, part_query(&fields, &tokens)));
                last_part = Some((fields.clone(), tokens));
            }
        }
        if clauses.len() == before {
            return Err(TextError::EmptyQuery);
        }
    }
    if clauses.is_empty() {
        // Filters alone (the service decides whether it allows that).
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    match q.registries.as_slice() {
        [] => {}
        [r] => clauses.push(filter(Box::new(TermQuery::new(
            Term::from_field_u64(f.registry, *r as u64),
            IndexRecordOption::Basic,
        )))),
        rs => clauses
            .push(filter(Box::new(TermSetQuery::new(rs.iter().map(|r| Term::from_field_u64(f.registry, *r as u64)))))),
    }
    if !q.include_ended && q.matches.is_empty() {
        clauses.push((
            Occur::MustNot,
            Box::new(TermQuery::new(Term::from_field_u64(f.ended, 1), IndexRecordOption::Basic)),
        ));
    }
    if !q.scopes.is_empty() {
        let mut scopes = Vec::with_capacity(q.scopes.len());
        for (r, only) in &q.scopes {
            let registry: BoxQuery =
                Box::new(TermQuery::new(Term::from_field_u64(f.registry, *r as u64), IndexRecordOption::Basic));
            scopes.push(match only {
                None => registry,
                Some(fl) => Box::new(BooleanQuery::intersection(vec![registry, filter_query(f, fl)?])),
            });
        }
        let scope: BoxQuery = if scopes.len() == 1 { scopes.remove(0) } else { Box::new(BooleanQuery::union(scopes)) };
        clauses.push(filter(scope));
    }
    for fl in &q.filters {
        clauses.push(filter(filter_query(f, fl)?));
    }
    // A lone clause is searched as itself: tantivy prunes a term query or a term intersection
    // with block-max WAND, but scores every match of a boolean query wrapping one.
    let lone = clauses.len() == 1 && clauses[0].0 == Occur::Must;
    let query: BoxQuery = if lone { clauses.remove(0).1 } else { Box::new(BooleanQuery::new(clauses)) };
    let searcher = &s.searcher;
    // Two passes: top-k may skip blocks that cannot enter it (block-max WAND), and the count
    // needs no scores.
    let top = match last_part {
        _ if q.limit == 0 => Vec::new(),
        Some((fields, tokens)) if lone && (2..=MAX_PRUNED_FIELDS).contains(&fields.len()) => {
            let mut top = top_over_fields(searcher, &fields, &tokens, q.offset + q.limit)?;
            top.drain(..q.offset.min(top.len()));
            top
        }
        _ => searcher.search(query.as_ref(), &TopDocs::with_limit(q.limit).and_offset(q.offset).order_by_score())?,
    };
    let (total, total_exact) = count(searcher, query.as_ref(), q.count_limit)?;
    let mut hits = Vec::with_capacity(top.len());
    let mut buf = Vec::new();
    for (score, address) in top {
        uids::uid_of(&s.uids, address, &mut buf)?;
        let (registry, key) = super::registry_and_key(&buf).unwrap_or_default();
        hits.push(Hit { registry, key, score });
    }
    Ok(Hits { total, total_exact, hits })
}

/// Fields of one part searched by [`top_over_fields`]: it makes 2^n − 1 searches.
const MAX_PRUNED_FIELDS: usize = 3;

/// The best `k` documents of one part over several fields (all its tokens within one field),
/// in relevance order, ties in index order — what the union of the per-field intersections
/// ranks first, found with pruning.
///
/// tantivy prunes a term intersection with block-max WAND but scores every match of a union
/// of intersections, and a road's name matches millions of addresses at 100M citizens. The
/// union scores a document by summing over the fields it matches, so a document matching
/// exactly the fields S scores what the intersection of all of S's terms scores; and whatever
/// ranks above it in that intersection ranks above it in the union too. So each document of
/// the union's top k is in the top k of its own S's intersection, and the top k of every
/// non-empty S, merged by best score, is the union's top k.
fn top_over_fields(
    searcher: &Searcher,
    fields: &[FieldId],
    tokens: &[String],
    k: usize,
) -> Result<Vec<(Score, DocAddress)>> {
    let mut best: HashMap<DocAddress, Score> = HashMap::new();
    for subset in 1..1usize << fields.len() {
        let mut terms: Vec<BoxQuery> = Vec::new();
        for (i, &f) in fields.iter().enumerate() {
            if subset & (1 << i) != 0 {
                terms.extend(tokens.iter().map(|t| term_query(f, t)));
            }
        }
        let query: BoxQuery =
            if terms.len() == 1 { terms.remove(0) } else { Box::new(BooleanQuery::intersection(terms)) };
        for (score, address) in searcher.search(query.as_ref(), &TopDocs::with_limit(k).order_by_score())? {
            let s = best.entry(address).or_insert(score);
            *s = s.max(score);
        }
    }
    let mut top: Vec<(Score, DocAddress)> = best.into_iter().map(|(a, s)| (s, a)).collect();
    top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(k);
    Ok(top)
}

/// Counts the matches of `query`, stopping at `limit`: the count, and whether it is all of them.
fn count(searcher: &Searcher, query: &dyn Query, limit: Option<u64>) -> Result<(u64, bool)> {
    let Some(limit) = limit else { return Ok((query.count(searcher)? as u64, true)) };
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let mut n = 0u64;
    for reader in searcher.segment_readers() {
        let mut docs = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut doc = docs.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                n += 1;
                if n >= limit {
                    return Ok((limit, false));
                }
            }
            doc = docs.advance();
        }
    }
    Ok((n, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{TextField, TextIndex, TextSpec, WriterOptions};

    const ROADS: [&str; 5] = ["湖滨南路", "湖滨北路", "中山路", "嘉禾路", "南山路"];
    const FIELDS: [&str; 3] = ["r.name", "r.address", "r.note"];

    /// 3,000 documents whose three fields hold 0–2 roads each, with numbers that vary their
    /// lengths (so scores differ) — many documents match a road in two or three fields.
    fn corpus() -> (tempfile::TempDir, TextIndex) {
        let dir = tempfile::tempdir().unwrap();
        let field = |name: &str, grams| TextField { name: name.into(), grams, norms: true };
        let spec = TextSpec {
            text: vec![field(FIELDS[0], Grams::UniAndBi), field(FIELDS[1], Grams::Bi), field(FIELDS[2], Grams::Bi)],
            ..TextSpec::default()
        };
        let index = TextIndex::open(dir.path(), &spec).unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for i in 0..3000 {
            let mut doc = w.doc(1, &i.to_string(), false);
            for name in FIELDS {
                let text: String = (0..next(3))
                    .map(|_| format!("{}{}号{}", ROADS[next(5) as usize], next(400), "室".repeat(next(4) as usize)))
                    .collect();
                doc.text(index.field(name).unwrap(), &text);
            }
            w.add(doc).unwrap();
            if i % 1000 == 999 {
                w.commit("").unwrap(); // several segments
            }
        }
        w.commit("").unwrap();
        w.finish().unwrap();
        index.reload().unwrap();
        (dir, index)
    }

    /// An index of one text field, its documents (registry 1) each a key and the field's values.
    fn one_field(field: TextField, docs: &[(&str, &[&str])]) -> (tempfile::TempDir, TextIndex) {
        let dir = tempfile::tempdir().unwrap();
        let name = field.name.clone();
        let index = TextIndex::open(dir.path(), &TextSpec { text: vec![field], ..TextSpec::default() }).unwrap();
        let field = index.field(&name).unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        for (key, values) in docs {
            let mut doc = w.doc(1, key, false);
            for v in *values {
                doc.text(field, v);
            }
            w.add(doc).unwrap();
        }
        w.commit("").unwrap();
        w.finish().unwrap();
        index.reload().unwrap();
        (dir, index)
    }

    /// A field's values are analysed as one text but match apart: a query finds a fragment
    /// of either, never a bigram across the two, and a token both hold counts once (the
    /// document scores as one holding it once).
    #[test]
    fn a_fields_values_match_apart_and_count_a_shared_token_once() {
        let (_dir, index) = one_field(
            TextField { name: "r.address".into(), grams: Grams::Bi, norms: false },
            &[
                ("two", &["福建省厦门市湖滨南路88号801室", "福建省厦门市中山路1号"]),
                ("one", &["福建省厦门市湖滨南路88号801室"]),
            ],
        );
        let find = |text: &str| {
            let q = SearchQuery {
                matches: vec![Match { text: text.into(), fields: vec!["r.address".into()] }],
                limit: 10,
                ..SearchQuery::default()
            };
            index.search(&q).unwrap().hits
        };
        let keys = |text: &str| {
            let mut k: Vec<String> = find(text).into_iter().map(|h| h.key).collect();
            k.sort();
            k
        };
        assert_eq!(keys("中山路1号"), ["two"]);
        assert_eq!(keys("室福建"), Vec::<String>::new(), "no bigram across two values");
        assert_eq!(keys("路88号"), ["one", "two"], "a run's end beside digits is indexed");
        let shared = find("厦门");
        assert_eq!(shared.len(), 2);
        assert_eq!(shared[0].score, shared[1].score, "厦门 is in both of one document's values");
    }

    /// The space of an index is measured as it lies, field by field, and the index is left
    /// as it was (its schema is not the service's: `open` would have discarded it).
    #[test]
    fn space_by_field_measures_an_index_without_touching_it() {
        let (dir, index) = corpus();
        let docs = index.num_docs();
        drop(index);
        let fields = crate::text::space_by_field(dir.path()).unwrap();
        let name = fields.iter().find(|f| f.field == FIELDS[0]).unwrap();
        assert!(name.postings > 0 && name.terms > 0 && name.norms >= 3000, "{name:?}");
        assert!(fields.iter().any(|f| f.field == super::uids::UID && f.fast > 0));
        assert!(fields.windows(2).all(|w| w[0].total() >= w[1].total()), "largest first");
        let spec = TextSpec {
            text: vec![TextField { name: FIELDS[0].into(), grams: Grams::UniAndBi, norms: true }],
            ..TextSpec::default()
        };
        assert_eq!(crate::text::space_by_field(dir.path()).unwrap(), fields);
        assert!(TextIndex::open(dir.path(), &spec).unwrap().num_docs() < docs, "another schema is discarded on open");
    }

    fn find(text: &str, fields: &[&str], offset: usize, limit: usize) -> SearchQuery {
        SearchQuery {
            matches: vec![Match { text: text.into(), fields: fields.iter().map(|f| f.to_string()).collect() }],
            offset,
            limit,
            ..SearchQuery::default()
        }
    }

    /// The pruned top hits over several fields are the union's: the same scores in the same
    /// order as a query tantivy scores in full (the same match inside a scope), each hit with
    /// the score full scoring gives it, and the same total.
    #[test]
    fn top_over_fields_is_the_unions_top() {
        let (_dir, index) = corpus();
        for fields in [&FIELDS[..2], &FIELDS[1..], &FIELDS[..]] {
            for text in ["湖滨南路", "中山路", "南路", "湖滨", "嘉禾路12号"] {
                let in_full = |q: SearchQuery| SearchQuery { scopes: vec![(1, None)], ..q };
                let all = index.search(&in_full(find(text, fields, 0, 3000))).unwrap();
                assert!(all.total > 2, "{text}: {} matches", all.total);
                let score: HashMap<&str, f32> = all.hits.iter().map(|h| (h.key.as_str(), h.score)).collect();
                for (offset, limit) in [(0, 1), (0, 10), (5, 20), (40, 7)] {
                    let pruned = index.search(&find(text, fields, offset, limit)).unwrap();
                    let full = index.search(&in_full(find(text, fields, offset, limit))).unwrap();
                    assert_eq!(pruned.total, full.total);
                    assert!(pruned.total_exact);
                    assert_eq!(pruned.hits.len(), full.hits.len(), "{text} {fields:?} {offset}+{limit}");
                    for (p, f) in pruned.hits.iter().zip(&full.hits) {
                        assert!((p.score - f.score).abs() < 1e-4, "{text} {fields:?}: {} vs {}", p.score, f.score);
                        assert!((p.score - score[p.key.as_str()]).abs() < 1e-4, "{text}: {} scored apart", p.key);
                    }
                }
            }
        }
    }

    /// Block-max pruning finds the best document wherever it lies: one short address (the
    /// best BM25 score) among thousands of longer ones, in a middle block of its posting
    /// lists, for a lone bigram (one term) and a road (an intersection), in every kind of
    /// text field. Pruning is only sound where the index keeps each block's best score.
    #[test]
    fn pruning_finds_the_best_in_any_block() {
        let dir = tempfile::tempdir().unwrap();
        let field = |name: &str, grams| TextField { name: name.into(), grams, norms: true };
        let spec = TextSpec {
            text: vec![field("r.name", Grams::UniAndBi), field("r.address", Grams::Bi)],
            ..TextSpec::default()
        };
        let index = TextIndex::open(dir.path(), &spec).unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        for i in 0..3000 {
            let mut doc = w.doc(1, &i.to_string(), false);
            let text =
                if i == 1700 { "中山路".to_string() } else { format!("中山路{}号{}", i, "室".repeat(i % 7)) };
            for name in ["r.name", "r.address"] {
                doc.text(index.field(name).unwrap(), &text);
            }
            w.add(doc).unwrap();
        }
        w.commit("").unwrap();
        w.finish().unwrap();
        index.reload().unwrap();
        for f in ["r.name", "r.address"] {
            for text in ["山路", "中山路"] {
                let top = index.search(&find(text, &[f], 0, 3)).unwrap();
                assert_eq!(top.total, 3000);
                assert_eq!(top.hits[0].key, "1700", "{f} {text}: {:?}", top.hits);
            }
        }
    }

    /// Name fields of two kinds of document in one tantivy field: one field's norms for all,
    /// and each member matching, counting and ranking only its own documents — a full name
    /// before longer names holding it, as in a field of its own.
    #[test]
    fn fields_sharing_one_tantivy_field_match_apart_with_one_fields_norms() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a.name", "b.name", "b.rep"];
        let spec = TextSpec {
            text: names
                .iter()
                .map(|n| TextField { name: n.to_string(), grams: Grams::UniAndBi, norms: true })
                .collect(),
            shared: vec![vec!["a.name".into(), "b.name".into()]],
            ..TextSpec::default()
        };
        let index = TextIndex::open(dir.path(), &spec).unwrap();
        let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
        let people = ["张伟", "张伟明", "李张伟", "王芳"];
        for (registry, field) in [(1u8, "a.name"), (2, "b.name")] {
            for (i, name) in people.iter().enumerate() {
                let mut doc = w.doc(registry, &format!("{field}{i}"), false);
                doc.text(index.field(field).unwrap(), name);
                if registry == 2 {
                    doc.text(index.field("b.rep").unwrap(), people[(i + 1) % people.len()]);
                }
                w.add(doc).unwrap();
            }
        }
        w.commit("").unwrap();
        w.finish().unwrap();
        index.reload().unwrap();
        let keys = |text: &str, field: &str| -> Vec<String> {
            index.search(&find(text, &[field], 0, 10)).unwrap().hits.into_iter().map(|h| h.key).collect()
        };
        assert_eq!(keys("张伟", "a.name"), ["a.name0", "a.name1", "a.name2"]);
        assert_eq!(keys("张伟", "b.name"), ["b.name0", "b.name1", "b.name2"]);
        assert_eq!(keys("王芳", "b.rep"), ["b.name2"]);
        assert_eq!(keys("芳", "a.name"), ["a.name3"]);
        assert_eq!(index.search(&find("伟", &["a.name", "b.name"], 0, 10)).unwrap().total, 6);
        drop(index);
        let space = crate::text::space_by_field(dir.path()).unwrap();
        let normed: Vec<&str> = space.iter().filter(|f| f.norms > 0).map(|f| f.field.as_str()).collect();
        assert_eq!(normed.len(), 2, "{space:?}");
        assert!(normed.contains(&"a.name|b.name") && normed.contains(&"b.rep"), "{normed:?}");
        // Another grouping is another schema: the index is discarded, not read with other tags.
        let regrouped = TextSpec { shared: vec![vec!["b.name".into(), "a.name".into()]], ..spec.clone() };
        assert_eq!(TextIndex::open(dir.path(), &regrouped).unwrap().num_docs(), 0);
        let unlike = TextSpec {
            text: vec![TextField { name: "b.name".into(), grams: Grams::Bi, norms: true }, spec.text[0].clone()],
            ..spec
        };
        assert!(matches!(TextIndex::open(dir.path(), &unlike), Err(TextError::Spec(_))));
    }

    /// A one-character query finds the people whose names hold it (a person's name gives each
    /// character) but not a company's name, which gives bigrams only; any two-character
    /// fragment of the company's name still finds it, at either end too.
    #[test]
    fn a_surname_finds_people_and_fragments_find_companies() {
        let (_dir, index) = one_field(
            TextField { name: "r.name".into(), grams: Grams::UniAndBi, norms: true },
            &[("p1", &["王秀英"]), ("p2", &["欧阳王芳"]), ("c1", &["厦门王氏科技有限公司"])],
        );
        let keys = |text: &str| -> Vec<String> {
            let mut k: Vec<String> =
                index.search(&find(text, &["r.name"], 0, 10)).unwrap().hits.into_iter().map(|h| h.key).collect();
            k.sort();
            k
        };
        assert_eq!(keys("王"), ["p1", "p2"]);
        assert_eq!(keys("王氏"), ["c1"]);
        assert_eq!(keys("厦门"), ["c1"]);
        assert_eq!(keys("公司"), ["c1"]);
        assert_eq!(keys("王芳"), ["p2"]);
    }

    #[test]
    fn a_count_stops_at_its_limit() {
        let (_dir, index) = corpus();
        let all = index.search(&find("南路", &FIELDS, 0, 5)).unwrap();
        assert!(all.total_exact && all.total > 100);
        let capped = index.search(&SearchQuery { count_limit: Some(100), ..find("南路", &FIELDS, 0, 5) }).unwrap();
        assert_eq!((capped.total, capped.total_exact), (100, false));
        assert_eq!(capped.hits, all.hits, "the limit bounds the count, not the hits");
        let loose = SearchQuery { count_limit: Some(all.total + 1), ..find("南路", &FIELDS, 0, 5) };
        let under = index.search(&loose).unwrap();
        assert_eq!((under.total, under.total_exact), (all.total, true));
    }
}
