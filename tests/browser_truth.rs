//! In a real headless Chromium, as a viewer: a run whose `severity: fail` check failed is red
//! although a cleanup task ran after it; a run whose warn check came out of bounds is amber,
//! "succeeded with 1 warning", with its sentence and the warning in words, on the run page,
//! the DAG's history, the runs list and the DAGs list.
//!
//! Set DROVER_SCREENSHOTS to a folder to keep the screenshots (`docs/screenshots` refreshes
//! the ones README shows).

mod support;

use std::time::Duration;

use support::browser::{Browser, screenshots_dir as shots};
use support::web::{add_user, start_web};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, synced, wait_finished};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn a_failed_check_is_red_and_a_warning_is_amber_with_its_sentence() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "crm_gaps",
        "id: crm_gaps\ndescription: Contacts that never reached the CRM\ntasks:\n  - id: missing_ratio\n    retries: 0\n    check: { sql: \"select 0.56\", max: 0.02, severity: fail }\n  - id: notify_sales_ops\n    depends_on: [missing_ratio]\n    trigger_rule: all_done\n    command: { argv: [echo, told] }\n",
    );
    ws.dag(
        "form_volume",
        "id: form_volume\ndescription: Form fills per day stay in their usual range\ntasks:\n  - id: volume_check\n    check: { sql: \"select 7\", min: 100, severity: warn }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let vera = add_user(&d, "vera", "viewer");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        synced(&store, "crm_gaps").await;
        synced(&store, "form_volume").await;
        let mut runs = Vec::new();
        for dag in ["crm_gaps", "form_volume"] {
            let id = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
            let id = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}"));
            wait_finished(&store, id, LONG).await;
            runs.push(id);
        }
        let (red, amber) = (runs[0], runs[1]);
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        let dir = shots();
        b.goto(&format!("{base}/login")).await;
        b.find("#name").await.type_text("vera").await;
        b.find("#password").await.type_text(&vera).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        // The DAGs list: red for the failed check, amber for the warning.
        let row = b.find("tr[data-dag=crm_gaps]").await.text().await;
        assert!(row.contains("failed"), "{row}");
        let badge = b
            .find("tr[data-dag=form_volume] .badge.state-warning")
            .await;
        assert_eq!(badge.text().await, "succeeded with 1 warning");

        // The red run: failed, its sentence names the check, the cleanup task did run.
        b.goto(&format!("{base}/runs/{red}")).await;
        let state = b.find("#run-state").await;
        assert_eq!(state.text().await, "failed");
        assert!(
            state
                .attr("class")
                .await
                .unwrap_or_default()
                .contains("state-failed"),
            "red"
        );
        assert_eq!(
            b.find("#run-summary").await.text().await,
            "Missing ratio check: failed"
        );
        let cleanup = b
            .find("tr[data-task=notify_sales_ops] .task-state")
            .await
            .text()
            .await;
        assert_eq!(cleanup, "succeeded");
        b.screenshot(dir.join("run-failed-check.png")).await;

        // The amber run: its badge, sentence and warning in words.
        b.goto(&format!("{base}/runs/{amber}")).await;
        let state = b.find("#run-state").await;
        assert_eq!(state.text().await, "succeeded with 1 warning");
        assert!(
            state
                .attr("class")
                .await
                .unwrap_or_default()
                .contains("state-warning"),
            "amber"
        );
        assert_eq!(
            b.find("#run-summary").await.text().await,
            "Volume check: warning"
        );
        let warning = b.find("#warnings li.warning").await.text().await;
        assert_eq!(
            warning,
            "check `volume_check` warned: 7 is not at least 100 open volume_check"
        );
        let colour = b
            .execute(
                "return getComputedStyle(document.getElementById('run-state')).backgroundColor",
                &[],
            )
            .await;
        assert_eq!(
            colour.as_str(),
            Some("rgb(255, 243, 220)"),
            "amber background"
        );
        b.screenshot(dir.join("run-warning.png")).await;

        // The DAG's history and the runs list say the same, with the sentence.
        b.goto(&format!("{base}/dags/form_volume?env=dev")).await;
        let line = b
            .find(&format!("#runs tr[data-run='{amber}']"))
            .await
            .text()
            .await;
        assert!(line.contains("succeeded with 1 warning"), "{line}");
        assert!(line.contains("Volume check: warning"), "{line}");
        b.goto(&format!("{base}/runs?env=dev")).await;
        let list = b.find("#runs").await.text().await;
        assert!(list.contains("Missing ratio check: failed"), "{list}");
        assert!(list.contains("succeeded with 1 warning"), "{list}");
    });
}
