//! Errors on the wire: RFC 9457 `application/problem+json`, each with a stable `code`.
//! Every error a handler can meet is mapped here, in one place.

use crate::loads::Refusal;
use crate::query::QueryError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem kind (`urn:jichu:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `malformed_id`.
    pub code: &'static str,
}

/// Everything that can go wrong serving a request: a query's failure, or the HTTP layer's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("no such route; /openapi.json lists them")]
    UnknownRoute,
    #[error("this route does not answer that method; the Allow header lists those it does")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than the server accepts")]
    BodyTooLarge,
    #[error("the request target is longer than {0} bytes; send long inputs in a POST body")]
    UriTooLong(usize),
    #[error("the request's headers are larger than the server accepts ({0})")]
    HeadersTooLarge(String),
    /// The server ran out of time (not the client: 503, not 408).
    #[error("the request took longer than the server's timeout; retry, or ask for less")]
    Timeout,
    /// The client stopped sending an upload (408: the client's side).
    #[error("the upload sent nothing for {} s; send it again", .0.as_secs())]
    UploadStalled(std::time::Duration),
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    #[error("a load is being written; retry once it has been published")]
    WriterBusy,
    /// An old identifier that names several records.
    #[error("{0}")]
    Ambiguous(String),
    #[error("{0}")]
    LoadNotFound(String),
    #[error("{0}")]
    LoadEnded(String),
    #[error("a valid API key is required: Authorization: Bearer KEY")]
    Unauthenticated,
    #[error("over this key's rate limit; retry in {:.1} s", .0.as_secs_f64())]
    RateLimited(std::time::Duration),
    #[error("the audit trail cannot be written now, so personal data is not served; retry shortly")]
    AuditUnavailable,
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        ApiError::Query(QueryError::Internal(e))
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(m) => ApiError::BadRequest(m),
            e @ Refusal::NotFound(_) => ApiError::LoadNotFound(e.to_string()),
            e @ Refusal::Ended(..) => ApiError::LoadEnded(e.to_string()),
            Refusal::Internal(e) => e.into(),
        }
    }
}

impl ApiError {
    /// The same message as a 404 `not_found`.
    pub fn not_found(self) -> ApiError {
        ApiError::LoadNotFound(self.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Query(q) => match q {
                QueryError::UnknownRegistry(_) | QueryError::NotFound(_) => StatusCode::NOT_FOUND,
                QueryError::MalformedId { .. } | QueryError::UnknownField(_) | QueryError::BadRequest(_) => {
                    StatusCode::BAD_REQUEST
                }
                QueryError::TooManyIds { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                QueryError::StaleCursor => StatusCode::CONFLICT,
                QueryError::NotGranted(_) | QueryError::FieldNotGranted(_) | QueryError::PurposeNotAllowed(_) => {
                    StatusCode::FORBIDDEN
                }
                QueryError::PurposeRequired => StatusCode::BAD_REQUEST,
                QueryError::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
                QueryError::Internal(crate::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
                QueryError::Internal(crate::Error::StoreInUse(_)) => StatusCode::SERVICE_UNAVAILABLE,
                QueryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::UnknownRoute | ApiError::LoadNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout | ApiError::WriterBusy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UploadStalled(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::LoadEnded(_) | ApiError::Ambiguous(_) => StatusCode::CONFLICT,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Query(q) => match q {
                QueryError::UnknownRegistry(_) => "unknown_registry",
                QueryError::MalformedId { .. } => "malformed_id",
                QueryError::NotFound(_) => "not_found",
                QueryError::UnknownField(_) => "unknown_field",
                QueryError::BadRequest(_) => "bad_request",
                QueryError::TooManyIds { .. } => "too_many_ids",
                QueryError::StaleCursor => "stale_cursor",
                QueryError::NotGranted(_) => "not_granted",
                QueryError::FieldNotGranted(_) => "field_not_granted",
                QueryError::PurposeRequired => "purpose_required",
                QueryError::PurposeNotAllowed(_) => "purpose_not_allowed",
                QueryError::Cancelled => "timeout",
                QueryError::Internal(crate::Error::Invalid(_)) => "bad_request",
                QueryError::Internal(crate::Error::StoreInUse(_)) => "unavailable",
                QueryError::Internal(_) => "internal",
            },
            ApiError::UnknownRoute => "unknown_route",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::Timeout => "timeout",
            ApiError::WriterBusy => "writer_busy",
            ApiError::Ambiguous(_) => "ambiguous",
            ApiError::Overloaded => "overloaded",
            ApiError::UploadStalled(_) => "upload_stalled",
            ApiError::LoadNotFound(_) => "not_found",
            ApiError::LoadEnded(_) => "load_ended",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::AuditUnavailable => "audit_unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Query(QueryError::Internal(crate::Error::Invalid(m))) => m.clone(),
            ApiError::Query(QueryError::Internal(e)) => {
                tracing::error!(error = %e, "internal error");
                "internal error; the server log has the details".to_string()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:jichu:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            code: self.code(),
        };
        let unauthenticated = matches!(self, ApiError::Unauthenticated);
        // The body was not read to its end, so this connection cannot carry another request:
        // hyper closes it after the answer. Saying so keeps a client from pooling it and
        // sending its next request into the close (RFC 9112 §9.6).
        let unread_body = matches!(self, ApiError::BodyTooLarge | ApiError::UploadStalled(_));
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if unread_body {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::BodyTooLarge;
        }
        ApiError::BadRequest(plain(&r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(plain(&r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(plain(&r.body_text()))
    }
}

/// A deserialiser's message in the API's words: Rust's type names (`struct LookupRequest`,
/// `usize`) replaced by what a client sends, and no longer than a line.
fn plain(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let (core, tail) = word.split_at(word.trim_end_matches([',', '.', ':', ';']).len());
        let said = match core {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
            "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
            "f32" | "f64" => "a number",
            "bool" => "true or false",
            other => other,
        };
        out.push_str(said);
        out.push_str(tail);
    }
    // `struct Name` and `enum Name`: an object, one of the documented values.
    let mut s = out;
    for (kind, said) in [("struct ", "an object"), ("enum ", "one of the documented values")] {
        while let Some(at) = s.find(kind) {
            let end = s[at + kind.len()..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(s.len(), |e| at + kind.len() + e);
            s.replace_range(at..end, said);
        }
    }
    // A message can quote the input: bounded, so a huge body is not echoed back.
    match s.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}
