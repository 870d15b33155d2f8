//! Errors on the wire: RFC 9457 `application/problem+json`, each with a stable `code`.
//! Every error a handler can meet is mapped here, in one place.

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

/// Everything that can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    UnknownRegistry(String),
    #[error("the {registry} key is malformed: it {message}")]
    MalformedId { registry: &'static str, message: String },
    #[error("no {0} record has this key")]
    NotFound(&'static str),
    #[error("no such route; /openapi.json lists them")]
    UnknownRoute,
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{given} keys in one call; at most {max} are allowed")]
    TooManyIds { given: usize, max: usize },
    #[error("the cursor belongs to an earlier state of the index; search again from the first page")]
    StaleCursor,
    #[error("the request body is larger than the server accepts")]
    BodyTooLarge,
    #[error("the request took longer than the server's timeout")]
    Timeout,
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    #[error("internal error")]
    Internal(#[from] crate::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownRegistry(_) | ApiError::NotFound(_) | ApiError::UnknownRoute => StatusCode::NOT_FOUND,
            ApiError::MalformedId { .. } | ApiError::UnknownField(_) | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooManyIds { .. } | ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::StaleCursor => StatusCode::CONFLICT,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(crate::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownRegistry(_) => "unknown_registry",
            ApiError::MalformedId { .. } => "malformed_id",
            ApiError::NotFound(_) => "not_found",
            ApiError::UnknownRoute => "unknown_route",
            ApiError::UnknownField(_) => "unknown_field",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooManyIds { .. } => "too_many_ids",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::Timeout => "timeout",
            ApiError::StaleCursor => "stale_cursor",
            ApiError::Overloaded => "overloaded",
            ApiError::Internal(crate::Error::Invalid(_)) => "bad_request",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(crate::Error::Invalid(m)) => m.clone(),
            ApiError::Internal(e) => {
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
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::BodyTooLarge;
        }
        ApiError::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}
