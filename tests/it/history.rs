//! History and as-of reads: every version kept with when, by which load and source, and what
//! changed; records, lookups, relations and profiles as they were at a past moment; retention.

use crate::common::{Server, TestStore, fixture};
use chrono::{DateTime, Utc};
use jichu::store::{Store, StoreOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CHEN: &str = "35020319500110100X";
const LIN: &str = "350203195302111033";
const LICENCE: &str = "ZZ05000000000003";

fn row(csv: &str, key: &str) -> String {
    std::fs::read_to_string(fixture(csv)).unwrap().lines().find(|l| l.starts_with(key)).unwrap().to_string()
}

fn header(csv: &str) -> String {
    std::fs::read_to_string(fixture(csv)).unwrap().lines().next().unwrap().to_string()
}

/// A spec and its CSV in `dir`: the fixture's spec with `edit` applied, and `lines`.
fn extract(
    dir: &Path,
    name: &str,
    spec_of: &str,
    edit: impl Fn(String) -> String,
    lines: &[String],
) -> (PathBuf, PathBuf) {
    let spec = edit(std::fs::read_to_string(fixture(spec_of)).unwrap());
    let (s, c) = (dir.join(format!("{name}.toml")), dir.join(format!("{name}.csv")));
    std::fs::write(&s, spec).unwrap();
    std::fs::write(&c, format!("{}\n", lines.join("\n"))).unwrap();
    (s, c)
}

fn now_then_pause() -> DateTime<Utc> {
    let t = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    t
}

/// Loads after the fixtures, from two sources: 市公安局 renames 陈志强; 市民政局 gives him a new
/// address with the date it took effect; the two sources' snapshots without him end him. Then
/// the licence ZZ05…03 passes from 陈志强 to 林秀英. Returns the moments between the loads.
fn changed(t: &TestStore) -> Vec<DateTime<Utc>> {
    let dir = t.dir.path().join("x");
    std::fs::create_dir_all(&dir).unwrap();
    let mut moments = vec![now_then_pause()];
    let renamed = row("citizens.csv", CHEN).replacen("陈志强", "陈志刚", 1);
    let (s, c) = extract(&dir, "a", "citizens.toml", |s| s, &[header("citizens.csv"), renamed.clone()]);
    t.load(&s, &[c]);
    moments.push(now_then_pause());
    let civil = |s: String| {
        s.replacen("source = \"市公安局\"", "source = \"市民政局\"", 1).replacen(
            "[columns]\n",
            "[columns]\neffective_from = \"变更日期\"\n",
            1,
        )
    };
    let moved = format!(
        "{},2026-11-03",
        renamed.replacen("福建省厦门市思明区厦禾路10号101室", "福建省厦门市湖里区江头北路1号", 1)
    );
    let (s, c) = extract(&dir, "b", "citizens.toml", civil, &[format!("{},变更日期", header("citizens.csv")), moved]);
    t.load(&s, &[c]);
    moments.push(now_then_pause());
    let snapshot =
        |s: String| civil(s).replacen("source = \"市民政局\"\n", "source = \"市民政局\"\nmode = \"snapshot\"\n", 1);
    let lin = format!("{},", row("citizens.csv", LIN));
    let (s, c) = extract(&dir, "c", "citizens.toml", snapshot, &[format!("{},变更日期", header("citizens.csv")), lin]);
    // 民政's snapshot ends its own contribution only (公安's address is his again); 公安's
    // snapshot without him ends him: no source holds him any more.
    assert_eq!(t.load(&s, &[c]).ended, 1);
    let others: Vec<String> = std::fs::read_to_string(fixture("citizens.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(CHEN))
        .map(str::to_string)
        .collect();
    let gongan = |s: String| s.replacen("[columns]", "mode = \"snapshot\"\n[columns]", 1);
    let (s, c) = extract(&dir, "c2", "citizens.toml", gongan, &others);
    assert_eq!(t.load(&s, &[c]).ended, 1);
    moments.push(now_then_pause());
    let passed = row("licences.csv", LICENCE).replacen(CHEN, LIN, 1).replacen("陈志强", "林秀英", 1);
    let (s, c) = extract(&dir, "d", "licences.toml", |s| s, &[header("licences.csv"), passed]);
    t.load(&s, &[c]);
    moments
}

fn q(t: &DateTime<Utc>) -> String {
    percent_encoding::utf8_percent_encode(&t.to_rfc3339(), percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn history_lists_every_version_with_its_load_source_and_change() {
    let t = TestStore::loaded();
    changed(&t);
    let s = Server::start(t.store.clone()).await;
    let (code, _, h) = s.get(&format!("/v1/citizens/{CHEN}/history")).await;
    assert_eq!(code, 200, "{h}");
    let v = h["versions"].as_array().unwrap();
    let summary: Vec<(&str, &str, Value)> = v
        .iter()
        .map(|v| (v["change"].as_str().unwrap(), v["source"].as_str().unwrap(), v["fields_changed"].clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("end", "市公安局", json!([])),
            ("update", "市民政局", json!(["address"])),
            ("update", "市民政局", json!(["address"])),
            ("update", "市公安局", json!(["name"])),
            ("insert", "市公安局", Value::Null),
        ]
    );
    assert_eq!(v[2]["effective_from"], "2026-11-03");
    assert_eq!(v[1]["record"]["address"], "福建省厦门市思明区厦禾路10号101室", "公安's address again");
    assert!(v[3].get("effective_from").is_none());
    assert_eq!(v[0]["record"]["ended"], true);
    assert_eq!(v[4]["record"]["name"], "陈志强");
    assert!(v[0].get("recorded_until").is_none(), "the current version holds still");
    for i in 1..v.len() {
        assert_eq!(v[i]["recorded_until"], v[i - 1]["recorded_at"], "a version holds until the next is recorded");
    }
    // Paged, newest first.
    let (_, _, p1) = s.get(&format!("/v1/citizens/{CHEN}/history?limit=3")).await;
    assert_eq!(p1["versions"].as_array().unwrap().len(), 3);
    let (_, _, p2) =
        s.get(&format!("/v1/citizens/{CHEN}/history?limit=3&cursor={}", p1["next"].as_str().unwrap())).await;
    assert_eq!(p2["versions"][1]["change"], "insert");
    assert!(p2["next"].is_null());
    let (code, _, _) = s.get(&format!("/v1/citizens/{}/history", jichu::generator::citizen_id(999_999))).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn reads_as_of_a_moment_answer_as_jichu_held_them_then() {
    let t = TestStore::loaded();
    let m = changed(&t);
    let s = Server::start(t.store.clone()).await;
    let at = |i: usize| q(&m[i]);
    let names: Vec<Value> = futures_util::future::join_all((0..4).map(|i| {
        let s = &s;
        let url = format!("/v1/citizens/{CHEN}?as_of={}", at(i));
        async move { s.get(&url).await.2 }
    }))
    .await;
    assert_eq!(names[0]["name"], "陈志强");
    assert_eq!(names[1]["name"], "陈志刚");
    assert_eq!(names[2]["address"], "福建省厦门市湖里区江头北路1号");
    assert_eq!((names[2]["ended"].clone(), names[3]["ended"].clone()), (json!(false), json!(true)));
    // A lookup as of then.
    let (code, _, b) = s.post(&format!("/v1/citizens/lookup?as_of={}", at(0)), &json!({"ids": [CHEN, LIN]})).await;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["records"][0]["name"], "陈志强");
    // Relations and profile: the licence was 陈志强's, now 林秀英's.
    let licences = |b: &Value| -> Vec<String> {
        b["relations"]["licences"]
            .as_array()
            .map_or(vec![], |a| a.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect())
    };
    let (_, _, then) = s.get(&format!("/v1/citizens/{CHEN}/relations?as_of={}", at(3))).await;
    let (_, _, now) = s.get(&format!("/v1/citizens/{CHEN}/relations")).await;
    assert!(licences(&then).contains(&LICENCE.to_string()), "{then}");
    assert!(!licences(&now).contains(&LICENCE.to_string()), "{now}");
    let (_, _, lin_then) = s.get(&format!("/v1/citizens/{LIN}/relations?as_of={}", at(3))).await;
    let (_, _, lin_now) = s.get(&format!("/v1/citizens/{LIN}/relations")).await;
    assert!(!licences(&lin_then).contains(&LICENCE.to_string()));
    assert!(licences(&lin_now).contains(&LICENCE.to_string()));
    let (code, _, p) = s.get(&format!("/v1/citizens/{CHEN}/profile?as_of={}", at(0))).await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["record"]["name"], "陈志强");
    assert!(p["licences"].as_array().unwrap().iter().any(|l| l["id"] == LICENCE && l["holder_name"] == "陈志强"));
    // A citizen not yet loaded then is absent then.
    let (code, _, _) = s.get(&format!("/v1/licences/{LICENCE}?as_of={}", at(0))).await;
    assert_eq!(code, 200);
    // Moments that cannot be answered.
    for (bad, why) in
        [("2000-01-01T00:00:00Z", "before"), ("2999-01-01T00:00:00Z", "future"), ("yesterday", "RFC 3339")]
    {
        let (code, _, b) = s.get(&format!("/v1/citizens/{CHEN}?as_of={bad}")).await;
        assert_eq!(code, 400, "{bad}");
        assert!(b["detail"].as_str().unwrap().contains(why), "{b}");
    }
}

#[tokio::test]
async fn the_retention_drops_old_versions_but_never_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { block_cache_bytes: 8 << 20, history_retention_days: Some(0) };
    let t = TestStore { store: Arc::new(Store::open(&dir.path().join("store"), &options).unwrap()), dir };
    for stem in ["citizens", "licences"] {
        t.load_fixture(stem);
    }
    let moments = changed(&t);
    assert_eq!(t.store.reader().replaced(jichu::model::Registry::Citizens, CHEN).unwrap().len(), 4);
    t.store.compact_history();
    assert!(t.store.reader().replaced(jichu::model::Registry::Citizens, CHEN).unwrap().is_empty());
    let s = Server::start(t.store.clone()).await;
    let (code, _, h) = s.get(&format!("/v1/citizens/{CHEN}/history")).await;
    assert_eq!(code, 200);
    assert_eq!(h["versions"].as_array().unwrap().len(), 1);
    assert_eq!(h["earlier_versions_dropped"], true);
    assert_eq!(h["versions"][0]["record"]["ended"], true, "the current version stays");
    let (code, _, b) = s.get(&format!("/v1/citizens/{CHEN}?as_of={}", q(&moments[2]))).await;
    assert_eq!(code, 400);
    assert!(b["detail"].as_str().unwrap().contains("kept"), "{b}");
}
