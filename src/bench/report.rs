//! The benchmark's report: JSON for machines, a Markdown table for people.

use super::BenchOptions;
use super::workload::Timing;
use crate::memory::proc_kib;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_bytes: u64,
    /// `df` of the benchmark folder: device, size, available.
    pub disk: String,
    pub os: String,
    /// The kernel's transparent huge page mode (`always`, `madvise`, `never`), and whether
    /// this process turned them off (`memory::set_transparent_huge_pages`).
    pub huge_pages: String,
}

impl Machine {
    pub fn detect(dir: &Path) -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let disk = std::process::Command::new("df")
            .args(["-h", "--output=source,fstype,size,avail"])
            .arg(dir)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")))
            .unwrap_or_default();
        let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_default();
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .ok()
            .and_then(|s| Some(s.split_once('[')?.1.split_once(']')?.0.to_string()))
            .unwrap_or_else(|| "unknown".into());
        let off = if crate::memory::transparent_huge_pages_disabled() { ", off for this process" } else { "" };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_bytes: proc_kib("/proc/meminfo", "MemTotal:"),
            disk,
            os,
            huge_pages: format!("{mode}{off}"),
        }
    }
}

/// One registry's load, as `jichu load` runs it.
#[derive(Debug, Default, Serialize)]
pub struct LoadTiming {
    pub registry: String,
    pub rows: u64,
    pub rejected: u64,
    /// Store and full-text index together.
    pub seconds: f64,
    pub rows_per_second: f64,
    pub parse_validate_seconds: f64,
    pub store_seconds: f64,
    pub full_text_seconds: f64,
    /// Saving the spatial point layer the load fed as it wrote (0 when it fed none).
    pub spatial_seconds: f64,
    /// How the full-text index took the load (`TextLayer::sync`'s modes): `fed` when the
    /// load fed it as it wrote, its documents made in the store's seconds.
    pub full_text: &'static str,
}

impl LoadTiming {
    /// Rows per second of the load into the store alone (parse, validate, sort, write), the
    /// rate a load would have without the full-text index; None when the load fed the index
    /// as it wrote (`jichu bench --index-after-load` measures it).
    pub fn store_only_rows_per_second(&self) -> Option<f64> {
        (!self.fed()).then(|| self.rows as f64 / (self.parse_validate_seconds + self.store_seconds).max(1e-9))
    }

    /// Whether the load fed the full-text index as it wrote.
    pub fn fed(&self) -> bool {
        self.full_text == "fed"
    }
}

/// All loads and the spatial index: the shares of time per stage.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub records: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    /// Records per second into the store alone (parse, validate, sort, write); None when a
    /// load fed the full-text index as it wrote.
    pub store_only_records_per_second: Option<f64>,
    pub parse_validate_share: f64,
    pub store_share: f64,
    pub full_text_share: f64,
    pub spatial_share: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Cold {
    /// Whether the OS page cache was dropped before reopening.
    pub caches: String,
    /// Open the store, bring the indexes in step, answer one lookup.
    pub seconds_to_first_answer: f64,
    pub first_answer_found: bool,
    /// From the same start until the spatial index (read or built in the background) is there.
    pub seconds_to_spatial_index: f64,
}

