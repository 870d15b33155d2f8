//! Liveness and Prometheus metrics.

use super::AppState;
use crate::model::Registry;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide Prometheus recorder, installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("jichu_http_request_duration_seconds".into()), &buckets)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts and times every request by route template (never by URI: keys stay out of metrics).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    // Bounded: every other method string a client invents is one label, not one each.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("jichu_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("jichu_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The time a request may take to produce its response: the configured timeout, plus the wait
/// a long poll asks for (`wait=` seconds). A stream's body is not bounded by it.
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let wait = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("wait=")))
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0)
        .min(super::changes::MAX_WAIT_SECS);
    match tokio::time::timeout(limit + Duration::from_secs(wait), next.run(request)).await {
        Ok(response) => response,
        Err(_) => super::ApiError::Timeout.into_response(),
    }
}

/// Liveness: the process serves and the store is open.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "ok", body = Object)))]
pub async fn healthz(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let view = state.view();
    // Spatial reads wait while a start still reads the spatial index (everything else answers).
    let spatial = if view.spatial_ready() { "ready" } else { "loading" };
    axum::Json(serde_json::json!({
        "status": "ok",
        "generation": view.generation,
        "sequence": view.snapshot.sequence(),
        "spatial_index": spatial,
    }))
}

/// Prometheus text exposition: request counts and latency histograms per route and status,
/// records per registry, and where the process's memory is (`jichu_memory_bytes` by part).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let view = state.view();
    for r in Registry::ALL {
        metrics::gauge!("jichu_records", "registry" => r.as_str()).set(view.count(r) as f64);
    }
    metrics::gauge!("jichu_published_generation").set(view.generation as f64);
    let store = state.service.store.memory();
    let views = state.service.views.memory();
    for (part, bytes) in [
        ("resident_anonymous", crate::memory::resident_anonymous()),
        ("resident_file", crate::memory::resident_file()),
        ("block_cache", store.block_cache_bytes),
        ("block_cache_pinned", store.block_cache_pinned_bytes),
        ("memtables", store.memtable_bytes),
        ("table_readers", store.table_readers_bytes),
        ("spatial_index", views.spatial_bytes as u64),
        (
            "spatial_index_file",
            crate::memory::resident_under(&crate::spatial::SpatialIndex::dir_of(&state.service.store)),
        ),
    ] {
        metrics::gauge!("jichu_memory_bytes", "part" => part).set(bytes as f64);
    }
    metrics::gauge!("jichu_views_retained").set(views.retained as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
