//! Loads inside the running server: a persistent queue of submitted loads, run one at a time
//! in the order they were accepted, each published all at once when it has been written.
//!
//! A submitted load is checked as `jichu load` checks it before reading a row (the spec, the
//! registry, every file's header) and only then queued, under a load id reserved at once. Its
//! task is kept in the store, so an accepted load survives a restart: a load that was running
//! was undone when the store opened ([`crate::store::Store::open`]) and runs again from its
//! spooled files; one that had been written but not yet published is published by the start
//! itself (the service's first view holds it). A cancelled load is stopped and undone: nothing
//! of it is ever published.

mod task;

pub use task::{Status, Task, TaskStatus};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::load::{Cancel, LoadOptions, Progress};
use crate::service::Service;
use chrono::Utc;
use jichu_ingest::Spec;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// Where a running server's loads come from and go.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// Uploads and specs, a folder per load.
    pub spool_dir: PathBuf,
    /// Files a submission may name by path (relative to it).
    pub import_dir: PathBuf,
    /// The template of every load's options (pilot codes, threads, scratch space).
    pub load: LoadOptions,
}

impl QueueSettings {
    pub fn from_config(config: &Config) -> Result<QueueSettings> {
        let mut load = config.load_options()?;
        load.threads = config.live_load_threads;
        Ok(QueueSettings { spool_dir: config.data_dir.join("spool"), import_dir: config.import_dir(), load })
    }
}

struct Entry {
    task: Task,
    progress: Progress,
    cancel: Cancel,
    /// A client cancelled it (a stop for a shutdown leaves it queued instead).
    cancelled_by_client: bool,
    publish_seconds: Option<f64>,
}

impl Entry {
    fn new(task: Task) -> Entry {
        Entry {
            task,
            progress: Progress::tracked(),
            cancel: Cancel::default(),
            cancelled_by_client: false,
            publish_seconds: None,
        }
    }
}

