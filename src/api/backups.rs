//! Online backups (administrators): taken into the server's `backup_dir` while reads and the
//! load queue go on, and listed.

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::backup::{self, BackupInfo, Taken};
use axum::extract::State;
use axum::http::StatusCode;

/// Takes a backup of the store and the data directory's small files (incremental).
#[utoipa::path(
    post, path = "/v1/admin/backups", tag = "operations",
    responses(
        (status = 201, description = "the backup taken: its id, time, store bytes and files, bytes copied, seconds", body = Object),
        (status = 403, description = "not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn take(State(state): State<AppState>) -> Result<(StatusCode, axum::Json<Taken>), ApiError> {
    let (store, config) = (state.service.store.clone(), state.config.clone());
    let taken = tokio::task::spawn_blocking(move || backup::take(&store, &config, &backup::server_dir(&config)))
        .await
        .map_err(|e| crate::Error::Internal(format!("the backup task failed: {e}")))??;
    tracing::info!(
        backup_id = taken.backup.backup_id,
        bytes = taken.bytes_copied,
        seconds = taken.seconds,
        "backup taken"
    );
    Ok((StatusCode::CREATED, axum::Json(taken)))
}

/// The backups in the server's `backup_dir`, oldest first.
#[utoipa::path(
    get, path = "/v1/admin/backups", tag = "operations",
    responses((status = 200, description = "the backups, oldest first", body = Object))
)]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<BackupInfo>>, ApiError> {
    let dir = backup::server_dir(&state.config);
    if !dir.join("store").exists() {
        return Ok(axum::Json(Vec::new()));
    }
    let list = tokio::task::spawn_blocking(move || backup::list(&dir))
        .await
        .map_err(|e| crate::Error::Internal(format!("the backup task failed: {e}")))??;
    Ok(axum::Json(list))
}
