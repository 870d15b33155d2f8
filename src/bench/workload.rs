//! The mixed workload: a deterministic query file (JSON lines), and its execution in process
//! or over HTTP with a number of client threads.

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::generator;
use crate::model::Registry;
use crate::text::field_name;
use jichu_indexes::text::{Match, SearchQuery};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// One query of the workload file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// A citizen by identity number.
    Get(String),
    /// 100 citizens by identity number.
    Lookup(Vec<String>),
    /// Citizens by full name.
    Name(String),
    /// Citizens by address (a road, or a road and number).
    Address(String),
    /// The 10 citizens nearest a point.
    Knn([f64; 2]),
    /// How many citizens live within 500 m of a point.
    Radius([f64; 2]),
    /// The parcels containing a point.
    Containing([f64; 2]),
}

impl Query {
    pub fn kind(&self) -> &'static str {
        match self {
            Query::Get(_) => "id lookup",
            Query::Lookup(_) => "batch lookup (100 keys)",
            Query::Name(_) => "name search",
            Query::Address(_) => "address search",
            Query::Knn(_) => "kNN-10",
            Query::Radius(_) => "radius-500 m count",
            Query::Containing(_) => "containing point",
        }
    }
}

/// The query counts the issue names, scaled by `scale` (at least one of each).
pub fn counts(scale: f64) -> [(&'static str, usize); 7] {
    let n = |base: f64| ((base * scale).round() as usize).max(1);
    [
        ("get", n(100_000.0)),
        ("lookup", n(10_000.0)),
        ("name", n(10_000.0)),
        ("address", n(10_000.0)),
        ("knn", n(10_000.0)),
        ("radius", n(10_000.0)),
        ("containing", n(10_000.0)),
    ]
}

/// Ids for lookups: 90% of generated citizens `0..citizens`, 10% valid numbers beyond them.
fn some_id(rng: &mut SmallRng, citizens: u64) -> String {
    if rng.random_bool(0.9) {
        generator::citizen_id(rng.random_range(0..citizens))
    } else {
        generator::citizen_id(citizens + rng.random_range(0..citizens.max(1)))
    }
}

/// Writes the workload for a generated data set of `citizens` to `path`, grouped by kind.
pub fn write(path: &Path, citizens: u64, seed: u64, scale: f64) -> Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let file = std::fs::File::create(path).map_err(Error::io(path))?;
    let mut w = BufWriter::new(file);
    let [x0, y0, x1, y1] = generator::EXTENT;
    let roads = generator::roads();
    for (kind, n) in counts(scale) {
        for _ in 0..n {
            let mut point = || [rng.random_range(x0..x1), rng.random_range(y0..y1)];
            let q = match kind {
                "get" => Query::Get(some_id(&mut rng, citizens)),
                "lookup" => Query::Lookup((0..100).map(|_| some_id(&mut rng, citizens)).collect()),
                "name" => Query::Name(generator::citizen_name(seed, rng.random_range(0..citizens))),
                "address" => {
                    let road = roads[rng.random_range(0..roads.len())];
                    // Half by road, half by road and house number.
                    if rng.random_bool(0.5) {
                        Query::Address(road.to_string())
                    } else {
                        Query::Address(format!("{road}{}号", rng.random_range(1..400)))
                    }
                }
                "knn" => Query::Knn(point()),
                "radius" => Query::Radius(point()),
                _ => Query::Containing(point()),
            };
            serde_json::to_writer(&mut w, &q).map_err(|e| Error::Codec(e.to_string()))?;
            w.write_all(b"\n").map_err(Error::io(path))?;
        }
    }
    w.flush().map_err(Error::io(path))
}

/// Reads a workload file.
pub fn read(path: &Path) -> Result<Vec<Query>> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(i, line)| {
            let line = line.map_err(Error::io(path))?;
            serde_json::from_str(&line)
                .map_err(|e| Error::Invalid(format!("{}:{}: not a workload query: {e}", path.display(), i + 1)))
        })
        .collect()
}

