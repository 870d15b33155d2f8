//! Backups of a served store, incremental, verified, and restored into stores that answer as
//! the original did at each backup's moment.

use crate::changes::fixture_rows;
use crate::common::{Server, TestStore, fixture};
use crate::live::{upload, wait_for};
use jichu::store::{Store, StoreOptions};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// What the original answers and the restored copy must answer the same: every citizen (the
/// export), a search and a spatial query.
async fn answers(s: &Server) -> (String, Value, Value) {
    let export = s.client.get(s.url("/v1/citizens/export")).send().await.unwrap().text().await.unwrap();
    let (_, _, found) = s.post("/v1/citizens/search", &json!({"q": "福建", "limit": 100})).await;
    // What was found; a rebuilt index may score and so order equal hits differently.
    let mut ids: Vec<&str> = found["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let search = json!({"total": found["total"], "ids": ids});
    let (_, _, near) = s.post("/v1/citizens/near", &json!({"lon": 118.08, "lat": 24.45, "k": 10})).await;
    // The export's last line is the cursor: the same feed position, so equal too.
    (export, search, near)
}

/// The first difference between two sets of answers, if any (short, for the failure message).
fn difference(a: &(String, Value, Value), b: &(String, Value, Value)) -> Option<String> {
    for (x, y) in a.0.lines().zip(b.0.lines()) {
        if x != y {
            return Some(format!("export line:\n{x}\n{y}"));
        }
    }
    if a.0.lines().count() != b.0.lines().count() {
        return Some(format!("export lines: {} vs {}", a.0.lines().count(), b.0.lines().count()));
    }
    if a.1 != b.1 {
        return Some(format!("search: total {} vs {}", a.1["total"], b.1["total"]));
    }
    (a.2 != b.2).then(|| format!("near: {} vs {}", a.2["count"], b.2["count"]))
}

async fn restored(dir: &Path, id: Option<u32>) -> (tempfile::TempDir, Server) {
    let to = tempfile::tempdir().unwrap();
    let b = jichu::backup::restore(dir, id, to.path(), false).unwrap();
    if let Some(id) = id {
        assert_eq!(b.backup_id, id);
    }
    let store = Arc::new(Store::open(&to.path().join("store"), &StoreOptions::default()).unwrap());
    let s = Server::start(store).await;
    (to, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_store_backs_up_and_restores_to_what_it_answered() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let (code, _, first) = s.post("/v1/admin/backups", &json!({})).await;
    assert_eq!(code, 201, "{first}");
    assert_eq!(first["backup"]["backup_id"], 1);
    let at_first = answers(&s).await;
    // A load while the server serves, then a second backup: it copies only the new files.
    let spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let header = std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().next().unwrap().to_string();
    let rows = fixture_rows();
    let csv = format!("{header}\n{}\n", rows[0].replacen("陈志强", "陈志远", 1));
    let (code, accepted) = upload(&s, &spec, &[("renamed.csv", csv.into_bytes())]).await;
    assert_eq!(code, 202);
    assert_eq!(wait_for(&s, &accepted["load_id"]).await["status"], "published");
    let (code, _, second) = s.post("/v1/admin/backups", &json!({})).await;
    assert_eq!(code, 201, "{second}");
    assert!(
        second["bytes_copied"].as_u64().unwrap() < first["bytes_copied"].as_u64().unwrap(),
        "incremental: {second} after {first}"
    );
    let at_second = answers(&s).await;
    assert_ne!(at_first.0, at_second.0, "the load changed a citizen");
    let (_, _, list) = s.get("/v1/admin/backups").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    s.stop().await;
    let dir = t.dir.path().join("backups");
    assert!(jichu::backup::verify(&dir).unwrap() > 0);
    // Each backup restores to what the server answered at its moment, indexes rebuilt.
    let (_one, r1) = restored(&dir, Some(1)).await;
    assert_eq!(difference(&answers(&r1).await, &at_first), None);
    let (_two, r2) = restored(&dir, None).await;
    assert_eq!(difference(&answers(&r2).await, &at_second), None);
    // A target that holds something is refused without --force; a damaged backup is found.
    let occupied = tempfile::tempdir().unwrap();
    std::fs::write(occupied.path().join("keep.txt"), "x").unwrap();
    assert!(jichu::backup::restore(&dir, None, occupied.path(), false).is_err());
    let sums: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("checksums.json")).unwrap()).unwrap();
    let victim = sums.keys().find(|k| k.ends_with(".sst")).expect("an SST file").clone();
    let mut bytes = std::fs::read(dir.join(&victim)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(dir.join(&victim), bytes).unwrap();
    let err = jichu::backup::verify(&dir).unwrap_err().to_string();
    assert!(err.contains(&victim), "{err}");
}

/// A backup taken while a load runs restores to a store that opens, with the load either
/// wholly there or wholly undone — never half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_load_restores_to_a_whole_state() {
    let t = TestStore::loaded();
    let before = t.store.count(jichu::model::Registry::Citizens);
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = crate::live::generated(work.path(), 200_000);
    let s = Server::start(t.store.clone()).await;
    let (code, running) =
        upload(&s, &std::fs::read_to_string(&spec).unwrap(), &[("big.csv", std::fs::read(&csv).unwrap())]).await;
    assert_eq!(code, 202);
    let mut during = false;
    for _ in 0..400 {
        let (_, _, b) = s.get(&format!("/v1/loads/{}", running["load_id"])).await;
        if b["status"] == "running" && b["progress"]["rows_read"].as_u64().unwrap_or(0) > 0 {
            during = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(during, "the load was seen running");
    let (code, _, taken) = s.post("/v1/admin/backups", &json!({})).await;
    assert_eq!(code, 201, "{taken}");
    assert_eq!(wait_for(&s, &running["load_id"]).await["status"], "published");
    let after = t.store.count(jichu::model::Registry::Citizens);
    assert_eq!(after, before + 200_000);
    s.stop().await;
    let to = tempfile::tempdir().unwrap();
    jichu::backup::restore(&t.dir.path().join("backups"), None, to.path(), false).unwrap();
    let store = Store::open(&to.path().join("store"), &StoreOptions::default()).unwrap();
    let n = store.count(jichu::model::Registry::Citizens);
    assert!(n == before || n == after, "{n} citizens: neither {before} nor {after}");
    assert_eq!(store.count_keys(jichu::model::Registry::Citizens).unwrap(), n, "counts agree with the records");
}
