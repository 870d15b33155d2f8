//! Spatial benchmark: `cargo bench --bench spatial -- [--citizens N] [--keep DIR]`.
//!
//! Generates N citizens (with 0.3 N entities and 0.1 N parcels) unless DIR already holds a
//! loaded store of that size, loads citizens, entities and parcels, then measures: the spatial
//! index build from the store (what `jichu serve` does before its first answer), memory per
//! point, and single-thread in-process latency of kNN-10, 500 m radius counts and
//! containing-point over 10,000 random points of the city each, and of 50 km radius counts and
//! city-wide area counts (from node counts, against visiting every point); then the layered index (changes
//! over the packed base) against a rebuilt one, at 0.1% to 10% of the points changed.

use jichu::load::{LoadOptions, load};
use jichu::spatial::SpatialIndex;
use jichu::store::{Store, StoreOptions};
use jichu_indexes::spatial::Circle;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

mod common;
use common::arg;

fn percentiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    format!("p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs", p(0.5), p(0.99), p(0.999))
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join(format!("spatial-{citizens}"));
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("open");
    if store.count(jichu::model::Registry::Citizens) != citizens {
        let extracts = root.join(format!("extracts-{citizens}"));
        jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 3 }).expect("generate");
        for name in ["citizens", "entities", "parcels"] {
            let spec_path = extracts.join(format!("{name}.toml"));
            let spec = jichu_ingest::Spec::from_path(&spec_path).expect("spec");
            let r = load(&store, &spec, &spec_path, &[extracts.join(format!("{name}.csv"))], &LoadOptions::new(&data))
                .expect("load");
            println!("loaded {name}: {} rows at {:.0} rows/s", r.inserted, r.rows_per_second);
        }
        let _ = std::fs::remove_dir_all(&extracts);
    }
    drop(store);
    let t = Instant::now();
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("reopen");
    let _ = std::fs::remove_dir_all(SpatialIndex::dir_of(&store));
    let index = SpatialIndex::open(&store).expect("build");
    let open_and_build = t.elapsed().as_secs_f64();
    drop((index, store));
    let t = Instant::now();
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("reopen");
    let index = SpatialIndex::open(&store).expect("read back");
    let open_saved = t.elapsed().as_secs_f64();
    let points = index.citizens.index.len() + index.entities.index.len();
    // Served from their files: what a base takes is its mapped bytes (the heap holds none).
    let point_bytes = index.citizens.index.base().mapped_bytes() + index.entities.index.base().mapped_bytes();
    let parcel_bytes = index.parcels.index.base().mapped_bytes();
    let key_bytes = index.mapped_bytes() - point_bytes - parcel_bytes;

    let [x0, y0, x1, y1] = jichu::generator::EXTENT;
    let mut rng = SmallRng::seed_from_u64(11);
    let queries: Vec<(f64, f64)> = (0..10_000).map(|_| (rng.random_range(x0..x1), rng.random_range(y0..y1))).collect();
    let time_on = |queries: &[(f64, f64)], f: &dyn Fn(f64, f64) -> usize| -> (Vec<u64>, usize) {
        let mut total = 0;
        let ns = queries
            .iter()
            .map(|&(x, y)| {
                let t = Instant::now();
                total += std::hint::black_box(f(x, y));
                t.elapsed().as_nanos() as u64
            })
            .collect();
        (ns, total)
    };
    let time = |f: &dyn Fn(f64, f64) -> usize| time_on(&queries, f);
    let c = &index.citizens.index;
    let (knn, _) = time(&|x, y| c.nearest(x, y, 10, None).len());
    let (radius, found) = time(&|x, y| c.count_within_radius(x, y, 500.0));
    let (contains, hits) = time(&|x, y| index.parcels.index.containing(x, y).len());
    // Wide areas: counted from the tree's node counts, against visiting every point (the
    // baseline, on fewer queries: it is slow).
    let scan = |x: f64, y: f64| {
        let mut n = 0;
        let _ = c.visit_in(&Circle { lon: x, lat: y, radius_m: 50_000.0 }, |_, _| {
            n += 1;
            std::ops::ControlFlow::Continue(())
        });
        n
    };
    let (wide, wide_found) = time_on(&queries[..500], &|x, y| c.count_within_radius(x, y, 50_000.0));
    let (wide_scan, _) = time_on(&queries[..20], &scan);
    let city = [x0, y0, x1, y1];
    let (city_count, city_found) = time_on(&queries[..500], &|_, _| c.count_in(&city));
    let (city_first, _) = time_on(&queries[..500], &|_, _| {
        let mut n = 0;
        let _ = c.visit_in(&city, |_, _| {
            n += 1;
            if n < 100 { std::ops::ControlFlow::Continue(()) } else { std::ops::ControlFlow::Break(()) }
        });
        n
    });

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| citizens / entities / parcels indexed | {} / {} / {} |",
        c.len(),
        index.entities.index.len(),
        index.parcels.index.len()
    );
    println!(
        "| start-up after a load: open store + build, save and map the index | {open_and_build:.2} s ({:.0} points/s) |",
        points as f64 / open_and_build
    );
    println!("| start-up otherwise: open store + check and map the saved index | {open_saved:.2} s |");
    println!("| heap held by the index | {} bytes |", index.memory_bytes());
    println!(
        "| point index, mapped from its file | {:.1} bytes/point (+ {:.1} bytes/point of keys) |",
        point_bytes as f64 / points as f64,
        key_bytes as f64 / points as f64
    );
    println!(
        "| parcel index, mapped from its file | {:.0} bytes/parcel (geometry included) |",
        parcel_bytes as f64 / index.parcels.index.len().max(1) as f64
    );
    println!("| kNN-10, in process, 1 thread | {} |", percentiles(knn));
    println!(
        "| radius 500 m count | {} (mean {:.0} points counted) |",
        percentiles(radius),
        found as f64 / queries.len() as f64
    );
    println!(
        "| radius 50 km count, from node counts | {} (mean {:.0} points counted) |",
        percentiles(wide),
        wide_found as f64 / 500.0
    );
    println!("| radius 50 km count, visiting every point (baseline) | {} |", percentiles(wide_scan));
    println!(
        "| within the whole city: count from node counts | {} ({} points) |",
        percentiles(city_count),
        city_found / 500
    );
    println!("| within the whole city: first 100 points | {} |", percentiles(city_first));
    println!(
        "| containing point | {} ({:.0}% of points in a parcel) |",
        percentiles(contains),
        100.0 * hits as f64 / queries.len() as f64
    );
    layered(&store, &queries);
}

