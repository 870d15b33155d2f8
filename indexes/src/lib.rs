//! Derived indexes over registry records: full-text (tantivy) and spatial (R-tree).
//!
//! Empty for now: the full-text and spatial issues fill it. Its contract is fixed already —
//! it takes plain documents and points from the service and never sees the store or HTTP, so
//! an index can always be rebuilt from the store, which stays the source of truth.
