//! Full-text search: quality against brute-force scans of the store, keeping in step with
//! loads (updates, endings, a kill between store write and index commit), and the HTTP API.

use crate::common::{Server, TestStore, fixture, write_variant};
use jichu::load::Progress;
use jichu::model::{Record, Registry};
use jichu::store::codec;
use jichu::text::TextLayer;
use jichu_indexes::text::{Filter, Match, SearchQuery, WriterOptions};
use serde_json::{Value, json};

fn options() -> WriterOptions {
    WriterOptions { threads: 2, memory_bytes: 64 << 20, no_merge: false }
}

fn synced(t: &TestStore) -> TextLayer {
    let layer = TextLayer::open(&t.store).unwrap();
    layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap();
    layer
}

fn records(t: &TestStore, registry: Registry) -> Vec<Record> {
    t.store
        .scan(registry)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            codec::decode(registry, std::str::from_utf8(&k).unwrap(), &v).unwrap()
        })
        .collect()
}

fn query(registry: Registry, text: &str, fields: &[&str]) -> SearchQuery {
    SearchQuery {
        registries: vec![registry as u8],
        matches: vec![Match {
            text: text.into(),
            fields: fields.iter().map(|f| jichu::text::field_name(registry, f)).collect(),
        }],
        limit: 100,
        ..SearchQuery::default()
    }
}

fn keys(layer: &TextLayer, q: &SearchQuery) -> Vec<String> {
    let hits = layer.index.search(q).unwrap();
    assert_eq!(hits.total as usize, hits.hits.len(), "all hits fit in one page here");
    let mut k: Vec<String> = hits.hits.into_iter().map(|h| h.key).collect();
    k.sort();
    k
}

/// Keys of the current records whose `field` contains `fragment`, by scanning the store.
fn brute_force(t: &TestStore, registry: Registry, fields: &[&str], fragment: &str) -> Vec<String> {
    let mut k: Vec<String> = records(t, registry)
        .into_iter()
        .filter(|r| !r.ended && fields.iter().any(|f| r.text(f).is_some_and(|s| s.contains(fragment))))
        .map(|r| r.id)
        .collect();
    k.sort();
    k
}

#[test]
fn a_full_name_finds_that_person_first() {
    let t = TestStore::loaded();
    let layer = synced(&t);
    let people = records(&t, Registry::Citizens);
    assert!(people.len() > 20);
    for person in &people {
        let name = person.text("name").unwrap();
        let hits = layer.index.search(&query(Registry::Citizens, name, &["name"])).unwrap();
        let namesakes = people.iter().filter(|p| p.text("name") == Some(name)).count();
        let top: Vec<&str> = hits.hits[..namesakes].iter().map(|h| h.key.as_str()).collect();
        assert!(top.contains(&person.id.as_str()), "{name}: {top:?}");
        // A general query (every text field) finds them too, ahead of anyone else.
        let all = layer.index.search(&query(Registry::Citizens, name, &["name", "address"]));
        assert_eq!(all.unwrap().hits[0].score, hits.hits[0].score, "{name}");
    }
}

#[test]
fn fragments_and_road_names_find_exactly_the_records_that_contain_them() {
    let t = TestStore::loaded();
    let layer = synced(&t);
    // Two-character fragments of company names, and longer ones.
    for fragment in ["科技", "贸易", "厦门", "有限公司", "鹭岛"] {
        let want = brute_force(&t, Registry::Entities, &["name"], fragment);
        assert!(!want.is_empty(), "{fragment}");
        assert_eq!(keys(&layer, &query(Registry::Entities, fragment, &["name"])), want, "{fragment}");
    }
    // Road names inside addresses, either address of a citizen.
    for road in ["湖滨南路", "中山路", "厦禾路", "环岛路"] {
        // `address` searches both of a citizen's addresses.
        let want = brute_force(&t, Registry::Citizens, &["address", "household_address"], road);
        assert!(!want.is_empty(), "{road}");
        assert_eq!(keys(&layer, &query(Registry::Citizens, road, &["address"])), want, "{road}");
    }
    // A fragment that starts inside a road name and runs into the house number.
    for fragment in ["路2号", "南路2号"] {
        let want = brute_force(&t, Registry::Citizens, &["address", "household_address"], fragment);
        let got = keys(&layer, &query(Registry::Citizens, fragment, &["address"]));
        assert!(!want.is_empty() && want.iter().all(|k| got.contains(k)), "{fragment}: {got:?} ⊉ {want:?}");
    }
    // A fragment nobody has.
    assert!(keys(&layer, &query(Registry::Entities, "航天", &["name"])).is_empty());
}