fn text_query(field: &str, text: &str) -> SearchQuery {
    SearchQuery {
        matches: vec![Match { text: text.into(), fields: vec![field_name(Registry::Citizens, field)] }],
        limit: 20,
        // Counted as the API counts (`exact_total` not asked).
        count_limit: Some(crate::query::search::COUNT_LIMIT),
        ..SearchQuery::default()
    }
}

/// Runs one query in process, as a request would: from the current view, through the same
/// library calls the API handlers make (keys parsed, records fetched and decoded). Returns how
/// many things it found.
pub fn in_process(state: &AppState, q: &Query) -> Result<usize> {
    let schema = Registry::Citizens.schema();
    let view = state.view();
    let at = view.reader();
    Ok(match q {
        Query::Get(id) => {
            let key = schema.parse_key(id).map_err(Error::Invalid)?;
            at.get(Registry::Citizens, &key)?.is_some() as usize
        }
        Query::Lookup(ids) => {
            let keys: Vec<String> = ids.iter().filter_map(|id| schema.parse_key(id).ok()).collect();
            at.get_many(Registry::Citizens, &keys)?.iter().flatten().count()
        }
        Query::Name(text) | Query::Address(text) => {
            let field = if matches!(q, Query::Name(_)) { "name" } else { "address" };
            let hits = view.text.search(&text_query(field, text))?;
            let keys: Vec<String> = hits.hits.into_iter().map(|h| h.key).collect();
            at.get_many(Registry::Citizens, &keys)?.iter().flatten().count()
        }
        Query::Knn([lon, lat]) => {
            let spatial = view.spatial()?;
            let layer = &spatial.citizens;
            let hits = layer.index.nearest(*lon, *lat, 10, None);
            let keys: Vec<String> = hits.iter().map(|h| layer.key(h.id).to_string()).collect();
            std::hint::black_box(keys).len()
        }
        Query::Radius([lon, lat]) => view.spatial()?.citizens.index.count_within_radius(*lon, *lat, 500.0),
        Query::Containing([lon, lat]) => view.spatial()?.parcels.index.containing(*lon, *lat).len(),
    })
}

/// The HTTP request of a query: method, path and body.
pub fn http_request(q: &Query) -> (&'static str, String, Option<serde_json::Value>) {
    use serde_json::json;
    match q {
        Query::Get(id) => ("GET", format!("/v1/citizens/{id}"), None),
        Query::Lookup(ids) => ("POST", "/v1/citizens/lookup".into(), Some(json!({ "ids": ids }))),
        Query::Name(name) => ("POST", "/v1/citizens/search".into(), Some(json!({ "name": name }))),
        Query::Address(a) => ("POST", "/v1/citizens/search".into(), Some(json!({ "address": a }))),
        Query::Knn([lon, lat]) => ("POST", "/v1/citizens/near".into(), Some(json!({"lon": lon, "lat": lat, "k": 10}))),
        Query::Radius([lon, lat]) => (
            "POST",
            "/v1/citizens/near".into(),
            Some(json!({"lon": lon, "lat": lat, "radius_m": 500, "count_only": true})),
        ),
        Query::Containing([lon, lat]) => ("GET", format!("/v1/parcels/containing?lon={lon}&lat={lat}"), None),
    }
}

/// Latencies (ns) and wall time of running `queries` split over `threads` clients.
#[derive(Debug, Default)]
pub struct Timing {
    pub latencies_ns: Vec<u64>,
    pub wall_seconds: f64,
    pub errors: u64,
    /// Major page faults the whole process took meanwhile (reads from the disk).
    pub major_faults: u64,
}

