//! `jichu bench` end to end at a small size: every stage runs, every query answers.

use jichu::bench::{BenchOptions, run};
use jichu::config::Config;

#[test]
fn the_scale_benchmark_runs_every_stage_and_every_query_answers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        citizens: 3000,
        seed: 9,
        dir: dir.path().join("bench"),
        config: Config { block_cache_bytes: 16 << 20, text_memory_bytes: 64 << 20, ..Config::default() },
        query_scale: 0.002,
        clients: vec![1, 2],
        http: true,
        connections: 4,
        keep_extracts: false,
        index_after_load: false,
        progress: false,
        drop_caches: false,
    };
    let r = run(&opts).unwrap();
    let registries: Vec<&str> = r.loads.iter().map(|l| l.registry.as_str()).collect();
    assert_eq!(registries, ["citizens", "entities", "parcels", "credit", "licences"]);
    assert_eq!(r.loads[0].rows, 3000);
    assert!(r.loads.iter().all(|l| l.rejected == 0 && l.full_text_seconds > 0.0));
    // Every load is a first (bulk) load of its registry: each fed the index as it wrote, so
    // the store's own rate is not measured apart.
    assert!(r.loads.iter().all(|l| l.fed() && l.store_only_rows_per_second().is_none()), "{:?}", r.loads);
    assert!(r.totals.store_only_records_per_second.is_none());
    // The first loads of citizens and entities saved the point layers they fed; the others fed none.
    for l in &r.loads {
        assert_eq!(l.spatial_seconds > 0.0, matches!(l.registry.as_str(), "citizens" | "entities"), "{l:?}");
    }
    assert_eq!(r.totals.records, r.disk.records, "every generated row is a record");
    assert!(r.totals.records > 6000);
    assert!(r.cold.first_answer_found);
    assert!(r.disk.bytes_per_record > 0.0 && r.peak_rss_bytes > 0);
    // The sampled peak is named by its stage, its parts within it.
    let peak = r.peak.as_ref().expect("a sampled peak");
    assert!(peak.rss_bytes > 0 && !peak.stage.is_empty(), "{peak:?}");
    assert!(
        peak.full_text_file_bytes + peak.spatial_file_bytes + peak.deleted_file_bytes <= peak.file_bytes,
        "{peak:?}"
    );
    // 7 kinds × 2 client counts × 2 modes, none failing.
    assert_eq!(r.queries.len(), 28);
    for q in &r.queries {
        assert_eq!(q.errors, 0, "{} {} {} clients", q.kind, q.mode, q.clients);
        assert!(q.queries > 0 && q.p50_ms > 0.0, "{q:?}");
    }
    // The restart after the loads while serving maps the spatial layers' files and applies
    // those loads' keys over them.
    let restart = r.restart.as_ref().expect("a restart after the loads while serving");
    assert!(restart.cold.first_answer_found && restart.applied > 0, "{restart:?}");
    let md = r.markdown();
    assert!(md.contains("| citizens | 3000 |") && md.contains("kNN-10"), "{md}");
    // Hosts differ in how they treat huge pages, which moved short loads by 14–18% here
    // (the journal).
    if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        assert!(["always", "madvise", "never"].iter().any(|m| r.machine.huge_pages.starts_with(m)), "{:?}", r.machine);
        assert!(md.contains("transparent huge pages "), "{md}");
    }
    // A second run in the same folder is refused: the benchmark needs a fresh one.
    assert!(run(&opts).is_err());
}
