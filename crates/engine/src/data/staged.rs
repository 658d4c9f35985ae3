//! Staged tables: their columns, inputs found through the registry, outputs replaced whole
//! and registered with the environment's retention.

use drover_spec::dataset::{quoted_relation, table_name};
use drover_store::{Column, NewDataset};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr};

use super::{DataPlane, TaskError, TryId};

/// An upstream task's staged rows.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) relation: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: i64,
}

impl Input {
    pub(crate) fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// The dataset `task` produced in this run.
pub(crate) async fn input(plane: &DataPlane, id: &TryId, task: &str) -> Result<Input, TaskError> {
    let Some(d) = plane.store.dataset(id.run_id, task, "output").await? else {
        return Err(TaskError::Invalid(format!(
            "`{task}` made no dataset in this run (only export, transform and sql tasks that create {{{{ output }}}} do)"
        )));
    };
    if d.dropped_at.is_some() {
        return Err(TaskError::Invalid(format!(
            "the dataset of `{task}` in this run was dropped after its retention period"
        )));
    }
    Ok(Input {
        relation: quoted_relation(&d.table_name),
        columns: d.columns.0,
        rows: d.row_count,
    })
}

/// The columns of a staged table, in order, with their types.
pub(crate) async fn columns(pool: &PgPool, table: &str) -> Result<Vec<Column>, TaskError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select a.attname::text, format_type(a.atttypid, a.atttypmod)
         from pg_attribute a
         join pg_class c on c.oid = a.attrelid
         join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'staging' and c.relname = $1 and a.attnum > 0 and not a.attisdropped
         order by a.attnum",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, type_name)| Column { name, type_name })
        .collect())
}

/// Whether a staged table exists.
pub(crate) async fn exists(pool: &PgPool, table: &str) -> Result<bool, TaskError> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                        where n.nspname = 'staging' and c.relname = $1)",
    )
    .bind(table)
    .fetch_one(pool)
    .await?)
}

/// Drop `table` if an earlier try left it, then run `create` (which makes it), in one
/// transaction. Returns the rows `create` reported.
pub(crate) async fn replace(pool: &PgPool, table: &str, create: String) -> Result<u64, TaskError> {
    let mut tx = pool.begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "drop table if exists {}",
        quoted_relation(table)
    )))
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query(AssertSqlSafe(create).into_sql_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Register this task's output (or receipt) table with its columns.
pub(crate) async fn register(
    plane: &DataPlane,
    id: &TryId,
    kind: &str,
    table: &str,
    rows: i64,
) -> Result<Vec<Column>, TaskError> {
    let columns = columns(&plane.staging, table).await?;
    plane
        .store
        .record_dataset(&NewDataset {
            run_id: id.run_id,
            task_id: &id.task_id,
            kind,
            environment: &id.environment.name,
            table_name: table,
            row_count: rows,
            columns: &columns,
            retention_days: id.environment.dataset_retention_days,
        })
        .await?;
    Ok(columns)
}

/// The output table of this try's task.
pub(crate) fn output_table(id: &TryId) -> String {
    table_name(&id.run, &id.task_id, None)
}

/// The receipt table of this try's task.
pub(crate) fn receipt_table(id: &TryId) -> String {
    table_name(&id.run, &id.task_id, Some("receipt"))
}
