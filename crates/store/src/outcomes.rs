//! What runs did and what went wrong in them short of failing: the facts a run's summary
//! sentence and its problems (warnings) are made of, read for a page of runs at once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Result, Store, StoreError, TaskState, TryMetrics};

/// A kind of problem a run can carry without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A `severity: warn` check's value was outside its bounds.
    CheckWarning,
    /// The MAP rejected some of the rows a return sent.
    RejectedRows,
    /// The run or a task had not succeeded by its deadline.
    DeadlineMissed,
    /// A manual run started before its data interval had ended: it saw only part of it.
    /// (Scheduled and backfill runs are only created for intervals that have ended; another
    /// host's clock a little ahead must not make them look partial.)
    PartialInterval,
    /// A revert skipped records changed since the return wrote them.
    RevertConflict,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CheckWarning => "check_warning",
            ProblemKind::RejectedRows => "rejected_rows",
            ProblemKind::DeadlineMissed => "deadline_missed",
            ProblemKind::PartialInterval => "partial_interval",
            ProblemKind::RevertConflict => "revert_conflict",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "check_warning" => ProblemKind::CheckWarning,
            "rejected_rows" => ProblemKind::RejectedRows,
            "deadline_missed" => ProblemKind::DeadlineMissed,
            "partial_interval" => ProblemKind::PartialInterval,
            "revert_conflict" => ProblemKind::RevertConflict,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown problem kind `{other}`"
                )));
            }
        })
    }
}

/// The stored facts of one problem of a run; the words are the application's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemFacts {
    pub run_id: Uuid,
    pub kind: ProblemKind,
    /// The task it is about; none for the run as a whole.
    pub task_id: Option<String>,
    /// Rows (rejected, skipped) it counts.
    pub count: Option<i64>,
    /// A check's value and bounds.
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The moment it is about: a deadline, an interval's end.
    pub at: Option<DateTime<Utc>>,
    /// Another moment: when a missed deadline was settled, when the run started.
    pub since: Option<DateTime<Utc>>,
}

/// What one task of a run did in its latest try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskOutcome {
    pub run_id: Uuid,
    pub task_id: String,
    pub state: TaskState,
    pub metrics: TryMetrics,
    /// A check's verdict in its latest try: (passed, severity), severity `warn` or `fail`.
    pub check: Option<(bool, String)>,
}

