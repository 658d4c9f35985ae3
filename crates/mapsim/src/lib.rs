//! The MAP sandbox: a local HTTP server speaking the subset of the Marketo REST API Drover uses
//! (Identity, lead describe/get/sync, activity types, bulk extract of leads and activities, bulk
//! import of leads, usage stats), over seeded deterministic data, with Marketo's limits and
//! switchable faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), drover_mapsim::SandboxError> {
//! let sandbox = drover_mapsim::start(
//!     drover_mapsim::SandboxConfig { leads: 1_000, faults: "rate-limit".parse().unwrap_or_default(), ..Default::default() },
//!     "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
//! ).await?;
//! println!("{}", sandbox.base_url());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Seeded timestamps (`createdAt`, `updatedAt`, activity dates) fall in the 400 days before
//! [`SandboxConfig::anchor`] (default: the time of start); everything else depends only on the
//! seed. Admin endpoints under `/_sandbox/` (no auth) let tests switch faults and inspect state.
//!
//! Form fills (`POST /_sandbox/forms/fill`, [`RunningSandbox::fill_form`], or a timer) create
//! or update a lead, log its "Fill Out Form" activity and POST the lead's tokens to a webhook,
//! as Marketo's "Call Webhook" flow step does:
//!
//! ```no_run
//! # async fn demo(sandbox: &drover_mapsim::RunningSandbox) -> Result<(), Box<dyn std::error::Error>> {
//! let hook = drover_mapsim::WebhookTarget::new("http://127.0.0.1:8080/hooks/dev/contact_sales/form")?
//!     .with_bearer("the-hook-secret")?;
//! sandbox.set_webhook(Some(hook));
//! sandbox.set_form_fills_every(Some(std::time::Duration::from_secs(30)))?;
//! let fill = sandbox.fill_form(drover_mapsim::FormFill { country: Some("Germany".into()), ..Default::default() }).await?;
//! println!("lead {} → {:?}", fill.lead_id, fill.webhook.map(|d| d.status));
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod clock;
mod config;
mod data;
mod delivery;
mod envelope;
mod extract;
mod faults;
mod fill_timer;
mod forms;
mod import;
mod leads;
mod limits;
mod rules;
mod server;
mod state;
mod stats;
mod store;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use config::{Limits, SandboxConfig};
pub use delivery::{Delivery, DeliveryOutcome, SIGNATURE_HEADER};
pub use faults::{
    BrokenDownloadFault, FAULT_NAMES, FaultProfile, PartialImportFault, QuotaFault, RateLimitFault,
    ServerErrorFault, SharedLimitFault, SlowJobsFault, StatusLagFault, TimeoutFault,
    TokenExpiryFault, UnknownFault, UpsertRaceFault,
};
pub use forms::{DEFAULT_FORM, FormError, FormFill, FormFillOutcome};
pub use webhooks::{
    MARKETO_WEBHOOK_TIMEOUT, MAX_FILL_INTERVAL, MIN_FILL_INTERVAL, WebhookError, WebhookTarget,
    format_every, parse_every,
};

use crate::state::AppState;

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The work directory could not be created.
    #[error("cannot create the work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// Seeding the data failed.
    #[error("seeding failed: {0}")]
    Seed(String),
}

/// A started sandbox. Dropping it stops the server (without waiting) and deletes the work
/// directory it created; [`RunningSandbox::shutdown`] does the same and waits.
pub struct RunningSandbox {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: DirGuard,
}

/// Deletes the sandbox's own temporary directory when dropped.
#[derive(Debug)]
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl std::fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds `addr` (port 0 picks a free port), seeds the data and serves in a spawned task.
pub async fn start(
    config: SandboxConfig,
    addr: SocketAddr,
) -> Result<RunningSandbox, SandboxError> {
    let leads = u32::try_from(config.leads)
        .ok()
        .filter(|n| *n < u32::MAX / 16)
        .ok_or_else(|| SandboxError::Config(format!("too many leads: {}", config.leads)))?;
    if config.client_id.is_empty() || config.client_secret.is_empty() {
        return Err(SandboxError::Config(
            "client_id and client_secret must not be empty".to_owned(),
        ));
    }
    let (work_dir, owns_dir) = match &config.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("drover-mapsim-{}", uuid::Uuid::new_v4().simple())),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir).map_err(|source| SandboxError::WorkDir {
        path: work_dir.clone(),
        source,
    })?;
    if let Some(every) = config.form_fills_every {
        webhooks::check_every(every).map_err(|e| SandboxError::Config(e.to_string()))?;
    }
    let hooks = delivery::Hooks::new(config.webhook.clone(), config.form_fills_every);
    let anchor = config.anchor.unwrap_or_else(chrono::Utc::now).timestamp();
    let generator = data::Generator::new(config.seed, anchor);
    let store = tokio::task::spawn_blocking(move || store::LeadStore::seed(generator, leads))
        .await
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    let mut credentials = vec![(config.client_id.clone(), config.client_secret.clone())];
    credentials.extend(config.extra_clients.iter().cloned());
    let state = Arc::new(AppState::new(
        config.seed,
        credentials,
        config.limits,
        config.faults,
        store,
        work_dir,
        hooks,
    ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = server::router(state.clone());
    let shutdown = state.shutdown.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
            shutdown.cancel();
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "MAP sandbox server failed");
        }
    });
    tokio::spawn(fill_timer::run(state.clone()));
    tracing::info!(addr = %local, leads, faults = %state.faults(), "MAP sandbox started");
    let dir = DirGuard(owns_dir.then(|| state.work_dir.clone()));
    Ok(RunningSandbox {
        addr: local,
        state,
        stop,
        task,
        _dir: dir,
    })
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT` (the Marketo base URL to give a client).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fault profile in force now.
    pub fn faults(&self) -> FaultProfile {
        self.state.faults()
    }

    /// Switches the fault profile (same as `PUT /_sandbox/faults`).
    pub fn set_faults(&self, faults: FaultProfile) {
        self.state.set_faults(faults);
    }

    /// Sets where form fills are POSTed (same as `PUT /_sandbox/webhooks`); `None` stops
    /// sending. Deliveries already under way finish with the target they started with.
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.state.hooks.set_target(target);
    }

    /// The webhook target in force (its `Debug` shows no secret).
    pub fn webhook(&self) -> Option<WebhookTarget> {
        self.state.hooks.target()
    }

    /// Starts, changes (100 ms to 24 h) or, with `None`, stops the form-fill timer.
    pub fn set_form_fills_every(&self, every: Option<Duration>) -> Result<(), WebhookError> {
        if let Some(d) = every {
            webhooks::check_every(d)?;
        }
        self.state.hooks.set_every(every);
        Ok(())
    }

    /// The form-fill timer's interval, `None` when it is off.
    pub fn form_fills_every(&self) -> Option<Duration> {
        self.state.hooks.every()
    }

    /// A form fill (same as `POST /_sandbox/forms/fill`): the lead created or updated, its
    /// activities logged, and the webhook (when set) called and waited for.
    pub async fn fill_form(&self, fill: FormFill) -> Result<FormFillOutcome, FormError> {
        forms::fill_and_deliver(&self.state, &fill).await
    }

    /// Webhook deliveries made (the last 10,000, oldest first).
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.state.hooks.deliveries().1
    }

    /// Stops serving (in-flight requests get up to 5 s), cancels jobs and deletes export files.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.state.shutdown.cancel();
        self.state.exports.cancel_all();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let dir = self._dir;
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
    }

    /// Serves until `signal` resolves, then shuts down (for the `drover mapsim` command).
    pub async fn serve_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}
