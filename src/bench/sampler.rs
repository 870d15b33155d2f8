//! Where the run's peak resident memory is: a thread samples `/proc/self/status` four times a
//! second and, at each new high, what the resident file pages are (the full-text index, the
//! spatial layers, files deleted since they were mapped), with the stage the run was in. The
//! memory table's rows are taken between stages; a peak set inside one (a merge, a fold, a
//! superseded view still mapped) shows only here.

use crate::memory::{resident, resident_files};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The highest resident set sampled, and what it was made of.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Peak {
    pub rss_bytes: u64,
    pub anonymous_bytes: u64,
    pub file_bytes: u64,
    pub full_text_file_bytes: u64,
    pub spatial_file_bytes: u64,
    /// Mapped files under the index folders deleted since (a superseded full-text segment or
    /// spatial layer file that a view still holds); other deleted files are not counted.
    pub deleted_file_bytes: u64,
    pub stage: String,
    /// Seconds from the sampler's start.
    pub at_seconds: f64,
}

/// A running sampler; [`Sampler::finish`] stops it and returns the peak.
#[derive(Debug)]
pub struct Sampler {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stage: Mutex<String>,
    peak: Mutex<Peak>,
    stop: AtomicBool,
}

/// A new high is examined (the smaps walk) only when it passes the last by this much.
const STEP: u64 = 32 << 20;

impl Sampler {
    /// Starts sampling; `text` and `spatial` are the index folders whose pages are told apart.
    pub fn start(text: PathBuf, spatial: PathBuf) -> Sampler {
        let shared = Arc::new(Shared {
            stage: Mutex::new("starting".into()),
            peak: Mutex::new(Peak::default()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bench-memory".into())
            .spawn(move || {
                let started = Instant::now();
                while !s.stop.load(Ordering::Relaxed) {
                    let now = resident();
                    let high = s.peak.lock().unwrap_or_else(|e| e.into_inner()).rss_bytes;
                    if now.total > high + STEP || (high == 0 && now.total > 0) {
                        // The walk of smaps takes a while: its split of the file pages may be
                        // of a moment later than `now`.
                        let files = resident_files(&[&text, &spatial]);
                        let stage = s.stage.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        *s.peak.lock().unwrap_or_else(|e| e.into_inner()) = Peak {
                            rss_bytes: now.total,
                            anonymous_bytes: now.anonymous,
                            file_bytes: now.file,
                            full_text_file_bytes: files.under[0],
                            spatial_file_bytes: files.under[1],
                            deleted_file_bytes: files.deleted,
                            stage,
                            at_seconds: started.elapsed().as_secs_f64(),
                        };
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
            .ok();
        Sampler { shared, thread }
    }

    /// Names the stage the run is in, for a peak sampled from now on.
    pub fn stage(&self, stage: &str) {
        *self.shared.stage.lock().unwrap_or_else(|e| e.into_inner()) = stage.to_string();
    }

    /// Stops sampling; the highest sample (within [`STEP`] of the true high).
    pub fn finish(mut self) -> Peak {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.peak.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
