//! Approval of a return's writes: a return that planned waits in `awaiting_approval` (holding
//! no worker slot and no lease) until someone approves its plan — then it is queued again and
//! its next try writes — or rejects it, or the request times out (then it fails).
//!
//! Every change is a guarded `UPDATE … WHERE state = … RETURNING` of the request and of its
//! task instance, committed with its audit event.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::tasks::advance;
use crate::{Result, Store, StoreError, Tx};

/// Who records what Drover itself did (asked for an approval, let one expire).
pub const SYSTEM_ACTOR: &str = "drover";

/// A return's plan, as put to the approver.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanTotals {
    /// Records that would be sent.
    pub to_send: i64,
    /// Of those, records the MAP does not have yet (none known without a snapshot).
    pub creates: Option<i64>,
    /// Of those, existing records that would change.
    pub updates: Option<i64>,
    /// Records that already hold every value: not sent.
    pub unchanged: i64,
    /// Nulls not written over a value (`write_nulls: false`).
    pub withheld: i64,
    /// Rows that cannot be sent (no lookup value).
    pub rejected: i64,
}

impl PlanTotals {
    /// "12 to send (2 new, 10 updated), 5 unchanged and not sent, 1 null withheld".
    pub fn describe(&self) -> String {
        let split = match (self.creates, self.updates) {
            (Some(c), Some(u)) => format!(" ({c} new, {u} updated)"),
            _ => String::new(),
        };
        let mut text = format!(
            "{} to send{split}, {} unchanged and not sent, {} null{} withheld",
            self.to_send,
            self.unchanged,
            self.withheld,
            if self.withheld == 1 { "" } else { "s" }
        );
        if self.rejected > 0 {
            text.push_str(&format!(", {} without a lookup value", self.rejected));
        }
        text
    }
}

/// A request for approval, to record.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub ti_id: i64,
    pub try_number: i32,
    pub digest: String,
    pub totals: PlanTotals,
    /// How long it may wait.
    pub timeout_secs: i64,
}

/// A request for approval as stored.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ApprovalRow {
    pub id: i64,
    #[serde(skip)]
    pub task_instance_id: i64,
    pub run_id: Uuid,
    pub task_id: String,
    pub environment: String,
    pub dag_id: String,
    pub try_number: i32,
    pub digest: String,
    pub to_send: i64,
    pub creates: Option<i64>,
    pub updates: Option<i64>,
    pub unchanged: i64,
    pub withheld: i64,
    pub rejected: i64,
    /// `pending`, `approved`, `rejected`, `expired` or `withdrawn` (the run was marked).
    pub state: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl ApprovalRow {
    pub fn totals(&self) -> PlanTotals {
        PlanTotals {
            to_send: self.to_send,
            creates: self.creates,
            updates: self.updates,
            unchanged: self.unchanged,
            withheld: self.withheld,
            rejected: self.rejected,
        }
    }
}

const COLUMNS: &str = "id, task_instance_id, run_id, task_id, environment, dag_id, try_number, digest, \
     to_send, creates, updates, unchanged, withheld, rejected, state, requested_at, expires_at, \
     decided_by, decided_at, reason";

