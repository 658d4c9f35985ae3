//! End-to-end tests of the data task kinds that need no MAP: `sql` tasks staging rows,
//! `transform` steps compiled to SQL, `check` verdicts, and the wall between user-written SQL
//! and Drover's own tables. Real scheduler and worker processes on a real Postgres.

mod support;

use std::time::Duration;

use drover_store::{RunState, TaskState};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, synced, wait_finished,
};
use uuid::Uuid;

const DAG: &str = r#"id: hygiene
tasks:
  - id: raw
    sql: |
      create table {{ output }} as
      select * from (values
        (1, '  Ann@Example.COM ', 'United States', '(555) 123-4567', timestamptz '2026-01-01'),
        (2, 'ann@example.com',    'USA',           '+49 30 1234567', timestamptz '2026-01-03'),
        (3, 'bob@example.com',    'Deutschland',   'n/a',            timestamptz '2026-01-02'),
        (4, null,                 'N/A',           '5551234567',     timestamptz '2026-01-02'),
        (5, null,                 ' u.k. ',        null,             timestamptz '2026-01-04')
      ) as t(id, email, country, phone, "updatedAt")
  - id: clean
    depends_on: [raw]
    transform:
      - normalize: { email: lower_trim, country: iso_alpha2, phone: e164 }
      - dedupe: { key: email, keep: latest }
      - derive: { tier: "case when country = 'US' then 'domestic' else 'abroad' end" }
      - sql: select * from {{ previous }} where id <> 3
  - id: enough_rows
    depends_on: [clean]
    check: { sql: "select count(*) from {{ input.clean }}", between: [3, 10], severity: fail }
  - id: too_few
    depends_on: [clean]
    check: { sql: "select count(*) from {{ input.clean }}", min: 100, severity: warn }
"#;

const SNOOP: &str = r#"id: snoop
tasks:
  - id: read_runs
    sql: "create table {{ output }} as select * from public.dag_run"
"#;

/// id, email, country, phone, tier.
type CleanRow = (i32, Option<String>, Option<String>, Option<String>, String);

