//! The HTTP API over a store loaded from the fixtures, on a real socket.

use crate::common::{Server, TestStore};
use serde_json::{Value, json};

const CHEN: &str = "35020319500110100X";

async fn server() -> (TestStore, Server) {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    (t, s)
}

fn entity() -> String {
    let text = std::fs::read_to_string(crate::common::fixture("entities.csv")).unwrap();
    text.lines().nth(1).unwrap().split(',').next().unwrap().to_string()
}

fn assert_problem(status: u16, ct: &str, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body["type"].as_str().unwrap().starts_with("urn:jichu:problem:"));
}

#[tokio::test]
async fn get_one_record_with_lineage_and_projection() {
    let (_t, s) = server().await;
    let (status, _, body) = s.get(&format!("/v1/citizens/{CHEN}")).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("citizen", body, {".lineage.loaded_at" => "[time]"});
    // A dirty key (lower case, full width) is normalised like an extract's.
    let (status, _, body) = s.get("/v1/citizens/３５０２０３１９５００１１０１００x?fields=name,address").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"id": CHEN, "name": "陈志强", "address": "福建省厦门市思明区厦禾路10号101室"}));
}

#[tokio::test]
async fn every_record_error_is_a_problem() {
    let (_t, s) = server().await;
    let (st, ct, b) = s.get("/v1/citizens/350203195001101001").await;
    assert_problem(st, &ct, &b, 400, "malformed_id");
    assert!(b["detail"].as_str().unwrap().contains("check character"));
    let (st, ct, b) = s.get("/v1/citizens/110105194912310021").await;
    assert_problem(st, &ct, &b, 400, "malformed_id");
    let (st, ct, b) = s.get("/v1/citizens/11010519491231002X").await;
    assert_problem(st, &ct, &b, 404, "not_found");
    assert!(!b["detail"].as_str().unwrap().contains("11010519491231002X"), "no personal number echoed");
    let (st, ct, b) = s.get("/v1/people/1").await;
    assert_problem(st, &ct, &b, 404, "unknown_registry");
    let (st, ct, b) = s.get(&format!("/v1/citizens/{CHEN}?fields=name,shoe_size")).await;
    assert_problem(st, &ct, &b, 400, "unknown_field");
    assert!(b["detail"].as_str().unwrap().contains("shoe_size"));
    let (st, ct, b) = s.get("/v1/parcels/350203001001GB00001/profile").await;
    assert_problem(st, &ct, &b, 404, "unknown_registry");
    let (st, ct, b) = s.get("/nowhere").await;
    assert_problem(st, &ct, &b, 404, "unknown_route");
}

#[tokio::test]
async fn lookup_answers_in_request_order() {
    let (_t, s) = server().await;
    let ids = json!([CHEN, "11010519491231002X", "bad", "350203195302111033"]);
    let (status, _, body) = s.post("/v1/citizens/lookup", &json!({"ids": ids, "fields": ["name"]})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["records"],
        json!([{"id": CHEN, "name": "陈志强"}, null, null, {"id": "350203195302111033", "name": "林秀英"}])
    );
    assert_eq!(body["not_found"], json!(["11010519491231002X"]));
    assert_eq!(body["invalid"][0]["id"], "bad");
    // Past 100 ids a batch is read on the query pool rather than answered from memory on the
    // async worker: the same answer.
    let many: Vec<Value> = ids.as_array().unwrap().iter().cycle().take(104).cloned().collect();
    let (status, _, big) = s.post("/v1/citizens/lookup", &json!({"ids": many, "fields": ["name"]})).await;
    assert_eq!(status, 200);
    let records = big["records"].as_array().unwrap();
    assert_eq!(records.len(), 104);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r, &body["records"][i % 4], "{i}");
    }
    assert_eq!(big["not_found"].as_array().unwrap().len(), 26);
    assert_eq!(big["invalid"].as_array().unwrap().len(), 26);
}