/// "24 h", "30 min", "90 s": how long a request may wait, in words.
pub fn wait_words(secs: i64) -> String {
    if secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

impl Store {
    /// The latest request of a task instance, if any.
    pub async fn latest_approval(&self, ti_id: i64) -> Result<Option<ApprovalRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from return_approval where task_instance_id = $1 order by id desc limit 1"
        )))
        .bind(ti_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every request of a run, latest first.
    pub async fn run_approvals(&self, run_id: Uuid) -> Result<Vec<ApprovalRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from return_approval where run_id = $1 order by id desc"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The request waiting for a decision on task `task_id` of run `run_id`, if its task still
    /// waits.
    pub async fn pending_approval(
        &self,
        run_id: Uuid,
        task_id: &str,
    ) -> Result<Option<ApprovalRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from return_approval a where a.run_id = $1 and a.task_id = $2 and a.state = 'pending' \
               and exists (select 1 from task_instance t where t.id = a.task_instance_id and t.state = 'awaiting_approval')"
        )))
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Requests waiting for a decision (of `environment`, or of all), oldest first.
    pub async fn pending_approvals(&self, environment: Option<&str>) -> Result<Vec<ApprovalRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from return_approval a where a.state = 'pending' \
               and ($1::text is null or a.environment = $1) \
               and exists (select 1 from task_instance t where t.id = a.task_instance_id and t.state = 'awaiting_approval') \
             order by a.requested_at, a.id"
        )))
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The running try `req` of a return planned and now waits for approval: the task instance
    /// gives back its worker and lease (its try does not count against its retries), the
    /// request is recorded, and the audit event with them. `None` when the try no longer
    /// holds the task (its lease was lost): nothing is recorded.
    pub async fn request_approval(&self, req: &NewApproval) -> Result<Option<ApprovalRow>> {
        let mut tx = self.begin().await?;
        let moved: Option<(Uuid, String)> = sqlx::query_as(
            "with waiting as ( \
               update task_instance t set state = 'awaiting_approval', worker_id = null, lease_until = null, \
                      max_tries = t.max_tries + 1, last_error = null, finished_at = now(), next_attempt_at = null \
               where t.id = $1 and t.try_number = $2 and t.state = 'running' \
               returning t.id, t.run_id, t.task_id, t.try_number, t.started_at, \
                         (select worker_id from task_instance o where o.id = t.id) as old_worker), \
             tries as ( \
               insert into task_try (task_instance_id, try_number, worker_id, state, started_at, finished_at) \
               select id, try_number, old_worker, 'awaiting_approval', started_at, now() from waiting \
               on conflict (task_instance_id, try_number) do update \
                 set state = excluded.state, finished_at = excluded.finished_at) \
             select run_id, task_id from waiting",
        )
        .bind(req.ti_id)
        .bind(req.try_number)
        .fetch_optional(tx.conn())
        .await?;
        let Some((run_id, task_id)) = moved else {
            return Ok(None);
        };
        let t = &req.totals;
        let row: ApprovalRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "insert into return_approval (task_instance_id, run_id, task_id, environment, dag_id, try_number, digest, \
                                          to_send, creates, updates, unchanged, withheld, rejected, expires_at) \
             select $1, r.id, $3, r.environment, r.dag_id, $4, $5, $6, $7, $8, $9, $10, $11, \
                    now() + make_interval(secs => $12) \
             from dag_run r where r.id = $2 \
             returning {COLUMNS}"
        )))
        .bind(req.ti_id)
        .bind(run_id)
        .bind(&task_id)
        .bind(req.try_number)
        .bind(&req.digest)
        .bind(t.to_send)
        .bind(t.creates)
        .bind(t.updates)
        .bind(t.unchanged)
        .bind(t.withheld)
        .bind(t.rejected)
        .bind(req.timeout_secs as f64)
        .fetch_one(tx.conn())
        .await?;
        tx.audit(
            SYSTEM_ACTOR,
            "return.approval_requested",
            Some(&row.environment),
            Some(&row.dag_id),
            Some(row.run_id),
            &serde_json::json!({
                "task": row.task_id,
                "approval": row.id,
                "plan": row.totals(),
                "digest": row.digest,
                "expires_at": row.expires_at,
            }),
        )
        .await?;
        advance(tx.conn(), &[run_id], &[req.ti_id], false).await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}

impl Tx {
    /// Approve request `id` (which must still wait, with its task): the task is queued again;
    /// its next try writes if its plan is still the one approved.
    pub async fn approve_return(&mut self, id: i64, actor: &str) -> Result<ApprovalRow> {
        let row = self.decide(id, "approved", actor, None).await?;
        let queued: Option<i64> = sqlx::query_scalar(
            "update task_instance set state = 'queued', queued_at = now() \
             where id = $1 and state = 'awaiting_approval' returning id",
        )
        .bind(row.task_instance_id)
        .fetch_optional(self.conn())
        .await?;
        if queued.is_none() {
            return Err(StoreError::Conflict(format!(
                "task `{}` no longer waits for approval",
                row.task_id
            )));
        }
        advance(self.conn(), &[row.run_id], &[row.task_instance_id], true).await?;
        Ok(row)
    }