#[test]
fn filters_narrow_to_exactly_the_matching_records() {
    let t = TestStore::loaded();
    let layer = synced(&t);
    let people = records(&t, Registry::Citizens);
    let mut q = query(Registry::Citizens, "福建", &["address"]);
    let everyone = keys(&layer, &q);
    q.filters = vec![Filter::AnyOf { field: "gender".into(), values: vec!["女".into()] }];
    let women = keys(&layer, &q);
    assert!(!women.is_empty() && women.len() < everyone.len());
    for k in &women {
        let p = people.iter().find(|p| &p.id == k).unwrap();
        assert_eq!(p.text("gender"), Some("女"));
    }
    // Born in the 1950s: a date range.
    use chrono::{Datelike, NaiveDate};
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce();
    q.filters = vec![Filter::Dates { field: "birth_date".into(), from: day(1950, 1, 1), to: day(1959, 12, 31) }];
    let fifties = keys(&layer, &q);
    let mut want: Vec<String> = people
        .iter()
        .filter(|p| !p.ended && everyone.contains(&p.id))
        .filter(
            |p| matches!(p.value("birth_date"), Some(jichu_ingest::Value::Date(d)) if (1950..1960).contains(&d.year())),
        )
        .map(|p| p.id.clone())
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(fifties, want);
    // The district comes from the key.
    q.filters = vec![Filter::AnyOf { field: "district".into(), values: vec!["350203".into()] }];
    assert!(keys(&layer, &q).iter().all(|k| k.starts_with("350203")));
    // A filter on a field the index does not have is an error, not an empty answer.
    q.filters = vec![Filter::AnyOf { field: "colour".into(), values: vec!["red".into()] }];
    assert!(layer.index.search(&q).is_err());
}

#[test]
fn updates_and_endings_reach_the_index_and_a_lagging_index_catches_up() {
    let t = TestStore::new();
    t.load_fixture("citizens");
    let layer = synced(&t);
    let name_q = |name: &str| query(Registry::Citizens, name, &["name"]);
    assert_eq!(keys(&layer, &name_q("陈志强")), ["35020319500110100X"]);
    drop(layer);
    // A load whose process dies before the index commit: the store has it, the index not.
    let renamed = write_variant(&t, "citizens", |l| Some(l.replace("陈志强", "陈志远")));
    let r = t.load(&fixture("citizens.toml"), &[renamed]);
    // The change log lists what the load wrote: the one renamed record.
    let logged: Vec<Box<[u8]>> =
        t.store.reader().changed_keys(r.load_id as u32, Registry::Citizens).map(Result::unwrap).collect();
    assert_eq!(logged, [Box::from(&b"35020319500110100X"[..])]);
    let layer = TextLayer::open(&t.store).unwrap();
    assert_eq!(keys(&layer, &name_q("陈志强")).len(), 1, "behind until synced");
    let report = layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap();
    assert_eq!((report.mode, report.indexed), ("caught_up", 1), "only the changed record is re-indexed");
    assert!(keys(&layer, &name_q("陈志强")).is_empty(), "the old name is gone");
    assert_eq!(keys(&layer, &name_q("陈志远")), ["35020319500110100X"]);
    assert_eq!(layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap().mode, "up_to_date");
    // A snapshot without 吴海峰 ends the record: not found unless asked for ended ones.
    let spec_text = std::fs::read_to_string(fixture("citizens.toml"))
        .unwrap()
        .replace("encoding = \"utf-8\"", "encoding = \"utf-8\"\nmode = \"snapshot\"");
    let spec = t.dir.path().join("snapshot.toml");
    std::fs::write(&spec, spec_text).unwrap();
    let subset = write_variant(&t, "citizens", |l| (!l.contains("吴海峰")).then(|| l.replace("陈志强", "陈志远")));
    t.load(&spec, &[subset]);
    layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap();
    assert!(keys(&layer, &name_q("吴海峰")).is_empty());
    let mut with_ended = name_q("吴海峰");
    with_ended.matches[0].fields.push(jichu::text::ended_field_name(Registry::Citizens, "name"));
    assert_eq!(keys(&layer, &with_ended).len(), 1);
    // Reopened from disk, the index answers the same and knows it is in step.
    drop(layer);
    let t = t.reopen();
    let layer = TextLayer::open(&t.store).unwrap();
    assert_eq!(layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap().mode, "up_to_date");
    assert_eq!(keys(&layer, &name_q("陈志远")), ["35020319500110100X"]);
}

