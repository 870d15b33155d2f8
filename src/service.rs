//! The running service's engine: the store, the full-text and spatial indexes, and the
//! published views readers answer from. Loads write to the store while readers keep answering
//! from the current view; [`Service::publish`] then brings every index in step with a new
//! snapshot and switches all readers to it at once.

use crate::config::Config;
use crate::error::Result;
use crate::load::Progress;
use crate::query::{SpatialSlot, View, Views};
use crate::spatial::{SpatialIndex, Stop};
use crate::store::Store;
use crate::text::TextLayer;
use jichu_indexes::text::{TextWriter, WriterOptions};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Service {
    pub store: Arc<Store>,
    pub text: TextLayer,
    pub views: Views,
    text_options: WriterOptions,
    /// One publication at a time. Each opens the full-text writer and lets it go once its
    /// commit's merges are done (this thread, which the next publication joins first): a
    /// writer kept between publications held every delete it had queued, ~0.5 KiB per changed
    /// record, for as long as the process ran.
    publishing: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A fold of the spatial index is running in the background.
    folding: std::sync::atomic::AtomicBool,
    /// The last fold's thread, joined before the process stops: a fold still reading the
    /// store when `main` returns reads it while the process tears down (two SIGSEGVs at a
    /// stop, in zstd decompression, are the likely sign of it).
    fold_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The thread reading (or building) the first view's spatial index: joined on drop, so
    /// that a dropped service has let go of its store.
    spatial_open: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set when the service stops: a spatial build from the store (the first view's, a fold)
    /// gives up rather than keep the stop waiting.
    stopping: Arc<Stop>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let handle = self.spatial_open.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        // A dropped service has let go of the full-text writer's lock too.
        join_finishing(self.publishing.get_mut().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Waits for a background thread (the last publication's writer being let go, a fold), if
/// one is still running.
fn join_finishing(finishing: &mut Option<std::thread::JoinHandle<()>>) {
    if let Some(h) = finishing.take() {
        let _ = h.join();
    }
}

/// Lets a publication's full-text writer go once its merges are done, off the publication's
/// path; the next publication waits for this thread before it opens a writer.
fn finish_in_background(writer: Option<TextWriter>) -> Option<std::thread::JoinHandle<()>> {
    let writer = writer?;
    let finish = move || {
        if let Err(e) = writer.finish() {
            tracing::warn!(error = %e, "full-text merges after a publication failed");
        }
    };
    match std::thread::Builder::new().name("text-finish".into()).spawn(finish) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "could not start the full-text finishing thread");
            None
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("store", &self.store).field("views", &self.views).finish_non_exhaustive()
    }
}

/// What a publication did.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub generation: u64,
    pub text_seconds: f64,
    pub spatial_seconds: f64,
    pub seconds: f64,
}

impl Service {
    /// Opens the service over a store: brings the full-text index in step (a load interrupted
    /// after it finished is indexed here) and publishes the first view, whose spatial index a
    /// background thread reads from its file (or builds) meanwhile: spatial reads wait for it.
    pub fn open(store: Arc<Store>, config: &Config) -> Result<Service> {
        let text = TextLayer::open(&store)?;
        let snapshot = store.snapshot()?;
        text.sync(snapshot.reader(), config.text_writer(), &Progress::auto())?;
        // The spatial index is read (or built) by a thread of its own: at 100M records its file
        // is gigabytes, and reads by key, search and the rest need not wait for it.
        let spatial = SpatialSlot::pending();
        let view = Arc::new(View::new(rand::random(), 1, snapshot, text.index.searcher()?, spatial.clone())?);
        let first = view.clone();
        let stopping = Arc::new(Stop::new(false));
        let stop = stopping.clone();
        let spatial_open = std::thread::Builder::new()
            .name("spatial-open".into())
            .spawn(move || spatial.fill(SpatialIndex::open_at(first.reader(), &stop)))
            .map_err(|e| crate::Error::Internal(format!("the spatial index thread could not start: {e}")))?;
        Ok(Service {
            store,
            text,
            views: Views::new(view, config.cursor_retention),
            text_options: config.publication_text_writer(),
            publishing: Mutex::new(None),
            folding: Default::default(),
            fold_thread: Mutex::new(None),
            spatial_open: Mutex::new(Some(spatial_open)),
            stopping,
        })
    }

    /// The view new requests answer from.
    pub fn view(&self) -> Arc<View> {
        self.views.current()
    }

    /// Publishes the store's current state: pins a snapshot, brings the full-text index
    /// (the records finished loads changed) and the spatial index (the same, layered) in step
    /// with it, and makes the view current. Readers switch at that one moment.
    pub fn publish(self: &Arc<Self>) -> Result<Published> {
        let mut finishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        join_finishing(&mut finishing);
        let started = Instant::now();
        let current = self.views.current();
        let snapshot = self.store.snapshot()?;
        let mut writer = None;
        let synced = self.text.sync_with(&mut writer, snapshot.reader(), self.text_options, &Progress::quiet());
        *finishing = finish_in_background(writer);
        synced?;
        let text_seconds = started.elapsed().as_secs_f64();
        let loads = snapshot.reader().stored_loads()?;
        let spatial = current.spatial()?.apply(snapshot.reader(), &loads)?;
        let spatial_seconds = started.elapsed().as_secs_f64() - text_seconds;
        let searcher = self.text.index.searcher()?;
        let view = View::new(
            current.epoch,
            current.generation + 1,
            snapshot,
            searcher,
            SpatialSlot::ready(Arc::new(spatial)),
        )?;
        let published = self.views.publish(view);
        drop(finishing);
        let generation = published.generation;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(generation, text_seconds, spatial_seconds, seconds, "published");
        if published.spatial()?.due_for_fold() && !self.folding.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let service = self.clone();
            let fold = move || {
                match service.fold(&published) {
                    Ok(()) => {}
                    Err(crate::Error::Stopping) => {
                        tracing::info!("fold of the spatial index stopped: the server stops")
                    }
                    Err(e) => tracing::warn!(error = %e, "folding the spatial index failed; it stays layered"),
                }
                service.folding.store(false, std::sync::atomic::Ordering::SeqCst);
            };
            match std::thread::Builder::new().name("spatial-fold".into()).spawn(fold) {
                // The previous fold has cleared `folding`, so its thread is done or ending.
                Ok(handle) => *self.fold_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a fold of the spatial index; it stays layered");
                    self.folding.store(false, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
        Ok(Published { generation, text_seconds, spatial_seconds, seconds })
    }

    /// Builds anew the spatial layers whose changes have grown, from the state `view` holds,
    /// off the publication's path; then publishes the current state with them (the loads
    /// published meanwhile applied on top), as the next generation of the same data.
    fn fold(&self, view: &View) -> Result<()> {
        let folded = view.spatial()?.fold(view.reader(), &self.stopping)?;
        let _one = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.views.current();
        let spatial = if current.spatial()?.finished == folded.finished {
            folded
        } else {
            folded.apply(current.reader(), &current.reader().stored_loads()?)?
        };
        self.views.publish(current.with_spatial(SpatialSlot::ready(Arc::new(spatial))));
        Ok(())
    }

    /// Stops a fold of the spatial index that is running and waits for it (a stopping server:
    /// the fold reads the store, which must outlive it). The next start maps the layer's file
    /// and, its changes being past the threshold still, rebuilds it in the background thread
    /// that opens the spatial index: the rebuild moves to the start instead of holding the
    /// stop. Only for a service that stops: the flag is never cleared.
    pub fn stop_fold(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut handle = self.fold_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        join_finishing(&mut handle);
    }

    /// Whether a fold of the spatial index is running (it publishes when done).
    pub fn folding(&self) -> bool {
        self.folding.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the last publication's full-text writer is let go (its merges done): after
    /// this, no writer is held until the next publication (tests, shutdown).
    pub fn text_writer_done(&self) {
        join_finishing(&mut self.publishing.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How long superseded views stay available (search cursors).
    pub fn retention(&self) -> Duration {
        self.views.retention()
    }
}
