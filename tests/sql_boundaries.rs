//! The walls around user SQL: a DEV task runs as DEV's role in DEV's schema and reaches
//! nothing of PROD's, cannot change receipts, cannot keep a lock past its try, cannot outlive
//! its timeout on the server, and a parameter cannot change its statement. Real scheduler and
//! worker processes on a real Postgres; plus the move of tables of the old shared schema.

mod support;

use std::time::{Duration, Instant};

use drover_store::{RunState, Store};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url, wait_finished};
use uuid::Uuid;

const SNOOP: &str = r#"id: snoop
params: { p: nobody }
defaults: { retries: 0 }
tasks:
  - id: read_prod_staging
    sql: "create table {{ output }} as select * from staging_prod.leads"
  - id: read_prod_receipts
    sql: "create table {{ output }} as select * from receipts_prod.r"
  - id: forge_own_receipt
    sql: "update receipts_dev.r set previous = '{\"score\": 0}'"
  - id: hold_lock
    sql: "select pg_advisory_lock(4242); create table {{ output }} as select 1 as held"
  - id: view_output
    sql: "create view {{ output }} as select 1 as x"
  - id: names
    sql: "create table {{ output }} as select * from (values ('ann'), ('bob'), ('cy')) t(name)"
  - id: injected
    depends_on: [names]
    check: { sql: "select count(*) from {{ input.names }} where name = {{ params.p }}", max: 0, severity: fail }
"#;

const ENDLESS: &str = r#"id: endless
defaults: { retries: 0 }
tasks:
  - id: forever
    timeout: 3s
    sql: "set statement_timeout = 0; select count(*) from generate_series(1, 100000000) a cross join generate_series(1, 100000000) b"
"#;

/// The error of the first try of `task` in `run`.
async fn try_error(store: &Store, run: Uuid, task: &str) -> (String, String) {
    let tis = store.task_instances(run).await.expect("tasks");
    let ti = tis
        .iter()
        .find(|t| t.task_id == task)
        .unwrap_or_else(|| panic!("no task {task}"));
    let tries = store.task_tries(ti.id).await.expect("tries");
    let first = tries.first().unwrap_or_else(|| panic!("{task} has no try"));
    (first.state.clone(), first.error.clone().unwrap_or_default())
}

async fn schema_exists(store: &Store, name: &str) -> Option<()> {
    sqlx::query_scalar::<_, bool>("select exists (select 1 from pg_namespace where nspname = $1)")
        .bind(name)
        .fetch_one(store.pool())
        .await
        .ok()
        .filter(|e| *e)
        .map(|_| ())
}

#[test]
fn dev_sql_reaches_only_dev_and_leaves_nothing_behind() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.environment("prod", 2, false);
    ws.dag("snoop", SNOOP);
    ws.dag("endless", ENDLESS);
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        // Drover provisions each environment when it first reads it.
        for schema in ["staging_dev", "receipts_dev", "staging_prod", "receipts_prod"] {
            eventually(&format!("schema {schema}"), Duration::from_secs(30), || {
                schema_exists(&store, schema)
            })
            .await;
        }
        support::synced(&store, "endless").await;
        sqlx::raw_sql(
            "create table staging_prod.leads (email text);
             insert into staging_prod.leads values ('ceo@example.com');
             create table receipts_prod.r (key text, previous jsonb);
             grant select on receipts_prod.r to drover_sql_prod;
             create table receipts_dev.r (key text, previous jsonb);
             insert into receipts_dev.r values ('a', '{\"score\": 7}');
             grant select on receipts_dev.r to drover_sql_dev;",
        )
        .execute(store.pool())
        .await
        .expect("seed");

        let run = Uuid::parse_str(&d.ok(&[
            "runs", "trigger", "snoop", "--env", "dev", "--param", "p=x' or 'x'='x",
        ]))
        .expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(90)).await;
        assert_eq!(row.state, RunState::Failed, "{row:?}");

        // PROD's staged data and receipts are out of reach, and DEV's own receipts are
        // read-only: each refusal is the try's error.
        for (task, says) in [
            ("read_prod_staging", "permission denied for schema staging_prod"),
            ("read_prod_receipts", "permission denied for schema receipts_prod"),
            ("forge_own_receipt", "permission denied for table r"),
            (
                "view_output",
                "`{{ output }}` must be a table (create table … as …), not a view",
            ),
        ] {
            let (state, error) = try_error(&store, run, task).await;
            assert_eq!(state, "failed", "{task}: {error}");
            assert!(error.contains(says), "{task}: {error}");
        }
        let kept: serde_json::Value =
            sqlx::query_scalar("select previous from receipts_dev.r where key = 'a'")
                .fetch_one(store.pool())
                .await
                .expect("receipt");
        assert_eq!(kept, serde_json::json!({ "score": 7 }));

        // A session lock taken by user SQL died with its try's connection.
        let (state, error) = try_error(&store, run, "hold_lock").await;
        assert_eq!(state, "success", "{error}");
        let held: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and objid = 4242",
        )
        .fetch_one(store.pool())
        .await
        .expect("locks");
        assert_eq!(held, 0, "the advisory lock outlived its try");

        // The injected parameter is a literal: it matches no name, so the check holds.
        let (state, error) = try_error(&store, run, "injected").await;
        assert_eq!(state, "success", "{error}");
        let verdict = store
            .check_history("snoop", "dev", "injected", 1)
            .await
            .expect("history");
        assert_eq!(
            verdict.first().map(|v| (v.value, v.passed)),
            Some((Some(0.0), true))
        );

        // A statement that never ends (it turned its own statement_timeout off) is cut by
        // the task's timeout, and is gone from the server when the try is recorded failed.
        let began = Instant::now();
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "endless", "--env", "dev"]))
            .expect("run id");
        eventually("the endless query to start", Duration::from_secs(30), || async {
            sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from pg_stat_activity
                                where usename = 'drover_sql_dev' and datname = current_database()
                                  and state = 'active' and query like '%cross join%')",
            )
            .fetch_one(store.pool())
            .await
            .ok()
            .filter(|b| *b)
        })
        .await;
        let row = wait_finished(&store, run, Duration::from_secs(60)).await;
        let still: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where usename = 'drover_sql_dev' and datname = current_database() and query like '%cross join%'",
        )
        .fetch_one(store.pool())
        .await
        .expect("activity");
        assert_eq!(row.state, RunState::Failed);
        let (_, error) = try_error(&store, run, "forever").await;
        assert!(
            error.contains("timed out after 3s; the query was cancelled on the server"),
            "{error}"
        );
        assert_eq!(still, 0, "the query outlived its try");
        assert!(began.elapsed() < Duration::from_secs(40));
    });
}