/// A bulk load's documents are made from the records as the load writes them, not read back
/// from the store; the index is the one a rebuild from the store makes. A load into a
/// registry that holds records is indexed from the store's change log as before.
#[test]
fn a_bulk_load_feeds_the_index_as_it_writes_and_the_index_is_the_one_a_rebuild_makes() {
    let t = TestStore::new();
    let load_indexed = |stem: &str, file: std::path::PathBuf| {
        let spec_path = fixture(&format!("{stem}.toml"));
        let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
        jichu::load::load_indexed(&t.store, &spec, &spec_path, &[file], &t.options(), options()).unwrap()
    };
    for stem in ["citizens", "entities", "credit"] {
        let (report, synced) = load_indexed(stem, fixture(&format!("{stem}.csv")));
        assert_eq!((synced.mode, synced.indexed), ("fed", report.inserted), "{stem}");
    }
    let layer = TextLayer::open(&t.store).unwrap();
    assert_eq!(layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap().mode, "up_to_date");
    let fed: Vec<Vec<String>> = [
        query(Registry::Citizens, "陈志强", &["name"]),
        query(Registry::Citizens, "思明区", &["address"]),
        query(Registry::Entities, "科技", &["name"]),
    ]
    .iter()
    .map(|q| keys(&layer, q))
    .collect();
    assert_eq!(fed[0], brute_force(&t, Registry::Citizens, &["name"], "陈志强"));
    assert!(!fed[1].is_empty() && !fed[2].is_empty());
    let docs = layer.index.num_docs();
    drop(layer);
    let (rebuilt, _) = TextLayer::rebuild(&t.store, options(), &Progress::quiet()).unwrap();
    assert_eq!(rebuilt.index.num_docs(), docs);
    assert_eq!(
        rebuilt.index.count_registry(Registry::Credit as u8).unwrap(),
        records(&t, Registry::Credit).len() as u64
    );
    for (q, fed) in [
        query(Registry::Citizens, "陈志强", &["name"]),
        query(Registry::Citizens, "思明区", &["address"]),
        query(Registry::Entities, "科技", &["name"]),
    ]
    .iter()
    .zip(&fed)
    {
        assert_eq!(&keys(&rebuilt, q), fed);
    }
    drop(rebuilt);
    // A second load into citizens takes the batch path: no feed, the change log is read.
    let renamed = write_variant(&t, "citizens", |l| Some(l.replace("陈志强", "陈志远")));
    let (_, synced) = load_indexed("citizens", renamed);
    assert_eq!((synced.mode, synced.indexed), ("caught_up", 1));
}

