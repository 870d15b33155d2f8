//! What golden records cost: `cargo bench --bench golden -- [--citizens N] [--keep DIR]`.
//!
//! Generates N citizens (source 市公安局) and loads them. A second extract holds 5% of them,
//! moved to new addresses. In one run, taking turns, it is loaded as an update from the same
//! source (today's path: the record replaced) and as a second source, 市人社局 (the golden path:
//! both contributions kept, the record recomputed by the rules); each load is undone after it
//! is measured, so every turn starts from the same state. Then, with the second source kept:
//! id lookups in process (p50/p99) before and after, over all keys and over the merged ones;
//! and `recompute` after a rules change that moves every merged record back to 公安's address.

use jichu::golden::Rules;
use jichu::load::{LoadOptions, load};
use jichu::model::Registry;
use jichu::store::{Store, StoreOptions};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{arg, peak_rss_mib};

fn load_as(store: &Store, data: &Path, spec_path: &Path, csv: &Path, rules: &Path) -> jichu_ingest::LoadReport {
    let spec = jichu_ingest::Spec::from_path(spec_path).expect("spec");
    let opts = LoadOptions { survivorship: Some(rules.to_path_buf()), ..LoadOptions::new(data) };
    let r = load(store, &spec, spec_path, std::slice::from_ref(&csv.to_path_buf()), &opts).expect("load");
    assert_eq!(r.rejected, 0);
    r
}

/// Microseconds per `get` of each key, sorted.
fn lookups(store: &Store, keys: &[String]) -> Vec<f64> {
    let reader = store.reader();
    let mut us: Vec<f64> = keys
        .iter()
        .map(|k| {
            let t = Instant::now();
            let r = reader.get(Registry::Citizens, k).expect("get");
            assert!(r.is_some());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    us
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().to_path_buf());
    let extracts = root.join("extracts");
    jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 7 }).expect("generate");
    let overlap = extracts.join("citizens-5pc.csv");
    let merged = citizens / 20;
    jichu::generator::citizens_delta(&overlap, citizens, 7, 5, merged, citizens, 0).expect("5%");
    let same_spec = extracts.join("citizens.toml");
    let second_spec = extracts.join("citizens-renshe.toml");
    let text = std::fs::read_to_string(&same_spec).expect("spec");
    let source = text.lines().find(|l| l.starts_with("source")).expect("source line").to_string();
    std::fs::write(&second_spec, text.replacen(&source, "source = \"市人社局\"", 1)).expect("spec");
    let authority = source.split('"').nth(1).expect("source name").to_string();
    let rules = root.join("survivorship.toml");
    std::fs::write(&rules, format!("[citizens]\nname = [\"source:{authority}\", \"most_recent\"]\n")).expect("rules");

    let data = root.join("data");
    let store = Store::open(&data.join("store"), &StoreOptions::default()).expect("open");
    let first = load_as(&store, &data, &same_spec, &extracts.join("citizens.csv"), &rules);
    eprintln!("first load: {:.0} rows/s", first.rows_per_second);

    let mut same = Vec::new();
    let mut second = Vec::new();
    for round in 0..5 {
        let turn = |as_second: bool| {
            store.settle(Duration::from_secs(600));
            let spec = if as_second { &second_spec } else { &same_spec };
            let r = load_as(&store, &data, spec, &overlap, &rules);
            assert_eq!(r.updated, merged);
            assert_eq!(r.merged, if as_second { merged } else { 0 });
            store.writer().undo(r.load_id as u32, "benchmark turn").expect("undo");
            eprintln!(
                "  {}: {:.0} rows/s, stages {:?}",
                if as_second { "second source" } else { "same source" },
                r.rows_per_second,
                r.stage_seconds
            );
            r.rows_per_second
        };
        if round % 2 == 0 {
            same.push(turn(false));
            second.push(turn(true));
        } else {
            second.push(turn(true));
            same.push(turn(false));
        }
    }
    same.sort_by(f64::total_cmp);
    second.sort_by(f64::total_cmp);
    let (same_median, second_median) = (same[same.len() / 2], second[second.len() / 2]);

    // Lookups: random keys over all citizens, and the merged ones, before and after.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let sample = 200_000.min(citizens as usize);
    let all: Vec<String> = (0..sample).map(|_| jichu::generator::citizen_id(rng.random_range(0..citizens))).collect();
    let stride = (citizens / merged.max(1)).max(1);
    let merged_keys: Vec<String> =
        (0..merged.min(sample as u64)).map(|k| jichu::generator::citizen_id((k * stride + 5) % citizens)).collect();
    store.settle(Duration::from_secs(600));
    lookups(&store, &all); // warm the cache
    let before_all = lookups(&store, &all);
    let before_merged = lookups(&store, &merged_keys);
    let kept = load_as(&store, &data, &second_spec, &overlap, &rules);
    store.settle(Duration::from_secs(600));
    lookups(&store, &all);
    let after_all = lookups(&store, &all);
    let after_merged = lookups(&store, &merged_keys);
    let sourced = store.reader().get(Registry::Citizens, &merged_keys[0]).expect("get").expect("record");
    assert!(sourced.sourced && sourced.sources.len() == 2, "the overlap is merged");

    // Recompute after a rules change: 公安's address wins again on every merged record.
    std::fs::write(
        &rules,
        format!("[citizens]\nname = [\"source:{authority}\", \"most_recent\"]\naddress = [\"source:{authority}\"]\n"),
    )
    .expect("rules");
    let parsed = Rules::load(&rules).expect("rules");
    store.settle(Duration::from_secs(600));
    let done = jichu::load::recompute::recompute(&store, &parsed, &[Registry::Citizens]).expect("recompute");
    let r = &done[0];
    assert_eq!((r.sourced, r.changed), (merged, merged));

    println!();
    println!("| measure ({citizens} citizens; second source overlaps {merged}) | value |");
    println!("|---|---|");
    println!(
        "| 5% extract as the same source (today's path) / as a second source (golden path), median of 5 | {same_median:.0} / {second_median:.0} rows/s = {:.0}% |",
        100.0 * second_median / same_median
    );
    println!("| all turns, same source | {} |", same.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "));
    println!(
        "| all turns, second source | {} |",
        second.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
    );
    println!("| second source load kept | {:.0} rows/s, {} merged |", kept.rows_per_second, kept.merged);
    println!(
        "| id lookup in process, random keys, before / after: p50, p99 | {:.1} / {:.1} µs, {:.1} / {:.1} µs |",
        pct(&before_all, 0.5),
        pct(&after_all, 0.5),
        pct(&before_all, 0.99),
        pct(&after_all, 0.99)
    );
    println!(
        "| id lookup of the merged records, before / after: p50, p99 | {:.1} / {:.1} µs, {:.1} / {:.1} µs |",
        pct(&before_merged, 0.5),
        pct(&after_merged, 0.5),
        pct(&before_merged, 0.99),
        pct(&after_merged, 0.99)
    );
    println!(
        "| recompute (address rule changed): {} records, {} merged, {} changed | {:.2}s = {:.0} records/s |",
        r.records, r.sourced, r.changed, r.seconds, r.records_per_second
    );
    println!("| peak RSS | {:.0} MiB |", peak_rss_mib());
}
