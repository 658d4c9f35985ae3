//! The record history index: each receipt row as a touch of its record (`record_touch`),
//! written in the transaction that creates the receipt, in one set-based statement. A retry's
//! receipt replaces the touches of the try before it.

use drover_spec::dag::map_kinds::ReturnSpec;
use sqlx::{AssertSqlSafe, PgConnection};

use super::super::{TaskError, TryId};

/// Write the touches of `receipt` (a quoted relation Drover made). `sync`: the answers came
/// from sync calls, which say whether each record was created.
pub(super) async fn record_touches(
    conn: &mut PgConnection,
    id: &TryId,
    spec: &ReturnSpec,
    receipt: &str,
    sync: bool,
) -> Result<u64, TaskError> {
    let lookup = if spec.lookup.eq_ignore_ascii_case("email") {
        "email"
    } else if spec.lookup.eq_ignore_ascii_case("id") {
        "id"
    } else {
        spec.lookup.as_str()
    };
    // Status: an accepted row is `created` or `updated` where that is known (the sync answer,
    // or the values before the write: none means the record was new); the receipt's own
    // status otherwise. Changes: every field sent but the lookup and the id, with its value
    // before the write when those were read.
    let done = sqlx::query(AssertSqlSafe(format!(
        "with gone as (
           delete from record_touch where run_id = $1 and task_id = $2 and revert_job is null)
         insert into record_touch (environment, lookup_field, key, map_id, run_id, dag_id, task_id,
                                   try_number, status, reason, changes, withheld)
         select $3, $4, coalesce(r.key, ''),
                coalesce(r.map_id, case when $4 = 'id' and r.key ~ '^[0-9]{{1,18}}$' then r.key::bigint end),
                $1, $5, $2, $6,
                case when r.status <> 'accepted' then r.status
                     when r.created then 'created'
                     when $7 then 'updated'
                     when $8 and r.previous is null then 'created'
                     when $8 then 'updated'
                     else 'accepted' end,
                r.reason,
                case when r.status = 'unchanged' then '{{}}'::jsonb
                     else coalesce((
                       select jsonb_object_agg(s.f, case when $8
                                 then jsonb_build_object('old', coalesce(r.previous -> s.f, 'null'::jsonb), 'new', s.v)
                                 else jsonb_build_object('new', s.v) end)
                       from jsonb_each(r.sent) s(f, v)
                       where lower(s.f) <> lower($4) and s.f <> 'id'), '{{}}'::jsonb) end,
                r.withheld
         from {receipt} r"
    )))
    .bind(id.run_id)
    .bind(&id.task_id)
    .bind(&id.environment.name)
    .bind(lookup)
    .bind(&id.dag_id)
    .bind(id.try_number)
    .bind(sync)
    .bind(spec.snapshot)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
