//! Load progress: a bar (rows, rows/s, ETA by bytes) on a terminal, plain log lines otherwise,
//! or (a running server's loads) nothing shown but a [`ProgressStatus`] to ask for.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Progress {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    bar: Option<ProgressBar>,
    /// A counted stage after the load (documents indexed): its bar, name and total.
    counting: Mutex<(Option<ProgressBar>, String, u64)>,
    files: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
    last_line: Mutex<Instant>,
    applied: AtomicU64,
    /// Log lines every few seconds when there is no bar.
    log: bool,
    rows: AtomicU64,
    stage: Mutex<&'static str>,
}

/// Where a load is: rows read, bytes read of the files' total, the stage.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
pub struct ProgressStatus {
    pub stage: &'static str,
    pub rows_read: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    /// Bytes read of the total, 0 to 1.
    pub fraction: f64,
}

impl Progress {
    /// No progress output (tests, benchmarks).
    pub fn quiet() -> Progress {
        Progress { inner: None }
    }

    /// Nothing shown; [`Progress::status`] tells where the load is.
    pub fn tracked() -> Progress {
        Progress::with(None, false)
    }

    /// A bar on a terminal, log lines every few seconds otherwise.
    pub fn auto() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Progress::with(bar, true)
    }

    fn with(bar: Option<ProgressBar>, log: bool) -> Progress {
        Progress {
            inner: Some(Arc::new(Inner {
                bar,
                counting: Mutex::new((None, String::new(), 0)),
                files: Mutex::new(Vec::new()),
                last_line: Mutex::new(Instant::now()),
                applied: AtomicU64::new(0),
                log,
                rows: AtomicU64::new(0),
                stage: Mutex::new("queued"),
            })),
        }
    }

    /// Where the load is (all zero for [`Progress::quiet`]).
    pub fn status(&self) -> ProgressStatus {
        let Some(inner) = &self.inner else { return ProgressStatus::default() };
        let files = inner.files.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes_total, bytes_read): (u64, u64) =
            files.iter().fold((0, 0), |(t, d), (n, c)| (t + n, d + c.load(Ordering::Relaxed)));
        let bytes_read = bytes_read.min(bytes_total);
        ProgressStatus {
            stage: *inner.stage.lock().unwrap_or_else(|e| e.into_inner()),
            rows_read: inner.rows.load(Ordering::Relaxed),
            bytes_read,
            bytes_total,
            fraction: if bytes_total == 0 { 0.0 } else { bytes_read as f64 / bytes_total as f64 },
        }
    }

    /// Names the stage the load is in (`reading`, `writing`, `indexing`…).
    pub fn stage(&self, stage: &'static str) {
        // At debug level every step of a load is a line: what the crash test kills at.
        tracing::debug!(stage, "load stage");
        if let Some(inner) = &self.inner {
            *inner.stage.lock().unwrap_or_else(|e| e.into_inner()) = stage;
        }
    }

    pub(crate) fn start(&self, what: &str, files: Vec<(u64, Arc<AtomicU64>)>) {
        let Some(inner) = &self.inner else { return };
        if let Some(bar) = &inner.bar {
            bar.set_length(files.iter().map(|(n, _)| n).sum());
            bar.set_prefix(what.to_string());
        }
        *inner.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
        *inner.stage.lock().unwrap_or_else(|e| e.into_inner()) = "reading";
    }

    pub(crate) fn set_read(&self, rows: u64) {
        tracing::debug!(rows, "rows read");
        let Some(inner) = &self.inner else { return };
        inner.rows.store(rows, Ordering::Relaxed);
        let files = inner.files.lock().unwrap_or_else(|e| e.into_inner());
        let (total, done): (u64, u64) =
            files.iter().fold((0, 0), |(t, d), (n, c)| (t + n, d + c.load(Ordering::Relaxed)));
        match &inner.bar {
            Some(bar) => {
                bar.set_position(done.min(total));
                let secs = bar.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
            }
            None if inner.log => {
                let mut last = inner.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    tracing::info!(
                        rows,
                        percent = format!("{:.1}", 100.0 * done as f64 / total.max(1) as f64),
                        "reading"
                    );
                }
            }
            None => {}
        }
    }

    pub(crate) fn tick_apply(&self, n: u64) {
        let Some(inner) = &self.inner else { return };
        let applied = inner.applied.fetch_add(n, Ordering::Relaxed) + n;
        if applied / 10_000 != (applied - n) / 10_000 {
            tracing::debug!(applied, "records written");
        }
        if applied % 1_000_000 < n {
            match &inner.bar {
                Some(bar) => bar.set_message(format!("writing: {applied} records")),
                None if inner.log => tracing::info!(applied, "writing"),
                None => {}
            }
        }
    }

    /// Starts a counted stage (`what`: up to `total` items): a bar on a terminal, a log line
    /// every few seconds otherwise.
    pub fn start_counting(&self, what: &str, total: u64) {
        tracing::debug!(stage = what, total, "counted stage");
        let Some(inner) = &self.inner else { return };
        let bar = inner.bar.as_ref().map(|_| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            bar
        });
        *inner.counting.lock().unwrap_or_else(|e| e.into_inner()) = (bar, what.to_string(), total);
    }

    /// Items done so far in the counted stage.
    pub fn set_counted(&self, done: u64) {
        tracing::debug!(done, "counted");
        let Some(inner) = &self.inner else { return };
        let counting = inner.counting.lock().unwrap_or_else(|e| e.into_inner());
        match &counting.0 {
            Some(bar) => bar.set_position(done),
            None if inner.log => {
                let mut last = inner.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    tracing::info!(stage = counting.1, done, of = counting.2, "in progress");
                }
            }
            None => {}
        }
    }

    /// Ends the counted stage.
    pub fn finish_counting(&self) {
        let Some(inner) = &self.inner else { return };
        if let Some(bar) = inner.counting.lock().unwrap_or_else(|e| e.into_inner()).0.take() {
            bar.finish_and_clear();
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = self.inner.as_ref().and_then(|i| i.bar.as_ref()) {
            bar.finish_and_clear();
        }
    }
}
