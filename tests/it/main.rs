//! Integration tests: real RocksDB in temporary folders, real HTTP on 127.0.0.1:0.

mod access;
mod api;
mod backup;
mod bench;
mod changes;
mod common;
mod crash;
mod disk;
mod export;
mod extracts;
mod fuzz;
mod golden;
mod hardening;
mod history;
mod live;
mod load;
mod openapi;
mod search;
mod spatial;
mod store;