impl Entry {
    fn status(&self) -> TaskStatus {
        let t = &self.task;
        let mut progress = self.progress.status();
        progress.stage = match t.status {
            Status::Queued => "queued",
            Status::Running => progress.stage,
            Status::Indexing => "indexing",
            Status::Published => "published",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        };
        if t.status == Status::Published {
            progress.fraction = 1.0;
        }
        TaskStatus {
            load_id: t.load_id,
            status: t.status,
            registry: t.registry.clone(),
            source: t.source.clone(),
            files: t
                .files
                .iter()
                .map(|f| f.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
                .collect(),
            progress,
            queued_at: t.queued_at,
            started_at: t.started_at,
            published_at: t.published_at,
            ended_at: t.ended_at,
            publish_seconds: self.publish_seconds,
            report: t.report.clone(),
            error: t.error.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    tasks: BTreeMap<u32, Entry>,
    stopping: bool,
    /// A load could not be undone: none runs on top of it until a restart undoes it.
    halted: bool,
}

/// The queue of a running server's loads, and its worker.
pub struct LoadQueue {
    service: Arc<Service>,
    settings: QueueSettings,
    state: Mutex<State>,
    wake: Condvar,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for LoadQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadQueue").field("spool", &self.settings.spool_dir).finish_non_exhaustive()
    }
}

/// Why a submission was refused (a client's mistake: a 4xx).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("no load {0}")]
    NotFound(u32),
    #[error("load {0} has already ended ({1:?})")]
    Ended(u32, Status),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl LoadQueue {
    /// Resumes the queue from the tasks in the store and starts the worker.
    pub fn start(service: Arc<Service>, settings: QueueSettings) -> Result<Arc<LoadQueue>> {
        std::fs::create_dir_all(&settings.spool_dir).map_err(Error::io(&settings.spool_dir))?;
        std::fs::create_dir_all(&settings.import_dir).map_err(Error::io(&settings.import_dir))?;
        remove_unqueued_uploads(&settings.spool_dir)?;
        let store = &service.store;
        let mut tasks = BTreeMap::new();
        for mut task in Task::all(store)? {
            // Finished in the store, whatever the task says (a crash between the store and the
            // task record, a publication that failed): the first view published it.
            let finished = store.lineage(task.load_id).is_some_and(|l| l.finished_at.is_some());
            if task.status != Status::Published && finished {
                task.status = Status::Published;
                task.published_at = Some(Utc::now());
                task.ended_at = task.published_at;
                task.error = None;
                task.report = store.lineage(task.load_id).and_then(|l| l.report.clone());
                remove_spool(&task);
                task.save(store)?;
            } else if matches!(task.status, Status::Running | Status::Indexing) {
                // Undone when the store opened: it runs again.
                tracing::warn!(load_id = task.load_id, "a load was interrupted: it runs again");
                task.status = Status::Queued;
                task.started_at = None;
                task.save(store)?;
            }
            tasks.insert(task.load_id, Entry::new(task));
        }
        let queue = Arc::new(LoadQueue {
            service,
            settings,
            state: Mutex::new(State { tasks, ..State::default() }),
            wake: Condvar::new(),
            worker: Mutex::new(None),
        });
        let weak = Arc::downgrade(&queue);
        let handle = std::thread::Builder::new()
            .name("jichu-loads".into())
            .spawn(move || work(weak))
            .map_err(|e| Error::Internal(format!("cannot start the load worker: {e}")))?;
        *queue.worker.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(queue)
    }

    /// A new folder for a submission's uploads (`spool/upload-…`; renamed to the load's folder
    /// when queued, removed if the submission is refused or abandoned).
    pub fn upload_dir(&self) -> Result<PathBuf> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = self.settings.spool_dir.join(format!("upload-{nanos:x}-{:x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        Ok(dir)
    }

    /// Files named relative to the import folder, checked to stay inside it (no `..`, no
    /// absolute path, no symbolic link out of it) and to exist.
    pub fn import_files(&self, names: &[String]) -> std::result::Result<Vec<PathBuf>, Refusal> {
        let root = self.settings.import_dir.canonicalize().map_err(Error::io(&self.settings.import_dir))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let rel = Path::new(name);
            if name.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(Refusal::Invalid(format!(
                    "file {name:?}: name a file inside the import folder by a relative path without `..`"
                )));
            }
            let path = root
                .join(rel)
                .canonicalize()
                .map_err(|_| Refusal::Invalid(format!("file {name:?} is not in the import folder")))?;
            if !path.starts_with(&root) {
                return Err(Refusal::Invalid(format!("file {name:?} leads out of the import folder")));
            }
            if !path.is_file() {
                return Err(Refusal::Invalid(format!("{name:?} is not a file")));
            }
            out.push(path);
        }
        Ok(out)
    }

    /// Checks a load as `jichu load` would before reading a row, and queues it. `spool` holds
    /// its uploads (if any); it becomes the load's folder, or is removed if the load is refused.
    pub fn submit(
        &self,
        spec_text: &str,
        files: Vec<PathBuf>,
        spool: PathBuf,
        submitted_by: Option<String>,
    ) -> std::result::Result<TaskStatus, Refusal> {
        let checked = self.check(spec_text, &files, &spool);
        let (spec, registry) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&spool);
                return Err(e);
            }
        };
        let store = &self.service.store;
        // The id is reserved and the task inserted under the queue's lock, so loads run in the
        // order their ids were given.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let load_id = store.reserve_load_id()?;
        let dir = self.settings.spool_dir.join(load_id.to_string());
        std::fs::rename(&spool, &dir).map_err(Error::io(&dir))?;
        let files = files
            .into_iter()
            .map(|f| match f.strip_prefix(&spool) {
                Ok(rel) => dir.join(rel),
                Err(_) => f,
            })
            .collect();
        let task = Task {
            load_id,
            status: Status::Queued,
            registry,
            source: spec.source,
            spec: spec_text.to_string(),
            files,
            spool: dir,
            submitted_by,
            queued_at: Utc::now(),
            started_at: None,
            published_at: None,
            ended_at: None,
            report: None,
            rejects: self.settings.load.work_dir.join("rejects").join(format!("load-{load_id}.csv")),
            error: None,
        };
        task.save(store)?;
        let entry = Entry::new(task);
        let status = entry.status();
        state.tasks.insert(load_id, entry);
        drop(state);
        self.wake.notify_all();
        tracing::info!(load_id, registry = status.registry, source = status.source, "load queued");
        Ok(status)
    }

    fn check(&self, spec_text: &str, files: &[PathBuf], spool: &Path) -> std::result::Result<(Spec, String), Refusal> {
        if files.is_empty() {
            return Err(Refusal::Invalid("a load needs at least one file".into()));
        }
        let spec = Spec::parse(spec_text).map_err(|m| Refusal::Invalid(format!("mapping spec: {m}")))?;
        let spec_path = spool.join("spec.toml");
        std::fs::write(&spec_path, spec_text).map_err(Error::io(&spec_path))?;
        match crate::load::check(&spec, &spec_path, files, &self.settings.load) {
            Ok(checked) => Ok((spec, checked.registry.to_string())),
            Err(e @ (Error::Ingest(_) | Error::Invalid(_))) => Err(Refusal::Invalid(e.to_string())),
            Err(e) => Err(Refusal::Internal(e)),
        }
    }

    pub fn get(&self, load_id: u32) -> Option<TaskStatus> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).tasks.get(&load_id).map(Entry::status)
    }

    /// The most recent loads, newest first.
    pub fn list(&self, limit: usize) -> Vec<TaskStatus> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tasks.values().rev().take(limit).map(Entry::status).collect()
    }

    /// The rejects file of a load that has run.
    pub fn rejects(&self, load_id: u32) -> std::result::Result<PathBuf, Refusal> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.tasks.get(&load_id).ok_or(Refusal::NotFound(load_id))?;
        if entry.task.rejects.exists() {
            Ok(entry.task.rejects.clone())
        } else {
            Err(Refusal::Invalid(format!("load {load_id} has no rejects file yet ({:?})", entry.task.status)))
        }
    }

    /// Cancels a queued load at once, or stops a running one (it is undone; nothing of it is
    /// published). A load being published can no longer be cancelled.
    pub fn cancel(&self, load_id: u32) -> std::result::Result<TaskStatus, Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.tasks.get_mut(&load_id).ok_or(Refusal::NotFound(load_id))?;
        match entry.task.status {
            Status::Queued => {
                entry.task.status = Status::Cancelled;
                entry.task.ended_at = Some(Utc::now());
                entry.task.save(&self.service.store)?;
                remove_spool(&entry.task);
                tracing::info!(load_id, "queued load cancelled");
            }
            Status::Running if entry.cancel.request() => {
                entry.cancelled_by_client = true;
                tracing::info!(load_id, "running load: cancel requested");
            }
            // Written already: it is being published.
            Status::Running => return Err(Refusal::Ended(load_id, Status::Indexing)),
            s => return Err(Refusal::Ended(load_id, s)),
        }
        Ok(entry.status())
    }

    /// Stops the worker: a running load is stopped and undone, and stays queued for the next
    /// start. Returns when the worker, and a fold of the spatial index it started, have stopped.
    pub fn shutdown(&self) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.stopping = true;
            for entry in state.tasks.values() {
                if entry.task.status == Status::Running {
                    entry.cancel.request();
                }
            }
        }
        self.wake.notify_all();
        if let Some(handle) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
        // A fold the last publication started still reads the store.
        self.service.stop_fold();
    }

    /// The oldest queued load, marked running; None when there is none within `wait`.
    fn next(&self, wait: Duration) -> Option<(Task, Progress, Cancel)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for round in 0..2 {
            if state.stopping || state.halted {
                return None;
            }
            if let Some(entry) = state.tasks.values_mut().find(|e| e.task.status == Status::Queued) {
                entry.task.status = Status::Running;
                entry.task.started_at = Some(Utc::now());
                if let Err(e) = entry.task.save(&self.service.store) {
                    tracing::error!(error = %e, "cannot record a load's start");
                }
                return Some((entry.task.clone(), entry.progress.clone(), entry.cancel.clone()));
            }
            if round == 0 {
                state = self.wake.wait_timeout(state, wait).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
        None
    }

    fn run(&self, task: Task, progress: Progress, cancel: Cancel) {
        let load_id = task.load_id;
        // A panic in a load must not take the queue with it: undo what it wrote, record it.
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write(&task, progress, cancel)));
        let outcome = written.unwrap_or_else(|panic| {
            let what =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            let failure = format!("the load panicked: {}", what.unwrap_or_default());
            tracing::error!(load_id, failure, "load panicked");
            let store = &self.service.store;
            let unfinished = store.lineage(load_id).is_some_and(|l| l.finished_at.is_none() && l.undone_at.is_none());
            match unfinished.then(|| store.writer().undo(load_id, &failure)) {
                Some(Err(undo)) => Err(Error::UndoFailed { load_id, failure, undo: undo.to_string() }),
                _ => Err(Error::Internal(failure)),
            }
        });
        let (stopping, by_client) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (state.stopping, state.tasks.get(&load_id).is_some_and(|e| e.cancelled_by_client))
        };
        match outcome {
            Ok(report) => {
                self.update(load_id, false, |e| {
                    e.task.status = Status::Indexing;
                    e.task.report = Some(report);
                });
                let written = std::time::Instant::now();
                let mut published = self.service.publish();
                for wait in [1, 4] {
                    if published.is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(wait));
                    published = self.service.publish();
                }
                match published {
                    Ok(_) => self.update(load_id, true, |e| {
                        e.task.status = Status::Published;
                        e.task.published_at = Some(Utc::now());
                        e.publish_seconds = Some(written.elapsed().as_secs_f64());
                    }),
                    Err(err) => {
                        // Written and kept: the next start (or a later publication) shows it.
                        tracing::error!(load_id, error = %err, "a written load could not be published; the next start will");
                        self.update(load_id, true, |e| {
                            e.task.status = Status::Failed;
                            e.task.error = Some(format!("written but not published: {err}"));
                        })
                    }
                }
            }
            Err(Error::Cancelled) if by_client => self.update(load_id, true, |e| e.task.status = Status::Cancelled),
            // Stopped because the server stops: it runs again at the next start.
            Err(Error::Cancelled) if stopping => self.update(load_id, false, |e| {
                e.task.status = Status::Queued;
                e.task.started_at = None;
            }),
            Err(err) => {
                if matches!(err, Error::UndoFailed { .. }) {
                    tracing::error!(load_id, error = %err, "no further load runs until a restart undoes this one");
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).halted = true;
                } else {
                    tracing::warn!(load_id, error = %err, "load failed");
                }
                self.update(load_id, true, |e| {
                    e.task.status = Status::Failed;
                    e.task.error = Some(err.to_string());
                })
            }
        }
    }

    /// Changes a task and records it; an ending one gets its end time and loses its spool.
    fn update(&self, load_id: u32, ends: bool, change: impl FnOnce(&mut Entry)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = state.tasks.get_mut(&load_id) else { return };
        change(entry);
        if ends {
            entry.task.ended_at = Some(Utc::now());
            remove_spool(&entry.task);
        }
        if let Err(e) = entry.task.save(&self.service.store) {
            tracing::error!(load_id, error = %e, "cannot record a load's state");
        }
    }

    /// Writes a load to the store (undone on failure or cancel).
    fn write(&self, task: &Task, progress: Progress, cancel: Cancel) -> Result<serde_json::Value> {
        let spec = Spec::parse(&task.spec).map_err(Error::Invalid)?;
        let mut opts = self.settings.load.clone();
        opts.load_id = Some(task.load_id);
        opts.cancel = cancel;
        opts.progress = progress;
        opts.rejects = Some(task.rejects.clone());
        let spec_path = task.spool.join("spec.toml");
        let store = &self.service.store;
        let feed = match spec.registry.parse() {
            Ok(registry) => crate::spatial::BulkFeed::start(store.reader(), registry)?,
            Err(_) => None,
        };
        let report = match feed {
            // A load into an empty registry feeds its spatial layer, saved before the load is
            // published: the publication maps it instead of reading the load back.
            Some(mut feed) => {
                let mut report = crate::load::load_feeding(
                    store,
                    &spec,
                    &spec_path,
                    &task.files,
                    &opts,
                    Some(&mut |k, v| feed.record(k, v)),
                )?;
                // A layer not saved is built by the publication, as without the feed.
                crate::load::save_fed_layer(feed, store, &mut report);
                report
            }
            None => crate::load::load(store, &spec, &spec_path, &task.files, &opts)?,
        };
        serde_json::to_value(&report).map_err(|e| Error::Codec(e.to_string()))
    }
}

