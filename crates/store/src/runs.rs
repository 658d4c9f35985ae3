//! Runs: creation (idempotent by interval), start (within max_active_runs), finish, queries.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::notify::CHANNEL_RUNS;
use crate::{Result, RunState, RunType, Store, StoreError};

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub environment: String,
    pub version_id: i64,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub interval_start: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    pub params: serde_json::Value,
    pub triggered_by: Option<String>,
    /// When it must have finished (from the DAG's deadline), if it has one.
    pub deadline_at: Option<DateTime<Utc>>,
    /// A preview: its returns record their plan and send nothing.
    pub preview: bool,
}

/// A run as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: Uuid,
    pub dag_id: String,
    pub environment: String,
    pub version_id: i64,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub interval_start: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    pub state: RunState,
    pub params: serde_json::Value,
    pub triggered_by: Option<String>,
    /// The commit its environment ran when the run was created (none before DAGs came from git).
    pub commit_sha: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When it must have finished, if its DAG has a deadline.
    pub deadline_at: Option<DateTime<Utc>>,
    /// `pending`, `met` or `missed` (none without a deadline).
    pub deadline_state: Option<String>,
    /// A preview: its returns record their plan and send nothing.
    pub preview: bool,
}

#[derive(FromRow)]
pub(crate) struct RawRun {
    id: Uuid,
    dag_id: String,
    environment: String,
    version_id: i64,
    run_type: String,
    logical_date: DateTime<Utc>,
    interval_start: DateTime<Utc>,
    interval_end: DateTime<Utc>,
    state: String,
    params: serde_json::Value,
    triggered_by: Option<String>,
    commit_sha: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    deadline_at: Option<DateTime<Utc>>,
    deadline_state: Option<String>,
    preview: bool,
}

impl TryFrom<RawRun> for RunRow {
    type Error = StoreError;
    fn try_from(r: RawRun) -> Result<Self> {
        Ok(RunRow {
            id: r.id,
            dag_id: r.dag_id,
            environment: r.environment,
            version_id: r.version_id,
            run_type: RunType::parse(&r.run_type)?,
            logical_date: r.logical_date,
            interval_start: r.interval_start,
            interval_end: r.interval_end,
            state: RunState::parse(&r.state)?,
            params: r.params,
            triggered_by: r.triggered_by,
            commit_sha: r.commit_sha,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            deadline_at: r.deadline_at,
            deadline_state: r.deadline_state,
            preview: r.preview,
        })
    }
}

pub(crate) const RUN_COLUMNS: &str = "id, dag_id, environment, version_id, run_type, logical_date, interval_start, \
     interval_end, state, params, triggered_by, commit_sha, created_at, started_at, finished_at, \
     deadline_at, deadline_state, preview";

/// A condition on a queued `dag_run` row: it is not a run started by events (a webhook's, a
/// dataset's, a replay) of a DAG paused in its environment. Such runs wait, queued, until the
/// DAG is unpaused; scheduled, manual and backfill runs go by their own rules.
const NOT_HELD_BY_PAUSE: &str = "not (dag_run.run_type in ('event', 'dataset', 'replay') \
     and exists (select 1 from dag_env p where p.dag_id = dag_run.dag_id \
                 and p.environment = dag_run.environment and p.paused))";

/// Filters for listing runs; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    pub environment: Option<String>,
    pub state: Option<RunState>,
    pub limit: i64,
}

