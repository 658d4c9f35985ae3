//! Runs tell the truth: a run whose `severity: fail` check failed is failed although an
//! `all_done` task ran after it (and `runs wait` says so); a run with a warn check out of
//! bounds and a rejected row succeeds with two warnings, said the same way in its sentence,
//! `runs show`, the API, `/metrics`, the pages and a `warnings` notification; a return that
//! had nothing to send says so instead of "accepted every row". Real scheduler, worker and
//! web processes, real Postgres, the MAP sandbox over HTTP, a real webhook receiver.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_store::RunState;
use support::web::{JsonAnswer, add_user, client, login, start_web, token};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, start_sandbox, synced,
    wait_finished,
};
use uuid::Uuid;

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver keeping every body it is posted.
async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    got.lock().unwrap_or_else(|e| e.into_inner()).push(body);
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got, server)
}

const GUARDED: &str = r#"id: guarded
tasks:
  - id: missing_ratio
    retries: 0
    check: { sql: "select 0.56", max: 0.02, severity: fail }
  - id: tell_sales_ops
    depends_on: [missing_ratio]
    trigger_rule: all_done
    command: { argv: [echo, told] }
"#;

const WARNED: &str = r#"id: warned
tasks:
  - id: picks
    sql: |
      create table {{ output }} as
      select * from (values (1::bigint, 11::bigint), (987654321::bigint, 5::bigint)) v(id, "leadScore")
  - id: push
    depends_on: [picks]
    retries: 0
    return: { object: leads, lookup: id, fields: [leadScore] }
  - id: volume_check
    check: { sql: "select 7", min: 100, severity: warn }
"#;

const EMPTY: &str = r#"id: empty_return
tasks:
  - id: picks
    sql: |
      create table {{ output }} as select 1::bigint as id, 2::bigint as "leadScore" where false
  - id: push
    depends_on: [picks]
    return: { object: leads, lookup: id, fields: [leadScore] }
"#;

const TODAY: &str = r#"id: daily
schedule: "0 2 * * *"
tasks:
  - id: step
    noop: {}
"#;

