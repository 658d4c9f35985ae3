//! Staged datasets past their environment's retention are dropped by the scheduler.

use sqlx::AssertSqlSafe;

use super::DataPlane;
use crate::EngineError;

/// Drop up to `limit` expired datasets (as Drover's own login: dropping runs no code of the
/// table's); returns how many were dropped. The table goes first,
/// then the registry says so (a guarded update), so a dataset marked dropped never has a table;
/// two schedulers dropping the same one at once is harmless (`if exists`), and only one of
/// them counts it.
pub async fn drop_expired_datasets(plane: &DataPlane, limit: i64) -> Result<usize, EngineError> {
    let expired = plane.store.expired_datasets(limit).await?;
    let mut dropped = 0;
    for d in expired {
        sqlx::query(AssertSqlSafe(format!(
            "drop table if exists {}",
            d.relation()
        )))
        .execute(plane.store.pool())
        .await
        .map_err(|e| EngineError::Invalid(format!("dropping {}: {e}", d.table_name)))?;
        if plane
            .store
            .mark_dataset_dropped(d.run_id, &d.task_id, &d.kind)
            .await?
        {
            tracing::info!(run_id = %d.run_id, task = %d.task_id, kind = %d.kind, rows = d.row_count, "dropped an expired dataset");
            dropped += 1;
        }
    }
    Ok(dropped)
}
