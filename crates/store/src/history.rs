//! Read models for the run history pages: per-DAG summaries, a DAG's runs page by page, the
//! task grid of recent runs, check results, the audit trail with filters, and the counters
//! `/metrics` exports. Each query walks an index and stops early, however long the history.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{AuditEvent, CheckResultRow, Result, RunFilter, RunRow, Store};

/// How run lists are ordered, newest first; `before` cursors are on the same key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunOrder {
    /// When the run ran: its start, or when it was created while it waits in the queue.
    #[default]
    RanAt,
    /// The logical date (the start of the data interval).
    LogicalDate,
}

impl RunOrder {
    /// The ordering key as SQL over `dag_run`: a fixed expression, never user text.
    fn key(self) -> &'static str {
        match self {
            RunOrder::RanAt => "coalesce(started_at, created_at)",
            RunOrder::LogicalDate => "logical_date",
        }
    }

    /// The key's value for `run`, for the next page's cursor.
    pub fn cursor(self, run: &RunRow) -> DateTime<Utc> {
        match self {
            RunOrder::RanAt => run.started_at.unwrap_or(run.created_at),
            RunOrder::LogicalDate => run.logical_date,
        }
    }

    /// The query word: "ran" or "logical".
    pub fn as_str(self) -> &'static str {
        match self {
            RunOrder::RanAt => "ran",
            RunOrder::LogicalDate => "logical",
        }
    }

    /// From the query word; anything else is the default.
    pub fn parse(text: Option<&str>) -> RunOrder {
        match text {
            Some("logical") => RunOrder::LogicalDate,
            _ => RunOrder::RanAt,
        }
    }
}

/// The latest run of a DAG and its outcomes over the last 30 days.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DagRunSummary {
    pub dag_id: String,
    pub last_run_id: Option<Uuid>,
    pub last_state: Option<String>,
    pub last_logical_date: Option<DateTime<Utc>>,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub runs_30d: i64,
    pub succeeded_30d: i64,
    pub failed_30d: i64,
    pub active_runs: i64,
}

/// One cell of the runs × tasks grid.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct GridCell {
    pub run_id: Uuid,
    pub task_id: String,
    pub state: String,
}

/// Filters for the audit trail; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub environment: Option<String>,
    pub dag_id: Option<String>,
    /// Only events older than this id (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MetricCounts {
    /// (environment, state, runs)
    pub runs_by_state: Vec<(String, String, i64)>,
    /// (environment, state, task instances) for unfinished states.
    pub tasks_by_state: Vec<(String, String, i64)>,
    /// (environment, queued task instances, oldest queued age in seconds)
    pub queue: Vec<(String, i64, f64)>,
    /// (environment, MAP API calls today)
    pub api_calls_today: Vec<(String, i64)>,
    /// (environment, dag, task, seconds) of tries finished in the last hour.
    pub task_durations: Vec<(String, f64)>,
    /// (environment, dag, seconds behind: now minus the end of the latest scheduled interval's
    /// run creation), for unpaused DAGs.
    pub schedule_lag: Vec<(String, String, f64)>,
    /// Latest value of each check: (environment, dag, task, value, passed)
    pub checks: Vec<(String, String, String, Option<f64>, bool)>,
    /// (environment, tries that failed in the last hour)
    pub failed_tries_1h: Vec<(String, i64)>,
}

