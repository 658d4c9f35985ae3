//! Backstops and show-back against real processes, Postgres and the MAP sandbox: an
//! environment's cap on running runs makes runs wait (and says why), a DAG over its staged-data
//! limit or its daily MAP API budget fails with the reason, and the usage page and API show
//! what each DAG used and what it costs.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::RunState;
use support::web::{JsonAnswer, add_user, client, login, start_web, token};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, start_sandbox, synced,
    wait_finished, window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-backstops";
const SECRET: &str = "backstops-secret-5e1f";

fn trigger(d: &Drover<'_>, dag: &str) -> Uuid {
    let out = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("run id `{out}`: {e}"))
}

#[test]
fn limits_hold_runs_back_or_fail_them_with_the_reason_and_usage_is_priced() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(400, 5, CLIENT_ID, SECRET, FaultProfile::default()).await;
        ws.map_environment(&map.base_url(), CLIENT_ID, SECRET, None);
        let dev = ws.environments().join("dev.yaml");
        let mut text = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
        text.push_str(
            "limits: { max_active_runs: 1, staged_bytes: 500MB }\n\
             costs: { currency: EUR, per_api_call: 0.01, per_runtime_hour: 3.6, per_gb_day: 1.0, per_million_rows: 2.0 }\n",
        );
        std::fs::write(&dev, text).unwrap_or_else(|e| panic!("{e}"));
        for id in ["first", "second"] {
            ws.dag(id, &format!("id: {id}\ntasks:\n  - id: wait\n    noop: {{ sleep: 4s }}\n"));
        }
        ws.dag(
            "big",
            "id: big\nlimits: { staged_bytes: 1MB }\ntasks:\n  - id: make\n    sql: \"create table {{ output }} as select g, repeat('x', 200) as pad from generate_series(1, 20000) g\"\n",
        );
        let (since, until) = window_days(30);
        ws.dag(
            "pull",
            &format!(
                "id: pull\nlimits: {{ map_api_calls_per_day: 2 }}\ntasks:\n  - id: export_leads\n    export:\n      object: leads\n      fields: [id, email]\n      filter: {{ updated_at: {{ since: \"{since}\", until: \"{until}\" }} }}\n"
            ),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let password = add_user(&d, "admin", "admin");
        let admin_token = token(&d, "admin");
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 4, 10.0);
        let store = db.store().await;
        for dag in ["first", "second", "big", "pull"] {
            synced(&store, dag).await;
        }
        let (_web, base) = start_web(&d, &[]).await;
        let session = login(&base, "admin", &password).await;

        // The environment runs one run at a time: the second waits, and its page says why.
        let first = trigger(&d, "first");
        eventually("the first run to start", Duration::from_secs(20), || async {
            (store.get_run(first).await.ok()?.state == RunState::Running).then_some(())
        })
        .await;
        let second = trigger(&d, "second");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(store.get_run(second).await.map(|r| r.state).ok(), Some(RunState::Queued));
        let page = session.get(&format!("/runs/{second}")).await;
        assert!(
            page.body.contains("id=\"waiting\"") && page.body.contains("limits.max_active_runs: 1"),
            "{}",
            page.body
        );
        let a = wait_finished(&store, first, Duration::from_secs(30)).await;
        let b = wait_finished(&store, second, Duration::from_secs(30)).await;
        assert_eq!((a.state, b.state), (RunState::Success, RunState::Success));
        assert!(a.finished_at <= b.started_at, "runs overlapped: {a:?} {b:?}");

        // Over the DAG's staged-data limit: failed with the reason, the table dropped.
        let big = trigger(&d, "big");
        let r = wait_finished(&store, big, Duration::from_secs(60)).await;
        assert_eq!(r.state, RunState::Failed);
        let ti = store.task_instances(big).await.unwrap_or_default();
        let error = ti[0].last_error.clone().unwrap_or_default();
        assert!(
            error.contains("staged data of DAG `big` in dev would be")
                && error.contains("over its limit of 1 MB"),
            "{error}"
        );
        assert_eq!(ti[0].try_number, 1, "a limit is not retried");
        assert!(store.dataset(big, "make", "output").await.ok().flatten().is_none());

        // The DAG's daily MAP API budget: the first export spends it, the next is refused.
        let pull = trigger(&d, "pull");
        assert_eq!(wait_finished(&store, pull, Duration::from_secs(90)).await.state, RunState::Success);
        let again = trigger(&d, "pull");
        assert_eq!(wait_finished(&store, again, Duration::from_secs(60)).await.state, RunState::Failed);
        let error = store.task_instances(again).await.unwrap_or_default()[0]
            .last_error
            .clone()
            .unwrap_or_default();
        assert!(
            error.contains("daily MAP API budget of DAG `pull` in dev is used up"),
            "{error}"
        );

        // Show-back: per DAG, priced at the environment's costs.
        let metrics = store.run_metrics(pull).await.unwrap_or_default();
        let spent: i64 = metrics.iter().map(|(_, m)| m.api_calls.unwrap_or(0)).sum();
        let rows: i64 = metrics.iter().map(|(_, m)| m.rows_out.unwrap_or(0)).sum();
        assert!(rows > 0, "the export read nothing");
        assert!(spent > 2, "the export spent {spent} calls");
        let usage: serde_json::Value = client()
            .get(format!("{base}/api/usage?env=dev&days=7"))
            .bearer_auth(&admin_token)
            .json_answer()
            .await;
        let of = |dag: &str| {
            usage["dags"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["dag_id"] == dag))
                .map(|x| x["usage"].clone())
                .unwrap_or_else(|| panic!("no usage of {dag}: {usage}"))
        };
        let p = of("pull");
        assert_eq!(p["api_calls"].as_i64(), Some(spent), "{usage}");
        assert_eq!(p["rows_moved"].as_i64(), Some(rows), "{usage}");
        assert!(p["storage_bytes_now"].as_i64().unwrap_or(0) > 0, "{usage}");
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let cost = f(&p, "api_calls") * 0.01
            + f(&p, "runtime_hours") * 3.6
            + f(&p, "storage_gb_days") * 1.0
            + f(&p, "rows_moved") / 1e6 * 2.0;
        assert!((f(&p, "cost") - cost).abs() < 1e-9, "{p}");
        assert!(f(&of("first"), "runtime_hours") * 3600.0 >= 3.9, "{usage}");
        assert_eq!(usage["costs"]["currency"], "EUR");
        let total = f(&usage["total"], "cost");
        let summed: f64 = usage["dags"]
            .as_array()
            .map(|a| a.iter().map(|x| f(&x["usage"], "cost")).sum())
            .unwrap_or(0.0);
        assert!((total - summed).abs() < 1e-9 && total > 0.0, "{usage}");
        let page = session.get("/usage?env=dev&days=7").await;
        for dag in ["first", "second", "big", "pull"] {
            assert!(page.body.contains(&format!("data-dag=\"{dag}\"")), "{dag}: {}", page.body);
        }
        assert!(page.body.contains("€") && page.body.contains("id=\"usage-total\""), "{}", page.body);
        map.shutdown().await;
    });
}

