//! Full-text search over a view: one registry or all of them.
//!
//! `q` searches the registry's text fields (or those named in `in`); the typed criteria
//! registry users rely on are fields of the same body: `name`, `address`, and for licences
//! and credit records `subject_name` (the holder's or subject's name, matched against
//! citizens' and entities' names and followed through the relations). Filters are exact
//! (keywords, `district`) or date ranges (`"1985"`, `"1985-03"`, `"1985-03-02"`, or
//! `{"from": …, "to": …}`). Pagination is by an opaque cursor naming the view the search
//! started on: later pages come from the same state while it is kept.

use super::caller::{Caller, Shape};
use super::error::{QueryError as ApiError, QueryResult};
use super::view::View;
use crate::access::Operation;
use crate::model::{FieldRule, Record, RecordJson, Registry};
use crate::text;
use chrono::{Datelike, NaiveDate};
use jichu_indexes::text::{Filter, Hit, Match, SearchQuery};
use jichu_ingest::FieldKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Characters a query text may have.
pub const MAX_QUERY_CHARS: usize = 200;
/// Characters a filter value may have, and values a filter's list.
pub const MAX_FILTER_CHARS: usize = 64;
pub const MAX_FILTER_VALUES: usize = 100;
/// Words (parts separated by spaces) a text to find may have: each is a clause of its own.
pub const MAX_QUERY_WORDS: usize = 10;
pub const MAX_LIMIT: usize = 100;
/// How deep pagination goes (offset + limit), as search engines bound it.
pub const MAX_WINDOW: usize = 10_000;
/// Subjects a `subject_name` is resolved to, most relevant first.
pub const MAX_SUBJECTS: usize = 1000;
/// Matches are counted up to this many unless a search asks for `exact_total`.
pub const COUNT_LIMIT: u64 = MAX_WINDOW as u64;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Text to find, in Chinese or not; parts separated by spaces must each match.
    pub q: Option<String>,
    /// The text fields `q` searches; all of the registry's when absent.
    #[serde(rename = "in")]
    pub in_fields: Option<Vec<String>>,
    /// A name: the registry's name field (citizens, entities: `name`; licences: `holder_name`).
    pub name: Option<String>,
    /// An address: every address field of the registry.
    pub address: Option<String>,
    /// Licences and credit records: their holder's or subject's name.
    pub subject_name: Option<String>,
    /// Field → value, list of values, or (dates) a period or `{"from", "to"}`.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
    /// Include records ended by a later snapshot of their source (default false).
    pub include_ended: Option<bool>,
    /// Hits per page: 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Count every match (default false: `total` stops at 10,000, the deepest a cursor pages,
    /// as counting millions of matches costs far more than finding the best of them).
    pub exact_total: Option<bool>,
    /// Fields of each hit's record to return; all when absent.
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct SearchHit<'a> {
    registry: Registry,
    /// The key as the caller may see it (absent when its grant hides keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    score: f32,
    record: Option<RecordJson<'a>>,
}

#[derive(Debug, Serialize)]
struct SearchResponse<'a> {
    total: u64,
    /// False when `total` stopped at 10,000 (unless `exact_total` was asked) or when
    /// `subject_name` matched more subjects than are followed.
    total_exact: bool,
    hits: Vec<SearchHit<'a>>,
    next_cursor: Option<String>,
}

fn name_fields(r: Registry) -> &'static [&'static str] {
    match r {
        Registry::Citizens | Registry::Entities => &["name"],
        Registry::Licences => &["holder_name"],
        Registry::Parcels | Registry::Credit => &[],
    }
}

fn address_fields(r: Registry) -> Vec<&'static str> {
    text::text_fields(r).filter(|f| f.ends_with("address")).collect()
}

/// The index fields of the text fields `names` in each of `registries` that has them (and
/// the fields of ended records' text, when they are asked for).
fn qualify<'a>(
    registries: &[Registry],
    names: impl Iterator<Item = &'a str> + Clone,
    include_ended: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in registries {
        for n in names.clone().filter(|n| text::text_fields(*r).any(|f| f == *n)) {
            out.push(text::field_name(*r, n));
            if include_ended {
                out.push(text::ended_field_name(*r, n));
            }
        }
    }
    out
}

