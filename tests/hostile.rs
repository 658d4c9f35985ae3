//! The hostile-DAG suite: a DAG that anyone may commit to DEV's branch tries every way out of
//! DEV that issue reports named, from a command task and from SQL, while PROD runs the same
//! worker pool. Each attempt is refused (the reason is the try's error) or harmless (it ran,
//! and what it saw or did is checked), and PROD's runs keep succeeding meanwhile. Real
//! scheduler and worker processes on a real Postgres; the walls themselves are tested one by
//! one in tests/task_boundaries.rs and tests/sql_boundaries.rs.

mod support;

use std::time::{Duration, Instant};

use drover_store::{RunState, Store};
use support::tasks::{task_log, task_record, trigger};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url, wait_finished};
use uuid::Uuid;

const DEV_TOKEN: &str = "dev-token-hostile-1a2b";
const PROD_TOKEN: &str = "prod-token-hostile-9z8y";
const PROD_MAP_SECRET: &str = "prod-map-secret-hostile-7x6w";

/// The key the claim statement used to take turns on (an advisory lock any SQL in the database
/// could take).
const OLD_CLAIM_LOCK: i64 = 0x0d12_0fe2_c1a1;

/// What DEV's branch head may hold: every escape at once.
fn attack() -> String {
    format!(
        r#"id: attack
params:
  sql_p: {{ type: string, default: "x' or 'x'='x" }}
  shell_p: {{ type: string, default: "x'; id; echo 'pwned $(id)" }}
  worker_pid: {{ type: string, default: "1" }}
defaults: {{ retries: 0, timeout: 2m }}
tasks:
  # A command task: the environment it runs in, and what it can dig out of it.
  - id: look_around
    command:
      shell: "env; echo db=${{DATABASE_URL:-none}}; echo prod=${{DROVER_PROD_CRM_TOKEN:-none}}; echo mine=$CRM_TOKEN"
      secrets: [crm_token]
  - id: read_the_worker
    command:
      shell: "if tr '\\0' '\\n' < /proc/{{{{ params.worker_pid }}}}/environ; then echo read; else echo refused; fi"
  - id: shell_injection
    command:
      shell: "echo got {{{{ params.shell_p }}}}"
  - id: other_environments_secret
    command:
      argv: [sh, -c, "echo $PROD_TOKEN"]
      secrets: [prod_token]
  # SQL: PROD's staged rows and receipts, a lock that would have stalled every worker, a
  # query that never ends, and a parameter that would rewrite a check.
  - id: read_prod_staging
    sql: "create table {{{{ output }}}} as select * from staging_prod.leads"
  - id: rewrite_prod_receipt
    sql: "update receipts_prod.push_receipt set previous = '{{\"leadScore\": 0}}'"
  - id: stall_every_worker
    sql: "select pg_advisory_lock({OLD_CLAIM_LOCK}); select pg_sleep(15); create table {{{{ output }}}} as select 1 as held"
  - id: never_ends
    timeout: 15s
    sql: "set statement_timeout = 0; select count(*) from generate_series(1, 100000000) a cross join generate_series(1, 100000000) b"
  - id: names
    sql: "create table {{{{ output }}}} as select * from (values ('ann'), ('bob')) t(name)"
  - id: sql_injection
    depends_on: [names]
    check: {{ sql: "select count(*) from {{{{ input.names }}}} where name = {{{{ params.sql_p }}}}", max: 0 }}
"#
    )
}

/// PROD's own pipeline: stages rows and uses PROD's secret.
const PROD_PIPELINE: &str = r#"id: prod_pipeline
defaults: { retries: 0 }
tasks:
  - id: stage
    sql: "create table {{ output }} as select g as id from generate_series(1, 100) g"
  - id: call_crm
    depends_on: [stage]
    command:
      argv: [sh, -c, "test -n \"$CRM_TOKEN\" && echo called"]
      secrets: [crm_token]
  - id: enough
    depends_on: [stage]
    check: { sql: "select count(*) from {{ input.stage }}", min: 100 }
"#;

