//! Revert jobs: a request to write back the values a return overwrote, queued here and run
//! by a worker (which holds the MAP connections) under a lease, with its progress. A job
//! whose worker died is claimed again when its lease expires and resumes where it stopped:
//! the receipt keys it dealt with are recorded in the same statement as its counts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError, Tx};

/// Skipped keys and refusals kept on a job, for the page and the API.
pub const KEPT_KEYS: i32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RevertJob {
    pub id: i64,
    pub run_id: Uuid,
    pub task_id: String,
    pub environment: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub force: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Receipt rows to go through (known once a worker has read the receipt).
    pub total: Option<i64>,
    pub processed: i64,
    pub restored: i64,
    /// Records whose values changed since the return: left as they are.
    pub skipped_changed: i64,
    pub refused: i64,
    pub created_left: i64,
    pub not_written: i64,
    pub error: Option<String>,
    pub skipped_keys: Vec<String>,
    pub refusals: serde_json::Value,
}

impl RevertJob {
    pub fn unfinished(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "running")
    }
}

/// What one chunk of a job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertChunk {
    /// Receipt keys dealt with (whatever the outcome).
    pub keys: Vec<String>,
    pub restored: i64,
    /// The keys restored (or found already back to their values before the return): their
    /// touches in the record history are marked reverted.
    pub restored_keys: Vec<String>,
    pub skipped_keys: Vec<String>,
    /// (key, reason)
    pub refusals: Vec<(String, String)>,
    pub created_left: i64,
    pub not_written: i64,
}

const COLUMNS: &str = "id, run_id, task_id, environment, state, force, requested_by, requested_at, \
    started_at, finished_at, worker_id, lease_until, total, processed, restored, skipped_changed, \
    refused, created_left, not_written, error, skipped_keys, refusals";

impl Tx {
    /// Queue a revert of `task_id`'s return in `run_id`; a Conflict if one is unfinished.
    pub async fn queue_revert(
        &mut self,
        run_id: Uuid,
        task_id: &str,
        environment: &str,
        force: bool,
        requested_by: &str,
    ) -> Result<RevertJob> {
        let inserted = sqlx::query_as::<_, RevertJob>(sqlx::AssertSqlSafe(format!(
            "insert into revert_job (run_id, task_id, environment, state, force, requested_by) \
             values ($1, $2, $3, 'queued', $4, $5) on conflict do nothing returning {COLUMNS}"
        )))
        .bind(run_id)
        .bind(task_id)
        .bind(environment)
        .bind(force)
        .bind(requested_by)
        .fetch_optional(self.conn())
        .await?;
        inserted.ok_or_else(|| {
            StoreError::Conflict(format!(
                "a revert of `{task_id}` in this run is already queued or running"
            ))
        })
    }
}

