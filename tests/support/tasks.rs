//! Triggering runs from the CLI and reading what their tasks did: tries and log lines.

use std::time::Duration;

use drover_store::Store;
use uuid::Uuid;

use super::{Drover, eventually};

/// One try as the tests read it: (worker, state, error).
pub type TryRecord = (Option<String>, String, Option<String>);

/// `drover runs trigger DAG --env ENV --param …`: the new run's id.
pub fn trigger(d: &Drover<'_>, dag: &str, env: &str, params: &[&str]) -> Uuid {
    let mut args = vec!["runs", "trigger", dag, "--env", env];
    for p in params {
        args.extend_from_slice(&["--param", p]);
    }
    let out = d.ok(&args);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("run id `{out}`: {e}"))
}

/// Wait until the scheduler has read `dag` into `env`.
pub async fn synced_in(store: &Store, dag: &str, env: &str) {
    eventually(
        &format!("{dag} synced in {env}"),
        Duration::from_secs(30),
        || async { store.dag_env(dag, env).await.ok() },
    )
    .await;
}

/// The one task instance of `run` named `task`: its log lines, and its tries as (worker,
/// state, error).
pub async fn task_record(store: &Store, run: Uuid, task: &str) -> (Vec<String>, Vec<TryRecord>) {
    // Log lines are written in batches, shortly after: wait for the try's last one.
    eventually(
        &format!("the end of {task}'s log"),
        Duration::from_secs(10),
        || async {
            task_log(store, run, task)
                .await
                .0
                .iter()
                .any(|l| l == "succeeded" || l.starts_with("failed:"))
                .then_some(())
        },
    )
    .await;
    task_log(store, run, task).await
}

/// The log lines and tries of `task` in `run` as they are now.
pub async fn task_log(store: &Store, run: Uuid, task: &str) -> (Vec<String>, Vec<TryRecord>) {
    let ti = store
        .task_instances(run)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.task_id == task)
        .unwrap_or_else(|| panic!("no task {task} in {run}"));
    let lines = store
        .read_logs(ti.id, None, 0)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| l.line)
        .collect();
    let tries = store
        .task_tries(ti.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.worker_id, t.state, t.error))
        .collect();
    (lines, tries)
}
