//! Staged tables: their columns, inputs found through the registry, outputs replaced whole
//! and registered with the environment's retention. Outputs live in the environment's
//! staging schema and are made on the try's own connection (as the environment's SQL role);
//! receipts live in its receipts schema and are made by Drover's own login.

use drover_spec::bytes::ByteSize;
use drover_spec::dataset::{quoted_relation, receipts_schema, staging_schema, table_name};
use drover_store::{Column, NewDataset};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgExecutor, SqlSafeStr};

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
        relation: d.relation(),
        columns: d.columns.0,
        rows: d.row_count,
    })
}

/// The columns of a table of `schema`, in order, with their types.
pub(crate) async fn columns<'e>(
    db: impl PgExecutor<'e>,
    schema: &str,
    table: &str,
) -> Result<Vec<Column>, TaskError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select a.attname::text, format_type(a.atttypid, a.atttypmod)
         from pg_attribute a
         join pg_class c on c.oid = a.attrelid
         join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped
         order by a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, type_name)| Column { name, type_name })
        .collect())
}

/// Whether the output table `table` of `schema` exists. Something else of that name (a view,
/// say) is refused: a dataset is a table of its own, which retention can drop.
pub(crate) async fn exists<'e>(
    db: impl PgExecutor<'e>,
    schema: &str,
    table: &str,
) -> Result<bool, TaskError> {
    let kind: Option<String> = sqlx::query_scalar(
        "select c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = $1 and c.relname = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(db)
    .await?;
    let what = match kind.as_deref() {
        None => return Ok(false),
        Some("r") => return Ok(true),
        Some("v") => "a view",
        Some("m") => "a materialized view",
        Some("p") => "a partitioned table",
        Some("f") => "a foreign table",
        Some("S") => "a sequence",
        Some("i" | "I") => "an index",
        Some(_) => "something other than a table",
    };
    Err(TaskError::Invalid(format!(
        "`{{{{ output }}}}` must be a table (create table … as …), not {what}"
    )))
}

/// Drop `relation` if an earlier try left it, then run `create` (which makes it), in one
/// transaction. Returns the rows `create` reported.
pub(crate) async fn replace(
    conn: &mut PgConnection,
    relation: &str,
    create: String,
) -> Result<u64, TaskError> {
    let mut tx = conn.begin().await?;
    sqlx::query(AssertSqlSafe(format!("drop table if exists {relation}")))
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(AssertSqlSafe(create).into_sql_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Register this task's output table (in the staging schema, read on the try's connection).
pub(crate) async fn register_output(
    plane: &DataPlane,
    conn: &mut PgConnection,
    id: &TryId,
    table: &str,
    rows: i64,
) -> Result<Vec<Column>, TaskError> {
    let schema = staging_schema(&id.environment.name);
    let columns = columns(&mut *conn, &schema, table).await?;
    let bytes = table_bytes(&mut *conn, &schema, table).await?;
    record(plane, id, "output", table, rows, &columns, bytes).await?;
    if let Err(over) = within_staging_limits(plane, id).await {
        // Over a backstop: the table goes (its entry with it) and the task fails saying why.
        sqlx::query(AssertSqlSafe(format!(
            "drop table if exists {}",
            quoted_relation(&schema, table)
        )))
        .execute(&mut *conn)
        .await?;
        plane
            .store
            .forget_dataset(id.run_id, &id.task_id, "output")
            .await?;
        return Err(over);
    }
    Ok(columns)
}

/// Register this task's receipt (in the receipts schema, made by Drover's login). A receipt
/// is never dropped for a limit: it records what the MAP was already sent, and `revert`
/// needs it.
pub(crate) async fn register_receipt(
    plane: &DataPlane,
    id: &TryId,
    table: &str,
    rows: i64,
) -> Result<Vec<Column>, TaskError> {
    let schema = receipts_schema(&id.environment.name);
    let columns = columns(plane.store.pool(), &schema, table).await?;
    let bytes = table_bytes(plane.store.pool(), &schema, table).await?;
    record(plane, id, "receipt", table, rows, &columns, bytes).await?;
    Ok(columns)
}

async fn table_bytes<'e>(
    db: impl PgExecutor<'e>,
    schema: &str,
    table: &str,
) -> Result<i64, TaskError> {
    Ok(sqlx::query_scalar(
        "select pg_total_relation_size(format('%I.%I', $1::text, $2::text)::regclass)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(db)
    .await?)
}

async fn record(
    plane: &DataPlane,
    id: &TryId,
    kind: &str,
    table: &str,
    rows: i64,
    columns: &[Column],
    bytes: i64,
) -> Result<(), TaskError> {
    plane
        .store
        .record_dataset(&NewDataset {
            run_id: id.run_id,
            task_id: &id.task_id,
            kind,
            environment: &id.environment.name,
            table_name: table,
            row_count: rows,
            columns,
            retention_days: id.environment.dataset_retention_days,
            bytes,
        })
        .await?;
    Ok(())
}

/// The environment's and the DAG's `staged_bytes` limits, with this try's table counted.
async fn within_staging_limits(plane: &DataPlane, id: &TryId) -> Result<(), TaskError> {
    let limits = &id.limits;
    let env_limit = id.environment.limits.staged_bytes;
    if env_limit.is_none() && limits.staged_bytes.is_none() {
        return Ok(());
    }
    let (env_total, dag_total) = plane
        .store
        .staged_bytes(&id.environment.name, &id.dag_id)
        .await?;
    let held = |b: i64| ByteSize(u64::try_from(b).unwrap_or(0));
    if let Some(limit) = limits.staged_bytes
        && held(dag_total) > limit
    {
        return Err(TaskError::Limit(format!(
            "staged data of DAG `{}` in {} would be {}, over its limit of {} (`limits.staged_bytes`); the dataset was dropped",
            id.dag_id,
            id.environment.name,
            held(dag_total),
            limit
        )));
    }
    if let Some(limit) = env_limit
        && held(env_total) > limit
    {
        return Err(TaskError::Limit(format!(
            "staged data in environment {} would be {}, over its limit of {} (`limits.staged_bytes`); the dataset was dropped",
            id.environment.name,
            held(env_total),
            limit
        )));
    }
    Ok(())
}

/// The output table of this try's task.
pub(crate) fn output_table(id: &TryId) -> String {
    table_name(&id.run, &id.task_id, None)
}

/// The output of this try's task as a quoted relation in its environment's staging schema.
pub(crate) fn output_relation(id: &TryId) -> String {
    quoted_relation(&staging_schema(&id.environment.name), &output_table(id))
}

/// The receipt table of this try's task.
pub(crate) fn receipt_table(id: &TryId) -> String {
    table_name(&id.run, &id.task_id, Some("receipt"))
}
