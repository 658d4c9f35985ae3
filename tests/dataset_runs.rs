//! Data-aware runs against real processes (a scheduler, a worker and `drover web`) on a real
//! Postgres: lead_scoring's `score` staging its dataset in dev starts exactly one run of each
//! DAG triggered by it there, whose templates see the producing run and whose SQL reads the
//! producer's rows; prod's consumer is not started; a paused consumer's run waits; a manual
//! run reading `trigger.dataset` fails with a clear render error; a trigger naming an unknown
//! DAG is shown located on its DAG's page.

mod support;

use std::time::Duration;

use drover_store::{RunFilter, RunState, RunType};
use support::tasks::synced_in;
use support::web::{add_user, login, start_web};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url, wait_finished};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

const PRODUCER: &str = r#"id: lead_scoring
tasks:
  - id: score
    sql: "create table {{ output }} as select * from (values (1, 'ann@example.com'), (2, 'bob@example.com'), (3, 'cy@example.com')) as t(id, email)"
"#;

const CONSUMER: &str = r#"id: contact_sales
triggers:
  - dataset: { dag: lead_scoring, task: score }
tasks:
  - id: read
    retries: 0
    sql: "create table {{ output }} as select id, email, {{ trigger.run_id }} as producer_run, {{ trigger.dag }} || '.' || {{ trigger.task }} as producer from {{ trigger.dataset }}"
"#;

const WAITING: &str = "id: waiting\ntriggers:\n  - dataset: { dag: lead_scoring, task: score }\ntasks:\n  - id: a\n    noop: {}\n";

const ORPHAN: &str = "id: orphan\ntriggers:\n  - dataset: { dag: lead_scorin, task: score }\ntasks:\n  - id: a\n    noop: {}\n";

/// A manual run of `dag` in dev, triggered by admin.
fn run_of(d: &Drover<'_>, dag: &str) -> Uuid {
    let out = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("run id `{out}`: {e}"))
}

#[test]
fn a_produced_dataset_starts_each_consumer_once_with_the_producing_run_in_its_templates() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.environment("prod", 2, false);
    for (id, yaml) in [
        ("lead_scoring", PRODUCER),
        ("contact_sales", CONSUMER),
        ("waiting", WAITING),
        ("orphan", ORPHAN),
    ] {
        ws.dag(id, yaml);
    }
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let password = add_user(&d, "admin", "admin");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        for env in ["dev", "prod"] {
            synced_in(&store, "orphan", env).await;
            eventually("the links", LONG, || async {
                (store.dataset_links(env).await.ok()?.len() == 2).then_some(())
            })
            .await;
        }
        d.ok(&["dags", "pause", "waiting", "--env", "dev", "--as", "admin"]);

        // The producer succeeds in dev: one run of each consumer, started by it.
        let producer = run_of(&d, "lead_scoring");
        let r = wait_finished(&store, producer, LONG).await;
        assert_eq!(r.state, RunState::Success, "{r:?}");
        let started = store.runs_started_by(producer).await.unwrap_or_else(|e| panic!("{e}"));
        let mut dags: Vec<&str> = started.iter().map(|s| s.dag_id.as_str()).collect();
        dags.sort_unstable();
        assert_eq!(dags, ["contact_sales", "waiting"], "{started:?}");
        let consumer = started.iter().find(|s| s.dag_id == "contact_sales").map(|s| s.run_id).unwrap_or_else(|| panic!("no run"));
        let held = started.iter().find(|s| s.dag_id == "waiting").map(|s| s.run_id).unwrap_or_else(|| panic!("no run"));
        let c = wait_finished(&store, consumer, LONG).await;
        assert_eq!((c.state, c.run_type), (RunState::Success, RunType::Dataset), "{c:?}");

        // Its SQL read the producer's rows, with the producing run from its templates.
        let staging = store.staging_pool("dev", 1).unwrap_or_else(|e| panic!("{e}"));
        let out = store.dataset(consumer, "read", "output").await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("no dataset"));
        let rows: Vec<(i32, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select id, email, producer_run, producer from {} order by id",
            out.relation()
        )))
        .fetch_all(&staging)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let p = producer.to_string();
        let score = "lead_scoring.score".to_owned();
        assert_eq!(
            rows,
            vec![
                (1, "ann@example.com".into(), p.clone(), score.clone()),
                (2, "bob@example.com".into(), p.clone(), score.clone()),
                (3, "cy@example.com".into(), p.clone(), score.clone()),
            ]
        );

        // The paused consumer's run, made in the same transaction, waits; then runs.
        let w = store.get_run(held).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((w.state, w.run_type), (RunState::Queued, RunType::Dataset));
        // prod's consumers were not started by dev's producer.
        for dag in ["contact_sales", "waiting"] {
            let prod = store
                .list_runs(&RunFilter { dag_id: Some(dag.to_owned()), environment: Some("prod".to_owned()), ..RunFilter::default() })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(prod.is_empty(), "{dag} in prod: {prod:?}");
        }

        // The pages say who started whom; the unknown producer is shown located.
        let (_web, base) = start_web(&d, &[]).await;
        let s = login(&base, "admin", &password).await;
        let page = s.get(&format!("/runs/{consumer}")).await;
        let short = &producer.simple().to_string()[24..];
        assert!(page.body.contains(&format!("Started by lead_scoring.score in run …{short}, which staged 3 rows")), "{}", page.body);
        assert!(page.body.contains(&format!("href=\"/runs/{producer}\" id=\"producing-run\"")), "{}", page.body);
        let page = s.get(&format!("/runs/{producer}")).await;
        assert!(page.body.contains("Its datasets started 2 runs: "), "{}", page.body);
        assert!(page.body.contains(&format!("href=\"/runs/{consumer}\"")), "{}", page.body);
        let page = s.get("/dags/lead_scoring?env=dev").await;
        assert!(page.body.contains("id=\"dataset-consumers\""), "{}", page.body);
        let page = s.get("/dags/orphan?env=dev").await;
        assert!(page.body.contains("id=\"dataset-trigger-problems\""), "{}", page.body);
        assert!(page.body.contains("orphan.yaml:3:5</code>: dataset trigger: there is no DAG `lead_scorin` in this environment, did you mean `lead_scoring`?"), "{}", page.body);
        let page = s.get("/dags/contact_sales?env=dev").await;
        assert!(page.body.contains("when <strong>lead_scoring.score</strong> produces its dataset"), "{}", page.body);

        d.ok(&["dags", "unpause", "waiting", "--env", "dev", "--as", "admin"]);
        let w = wait_finished(&store, held, LONG).await;
        assert_eq!(w.state, RunState::Success);

        // A manual run reading `trigger.dataset` fails saying why.
        let manual = run_of(&d, "contact_sales");
        let m = wait_finished(&store, manual, LONG).await;
        assert_eq!(m.state, RunState::Failed);
        let tis = store.task_instances(manual).await.unwrap_or_else(|e| panic!("{e}"));
        let error = tis[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("set only in a run started by another DAG's dataset"), "{error}");
        assert!(store.runs_started_by(manual).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    });
}
