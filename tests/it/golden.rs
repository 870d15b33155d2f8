//! Golden records: several departments supply the same citizens; each source's contribution is
//! kept, the record consumers read is chosen field by field by the survivorship rules, with its
//! provenance; identity conflicts go to a review queue a steward resolves.

use crate::common::{Server, TestStore, fixture};
use jichu::config::Config;
use jichu::model::Registry;
use serde_json::json;
use std::path::{Path, PathBuf};

const CHEN: &str = "35020319500110100X";
const LIN: &str = "350203195302111033";
const HUANG: &str = "350203195603121040";
const GONGAN: &str = "市公安局";
const RENSHE: &str = "市人社局";
const MINZHENG: &str = "市民政局";

fn row(key: &str) -> String {
    std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().find(|l| l.starts_with(key)).unwrap().to_string()
}

/// A citizens extract from `source` (the fixture's columns), in `dir`.
fn extract(dir: &Path, name: &str, source: &str, snapshot: bool, rows: &[String]) -> (PathBuf, PathBuf) {
    let mut spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap().replacen(
        &format!("source = \"{GONGAN}\""),
        &format!("source = \"{source}\""),
        1,
    );
    if snapshot {
        spec = spec.replacen("[columns]", "mode = \"snapshot\"\n[columns]", 1);
    }
    let header = std::fs::read_to_string(fixture("citizens.csv")).unwrap().lines().next().unwrap().to_string();
    let (s, c) = (dir.join(format!("{name}.toml")), dir.join(format!("{name}.csv")));
    std::fs::write(&s, spec).unwrap();
    std::fs::write(&c, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    (s, c)
}

/// A store holding the fixtures (公安's citizens) and rules naming 公安 the authority on names.
fn with_rules(rules: &str) -> (TestStore, PathBuf) {
    let t = TestStore::loaded();
    let path = t.dir.path().join("survivorship.toml");
    std::fs::write(&path, rules).unwrap();
    (t, path)
}

fn load(
    t: &TestStore,
    rules: &Path,
    name: &str,
    source: &str,
    snapshot: bool,
    rows: &[String],
) -> jichu_ingest::LoadReport {
    let dir = t.dir.path().join("x");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, c) = extract(&dir, name, source, snapshot, rows);
    let mut opts = t.options();
    opts.survivorship = Some(rules.to_path_buf());
    t.try_load(&s, &[c], &opts).unwrap()
}

const RULES: &str = "[citizens]\nname = [\"source:市公安局\", \"most_recent\"]\nbirth_date = [\"source:市公安局\", \"most_recent\"]\nphone = [\"most_recent\"]\naddress = [\"most_recent\"]\n";

fn config(t: &TestStore, rules: &Path) -> Config {
    Config {
        insecure_no_auth: true,
        data_dir: t.dir.path().to_path_buf(),
        survivorship_file: Some(rules.to_path_buf()),
        ..Config::default()
    }
}

