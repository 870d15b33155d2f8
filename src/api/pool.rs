//! The query pool: a fixed number of threads for reads that use CPU (search, spatial queries,
//! lookups, profiles), apart from tokio's async workers, behind a bounded queue.
//!
//! A request whose queue is full is refused at once (429 `overloaded`) rather than waiting
//! without bound. A request that stops waiting — it ran out of time, or its client went away
//! and its future was dropped — cancels its query ([`Cancel`]): a query not yet started is
//! skipped, a long one stops at its next look at the flag. So the work in hand never exceeds
//! the threads plus the queue, and abandoned work stops.

use super::ApiError;
use crate::query::{Cancel, QueryError, QueryResult};
use crossbeam_channel::{Sender, TrySendError, bounded};
use std::panic::AssertUnwindSafe;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub struct QueryPool {
    jobs: Sender<Job>,
}

impl QueryPool {
    /// `threads` workers (at least one) and room for `queue` waiting queries. The threads end
    /// when the pool is dropped.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<QueryPool> {
        let threads = threads.max(1);
        let (jobs, rx) = bounded::<Job>(queue.max(1));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("jichu-query-{i}")).spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        }
        Ok(QueryPool { jobs })
    }

    /// Runs `f` on the pool. Dropping the returned future before it finishes cancels `cancel`.
    pub async fn run<T: Send + 'static>(
        &self,
        cancel: Cancel,
        f: impl FnOnce() -> QueryResult<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let skip = cancel.clone();
        let job: Job = Box::new(move || {
            if skip.is_cancelled() {
                return;
            }
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("jichu_query_pool_refused_total").increment(1);
                return Err(ApiError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => return Err(QueryError::Cancelled.into()),
        }
        let mut guard = CancelOnDrop(Some(&cancel));
        let outcome = rx.await;
        guard.0 = None;
        match outcome {
            Ok(Ok(result)) => result.map_err(ApiError::from),
            // A panic is the service's fault: a 500 (logged), never the client's.
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(crate::Error::Internal(format!("a query panicked: {what}")).into())
            }
            // Skipped: cancelled before it started.
            Err(_) => Err(QueryError::Cancelled.into()),
        }
    }
}

/// Cancels the query when the request's future is dropped while waiting for it.
struct CancelOnDrop<'a>(Option<&'a Cancel>);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_dropped_request_cancels() {
        let pool = std::sync::Arc::new(QueryPool::new(1, 1).unwrap());
        let started = std::sync::Arc::new(std::sync::Barrier::new(2));
        let long = Cancel::default();
        // A query that runs until cancelled, behind a 50 ms timeout.
        let (p, c, s) = (pool.clone(), long.clone(), started.clone());
        let running = tokio::spawn(async move {
            let flag = c.clone();
            let query = p.run(c, move || {
                s.wait();
                while !flag.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err::<(), _>(QueryError::Cancelled)
            });
            tokio::time::timeout(Duration::from_millis(50), query).await
        });
        tokio::task::spawn_blocking(move || started.wait()).await.unwrap();
        // The only thread is busy: one query waits in the queue, the next is refused.
        let (queued, refused) =
            tokio::join!(pool.run(Cancel::default(), || Ok(1)), pool.run(Cancel::default(), || Ok(2)));
        assert!(matches!(refused, Err(ApiError::Overloaded)), "{refused:?}");
        assert_eq!(queued.unwrap(), 1, "the queued query ran once the long one stopped");
        assert!(running.await.unwrap().is_err(), "the long query outlived its timeout");
        assert!(long.is_cancelled(), "dropping the request cancelled its query");
    }
}
