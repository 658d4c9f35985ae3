//! `sql`: statements run in the staging schema as `drover_sql`. A task that creates
//! `{{ output }}` has a dataset like any other.

use drover_spec::template::render;
use drover_store::TryMetrics;
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr};

use super::{DataPlane, TaskError, TryId, staged};
use crate::runner::Job;

pub(super) async fn run(
    plane: &DataPlane,
    id: &TryId,
    job: &Job<'_>,
    query: &str,
) -> Result<TryMetrics, TaskError> {
    let sql = render(query, "sql", &job.context).map_err(|e| TaskError::Invalid(e.to_string()))?;
    let table = staged::output_table(id);
    let mut tx = plane.staging.begin().await?;
    // A retry starts from a clean slate.
    (&mut *tx)
        .execute(AssertSqlSafe(format!(
            "drop table if exists {}",
            drover_spec::dataset::quoted_relation(&table)
        )))
        .await?;
    let done = (&mut *tx)
        .execute(AssertSqlSafe(sql).into_sql_str())
        .await?;
    tx.commit().await?;
    let affected = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
    job.log
        .system(format!("statements done ({affected} rows affected)"));
    if staged::exists(&plane.staging, &table).await? {
        let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "select count(*) from {}",
            drover_spec::dataset::quoted_relation(&table)
        )))
        .fetch_one(&plane.staging)
        .await?;
        staged::register(plane, id, "output", &table, rows).await?;
        job.log.system(format!("dataset: {rows} rows"));
        return Ok(TryMetrics {
            rows_out: Some(rows),
            ..TryMetrics::default()
        });
    }
    Ok(TryMetrics {
        rows_out: Some(affected),
        ..TryMetrics::default()
    })
}
