//! Staged data: the registry of staged tables with their retention, what each try moved,
//! data-check results, and the MAP API calls spent per environment and day. (The schemas and
//! roles user SQL runs in are in `sql_environments`.)

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Result, Store};

/// A staged table's column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    /// The Postgres type, e.g. `bigint`, `text`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A staged table as registered.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct DatasetRow {
    pub run_id: Uuid,
    pub task_id: String,
    pub kind: String,
    pub environment: String,
    pub table_name: String,
    pub row_count: i64,
    pub columns: sqlx::types::Json<Vec<Column>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub dropped_at: Option<DateTime<Utc>>,
}

impl DatasetRow {
    /// The schema holding the table: the environment's staging schema for an output, its
    /// receipts schema for a receipt, a return's plan or a run's events.
    pub fn schema(&self) -> String {
        if matches!(self.kind.as_str(), "receipt" | "plan" | "events") {
            drover_spec::dataset::receipts_schema(&self.environment)
        } else {
            drover_spec::dataset::staging_schema(&self.environment)
        }
    }

    /// The table as a quoted, schema-qualified relation.
    pub fn relation(&self) -> String {
        drover_spec::dataset::quoted_relation(&self.schema(), &self.table_name)
    }
}

/// A dataset to register.
#[derive(Debug, Clone)]
pub struct NewDataset<'a> {
    pub run_id: Uuid,
    pub task_id: &'a str,
    /// `output`, `receipt` or `plan` (a return's plan records).
    pub kind: &'a str,
    pub environment: &'a str,
    pub table_name: &'a str,
    pub row_count: i64,
    pub columns: &'a [Column],
    pub retention_days: u32,
    /// The table's size on disk.
    pub bytes: i64,
}

/// The first rows of a dataset, as text (`None` for SQL null).
#[derive(Debug, Clone, Serialize)]
pub struct DatasetPreview {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// What one try moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TryMetrics {
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    pub rows_rejected: Option<i64>,
    pub api_calls: Option<i64>,
    pub bytes_moved: Option<i64>,
    /// Of a return's accepted rows, those that created a record (the rest updated one).
    pub rows_created: Option<i64>,
    /// A return's rows whose record already held every value: not sent.
    pub rows_unchanged: Option<i64>,
}

/// A data check's verdict.
#[derive(Debug, Clone)]
pub struct CheckOutcome<'a> {
    pub run_id: Uuid,
    pub task_id: &'a str,
    pub try_number: i32,
    pub dag_id: &'a str,
    pub environment: &'a str,
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub passed: bool,
    /// `warn` or `fail`.
    pub severity: &'a str,
}

/// A stored check result.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct CheckResultRow {
    pub run_id: Uuid,
    pub task_id: String,
    pub try_number: i32,
    pub dag_id: String,
    pub environment: String,
    pub value: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub passed: bool,
    pub severity: String,
    pub checked_at: DateTime<Utc>,
}

/// The budget refused: `used` calls of `budget` are spent today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRefused {
    pub budget: i64,
    pub used: i64,
}

