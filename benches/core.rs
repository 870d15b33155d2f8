//! Micro-benchmarks of the hot paths: `cargo bench --bench core`.
//!
//! Identifier validation, the value codec, and point reads (get, 100-key multi-get, hits and
//! misses) over a store of generated citizens (`JICHU_BENCH_CITIZENS`, default 200k).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jichu::generator::{citizen_id, entity_id};
use jichu::load::{LoadOptions, load};
use jichu::model::Registry;
use jichu::model::ids::{parse_credit_code, parse_resident_id};
use jichu::store::codec::{self, Header};
use jichu::store::{Store, StoreOptions};
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
    let raw = store.get_raw(Registry::Citizens, &citizen_id(7)).unwrap().unwrap();
    let record = codec::decode(Registry::Citizens, "x", &raw).unwrap();
    println!("encoded citizen value: {} bytes", raw.len());
    c.bench_function("codec_decode_citizen", |b| {
        b.iter(|| black_box(codec::decode(Registry::Citizens, "x", &raw).unwrap()))
    });
    let header = Header { load_id: 1, ended: false, needs_review: false };
    c.bench_function("codec_encode_citizen", |b| {
        b.iter(|| black_box(codec::encode(header, &record.values, &record.extras)))
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

fn all(c: &mut Criterion) {
    validators(c);
    let n: u64 = std::env::var("JICHU_BENCH_CITIZENS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let extracts = dir.path().join("extracts");
    jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens: n, seed: 1 }).unwrap();
    let store = Store::open(&dir.path().join("store"), &StoreOptions::default()).unwrap();
    let spec_path = extracts.join("citizens.toml");
    let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
    load(&store, &spec, &spec_path, &[extracts.join("citizens.csv")], &LoadOptions::new(dir.path())).unwrap();
    codec_bench(c, &store);
    reads(c, &store, n);
}

criterion_group!(benches, all);
criterion_main!(benches);
