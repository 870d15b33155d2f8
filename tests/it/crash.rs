//! Killing `jichu load` at any moment (reading, writing the store, indexing the text) leaves
//! a store that opens and answers consistently, an index that catches up with it, and
//! running the same load again completes it with nothing lost and nothing doubled.

use chrono::Datelike;
use jichu::load::Progress;
use jichu::model::Registry;
use jichu::store::{Store, StoreOptions};
use jichu::text::TextLayer;
use jichu_indexes::text::{Filter, Match, SearchQuery, WriterOptions};
use std::process::{Command, Stdio};
use std::time::Duration;

fn jichu(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jichu"));
    c.arg("--data-dir").arg(data).arg("--log").arg("warn").stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// The store opens; every registry's count equals its keys; every sampled entity's legal
/// representative edge exists in both directions; the full-text index, brought in step as
/// the next process would, holds one document per record and finds sampled citizens.
fn assert_consistent(data: &std::path::Path) -> Vec<u64> {
    let store = Store::open(&data.join("store"), &StoreOptions { block_cache_bytes: 8 << 20 })
        .expect("the store opens after a kill");
    let counts: Vec<u64> = Registry::ALL.iter().map(|r| store.count(*r)).collect();
    for r in Registry::ALL {
        assert_eq!(store.count(r), store.count_keys(r).unwrap(), "{r}: count and keys agree");
    }
    // Every generated citizen and entity has a location: one point per record.
    for r in [Registry::Citizens, Registry::Entities] {
        assert_eq!(store.points(r).count() as u64, store.count(r), "{r}: one point per record");
    }
    let ids: Vec<String> = (0..200).map(jichu::generator::entity_id).collect();
    for e in store.get_many(Registry::Entities, &ids).unwrap().into_iter().flatten() {
        let rep = e.text("legal_rep_id").unwrap().to_string();
        let back = store.relations(Registry::Citizens, &rep).unwrap();
        assert!(back.iter().any(|edge| edge.id == e.id), "reverse edge of {} present", e.id);
    }
    let text = TextLayer::open(&store).expect("the index opens after a kill");
    text.sync(&store, WriterOptions { threads: 2, memory_bytes: 64 << 20, no_merge: false }, &Progress::quiet())
        .unwrap();
    for r in Registry::ALL {
        assert_eq!(text.index.count_registry(r as u8).unwrap(), store.count(r), "{r}: one document per record");
    }
    let ids: Vec<String> = (0..50).map(jichu::generator::citizen_id).collect();
    for c in store.get_many(Registry::Citizens, &ids).unwrap().into_iter().flatten() {
        let Some(jichu_ingest::Value::Date(born)) = c.value("birth_date") else { panic!("no birth date") };
        let day = born.num_days_from_ce();
        let q = SearchQuery {
            registries: vec![Registry::Citizens as u8],
            matches: vec![Match { text: c.text("name").unwrap().into(), fields: vec!["citizens.name".into()] }],
            filters: vec![Filter::Dates { field: "birth_date".into(), from: day, to: day }],
            limit: 100,
            ..SearchQuery::default()
        };
        let hits = text.index.search(&q).unwrap();
        assert!(hits.hits.iter().any(|h| h.key == c.id), "{} found by name and birth date", c.id);
    }
    counts
}

#[test]
fn killed_loads_leave_a_consistent_store_and_complete_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let extracts = dir.path().join("extracts");
    let status = jichu(dir.path()).args(["gen", "--citizens", "200000", "--out"]).arg(&extracts).status().unwrap();
    assert!(status.success());
    let data = dir.path().join("data");
    let load = |name: &str| {
        let mut c = jichu(&data);
        c.args(["load", "--spec"]).arg(extracts.join(format!("{name}.toml"))).arg(extracts.join(format!("{name}.csv")));
        c
    };
    // Kill the citizens load (bulk path), then the entities load (bulk, then batch once the
    // registry holds some), at moments spread over a load's life.
    for name in ["citizens", "entities"] {
        for ms in [20, 80, 160, 320, 640, 1280, 2500] {
            let mut child = load(name).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(ms));
            let _ = child.kill();
            let _ = child.wait();
            assert_consistent(&data);
        }
        assert!(load(name).status().unwrap().success());
    }
    let counts = assert_consistent(&data);
    assert_eq!(counts[0], 200_000, "every citizen, once");
    assert_eq!(counts[1], 60_000, "every entity, once");
    // A complete re-run finds nothing to change.
    let store = Store::open(&data.join("store"), &StoreOptions::default()).unwrap();
    let spec = jichu_ingest::Spec::from_path(&extracts.join("citizens.toml")).unwrap();
    let opts = jichu::load::LoadOptions::new(&data);
    let r = jichu::load::load(&store, &spec, &extracts.join("citizens.toml"), &[extracts.join("citizens.csv")], &opts)
        .unwrap();
    assert_eq!((r.unchanged, r.inserted, r.updated), (200_000, 0, 0));
}
