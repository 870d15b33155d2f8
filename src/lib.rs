//! jichu (基础): a master-data foundation database for a city's base registries.
//!
//! The service crate: the registries' [`model`], the RocksDB [`store`], bulk [`load`]ing of
//! department extracts (reading and validation live in `jichu-ingest`), the running
//! [`service`] with its published views, the [`query`] layer every read goes through, the
//! queue of [`loads`] inside a running server, the HTTP [`api`], and the data generator
//! ([`generator`]). See ARCHITECTURE.md for the map and its invariants.

pub mod access;
pub mod api;
pub mod backup;
pub mod bench;
pub mod client;
pub mod config;
pub mod error;
pub mod footprint;
pub mod generator;
pub mod golden;
pub mod load;
pub mod loads;
pub mod memory;
pub mod model;
pub mod query;
pub mod service;
pub mod spatial;
pub mod store;
pub mod text;

pub use error::{Error, Result};