/// A filter on a reference field (`holder_id`, `subject_id`, `legal_rep_id`) as the records
/// of `registry` holding one of `values`: each value's relation edges, read from the view's
/// snapshot, which the view's index commit matches. The index holds no term for references:
/// one distinct term a document cost a reindex 11–19% of its time and the index 5.5 bytes a
/// record at 10M. `None` for a field that is not a reference.
fn by_reference(view: &View, registry: Registry, field: &str, values: &[String]) -> QueryResult<Option<Filter>> {
    let Some(link) = registry.schema().fields.iter().find(|f| f.name == field).and_then(|f| f.link) else {
        return Ok(None);
    };
    let reader = view.reader();
    let mut keys = Vec::new();
    for value in values {
        let target = crate::store::keys::target_registry(&link, value);
        for edge in reader.referring(target, value)? {
            if edge.relation == link.reverse && edge.registry == registry {
                keys.push(edge.id);
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(Some(Filter::Keys { registry: registry as u8, keys }))
}

fn subject_field(r: Registry) -> Option<&'static str> {
    match r {
        Registry::Licences => Some("holder_id"),
        Registry::Credit => Some("subject_id"),
        _ => None,
    }
}

fn check_text(what: &str, s: &str) -> Result<String, ApiError> {
    let n = s.chars().count();
    if s.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("`{what}` is empty")));
    }
    if n > MAX_QUERY_CHARS {
        return Err(ApiError::BadRequest(format!(
            "`{what}` has {n} characters; at most {MAX_QUERY_CHARS} are allowed"
        )));
    }
    let words = s.split_whitespace().count();
    if words > MAX_QUERY_WORDS {
        return Err(ApiError::BadRequest(format!("`{what}` has {words} words; at most {MAX_QUERY_WORDS} are allowed")));
    }
    Ok(s.to_string())
}

/// A date or the first/last day of a year or month.
fn period(s: &str, end: bool) -> Option<NaiveDate> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    let year = parts.first()?.parse::<i32>().ok()?;
    match parts.len() {
        1 if end => NaiveDate::from_ymd_opt(year, 12, 31),
        1 => NaiveDate::from_ymd_opt(year, 1, 1),
        2 if end => {
            let first = NaiveDate::from_ymd_opt(year, num(1)?, 1)?;
            first.checked_add_months(chrono::Months::new(1))?.pred_opt()
        }
        2 => NaiveDate::from_ymd_opt(year, num(1)?, 1),
        3 => NaiveDate::from_ymd_opt(year, num(1)?, num(2)?),
        _ => None,
    }
}

fn date_filter(field: &str, v: &Value) -> Result<Filter, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "filter `{field}`: give a date (`1985-03-02`), a month (`1985-03`), a year (`1985`) or {{\"from\": …, \"to\": …}}"
        ))
    };
    let days = |d: NaiveDate| d.num_days_from_ce();
    let (from, to) = match v {
        Value::String(s) => (period(s, false).ok_or_else(bad)?, period(s, true).ok_or_else(bad)?),
        Value::Number(n) => {
            let s = n.to_string();
            (period(&s, false).ok_or_else(bad)?, period(&s, true).ok_or_else(bad)?)
        }
        Value::Object(o) => {
            let bound = |k: &str, end: bool| match o.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => period(s, end).map(Some).ok_or_else(bad),
                Some(Value::Number(n)) => period(&n.to_string(), end).map(Some).ok_or_else(bad),
                Some(_) => Err(bad()),
            };
            if o.keys().any(|k| k != "from" && k != "to") {
                return Err(bad());
            }
            let from = bound("from", false)?.unwrap_or(NaiveDate::MIN);
            let to = bound("to", true)?.unwrap_or(NaiveDate::MAX);
            if from > to {
                return Err(ApiError::BadRequest(format!("filter `{field}`: `from` is after `to`")));
            }
            (from, to)
        }
        _ => return Err(bad()),
    };
    Ok(Filter::Dates { field: field.into(), from: days(from), to: days(to) })
}

