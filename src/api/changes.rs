//! The change feed over HTTP: pages (`after`, `limit`), long polls (`wait`), and server-sent
//! events resumable with `Last-Event-ID`.

use super::auth::Recorder;
use super::extract::Query;
use super::problem::{ApiError, Problem};
use super::{AppState, json_body};
use crate::query::changes::{self, ChangesQuery, MAX_LIMIT, Page};
use crate::query::{Caller, QueryError, records};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;
use utoipa::IntoParams;

/// The longest a long poll waits.
pub const MAX_WAIT_SECS: u64 = 60;
const DEFAULT_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChangesParams {
    /// Changes after this cursor (`next` of the previous page); from the beginning when absent.
    pub after: Option<String>,
    /// One registry's changes only.
    pub registry: Option<String>,
    /// Changes per page, at most 10000 (default 1000).
    pub limit: Option<usize>,
    /// `record`: each change with the record as it was after it.
    pub include: Option<String>,
    /// Seconds to wait for a change when there is none after the cursor (at most 60).
    pub wait: Option<u64>,
}

fn query(p: &ChangesParams, headers: &HeaderMap) -> Result<ChangesQuery, ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(QueryError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")).into());
    }
    let include_record = match p.include.as_deref() {
        None | Some("") => false,
        Some("record") => true,
        Some(other) => {
            return Err(
                QueryError::BadRequest(format!("include takes `record`, not `{}`", records::clip(other))).into()
            );
        }
    };
    // An event stream resumes from the last event it received.
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let after = changes::cursor(last_event.or(p.after.as_deref()))?;
    let registry = p.registry.as_deref().map(records::registry).transpose()?;
    Ok(ChangesQuery { after, registry, limit, include_record })
}

/// Every change to the registries, in one gap-free order, after a cursor.
#[utoipa::path(
    get, path = "/v1/changes", tag = "changes",
    params(ChangesParams),
    responses(
        (status = 200, description = "`changes` in order (`position`, `registry`, `id`, `change`: insert, update, end or reopen, `load_id`, `source`, `recorded_at`, `fields_changed`, with `include=record` the `record` after the change), `next` (the cursor to resume from) and `last_position`; with `Accept: text/event-stream`, the same changes as server-sent events (`id` = position) until the client leaves", body = Object),
        (status = 400, description = "bad cursor, limit, wait or include", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the feed of the registry is not granted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(recorder): Extension<Recorder>,
    headers: HeaderMap,
    Query(p): Query<ChangesParams>,
) -> Result<Response, ApiError> {
    let q = query(&p, &headers)?;
    let wait = p.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(QueryError::BadRequest(format!("wait is at most {MAX_WAIT_SECS} seconds")).into());
    }
    let streamed =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if streamed {
        // Refusals (grants, purpose) come now, as problems, not inside the stream.
        let (view, c, first) = (state.view(), caller.clone(), q.clone());
        state
            .query(caller.cancel.clone(), move || {
                changes::changes(&view, &c, &ChangesQuery { limit: 1, ..first }).map(|_| ())
            })
            .await?;
        *caller.trace.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
        return Ok(stream(state, caller, recorder, q).into_response());
    }
    let mut published = state.service.views.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        published.borrow_and_update();
        let page = read(&state, &caller, &q).await?;
        if !page.changes.is_empty() || tokio::time::Instant::now() >= deadline {
            return json_body(&page);
        }
        // Nothing yet: wait for the next publication (or the end of the wait).
        if tokio::time::timeout_at(deadline, published.changed()).await.is_err() {
            return json_body(&page);
        }
    }
}

async fn read(state: &AppState, caller: &Caller, q: &ChangesQuery) -> Result<Page, ApiError> {
    let (view, caller, q) = (state.view(), caller.clone(), q.clone());
    state.query(caller.cancel.clone(), move || changes::changes(&view, &caller, &q)).await
}

/// The feed as server-sent events from the cursor on: each change an event (`id` its
/// position, `event: change`, `data` its JSON), then, at the end, a wait for the next
/// publication. Each page is recorded in the audit before it is sent; a page that cannot be
/// recorded ends the stream.
fn stream(state: AppState, caller: Caller, recorder: Recorder, q: ChangesQuery) -> impl IntoResponse {
    // Its own trace: the request's entry was written when the stream began.
    let caller = Caller { trace: Default::default(), ..caller };
    let published = state.service.views.subscribe();
    let events = futures_util::stream::unfold(
        (state, caller, recorder, q, published, false),
        |(state, caller, recorder, mut q, mut published, stop)| async move {
            if stop {
                return None;
            }
            loop {
                published.borrow_and_update();
                let page = match read(&state, &caller, &q).await {
                    Ok(p) => p,
                    Err(e) => return Some((vec![Ok(error_event(&e))], (state, caller, recorder, q, published, true))),
                };
                q.after = page.next.parse().unwrap_or(q.after);
                if page.changes.is_empty() {
                    if published.changed().await.is_err() {
                        return None;
                    }
                    continue;
                }
                if let Err(e) = recorder.record(&caller).await {
                    return Some((vec![Ok(error_event(&e))], (state, caller, recorder, q, published, true)));
                }
                let events: Vec<Result<Event, std::convert::Infallible>> = page
                    .changes
                    .iter()
                    .map(|c| {
                        let data = serde_json::to_string(c).unwrap_or_default();
                        Ok(Event::default().id(c.position.to_string()).event("change").data(data))
                    })
                    .collect();
                return Some((events, (state, caller, recorder, q, published, false)));
            }
        },
    );
    let events = futures_util::StreamExt::flat_map(events, futures_util::stream::iter);
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A failure inside a stream (its status is sent already): an `error` event with the problem.
fn error_event(e: &ApiError) -> Event {
    let body = serde_json::json!({"status": e.status().as_u16(), "code": e.code(), "detail": e.to_string()});
    Event::default().event("error").data(body.to_string())
}
