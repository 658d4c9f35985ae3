//! The record search in a real headless Chromium against real `drover` processes: a lead's
//! email typed into the top bar's search box (in another case) opens its history, newest
//! first with old → new and the reverted mark, each run a link away; an unknown lead gets an
//! empty state that says what to try.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::RunState;
use serde_json::{Value, json};
use support::browser::{Browser, screenshots_dir};
use support::tasks::trigger;
use support::web::{add_user, start_web};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced};

const LONG: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "drover-records";
const SECRET: &str = "records-secret-3b9a";

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

#[test]
fn the_top_bar_search_opens_a_leads_history_with_links_to_its_runs() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    runtime().block_on(async {
        let map = start_sandbox(20, 31, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base_map = map.base_url();
        ws.map_environment(&base_map, CLIENT_ID, SECRET, None);
        ws.dag("scores", DAG);
        let placed: Value = reqwest::Client::new()
            .post(format!("{base_map}/_sandbox/leads"))
            .json(&json!({ "email": "rita.search@example.com", "leadScore": 3 }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(placed["id"].is_i64(), "{placed}");
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "scores").await;
        let mut runs = Vec::new();
        for score in ["30", "60"] {
            let run = trigger(
                &d,
                "scores",
                "dev",
                &["email=rita.search@example.com", &format!("score={score}")],
            );
            let row = support::wait_finished(&store, run, LONG).await;
            assert_eq!(row.state, RunState::Success, "{row:?}");
            runs.push(run);
        }
        let out = d.ok(&["tasks", "revert", &runs[1].to_string(), "push", "--wait"]);
        assert!(out.contains("restored 1 record(s)"), "{out}");
        let otto = add_user(&d, "otto", "operator");
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        b.find("#name").await.type_text("otto").await;
        b.find("#password").await.type_text(&otto).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        // Typed into the top bar, Enter: the history, newest first.
        b.find("#find-record")
            .await
            .type_text("Rita.Search@Example.com\u{e007}")
            .await;
        b.wait_for_url("/records?", LONG).await;
        let rows = b.find_all("#record-history tr.touch").await;
        assert_eq!(rows.len(), 3, "{}", b.page_text().await);
        let summary = b.find("#record-summary").await.text().await;
        assert!(
            summary.contains("email = rita.search@example.com in dev: 3 touches by 2 runs"),
            "{summary}"
        );
        let first = rows[0].text().await;
        assert!(
            first.contains("leadScore: 60 → 30") && first.contains("revert"),
            "{first}"
        );
        let second = rows[1].text().await;
        assert!(
            second.contains("leadScore: 30 → 60") && second.contains("reverted"),
            "{second}"
        );
        let third = rows[2].text().await;
        assert!(
            third.contains("leadScore: 3 → 30") && third.contains("updated"),
            "{third}"
        );
        b.screenshot(screenshots_dir().join("records.png")).await;

        // A run is a click away.
        b.find(&format!("tr.touch[data-run='{}'] a.run-link", runs[0]))
            .await
            .click()
            .await;
        b.wait_for_url(&format!("/runs/{}", runs[0]), LONG).await;

        // An unknown lead: what to try instead.
        b.find("#find-record")
            .await
            .type_text("nobody@example.com\u{e007}")
            .await;
        b.wait_for_url("/records?", LONG).await;
        let empty = b.find("#record-empty").await.text().await;
        assert!(
            empty.contains("No return in dev touched a lead with email = nobody@example.com")
                && empty.contains("Marketo id"),
            "{empty}"
        );
    });
}
