//! Full-text benchmark: `cargo bench --bench search -- [--citizens N] [--keep DIR] [--baseline N]
//! [--rebuild] [--latency-only]`.
//!
//! Loads N citizens and 0.3 N entities (unless DIR already holds them; `--rebuild` then
//! rebuilds the index from the store), then measures (`--latency-only`: the last part only):
//! - indexing: the sync after the citizens load (citizen documents/s), the catch-up after the
//!   entities load, and index bytes per document;
//! - an A/B in the same run over the first `--baseline` citizens (default 1M): jichu's design
//!   against a plain tantivy writer (NgramTokenizer 1–2 with positions on name and both
//!   addresses), both fed from the same store scan with the same threads and memory;
//! - quality: recall of name + birth date for 1,000 sampled citizens; precision of road-name
//!   queries against a scan of every citizen's addresses; 2-character fragments of company
//!   names against a scan of every entity name;
//! - latency, single client, in process, 10,000 queries each: full names, 2-character
//!   fragments of company names, road names in addresses — search alone (top 20 with the
//!   exact total) and search plus fetching the 20 records from the store, as the API does.

use chrono::Datelike;
use jichu::load::{LoadOptions, Progress, load};
use jichu::model::{Record, Registry};
use jichu::store::{Store, StoreOptions, codec};
use jichu::text::TextLayer;
use jichu_indexes::text::{Filter, Match, SearchQuery, WriterOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

mod common;
use common::arg;

fn percentiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1e6;
    format!("p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms", p(0.5), p(0.99), p(0.999), p(1.0))
}

fn writer_options() -> WriterOptions {
    WriterOptions { no_merge: true, ..WriterOptions::default() }
}

fn load_one(store: &Store, extracts: &Path, data: &Path, name: &str) {
    let spec_path = extracts.join(format!("{name}.toml"));
    let spec = jichu_ingest::Spec::from_path(&spec_path).expect("spec");
    let r =
        load(store, &spec, &spec_path, &[extracts.join(format!("{name}.csv"))], &LoadOptions::new(data)).expect("load");
    println!("loaded {name}: {} rows at {:.0} rows/s (store only)", r.inserted, r.rows_per_second);
}

fn sync(store: &Store, what: &str) {
    let layer = TextLayer::open(store).expect("open index");
    let r = layer.sync(store.reader(), writer_options(), &Progress::quiet()).expect("sync");
    println!(
        "indexed {what}: {} documents in {:.1} s = {:.0} documents/s ({})",
        r.indexed, r.seconds, r.docs_per_second, r.mode
    );
}

fn decode(registry: Registry, k: &[u8], v: &[u8]) -> Record {
    codec::decode(registry, std::str::from_utf8(k).expect("key"), v).expect("decode")
}

/// jichu's index over the first `n` citizens, in a side folder: documents/s and bytes/doc.
fn ours(store: &Store, dir: &Path, n: usize) -> (f64, f64) {
    let layer = TextLayer::open_in(dir).expect("open");
    let t = Instant::now();
    let mut w = layer.index.writer(writer_options()).expect("writer");
    for kv in store.scan(Registry::Citizens).take(n) {
        let (k, v) = kv.expect("scan");
        let doc = layer.document(&w, &decode(Registry::Citizens, &k, &v));
        w.add(doc).expect("add");
    }
    w.commit("{}").expect("commit");
    w.finish().expect("finish");
    let rate = n as f64 / t.elapsed().as_secs_f64();
    layer.index.reload().expect("reload");
    (rate, layer.index.disk_bytes() as f64 / n as f64)
}

/// The plain design the issue names: unigram+bigram n-grams with positions on name and both
/// addresses, tantivy's own tokenizer, same threads and memory.
fn plain(store: &Store, dir: &Path, n: usize) -> (f64, f64) {
    use tantivy::schema::{IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions};
    use tantivy::tokenizer::{LowerCaser, NgramTokenizer, TextAnalyzer};
    let mut b = Schema::builder();
    let uid = b.add_text_field("uid", STRING | STORED);
    let opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("ngram12")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = [
        ("name", b.add_text_field("name", opts.clone())),
        ("household_address", b.add_text_field("household_address", opts.clone())),
        ("address", b.add_text_field("address", opts)),
    ];
    std::fs::create_dir_all(dir).expect("dir");
    let index = tantivy::Index::create_in_dir(dir, b.build()).expect("create");
    let ngram = NgramTokenizer::new(1, 2, false).expect("ngram");
    index.tokenizers().register("ngram12", TextAnalyzer::builder(ngram).filter(LowerCaser).build());
    let o = WriterOptions::default();
    let t = Instant::now();
    let w: tantivy::IndexWriter = index.writer_with_num_threads(o.threads, o.memory_bytes).expect("writer");
    w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    let mut w = w;
    for kv in store.scan(Registry::Citizens).take(n) {
        let (k, v) = kv.expect("scan");
        let r = decode(Registry::Citizens, &k, &v);
        let mut doc = tantivy::TantivyDocument::new();
        doc.add_text(uid, &r.id);
        for (name, f) in fields {
            if let Some(s) = r.text(name) {
                doc.add_text(f, s);
            }
        }
        w.add_document(doc).expect("add");
    }
    w.commit().expect("commit");
    w.wait_merging_threads().expect("merge");
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let bytes: u64 =
        std::fs::read_dir(dir).expect("dir").filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    (rate, bytes as f64 / n as f64)
}

