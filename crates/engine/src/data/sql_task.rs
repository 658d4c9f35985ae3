//! `sql`: statements run in the environment's staging schema as its SQL role, on the try's
//! own connection. A task that creates `{{ output }}` has a dataset like any other.

use drover_spec::dataset::staging_schema;
use drover_spec::template::render_sql;
use drover_store::TryMetrics;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqlSafeStr};

use super::{DataPlane, TaskError, TryId, staged};
use crate::runner::Job;

pub(super) async fn run(
    plane: &DataPlane,
    conn: &mut PgConnection,
    id: &TryId,
    job: &Job<'_>,
    query: &str,
) -> Result<TryMetrics, TaskError> {
    let sql =
        render_sql(query, "sql", &job.context).map_err(|e| TaskError::Invalid(e.to_string()))?;
    let table = staged::output_table(id);
    let relation = staged::output_relation(id);
    let mut tx = conn.begin().await?;
    // A retry starts from a clean slate.
    (&mut *tx)
        .execute(AssertSqlSafe(format!("drop table if exists {relation}")))
        .await?;
    let done = (&mut *tx)
        .execute(AssertSqlSafe(sql).into_sql_str())
        .await?;
    tx.commit().await?;
    let affected = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
    job.log
        .system(format!("statements done ({affected} rows affected)"));
    if staged::exists(&mut *conn, &staging_schema(&id.environment.name), &table).await? {
        let rows: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {relation}")))
                .fetch_one(&mut *conn)
                .await?;
        staged::register_output(plane, conn, id, &table, rows).await?;
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
