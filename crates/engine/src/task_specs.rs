//! What a run's task instances look like, from its DAG.

use chrono::{DateTime, Utc};
use drover_spec::dag::Dag;
use drover_store::TaskInstanceSpec;

fn secs(d: drover_spec::duration::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// One task instance per task. Priority follows the graph: tasks with more downstream work go
/// first, so long chains are not starved by wide fan-outs. Task deadlines count from
/// `scheduled_at`, when the run was due (none for backfills).
pub fn task_instance_specs(
    dag: &Dag,
    scheduled_at: Option<DateTime<Utc>>,
) -> Vec<TaskInstanceSpec> {
    let leaves = dag.graph.leaves();
    dag.tasks
        .iter()
        .enumerate()
        .map(|(i, t)| TaskInstanceSpec {
            task_id: t.id.clone(),
            upstream: dag
                .graph
                .upstream(i)
                .into_iter()
                .map(|u| dag.tasks[u].id.clone())
                .collect(),
            trigger_rule: t.trigger_rule.as_str().to_owned(),
            is_leaf: leaves.contains(&i),
            priority: i32::try_from(dag.graph.descendants(i).len()).unwrap_or(i32::MAX),
            retries: i32::try_from(t.retry.retries).unwrap_or(i32::MAX),
            retry_delay_secs: secs(t.retry.delay),
            retry_backoff: match t.retry.backoff {
                drover_spec::dag::Backoff::Constant => "constant",
                drover_spec::dag::Backoff::Linear => "linear",
                drover_spec::dag::Backoff::Exponential => "exponential",
            }
            .to_owned(),
            max_retry_delay_secs: secs(t.retry.max_delay),
            timeout_secs: secs(t.timeout),
            deadline_at: t
                .deadline
                .zip(scheduled_at)
                .map(|(d, at)| d.due(at, dag.timezone)),
        })
        .collect()
}
