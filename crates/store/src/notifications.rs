//! Notifications: events found in the run history (a run failed, a task used its last try,
//! a run succeeded after a failure, a deadline was missed, a data check breached, …) and
//! episodes of stale data become one row per channel, exactly once; senders claim due rows
//! under a short lease and record what became of each.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Result, Store};

/// How far back events are looked for: a channel added now does not replay old history.
const LOOKBACK: &str = "interval '1 hour'";

/// One notification and what became of it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub channel: String,
    pub environment: String,
    pub dag_id: String,
    /// The run it is about; none for a `stale` notification, which is about an episode.
    pub run_id: Option<Uuid>,
    pub task_id: String,
    pub event: String,
    /// The episode of stale data a `stale` notification is about.
    pub stale_episode: Option<i64>,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, channel, environment, dag_id, run_id, task_id, event, stale_episode, \
                       state, reason, attempts, created_at, sent_at";

impl Store {
    /// Record the recent events of `environment` that `channel` wants (`events` by name, of
    /// the DAGs `dags`, or of all when empty), each once; returns how many are new.
    pub async fn queue_notifications(
        &self,
        environment: &str,
        channel: &str,
        events: &[&str],
        dags: &[String],
    ) -> Result<u64> {
        let sql = format!(
            "insert into notification (channel, environment, dag_id, run_id, task_id, event, stale_episode) \
             select $2, $1, e.dag_id, e.run_id, e.task_id, e.event, e.episode from ( \
               select r.dag_id, r.id as run_id, '' as task_id, 'failure' as event, null::int8 as episode from dag_run r \
               where r.environment = $1 and r.state = 'failed' and r.finished_at > now() - {LOOKBACK} \
               union all \
               select r.dag_id, t.run_id, t.task_id, 'retry_exhausted', null from task_instance t \
               join dag_run r on r.id = t.run_id \
               where t.environment = $1 and t.state = 'failed' and t.try_number >= t.max_tries \
                 and t.finished_at > now() - {LOOKBACK} \
               union all \
               select r.dag_id, r.id, '', 'recovery', null from dag_run r \
               where r.environment = $1 and r.state = 'success' and r.finished_at > now() - {LOOKBACK} \
                 and not r.preview \
                 and (select p.state from dag_run p \
                      where p.dag_id = r.dag_id and p.environment = r.environment and not p.preview \
                        and p.state in ('success', 'failed') and p.finished_at < r.finished_at \
                      order by p.finished_at desc limit 1) = 'failed' \
               union all \
               select r.dag_id, r.id, '', 'deadline_missed', null from dag_run r \
               where r.environment = $1 and r.deadline_state = 'missed' \
                 and r.deadline_missed_at > now() - {LOOKBACK} \
               union all \
               select r.dag_id, t.run_id, t.task_id, 'deadline_missed', null from task_instance t \
               join dag_run r on r.id = t.run_id \
               where t.environment = $1 and t.deadline_state = 'missed' \
                 and t.deadline_missed_at > now() - {LOOKBACK} \
               union all \
               select c.dag_id, c.run_id, c.task_id, 'check_breach', null from check_result c \
               where c.environment = $1 and not c.passed and c.checked_at > now() - {LOOKBACK} \
               union all \
               select r.dag_id, r.id, '', 'warnings', null from dag_run r \
               where r.environment = $1 and r.state = 'success' and r.finished_at > now() - {LOOKBACK} \
                 and (exists (select 1 from check_result c where c.run_id = r.id and not c.passed and c.severity = 'warn') \
                      or exists (select 1 from task_instance t join task_try tt \
                                   on tt.task_instance_id = t.id and tt.try_number = t.try_number \
                                 where t.run_id = r.id and t.state = 'success' and tt.rows_rejected > 0)) \
               union all \
               select s.dag_id, s.run_id, s.task_id, 'slo_burn', null from slo_burn s \
               where s.environment = $1 and s.at > now() - {LOOKBACK} \
               union all \
               select a.dag_id, a.run_id, a.task_id, 'approval_needed', null from return_approval a \
               where a.environment = $1 and a.state = 'pending' and a.requested_at > now() - {LOOKBACK} \
               union all \
               select s.dag_id, null, s.task_id, 'stale', s.id from stale_episode s \
               where s.environment = $1 and s.cleared_at is null and s.opened_at > now() - {LOOKBACK} \
             ) e where e.event = any($3) and (cardinality($4::text[]) = 0 or e.dag_id = any($4)) \
             on conflict do nothing"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(environment)
            .bind(channel)
            .bind(events)
            .bind(dags)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Take up to `limit` due notifications, each under a two-minute lease (a sender that
    /// dies leaves it due again).
    pub async fn claim_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update notification set attempts = attempts + 1, \
                    next_attempt_at = now() + interval '2 minutes' \
             where id = any(array( \
               select id from notification where state = 'pending' and next_attempt_at <= now() \
               order by id limit $1 for update skip locked)) \
               and state = 'pending' \
             returning {COLUMNS}"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// An earlier notification of the same event and DAG to `channel` that makes `n` a
    /// duplicate: one sent since `since`, or one still being delivered. Stale data is the
    /// same event only for the same data (the DAG's own, or one task's).
    pub async fn last_sent_like(
        &self,
        n: &NotificationRow,
        since: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "select id from notification where channel = $1 and environment = $2 and dag_id = $3 \
               and event = $4 and id <> $6 and (event <> 'stale' or task_id = $7) \
               and ((state = 'sent' and sent_at >= $5) or (state = 'pending' and id < $6)) \
             order by id desc limit 1",
        )
        .bind(&n.channel)
        .bind(&n.environment)
        .bind(&n.dag_id)
        .bind(&n.event)
        .bind(since)
        .bind(n.id)
        .bind(&n.task_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Notifications sent to `channel` (of `environment`) since `since`.
    pub async fn sent_count(
        &self,
        environment: &str,
        channel: &str,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "select count(*) from notification where channel = $1 and environment = $2 \
               and state = 'sent' and sent_at >= $3",
        )
        .bind(channel)
        .bind(environment)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Record what became of a claimed notification: `sent`, `suppressed` or `failed` (with
    /// the reason), or `pending` again at `retry_at`. Only the claim that took it (same
    /// attempt) may; false when another did.
    pub async fn finish_notification(
        &self,
        n: &NotificationRow,
        state: &str,
        reason: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        // A sent `stale` notification marks its episode told (the first one sent).
        let done: i64 = sqlx::query_scalar(
            "with done as ( \
               update notification set state = $3, reason = $4, \
                      sent_at = case when $3 = 'sent' then now() end, \
                      next_attempt_at = coalesce($5, next_attempt_at) \
               where id = $1 and attempts = $2 and state = 'pending' \
               returning stale_episode, state), \
             told as ( \
               update stale_episode e set notified_at = now() from done \
               where e.id = done.stale_episode and done.state = 'sent' and e.notified_at is null) \
             select count(*) from done",
        )
        .bind(n.id)
        .bind(n.attempts)
        .bind(state)
        .bind(reason)
        .bind(retry_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(done == 1)
    }

    /// The latest notifications, newest first.
    pub async fn notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from notification order by id desc limit $1"
        )))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?)
    }
}
