//! The OpenAPI document against the answers: every JSON route is called for real and its
//! answer validated (JSON Schema 2020-12, the `jsonschema` crate) against the schema the
//! document gives that route and status, so the document cannot drift from the answers.

use crate::common::{Server, TestStore, fixture};
use crate::live::wait_for;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const CHEN: &str = "35020319500110100X";
const ENTITY: &str = "91350203MA2Y0001XR";

/// Checks an answer against the schema of `(path, method, status)` in the document.
fn check(doc: &Value, path: &str, method: &str, status: u16, body: &Value, checked: &mut BTreeSet<String>) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()]["content"];
    let kind = if status >= 400 { "application/problem+json" } else { "application/json" };
    let content = &response[kind];
    let reference = content["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no schema in the document"));
    let schema = json!({"$ref": reference, "components": doc["components"]});
    let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{reference}: {e}"));
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status} against {reference}:\n{}\n{body:#}", errors.join("\n"));
    checked.insert(format!("{method} {path}"));
}

#[tokio::test]
async fn every_json_answer_matches_its_schema_in_the_document() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let (_, _, doc) = s.get("/openapi.json").await;
    let checked = std::cell::RefCell::new(BTreeSet::new());
    let get = async |route: &str, url: String| -> Value {
        let (status, _, body) = s.get(&url).await;
        assert!(status < 300, "GET {url}: {status} {body}");
        check(&doc, route, "get", status, &body, &mut checked.borrow_mut());
        body
    };
    let profile = get("/v1/{registry}/{id}/profile", format!("/v1/citizens/{CHEN}/profile")).await;
    let credit = profile["credit_records"][0]["id"].as_str().expect("a credit record").to_string();
    let licence = profile["licences"][0]["id"].as_str().expect("a licence").to_string();
    get("/v1/{registry}/{id}/profile", format!("/v1/entities/{ENTITY}/profile")).await;
    for (registry, id) in [
        ("citizens", CHEN),
        ("entities", ENTITY),
        ("parcels", "350203001001GB00001"),
        ("credit", &credit),
        ("licences", &licence),
    ] {
        get("/v1/{registry}/{id}", format!("/v1/{registry}/{id}")).await;
        get("/v1/{registry}/{id}/relations", format!("/v1/{registry}/{id}/relations")).await;
        get("/v1/{registry}/{id}/history", format!("/v1/{registry}/{id}/history")).await;
        get("/v1/{registry}/{id}/sources", format!("/v1/{registry}/{id}/sources")).await;
    }
    get("/v1/{registry}/{id}", format!("/v1/citizens/{CHEN}?explain=true")).await;
    get("/v1/{registry}/{id}", format!("/v1/citizens/{CHEN}?fields=name,location")).await;
    get("/v1/entities/by-organisation-code/{code}", "/v1/entities/by-organisation-code/MA2Y0001X".into()).await;
    get("/healthz", "/healthz".into()).await;
    get("/v1/parcels/containing", "/v1/parcels/containing?lon=118.0885&lat=24.4585".into()).await;
    get("/v1/catalog", "/v1/catalog".into()).await;
    get("/v1/changes", "/v1/changes?limit=20&include=record".into()).await;
    get("/v1/me", "/v1/me".into()).await;
    get("/v1/audit", "/v1/audit".into()).await;
    get("/v1/audit/public-key", "/v1/audit/public-key".into()).await;
    get("/v1/review", "/v1/review".into()).await;

    let post = async |route: &str, url: &str, body: Value| -> Value {
        let (status, _, answer) = s.post(url, &body).await;
        assert!(status < 300, "POST {url}: {status} {answer}");
        check(&doc, route, "post", status, &answer, &mut checked.borrow_mut());
        answer
    };
    post("/v1/{registry}/lookup", "/v1/citizens/lookup", json!({"ids": [CHEN, "1", "350203195001101001"]})).await;
    post("/v1/{registry}/search", "/v1/citizens/search", json!({"q": "陈志强"})).await;
    post("/v1/{registry}/search", "/v1/entities/search", json!({"q": "科技", "filters": {"district": "350203"}})).await;
    post("/v1/search", "/v1/search", json!({"q": "厦门"})).await;
    post("/v1/{registry}/near", "/v1/citizens/near", json!({"lon": 118.08, "lat": 24.45, "k": 3})).await;
    post(
        "/v1/{registry}/near",
        "/v1/entities/near",
        json!({"lon": 118.08, "lat": 24.45, "radius_m": 50000, "count_only": true}),
    )
    .await;
    post("/v1/{registry}/within", "/v1/citizens/within", json!({"bbox": [118.0, 24.4, 118.2, 24.6], "limit": 5})).await;
    post("/v1/{registry}/within", "/v1/parcels/within", json!({"bbox": [118.0, 24.4, 118.2, 24.6]})).await;
    post("/v1/admin/backups", "/v1/admin/backups", json!({})).await;
    post("/v1/admin/recompute", "/v1/admin/recompute", json!({})).await;
    let import = t.dir.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    std::fs::write(import.join("licences.csv"), std::fs::read(fixture("licences_crlf.csv")).unwrap()).unwrap();
    let spec = std::fs::read_to_string(fixture("licences_crlf.toml")).unwrap();
    let queued = post("/v1/loads", "/v1/loads", json!({"spec": spec, "files": ["licences.csv"]})).await;
    wait_for(&s, &queued["load_id"]).await;
    get("/v1/loads/{load_id}", format!("/v1/loads/{}", queued["load_id"])).await;
    get("/v1/loads", "/v1/loads".into()).await;
    get("/v1/admin/backups", "/v1/admin/backups".into()).await;

    // Problems, as the document describes them.
    for (method, route, url, body, want) in [
        ("get", "/v1/{registry}/{id}", format!("/v1/citizens/{}", jichu::generator::citizen_id(9_999_999)), None, 404),
        ("get", "/v1/{registry}/{id}", "/v1/citizens/12".to_string(), None, 400),
        (
            "post",
            "/v1/{registry}/near",
            "/v1/citizens/near".to_string(),
            Some(json!({"lon": 500, "lat": 0, "k": 1})),
            400,
        ),
        (
            "post",
            "/v1/{registry}/lookup",
            "/v1/citizens/lookup".to_string(),
            Some(json!({"ids": vec![CHEN; 1001]})),
            413,
        ),
    ] {
        let (status, ct, answer) = match body {
            None => s.get(&url).await,
            Some(b) => s.post(&url, &b).await,
        };
        assert_eq!((status, ct.as_str()), (want, "application/problem+json"), "{url}: {answer}");
        check(&doc, route, method, status, &answer, &mut checked.borrow_mut());
    }

    // Every route the document maps to a schema was called, but for those that need a
    // particular state (a review item to resolve, a load to cancel).
    let mapped: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            let has_schema = |op: &Value| {
                op["responses"].as_object().is_some_and(|rs| {
                    rs.values().any(|r| r["content"]["application/json"]["schema"]["$ref"].is_string())
                })
            };
            item.as_object().unwrap().iter().filter(move |(_, op)| has_schema(op)).map(move |(m, _)| format!("{m} {p}"))
        })
        .collect();
    let checked = checked.into_inner();
    let untested: Vec<&String> = mapped
        .difference(&checked)
        .filter(|r| !matches!(r.as_str(), "post /v1/review/{item}" | "delete /v1/loads/{load_id}"))
        .collect();
    assert!(untested.is_empty(), "routes with a schema but no answer checked: {untested:?}");
}