impl Store {
    /// The newest revert job of `task_id` in `run_id`.
    pub async fn latest_revert(&self, run_id: Uuid, task_id: &str) -> Result<Option<RevertJob>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from revert_job where run_id = $1 and task_id = $2 order by id desc limit 1"
        )))
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The newest revert job of each task of `run_id`.
    pub async fn latest_reverts(&self, run_id: Uuid) -> Result<Vec<RevertJob>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select distinct on (task_id) {COLUMNS} from revert_job where run_id = $1 \
             order by task_id, id desc"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn revert_job(&self, id: i64) -> Result<RevertJob> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from revert_job where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("revert job {id} not found")))
    }

    /// Claim one queued job, or a running one whose lease expired (its worker died), of the
    /// environments `environments` (`None`: every environment), for `worker_id`.
    pub async fn claim_revert(
        &self,
        worker_id: &str,
        lease_secs: f64,
        environments: Option<&[String]>,
    ) -> Result<Option<RevertJob>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update revert_job set state = 'running', worker_id = $1, \
                    lease_until = clock_timestamp() + make_interval(secs => $2), \
                    started_at = coalesce(started_at, clock_timestamp()) \
             where id = (select id from revert_job \
                         where (state = 'queued' or (state = 'running' and lease_until < clock_timestamp())) \
                           and ($3::text[] is null or environment = any($3)) \
                         order by id limit 1 for update skip locked) \
               and (state = 'queued' or (state = 'running' and lease_until < clock_timestamp())) \
             returning {COLUMNS}"
        )))
        .bind(worker_id)
        .bind(lease_secs)
        .bind(environments)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Extend the lease of job `id`; false when `worker_id` no longer holds it.
    pub async fn renew_revert(&self, id: i64, worker_id: &str, lease_secs: f64) -> Result<bool> {
        Ok(sqlx::query(
            "update revert_job set lease_until = clock_timestamp() + make_interval(secs => $3) \
             where id = $1 and worker_id = $2 and state = 'running'",
        )
        .bind(id)
        .bind(worker_id)
        .bind(lease_secs)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Set the number of receipt rows the job goes through.
    pub async fn set_revert_total(&self, id: i64, worker_id: &str, total: i64) -> Result<bool> {
        Ok(sqlx::query(
            "update revert_job set total = $3 where id = $1 and worker_id = $2 and state = 'running'",
        )
        .bind(id)
        .bind(worker_id)
        .bind(total)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// The keys of job `id` already dealt with, among `keys`.
    pub async fn revert_keys_done(&self, id: i64, keys: &[String]) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("select key from revert_done where job_id = $1 and key = any($2)")
                .bind(id)
                .bind(keys)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Record a chunk: its keys as done and its counts, in one statement, while `worker_id`
    /// holds the job. False (and nothing recorded) when it no longer does.
    pub async fn record_revert_chunk(
        &self,
        id: i64,
        worker_id: &str,
        chunk: &RevertChunk,
    ) -> Result<bool> {
        let (refused_keys, reasons): (Vec<&str>, Vec<&str>) = chunk
            .refusals
            .iter()
            .map(|(k, r)| (k.as_str(), r.as_str()))
            .unzip();
        let updated = sqlx::query_scalar::<_, i64>(
            "with job as ( \
               select id, run_id, task_id from revert_job where id = $1 and worker_id = $2 and state = 'running' for update), \
             done as ( \
               insert into revert_done (job_id, key) select job.id, k from job, unnest($3::text[]) k \
               on conflict do nothing returning 1), \
             marked as ( \
               update record_touch t set reverted_at = clock_timestamp(), reverted_by_job = job.id from job \
               where t.run_id = job.run_id and t.task_id = job.task_id and t.key = any($11::text[]) \
                 and t.reverted_at is null and t.revert_job is null \
               returning t.*), \
             undone as ( \
               insert into record_touch (environment, lookup_field, key, map_id, run_id, dag_id, task_id, \
                                         try_number, touched_at, status, changes, revert_job) \
               select m.environment, m.lookup_field, m.key, m.map_id, m.run_id, m.dag_id, m.task_id, m.try_number, \
                      clock_timestamp(), 'reverted', \
                      coalesce((select jsonb_object_agg(f, case when c ? 'old' \
                                  then jsonb_build_object('old', c->'new', 'new', c->'old') \
                                  else jsonb_build_object('old', c->'new') end) \
                                from jsonb_each(m.changes) e(f, c)), '{}'::jsonb), \
                      m.reverted_by_job \
               from marked m returning 1) \
             update revert_job j set \
               processed = processed + (select count(*) from done), \
               restored = restored + $4, \
               skipped_changed = skipped_changed + cardinality($5::text[]), \
               refused = refused + cardinality($6::text[]), \
               created_left = created_left + $8, \
               not_written = not_written + $9, \
               skipped_keys = (skipped_keys || $5::text[])[1:$10::int], \
               refusals = coalesce((select jsonb_agg(x) from ( \
                   select x from jsonb_array_elements(refusals) x \
                   union all select jsonb_build_object('key', k, 'reason', r) from unnest($6::text[], $7::text[]) u(k, r) \
                   limit $10::int) l), '[]'::jsonb) \
             from job where j.id = job.id returning j.id",
        )
        .bind(id)
        .bind(worker_id)
        .bind(&chunk.keys)
        .bind(chunk.restored)
        .bind(&chunk.skipped_keys)
        .bind(&refused_keys)
        .bind(&reasons)
        .bind(chunk.created_left)
        .bind(chunk.not_written)
        .bind(KEPT_KEYS)
        .bind(&chunk.restored_keys)
        .fetch_optional(&self.pool)
        .await?;
        Ok(updated.is_some())
    }

    /// End job `id` as `done` (no `error`) or `failed`, with its audit event, while
    /// `worker_id` holds it.
    pub async fn finish_revert(
        &self,
        id: i64,
        worker_id: &str,
        error: Option<&str>,
        dag_id: &str,
    ) -> Result<Option<RevertJob>> {
        let mut tx = self.begin().await?;
        let job: Option<RevertJob> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update revert_job set state = case when $3::text is null then 'done' else 'failed' end, \
                    error = $3, finished_at = clock_timestamp(), lease_until = null \
             where id = $1 and worker_id = $2 and state = 'running' returning {COLUMNS}"
        )))
        .bind(id)
        .bind(worker_id)
        .bind(error)
        .fetch_optional(tx.conn())
        .await?;
        let Some(job) = job else {
            return Ok(None);
        };
        tx.audit(
            &job.requested_by,
            "return.revert",
            Some(&job.environment),
            Some(dag_id),
            Some(job.run_id),
            &serde_json::json!({
                "task": job.task_id,
                "job": job.id,
                "state": job.state,
                "force": job.force,
                "error": job.error,
                "report": {
                    "restored": job.restored,
                    "skipped_changed": job.skipped_changed,
                    "refused": job.refused,
                    "created_left": job.created_left,
                    "not_written": job.not_written,
                    "skipped_keys": job.skipped_keys.iter().take(20).collect::<Vec<_>>(),
                },
                "worker": worker_id,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(job))
    }
}