/// A task instance to create when a run starts.
#[derive(Debug, Clone)]
pub struct TaskInstanceSpec {
    pub task_id: String,
    pub upstream: Vec<String>,
    pub trigger_rule: String,
    pub is_leaf: bool,
    pub priority: i32,
    pub retries: i32,
    pub retry_delay_secs: i32,
    pub retry_backoff: String,
    pub max_retry_delay_secs: i32,
    pub timeout_secs: i32,
    /// When it must have finished, if its task has a deadline.
    pub deadline_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Create a queued run. Scheduled and backfill runs are unique per (dag, environment,
    /// logical date): `Ok(None)` means that run already exists.
    pub async fn insert_run(&self, run: &NewRun) -> Result<Option<Uuid>> {
        let mut tx = self.begin().await?;
        let id = tx.insert_run(run).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get_run(&self, id: Uuid) -> Result<RunRow> {
        let raw: Option<RawRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RUN_COLUMNS} from dag_run where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        raw.ok_or_else(|| StoreError::NotFound(format!("no run {id}")))?
            .try_into()
    }

    /// Runs, newest logical date first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let rows: Vec<RawRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RUN_COLUMNS} from dag_run \
             where ($1::text is null or dag_id = $1) and ($2::text is null or environment = $2) \
               and ($3::text is null or state = $3) \
             order by logical_date desc, created_at desc limit $4"
        )))
        .bind(&filter.dag_id)
        .bind(&filter.environment)
        .bind(filter.state.map(RunState::as_str))
        .bind(if filter.limit > 0 { filter.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunRow::try_from).collect()
    }

    /// Mark a run succeeded or failed by hand; see [`Tx::mark_run`].
    pub async fn mark_run(&self, id: Uuid, state: RunState) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let tasks = tx.mark_run(id, state).await?;
        tx.commit().await?;
        Ok(tasks)
    }

    /// The end of the latest scheduled run's interval, per active (dag, environment). Uses
    /// the history index: one short lookup per DAG however long the history.
    pub async fn last_scheduled_ends(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        Ok(sqlx::query_as(
            "select d.dag_id, d.environment, r.interval_end from dag_env d \
             cross join lateral (select interval_end from dag_run r \
                                 where r.dag_id = d.dag_id and r.environment = d.environment \
                                   and r.run_type = 'scheduled' \
                                 order by r.logical_date desc limit 1) r \
             where d.active",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Versions of the queued runs of one DAG in one environment.
    pub async fn queued_run_versions(&self, dag_id: &str, environment: &str) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "select distinct version_id from dag_run where dag_id = $1 and environment = $2 and state = 'queued'",
        )
        .bind(dag_id)
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (dag, environment) pairs with queued runs ready to start (a run gathering a batch is
    /// ready once full or due; a run started by events waits while its DAG is paused), and
    /// how many of their runs are running.
    pub async fn runs_waiting_to_start(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select q.dag_id, q.environment, \
                    (select count(*) from dag_run r where r.dag_id = q.dag_id \
                       and r.environment = q.environment and r.state = 'running') \
             from (select distinct dag_id, environment from dag_run where state = 'queued' \
                   and (batch_until is null or batch_until <= now() or event_count >= batch_max) \
                   and {NOT_HELD_BY_PAUSE}) q"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Start queued runs of one DAG in one environment, oldest logical date first, while
    /// fewer than `max_active` are running. `tasks_of(version_id, scheduled_at)` gives the task
    /// instances to create (`scheduled_at`: when the run was due, deadlines count from it; none
    /// for backfills). The DAG's row is locked meanwhile, so concurrent schedulers cannot exceed the
    /// limit. `env_max_active` caps the running runs of all DAGs of the environment (its row
    /// is locked too then). Returns the started run ids.
    pub async fn start_queued_runs<F>(
        &self,
        dag_id: &str,
        environment: &str,
        max_active: i64,
        env_max_active: Option<i64>,
        mut tasks_of: F,
    ) -> Result<Vec<Uuid>>
    where
        F: FnMut(i64, Option<DateTime<Utc>>) -> Option<Vec<TaskInstanceSpec>>,
    {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select 1 from dag_env where dag_id = $1 and environment = $2 for update")
            .bind(dag_id)
            .bind(environment)
            .fetch_optional(&mut *tx)
            .await?;
        let running: i64 = sqlx::query_scalar(
            "select count(*) from dag_run where dag_id = $1 and environment = $2 and state = 'running'",
        )
        .bind(dag_id)
        .bind(environment)
        .fetch_one(&mut *tx)
        .await?;
        let mut room = max_active - running;
        if let Some(env_max) = env_max_active {
            sqlx::query("select 1 from environment where name = $1 for update")
                .bind(environment)
                .fetch_optional(&mut *tx)
                .await?;
            let env_running: i64 = sqlx::query_scalar(
                "select count(*) from dag_run where environment = $1 and state = 'running'",
            )
            .bind(environment)
            .fetch_one(&mut *tx)
            .await?;
            room = room.min(env_max - env_running);
        }
        if room <= 0 {
            return Ok(Vec::new());
        }
        let queued: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select id, version_id, \
                    case run_type when 'scheduled' then interval_end when 'backfill' then null else created_at end \
             from dag_run where dag_id = $1 and environment = $2 \
             and state = 'queued' \
             and (batch_until is null or batch_until <= now() or event_count >= batch_max) \
             and {NOT_HELD_BY_PAUSE} \
             order by logical_date, created_at limit $3"
        )))
        .bind(dag_id)
        .bind(environment)
        .bind(room)
        .fetch_all(&mut *tx)
        .await?;
        let mut started = Vec::new();
        for (run_id, version_id, scheduled_at) in queued {
            let Some(tasks) = tasks_of(version_id, scheduled_at) else {
                fail_unloadable_run(&mut tx, run_id, version_id).await?;
                continue;
            };
            if start_run(&mut tx, run_id, &tasks).await? {
                started.push(run_id);
            }
        }
        if !started.is_empty() {
            sqlx::query("select pg_notify($1, '')")
                .bind(crate::notify::CHANNEL_QUEUE)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(started)
    }

    /// Start one queued run now, with `tasks`, whatever its DAG's `max_active_runs` (a test
    /// run of one DAG, which no scheduler starts). False if it was not queued.
    pub async fn start_run_now(&self, run_id: Uuid, tasks: &[TaskInstanceSpec]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let started = start_run(&mut tx, run_id, tasks).await?;
        if started {
            sqlx::query("select pg_notify($1, '')")
                .bind(crate::notify::CHANNEL_QUEUE)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(started)
    }

    /// Finish the given running runs whose task instances are all finished: failed if a leaf
    /// task failed or was upstream_failed, else success (which refreshes the DAG's data).
    /// Returns (run, new state).
    pub async fn finish_runs(&self, runs: &[Uuid]) -> Result<Vec<(Uuid, RunState)>> {
        let mut tx = self.pool.begin().await?;
        let finished = finish_runs(&mut tx, runs).await?;
        tx.commit().await?;
        Ok(finished)
    }

    /// Running runs (for the scheduler's periodic sweep).
    pub async fn running_run_ids(&self) -> Result<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("select id from dag_run where state = 'running'")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// queued → running, with its task instances created, all or nothing.
async fn start_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    tasks: &[TaskInstanceSpec],
) -> Result<bool> {
    let started = sqlx::query(
        "update dag_run set state = 'running', started_at = now() where id = $1 and state = 'queued'",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if started == 0 {
        return Ok(false);
    }
    insert_task_instances(conn, run_id, tasks).await?;
    // Roots (and `always` tasks) can go straight to the queue.
    crate::tasks::evaluate_pending(conn, &[run_id]).await?;
    Ok(true)
}

pub(crate) async fn insert_task_instances(
    conn: &mut PgConnection,
    run_id: Uuid,
    tasks: &[TaskInstanceSpec],
) -> Result<()> {
    let col = |f: fn(&TaskInstanceSpec) -> String| tasks.iter().map(f).collect::<Vec<String>>();
    let int = |f: fn(&TaskInstanceSpec) -> i32| tasks.iter().map(f).collect::<Vec<i32>>();
    // Arrays of arrays don't unnest by row; upstream and downstream lists travel as JSON.
    let upstream: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| serde_json::json!(t.upstream))
        .collect();
    // Each task's downstream tasks (the inverse of `upstream`, each edge once) and how many
    // distinct upstream tasks it waits for: the upstream counters' trigger and the trigger
    // rules read these (see migration `upstream_counts`).
    let mut downstream: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut up_total = Vec::with_capacity(tasks.len());
    for t in tasks {
        let distinct: HashSet<&str> = t.upstream.iter().map(String::as_str).collect();
        up_total.push(i32::try_from(distinct.len()).unwrap_or(i32::MAX));
        for u in distinct {
            downstream.entry(u).or_default().push(&t.task_id);
        }
    }
    let downstream: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            serde_json::json!(
                downstream
                    .get(t.task_id.as_str())
                    .map_or(&[][..], Vec::as_slice)
            )
        })
        .collect();
    sqlx::query(
        "insert into task_instance (run_id, environment, task_id, state, upstream, downstream, up_total, trigger_rule, \
           is_leaf, priority, retries, max_tries, retry_delay_secs, retry_backoff, max_retry_delay_secs, timeout_secs, \
           deadline_at, deadline_state) \
         select $1, (select environment from dag_run where id = $1), t.task_id, 'pending', \
                array(select jsonb_array_elements_text(t.upstream)), \
                array(select jsonb_array_elements_text(t.downstream)), t.up_total, \
                t.trigger_rule, t.is_leaf, t.priority, t.retries, t.retries + 1, t.retry_delay, \
                t.backoff, t.max_delay, t.timeout, t.deadline, case when t.deadline is not null then 'pending' end \
         from unnest($2::text[], $3::jsonb[], $4::text[], $5::bool[], $6::int[], $7::int[], $8::int[], \
                     $9::text[], $10::int[], $11::int[], $12::timestamptz[], $13::jsonb[], $14::int[]) \
              as t(task_id, upstream, trigger_rule, is_leaf, priority, retries, retry_delay, backoff, max_delay, timeout, \
                   deadline, downstream, up_total)",
    )
    .bind(run_id)
    .bind(col(|t| t.task_id.clone()))
    .bind(upstream)
    .bind(col(|t| t.trigger_rule.clone()))
    .bind(tasks.iter().map(|t| t.is_leaf).collect::<Vec<bool>>())
    .bind(int(|t| t.priority))
    .bind(int(|t| t.retries))
    .bind(int(|t| t.retry_delay_secs))
    .bind(col(|t| t.retry_backoff.clone()))
    .bind(int(|t| t.max_retry_delay_secs))
    .bind(int(|t| t.timeout_secs))
    .bind(
        tasks
            .iter()
            .map(|t| t.deadline_at)
            .collect::<Vec<Option<DateTime<Utc>>>>(),
    )
    .bind(downstream)
    .bind(up_total)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn fail_unloadable_run(conn: &mut PgConnection, run_id: Uuid, version_id: i64) -> Result<()> {
    sqlx::query(
        "update dag_run set state = 'failed', started_at = now(), finished_at = now() \
         where id = $1 and state = 'queued'",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    tracing::error!(%run_id, version_id, "run failed: its DAG version cannot be loaded");
    Ok(())
}

pub(crate) async fn finish_runs(
    conn: &mut PgConnection,
    runs: &[Uuid],
) -> Result<Vec<(Uuid, RunState)>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        // A run is failed when any of its tasks failed its last try (a `severity: fail` check
        // that failed included) or did not run because of that, whatever trigger rules let
        // cleanup or notify tasks run after it: a green run means the data is good. The
        // unfinished states are listed (the check constraint allows no others), so the probe
        // reads the partial index `task_instance_unfinished`: the run's unfinished rows only,
        // not the finished ones a wide run piles up near its end.
        "update dag_run r set finished_at = now(), state = case when exists ( \
             select 1 from task_instance t where t.run_id = r.id \
               and t.state in ('failed', 'upstream_failed')) then 'failed' else 'success' end \
         where r.id = any($1) and r.state = 'running' \
           and not exists (select 1 from task_instance t where t.run_id = r.id \
                           and t.state in ('pending', 'queued', 'running', 'up_for_retry', 'awaiting_approval')) \
         returning r.id, r.state",
    )
    .bind(runs)
    .fetch_all(&mut *conn)
    .await?;
    // Those that succeeded refreshed their DAG's data, in the same transaction.
    let succeeded: Vec<Uuid> = rows
        .iter()
        .filter(|(_, s)| s == "success")
        .map(|(id, _)| *id)
        .collect();
    crate::freshness::refresh_dags(conn, &succeeded).await?;
    rows.into_iter()
        .map(|(id, s)| Ok((id, RunState::parse(&s)?)))
        .collect()
}

