//! Reverting a return: the values each record had before the write, sent back by id.

use drover_map::{RecordStatus, SyncAction, SyncRequest};
use drover_spec::environment::Environment;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::DataPlane;
use super::maps::map_error;
use crate::EngineError;

/// What a revert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RevertReport {
    /// Records whose previous values were written back.
    pub restored: u64,
    /// Records the MAP refused to restore, with its reasons.
    pub refused: Vec<(String, String)>,
    /// Records the return created (no values before it): left in place.
    pub created_left: u64,
    /// Rows not written in the first place (rejected by the MAP, or unchanged and so never
    /// sent): nothing to undo.
    pub not_written: u64,
}

/// Write back the values the records of `task`'s return in `run_id` had before it.
pub async fn revert_return(
    plane: &DataPlane,
    environment: &Environment,
    run_id: Uuid,
    task_id: &str,
) -> Result<RevertReport, EngineError> {
    let Some(receipt) = plane.store.dataset(run_id, task_id, "receipt").await? else {
        return Err(EngineError::Invalid(format!(
            "task `{task_id}` of run {run_id} has no return receipt to revert"
        )));
    };
    if receipt.dropped_at.is_some() {
        return Err(EngineError::Invalid(format!(
            "the receipt of `{task_id}` in run {run_id} was dropped after its retention period; it can no longer be reverted"
        )));
    }
    let client = plane
        .maps
        .client(environment)
        .map_err(|e| EngineError::Invalid(e.to_string()))?
        .scoped();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select key, status, previous, sent from {} order by key",
        receipt.relation()
    )))
    // Drover's own login reads its receipts schema: no user SQL can have changed it.
    .fetch_all(plane.store.pool())
    .await
    .map_err(|e| EngineError::Invalid(format!("reading the receipt: {e}")))?;
    let mut report = RevertReport::default();
    let mut records = Vec::new();
    let mut keys = Vec::new();
    for row in rows {
        let get = |e: sqlx::Error| EngineError::Invalid(format!("reading the receipt: {e}"));
        let key: Option<String> = row.try_get("key").map_err(get)?;
        let status: String = row.try_get("status").map_err(get)?;
        let previous: Option<sqlx::types::Json<serde_json::Map<String, serde_json::Value>>> =
            row.try_get("previous").map_err(get)?;
        let sent: sqlx::types::Json<serde_json::Map<String, serde_json::Value>> =
            row.try_get("sent").map_err(get)?;
        if status == "rejected" || status == "unchanged" {
            report.not_written += 1;
            continue;
        }
        let Some(previous) = previous else {
            report.created_left += 1;
            continue;
        };
        let Some(map_id) = previous.0.get("id").cloned() else {
            report.created_left += 1;
            continue;
        };
        let mut record = serde_json::Map::new();
        record.insert("id".to_owned(), map_id);
        for field in sent.0.keys() {
            if field == "id" {
                continue;
            }
            let before = previous
                .0
                .get(field)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            record.insert(field.clone(), before);
        }
        records.push(record);
        keys.push(key.unwrap_or_default());
    }
    for (chunk, chunk_keys) in records.chunks(300).zip(keys.chunks(300)) {
        let results = client
            .sync_leads(SyncRequest {
                action: SyncAction::UpdateOnly,
                lookup_field: "id".to_owned(),
                partition_name: None,
                records: chunk.to_vec(),
            })
            .await
            .map_err(|e| EngineError::Invalid(map_error(e).to_string()))?;
        for (r, key) in results.iter().zip(chunk_keys) {
            match r.status {
                RecordStatus::Updated | RecordStatus::Created => report.restored += 1,
                _ => report.refused.push((
                    key.clone(),
                    r.reasons
                        .iter()
                        .map(|x| format!("{} {}", x.code, x.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
            }
        }
    }
    Ok(report)
}
