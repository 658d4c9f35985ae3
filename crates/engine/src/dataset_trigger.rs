//! `{{ trigger }}` of a run another DAG's dataset started: the producing DAG, task and run,
//! and the producer's staged dataset as the registry names it in the run's own environment
//! (never a name taken from the event's payload).

use drover_store::{ClaimedTask, Store};

use crate::EngineError;

/// The `trigger` root of a claimed task's templates: `null` unless its run was started by
/// another DAG's dataset (or is a replay of such an event).
pub(crate) async fn trigger_value(
    store: &Store,
    task: &ClaimedTask,
) -> Result<serde_json::Value, EngineError> {
    let Some(cause) = store.dataset_cause(task.run_id).await? else {
        return Ok(serde_json::Value::Null);
    };
    if cause.environment != task.environment {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::json!({
        "dag": cause.dag,
        "task": cause.task,
        "run_id": cause.run_id.to_string(),
        "dataset": cause.relation(),
        "rows": cause.rows,
    }))
}
