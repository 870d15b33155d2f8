//! Published views: one state of the store and of every index, switched all at once.
//!
//! A [`View`] pins a store snapshot, a full-text searcher and a spatial index that all reflect
//! the same finished loads. A request takes the current view when it starts and answers from it
//! alone, so it sees one state throughout, and a load becomes visible to every kind of read at
//! the moment its view is published ([`Views::publish`]). Superseded views are kept for
//! [`Views::retention`] so that search cursors keep paging over the state they started on;
//! they keep their store snapshot and full-text searcher, not their spatial index.

use crate::error::Result;
use crate::model::{Lineage, Registry};
use crate::spatial::SpatialIndex;
use crate::store::{Reader, Snapshot};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use jichu_indexes::text::TextSearcher;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One published state.
#[derive(Debug)]
pub struct View {
    /// Random per process: a cursor from before a restart names another epoch.
    pub epoch: u64,
    /// Grows by one with every publication; cursors name it.
    pub generation: u64,
    pub published_at: DateTime<Utc>,
    /// Shared with a view that differs only in its spatial index's layout (a fold).
    pub snapshot: Arc<Snapshot>,
    pub text: TextSearcher,
    spatial: SpatialSlot,
    /// The loads this state holds (finished), by id.
    pub loads: BTreeMap<u32, Arc<Lineage>>,
    /// The last position of the change feed in this state.
    pub feed_last: u64,
}

impl View {
    pub fn new(
        epoch: u64,
        generation: u64,
        snapshot: Snapshot,
        text: TextSearcher,
        spatial: SpatialSlot,
    ) -> Result<View> {
        let loads = snapshot.reader().finished_loads()?;
        let feed_last = snapshot.reader().feed_last()?;
        Ok(View {
            epoch,
            generation,
            published_at: Utc::now(),
            snapshot: Arc::new(snapshot),
            text,
            spatial,
            loads,
            feed_last,
        })
    }

    /// The same state with another spatial index (of the same loads, laid out anew), as the
    /// next generation.
    pub fn with_spatial(&self, spatial: SpatialSlot) -> View {
        View {
            epoch: self.epoch,
            generation: self.generation + 1,
            published_at: Utc::now(),
            snapshot: self.snapshot.clone(),
            text: self.text.clone(),
            spatial,
            loads: self.loads.clone(),
            feed_last: self.feed_last,
        }
    }

    /// The same state as kept for search cursors once superseded: without its spatial index,
    /// which after a fold is a whole base (1.6 GiB at 30M citizens) that no cursor reads.
    fn for_cursors(&self) -> View {
        View {
            epoch: self.epoch,
            generation: self.generation,
            published_at: self.published_at,
            snapshot: self.snapshot.clone(),
            text: self.text.clone(),
            spatial: SpatialSlot::superseded(),
            loads: self.loads.clone(),
            feed_last: self.feed_last,
        }
    }

    /// The spatial index of this state; at a start, waits until the background thread has read
    /// (or built) it. Only spatial reads and publications call this, so reads by key, search
    /// and the rest answer while the index is loading.
    pub fn spatial(&self) -> Result<Arc<SpatialIndex>> {
        self.spatial.get()
    }

    /// Whether the spatial index is there (a spatial read would not wait).
    pub fn spatial_ready(&self) -> bool {
        self.spatial.is_ready()
    }

    /// Reads of the store at this view's state.
    pub fn reader(&self) -> Reader<'_> {
        self.snapshot.reader()
    }

    pub fn count(&self, registry: Registry) -> u64 {
        self.snapshot.count(registry)
    }

    /// The load that wrote a value this view holds.
    pub fn lineage(&self, load_id: u32) -> Option<&Lineage> {
        self.loads.get(&load_id).map(|l| &**l)
    }

    /// The last finished load this view holds.
    pub fn last_load(&self) -> u32 {
        self.loads.keys().next_back().copied().unwrap_or(0)
    }
}

/// A view's spatial index: there from the start, or being read (or built) by a background
/// thread at a start, so that the first answer by key does not wait for a multi-gigabyte file.
/// Spatial reads wait for it ([`SpatialSlot::get`]).
#[derive(Clone, Debug)]
pub struct SpatialSlot(Arc<Slot>);

#[derive(Debug, Default)]
struct Slot {
    /// `None` while loading; the error of a load that failed, as text (shared by every waiter).
    index: Mutex<Option<std::result::Result<Arc<SpatialIndex>, String>>>,
    filled: Condvar,
}

