//! Exports over HTTP: the registry as the current view holds it, streamed as it is written
//! (a blocking task writes chunks into a bounded channel; a client that leaves stops it),
//! gzip when the client accepts it, the next delta's cursor in `X-Jichu-Cursor`.

use super::AppState;
use super::auth::Recorder;
use super::extract::{Path, Query};
use super::problem::{ApiError, Problem};
use crate::query::export::{self, ExportQuery, Format, Source};
use crate::query::{Caller, Trace, changes, records};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use utoipa::IntoParams;

/// Bytes a chunk of the body holds.
const CHUNK: usize = 256 << 10;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportParams {
    /// `ndjson` (default) or `csv`.
    pub format: Option<String>,
    /// Only the records changed after this feed cursor (`X-Jichu-Cursor` of the export before).
    pub since: Option<String>,
}

/// A whole registry, or the records changed since a cursor, as one state holds them.
#[utoipa::path(
    get, path = "/v1/{registry}/export", tag = "changes",
    params(("registry" = String, Path, description = "the registry"), ExportParams),
    responses(
        (status = 200, description = "NDJSON (a record a line as the API renders it, then `{\"next\": cursor}`) or CSV (canonical field names, `ended`, extra attributes; re-loads with `jichu load`); `X-Jichu-Cursor`: the cursor for the next delta; gzip with `Accept-Encoding: gzip`", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "bad format or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "export not granted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(recorder): Extension<Recorder>,
    Path(registry_name): Path<String>,
    Query(p): Query<ExportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let registry = records::registry(&registry_name)?;
    let format: Format = p.format.as_deref().unwrap_or("ndjson").parse()?;
    let since = p.since.as_deref().map(|s| changes::cursor(Some(s))).transpose()?;
    let shape = export::shape(&caller, registry)?;
    let view = state.view();
    // Recorded before a byte is sent: one entry naming what the export holds.
    let scope = match since {
        None => format!("export of {registry} at feed position {}", view.feed_last),
        Some(s) => format!("export of {registry} changed after feed position {s} up to {}", view.feed_last),
    };
    recorder.record_scope(registry.as_str(), shape.personal(), scope).await?;
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let cursor = view.feed_last;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    // Counted, not listed: the entry above names the scope.
    let caller = Caller { trace: Arc::new(Mutex::new(Trace { summary: true, ..Trace::default() })), ..caller };
    // One worker renders while this task's thread scans and sends: a whole export uses two
    // cores at most, however many the machine has, and leaves the rest to other requests.
    let q = ExportQuery { registry, since, format, threads: 1 };
    tokio::task::spawn_blocking(move || {
        let src = Source { at: view.reader(), loads: &view.loads, feed_last: view.feed_last };
        let sink = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let written = if gzip {
            let mut gz = flate2::write::GzEncoder::new(sink, flate2::Compression::fast());
            export::export(src, &caller, &shape, &q, &mut gz).and_then(|e| {
                gz.finish().and_then(|mut s| s.flush()).map_err(|e| crate::Error::Internal(e.to_string()))?;
                Ok(e)
            })
        } else {
            let mut sink = sink;
            export::export(src, &caller, &shape, &q, &mut sink)
                .and_then(|e| sink.flush().map(|_| e).map_err(|e| crate::Error::Internal(e.to_string()).into()))
        };
        match written {
            Ok(e) => tracing::info!(%registry, records = e.records, cursor = e.cursor, "exported"),
            Err(e) => {
                tracing::warn!(%registry, error = %e, "export stopped");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = response.headers_mut();
    h.insert("x-jichu-cursor", HeaderValue::from(cursor));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Writes into the response body in chunks; fails once the client has gone.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}
