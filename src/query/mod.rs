//! The query layer: every read the service answers, from one published [`View`], between the
//! HTTP handlers (which parse requests and render answers) and the engine (store and indexes).
//! The API, the scale benchmark and the tests all read through it.

mod caller;
pub mod cancel;
pub mod catalog;
pub mod changes;
mod error;
pub mod export;
pub mod golden;
pub mod history;
pub mod records;
pub mod search;
pub mod spatial;
mod view;

pub use caller::{Caller, Shape, Trace};
pub use cancel::Cancel;
pub use error::{QueryError, QueryResult};
pub use view::{SpatialSlot, View, Views, ViewsMemory};