impl SpatialSlot {
    pub fn ready(index: Arc<SpatialIndex>) -> SpatialSlot {
        SpatialSlot(Arc::new(Slot { index: Mutex::new(Some(Ok(index))), filled: Condvar::new() }))
    }

    /// A slot to be filled once by [`SpatialSlot::fill`].
    pub fn pending() -> SpatialSlot {
        SpatialSlot(Arc::default())
    }

    /// The slot of a view kept only for search cursors (see [`View::for_cursors`]).
    fn superseded() -> SpatialSlot {
        let slot = SpatialSlot::pending();
        *slot.0.index.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Err("a superseded view keeps no spatial index".into()));
        slot
    }

    /// The index if it is there, without waiting.
    fn peek(&self) -> Option<Arc<SpatialIndex>> {
        self.0.index.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|r| r.as_ref().ok().cloned())
    }

    pub fn fill(&self, index: Result<SpatialIndex>) {
        let mut slot = self.0.index.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(index.map(Arc::new).map_err(|e| e.to_string()));
        self.0.filled.notify_all();
    }

    pub fn is_ready(&self) -> bool {
        self.0.index.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The index, once there.
    pub fn get(&self) -> Result<Arc<SpatialIndex>> {
        let mut slot = self.0.index.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*slot {
                Some(Ok(index)) => return Ok(index.clone()),
                Some(Err(e)) => {
                    return Err(crate::Error::Internal(format!("the spatial index could not be opened: {e}")));
                }
                None => slot = self.0.filled.wait(slot).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// What [`Views::memory`] reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ViewsMemory {
    /// Heap bytes of the current view's spatial index (0 while it loads).
    pub spatial_bytes: usize,
    /// Superseded views kept for search cursors.
    pub retained: usize,
}

/// The current view and the recently superseded ones.
pub struct Views {
    current: ArcSwap<View>,
    /// Superseded views and when they were superseded, oldest first.
    retired: Mutex<VecDeque<(Arc<View>, Instant)>>,
    retention: Duration,
    /// The current generation, for those waiting on the next publication (long polls).
    published: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views").field("generation", &self.current().generation).finish_non_exhaustive()
    }
}

impl Views {
    pub fn new(first: Arc<View>, retention: Duration) -> Views {
        let published = tokio::sync::watch::Sender::new(first.generation);
        Views { current: ArcSwap::new(first), retired: Mutex::new(VecDeque::new()), retention, published }
    }

    /// The view new requests answer from.
    pub fn current(&self) -> Arc<View> {
        self.current.load_full()
    }

    /// How long a superseded view stays available to cursors.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// What the views hold in memory, for the benchmark's report.
    pub fn memory(&self) -> ViewsMemory {
        let retained = self.retired.lock().unwrap_or_else(|e| e.into_inner()).len();
        let spatial_bytes = self.current().spatial.peek().map_or(0, |s| s.memory_bytes());
        ViewsMemory { spatial_bytes, retained }
    }

    /// The view of a generation, if it is current or was superseded less than
    /// [`Views::retention`] ago: a superseded one answers search cursors only (it keeps no
    /// spatial index).
    pub fn at(&self, generation: u64) -> Option<Arc<View>> {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        if current.generation == generation {
            return Some(current);
        }
        self.prune_locked(&mut retired);
        retired.iter().find(|(v, _)| v.generation == generation).map(|(v, _)| v.clone())
    }

    /// Makes `view` the current one; the one it replaces is retired without its spatial index
    /// (requests already holding it finish with it). Under the retired list's lock, so that
    /// [`Views::at`] finds the old view in one place or the other.
    pub fn publish(&self, view: View) -> Arc<View> {
        let view = Arc::new(view);
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.swap(view.clone());
        retired.push_back((Arc::new(old.for_cursors()), Instant::now()));
        self.prune_locked(&mut retired);
        self.published.send_replace(view.generation);
        view
    }

    /// Wakes on every publication after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Lets go of views superseded longer ago than the retention (and so of their store
    /// snapshots, which hold back compaction). Called while the service is idle too.
    pub fn prune(&self) {
        self.prune_locked(&mut self.retired.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn prune_locked(&self, retired: &mut VecDeque<(Arc<View>, Instant)>) {
        while retired.front().is_some_and(|(_, at)| at.elapsed() > self.retention) {
            retired.pop_front();
        }
    }
}
