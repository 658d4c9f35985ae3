//! Shared server state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio_util::sync::CancellationToken;

use crate::auth::TokenStore;
use crate::clock::Clock;
use crate::config::Limits;
use crate::delivery::Hooks;
use crate::extract::ExportQueue;
use crate::faults::{Dice, FaultProfile, RecentCreates};
use crate::import::ImportQueue;
use crate::limits::{Effective, Limiter};
use crate::stats::Stats;
use crate::store::LeadStore;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) seed: u64,
    pub(crate) seeded_leads: u32,
    pub(crate) credentials: Vec<(String, String)>,
    pub(crate) limits: Limits,
    faults: RwLock<FaultProfile>,
    pub(crate) dice: Dice,
    /// New keys lately created by Sync Leads (the `upsert-race` fault).
    pub(crate) recent_creates: RecentCreates,
    pub(crate) clock: Clock,
    pub(crate) tokens: TokenStore,
    pub(crate) limiter: Limiter,
    pub(crate) stats: Stats,
    store: RwLock<LeadStore>,
    pub(crate) exports: ExportQueue,
    pub(crate) imports: ImportQueue,
    pub(crate) work_dir: PathBuf,
    pub(crate) shutdown: CancellationToken,
    /// The webhook form fills go to, the fill timer's interval and the deliveries made.
    pub(crate) hooks: Hooks,
    seq: AtomicU64,
}

impl AppState {
    pub(crate) fn new(
        seed: u64,
        credentials: Vec<(String, String)>,
        limits: Limits,
        faults: FaultProfile,
        store: LeadStore,
        work_dir: PathBuf,
        hooks: Hooks,
    ) -> Self {
        Self {
            seed,
            seeded_leads: store.seeded(),
            credentials,
            limits,
            faults: RwLock::new(faults),
            dice: Dice::new(seed),
            recent_creates: RecentCreates::default(),
            clock: Clock::default(),
            tokens: TokenStore::default(),
            limiter: Limiter::default(),
            stats: Stats::default(),
            store: RwLock::new(store),
            exports: ExportQueue::default(),
            imports: ImportQueue::default(),
            work_dir,
            shutdown: CancellationToken::new(),
            hooks,
            seq: AtomicU64::new(1),
        }
    }

    pub(crate) fn credentials_ok(&self, id: &str, secret: &str) -> bool {
        self.credentials.iter().any(|(i, s)| i == id && s == secret)
    }

    /// The current fault profile.
    pub(crate) fn faults(&self) -> FaultProfile {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_faults(&self, f: FaultProfile) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = f;
    }

    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, LeadStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_store(&self) -> RwLockWriteGuard<'_, LeadStore> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh sequence number (write sources, batch ids).
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Limits in force: configured ones tightened by the fault profile.
    pub(crate) fn effective_limits(&self) -> Effective {
        let f = self.faults();
        let mut e = Effective {
            calls_per_20s: self.limits.calls_per_20s,
            window: self.limits.rate_window,
            concurrent: self.limits.concurrent,
            daily_calls: self.limits.daily_calls,
            other_calls: 0,
            other_concurrent: 0,
        };
        if let Some(r) = &f.rate_limit {
            e.calls_per_20s = e.calls_per_20s.min(r.calls_per_20s);
            e.concurrent = e.concurrent.min(r.concurrent);
        }
        if let Some(s) = &f.shared_limit {
            e.other_calls = s.other_calls_per_20s;
            e.other_concurrent = s.other_concurrent;
        }
        if let Some(q) = &f.quota {
            e.daily_calls = e.daily_calls.min(q.daily_calls);
        }
        e
    }

    /// Export bytes allowed per day.
    pub(crate) fn export_quota(&self) -> u64 {
        let q = self
            .faults()
            .quota
            .map_or(u64::MAX, |q| q.export_daily_bytes);
        self.limits.export_daily_bytes.min(q)
    }

    /// Queue latency and processing latency of bulk jobs.
    pub(crate) fn job_latency(&self) -> (std::time::Duration, std::time::Duration) {
        let base = self.limits.job_latency / 2;
        match self.faults().slow_jobs {
            Some(s) => (
                base + std::time::Duration::from_millis(s.queue_ms),
                base + std::time::Duration::from_millis(s.processing_ms),
            ),
            None => (base, base),
        }
    }
}