#[test]
fn provisioning_moves_the_old_shared_schema_and_is_idempotent() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        // The old layout: tables in `staging`, owned by `drover_sql`, registered for dev.
        let run = Uuid::new_v4();
        let r = run.simple().to_string();
        let mut conn = store.pool().acquire().await.expect("conn");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "create table staging.\"{r}__score\" (id bigint);
             insert into staging.\"{r}__score\" values (1), (2);
             create table staging.\"{r}__push__receipt\" (key text, previous jsonb);
             create table staging.\"{r}__push__before\" (key text primary key, previous jsonb);
             alter table staging.\"{r}__score\" owner to drover_sql;
             alter table staging.\"{r}__push__receipt\" owner to drover_sql;
             alter table staging.\"{r}__push__before\" owner to drover_sql;
             create table staging.\"{r}__hooked__receipt\" (key text, previous jsonb);
             create table staging.\"{r}__hooked__before\" (key text primary key, previous jsonb);
             create function staging.\"{r}_hook\"() returns trigger language plpgsql as 'begin return new; end';
             create trigger hook before insert on staging.\"{r}__hooked__before\"
               for each row execute function staging.\"{r}_hook\"();
             alter table staging.\"{r}__hooked__receipt\" owner to drover_sql;
             alter table staging.\"{r}__hooked__before\" owner to drover_sql;
             set session_replication_role = replica;
             insert into dataset (run_id, task_id, kind, environment, table_name, row_count, columns, expires_at)
             values ('{run}', 'score', 'output', 'dev', '{r}__score', 2, '[]', now() + interval '1 day'),
                    ('{run}', 'push', 'receipt', 'dev', '{r}__push__receipt', 0, '[]', now() + interval '1 day'),
                    ('{run}', 'hooked', 'receipt', 'dev', '{r}__hooked__receipt', 0, '[]', now() + interval '1 day');
             set session_replication_role = default;"
        )))
        .execute(&mut *conn)
        .await
        .expect("old layout");
        drop(conn);

        let done = store.provision_sql_environment("dev").await.expect("provision");
        assert_eq!(done.moved, 3);
        // A receipt whose values-before table has a trigger (it would run as Drover's login
        // once Drover owned it) stays in the old schema, with its receipt.
        assert_eq!(done.refused, 2);
        let left: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select schemaname::text, tablename::text from pg_tables
             where tablename like '{r}__hooked__%' order by tablename"
        )))
        .fetch_all(store.pool())
        .await
        .expect("left");
        assert_eq!(
            left,
            [
                ("staging".to_owned(), format!("{r}__hooked__before")),
                ("staging".to_owned(), format!("{r}__hooked__receipt")),
            ]
        );
        let facts: (bool, bool, bool, bool, bool, bool) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select (select count(*) from staging_dev.\"{r}__score\") = 2,
                    (select tableowner from pg_tables where schemaname = 'staging_dev' and tablename = '{r}__score') = 'drover_sql_dev',
                    has_table_privilege('drover_sql_dev', 'receipts_dev.\"{r}__push__receipt\"', 'select'),
                    has_table_privilege('drover_sql_dev', 'receipts_dev.\"{r}__push__receipt\"', 'update'),
                    has_table_privilege('drover_sql_dev', 'receipts_dev.\"{r}__push__before\"', 'select'),
                    has_schema_privilege('drover_sql', 'staging', 'usage')"
        )))
        .fetch_one(store.pool())
        .await
        .expect("facts");
        assert_eq!(facts, (true, true, true, false, false, false));
        let d = store
            .dataset(run, "score", "output")
            .await
            .expect("registry")
            .expect("dataset");
        assert_eq!(d.relation(), format!("\"staging_dev\".\"{r}__score\""));

        // Again, and from several callers at once (another environment): nothing changes,
        // nothing fails.
        let again = store.provision_sql_environment("dev").await.expect("again");
        assert_eq!((again.moved, again.refused), (0, 2));
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let store = store.clone();
            all.spawn(async move { store.provision_sql_environment("boundary_qa").await });
        }
        while let Some(done) = all.join_next().await {
            let done = done.expect("join");
            assert!(done.is_ok(), "{done:?}");
        }
        let role: (bool, bool, bool) = sqlx::query_as(
            "select rolcanlogin, rolsuper, rolinherit from pg_roles where rolname = 'drover_sql_boundary_qa'",
        )
        .fetch_one(store.pool())
        .await
        .expect("role");
        assert_eq!(role, (true, false, false));
        // DEV's role has no privilege at all on another environment's schemas.
        let reach: (bool, bool) = sqlx::query_as(
            "select has_schema_privilege('drover_sql_dev', 'staging_boundary_qa', 'usage'),
                    has_schema_privilege('drover_sql_dev', 'receipts_boundary_qa', 'usage')",
        )
        .fetch_one(store.pool())
        .await
        .expect("privileges");
        assert_eq!(reach, (false, false));
        // A name that cannot be an identifier is refused before any SQL.
        let err = store.provision_sql_environment("Dev; drop").await.err();
        assert!(err.is_some_and(|e| e.to_string().contains("^[a-z][a-z0-9_]{0,30}$")));
    });
}

