//! The data task kinds: export, transform, return, sql and check. Their rows live in the
//! environment's staging schema (`staging_<env>`). Each try runs on a connection of its own,
//! logged in as the environment's SQL role (`drover_sql_<env>`) with server-side limits,
//! closed when the try ends; a try that times out or is cancelled has its server query
//! ended before its outcome is recorded. Drover's own bookkeeping (dataset registry,
//! receipts, metrics, check results) is written by Drover's login.

mod check;
pub mod events_dataset;
mod export;
mod maps;
mod ret;
mod retention;
mod revert;
pub mod revert_job;
mod sql_task;
mod staged;
mod transform;
pub(crate) mod transform_sql;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_map::{MapConnector, Observer, Scope};
use drover_spec::dag::{CheckSource, DagLimits, TaskKind};
use drover_spec::environment::Environment;
use drover_store::{Outcome, SessionLimits, StagingPools, Store, TryMetrics};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub use maps::{MapClients, PgBudget};
pub use retention::drop_expired_datasets;
pub use revert::{RevertReport, revert_return};

use crate::EngineError;
use crate::runner::{Job, RunFuture, Runner};

/// How long Drover waits for the server to end a timed-out try's session.
const END_BACKEND_WITHIN: Duration = Duration::from_secs(5);

/// What the data kinds need: the store, each environment's SQL role, and a MAP client per
/// environment.
#[derive(Debug, Clone)]
pub struct DataPlane {
    pub(crate) store: Store,
    pub(crate) staging: StagingPools,
    pub(crate) maps: Arc<MapClients>,
    /// Environments whose schemas and role this process has provisioned.
    provisioned: Arc<Mutex<HashSet<String>>>,
}

impl DataPlane {
    /// A plane next to `store`; each environment's schemas and role are provisioned when a
    /// task of it first runs, and its connections open lazily.
    pub async fn connect(store: &Store, max_connections: u32) -> Result<Self, EngineError> {
        Ok(Self {
            maps: Arc::new(MapClients::new(store.clone())),
            store: store.clone(),
            staging: StagingPools::new(store.clone(), max_connections),
            provisioned: Arc::default(),
        })
    }

    /// The same plane, its MAP clients taking `{ env: NAME }` secrets from `provided` first.
    pub fn with_provided_secrets(
        mut self,
        provided: std::collections::HashMap<String, drover_map::Secret>,
    ) -> Self {
        let addresses = self.maps.addresses().clone();
        self.maps = Arc::new(
            MapClients::with_provided_secrets(self.store.clone(), provided).at_addresses(addresses),
        );
        self
    }

    /// The same plane, its MAP clients reaching each environment in `addresses` there
    /// instead of at its file's `base_url` (standalone's sandboxes on free ports).
    pub fn with_map_addresses(
        mut self,
        addresses: std::collections::HashMap<String, String>,
    ) -> Self {
        self.maps = Arc::new(
            MapClients::with_provided_secrets(self.store.clone(), self.maps.provided().clone())
                .at_addresses(addresses),
        );
        self
    }

    /// Pools as each environment's SQL role, for reading staged rows.
    pub fn staging(&self) -> &StagingPools {
        &self.staging
    }

    pub fn maps(&self) -> &MapClients {
        &self.maps
    }

    /// Provision `environment`'s schemas and role once per process.
    pub async fn provision(&self, environment: &str) -> Result<(), EngineError> {
        if self
            .provisioned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(environment)
        {
            return Ok(());
        }
        let done = self.store.provision_sql_environment(environment).await?;
        report_provisioned(environment, &done);
        self.provisioned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(environment.to_owned());
        Ok(())
    }

    /// A connection of its own for one try's SQL, as `environment`'s role, its statements,
    /// lock waits and idle transactions bounded by `remaining`.
    async fn try_connection(
        &self,
        environment: &str,
        remaining: Duration,
    ) -> Result<PgConnection, TaskError> {
        self.provision(environment).await.map_err(|e| {
            TaskError::Transient(format!("preparing the SQL role of {environment}: {e}"))
        })?;
        let options = self
            .store
            .staging_options(environment, SessionLimits::within(remaining))?;
        PgConnection::connect_with(&options).await.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                TaskError::Invalid(format!(
                    "cannot connect as `{}`, the SQL role of environment {environment}: {} (give the role a password and set {} or {})",
                    drover_spec::dataset::sql_role(environment),
                    db.message(),
                    drover_store::staging_password_var(environment),
                    drover_store::STAGING_PASSWORD_VAR
                ))
            }
            _ => TaskError::from(e),
        })
    }
}

