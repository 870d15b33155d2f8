//! The change feed: one gap-free order of every change, replayable into the registries, read
//! by pages, long polls and server-sent events.

use crate::common::{Server, TestStore, fixture};
use jichu::model::Registry;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A citizens extract of the fixture's source: the fixture's header and `rows`, in `mode`.
fn citizens_extract(dir: &Path, name: &str, mode: &str, rows: &[String]) -> (PathBuf, PathBuf) {
    let spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let spec = spec.replacen("source = \"市公安局\"\n", &format!("source = \"市公安局\"\nmode = \"{mode}\"\n"), 1);
    let header = std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().next().unwrap().to_string();
    let (spec_path, csv_path) = (dir.join(format!("{name}.toml")), dir.join(format!("{name}.csv")));
    std::fs::write(&spec_path, spec).unwrap();
    std::fs::write(&csv_path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    (spec_path, csv_path)
}

pub fn fixture_rows() -> Vec<String> {
    std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().skip(1).map(String::from).collect()
}

pub fn key_of(row: &str) -> String {
    row.split(',').next().unwrap().to_string()
}

/// Every fixture loaded, then [`change`]d.
pub fn changed_store() -> (TestStore, Vec<String>) {
    let t = TestStore::loaded();
    let rows = change(&t);
    (t, rows)
}

/// Three loads of citizens from the fixture's source: a delta that renames the first row and
/// changes the second's phone (the third sent unchanged), a snapshot without the last six
/// (ended), a delta that sends the thirteenth back (reopened). Returns the fixture's rows.
pub fn change(t: &TestStore) -> Vec<String> {
    let work = t.dir.path().join("extracts");
    std::fs::create_dir_all(&work).unwrap();
    let rows = fixture_rows();
    let delta = vec![
        rows[0].replacen("陈志强", "陈志刚", 1),
        rows[1].replacen("13905920001", "13905929999", 1),
        rows[2].clone(),
    ];
    let (spec, csv) = citizens_extract(&work, "delta", "delta", &delta);
    let r = t.load(&spec, &[csv]);
    assert_eq!((r.updated, r.unchanged), (2, 1));
    let mut snapshot = delta.clone();
    snapshot.extend(rows[3..10].iter().cloned());
    let (spec, csv) = citizens_extract(&work, "snapshot", "snapshot", &snapshot);
    let r = t.load(&spec, &[csv]);
    assert_eq!(r.ended, 6);
    let (spec, csv) = citizens_extract(&work, "back", "delta", std::slice::from_ref(&rows[12]));
    t.load(&spec, &[csv]);
    rows
}

async fn page(s: &Server, query: &str) -> Value {
    let (code, _, body) = s.get(&format!("/v1/changes?{query}")).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// A bulk load's inserts are stored in runs of up to 256 (`feed::RUN_LEN`): read from any
/// position — a run's first, inside one, across their boundaries, past the end — the feed is
/// the same gap-free list of the load's records, in key order.
#[tokio::test]
async fn a_bulk_loads_changes_read_alike_from_every_position() {
    let t = TestStore::new();
    let (spec, csv) = crate::live::generated(&t.dir.path().join("gen"), 700);
    let r = t.load(&spec, &[csv]);
    assert_eq!((r.path.as_str(), r.inserted), ("bulk", 700));
    let s = Server::start(t.store.clone()).await;
    let changes = |body: &Value| -> Vec<(u64, String)> {
        let list = body["changes"].as_array().unwrap();
        assert!(list.iter().all(|c| c["change"] == "insert" && c["registry"] == "citizens"), "{body}");
        list.iter().map(|c| (c["position"].as_u64().unwrap(), c["id"].as_str().unwrap().to_string())).collect()
    };
    let all = changes(&page(&s, "after=0&limit=10000").await);
    assert_eq!(all.iter().map(|(p, _)| *p).collect::<Vec<_>>(), (1..=700).collect::<Vec<_>>());
    assert!(all.windows(2).all(|w| w[0].1 < w[1].1), "in key order, each record once");
    for (_, id) in all.iter().step_by(97) {
        assert_eq!(s.get(&format!("/v1/citizens/{id}")).await.0, 200, "{id}");
    }
    for after in [0usize, 1, 200, 255, 256, 257, 300, 511, 512, 513, 650, 699, 700, 701] {
        let body = page(&s, &format!("after={after}&limit=97")).await;
        let want = &all[after.min(700)..(after + 97).min(700)];
        assert_eq!(changes(&body), want, "after {after}");
    }
}

#[tokio::test]
async fn the_feed_replayed_holds_the_registries() {
    let (t, rows) = changed_store();
    let s = Server::start(t.store.clone()).await;
    let mut replica: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut kinds: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    let (mut after, mut expected_position) = ("0".to_string(), 1u64);
    loop {
        let body = page(&s, &format!("after={after}&limit=7&include=record")).await;
        let changes = body["changes"].as_array().unwrap();
        if changes.is_empty() {
            assert_eq!(body["next"].as_str().unwrap().parse::<u64>().unwrap(), body["last_position"].as_u64().unwrap());
            break;
        }
        for c in changes {
            assert_eq!(c["position"].as_u64().unwrap(), expected_position, "gap-free and in order");
            expected_position += 1;
            let id = c["id"].as_str().unwrap().to_string();
            assert!(c["recorded_at"].is_string() && c["source"].is_string(), "{c}");
            kinds
                .entry(id.clone())
                .or_default()
                .push((c["change"].as_str().unwrap().into(), c["fields_changed"].clone()));
            replica.insert((c["registry"].as_str().unwrap().into(), id), c["record"].clone());
        }
        after = body["next"].as_str().unwrap().to_string();
    }
    // The replica holds exactly the registries, record for record.
    for r in Registry::ALL {
        let held = replica.keys().filter(|(reg, _)| reg == r.as_str()).count() as u64;
        assert_eq!(held, t.store.count(r), "{r}");
    }
    for ((registry, id), record) in &replica {
        let (code, _, current) = s.get(&format!("/v1/{registry}/{id}")).await;
        assert_eq!(code, 200);
        assert_eq!(&current, record, "{registry} {id}");
    }
    // What each load did, in order.
    let (renamed, rephoned, unchanged) = (key_of(&rows[0]), key_of(&rows[1]), key_of(&rows[2]));
    assert_eq!(kinds[&renamed], vec![("insert".into(), Value::Null), ("update".into(), serde_json::json!(["name"]))]);
    assert_eq!(kinds[&rephoned][1], ("update".into(), serde_json::json!(["phone"])));
    assert_eq!(kinds[&unchanged].len(), 1, "an unchanged row is no change");
    let back = key_of(&rows[12]);
    let back_kinds: Vec<&str> = kinds[&back].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(back_kinds, ["insert", "end", "reopen"]);
    assert_eq!(kinds[&key_of(&rows[15])].last().unwrap().0, "end");
    assert_eq!(replica[&("citizens".into(), key_of(&rows[15]))]["ended"], true);
    // One registry's feed; a bad cursor and a bad limit are refused.
    let body = page(&s, "registry=licences&limit=10000").await;
    let licences = body["changes"].as_array().unwrap();
    assert_eq!(licences.len() as u64, t.store.count(Registry::Licences));
    assert!(licences.iter().all(|c| c["registry"] == "licences" && c.get("record").is_none()));
    for bad in ["after=x", "limit=10001", "limit=0", "include=everything", "wait=61", "registry=pets"] {
        let (code, _, body) = s.get(&format!("/v1/changes?{bad}")).await;
        assert!(code == 400 || code == 404, "{bad}: {code} {body}");
        assert!(body["code"].is_string());
    }
}

#[tokio::test]
async fn a_reopened_store_continues_the_feed_and_an_undone_load_leaves_no_gap() {
    let (t, _) = changed_store();
    let before = t.store.feed_next();
    let t = t.reopen();
    assert_eq!(t.store.feed_next(), before);
    // A load that fails after writing (a panic-free failure: an unknown registry cannot be
    // forced, so cancel one mid-way through the writer's own API).
    let mut w = t.store.writer();
    let id = w.begin_load(None, Registry::Citizens, "测试", vec![], "delta").unwrap();
    let value = t.store.reader().get_raw(Registry::Citizens, &key_of(&fixture_rows()[0])).unwrap().unwrap();
    let rewritten = jichu::store::codec::with_header(
        &value,
        jichu::store::codec::Header { load_id: id, ended: true, ..Default::default() },
    )
    .unwrap();
    w.put_record(Registry::Citizens, key_of(&fixture_rows()[0]).as_bytes(), &rewritten, Some(&value)).unwrap();
    w.commit().unwrap();
    assert_eq!(t.store.feed_next(), before + 1);
    w.undo(id, "test").unwrap();
    drop(w);
    assert_eq!(t.store.feed_next(), before, "the undone change's position is given to the next change");
    assert_eq!(t.store.reader().feed_last().unwrap(), before - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_a_publication() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let last = page(&s, "after=0&limit=1").await["last_position"].as_u64().unwrap();
    let (client, url) = (s.client.clone(), s.url(&format!("/v1/changes?after={last}&wait=30")));
    let started = Instant::now();
    let poll = tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "nothing to answer yet: it waits");
    let rows = fixture_rows();
    let spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let header = std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().next().unwrap().to_string();
    let csv = format!("{header}\n{}\n", rows[0].replacen("陈志强", "陈志明", 1));
    let form = reqwest::multipart::Form::new()
        .text("spec", spec)
        .part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("renamed.csv"));
    let r = s.client.post(s.url("/v1/loads")).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let body = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "woken by the publication, not the end of the wait");
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{body}");
    assert_eq!(changes[0]["position"], last + 1);
    assert_eq!(changes[0]["fields_changed"], serde_json::json!(["name"]));
    // With nothing new, the wait ends with an empty page.
    let body = page(&s, &format!("after={}&wait=1", last + 1)).await;
    assert!(body["changes"].as_array().unwrap().is_empty());
}

/// The ids of the first `n` events of a stream.
async fn event_ids(mut r: reqwest::Response, n: usize) -> Vec<u64> {
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id:")) {
                assert!(event.contains("event: change") || event.contains("event:change"), "{event}");
                ids.push(id.trim().parse().unwrap());
            }
        }
    }
    ids.truncate(n);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_resume_from_the_last_event() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let stream = |last: Option<u64>| {
        let mut r = s.client.get(s.url("/v1/changes?after=0")).header("accept", "text/event-stream");
        if let Some(id) = last {
            r = r.header("last-event-id", id.to_string());
        }
        r.send()
    };
    let r = stream(None).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(event_ids(r, 10).await, (1..=10).collect::<Vec<_>>());
    let r = stream(Some(10)).await.unwrap();
    assert_eq!(event_ids(r, 5).await, (11..=15).collect::<Vec<_>>(), "resumed after the last event received");
    // A refusal comes as a problem before any event.
    let r =
        s.client.get(s.url("/v1/changes?registry=pets")).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(r.status(), 404);
}
