//! Departments, grants and masking, purposes, rate limits, and the tamper-evident audit trail,
//! over HTTP with real keys.

use crate::common::{Server, TestStore};
use jichu::access::{Role, keys};
use jichu::config::Config;
use serde_json::{Value, json};
use std::path::Path;

const CHEN: &str = "35020319500110100X"; // 陈志强, district 350203
const WU: &str = "350205199004122026"; // 吴丽, district 350205
const ENTITY: &str = "91350203MA2Y0001XR";

const ACCESS: &str = r#"
[[department]]
name = "信息中心"
role = "admin"
purposes = ["运维"]
[department.registries.citizens]
operations = ["get", "lookup", "relations", "profile", "search", "spatial"]
fields = { id = "full", name = "full", gender = "full", ethnicity = "full", birth_date = "full", household_address = "full", address = "full", phone = "full", location = "full", extras = "full" }

[[department]]
name = "市人社局"
role = "department"
purposes = ["社保待遇审核", "就业服务"]
[department.registries.citizens]
operations = ["get", "lookup", "relations", "profile", "search", "spatial"]
fields = { id = "full", name = "full", gender = "full", birth_date = "masked", address = "masked", phone = "masked", location = "full" }
rows = { district = ["350203"] }
[department.registries.entities]
operations = ["get", "lookup", "search"]
fields = { id = "masked", name = "full", legal_rep_name = "masked", status = "full" }

[[department]]
name = "市税务局"
role = "department"
purposes = ["纳税服务"]
rate_limit = { per_second = 1, burst = 2 }
[department.registries.entities]
operations = ["get"]
fields = { id = "full", name = "full" }
"#;

struct Keys {
    admin: String,
    hr: String,
    tax: String,
}

fn setup(t: &TestStore) -> Keys {
    let path = t.dir.path().join("access.toml");
    std::fs::write(&path, ACCESS).unwrap();
    Keys {
        admin: keys::add(&path, "信息中心", Role::Admin).unwrap().1,
        hr: keys::add(&path, "市人社局", Role::Department).unwrap().1,
        tax: keys::add(&path, "市税务局", Role::Department).unwrap().1,
    }
}

async fn server(t: &TestStore) -> Server {
    Server::start_with(t.store.clone(), Config::default()).await
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn call(
    s: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    purpose: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = match method {
        "GET" => s.client.get(s.url(path)),
        "DELETE" => s.client.delete(s.url(path)),
        _ => s.client.post(s.url(path)),
    };
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(p) = purpose {
        r = r.header("x-purpose", enc(p));
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let (status, _, body) = Server::parts(r.send().await.unwrap()).await;
    (status, body)
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

const HR: &str = "社保待遇审核";

#[tokio::test]
async fn every_route_wants_a_live_key() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/citizens/{CHEN}"), None),
        ("POST", "/v1/citizens/lookup".into(), Some(json!({"ids": [CHEN]}))),
        ("GET", format!("/v1/citizens/{CHEN}/relations"), None),
        ("GET", format!("/v1/citizens/{CHEN}/profile"), None),
        ("POST", "/v1/citizens/search".into(), Some(json!({"q": "陈"}))),
        ("POST", "/v1/search".into(), Some(json!({"q": "陈"}))),
        ("POST", "/v1/citizens/near".into(), Some(json!({"lon": 118.1, "lat": 24.5, "k": 3}))),
        ("POST", "/v1/citizens/within".into(), Some(json!({"bbox": [118.0, 24.4, 118.2, 24.6]}))),
        ("GET", "/v1/parcels/containing?lon=118.09&lat=24.46".into(), None),
        ("GET", "/v1/catalog".into(), None),
        ("GET", "/v1/me".into(), None),
        ("GET", "/v1/loads".into(), None),
        ("GET", "/v1/audit".into(), None),
        ("GET", "/metrics".into(), None),
    ];
    for (method, path, body) in &routes {
        let (status, b) = call(&s, method, path, None, Some(HR), body.clone()).await;
        assert_eq!((status, code(&b)), (401, "unauthenticated"), "{method} {path} without a key");
        let (status, _) = call(&s, method, path, Some("jichu_not_a_key"), Some(HR), body.clone()).await;
        assert_eq!(status, 401, "{method} {path} with an unknown key");
    }
    for open in ["/healthz", "/openapi.json"] {
        assert_eq!(call(&s, "GET", open, None, None, None).await.0, 200, "{open} answers without a key");
    }
    let (status, _) = call(&s, "GET", "/metrics", Some(&k.hr), None, None).await;
    assert_eq!(status, 200, "metrics for any role");
    // A revoked key stops working without a restart.
    let path = t.dir.path().join("access.toml");
    let hr_id = keys::list(&path).unwrap().into_iter().find(|i| i.department == "市人社局").unwrap().id;
    assert_eq!(call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), Some(HR), None).await.0, 200);
    keys::revoke(&path, &hr_id).unwrap();
    let mut revoked = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), Some(HR), None).await.0 == 401 {
            revoked = true;
            break;
        }
    }
    assert!(revoked, "the access file was reloaded live");
    // Administrators' routes refuse a department.
    let (status, b) = call(&s, "GET", "/v1/loads", Some(&k.tax), None, None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"));
    assert_eq!(call(&s, "GET", "/v1/loads", Some(&k.admin), None, None).await.0, 200);
}

