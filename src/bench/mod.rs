//! `jichu bench`: the scale benchmark, one command from nothing to a report.
//!
//! It generates the five extracts (`jichu gen`) one at a time, each loaded as `jichu load` does
//! (store, then full-text index; timed per registry and per stage) and deleted before the next
//! is generated, so that a large run needs disk for one extract, not five; builds the spatial
//! index as `jichu serve` does; reopens cold (OS caches dropped when permitted) and times the first answer;
//! runs the mixed workload from a deterministic query file with 1 and 2 clients, in process
//! and over HTTP, then loads while serving; restarts after them (timing the first answer and
//! the spatial index again); and reports disk bytes per record, peak RSS and the machine, as
//! [`BenchReport`] (JSON) and a Markdown table.

pub mod live;
mod report;
pub mod sampler;
pub mod workload;

pub use report::{AccessCost, BenchReport, Cold, Disk, LoadTiming, Machine, QueryTiming, Restart, Totals};

use crate::api::AppState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generator::{self, GenOptions, LOAD_ORDER};
use crate::load::{Progress, load_indexed};
use crate::model::Registry;
use crate::spatial::SpatialIndex;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use workload::Query;

/// What `jichu bench` is asked to do.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub citizens: u64,
    pub seed: u64,
    /// A fresh folder for extracts, store and indexes.
    pub dir: PathBuf,
    /// Block cache, text writer memory… (the data directory is `dir/data`).
    pub config: Config,
    /// Scale of the workload's query counts (1.0: the counts the issue names).
    pub query_scale: f64,
    /// Client thread counts to run the workload with.
    pub clients: Vec<usize>,
    /// Also run the workload over HTTP (a server on 127.0.0.1:0 in this process).
    pub http: bool,
    /// Keep-alive connections each HTTP client thread keeps busy.
    pub connections: usize,
    /// Keep the generated extracts (otherwise deleted after loading, to save disk).
    pub keep_extracts: bool,
    /// Index each load after it from the store, as before loads fed the index as they wrote:
    /// the store's own rate is then measured apart (`LoadOptions::index_as_written`).
    pub index_after_load: bool,
    pub progress: bool,
    /// Drop the OS page cache before reopening (root only; the whole machine's cache).
    pub drop_caches: bool,
}

/// Asks the kernel to drop the page cache (root only); says what happened.
fn drop_caches() -> String {
    let _ = std::process::Command::new("sync").status();
    match std::fs::write("/proc/sys/vm/drop_caches", "3\n") {
        Ok(()) => "dropped (echo 3 > /proc/sys/vm/drop_caches)".into(),
        Err(e) => format!("not dropped ({e}): the reopen is warm, not cold"),
    }
}

