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

/// Where to kill a load: a name, and the log line that says it is there.
type KillPoint = (&'static str, fn(&str) -> bool);

fn jichu(data: &std::path::Path) -> Command {
    jichu_logging(data, "warn")
}

/// `jichu` with a log filter of its own (its lines go to standard error).
fn jichu_logging(data: &std::path::Path, log: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jichu"));
    c.arg("--data-dir").arg(data).arg("--log").arg(log).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// A temporary folder holding `jichu gen --citizens N`'s extracts (`extracts/`), and the
/// path of a data directory beside them.
fn generated(citizens: u32) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let extracts = dir.path().join("extracts");
    let status =
        jichu(dir.path()).args(["gen", "--citizens", &citizens.to_string(), "--out"]).arg(&extracts).status().unwrap();
    assert!(status.success());
    let data = dir.path().join("data");
    (dir, extracts, data)
}

/// The store opens; every registry's count equals its keys; every sampled entity's legal
/// representative edge exists in both directions; the full-text index, brought in step as
/// the next process would, holds one document per record and finds sampled citizens.
fn assert_consistent(data: &std::path::Path) -> Vec<u64> {
    let store =
        Store::open(&data.join("store"), &StoreOptions { block_cache_bytes: 8 << 20, history_retention_days: None })
            .expect("the store opens after a kill");
    let counts: Vec<u64> = Registry::ALL.iter().map(|r| store.count(*r)).collect();
    for r in Registry::ALL {
        assert_eq!(store.count(r), store.count_keys(r).unwrap(), "{r}: count and keys agree");
    }
    // Every generated citizen and entity has a location: one point per record.
    for r in [Registry::Citizens, Registry::Entities] {
        assert_eq!(store.points(r).count() as u64, store.count(r), "{r}: one point per record");
    }
    // The spatial layers, mapped from the files a load saved or built from the store, hold
    // every point.
    let spatial = jichu::spatial::SpatialIndex::open(&store).expect("the spatial index opens after a kill");
    for r in [Registry::Citizens, Registry::Entities] {
        assert_eq!(spatial.points(r).unwrap().index.len() as u64, store.count(r), "{r}: one spatial point per record");
    }
    drop(spatial);
    let ids: Vec<String> = (0..200).map(jichu::generator::entity_id).collect();
    for e in store.get_many(Registry::Entities, &ids).unwrap().into_iter().flatten() {
        let rep = e.text("legal_rep_id").unwrap().to_string();
        let back = store.relations(Registry::Citizens, &rep).unwrap();
        assert!(back.iter().any(|edge| edge.id == e.id), "reverse edge of {} present", e.id);
    }
    let text = TextLayer::open(&store).expect("the index opens after a kill");
    text.sync(
        store.reader(),
        WriterOptions { threads: 2, memory_bytes: 64 << 20, no_merge: false },
        &Progress::quiet(),
    )
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
    let (_dir, extracts, data) = generated(200_000);
    let load_logging = |name: &str, log: &str| {
        let mut c = jichu_logging(&data, log);
        c.args(["load", "--spec"]).arg(extracts.join(format!("{name}.toml"))).arg(extracts.join(format!("{name}.csv")));
        c
    };
    let load = |name: &str| load_logging(name, "warn");
    // Kill the citizens load (bulk path), then the entities load (bulk, then batch once the
    // registry holds some), at points taken from the load's own progress (its debug lines),
    // so each kill lands in the step it is meant to hit on any machine.
    let points: [KillPoint; 6] = [
        ("reading rows", |l| l.contains("rows read") && !l.contains("rows=0")),
        ("writing begins", |l| l.contains("load stage") && l.contains("writing")),
        ("writing records", |l| l.contains("records written")),
        // A bulk load fed the index as it wrote: its documents wait for their commit.
        ("full-text indexing begins", |l| l.contains("counted stage") || l.contains("committing the documents fed")),
        ("full-text indexing", |l| l.contains("counted") && l.contains("done=")),
        ("the end", |_| false),
    ];
    for name in ["citizens", "entities"] {
        for (point, reached) in points {
            let mut c = load_logging(name, "jichu::load=debug,jichu::text=debug,warn");
            c.stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
            let mut hit = false;
            for line in lines.map_while(Result::ok) {
                if reached(&line) {
                    hit = true;
                    break;
                }
            }
            let _ = child.kill();
            let status = child.wait().unwrap();
            // A load that finished before its point was reached is a point the load skipped
            // (a batch path has no full-text bulk stage to count); "the end" always finishes.
            assert!(hit || status.success(), "{name}: {point}: neither reached nor finished");
            // The first load passes every step but the last two (after a kill once the store
            // holds it, the index catches up from the change log: no counted scan).
            if name == "citizens" && !matches!(point, "the end" | "full-text indexing") {
                assert!(hit, "the first load reaches every step: {point} was not");
            }
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

/// `jichu load` killed while it saves the spatial layer its bulk load fed (after the store
/// and the full-text index hold the load): the next open finds no layer file, or a whole one,
/// and answers with every point; what the save left half-written is removed.
#[test]
fn a_load_killed_while_saving_the_layer_it_fed_leaves_a_spatial_index_that_opens_whole() {
    let (_dir, extracts, data) = generated(100_000);
    let mut c = jichu_logging(&data, "jichu::spatial=debug,warn");
    c.args(["load", "--spec"]).arg(extracts.join("citizens.toml")).arg(extracts.join("citizens.csv"));
    c.stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let hit = lines.map_while(Result::ok).any(|l| l.contains("saving the spatial layer fed"));
    let _ = child.kill();
    let _ = child.wait().unwrap();
    assert!(hit, "the load fed its spatial layer");
    assert_consistent(&data);
    let left: Vec<_> = std::fs::read_dir(data.join("spatial")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|f| f.to_string_lossy().ends_with(".idx")), "{left:?}");
}

/// A running `jichu serve` killed (`kill -9`) while it loads an extract: at the next start
/// readers see the last published state, the interrupted load runs again from its spooled
/// file and is published once. Kills land at points taken from the load's own progress.
#[test]
fn a_server_killed_during_a_load_restarts_consistent_and_publishes_it_once() {
    let (_dir, extracts, data) = generated(150_000);
    // A first load, offline: the served load then takes the batch path (undo by history).
    let first = extracts.join("first.csv");
    let text = std::fs::read_to_string(extracts.join("citizens.csv")).unwrap();
    std::fs::write(&first, text.lines().take(5001).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let spec = extracts.join("citizens.toml");
    assert!(jichu(&data).args(["load", "--spec"]).arg(&spec).arg(&first).status().unwrap().success());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    let serve = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child =
            jichu(&data).args(["serve", "--insecure-no-auth", "--addr", &format!("127.0.0.1:{port}")]).spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        runtime.block_on(async {
            for _ in 0..600 {
                if client.get(format!("{base}/healthz")).send().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("jichu serve did not start");
        });
        (child, base)
    };
    let get = |url: String| {
        runtime.block_on(async { client.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() })
    };
    let count = |base: &str| get(format!("{base}/v1/catalog"))["registries"][0]["count"].as_u64().unwrap();
    let mut load_id = None;
    // Kill while reading rows, then while writing them.
    for stage in ["reading", "writing"] {
        let (mut child, base) = serve();
        assert_eq!(count(&base), 5000, "the last published state");
        if load_id.is_none() {
            let form = reqwest::multipart::Form::new().text("spec", std::fs::read_to_string(&spec).unwrap()).part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(extracts.join("citizens.csv")).unwrap())
                    .file_name("citizens.csv"),
            );
            let r = runtime.block_on(client.post(format!("{base}/v1/loads")).multipart(form).send()).unwrap();
            assert_eq!(r.status(), 202);
            load_id = Some(runtime.block_on(r.json::<serde_json::Value>()).unwrap()["load_id"].as_u64().unwrap());
        }
        let id = load_id.unwrap();
        let mut reached = false;
        for _ in 0..2000 {
            let s = get(format!("{base}/v1/loads/{id}"));
            if s["status"] == "running"
                && s["progress"]["stage"] == stage
                && s["progress"]["rows_read"].as_u64() > Some(0)
            {
                reached = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(reached, "the load reached its {stage} stage");
        child.kill().unwrap();
        child.wait().unwrap();
        let counts = assert_consistent(&data);
        assert_eq!(counts[0], 5000, "killed while {stage}: nothing of the load remains");
    }
    // The next start runs it again and publishes it once.
    let (mut child, base) = serve();
    let id = load_id.unwrap();
    let mut status = serde_json::Value::Null;
    for _ in 0..2400 {
        status = get(format!("{base}/v1/loads/{id}"));
        if status["status"] == "published" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status["status"], "published", "{status}");
    assert_eq!(count(&base), 150_000);
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    child.wait().unwrap();
    let counts = assert_consistent(&data);
    assert_eq!(counts[0], 150_000, "every citizen, once");
}