fn query(registry: Registry, text: &str, fields: &[&str]) -> SearchQuery {
    SearchQuery {
        matches: vec![Match {
            text: text.into(),
            fields: fields.iter().map(|f| jichu::text::field_name(registry, f)).collect(),
        }],
        limit: 20,
        ..SearchQuery::default()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let baseline: usize = arg("--baseline").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join(format!("search-{citizens}"));
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("open");
    if store.count(Registry::Citizens) != citizens || store.count(Registry::Entities) == 0 {
        let extracts = root.join(format!("extracts-{citizens}"));
        jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 5 }).expect("generate");
        load_one(&store, &extracts, &data, "citizens");
        sync(&store, "after the citizens load");
        load_one(&store, &extracts, &data, "entities");
        sync(&store, "after the entities load");
        let _ = std::fs::remove_dir_all(&extracts);
    } else {
        if std::env::args().any(|a| a == "--rebuild") {
            std::fs::remove_dir_all(TextLayer::dir_of(&store)).ok();
        }
        sync(&store, "from the store");
    }
    let layer = TextLayer::open(&store).expect("open");
    let docs = layer.index.num_docs();
    println!(
        "index: {docs} documents, {:.1} bytes/document on disk ({:.2} GB)",
        layer.index.disk_bytes() as f64 / docs as f64,
        layer.index.disk_bytes() as f64 / 1e9
    );

    let quick = std::env::args().any(|a| a == "--latency-only");
    // A/B over the same citizens, same run.
    let n = if quick { 0 } else { baseline.min(citizens as usize) };
    let ab = root.join("ab");
    let _ = std::fs::remove_dir_all(&ab);
    let (plain_rate, plain_bytes) = if n == 0 { (0.0, 0.0) } else { plain(&store, &ab.join("plain"), n) };
    let (our_rate, our_bytes) = if n == 0 { (0.0, 0.0) } else { ours(&store, &ab.join("ours"), n) };
    let (plain_rate2, _) = if n == 0 { (0.0, 0.0) } else { plain(&store, &ab.join("plain2"), n) };
    let _ = std::fs::remove_dir_all(&ab);
    println!(
        "A/B over {n} citizens: jichu {our_rate:.0} docs/s, {our_bytes:.1} B/doc; plain ngram(1,2)+positions \
         {plain_rate:.0} then {plain_rate2:.0} docs/s, {plain_bytes:.1} B/doc"
    );

    // Samples: citizens and entities that exist.
    let mut rng = SmallRng::seed_from_u64(17);
    let entities = store.count(Registry::Entities);
    let people: Vec<Record> = (0..10_000)
        .filter_map(|_| {
            store.get(Registry::Citizens, &jichu::generator::citizen_id(rng.random_range(0..citizens))).ok()?
        })
        .collect();
    let companies: Vec<Record> = (0..10_000)
        .filter_map(|_| {
            store.get(Registry::Entities, &jichu::generator::entity_id(rng.random_range(0..entities))).ok()?
        })
        .collect();

    let names: Vec<String> = people.iter().filter_map(|p| p.text("name").map(str::to_string)).collect();
    let roads: Vec<String> = {
        let mut r: Vec<String> = people
            .iter()
            .filter_map(|p| {
                let a = p.text("address")?;
                let start = a.find('区')? + '区'.len_utf8();
                let end = a.find(|c: char| c.is_ascii_digit())?;
                Some(a[start..end].to_string())
            })
            .collect();
        r.sort();
        r.dedup();
        r
    };
    let fragments: Vec<String> = companies
        .iter()
        .map(|c| {
            let chars: Vec<char> = c.text("name").unwrap_or_default().chars().collect();
            let i = rng.random_range(0..chars.len() - 1);
            chars[i..i + 2].iter().collect()
        })
        .collect();
    if !quick {
        quality(&store, &layer, &people, &roads, &fragments);
    }
    latency(&store, &layer, &names, &roads, &fragments);
}