#[tokio::test]
async fn grants_decide_registries_operations_fields_and_masks() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    // Masked forms, exactly; fields not granted left out; the key asked for shown in full.
    let (status, b) = call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), Some(HR), None).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["id"], CHEN);
    assert_eq!(b["name"], "陈志强");
    assert_eq!(b["birth_date"], "1950");
    assert_eq!(b["address"], "福建省厦门市思明区厦禾路");
    assert_eq!(b["phone"], "139****0000");
    assert!(b.get("ethnicity").is_none() && b.get("household_address").is_none() && b.get("extras").is_none(), "{b}");
    // Entities: the key is masked where it is not the key asked for; the legal representative's name masked.
    let (_, b) = call(&s, "POST", "/v1/entities/search", Some(&k.hr), Some(HR), Some(json!({"q": "鹭岛"}))).await;
    assert_eq!(b["hits"][0]["id"], "913502********01XR", "{b}");
    assert_eq!(b["hits"][0]["record"]["legal_rep_name"], "陈*强");
    // Asking for a field not granted names every such field.
    let (status, b) = call(
        &s,
        "GET",
        &format!("/v1/citizens/{CHEN}?fields=name,ethnicity,household_address"),
        Some(&k.hr),
        Some(HR),
        None,
    )
    .await;
    assert_eq!((status, code(&b)), (403, "field_not_granted"));
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("ethnicity") && detail.contains("household_address"), "{detail}");
    // A registry or an operation not granted.
    let (status, b) = call(&s, "GET", "/v1/parcels/350203001001GB00001", Some(&k.hr), Some(HR), None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"));
    let (status, b) = call(&s, "GET", &format!("/v1/entities/{ENTITY}/profile"), Some(&k.hr), Some(HR), None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"), "profile is not among the entities operations");
    // Searching or filtering by a field not seen in full is refused: no oracle for a masked value.
    let (status, b) =
        call(&s, "POST", "/v1/citizens/search", Some(&k.hr), Some(HR), Some(json!({"address": "厦禾路"}))).await;
    assert_eq!((status, code(&b)), (403, "field_not_granted"), "{b}");
    let filter = json!({"name": "陈志强", "filters": {"birth_date": "1950"}});
    let (status, b) = call(&s, "POST", "/v1/citizens/search", Some(&k.hr), Some(HR), Some(filter)).await;
    assert_eq!((status, code(&b)), (403, "field_not_granted"), "{b}");
    // The default `q` searches only what the caller sees in full: names, not addresses.
    let (status, b) =
        call(&s, "POST", "/v1/citizens/search", Some(&k.hr), Some(HR), Some(json!({"q": "厦禾路"}))).await;
    assert_eq!((status, b["total"].as_u64()), (200, Some(0)), "{b}");
    // /v1/me says all this.
    let (_, me) = call(&s, "GET", "/v1/me", Some(&k.hr), None, None).await;
    assert_eq!(me["department"], "市人社局");
    assert_eq!(me["registries"]["citizens"]["fields"]["phone"], "masked");
    assert_eq!(me["registries"]["citizens"]["rows"]["district"], json!(["350203"]));
}

#[tokio::test]
async fn rows_outside_a_grant_are_absent_everywhere() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    let get = |key: &'static str| format!("/v1/citizens/{key}");
    // The admin sees 吴丽 (district 350205); the department with rows 350203 does not.
    assert_eq!(call(&s, "GET", &get(WU), Some(&k.admin), Some("运维"), None).await.0, 200);
    let (status, b) = call(&s, "GET", &get(WU), Some(&k.hr), Some(HR), None).await;
    assert_eq!((status, code(&b)), (404, "not_found"), "as if absent");
    let (_, b) = call(&s, "POST", "/v1/citizens/lookup", Some(&k.hr), Some(HR), Some(json!({"ids": [CHEN, WU]}))).await;
    assert_eq!(b["not_found"], json!([WU]));
    assert!(b["records"][1].is_null());
    for path in [format!("/v1/citizens/{WU}/relations"), format!("/v1/citizens/{WU}/profile")] {
        assert_eq!(call(&s, "GET", &path, Some(&k.hr), Some(HR), None).await.0, 404, "{path}");
    }
    // Search totals and spatial counts count only visible rows.
    let total = |key: &str, p: &str| {
        let key = key.to_string();
        let p = p.to_string();
        let s = &s;
        async move {
            call(s, "POST", "/v1/citizens/search", Some(&key), Some(&p), Some(json!({"name": "吴丽"}))).await.1["total"]
                .as_u64()
        }
    };
    assert_eq!(total(&k.admin, "运维").await, Some(1));
    assert_eq!(total(&k.hr, HR).await, Some(0));
    let count = json!({"lon": 118.0421, "lat": 24.4920, "radius_m": 5000, "count_only": true});
    let (_, all) = call(&s, "POST", "/v1/citizens/near", Some(&k.admin), Some("运维"), Some(count.clone())).await;
    let (_, some) = call(&s, "POST", "/v1/citizens/near", Some(&k.hr), Some(HR), Some(count)).await;
    assert!(all["count"].as_u64() > some["count"].as_u64(), "{all} vs {some}");
    let (_, near) = call(
        &s,
        "POST",
        "/v1/citizens/near",
        Some(&k.hr),
        Some(HR),
        Some(json!({"lon": 118.0421, "lat": 24.4920, "k": 50})),
    )
    .await;
    assert!(near["hits"].as_array().unwrap().iter().all(|h| h["id"].as_str().unwrap().starts_with("350203")), "{near}");
    // The catalogue shows no count of a registry seen in part.
    let (_, catalog) = call(&s, "GET", "/v1/catalog", Some(&k.hr), None, None).await;
    let citizens = catalog["registries"].as_array().unwrap().iter().find(|r| r["name"] == "citizens").unwrap();
    assert!(citizens["count"].is_null());
    assert!(catalog["registries"].as_array().unwrap().iter().all(|r| r["name"] != "parcels"), "no grant, not listed");
}

