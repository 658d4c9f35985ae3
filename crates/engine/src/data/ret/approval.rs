//! Approval of a return's writes (`returns: { require_approval: true }` in the environment):
//! once planned, a return sends nothing until someone approves its plan. The first try that
//! plans records a request — the recorded plan's totals and digest — and gives back
//! its worker slot and lease; its task waits in `awaiting_approval`. Once approved, the task
//! is queued again; its next try plans anew (from the values before the write kept from the
//! first try, so the same plan) and writes only if the plan's digest is the one approved —
//! else it asks again.

use std::sync::Arc;

use drover_map::MapConnector;
use drover_store::{NewApproval, PlanTotals, ReturnPlan, TryMetrics};

use super::super::{DataPlane, TaskError, TryId};
use super::side::SideTables;
use crate::runner::Job;

/// Go on (the environment asks for no approval, there is nothing to send, or this plan was
/// approved), or record a request and end the try with [`TaskError::AwaitingApproval`].
pub(super) async fn gate(
    plane: &DataPlane,
    id: &TryId,
    job: &Job<'_>,
    plan: &ReturnPlan,
    side: &SideTables,
    client: &Arc<dyn MapConnector>,
    rows_in: i64,
) -> Result<(), TaskError> {
    let policy = id.environment.returns;
    if !policy.require_approval {
        return Ok(());
    }
    // What is approved is the plan this try recorded (`drover runs plan`): its totals, and
    // its digest to tell a later try's plan is the same.
    let totals = totals_of(plan);
    let digest = plan.digest.clone();
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
    // The lines so far are in the log before the task shows as waiting.
    job.log.flush().await;
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
    job.log.flush().await;
    Err(TaskError::AwaitingApproval)
}

/// The totals an approval request shows, from the plan the try recorded.
fn totals_of(plan: &ReturnPlan) -> PlanTotals {
    PlanTotals {
        to_send: plan.sends,
        creates: plan.creates,
        updates: plan.updates,
        unchanged: plan.unchanged,
        withheld: plan.nulls_withheld,
        rejected: plan.not_sent,
    }
}
