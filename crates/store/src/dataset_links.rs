//! Data-aware runs: which DAG's datasets start which DAGs in each environment
//! (`dataset_link`, kept when versions are synced or promoted), the runs a task's success
//! starts, and what a run started that way was started by.
//!
//! A task instance's success and the runs of the DAGs its dataset starts commit together (the
//! completion's transaction accepts one `dataset` event per consuming DAG), so no crash can
//! come between them; the event's idempotency key is the producing try, so a try recorded
//! twice starts each consumer once.

use chrono::{DateTime, Utc};
use drover_spec::dag::{DatasetUses, check_links, load_dag};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::notify::CHANNEL_RUNS;
use crate::{EventKind, NewEvent, NewRun, Result, RunType, Store, Tx, dataset_trigger};

/// A dataset trigger refused in an environment, located in its file.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct DatasetLinkProblem {
    pub environment: String,
    pub dag_id: String,
    pub path: String,
    pub line: i32,
    pub col: i32,
    pub message: String,
}

impl DatasetLinkProblem {
    /// `path:line:col: message`, as the validator writes problems.
    pub fn located(&self) -> String {
        format!("{}:{}:{}: {}", self.path, self.line, self.col, self.message)
    }
}

/// A dataset trigger that holds in an environment.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize)]
pub struct DatasetLinkRow {
    pub environment: String,
    pub producer_dag: String,
    pub producer_task: String,
    pub consumer_dag: String,
}

/// A run another DAG's dataset started.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StartedRun {
    pub dag_id: String,
    pub run_id: Uuid,
    /// The producing task.
    pub task: String,
    pub received_at: DateTime<Utc>,
}

/// What started a run of type `dataset` (or a replay of such an event): the producing DAG,
/// task and run, and its staged dataset as the registry names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetCause {
    pub dag: String,
    pub task: String,
    pub run_id: Uuid,
    /// The environment of the producing run (always the consumer's).
    pub environment: String,
    /// The staged table's name in the environment's staging schema; none when the registry
    /// no longer holds it.
    pub table_name: Option<String>,
    /// Its rows, when the registry knows them.
    pub rows: Option<i64>,
}

impl DatasetCause {
    /// The producer's staged dataset as a quoted, schema-qualified relation of the
    /// environment's staging schema.
    pub fn relation(&self) -> Option<String> {
        self.table_name.as_deref().map(|t| {
            drover_spec::dataset::quoted_relation(
                &drover_spec::dataset::staging_schema(&self.environment),
                t,
            )
        })
    }
}

#[derive(FromRow)]
struct Produced {
    run_id: Uuid,
    task_id: String,
    try_number: i32,
    environment: String,
    dag_id: String,
    table_name: String,
    row_count: i64,
    consumer_dag: String,
    consumer_version: i64,
    deadline_secs: Option<i64>,
}

impl Tx {
    /// Task instances that just succeeded (`ids`): each that staged a dataset starts, in this
    /// transaction, a run of every DAG of its environment whose version there has a dataset
    /// trigger on it. Preview runs start nothing. Returns the runs started.
    pub(crate) async fn start_consumers(&mut self, ids: &[i64]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let produced: Vec<Produced> = sqlx::query_as(
            "select t.run_id, t.task_id, t.try_number, t.environment, r.dag_id, d.table_name, d.row_count, \
                    l.consumer_dag, l.consumer_version, l.deadline_secs \
             from task_instance t \
             join dag_run r on r.id = t.run_id \
             join dataset_link l on l.environment = t.environment and l.producer_dag = r.dag_id \
                                and l.producer_task = t.task_id \
             join dataset d on d.run_id = t.run_id and d.task_id = t.task_id and d.kind = 'output' \
                           and d.environment = t.environment \
             join dag_env e on e.dag_id = l.consumer_dag and e.environment = l.environment \
                           and e.active and e.version_id = l.consumer_version \
             where t.id = any($1) and t.state = 'success' and not r.preview \
             order by t.id, l.consumer_dag",
        )
        .bind(ids)
        .fetch_all(self.conn())
        .await?;
        let mut started = Vec::new();
        for p in produced {
            let now = Utc::now();
            let event = NewEvent {
                kind: EventKind::Dataset,
                trigger: dataset_trigger(&p.dag_id, &p.task_id),
                source: format!("run {} of {}", p.run_id, p.dag_id),
                idempotency_key: Some(format!("{}/{}/{}", p.run_id, p.task_id, p.try_number)),
                payload: serde_json::json!({
                    "dag": p.dag_id,
                    "task": p.task_id,
                    "run_id": p.run_id,
                    "try_number": p.try_number,
                    "dataset": p.table_name,
                    "rows": p.row_count,
                }),
                replay_of: None,
                run: NewRun {
                    dag_id: p.consumer_dag,
                    environment: p.environment,
                    version_id: p.consumer_version,
                    run_type: RunType::Dataset,
                    logical_date: now,
                    interval_start: now,
                    interval_end: now,
                    params: serde_json::json!({}),
                    triggered_by: Some(format!("{}.{}", p.dag_id, p.task_id)),
                    deadline_at: p
                        .deadline_secs
                        .and_then(chrono::Duration::try_seconds)
                        .and_then(|d| now.checked_add_signed(d)),
                    preview: false,
                },
                batch: None,
            };
            let accepted = self.accept_event(&event).await?;
            if accepted.new_run {
                started.push(accepted.run_id);
            }
        }
        if !started.is_empty() {
            let payload = if started.len() > 100 {
                "*".to_owned()
            } else {
                started
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL_RUNS)
                .bind(payload)
                .execute(self.conn())
                .await?;
        }
        Ok(started)
    }
}