impl Store {
    /// Latest run and 30-day outcomes of each of `dag_ids` in `environment`.
    pub async fn dag_run_summaries(
        &self,
        environment: &str,
        dag_ids: &[String],
    ) -> Result<Vec<DagRunSummary>> {
        Ok(sqlx::query_as(
            "select d.dag_id, lr.id as last_run_id, lr.state as last_state, lr.logical_date as last_logical_date, \
                    lr.finished_at as last_finished_at, \
                    coalesce(s.total, 0) as runs_30d, coalesce(s.succeeded, 0) as succeeded_30d, \
                    coalesce(s.failed, 0) as failed_30d, coalesce(s.active, 0) as active_runs \
             from unnest($2::text[]) as d(dag_id) \
             left join lateral (select id, state, logical_date, finished_at from dag_run r \
                                where r.dag_id = d.dag_id and r.environment = $1 \
                                order by r.logical_date desc limit 1) lr on true \
             left join lateral (select count(*) as total, \
                                       count(*) filter (where state = 'success') as succeeded, \
                                       count(*) filter (where state = 'failed') as failed, \
                                       count(*) filter (where state in ('queued', 'running')) as active \
                                from dag_run r where r.dag_id = d.dag_id and r.environment = $1 \
                                  and r.logical_date > now() - interval '30 days') s on true",
        )
        .bind(environment)
        .bind(dag_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A DAG's runs in an environment, newest first, older than `before` (the next page).
    pub async fn dag_runs_page(
        &self,
        dag_id: &str,
        environment: &str,
        state: Option<&str>,
        before: Option<DateTime<Utc>>,
        limit: i64,
        order: RunOrder,
    ) -> Result<Vec<RunRow>> {
        let key = order.key();
        let rows: Vec<crate::runs::RawRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {} from dag_run \
             where dag_id = $1 and environment = $2 and ($3::text is null or state = $3) \
               and ($4::timestamptz is null or {key} < $4) \
             order by {key} desc, created_at desc limit $5",
            crate::runs::RUN_COLUMNS
        )))
        .bind(dag_id)
        .bind(environment)
        .bind(state)
        .bind(before)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunRow::try_from).collect()
    }

    /// Runs across DAGs, newest first by `order`, older than `before` (the next page).
    pub async fn runs_page(
        &self,
        filter: &RunFilter,
        before: Option<DateTime<Utc>>,
        order: RunOrder,
    ) -> Result<Vec<RunRow>> {
        let key = order.key();
        let rows: Vec<crate::runs::RawRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {} from dag_run \
             where ($1::text is null or dag_id = $1) and ($2::text is null or environment = $2) \
               and ($3::text is null or state = $3) and ($4::timestamptz is null or {key} < $4) \
             order by {key} desc, created_at desc limit $5",
            crate::runs::RUN_COLUMNS
        )))
        .bind(&filter.dag_id)
        .bind(&filter.environment)
        .bind(filter.state.map(crate::RunState::as_str))
        .bind(before)
        .bind(filter.limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunRow::try_from).collect()
    }

    /// Task states of `runs`, for the runs × tasks grid.
    pub async fn grid(&self, runs: &[Uuid]) -> Result<Vec<GridCell>> {
        Ok(sqlx::query_as(
            "select run_id, task_id, state from task_instance where run_id = any($1)",
        )
        .bind(runs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest result of every check in `environment` (all environments when none).
    pub async fn latest_checks(&self, environment: Option<&str>) -> Result<Vec<CheckResultRow>> {
        Ok(sqlx::query_as(
            "select distinct on (environment, dag_id, task_id) run_id, task_id, try_number, dag_id, environment, \
                    value, min_value, max_value, passed, severity, checked_at \
             from check_result where ($1::text is null or environment = $1) \
             order by environment, dag_id, task_id, checked_at desc",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The audit trail, newest first, filtered.
    pub async fn audit_page(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
        Ok(sqlx::query_as(
            "select id, at, actor, action, environment, dag_id, run_id, details from audit_event \
             where ($1::text is null or actor = $1) and ($2::text is null or action like $2 || '%') \
               and ($3::text is null or environment = $3) and ($4::text is null or dag_id = $4) \
               and ($5::bigint is null or id < $5) \
             order by id desc limit $6",
        )
        .bind(&f.actor)
        .bind(&f.action)
        .bind(&f.environment)
        .bind(&f.dag_id)
        .bind(f.before_id)
        .bind(f.limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Counters for `/metrics`: cheap aggregate queries over indexed or recent rows.
    pub async fn metric_counts(&self) -> Result<MetricCounts> {
        let runs_by_state: Vec<(String, String, i64)> = sqlx::query_as(
            "select environment, state, count(*) from ( \
                 select environment, state from dag_run where state in ('queued', 'running') \
                 union all \
                 select environment, state from dag_run \
                 where finished_at > now() - interval '1 day' and state in ('success', 'failed') \
             ) r group by environment, state order by 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        let tasks_by_state: Vec<(String, String, i64)> = sqlx::query_as(
            // One branch per state, so each reads its state's partial index.
            "select environment, state, count(*) from ( \
                 select environment, state from task_instance where state = 'queued' \
                 union all select environment, state from task_instance where state = 'running' \
                 union all select environment, state from task_instance where state = 'up_for_retry' \
                 union all select environment, state from task_instance where state = 'awaiting_approval' \
             ) t group by environment, state order by 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        let queue: Vec<(String, i64, f64)> = sqlx::query_as(
            "select environment, count(*), coalesce(extract(epoch from now() - min(queued_at))::float8, 0) \
             from task_instance where state = 'queued' group by environment order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let api_calls_today: Vec<(String, i64)> = sqlx::query_as(
            "select environment, calls from map_api_usage where day = current_date order by 1",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        let task_durations: Vec<(String, f64)> = sqlx::query_as(
            "select ti.environment, extract(epoch from t.finished_at - t.started_at)::float8 \
             from task_try t join task_instance ti on ti.id = t.task_instance_id \
             where t.finished_at > now() - interval '1 hour' and t.started_at is not null",
        )
        .fetch_all(&self.pool)
        .await?;
        let schedule_lag: Vec<(String, String, f64)> = sqlx::query_as(
            "select de.environment, de.dag_id, \
                    coalesce(extract(epoch from lr.created_at - lr.interval_end)::float8, 0) \
             from dag_env de \
             join lateral (select created_at, interval_end from dag_run r \
                           where r.dag_id = de.dag_id and r.environment = de.environment \
                             and r.run_type = 'scheduled' order by logical_date desc limit 1) lr on true \
             where de.active and not de.paused order by 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        let checks = self
            .latest_checks(None)
            .await?
            .into_iter()
            .map(|c| (c.environment, c.dag_id, c.task_id, c.value, c.passed))
            .collect();
        let failed_tries_1h: Vec<(String, i64)> = sqlx::query_as(
            "select ti.environment, count(*) from task_try t join task_instance ti on ti.id = t.task_instance_id \
             where t.finished_at > now() - interval '1 hour' and t.state = 'failed' group by 1 order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(MetricCounts {
            runs_by_state,
            tasks_by_state,
            queue,
            api_calls_today,
            task_durations,
            schedule_lag,
            checks,
            failed_tries_1h,
        })
    }
}