/// DEV (its branch head runs unreviewed) and PROD, each with a MAP and a `crm_token` of its own.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for (name, order, branch, upper) in
        [("dev", 1, "branch: main\n", "DEV"), ("prod", 2, "", "PROD")]
    {
        let text = format!(
            "name: {name}\norder: {order}\n{branch}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: DROVER_{upper}_MAP_CLIENT_ID }}\n  client_secret: {{ env: DROVER_{upper}_MAP_CLIENT_SECRET }}\nsecrets:\n  crm_token: {{ env: DROVER_{upper}_CRM_TOKEN }}\n"
        );
        std::fs::write(ws.environments().join(format!("{name}.yaml")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    ws.dag("attack", &attack());
    ws.dag("prod_pipeline", PROD_PIPELINE);
    ws
}

/// The state and error of the only try of `task` in `run`.
async fn only_try(store: &Store, run: Uuid, task: &str) -> (String, String) {
    let (_, tries) = task_log(store, run, task).await;
    assert_eq!(tries.len(), 1, "{task}: {tries:?}");
    let (_, state, error) = tries[0].clone();
    (state, error.unwrap_or_default())
}

async fn active_queries(store: &Store, role: &str, like: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where usename = $1 and datname = current_database() and query like $2",
    )
    .bind(role)
    .bind(like)
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"))
}

#[test]
fn a_hostile_dev_dag_reaches_nothing_of_prod_while_prod_keeps_running() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    // One worker for both environments, holding every environment's secrets and Drover's
    // database URL: the hardest case (production binds PROD's workers apart). Its command
    // tasks run as `nobody`, as production's should.
    let secrets = [
        ("DROVER_DEV_CRM_TOKEN", DEV_TOKEN),
        ("DROVER_PROD_CRM_TOKEN", PROD_TOKEN),
        ("DROVER_DEV_MAP_CLIENT_ID", "dev-map-id"),
        ("DROVER_DEV_MAP_CLIENT_SECRET", "dev-map-secret"),
        ("DROVER_PROD_MAP_CLIENT_ID", "prod-map-id"),
        ("DROVER_PROD_MAP_CLIENT_SECRET", PROD_MAP_SECRET),
    ];
    let _s = d.scheduler("scheduler");
    let w = d.spawn_with(
        "worker",
        &[
            "worker",
            "--concurrency",
            "8",
            "--poll-ms",
            "200",
            "--grace-secs",
            "2",
            "--task-user",
            "nobody",
        ],
        &secrets,
    );
    rt.block_on(async {
        let store = db.store().await;
        for env in ["dev", "prod"] {
            eventually(
                &format!("both DAGs in {env}"),
                Duration::from_secs(30),
                || async {
                    let a = store.dag_env("attack", env).await.ok();
                    let p = store.dag_env("prod_pipeline", env).await.ok();
                    a.zip(p)
                },
            )
            .await;
        }
        for schema in ["staging_prod", "receipts_prod"] {
            eventually(
                &format!("schema {schema}"),
                Duration::from_secs(30),
                || async {
                    sqlx::query_scalar::<_, bool>(
                        "select exists (select 1 from pg_namespace where nspname = $1)",
                    )
                    .bind(schema)
                    .fetch_one(store.pool())
                    .await
                    .ok()
                    .filter(|b| *b)
                },
            )
            .await;
        }
        // PROD's staged leads and a receipt of a return, as Drover lays them out: the receipt
        // readable by PROD's own SQL role only.
        sqlx::raw_sql(
            "create table staging_prod.leads (email text);
             insert into staging_prod.leads values ('ceo@example.com');
             create table receipts_prod.push_receipt (key text, previous jsonb);
             insert into receipts_prod.push_receipt values ('42', '{\"leadScore\": 17}');
             grant select on receipts_prod.push_receipt to drover_sql_prod;",
        )
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("seed PROD: {e}"));

        let dev = trigger(&d, "attack", "dev", &[&format!("worker_pid={}", w.pid())]);

        // While the attack holds the old claim lock and runs its endless query, PROD runs
        // one pipeline after another, each to success.
        eventually(
            "the attack to hold the old claim lock",
            Duration::from_secs(30),
            || async {
                sqlx::query_scalar::<_, bool>(
                    "select exists (select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid
                                    where l.locktype = 'advisory' and a.usename = 'drover_sql_dev'
                                      and a.datname = current_database())",
                )
                .fetch_one(store.pool())
                .await
                .ok()
                .filter(|b| *b)
            },
        )
        .await;
        let began = Instant::now();
        for _ in 0..2 {
            let prod =
                Uuid::parse_str(&d.ok(&["runs", "trigger", "prod_pipeline", "--env", "prod"]))
                    .unwrap_or_else(|e| panic!("run id: {e}"));
            let row = wait_finished(&store, prod, Duration::from_secs(60)).await;
            assert_eq!(row.state, RunState::Success, "PROD run {prod}: {row:?}");
        }
        let during_attack = active_queries(&store, "drover_sql_dev", "%cross join%").await
            + active_queries(&store, "drover_sql_dev", "%pg_sleep%").await;
        assert!(
            during_attack > 0,
            "PROD's runs must have run while the attack was still running ({:?} after the lock)",
            began.elapsed()
        );

        let row = wait_finished(&store, dev, Duration::from_secs(90)).await;
        assert_eq!(row.state, RunState::Failed, "{row:?}");

        // The command task's world: no database URL, no MAP credential, no PROD secret; its
        // own secret only, and `***` wherever it would have been printed.
        let (log, tries) = task_record(&store, dev, "look_around").await;
        assert_eq!(tries[0].1, "success", "{tries:?}");
        let text = log.join("\n");
        for leak in [
            db.url.as_str(),
            PROD_TOKEN,
            PROD_MAP_SECRET,
            "prod-map-id",
            "dev-map-secret",
            "DATABASE_URL=",
            DEV_TOKEN,
        ] {
            assert!(!text.contains(leak), "`{leak}` reached the task's log:\n{text}");
        }
        assert!(text.contains("db=none") && text.contains("prod=none"), "{text}");
        assert!(text.contains("mine=***"), "{text}");

        // Run as the task user, the task cannot read the worker's own environment either.
        let (log, tries) = task_record(&store, dev, "read_the_worker").await;
        assert_eq!(tries[0].1, "success", "{tries:?}");
        let text = log.join("\n");
        assert!(
            text.contains("Permission denied") && text.contains("refused"),
            "{text}"
        );
        assert!(!text.contains(PROD_TOKEN) && !text.contains(&db.url), "{text}");

        // A value cannot become shell code.
        let (log, tries) = task_record(&store, dev, "shell_injection").await;
        assert_eq!(tries[0].1, "success", "{tries:?}");
        let text = log.join("\n");
        assert!(
            text.contains("got x'; id; echo 'pwned $(id)") && !text.contains("uid="),
            "{text}"
        );

        // Naming another environment's secret is refused with the reason.
        let (state, error) = only_try(&store, dev, "other_environments_secret").await;
        assert_eq!(state, "failed");
        assert!(
            error.contains("secret `prod_token`") && error.contains("`dev`"),
            "{error}"
        );

        // PROD's staged data and receipts are out of reach of DEV's SQL.
        for (task, says) in [
            (
                "read_prod_staging",
                "permission denied for schema staging_prod",
            ),
            (
                "rewrite_prod_receipt",
                "permission denied for schema receipts_prod",
            ),
        ] {
            let (state, error) = only_try(&store, dev, task).await;
            assert_eq!(state, "failed", "{task}: {error}");
            assert!(error.contains(says), "{task}: {error}");
        }
        let receipt: serde_json::Value =
            sqlx::query_scalar("select previous from receipts_prod.push_receipt where key = '42'")
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|e| panic!("receipt: {e}"));
        assert_eq!(receipt, serde_json::json!({ "leadScore": 17 }));

        // The lock was harmless (PROD ran meanwhile, above) and died with its try.
        let (state, error) = only_try(&store, dev, "stall_every_worker").await;
        assert_eq!(state, "success", "{error}");
        let held: i64 =
            sqlx::query_scalar(
                "select count(*) from pg_locks where locktype = 'advisory'
                 and database = (select oid from pg_database where datname = current_database())",
            )
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|e| panic!("pg_locks: {e}"));
        assert_eq!(held, 0, "an advisory lock outlived its try");

        // The endless query was cut by its task's timeout and ended on the server.
        let (state, error) = only_try(&store, dev, "never_ends").await;
        assert_eq!(state, "failed");
        assert!(
            error.contains("timed out after 15s; the query was cancelled on the server"),
            "{error}"
        );
        assert_eq!(
            active_queries(&store, "drover_sql_dev", "%cross join%").await,
            0
        );

        // The injected parameter is one string literal: it matches no name, the check holds.
        let (state, error) = only_try(&store, dev, "sql_injection").await;
        assert_eq!(state, "success", "{error}");
        let verdict = store
            .check_history("attack", "dev", "sql_injection", 1)
            .await
            .unwrap_or_default();
        assert_eq!(
            verdict.first().map(|v| (v.value, v.passed)),
            Some((Some(0.0), true))
        );
    });
}