/// Runs `queries` in process on `threads` threads (query i goes to thread i mod threads).
pub fn run_in_process(state: &AppState, queries: &[&Query], threads: usize) -> Timing {
    let started = Instant::now();
    let faults = crate::memory::major_faults();
    let parts: Vec<(Vec<u64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let (mut ns, mut errors) = (Vec::new(), 0);
                    for q in queries.iter().skip(t).step_by(threads) {
                        let at = Instant::now();
                        errors += in_process(state, q).is_err() as u64;
                        ns.push(at.elapsed().as_nanos() as u64);
                    }
                    (ns, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    collect(parts, started, faults)
}

fn collect(parts: Vec<(Vec<u64>, u64)>, started: Instant, faults: u64) -> Timing {
    let wall_seconds = started.elapsed().as_secs_f64();
    let major_faults = crate::memory::major_faults().saturating_sub(faults);
    let mut t = Timing { wall_seconds, major_faults, ..Timing::default() };
    for (ns, errors) in parts {
        t.latencies_ns.extend(ns);
        t.errors += errors;
    }
    t
}

/// Runs `queries` over HTTP against `base` (`http://addr`) with `threads` client threads,
/// each keeping `connections` keep-alive connections busy (one request in flight on each, as
/// `wrk -t threads -c threads×connections` does). A status other than 200 (or 404 for an
/// absent key) counts as an error.
/// An HTTP client that sends `headers` (a key, a purpose) with every request.
pub fn client(headers: &reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder().default_headers(headers.clone()).build().unwrap_or_default()
}

/// The headers of a caller: `Authorization: Bearer KEY` and `X-Purpose` (percent-encoded).
pub fn caller_headers(key: &str, purpose: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")) {
        h.insert(reqwest::header::AUTHORIZATION, v);
    }
    let encoded = percent_encoding::utf8_percent_encode(purpose, percent_encoding::NON_ALPHANUMERIC).to_string();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&encoded) {
        h.insert("x-purpose", v);
    }
    h
}

pub fn run_http(
    base: &str,
    queries: &[&Query],
    threads: usize,
    connections: usize,
    headers: &reqwest::header::HeaderMap,
) -> Timing {
    let started = Instant::now();
    let faults = crate::memory::major_faults();
    let lanes = threads * connections;
    let parts: Vec<(Vec<u64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return (Vec::new(), 1);
                    };
                    let client = client(headers);
                    let mut out = (Vec::new(), 0);
                    rt.block_on(async {
                        let mut lanes_of_thread = tokio::task::JoinSet::new();
                        for c in 0..connections {
                            let mine: Vec<Query> =
                                queries.iter().skip(t * connections + c).step_by(lanes).map(|q| (*q).clone()).collect();
                            lanes_of_thread.spawn(lane(client.clone(), base.to_string(), mine));
                        }
                        while let Some(done) = lanes_of_thread.join_next().await {
                            let (ns, errors) = done.unwrap_or_default();
                            out.0.extend(ns);
                            out.1 += errors;
                        }
                    });
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    collect(parts, started, faults)
}

/// Sends one query and reads its answer: whether it succeeded (a 200, or a 404 for an absent
/// key), and how long it took in nanoseconds.
pub async fn send(client: &reqwest::Client, base: &str, q: &Query) -> (bool, u64) {
    let (method, path, body) = http_request(q);
    let url = format!("{base}{path}");
    let at = Instant::now();
    let request = match (method, body) {
        ("GET", _) => client.get(url),
        (_, Some(b)) => client.post(url).json(&b),
        (_, None) => client.post(url),
    };
    let ok = match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            r.bytes().await.is_ok() && (status == 200 || (status == 404 && matches!(q, Query::Get(_))))
        }
        Err(_) => false,
    };
    (ok, at.elapsed().as_nanos() as u64)
}

/// One connection's share of the queries, one request at a time.
async fn lane(client: reqwest::Client, base: String, queries: Vec<Query>) -> (Vec<u64>, u64) {
    let (mut ns, mut errors) = (Vec::new(), 0);
    for q in &queries {
        let (ok, took) = send(&client, &base, q).await;
        ns.push(took);
        errors += (!ok) as u64;
    }
    (ns, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_file_is_deterministic_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        write(&a, 1000, 7, 0.01).unwrap();
        write(&b, 1000, 7, 0.01).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let queries = read(&a).unwrap();
        assert_eq!(queries.len(), counts(0.01).iter().map(|(_, n)| n).sum::<usize>());
        assert!(matches!(&queries[0], Query::Get(_)));
        for q in &queries {
            if let Query::Get(id) = q {
                assert!(crate::model::ids::parse_resident_id(id).is_ok(), "{id}");
            }
        }
    }
}