/// Say what provisioning did that an operator should know (a refused `temp_file_limit` once
/// per process).
pub fn report_provisioned(environment: &str, done: &drover_store::Provisioned) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if done.moved > 0 {
        tracing::info!(
            environment,
            tables = done.moved,
            "moved staged tables of the old shared schema into the environment's schemas"
        );
    }
    if let Some(why) = &done.temp_file_limit_refused {
        WARNED.call_once(|| {
            tracing::warn!(
                environment,
                reason = %why,
                "could not set temp_file_limit on the SQL roles (Drover's login may not): user SQL may fill the disk with temporary files; set it as a superuser: alter role drover_sql_<env> set temp_file_limit = '{}'",
                drover_store::TEMP_FILE_LIMIT
            );
        });
    }
}

/// A failed data task, told for its log and its error line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TaskError {
    /// The DAG asks for something that cannot work (a missing column, a bad timestamp):
    /// retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The MAP said no for good (quota, budget, a refused request).
    #[error("{0}")]
    Map(String),
    /// Something that may pass on a retry (the network, the MAP's load, the database).
    #[error("{0}")]
    Transient(String),
    /// Over a backstop (`limits:` of the DAG or environment): not retried.
    #[error("{0}")]
    Limit(String),
    /// A return planned and now waits for approval of its plan: the try already moved its
    /// task on (see `ret::approval`).
    #[error("waiting for approval")]
    AwaitingApproval,
}

impl TaskError {
    fn retryable(&self) -> bool {
        matches!(self, TaskError::Transient(_))
    }
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // SQL the DAG wrote that Postgres refuses (syntax, missing column, permission, type).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("42") || c.starts_with("22") || c.starts_with("23")
                }) =>
            {
                TaskError::Invalid(format!("the database refused the SQL: {}", db.message()))
            }
            // A role that cannot log in: a setting to fix, not a moment to wait out.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                TaskError::Invalid(format!(
                    "cannot connect as the environment's SQL role: {} (give the role a password and set {}_<ENV> or {})",
                    db.message(),
                    drover_store::STAGING_PASSWORD_VAR,
                    drover_store::STAGING_PASSWORD_VAR
                ))
            }
            _ => TaskError::Transient(format!("database error: {e}")),
        }
    }
}

impl From<drover_store::StoreError> for TaskError {
    fn from(e: drover_store::StoreError) -> Self {
        TaskError::Transient(e.to_string())
    }
}

/// Who is running: the try's identity, from its job.
#[derive(Debug, Clone)]
pub(crate) struct TryId {
    pub(crate) run_id: Uuid,
    /// `run_id` without dashes, as in table names.
    pub(crate) run: String,
    pub(crate) ti_id: i64,
    pub(crate) try_number: i32,
    pub(crate) dag_id: String,
    pub(crate) task_id: String,
    pub(crate) environment: Arc<Environment>,
    /// The DAG's backstops.
    pub(crate) limits: DagLimits,
    /// The try's handle on the environment's MAP client (for the kinds that use the MAP): its
    /// usage is the try's, failed or not; its calls held by the MAP's limits give up when the
    /// try's time is up; changes of the client's pace go to the try's log.
    pub(crate) map: Option<Arc<dyn MapConnector>>,
}

impl TryId {
    /// The try's MAP handle.
    pub(crate) fn map(&self) -> Result<Arc<dyn MapConnector>, TaskError> {
        self.map
            .clone()
            .ok_or_else(|| TaskError::Invalid("this task kind has no MAP client".to_owned()))
    }
}

/// Runs the data kinds.
#[derive(Debug, Clone)]
pub struct DataRunner {
    plane: DataPlane,
}