/// A feed whose load is not the only one the store finished since it began is dropped, and
/// the index brought in step from the store instead: nothing is lost, nothing doubled.
#[test]
fn a_feed_passed_by_another_load_is_dropped_and_the_index_synced_from_the_store() {
    let t = TestStore::new();
    t.load_fixture("citizens");
    let layer = synced(&t);
    let mut feed = layer.bulk_feed(t.store.reader(), Registry::Entities, options()).unwrap().expect("in step, empty");
    assert!(layer.bulk_feed(t.store.reader(), Registry::Citizens, options()).unwrap().is_none(), "holds citizens");
    let spec_path = fixture("entities.toml");
    let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
    let files = [fixture("entities.csv")];
    let r = jichu::load::load_feeding(
        &t.store,
        &spec,
        &spec_path,
        &files,
        &t.options(),
        Some(&mut |k, v| feed.record(k, v)),
    )
    .unwrap();
    // Another load finishes before the feed is committed.
    t.load_fixture("credit");
    let synced = feed.finish(t.store.reader(), r.load_id as u32, options(), &Progress::quiet()).unwrap();
    assert_eq!(synced.mode, "caught_up");
    let entities = records(&t, Registry::Entities).len() as u64;
    assert_eq!(layer.index.count_registry(Registry::Entities as u8).unwrap(), entities, "each record once");
    assert_eq!(layer.index.count_registry(Registry::Credit as u8).unwrap(), records(&t, Registry::Credit).len() as u64);
    // A stale index (behind the store) gives no feed.
    t.load_fixture("licences");
    assert!(layer.bulk_feed(t.store.reader(), Registry::Parcels, options()).unwrap().is_none(), "behind the store");
}

#[test]
fn an_index_from_another_store_state_is_rebuilt() {
    let t = TestStore::loaded();
    let layer = synced(&t);
    let docs = layer.index.num_docs();
    drop(layer);
    // An index that claims to have seen more than the store holds (a store restored from an
    // older backup): rebuilt, not trusted.
    let fresh = TestStore::new();
    fresh.load_fixture("citizens");
    std::fs::rename(TextLayer::dir_of(&t.store), TextLayer::dir_of(&fresh.store)).unwrap();
    let layer = TextLayer::open(&fresh.store).unwrap();
    assert_eq!(layer.index.num_docs(), docs);
    assert_eq!(layer.sync(fresh.store.reader(), options(), &Progress::quiet()).unwrap().mode, "rebuilt");
    assert_eq!(layer.index.num_docs(), records(&fresh, Registry::Citizens).len() as u64);
    // `jichu reindex` builds the same from nothing.
    drop(layer);
    let (layer, report) = TextLayer::rebuild(&fresh.store, options(), &Progress::quiet()).unwrap();
    assert_eq!(report.indexed, layer.index.num_docs());
}

async fn search(s: &Server, path: &str, body: Value) -> Value {
    let (status, _, json) = s.post(path, &body).await;
    assert_eq!(status, 200, "{body} → {json}");
    json
}

