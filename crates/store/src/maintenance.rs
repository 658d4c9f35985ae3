//! Maintenance mode: one row while it is on. Scheduling and claiming read it in the same
//! statements that do the work, so no run starts and no task is claimed once it is on.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Result, Store};

/// The condition, as SQL, that maintenance is on now.
pub(crate) const IN_MAINTENANCE: &str =
    "exists (select 1 from maintenance where until is null or until > now())";

/// Maintenance in force: why, until when, since when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct Maintenance {
    pub message: String,
    /// When it ends by itself; `None`: when someone turns it off.
    pub until: Option<DateTime<Utc>>,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
}

impl Maintenance {
    /// Seconds a client should wait before trying again: until the announced end (at least
    /// a minute), else ten minutes.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> i64 {
        self.until.map_or(600, |u| (u - now).num_seconds().max(60))
    }
}

impl Store {
    /// Maintenance in force now, if any (one whose `until` has passed is over).
    pub async fn maintenance(&self) -> Result<Option<Maintenance>> {
        Ok(sqlx::query_as(
            "select message, until, started_by, started_at from maintenance \
             where until is null or until > now()",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Turn maintenance on (or change its message and end), audited.
    pub async fn start_maintenance(
        &self,
        message: &str,
        until: Option<DateTime<Utc>>,
        by: &str,
    ) -> Result<Maintenance> {
        let mut tx = self.pool.begin().await?;
        let m: Maintenance = sqlx::query_as(
            "insert into maintenance (id, message, until, started_by) values (1, $1, $2, $3) \
             on conflict (id) do update set message = excluded.message, until = excluded.until, \
               started_by = excluded.started_by, started_at = now() \
             returning message, until, started_by, started_at",
        )
        .bind(message)
        .bind(until)
        .bind(by)
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::record(
            &mut tx,
            by,
            "maintenance_on",
            None,
            None,
            None,
            &serde_json::json!({ "message": message, "until": until }),
        )
        .await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Interrupt every running task instance: queued again without using a retry (its try
    /// recorded as interrupted with `reason`); workers see their lease gone at their next
    /// heartbeat and stop the process. Audited. Returns how many.
    pub async fn interrupt_running_tasks(&self, by: &str, reason: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "with stopped as ( \
               update task_instance t set state = 'queued', queued_at = now(), lost_count = t.lost_count + 1, \
                      worker_id = null, lease_until = null \
               where t.state = 'running' \
               returning t.id, t.try_number, t.started_at, \
                         (select worker_id from task_instance o where o.id = t.id) as old_worker) \
             insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at, error) \
             select id, try_number, old_worker, 'interrupted', started_at, now(), $1 from stopped \
             on conflict (task_instance_id, try_number) do update \
               set state = excluded.state, finished_at = excluded.finished_at, error = excluded.error",
        )
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        crate::audit::record(
            &mut tx,
            by,
            "maintenance_stop_running",
            None,
            None,
            None,
            &serde_json::json!({ "tasks": n, "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Turn maintenance off; false when it was not on. Audited when it was.
    pub async fn end_maintenance(&self, by: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let ended: Option<Maintenance> = sqlx::query_as(
            "delete from maintenance where id = 1 \
             returning message, until, started_by, started_at",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(m) = ended else {
            return Ok(false);
        };
        crate::audit::record(
            &mut tx,
            by,
            "maintenance_off",
            None,
            None,
            None,
            &serde_json::json!({ "message": m.message, "started_at": m.started_at }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
