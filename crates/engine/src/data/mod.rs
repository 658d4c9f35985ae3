//! The data task kinds: export, transform, return, sql and check. Their rows live in the
//! staging schema; SQL a DAG wrote runs on the staging pool (as `drover_sql`), Drover's own
//! bookkeeping (dataset registry, receipts' registry, metrics, check results) on the store.

mod check;
mod export;
mod maps;
mod ret;
mod retention;
mod revert;
mod sql_task;
mod staged;
mod transform;
pub(crate) mod transform_sql;

use std::sync::Arc;

use drover_spec::dag::{CheckSource, DagLimits, TaskKind};
use drover_spec::environment::Environment;
use drover_store::{Outcome, Store, TryMetrics};
use sqlx::PgPool;
use uuid::Uuid;

pub use maps::{MapClients, PgBudget};
pub use retention::drop_expired_datasets;
pub use revert::{RevertReport, revert_return};

use crate::EngineError;
use crate::runner::{Job, RunFuture, Runner};

/// What the data kinds need: the store, the staging pool, and a MAP client per environment.
#[derive(Debug, Clone)]
pub struct DataPlane {
    pub(crate) store: Store,
    pub(crate) staging: PgPool,
    pub(crate) maps: Arc<MapClients>,
}

impl DataPlane {
    /// Connect the staging pool (as `drover_sql`) next to `store`.
    pub async fn connect(store: &Store, max_connections: u32) -> Result<Self, EngineError> {
        let staging = store.staging_pool(max_connections).await?;
        Ok(Self {
            maps: Arc::new(MapClients::new(store.clone())),
            store: store.clone(),
            staging,
        })
    }

    /// The same plane, its MAP clients taking `{ env: NAME }` secrets from `provided` first.
    pub fn with_provided_secrets(
        mut self,
        provided: std::collections::HashMap<String, drover_map::Secret>,
    ) -> Self {
        self.maps = Arc::new(MapClients::with_provided_secrets(
            self.store.clone(),
            provided,
        ));
        self
    }

    pub fn staging(&self) -> &PgPool {
        &self.staging
    }

    pub fn maps(&self) -> &MapClients {
        &self.maps
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
            // The staging role cannot log in: a setting to fix, not a moment to wait out.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                TaskError::Invalid(format!(
                    "cannot connect as the staging role `{}`: {} (give the role a password and set {})",
                    drover_store::STAGING_ROLE,
                    db.message(),
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
            let id = TryId {
                run_id,
                run: run_id.simple().to_string(),
                ti_id: job.log.ti_id,
                try_number: i32::try_from(job.context.try_number).unwrap_or(0),
                dag_id: job.context.dag_id.clone(),
                task_id: job.context.task_id.clone(),
                environment,
                limits: job.limits,
            };
            let work = async {
                if uses_the_map(&job.task.kind) {
                    within_dag_api_budget(&self.plane, &id).await?;
                }
                match &job.task.kind {
                    TaskKind::Export(spec) => export::run(&self.plane, &id, &job, spec).await,
                    TaskKind::Transform(steps) => {
                        transform::run(&self.plane, &id, &job, steps).await
                    }
                    TaskKind::Return(spec) => ret::run(&self.plane, &id, &job, spec).await,
                    TaskKind::Sql { query } => sql_task::run(&self.plane, &id, &job, query).await,
                    TaskKind::Check(spec) => check::run(&self.plane, &id, &job, spec).await,
                    TaskKind::Command(_) | TaskKind::Noop(_) => {
                        Err(TaskError::Invalid("not a data task".to_owned()))
                    }
                }
            };
            let mut cancel = job.cancel.clone();
            let result = tokio::select! {
                r = work => r,
                () = tokio::time::sleep(job.timeout) => Err(TaskError::Transient(format!("timed out after {}s", job.timeout.as_secs()))),
                () = crate::runner::cancelled(&mut cancel) => Err(TaskError::Transient("cancelled".to_owned())),
            };
            match result {
                Ok(metrics) => {
                    if let Err(e) = self
                        .plane
                        .store
                        .record_try_metrics(id.ti_id, id.try_number, &metrics)
                        .await
                    {
                        tracing::warn!(error = %e, "could not record what the try moved");
                    }
                    Outcome::Success
                }
                Err(e) => {
                    job.log.system(format!("failed: {e}"));
                    failed(e.to_string(), e.retryable())
                }
            }
        })
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
/// task starts: the calls its finished tries spent since the MAP's day began.
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