#[tokio::test]
async fn the_search_api_ranks_pages_filters_and_explains_its_errors() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    // Typed: by name, with a birth year and then a full date.
    let r = search(&s, "/v1/citizens/search", json!({"name": "林秀英", "filters": {"birth_date": "1953"}})).await;
    assert_eq!(r["hits"][0]["id"], "350203195302111033");
    assert_eq!(r["hits"][0]["record"]["name"], "林秀英");
    let r = search(&s, "/v1/citizens/search", json!({"name": "林秀英", "filters": {"birth_date": "1953-02-12"}})).await;
    assert_eq!(r["total"], 0);
    // By address; by a fragment of a company name; projection.
    let r =
        search(&s, "/v1/citizens/search", json!({"address": "湖滨南路", "fields": ["address", "household_address"]}))
            .await;
    assert!(r["total"].as_u64().unwrap() >= 1);
    for h in r["hits"].as_array().unwrap() {
        let rec = &h["record"];
        let text = format!("{}{}", rec["address"], rec["household_address"]);
        assert!(text.contains("湖滨南路"), "{rec}");
        assert!(rec.get("name").is_none());
    }
    let r = search(&s, "/v1/entities/search", json!({"q": "科技"})).await;
    assert!(r["hits"].as_array().unwrap().iter().all(|h| h["record"]["name"].as_str().unwrap().contains("科技")));
    // Licences of a holder, by the holder's name (followed through citizens and entities).
    let r = search(&s, "/v1/licences/search", json!({"subject_name": "陈志强"})).await;
    assert!(r["total"].as_u64().unwrap() >= 1);
    assert!(r["hits"].as_array().unwrap().iter().all(|h| h["record"]["holder_id"] == "35020319500110100X"));
    // Every registry at once.
    let r = search(&s, "/v1/search", json!({"q": "鹭岛", "fields": ["name"]})).await;
    let regs: Vec<&str> = r["hits"].as_array().unwrap().iter().map(|h| h["registry"].as_str().unwrap()).collect();
    assert!(regs.contains(&"entities"), "{regs:?}");
    // Filter values are made canonical as loads store them: code synonyms, identifier forms.
    let women = search(&s, "/v1/citizens/search", json!({"q": "福建", "filters": {"gender": "女"}})).await;
    let f = search(&s, "/v1/citizens/search", json!({"q": "福建", "filters": {"gender": ["F"]}})).await;
    assert_eq!(f["total"], women["total"]);
    let r = search(&s, "/v1/entities/search", json!({"q": "厦门", "filters": {"legal_rep_id": "35020319500110100x"}}))
        .await;
    assert!(r["total"].as_u64().unwrap() >= 1);
    assert!(r["hits"].as_array().unwrap().iter().all(|h| h["record"]["legal_rep_id"] == "35020319500110100X"));
    // Across registries, narrowed to a district (from a citizen's or a company's key).
    let r = search(&s, "/v1/search", json!({"q": "厦门", "filters": {"district": "350203"}, "limit": 100})).await;
    assert!(r["total"].as_u64().unwrap() > 0);
    for h in r["hits"].as_array().unwrap() {
        let id = h["id"].as_str().unwrap();
        match h["registry"].as_str().unwrap() {
            "citizens" => assert!(id.starts_with("350203"), "{id}"),
            "entities" => assert_eq!(&id[2..8], "350203", "{id}"),
            _ => {}
        }
    }
    // Pages: disjoint, in order, and together the one-page answer.
    let all = search(&s, "/v1/citizens/search", json!({"q": "福建", "limit": 100})).await;
    let total = all["total"].as_u64().unwrap() as usize;
    assert!(total > 10);
    // Below 10,000 matches the bounded count is the exact one.
    assert_eq!(all["total_exact"], true);
    let exact = search(&s, "/v1/citizens/search", json!({"q": "福建", "limit": 100, "exact_total": true})).await;
    assert_eq!((&exact["total"], &exact["total_exact"]), (&all["total"], &json!(true)));
    let mut paged = Vec::new();
    let mut body = json!({"q": "福建", "limit": 3});
    loop {
        let page = search(&s, "/v1/citizens/search", body.clone()).await;
        paged.extend(page["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => body["cursor"] = json!(c),
            None => break,
        }
    }
    let one: Vec<Value> = all["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect();
    assert_eq!(paged, one);
    assert_eq!(paged.len(), total);
    // Errors: 400 with a problem that says why.
    let long = "湖".repeat(201);
    for (body, code, says) in [
        (json!({"q": ""}), "bad_request", "empty"),
        (json!({"q": long}), "bad_request", "at most 200"),
        (json!({"q": "，。"}), "bad_request", "nothing to search"),
        (json!({"q": "王", "filters": {"colour": "red"}}), "unknown_field", "colour"),
        (json!({"q": "王", "in": ["phone"]}), "unknown_field", "phone"),
        (json!({"q": "王", "filters": {"birth_date": "yesterday"}}), "bad_request", "birth_date"),
        (json!({"q": "王", "limit": 0}), "bad_request", "limit"),
        (json!({"q": "王", "cursor": "garbage"}), "bad_request", "cursor"),
        (json!({"filters": {"gender": "女"}}), "bad_request", "filters alone"),
        (json!({"q": "王", "nonsense": 1}), "bad_request", "nonsense"),
        (json!({"q": "王", "filters": {"gender": "X"}}), "bad_request", "gender"),
    ] {
        let (status, ct, p) = s.post("/v1/citizens/search", &body).await;
        assert_eq!((status, ct.as_str(), p["code"].as_str()), (400, "application/problem+json", Some(code)), "{body}");
        assert!(p["detail"].as_str().unwrap().contains(says), "{body} → {p}");
    }
    // Cursors: beyond the window a 400, never an overflow; the last page stops at the window.
    let first = search(&s, "/v1/citizens/search", json!({"q": "福建", "limit": 1})).await;
    let generation = first["next_cursor"].as_str().unwrap().split_once('.').unwrap().1.to_string();
    let huge = json!({"q": "福建", "cursor": format!("18446744073709551610.{generation}")});
    let (status, _, p) = s.post("/v1/citizens/search", &huge).await;
    assert_eq!((status, p["code"].as_str()), (400, Some("bad_request")), "{p}");
    let last = json!({"q": "福建", "limit": 30, "cursor": format!("9990.{generation}")});
    let r = search(&s, "/v1/citizens/search", last).await;
    assert!(r["next_cursor"].is_null());
    let (status, _, p) = s.post("/v1/citizens/search", &json!({"q": "王", "cursor": "20.ffff.1.0"})).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("stale_cursor")));
    let (status, _, _) = s.post("/v1/nowhere/search", &json!({"q": "王"})).await;
    assert_eq!(status, 404);
}

