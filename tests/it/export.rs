//! Exports: a whole registry re-loads into an equal one; a delta holds exactly what changed.

use crate::changes::{change, changed_store, fixture_rows, key_of};
use crate::common::{Server, TestStore};
use jichu::model::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

/// An NDJSON export's records by id (lineage left out: it names the load that wrote them) and
/// the cursor of its last line.
fn ndjson(text: &str) -> (BTreeMap<String, Value>, u64) {
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.pop().expect("the cursor line");
    let cursor = last["next"].as_str().expect("the last line is the cursor").parse().unwrap();
    let mut records = BTreeMap::new();
    for mut r in lines {
        r.as_object_mut().unwrap().remove("lineage");
        let id = r["id"].as_str().unwrap().to_string();
        assert!(records.insert(id, r).is_none(), "each record once");
    }
    (records, cursor)
}

async fn export(s: &Server, query: &str) -> (reqwest::header::HeaderMap, String) {
    let r = s.client.get(s.url(query)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{query}");
    let headers = r.headers().clone();
    (headers, r.text().await.unwrap())
}

#[tokio::test]
async fn an_export_reloads_into_an_equal_registry() {
    // Updates, ended and reopened records, extras from an older system, pilot codes.
    let (t, _) = changed_store();
    let s = Server::start(t.store.clone()).await;
    let copy = TestStore::new();
    let work = copy.dir.path().join("exports");
    std::fs::create_dir_all(&work).unwrap();
    // Holders first, as any extract.
    for registry in Registry::ALL {
        let (headers, csv) = export(&s, &format!("/v1/{registry}/export?format=csv")).await;
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        assert!(headers["x-jichu-cursor"].to_str().unwrap().parse::<u64>().unwrap() > 0);
        let header = csv.lines().next().unwrap();
        assert!(header.starts_with("id,") && header.contains(",ended,effective_from"), "{header}");
        let (spec, data) = (work.join(format!("{registry}.toml")), work.join(format!("{registry}.csv")));
        std::fs::write(&spec, jichu::query::export::csv_spec(registry)).unwrap();
        std::fs::write(&data, csv).unwrap();
        let report = copy.load(&spec, &[data]);
        assert_eq!(report.rejected, 0, "{registry}: {report:?}");
        assert_eq!(report.inserted, t.store.count(registry), "{registry}");
    }
    let c = Server::start(copy.store.clone()).await;
    for registry in Registry::ALL {
        let (original, _) = ndjson(&export(&s, &format!("/v1/{registry}/export")).await.1);
        let (reloaded, _) = ndjson(&export(&c, &format!("/v1/{registry}/export")).await.1);
        assert_eq!(original.len() as u64, t.store.count(registry));
        assert_eq!(original, reloaded, "{registry}");
    }
    // The copy holds the same relations too.
    let chen = key_of(&fixture_rows()[0]);
    let (_, _, mut a) = s.get(&format!("/v1/citizens/{chen}/relations")).await;
    let (_, _, mut b) = c.get(&format!("/v1/citizens/{chen}/relations")).await;
    assert!(a["relations"]["represents"][0]["id"].is_string(), "{a}");
    strip_lineage(&mut a);
    strip_lineage(&mut b);
    assert_eq!(a, b);
}

fn strip_lineage(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("lineage");
            m.values_mut().for_each(strip_lineage);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_lineage),
        _ => {}
    }
}

