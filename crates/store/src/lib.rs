//! Drover's Postgres store. Every state change is one guarded statement
//! (`UPDATE … WHERE state = <expected> … RETURNING`), so two processes can never both move
//! the same run or task instance; and writes that belong together share a transaction.

mod approvals;
mod audit;
mod dags;
mod dataset_links;
mod deadlines;
mod deployments;
pub mod embedded;
mod error;
mod event_listing;
mod event_runs;
mod events;
mod freshness;
mod history;
mod logs;
mod maintenance;
mod notifications;
mod notify;
mod outcomes;
pub mod plans;
mod record_history;
mod replays;
mod revert_jobs;
mod runs;
mod slos;
mod sql_environments;
mod staging;
mod states;
mod tasks;
mod tx;
mod usage;
mod users;
mod workers;

pub use approvals::{ApprovalRow, NewApproval, PlanTotals, SYSTEM_ACTOR, wait_words};
pub use audit::AuditEvent;
pub use dags::{DagEnvRow, DagVersionRow, EnvironmentRow, VersionSync};
pub use dataset_links::{DatasetCause, DatasetLinkProblem, DatasetLinkRow, StartedRun};
pub use deadlines::DeadlineMiss;
pub use deployments::{CommitChange, DeploymentRow, ImportError, PromotionRequest};
pub use error::StoreError;
pub use event_listing::RunEvents;
pub use event_runs::FirstEvent;
pub use events::{Accepted, BatchRule, EventRow, NewEvent, dataset_trigger, started_by_events};
pub use freshness::{FreshnessChanges, FreshnessRule, FreshnessState, StaleEpisode};
pub use history::{AuditFilter, DagRunSummary, GridCell, MetricCounts, RunOrder};
pub use logs::{LogLine, LogStream, StoredLogLine};
pub use maintenance::Maintenance;
pub use notifications::NotificationRow;
pub use notify::{CHANNEL_QUEUE, CHANNEL_RUNS, Listener};
pub use outcomes::{ProblemFacts, ProblemKind, TaskOutcome};
pub use plans::{PlanRecord, PlanView, ReturnPlan, plan_records};
pub use record_history::{FieldChange, RECORD_HISTORY_DAYS, RecordQuery, RecordTouch, shown_value};
pub use replays::{MAX_REPLAY_EVENTS, ReplayBy, Replayed, ReplayedEvent};
pub use revert_jobs::{KEPT_KEYS, RevertChunk, RevertJob};
pub use runs::{NewRun, RunFilter, RunRow, TaskInstanceSpec};
pub use slos::{SloBurn, SloTallies};
pub use sql_environments::{
    Provisioned, STAGING_PASSWORD_VAR, SessionLimits, StagingPools, TEMP_FILE_LIMIT,
    staging_password_var,
};
pub use staging::{
    BudgetRefused, CheckOutcome, CheckResultRow, Column, DatasetPreview, DatasetRow, NewDataset,
    TryMetrics,
};
pub use states::{EventKind, RunState, RunType, TaskState};
pub use tasks::{
    ClaimRequest, ClaimedTask, CompleteResult, Completion, LOST_LIMIT, Outcome, TaskInstanceRow,
    TaskStateText, TaskTryRow,
};
pub use tx::Tx;
pub use usage::UsageRow;
pub use users::{ApiTokenRow, Authenticated, UserRow};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The embedded migrations (`migrations/` at the repository root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on Drover's database: a connection pool plus typed operations.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connect to `url`, creating the database first if it does not exist.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::Config)?;
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Create the target database if it is missing (connecting to `postgres` to do so).
async fn ensure_database(options: &PgConnectOptions) -> Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if name == "postgres" {
        return Ok(());
    }
    let mut conn = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let created = sqlx::query(sqlx::AssertSqlSafe(format!("create database {quoted}")))
            .execute(&mut conn)
            .await;
        // Another process may have created it meanwhile: 42P04 duplicate_database, or 23505
        // when both inserted into pg_database at once.
        if let Err(sqlx::Error::Database(e)) = &created {
            if !matches!(e.code().as_deref(), Some("42P04" | "23505")) {
                created?;
            }
        } else {
            created?;
        }
    }
    conn.close().await?;
    Ok(())
}
