//! Clear with what depends on it, and "rerun failed tasks": which tasks a clear covers, and
//! the audited clear itself (one transaction; the run goes back to running and the engine
//! finishes it again by the usual rules).

use std::collections::BTreeSet;

use drover_spec::dag::Dag;
use uuid::Uuid;

use super::{Action, Actor, OpError, Operations};

/// States a task instance can be cleared from.
const FINISHED: [&str; 4] = ["success", "failed", "skipped", "upstream_failed"];

/// Every task that depends on `task` in `dag`, directly or not, in topological order.
pub fn downstream_of(dag: &Dag, task: &str) -> Vec<String> {
    let Some(i) = dag.task_index(task) else {
        return Vec::new();
    };
    let below: BTreeSet<usize> = dag.graph.descendants(i).into_iter().collect();
    dag.graph
        .topological_order()
        .iter()
        .filter(|j| below.contains(j))
        .map(|&j| dag.tasks[j].id.clone())
        .collect()
}

/// `chosen` and everything downstream of them, in topological order.
fn with_downstream(dag: &Dag, chosen: &[String]) -> Vec<String> {
    let mut set: BTreeSet<String> = chosen.iter().cloned().collect();
    for t in chosen {
        set.extend(downstream_of(dag, t));
    }
    dag.tasks_in_order()
        .filter(|t| set.contains(&t.id))
        .map(|t| t.id.clone())
        .collect()
}

impl Operations {
    /// Clear `task` of a run and every task downstream of it that has finished (those still
    /// waiting run anyway once it does), so they run again. Returns the cleared task ids.
    pub async fn clear_with_downstream(
        &self,
        actor: &Actor,
        run_id: Uuid,
        task: &str,
    ) -> Result<Vec<String>, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::Clear, &run.environment).await?;
        let dag = self.dags.get(run.version_id).await?;
        if dag.task(task).is_none() {
            return Err(OpError::NotFound(format!("the run has no task `{task}`")));
        }
        self.clear_set(actor, &run, &dag, &[task.to_owned()], "task.clear")
            .await
    }

    /// Clear every task of a failed run that failed or did not run because an earlier one
    /// failed, and what depends on them, so the run tries again. Returns the cleared ids.
    pub async fn rerun_failed(&self, actor: &Actor, run_id: Uuid) -> Result<Vec<String>, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::Clear, &run.environment).await?;
        if run.state.as_str() != "failed" {
            return Err(OpError::Conflict(format!(
                "only a failed run reruns its failed tasks; this one is {}",
                run.state.as_str()
            )));
        }
        let dag = self.dags.get(run.version_id).await?;
        let failed: Vec<String> = self
            .store
            .task_instances(run_id)
            .await?
            .into_iter()
            .filter(|ti| matches!(ti.state.0.as_str(), "failed" | "upstream_failed"))
            .map(|ti| ti.task_id)
            .collect();
        if failed.is_empty() {
            return Err(OpError::Conflict("no task of this run failed".to_owned()));
        }
        self.clear_set(actor, &run, &dag, &failed, "run.rerun_failed")
            .await
    }

    /// Clear `chosen` and their finished downstream tasks, with the audit event, in one
    /// transaction.
    async fn clear_set(
        &self,
        actor: &Actor,
        run: &drover_store::RunRow,
        dag: &Dag,
        chosen: &[String],
        action: &str,
    ) -> Result<Vec<String>, OpError> {
        let states: std::collections::HashMap<String, String> = self
            .store
            .task_instances(run.id)
            .await?
            .into_iter()
            .map(|ti| (ti.task_id, ti.state.0.as_str().to_owned()))
            .collect();
        // The chosen tasks always (clearing refuses them if they are not finished); what is
        // downstream only when finished: a waiting task runs again anyway.
        let tasks: Vec<String> = with_downstream(dag, chosen)
            .into_iter()
            .filter(|t| {
                chosen.contains(t)
                    || states
                        .get(t)
                        .is_some_and(|s| FINISHED.contains(&s.as_str()))
            })
            .collect();
        let mut tx = self.store.begin().await?;
        let cleared = tx.clear_tasks(run.id, &tasks).await?;
        tx.audit(
            &actor.name,
            action,
            Some(&run.environment),
            Some(&run.dag_id),
            Some(run.id),
            &serde_json::json!({ "tasks": cleared, "chosen": chosen }),
        )
        .await?;
        tx.commit().await?;
        Ok(cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag() -> Dag {
        let yaml = "id: d\ntasks:\n  - id: export\n    command: { shell: \"true\" }\n  - id: score\n    depends_on: [export]\n    command: { shell: \"true\" }\n  - id: push\n    depends_on: [score]\n    command: { shell: \"true\" }\n  - id: report\n    depends_on: [export]\n    command: { shell: \"true\" }\n  - id: alone\n    command: { shell: \"true\" }\n";
        drover_spec::dag::load_dag("d.yaml", yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn downstream_is_transitive_and_in_order() {
        let d = dag();
        assert_eq!(downstream_of(&d, "export"), ["score", "push", "report"]);
        assert_eq!(downstream_of(&d, "score"), ["push"]);
        assert!(downstream_of(&d, "push").is_empty());
        assert!(downstream_of(&d, "nope").is_empty());
        assert_eq!(
            with_downstream(&d, &["score".into(), "report".into()]),
            ["score", "push", "report"]
        );
    }
}
