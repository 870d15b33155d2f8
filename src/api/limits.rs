//! Limits checked on a request's head, before routing and before any body is read: the
//! target's length (414), the headers' number and size (431), and a declared body larger than
//! the route accepts (413, answered at once, so a client that sent `Expect: 100-continue`
//! never gets a `100 Continue` for a body that would be refused).
//!
//! hyper enforces looser limits of its own below these (see `super::serve`) and answers past
//! them with an empty body; between the two, the answer is problem+json.

use super::{ApiError, AppState};
use axum::extract::Request;
use axum::http::{Method, header};

/// Longest request target (path and query).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields, and most bytes of names and values together.
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why the request's head is refused, if it is.
pub(super) fn refusal(state: &AppState, request: &Request) -> Option<ApiError> {
    let uri = request.uri();
    let target = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if target > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Some(ApiError::HeadersTooLarge(format!("{} fields; at most {MAX_HEADERS}", headers.len())));
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge(format!("{bytes} bytes; at most {MAX_HEADER_BYTES}")));
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Uploads to `POST /v1/loads` have their own, larger limit.
    let upload = request.method() == Method::POST && uri.path() == "/v1/loads";
    let max = if upload { state.config.max_upload_bytes } else { state.config.max_body_bytes as u64 };
    declared.filter(|&n| n > max).map(|_| ApiError::BodyTooLarge)
}
