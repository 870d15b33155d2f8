//! Why a query cannot be answered as asked. The API gives each a status and a problem body
//! in one place (`api::problem`); this layer knows no HTTP.

/// A query's failure: the asker's mistake, or (`Internal`) the service's.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    UnknownRegistry(String),
    #[error("the {registry} key is malformed: it {message}")]
    MalformedId { registry: &'static str, message: String },
    #[error("no {0} record has this key")]
    NotFound(&'static str),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{given} keys in one call; at most {max} are allowed")]
    TooManyIds { given: usize, max: usize },
    #[error("the cursor belongs to a state of the registries that is no longer kept; search again from the first page")]
    StaleCursor,
    /// A registry or an operation the caller's grant does not allow.
    #[error("{0}")]
    NotGranted(String),
    /// Fields the caller may not see (or not in full, for a search or a filter), by name.
    #[error("not granted: {}", .0.join(", "))]
    FieldNotGranted(Vec<String>),
    #[error("personal data is read for a purpose: give it in the X-Purpose header (percent-encoded UTF-8)")]
    PurposeRequired,
    #[error("{0}")]
    PurposeNotAllowed(String),
    /// The request ran out of time or its client went away.
    #[error("the request was cancelled: it ran out of time or its client went away")]
    Cancelled,
    #[error("internal error")]
    Internal(#[from] crate::Error),
}

impl From<jichu_indexes::text::TextError> for QueryError {
    fn from(e: jichu_indexes::text::TextError) -> Self {
        use jichu_indexes::text::TextError;
        match e {
            TextError::UnknownField(f) => QueryError::UnknownField(format!("`{f}` is not a field of this search")),
            TextError::EmptyQuery => QueryError::BadRequest(e.to_string()),
            e => QueryError::Internal(crate::Error::Text(e)),
        }
    }
}

pub type QueryResult<T> = std::result::Result<T, QueryError>;
