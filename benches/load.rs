//! Bulk-load throughput: `cargo bench --bench load -- [--citizens N] [--keep DIR]`.
//!
//! Generates N citizens with `jichu gen`'s generator, then loads them into an empty store
//! (the bulk path) and once more (the batch path, every row unchanged), and prints rows/s,
//! the parse-only baseline of the csv crate on the same file in the same run (the machine is
//! shared and noisy: compare the ratio), bytes on disk per record and peak RSS.

use jichu::load::{LoadOptions, load};
use jichu::store::{Store, StoreOptions};
use std::time::Instant;

mod common;
use common::{arg, peak_rss_mib};

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probes
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().to_path_buf());
    let extracts = root.join("extracts");
    let t = Instant::now();
    let counts =
        jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 7 }).expect("generate");
    let csv_path = extracts.join("citizens.csv");
    let csv_bytes = std::fs::metadata(&csv_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "generated {} records ({:.0} MB) in {:.1}s",
        counts.citizens,
        counts.bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Baseline: the csv crate alone, one core, on the same file.
    let t = Instant::now();
    let mut rdr = csv::Reader::from_path(&csv_path).expect("csv");
    let mut rec = csv::ByteRecord::new();
    let mut n = 0u64;
    while rdr.read_byte_record(&mut rec).expect("read") {
        n += 1;
    }
    let baseline = n as f64 / t.elapsed().as_secs_f64();

    let data = root.join("data");
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("open");
    let spec_path = extracts.join("citizens.toml");
    let spec = jichu_ingest::Spec::from_path(&spec_path).expect("spec");
    let opts = LoadOptions::new(&data);
    let bulk = load(&store, &spec, &spec_path, std::slice::from_ref(&csv_path), &opts).expect("bulk load");
    let again = load(&store, &spec, &spec_path, std::slice::from_ref(&csv_path), &opts).expect("second load");
    drop(store);
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("reopen");
    let disk = store.disk_bytes();
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| citizens | {citizens} |");
    println!("| csv crate parse only (1 core, baseline) | {baseline:.0} rows/s |");
    println!(
        "| bulk load into empty store ({} path) | {:.0} rows/s ({:.2}s) |",
        bulk.path, bulk.rows_per_second, bulk.seconds
    );
    println!(
        "| reload, all unchanged ({} path) | {:.0} rows/s ({:.2}s) |",
        again.path, again.rows_per_second, again.seconds
    );
    println!("| bulk / baseline | {:.2} |", bulk.rows_per_second / baseline);
    println!("| bulk stages (s) | {:?} |", bulk.stage_seconds);
    println!("| reload stages (s) | {:?} |", again.stage_seconds);
    println!("| CSV bytes per record | {:.1} |", csv_bytes as f64 / citizens as f64);
    println!(
        "| store bytes per record (SST, all CFs) | {:.1} ({:.2}× the CSV) |",
        disk as f64 / citizens as f64,
        disk as f64 / csv_bytes as f64
    );
    println!("| peak RSS | {:.0} MiB |", peak_rss_mib());
    assert_eq!(bulk.inserted, citizens);
    assert_eq!(again.unchanged, citizens);
}