fn shown(d: &Drover<'_>, run: Uuid) -> serde_json::Value {
    serde_json::from_str(&d.ok(&["runs", "show", &run.to_string(), "--format", "json"]))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(run: &serde_json::Value) -> Vec<String> {
    run["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn failed_checks_fail_runs_and_warnings_are_told_everywhere() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(50, 3, "outcomes", "outcomes-secret", Default::default()).await;
        ws.map_environment(&map.base_url(), "outcomes", "outcomes-secret", None);
        let dev = ws.environments().join("dev.yaml");
        let mut text = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
        text.push_str("notifications:\n  - name: ops\n    webhook: { env: TEST_HOOK }\n    on: [warnings, failure]\n");
        std::fs::write(&dev, text).unwrap_or_else(|e| panic!("{e}"));
        ws.dag("guarded", GUARDED);
        ws.dag("warned", WARNED);
        ws.dag("empty_return", EMPTY);
        ws.dag("daily", TODAY);
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let password = add_user(&d, "admin", "admin");
        let api_token = token(&d, "admin");
        let (hook, got, server) = receiver().await;
        let _s = d.spawn_with(
            "scheduler",
            &["scheduler", "--tick-ms", "200", "--sync-secs", "1"],
            &[("TEST_HOOK", &hook)],
        );
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        for dag in ["guarded", "warned", "empty_return", "daily"] {
            synced(&store, dag).await;
        }
        let trigger = |dag: &str| {
            Uuid::parse_str(&d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]))
                .unwrap_or_else(|e| panic!("{e}"))
        };

        // Red: the failed check fails the run though the all_done task after it ran.
        let guarded = trigger("guarded");
        let wait = d.run(&["runs", "wait", &guarded.to_string(), "--timeout", "60"]);
        assert_eq!(wait.status.code(), Some(1), "{wait:?}");
        let row = wait_finished(&store, guarded, Duration::from_secs(5)).await;
        assert_eq!(row.state, RunState::Failed);
        let tis = store.task_instances(guarded).await.unwrap_or_default();
        let tell = tis.iter().find(|t| t.task_id == "tell_sales_ops");
        assert_eq!(tell.map(|t| t.state.0.as_str()), Some("success"), "{tis:?}");
        let g = shown(&d, guarded);
        assert_eq!(g["run"]["outcome"], "failed");
        assert_eq!(g["run"]["summary"], "Missing ratio check: failed");

        // Amber: a warn check out of bounds and a rejected row.
        let warned = trigger("warned");
        let row = wait_finished(&store, warned, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}");
        let w = shown(&d, warned);
        assert_eq!(w["run"]["outcome"], "warning", "{w}");
        assert_eq!(
            w["run"]["summary"],
            "1 lead updated in Marketo · 1 rejected · volume check: warning",
            "{w}"
        );
        assert_eq!(kinds(&w["run"]), ["check_warning", "rejected_rows"], "{w}");
        let messages = w["run"]["problems"].to_string();
        assert!(messages.contains("7 is not at least 100"), "{messages}");
        assert!(messages.contains("1 of the records `push` sent was rejected"), "{messages}");
        let text = d.ok(&["runs", "show", &warned.to_string()]);
        assert!(text.contains("state:     succeeded with 2 warnings"), "{text}");
        assert!(text.contains("warning:   check `volume_check` warned"), "{text}");

        // Nothing to send: said as such, not as "accepted every row".
        let empty = trigger("empty_return");
        let row = wait_finished(&store, empty, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}");
        let e = shown(&d, empty);
        assert_eq!(e["run"]["summary"], "Nothing to send to Marketo");
        assert_eq!(e["run"]["outcome"], "success");

        // A manual run for today covers today's whole interval, which has not ended: it
        // succeeds with a warning that it saw only part of its data.
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let partial = Uuid::parse_str(&d.ok(&[
            "runs", "trigger", "daily", "--env", "dev", "--as", "admin", "--logical-date", &today,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let row = wait_finished(&store, partial, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}");
        assert!(row.interval_end > row.started_at.unwrap_or_default(), "{row:?}");
        let p = shown(&d, partial);
        assert_eq!(p["run"]["outcome"], "warning", "{p}");
        assert_eq!(kinds(&p["run"]), ["partial_interval"], "{p}");
        assert!(
            p["run"]["problems"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("the run started before its data interval ended"),
            "{p}"
        );
        // A run two days back covers a finished interval: no such warning.
        let earlier = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
        let whole = Uuid::parse_str(&d.ok(&[
            "runs", "trigger", "daily", "--env", "dev", "--as", "admin", "--logical-date", &earlier,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        wait_finished(&store, whole, Duration::from_secs(60)).await;
        assert_eq!(shown(&d, whole)["run"]["outcome"], "success");

        // The API and /metrics say the same.
        let (_web, base) = start_web(&d, &[]).await;
        let api = client()
            .get(format!("{base}/api/runs/{warned}"))
            .bearer_auth(&api_token)
            .json_answer()
            .await;
        assert_eq!(api["run"]["outcome"], "warning", "{api}");
        assert_eq!(kinds(&api["run"]), ["check_warning", "rejected_rows"]);
        assert_eq!(api["run"]["summary"], w["run"]["summary"]);
        let listed = client()
            .get(format!("{base}/api/dags/warned/runs?env=dev"))
            .bearer_auth(&api_token)
            .json_answer()
            .await;
        assert_eq!(listed["runs"][0]["outcome"], "warning", "{listed}");
        let metrics = client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        assert!(
            metrics.contains("drover_runs_with_warnings{environment=\"dev\"} 2\n"),
            "{metrics}"
        );

        // The pages: amber with the count, the sentence, the warnings; red for the failed check.
        let session = login(&base, "admin", &password).await;
        let page = session.get(&format!("/runs/{warned}")).await;
        assert!(page.body.contains("state-warning"), "{}", page.body);
        assert!(page.body.contains("succeeded with 2 warnings"));
        assert!(page.body.contains("1 lead updated in Marketo · 1 rejected · volume check: warning"));
        assert!(page.body.contains("id=\"warnings\""));
        let page = session.get(&format!("/runs/{guarded}")).await;
        assert!(page.body.contains("state-failed"), "{}", page.body);
        let page = session.get(&format!("/runs/{empty}")).await;
        assert!(page.body.contains("Nothing was sent to Marketo"), "{}", page.body);
        assert!(!page.body.contains("accepted every"));
        let page = session.get("/dags?env=dev").await;
        assert!(page.body.contains("succeeded with 2 warnings"), "{}", page.body);
        let page = session.get("/runs?env=dev").await;
        assert!(page.body.contains("Missing ratio check: failed"), "{}", page.body);

        // Told once as `warnings`, with the sentence; the failed run as a failure.
        let bodies = eventually("the notifications", Duration::from_secs(30), || async {
            let b = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let events: Vec<String> = b
                .iter()
                .map(|x| x["drover"]["event"].as_str().unwrap_or_default().to_owned())
                .collect();
            (events.contains(&"warnings".to_owned()) && events.contains(&"failure".to_owned()))
                .then_some(b)
        })
        .await;
        let warning = bodies
            .iter()
            .find(|b| b["drover"]["event"] == "warnings")
            .cloned()
            .unwrap_or_default();
        assert_eq!(warning["drover"]["dag_id"], "warned");
        assert_eq!(warning["drover"]["summary"], w["run"]["summary"]);
        assert_eq!(warning["drover"]["warnings"].as_array().map(Vec::len), Some(2));
        assert!(
            warning["text"]
                .as_str()
                .unwrap_or_default()
                .contains("warned succeeded with warnings in dev: 1 lead updated in Marketo"),
            "{warning}"
        );
        let failure = bodies
            .iter()
            .find(|b| b["drover"]["event"] == "failure")
            .cloned()
            .unwrap_or_default();
        assert_eq!(failure["drover"]["dag_id"], "guarded");
        assert!(
            bodies
                .iter()
                .all(|b| b["drover"]["dag_id"] != "empty_return"),
            "{bodies:?}"
        );
        server.abort();
        map.shutdown().await;
    });
}