#[test]
fn a_returns_receipt_is_kept_even_over_the_staged_data_limit() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let dag = |limit: Option<i64>| {
        let limits = limit
            .map(|b| format!("limits: {{ staged_bytes: {b} }}\n"))
            .unwrap_or_default();
        format!(
            "id: push_back\n{limits}tasks:\n  - id: scores\n    sql: \"create table {{{{ output }}}} as select g as id, 7 as \\\"leadScore\\\" from generate_series(1, 50) g\"\n\
             \x20 - id: push\n    depends_on: [scores]\n    return: {{ object: leads, lookup: id, fields: [leadScore] }}\n"
        )
    };
    rt.block_on(async {
        let map = start_sandbox(400, 6, CLIENT_ID, SECRET, FaultProfile::default()).await;
        ws.map_environment(&map.base_url(), CLIENT_ID, SECRET, None);
        ws.dag("push_back", &dag(None));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        add_user(&d, "admin", "admin");
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "push_back").await;
        // A first run, without a limit, tells the sizes.
        let first = trigger(&d, "push_back");
        assert_eq!(
            wait_finished(&store, first, Duration::from_secs(60))
                .await
                .state,
            RunState::Success
        );
        let sizes: Vec<(String, i64)> =
            sqlx::query_as("select kind, bytes from dataset where run_id = $1")
                .bind(first)
                .fetch_all(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let size = |kind: &str| {
            sizes
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, b)| *b)
                .unwrap_or_else(|| panic!("no {kind}: {sizes:?}"))
        };
        let (output, receipt, plan) = (size("output"), size("receipt"), size("plan"));
        assert!(output > 0 && receipt > 0 && plan > 0, "{sizes:?}");
        // Room for the first run's data (its return's plan too) and the next output, not for
        // the next receipt too.
        let version = store
            .dag_env("push_back", "dev")
            .await
            .map(|de| de.version_id)
            .ok();
        ws.dag(
            "push_back",
            &dag(Some(2 * output + plan + receipt + receipt / 2)),
        );
        eventually("the limit to be read", Duration::from_secs(20), || async {
            let now = store.dag_env("push_back", "dev").await.ok()?.version_id;
            (Some(now) != version).then_some(())
        })
        .await;
        let second = trigger(&d, "push_back");
        let r = wait_finished(&store, second, Duration::from_secs(60)).await;
        let errors: Vec<Option<String>> = store
            .task_instances(second)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.last_error)
            .collect();
        assert_eq!(r.state, RunState::Success, "{errors:?}");
        assert!(
            store
                .dataset(second, "push", "receipt")
                .await
                .ok()
                .flatten()
                .is_some(),
            "the receipt was dropped"
        );
        map.shutdown().await;
    });
}