fn quality(store: &Store, layer: &TextLayer, people: &[Record], roads: &[String], fragments: &[String]) {
    // Recall: name + birth date finds the person.
    let mut found = 0;
    for p in people.iter().take(1000) {
        let Some(jichu_ingest::Value::Date(d)) = p.value("birth_date") else { continue };
        let day = d.num_days_from_ce();
        let mut q = query(Registry::Citizens, p.text("name").unwrap_or_default(), &["name"]);
        q.filters = vec![Filter::Dates { field: "birth_date".into(), from: day, to: day }];
        q.limit = 100;
        found += layer.index.search(&q).expect("search").hits.iter().any(|h| h.key == p.id) as u32;
    }
    println!("recall, name + birth date: {found} of 1000 sampled citizens found");

    // Precision of road names, and exactness of 2-character fragments, against full scans.
    let distinct_fragments: Vec<String> = {
        let mut f = fragments.to_vec();
        f.sort();
        f.dedup();
        f.truncate(200);
        f
    };
    let t = Instant::now();
    let mut road_truth: HashMap<&str, u64> = HashMap::new();
    for kv in store.scan(Registry::Citizens) {
        let (k, v) = kv.expect("scan");
        let r = decode(Registry::Citizens, &k, &v);
        let text =
            format!("{}|{}", r.text("address").unwrap_or_default(), r.text("household_address").unwrap_or_default());
        for road in roads {
            if text.contains(road.as_str()) {
                *road_truth.entry(road).or_default() += 1;
            }
        }
    }
    let mut fragment_truth: HashMap<&str, u64> = HashMap::new();
    for kv in store.scan(Registry::Entities) {
        let (k, v) = kv.expect("scan");
        let name = decode(Registry::Entities, &k, &v).text("name").unwrap_or_default().to_string();
        for f in &distinct_fragments {
            if name.contains(f.as_str()) {
                *fragment_truth.entry(f).or_default() += 1;
            }
        }
    }
    let (mut true_hits, mut index_hits, mut worst) = (0u64, 0u64, 1.0f64);
    for road in roads {
        let total = layer.index.search(&query(Registry::Citizens, road, &["address"])).expect("q").total;
        let truth = road_truth.get(road.as_str()).copied().unwrap_or(0);
        assert!(total >= truth, "{road}: the index found {total}, the scan {truth}: recall below 100%");
        true_hits += truth;
        index_hits += total;
        worst = worst.min(truth as f64 / total.max(1) as f64);
    }
    println!(
        "precision, {} road names in citizens' addresses: {:.4} overall, {:.4} for the worst road; recall 1.0 (checked)",
        roads.len(),
        true_hits as f64 / index_hits.max(1) as f64,
        worst
    );
    let exact = distinct_fragments
        .iter()
        .filter(|f| {
            layer.index.search(&query(Registry::Entities, f, &["name"])).expect("q").total
                == fragment_truth.get(f.as_str()).copied().unwrap_or(0)
        })
        .count();
    println!(
        "2-character fragments of company names: {exact} of {} give exactly the scan's count (scans took {:.1} s)",
        distinct_fragments.len(),
        t.elapsed().as_secs_f64()
    );
}

fn latency(store: &Store, layer: &TextLayer, names: &[String], roads: &[String], fragments: &[String]) {
    let names = names.to_vec();
    let fragments = fragments.to_vec();
    let addresses: Vec<String> = (0..10_000).map(|i| roads[i % roads.len()].clone()).collect();
    let cases: [(&str, Registry, &[&str], &Vec<String>); 3] = [
        ("full names (citizens.name)", Registry::Citizens, &["name"], &names),
        ("2-character fragments (entities.name)", Registry::Entities, &["name"], &fragments),
        ("road names (citizens' two addresses)", Registry::Citizens, &["address"], &addresses),
    ];
    for (what, registry, fields, texts) in cases {
        let (mut search_ns, mut full_ns, mut totals) = (Vec::new(), Vec::new(), 0u64);
        for text in texts.iter() {
            let t = Instant::now();
            let hits = layer.index.search(&query(registry, text, fields)).expect("search");
            search_ns.push(t.elapsed().as_nanos() as u64);
            let keys: Vec<String> = hits.hits.iter().map(|h| h.key.clone()).collect();
            std::hint::black_box(store.get_many(registry, &keys).expect("fetch"));
            full_ns.push(t.elapsed().as_nanos() as u64);
            totals += hits.total;
        }
        println!("{what}, {} queries, mean total {:.0}:", texts.len(), totals as f64 / texts.len() as f64);
        println!("  search:            {}", percentiles(search_ns));
        println!("  search + 20 fetch: {}", percentiles(full_ns));
    }
}