/// An exact filter. Values are made canonical as loads store them: identifiers by their check
/// (a 15-digit number upgraded, `x` upper-cased), codes by their synonyms (`M` → `男`).
fn keyword_filter(registries: &[Registry], field: &str, v: &Value) -> Result<Filter, ApiError> {
    let kind = registries.iter().find_map(|r| r.schema().fields.iter().find(|f| f.name == field)).map(|f| f.kind);
    let canonical = |s: &str| -> Result<String, ApiError> {
        let s = jichu_ingest::normalize_text(s);
        if s.chars().count() > MAX_FILTER_CHARS {
            return Err(ApiError::BadRequest(format!(
                "filter `{field}`: a value has more than {MAX_FILTER_CHARS} characters"
            )));
        }
        if field == text::DISTRICT && !(s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())) {
            return Err(ApiError::BadRequest(format!(
                "filter `district`: `{}` is not a six-digit GB/T 2260 district code (e.g. 350203)",
                super::records::clip(&s)
            )));
        }
        match kind {
            Some(FieldKind::Identifier(check)) => crate::model::canonical_id(check, &s)
                .map_err(|m| ApiError::BadRequest(format!("filter `{field}`: `{s}` is not a valid identifier: {m}"))),
            Some(FieldKind::Code(list)) => {
                jichu_ingest::parse_code(&s, list).map(|c| c.into_owned()).ok_or_else(|| {
                    let allowed: Vec<&str> = list.values().collect();
                    ApiError::BadRequest(format!("filter `{field}`: `{s}` is not one of {}", allowed.join(", ")))
                })
            }
            _ => Ok(s.into_owned()),
        }
    };
    let value = |v: &Value| match v {
        Value::String(s) => canonical(s),
        Value::Number(n) => canonical(&n.to_string()),
        _ => Err(ApiError::BadRequest(format!("filter `{field}`: give a string or a list of strings"))),
    };
    let values = match v {
        Value::Array(a) if a.len() > MAX_FILTER_VALUES => {
            return Err(ApiError::BadRequest(format!("filter `{field}`: at most {MAX_FILTER_VALUES} values")));
        }
        Value::Array(a) if !a.is_empty() => a.iter().map(value).collect::<Result<Vec<_>, _>>()?,
        Value::Array(_) => return Err(ApiError::BadRequest(format!("filter `{field}`: the list is empty"))),
        v => vec![value(v)?],
    };
    Ok(Filter::AnyOf { field: field.into(), values })
}

/// Filters of a request, checked against the fields every searched registry has.
fn filters(registries: &[Registry], given: &Map<String, Value>) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    for (name, v) in given {
        let kinds: Vec<Option<bool>> = registries
            .iter()
            .map(|r| text::filter_fields(*r).find(|(f, _)| f == name).map(|(_, is_date)| is_date))
            .collect();
        let Some(Some(is_date)) = kinds.first().copied().filter(|_| kinds.iter().all(Option::is_some)) else {
            let known: Vec<&str> =
                registries.first().map(|r| text::filter_fields(*r).map(|(f, _)| f).collect()).unwrap_or_default();
            return Err(ApiError::UnknownField(format!(
                "no filter `{name}` here; the filters are: {}",
                if registries.len() == 1 {
                    known.join(", ")
                } else {
                    "district, and a registry's own with its path".into()
                }
            )));
        };
        out.push(if is_date { date_filter(name, v)? } else { keyword_filter(registries, name, v)? });
    }
    Ok(out)
}

/// A cursor: the offset of the next page, the view (process epoch and generation) the search
/// started on, and the search it pages (a fingerprint of the query but its page size).
fn cursor(offset: usize, view: &View, query: u64) -> String {
    format!("{offset}.{:x}.{:x}.{query:x}", view.epoch, view.generation)
}

/// The fingerprint a cursor carries: what the search asks, without where a page starts or how
/// long it is (a client may change its page size between pages).
fn fingerprint(query: &SearchQuery) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    format!("{:?}", SearchQuery { offset: 0, limit: 0, ..query.clone() }).hash(&mut h);
    h.finish()
}

