//! Micro-benchmarks of the hot paths: `cargo bench --bench core`.
//!
//! Identifier validation, the value codec, point reads (get, 100-key multi-get, hits and
//! misses), full-text searches (full name, 2-character fragment, road name) and spatial
//! queries (kNN-10, 500 m count, containing point) over generated citizens, entities and
//! parcels (`JICHU_BENCH_CITIZENS` citizens, default 200k).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jichu::generator::{citizen_id, citizen_name, entity_id};
use jichu::load::{LoadOptions, load_indexed};
use jichu::model::Registry;
use jichu::model::ids::{parse_credit_code, parse_resident_id};
use jichu::spatial::SpatialIndex;
use jichu::store::codec::{self, Header};
use jichu::store::{Store, StoreOptions};
use jichu::text::TextLayer;
use jichu_indexes::text::{Match, SearchQuery, WriterOptions};
use std::hint::black_box;

fn validators(c: &mut Criterion) {
    let ids: Vec<String> = (0..1024).map(citizen_id).collect();
    let codes: Vec<String> = (0..1024).map(entity_id).collect();
    let mut i = 0;
    c.bench_function("parse_resident_id", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(parse_resident_id(&ids[i]).is_ok())
        })
    });
    c.bench_function("parse_credit_code", |b| {
        b.iter(|| {
            i = (i + 1) % codes.len();
            black_box(parse_credit_code(&codes[i]).is_ok())
        })
    });
}

fn codec_bench(c: &mut Criterion, store: &Store) {
    let raw = store.reader().get_raw(Registry::Citizens, &citizen_id(7)).unwrap().unwrap();
    let record = codec::decode(Registry::Citizens, "x", &raw).unwrap();
    println!("encoded citizen value: {} bytes", raw.len());
    c.bench_function("codec_decode_citizen", |b| {
        b.iter(|| black_box(codec::decode(Registry::Citizens, "x", &raw).unwrap()))
    });
    let header = Header { load_id: 1, ..Header::default() };
    c.bench_function("codec_encode_citizen", |b| {
        b.iter(|| black_box(codec::encode(header, &record.values, &record.extras, store.value_coding())))
    });
}

fn reads(c: &mut Criterion, store: &Store, n: u64) {
    let mut i = 0u64;
    c.bench_function("get_hit", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % n;
                citizen_id(i)
            },
            |id| black_box(store.get(Registry::Citizens, &id).unwrap().is_some()),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("get_miss_valid_id", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % n;
                citizen_id(n + i)
            },
            |id| black_box(store.get(Registry::Citizens, &id).unwrap().is_none()),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("multi_get_100", |b| {
        b.iter_batched(
            || {
                (0..100)
                    .map(|k| {
                        i = (i + 7919) % n;
                        citizen_id(if k % 10 == 0 { n + i } else { i })
                    })
                    .collect::<Vec<_>>()
            },
            |ids| black_box(store.get_many(Registry::Citizens, &ids).unwrap().len()),
            BatchSize::SmallInput,
        )
    });
}

/// Full-text and spatial queries, through the calls the API handlers make.
fn queries(c: &mut Criterion, store: &Store, n: u64, seed: u64) {
    let text = TextLayer::open(store).unwrap();
    let spatial = SpatialIndex::open(store).unwrap();
    let search = |registry: Registry, field: &str, q: &str| SearchQuery {
        matches: vec![Match { text: q.into(), fields: vec![jichu::text::field_name(registry, field)] }],
        limit: 20,
        ..SearchQuery::default()
    };
    let names: Vec<String> = (0..1024).map(|i| citizen_name(seed, i * 7919 % n)).collect();
    let mut i = 0;
    c.bench_function("search_full_name", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            black_box(text.index.search(&search(Registry::Citizens, "name", &names[i])).unwrap().total)
        })
    });
    let fragments = ["科技", "贸易", "物流", "咨询", "建设", "鹭江", "海西", "餐饮"];
    c.bench_function("search_2char_fragment_entities", |b| {
        b.iter(|| {
            i = (i + 1) % fragments.len();
            black_box(text.index.search(&search(Registry::Entities, "name", fragments[i])).unwrap().total)
        })
    });
    let roads = jichu::generator::roads();
    c.bench_function("search_road_in_addresses", |b| {
        b.iter(|| {
            i = (i + 1) % roads.len();
            black_box(text.index.search(&search(Registry::Citizens, "address", roads[i])).unwrap().total)
        })
    });
    let [x0, y0, x1, y1] = jichu::generator::EXTENT;
    let points: Vec<(f64, f64)> = (0..1024)
        .map(|k| (x0 + (x1 - x0) * (k as f64 * 0.618 % 1.0), y0 + (y1 - y0) * (k as f64 * 0.414 % 1.0)))
        .collect();
    c.bench_function("near_knn10", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(spatial.citizens.index.nearest(points[i].0, points[i].1, 10, None).len())
        })
    });
    c.bench_function("near_radius_500m_count", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(spatial.citizens.index.count_within_radius(points[i].0, points[i].1, 500.0))
        })
    });
    c.bench_function("containing_point", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(spatial.parcels.index.containing(points[i].0, points[i].1).len())
        })
    });
}

fn all(c: &mut Criterion) {
    validators(c);
    let n: u64 = std::env::var("JICHU_BENCH_CITIZENS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let extracts = dir.path().join("extracts");
    jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens: n, seed: 1 }).unwrap();
    let store = Store::open(&dir.path().join("store"), &StoreOptions::default()).unwrap();
    for name in ["citizens", "entities", "parcels"] {
        let spec_path = extracts.join(format!("{name}.toml"));
        let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
        let csv = [extracts.join(format!("{name}.csv"))];
        load_indexed(&store, &spec, &spec_path, &csv, &LoadOptions::new(dir.path()), WriterOptions::default()).unwrap();
    }
    codec_bench(c, &store);
    reads(c, &store, n);
    queries(c, &store, n, 1);
}

criterion_group!(benches, all);
criterion_main!(benches);
