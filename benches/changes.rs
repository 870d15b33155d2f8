//! What history, the feed and exports cost and deliver:
//! `cargo bench --bench changes -- [--citizens N] [--keep DIR] [--feed-changes M]`.
//!
//! Generates N citizens, then, in one run, loads them three times into two stores — one with
//! history and the feed (as jichu always runs), one without them (the benchmark-only baseline)
//! — alternating the two so the noise of this shared machine falls on both: the first load
//! (bulk path) and two loads that change every record (batch path). Then bytes per record with
//! three versions each; a full export to NDJSON and CSV; a 1% delta load and its delta export;
//! and, over HTTP on 127.0.0.1, the feed read page by page (limit 10,000) and a streamed export.

use jichu::config::Config;
use jichu::load::{LoadOptions, load};
use jichu::query::Caller;
use jichu::query::export::{self, ExportQuery, Format, Source};
use jichu::store::{Store, StoreOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{arg, peak_rss_mib};

/// Counts what an export writes, and throws it away.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn open(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open(&dir.join("store"), &StoreOptions::default()).expect("open"))
}

/// Loads `csv` with the generator's citizens spec; returns rows/s.
fn load_citizens(store: &Store, data: &Path, extracts: &Path, csv: &Path, record_changes: bool) -> f64 {
    let spec_path = extracts.join("citizens.toml");
    let spec = jichu_ingest::Spec::from_path(&spec_path).expect("spec");
    let opts = LoadOptions { record_changes, ..LoadOptions::new(data) };
    let r = load(store, &spec, &spec_path, std::slice::from_ref(&csv.to_path_buf()), &opts).expect("load");
    assert_eq!(r.rejected, 0);
    eprintln!("  {} path, with changes {record_changes}: stages (s) {:?}", r.path, r.stage_seconds);
    r.rows_per_second
}

