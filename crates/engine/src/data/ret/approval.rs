//! Approval of a return's writes (`returns: { require_approval: true }` in the environment):
//! once planned, a return sends nothing until someone approves its plan. The first try that
//! plans records a request — the plan's totals and a digest of its content — and gives back
//! its worker slot and lease; its task waits in `awaiting_approval`. Once approved, the task
//! is queued again; its next try plans anew (from the values before the write kept from the
//! first try, so the same plan) and writes only if the plan's digest is the one approved —
//! else it asks again.

use std::sync::Arc;

use drover_map::MapConnector;
use drover_spec::dag::map_kinds::ReturnSpec;
use drover_store::{NewApproval, PlanTotals, TryMetrics};
use sqlx::{AssertSqlSafe, Row};

use super::super::{DataPlane, TaskError, TryId};
use super::side::SideTables;
use crate::runner::Job;

/// Go on (the environment asks for no approval, there is nothing to send, or this plan was
/// approved), or record a request and end the try with [`TaskError::AwaitingApproval`].
pub(super) async fn gate(
    plane: &DataPlane,
    id: &TryId,
    job: &Job<'_>,
    spec: &ReturnSpec,
    side: &SideTables,
    client: &Arc<dyn MapConnector>,
    rows_in: i64,
) -> Result<(), TaskError> {
    let policy = id.environment.returns;
    if !policy.require_approval {
        return Ok(());
    }
    let (totals, digest) = plan_of(plane, spec, side).await?;
    if totals.to_send == 0 {
        job.log.system("nothing to send: no approval needed");
        return Ok(());
    }
    match plane.store.latest_approval(id.ti_id).await? {
        Some(a) if a.state == "approved" && a.digest == digest => {
            job.log.system(format!(
                "plan approved by {} on {}: writing",
                a.decided_by.as_deref().unwrap_or("?"),
                a.decided_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            ));
            return Ok(());
        }
        Some(a) if a.state == "approved" => {
            job.log.system(format!(
                "the plan changed since {} approved it (then: {}; now: {}): asking again",
                a.decided_by.as_deref().unwrap_or("?"),
                a.totals().describe(),
                totals.describe()
            ));
        }
        _ => {}
    }
    // What this try spent (reading the values before the write) is recorded while it still
    // holds its task.
    let usage = client.usage();
    let spent = TryMetrics {
        rows_in: Some(rows_in),
        rows_out: Some(0),
        rows_rejected: Some(0),
        api_calls: Some(i64::try_from(usage.calls).unwrap_or(i64::MAX)),
        bytes_moved: Some(0),
        rows_created: Some(0),
        rows_unchanged: Some(totals.unchanged),
    };
    if let Err(e) = plane
        .store
        .record_try_metrics(id.ti_id, id.try_number, &spent)
        .await
    {
        tracing::warn!(error = %e, "could not record what the try moved");
    }
    side.drop_per_try(plane).await?;
    let timeout = policy.approval_timeout;
    let asked = plane
        .store
        .request_approval(&NewApproval {
            ti_id: id.ti_id,
            try_number: id.try_number,
            digest,
            totals: totals.clone(),
            timeout_secs: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        })
        .await?;
    if asked.is_none() {
        return Err(TaskError::Transient(
            "the try no longer holds its task (its lease was lost): nothing was sent".to_owned(),
        ));
    }
    job.log.system(format!(
        "waiting for approval before writing to {}: {}. An operator other than the DAG's last committer, or an admin, approves or rejects the plan on the run page, with `drover runs approve {} {}` or through the API; nothing is sent until then, and the task fails if nobody decides within {}",
        id.environment.name,
        totals.describe(),
        id.run_id,
        id.task_id,
        drover_store::wait_words(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)),
    ));
    Err(TaskError::AwaitingApproval)
}

/// The plan's totals and a digest of its content, in one pass over the side tables: per row
/// the key, whether and what is sent, the nulls withheld and the record's values before the
/// write. The same plan gives the same digest whatever the rows' order.
async fn plan_of(
    plane: &DataPlane,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<(PlanTotals, String), TaskError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select count(*) filter (where status is null) as to_send,
                count(*) filter (where status is null and known and previous is null) as creates,
                count(*) filter (where status is null and previous is not null) as updates,
                count(*) filter (where status = 'unchanged') as unchanged,
                coalesce(sum(cardinality(withheld)), 0)::bigint as withheld,
                count(*) filter (where status = 'rejected') as rejected,
                md5(coalesce(string_agg(h, '' order by key, h), '')) as digest
         from (select r.key, p.status, p.withheld, b.previous, b.key is not null as known,
                      md5(concat_ws(chr(31), coalesce(r.key, '∅'), coalesce(p.status, 'send'),
                                    coalesce(p.payload::text, '∅'),
                                    coalesce(array_to_string(p.withheld, chr(30)), '∅'),
                                    coalesce(b.previous::text, '∅'))) as h
               from {plan} p join {rows} r on r.ord = p.ord
               left join {before} b on b.key = r.key) x",
        plan = side.plan,
        rows = side.rows,
        before = side.before,
    )))
    .fetch_one(plane.store.pool())
    .await?;
    let known = spec.snapshot;
    let totals = PlanTotals {
        to_send: row.try_get("to_send")?,
        creates: if known {
            Some(row.try_get("creates")?)
        } else {
            None
        },
        updates: if known {
            Some(row.try_get("updates")?)
        } else {
            None
        },
        unchanged: row.try_get("unchanged")?,
        withheld: row.try_get("withheld")?,
        rejected: row.try_get("rejected")?,
    };
    Ok((totals, row.try_get("digest")?))
}
