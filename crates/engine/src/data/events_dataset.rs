//! `{{ events }}`: the events of a run as a table its SQL reads — one row per event
//! (`event_id`, `received_at`, `payload`), or with the trigger's `rows` one per element of
//! that array (`event_id`, `received_at`, `row_number`, `payload` the element). The table
//! lives in the environment's receipts schema, written by Drover's own login and readable
//! by that environment's SQL role only; it is made once per run, when its first data task
//! starts, from the recorded events with bound parameters (nothing of a payload is ever
//! SQL text), and registered like any dataset so retention drops it.
//!
//! `{{ event }}` is the run's first event's payload.

use drover_spec::dag::Dag;
use drover_spec::dataset::{quote_ident, quoted_relation, receipts_schema, sql_role, table_name};
use drover_spec::template::RenderContext;
use drover_store::{Column, NewDataset, Store};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{DataPlane, TaskError, TryId, staged};

/// The registry's kind for a run's events table (its task id is empty: no task made it).
pub const EVENTS_KIND: &str = "events";

/// The table of a run's events (`run` without dashes). Receipts tables always carry a
/// suffix, so this name is no task's.
pub(crate) fn events_table(run: &str) -> String {
    table_name(run, "events", None)
}

/// The quoted relation of a run's events in `environment`.
pub fn events_relation(environment: &str, run_id: Uuid) -> String {
    quoted_relation(
        &receipts_schema(environment),
        &events_table(&run_id.simple().to_string()),
    )
}

/// Fill the context's `event` (the first event's payload) and `events` (the relation) when
/// events started the run.
pub(crate) async fn add_events(
    store: &Store,
    run_id: Uuid,
    environment: &str,
    context: &mut RenderContext,
) -> Result<(), drover_store::StoreError> {
    if let Some(first) = store.first_event(run_id).await? {
        context.event = first.payload;
        context.events = events_relation(environment, run_id);
    }
    Ok(())
}

/// The tokens of a JSON pointer (RFC 6901), as Postgres's `#>` takes a path.
pub(crate) fn pointer_path(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Make the run's events table if this run does not have it yet. Tasks of one run starting
/// at once take turns; a try that died half way leaves no registered table, and the next
/// one makes it again.
pub(crate) async fn ensure_events_table(
    plane: &DataPlane,
    id: &TryId,
    dag: &Dag,
) -> Result<(), TaskError> {
    let store = &plane.store;
    let Some(first) = store.first_event(id.run_id).await? else {
        return Ok(());
    };
    let rows = dag.webhook(&first.trigger).and_then(|w| w.rows.clone());
    let environment = &id.environment.name;
    let schema = receipts_schema(environment);
    let table = events_table(&id.run);
    let relation = quoted_relation(&schema, &table);
    let mut tx = store.pool().begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 20))")
        .bind(&relation)
        .execute(&mut *tx)
        .await?;
    let registered: Option<i64> = sqlx::query_scalar(
        "select row_count from dataset where run_id = $1 and task_id = '' and kind = $2",
    )
    .bind(id.run_id)
    .bind(EVENTS_KIND)
    .fetch_optional(&mut *tx)
    .await?;
    if registered.is_some() {
        tx.commit().await?;
        return Ok(());
    }
    let role = quote_ident(&sql_role(environment));
    sqlx::query(AssertSqlSafe(format!("drop table if exists {relation}")))
        .execute(&mut *tx)
        .await?;
    let filled = match &rows {
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "create table {relation} (event_id uuid not null, received_at timestamptz not null, payload jsonb not null)"
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "insert into {relation} (event_id, received_at, payload) \
                 select id, received_at, payload from event where run_id = $1 order by received_at, id"
            )))
            .bind(id.run_id)
            .execute(&mut *tx)
            .await?
        }
        Some(pointer) => {
            sqlx::query(AssertSqlSafe(format!(
                "create table {relation} (event_id uuid not null, received_at timestamptz not null, \
                 row_number bigint not null, payload jsonb not null)"
            )))
            .execute(&mut *tx)
            .await?;
            // An event without an array there contributes no row.
            sqlx::query(AssertSqlSafe(format!(
                "insert into {relation} (event_id, received_at, row_number, payload) \
                 select e.id, e.received_at, x.n, x.v from event e \
                 cross join lateral jsonb_array_elements( \
                     case when jsonb_typeof(e.payload #> $2::text[]) = 'array' \
                          then e.payload #> $2::text[] else '[]'::jsonb end) with ordinality x(v, n) \
                 where e.run_id = $1 order by e.received_at, e.id, x.n"
            )))
            .bind(id.run_id)
            .bind(pointer_path(pointer))
            .execute(&mut *tx)
            .await?
        }
    };
    sqlx::query(AssertSqlSafe(format!(
        "grant select on {relation} to {role}"
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let count = i64::try_from(filled.rows_affected()).unwrap_or(i64::MAX);
    let columns: Vec<Column> = staged::columns(store.pool(), &schema, &table).await?;
    let bytes: i64 = sqlx::query_scalar(
        "select pg_total_relation_size(format('%I.%I', $1::text, $2::text)::regclass)",
    )
    .bind(&schema)
    .bind(&table)
    .fetch_one(store.pool())
    .await?;
    store
        .record_dataset(&NewDataset {
            run_id: id.run_id,
            task_id: "",
            kind: EVENTS_KIND,
            environment,
            table_name: &table,
            row_count: count,
            columns: &columns,
            retention_days: id.environment.dataset_retention_days,
            bytes,
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_paths() {
        assert_eq!(pointer_path(""), Vec::<String>::new());
        assert_eq!(pointer_path("/leads"), vec!["leads"]);
        assert_eq!(pointer_path("/a~1b/m~0n/0"), vec!["a/b", "m~n", "0"]);
    }
}