impl crate::Tx {
    /// Create a queued run. Scheduled and backfill runs are unique per (dag, environment,
    /// logical date): `Ok(None)` means that run already exists.
    pub async fn insert_run(&mut self, run: &NewRun) -> Result<Option<Uuid>> {
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "insert into dag_run (id, dag_id, environment, version_id, run_type, logical_date, \
             interval_start, interval_end, state, params, triggered_by, commit_sha, deadline_at, deadline_state, preview) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, \
                     (select commit_sha from deployment where environment = $3 order by id desc limit 1), \
                     $11, case when $11::timestamptz is not null then 'pending' end, $12) \
             on conflict (dag_id, environment, logical_date) where run_type in ('scheduled', 'backfill') do nothing",
        )
        .bind(id)
        .bind(&run.dag_id)
        .bind(&run.environment)
        .bind(run.version_id)
        .bind(run.run_type.as_str())
        .bind(run.logical_date)
        .bind(run.interval_start)
        .bind(run.interval_end)
        .bind(&run.params)
        .bind(&run.triggered_by)
        .bind(run.deadline_at)
        .bind(run.preview)
        .execute(self.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL_RUNS)
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        Ok(Some(id))
    }

    /// Mark a run succeeded or failed by hand: its unfinished task instances take the same
    /// state (a worker still running one finds it taken away when it reports). Returns the
    /// task ids changed; `Conflict` when the run already is in that state.
    pub async fn mark_run(&mut self, id: Uuid, state: RunState) -> Result<Vec<String>> {
        let tx = self.conn();
        let marked: Option<Uuid> = sqlx::query_scalar(
            "update dag_run set state = $2, finished_at = now(), started_at = coalesce(started_at, now()) \
             where id = $1 and state <> $2 returning id",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if marked.is_none() {
            let exists: Option<Uuid> = sqlx::query_scalar("select id from dag_run where id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("no run {id}")));
            }
            return Err(StoreError::Conflict(format!("run {id} already is {state}")));
        }
        let tasks: Vec<String> = sqlx::query_scalar(
            "update task_instance set state = $2, finished_at = now(), lease_until = null, next_attempt_at = null \
             where run_id = $1 and state in ('pending', 'queued', 'running', 'up_for_retry', 'awaiting_approval') returning task_id",
        )
        .bind(id)
        .bind(state.as_str())
        .fetch_all(&mut *tx)
        .await?;
        // A return waiting for approval waits no more: its request is withdrawn.
        sqlx::query(
            "update return_approval set state = 'withdrawn', decided_at = now() where run_id = $1 and state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Ok(tasks)
    }
}
