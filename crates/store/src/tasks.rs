//! Task instances: readiness by trigger rule, claims with leases, completion, retries, the
//! reaper for lost workers, and clearing for reruns.

use chrono::{DateTime, Utc};
use drover_spec::dag::{Readiness, TriggerRule, UpstreamCounts};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::notify::{CHANNEL_QUEUE, CHANNEL_RUNS};
use crate::runs::finish_runs;
use crate::{Result, RunState, Store, StoreError, TaskState};

/// How long a claim waits for its turn before giving up this round (the worker tries again;
/// it never waits without bound, so it stays responsive to a stop).
const CLAIM_TURN_WAIT: &str = "5s";

/// How many times a task lost with its worker is queued again without using one of its
/// retries.
pub const LOST_LIMIT: i32 = 3;

/// A task instance claimed by a worker, with what it needs to run it.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedTask {
    pub ti_id: i64,
    pub run_id: Uuid,
    pub task_id: String,
    pub try_number: i32,
    pub timeout_secs: i32,
    pub dag_id: String,
    pub environment: String,
    pub version_id: i64,
    pub logical_date: DateTime<Utc>,
    pub interval_start: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    pub params: serde_json::Value,
    /// Whether events (a webhook's, a dataset's, a replay's) started the run: only then
    /// does a try read them for `{{ event }}`, `{{ events }}` and `{{ trigger }}`.
    pub has_events: bool,
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed; retried if the task has retries left and `retryable`.
    Failed {
        error: String,
        exit_code: Option<i32>,
        retryable: bool,
    },
    /// The try recorded where its task went itself (a return now waiting for approval of its
    /// plan, see [`Store::request_approval`]): nothing more to record.
    Recorded,
}

/// A finished try to record.
#[derive(Debug, Clone)]
pub struct Completion {
    pub ti_id: i64,
    pub try_number: i32,
    pub outcome: Outcome,
}

/// A task instance as stored.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct TaskInstanceRow {
    pub id: i64,
    pub run_id: Uuid,
    pub task_id: String,
    #[sqlx(try_from = "String")]
    pub state: TaskStateText,
    pub upstream: Vec<String>,
    pub try_number: i32,
    pub max_tries: i32,
    pub lost_count: i32,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub last_error: Option<String>,
    /// When it must have finished, if its task has a deadline.
    pub deadline_at: Option<DateTime<Utc>>,
    /// `pending`, `met` or `missed` (none without a deadline).
    pub deadline_state: Option<String>,
}

/// A stored state, checked on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct TaskStateText(pub TaskState);

impl TryFrom<String> for TaskStateText {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self> {
        TaskState::parse(&s).map(TaskStateText)
    }
}

/// One try of a task instance.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct TaskTryRow {
    pub task_instance_id: i64,
    pub try_number: i32,
    pub worker_id: Option<String>,
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// A batch of finished tries, in one statement: the tries' last log lines (`$8`–`$11`), each
/// try's outcome on its task instance (`$1`–`$6`: id, try, ok, retryable, error, exit code;
/// only a running try of this worker `$7` is recorded), its `task_try` row, and the refresh
/// of the data of those that succeeded. Returns, per recorded try, its task instance, run,
/// new state, and whether its run's refresh was recorded.
static COMPLETE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "with lines as ( \
           insert into task_log (task_instance_id, try_number, stream, line) \
           select * from unnest($8::bigint[], $9::int[], $10::text[], $11::text[])), \
         c as (select * from unnest($1::bigint[], $2::int[], $3::bool[], $4::bool[], $5::text[], $6::int[]) \
                      as c(id, try, ok, retryable, error, exit_code)), \
         done as ( \
           update task_instance t set \
             state = case when c.ok then 'success' \
                          when c.retryable and t.try_number - t.lost_count < t.max_tries then 'up_for_retry' \
                          else 'failed' end, \
             next_attempt_at = case when not c.ok and c.retryable and t.try_number - t.lost_count < t.max_tries \
               then now() + drover_retry_delay(t.retry_backoff, t.retry_delay_secs, t.max_retry_delay_secs, \
                                               t.try_number - t.lost_count) \
               end, \
             finished_at = now(), worker_id = null, lease_until = null, last_error = c.error \
           from c \
           where t.id = c.id and t.try_number = c.try and t.worker_id = $7 and t.state = 'running' \
           returning t.id, t.run_id, t.environment, t.task_id, t.state, t.try_number, t.started_at), \
         tries as ( \
           insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at, exit_code, error) \
           select d.id, d.try_number, $7, case when d.state = 'success' then 'success' else 'failed' end, \
                  d.started_at, now(), c.exit_code, c.error \
           from done d join c on c.id = d.id \
           on conflict (task_instance_id, try_number) do update \
             set worker_id = excluded.worker_id, state = excluded.state, finished_at = excluded.finished_at, \
                 exit_code = excluded.exit_code, error = excluded.error), \
         {refreshed} \
         select d.id, d.run_id, d.state, exists (select 1 from refreshed f where f.run_id = d.run_id) \
         from done d",
        refreshed = crate::freshness::TASKS_REFRESHED_CTE
    )
});