/// A start after the loads while serving, which left spatial layers older than the store.
#[derive(Debug, Default, Serialize)]
pub struct Restart {
    pub cold: Cold,
    /// Keys of those loads applied over the mapped layer files at the start.
    pub applied: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Disk {
    pub records: u64,
    pub store_bytes: u64,
    pub full_text_bytes: u64,
    pub spatial_bytes: u64,
    pub bytes_per_record: f64,
    /// All of it against the extracts' CSV bytes.
    pub csv_ratio: f64,
    /// Each part (every column family, the full-text and spatial indexes), largest first.
    pub parts: Vec<crate::footprint::Part>,
    /// The full-text index field by field.
    pub full_text_fields: Vec<crate::footprint::TextFieldPart>,
    pub full_text_segments: crate::footprint::TextSegments,
}

impl Disk {
    pub fn new(f: crate::footprint::Footprint, csv: u64) -> Disk {
        Disk {
            records: f.records,
            store_bytes: f.store_bytes,
            full_text_bytes: f.full_text_bytes,
            spatial_bytes: f.spatial_bytes,
            bytes_per_record: f.bytes_per_record,
            csv_ratio: f.total_bytes as f64 / csv.max(1) as f64,
            parts: f.parts,
            full_text_fields: f.full_text_fields,
            full_text_segments: f.full_text_segments,
        }
    }
}

/// One query kind run one way.
#[derive(Debug, Default, Serialize)]
pub struct QueryTiming {
    pub kind: String,
    pub mode: String,
    pub clients: usize,
    pub queries: usize,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Major page faults (reads from the disk) of the whole process a query, meanwhile: what
    /// a high p99 of a store or index larger than the page cache waits for.
    pub major_faults_per_query: f64,
}

impl QueryTiming {
    pub fn new(kind: &str, mode: &str, clients: usize, mut t: Timing) -> QueryTiming {
        t.latencies_ns.sort_unstable();
        let n = t.latencies_ns.len();
        let p = |q: f64| {
            if n == 0 { 0.0 } else { t.latencies_ns[((n as f64 * q) as usize).min(n - 1)] as f64 / 1e6 }
        };
        QueryTiming {
            kind: kind.into(),
            mode: mode.into(),
            clients,
            queries: n,
            errors: t.errors,
            per_second: n as f64 / t.wall_seconds.max(1e-9),
            p50_ms: p(0.5),
            p99_ms: p(0.99),
            p999_ms: p(0.999),
            major_faults_per_query: t.major_faults as f64 / n.max(1) as f64,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub date: String,
    pub citizens: u64,
    pub seed: u64,
    pub machine: Machine,
    pub generate_seconds: f64,
    pub csv_bytes: u64,
    /// The most the run's folder held (data directory and extracts), measured after each load.
    pub peak_disk_bytes: u64,
    pub keep_extracts: bool,
    pub loads: Vec<LoadTiming>,
    /// Opening the spatial index after the loads, as `jichu serve` does: mapping the layers
    /// the loads fed, building the others from the store.
    pub spatial_seconds: f64,
    pub totals: Totals,
    pub cold: Cold,
    pub disk: Disk,
    pub query_file: String,
    /// One untimed pass of the whole workload after the cold start, in process.
    pub warm_up_seconds: f64,
    pub queries: Vec<QueryTiming>,
    /// What access control and the audit trail cost id lookups over HTTP.
    pub access: Option<AccessCost>,
    /// Loads submitted to the running server while it answers (with the HTTP workload).
    pub live: Option<super::live::LiveReport>,
    /// A restart after the loads while serving.
    pub restart: Option<Restart>,
    /// Peak RSS before the restart: VmHWM, or the highest sample when it passed VmHWM
    /// (`time -v` sees the whole process).
    pub peak_rss_bytes: u64,
    /// The highest resident set sampled before the restart, and what it was made of.
    pub peak: Option<super::sampler::Peak>,
    /// Resident memory after each stage.
    pub memory: Vec<Memory>,
    pub total_seconds: f64,
}

/// Id lookups over HTTP (2 client threads × 16 connections) with a department's key and
/// purpose — grants checked, personal reads audited — and without access control, A/B/A.
#[derive(Debug, Default, Serialize)]
pub struct AccessCost {
    pub with_access_per_second: f64,
    pub without_access_per_second: f64,
    /// With against without (the mean of the two runs with).
    pub ratio: f64,
    pub audit_entries: usize,
    pub audit_lag_p50_seconds: f64,
    pub audit_lag_p99_seconds: f64,
}

impl AccessCost {
    pub fn new(with_a: f64, without: f64, with_b: f64, mut lags: Vec<f64>) -> AccessCost {
        lags.sort_by(f64::total_cmp);
        let p =
            |q: f64| if lags.is_empty() { 0.0 } else { lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)] };
        let with = (with_a + with_b) / 2.0;
        AccessCost {
            with_access_per_second: with,
            without_access_per_second: without,
            ratio: with / without.max(1e-9),
            audit_entries: lags.len(),
            audit_lag_p50_seconds: p(0.5),
            audit_lag_p99_seconds: p(0.99),
        }
    }
}

/// The process's peak resident set (VmHWM).
pub fn peak_rss_bytes() -> u64 {
    crate::memory::peak_resident()
}

/// Resident memory at one point of the run: where memory that grows with N shows first.
#[derive(Debug, Default, Serialize)]
pub struct Memory {
    pub after: String,
    /// Resident now: anonymous (heap) and file-backed (mapped index files, which the kernel
    /// may drop) apart.
    pub anonymous_bytes: u64,
    pub file_bytes: u64,
    /// Of the file-backed, the spatial layers' pages (served from their files).
    pub spatial_file_bytes: u64,
    /// The peak so far (VmHWM).
    pub peak_bytes: u64,
    /// What of the heap RocksDB holds (block cache, memtables).
    pub store: crate::store::StoreMemory,
    /// The current view's spatial index, and the superseded views kept for search cursors
    /// (which hold none); zero before the service opens.
    pub spatial_bytes: u64,
    pub retained_views: usize,
}

impl Memory {
    /// The process's memory while only the store is open (the loads).
    pub fn of_store(after: &str, store: &crate::store::Store) -> Memory {
        let resident = crate::memory::resident();
        Memory {
            after: after.into(),
            anonymous_bytes: resident.anonymous,
            file_bytes: resident.file,
            spatial_file_bytes: crate::memory::resident_under(&crate::spatial::SpatialIndex::dir_of(store)),
            peak_bytes: peak_rss_bytes(),
            store: store.memory(),
            ..Memory::default()
        }
    }