impl Store {
    /// Register a staged table (replacing the entry a previous try wrote).
    pub async fn record_dataset(&self, d: &NewDataset<'_>) -> Result<()> {
        sqlx::query(
            "insert into dataset (run_id, task_id, kind, environment, table_name, row_count, columns, expires_at, bytes)
             values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(days => $8), $9)
             on conflict (run_id, task_id, kind) do update
               set table_name = excluded.table_name, row_count = excluded.row_count, bytes = excluded.bytes,
                   columns = excluded.columns, created_at = now(),
                   expires_at = excluded.expires_at, dropped_at = null",
        )
        .bind(d.run_id)
        .bind(d.task_id)
        .bind(d.kind)
        .bind(d.environment)
        .bind(d.table_name)
        .bind(d.row_count)
        .bind(sqlx::types::Json(d.columns))
        .bind(i32::try_from(d.retention_days).unwrap_or(i32::MAX))
        .bind(d.bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remove a dataset's entry (its table was dropped before anyone used it).
    pub async fn forget_dataset(&self, run_id: Uuid, task_id: &str, kind: &str) -> Result<()> {
        sqlx::query("delete from dataset where run_id = $1 and task_id = $2 and kind = $3")
            .bind(run_id)
            .bind(task_id)
            .bind(kind)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The registered dataset of a task in a run.
    pub async fn dataset(
        &self,
        run_id: Uuid,
        task_id: &str,
        kind: &str,
    ) -> Result<Option<DatasetRow>> {
        Ok(sqlx::query_as(
            "select run_id, task_id, kind, environment, table_name, row_count, columns, created_at, expires_at, dropped_at
             from dataset where run_id = $1 and task_id = $2 and kind = $3",
        )
        .bind(run_id)
        .bind(task_id)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The first `limit` rows of a staged dataset as text (`None` for SQL null), read as its
    /// environment's SQL role; `only_problems` keeps a receipt's rejected and warning rows.
    pub async fn preview_dataset(
        staging: &crate::StagingPools,
        d: &DatasetRow,
        only_problems: bool,
        limit: i64,
    ) -> Result<DatasetPreview> {
        use sqlx::Row;
        let names: Vec<String> = d.columns.0.iter().map(|c| c.name.clone()).collect();
        let select = names
            .iter()
            .map(|n| format!("{}::text", drover_spec::dataset::quote_ident(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = if only_problems && names.iter().any(|n| n == "status") {
            " where status in ('rejected', 'warning')"
        } else {
            ""
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {select} from {}{filter} limit $1",
            d.relation()
        )))
        .bind(limit.max(0))
        .fetch_all(&staging.pool(&d.environment)?)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                cells.push(row.try_get::<Option<String>, _>(i)?);
            }
            out.push(cells);
        }
        Ok(DatasetPreview {
            columns: names,
            rows: out,
        })
    }

    /// The datasets of a run, in the order they were made.
    pub async fn run_datasets(&self, run_id: Uuid) -> Result<Vec<DatasetRow>> {
        Ok(sqlx::query_as(
            "select run_id, task_id, kind, environment, table_name, row_count, columns, created_at, expires_at, dropped_at
             from dataset where run_id = $1 order by created_at, task_id, kind",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Datasets past their retention and not yet dropped (at most `limit`).
    pub async fn expired_datasets(&self, limit: i64) -> Result<Vec<DatasetRow>> {
        Ok(sqlx::query_as(
            "select run_id, task_id, kind, environment, table_name, row_count, columns, created_at, expires_at, dropped_at
             from dataset where dropped_at is null and expires_at <= now()
             order by expires_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Mark a dataset dropped; false if another process did it first.
    pub async fn mark_dataset_dropped(
        &self,
        run_id: Uuid,
        task_id: &str,
        kind: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "update dataset set dropped_at = now()
             where run_id = $1 and task_id = $2 and kind = $3 and dropped_at is null
             returning 1",
        )
        .bind(run_id)
        .bind(task_id)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Make every dataset of `environment` expire `days` after it was made (a changed
    /// retention applies to what is already staged).
    pub async fn set_dataset_retention(&self, environment: &str, days: u32) -> Result<u64> {
        let done = sqlx::query(
            "update dataset set expires_at = created_at + make_interval(days => $2)
             where environment = $1 and dropped_at is null
               and expires_at <> created_at + make_interval(days => $2)",
        )
        .bind(environment)
        .bind(i32::try_from(days).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Record what a try moved, while it runs: the try's row appears early (state `running`)
    /// and its completion fills in the rest. Only the try that holds the task instance can
    /// write.
    pub async fn record_try_metrics(
        &self,
        ti_id: i64,
        try_number: i32,
        m: &TryMetrics,
    ) -> Result<()> {
        sqlx::query(
            "insert into task_try (task_instance_id, try_number, worker_id, state, started_at,
                                   rows_in, rows_out, rows_rejected, api_calls, bytes_moved, rows_created, rows_unchanged)
             select id, try_number, worker_id, 'running', started_at, $3, $4, $5, $6, $7, $8, $9
             from task_instance where id = $1 and try_number = $2 and state = 'running'
             on conflict (task_instance_id, try_number) do update
               set rows_in = excluded.rows_in, rows_out = excluded.rows_out,
                   rows_rejected = excluded.rows_rejected, api_calls = excluded.api_calls,
                   bytes_moved = excluded.bytes_moved, rows_created = excluded.rows_created,
                   rows_unchanged = excluded.rows_unchanged",
        )
        .bind(ti_id)
        .bind(try_number)
        .bind(m.rows_in)
        .bind(m.rows_out)
        .bind(m.rows_rejected)
        .bind(m.api_calls)
        .bind(m.bytes_moved)
        .bind(m.rows_created)
        .bind(m.rows_unchanged)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What the latest try of each task of a run moved, by task id.
    pub async fn run_metrics(&self, run_id: Uuid) -> Result<Vec<(String, TryMetrics)>> {
        #[derive(FromRow)]
        struct Row {
            task_id: String,
            rows_in: Option<i64>,
            rows_out: Option<i64>,
            rows_rejected: Option<i64>,
            api_calls: Option<i64>,
            bytes_moved: Option<i64>,
            rows_created: Option<i64>,
            rows_unchanged: Option<i64>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "select distinct on (ti.id) ti.task_id, tt.rows_in, tt.rows_out, tt.rows_rejected, tt.api_calls, tt.bytes_moved, tt.rows_created, tt.rows_unchanged
             from task_instance ti join task_try tt on tt.task_instance_id = ti.id
             where ti.run_id = $1 order by ti.id, tt.try_number desc",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.task_id,
                    TryMetrics {
                        rows_in: r.rows_in,
                        rows_out: r.rows_out,
                        rows_rejected: r.rows_rejected,
                        api_calls: r.api_calls,
                        bytes_moved: r.bytes_moved,
                        rows_created: r.rows_created,
                        rows_unchanged: r.rows_unchanged,
                    },
                )
            })
            .collect())
    }

    /// Store a check's verdict.
    pub async fn record_check(&self, c: &CheckOutcome<'_>) -> Result<()> {
        sqlx::query(
            "insert into check_result (run_id, task_id, try_number, dag_id, environment, value, min_value, max_value, passed, severity)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             on conflict (run_id, task_id, try_number) do update
               set value = excluded.value, passed = excluded.passed, checked_at = now()",
        )
        .bind(c.run_id)
        .bind(c.task_id)
        .bind(c.try_number)
        .bind(c.dag_id)
        .bind(c.environment)
        .bind(c.value)
        .bind(c.min)
        .bind(c.max)
        .bind(c.passed)
        .bind(c.severity)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A check's results, newest first.
    pub async fn check_history(
        &self,
        dag_id: &str,
        environment: &str,
        task_id: &str,
        limit: i64,
    ) -> Result<Vec<CheckResultRow>> {
        Ok(sqlx::query_as(
            "select run_id, task_id, try_number, dag_id, environment, value, min_value, max_value, passed, severity, checked_at
             from check_result where dag_id = $1 and environment = $2 and task_id = $3
             order by checked_at desc limit $4",
        )
        .bind(dag_id)
        .bind(environment)
        .bind(task_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Spend `calls` of `environment`'s daily MAP API budget for `day`, in one guarded
    /// statement: refused (nothing spent) when it would go over `budget`.
    pub async fn spend_api_calls(
        &self,
        environment: &str,
        day: NaiveDate,
        calls: i64,
        budget: i64,
    ) -> Result<Result<i64, BudgetRefused>> {
        let spent: Option<i64> = sqlx::query_scalar(
            "insert into map_api_usage as u (environment, day, calls) values ($1, $2, $3)
             on conflict (environment, day) do update set calls = u.calls + excluded.calls
             where u.calls + excluded.calls <= $4
             returning calls",
        )
        .bind(environment)
        .bind(day)
        .bind(calls)
        .bind(budget)
        .fetch_optional(&self.pool)
        .await?;
        match spent {
            Some(used) if used <= budget => Ok(Ok(used)),
            Some(used) => {
                // A first spend larger than the whole budget: take it back.
                sqlx::query("update map_api_usage set calls = calls - $3 where environment = $1 and day = $2")
                    .bind(environment)
                    .bind(day)
                    .bind(calls)
                    .execute(&self.pool)
                    .await?;
                Ok(Err(BudgetRefused {
                    budget,
                    used: used - calls,
                }))
            }
            None => {
                let used: i64 = sqlx::query_scalar(
                    "select calls from map_api_usage where environment = $1 and day = $2",
                )
                .bind(environment)
                .bind(day)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0);
                Ok(Err(BudgetRefused { budget, used }))
            }
        }
    }

    /// MAP API calls spent by `environment` on `day`.
    pub async fn api_calls_on(&self, environment: &str, day: NaiveDate) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "select calls from map_api_usage where environment = $1 and day = $2",
        )
        .bind(environment)
        .bind(day)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0))
    }
}