/// A load the index has not seen whose path was bulk (it logs no changes) is found by a scan
/// of the store; where the index already holds documents of its records, they are replaced,
/// not doubled.
#[test]
fn an_unlogged_load_replaces_the_documents_a_scan_finds() {
    let t = TestStore::loaded();
    let layer = synced(&t);
    let citizens = Registry::Citizens as u8;
    let before = layer.index.count_registry(citizens).unwrap();
    let record = records(&t, Registry::Citizens).into_iter().find(|r| !r.ended).unwrap();
    let name = record.text("name").unwrap().to_string();
    let value = t.store.reader().get_raw(Registry::Citizens, &record.id).unwrap().unwrap();
    let mut w = t.store.writer();
    let id = w.begin_load(None, Registry::Citizens, "测试", vec![], "delta").unwrap();
    let rewritten = codec::with_header(&value, codec::Header { load_id: id, ..Default::default() }).unwrap();
    w.put_record(Registry::Citizens, record.id.as_bytes(), &rewritten, Some(&value)).unwrap();
    w.commit().unwrap();
    w.finish_load(id, json!({ "path": "bulk" })).unwrap();
    drop(w);
    let report = layer.sync(t.store.reader(), options(), &Progress::quiet()).unwrap();
    assert_eq!((report.mode, report.indexed), ("caught_up", 1));
    assert_eq!(layer.index.count_registry(citizens).unwrap(), before, "replaced, not added");
    let found = keys(&layer, &query(Registry::Citizens, &name, &["name"]));
    assert_eq!(found.iter().filter(|k| **k == record.id).count(), 1, "{name}: {found:?}");
}

