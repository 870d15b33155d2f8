//! Queries: text matches across chosen fields, exact and date filters, ranked by BM25.
//!
//! A match's text is cut at white space into parts; each part is analysed into bigrams and
//! must match *within one* of the match's fields (all its tokens in that field), and every
//! part must match. So `张伟 湖滨南路` finds a person named 张伟 living on 湖滨南路, while
//! the bigrams of one part are never gathered from two different fields.

use super::analyzer::{self, Grams};
use super::{Fields, Result, TextError, TextSearcher};
use std::ops::Bound;
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, FieldType, IndexRecordOption, Value};
use tantivy::{TantivyDocument, Term};

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
    /// Every matching document, exactly counted.
    pub total: u64,
    pub hits: Vec<Hit>,
}

type BoxQuery = Box<dyn Query>;

fn filter(q: BoxQuery) -> (Occur, BoxQuery) {
    (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
}

fn term_query(field: Field, text: &str) -> BoxQuery {
    Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::WithFreqs))
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

fn is_text(t: &FieldType) -> bool {
    matches!(t, FieldType::Str(o) if o.get_indexing_options().is_some_and(|i| i.tokenizer() != "raw"))
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
fn part_query(fields: &[Field], tokens: &[String]) -> BoxQuery {
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
    for m in &q.matches {
        let fields = m.fields.iter().map(|name| f.typed_field(name, is_text)).collect::<Result<Vec<_>>>()?;
        let before = clauses.len();
        for part in m.text.split(|c: char| analyzer::fold(c).is_whitespace()) {
            let mut tokens = analyzer::tokens(part, Grams::Bi);
            tokens.sort_unstable();
            tokens.dedup();
            if !tokens.is_empty() && !fields.is_empty() {
                clauses.push((Occur::Must, part_query(&fields, &tokens)));
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
    let query: BoxQuery = if clauses.len() == 1 && clauses[0].0 == Occur::Must {
        clauses.remove(0).1
    } else {
        Box::new(BooleanQuery::new(clauses))
    };
    let searcher = &s.searcher;
    // Two passes: top-k may skip blocks that cannot enter it (block-max WAND), and the count
    // needs no scores.
    let top = if q.limit == 0 {
        Vec::new()
    } else {
        searcher.search(query.as_ref(), &TopDocs::with_limit(q.limit).and_offset(q.offset).order_by_score())?
    };
    let total = query.count(searcher)?;
    let mut hits = Vec::with_capacity(top.len());
    for (score, address) in top {
        let doc: TantivyDocument = searcher.doc(address)?;
        let uid = doc.get_first(f.uid).and_then(|v| v.as_str()).unwrap_or_default();
        let (registry, key) = uid.split_once(':').unwrap_or_default();
        hits.push(Hit { registry: registry.parse().unwrap_or(0), key: key.to_string(), score });
    }
    Ok(Hits { total: total as u64, hits })
}
