//! What a hostile client tries: wrong methods, malformed bodies, inputs whose cost would grow
//! without bound, nonsense that should not be a 200. Each answer is a 4xx problem that names
//! what was wrong, quickly.

use crate::common::{Server, TestStore};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CHEN: &str = "35020319500110100X";

async fn problem(s: &Server, path: &str, body: Value) -> (u16, String, Value) {
    let (status, ct, body) = s.post(path, &body).await;
    assert_eq!(ct, "application/problem+json", "{path}: {status} {body}");
    (status, body["code"].as_str().unwrap_or("").to_string(), body)
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_that_says_which_methods_are_allowed() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, format!("/v1/citizens/{CHEN}"), "GET"),
        (reqwest::Method::GET, "/v1/citizens/lookup".to_string(), "POST"),
        (reqwest::Method::PUT, "/healthz".to_string(), "GET"),
    ] {
        let r = s.client.request(method.clone(), s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let allow = r.headers()["allow"].to_str().unwrap().to_string();
        assert!(allow.split(',').any(|m| m.trim() == allowed), "{method} {path}: Allow: {allow}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed");
    }
    // Invented methods are one metrics label, not one each.
    for m in ["FROB", "WIBBLE"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = s.client.request(method, s.url("/healthz")).send().await.unwrap();
        assert!(r.status().is_client_error());
    }
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("FROB") && !metrics.contains("WIBBLE"));
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
}

#[tokio::test]
async fn malformed_bodies_are_told_in_the_apis_words() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let (status, _, body) = problem(&s, "/v1/citizens/near", json!({"lon": 118.1, "lat": 24.5, "k": -1})).await;
    assert_eq!(status, 400);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("a non-negative integer") && !detail.contains("usize"), "{detail}");
    let (status, _, body) = problem(&s, "/v1/citizens/lookup", json!(["not", "an", "object"])).await;
    assert_eq!(status, 400);
    let detail = body["detail"].as_str().unwrap();
    assert!(!detail.contains("struct") && !detail.contains("LookupRequest"), "{detail}");
    // A huge input is not echoed back whole.
    let huge = "9".repeat(100_000);
    let (status, _, body) = problem(&s, "/v1/citizens/near", json!({"lon": huge, "lat": 24.5, "k": 1})).await;
    assert_eq!(status, 400);
    assert!(body.to_string().len() < 2_000, "{} bytes", body.to_string().len());
}

#[tokio::test]
async fn inputs_that_would_cost_without_bound_are_bounded() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    // The same field a thousand times is the field once (not a thousand clauses).
    let (status, _, body) = s.post("/v1/citizens/search", &json!({"q": "福建", "in": vec!["address"; 1000]})).await;
    assert_eq!(status, 200, "{body}");
    // Fifty words; a polygon of 2,000 vertices; limits out of range; a polygon off the Earth.
    let words = vec!["厦门"; 50].join(" ");
    let (status, code, body) = problem(&s, "/v1/citizens/search", json!({ "q": words })).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(body["detail"].as_str().unwrap().contains("at most 10"), "{body}");
    let ring: Vec<[f64; 2]> = (0..2000)
        .map(|i| {
            let a = i as f64 / 2000.0 * std::f64::consts::TAU;
            [118.1 + 0.05 * a.cos(), 24.5 + 0.05 * a.sin()]
        })
        .chain(std::iter::once([118.15, 24.5]))
        .collect();
    let (status, _, body) =
        problem(&s, "/v1/citizens/within", json!({"polygon": {"type": "Polygon", "coordinates": [ring]}})).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("at most 1000"), "{body}");
    let off_earth = json!({"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [500, 100], [0, 0]]]});
    assert_eq!(problem(&s, "/v1/citizens/within", json!({ "polygon": off_earth })).await.0, 400);
    for limit in [0, 5000] {
        let near = json!({"lon": 118.1, "lat": 24.5, "radius_m": 500, "limit": limit});
        assert_eq!(problem(&s, "/v1/citizens/near", near).await.0, 400, "near limit {limit}");
        let within = json!({"bbox": [118.0, 24.4, 118.2, 24.6], "limit": limit});
        assert_eq!(problem(&s, "/v1/citizens/within", within).await.0, 400, "within limit {limit}");
    }
}

#[tokio::test]
async fn nonsense_filters_are_refused_not_matched_against_nothing() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    for filters in [
        json!({"birth_date": {"from": "1990", "to": "1980"}}),
        json!({"district": "思明区"}),
        json!({"district": "x".repeat(500)}),
        json!({"gender": vec!["女"; 101]}),
    ] {
        let (status, code, body) = problem(&s, "/v1/citizens/search", json!({"q": "福建", "filters": filters})).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{filters}: {body}");
        assert!(body.to_string().len() < 1_000);
    }
    // The same filters, well formed, answer.
    let (status, _, _) = s
        .post(
            "/v1/citizens/search",
            &json!({"q": "福建", "filters": {"district": "350203", "birth_date": {"from": "1950", "to": "1990"}}}),
        )
        .await;
    assert_eq!(status, 200);
}

/// A stopping server gives requests in flight its grace period, then stops anyway: a request
/// that would run on (here a long poll) cannot keep the process, and so the store's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_waits_its_grace_period_and_no_longer() {
    let t = TestStore::loaded();
    let config = jichu::config::Config {
        insecure_no_auth: true,
        shutdown_grace: Duration::from_secs(1),
        ..jichu::config::Config::default()
    };
    let s = Server::start_with(t.store.clone(), config).await;
    let last = t.store.reader().feed_last().unwrap();
    let poll = s.client.get(s.url(&format!("/v1/changes?after={last}&wait=50"))).send();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), s.stop()).await.expect("stopped within its grace period");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    poll.abort();
}

