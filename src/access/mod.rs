//! Access control: departments and their grants ([`policy`]), API keys ([`keys`]), per-key
//! rate limits, and the tamper-evident audit trail ([`audit`]) with its index ([`trail_index`]).
//!
//! The access file is re-read when it changes, with no restart; a file that does not parse or
//! check is refused (logged with its line) and the previous policy stays in force.

pub mod audit;
pub mod keys;
pub mod policy;
pub mod trail_index;

pub use policy::{Access, Department, Grant, Operation, Policy, Principal, RateLimit, Role};

use crate::error::{Error, Result};
use arc_swap::ArcSwap;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

type Limiter = governor::DefaultDirectRateLimiter;

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq)]
pub enum Denial {
    /// No key, an unknown key or a revoked one.
    Unauthenticated,
    /// Over the key's rate limit: retry after this long.
    RateLimited(Duration),
}

/// The policy in force, its file, and the keys' rate limiters.
pub struct AccessControl {
    path: PathBuf,
    policy: ArcSwap<Policy>,
    /// The file's modification time when it was last read.
    seen: Mutex<Option<SystemTime>>,
    limiters: Mutex<HashMap<String, (policy::RateLimit, Arc<Limiter>)>>,
    /// When each key was last used (written beside the access file now and then, for
    /// `jichu keys list`).
    last_used: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The SHA-256 of a key, as the access file keeps it.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl AccessControl {
    /// Reads the access file (an absent file is an empty policy: no key is accepted). A file
    /// that does not check is an error at start.
    pub fn open(path: &Path) -> Result<AccessControl> {
        let policy = Self::read(path)?;
        Ok(AccessControl {
            path: path.into(),
            policy: ArcSwap::from_pointee(policy),
            seen: Mutex::new(modified(path)),
            limiters: Mutex::default(),
            last_used: Mutex::default(),
        })
    }

    fn read(path: &Path) -> Result<Policy> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Policy::parse(&text).map_err(|m| Error::Invalid(format!("access file {}: {m}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Re-reads the file if it changed since it was last read; a bad file is logged and the
    /// policy in force stays. Returns whether a new policy took effect.
    pub fn reload_if_changed(&self) -> bool {
        let now = modified(&self.path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now == *seen {
            return false;
        }
        *seen = now;
        match Self::read(&self.path) {
            Ok(policy) => {
                self.policy.store(Arc::new(policy));
                tracing::info!(path = %self.path.display(), "access file reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "access file refused; the previous one stays in force");
                false
            }
        }
    }

    /// The caller a bearer key makes, compared in constant time against every live key.
    pub fn authenticate(&self, key: Option<&str>) -> std::result::Result<Arc<Principal>, Denial> {
        let key = key.ok_or(Denial::Unauthenticated)?;
        let hash = key_hash(key);
        let policy = self.policy();
        let mut found = None;
        for (h, p) in &policy.by_hash {
            if bool::from(h.ct_eq(&hash)) {
                found = Some(p.clone());
            }
        }
        let who = found.ok_or(Denial::Unauthenticated)?;
        if let Some(limit) = who.department.rate_limit {
            self.limiter(&who.key_id, limit).check().map_err(|not_until| {
                Denial::RateLimited(
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default())),
                )
            })?;
        }
        let now = chrono::Utc::now();
        let mut used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        match used.get_mut(&who.key_id) {
            Some(t) => *t = now,
            None => {
                used.insert(who.key_id.clone(), now);
            }
        }
        drop(used);
        Ok(who)
    }

    fn limiter(&self, key_id: &str, limit: RateLimit) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        match limiters.get(key_id) {
            Some((l, limiter)) if *l == limit => limiter.clone(),
            _ => {
                let quota = Quota::per_second(NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN));
                let limiter = Arc::new(RateLimiter::direct(quota));
                limiters.insert(key_id.into(), (limit, limiter.clone()));
                limiter
            }
        }
    }

    /// Keys' last use, merged into the file beside the access file.
    pub fn save_last_used(&self) {
        let used = self.last_used.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if used.is_empty() {
            return;
        }
        let path = keys::last_used_path(&self.path);
        let mut all = keys::read_last_used(&path);
        all.extend(used);
        if let Ok(bytes) = serde_json::to_vec_pretty(&all) {
            let _ = std::fs::write(&path, bytes);
        }
    }

    /// Re-reads the file when it changes and records keys' last use, every second, until the
    /// returned handle is dropped.
    pub fn watch(self: &Arc<Self>) -> Watch {
        let weak = Arc::downgrade(self);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("jichu-access".into())
            .spawn(move || {
                let mut tick = 0u64;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(1))
                {
                    let Some(ac) = weak.upgrade() else { return };
                    ac.reload_if_changed();
                    tick += 1;
                    if tick.is_multiple_of(60) {
                        ac.save_last_used();
                    }
                }
                if let Some(ac) = weak.upgrade() {
                    ac.save_last_used();
                }
            })
            .ok();
        Watch { _stop: stop }
    }
}

/// Keeps the access file watched while held.
#[derive(Debug)]
pub struct Watch {
    _stop: std::sync::mpsc::Sender<()>,
}