/// Runs the benchmark.
pub fn run(o: &BenchOptions) -> Result<BenchReport> {
    let started = Instant::now();
    std::fs::create_dir_all(&o.dir).map_err(Error::io(&o.dir))?;
    let extracts = o.dir.join("extracts");
    let mut config = o.config.clone();
    config.data_dir = o.dir.join("data");
    if config.store_dir().exists() {
        return Err(Error::Invalid(format!("{} already holds a store: bench needs a fresh folder", o.dir.display())));
    }
    let mut report = BenchReport::new(o, Machine::detect(&o.dir));
    let sampler = sampler::Sampler::start(config.data_dir.join("text"), config.data_dir.join("spatial"));

    // 1–2. Generate each extract, load it as `jichu load` does (store, then full-text index)
    // and delete it: at most one registry's CSV is on disk at a time. Then the spatial index,
    // as `jichu serve` builds it.
    let generation = GenOptions { citizens: o.citizens, seed: o.seed };
    let store = Store::open(&config.store_dir(), &config.store_options())?;
    let mut spec = String::new();
    for name in LOAD_ORDER {
        sampler.stage(&format!("loading {name}"));
        let t = Instant::now();
        let bytes = generator::generate_one(&extracts, &generation, name)?;
        report.generate_seconds += t.elapsed().as_secs_f64();
        report.csv_bytes += bytes;
        tracing::info!(registry = name, seconds = t.elapsed().as_secs_f64(), bytes, "generated the extract");
        let spec_path = extracts.join(format!("{name}.toml"));
        if name == "citizens" {
            // The live part of the workload loads deltas with the citizens' spec.
            spec = std::fs::read_to_string(&spec_path).map_err(Error::io(&spec_path))?;
        }
        let parsed = jichu_ingest::Spec::from_path(&spec_path)?;
        let mut opts = config.load_options()?;
        if o.progress {
            opts.progress = Progress::auto();
        }
        opts.index_as_written = !o.index_after_load;
        let csv = [extracts.join(format!("{name}.csv"))];
        let (r, synced) = load_indexed(&store, &parsed, &spec_path, &csv, &opts, config.text_writer())?;
        let stage = |k: &str| r.stage_seconds.get(k).copied().unwrap_or(0.0);
        let timing = LoadTiming {
            registry: name.to_string(),
            rows: r.read,
            rejected: r.rejected,
            seconds: r.seconds,
            rows_per_second: r.rows_per_second,
            parse_validate_seconds: stage("read"),
            store_seconds: stage("merge_write") + stage("conflicts"),
            full_text_seconds: stage("text_index"),
            spatial_seconds: stage("spatial_index"),
            full_text: synced.mode,
        };
        tracing::info!(registry = name, rows = r.read, rows_per_second = r.rows_per_second, "loaded");
        report.loads.push(timing);
        report.memory.push(report::Memory::of_store(&format!("loading {name}"), &store));
        // The run's disk peak is here: the data directory with this extract still beside it.
        report.peak_disk_bytes = report.peak_disk_bytes.max(crate::footprint::dir_bytes(&o.dir));
        if !o.keep_extracts {
            std::fs::remove_file(&csv[0]).map_err(Error::io(&csv[0]))?;
        }
    }
    sampler.stage("building the spatial index");
    let t = Instant::now();
    drop(SpatialIndex::open(&store)?);
    report.spatial_seconds = t.elapsed().as_secs_f64();
    report.memory.push(report::Memory::of_store("building the spatial index", &store));
    report.finish_loads();
    drop(store);

    // 3. Reopen cold and time the first answer.
    sampler.stage("reopening");
    let callers = bench_access(&config)?;
    let (store, state, cold) = open_cold(&config, o)?;
    report.cold = cold;
    report.memory.push(report::Memory::of_service("reopening", &state.service));

    // 5 (before the workload fills caches further). Disk.
    report.disk = Disk::new(crate::footprint::Footprint::measure(&store), report.csv_bytes);

    // 4. The workload.
    let queries_path = o.dir.join("queries.jsonl");
    workload::write(&queries_path, o.citizens, o.seed, o.query_scale)?;
    let queries = workload::read(&queries_path)?;
    report.query_file = queries_path.display().to_string();
    run_workload(&state, &queries, o, &spec, &callers, &sampler, &mut report)?;

    report.memory.push(report::Memory::of_service("loads while serving (the end)", &state.service));
    // The sampler stops first: a sample taken after the high-water mark was read could pass it.
    let peak = sampler.finish();
    // VmHWM can lag a sample: in one CI run the sampled resident set passed it (478 MB), the
    // kernel's high-water mark not having seen pages an allocator gave back since. The peak
    // is the higher of the two.
    report.peak_rss_bytes = report::peak_rss_bytes().max(peak.rss_bytes);
    report.peak = Some(peak);

    // 6. A restart after the loads while serving: the spatial layers they changed are mapped
    // from their files with those loads applied, not rebuilt.
    let mut closed = close(store, state);
    if report.live.is_some() {
        let restart = closed.and_then(|()| {
            let (store, state, cold) = open_cold(&config, o)?;
            report.memory.push(report::Memory::of_service("a restart after loads while serving", &state.service));
            let applied = state.view().spatial()?.applied_at_open;
            close(store, state)?;
            Ok(report::Restart { cold, applied })
        });
        closed = restart.map(|r| report.restart = Some(r));
    }
    // The report so far is worth more than these last steps.
    if let Err(e) = closed {
        tracing::warn!(error = %e, "closing the service, or the restart after the loads while serving, failed");
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Opens the store and a service over it as `jichu serve` does, the page cache dropped first
/// when asked; times the first answer and the spatial index.
fn open_cold(config: &Config, o: &BenchOptions) -> Result<(Arc<Store>, AppState, Cold)> {
    let caches = if o.drop_caches { drop_caches() } else { "kept (not asked to drop)".into() };
    let t = Instant::now();
    let store = Arc::new(Store::open(&config.store_dir(), &config.store_options())?);
    let state = AppState::new(store.clone(), config.clone())?;
    let first = generator::citizen_id(0);
    let answered = state.view().reader().get(Registry::Citizens, &first)?.is_some();
    let first_answer = t.elapsed().as_secs_f64();
    state.view().spatial()?;
    let cold = Cold {
        caches,
        seconds_to_first_answer: first_answer,
        first_answer_found: answered,
        seconds_to_spatial_index: t.elapsed().as_secs_f64(),
    };
    Ok((store, state, cold))
}

/// Stops the service as a stopping server does (its load queue, then its audit trail), and
/// waits (half an hour at most) until `store` is the last handle on the store, then closes
/// it: so that it can be opened again, and no thread still uses RocksDB when the process
/// exits (a load queue's worker left running aborted the exit). A fold of the spatial index
/// still running lets go of it from its thread.
fn close(store: Arc<Store>, state: AppState) -> Result<()> {
    state.loads.shutdown();
    if let Some(audit) = &state.audit {
        audit.close();
    }
    drop(state);
    let mut store = store;
    for _ in 0..18_000 {
        match Arc::try_unwrap(store) {
            Ok(s) => {
                drop(s);
                return Ok(());
            }
            Err(s) => store = s,
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(Error::Internal("the store was still held half an hour after the server stopped".into()))
}

/// Every query kind, with each client count, in process then over HTTP.
fn run_workload(
    state: &AppState,
    queries: &[Query],
    o: &BenchOptions,
    citizens_spec: &str,
    callers: &live::Callers,
    sampler: &sampler::Sampler,
    report: &mut BenchReport,
) -> Result<()> {
    let mut kinds: Vec<&str> = queries.iter().map(Query::kind).collect();
    kinds.dedup();
    let by_kind: Vec<(&str, Vec<&Query>)> =
        kinds.iter().map(|k| (*k, queries.iter().filter(|q| q.kind() == *k).collect())).collect();
    sampler.stage("the workload");
    // One untimed pass first: the measured passes see the caches a running service has.
    let t = Instant::now();
    let all: Vec<&Query> = queries.iter().collect();
    workload::run_in_process(state, &all, 2);
    report.warm_up_seconds = t.elapsed().as_secs_f64();
    for &clients in &o.clients {
        for (kind, qs) in &by_kind {
            let t = workload::run_in_process(state, qs, clients);
            report.queries.push(QueryTiming::new(kind, "in process", clients, t));
        }
    }
    if !o.http {
        return Ok(());
    }
    // A server in this process, on its own runtime, as `jichu serve` runs it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| Error::Internal(format!("binding 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(crate::api::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    for &clients in &o.clients {
        for (kind, qs) in &by_kind {
            let t = workload::run_http(&base, qs, clients, o.connections, &callers.reader);
            let mode = format!("HTTP, {} connections", clients * o.connections);
            report.queries.push(QueryTiming::new(kind, &mode, clients, t));
        }
    }
    // What access control and the audit cost: id lookups with a department's key and purpose
    // (grants checked, personal reads audited) against the same service without them, A/B/A.
    if let Some((_, lookups)) = by_kind.iter().find(|(k, _)| *k == "id lookup") {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| Error::Internal(format!("binding 127.0.0.1:0: {e}")))?;
        let open_base = format!("http://{}", listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?);
        let (open_stop, open_stopped) = tokio::sync::oneshot::channel::<()>();
        let open = runtime.spawn(crate::api::serve(listener, state.without_access(), async move {
            let _ = open_stopped.await;
        }));
        let none = reqwest::header::HeaderMap::new();
        let rate = |t: workload::Timing| QueryTiming::new("id lookup", "HTTP, 32 connections", 2, t).per_second;
        let with_a = rate(workload::run_http(&base, lookups, 2, o.connections, &callers.reader));
        let without = rate(workload::run_http(&open_base, lookups, 2, o.connections, &none));
        let with_b = rate(workload::run_http(&base, lookups, 2, o.connections, &callers.reader));
        let _ = open_stop.send(());
        let _ = runtime.block_on(open);
        let lags = state.audit.as_ref().map(|a| a.lags()).unwrap_or_default();
        report.access = Some(AccessCost::new(with_a, without, with_b, lags));
    }
    report.memory.push(report::Memory::of_service("the workload, before loads while serving", &state.service));
    // Loads while serving: a delta submitted with readers running.
    report.live =
        Some(live::run(state, &runtime, &base, callers, sampler, o.citizens, o.seed, citizens_spec, queries)?);
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    Ok(())
}

/// The benchmark's callers, written to a fresh access file: a department that reads citizens
/// and parcels in full for a declared purpose, and an administrator (loads).
fn bench_access(config: &Config) -> Result<live::Callers> {
    let path = config.access_file();
    let text = "[[department]]\nname = \"基准测试\"\nrole = \"department\"\npurposes = [\"性能测试\"]\n\
        [department.registries.citizens]\noperations = [\"get\", \"lookup\", \"search\", \"spatial\"]\n\
        fields = { id = \"full\", name = \"full\", gender = \"full\", ethnicity = \"full\", birth_date = \"full\", household_address = \"full\", address = \"full\", phone = \"full\", location = \"full\" }\n\
        [department.registries.parcels]\noperations = [\"spatial\"]\n\
        fields = { id = \"full\", land_use = \"full\", area_m2 = \"full\", address = \"full\", geometry = \"full\" }\n\
        [[department]]\nname = \"基准管理\"\nrole = \"admin\"\npurposes = [\"运维\"]\n";
    std::fs::create_dir_all(&config.data_dir).map_err(Error::io(&config.data_dir))?;
    std::fs::write(&path, text).map_err(Error::io(&path))?;
    let (_, reader) = crate::access::keys::add(&path, "基准测试", crate::access::Role::Department)?;
    let (_, admin) = crate::access::keys::add(&path, "基准管理", crate::access::Role::Admin)?;
    Ok(live::Callers {
        reader: workload::caller_headers(&reader, "性能测试"),
        admin: workload::caller_headers(&admin, "运维"),
    })
}
