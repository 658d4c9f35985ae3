//! Sandbox configuration: data size, credentials, limits and the fault profile.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::faults::FaultProfile;
use crate::webhooks::WebhookTarget;

/// Everything [`crate::start`] needs. `Default` gives a 100,000-lead sandbox with Marketo's limits.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Number of seeded leads (ids `1..=leads`).
    pub leads: usize,
    /// Seed for the data generator and for every fault dice roll.
    pub seed: u64,
    /// Client id of the main API user.
    pub client_id: String,
    /// Client secret of the main API user.
    pub client_secret: String,
    /// More API users (client id, secret), e.g. to test that bulk jobs are private to their creator.
    pub extra_clients: Vec<(String, String)>,
    /// Faults switched on at start (they can be changed at run time via `PUT /_sandbox/faults`).
    pub faults: FaultProfile,
    /// Marketo's limits.
    pub limits: Limits,
    /// Instant the seeded timestamps are relative to (`createdAt`/`updatedAt` fall within the 400
    /// days before it). `None` means "now" at start; the data itself (ids, emails, names…) does not
    /// depend on it.
    pub anchor: Option<DateTime<Utc>>,
    /// Directory for export files; `None` creates a temporary one that is deleted on shutdown.
    pub work_dir: Option<PathBuf>,
    /// Where form fills are POSTed (as Marketo's "Call Webhook" does); `None`: nowhere.
    /// Changeable at run time ([`crate::RunningSandbox::set_webhook`], `PUT /_sandbox/webhooks`).
    pub webhook: Option<WebhookTarget>,
    /// A made-up form fill every this often (100 ms to 24 h); `None` (the default): none.
    pub form_fills_every: Option<Duration>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            leads: 100_000,
            seed: 42,
            client_id: "drover-sandbox".to_owned(),
            client_secret: "drover-sandbox-secret".to_owned(),
            extra_clients: Vec::new(),
            faults: FaultProfile::default(),
            limits: Limits::default(),
            anchor: None,
            work_dir: None,
            webhook: None,
            form_fills_every: None,
        }
    }
}

/// Marketo's documented limits, all configurable.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Calls allowed in any sliding window of `rate_window` (606 beyond).
    pub calls_per_20s: u32,
    /// Length of the sliding rate window (Marketo's is 20 s); shorter only to scale time down
    /// in tests.
    pub rate_window: Duration,
    /// Calls executing at once (615 beyond).
    pub concurrent: u32,
    /// Calls per day, reset at midnight America/Chicago (607 beyond).
    pub daily_calls: u64,
    /// Bytes of export files per day (1029 "Export daily quota exceeded" beyond).
    pub export_daily_bytes: u64,
    /// Bulk jobs processing at once (exports and imports each).
    pub processing_jobs: u32,
    /// Bulk jobs queued, counting the processing ones (exports: 1029, imports: 1016 beyond).
    pub queued_jobs: u32,
    /// Lifetime of a new access token.
    pub token_ttl: Duration,
    /// Time a bulk job spends Queued→Processing→Completed beyond the actual work.
    pub job_latency: Duration,
    /// Whether the subscription offers the `updatedAt` filter of bulk lead exports; Marketo
    /// documents that some do not, and answer 1035 "Unsupported filter type".
    pub updated_at_filter: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            calls_per_20s: 100,
            rate_window: Duration::from_secs(20),
            concurrent: 10,
            daily_calls: 50_000,
            export_daily_bytes: 500 * 1024 * 1024,
            processing_jobs: 2,
            queued_jobs: 10,
            token_ttl: Duration::from_secs(3600),
            job_latency: Duration::from_secs(1),
            updated_at_filter: true,
        }
    }
}

impl Limits {
    /// No rate, concurrency or quota limits and no job latency: for benchmarks. Job slots stay
    /// at Marketo's 2 processing / 10 queued so clients still exercise their queueing.
    pub fn off() -> Self {
        Self {
            calls_per_20s: u32::MAX,
            rate_window: Duration::from_secs(20),
            concurrent: u32::MAX,
            daily_calls: u64::MAX,
            export_daily_bytes: u64::MAX,
            processing_jobs: 2,
            queued_jobs: 10,
            token_ttl: Duration::from_secs(3600),
            job_latency: Duration::ZERO,
            updated_at_filter: true,
        }
    }
}
