//! Liveness and Prometheus metrics.

use super::AppState;
use crate::model::Registry;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

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
    let resident = crate::memory::resident();
    for (part, bytes) in [
        ("resident_anonymous", resident.anonymous),
        ("resident_file", resident.file),
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