/// `jichu stats` measures the full-text index field by field: the registries' own names carry
/// norms, in one shared field (one byte of norms a document for all), dates
/// are fast columns only (range filters read the column), and the parts add up to no more
/// than the index's files.
#[test]
fn the_footprint_measures_the_full_text_index_field_by_field() {
    let t = TestStore::loaded();
    drop(synced(&t));
    let f = jichu::footprint::Footprint::measure(&t.store);
    let field = |name: &str| {
        let holds = |p: &&jichu::footprint::TextFieldPart| p.field.split('|').any(|member| member == name);
        f.full_text_fields.iter().find(holds).unwrap_or_else(|| panic!("{name} is measured"))
    };
    let name = field("citizens.name");
    assert!(name.postings > 0 && name.norms > 0 && name.terms > 0, "{name:?}");
    assert_eq!(name.field, "citizens.name|entities.name|licences.holder_name");
    let mut normed: Vec<&str> = f.full_text_fields.iter().filter(|p| p.norms > 0).map(|p| p.field.as_str()).collect();
    normed.sort();
    assert_eq!(normed, [name.field.as_str()], "one byte a document");
    let representative = field("entities.legal_rep_name");
    assert!(representative.postings > 0 && representative.norms == 0, "{representative:?}");
    let address = field("citizens.address");
    assert!(address.postings > 0 && address.norms == 0, "addresses are not length-normed: {address:?}");
    let born = field("birth_date");
    assert!(born.fast > 0 && born.postings == 0 && born.terms == 0, "dates are columns only: {born:?}");
    assert!(field("uid_v2").fast > 0);
    let sum: u64 = f.full_text_fields.iter().map(|p| p.terms + p.postings + p.norms + p.fast).sum();
    assert!(sum > 0 && sum <= f.full_text_bytes, "{sum} of {}", f.full_text_bytes);
    assert!(f.markdown().contains("| citizens.name|entities.name|licences.holder_name |"));
}

