//! Data-aware runs in the store: the links kept at sync (refused triggers located), a
//! producing task's success starting exactly one run of each consumer of its environment in
//! the same transaction, never on failure, never twice for a try recorded twice or retried,
//! never in another environment. Each test uses a database of its own.

use chrono::Utc;
use drover_store::{
    Column, Completion, DatasetLinkRow, NewDataset, NewRun, Outcome, RunType, Store,
    TaskInstanceSpec, VersionSync,
};
use uuid::Uuid;

mod support;
use support::db;

const PRODUCER: &str = "id: lead_scoring\ntasks:\n  - id: score\n    sql: \"create table {{ output }} as select 1 as n\"\n  - id: note\n    command: { argv: [echo, hi] }\n";
const CONSUMER: &str = "id: contact_sales\ntriggers:\n  - dataset: { dag: lead_scoring, task: score }\ntasks:\n  - id: read\n    sql: \"create table {{ output }} as select * from {{ trigger.dataset }}\"\n";
const ORPHAN: &str = "id: orphan\ntriggers:\n  - dataset: { dag: lead_scorin, task: score }\n  - dataset: { dag: lead_scoring, task: note }\ntasks:\n  - id: a\n    noop: {}\n";

fn cyc(id: &str, other: &str) -> String {
    format!(
        "id: {id}\ntriggers:\n  - dataset: {{ dag: {other}, task: t }}\ntasks:\n  - id: t\n    sql: \"create table {{{{ output }}}} as select 1 as n\"\n"
    )
}

fn file(id: &str, source: &str) -> VersionSync {
    VersionSync {
        dag_id: id.to_owned(),
        path: format!("dags/{id}.yaml"),
        blob_id: format!("{:x}", md5ish(source)),
        commit_sha: None,
        source: source.to_owned(),
    }
}