    /// Reject request `id`: its task fails with `reason` (and the run then as its trigger
    /// rules say).
    pub async fn reject_return(
        &mut self,
        id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<ApprovalRow> {
        let row = self.decide(id, "rejected", actor, Some(reason)).await?;
        let error = format!("{actor} rejected the plan: {reason}");
        self.fail_waiting(&row, &error).await?;
        Ok(row)
    }

    async fn decide(
        &mut self,
        id: i64,
        state: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<ApprovalRow> {
        let row: Option<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update return_approval set state = $2, decided_by = $3, decided_at = now(), reason = $4 \
             where id = $1 and state = 'pending' returning {COLUMNS}"
        )))
        .bind(id)
        .bind(state)
        .bind(actor)
        .bind(reason)
        .fetch_optional(self.conn())
        .await?;
        row.ok_or_else(|| {
            StoreError::Conflict(format!(
                "approval request #{id} was already decided (or is no longer waiting)"
            ))
        })
    }

    /// The waiting task of `row` fails with `error`, its log says why, and its run moves on.
    async fn fail_waiting(&mut self, row: &ApprovalRow, error: &str) -> Result<()> {
        let failed: Option<i32> = sqlx::query_scalar(
            "update task_instance set state = 'failed', finished_at = now(), last_error = $2 \
             where id = $1 and state = 'awaiting_approval' returning try_number",
        )
        .bind(row.task_instance_id)
        .bind(error)
        .fetch_optional(self.conn())
        .await?;
        let Some(try_number) = failed else {
            return Err(StoreError::Conflict(format!(
                "task `{}` no longer waits for approval",
                row.task_id
            )));
        };
        sqlx::query(
            "update task_try set state = 'failed', error = $3 where task_instance_id = $1 and try_number = $2",
        )
        .bind(row.task_instance_id)
        .bind(try_number)
        .bind(error)
        .execute(self.conn())
        .await?;
        sqlx::query(
            "insert into task_log (task_instance_id, try_number, stream, line) values ($1, $2, 'system', $3)",
        )
        .bind(row.task_instance_id)
        .bind(try_number)
        .bind(format!("failed: {error}; nothing was sent"))
        .execute(self.conn())
        .await?;
        advance(self.conn(), &[row.run_id], &[row.task_instance_id], false).await?;
        Ok(())
    }
}

impl Store {
    /// Requests past their time: each fails its task ("not approved within 24 h"), with its
    /// audit event, in one transaction. Returns those expired.
    pub async fn expire_approvals(&self) -> Result<Vec<ApprovalRow>> {
        let mut tx = self.begin().await?;
        let rows: Vec<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update return_approval set state = 'expired', decided_at = now() \
             where id = any(array(select id from return_approval \
                                  where state = 'pending' and expires_at <= now() \
                                  for update skip locked)) \
               and state = 'pending' and expires_at <= now() \
             returning {COLUMNS}"
        )))
        .fetch_all(tx.conn())
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in rows {
            let waited = (row.expires_at - row.requested_at).num_seconds();
            let error = format!(
                "not approved within {}: nobody approved or rejected the plan in time",
                wait_words(waited)
            );
            match tx.fail_waiting(&row, &error).await {
                Ok(()) => {}
                // The run was marked meanwhile: nothing waits any more.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
            tx.audit(
                SYSTEM_ACTOR,
                "return.approval_expired",
                Some(&row.environment),
                Some(&row.dag_id),
                Some(row.run_id),
                &serde_json::json!({ "task": row.task_id, "approval": row.id, "waited": wait_words(waited) }),
            )
            .await?;
            expired.push(row);
        }
        tx.commit().await?;
        Ok(expired)
    }
}
