//! Time in the DAG's zone and manual runs for a date, in a real headless Chromium: the DAG page
//! shows the next run by its clock; the trigger form shows the interval a typed date covers
//! before it is sent, keeps what was typed when a value is refused and says why next to the
//! field; the run it starts covers the schedule's whole interval and its parameters are in
//! the audit trail.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use support::browser::Browser;
use support::web::{add_user, start_web};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn a_manual_run_for_a_date_covers_its_whole_day_and_says_so_before_it_is_sent() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "nightly_scores",
        "id: nightly_scores\ndescription: Score yesterday's leads\nschedule: \"0 2 * * *\"\ntimezone: America/New_York\nparams: { limit: { type: integer, default: 10 } }\ntasks:\n  - id: score\n    command: { shell: \"echo scored\" }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let otto = add_user(&d, "otto", "operator");
    let _s = d.scheduler("scheduler");
    runtime().block_on(async {
        let store = db.store().await;
        support::synced(&store, "nightly_scores").await;
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        b.find("#name").await.type_text("otto").await;
        b.find("#password").await.type_text(&otto).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        // The DAGs list and the DAG page give the next run by its clock in New York.
        let next = b
            .find("tr[data-dag=nightly_scores] td.next-run")
            .await
            .text()
            .await;
        assert!(next.contains("02:00 New York"), "{next}");
        b.goto(&format!("{base}/dags/nightly_scores?env=dev")).await;
        let next = b.find("#next-run").await.text().await;
        assert!(next.contains("02:00 New York"), "{next}");
        assert!(
            next.starts_with("tonight ") || next.starts_with("tomorrow "),
            "{next}"
        );
        assert!(next.contains(", in "), "{next}");
        let title = b.find("#next-run").await.attr("title").await;
        assert!(
            title.is_some_and(|t| t.ends_with(":00 UTC")),
            "the UTC instant"
        );
        // Pause is a control of its own, not part of the trigger form.
        assert!(!b.exists("#trigger-form #pause-toggle").await);
        assert!(b.exists("#pause-control #pause-toggle").await);

        // A typed date shows the interval it covers before anything is sent.
        b.find("#logical-date").await.type_text("2026-11-20").await;
        b.wait_for_text(
            "#interval-preview",
            "Fri 20 Nov 02:00 → Sat 21 Nov 02:00 New York",
            LONG,
        )
        .await;
        // A refused value: the form comes back with what was typed, the error by the field.
        b.find("#trigger-form input[name='param.limit']")
            .await
            .type_text("lots")
            .await;
        b.find("#trigger").await.click().await;
        let why = b
            .wait_for_text(".param-error", "parameter limit", LONG)
            .await;
        assert!(!why.is_empty());
        let typed = b.find("#logical-date").await.property("value").await;
        assert_eq!(typed, json!("2026-11-20"));
        let limit = b
            .find("#trigger-form input[name='param.limit']")
            .await
            .property("value")
            .await;
        assert_eq!(limit, json!("lots"), "the typed value is kept");
        assert_eq!(
            store
                .runs_page(
                    &drover_store::RunFilter {
                        dag_id: Some("nightly_scores".into()),
                        environment: None,
                        state: None,
                        limit: 10,
                    },
                    None,
                    drover_store::RunOrder::RanAt,
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .iter()
                .filter(|r| r.triggered_by.as_deref() == Some("otto"))
                .count(),
            0,
            "a refused form started a run"
        );
        // A bad date is refused in the preview, too.
        b.find("#logical-date").await.type_text("2026-13-01").await;
        b.wait_for_text("#interval-preview", "neither RFC 3339 nor YYYY-MM-DD", LONG)
            .await;

        // Corrected, it runs the whole day of 20 November in New York.
        b.execute(
            "document.querySelector(\"#trigger-form input[name='param.limit']\").value = '250';\
             document.getElementById('logical-date').value = '2026-11-20';",
            &[],
        )
        .await;
        b.find("#trigger").await.click().await;
        let url = b
            .wait_for_url_matching("the run's page", |u| u.contains("/runs/"), LONG)
            .await;
        let id = url
            .rsplit("/runs/")
            .next()
            .and_then(|rest| rest.split(['?', '#']).next())
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no run id in {url}"));
        let run = store.get_run(id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(run.interval_start, at("2026-11-20T07:00:00Z"));
        assert_eq!(run.interval_end, at("2026-11-21T07:00:00Z"));
        assert_eq!(run.logical_date, at("2026-11-20T07:00:00Z"));
        assert_eq!(run.params, json!({ "limit": 250 }));
        let label = b.find("#run-label").await.text().await;
        assert!(label.contains("data for Fri 20 Nov"), "{label}");
        assert!(label.contains("New York"), "{label}");
        let events = store
            .audit_page(&drover_store::AuditFilter {
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let trigger = events
            .iter()
            .find(|e| e.action == "run.trigger" && e.run_id == Some(id))
            .unwrap_or_else(|| panic!("no run.trigger event in {events:?}"));
        assert_eq!(trigger.details["params"], json!({ "limit": 250 }));
        assert_eq!(trigger.details["logical_date"], json!("2026-11-20"));
    });
}

/// The id of a run started with `drover runs trigger`.
fn trigger(d: &Drover<'_>, dag: &str) -> Uuid {
    let out = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"))
}

#[test]
fn clear_reruns_what_depends_on_a_task_and_a_failed_run_reruns_its_failed_tasks() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "chain",
        "id: chain\ntasks:\n  - id: export\n    command: { shell: \"echo exported\" }\n  - id: score\n    depends_on: [export]\n    command: { shell: \"echo scored\" }\n  - id: push\n    depends_on: [score]\n    command: { shell: \"echo pushed\" }\n  - id: aside\n    command: { shell: \"echo aside\" }\n",
    );
    // Fails on its first run and succeeds on the next: the marker file remembers.
    let marker = std::env::temp_dir().join(format!("drover-flaky-{}", Uuid::new_v4()));
    ws.dag(
        "flaky",
        &format!(
            "id: flaky\ntasks:\n  - id: fetch\n    retries: 0\n    command: {{ shell: \"if [ -e '{m}' ]; then echo second time lucky; else touch '{m}'; echo 'first try fails' >&2; exit 1; fi\" }}\n  - id: load\n    depends_on: [fetch]\n    command: {{ shell: \"echo loaded\" }}\n",
            m = marker.display()
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let otto = add_user(&d, "otto", "operator");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        support::synced(&store, "chain").await;
        support::synced(&store, "flaky").await;
        let chain = trigger(&d, "chain");
        let flaky = trigger(&d, "flaky");
        let done = support::wait_finished(&store, chain, LONG).await;
        assert_eq!(done.state.as_str(), "success");
        let failed = support::wait_finished(&store, flaky, LONG).await;
        assert_eq!(failed.state.as_str(), "failed");
        let tries = |id: Uuid| {
            let store = store.clone();
            async move {
                store
                    .task_instances(id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .into_iter()
                    .map(|t| (t.task_id, (t.state.0.as_str().to_owned(), t.try_number)))
                    .collect::<std::collections::HashMap<_, _>>()
            }
        };
        let before = tries(chain).await;

        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        b.find("#name").await.type_text("otto").await;
        b.find("#password").await.type_text(&otto).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        // Clear on the first task names what runs again with it, and reruns all of it.
        b.goto(&format!("{base}/runs/{chain}")).await;
        // Short values ("1 of 1", "0.4 s") do not wrap mid-word.
        let wrap = b
            .execute(
                "return getComputedStyle(document.querySelector('tr[data-task=export] td.small')).whiteSpace;",
                &[],
            )
            .await;
        assert_eq!(wrap, json!("nowrap"));
        let form = b.find("tr[data-task=export] form[action$='/clear']").await;
        let asked = form.attr("data-confirm").await.unwrap_or_default();
        assert_eq!(
            asked,
            "Run export again, and what depends on it: score, push?"
        );
        b.execute(
            "window.confirm = (m) => { window.localStorage.setItem('asked', m); return true; };",
            &[],
        )
        .await;
        b.find("tr[data-task=export] form[action$='/clear'] button")
            .await
            .click()
            .await;
        b.wait_for_text("#notice", "what depends on it run again", LONG)
            .await;
        let shown = b
            .execute("return window.localStorage.getItem('asked');", &[])
            .await;
        assert_eq!(
            shown,
            json!("Run export again, and what depends on it: score, push?")
        );
        let rerun = support::wait_finished(&store, chain, LONG).await;
        assert_eq!(rerun.state.as_str(), "success");
        let after = tries(chain).await;
        for t in ["export", "score", "push"] {
            assert_eq!(after[t].0, "success", "{t}");
            assert_eq!(after[t].1, before[t].1 + 1, "{t} ran again");
        }
        assert_eq!(
            after["aside"].1, before["aside"].1,
            "aside does not depend on export"
        );

        // A failed run: "Rerun failed tasks" brings it to succeeded.
        b.goto(&format!("{base}/runs/{flaky}")).await;
        assert!(
            !b.exists(&format!("form[action='/runs/{chain}/rerun-failed']"))
                .await
        );
        b.execute("window.confirm = () => true;", &[]).await;
        b.find("#rerun-failed").await.click().await;
        b.wait_for_text(
            "#notice",
            "failed tasks and what depends on them run again",
            LONG,
        )
        .await;
        let ok = support::wait_finished(&store, flaky, LONG).await;
        assert_eq!(ok.state.as_str(), "success", "the rerun succeeded");
        let states = tries(flaky).await;
        assert_eq!(states["fetch"], ("success".to_owned(), 2));
        assert_eq!(states["load"].0, "success");
        // The page follows the run to its end.
        b.wait_for_text("#run-state", "succeeded", LONG).await;
        assert!(
            !b.exists("#rerun-failed").await,
            "a succeeded run offers a rerun"
        );
        let events = store
            .audit_page(&drover_store::AuditFilter {
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rerun = events
            .iter()
            .find(|e| e.action == "run.rerun_failed" && e.run_id == Some(flaky))
            .unwrap_or_else(|| panic!("no run.rerun_failed event in {events:?}"));
        assert_eq!(rerun.details["tasks"], json!(["fetch", "load"]));
        // The runs list says when each run ran, newest first, and sorts by logical date too.
        b.goto(&format!("{base}/runs")).await;
        let labels: Vec<String> = {
            let mut out = Vec::new();
            for cell in b.find_all("#runs td.ran-at").await {
                out.push(cell.text().await);
            }
            out
        };
        assert_eq!(labels.len(), 2, "{labels:?}");
        for l in &labels {
            assert!(l.starts_with("Ran ") && l.contains(" UTC"), "{l}");
        }
        let ran: Vec<DateTime<Utc>> = {
            let mut out = Vec::new();
            for id in [chain, flaky] {
                let r = store.get_run(id).await.unwrap_or_else(|e| panic!("{e}"));
                out.push(r.started_at.unwrap_or(r.created_at));
            }
            out
        };
        let first = b
            .find("#runs tbody tr:first-child td.ran-at a")
            .await
            .attr("href")
            .await
            .unwrap_or_default();
        let newest = if ran[0] > ran[1] { chain } else { flaky };
        assert_eq!(first, format!("/runs/{newest}"), "newest ran first");
        b.find("#sort-logical").await.click().await;
        b.wait_for_url("sort=logical", LONG).await;
        assert_eq!(b.find_all("#runs td.ran-at").await.len(), 2);
        let _ = std::fs::remove_file(&marker);
    });
}