#[tokio::test]
async fn personal_reads_need_a_declared_purpose_and_keys_have_rate_limits() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    let (status, b) = call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), None, None).await;
    assert_eq!((status, code(&b)), (400, "purpose_required"));
    let (status, b) = call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), Some("好奇"), None).await;
    assert_eq!((status, code(&b)), (403, "purpose_not_allowed"));
    // Public fields need no purpose.
    let (status, _) = call(&s, "GET", &format!("/v1/entities/{ENTITY}?fields=name"), Some(&k.tax), None, None).await;
    assert_eq!(status, 200);
    // 市税务局 may make 1 request a second with bursts of 2.
    let mut limited = None;
    for _ in 0..5 {
        let r = s
            .client
            .get(s.url(&format!("/v1/entities/{ENTITY}?fields=name")))
            .bearer_auth(&k.tax)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the rate limit applies");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    let (_, _, body) = Server::parts(r).await;
    assert_eq!(code(&body), "rate_limited");
}

/// A full disk (`/dev/full` answers every write with ENOSPC): personal reads stop with 503
/// `audit_unavailable` rather than go unrecorded; public reads go on; the server still stops.
#[tokio::test]
async fn personal_reads_stop_when_the_audit_cannot_be_written() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let audit = t.dir.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    std::os::unix::fs::symlink("/dev/full", audit.join("audit.jsonl")).unwrap();
    let s = server(&t).await;
    let path = format!("/v1/citizens/{CHEN}");
    let mut refused = None;
    for _ in 0..100 {
        let (status, b) = call(&s, "GET", &path, Some(&k.hr), Some(HR), None).await;
        if status == 503 {
            refused = Some(b);
            break;
        }
        // Only answers given before the first failed batch was noticed.
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let b = refused.expect("personal reads are refused once the audit cannot be written");
    assert_eq!(code(&b), "audit_unavailable");
    let (status, _) = call(&s, "GET", &format!("/v1/entities/{ENTITY}?fields=name"), Some(&k.tax), None, None).await;
    assert_eq!(status, 200, "a public read records nothing, so it is answered");
    let (status, b) = call(&s, "GET", "/v1/loads", Some(&k.admin), None, None).await;
    assert_eq!((status, code(&b)), (503, "audit_unavailable"), "an administrator's action is recorded first");
    s.stop().await;
}

