//! The "load while serving" phase of `jichu bench`: the server answers id lookups, name
//! searches and kNN queries from two client threads while a delta of 1% changed and 1% new
//! citizens is submitted through `POST /v1/loads`; a delta of the same size loaded offline
//! (what `jichu load` runs: store, then full-text index) is the baseline. Also the time from a
//! load's last written row to its publication, for a 1,000-row delta and a large one.

use super::report::QueryTiming;
use super::workload::{Query, Timing};
use crate::api::AppState;
use crate::error::{Error, Result};
use crate::generator;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the phase measured.
#[derive(Debug, Default, Serialize)]
pub struct LiveReport {
    pub delta_rows: u64,
    /// The same-sized delta loaded with no reader running: written, then published (store,
    /// full-text and spatial indexes), in this process.
    pub offline_seconds: f64,
    pub offline_rows_per_second: f64,
    /// The delta submitted while serving: from submission to publication.
    pub live_seconds: f64,
    pub live_rows_per_second: f64,
    /// From the live load's last written row to its publication.
    pub live_publish_seconds: f64,
    /// Readers with no load running (for as long as the live load ran) and during it.
    pub idle: Vec<QueryTiming>,
    pub during: Vec<QueryTiming>,
    /// A 1,000-row delta: from its last row to publication, and from submission.
    pub small_publish_seconds: f64,
    pub small_seconds: f64,
    /// A large delta (1M rows from 5M citizens up; 10% of the citizens below).
    pub large_rows: u64,
    pub large_seconds: f64,
    pub large_publish_seconds: f64,
    /// The last delta's rows (changed citizens), loaded once any fold was done.
    pub last_rows: u64,
}

/// The readers' mix: id lookups (90% present) interleaved 8 : 1 : 1 with name searches and
/// kNN-10.
fn mix(queries: &[Query]) -> Vec<Query> {
    let gets: Vec<&Query> = queries.iter().filter(|q| matches!(q, Query::Get(_))).collect();
    let names = queries.iter().filter(|q| matches!(q, Query::Name(_)));
    let knn = queries.iter().filter(|q| matches!(q, Query::Knn(_)));
    let mut out = Vec::new();
    let mut g = gets.iter().cycle();
    for (a, b) in names.zip(knn) {
        out.extend(g.by_ref().take(8).map(|q| (*q).clone()));
        out.push(a.clone());
        out.push(b.clone());
    }
    out
}

type Sample = (&'static str, u64, bool);

/// One connection: cycles through its queries until `stop`.
async fn lane(client: reqwest::Client, base: String, queries: Vec<Query>, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut out = Vec::new();
    if queries.is_empty() {
        return out;
    }
    for q in queries.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (ok, took) = super::workload::send(&client, &base, q).await;
        out.push((q.kind(), took, ok));
    }
    out
}

/// Runs the mix over HTTP from `threads` threads keeping `connections` busy each, until
/// `stop` is set; latencies by kind.
fn hammer(
    base: &str,
    queries: &[Query],
    threads: usize,
    connections: usize,
    headers: &reqwest::header::HeaderMap,
    stop: &Arc<AtomicBool>,
) -> Vec<(&'static str, Timing)> {
    let started = Instant::now();
    let lanes = threads * connections;
    let samples: Vec<Vec<Sample>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return Vec::new();
                    };
                    let client = super::workload::client(headers);
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for c in 0..connections {
                            let mine: Vec<Query> =
                                queries.iter().skip(t * connections + c).step_by(lanes).cloned().collect();
                            set.spawn(lane(client.clone(), base.to_string(), mine, stop.clone()));
                        }
                        let mut all = Vec::new();
                        while let Some(done) = set.join_next().await {
                            all.extend(done.unwrap_or_default());
                        }
                        all
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut kinds: Vec<(&'static str, Timing)> = Vec::new();
    for (kind, ns, ok) in samples.into_iter().flatten() {
        let i = match kinds.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                kinds.push((kind, Timing { wall_seconds, ..Timing::default() }));
                kinds.len() - 1
            }
        };
        kinds[i].1.latencies_ns.push(ns);
        kinds[i].1.errors += (!ok) as u64;
    }
    kinds
}