#[tokio::test]
async fn lookup_errors_are_problems() {
    let (_t, s) = server().await;
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let (st, ct, b) = s.post("/v1/licences/lookup", &json!({"ids": many})).await;
    assert_problem(st, &ct, &b, 413, "too_many_ids");
    let (st, ct, b) = s.post("/v1/citizens/lookup", &json!({"keys": []})).await;
    assert_problem(st, &ct, &b, 400, "bad_request");
    let (st, ct, b) = s.post("/v1/citizens/lookup", &json!({"ids": [CHEN], "fields": ["nope"]})).await;
    assert_problem(st, &ct, &b, 400, "unknown_field");
    let r = s
        .client
        .post(s.url("/v1/citizens/lookup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (st, ct, b) = Server::parts(r).await;
    assert_problem(st, &ct, &b, 400, "bad_request");
    let big = format!("{{\"ids\":[\"{}\"]}}", "x".repeat(2 << 20));
    let r = s
        .client
        .post(s.url("/v1/citizens/lookup"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (st, ct, b) = Server::parts(r).await;
    assert_problem(st, &ct, &b, 413, "body_too_large");
}

/// A body refused from its head is not read; the server still reads and drops it before it
/// closes, or the reset of a close with unread bytes would throw the 413 away on the client.
/// The answer says the connection closes, so the client does not send the next request on it.
#[tokio::test]
async fn an_oversized_body_gets_its_problem_not_a_reset() {
    let (_t, s) = server().await;
    let big = format!("{{\"ids\":[\"{}\"]}}", "x".repeat(4 << 20));
    for _ in 0..10 {
        let r = s
            .client
            .post(s.url("/v1/citizens/lookup"))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("the answer, not a broken pipe");
        assert_eq!(r.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
        let (st, ct, b) = Server::parts(r).await;
        assert_problem(st, &ct, &b, 413, "body_too_large");
    }
}

#[tokio::test]
async fn relations_and_profiles_cross_registries() {
    let (_t, s) = server().await;
    let (status, _, body) = s.get(&format!("/v1/citizens/{CHEN}/relations")).await;
    assert_eq!(status, 200);
    assert_eq!(body["relations"]["represents"][0]["id"], entity());
    assert_eq!(body["relations"]["licences"][0]["loaded"], true);

    let (status, _, body) = s.get(&format!("/v1/citizens/{CHEN}/profile")).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("citizen_profile", body, {".**.loaded_at" => "[time]"});

    let (status, _, body) = s.get(&format!("/v1/entities/{}/profile", entity())).await;
    assert_eq!(status, 200);
    assert_eq!(body["legal_rep"]["id"], CHEN);
    assert_eq!(body["licences"].as_array().unwrap().len(), 1);
    assert_eq!(body["credit_records"][0]["category"], "行政处罚");
}

#[tokio::test]
async fn catalog_lists_registries_fields_and_sources() {
    let (_t, s) = server().await;
    let (status, _, body) = s.get("/v1/catalog").await;
    assert_eq!(status, 200);
    let citizens = &body["registries"][0];
    assert_eq!(citizens["name"], "citizens");
    assert_eq!(citizens["count"], 23);
    let phone = citizens["fields"].as_array().unwrap().iter().find(|f| f["name"] == "phone").unwrap();
    assert_eq!(phone["sensitivity"], "sensitive");
    let sources = body["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 6);
    let gb = sources.iter().find(|s| s["source"] == "区户籍管理系统").unwrap();
    assert_eq!(gb["last_load"]["rejected"], 13);
    assert_eq!(gb["last_load"]["completed"], true);
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let (_t, s) = server().await;
    let (status, _, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/{registry}/{id}",
        "/v1/{registry}/near",
        "/v1/{registry}/within",
        "/v1/parcels/containing",
        "/v1/{registry}/lookup",
        "/v1/{registry}/search",
        "/v1/search",
        "/v1/{registry}/{id}/relations",
        "/v1/{registry}/{id}/profile",
        "/v1/catalog",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    // And every documented GET path without parameters answers (nothing documented is absent).
    let no_params = |p: &str| {
        let get = &doc["paths"][p]["get"];
        !p.contains('{') && get.is_object() && get["parameters"].as_array().is_none_or(|a| a.is_empty())
    };
    for p in paths.keys().filter(|p| no_params(p)) {
        let (status, _, _) = s.get(p).await;
        assert_eq!(status, 200, "{p}");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn health_and_metrics() {
    let (_t, s) = server().await;
    let (status, _, body) = s.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    s.get(&format!("/v1/citizens/{CHEN}")).await;
    for _ in 0..200 {
        if s.get("/healthz").await.2["spatial_index"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (st, _, _) = s.post("/v1/citizens/near", &serde_json::json!({"lon": 118.1, "lat": 24.5, "k": 3})).await;
    assert_eq!(st, 200);
    let text = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("jichu_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/{registry}/{id}\""));
    assert!(text.contains("jichu_http_request_duration_seconds_bucket"));
    assert!(text.contains("jichu_records{registry=\"citizens\"}"));
    // Where the memory is: the process's resident heap, and the parts jichu can name.
    let gauge = |part: &str| -> f64 {
        let prefix = format!("jichu_memory_bytes{{part=\"{part}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{part}: {text}"));
        line[prefix.len()..].trim().parse().unwrap()
    };
    assert!(gauge("resident_anonymous") > 0.0);
    // The spatial layers are served from their files: the pages a query touched are resident
    // file pages, and the heap holds at most the layered changes (none here).
    assert!(gauge("spatial_index_file") > 0.0, "the fixture has located citizens");
    assert_eq!(gauge("spatial_index"), 0.0);
    assert!(gauge("block_cache") > 0.0, "a read went through the cache");
    for part in ["memtables", "table_readers", "block_cache_pinned", "resident_file"] {
        gauge(part);
    }
    assert!(!text.contains(CHEN), "no key in metrics");
}