/// A content id good enough for tests (distinct sources, distinct ids).
fn md5ish(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

async fn setup(store: &Store) {
    for (n, env) in ["dev", "prod"].iter().enumerate() {
        let spec = serde_json::json!({ "name": env, "concurrency": 10 });
        store
            .upsert_environment(env, i32::try_from(n).unwrap_or(0), &spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let files = vec![
        file("lead_scoring", PRODUCER),
        file("contact_sales", CONSUMER),
        file("orphan", ORPHAN),
        file("cyc_a", &cyc("cyc_a", "cyc_b")),
        file("cyc_b", &cyc("cyc_b", "cyc_a")),
    ];
    for env in ["dev", "prod"] {
        store
            .sync_versions(env, &files, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

fn spec(task: &str, retries: i32) -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: task.to_owned(),
        upstream: Vec::new(),
        trigger_rule: "all_success".to_owned(),
        is_leaf: true,
        priority: 0,
        retries,
        retry_delay_secs: 0,
        retry_backoff: "constant".to_owned(),
        max_retry_delay_secs: 0,
        timeout_secs: 60,
        deadline_at: None,
    }
}

/// A started manual run of lead_scoring in `env` with its task `score`.
async fn producer_run(store: &Store, env: &str, retries: i32) -> Uuid {
    let version = store
        .dag_env("lead_scoring", env)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id;
    let now = Utc::now();
    let run = store
        .insert_run(&NewRun {
            dag_id: "lead_scoring".to_owned(),
            environment: env.to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: now,
            interval_start: now,
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: Some("ada".to_owned()),
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no run"));
    assert!(
        store
            .start_run_now(run, &[spec("score", retries)])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    run
}

/// Claim `run`'s task as `worker`, stage its dataset and report `outcome`.
async fn try_once(store: &Store, run: Uuid, worker: &str, outcome: Outcome) -> Completion {
    let claimed = store
        .claim_of(worker, 1, 60.0, None, Some(&[run]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let c = claimed
        .first()
        .unwrap_or_else(|| panic!("nothing to claim"));
    if outcome == Outcome::Success {
        store
            .record_dataset(&NewDataset {
                run_id: run,
                task_id: "score",
                kind: "output",
                environment: &c.environment,
                table_name: &format!("t_{}_score", run.simple()),
                row_count: 3,
                columns: &[Column {
                    name: "n".to_owned(),
                    type_name: "integer".to_owned(),
                }],
                retention_days: 7,
                bytes: 8192,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let done = Completion {
        ti_id: c.ti_id,
        try_number: c.try_number,
        outcome,
    };
    store
        .complete(worker, std::slice::from_ref(&done))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    done
}

/// The dataset runs of `dag` in `env`: (run, type, state, payload).
async fn consumer_runs(
    store: &Store,
    dag: &str,
    env: &str,
) -> Vec<(Uuid, String, String, serde_json::Value, String)> {
    sqlx::query_as(
        "select r.id, r.run_type, r.state, e.payload, e.source from dag_run r join event e on e.run_id = r.id \
         where r.dag_id = $1 and r.environment = $2 order by r.created_at",
    )
    .bind(dag)
    .bind(env)
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn links_are_kept_at_sync_and_refused_triggers_are_located() {
    let db = db(4).await;
    setup(&db.store).await;
    let links = db
        .store
        .dataset_links("dev")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        links,
        vec![DatasetLinkRow {
            environment: "dev".to_owned(),
            producer_dag: "lead_scoring".to_owned(),
            producer_task: "score".to_owned(),
            consumer_dag: "contact_sales".to_owned(),
        }]
    );
    let problems = db
        .store
        .dataset_link_problems("dev", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let located: Vec<String> = problems.iter().map(|p| p.located()).collect();
    assert_eq!(located.len(), 4, "{located:#?}");
    assert!(
        located[0].starts_with("dags/cyc_a.yaml:3:5: dataset triggers form a cycle: "),
        "{located:#?}"
    );
    assert!(
        located[0].contains("cyc_a → cyc_b → cyc_a")
            || located[0].contains("cyc_b → cyc_a → cyc_b"),
        "{located:#?}"
    );
    assert!(
        located[1].starts_with("dags/cyc_b.yaml:3:5: dataset triggers form a cycle"),
        "{located:#?}"
    );
    assert!(
        located[2].starts_with("dags/orphan.yaml:3:5: dataset trigger: there is no DAG `lead_scorin` in this environment, did you mean `lead_scoring`?"),
        "{located:#?}"
    );
    assert!(
        located[3].starts_with(
            "dags/orphan.yaml:4:5: dataset trigger: task `note` of `lead_scoring` stages no dataset"
        ),
        "{located:#?}"
    );

    // The consumer drops its trigger: the link goes with the new version; it comes back
    // with the trigger.
    let plain = CONSUMER
        .replace(
            "triggers:\n  - dataset: { dag: lead_scoring, task: score }\n",
            "",
        )
        .replace("{{ trigger.dataset }}", "public.dag_run");
    let others = [file("lead_scoring", PRODUCER), file("orphan", ORPHAN)];
    let mut files = others.to_vec();
    files.push(file("contact_sales", &plain));
    db.store
        .sync_versions("dev", &files, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        db.store
            .dataset_links("dev")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    let problems = db
        .store
        .dataset_link_problems("dev", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        problems.len(),
        2,
        "the cycle left with its DAGs: {problems:?}"
    );
    let mut files = others.to_vec();
    files.push(file("contact_sales", CONSUMER));
    db.store
        .sync_versions("dev", &files, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        db.store
            .dataset_links("dev")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );

    // Versions recorded before links were kept are read at the next sync.
    sqlx::query("delete from dataset_link")
        .execute(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("update dag_version set dataset_uses = null")
        .execute(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.store
        .sync_versions("dev", &files, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        db.store
            .dataset_links("dev")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_success_starts_one_consumer_run_in_its_environment_and_a_failure_none() {
    let db = db(4).await;
    let store = &db.store;
    setup(store).await;

    // Success: one run of contact_sales in dev, of type dataset, with the producer in its
    // event; none in prod.
    let run = producer_run(store, "dev", 0).await;
    let done = try_once(store, run, "w1", Outcome::Success).await;
    let started = consumer_runs(store, "contact_sales", "dev").await;
    assert_eq!(started.len(), 1, "{started:?}");
    let (consumer, run_type, state, payload, source) = &started[0];
    assert_eq!((run_type.as_str(), state.as_str()), ("dataset", "queued"));
    assert_eq!(source, &format!("run {run} of lead_scoring"));
    assert_eq!(payload["dag"], "lead_scoring");
    assert_eq!(payload["task"], "score");
    assert_eq!(payload["run_id"], run.to_string());
    assert_eq!(payload["rows"], 3);
    assert!(
        consumer_runs(store, "contact_sales", "prod")
            .await
            .is_empty()
    );
    let cause = store
        .dataset_cause(*consumer)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no cause"));
    assert_eq!(
        (cause.dag.as_str(), cause.task.as_str(), cause.run_id),
        ("lead_scoring", "score", run)
    );
    assert_eq!(
        cause.relation(),
        Some(format!("\"staging_dev\".\"t_{}_score\"", run.simple()))
    );
    let by = store
        .runs_started_by(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        by.iter()
            .map(|s| (s.dag_id.as_str(), s.run_id))
            .collect::<Vec<_>>(),
        vec![("contact_sales", *consumer)]
    );

    // The same try reported again is refused by the guarded update: still one run.
    let again = store
        .complete("w1", &[done])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.accepted.len(), again.lost.len()), (0, 1));
    assert_eq!(consumer_runs(store, "contact_sales", "dev").await.len(), 1);

    // A try that fails (retry spent) starts nothing.
    let failing = producer_run(store, "dev", 0).await;
    try_once(
        store,
        failing,
        "w1",
        Outcome::Failed {
            error: "boom".to_owned(),
            exit_code: Some(1),
            retryable: true,
        },
    )
    .await;
    let r = store
        .get_run(failing)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.state, drover_store::RunState::Failed);
    assert_eq!(consumer_runs(store, "contact_sales", "dev").await.len(), 1);
    assert!(
        store
            .runs_started_by(failing)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );

    // A failed try retried: only the successful try starts a run, once.
    let retried = producer_run(store, "dev", 1).await;
    try_once(
        store,
        retried,
        "w1",
        Outcome::Failed {
            error: "flaky".to_owned(),
            exit_code: Some(1),
            retryable: true,
        },
    )
    .await;
    assert!(
        store
            .runs_started_by(retried)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    assert!(
        store
            .queue_due_retries()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let second = try_once(store, retried, "w2", Outcome::Success).await;
    assert_eq!(second.try_number, 2);
    store
        .complete("w2", &[second])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let by = store
        .runs_started_by(retried)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by.len(), 1, "{by:?}");
    assert_eq!(consumer_runs(store, "contact_sales", "dev").await.len(), 2);

    // prod's producer starts prod's consumer, reading prod's staging schema.
    let in_prod = producer_run(store, "prod", 0).await;
    try_once(store, in_prod, "w3", Outcome::Success).await;
    let prod_runs = consumer_runs(store, "contact_sales", "prod").await;
    assert_eq!(prod_runs.len(), 1);
    let cause = store
        .dataset_cause(prod_runs[0].0)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no cause"));
    assert_eq!(
        cause.relation(),
        Some(format!("\"staging_prod\".\"t_{}_score\"", in_prod.simple()))
    );
    assert_eq!(consumer_runs(store, "contact_sales", "dev").await.len(), 2);
    // No other DAG was started by any of it (the refused triggers start nothing).
    for dag in ["orphan", "cyc_a", "cyc_b", "lead_scoring"] {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from dag_run where dag_id = $1 and run_type = 'dataset'",
        )
        .bind(dag)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 0, "{dag}");
    }
    db.drop_db().await;
}