impl DataRunner {
    pub fn new(plane: DataPlane) -> Self {
        Self { plane }
    }
}

impl Runner for DataRunner {
    fn run<'a>(&'a self, job: Job<'a>) -> RunFuture<'a> {
        Box::pin(async move {
            let Some(environment) = job.environment.clone() else {
                return failed(
                    format!(
                        "environment `{}` is not known to this worker",
                        job.context.env.name
                    ),
                    true,
                );
            };
            let Ok(run_id) = Uuid::parse_str(&job.context.run_id) else {
                return failed(format!("bad run id `{}`", job.context.run_id), false);
            };
            let started = Instant::now();
            let map = if uses_the_map(&job.task.kind) {
                match self.plane.maps.client(&environment) {
                    Ok(client) => Some(client.scoped_with(try_scope(&job))),
                    Err(e) => {
                        job.log.system(format!("failed: {e}"));
                        return failed(e.to_string(), e.retryable());
                    }
                }
            } else {
                None
            };
            let id = TryId {
                run_id,
                run: run_id.simple().to_string(),
                ti_id: job.log.ti_id,
                try_number: i32::try_from(job.context.try_number).unwrap_or(0),
                dag_id: job.context.dag_id.clone(),
                task_id: job.context.task_id.clone(),
                environment,
                limits: job.limits,
                map,
            };
            // The server process of the try's connection, once it is open.
            let backend = AtomicI32::new(0);
            let work = async {
                if uses_the_map(&job.task.kind) {
                    within_dag_api_budget(&self.plane, &id).await?;
                }
                let mut conn = if needs_sql(&job.task.kind) {
                    let remaining = job.timeout.saturating_sub(started.elapsed());
                    let mut conn = self
                        .plane
                        .try_connection(&id.environment.name, remaining)
                        .await?;
                    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
                        .fetch_one(&mut conn)
                        .await?;
                    backend.store(pid, Ordering::SeqCst);
                    if !job.context.events.is_empty() {
                        events_dataset::ensure_events_table(&self.plane, &id, job.dag).await?;
                    }
                    Some(conn)
                } else {
                    None
                };
                let done = match (&job.task.kind, conn.as_mut()) {
                    (TaskKind::Export(spec), Some(c)) => {
                        export::run(&self.plane, c, &id, &job, spec).await
                    }
                    (TaskKind::Transform(steps), Some(c)) => {
                        transform::run(&self.plane, c, &id, &job, steps).await
                    }
                    (TaskKind::Return(spec), Some(c)) => {
                        ret::run(&self.plane, c, &id, &job, spec).await
                    }
                    (TaskKind::Sql { query }, Some(c)) => {
                        sql_task::run(&self.plane, c, &id, &job, query).await
                    }
                    (TaskKind::Check(spec), c) => check::run(&self.plane, c, &id, &job, spec).await,
                    _ => Err(TaskError::Invalid("not a data task".to_owned())),
                };
                // Nothing the try's SQL did (locks, settings, a changed role) outlives it:
                // its connection is closed, never reused. Its server process is forgotten
                // first: once closed, its pid may belong to another session.
                if let Some(conn) = conn {
                    backend.store(0, Ordering::SeqCst);
                    let _ = conn.close().await;
                }
                done
            };
            let mut cancel = job.cancel.clone();
            let stopped = tokio::select! {
                r = work => Ok(r),
                () = tokio::time::sleep(job.timeout) => Err(format!("timed out after {}s", job.timeout.as_secs())),
                () = crate::runner::cancelled(&mut cancel) => Err("cancelled".to_owned()),
            };
            let result = match stopped {
                Ok(r) => r,
                // The try's future is gone (its connection with it), but the server may still
                // be running its statement: end it before the outcome is recorded.
                Err(why) => Err(TaskError::Transient(
                    self.plane
                        .end_try_backend(&id.environment.name, backend.load(Ordering::SeqCst), &why)
                        .await,
                )),
            };
            // The MAP calls the try spent, whatever its outcome: they count against the DAG's
            // and the environment's daily budgets.
            let api_calls = id
                .map
                .as_ref()
                .map(|m| i64::try_from(m.usage().calls).unwrap_or(i64::MAX));
            match result {
                Ok(mut metrics) => {
                    if api_calls.is_some() {
                        metrics.api_calls = api_calls;
                    }
                    self.plane.record_metrics(&id, &metrics).await;
                    Outcome::Success
                }
                Err(TaskError::AwaitingApproval) => Outcome::Recorded,
                Err(e) => {
                    if api_calls.is_some() {
                        let spent = TryMetrics {
                            api_calls,
                            ..TryMetrics::default()
                        };
                        self.plane.record_metrics(&id, &spent).await;
                    }
                    job.log.system(format!("failed: {e}"));
                    failed(e.to_string(), e.retryable())
                }
            }
        })
    }
}