/// The layered index against a rebuilt one: kNN-10 and 500 m counts with a changed part of
/// 0.1% to 10% of the points (moved points: masked in the base, added to the rstar layer),
/// and what applying the changes and rebuilding cost. Where the layer's cost passes a
/// rebuild's is the fold threshold (`jichu::spatial::FOLD_FRACTION`).
fn layered(store: &Store, queries: &[(f64, f64)]) {
    use jichu_indexes::spatial::{LayeredPoints, PointIndex};
    let base: Vec<([f64; 2], u32)> = store
        .points(jichu::model::Registry::Citizens)
        .enumerate()
        .map(|(i, p)| {
            let (_, x, y) = p.expect("point");
            ([x, y], i as u32)
        })
        .collect();
    let n = base.len();
    let [x0, y0, x1, y1] = jichu::generator::EXTENT;
    println!();
    println!(
        "| changed part | apply the changes | rebuild instead | kNN-10 layered | kNN-10 rebuilt | 500 m count layered | 500 m count rebuilt |"
    );
    println!("|---|---|---|---|---|---|---|");
    let layered0 = LayeredPoints::new(PointIndex::build(base.clone()));
    for fraction in [0.001, 0.01, 0.05, 0.10] {
        let k = ((n as f64) * fraction) as usize;
        let mut rng = SmallRng::seed_from_u64(5);
        let moved: Vec<u32> = (0..k).map(|_| rng.random_range(0..n as u32)).collect();
        let add: Vec<([f64; 2], u32)> = moved
            .iter()
            .enumerate()
            .map(|(j, _)| ([rng.random_range(x0..x1), rng.random_range(y0..y1)], (n + j) as u32))
            .collect();
        let t = Instant::now();
        let layered = layered0.changed(&moved, &[], &add);
        let apply = t.elapsed().as_secs_f64();
        let mut current: Vec<([f64; 2], u32)> = base.clone();
        let gone: std::collections::HashSet<u32> = moved.iter().copied().collect();
        current.retain(|(_, id)| !gone.contains(id));
        current.extend(add.iter().copied());
        let t = Instant::now();
        let rebuilt = LayeredPoints::new(PointIndex::build(current));
        let rebuild = t.elapsed().as_secs_f64();
        let time = |f: &dyn Fn(f64, f64) -> usize| -> Vec<u64> {
            queries
                .iter()
                .map(|&(x, y)| {
                    let t = Instant::now();
                    std::hint::black_box(f(x, y));
                    t.elapsed().as_nanos() as u64
                })
                .collect()
        };
        println!(
            "| {:.1}% ({k}) | {:.3} s | {:.2} s | {} | {} | {} | {} |",
            fraction * 100.0,
            apply,
            rebuild,
            percentiles(time(&|x, y| layered.nearest(x, y, 10, None).len())),
            percentiles(time(&|x, y| rebuilt.nearest(x, y, 10, None).len())),
            percentiles(time(&|x, y| layered.count_within_radius(x, y, 500.0))),
            percentiles(time(&|x, y| rebuilt.count_within_radius(x, y, 500.0))),
        );
    }
}
