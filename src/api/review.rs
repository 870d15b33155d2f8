//! Data stewardship (administrators): the review queue of identity conflicts between sources,
//! a steward's decisions, and recomputing golden records after the survivorship rules change.
//! Each decision and recomputation is a load of its own (lineage, history, feed) and is
//! published before the answer; the audit trail records the request as an administrator's
//! action.

use super::AppState;
use super::extract::{Json, Path, Query};
use super::problem::{ApiError, Problem};
use crate::golden::Rules;
use crate::load::recompute::{self, Recomputed};
use crate::load::steward::{self, Decision};
use crate::model::Registry;
use crate::query::Caller;
use crate::store::{ReviewItem, ReviewStatus, Writer};
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?registry=&status=&cursor=&limit=` of the review queue.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReviewQuery {
    /// Only this registry's items.
    pub registry: Option<String>,
    /// `open` (default), `resolved`, `agreed` or `all`.
    pub status: Option<String>,
    /// `next` of the page before.
    pub cursor: Option<String>,
    /// Items per page, at most 1000 (default 100).
    pub limit: Option<usize>,
}

#[derive(Serialize)]
pub struct ReviewPage {
    items: Vec<ReviewItem>,
    next: Option<String>,
}

/// The review queue: identity conflicts between sources (citizens: name, birth date, gender;
/// entities: name, legal representative), oldest first.
#[utoipa::path(
    get, path = "/v1/review", tag = "stewardship", params(ReviewQuery),
    responses(
        (status = 200, description = "`items` (registry, id, field, each source's value, opened at, status, resolution) and `next`", body = Object),
        (status = 400, description = "bad registry, status or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ReviewQuery>,
) -> Result<axum::Json<ReviewPage>, ApiError> {
    let registry = q.registry.as_deref().map(|r| r.parse::<Registry>().map_err(ApiError::BadRequest)).transpose()?;
    let status = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(s.parse::<ReviewStatus>().map_err(ApiError::BadRequest)?),
    };
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| ApiError::BadRequest("`cursor` is the `next` of a page".into()))?,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("`limit` is between 1 and 1000".into()));
    }
    let view = state.view();
    let page = state
        .query(Default::default(), move || {
            let keep = |i: &ReviewItem| {
                registry.is_none_or(|r| i.registry == r.as_str()) && status.is_none_or(|s| i.status == s)
            };
            Ok(view.reader().review_items(after, limit, keep)?)
        })
        .await?;
    let (items, more) = page;
    let next = more.then(|| items.last().map(|i| i.item.to_string())).flatten();
    Ok(axum::Json(ReviewPage { items, next }))
}

/// A steward's decision: one source's value, or a value of their own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `source:NAME`: that source's value wins.
    pub choose: Option<String>,
    /// A value of the steward's own (a string; dates as `YYYY-MM-DD`).
    pub value: Option<serde_json::Value>,
}

/// Resolves a review item. The decision is a contribution from the source `steward` that the
/// rules rank first for that field until a later load from the field's authority sends the
/// same value; recorded in the item (who, when, what) and published before the answer.
#[utoipa::path(
    post, path = "/v1/review/{item}", tag = "stewardship",
    params(("item" = u64, Path, description = "the item's number")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "the item, resolved", body = Object),
        (status = 400, description = "neither or both of `choose` and `value`, or a value the field cannot take", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such item", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "a load is being written; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(item): Path<String>,
    Json(body): Json<ResolveRequest>,
) -> Result<axum::Json<ReviewItem>, ApiError> {
    let number: u64 = item.parse().map_err(|_| ApiError::BadRequest("a review item is a number".into()))?;
    let decision = match (body.choose, body.value) {
        (Some(c), None) => Decision::Choose(c),
        (None, Some(v)) => Decision::Value(v),
        _ => return Err(ApiError::BadRequest("give one of `choose` (\"source:NAME\") and `value`".into())),
    };
    let by = caller.principal.as_ref().map_or_else(|| "local".to_string(), |p| p.department.name.clone());
    let resolved = write_and_publish(&state, move |writer, rules| {
        let item = steward::resolve(writer, rules, number, decision, &by)?;
        let changed = item.is_some();
        Ok((item, changed))
    })
    .await?;
    resolved.map(axum::Json).ok_or_else(|| ApiError::BadRequest(format!("no review item {number}")).not_found())
}

/// Runs `work` on the blocking pool with the rules as the file now says and the store's writer
/// — refused with `writer_busy` while a load holds it, never waited for — then, when it says it
/// changed something, publishes, so the answer and every later read see it.
async fn write_and_publish<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut Writer<'_>, &Rules) -> crate::Result<(T, bool)> + Send + 'static,
) -> Result<T, ApiError> {
    let rules_file = state.config.survivorship_file();
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || -> Result<T, ApiError> {
        let rules = Rules::load(&rules_file)?;
        let mut writer = service.store.try_writer().ok_or(ApiError::WriterBusy)?;
        let (done, changed) = work(&mut writer, &rules)?;
        drop(writer);
        if changed {
            service.publish()?;
        }
        Ok(done)
    })
    .await
    .map_err(|e| crate::Error::Internal(format!("the stewardship task failed: {e}")))?
}

/// `?registry=` of a recomputation.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RecomputeQuery {
    /// Only this registry (default: every registry).
    pub registry: Option<String>,
}

/// Recomputes every golden record by the survivorship rules as the file now says, as a load
/// per registry (history and feed entries where a value changes), then publishes.
#[utoipa::path(
    post, path = "/v1/admin/recompute", tag = "stewardship", params(RecomputeQuery),
    responses(
        (status = 200, description = "per registry: records, sourced, changed, seconds", body = Object),
        (status = 400, description = "a bad rules file or registry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "a load is being written; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn recompute(
    State(state): State<AppState>,
    Query(q): Query<RecomputeQuery>,
) -> Result<axum::Json<Vec<Recomputed>>, ApiError> {
    let registries = match q.registry.as_deref() {
        Some(r) => vec![r.parse::<Registry>().map_err(ApiError::BadRequest)?],
        None => Registry::ALL.to_vec(),
    };
    let done = write_and_publish(&state, move |writer, rules| {
        let done = registries
            .iter()
            .map(|r| recompute::recompute_with(writer, rules, *r))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok((done, true))
    })
    .await?;
    Ok(axum::Json(done))
}
