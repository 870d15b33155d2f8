//! A load submitted to a running server, as it is kept in the store (`meta`, `task/ID`): what
//! to load and where it stands. Tasks survive a restart; the queue resumes from them.

use crate::error::{Error, Result};
use crate::load::ProgressStatus;
use crate::store::{Store, keys};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a load stands. `published`, `failed` and `cancelled` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    /// Written to the store; the indexes are being brought in step before publication.
    Indexing,
    Published,
    Failed,
    Cancelled,
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Status::Published | Status::Failed | Status::Cancelled)
    }
}

/// A queued load and its outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub load_id: u32,
    pub status: Status,
    pub registry: String,
    pub source: String,
    /// The mapping spec's TOML text, as submitted.
    pub spec: String,
    /// The extracts: spooled uploads or files in the import folder.
    pub files: Vec<PathBuf>,
    /// The folder holding this load's spec (and uploads), removed when the load ends.
    pub spool: PathBuf,
    /// Who submitted it (a key id once access control is on).
    #[serde(default)]
    pub submitted_by: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The load report (the keys `jichu load --report` writes), once written to the store.
    pub report: Option<serde_json::Value>,
    pub rejects: PathBuf,
    pub error: Option<String>,
}

impl Task {
    pub fn save(&self, store: &Store) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Codec(e.to_string()))?;
        store.put_meta(&keys::task(self.load_id), &bytes)
    }

    /// Every task the store holds, oldest first.
    pub fn all(store: &Store) -> Result<Vec<Task>> {
        store
            .meta_under(keys::TASK_PREFIX)?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).map_err(|e| Error::Codec(e.to_string())))
            .collect()
    }
}

/// A task as the API shows it: the task and, while it runs, its progress.
#[derive(Clone, Debug, Serialize)]
pub struct TaskStatus {
    pub load_id: u32,
    pub status: Status,
    pub registry: String,
    pub source: String,
    pub files: Vec<String>,
    pub progress: ProgressStatus,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from the end of writing to publication.
    pub publish_seconds: Option<f64>,
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
}
