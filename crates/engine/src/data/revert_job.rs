//! Running revert jobs on a worker: the receipt in chunks of 300, each record read back from
//! the MAP first and written back only if it still holds what the return sent (unless the
//! job is forced); progress and the keys dealt with recorded after each chunk.

use std::time::Duration;

use drover_map::{LeadQuery, RecordStatus, SyncAction, SyncRequest};
use drover_store::{RevertChunk, RevertJob};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use super::DataPlane;
use super::maps::map_error;
use crate::EngineError;

const CHUNK: usize = 300;

/// Whether `current` holds, for every field of `wanted` but `id`, the same value (as a return
/// compares them, see `ret::plan::same`; emails whatever their case and surrounding spaces).
pub fn holds(
    current: &serde_json::Map<String, Value>,
    wanted: &serde_json::Map<String, Value>,
) -> bool {
    wanted.iter().filter(|(f, _)| *f != "id").all(|(f, v)| {
        let now = current.get(f).unwrap_or(&Value::Null);
        // An email is also the usual lookup key, which the MAP matches whatever its case.
        match (f.eq_ignore_ascii_case("email"), now, v) {
            (true, Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
            _ => super::ret::plan::same(now, v),
        }
    })
}

/// Claim and run revert jobs until `stop` is set.
pub async fn work(
    plane: DataPlane,
    worker_id: String,
    lease: Duration,
    poll: Duration,
    environments: Option<Vec<String>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match plane
            .store
            .claim_revert(&worker_id, lease.as_secs_f64(), environments.as_deref())
            .await
        {
            Ok(Some(job)) => {
                tracing::info!(job = job.id, task = %job.task_id, "revert job claimed");
                let outcome = tokio::select! {
                    r = run(&plane, &worker_id, lease, &job) => r,
                    _ = stop.changed() => return,
                };
                let error = outcome.err().map(|e| e.to_string());
                let dag = match plane.store.get_run(job.run_id).await {
                    Ok(r) => r.dag_id,
                    Err(_) => String::new(),
                };
                if let Err(e) = plane
                    .store
                    .finish_revert(job.id, &worker_id, error.as_deref(), &dag)
                    .await
                {
                    tracing::warn!(job = job.id, error = %e, "revert job not finished; its lease will expire");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "revert claim failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

struct ReceiptRow {
    key: String,
    status: String,
    previous: Option<serde_json::Map<String, Value>>,
    sent: serde_json::Map<String, Value>,
}

async fn run(
    plane: &DataPlane,
    worker_id: &str,
    lease: Duration,
    job: &RevertJob,
) -> Result<(), EngineError> {
    let store = &plane.store;
    let Some(receipt) = store.dataset(job.run_id, &job.task_id, "receipt").await? else {
        return Err(EngineError::Invalid(format!(
            "task `{}` of this run has no return receipt to revert",
            job.task_id
        )));
    };
    if receipt.dropped_at.is_some() {
        return Err(EngineError::Invalid(
            "the receipt was dropped after its retention period; it can no longer be reverted"
                .to_owned(),
        ));
    }
    let env = crate::promotion::environments(store)
        .await?
        .into_iter()
        .find(|e| e.name == job.environment)
        .ok_or_else(|| {
            EngineError::Invalid(format!("environment `{}` is not known", job.environment))
        })?;
    let client = plane
        .maps
        .client(&env)
        .map_err(|e| EngineError::Invalid(e.to_string()))?
        .scoped();
    let get = |e: sqlx::Error| EngineError::Invalid(format!("reading the receipt: {e}"));
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select coalesce(key, '') as key, status, previous, sent from {} order by key",
        receipt.relation()
    )))
    // Drover's own login reads its receipts schema: no user SQL can have changed it.
    .fetch_all(store.pool())
    .await
    .map_err(get)?;
    store
        .set_revert_total(
            job.id,
            worker_id,
            i64::try_from(rows.len()).unwrap_or(i64::MAX),
        )
        .await?;
    let mut receipt_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let previous: Option<sqlx::types::Json<serde_json::Map<String, Value>>> =
            row.try_get("previous").map_err(get)?;
        let sent: sqlx::types::Json<serde_json::Map<String, Value>> =
            row.try_get("sent").map_err(get)?;
        receipt_rows.push(ReceiptRow {
            key: row.try_get("key").map_err(get)?,
            status: row.try_get("status").map_err(get)?,
            previous: previous.map(|p| p.0),
            sent: sent.0,
        });
    }
    let mut renewed = tokio::time::Instant::now();
    for chunk in receipt_rows.chunks(CHUNK) {
        if renewed.elapsed() > lease / 3 {
            if !store
                .renew_revert(job.id, worker_id, lease.as_secs_f64())
                .await?
            {
                return Err(EngineError::Invalid(
                    "the revert job's lease was lost".to_owned(),
                ));
            }
            renewed = tokio::time::Instant::now();
        }
        let keys: Vec<String> = chunk.iter().map(|r| r.key.clone()).collect();
        let done = store.revert_keys_done(job.id, &keys).await?;
        let todo: Vec<&ReceiptRow> = chunk.iter().filter(|r| !done.contains(&r.key)).collect();
        if todo.is_empty() {
            continue;
        }
        let mut out = RevertChunk {
            keys: todo.iter().map(|r| r.key.clone()).collect(),
            ..RevertChunk::default()
        };
        // (key, id, values to write back, values the return wrote)
        let mut candidates = Vec::new();
        for r in &todo {
            // Rejected by the MAP, or unchanged (never sent): nothing to undo.
            if r.status == "rejected" || r.status == "unchanged" {
                out.not_written += 1;
                continue;
            }
            let Some(previous) = &r.previous else {
                out.created_left += 1;
                continue;
            };
            let Some(map_id) = previous.get("id").and_then(id_text) else {
                out.created_left += 1;
                continue;
            };
            let mut record = serde_json::Map::new();
            for field in r.sent.keys().filter(|f| *f != "id") {
                record.insert(
                    field.clone(),
                    previous.get(field).cloned().unwrap_or(Value::Null),
                );
            }
            candidates.push((r.key.clone(), map_id, record, &r.sent));
        }
        let mut fields: Vec<String> = vec!["id".to_owned()];
        for (_, _, rec, _) in &candidates {
            for f in rec.keys() {
                if !fields.contains(f) {
                    fields.push(f.clone());
                }
            }
        }
        let current = if candidates.is_empty() {
            Vec::new()
        } else {
            client
                .fetch_leads(LeadQuery {
                    filter_type: "id".to_owned(),
                    values: candidates.iter().map(|c| c.1.clone()).collect(),
                    fields,
                })
                .await
                .map_err(|e| EngineError::Invalid(map_error(e).to_string()))?
        };
        let mut to_send = Vec::new();
        let mut send_keys = Vec::new();
        for (key, map_id, record, sent) in candidates {
            let now = current
                .iter()
                .find(|c| c.get("id").and_then(id_text).as_deref() == Some(map_id.as_str()));
            let Some(now) = now else {
                out.refusals
                    .push((key, "the record is no longer in Marketo".to_owned()));
                continue;
            };
            if holds(now, &record) {
                // Already back to its values before the return (a chunk redone after a
                // worker died): nothing to send.
                out.restored += 1;
                out.restored_keys.push(key);
                continue;
            }
            if !job.force && !holds(now, sent) {
                out.skipped_keys.push(key);
                continue;
            }
            let mut rec = record;
            rec.insert("id".to_owned(), id_value(&map_id));
            to_send.push(rec);
            send_keys.push(key);
        }
        if !to_send.is_empty() {
            let results = client
                .sync_leads(SyncRequest {
                    action: SyncAction::UpdateOnly,
                    lookup_field: "id".to_owned(),
                    partition_name: None,
                    records: to_send,
                })
                .await
                .map_err(|e| EngineError::Invalid(map_error(e).to_string()))?;
            for (r, key) in results.iter().zip(send_keys) {
                match r.status {
                    RecordStatus::Updated | RecordStatus::Created => {
                        out.restored += 1;
                        out.restored_keys.push(key);
                    }
                    _ => out.refusals.push((
                        key,
                        r.reasons
                            .iter()
                            .map(|x| format!("{} {}", x.code, x.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    )),
                }
            }
        }
        if !store.record_revert_chunk(job.id, worker_id, &out).await? {
            return Err(EngineError::Invalid(
                "the revert job's lease was lost".to_owned(),
            ));
        }
    }
    Ok(())
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn id_value(id: &str) -> Value {
    id.parse::<i64>()
        .map_or_else(|_| Value::String(id.to_owned()), Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn numbers_and_numeric_strings_compare_alike() {
        assert!(holds(
            &map(json!({"leadScore": "42"})),
            &map(json!({"id": 1, "leadScore": 42}))
        ));
        assert!(holds(
            &map(json!({"leadScore": 42.0})),
            &map(json!({"leadScore": "42"}))
        ));
        assert!(!holds(
            &map(json!({"leadScore": 43})),
            &map(json!({"leadScore": 42}))
        ));
        assert!(holds(
            &map(json!({"email": " A@x.io"})),
            &map(json!({"email": "a@x.io"}))
        ));
        assert!(holds(&map(json!({})), &map(json!({"company": ""}))));
        assert!(!holds(
            &map(json!({"company": "Acme"})),
            &map(json!({"company": null}))
        ));
        assert!(!holds(
            &map(json!({"company": "acme"})),
            &map(json!({"company": "Acme"}))
        ));
    }
}
