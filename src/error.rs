//! The service's error type. The API maps it to HTTP in one place (`api::problem`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] rocksdb::Error),
    #[error(transparent)]
    Ingest(#[from] jichu_ingest::Error),
    #[error(transparent)]
    Text(#[from] jichu_indexes::text::TextError),
    #[error("a stored value does not decode: {0}")]
    Codec(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request, argument or file that cannot be served as given: the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// A failure inside jichu (a thread that panicked, a worker that could not start, an
    /// answer that could not be written): nobody's input, so never a 4xx; the log has it.
    #[error("internal failure: {0}")]
    Internal(String),
    /// The server `jichu load --server` talks to failed, or refused the request.
    #[error("{0}")]
    Remote(String),
    /// Another process (a running `jichu serve`, or another load) holds the store.
    #[error("the store at {} is in use by another jichu process", .0.display())]
    StoreInUse(PathBuf),
    /// A load was cancelled while it ran; it was undone.
    #[error("the load was cancelled")]
    Cancelled,
    /// A build of a spatial layer gave up because the server is stopping (the layer it was
    /// building saved no file).
    #[error("the server is stopping")]
    Stopping,
    /// A load failed and so did undoing it: what it wrote stays until the next open undoes it,
    /// and no other load may run on top of it.
    #[error("load {load_id} failed ({failure}) and could not be undone: {undo}")]
    UndoFailed { load_id: u32, failure: String, undo: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
