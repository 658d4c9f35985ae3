//! The plan, recorded before a return writes (and by a preview run, which writes nothing):
//! per row its key, map id, status (create / update / unchanged / not sent; `send` without a
//! snapshot) and each field's old → new value, with the fields withheld; and per try the
//! totals with a digest of the records.
//!
//! Built in SQL from the side tables in a few passes over them, whatever the number of rows:
//! one `create table … as` joining rows, plan and values before (copying values, computing
//! nothing per field), an index on the row order for paging, then one aggregate for the
//! totals and digest and one for the fields changed.
//! The records are environment data (a PROD lead's values): they live in the environment's
//! receipts schema, readable by its SQL role like receipts, and registered as a dataset of
//! kind `plan` so retention drops them. The totals are Drover's, in `return_plan`.
//!
//! One records table per task, replaced by each try: a retry's plan never adds to an
//! earlier try's.

use drover_spec::dag::map_kinds::ReturnSpec;
use drover_spec::dataset::{
    quote_ident, quote_literal, quoted_relation, receipts_schema, sql_role, table_name,
};
use drover_store::NewDataset;
use drover_store::plans::status;
use sqlx::AssertSqlSafe;

use super::super::{DataPlane, TaskError, TryId, staged};
use super::side::SideTables;
use crate::runner::Job;

/// The records table of this try's task.
pub(crate) fn records_table(id: &TryId) -> String {
    table_name(&id.run, &id.task_id, Some("planned"))
}

/// Record the plan of the rows in `side` (after `plan_rows`), log it in words, and register
/// its records for retention.
pub(super) async fn record(
    plane: &DataPlane,
    id: &TryId,
    job: &Job<'_>,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<drover_store::ReturnPlan, TaskError> {
    let schema = receipts_schema(&id.environment.name);
    let table = records_table(id);
    let relation = quoted_relation(&schema, &table);
    let snapshot = if spec.snapshot { "true" } else { "false" };
    // Per row: `new`, the fields to write (the lookup left out); `old`, the record's values
    // before (null for a new record, and without a snapshot) — each field's old → new is
    // read from the two, so building the table copies values and computes nothing per field.
    let build = format!(
        "drop table if exists {relation};
         create table {relation} as
         select r.ord, r.key, (b.previous->>'id')::bigint as map_id,
                case when p.status = 'rejected' then '{not_sent}'
                     when p.status = 'unchanged' then '{unchanged}'
                     when not {snapshot} then '{send}'
                     when b.previous is null then '{create}'
                     else '{update}' end as status,
                p.reason,
                p.payload - {lookup} as new,
                case when {snapshot} then b.previous end as old,
                p.withheld
         from {rows} r
         join {plan} p on p.ord = r.ord
         left join {before} b on b.key = r.key;
         create unique index on {relation} (ord);
         grant select on {relation} to {role};",
        not_sent = status::NOT_SENT,
        unchanged = status::UNCHANGED,
        send = status::SEND,
        create = status::CREATE,
        update = status::UPDATE,
        lookup = quote_literal(&spec.lookup),
        rows = side.rows,
        plan = side.plan,
        before = side.before,
        role = quote_ident(&sql_role(&id.environment.name)),
    );
    let mut tx = plane.store.pool().begin().await?;
    sqlx::raw_sql(AssertSqlSafe(build))
        .execute(&mut *tx)
        .await?;
    // The totals and the digest in one pass; the fields changed in another. The digest is
    // two sums of 64-bit hashes of every record (its key, status and withheld fields as
    // text, its new and old values by their jsonb hash, each field of a record bound to
    // it), with the count: no sort and no text of the values, and equal for equal plans
    // whatever order they were written in.
    let totals = format!(
        "insert into return_plan (run_id, task_id, try_number, environment, table_name, lookup, snapshot, preview,
                                  rows, creates, updates, sends, unchanged, not_sent, nulls_withheld, field_changes, digest)
         select $1, $2, $3, $4, $5, $6, $7, coalesce((select preview from dag_run where id = $1), false),
                t.rows, case when $7 then t.creates end, case when $7 then t.updates end,
                t.sends, t.unchanged, t.not_sent, t.withheld,
                (select coalesce(jsonb_object_agg(f, n), '{{}}'::jsonb) from (
                   select f, count(*) as n from {relation} x, jsonb_object_keys(x.new) f
                   where x.status in ('{update}', '{send}') group by f) c),
                t.digest
         from (select count(*) as rows,
                      count(*) filter (where status = '{create}') as creates,
                      count(*) filter (where status = '{update}') as updates,
                      count(*) filter (where status in ('{create}', '{update}', '{send}')) as sends,
                      count(*) filter (where status = '{unchanged}') as unchanged,
                      count(*) filter (where status = '{not_sent}') as not_sent,
                      coalesce(sum(cardinality(withheld)), 0)::bigint as withheld,
                      md5(concat_ws(':', count(*), sum(h0::numeric), sum(h1::numeric))) as digest
               from (select *,
                            hashtextextended(line, 0) # coalesce(jsonb_hash_extended(new, 1), 0)
                              # coalesce(jsonb_hash_extended(old, 2), 0) as h0,
                            hashtextextended(line, 3) # coalesce(jsonb_hash_extended(new, 4), 0)
                              # coalesce(jsonb_hash_extended(old, 5), 0) as h1
                     from (select *, concat_ws(E'\\x1f', coalesce(key, '∅'), status,
                                               coalesce(array_to_string(withheld, ','), '∅')) as line
                           from {relation}) l) x) t
         on conflict (run_id, task_id, try_number) do update
           set environment = excluded.environment, table_name = excluded.table_name, lookup = excluded.lookup,
               snapshot = excluded.snapshot, preview = excluded.preview, rows = excluded.rows,
               creates = excluded.creates, updates = excluded.updates, sends = excluded.sends,
               unchanged = excluded.unchanged, not_sent = excluded.not_sent,
               nulls_withheld = excluded.nulls_withheld, field_changes = excluded.field_changes,
               digest = excluded.digest, recorded_at = now()",
        create = status::CREATE,
        update = status::UPDATE,
        send = status::SEND,
        unchanged = status::UNCHANGED,
        not_sent = status::NOT_SENT,
    );
    sqlx::query(AssertSqlSafe(totals))
        .bind(id.run_id)
        .bind(&id.task_id)
        .bind(id.try_number)
        .bind(&id.environment.name)
        .bind(&table)
        .bind(&spec.lookup)
        .bind(spec.snapshot)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let columns = staged::columns(plane.store.pool(), &schema, &table).await?;
    let bytes: i64 = sqlx::query_scalar(
        "select pg_total_relation_size(format('%I.%I', $1::text, $2::text)::regclass)",
    )
    .bind(&schema)
    .bind(&table)
    .fetch_one(plane.store.pool())
    .await?;
    let plan = plane
        .store
        .latest_return_plan(id.run_id, &id.task_id)
        .await?
        .ok_or_else(|| TaskError::Transient("the plan just recorded is not there".to_owned()))?;
    plane
        .store
        .record_dataset(&NewDataset {
            run_id: id.run_id,
            task_id: &id.task_id,
            kind: "plan",
            environment: &id.environment.name,
            table_name: &table,
            row_count: plan.rows,
            columns: &columns,
            retention_days: id.environment.dataset_retention_days,
            bytes,
        })
        .await?;
    job.log.system(format!("plan: {}", plan.in_words()));
    Ok(plan)
}