fn audit_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("audit/audit.jsonl")).unwrap().lines().map(String::from).collect()
}

#[tokio::test]
async fn the_audit_records_personal_reads_and_detects_tampering() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    let (status, _) =
        call(&s, "POST", "/v1/citizens/lookup", Some(&k.hr), Some(HR), Some(json!({"ids": [CHEN, WU]}))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&s, "GET", &format!("/v1/entities/{ENTITY}?fields=name"), Some(&k.tax), None, None).await;
    assert_eq!(status, 200, "public fields only: not a personal read");
    let _ = call(&s, "GET", &format!("/v1/citizens/{CHEN}"), None, None, None).await; // denied
    let r = s
        .client
        .get(s.url(&format!("/v1/citizens/{CHEN}")))
        .bearer_auth(&k.admin)
        .header("x-purpose", enc("运维"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-42");
    s.stop().await; // writes the queue and signs the head
    let dir = t.dir.path();
    let lines = audit_lines(dir);
    let entries: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    let lookup = &entries[0];
    assert_eq!(lookup["kind"], "read");
    assert_eq!(lookup["department"], "市人社局");
    assert_eq!(lookup["purpose"], HR);
    assert_eq!(lookup["route"], "/v1/{registry}/lookup");
    assert_eq!(
        lookup["records"],
        json!([format!("citizens:{CHEN}")]),
        "only the record returned (吴丽 is outside the rows)"
    );
    assert!(lookup["fields"].as_array().unwrap().iter().any(|f| f == "phone"));
    assert_eq!(entries[1]["kind"], "denied");
    assert_eq!(entries[1]["status"], 401);
    assert_eq!(entries[2]["request_id"], "req-42");
    // No key is ever written.
    let text = lines.join("\n");
    for key in [&k.admin, &k.hr, &k.tax] {
        assert!(!text.contains(key.as_str()));
    }
    // Intact, then broken at the right place by each kind of tampering.
    let v = jichu::access::audit::verify(&dir.join("audit")).unwrap();
    assert_eq!((v.lines, v.first_broken), (3, None), "{v:?}");
    assert!(v.heads >= 1);
    let original = std::fs::read_to_string(dir.join("audit/audit.jsonl")).unwrap();
    let check = |text: String, at: u64| {
        std::fs::write(dir.join("audit/audit.jsonl"), text).unwrap();
        let v = jichu::access::audit::verify(&dir.join("audit")).unwrap();
        assert_eq!(v.first_broken, Some(at), "{v:?}");
    };
    check(original.replacen("市人社局", "市民政局", 1), 2); // one edited byte: the next line's link breaks
    check(lines[1..].iter().map(|l| format!("{l}\n")).collect(), 1); // the first line deleted
    check(format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]), 1); // two lines swapped
    check(format!("{}\n{}\n", lines[0], lines[1]), 3); // the tail truncated: the signed head says 3
    let last_edit = original.replace("req-42", "req-43");
    check(last_edit, 3); // the last line edited: its signed head no longer matches
    // The binary says so too, with a non-zero exit.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jichu"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--log", "warn", "audit", "verify"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn the_audit_answers_who_read_a_record_and_metrics_hold_no_key() {
    let t = TestStore::loaded();
    let k = setup(&t);
    let s = server(&t).await;
    call(&s, "GET", &format!("/v1/citizens/{CHEN}"), Some(&k.hr), Some(HR), None).await;
    call(&s, "GET", &format!("/v1/citizens/{CHEN}/profile"), Some(&k.admin), Some("运维"), None).await;
    let mut seen = Value::Null;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (status, b) = call(&s, "GET", &format!("/v1/audit?record={CHEN}"), Some(&k.admin), None, None).await;
        assert_eq!(status, 200);
        if b["entries"].as_array().is_some_and(|e| e.len() >= 2) {
            seen = b;
            break;
        }
    }
    let departments: Vec<&str> =
        seen["entries"].as_array().unwrap().iter().map(|e| e["department"].as_str().unwrap()).collect();
    assert!(departments.contains(&"市人社局") && departments.contains(&"信息中心"), "{seen}");
    // Both filters at once, a department's name in Chinese: the HR read only.
    let q = format!("/v1/audit?record={CHEN}&department={}", enc("市人社局"));
    let (status, b) = call(&s, "GET", &q, Some(&k.admin), None, None).await;
    assert_eq!(status, 200, "{b}");
    let entries = b["entries"].as_array().unwrap();
    assert!(!entries.is_empty() && entries.iter().all(|e| e["department"] == "市人社局"), "{b}");
    // A key that only begins like CHEN's is not CHEN's.
    let (_, b) = call(&s, "GET", &format!("/v1/audit?record={}", &CHEN[..10]), Some(&k.admin), None, None).await;
    assert_eq!(b["entries"], json!([]), "{b}");
    let (status, b) = call(&s, "GET", "/v1/audit", Some(&k.hr), None, None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"), "the audit is for administrators");
    let (_, pk) = call(&s, "GET", "/v1/audit/public-key", Some(&k.hr), None, None).await;
    assert_eq!(pk["public_key"].as_str().unwrap().len(), 64);
    let metrics = s.client.get(s.url("/metrics")).bearer_auth(&k.admin).send().await.unwrap().text().await.unwrap();
    for secret in [k.admin.as_str(), k.hr.as_str(), CHEN] {
        assert!(!metrics.contains(secret), "no key in a metric label");
    }
}

