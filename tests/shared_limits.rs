//! Marketo's limits shared with other integrations, end to end: real `drover` processes
//! against the sandbox with another integration using most of the instance's calls (its rate
//! window scaled down to 2 s, and the environment's client window with it). A large return
//! slows down and gets through, saying so in its log; every try records the MAP calls it
//! spent, failed ones too, and the DAG's daily API budget counts them.

mod support;

use std::time::Duration;

use drover_mapsim::{FaultProfile, Limits, QuotaFault, SharedLimitFault};
use drover_store::{RunState, Store};
use support::tasks::{task_log, task_record, trigger};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, synced, wait_finished,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-shared";
const SECRET: &str = "shared-secret-81f0";

/// A sandbox of `leads` leads whose rate window is 2 s.
async fn sandbox(leads: usize, faults: FaultProfile) -> drover_mapsim::RunningSandbox {
    drover_mapsim::start(
        drover_mapsim::SandboxConfig {
            leads,
            seed: 17,
            client_id: CLIENT_ID.to_owned(),
            client_secret: SECRET.to_owned(),
            faults,
            limits: Limits {
                rate_window: Duration::from_secs(2),
                job_latency: Duration::from_millis(200),
                ..Limits::default()
            },
            ..drover_mapsim::SandboxConfig::default()
        },
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap_or_else(|e| panic!("sandbox: {e}"))
}

/// Environment dev against `base`, its client counting calls in a 2 s window.
fn environment(ws: &Workspace, base: &str) {
    let dir = ws.path();
    std::fs::write(dir.join("client_id"), CLIENT_ID).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("client_secret"), SECRET).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        ws.environments().join("dev.yaml"),
        format!(
            "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: {base}\n  client_id: {{ file: {} }}\n  client_secret: {{ file: {} }}\n  rate_window: 2s\n",
            dir.join("client_id").display(),
            dir.join("client_secret").display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// `rows` leads scored 7 and returned by id.
fn return_dag(id: &str, rows: u32, limits: &str) -> String {
    format!(
        "id: {id}\n{limits}defaults: {{ retries: 0 }}\ntasks:\n  - id: scores\n    sql: \"create table {{{{ output }}}} as select g as id, 7 as \\\"leadScore\\\" from generate_series(1, {rows}) g\"\n\
         \x20 - id: push\n    depends_on: [scores]\n    return: {{ object: leads, lookup: id, fields: [leadScore] }}\n"
    )
}

/// The tries of `task` in `run`: (try number, state, api_calls).
async fn tries(store: &Store, run: Uuid, task: &str) -> Vec<(i32, String, Option<i64>)> {
    sqlx::query_as(
        "select t.try_number, t.state, t.api_calls from task_try t \
         join task_instance ti on ti.id = t.task_instance_id \
         where ti.run_id = $1 and ti.task_id = $2 order by t.try_number",
    )
    .bind(run)
    .bind(task)
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn stats(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_large_return_gets_through_a_shared_rate_limit() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        // Another integration uses 90 of the instance's 100 calls in every window.
        let faults = FaultProfile {
            shared_limit: Some(SharedLimitFault::default()),
            ..FaultProfile::default()
        };
        let map = sandbox(10_000, faults).await;
        let base = map.base_url();
        environment(&ws, &base);
        ws.dag("big_push", &return_dag("big_push", 10_000, ""));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "big_push").await;
        let started = std::time::Instant::now();
        let run = trigger(&d, "big_push", "dev", &[]);
        let row = wait_finished(&store, run, Duration::from_secs(120)).await;
        let (log, push) = task_log(&store, run, "push").await;
        assert_eq!(row.state, RunState::Success, "{log:#?}\n{push:?}\n{}", w.log());
        let took = started.elapsed();
        // Log lines are written in batches, shortly after: wait for the return's last one.
        let log = eventually("the end of push's log", Duration::from_secs(10), || async {
            let (log, _) = task_log(&store, run, "push").await;
            log.iter()
                .any(|l| l.starts_with("the MAP accepted"))
                .then_some(log)
        })
        .await;

        let receipt = store
            .dataset(run, "push", "receipt")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no receipt"));
        assert_eq!(receipt.row_count, 10_000);
        // The client slowed down, and said so in the task's log.
        assert!(
            log.iter()
                .any(|l| l.starts_with("Marketo rate limit shared: slowed to")),
            "{log:#?}"
        );
        let tries = tries(&store, run, "push").await;
        assert_eq!(tries.len(), 1, "{tries:?}");
        let calls = tries[0].2.unwrap_or(0);
        assert!(calls > 34, "at least the values-before reads: {tries:?}");
        let s = stats(&base).await;
        let refused = s["errorsByCode"]["606"].as_i64().unwrap_or(0);
        // Refusals stay a small share of the calls: the client waits out the window instead
        // of retrying into it.
        assert!(refused * 4 < calls, "{refused} 606s of {calls} calls: {s}");
        eprintln!(
            "10,000-row return under a shared limit of 10 calls/2 s: {calls} API calls, {refused} answered 606, {:.1} s",
            took.as_secs_f64()
        );
        map.shutdown().await;
    });
}

#[test]
fn a_failed_try_records_its_api_calls_and_the_dags_budget_counts_them() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        // The MAP's daily quota allows one call: the values-before read gets through, the
        // write is refused (607) and the try fails.
        let faults = FaultProfile {
            quota: Some(QuotaFault {
                daily_calls: 1,
                export_daily_bytes: u64::MAX,
            }),
            ..FaultProfile::default()
        };
        let map = sandbox(200, faults).await;
        environment(&ws, &map.base_url());
        ws.dag(
            "small_push",
            &return_dag("small_push", 50, "limits: { map_api_calls_per_day: 2 }\n"),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "small_push").await;
        let first = trigger(&d, "small_push", "dev", &[]);
        let row = wait_finished(&store, first, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Failed);
        let (log, _) = task_record(&store, first, "push").await;
        assert!(
            log.iter().any(|l| l.starts_with("failed:") && l.contains("quota")),
            "{log:#?}"
        );
        // Both calls the failed try sent are on its row.
        assert_eq!(
            tries(&store, first, "push").await,
            vec![(1, "failed".to_owned(), Some(2))]
        );
        // And the DAG's daily budget of 2 calls counts them: the next run's return does not
        // start.
        let second = trigger(&d, "small_push", "dev", &[]);
        wait_finished(&store, second, Duration::from_secs(60)).await;
        let (log, _) = task_record(&store, second, "push").await;
        assert!(
            log.iter().any(|l| l.contains(
                "the daily MAP API budget of DAG `small_push` in dev is used up: 2 of 2 calls spent today"
            )),
            "{log:#?}"
        );
        map.shutdown().await;
    });
}