/// Exports citizens (whole, or changed since a cursor) from the store's current state.
fn export_citizens(store: &Arc<Store>, since: Option<u64>, format: Format, threads: usize) -> (u64, u64, f64) {
    let snapshot = store.snapshot().expect("snapshot");
    let at = snapshot.reader();
    let loads = at.finished_loads().expect("loads");
    let src = Source { at, loads: &loads, feed_last: at.feed_last().expect("feed") };
    let caller = Caller::unrestricted();
    let registry = jichu::model::Registry::Citizens;
    let shape = export::shape(&caller, registry).expect("shape");
    let mut out = Count::default();
    let t = Instant::now();
    let e = export::export(src, &caller, &shape, &ExportQuery { registry, since, format, threads }, &mut out)
        .expect("export");
    (e.records, out.0, t.elapsed().as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probes
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let feed_changes: u64 = arg("--feed-changes").and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().to_path_buf());
    let extracts = root.join("extracts");
    let t = Instant::now();
    jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 7 }).expect("generate");
    let v1 = extracts.join("citizens.csv");
    let (v2, v3, one_percent) =
        (extracts.join("citizens-v2.csv"), extracts.join("citizens-v3.csv"), extracts.join("citizens-1pc.csv"));
    // Every citizen moved (a new address and location), twice; then 1% moved once more.
    jichu::generator::citizens_delta(&v2, citizens, 7, 2, citizens, citizens, 0).expect("v2");
    jichu::generator::citizens_delta(&v3, citizens, 7, 3, citizens, citizens, 0).expect("v3");
    jichu::generator::citizens_delta(&one_percent, citizens, 7, 5, citizens / 100, citizens, 0).expect("1%");
    let csv_bytes = std::fs::metadata(&v1).map(|m| m.len()).unwrap_or(0);
    eprintln!("generated in {:.1}s", t.elapsed().as_secs_f64());

    let (with_dir, without_dir) = (root.join("with"), root.join("without"));
    let (with, without) = (open(&with_dir), open(&without_dir));
    let mut rates = Vec::new();
    let loads = [("first load (bulk path)", &v1), ("every record moved (batch)", &v2), ("moved again (batch)", &v3)];
    for (round, (name, csv)) in loads.into_iter().enumerate() {
        // Each load starts on quiet stores (the compactions of the loads before done), and the
        // two take turns going first.
        let run = |with_changes: bool| {
            with.settle(std::time::Duration::from_secs(600));
            without.settle(std::time::Duration::from_secs(600));
            let (store, dir) = if with_changes { (&with, &with_dir) } else { (&without, &without_dir) };
            load_citizens(store, dir, &extracts, csv, with_changes)
        };
        let (a, b) = if round % 2 == 0 {
            let a = run(true);
            (a, run(false))
        } else {
            let b = run(false);
            (run(true), b)
        };
        eprintln!("{name}: {a:.0} rows/s with, {b:.0} without");
        rates.push((name, a, b));
    }
    // Bytes on disk once memtables are flushed: reopen.
    drop((with, without));
    let (with, without) = (open(&with_dir), open(&without_dir));
    let per_record = |s: &Store| s.disk_bytes() as f64 / citizens as f64;
    let (bytes_with, bytes_without) = (per_record(&with), per_record(&without));
    drop(without);

    // Exports from the store with history and the feed, on a quiet store.
    with.settle(std::time::Duration::from_secs(600));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (full, full_bytes, full_s) = export_citizens(&with, None, Format::Ndjson, cores);
    assert_eq!(full, citizens);
    let (_, _, serial_s) = export_citizens(&with, None, Format::Ndjson, 0);
    let (_, csv_out, csv_s) = export_citizens(&with, None, Format::Csv, 0);
    let cursor = with.reader().feed_last().expect("feed");
    let t = Instant::now();
    let delta_rate = load_citizens(&with, &with_dir, &extracts, &one_percent, true);
    let delta_load_s = t.elapsed().as_secs_f64();
    let (delta, _, delta_s) = export_citizens(&with, Some(cursor), Format::Ndjson, 0);
    assert_eq!(delta, citizens / 100, "exactly the changed records");
    let total_changes = with.reader().feed_last().expect("feed");

    // Over HTTP.
    let config = Config { insecure_no_auth: true, data_dir: with_dir.clone(), ..Config::default() };
    let state = jichu::api::AppState::new(with.clone(), config).expect("state");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(jichu::api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let (feed_read, pages, feed_s) = rt.block_on(async {
        let (mut after, mut read, mut pages) = (0u64, 0u64, 0u64);
        let t = Instant::now();
        while read < feed_changes.min(total_changes) {
            let url = format!("http://{addr}/v1/changes?after={after}&limit=10000");
            let body: serde_json::Value = client.get(url).send().await.expect("get").json().await.expect("json");
            let n = body["changes"].as_array().expect("changes").len() as u64;
            assert!(n > 0);
            read += n;
            pages += 1;
            after = body["next"].as_str().expect("next").parse().expect("cursor");
        }
        (read, pages, t.elapsed().as_secs_f64())
    });
    let (http_export, http_s) = rt.block_on(async {
        let t = Instant::now();
        let mut r = client.get(format!("http://{addr}/v1/citizens/export")).send().await.expect("export");
        let mut lines = 0u64;
        while let Some(chunk) = r.chunk().await.expect("chunk") {
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        (lines - 1, t.elapsed().as_secs_f64())
    });
    assert_eq!(http_export, citizens);
    let _ = stop.send(());
    let _ = rt.block_on(server);

    println!();
    println!("| measure ({citizens} citizens, CSV {:.0} MB) | value |", csv_bytes as f64 / 1e6);
    println!("|---|---|");
    for (name, a, b) in &rates {
        println!("| {name}: with history + feed / without | {a:.0} / {b:.0} rows/s = {:.0}% |", 100.0 * a / b);
    }
    println!(
        "| bytes per record, three versions each: with / without | {bytes_with:.0} / {bytes_without:.0} (CSV {:.0} per row) |",
        csv_bytes as f64 / citizens as f64
    );
    println!(
        "| full export, NDJSON, in process ({cores} render threads, as `jichu export`) | {:.0} records/s ({full_s:.2}s, {:.0} bytes/record) |",
        full as f64 / full_s,
        full_bytes as f64 / full as f64
    );
    println!(
        "| full export, NDJSON, in process, one thread | {:.0} records/s ({serial_s:.2}s) |",
        full as f64 / serial_s
    );
    println!(
        "| full export, CSV, in process (two passes: extras, rows) | {:.0} records/s ({csv_s:.2}s, {:.0} MB) |",
        full as f64 / csv_s,
        csv_out as f64 / 1e6
    );
    println!("| 1% delta load | {delta_rate:.0} rows/s ({delta_load_s:.2}s) |");
    println!("| delta export of the 1% ({delta} records) | {delta_s:.3}s |");
    println!(
        "| feed read over HTTP, 1 client, limit 10000 | {:.0} changes/s ({feed_read} changes, {pages} pages, {feed_s:.2}s) |",
        feed_read as f64 / feed_s
    );
    println!(
        "| full export, NDJSON, over HTTP (one render thread beside the scan) | {:.0} records/s ({http_s:.2}s) |",
        http_export as f64 / http_s
    );
    println!("| peak RSS | {:.0} MiB |", peak_rss_mib());
}
