//! Record history end to end: real `drover` scheduler, worker and web processes, a real
//! Postgres and the MAP sandbox over HTTP. A lead is changed by one run, changed again by a
//! second, left as it is by a third, and the second is reverted: `drover records history`,
//! the API and the Records page show the three runs (and the revert) newest first with each
//! field's old → new value, the receipt's status and the reverted mark; by email in another
//! case and by Marketo id; and a viewer never sees PROD's values.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::tasks::trigger;
use support::web::{add_user, api, login, start_web, token};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
const SECRET: &str = "history-secret-7e1f";

fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A return keyed on email of one row: the lead `email` gets `leadScore` `score`.
const DAG: &str = r#"id: scores
defaults: { retries: 0 }
params:
  email: { type: string, default: "" }
  score: { type: integer, default: 0 }
tasks:
  - id: rows
    sql: |
      create table {{ output }} as select {{ params.email }}::text as email, {{ params.score }}::int as "leadScore"
  - id: push
    depends_on: [rows]
    return: { object: leads, lookup: email, fields: [leadScore], mode: sync }
"#;

/// A new lead in the sandbox holding `fields`; its Marketo id.
async fn place_lead(base: &str, fields: Value) -> i64 {
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/_sandbox/leads"))
        .json(&fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    answer["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id: {answer}"))
}