/// Reference filters (`holder_id`, `subject_id`, `legal_rep_id`) and `subject_name` are
/// answered from the store's relation edges (the index holds no term for references): for
/// sampled values, exactly the records the extracts give them — many, one, none, a
/// reference to a citizen who was never loaded — and ended records only when asked for.
#[tokio::test]
async fn reference_filters_find_exactly_the_records_that_hold_the_value() {
    use std::collections::HashMap;
    let t = TestStore::new();
    let dir = t.dir.path().join("gen");
    jichu::generator::generate(&dir, &jichu::generator::GenOptions { citizens: 3_000, seed: 5 }).unwrap();
    let csv = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
    // Every seventh citizen is left out: references to them dangle.
    let citizens = csv("citizens");
    let kept: Vec<&str> = citizens.lines().enumerate().filter(|(i, _)| *i == 0 || i % 7 != 0).map(|(_, l)| l).collect();
    std::fs::write(dir.join("citizens-kept.csv"), kept.join("\n") + "\n").unwrap();
    t.try_load(&dir.join("citizens.toml"), &[dir.join("citizens-kept.csv")], &t.options()).unwrap();
    for name in ["entities", "licences", "credit"] {
        t.try_load(&dir.join(format!("{name}.toml")), &[dir.join(format!("{name}.csv"))], &t.options()).unwrap();
    }
    // Licences sent again as a snapshot without their first 40 rows: those are ended.
    let licences = csv("licences");
    let rest: Vec<&str> = licences.lines().enumerate().filter(|(i, _)| *i == 0 || *i > 40).map(|(_, l)| l).collect();
    std::fs::write(dir.join("licences-rest.csv"), rest.join("\n") + "\n").unwrap();
    let spec =
        std::fs::read_to_string(dir.join("licences.toml")).unwrap().replace("mode = \"delta\"", "mode = \"snapshot\"");
    std::fs::write(dir.join("licences-snapshot.toml"), spec).unwrap();
    let r = t.try_load(&dir.join("licences-snapshot.toml"), &[dir.join("licences-rest.csv")], &t.options()).unwrap();
    assert_eq!(r.ended, 40);
    let s = Server::start(t.store.clone()).await;

    for (registry, column, field) in [
        ("licences", "持证主体代码", "holder_id"),
        ("credit", "主体代码", "subject_id"),
        ("entities", "法定代表人身份证号", "legal_rep_id"),
    ] {
        let text = csv(registry);
        let mut lines = text.lines();
        let at = lines.next().unwrap().split(',').position(|c| c == column).unwrap();
        // (all records, current records) a value is held by.
        let mut held: HashMap<String, (u64, u64)> = HashMap::new();
        for (i, line) in lines.enumerate() {
            let n = held.entry(line.split(',').nth(at).unwrap().to_string()).or_default();
            n.0 += 1;
            n.1 += u64::from(registry != "licences" || i >= 40);
        }
        let mut values: Vec<(&String, &(u64, u64))> = held.iter().collect();
        values.sort_by_key(|(v, n)| (std::cmp::Reverse(n.0), *v));
        let mut sample: Vec<(&String, &(u64, u64))> = values.iter().step_by(values.len() / 12).copied().collect();
        sample.extend(values.iter().filter(|(_, n)| n.0 != n.1).take(3)); // holders of ended licences
        assert!(sample.iter().any(|(_, n)| n.0 > 1), "{registry}: a value held more than once");
        // Every record of the registry matches `厦门` (an address or an authority).
        let all = search(&s, &format!("/v1/{registry}/search"), json!({"q": "厦门", "exact_total": true})).await;
        assert_eq!(all["total"], held.values().map(|n| n.1).sum::<u64>(), "{registry}: the text matches every record");
        for (value, &(with_ended, current)) in sample {
            for (include_ended, expected) in [(false, current), (true, with_ended)] {
                let body =
                    json!({"q": "厦门", "filters": {field: value}, "include_ended": include_ended, "limit": 100});
                let r = search(&s, &format!("/v1/{registry}/search"), body).await;
                assert_eq!(r["total"], expected, "{registry} {field}={value} include_ended={include_ended}");
                assert!(r["hits"].as_array().unwrap().iter().all(|h| h["record"][field] == **value));
            }
        }
        let none = "11010519491231002X"; // valid, and no generated record holds it
        let r = search(&s, &format!("/v1/{registry}/search"), json!({"q": "厦门", "filters": {field: none}})).await;
        assert_eq!(r["total"], 0, "{registry}: a valid identifier no record holds");
    }

    // `subject_name`: the current licences of every citizen and entity whose name matches.
    let rows: Vec<Vec<&str>> = licences.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let name = rows[100][3];
    let mut subjects = std::collections::HashSet::new();
    for registry in ["citizens", "entities"] {
        let found = search(&s, &format!("/v1/{registry}/search"), json!({"name": name, "limit": 100})).await;
        assert!(found["total"].as_u64().unwrap() < 100);
        subjects.extend(found["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()));
    }
    let expected = rows.iter().enumerate().filter(|(i, r)| *i >= 40 && subjects.contains(r[2])).count();
    assert!(expected >= 1, "{name}");
    let r = search(&s, "/v1/licences/search", json!({"subject_name": name, "limit": 100})).await;
    assert_eq!(r["total"], expected as u64, "{name}: {subjects:?}");
    for h in r["hits"].as_array().unwrap() {
        assert!(h["record"]["holder_id"].as_str().is_some_and(|id| subjects.contains(id)), "{h}");
    }
}

/// A bulk build writes every segment in uid order (each registry fed in key order, each
/// indexing thread taking its batches in turn): what lets a reference filter check its
/// records in place. Were tantivy to hand documents to its threads otherwise, answers would
/// stay exact (the filter falls back to reading every uid) but slow; this test says so.
#[test]
fn a_bulk_build_writes_its_segments_in_uid_order() {
    let t = TestStore::new();
    let dir = t.dir.path().join("gen");
    jichu::generator::generate(&dir, &jichu::generator::GenOptions { citizens: 30_000, seed: 9 }).unwrap();
    for name in ["citizens", "entities", "licences"] {
        t.try_load(&dir.join(format!("{name}.toml")), &[dir.join(format!("{name}.csv"))], &t.options()).unwrap();
    }
    let layer = TextLayer::open(&t.store).unwrap();
    // The smallest share a thread may have: its segments are written as it fills.
    let small = WriterOptions { threads: 2, memory_bytes: 32 << 20, no_merge: true };
    layer.sync(t.store.reader(), small, &Progress::quiet()).unwrap();
    drop(layer);
    let s = jichu::footprint::Footprint::measure(&t.store).full_text_segments;
    assert!(s.segments >= 2, "{s:?}");
    assert_eq!((s.in_uid_order, s.documents_elsewhere), (s.segments, 0), "{s:?}");
}