/// A role name of this run only (roles are cluster-wide).
fn unique_environment(prefix: &str) -> String {
    let id = Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

#[test]
fn provisioning_refuses_a_role_that_is_a_member_of_another() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        let env = unique_environment("member");
        let role = format!("drover_sql_{env}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "create role \"{role}\" login; grant pg_read_all_data to \"{role}\";"
        )))
        .execute(store.pool())
        .await
        .expect("role");
        let refused = store.provision_sql_environment(&env).await;
        let schema: bool =
            sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
                .bind(format!("staging_{env}"))
                .fetch_one(store.pool())
                .await
                .expect("schema");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "drop owned by \"{role}\"; drop role \"{role}\""
        )))
        .execute(store.pool())
        .await
        .expect("drop role");
        let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains(&format!("role `{role}` is a member of pg_read_all_data"))
                && err.contains(&format!("revoke pg_read_all_data from \"{role}\"")),
            "{err}"
        );
        assert!(!schema, "provisioning went on after refusing the role");
    });
}

#[test]
fn retention_drops_each_dataset_it_can_with_what_was_built_on_it() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        store.provision_sql_environment("dev").await.expect("provision");
        let run = Uuid::new_v4();
        let r = run.simple().to_string();
        // The first expired dataset is a view (an older Drover registered one): it cannot be
        // dropped as a table. The second has a view of DEV's role built on it.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "set role drover_sql_dev;
             create view staging_dev.\"{r}__seen\" as select 1 as x;
             create table staging_dev.\"{r}__kept\" (id bigint);
             create view staging_dev.\"{r}__peek\" as select * from staging_dev.\"{r}__kept\";
             reset role;
             set session_replication_role = replica;
             insert into dataset (run_id, task_id, kind, environment, table_name, row_count, columns, expires_at)
             values ('{run}', 'seen', 'output', 'dev', '{r}__seen', 1, '[]', now() - interval '2 days'),
                    ('{run}', 'kept', 'output', 'dev', '{r}__kept', 0, '[]', now() - interval '1 day');
             set session_replication_role = default;"
        )))
        .execute(store.pool())
        .await
        .expect("datasets");
        let plane = drover_engine::data::DataPlane::connect(&store, 1)
            .await
            .expect("plane");
        let dropped = drover_engine::data::drop_expired_datasets(&plane, 10)
            .await
            .expect("retention");
        assert_eq!(dropped, 1);
        let left: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select relname::text from pg_class where relname like '{r}__%' order by relname"
        )))
        .fetch_all(store.pool())
        .await
        .expect("left");
        assert_eq!(left, [format!("{r}__seen")]);
        let kept = store
            .dataset(run, "kept", "output")
            .await
            .expect("registry")
            .expect("dataset");
        assert!(kept.dropped_at.is_some());
    });
}

#[test]
fn ending_a_try_session_never_signals_another_roles_process() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        // A pid that is no session of DEV's role (here: one of Drover's own login, as a pid
        // reused after a try's connection closed would be) is left alone.
        let mut other = store.pool().acquire().await.expect("conn");
        let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
            .fetch_one(&mut *other)
            .await
            .expect("pid");
        let gone = store
            .end_backend("dev", pid, Duration::from_secs(2))
            .await
            .expect("end");
        assert!(gone, "no session of drover_sql_dev has that pid");
        let alive: i32 = sqlx::query_scalar("select 1")
            .fetch_one(&mut *other)
            .await
            .expect("the other session was ended");
        assert_eq!(alive, 1);
    });
}