const SYNC: &str = r#"
[[department]]
name = "思明区数据局"
role = "department"
purposes = ["数据同步"]
[department.registries.citizens]
operations = ["get", "changes", "history"]
fields = { id = "masked", name = "full", phone = "masked" }
rows = { district = ["350203"] }

[[department]]
name = "市人社局"
role = "department"
purposes = ["社保待遇审核"]
[department.registries.citizens]
operations = ["get"]
fields = { id = "full", name = "full" }
"#;

/// A loaded store served under `policy`, with a key each for 思明区数据局 and 市人社局.
async fn district_and_hr(policy: &str) -> (TestStore, String, String, Server) {
    let t = TestStore::loaded();
    let path = t.dir.path().join("access.toml");
    std::fs::write(&path, policy).unwrap();
    let district = keys::add(&path, "思明区数据局", Role::Department).unwrap().1;
    let hr = keys::add(&path, "市人社局", Role::Department).unwrap().1;
    let s = server(&t).await;
    (t, district, hr, s)
}

/// Whether an audit line matching `found` appears within three seconds (the trail is
/// written by its own thread).
async fn audited(dir: &Path, found: impl Fn(&str) -> bool) -> bool {
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if audit_lines(dir).iter().any(|l| found(l)) {
            return true;
        }
    }
    false
}