/// A try's MAP scope: calls held back by the MAP's rate or concurrency limits are retried
/// until the try's time is up, and changes of the client's pace are told in the try's log.
fn try_scope(job: &Job<'_>) -> Scope {
    let log = job.log.clone();
    Scope {
        deadline: Some(tokio::time::Instant::now() + job.timeout),
        observer: Some(Observer::new(move |notice| log.system(notice.to_string()))),
    }
}

impl DataPlane {
    /// Record what a try moved (a failure is only logged: the outcome matters more).
    async fn record_metrics(&self, id: &TryId, metrics: &TryMetrics) {
        if let Err(e) = self
            .store
            .record_try_metrics(id.ti_id, id.try_number, metrics)
            .await
        {
            tracing::warn!(error = %e, "could not record what the try moved");
        }
    }

    /// End the server process of a stopped try of `environment` (`pid` 0: it had none, or its
    /// connection was already closing) and say so after `why`.
    async fn end_try_backend(&self, environment: &str, pid: i32, why: &str) -> String {
        if pid == 0 {
            return why.to_owned();
        }
        match self
            .store
            .end_backend(environment, pid, END_BACKEND_WITHIN)
            .await
        {
            Ok(true) => format!("{why}; the query was cancelled on the server"),
            Ok(false) => format!(
                "{why}; the server was asked to cancel the query but its session had not ended after {}s",
                END_BACKEND_WITHIN.as_secs()
            ),
            Err(e) => format!("{why}; the query could not be cancelled on the server: {e}"),
        }
    }
}

/// Whether a kind runs SQL (a check of the MAP does not).
fn needs_sql(kind: &TaskKind) -> bool {
    match kind {
        TaskKind::Check(c) => matches!(c.source, CheckSource::Sql(_)),
        TaskKind::Command(_) | TaskKind::Noop(_) => false,
        _ => true,
    }
}

fn uses_the_map(kind: &TaskKind) -> bool {
    match kind {
        TaskKind::Export(_) | TaskKind::Return(_) => true,
        TaskKind::Check(c) => matches!(c.source, CheckSource::Map(_)),
        _ => false,
    }
}

/// The DAG's own daily MAP API budget (`limits.map_api_calls_per_day`), checked before a MAP
/// task starts: the calls its finished tries (failed ones too) spent since the MAP's day began.
async fn within_dag_api_budget(plane: &DataPlane, id: &TryId) -> Result<(), TaskError> {
    let Some(limit) = id.limits.map_api_calls_per_day else {
        return Ok(());
    };
    let used = plane
        .store
        .dag_api_calls_since(&id.environment.name, &id.dag_id, maps::map_day_start())
        .await?;
    if u64::try_from(used).unwrap_or(0) >= limit {
        return Err(TaskError::Limit(format!(
            "the daily MAP API budget of DAG `{}` in {} is used up: {used} of {limit} calls spent today (`limits.map_api_calls_per_day`; the MAP's day starts at midnight US Central)",
            id.dag_id, id.environment.name
        )));
    }
    Ok(())
}

fn failed(error: String, retryable: bool) -> Outcome {
    Outcome::Failed {
        error,
        exit_code: None,
        retryable,
    }
}

/// Metrics of a task that read `rows_in` rows and wrote `rows_out`.
pub(crate) fn rows_metrics(rows_in: Option<i64>, rows_out: i64) -> TryMetrics {
    TryMetrics {
        rows_in,
        rows_out: Some(rows_out),
        ..TryMetrics::default()
    }
}
