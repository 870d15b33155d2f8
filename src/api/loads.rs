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
use std::time::Duration;
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

/// The next piece of an upload, waited for at most `idle`: an upload has no deadline as a
/// whole, as its time grows with its size and the client's link, but one that stalls must
/// not hold its connection and spool file (a reverse proxy's body timeout, the same way).
async fn within<T>(
    idle: Duration,
    next: impl std::future::Future<Output = Result<T, axum::extract::multipart::MultipartError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(idle, next).await {
        Ok(piece) => piece.map_err(multipart_error),
        Err(_) => Err(ApiError::UploadStalled(idle)),
    }
}

/// A submission's upload folder, removed unless handed to the queue: a refused, stalled or
/// abandoned upload (the client went away, dropping the request) leaves nothing behind.
struct Spool {
    dir: PathBuf,
    handed_over: bool,
}

impl Spool {
    /// The folder, now the queue's to keep or remove.
    fn hand_over(mut self) -> PathBuf {
        self.handed_over = true;
        self.dir.clone()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        let dir = std::mem::take(&mut self.dir);
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(error = %e, "could not remove the upload folder {}", dir.display());
            }
        };
        // Off the async worker where there is one: a partial upload may be gigabytes.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Streams the parts of a multipart submission: `spec` (text) and `file` parts written to
/// `dir` as they arrive, never held whole, at most `max` bytes in all, each piece within `idle`.
async fn receive(
    mut multipart: Multipart,
    dir: &std::path::Path,
    max: u64,
    idle: Duration,
) -> Result<(String, Vec<PathBuf>), ApiError> {
    let (mut spec, mut files, mut total) = (None, Vec::new(), 0u64);
    while let Some(mut field) = within(idle, multipart.next_field()).await? {
        match field.name() {
            Some("spec") => {
                let text = within(idle, field.text()).await?;
                total += text.len() as u64;
                spec = Some(text);
            }
            Some("file") => {
                let path = dir.join(safe_name(field.file_name(), files.len() + 1));
                let mut out = tokio::fs::File::create(&path).await.map_err(crate::Error::io(&path))?;
                while let Some(chunk) = within(idle, field.chunk()).await? {
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
        (status = 408, description = "the upload sent nothing for request_timeout_secs (an upload has no deadline as a whole)", body = Problem, content_type = "application/problem+json"),
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
    let spool = Spool { dir: state.loads.upload_dir()?, handed_over: false };
    let idle = state.config.request_timeout;
    let (spec, files) = if content_type.starts_with("multipart/form-data") {
        let multipart =
            Multipart::from_request(request, &state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        receive(multipart, &spool.dir, max, idle).await?
    } else if content_type.starts_with("application/json") {
        let body = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes);
        let bytes = tokio::time::timeout(idle, body)
            .await
            .map_err(|_| ApiError::UploadStalled(idle))?
            .map_err(|_| ApiError::BodyTooLarge)?;
        let req = serde_json::from_slice::<SubmitByPath>(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body is not a load submission: {e}")))?;
        let files = state.loads.import_files(&req.files)?;
        (req.spec, files)
    } else {
        return Err(ApiError::BadRequest("send multipart/form-data (spec and file parts) or application/json".into()));
    };
    // The queue keeps the folder as the load's, or removes it if it refuses the load.
    let dir = spool.hand_over();
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