async fn lead(base: &str, id: i64) -> Value {
    reqwest::get(format!("{base}/_sandbox/leads/{id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `drover records history … --json`, parsed.
fn history(d: &Drover<'_>, env: &str, record: &str, who: &str) -> Value {
    let out = d.ok(&[
        "records", "history", "--env", env, record, "--json", "--as", who,
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A touch as (run, status, [(field, old, new)], reverted), to compare at a glance.
fn summary(t: &Value) -> (String, String, Vec<(String, Value, Value)>, bool) {
    let changes = t["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or_default().to_owned(),
                c["old"].clone(),
                c["new"].clone(),
            )
        })
        .collect();
    (
        t["run_id"].as_str().unwrap_or_default().to_owned(),
        t["status"].as_str().unwrap_or_default().to_owned(),
        changes,
        t["reverted"].as_bool().unwrap_or_default(),
    )
}

fn change(field: &str, old: &str, new: &str) -> (String, Value, Value) {
    (field.to_owned(), json!(old), json!(new))
}

#[test]
fn record_history_across_three_runs_and_a_revert() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(20, 21, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, None);
        // PROD on the same sandbox, its rows for operators only.
        let dev = std::fs::read_to_string(ws.environments().join("dev.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            ws.environments().join("prod.yaml"),
            dev.replace("name: dev\norder: 1\nbranch: main\n", "name: prod\norder: 2\n")
                + "rows_visible_to: operator\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ws.dag("scores", DAG);
        let ann = place_lead(&base, json!({ "email": "ann.history@example.com", "leadScore": 5 })).await;
        let pia = place_lead(&base, json!({ "email": "pia.prod@example.com", "leadScore": 1 })).await;
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "scores").await;
        support::tasks::synced_in(&store, "scores", "prod").await;

        // Three runs on the same lead, its email written otherwise each time: 5 → 10, 10 → 20,
        // then 20 again (unchanged, not sent).
        let mut runs = Vec::new();
        for (email, score) in [
            ("  Ann.History@Example.com ", "10"),
            ("ann.history@example.com", "20"),
            ("ANN.HISTORY@EXAMPLE.COM", "20"),
        ] {
            let run = trigger(&d, "scores", "dev", &[&format!("email={email}"), &format!("score={score}")]);
            let row = support::wait_finished(&store, run, Duration::from_secs(120)).await;
            assert_eq!(
                row.state,
                drover_store::RunState::Success,
                "{row:?}\n{:?}\n{:?}",
                support::tasks::task_log(&store, run, "rows").await,
                support::tasks::task_log(&store, run, "push").await
            );
            runs.push(run);
        }
        assert_eq!(lead(&base, ann).await["leadScore"].as_i64(), Some(20));
        let prod_run = trigger(&d, "scores", "prod", &["email=pia.prod@example.com", "score=77"]);
        let row = support::wait_finished(&store, prod_run, Duration::from_secs(120)).await;
        assert_eq!(row.state, drover_store::RunState::Success, "{row:?}\n{}", w.log());

        // The second run is reverted: the lead's score goes back to 10.
        let out = d.ok(&["tasks", "revert", &runs[1].to_string(), "push", "--wait"]);
        assert!(out.contains("restored 1 record(s)"), "{out}");
        assert_eq!(lead(&base, ann).await["leadScore"].as_i64(), Some(10));
        let job = store
            .latest_revert(runs[1], "push")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no revert job"));

        // One touch per receipt row, written with the receipt.
        for run in &runs {
            let receipt = store.dataset(*run, "push", "receipt").await.unwrap_or_else(|e| panic!("{e}"));
            let touches: i64 =
                sqlx::query_scalar("select count(*) from record_touch where run_id = $1 and revert_job is null")
                    .bind(run)
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(Some(touches), receipt.map(|r| r.row_count), "run {run}");
        }

        // No environment's SQL role can read the history (lead data of every run).
        let staging = drover_store::StagingPools::new(store.clone(), 1);
        for env in ["dev", "prod"] {
            let pool = staging.pool(env).unwrap_or_else(|e| panic!("{e}"));
            let read = sqlx::query_scalar::<_, i64>("select count(*) from public.record_touch")
                .fetch_one(&pool)
                .await;
            let err = read.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("permission denied"), "{env}'s SQL role read the history: {err}");
        }

        add_user(&d, "admin", "admin");
        let otto_pw = add_user(&d, "otto", "operator");
        let vera_pw = add_user(&d, "vera", "viewer");

        // The CLI: newest first, the revert's own write on top, then run 3, 2 and 1.
        let h = history(&d, "dev", "email= ANN.History@example.com", "admin");
        assert_eq!(h["field"], "email");
        assert_eq!(h["value"], "ann.history@example.com");
        assert_eq!(h["more"], false);
        let touches = h["touches"].as_array().cloned().unwrap_or_default();
        let got: Vec<_> = touches.iter().map(summary).collect();
        let id = |r: Uuid| r.to_string();
        assert_eq!(
            got,
            vec![
                (id(runs[1]), "reverted".to_owned(), vec![change("leadScore", "20", "10")], false),
                (id(runs[2]), "unchanged".to_owned(), vec![], false),
                (id(runs[1]), "updated".to_owned(), vec![change("leadScore", "10", "20")], true),
                (id(runs[0]), "updated".to_owned(), vec![change("leadScore", "5", "10")], false),
            ],
            "{h:#}"
        );
        assert_eq!(touches[0]["revert_job"], json!(job.id));
        assert_eq!(touches[2]["reverted_by_job"], json!(job.id));
        assert!(touches[2]["reverted_at"].is_string(), "{:#}", touches[2]);
        for t in &touches {
            assert_eq!(t["dag_id"], "scores");
            assert_eq!(t["task_id"], "push");
            assert_eq!(t["map_id"], json!(ann));
            assert_eq!(t["key"], "ann.history@example.com");
        }
        let when: Vec<&str> = touches.iter().filter_map(|t| t["when"].as_str()).collect();
        let mut sorted = when.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(when, sorted, "newest first");

        // By Marketo id, the same history; --limit keeps the newest and says there is more.
        let by_id = history(&d, "dev", &format!("id={ann}"), "admin");
        assert_eq!(by_id["touches"], h["touches"], "{by_id:#}");
        let limited: Value = serde_json::from_str(&d.ok(&[
            "records", "history", "--env", "dev", "ann.history@example.com", "--json", "--limit", "2", "--as", "admin",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limited["touches"].as_array().map(Vec::len), Some(2));
        assert_eq!(limited["more"], true);

        // The text: a line per field with old → new, the status, and the reverted mark.
        let text = d.ok(&["records", "history", "--env", "dev", "email=ann.history@example.com", "--as", "admin"]);
        assert!(
            text.starts_with("lead with email = ann.history@example.com in dev: 4 touches by 3 runs, newest first"),
            "{text}"
        );
        assert!(text.contains("leadScore  10 → 20"), "{text}");
        assert!(text.contains("leadScore  5 → 10"), "{text}");
        assert!(text.contains(&format!("(revert job {})", job.id)), "{text}");
        assert!(text.contains("already held every value: nothing sent"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let at = |run: Uuid, status: &str| {
            lines
                .iter()
                .position(|l| l.contains(&run.to_string()) && l.contains(status))
                .unwrap_or_else(|| panic!("no line for {run} {status}: {text}"))
        };
        assert!(at(runs[2], "unchanged") < at(runs[1], "updated"));
        assert!(at(runs[1], "updated") < at(runs[0], "updated"));
        // Nothing touched: said in words.
        let none = d.ok(&["records", "history", "--env", "dev", "email=nobody@example.com", "--as", "admin"]);
        assert!(
            none.starts_with("no return in dev touched a lead with email = nobody@example.com"),
            "{none}"
        );
        // A search that reads neither as field=value nor as an email fails, saying how.
        let bad = d.run(&["records", "history", "--env", "dev", "ann", "--as", "admin"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("email=ann@example.com"));

        // PROD's history: an operator sees it; a viewer is refused, in the CLI too.
        let p = history(&d, "prod", "email=pia.prod@example.com", "otto");
        let pt = p["touches"].as_array().cloned().unwrap_or_default();
        assert_eq!(pt.len(), 1, "{p:#}");
        assert_eq!(summary(&pt[0]), (id(prod_run), "updated".to_owned(), vec![change("leadScore", "1", "77")], false));
        assert_eq!(pt[0]["map_id"], json!(pia));
        let refused = d.run(&["records", "history", "--env", "prod", "email=pia.prod@example.com", "--as", "vera"]);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("Rows of PROD datasets are visible to operators and admins"), "{err}");
        assert!(!String::from_utf8_lossy(&refused.stdout).contains("77"));

        // The API: the same history; touches null for a viewer in PROD, shown in DEV.
        let (_web, web) = start_web(&d, &[]).await;
        let (ta, tv) = (token(&d, "admin"), token(&d, "vera"));
        let path = |env: &str, q: &str| format!("/api/records/history?env={env}&q={}", q.replace('@', "%40").replace('=', "%3D"));
        let a = api(&web, Method::GET, &path("dev", "ann.history@example.com"), Some(&ta), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let av: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(av["touches"], h["touches"], "{av:#}");
        assert_eq!(av["rows_hidden"], Value::Null);
        let v = api(&web, Method::GET, &path("prod", "email=pia.prod@example.com"), Some(&tv), None).await;
        assert_eq!(v.status, StatusCode::OK, "{}", v.body);
        let vv: Value = serde_json::from_str(&v.body).unwrap_or_default();
        assert_eq!(vv["touches"], Value::Null, "{vv:#}");
        assert!(vv["rows_hidden"].as_str().unwrap_or_default().contains("operators and admins"), "{vv:#}");
        assert!(!v.body.contains("77"), "{}", v.body);
        let vd = api(&web, Method::GET, &path("dev", "email=ann.history@example.com"), Some(&tv), None).await;
        let vdv: Value = serde_json::from_str(&vd.body).unwrap_or_default();
        assert_eq!(vdv["touches"].as_array().map(Vec::len), Some(4), "{}", vd.body);
        let bad = api(&web, Method::GET, &path("dev", "id=abc"), Some(&ta), None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
        let spec = api(&web, Method::GET, "/api/openapi.json", Some(&ta), None).await;
        assert!(spec.body.contains("/api/records/history"), "documented");

        // The page: a bare email finds the history, with links to the runs and the marks.
        let otto = login(&web, "otto", &otto_pw).await;
        let page = otto.get("/records?env=dev&q=Ann.History%40example.com").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("id=\"record-history\""), "{}", page.body);
        for r in &runs {
            assert!(page.body.contains(&format!("href=\"/runs/{r}\"")), "a link to {r}");
        }
        assert_eq!(page.body.matches("class=\"badge state-queued reverted-mark\"").count(), 1, "{}", page.body);
        assert!(page.body.contains("<span class=\"old\">10</span> → <span class=\"new\">20</span>"), "{}", page.body);
        assert!(page.body.contains("unchanged, not sent"));
        assert!(page.body.contains("id=\"find-record\""), "the search box in the top bar");
        // A receipt's emails lead to their history.
        let receipt = otto.get(&format!("/runs/{}/tasks/push/receipt", runs[0])).await;
        let link = receipt
            .body
            .split("<a href=\"")
            .filter_map(|a| a.split_once('"'))
            .find(|(href, rest)| href.starts_with("/records?env=dev") && rest.contains("record-history-link"))
            .map(|(href, _)| href.replace("&amp;", "&"))
            .unwrap_or_else(|| panic!("no link to the record's history: {}", receipt.body));
        let followed = otto.get(&link).await;
        assert!(followed.body.contains("4 touches by 3 runs"), "{link}: {}", followed.body);
        let empty = otto.get("/records?env=dev&q=email%3Dnobody%40example.com").await;
        assert!(empty.body.contains("No return in dev touched a lead with email = nobody@example.com"), "{}", empty.body);
        let start = otto.get("/records").await;
        assert!(start.body.contains("id=\"record-start\""), "{}", start.body);
        let vera = login(&web, "vera", &vera_pw).await;
        let hidden = vera.get("/records?env=prod&q=pia.prod%40example.com").await;
        assert_eq!(hidden.status, StatusCode::OK);
        assert!(hidden.body.contains("id=\"record-hidden\""), "{}", hidden.body);
        assert!(!hidden.body.contains("id=\"record-history\""), "{}", hidden.body);
        assert!(!hidden.body.contains("<span class=\"new\">77</span>"), "{}", hidden.body);
        let shown = otto.get("/records?env=prod&q=pia.prod%40example.com").await;
        assert!(shown.body.contains("<span class=\"new\">77</span>"), "{}", shown.body);
        // The top bar's search looks in the environment of the page it is on.
        let top = shown.body.split("class=\"record-find\"").nth(1).unwrap_or_default();
        let top = top.split("</form>").next().unwrap_or_default();
        assert!(top.contains("name=\"env\" value=\"prod\""), "{top}");
        drop(w);
    });
}

/// `scripts/generate-history --touches-per-return` at smoke size: the record history it writes
/// is what the returns would have written, and `drover records history` reads it (the heavy
/// lead touched by every return of the hourly DAG, newest first).
#[test]
fn a_generated_record_history_is_searchable() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/generate-history");
    let out = std::process::Command::new(script)
        .args([
            db.url.as_str(),
            "--runs",
            "4000",
            "--tasks-per-run",
            "2",
            "--dags",
            "20",
            "--touches-per-return",
            "3",
            "--leads",
            "300",
            "--no-vacuum",
        ])
        .output()
        .unwrap_or_else(|e| panic!("generate-history: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total: i64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("record_touch: ")?
                .strip_suffix(" touches in all")
        })
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total: {stdout}"));
    runtime().block_on(async {
        let store = db.store().await;
        let (rows, orphans, heavy): (i64, i64, i64) = sqlx::query_as(
            "select count(*),
                    count(*) filter (where not exists (select 1 from dag_run r where r.id = t.run_id)),
                    count(*) filter (where environment = 'prod' and key = 'lead0000001@example.com')
             from record_touch t",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, total, "{stdout}");
        assert_eq!(orphans, 0);
        // Every successful prod run of dag_0001 touched lead 1.
        let hourly: i64 = sqlx::query_scalar(
            "select count(*) from dag_run where dag_id = 'dag_0001' and environment = 'prod' and state = 'success'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(hourly > 10, "{hourly}");
        assert_eq!(heavy, hourly);
    });
    let h: Value = serde_json::from_str(&d.ok(&[
        "records",
        "history",
        "--env",
        "prod",
        "lead0000001@example.com",
        "--json",
        "--limit",
        "5",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let touches = h["touches"].as_array().cloned().unwrap_or_default();
    assert_eq!(touches.len(), 5, "{h:#}");
    assert_eq!(h["more"], true);
    assert!(
        touches
            .iter()
            .all(|t| t["dag_id"] == "dag_0001" && t["map_id"] == json!(1)),
        "{h:#}"
    );
    let when: Vec<&str> = touches.iter().filter_map(|t| t["when"].as_str()).collect();
    let mut sorted = when.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(when, sorted, "newest first");
    // The same lead by its Marketo id.
    let by_id: Value = serde_json::from_str(&d.ok(&[
        "records", "history", "--env", "prod", "id=1", "--json", "--limit", "5",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by_id["touches"], h["touches"]);
}