/// After DAG versions of `environment` changed (`changed`; or versions from before dataset
/// triggers were kept are found): read the new versions' dataset triggers, check them across
/// the environment's DAGs and keep `dataset_link` and the refused triggers in step, in the
/// caller's transaction.
pub(crate) async fn refresh(
    conn: &mut PgConnection,
    environment: &str,
    changed: bool,
) -> Result<()> {
    let unread: Vec<(i64, String, String, String)> = sqlx::query_as(
        "select v.id, v.dag_id, v.path, v.source from dag_env d join dag_version v on v.id = d.version_id \
         where d.environment = $1 and d.active and v.dataset_uses is null",
    )
    .bind(environment)
    .fetch_all(&mut *conn)
    .await?;
    for (id, dag_id, path, source) in &unread {
        let uses = match load_dag(path, source) {
            Ok(dag) => DatasetUses::of(&dag, source),
            // Only valid files become versions; one that no longer loads consumes nothing.
            Err(_) => DatasetUses {
                dag_id: dag_id.clone(),
                file: path.clone(),
                tasks: Vec::new(),
                producers: Vec::new(),
                triggers: Vec::new(),
                deadline_secs: None,
            },
        };
        sqlx::query("update dag_version set dataset_uses = $2 where id = $1")
            .bind(id)
            .bind(Json(&uses))
            .execute(&mut *conn)
            .await?;
    }
    if !changed && unread.is_empty() {
        return Ok(());
    }
    // One refresh of an environment at a time.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 20))")
        .bind(environment)
        .execute(&mut *conn)
        .await?;
    let active: Vec<(i64, Json<DatasetUses>)> = sqlx::query_as(
        "select d.version_id, v.dataset_uses from dag_env d join dag_version v on v.id = d.version_id \
         where d.environment = $1 and d.active and v.dataset_uses is not null order by d.dag_id",
    )
    .bind(environment)
    .fetch_all(&mut *conn)
    .await?;
    let uses: Vec<DatasetUses> = active.iter().map(|(_, u)| u.0.clone()).collect();
    let check = check_links(&uses);
    let version_of = |dag: &str| {
        active
            .iter()
            .find(|(_, u)| u.0.dag_id == dag)
            .map(|(v, u)| (*v, u.0.deadline_secs))
    };
    let mut producers = Vec::new();
    let mut tasks = Vec::new();
    let mut consumers = Vec::new();
    let mut versions = Vec::new();
    let mut deadlines: Vec<Option<i64>> = Vec::new();
    for link in &check.links {
        let Some((version, deadline)) = version_of(&link.consumer) else {
            continue;
        };
        producers.push(link.producer_dag.as_str());
        tasks.push(link.producer_task.as_str());
        consumers.push(link.consumer.as_str());
        versions.push(version);
        deadlines.push(deadline);
    }
    sqlx::query(
        "delete from dataset_link l where l.environment = $1 and not exists ( \
           select 1 from unnest($2::text[], $3::text[], $4::text[], $5::int8[]) as n(p, t, c, v) \
           where n.p = l.producer_dag and n.t = l.producer_task and n.c = l.consumer_dag \
             and n.v = l.consumer_version)",
    )
    .bind(environment)
    .bind(&producers)
    .bind(&tasks)
    .bind(&consumers)
    .bind(&versions)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into dataset_link (environment, producer_dag, producer_task, consumer_dag, consumer_version, deadline_secs) \
         select $1, p, t, c, v, s from unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[]) as n(p, t, c, v, s) \
         on conflict (environment, producer_dag, producer_task, consumer_dag) do update \
           set consumer_version = excluded.consumer_version, deadline_secs = excluded.deadline_secs",
    )
    .bind(environment)
    .bind(&producers)
    .bind(&tasks)
    .bind(&consumers)
    .bind(&versions)
    .bind(&deadlines)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from dataset_link_problem where environment = $1")
        .bind(environment)
        .execute(&mut *conn)
        .await?;
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let dags: Vec<&str> = check.problems.iter().map(|p| p.0.as_str()).collect();
    let paths: Vec<&str> = check.problems.iter().map(|p| p.1.file.as_str()).collect();
    let lines: Vec<i32> = check.problems.iter().map(|p| int(p.1.line)).collect();
    let cols: Vec<i32> = check.problems.iter().map(|p| int(p.1.column)).collect();
    let messages: Vec<&str> = check
        .problems
        .iter()
        .map(|p| p.1.message.as_str())
        .collect();
    sqlx::query(
        "insert into dataset_link_problem (environment, dag_id, path, line, col, message) \
         select $1, d, p, l, c, m from unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::text[]) as n(d, p, l, c, m) \
         on conflict do nothing",
    )
    .bind(environment)
    .bind(&dags)
    .bind(&paths)
    .bind(&lines)
    .bind(&cols)
    .bind(&messages)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// The dataset triggers of `environment` that hold, by producer then consumer.
    pub async fn dataset_links(&self, environment: &str) -> Result<Vec<DatasetLinkRow>> {
        Ok(sqlx::query_as(
            "select environment, producer_dag, producer_task, consumer_dag from dataset_link \
             where environment = $1 order by producer_dag, producer_task, consumer_dag",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The datasets whose production starts `dag` in `environment`.
    pub async fn dataset_triggers_of(
        &self,
        dag: &str,
        environment: &str,
    ) -> Result<Vec<DatasetLinkRow>> {
        Ok(sqlx::query_as(
            "select environment, producer_dag, producer_task, consumer_dag from dataset_link \
             where environment = $1 and consumer_dag = $2 order by producer_dag, producer_task",
        )
        .bind(environment)
        .bind(dag)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The DAGs `dag`'s datasets start in `environment`.
    pub async fn dataset_consumers_of(
        &self,
        dag: &str,
        environment: &str,
    ) -> Result<Vec<DatasetLinkRow>> {
        Ok(sqlx::query_as(
            "select environment, producer_dag, producer_task, consumer_dag from dataset_link \
             where environment = $1 and producer_dag = $2 order by producer_task, consumer_dag",
        )
        .bind(environment)
        .bind(dag)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The refused dataset triggers of `environment` (or only `dag`'s), by DAG and line.
    pub async fn dataset_link_problems(
        &self,
        environment: &str,
        dag: Option<&str>,
    ) -> Result<Vec<DatasetLinkProblem>> {
        Ok(sqlx::query_as(
            "select environment, dag_id, path, line, col, message from dataset_link_problem \
             where environment = $1 and ($2::text is null or dag_id = $2) order by dag_id, line, col",
        )
        .bind(environment)
        .bind(dag)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The runs `run`'s datasets started, in the order they were started.
    pub async fn runs_started_by(&self, run: Uuid) -> Result<Vec<StartedRun>> {
        Ok(sqlx::query_as(
            "select dag_id, run_id, payload->>'task' as task, received_at from event \
             where kind = 'dataset' and payload->>'run_id' = $1 and run_id is not null \
             order by received_at, id",
        )
        .bind(run.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    /// What started `run` when another DAG's dataset did (directly, or by a replay of such
    /// an event); none for other runs. The dataset is the registry's entry of the producing
    /// try in the run's own environment.
    pub async fn dataset_cause(&self, run: Uuid) -> Result<Option<DatasetCause>> {
        let found: Option<(String, serde_json::Value)> = sqlx::query_as(
            "select e.environment, e.payload from event e \
             where e.run_id = $1 and e.trigger like 'dataset:%' order by e.received_at, e.id limit 1",
        )
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        let Some((environment, payload)) = found else {
            return Ok(None);
        };
        let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(dag), Some(task), Some(producing)) = (
            text("dag"),
            text("task"),
            text("run_id").and_then(|r| Uuid::parse_str(&r).ok()),
        ) else {
            return Ok(None);
        };
        let registered: Option<(String, i64)> = sqlx::query_as(
            "select table_name, row_count from dataset \
             where run_id = $1 and task_id = $2 and kind = 'output' and environment = $3 \
               and dropped_at is null",
        )
        .bind(producing)
        .bind(&task)
        .bind(&environment)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(DatasetCause {
            dag,
            task,
            run_id: producing,
            environment,
            rows: registered.as_ref().map(|r| r.1),
            table_name: registered.map(|r| r.0),
        }))
    }
}