#[tokio::test]
async fn a_delta_export_holds_exactly_the_changed_records() {
    let t = TestStore::loaded();
    let before = t.store.reader().feed_last().unwrap();
    let rows = change(&t);
    let s = Server::start(t.store.clone()).await;
    // The whole registry, and the cursor the answer ends with.
    let (headers, text) = export(&s, "/v1/citizens/export").await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let (all, cursor) = ndjson(&text);
    assert_eq!(all.len() as u64, t.store.count(Registry::Citizens));
    assert_eq!(headers["x-jichu-cursor"].to_str().unwrap(), cursor.to_string());
    assert_eq!(cursor, t.store.reader().feed_last().unwrap());
    // What changed after `before`: a rename, a new phone, six ended, one of them reopened.
    let (delta, next) = ndjson(&export(&s, &format!("/v1/citizens/export?since={before}")).await.1);
    assert_eq!(next, cursor);
    let mut expected: BTreeSet<String> = [key_of(&rows[0]), key_of(&rows[1])].into();
    expected.extend(rows[10..16].iter().map(|r| key_of(r)));
    assert_eq!(delta.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (id, record) in &delta {
        assert_eq!(record, &all[id], "a delta's record is its current state");
        let ended = rows[10..16].iter().any(|r| &key_of(r) == id) && id != &key_of(&rows[12]);
        assert_eq!(record["ended"], ended, "{id}");
    }
    assert_eq!(delta[&key_of(&rows[0])]["name"], "陈志刚");
    // Nothing after the cursor: an empty delta that ends with the same cursor.
    let (empty, again) = ndjson(&export(&s, &format!("/v1/citizens/export?since={cursor}")).await.1);
    assert!(empty.is_empty());
    assert_eq!(again, cursor);
    // Another registry's delta is empty: the changes were all citizens'.
    assert!(ndjson(&export(&s, &format!("/v1/licences/export?since={before}")).await.1).0.is_empty());
    // CSV, compressed when asked.
    let r = s
        .client
        .get(s.url(&format!("/v1/citizens/export?format=csv&since={before}")))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["x-jichu-cursor"].to_str().unwrap(), cursor.to_string());
    let mut csv = String::new();
    flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..]).read_to_string(&mut csv).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let ids: BTreeSet<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
    assert_eq!(ids, expected);
    // Bad requests.
    for (bad, status) in [("format=xml", 400), ("since=soon", 400)] {
        let (code, ct, body) = s.get(&format!("/v1/citizens/export?{bad}")).await;
        assert_eq!((code, ct.as_str()), (status, "application/problem+json"), "{bad}: {body}");
    }
    assert_eq!(s.get("/v1/pets/export").await.0, 404);
}

/// `jichu export` writes a CSV and the spec beside it; `jichu load` of the two fills an empty
/// store with the same records; `--since` prints the cursor for the next delta.
#[test]
fn the_export_command_writes_what_the_load_command_reads() {
    let (t, _) = changed_store();
    let count = t.store.count(Registry::Citizens);
    let TestStore { dir, store } = t;
    drop(Arc::into_inner(store).expect("no other handle"));
    let jichu = |data: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jichu"))
            .arg("--data-dir")
            .arg(data)
            .args(["--log", "warn"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    };
    let csv = dir.path().join("citizens-export.csv");
    let said =
        jichu(dir.path(), &["export", "--registry", "citizens", "--format", "csv", "--out", csv.to_str().unwrap()]);
    assert!(said.contains(&format!("exported {count} citizens records")), "{said}");
    let cursor = said.rsplit("--since ").next().unwrap().trim().to_string();
    let spec = csv.with_extension("toml");
    assert!(spec.exists());
    let copy = tempfile::tempdir().unwrap();
    jichu(copy.path(), &["load", "--spec", spec.to_str().unwrap(), csv.to_str().unwrap()]);
    let delta = jichu(dir.path(), &["export", "--registry", "citizens", "--since", &cursor, "--out", "/dev/null"]);
    assert!(delta.contains("exported 0 citizens records"), "nothing changed after the cursor: {delta}");
    let reloaded = jichu::store::Store::open(&copy.path().join("store"), &Default::default()).unwrap();
    assert_eq!(reloaded.count(Registry::Citizens), count);
    let original = jichu::store::Store::open(&dir.path().join("store"), &Default::default()).unwrap();
    for item in original.scan(Registry::Citizens) {
        let (k, _) = item.unwrap();
        let id = std::str::from_utf8(&k).unwrap();
        let (a, b) =
            (original.get(Registry::Citizens, id).unwrap().unwrap(), reloaded.get(Registry::Citizens, id).unwrap());
        let b = b.unwrap_or_else(|| panic!("{id} missing from the reloaded store"));
        assert_eq!(
            (&a.values, &a.extras, a.ended, a.effective_from),
            (&b.values, &b.extras, b.ended, b.effective_from),
            "{id}"
        );
    }
}
