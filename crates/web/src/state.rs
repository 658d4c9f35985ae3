//! What every request handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_engine::ops::Operations;
use drover_store::Store;

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
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
        }
    }
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
    /// Connections to the staging schema, for dataset previews (none: previews unavailable).
    staging: Option<sqlx::PgPool>,
}

impl WebState {
    pub fn new(ops: Operations, config: WebConfig, staging: Option<sqlx::PgPool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                ops,
                config,
                started: Instant::now(),
                staging,
            }),
        }
    }

    pub fn staging(&self) -> Option<&sqlx::PgPool> {
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

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