impl Store {
    /// Claim up to `limit` queued task instances for `worker_id`, holding a lease of
    /// `lease_secs`. One statement; rows locked by other claimers are skipped.
    pub async fn claim(
        &self,
        worker_id: &str,
        limit: i64,
        lease_secs: f64,
    ) -> Result<Vec<ClaimedTask>> {
        self.claim_in(worker_id, limit, lease_secs, None).await
    }

    /// [`Store::claim`], of the task instances of `environments` only (`None`: of all).
    pub async fn claim_in(
        &self,
        worker_id: &str,
        limit: i64,
        lease_secs: f64,
        environments: Option<&[String]>,
    ) -> Result<Vec<ClaimedTask>> {
        self.claim_of(worker_id, limit, lease_secs, environments, None)
            .await
    }

    /// [`Store::claim_in`], of the task instances of `runs` only (`None`: of every run): a
    /// worker started for one run (`drover dags test`) takes nothing else.
    pub async fn claim_of(
        &self,
        worker_id: &str,
        limit: i64,
        lease_secs: f64,
        environments: Option<&[String]>,
        runs: Option<&[Uuid]>,
    ) -> Result<Vec<ClaimedTask>> {
        let mut tx = self.pool.begin().await?;
        let claimed = claim_on(
            &mut tx,
            worker_id,
            &ClaimRequest {
                limit,
                lease_secs,
                environments,
                runs,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extend the leases of `ti_ids` held by `worker_id`; returns those still held (a
    /// missing one was taken away: its process must stop).
    pub async fn renew_leases(
        &self,
        worker_id: &str,
        ti_ids: &[i64],
        lease_secs: f64,
    ) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "update task_instance set lease_until = now() + make_interval(secs => $3) \
             where id = any($2) and worker_id = $1 and state = 'running' returning id",
        )
        .bind(worker_id)
        .bind(ti_ids)
        .bind(lease_secs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Record finished tries of `worker_id` in one transaction: the task instances move on
    /// (success, up_for_retry with backoff, or failed), their tries are recorded, downstream
    /// tasks that became ready are queued and finished runs are closed. Tries whose lease was
    /// lost are ignored and returned in `lost`.
    pub async fn complete(&self, worker_id: &str, done: &[Completion]) -> Result<CompleteResult> {
        self.complete_with_logs(worker_id, &[], done).await
    }

    /// [`Store::complete`], with log `lines` appended in the same transaction: a try's last
    /// lines and its completion cost one commit, and a finished try's log is whole.
    pub async fn complete_with_logs(
        &self,
        worker_id: &str,
        lines: &[crate::LogLine],
        done: &[Completion],
    ) -> Result<CompleteResult> {
        Ok(self
            .complete_and_claim(worker_id, lines, done, None)
            .await?
            .0)
    }

    /// [`Store::complete_with_logs`], then, in the same transaction, a claim for the slots
    /// the finished tries free (`claim`), so that a worker's next task costs no round trip of
    /// its own: a chain's next task is claimed by the commit that queued it.
    pub async fn complete_and_claim(
        &self,
        worker_id: &str,
        lines: &[crate::LogLine],
        done: &[Completion],
        claim: Option<ClaimRequest<'_>>,
    ) -> Result<(CompleteResult, Vec<ClaimedTask>)> {
        let mut done: Vec<&Completion> = done
            .iter()
            .filter(|c| c.outcome != Outcome::Recorded)
            .collect();
        // Rows are locked in id order, as a lease renewal of the same worker locks them (by
        // its index scan): in another order the two could deadlock, which is likelier now
        // that a completion may wait for a wide fan-in's counters.
        done.sort_by_key(|c| c.ti_id);
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = done.iter().map(|c| c.ti_id).collect();
        let tries: Vec<i32> = done.iter().map(|c| c.try_number).collect();
        let ok: Vec<bool> = done.iter().map(|c| c.outcome == Outcome::Success).collect();
        let retryable: Vec<bool> = done
            .iter()
            .map(|c| {
                matches!(
                    c.outcome,
                    Outcome::Failed {
                        retryable: true,
                        ..
                    }
                )
            })
            .collect();
        let errors: Vec<Option<String>> = done
            .iter()
            .map(|c| match &c.outcome {
                Outcome::Failed { error, .. } => Some(error.clone()),
                Outcome::Success | Outcome::Recorded => None,
            })
            .collect();
        let codes: Vec<Option<i32>> = done
            .iter()
            .map(|c| match &c.outcome {
                Outcome::Failed { exit_code, .. } => *exit_code,
                Outcome::Success | Outcome::Recorded => None,
            })
            .collect();
        let (line_ids, line_tries, streams, texts) = crate::logs::line_columns(lines);
        // The lines go in the completion's statement (written whatever it matches).
        let rows: Vec<(i64, Uuid, String, bool)> = sqlx::query_as(COMPLETE.as_str())
            .bind(&ids)
            .bind(&tries)
            .bind(&ok)
            .bind(&retryable)
            .bind(&errors)
            .bind(&codes)
            .bind(worker_id)
            .bind(line_ids)
            .bind(line_tries)
            .bind(streams)
            .bind(texts)
            .fetch_all(tx.conn())
            .await?;
        // Successful tries refreshed their tasks' data (recorded by the statement above)…
        let mut refreshed: Vec<Uuid> = rows.iter().filter(|r| r.3).map(|r| r.1).collect();
        refreshed.sort_unstable();
        refreshed.dedup();
        crate::freshness::tasks_refreshed(tx.conn(), &refreshed).await?;
        let succeeded: Vec<i64> = rows
            .iter()
            .filter(|r| r.2 == TaskState::Success.as_str())
            .map(|r| r.0)
            .collect();
        // …and started the DAGs their datasets trigger, in this transaction.
        tx.start_consumers(&succeeded).await?;
        let accepted: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let lost = ids
            .iter()
            .copied()
            .filter(|i| !accepted.contains(i))
            .collect();
        let mut runs: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
        runs.sort_unstable();
        runs.dedup();
        let queued_in = evaluate_downstream(tx.conn(), &accepted).await?;
        let queued = queued_in.len();
        // A run with a task queued just now is not finished: only the others are looked at.
        let ending: Vec<Uuid> = runs
            .iter()
            .copied()
            .filter(|r| !queued_in.contains(r))
            .collect();
        let finished = finish_runs(tx.conn(), &ending).await?;
        let claimed = match claim {
            Some(request) if request.limit > 0 => claim_on(tx.conn(), worker_id, &request).await?,
            _ => Vec::new(),
        };
        // Schedulers hear of the runs that finished (a finished run may let a queued one
        // start); what else changed, this transaction decided already. Workers hear of queued
        // tasks only if this claim left some: it took as many as it queued otherwise.
        let ended: Vec<Uuid> = finished.iter().map(|f| f.0).collect();
        notify_changes(tx.conn(), &ended, queued > claimed.len()).await?;
        tx.commit().await?;
        Ok((
            CompleteResult {
                accepted,
                lost,
                queued,
                finished,
            },
            claimed,
        ))
    }

    /// Decide pending task instances of `runs` by their trigger rules and close finished runs
    /// (the scheduler's sweep: it does not notify the runs channel, which would wake itself).
    pub async fn evaluate_runs(&self, runs: &[Uuid]) -> Result<(usize, Vec<(Uuid, RunState)>)> {
        let mut tx = self.pool.begin().await?;
        let queued = evaluate_pending(&mut tx, runs).await?;
        let finished = finish_runs(&mut tx, runs).await?;
        if queued > 0 {
            notify_changes(&mut tx, &[], true).await?;
        }
        tx.commit().await?;
        Ok((queued, finished))
    }

    /// up_for_retry → queued once their delay has passed. Returns whether any was queued.
    pub async fn queue_due_retries(&self) -> Result<bool> {
        let n = sqlx::query(
            "with due as (update task_instance set state = 'queued', queued_at = now() \
                          where state = 'up_for_retry' and next_attempt_at <= now() returning id) \
             select pg_notify($1, '') from (select 1 from due limit 1) x",
        )
        .bind(CHANNEL_QUEUE)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Running task instances whose lease expired (their worker died or lost the database):
    /// queued again without using a retry, up to [`LOST_LIMIT`] times; after that each loss
    /// uses one of the task's retries (so a task that kills its worker every time stops once
    /// they are spent). Returns (task instance, new state).
    pub async fn reap_expired_leases(&self) -> Result<Vec<(i64, Uuid, TaskState)>> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, Uuid, String)> = sqlx::query_as(
            // The locking pick runs once (see `claim`); as `in (subquery)` it could be
            // rescanned for every running row.
            "with expired as materialized ( \
               select id from task_instance where state = 'running' and lease_until < now() \
               for update skip locked), \
             lost as ( \
               update task_instance t set \
                 state = case when t.lost_count + 1 < $1 then 'queued' \
                              when t.try_number - t.lost_count < t.max_tries then 'up_for_retry' \
                              else 'failed' end, \
                 queued_at = now(), \
                 finished_at = case when t.lost_count + 1 < $1 then null else now() end, \
                 next_attempt_at = case when t.lost_count + 1 >= $1 and t.try_number - t.lost_count < t.max_tries \
                   then now() + drover_retry_delay(t.retry_backoff, t.retry_delay_secs, t.max_retry_delay_secs, \
                                                   t.try_number - t.lost_count) end, \
                 lost_count = case when t.lost_count + 1 < $1 then t.lost_count + 1 else t.lost_count end, \
                 worker_id = null, lease_until = null, \
                 last_error = 'worker lost: its lease expired (worker killed, host gone, or cut off from the database)' \
               where t.id = any(array(select id from expired)) \
                 and t.state = 'running' and t.lease_until < now() \
               returning t.id, t.run_id, t.state, t.try_number, t.started_at, \
                         (select worker_id from task_instance o where o.id = t.id) as old_worker), \
             tries as ( \
               insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at, error) \
               select id, try_number, old_worker, 'lost', started_at, now(), 'worker lost: lease expired' from lost \
               on conflict (task_instance_id, try_number) do update \
                 set state = excluded.state, finished_at = excluded.finished_at, error = excluded.error) \
             select id, run_id, state from lost",
        )
        .bind(LOST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
        let changed: Vec<i64> = rows.iter().map(|r| r.0).collect();
        advance(&mut tx, &runs, &changed, !rows.is_empty()).await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, run, s)| Ok((id, run, TaskState::parse(&s)?)))
            .collect()
    }

    /// Running task instances past their timeout (plus `grace`): their worker should have
    /// stopped them and did not report. They fail this try (retried if they may).
    pub async fn fail_overdue(&self, grace_secs: f64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, Uuid)> = sqlx::query_as(
            // The locking pick runs once (see `claim`).
            "with late as materialized ( \
               select id from task_instance where state = 'running' \
                 and started_at + make_interval(secs => timeout_secs + $1) < now() \
               for update skip locked), \
             overdue as ( \
               update task_instance t set \
                 state = case when t.try_number - t.lost_count < t.max_tries then 'up_for_retry' else 'failed' end, \
                 next_attempt_at = case when t.try_number - t.lost_count < t.max_tries \
                   then now() + drover_retry_delay(t.retry_backoff, t.retry_delay_secs, t.max_retry_delay_secs, \
                                                   t.try_number - t.lost_count) end, \
                 finished_at = now(), worker_id = null, lease_until = null, \
                 last_error = format('timed out after %ss', t.timeout_secs) \
               where t.id = any(array(select id from late)) and t.state = 'running' \
               returning t.id, t.run_id, t.try_number, t.started_at, \
                         (select worker_id from task_instance o where o.id = t.id) as old_worker), \
             tries as ( \
               insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at, error) \
               select id, try_number, old_worker, 'failed', started_at, now(), 'timed out' from overdue \
               on conflict (task_instance_id, try_number) do update \
                 set state = excluded.state, finished_at = excluded.finished_at, error = excluded.error) \
             select id, run_id from overdue",
        )
        .bind(grace_secs)
        .fetch_all(&mut *tx)
        .await?;
        let runs: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
        let changed: Vec<i64> = rows.iter().map(|r| r.0).collect();
        advance(&mut tx, &runs, &changed, false).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Task instances of a run, in creation order.
    pub async fn task_instances(&self, run_id: Uuid) -> Result<Vec<TaskInstanceRow>> {
        Ok(sqlx::query_as(
            "select id, run_id, task_id, state, upstream, try_number, max_tries, lost_count, queued_at, \
                    started_at, finished_at, next_attempt_at, worker_id, last_error, deadline_at, deadline_state \
             from task_instance where run_id = $1 order by id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Tries of a task instance.
    pub async fn task_tries(&self, ti_id: i64) -> Result<Vec<TaskTryRow>> {
        Ok(sqlx::query_as(
            "select task_instance_id, try_number, worker_id, state, started_at, finished_at, exit_code, error \
             from task_try where task_instance_id = $1 order by try_number",
        )
        .bind(ti_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Clear finished task instances of a run so they run again; see [`Tx::clear_tasks`].
    pub async fn clear_tasks(&self, run_id: Uuid, task_ids: &[String]) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let cleared = tx.clear_tasks(run_id, task_ids).await?;
        tx.commit().await?;
        Ok(cleared)
    }

    /// Give back task instances a stopping worker did not finish: queued again without
    /// counting against their retries.
    pub async fn give_back(&self, worker_id: &str, ti_ids: &[i64]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "with back as ( \
               update task_instance set state = 'queued', queued_at = now(), lost_count = lost_count + 1, \
                      worker_id = null, lease_until = null \
               where id = any($2) and worker_id = $1 and state = 'running' \
               returning id, try_number, started_at) \
             insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at, error) \
             select id, try_number, $1, 'interrupted', started_at, now(), 'worker stopped; task given back' from back",
        )
        .bind(worker_id)
        .bind(ti_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        notify_changes(&mut tx, &[], n > 0).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// What [`Store::complete`] did.
#[derive(Debug, Clone, Default)]
pub struct CompleteResult {
    pub accepted: Vec<i64>,
    /// Tries whose lease had been lost: nothing was written for them.
    pub lost: Vec<i64>,
    /// Downstream task instances queued.
    pub queued: usize,
    pub finished: Vec<(Uuid, RunState)>,
}

/// What a worker asks to claim: up to `limit` task instances under a lease of `lease_secs`,
/// of `environments` and `runs` only when given.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub limit: i64,
    pub lease_secs: f64,
    pub environments: Option<&'a [String]>,
    pub runs: Option<&'a [Uuid]>,
}

/// Claim on `conn`, in its transaction: [`Store::claim_of`]. A claim that does not get its
/// turn in time claims nothing and leaves the transaction usable.
async fn claim_on(
    conn: &mut PgConnection,
    worker_id: &str,
    request: &ClaimRequest<'_>,
) -> Result<Vec<ClaimedTask>> {
    // Claims take turns (an exclusive lock on `claim_turn`, which only Drover's role may
    // lock: a table lock lives in the lock manager and writes nothing, where a row lock
    // would dirty the row), so each sees the others' claims and no environment ever runs
    // more than its `concurrency` task instances at once. The wait for the turn is
    // bounded: a claim that does not get it in time claims nothing this round. The start
    // is stamped with the clock, not the transaction's start (`now()`), which may precede
    // the wait for the turn and so the completion of the upstream task. The claim reads
    // the partial indexes of running and queued rows by index scans, never bitmap scans:
    // an index scan marks the entries of rows that left the state (dead for everyone) as
    // dead, a bitmap scan never does, and it would visit every row that ran since the last
    // vacuum (on a 10,000-wide fan-out, thousands per claim). The settings end with the
    // transaction, of which the claim is the last statement but notifications.
    match sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "savepoint claim_turn; set local lock_timeout = '{CLAIM_TURN_WAIT}'; \
             set local enable_bitmapscan = off; lock table claim_turn in exclusive mode"
    )))
    .execute(&mut *conn)
    .await
    {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
            // The transaction goes on without the claim (a completion it holds commits).
            sqlx::query("rollback to savepoint claim_turn")
                .execute(&mut *conn)
                .await?;
            tracing::warn!(
                waited = CLAIM_TURN_WAIT,
                "no turn to claim: another claim holds it; trying again"
            );
            return Ok(Vec::new());
        }
        Err(e) => return Err(e.into()),
    }
    let claimed = sqlx::query_as(
            // The locking pick must run exactly once: as `t.id in (subquery)` the planner may
            // put it on the inner side of a nested loop and rescan it for every queued row, and
            // each rescan skips the rows already taken and locks `limit` more: a worker then
            // claimed hundreds of tasks for 32 free slots, in seconds. A materialized CTE read
            // through `array(…)` (an init plan) is evaluated once, whatever the plan.
            sqlx::AssertSqlSafe(format!(
            "with busy as ( \
               select environment, count(*) as n from task_instance where state = 'running' group by environment), \
             room as ( \
               select e.name, greatest(0, coalesce((e.spec->>'concurrency')::int, 8) - coalesce(b.n, 0))::int8 as free \
               from environment e left join busy b on b.environment = e.name \
               where not {in_maintenance} and ($4::text[] is null or e.name = any($4))), \
             picked as materialized ( \
               select q.id from room cross join lateral ( \
                 select t.id, t.priority from task_instance t \
                 where t.state = 'queued' and t.environment = room.name \
                   and ($5::uuid[] is null or t.run_id = any($5)) \
                 order by t.priority desc, t.id limit least(room.free, $3) for update skip locked) q \
               order by q.priority desc, q.id limit $3), \
             claimed as ( \
               update task_instance t set state = 'running', worker_id = $1, \
                      lease_until = clock_timestamp() + make_interval(secs => $2), try_number = t.try_number + 1, \
                      started_at = clock_timestamp(), finished_at = null \
               where t.id = any(array(select id from picked)) and t.state = 'queued' \
               returning t.id, t.run_id, t.task_id, t.try_number, t.timeout_secs) \
             select c.id as ti_id, c.run_id, c.task_id, c.try_number, c.timeout_secs, r.dag_id, \
                    r.environment, r.version_id, r.logical_date, r.interval_start, r.interval_end, r.params, \
                    exists (select 1 from event e where e.run_id = c.run_id) as has_events \
             from claimed c join dag_run r on r.id = c.run_id order by c.id",
                in_maintenance = crate::maintenance::IN_MAINTENANCE
            )),
        )
        .bind(worker_id)
        .bind(request.lease_secs)
        .bind(request.limit)
        .bind(request.environments)
        .bind(request.runs)
        .fetch_all(&mut *conn)
        .await?;
    Ok(claimed)
}

#[derive(FromRow)]
struct PendingCounts {
    id: i64,
    state: String,
    trigger_rule: String,
    up_total: i32,
    up_success: i32,
    up_failed: i32,
    up_skipped: i32,
}

/// Decide every pending task instance of `runs` by its trigger rule and apply the decisions
/// with guarded updates (a run's start, and the scheduler's sweep). Returns how many were
/// queued. Each task's upstream outcomes are read from its own counters (kept by the trigger
/// of migration `upstream_counts`), so this costs O(the runs' pending tasks), not O(their
/// edges).
pub(crate) async fn evaluate_pending(conn: &mut PgConnection, runs: &[Uuid]) -> Result<usize> {
    if runs.is_empty() {
        return Ok(0);
    }
    let pending: Vec<PendingCounts> = sqlx::query_as(
        "select id, state, trigger_rule, up_total, up_success, up_failed, up_skipped \
         from task_instance where run_id = any($1) and state = 'pending'",
    )
    .bind(runs)
    .fetch_all(&mut *conn)
    .await?;
    Ok(decide(conn, pending).await?.len())
}

/// Decide the pending task instances among `changed` and their downstream tasks: those whose
/// upstream counters the change of `changed` moved (and, for a task cleared back to pending,
/// itself). This is what a completion costs: O(the downstream of what changed), however wide
/// its run. Returns the run of each task queued.
pub(crate) async fn evaluate_downstream(
    conn: &mut PgConnection,
    changed: &[i64],
) -> Result<Vec<Uuid>> {
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    // Downstream tasks are found by (run_id, task_id), one unique-index probe per task (a
    // fan-in's sink once, not once per upstream task that changed: each probe walks the
    // versions its counters' updates left), and filtered by state here: with
    // `state = 'pending'` in the query the planner may read the partial index of pending rows
    // instead, which under load still holds an entry for every task of a wide fan-out that was
    // queued since (dead, not yet vacuumed), at every completion, while it holds the lock on
    // the fan-in's counters.
    let candidates: Vec<PendingCounts> = sqlx::query_as(
        "select n.state, n.id, n.trigger_rule, n.up_total, n.up_success, n.up_failed, n.up_skipped \
         from (select distinct c.run_id, x.task_id from task_instance c \
               cross join lateral unnest(c.downstream || c.task_id) x(task_id) \
               where c.id = any($1)) k \
         join task_instance n on n.run_id = k.run_id and n.task_id = k.task_id",
    )
    .bind(changed)
    // Prepared once per connection, like the completion's other statements: a plan made while
    // the table was small is made again when autovacuum's analyze of the table invalidates it.
    .fetch_all(&mut *conn)
    .await?;
    let pending = candidates
        .into_iter()
        .filter(|p| p.state == TaskState::Pending.as_str())
        .collect();
    decide(conn, pending).await
}

/// Apply the trigger rules to `pending` with one guarded update; a task that became skipped or
/// upstream_failed decides its own downstream tasks in turn. Returns the run of each task
/// queued.
async fn decide(conn: &mut PgConnection, pending: Vec<PendingCounts>) -> Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    let mut states = Vec::new();
    for p in pending {
        let rule = TriggerRule::parse(&p.trigger_rule).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown trigger rule `{}`", p.trigger_rule))
        })?;
        let n = |v: i32| {
            u32::try_from(v).map_err(|_| {
                StoreError::Corrupt(format!(
                    "task instance {}: negative upstream count {v}",
                    p.id
                ))
            })
        };
        let counts = UpstreamCounts {
            total: n(p.up_total)?,
            success: n(p.up_success)?,
            failed: n(p.up_failed)?,
            skipped: n(p.up_skipped)?,
        };
        let state = match rule.decide(counts) {
            Readiness::Wait => continue,
            Readiness::Queue => TaskState::Queued,
            Readiness::Skip => TaskState::Skipped,
            Readiness::UpstreamFailed => TaskState::UpstreamFailed,
        };
        ids.push(p.id);
        states.push(state.as_str());
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let changed: Vec<(i64, String, Uuid)> = sqlx::query_as(
        "update task_instance t set state = d.state, \
                queued_at = case when d.state = 'queued' then now() end, \
                finished_at = case when d.state <> 'queued' then now() end \
         from unnest($1::bigint[], $2::text[]) as d(id, state) \
         where t.id = d.id and t.state = 'pending' returning t.id, t.state, t.run_id",
    )
    .bind(&ids)
    .bind(&states)
    .fetch_all(&mut *conn)
    .await?;
    let mut queued: Vec<Uuid> = changed
        .iter()
        .filter(|s| s.1 == TaskState::Queued.as_str())
        .map(|s| s.2)
        .collect();
    // A skipped or upstream_failed task decides its own downstream tasks in turn.
    let ended: Vec<i64> = changed
        .iter()
        .filter(|s| s.1 != TaskState::Queued.as_str())
        .map(|s| s.0)
        .collect();
    if !ended.is_empty() {
        queued.extend(Box::pin(evaluate_downstream(conn, &ended)).await?);
    }
    Ok(queued)
}

/// After task instances `changed` of `runs` changed state: decide the pending tasks among them
/// and downstream of them, close finished runs and tell schedulers and workers (`queued`:
/// something was queued already). Returns how many tasks were queued and which runs finished.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    runs: &[Uuid],
    changed: &[i64],
    queued: bool,
) -> Result<(usize, Vec<(Uuid, RunState)>)> {
    if runs.is_empty() {
        if queued {
            notify_changes(conn, runs, true).await?;
        }
        return Ok((0, Vec::new()));
    }
    let newly = evaluate_downstream(conn, changed).await?.len();
    let finished = finish_runs(conn, runs).await?;
    notify_changes(conn, runs, queued || newly > 0).await?;
    Ok((newly, finished))
}

/// Tell schedulers that `runs` changed and, when `queued`, workers that tasks were queued:
/// one statement, at the transaction's commit.
async fn notify_changes(conn: &mut PgConnection, runs: &[Uuid], queued: bool) -> Result<()> {
    if runs.is_empty() && !queued {
        return Ok(());
    }
    // A payload must stay under 8,000 bytes: past that, "*" asks listeners to look at all.
    let payload = if runs.is_empty() {
        None
    } else if runs.len() > 100 {
        Some("*".to_owned())
    } else {
        Some(
            runs.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    sqlx::query(
        "select case when $2::text is not null then pg_notify($1, $2) end, \
                case when $4 then pg_notify($3, '') end",
    )
    .bind(CHANNEL_RUNS)
    .bind(payload)
    .bind(CHANNEL_QUEUE)
    .bind(queued)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl crate::Tx {
    /// Clear finished task instances of a run so they run again (with their retries granted
    /// anew); the run goes back to running. Returns the cleared task ids.
    pub async fn clear_tasks(&mut self, run_id: Uuid, task_ids: &[String]) -> Result<Vec<String>> {
        let tx = self.conn();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "update task_instance set state = 'pending', max_tries = try_number - lost_count + retries + 1, \
                    queued_at = null, started_at = null, finished_at = null, next_attempt_at = null, last_error = null \
             where run_id = $1 and task_id = any($2) \
               and state in ('success', 'failed', 'skipped', 'upstream_failed') \
             returning id, task_id",
        )
        .bind(run_id)
        .bind(task_ids)
        .fetch_all(&mut *tx)
        .await?;
        let (ids, cleared): (Vec<i64>, Vec<String>) = rows.into_iter().unzip();
        if cleared.len() != task_ids.len() {
            let busy: Vec<&String> = task_ids.iter().filter(|t| !cleared.contains(t)).collect();
            return Err(StoreError::Conflict(format!(
                "cannot clear {busy:?}: only finished tasks can be cleared (they may still be queued or running, or not exist)"
            )));
        }
        sqlx::query("update dag_run set state = 'running', finished_at = null where id = $1 and state in ('success', 'failed')")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        // The cleared tasks are pending again: they, and those downstream of them whose
        // counters went back, are decided anew.
        advance(tx, &[run_id], &ids, false).await?;
        Ok(cleared)
    }
}
