//! What every request passes through, in one middleware: its span, the head's limits, load
//! shedding, the deadline, access control and audit, and its metrics.
//!
//! One function rather than a layer each, because axum boxes and clones every layer's service
//! for every request: as eight layers the frame took about a fifth of the time a single-key
//! lookup takes over HTTP, and a third of `/healthz`'s (`benches/http/ab.sh`; the measurement
//! journal, `benches/results/README.md`, *The request path*). The order is the one the layers
//! had, outermost first, except that load shedding, which answers at once, now comes before
//! the deadline rather than inside it:
//!
//! 1. the `request` span (method, route template, request id), which every log line of the
//!    request carries;
//! 2. metrics, outside everything else, so that every answer is counted, refusals included;
//! 3. the head's limits ([`super::limits`]);
//! 4. load shedding: at most `max_in_flight` requests at once (configured; 1024), the next
//!    refused at once (429 `overloaded`) rather than queued;
//! 5. the deadline (the configured timeout, plus the wait a long poll asks for), except on
//!    the routes whose work grows with what they carry or produce ([`UNBOUNDED`]);
//! 6. access control and audit ([`super::auth::authorize`]), then the handler.

use super::{ApiError, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The middleware; see the module documentation.
pub async fn frame(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    let method = method_label(&request);
    // The request id is recorded by `auth::authorize`, which decides it.
    let span = tracing::info_span!("request", method, route, request_id = tracing::field::Empty);
    let started = Instant::now();
    let response = guarded(&state, request, next, (method, route)).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = started.elapsed();
    span.in_scope(|| tracing::debug!(status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1e3, "answered"));
    record(route, method, status.as_u16(), elapsed);
    response
}

/// A route's metric handles, by method and status.
#[derive(Default)]
struct RouteMetrics {
    counters: Vec<(&'static str, u16, metrics::Counter)>,
    histograms: Vec<(&'static str, metrics::Histogram)>,
}

thread_local! {
    /// Handles already registered, per worker thread: registering one by its labels on every
    /// request (building its key, hashing it, looking it up) was ~4% of the server's samples
    /// in a profile of `/healthz` under wrk (perf, before this cache).
    static HANDLES: std::cell::RefCell<std::collections::HashMap<String, RouteMetrics>> = Default::default();
}

/// Counts and times a request, by route template, never by URI: keys stay out of metrics.
fn record(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    HANDLES.with_borrow_mut(|handles| {
        if !handles.contains_key(route) {
            handles.insert(route.to_string(), RouteMetrics::default());
        }
        let Some(m) = handles.get_mut(route) else { return };
        let counter = match m.counters.iter().position(|(me, st, _)| *me == method && *st == status) {
            Some(i) => &m.counters[i].2,
            None => {
                let c = metrics::counter!("jichu_http_requests_total", "route" => route.to_string(), "method" => method, "status" => status.to_string());
                m.counters.push((method, status, c));
                &m.counters[m.counters.len() - 1].2
            }
        };
        counter.increment(1);
        let histogram = match m.histograms.iter().position(|(me, _)| *me == method) {
            Some(i) => &m.histograms[i].1,
            None => {
                let h = metrics::histogram!("jichu_http_request_duration_seconds", "route" => route.to_string(), "method" => method);
                m.histograms.push((method, h));
                &m.histograms[m.histograms.len() - 1].1
            }
        };
        histogram.record(elapsed.as_secs_f64());
    });
}

/// Routes without a deadline, as (method, route template). An upload arrives at the
/// client's pace, so each read of its body must make progress within the deadline instead
/// (`loads::receive`); a backup or a recompute of a large store takes minutes, and a deadline
/// would answer 503 while the work went on, inviting a retry that does it twice.
const UNBOUNDED: [(&str, &str); 3] =
    [("POST", "/v1/loads"), ("POST", "/v1/admin/backups"), ("POST", "/v1/admin/recompute")];

/// Limits, shedding, deadline, then access control and the handler.
async fn guarded(state: &AppState, request: Request, next: Next, route: (&str, &str)) -> Response {
    if let Some(refusal) = super::limits::refusal(state, &request) {
        return refusal.into_response();
    }
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return ApiError::Overloaded.into_response();
    };
    if UNBOUNDED.contains(&route) {
        return super::auth::authorize(State(state.clone()), request, next).await;
    }
    let limit = state.config.request_timeout + Duration::from_secs(long_poll_secs(&request));
    match tokio::time::timeout(limit, super::auth::authorize(State(state.clone()), request, next)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The wait a long poll asks for (`wait=` seconds), bounded.
fn long_poll_secs(request: &Request) -> u64 {
    request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("wait=")))
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0)
        .min(super::changes::MAX_WAIT_SECS)
}

/// The method as a metric label. Bounded: every other method a client invents is one label,
/// not one each.
fn method_label(request: &Request) -> &'static str {
    match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}
