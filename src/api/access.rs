//! What a caller may see (`GET /v1/me`), and the audit trail for administrators
//! (`GET /v1/audit`, `GET /v1/audit/public-key`).

use super::extract::Query;
use super::problem::{ApiError, Problem};
use super::{AppState, json_body};
use crate::access::audit;
use crate::model::Registry;
use crate::query::Caller;
use axum::extract::{Extension, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

/// The caller's department, role, purposes, rate limit and, per registry, its operations,
/// each field's access (`full`, `masked`) and its row filter.
#[utoipa::path(
    get, path = "/v1/me", tag = "access",
    responses(
        (status = 200, description = "department, role, purposes, rate_limit, key_id, registries (operations, fields, rows)", body = Object),
        (status = 401, description = "no valid key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    let Some(p) = &caller.principal else {
        let all: Map<String, Value> = Registry::ALL
            .iter()
            .map(|r| {
                let fields: Map<String, Value> = std::iter::once("id")
                    .chain(r.schema().fields.iter().map(|f| f.name))
                    .map(|f| (f.to_string(), json!("full")))
                    .collect();
                (r.to_string(), json!({"operations": "all", "fields": fields, "rows": null}))
            })
            .collect();
        return json_body(&json!({"department": null, "role": "unrestricted", "registries": all}));
    };
    let d = &p.department;
    json_body(&json!({
        "key_id": p.key_id,
        "department": d.name,
        "role": d.role,
        "purposes": d.purposes,
        "rate_limit": d.rate_limit,
        "registries": d.registries,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// A record's key: who read this record's personal data.
    pub record: Option<String>,
    pub department: Option<String>,
    /// RFC 3339 times bounding the entries.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Entries per page (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The audit trail: who read a person's data, when and why (administrators).
#[utoipa::path(
    get, path = "/v1/audit", tag = "access", params(AuditQuery),
    responses(
        (status = 200, description = "`entries` oldest first (each with seq and prev hash), `next_cursor`", body = Object),
        (status = 403, description = "not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    let Some(log) = state.audit.clone() else {
        return json_body(&json!({"entries": [], "next_cursor": null}));
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = audit::Filter {
        record: q.record,
        department: q.department,
        from: q.from,
        to: q.to,
        after: q.cursor.unwrap_or(0),
    };
    let dir = log.dir().to_path_buf();
    let entries = tokio::task::spawn_blocking(move || audit::search(&dir, &filter, limit))
        .await
        .map_err(|e| crate::Error::Internal(format!("audit search failed: {e}")))??;
    let next = (entries.len() == limit).then(|| entries.last().and_then(|e| e["seq"].as_u64())).flatten();
    json_body(&json!({"entries": entries, "next_cursor": next}))
}

/// The Ed25519 public key the audit trail's heads are signed with (hex).
#[utoipa::path(
    get, path = "/v1/audit/public-key", tag = "access",
    responses((status = 200, description = "`public_key` (hex)", body = Object))
)]
pub async fn public_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let key = match &state.audit {
        Some(log) => Some(audit::public_key(log.dir())?),
        None => None,
    };
    json_body(&json!({"public_key": key, "algorithm": "Ed25519"}))
}
