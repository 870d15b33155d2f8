//! A request's cancellation. The API sets it when the request runs out of time or its client
//! goes away; a query that may run long looks at it every [`STEP`] steps and stops with
//! [`QueryError::Cancelled`], so an abandoned request stops spending CPU.

use super::error::{QueryError, QueryResult};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Steps between looks at the flag: a few microseconds of work each.
pub const STEP: u32 = 1024;

#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled.
    pub fn check(&self) -> QueryResult<()> {
        if self.is_cancelled() { Err(QueryError::Cancelled) } else { Ok(()) }
    }

    /// A counter that looks at the flag every [`STEP`] ticks.
    pub fn ticker(&self) -> Ticker<'_> {
        Ticker { cancel: self, n: 0 }
    }
}

#[derive(Debug)]
pub struct Ticker<'a> {
    cancel: &'a Cancel,
    n: u32,
}

impl Ticker<'_> {
    /// One step; true when the request has been cancelled (looked at every [`STEP`] steps).
    pub fn stop(&mut self) -> bool {
        self.n = self.n.wrapping_add(1);
        self.n.is_multiple_of(STEP) && self.cancel.is_cancelled()
    }
}
