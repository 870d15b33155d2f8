//! Derived indexes over registry records.
//!
//! [`spatial`]: packed, immutable R-trees over points (citizens' and entities' locations) and
//! polygons (parcels), answering nearest, radius, box and containing queries with true
//! distances on the Earth. [`text`]: a tantivy full-text index with a Chinese-aware (CJK
//! bigram) analyzer, exact and date filters.
//!
//! The crate takes plain points, geometries, text and payloads from the service and never
//! sees the store or HTTP, so an index can always be rebuilt from the store, the source of
//! truth.

pub mod digits;
pub mod spatial;
pub mod text;

/// The first position in `0..n` where `below` is false (`below` true, then false): a binary
/// search over values read by position (a mapped run, a sorted list of byte strings).
pub(crate) fn partition_point(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}
