use std::path::PathBuf;

/// Why an extract could not be read at all. A bad *row* is never an error: it is a
/// [`crate::Reject`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping spec {path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Header { path: PathBuf, message: String },
    #[error("{path}: CSV error: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
