//! Who is calling: every request but `/healthz` and `/openapi.json` carries
//! `Authorization: Bearer KEY`; the key makes a [`Caller`] (its department's grants, the
//! `X-Purpose` it states) that handlers pass to the query layer. Administrators' routes
//! (loads, audit) need the admin role. On the way out, a request that returned personal
//! values, an administrator's action and a denied request are written to the audit trail.
//! While the trail cannot be written, administrators' actions are refused before they run and
//! answers carrying personal values are replaced by `503 audit_unavailable`.

use super::AppState;
use super::problem::ApiError;
use crate::access::Denial;
use crate::access::audit::{AuditLog, Entry};
use crate::query::{Caller, QueryError, Trace};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const PURPOSE: HeaderName = HeaderName::from_static("x-purpose");

/// Routes that answer without a key.
fn open(route: &str) -> bool {
    matches!(route, "/healthz" | "/openapi.json")
}

/// Routes for administrators.
fn for_admins(route: &str) -> bool {
    route.starts_with("/v1/loads")
        || (route.starts_with("/v1/audit") && route != "/v1/audit/public-key")
        || route.starts_with("/v1/admin")
        || route.starts_with("/v1/review")
}

/// The request's id: the client's `X-Request-Id` if it is a short token, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// `X-Purpose`, percent-decoded UTF-8.
fn purpose(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(raw) = req.headers().get(&PURPOSE) else { return Ok(None) };
    let bad = || ApiError::BadRequest("X-Purpose must be percent-encoded UTF-8".into());
    let text = raw.to_str().map_err(|_| bad())?;
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8().map_err(|_| bad())?;
    let decoded = decoded.trim();
    Ok((!decoded.is_empty()).then(|| decoded.chars().take(200).collect()))
}

/// A refusal, recorded.
async fn deny(audit: &AuditLog, entry: Entry, response: Response, id: &str) -> Response {
    let _ = audit.record(Entry { kind: "denied".into(), status: response.status().as_u16(), ..entry }).await;
    with_id(response, id)
}

fn with_id(mut response: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// Authenticates, authorises the route, lets the handler run with the caller, audits.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let id = request_id(&req);
    tracing::Span::current().record("request_id", id.as_str());
    let (Some(access), Some(audit)) = (&state.access, &state.audit) else {
        // `--insecure-no-auth`: everything, in full, unrecorded.
        req.extensions_mut().insert(Caller::unrestricted());
        req.extensions_mut().insert(Recorder { audit: None, entry: Entry::default() });
        return with_id(next.run(req).await, &id);
    };
    if open(&route) {
        return with_id(next.run(req).await, &id);
    }
    let method = req.method().to_string();
    let mut entry =
        Entry { time: chrono::Utc::now(), method, route: route.clone(), request_id: id.clone(), ..Entry::default() };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let principal = match access.authenticate(bearer) {
        Ok(p) => p,
        Err(Denial::Unauthenticated) => {
            return deny(audit, entry, ApiError::Unauthenticated.into_response(), &id).await;
        }
        Err(Denial::RateLimited(wait)) => {
            let mut response = ApiError::RateLimited(wait).into_response();
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return with_id(response, &id);
        }
    };
    entry.key_id = Some(principal.key_id.clone());
    entry.department = Some(principal.department.name.clone());
    let purpose = match purpose(&req) {
        Ok(p) => p,
        Err(e) => return with_id(e.into_response(), &id),
    };
    entry.purpose = purpose.clone();
    let admin_route = for_admins(&route);
    if admin_route && principal.department.role != crate::access::Role::Admin {
        let refusal = ApiError::Query(QueryError::NotGranted("this route is for administrators".into()));
        return deny(audit, entry, refusal.into_response(), &id).await;
    }
    // An administrator's action must not run unrecorded; a read runs, and only an answer that
    // carries personal values is withheld below.
    if admin_route && !audit.available() {
        return with_id(ApiError::AuditUnavailable.into_response(), &id);
    }
    let caller = Caller {
        principal: Some(principal),
        purpose,
        trace: Arc::new(Mutex::new(Default::default())),
        cancel: Default::default(),
    };
    req.extensions_mut().insert(caller.clone());
    req.extensions_mut().insert(Recorder { audit: Some(audit.clone()), entry: entry.clone() });
    let response = next.run(req).await;
    let status = response.status();
    let trace = caller.traced();
    entry.status = status.as_u16();
    entry.kind = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "denied"
    } else if admin_route {
        "admin"
    } else if !trace.records.is_empty() || !trace.fields.is_empty() {
        "read"
    } else {
        return with_id(response, &id);
    }
    .into();
    fill(&mut entry, trace);
    if entry.kind == "read" && !audit.available() {
        return with_id(ApiError::AuditUnavailable.into_response(), &id);
    }
    match audit.record(entry).await {
        Ok(()) => with_id(response, &id),
        // Personal values are never sent unrecorded.
        Err(_) => with_id(ApiError::AuditUnavailable.into_response(), &id),
    }
}

/// An entry's registry, records and fields from what a request returned.
fn fill(entry: &mut Entry, trace: Trace) {
    entry.registry = trace.records.first().and_then(|r| r.split(':').next()).map(str::to_string);
    entry.records = trace.records;
    // A record rendered and its key shown beside it are one read.
    entry.records.dedup();
    entry.fields = trace.fields.into_iter().map(String::from).collect();
    entry.time = chrono::Utc::now();
}

impl Recorder {
    /// Records, before it starts, a read too large to list record by record (an export):
    /// its registry, the personal fields it returns, its scope. An error: it must not start.
    pub async fn record_scope(&self, registry: &str, fields: &[&str], scope: String) -> Result<(), ApiError> {
        let Some(audit) = &self.audit else { return Ok(()) };
        if fields.is_empty() {
            return Ok(());
        }
        if !audit.available() {
            return Err(ApiError::AuditUnavailable);
        }
        let entry = Entry {
            kind: "read".into(),
            status: 200,
            time: chrono::Utc::now(),
            registry: Some(registry.to_string()),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            scope: Some(scope),
            ..self.entry.clone()
        };
        audit.record(entry).await.map_err(|_| ApiError::AuditUnavailable)
    }
}

/// Records what a streamed answer returns, part by part: a stream outlives its request's own
/// entry, which is written when the response's headers go out.
#[derive(Clone, Debug)]
pub struct Recorder {
    audit: Option<Arc<AuditLog>>,
    entry: Entry,
}

impl Recorder {
    /// Records (and takes) the personal values `caller` has returned since the last call. An
    /// error means they cannot be recorded: the stream must end before sending them.
    pub async fn record(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let trace = std::mem::take(&mut *caller.trace.lock().unwrap_or_else(|e| e.into_inner()));
        if trace.records.is_empty() && trace.fields.is_empty() {
            return Ok(());
        }
        if !audit.available() {
            return Err(ApiError::AuditUnavailable);
        }
        let mut entry = Entry { kind: "read".into(), status: 200, ..self.entry.clone() };
        fill(&mut entry, trace);
        audit.record(entry).await.map_err(|_| ApiError::AuditUnavailable)
    }
}