/// The worker: the oldest queued load, run, then published; again. It holds the queue only
/// while it works, so the queue (and its store) is released when the server drops it.
fn work(queue: Weak<LoadQueue>) {
    loop {
        let Some(q) = queue.upgrade() else { return };
        if q.state.lock().unwrap_or_else(|e| e.into_inner()).stopping {
            return;
        }
        match q.next(Duration::from_millis(250)) {
            Some((task, progress, cancel)) => q.run(task, progress, cancel),
            None => q.service.views.prune(),
        }
    }
}

fn remove_spool(task: &Task) {
    if task.spool.exists() {
        let _ = std::fs::remove_dir_all(&task.spool);
    }
}

/// Removes the upload folders a stopped server was still receiving into: an upload becomes
/// the load's folder when it is queued, so one still named `upload-…` at a start belongs to no
/// load (a kill mid-upload would otherwise leave a partial extract in the spool for good).
fn remove_unqueued_uploads(spool: &Path) -> Result<()> {
    let mut removed = 0;
    for entry in std::fs::read_dir(spool).map_err(Error::io(spool))? {
        let path = entry.map_err(Error::io(spool))?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("upload-")) {
            std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(folders = removed, "removed uploads a stopped server was receiving from {}", spool.display());
    }
    Ok(())
}