#[test]
fn sql_transform_and_checks_stage_clean_rows_and_record_verdicts() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("hygiene", DAG);
    ws.dag("snoop", SNOOP);
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "snoop").await;
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "hygiene", "--env", "dev"])).expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}");

        // The transform's rows: emails trimmed and lower-cased, duplicates gone (the latest
        // kept), null emails all kept, countries as ISO codes, phones in E.164, one row
        // filtered by the sql step.
        let staging = store.staging_pool("dev", 1).expect("staging pool");
        let d_clean = store.dataset(run, "clean", "output").await.expect("registry").expect("clean dataset");
        assert_eq!(d_clean.row_count, 3);
        let rows: Vec<CleanRow> = sqlx::query_as(
            sqlx::AssertSqlSafe(format!(
                "select id, email, country, phone, tier from {} order by id",
                d_clean.relation()
            )),
        )
        .fetch_all(&staging)
        .await
        .expect("read clean");
        assert_eq!(
            rows,
            vec![
                (2, Some("ann@example.com".into()), Some("US".into()), Some("+49301234567".into()), "domestic".into()),
                (4, None, None, Some("+15551234567".into()), "abroad".into()),
                (5, None, Some("GB".into()), None, "abroad".into()),
            ]
        );
        let names: Vec<String> = d_clean.columns.0.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["id", "email", "country", "phone", "updatedAt", "tier"]);

        // Both checks are stored with their values; the warn-level one failed without failing
        // its task.
        let ok = store.check_history("hygiene", "dev", "enough_rows", 5).await.expect("history");
        assert_eq!((ok.len(), ok[0].value, ok[0].passed), (1, Some(3.0), true));
        let warned = store.check_history("hygiene", "dev", "too_few", 5).await.expect("history");
        assert_eq!((warned[0].value, warned[0].passed), (Some(3.0), false));
        let tis = store.task_instances(run).await.expect("tasks");
        assert!(tis.iter().all(|t| t.state.0 == TaskState::Success), "{tis:?}");

        // What the transform moved is on its try.
        let clean = tis.iter().find(|t| t.task_id == "clean").expect("clean");
        let tries = store.task_tries(clean.id).await.expect("tries");
        let metrics: (Option<i64>, Option<i64>) = sqlx::query_as(
            "select rows_in, rows_out from task_try where task_instance_id = $1 and try_number = $2",
        )
        .bind(clean.id)
        .bind(tries[0].try_number)
        .fetch_one(store.pool())
        .await
        .expect("metrics");
        assert_eq!(metrics, (Some(5), Some(3)));

        // `datasets show` prints the first rows.
        let shown = d.ok(&["datasets", "show", &run.to_string(), "clean", "--limit", "2"]);
        assert!(shown.contains("ann@example.com") && shown.contains("2 of 3 rows"), "{shown}");

        // The web UI shows the same: the checks page (the warn-level breach amber, the other
        // green, with their thresholds) and the dataset's rows.
        let password = support::web::add_user(&d, "admin", "admin");
        let (_web, base) = support::web::start_web(&d, &[]).await;
        let s = support::web::login(&base, "admin", &password).await;
        let checks = s.get("/checks?env=dev").await;
        assert_eq!(checks.status.as_u16(), 200);
        let row = |check: &str| {
            checks
                .body
                .split(&format!("data-check=\"hygiene.{check}\""))
                .nth(1)
                .and_then(|r| r.split("</tr>").next())
                .unwrap_or_else(|| panic!("no row for {check}: {}", checks.body))
                .to_owned()
        };
        let (enough, few) = (row("enough_rows"), row("too_few"));
        assert!(enough.contains("dot green") && enough.contains("between 3 and 10"), "{enough}");
        assert!(few.contains("dot amber") && few.contains("at least 100") && few.contains("warning"), "{few}");
        let rows = s.get(&format!("/runs/{run}/datasets/clean")).await;
        assert!(rows.body.contains("ann@example.com") && rows.body.contains("3 rows, 6 columns"), "{}", rows.body);

        // Past its retention, the scheduler drops a dataset (it looks at start and every
        // minute): the table goes, the registry says so, and `datasets show` explains.
        sqlx::query("update dataset set expires_at = now() - interval '1 minute' where run_id = $1 and task_id = 'raw'")
            .bind(run)
            .execute(store.pool())
            .await
            .expect("expire");
        let _s2 = d.scheduler("scheduler-2");
        let raw = eventually("the expired dataset to be dropped", Duration::from_secs(30), || async {
            store.dataset(run, "raw", "output").await.ok().flatten().filter(|d| d.dropped_at.is_some())
        })
        .await;
        let gone: bool = sqlx::query_scalar(
            "select not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'staging_dev' and c.relname = $1)",
        )
        .bind(&raw.table_name)
        .fetch_one(store.pool())
        .await
        .expect("catalog");
        assert!(gone, "{} still exists", raw.table_name);
        let out = d.run(&["datasets", "show", &run.to_string(), "raw"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("dropped after its retention period"));
        assert!(store.dataset(run, "clean", "output").await.expect("registry").is_some_and(|d| d.dropped_at.is_none()));

        // SQL a DAG wrote cannot read Drover's own tables.
        let snoop = Uuid::parse_str(&d.ok(&["runs", "trigger", "snoop", "--env", "dev", "--as", "admin"])).expect("run id");
        let row = wait_finished(&store, snoop, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Failed);
        let ti = store.task_instances(snoop).await.expect("tasks");
        let tries = store.task_tries(ti[0].id).await.expect("tries");
        let error = tries[0].error.clone().unwrap_or_default();
        assert!(error.contains("permission denied for table dag_run"), "{error}");
        assert_eq!(tries.len(), 1, "a refused statement is not retried");
    });
}