/// A cursor's offset, view generation and query fingerprint. A cursor from another process
/// (before a restart) is stale; one that is not a cursor at all is a bad request.
pub fn parse_cursor(s: &str, epoch: u64) -> QueryResult<(usize, u64, u64)> {
    let bad = || ApiError::BadRequest("`cursor` is not one this service gave".into());
    let mut parts = s.split('.');
    let (Some(offset), Some(e), Some(g), Some(q), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let offset: usize = offset.parse().map_err(|_| bad())?;
    let e = u64::from_str_radix(e, 16).map_err(|_| bad())?;
    let g = u64::from_str_radix(g, 16).map_err(|_| bad())?;
    let q = u64::from_str_radix(q, 16).map_err(|_| bad())?;
    if e != epoch {
        return Err(ApiError::StaleCursor);
    }
    Ok((offset, g, q))
}

/// Turns a request into an index query over `registries` (one, or all for `/v1/search`).
/// Whether the caller sees in full every field indexed under a searchable name (a citizen's
/// `address` is both of its addresses).
fn searchable(shape: &Shape, name: &str) -> bool {
    shape.registry.schema().fields.iter().filter(|f| f.search_as == name).all(|f| shape.rule(f.name) == FieldRule::Full)
}

/// Turns a request into an index query over the registries of `shapes` (one, or every one the
/// caller may search for `/v1/search`): text is searched, and filters applied, only on fields
/// the caller sees in full; its rows become the query's scope.
fn build(view: &View, caller: &Caller, shapes: &[Shape], req: &SearchRequest) -> Result<(SearchQuery, bool), ApiError> {
    let registries: Vec<Registry> = shapes.iter().map(|s| s.registry).collect();
    let registries = &registries[..];
    let shape_of = |r: Registry| shapes.iter().find(|s| s.registry == r);
    let single = (registries.len() == 1).then(|| registries[0]);
    let mut query = SearchQuery {
        registries: registries.iter().map(|r| *r as u8).collect(),
        include_ended: req.include_ended.unwrap_or(false),
        limit: req.limit.unwrap_or(20),
        count_limit: (!req.exact_total.unwrap_or(false)).then_some(COUNT_LIMIT),
        ..SearchQuery::default()
    };
    if !(1..=MAX_LIMIT).contains(&query.limit) {
        return Err(ApiError::BadRequest(format!("`limit` must be 1 to {MAX_LIMIT}")));
    }
    let all_text: Vec<&str> = {
        let mut v: Vec<&str> = registries.iter().flat_map(|r| text::text_fields(*r)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    // A text field is searched only in the registries whose grant shows it in full.
    let full = |name: &str| -> Vec<Registry> {
        registries.iter().copied().filter(|r| shape_of(*r).is_some_and(|s| searchable(s, name))).collect()
    };
    if let Some(q) = &req.q {
        let mut fields = Vec::new();
        match &req.in_fields {
            Some(names) => {
                // Each field once, whatever the list repeats (and a list no longer than the
                // registry's text fields).
                let mut names: Vec<&String> = names.iter().collect();
                names.sort_unstable();
                names.dedup();
                let mut refused = Vec::new();
                for n in names {
                    if !all_text.contains(&n.as_str()) {
                        return Err(ApiError::UnknownField(format!(
                            "`{n}` is not a searchable text field here; they are: {}",
                            all_text.join(", ")
                        )));
                    }
                    let holders: Vec<Registry> =
                        registries.iter().copied().filter(|r| text::text_fields(*r).any(|f| f == n)).collect();
                    if full(n).len() < holders.len() {
                        refused.push(n.clone());
                    }
                    fields.extend(qualify(&holders, std::iter::once(n.as_str()), query.include_ended));
                }
                if !refused.is_empty() {
                    return Err(ApiError::FieldNotGranted(refused));
                }
            }
            None => {
                for n in &all_text {
                    fields.extend(qualify(&full(n), std::iter::once(*n), query.include_ended));
                }
                if fields.is_empty() {
                    return Err(ApiError::FieldNotGranted(all_text.iter().map(|f| f.to_string()).collect()));
                }
            }
        }
        query.matches.push(Match { text: check_text("q", q)?, fields });
    } else if req.in_fields.is_some() {
        return Err(ApiError::BadRequest("`in` needs `q`".into()));
    }
    let include_ended = query.include_ended;
    let typed = |what: &str, fields: Vec<&str>| -> Result<Match, ApiError> {
        match single {
            Some(r) if !fields.is_empty() => {
                Ok(Match { text: String::new(), fields: qualify(&[r], fields.iter().copied(), include_ended) })
            }
            Some(r) => Err(ApiError::BadRequest(format!("{r} has no {what} field to search"))),
            None => Err(ApiError::BadRequest(format!("`{what}` is for one registry: POST /v1/{{registry}}/search"))),
        }
    };
    let require = |fields: &[&str]| -> Result<(), ApiError> {
        match single.and_then(shape_of) {
            Some(s) => caller.require_full(s, fields),
            None => Ok(()),
        }
    };
    if let Some(name) = &req.name {
        require(&single.map(|r| name_fields(r).to_vec()).unwrap_or_default())?;
        let mut m = typed("name", single.map(|r| name_fields(r).to_vec()).unwrap_or_default())?;
        m.text = check_text("name", name)?;
        query.matches.push(m);
    }
    if let Some(address) = &req.address {
        if let Some(s) = single.and_then(shape_of) {
            let members: Vec<&str> =
                s.registry.schema().fields.iter().filter(|f| f.search_as == "address").map(|f| f.name).collect();
            caller.require_full(s, &members)?;
        }
        let mut m = typed("address", single.map(address_fields).unwrap_or_default())?;
        m.text = check_text("address", address)?;
        query.matches.push(m);
    }
    if let Some(f) = &req.filters {
        // A filter on a field the caller does not see in full would be an oracle for it; the
        // district is part of the key, visible when the key is (in full or masked).
        let mut refused = Vec::new();
        for name in f.keys() {
            let seen_in = |s: &Shape| {
                if name == text::DISTRICT {
                    s.rule("id") != FieldRule::Hidden
                } else {
                    s.registry.schema().field_index(name).is_none() || s.rule(name) == FieldRule::Full
                }
            };
            if !shapes.iter().all(seen_in) {
                refused.push(name.clone());
            }
        }
        if !refused.is_empty() {
            return Err(ApiError::FieldNotGranted(refused));
        }
        query.filters = filters(registries, f)?;
        if let [registry] = registries {
            for filter in &mut query.filters {
                if let Filter::AnyOf { field, values } = filter
                    && let Some(held) = by_reference(view, *registry, field, values)?
                {
                    *filter = held;
                }
            }
        }
    }
    let mut exact = true;
    if let Some(subject_name) = &req.subject_name {
        let (registry, field) = single
            .and_then(|r| subject_field(r).map(|f| (r, f)))
            .ok_or_else(|| ApiError::BadRequest("`subject_name` is for licences and credit records".into()))?;
        // Following a name to its subjects searches citizens' and entities' names: the caller
        // must see those in full.
        for r in [Registry::Citizens, Registry::Entities] {
            match caller.related(r)? {
                Some(s) => caller.require_full(&s, &["name"])?,
                None => return Err(ApiError::NotGranted(format!("`subject_name` searches {r}' names, not granted"))),
            }
        }
        let subjects = SearchQuery {
            matches: vec![Match {
                text: check_text("subject_name", subject_name)?,
                fields: qualify(&[Registry::Citizens, Registry::Entities], ["name"].into_iter(), include_ended),
            }],
            limit: MAX_SUBJECTS,
            count_limit: Some(MAX_SUBJECTS as u64 + 1),
            ..SearchQuery::default()
        };
        let found = view.text.search(&subjects)?;
        exact = found.total as usize <= MAX_SUBJECTS;
        let values: Vec<String> = found.hits.into_iter().map(|h| h.key).collect();
        if values.is_empty() {
            query.limit = 0; // nothing can match; still answer with the total 0
        }
        let held = by_reference(view, registry, field, &values)?
            .ok_or_else(|| ApiError::Internal(crate::Error::Internal(format!("`{field}` is not a reference"))))?;
        query.filters.push(held);
    }
    if query.matches.is_empty() && req.subject_name.is_none() {
        return Err(ApiError::BadRequest(
            "give `q`, `name`, `address` or `subject_name`: filters alone are not a search".into(),
        ));
    }
    if !query.matches.is_empty() {
        query.registries.clear(); // the registries' own text fields say which
    }
    if shapes.iter().any(|s| s.rows.is_some()) {
        query.scopes = shapes
            .iter()
            .map(|s| {
                let only = s
                    .rows
                    .as_ref()
                    .map(|rows| Filter::AnyOf { field: text::DISTRICT.into(), values: rows.iter().cloned().collect() });
                (s.registry as u8, only)
            })
            .collect();
    }
    query.offset = match req.cursor.as_deref() {
        Some(c) => {
            let (offset, _, asked) = parse_cursor(c, view.epoch)?;
            if asked != fingerprint(&query) {
                return Err(ApiError::BadRequest(
                    "`cursor` pages another search: send it with the search that gave it".into(),
                ));
            }
            offset
        }
        None => 0,
    };
    if query.offset >= MAX_WINDOW {
        return Err(ApiError::BadRequest(format!("results are paged up to {MAX_WINDOW}; narrow the search")));
    }
    // The last page stops at the window, so every cursor this service gives is followed.
    query.limit = query.limit.min(MAX_WINDOW - query.offset);
    Ok((query, exact))
}

/// Runs a search of `registries` on `view` (the view a cursor names, or the current one) for
/// `caller`, and renders the answer. Across registries, those the caller may not search are
/// left out (and none is a refusal).
pub fn run(view: &View, caller: &Caller, registries: &[Registry], req: &SearchRequest) -> QueryResult<Vec<u8>> {
    if let Some(f) = &req.fields
        && registries.len() > 1
        && let Some(unknown) =
            f.iter().find(|n| n.as_str() != "id" && Registry::ALL.iter().all(|r| r.schema().field_index(n).is_none()))
    {
        return Err(ApiError::UnknownField(format!("no registry has a field `{unknown}`")));
    }
    let mut shapes = Vec::new();
    for &r in registries {
        // Across registries a field need only exist in one of them.
        let fields: Option<Vec<&str>> = req.fields.as_ref().map(|f| {
            f.iter()
                .map(String::as_str)
                .filter(|n| registries.len() == 1 || r.schema().field_index(n).is_some())
                .collect()
        });
        match caller.shape(r, Operation::Search, fields, false) {
            Ok(s) => shapes.push(s),
            Err(ApiError::NotGranted(_)) if registries.len() > 1 => continue,
            Err(e) => return Err(e),
        }
    }
    if shapes.is_empty() {
        return Err(ApiError::NotGranted("no registry may be searched with this grant".into()));
    }
    let (query, exact) = build(view, caller, &shapes, req)?;
    let found = view.text.search(&query)?;
    let records = fetch(view, &found.hits)?;
    let end = query.offset + found.hits.len();
    let next_cursor = (found.total as usize > end && end < MAX_WINDOW).then(|| cursor(end, view, fingerprint(&query)));
    let mut hits = Vec::with_capacity(found.hits.len());
    for (h, r) in found.hits.iter().zip(&records) {
        let Some(registry) = Registry::from_byte(h.registry) else { continue };
        let Some(shape) = shapes.iter().find(|s| s.registry == registry) else { continue };
        let record = r.as_ref().map(|record| caller.render(view, shape, record));
        let id = match record.as_ref() {
            Some(_) => caller.render_key(shape, &h.key),
            None => None,
        };
        hits.push(SearchHit { registry, id, score: h.score, record });
    }
    let answer = SearchResponse { total: found.total, total_exact: exact && found.total_exact, hits, next_cursor };
    serde_json::to_vec(&answer).map_err(|e| ApiError::Internal(crate::Error::Codec(e.to_string())))
}

/// The records of the hits, from the view's store snapshot (the source of truth), one
/// multi-get a registry.
fn fetch(view: &View, hits: &[Hit]) -> crate::Result<Vec<Option<Record>>> {
    let mut out: Vec<Option<Record>> = vec![None; hits.len()];
    for r in Registry::ALL {
        let (positions, keys): (Vec<usize>, Vec<String>) =
            hits.iter().enumerate().filter(|(_, h)| h.registry == r as u8).map(|(i, h)| (i, h.key.clone())).unzip();
        if keys.is_empty() {
            continue;
        }
        for (i, record) in positions.into_iter().zip(view.reader().get_many(r, &keys)?) {
            out[i] = record;
        }
    }
    Ok(out)
}