fn timings(kinds: Vec<(&'static str, Timing)>, mode: &str) -> Vec<QueryTiming> {
    kinds.into_iter().map(|(kind, t)| QueryTiming::new(kind, mode, 2, t)).collect()
}

/// Submits a file of the import folder by path and waits for its publication; its status.
fn submit(
    rt: &tokio::runtime::Runtime,
    base: &str,
    admin: &reqwest::header::HeaderMap,
    spec: &str,
    file: &str,
) -> Result<serde_json::Value> {
    let client = super::workload::client(admin);
    let err = |e: reqwest::Error| Error::Remote(format!("live load: {e}"));
    rt.block_on(async {
        let r = client
            .post(format!("{base}/v1/loads"))
            .json(&serde_json::json!({"spec": spec, "files": [file]}))
            .send()
            .await
            .map_err(err)?;
        let body: serde_json::Value = r.json().await.map_err(err)?;
        let id = body["load_id"].as_u64().ok_or_else(|| Error::Remote(format!("live load not queued: {body}")))?;
        loop {
            let status: serde_json::Value =
                client.get(format!("{base}/v1/loads/{id}")).send().await.map_err(err)?.json().await.map_err(err)?;
            match status["status"].as_str() {
                Some("published") => return Ok(status),
                Some("failed" | "cancelled") => return Err(Error::Remote(format!("live load ended: {status}"))),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
}

/// Who the phase is: readers' headers (a department's key and purpose) and an
/// administrator's (loads).
#[derive(Debug)]
pub struct Callers {
    pub reader: reqwest::header::HeaderMap,
    pub admin: reqwest::header::HeaderMap,
}

/// Runs the phase against the server at `base` (in this process, over `state`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    state: &AppState,
    rt: &tokio::runtime::Runtime,
    base: &str,
    callers: &Callers,
    sampler: &super::sampler::Sampler,
    citizens: u64,
    seed: u64,
    spec: &str,
    queries: &[Query],
) -> Result<LiveReport> {
    let import = state.config.import_dir();
    std::fs::create_dir_all(&import).map_err(Error::io(&import))?;
    let part = (citizens / 100).max(1);
    let mut report = LiveReport { delta_rows: 2 * part, ..LiveReport::default() };
    let delta = |name: &str, round: u64, changed: u64, first_new: u64, new: u64| -> Result<()> {
        generator::citizens_delta(&import.join(name), citizens, seed, round, changed, first_new, new).map(|_| ())
    };

    // Offline: the same-sized delta with no reader running, written (as `jichu load` writes)
    // and published (every index in step).
    sampler.stage("loads while serving: a delta with no reader");
    delta("offline.csv", 1, part, citizens, part)?;
    let spec_path = import.join("citizens.toml");
    std::fs::write(&spec_path, spec).map_err(Error::io(&spec_path))?;
    let parsed = jichu_ingest::Spec::parse(spec).map_err(Error::Invalid)?;
    let opts = state.config.load_options()?;
    let t = Instant::now();
    let r = crate::load::load(&state.service.store, &parsed, &spec_path, &[import.join("offline.csv")], &opts)?;
    state.service.publish()?;
    report.offline_seconds = t.elapsed().as_secs_f64();
    report.offline_rows_per_second = r.read as f64 / report.offline_seconds.max(1e-9);

    // Live: readers run; the delta is submitted; readers stop at its publication.
    sampler.stage("loads while serving: a delta with readers");
    delta("live.csv", 2, part, citizens + part, part)?;
    let readers = mix(queries);
    let stop = Arc::new(AtomicBool::new(false));
    let (during, live) = std::thread::scope(|s| {
        let h = s.spawn(|| hammer(base, &readers, 2, 16, &callers.reader, &stop));
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let status = submit(rt, base, &callers.admin, spec, "live.csv");
        let seconds = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (h.join().unwrap_or_default(), status.map(|s| (s, seconds)))
    });
    let (status, seconds) = live?;
    report.live_seconds = seconds;
    report.live_rows_per_second = report.delta_rows as f64 / seconds.max(1e-9);
    report.live_publish_seconds = status["publish_seconds"].as_f64().unwrap_or(0.0);
    report.during = timings(during, "HTTP, 32 connections, during the load");
    // Idle, for as long as the live load ran.
    sampler.stage("loads while serving: readers, no load");
    let stop = Arc::new(AtomicBool::new(false));
    let idle = std::thread::scope(|s| {
        let h = s.spawn(|| hammer(base, &readers, 2, 16, &callers.reader, &stop));
        std::thread::sleep(Duration::from_secs_f64(seconds + 1.0));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    });
    report.idle = timings(idle, "HTTP, 32 connections, idle");

    // A 1,000-row delta and a large one: last row to publication.
    sampler.stage("loads while serving: a small and a large delta");
    delta("small.csv", 3, 1000, 0, 0)?;
    let t = Instant::now();
    let status = submit(rt, base, &callers.admin, spec, "small.csv")?;
    report.small_seconds = t.elapsed().as_secs_f64();
    report.small_publish_seconds = status["publish_seconds"].as_f64().unwrap_or(0.0);
    let large = if citizens >= 5_000_000 { 500_000 } else { (citizens / 20).max(1) };
    delta("large.csv", 4, large, citizens + 2 * part, large)?;
    let t = Instant::now();
    let status = submit(rt, base, &callers.admin, spec, "large.csv")?;
    report.large_rows = 2 * large;
    report.large_seconds = t.elapsed().as_secs_f64();
    report.large_publish_seconds = status["publish_seconds"].as_f64().unwrap_or(0.0);

    // Once a fold the deltas called for is published, a last delta (0.5% of the citizens
    // changed, below the fold threshold): the server stops with the citizens' layer changed
    // since its file, as a server that loads daily does, and the restart after this phase
    // finds it so.
    sampler.stage("loads while serving: a last delta before the restart");
    let waited = Instant::now();
    while state.service.folding() && waited.elapsed() < Duration::from_secs(1800) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = (citizens / 200).max(1);
    delta("last.csv", 5, last, 0, 0)?;
    submit(rt, base, &callers.admin, spec, "last.csv")?;
    report.last_rows = last;
    for f in ["offline.csv", "live.csv", "small.csv", "large.csv", "last.csv", "citizens.toml"] {
        let _ = std::fs::remove_file(import.join(f));
    }
    Ok(report)
}

/// The phase as Markdown.
pub fn markdown(r: &LiveReport, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "\n#### Loads while serving\n");
    let _ = writeln!(
        out,
        "A delta of {} citizens (1% changed, 1% new): with no reader running (written as `jichu load` writes, then published) {:.1} s, {:.0} rows/s; \
         submitted to the running server with readers on it, submission to publication {:.1} s, {:.0} rows/s ({:.0}% of offline); \
         last row written to publication {:.2} s.",
        r.delta_rows,
        r.offline_seconds,
        r.offline_rows_per_second,
        r.live_seconds,
        r.live_rows_per_second,
        100.0 * r.live_rows_per_second / r.offline_rows_per_second.max(1e-9),
        r.live_publish_seconds
    );
    let _ = writeln!(
        out,
        "A 1,000-row delta: published {:.2} s after its last row ({:.2} s from submission). A {}-row delta: {:.1} s from submission, published {:.2} s after its last row.\n",
        r.small_publish_seconds, r.small_seconds, r.large_rows, r.large_seconds, r.large_publish_seconds
    );
    let _ = writeln!(out, "| query | readers | queries | errors | per second | p50 ms | p99 ms | p99.9 ms |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for q in r.idle.iter().chain(&r.during) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} |",
            q.kind, q.mode, q.queries, q.errors, q.per_second, q.p50_ms, q.p99_ms, q.p999_ms
        );
    }
}