#[tokio::test]
async fn two_and_three_sources_make_one_golden_record_with_its_provenance() {
    let (t, rules) = with_rules(RULES);
    // 人社 sends 陈志强 with another phone and address, and 林秀英 under another name.
    let chen = row(CHEN).replacen("13905920000", "13800000001", 1).replacen("厦禾路10号101室", "湖滨北路8号", 1);
    let lin = row(LIN).replacen("林秀英", "林秀瑛", 1);
    let r = load(&t, &rules, "renshe", RENSHE, false, &[chen, lin]);
    assert_eq!((r.merged, r.updated, r.review_items_opened), (2, 2, 1), "{r:?}");
    // 民政 agrees with 公安 on 陈志强's phone and sends one address of its own.
    let chen3 = row(CHEN).replacen("厦禾路10号101室", "莲前西路99号", 1);
    load(&t, &rules, "minzheng", MINZHENG, false, &[chen3]);

    let s = Server::start_with(t.store.clone(), config(&t, &rules)).await;
    let (code, _, c) = s.get(&format!("/v1/citizens/{CHEN}?explain=true")).await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["name"], "陈志强");
    assert_eq!(c["phone"], "13905920000", "the newest contribution's phone: 民政's, which is 公安's");
    assert_eq!(c["address"], "福建省厦门市思明区莲前西路99号");
    let mut sources: Vec<&str> =
        c["lineage"]["sources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    sources.sort();
    let mut expected = vec![MINZHENG, RENSHE, GONGAN];
    expected.sort();
    assert_eq!(sources, expected);
    let p = &c["provenance"];
    assert_eq!((p["name"]["source"].as_str(), p["name"]["rule"].as_str()), (Some(GONGAN), Some("source:市公安局")));
    assert_eq!((p["address"]["source"].as_str(), p["address"]["rule"].as_str()), (Some(MINZHENG), Some("most_recent")));
    assert!(p["address"]["recorded_at"].is_string() && p["address"]["load_id"].is_u64());

    let (code, _, src) = s.get(&format!("/v1/citizens/{CHEN}/sources")).await;
    assert_eq!(code, 200, "{src}");
    let list = src["sources"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["source"], MINZHENG, "newest first");
    let renshe = list.iter().find(|e| e["source"] == RENSHE).unwrap();
    assert_eq!(renshe["contribution"]["phone"], "13800000001");
    assert_eq!(renshe["ended"], false);

    // 公安 is the authority on names: 林秀英 stays, flagged, with a review item naming both values.
    let (_, _, l) = s.get(&format!("/v1/citizens/{LIN}")).await;
    assert_eq!((l["name"].as_str(), l["needs_review"].as_bool()), (Some("林秀英"), Some(true)));
    let (code, _, q) = s.get("/v1/review?registry=citizens").await;
    assert_eq!(code, 200, "{q}");
    let items = q["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{q}");
    assert_eq!((items[0]["id"].as_str(), items[0]["field"].as_str()), (Some(LIN), Some("name")));
    let values: Vec<(&str, &str)> = items[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["source"].as_str().unwrap(), v["value"].as_str().unwrap()))
        .collect();
    assert!(values.contains(&(GONGAN, "林秀英")) && values.contains(&(RENSHE, "林秀瑛")), "{values:?}");
    // A record one source supplies is as it was: no contributions, its source in lineage.
    let (_, _, h) = s.get(&format!("/v1/citizens/{HUANG}/sources")).await;
    assert_eq!(h["sources"].as_array().unwrap().len(), 1);
    assert_eq!(h["sources"][0]["source"], GONGAN);
    s.stop().await;
}

fn citizen(t: &TestStore, id: &str) -> jichu::model::Record {
    t.store.reader().get(Registry::Citizens, id).unwrap().unwrap()
}

fn text(r: &jichu::model::Record, field: &str) -> String {
    r.text(field).unwrap_or_default().to_string()
}

