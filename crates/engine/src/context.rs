//! The values a task's templates are rendered with.

use chrono::SecondsFormat;
use drover_spec::dag::Dag;
use drover_spec::dataset;
use drover_spec::template::{EnvValues, IntervalValues, RenderContext};
use drover_store::ClaimedTask;

/// The render context of a claimed task: run, parameters (defaults overlaid with the run's),
/// environment name and variables, and upstream inputs.
pub(crate) fn render_context(
    dag: &Dag,
    task: &ClaimedTask,
    env_vars: &serde_json::Value,
) -> RenderContext {
    let mut params = std::collections::BTreeMap::new();
    for p in &dag.params {
        if let Some(d) = &p.default {
            params.insert(p.name.clone(), d.clone());
        }
    }
    if let Some(given) = task.params.as_object() {
        for (k, v) in given {
            params.insert(k.clone(), v.clone());
        }
    }
    let vars = env_vars
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let input = dag
        .task_index(&task.task_id)
        .map(|i| dag.graph.ancestors(i))
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let id = &dag.tasks[a].id;
            (
                id.clone(),
                dataset::relation(&task.environment, &task.run_id.simple().to_string(), id),
            )
        })
        .collect();
    let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    RenderContext {
        dag_id: task.dag_id.clone(),
        task_id: task.task_id.clone(),
        run_id: task.run_id.to_string(),
        logical_date: ts(task.logical_date),
        ds: task.logical_date.format("%Y-%m-%d").to_string(),
        data_interval: IntervalValues {
            start: ts(task.interval_start),
            end: ts(task.interval_end),
        },
        try_number: u32::try_from(task.try_number).unwrap_or(0),
        params,
        env: EnvValues {
            name: task.environment.clone(),
        },
        vars,
        input,
        output: dataset::relation(
            &task.environment,
            &task.run_id.simple().to_string(),
            &task.task_id,
        ),
        previous: None,
        event: serde_json::Value::Null,
        events: String::new(),
        trigger: serde_json::Value::Null,
    }
}