/// Past `max_in_flight` requests at once, the next is refused at once (429 `overloaded`,
/// problem+json, counted in the metrics), and served again once one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_requests_in_flight_the_next_is_refused_at_once() {
    let t = TestStore::loaded();
    let config = jichu::config::Config { insecure_no_auth: true, max_in_flight: 1, ..jichu::config::Config::default() };
    let s = Server::start_with(t.store.clone(), config).await;
    let last = t.store.reader().feed_last().unwrap();
    // A long poll with nothing to come holds the one place for its two seconds.
    let poll = tokio::spawn(s.client.get(s.url(&format!("/v1/changes?after={last}&wait=2"))).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let refused = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not queued: {:?}", started.elapsed());
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "overloaded", "{problem}");
    assert_eq!(poll.await.unwrap().unwrap().status(), 200);
    let (status, _, _) = s.get("/healthz").await;
    assert_eq!(status, 200);
    let (_, _, metrics) = s.get("/metrics").await;
    assert!(
        metrics.as_str().unwrap_or_default().lines().any(|l| l.starts_with("jichu_http_requests_total")
            && l.contains("route=\"/healthz\"")
            && l.contains("status=\"429\"")),
        "the refusal is counted"
    );
}

/// Optional body fields are optional in the OpenAPI document too.
#[tokio::test]
async fn the_openapi_document_marks_optional_fields_optional() {
    let t = TestStore::new();
    let s = Server::start(t.store.clone()).await;
    let (status, _, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    for (schema, field) in [("SearchRequest", "filters"), ("WithinRequest", "polygon"), ("WithinRequest", "bbox")] {
        let required = doc["components"]["schemas"][schema]["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.iter().any(|r| r == field), "{schema}.{field} is optional: {required:?}");
        assert!(doc["components"]["schemas"][schema]["properties"][field].is_object(), "{schema}.{field}");
    }
}

/// A search cursor pages the search that gave it: not another query, not when cut short.
#[tokio::test]
async fn a_cursor_pages_only_its_own_search() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let (status, _, first) = s.post("/v1/citizens/search", &json!({"q": "福建", "limit": 2})).await;
    assert_eq!(status, 200);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (status, _, _) = s.post("/v1/citizens/search", &json!({"q": "福建", "limit": 5, "cursor": cursor})).await;
    assert_eq!(status, 200, "the same search with another page size");
    for (body, why) in [
        (json!({"q": "厦门", "cursor": cursor}), "another query"),
        (json!({"q": "福建", "filters": {"gender": "女"}, "cursor": cursor}), "another filter"),
        (json!({"q": "福建", "cursor": cursor.rsplit_once('.').unwrap().0}), "cut short"),
    ] {
        let (status, code, p) = problem(&s, "/v1/citizens/search", body).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{why}: {p}");
    }
    let (status, _, p) = s.post("/v1/entities/search", &json!({"q": "福建", "cursor": cursor})).await;
    assert_eq!((status, p["code"].as_str()), (400, Some("bad_request")), "another registry: {p}");
}

/// Writes raw bytes on a fresh connection and reads what the server answers until it closes
/// the connection or `wait` passes.
async fn raw(s: &Server, request: &[u8], wait: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    let closed = loop {
        match tokio::time::timeout_at(deadline.into(), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn oversized_heads_and_declared_bodies_are_problems_before_any_body_is_read() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    // A 9 KB target: 414; seventy header fields: 431; both problem+json.
    let r = s.client.get(s.url(&format!("/v1/citizens/{CHEN}?fields={}", "x".repeat(9000)))).send().await.unwrap();
    assert_eq!(r.status(), 414);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let mut req = s.client.get(s.url("/healthz"));
    for i in 0..70 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "headers_too_large", "{body}");
    // A 5 MB body announced with `Expect: 100-continue` is refused at once: no `100 Continue`.
    let head = format!(
        "POST /v1/citizens/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        5 << 20
    );
    let (answer, _) = raw(&s, head.as_bytes(), Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue") && answer.contains("body_too_large"), "{answer}");
}

#[tokio::test]
async fn a_client_that_sends_its_head_slowly_or_idles_is_disconnected() {
    let t = TestStore::loaded();
    let config =
        jichu::config::Config { insecure_no_auth: true, header_timeout: Duration::from_secs(1), ..Default::default() };
    let s = Server::start_with(t.store.clone(), config).await;
    // Half a head, then nothing: closed after the header timeout, not held open.
    let started = Instant::now();
    let (_, closed) = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", Duration::from_secs(5)).await;
    assert!(closed, "a half-sent head held the connection for 5 s");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // A kept-alive connection that goes idle after its answer is closed too.
    let (answer, closed) = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle connection was held for 5 s");
}

/// A backup or a recompute takes minutes on a large store: the request deadline does not cut
/// it off with a 503 while the work goes on (a retry would do it twice). Here the deadline is
/// a millisecond, less than either takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_recomputes_have_no_request_deadline() {
    let t = TestStore::loaded();
    let config = jichu::config::Config {
        insecure_no_auth: true,
        request_timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let s = Server::start_with(t.store.clone(), config).await;
    let (code, _, body) = s.post("/v1/admin/backups", &json!({})).await;
    assert_eq!(code, 201, "{body}");
    let (code, _, body) = s.post("/v1/admin/recompute", &json!({})).await;
    assert_eq!(code, 200, "{body}");
    s.stop().await;
}