#[test]
fn a_snapshot_ends_only_its_own_contribution() {
    let (t, rules) = with_rules(RULES);
    let chen = row(CHEN).replacen("13905920000", "13800000001", 1);
    load(&t, &rules, "renshe", RENSHE, false, &[chen, row(LIN)]);
    assert_eq!(text(&citizen(&t, CHEN), "phone"), "13800000001");
    // 人社's next snapshot no longer holds 陈志强: its contribution ends, 公安's stands.
    let r = load(&t, &rules, "renshe2", RENSHE, true, &[row(LIN)]);
    assert_eq!(r.ended, 1, "{r:?}");
    let c = citizen(&t, CHEN);
    assert!(!c.ended);
    assert_eq!(text(&c, "phone"), "13905920000", "公安's phone again");
    assert_eq!(c.sources, vec![GONGAN.to_string()]);
    // 公安's snapshot without him: no source holds him any more.
    let all: Vec<String> = std::fs::read_to_string(fixture("citizens.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(CHEN))
        .map(str::to_string)
        .collect();
    let r = load(&t, &rules, "gongan", GONGAN, true, &all);
    assert_eq!(r.ended, 1, "{r:?}");
    assert!(citizen(&t, CHEN).ended);
    assert!(!citizen(&t, LIN).ended, "林秀英 is in both");
    assert!(!citizen(&t, HUANG).ended);
}

#[test]
fn undoing_a_load_restores_the_contributions_it_replaced() {
    let (t, rules) = with_rules(RULES);
    let before = citizen(&t, CHEN);
    let r = load(&t, &rules, "renshe", RENSHE, false, &[row(CHEN).replacen("13905920000", "13800000001", 1)]);
    assert!(citizen(&t, CHEN).sourced);
    // The undo a killed load gets at the next open.
    t.store.writer().undo(r.load_id as u32, "test").unwrap();
    assert_eq!(citizen(&t, CHEN), before);
    assert!(t.store.reader().contributions(Registry::Citizens, CHEN).unwrap().is_empty());
    // The next load from 人社 merges as the first did.
    let r = load(&t, &rules, "renshe", RENSHE, false, &[row(CHEN).replacen("13905920000", "13800000001", 1)]);
    assert_eq!((r.merged, r.updated), (1, 1));
    assert_eq!(t.store.reader().contributions(Registry::Citizens, CHEN).unwrap().len(), 2);
}

#[tokio::test]
async fn a_stewards_choice_wins_until_the_authority_agrees() {
    let (t, rules) = with_rules(RULES);
    load(&t, &rules, "renshe", RENSHE, false, &[row(LIN).replacen("林秀英", "林秀瑛", 1)]);
    let s = Server::start_with(t.store.clone(), config(&t, &rules)).await;
    let (_, _, q) = s.get("/v1/review").await;
    let item = q["items"][0]["item"].as_u64().unwrap();
    let (code, _, e) = s.post(&format!("/v1/review/{item}"), &json!({"choose": "source:市人社局", "value": "x"})).await;
    assert_eq!((code, e["code"].as_str()), (400, Some("bad_request")));
    let (code, _, e) = s.post(&format!("/v1/review/{item}"), &json!({"choose": "source:市卫健委"})).await;
    assert_eq!(code, 400, "{e}");
    let (code, _, _) = s.post("/v1/review/999999", &json!({"choose": "source:市人社局"})).await;
    assert_eq!(code, 404);
    let (code, _, resolved) = s.post(&format!("/v1/review/{item}"), &json!({"choose": "source:市人社局"})).await;
    assert_eq!(code, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolution"]["choose"], "source:市人社局");
    assert_eq!(resolved["resolution"]["by"], "local");
    let (_, _, l) = s.get(&format!("/v1/citizens/{LIN}?explain=true")).await;
    assert_eq!(l["name"], "林秀瑛", "published before the answer");
    assert!(l.get("needs_review").is_none(), "{l}");
    assert_eq!(
        (l["provenance"]["name"]["source"].as_str(), l["provenance"]["name"]["rule"].as_str()),
        (Some("steward"), Some("steward"))
    );
    let (_, _, open) = s.get("/v1/review").await;
    assert!(open["items"].as_array().unwrap().is_empty());
    s.stop().await;

    // 公安 sends 林秀瑛 too: the authority agrees; the steward's value is no longer needed.
    load(&t, &rules, "gongan", GONGAN, false, &[row(LIN).replacen("林秀英", "林秀瑛", 1)]);
    let s = Server::start_with(t.store.clone(), config(&t, &rules)).await;
    let (_, _, l) = s.get(&format!("/v1/citizens/{LIN}?explain=true")).await;
    assert_eq!(l["name"], "林秀瑛");
    assert_eq!(l["provenance"]["name"]["source"], GONGAN);
    let (_, _, all) = s.get("/v1/review?status=all").await;
    assert_eq!(all["items"][0]["status"], "agreed", "{all}");
    s.stop().await;
    // 公安 goes back to 林秀英: a conflict again, the authority's value rules.
    load(&t, &rules, "gongan2", GONGAN, false, &[row(LIN)]);
    let l = citizen(&t, LIN);
    assert_eq!((text(&l, "name").as_str(), l.needs_review), ("林秀英", true));
}

#[tokio::test]
async fn recompute_after_a_rules_change_is_recorded_in_history_and_the_feed() {
    let (t, rules) = with_rules(RULES);
    load(&t, &rules, "renshe", RENSHE, false, &[row(CHEN).replacen("13905920000", "13800000001", 1)]);
    assert_eq!(text(&citizen(&t, CHEN), "phone"), "13800000001");
    std::fs::write(&rules, format!("{RULES}\n").replace("phone = [\"most_recent\"]", "phone = [\"source:市公安局\"]"))
        .unwrap();
    let s = Server::start_with(t.store.clone(), config(&t, &rules)).await;
    let (_, _, before) = s.get("/v1/changes?limit=1").await;
    let last = before["last_position"].as_u64().unwrap();
    let (code, _, done) = s.post("/v1/admin/recompute?registry=citizens", &json!({})).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!((done[0]["sourced"].as_u64(), done[0]["changed"].as_u64()), (Some(1), Some(1)), "{done}");
    let (_, _, c) = s.get(&format!("/v1/citizens/{CHEN}")).await;
    assert_eq!(c["phone"], "13905920000");
    let (_, _, h) = s.get(&format!("/v1/citizens/{CHEN}/history?limit=1")).await;
    let v = &h["versions"][0];
    assert_eq!((v["source"].as_str(), v["change"].as_str()), (Some("recompute"), Some("update")), "{h}");
    assert_eq!(v["fields_changed"], json!(["phone"]));
    let (_, _, feed) = s.get(&format!("/v1/changes?after={last}")).await;
    let changes = feed["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{feed}");
    assert_eq!((changes[0]["id"].as_str(), changes[0]["change"].as_str()), (Some(CHEN), Some("update")));
    // A bad rules file is a 400 that names the mistake.
    std::fs::write(&rules, "[citizens]\nphon = [\"most_recent\"]\n").unwrap();
    let (code, _, e) = s.post("/v1/admin/recompute", &json!({})).await;
    assert_eq!(code, 400);
    assert!(e["detail"].as_str().unwrap().contains("phon"), "{e}");
    s.stop().await;
}

/// The entities fixture's header and first row.
fn first_entity() -> (String, String) {
    let text = std::fs::read_to_string(fixture("entities.csv")).unwrap();
    let mut lines = text.lines().map(str::to_string);
    (lines.next().unwrap(), lines.next().unwrap())
}

#[tokio::test]
async fn an_entity_row_keyed_by_its_organisation_code_attaches_to_its_entity() {
    let t = TestStore::loaded();
    let (header, first) = first_entity();
    let (header, first) = (header.as_str(), first.as_str());
    let credit = first.split(',').next().unwrap();
    let org = &credit[8..17];
    let hyphenated = format!("{}-{}", &org[..8], &org[8..]);
    let unknown = format!("12345678{}", jichu::model::ids::org_check_char(b"12345678"));
    let rows = [
        first.replacen(credit, &hyphenated, 1).replacen("存续", "在业", 1),
        first.replacen(credit, &unknown, 1),
        first.replacen(credit, "12345678-0", 1),
    ];
    let spec = std::fs::read_to_string(fixture("entities.toml")).unwrap().replacen(
        "source = \"市市场监督管理局\"",
        "source = \"市税务局\"\nkey_kind = \"organisation_code\"",
        1,
    );
    let dir = t.dir.path();
    std::fs::write(dir.join("tax.toml"), spec).unwrap();
    std::fs::write(dir.join("tax.csv"), format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let report = t.load(&dir.join("tax.toml"), &[dir.join("tax.csv")]);
    assert_eq!((report.accepted, report.merged), (1, 1), "{report:?}");
    let reasons: Vec<(u64, String)> =
        crate::common::reject_lines(&dir.join("rejects").join(format!("load-{}.csv", report.load_id)));
    let check = jichu::model::ids::org_check_char(b"12345678");
    let expected_third = if check == '0' { vec![] } else { vec![(4, "invalid_id".to_string())] };
    assert_eq!(reasons, [vec![(3, "unresolved_key".to_string())], expected_third].concat());
    let e = t.store.reader().get(Registry::Entities, credit).unwrap().unwrap();
    let mut sources = e.sources.clone();
    sources.sort();
    assert_eq!(sources, vec!["市市场监督管理局".to_string(), "市税务局".to_string()]);

    let s = Server::start(t.store.clone()).await;
    let (code, _, body) = s.get(&format!("/v1/entities/by-organisation-code/{hyphenated}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["id"], credit);
    let (code, _, _) = s.get(&format!("/v1/entities/by-organisation-code/{unknown}")).await;
    assert_eq!(code, 404);
    let (code, _, b) = s.get("/v1/entities/by-organisation-code/1234").await;
    assert_eq!((code, b["code"].as_str()), (400, Some("malformed_id")));
    // The registry's own routes still answer beside it.
    let (code, _, _) = s.get(&format!("/v1/entities/{credit}")).await;
    assert_eq!(code, 200);
    s.stop().await;
}

#[tokio::test]
async fn relations_follow_the_golden_values() {
    let t = TestStore::loaded();
    let (header, first) = first_entity();
    let (header, first) = (header.as_str(), first.as_str());
    let credit = first.split(',').next().unwrap();
    assert!(first.contains(CHEN), "the fixture's first company is represented by 陈志强");
    // 税务 names 林秀英 its legal representative; the newest value wins (no rule names an authority).
    let moved = first.replacen(CHEN, LIN, 1).replacen("陈志强", "林秀英", 1);
    let spec = std::fs::read_to_string(fixture("entities.toml")).unwrap().replacen(
        "source = \"市市场监督管理局\"",
        "source = \"市税务局\"",
        1,
    );
    let dir = t.dir.path();
    std::fs::write(dir.join("tax.toml"), spec).unwrap();
    std::fs::write(dir.join("tax.csv"), format!("{header}\n{moved}\n")).unwrap();
    let r = t.load(&dir.join("tax.toml"), &[dir.join("tax.csv")]);
    assert_eq!((r.merged, r.review_items_opened), (1, 1), "a legal representative identifies an entity: {r:?}");
    let s = Server::start(t.store.clone()).await;
    let (_, _, e) = s.get(&format!("/v1/entities/{credit}")).await;
    assert_eq!((e["legal_rep_id"].as_str(), e["needs_review"].as_bool()), (Some(LIN), Some(true)));
    let represents = |v: &serde_json::Value| v.to_string().contains(credit);
    let (_, _, lin) = s.get(&format!("/v1/citizens/{LIN}/relations")).await;
    let (_, _, chen) = s.get(&format!("/v1/citizens/{CHEN}/relations")).await;
    assert!(represents(&lin), "{lin}");
    assert!(!represents(&chen), "{chen}");
    let (_, _, q) = s.get("/v1/review?registry=entities").await;
    assert_eq!(q["items"][0]["field"], "legal_rep_id", "{q}");
    s.stop().await;
}

#[tokio::test]
async fn the_review_queue_is_for_administrators_and_every_decision_is_audited() {
    use jichu::access::{Role, keys};
    let (t, rules) = with_rules(RULES);
    load(&t, &rules, "renshe", RENSHE, false, &[row(LIN).replacen("林秀英", "林秀瑛", 1)]);
    let access = t.dir.path().join("access.toml");
    std::fs::write(
        &access,
        "[[department]]\nname = \"信息中心\"\nrole = \"admin\"\npurposes = [\"数据治理\"]\n[department.registries.citizens]\noperations = [\"get\"]\nfields = { id = \"full\", name = \"full\" }\n\n[[department]]\nname = \"市人社局\"\nrole = \"department\"\npurposes = [\"就业服务\"]\n[department.registries.citizens]\noperations = [\"get\"]\nfields = { id = \"full\", name = \"full\" }\n",
    )
    .unwrap();
    let admin = keys::add(&access, "信息中心", Role::Admin).unwrap().1;
    let hr = keys::add(&access, RENSHE, Role::Department).unwrap().1;
    let s = Server::start_with(t.store.clone(), Config { insecure_no_auth: false, ..config(&t, &rules) }).await;
    let get = |key: &str| s.client.get(s.url("/v1/review")).bearer_auth(key).send();
    assert_eq!(get(&hr).await.unwrap().status(), 403, "a department does not steward");
    let (code, _, q) = Server::parts(get(&admin).await.unwrap()).await;
    assert_eq!(code, 200, "{q}");
    let item = q["items"][0]["item"].as_u64().unwrap();
    let r = s.client.post(s.url(&format!("/v1/review/{item}"))).bearer_auth(&admin).json(&json!({"value": "林 秀瑛"}));
    let (code, _, done) = Server::parts(r.send().await.unwrap()).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        (done["resolution"]["by"].as_str(), done["resolution"]["value"].as_str()),
        (Some("信息中心"), Some("林 秀瑛"))
    );
    let purpose = percent_encoding::utf8_percent_encode("数据治理", percent_encoding::NON_ALPHANUMERIC).to_string();
    let read = s.client.get(s.url(&format!("/v1/citizens/{LIN}"))).bearer_auth(&admin).header("x-purpose", purpose);
    let (_, _, l) = Server::parts(read.send().await.unwrap()).await;
    assert_eq!(l["name"], "林秀瑛", "a steward's own value is normalised as a load's would be");
    let mut found = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let trail = std::fs::read_to_string(t.dir.path().join("audit/audit.jsonl")).unwrap_or_default();
        found = trail.lines().any(|l| {
            l.contains("\"admin\"") && l.contains(&format!("/v1/review/{item}"))
                || l.contains("\"admin\"") && l.contains("/v1/review/{item}")
        });
        if found {
            break;
        }
    }
    assert!(found, "the decision is in the audit trail");
    s.stop().await;
}