#[derive(FromRow)]
struct RawProblem {
    run_id: Uuid,
    kind: String,
    task_id: Option<String>,
    count: Option<i64>,
    value: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    at: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct RawOutcome {
    run_id: Uuid,
    task_id: String,
    state: String,
    rows_in: Option<i64>,
    rows_out: Option<i64>,
    rows_rejected: Option<i64>,
    api_calls: Option<i64>,
    bytes_moved: Option<i64>,
    rows_created: Option<i64>,
    rows_unchanged: Option<i64>,
    passed: Option<bool>,
    severity: Option<String>,
}

/// The problems' query. Each part reads only the rows of the runs asked for, by index.
const PROBLEMS: &str = "\
    select c.run_id, 'check_warning' as kind, c.task_id, null::bigint as count, c.value, \
           c.min_value as min, c.max_value as max, null::timestamptz as at, null::timestamptz as since \
    from (select distinct on (run_id, task_id) * from check_result where run_id = any($1) \
          order by run_id, task_id, try_number desc) c \
    where not c.passed and c.severity = 'warn' \
    union all \
    select ti.run_id, 'rejected_rows', ti.task_id, tt.rows_rejected, null, null, null, null, null \
    from task_instance ti \
    join task_try tt on tt.task_instance_id = ti.id and tt.try_number = ti.try_number \
    where ti.run_id = any($1) and ti.state = 'success' and tt.rows_rejected > 0 \
    union all \
    select r.id, 'deadline_missed', null, null, null, null, null, r.deadline_at, r.deadline_missed_at \
    from dag_run r where r.id = any($1) and r.deadline_state = 'missed' \
    union all \
    select ti.run_id, 'deadline_missed', ti.task_id, null, null, null, null, ti.deadline_at, ti.deadline_missed_at \
    from task_instance ti where ti.run_id = any($1) and ti.deadline_state = 'missed' \
    union all \
    select r.id, 'partial_interval', null, null, null, null, null, r.interval_end, r.started_at \
    from dag_run r where r.id = any($1) and r.run_type = 'manual' and r.started_at < r.interval_end \
      and r.interval_end > r.interval_start \
    union all \
    select j.run_id, 'revert_conflict', j.task_id, j.skipped_changed, null, null, null, j.finished_at, null \
    from (select distinct on (run_id, task_id) * from revert_job where run_id = any($1) \
          order by run_id, task_id, id desc) j \
    where j.state = 'done' and j.skipped_changed > 0";

impl Store {
    /// The problems of `runs` (warnings: none of them fails a run), in a stable order: by
    /// run, then kind, then task.
    pub async fn run_problems(&self, runs: &[Uuid]) -> Result<Vec<ProblemFacts>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RawProblem> = sqlx::query_as(PROBLEMS)
            .bind(runs)
            .fetch_all(&self.pool)
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(ProblemFacts {
                    run_id: r.run_id,
                    kind: ProblemKind::parse(&r.kind)?,
                    task_id: r.task_id,
                    count: r.count,
                    value: r.value,
                    min: r.min,
                    max: r.max,
                    at: r.at,
                    since: r.since,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| {
            (a.run_id, a.kind.as_str(), &a.task_id).cmp(&(b.run_id, b.kind.as_str(), &b.task_id))
        });
        Ok(out)
    }

    /// Per environment, the runs that finished in the last day as succeeded with warnings.
    pub async fn warned_runs_last_day(&self) -> Result<Vec<(String, i64)>> {
        let ids: Vec<(Uuid, String)> = sqlx::query_as(
            "select id, environment from dag_run \
             where finished_at > now() - interval '1 day' and state = 'success'",
        )
        .fetch_all(&self.pool)
        .await?;
        let runs: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        let warned: std::collections::HashSet<Uuid> = self
            .run_problems(&runs)
            .await?
            .into_iter()
            .map(|p| p.run_id)
            .collect();
        let mut by_env: std::collections::BTreeMap<String, i64> = Default::default();
        for (id, env) in ids {
            let n = by_env.entry(env).or_default();
            if warned.contains(&id) {
                *n += 1;
            }
        }
        Ok(by_env.into_iter().collect())
    }

    /// What each task of `runs` did in its latest try, with its check's verdict.
    pub async fn task_outcomes(&self, runs: &[Uuid]) -> Result<Vec<TaskOutcome>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RawOutcome> = sqlx::query_as(
            "select ti.run_id, ti.task_id, ti.state, tt.rows_in, tt.rows_out, tt.rows_rejected, \
                    tt.api_calls, tt.bytes_moved, tt.rows_created, tt.rows_unchanged, c.passed, c.severity \
             from task_instance ti \
             left join task_try tt on tt.task_instance_id = ti.id and tt.try_number = ti.try_number \
             left join check_result c on c.run_id = ti.run_id and c.task_id = ti.task_id \
                                     and c.try_number = ti.try_number \
             where ti.run_id = any($1) order by ti.run_id, ti.id",
        )
        .bind(runs)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TaskOutcome {
                    run_id: r.run_id,
                    task_id: r.task_id,
                    state: TaskState::parse(&r.state)?,
                    metrics: TryMetrics {
                        rows_in: r.rows_in,
                        rows_out: r.rows_out,
                        rows_rejected: r.rows_rejected,
                        api_calls: r.api_calls,
                        bytes_moved: r.bytes_moved,
                        rows_created: r.rows_created,
                        rows_unchanged: r.rows_unchanged,
                    },
                    check: r.passed.zip(r.severity),
                })
            })
            .collect()
    }
}
