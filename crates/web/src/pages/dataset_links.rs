//! Data-aware runs on the pages: on a DAG's page, the DAGs its datasets start here and its
//! dataset triggers that were refused (located in its file); on a run's page, the runs its
//! datasets started.

use drover_store::Store;
use uuid::Uuid;

use crate::error::Failure;
use crate::views::event_words::short_id;

/// A DAG's dataset links in one environment.
#[derive(Debug, Default)]
pub(crate) struct DagDatasetLinks {
    /// (task, the DAGs its dataset starts), by task.
    pub(crate) consumers: Vec<(String, Vec<String>)>,
    /// Its refused dataset triggers: (`file:line:col`, message).
    pub(crate) problems: Vec<(String, String)>,
}

pub(crate) async fn for_dag(
    store: &Store,
    dag: &str,
    env: &str,
) -> Result<DagDatasetLinks, Failure> {
    let mut consumers: Vec<(String, Vec<String>)> = Vec::new();
    for link in store.dataset_consumers_of(dag, env).await? {
        match consumers.last_mut() {
            Some((task, dags)) if *task == link.producer_task => dags.push(link.consumer_dag),
            _ => consumers.push((link.producer_task, vec![link.consumer_dag])),
        }
    }
    let problems = store
        .dataset_link_problems(env, Some(dag))
        .await?
        .into_iter()
        .map(|p| (format!("{}:{}:{}", p.path, p.line, p.col), p.message))
        .collect();
    Ok(DagDatasetLinks {
        consumers,
        problems,
    })
}

/// A run its datasets started: (DAG, run, the run's short id, producing task).
#[derive(Debug)]
pub(crate) struct StartedLine {
    pub(crate) dag: String,
    pub(crate) run: Uuid,
    pub(crate) short: String,
    pub(crate) task: String,
}

/// The runs `run`'s datasets started, with the sentence over them: "Its datasets started 2
/// runs: contact_sales, enrich".
pub(crate) async fn started_by_run(
    store: &Store,
    run: Uuid,
) -> Result<(String, Vec<StartedLine>), Failure> {
    let started = store.runs_started_by(run).await?;
    if started.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let mut names: Vec<&str> = started.iter().map(|s| s.dag_id.as_str()).collect();
    names.dedup();
    let sentence = format!(
        "Its datasets started {} run{}: {}",
        started.len(),
        if started.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let lines = started
        .into_iter()
        .map(|s| StartedLine {
            short: short_id(&s.run_id),
            dag: s.dag_id,
            run: s.run_id,
            task: s.task,
        })
        .collect();
    Ok((sentence, lines))
}
