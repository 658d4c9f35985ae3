//! Staged datasets past their environment's retention are dropped by the scheduler, and
//! record history older than a year and a month (`RECORD_HISTORY_DAYS`) is deleted.

use sqlx::AssertSqlSafe;

use super::DataPlane;
use crate::EngineError;

/// Drop up to `limit` expired datasets (as Drover's own login: dropping runs no code of the
/// table's); returns how many were dropped. The table goes first (with anything built on it,
/// which only its environment's role can have made: a view, say), then the registry says so
/// (a guarded update), so a dataset marked dropped never has a table; two schedulers dropping
/// the same one at once is harmless (`if exists`), and only one of them counts it. A dataset
/// that cannot be dropped is logged and left for the next round; the others still go.
pub async fn drop_expired_datasets(plane: &DataPlane, limit: i64) -> Result<usize, EngineError> {
    let expired = plane.store.expired_datasets(limit).await?;
    let mut dropped = 0;
    for d in expired {
        let gone = sqlx::query(AssertSqlSafe(format!(
            "drop table if exists {} cascade",
            d.relation()
        )))
        .execute(plane.store.pool())
        .await;
        if let Err(e) = gone {
            tracing::warn!(run_id = %d.run_id, task = %d.task_id, kind = %d.kind, environment = %d.environment, table = %d.relation(), error = %e, "could not drop an expired dataset; trying again next round");
            continue;
        }
        match plane
            .store
            .mark_dataset_dropped(d.run_id, &d.task_id, &d.kind)
            .await
        {
            Ok(true) => {
                tracing::info!(run_id = %d.run_id, task = %d.task_id, kind = %d.kind, rows = d.row_count, "dropped an expired dataset");
                dropped += 1;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(run_id = %d.run_id, task = %d.task_id, kind = %d.kind, error = %e, "dropped an expired dataset but could not mark it dropped; trying again next round");
            }
        }
    }
    // The record history outlives the receipts, for a year: older touches go in batches.
    match plane
        .store
        .prune_record_history(drover_store::RECORD_HISTORY_DAYS, 10_000)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            touches = n,
            days = drover_store::RECORD_HISTORY_DAYS,
            "deleted record history older than its retention"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not delete old record history; trying again next round")
        }
    }
    Ok(dropped)
}
