//! Loads into the running service: submit (upload or a path in the import folder), follow,
//! list, fetch the rejects, cancel. The queue itself is `crate::loads`.

use super::extract::{Path, Query};
use super::problem::{ApiError, Problem};
use super::{AppState, json_body};
use crate::loads::{Status, TaskStatus};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

/// A load of files already on the server, in the import folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitByPath {
    /// The mapping spec's TOML text (the format of `jichu load --spec`).
    pub spec: String,
    /// Files relative to the import folder.
    pub files: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Accepted {
    load_id: u32,
    status: Status,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Most loads to list, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Submission takes uploads of any size up to `max_upload_bytes`, counted as they stream, so
/// the general body limit does not apply to it.
pub(super) fn submit_routes() -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method) = routes!(submit, list);
    (schemas, paths, method.layer(DefaultBodyLimit::disable()))
}

/// A file name from a client, reduced to a safe last component.
fn safe_name(name: Option<&str>, n: usize) -> String {
    let base = name.and_then(|n| n.rsplit(['/', '\\']).next()).unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() { format!("{n:03}-extract.csv") } else { format!("{n:03}-{clean}") }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Streams the parts of a multipart submission: `spec` (text) and `file` parts written to
/// `dir` as they arrive, never held whole, at most `max` bytes in all.
async fn receive(
    mut multipart: Multipart,
    dir: &std::path::Path,
    max: u64,
) -> Result<(String, Vec<PathBuf>), ApiError> {
    let (mut spec, mut files, mut total) = (None, Vec::new(), 0u64);
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("spec") => {
                let text = field.text().await.map_err(multipart_error)?;
                total += text.len() as u64;
                spec = Some(text);
            }
            Some("file") => {
                let path = dir.join(safe_name(field.file_name(), files.len() + 1));
                let mut out = tokio::fs::File::create(&path).await.map_err(crate::Error::io(&path))?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    total += chunk.len() as u64;
                    if total > max {
                        return Err(ApiError::BodyTooLarge);
                    }
                    out.write_all(&chunk).await.map_err(crate::Error::io(&path))?;
                }
                out.flush().await.map_err(crate::Error::io(&path))?;
                files.push(path);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part {:?}: a load is a `spec` part and one or more `file` parts",
                    other.unwrap_or("")
                )));
            }
        }
        if total > max {
            return Err(ApiError::BodyTooLarge);
        }
    }
    let spec =
        spec.ok_or_else(|| ApiError::BadRequest("the `spec` part (the mapping spec's TOML) is missing".into()))?;
    Ok((spec, files))
}

/// Submits a load: `multipart/form-data` with a `spec` part and `file` parts (uploaded), or
/// JSON naming files in the import folder. Checked at once (spec, registry, headers), then
/// queued; loads run one at a time in the order accepted.
#[utoipa::path(
    post, path = "/v1/loads", tag = "loads",
    request_body(content = SubmitByPath, description = "JSON naming files in the import folder, or multipart/form-data: a `spec` part and `file` parts"),
    responses(
        (status = 202, description = "queued; `Location` is the load's status route", body = Object),
        (status = 400, description = "invalid spec, header or file, or a path leaving the import folder", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the upload is larger than max_upload_bytes", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, request: Request) -> Result<Response, ApiError> {
    let max = state.config.max_upload_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::BodyTooLarge);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let dir = state.loads.upload_dir()?;
    let received = if content_type.starts_with("multipart/form-data") {
        let multipart =
            Multipart::from_request(request, &state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        receive(multipart, &dir, max).await
    } else if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes)
            .await
            .map_err(|_| ApiError::BodyTooLarge)?;
        match serde_json::from_slice::<SubmitByPath>(&bytes) {
            Ok(req) => state.loads.import_files(&req.files).map(|files| (req.spec, files)).map_err(ApiError::from),
            Err(e) => Err(ApiError::BadRequest(format!("the body is not a load submission: {e}"))),
        }
    } else {
        Err(ApiError::BadRequest("send multipart/form-data (spec and file parts) or application/json".into()))
    };
    let (spec, files) = match received {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
    };
    let loads = state.loads.clone();
    let status = tokio::task::spawn_blocking(move || loads.submit(&spec, files, dir, None))
        .await
        .map_err(|e| crate::Error::Internal(format!("submission task failed: {e}")))??;
    let mut response =
        (StatusCode::ACCEPTED, axum::Json(Accepted { load_id: status.load_id, status: status.status })).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/loads/{}", status.load_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The recent loads, newest first.
#[utoipa::path(
    get, path = "/v1/loads", tag = "loads", params(ListQuery),
    responses((status = 200, description = "`loads`: each as `GET /v1/loads/{load_id}` gives it", body = Object))
)]
pub async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let loads: Vec<TaskStatus> = state.loads.list(q.limit.unwrap_or(100).clamp(1, 1000));
    json_body(&serde_json::json!({ "loads": loads }))
}

/// A load's status and progress; its report once written.
#[utoipa::path(
    get, path = "/v1/loads/{load_id}", tag = "loads",
    params(("load_id" = u32, Path, description = "the load id `POST /v1/loads` gave")),
    responses(
        (status = 200, description = "`status` (queued, running, indexing, published, failed, cancelled), `progress`, times, `report`", body = Object),
        (status = 404, description = "no such load", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_load(State(state): State<AppState>, Path(load_id): Path<u32>) -> Result<Response, ApiError> {
    let status = state.loads.get(load_id).ok_or_else(|| ApiError::LoadNotFound(format!("no load {load_id}")))?;
    json_body(&status)
}

/// Cancels a queued load, or stops a running one: nothing of it is ever published.
#[utoipa::path(
    delete, path = "/v1/loads/{load_id}", tag = "loads",
    params(("load_id" = u32, Path, description = "the load id")),
    responses(
        (status = 200, description = "cancelled (it was queued)", body = Object),
        (status = 202, description = "a running load is being stopped and undone", body = Object),
        (status = 404, description = "no such load", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the load has already ended or is being published", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(State(state): State<AppState>, Path(load_id): Path<u32>) -> Result<Response, ApiError> {
    let status = state.loads.cancel(load_id)?;
    let code = if status.status == Status::Running { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((code, axum::Json(status)).into_response())
}

/// The rejected rows of a load, as CSV (`line,reason,message,raw`), streamed.
#[utoipa::path(
    get, path = "/v1/loads/{load_id}/rejects", tag = "loads",
    params(("load_id" = u32, Path, description = "the load id")),
    responses(
        (status = 200, description = "the rejects CSV", body = String, content_type = "text/csv"),
        (status = 404, description = "no such load", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rejects(State(state): State<AppState>, Path(load_id): Path<u32>) -> Result<Response, ApiError> {
    let path = state.loads.rejects(load_id)?;
    let file = tokio::fs::File::open(&path).await.map_err(crate::Error::io(&path))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}
