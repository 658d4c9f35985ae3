//! What every request handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_engine::ops::Operations;
use drover_spec::environment::Environment;
use drover_store::{DagEnvRow, DagVersionRow, GridCell, ImportError, RunRow, Store};

use crate::auth::login_limits::{ClientLimits, HashPool};
use crate::cache::TtlCache;
use crate::error::Failure;
use crate::listing::DagListing;

/// Settings of the web server.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (set when Drover is served over TLS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// Failed logins for one user within `login_window` before further tries are refused.
    pub login_max_failures: i64,
    pub login_window: Duration,
    /// Login attempts a client address may make per minute, after a first `login_burst`.
    pub login_attempts_per_minute: u32,
    pub login_burst: u32,
    /// Client addresses whose attempts are remembered (beyond, the oldest is forgotten).
    pub login_clients_tracked: usize,
    /// Password hashes computed at once (default: one per core but one, kept for serving
    /// everything else), and how many more may wait for a turn; logins beyond both are
    /// answered 503 with `Retry-After` at once.
    pub hash_threads: usize,
    pub hash_queue: usize,
    /// How long the busiest reads (DAG lists, run history, environments) are reused; zero
    /// turns the cache off. Changes made through this process show at once.
    pub read_cache: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            login_attempts_per_minute: 10,
            login_burst: 10,
            login_clients_tracked: 10_000,
            hash_threads: cores().saturating_sub(1).max(1),
            hash_queue: 4 * cores(),
            read_cache: Duration::from_secs(2),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Shared by every handler: cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ops: Operations,
    config: WebConfig,
    started: Instant,
    /// Connections as each environment's SQL role, for dataset previews (none: previews
    /// unavailable).
    staging: Option<drover_store::StagingPools>,
    pub(crate) caches: Caches,
    hashing: HashPool,
    login_clients: ClientLimits,
}

/// A DAG's page data: where it runs, its runs and their task states, its version per
/// environment.
#[derive(Debug)]
pub(crate) struct DagHistory {
    pub(crate) dag_env: DagEnvRow,
    pub(crate) runs: Vec<RunRow>,
    pub(crate) cells: Vec<GridCell>,
    /// (environment, version row, paused)
    pub(crate) versions: Vec<(String, DagVersionRow, bool)>,
    /// The task graph coloured by the latest run, laid out on first use.
    pub(crate) graph: std::sync::OnceLock<String>,
}

/// What the busiest pages read, kept briefly.
#[derive(Debug)]
pub(crate) struct Caches {
    pub(crate) environments: TtlCache<(), Vec<Environment>>,
    /// (environment, filter) → the DAG list
    pub(crate) listings: TtlCache<(String, String), DagListing>,
    /// (dag, environment, state, before) → what the DAG's page shows
    pub(crate) history: TtlCache<(String, String, String, String), DagHistory>,
    pub(crate) import_errors: TtlCache<String, Vec<ImportError>>,
    /// Maintenance in force, for the banner every page shows.
    pub(crate) maintenance: TtlCache<(), Option<drover_store::Maintenance>>,
}

impl Caches {
    fn new(ttl: Duration) -> Self {
        Self {
            environments: TtlCache::new(ttl),
            listings: TtlCache::new(ttl),
            history: TtlCache::new(ttl),
            import_errors: TtlCache::new(ttl),
            maintenance: TtlCache::new(ttl),
        }
    }

    pub(crate) fn clear(&self) {
        self.environments.clear();
        self.listings.clear();
        self.history.clear();
        self.import_errors.clear();
        self.maintenance.clear();
    }
}

impl WebState {
    pub fn new(
        ops: Operations,
        config: WebConfig,
        staging: Option<drover_store::StagingPools>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                ops,
                started: Instant::now(),
                staging,
                caches: Caches::new(config.read_cache),
                hashing: HashPool::new(config.hash_threads, config.hash_queue),
                login_clients: ClientLimits::new(
                    config.login_attempts_per_minute,
                    config.login_burst,
                    config.login_clients_tracked,
                ),
                config,
            }),
        }
    }

    pub fn staging(&self) -> Option<&drover_store::StagingPools> {
        self.inner.staging.as_ref()
    }

    pub fn ops(&self) -> &Operations {
        &self.inner.ops
    }

    pub fn store(&self) -> &Store {
        self.inner.ops.store()
    }

    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// Where passwords are hashed and checked: a few threads, a short queue.
    pub(crate) fn hashing(&self) -> &HashPool {
        &self.inner.hashing
    }

    /// Login attempts per client address.
    pub(crate) fn login_clients(&self) -> &ClientLimits {
        &self.inner.login_clients
    }

    pub(crate) fn caches(&self) -> &Caches {
        &self.inner.caches
    }

    /// Maintenance in force (briefly cached), for the banner.
    pub(crate) async fn maintenance(
        &self,
    ) -> Result<Arc<Option<drover_store::Maintenance>>, Failure> {
        let store = self.store().clone();
        self.inner
            .caches
            .maintenance
            .get_or_load((), || async move {
                store.maintenance().await.map_err(Failure::from)
            })
            .await
    }

    /// The environments in promotion order (briefly cached).
    pub(crate) async fn environments(&self) -> Result<Arc<Vec<Environment>>, Failure> {
        let store = self.store().clone();
        self.inner
            .caches
            .environments
            .get_or_load((), || async move {
                drover_engine::promotion::environments(&store)
                    .await
                    .map_err(Failure::from)
            })
            .await
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
