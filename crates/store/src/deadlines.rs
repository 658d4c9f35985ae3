//! Deadlines: runs and task instances whose `deadline_at` passed before they succeeded are
//! marked missed (once, whoever sweeps); those that succeeded in time are marked met.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Result, Store};

/// A run (or, with `task_id`, a task instance) that missed its deadline.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DeadlineMiss {
    pub run_id: Uuid,
    pub dag_id: String,
    pub environment: String,
    /// Empty for the run's own deadline.
    pub task_id: String,
    pub deadline_at: DateTime<Utc>,
}

impl Store {
    /// Settle every pending deadline that is decided: met when it succeeded in time, missed
    /// when the moment passed first. Returns the misses found by this call.
    pub async fn settle_deadlines(&self) -> Result<Vec<DeadlineMiss>> {
        let mut misses: Vec<DeadlineMiss> = sqlx::query_as(
            "with settled as ( \
               update dag_run set \
                 deadline_state = case when state = 'success' and finished_at <= deadline_at \
                                       then 'met' else 'missed' end, \
                 deadline_missed_at = case when state = 'success' and finished_at <= deadline_at \
                                           then null else now() end \
               where id = any(array( \
                   select id from dag_run where deadline_state = 'pending' \
                     and (deadline_at <= now() or state = 'success') \
                   for update skip locked)) \
                 and deadline_state = 'pending' \
               returning id, dag_id, environment, deadline_state, deadline_at) \
             select id as run_id, dag_id, environment, '' as task_id, deadline_at \
             from settled where deadline_state = 'missed'",
        )
        .fetch_all(&self.pool)
        .await?;
        let tasks: Vec<DeadlineMiss> = sqlx::query_as(
            "with settled as ( \
               update task_instance set \
                 deadline_state = case when state = 'success' and finished_at <= deadline_at \
                                       then 'met' else 'missed' end, \
                 deadline_missed_at = case when state = 'success' and finished_at <= deadline_at \
                                           then null else now() end \
               where id = any(array( \
                   select id from task_instance where deadline_state = 'pending' \
                     and (deadline_at <= now() or state = 'success') \
                   for update skip locked)) \
                 and deadline_state = 'pending' \
               returning run_id, task_id, environment, deadline_state, deadline_at) \
             select s.run_id, r.dag_id, s.environment, s.task_id, s.deadline_at \
             from settled s join dag_run r on r.id = s.run_id where s.deadline_state = 'missed'",
        )
        .fetch_all(&self.pool)
        .await?;
        misses.extend(tasks);
        Ok(misses)
    }

    /// Deadline misses (runs and tasks) per environment in the last day.
    pub async fn deadline_misses_last_day(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "select environment, count(*) from ( \
               select environment from dag_run \
               where deadline_state = 'missed' and deadline_missed_at > now() - interval '1 day' \
               union all \
               select environment from task_instance \
               where deadline_state = 'missed' and deadline_missed_at > now() - interval '1 day' \
             ) m group by environment order by environment",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