    /// The process's memory while the service runs.
    pub fn of_service(after: &str, service: &crate::service::Service) -> Memory {
        let views = service.views.memory();
        Memory {
            spatial_bytes: views.spatial_bytes as u64,
            retained_views: views.retained,
            ..Memory::of_store(after, &service.store)
        }
    }
}

impl BenchReport {
    pub fn new(o: &BenchOptions, machine: Machine) -> BenchReport {
        BenchReport {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            citizens: o.citizens,
            seed: o.seed,
            machine,
            keep_extracts: o.keep_extracts,
            ..BenchReport::default()
        }
    }

    /// Totals and shares once every load and the spatial build are timed.
    pub fn finish_loads(&mut self) {
        let sum = |f: fn(&LoadTiming) -> f64| self.loads.iter().map(f).sum::<f64>();
        let seconds = sum(|l| l.seconds) + self.spatial_seconds;
        let spatial = sum(|l| l.spatial_seconds) + self.spatial_seconds;
        let records = self.loads.iter().map(|l| l.rows).sum();
        let share = |s: f64| s / seconds.max(1e-9);
        self.totals = Totals {
            records,
            seconds,
            records_per_second: records as f64 / seconds.max(1e-9),
            store_only_records_per_second: self
                .loads
                .iter()
                .all(|l| !l.fed())
                .then(|| records as f64 / sum(|l| l.parse_validate_seconds + l.store_seconds).max(1e-9)),
            parse_validate_share: share(sum(|l| l.parse_validate_seconds)),
            store_share: share(sum(|l| l.store_seconds)),
            full_text_share: share(sum(|l| l.full_text_seconds)),
            spatial_share: share(spatial),
        };
    }

    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let m = &self.machine;
        let _ = writeln!(
            s,
            "### jichu bench: {} citizens, seed {} ({})\n\nMachine: {} cores ({}), {:.1} GiB memory, disk {}, {}, \
                 transparent huge pages {}.\n",
            self.citizens,
            self.seed,
            self.date,
            m.cores,
            m.cpu,
            gib(m.memory_bytes),
            m.disk,
            m.os,
            m.huge_pages
        );
        let _ = writeln!(
            s,
            "Generated {:.2} GB of CSV in {:.1} s, one extract at a time, each deleted once loaded{}; \
                 the folder's peak: {:.2} GB.\n",
            self.csv_bytes as f64 / 1e9,
            self.generate_seconds,
            if self.keep_extracts { " (kept: --keep-extracts)" } else { "" },
            self.peak_disk_bytes as f64 / 1e9
        );
        let _ = writeln!(
            s,
            "| load | rows | rejected | seconds | rows/s (all indexes) | rows/s (store only) | parse+validate s | store s | full-text s | spatial s | full-text |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        let rate = |r: Option<f64>| r.map_or_else(|| "—".to_string(), |r| format!("{r:.0}"));
        for l in &self.loads {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                l.registry,
                l.rows,
                l.rejected,
                l.seconds,
                l.rows_per_second,
                rate(l.store_only_rows_per_second()),
                l.parse_validate_seconds,
                l.store_seconds,
                l.full_text_seconds,
                l.spatial_seconds,
                l.full_text
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            s,
            "| **all, with the spatial index (opened in {:.1} s)** | {} | | {:.1} | **{:.0}** | {} | {:.0}% | {:.0}% | {:.0}% | {:.0}% | |\n",
            self.spatial_seconds,
            t.records,
            t.seconds,
            t.records_per_second,
            rate(t.store_only_records_per_second),
            t.parse_validate_share * 100.0,
            t.store_share * 100.0,
            t.full_text_share * 100.0,
            t.spatial_share * 100.0
        );
        if self.loads.iter().any(LoadTiming::fed) {
            let _ = writeln!(
                s,
                "A load marked `fed` made its full-text documents, and its spatial layer's points (citizens, entities), as it wrote its \
                 records (store s holds them; full-text s is the index's commit, spatial s the writing of the layer's file): \
                 its store-only rate is not measured apart (`jichu bench --index-after-load` does).\n"
            );
        }
        let d = &self.disk;
        let _ = writeln!(
            s,
            "Disk: {:.1} bytes/record ({:.2} GiB store, {:.2} GiB full-text, {:.2} GiB spatial) = {:.2} × the CSV. \
             Peak RSS {:.2} GiB. Cold start to the first answer: {:.2} s, to the spatial index: {:.2} s (page cache {}).\n",
            d.bytes_per_record,
            gib(d.store_bytes),
            gib(d.full_text_bytes),
            gib(d.spatial_bytes),
            d.csv_ratio,
            gib(self.peak_rss_bytes),
            self.cold.seconds_to_first_answer,
            self.cold.seconds_to_spatial_index,
            self.cold.caches
        );
        let _ = writeln!(
            s,
            "| resident after | heap GiB | of which block cache | memtables | spatial indexes | views kept | mapped files GiB | of which spatial | peak so far GiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for m in &self.memory {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.2} |",
                m.after,
                gib(m.anonymous_bytes),
                gib(m.store.block_cache_bytes),
                gib(m.store.memtable_bytes),
                gib(m.spatial_bytes),
                m.retained_views,
                gib(m.file_bytes),
                gib(m.spatial_file_bytes),
                gib(m.peak_bytes)
            );
        }
        if let Some(p) = &self.peak {
            let _ = writeln!(
                s,
                "\nThe highest resident set sampled (4 times a second): {:.2} GiB, {:.0} s into the run, during {}: \
                 anonymous {:.2} GiB, mapped files {:.2} GiB (full-text {:.2}, spatial {:.2}, deleted since mapped {:.2}).",
                gib(p.rss_bytes),
                p.at_seconds,
                p.stage,
                gib(p.anonymous_bytes),
                gib(p.file_bytes),
                gib(p.full_text_file_bytes),
                gib(p.spatial_file_bytes),
                gib(p.deleted_file_bytes)
            );
        }
        let _ = writeln!(s);
        let total = d.store_bytes + d.full_text_bytes + d.spatial_bytes;
        let _ = writeln!(s, "{}", crate::footprint::parts_table(&d.parts, d.records, total));
        let fields = crate::footprint::text_fields_table(&d.full_text_fields);
        if !fields.is_empty() {
            let _ = writeln!(s, "{fields}");
        }
        let segments = d.full_text_segments.markdown();
        if !segments.is_empty() {
            let _ = writeln!(s, "{segments}");
        }
        let _ = writeln!(
            s,
            "| query | mode | clients | queries | errors | per second | p50 ms | p99 ms | p99.9 ms | major faults a query |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for q in &self.queries {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.2} |",
                q.kind,
                q.mode,
                q.clients,
                q.queries,
                q.errors,
                q.per_second,
                q.p50_ms,
                q.p99_ms,
                q.p999_ms,
                q.major_faults_per_query
            );
        }
        let _ = writeln!(
            s,
            "\nLatencies are per query, measured after one untimed pass of the workload ({:.1} s from the cold start). \
             Total {:.1} s. Workload: {}.",
            self.warm_up_seconds, self.total_seconds, self.query_file
        );
        if let Some(a) = &self.access {
            let _ = writeln!(
                s,
                "\nAccess control and audit: id lookups over HTTP (2 threads × 16 connections) with a department key and purpose {:.0} req/s, without access control {:.0} req/s: {:.0}%. Audit lag (request to synced line) over the last {} entries: p50 {:.3} s, p99 {:.3} s.",
                a.with_access_per_second,
                a.without_access_per_second,
                100.0 * a.ratio,
                a.audit_entries,
                a.audit_lag_p50_seconds,
                a.audit_lag_p99_seconds
            );
        }
        if let Some(live) = &self.live {
            super::live::markdown(live, &mut s);
        }
        if let Some(r) = &self.restart {
            let _ = writeln!(
                s,
                "\nA restart after the loads while serving (the last a delta of {} changed citizens): first answer {:.2} s, \
                 spatial index {:.2} s, with {} keys of loads since the layer files were saved applied over them (page cache {}).",
                self.live.as_ref().map_or(0, |l| l.last_rows),
                r.cold.seconds_to_first_answer,
                r.cold.seconds_to_spatial_index,
                r.applied,
                r.cold.caches
            );
        }
        s
    }
}
