//! What DAGs use: MAP API calls, rows moved, task runtime and staged storage, per day; and
//! the totals the backstops (limits) are checked against.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;

use crate::{Result, Store};

/// One DAG's use on one day (UTC) in one environment.
#[derive(Debug, Clone, Default, FromRow, serde::Serialize)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub dag_id: String,
    pub api_calls: i64,
    pub rows_moved: i64,
    pub runtime_secs: f64,
    /// Staged bytes held at the end of the day (now, for today).
    pub storage_bytes: i64,
}

impl Store {
    /// Use per day and DAG in `environment` from `since` (a UTC day) on.
    pub async fn usage(&self, environment: &str, since: NaiveDate) -> Result<Vec<UsageRow>> {
        Ok(sqlx::query_as(
            "with work as ( \
               select (t.finished_at at time zone 'UTC')::date as day, r.dag_id, \
                      sum(coalesce(t.api_calls, 0))::bigint as api_calls, \
                      sum(coalesce(t.rows_out, 0))::bigint as rows_moved, \
                      sum(extract(epoch from t.finished_at - t.started_at))::float8 as runtime_secs \
               from task_try t join task_instance ti on ti.id = t.task_instance_id \
               join dag_run r on r.id = ti.run_id \
               where t.finished_at >= $2::date and ti.environment = $1 and t.started_at is not null \
               group by 1, 2), \
             days as (select generate_series($2::date, (now() at time zone 'UTC')::date, interval '1 day')::date as day), \
             held as ( \
               select d.day, r.dag_id, sum(ds.bytes)::bigint as storage_bytes \
               from days d join dataset ds on ds.environment = $1 \
                 and ds.created_at < (d.day + 1)::timestamp at time zone 'UTC' \
                 and (ds.dropped_at is null or ds.dropped_at >= (d.day + 1)::timestamp at time zone 'UTC') \
               join dag_run r on r.id = ds.run_id \
               group by 1, 2) \
             select coalesce(w.day, h.day) as day, coalesce(w.dag_id, h.dag_id) as dag_id, \
                    coalesce(w.api_calls, 0) as api_calls, coalesce(w.rows_moved, 0) as rows_moved, \
                    coalesce(w.runtime_secs, 0) as runtime_secs, coalesce(h.storage_bytes, 0) as storage_bytes \
             from work w full join held h on h.day = w.day and h.dag_id = w.dag_id \
             order by 1, 2",
        )
        .bind(environment)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Staged bytes held now in `environment`, and of them by `dag_id`'s runs.
    pub async fn staged_bytes(&self, environment: &str, dag_id: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "select coalesce(sum(d.bytes), 0)::bigint, \
                    coalesce(sum(d.bytes) filter (where r.dag_id = $2), 0)::bigint \
             from dataset d join dag_run r on r.id = d.run_id \
             where d.environment = $1 and d.dropped_at is null",
        )
        .bind(environment)
        .bind(dag_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// MAP API calls `dag_id`'s tasks spent in `environment` since `since` (finished tries).
    pub async fn dag_api_calls_since(
        &self,
        environment: &str,
        dag_id: &str,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "select coalesce(sum(t.api_calls), 0)::bigint \
             from task_try t join task_instance ti on ti.id = t.task_instance_id \
             join dag_run r on r.id = ti.run_id \
             where t.finished_at >= $3 and ti.environment = $1 and r.dag_id = $2",
        )
        .bind(environment)
        .bind(dag_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Runs running now in `environment` (all DAGs) and of `dag_id`.
    pub async fn running_counts(&self, environment: &str, dag_id: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "select count(*), count(*) filter (where dag_id = $2) from dag_run \
             where environment = $1 and state = 'running'",
        )
        .bind(environment)
        .bind(dag_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