/// The feed and history obey grants: the operation, the registry, the rows, the masks and the
/// purpose; what they return is audited.
#[tokio::test]
async fn the_feed_and_history_obey_grants_and_are_audited() {
    let (t, sync, hr, s) = district_and_hr(SYNC).await;
    let (status, b) =
        call(&s, "GET", "/v1/changes?include=record&limit=10000", Some(&sync), Some("数据同步"), None).await;
    assert_eq!(status, 200, "{b}");
    let changes = b["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        assert_eq!(c["registry"], "citizens", "only the granted registry's changes");
        let id = c["id"].as_str().unwrap();
        assert!(id.starts_with("350203") && id.contains('*'), "masked, and only district 350203: {id}");
        let record = c["record"].as_object().unwrap();
        assert!(record.contains_key("name") && !record.contains_key("birth_date"), "{record:?}");
        assert!(record["phone"].as_str().is_none_or(|p| p.contains('*')));
    }
    let (status, b) = call(&s, "GET", "/v1/changes?registry=licences", Some(&sync), Some("数据同步"), None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"));
    let (status, b) = call(&s, "GET", "/v1/changes", Some(&sync), None, None).await;
    assert_eq!((status, code(&b)), (400, "purpose_required"));
    let (status, b) = call(&s, "GET", "/v1/changes", Some(&hr), Some("社保待遇审核"), None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"), "no department has the feed without the grant");
    // History: rows and masks as for reads; as_of needs the grant.
    let (status, b) =
        call(&s, "GET", &format!("/v1/citizens/{CHEN}/history"), Some(&sync), Some("数据同步"), None).await;
    assert_eq!(status, 200, "{b}");
    let record = &b["versions"][0]["record"];
    assert_eq!(record["id"], CHEN, "asked by its key, the key is shown");
    assert!(record["phone"].as_str().unwrap().contains('*') && record.get("birth_date").is_none(), "{record}");
    let (status, _) = call(&s, "GET", &format!("/v1/citizens/{WU}/history"), Some(&sync), Some("数据同步"), None).await;
    assert_eq!(status, 404, "outside the rows: absent");
    let now =
        percent_encoding::utf8_percent_encode(&chrono::Utc::now().to_rfc3339(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let (status, b) =
        call(&s, "GET", &format!("/v1/citizens/{CHEN}?as_of={now}"), Some(&hr), Some("社保待遇审核"), None).await;
    assert_eq!((status, code(&b)), (403, "not_granted"));
    let (status, _) =
        call(&s, "GET", &format!("/v1/citizens/{CHEN}?as_of={now}"), Some(&sync), Some("数据同步"), None).await;
    assert_eq!(status, 200);
    // The feed page's records are in the audit.
    assert!(
        audited(t.dir.path(), |l| l.contains("\"route\":\"/v1/changes\"") && l.contains(&format!("citizens:{CHEN}")))
            .await,
        "the keys a feed page returned are audited"
    );
}

const EXPORTER: &str = r#"
[[department]]
name = "思明区数据局"
role = "department"
purposes = ["数据同步"]
[department.registries.citizens]
operations = ["export"]
fields = { id = "full", name = "full", phone = "masked" }
rows = { district = ["350203"] }

[[department]]
name = "市人社局"
role = "department"
purposes = ["社保待遇审核"]
[department.registries.citizens]
operations = ["get", "changes"]
fields = { id = "full", name = "full" }
"#;

/// An export obeys the grant (operation, rows, masks, purpose) and its scope is audited
/// before the first record goes out.
#[tokio::test]
async fn exports_obey_grants_and_are_audited() {
    let (t, sync, hr, s) = district_and_hr(EXPORTER).await;
    let get = |key: &str, purpose: &str, query: &str| {
        s.client
            .get(s.url(&format!("/v1/citizens/export{query}")))
            .header("authorization", format!("Bearer {key}"))
            .header("x-purpose", enc(purpose))
            .send()
    };
    let r = get(&sync, "数据同步", "").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (cursor, records) = lines.split_last().unwrap();
    assert!(cursor["next"].is_string());
    assert!(!records.is_empty());
    for r in records {
        assert!(r["id"].as_str().unwrap().starts_with("350203"), "only district 350203: {r}");
        assert!(r.get("birth_date").is_none() && r["phone"].as_str().is_none_or(|p| p.contains('*')), "{r}");
    }
    let csv = get(&sync, "数据同步", "?format=csv").await.unwrap().text().await.unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains("phone") && !header.contains("birth_date"), "{header}");
    assert_eq!(csv.lines().count(), records.len() + 1);
    let r = get(&hr, HR, "").await.unwrap();
    assert_eq!(r.status(), 403, "reads and the feed do not grant exports");
    assert!(
        audited(t.dir.path(), |l| l.contains("\"route\":\"/v1/{registry}/export\"")
            && l.contains("export of citizens at feed position"))
        .await,
        "{:?}",
        audit_lines(t.dir.path())
    );
}

/// Audit searches read the blocks of the trail its index says may match, and find exactly what
/// reading every line finds, by record, department, time and cursor; a missing or damaged
/// index is rebuilt from the trail when the log opens.
#[tokio::test]
async fn audit_searches_through_the_index_find_what_reading_every_line_finds() {
    use jichu::access::audit::{AuditLog, Entry, Filter, search};
    use jichu::access::trail_index::{self, BLOCK};
    let dir = tempfile::tempdir().unwrap();
    let n = 3 * BLOCK + 100;
    let t0 = chrono::Utc::now();
    let key = |i: u64| format!("3502031950{:08}", i % 1000);
    let department = |i: u64| if i.is_multiple_of(7) { "市人社局" } else { "信息中心" };
    let log = AuditLog::open(dir.path()).unwrap();
    for i in 0..n {
        let entry = Entry {
            time: t0 + chrono::Duration::seconds(i as i64),
            kind: "read".into(),
            department: Some(department(i).into()),
            records: vec![format!("citizens:{}", key(i)), format!("citizens:{}", key(i + 500))],
            status: 200,
            ..Entry::default()
        };
        log.record(entry).await.unwrap();
    }
    log.close();
    let trail_len = std::fs::metadata(dir.path().join("audit.jsonl")).unwrap().len();
    assert_eq!(trail_index::read(dir.path(), trail_len).len(), 3, "three whole blocks indexed as written");
    // What each filter must find, by reading the entries as written (line i + 1 is entry i).
    let at = |s: i64| Some(t0 + chrono::Duration::seconds(s));
    let filters = [
        Filter { record: Some(key(5)), ..Filter::default() },
        Filter { record: Some(key(7)), department: Some("市人社局".into()), ..Filter::default() },
        Filter { department: Some("市人社局".into()), from: at(5000), to: at(5100), ..Filter::default() },
        Filter { record: Some(key(42)), after: 2 * BLOCK, ..Filter::default() },
        Filter { record: Some("350203195099999999".into()), ..Filter::default() },
    ];
    let expected = |f: &Filter| -> Vec<u64> {
        (0..n)
            .filter(|&i| {
                f.record.as_ref().is_none_or(|r| *r == key(i) || *r == key(i + 500))
                    && f.department.as_ref().is_none_or(|d| d == department(i))
                    && f.from.is_none_or(|t| t0 + chrono::Duration::seconds(i as i64) >= t)
                    && f.to.is_none_or(|t| t0 + chrono::Duration::seconds(i as i64) <= t)
                    && i + 1 > f.after
            })
            .map(|i| i + 1)
            .collect()
    };
    let found = |f: &Filter, limit: usize| -> Vec<u64> {
        search(dir.path(), f, limit).unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    };
    let check = |why: &str| {
        for f in &filters {
            let want = expected(f);
            assert_eq!(found(f, usize::MAX), want, "{why}: {f:?}");
            assert_eq!(found(f, 3), want[..want.len().min(3)], "{why}, at most 3: {f:?}");
        }
    };
    assert!(!expected(&filters[0]).is_empty() && !expected(&filters[2]).is_empty());
    check("through the index");
    let index = dir.path().join(trail_index::FILE);
    std::fs::remove_file(&index).unwrap();
    check("without an index, every line read");
    // Opening the log rebuilds it; a damaged one too.
    drop(AuditLog::open(dir.path()).unwrap());
    assert_eq!(trail_index::read(dir.path(), trail_len).len(), 3, "rebuilt from the trail");
    check("through the rebuilt index");
    let mut bytes = std::fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&index, bytes).unwrap();
    drop(AuditLog::open(dir.path()).unwrap());
    assert_eq!(trail_index::read(dir.path(), trail_len).len(), 3, "a damaged block rebuilt");
    check("after a damaged index was rebuilt");
}
