//! In a real headless Chromium, as a viewer: the home page shows prod first, then dev; dev's
//! "Needs attention" lists the failed run and the run that succeeded with a warning, each with
//! its sentence; "Ran today" lists them with their outcome; "Runs next" names the scheduled
//! DAG's next run by its clock; "Stale data" lists the DAG whose data is older than its
//! `freshness` allows in dev (last refreshed 30 h ago); prod, where nothing went wrong and
//! the data is fresh, says so.

mod support;

use std::time::Duration;

use support::browser::{Browser, screenshots_dir as shots};
use support::web::{add_user, start_web};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, synced, wait_finished,
};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

/// Where screenshots go: DROVER_SCREENSHOTS (`docs/screenshots` refreshes README's), else a
/// temporary folder.
#[test]
fn a_viewer_sees_prod_first_and_what_needs_attention_in_dev() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.environment("prod", 2, false);
    ws.dag(
        "crm_gaps",
        "id: crm_gaps\ndescription: Contacts that never reached the CRM\ntasks:\n  - id: missing_ratio\n    retries: 0\n    check: { sql: \"select 0.56\", max: 0.02, severity: fail }\n",
    );
    ws.dag(
        "form_volume",
        "id: form_volume\ndescription: Form fills per day stay in their usual range\ntasks:\n  - id: volume_check\n    check: { sql: \"select 7\", min: 100, severity: warn }\n",
    );
    ws.dag(
        "nightly_scores",
        "id: nightly_scores\ndescription: Score yesterday's leads\nschedule: \"0 2 * * *\"\ntimezone: America/New_York\nfreshness: { max_age: 26h }\ntasks:\n  - id: score\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let vera = add_user(&d, "vera", "viewer");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        for dag in ["crm_gaps", "form_volume", "nightly_scores"] {
            synced(&store, dag).await;
            eventually(&format!("{dag} in prod"), LONG, || async {
                store.dag_env(dag, "prod").await.ok()
            })
            .await;
        }
        let mut runs = Vec::new();
        for dag in ["crm_gaps", "form_volume"] {
            let id = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
            let id = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}"));
            wait_finished(&store, id, LONG).await;
            runs.push(id);
        }
        let (red, amber) = (runs[0], runs[1]);
        // nightly_scores' latest interval ran in dev as soon as it came; the test moves that
        // refresh 30 h back.
        eventually("nightly_scores refreshed in dev", LONG, || async {
            let moved = sqlx::query(
                "update data_refresh set refreshed_at = refreshed_at - interval '30 hours' \
                 where dag_id = 'nightly_scores' and environment = 'dev' and task_id = '' \
                   and refreshed_at > now() - interval '1 hour'",
            )
            .execute(store.pool())
            .await
            .ok()?;
            (moved.rows_affected() == 1).then_some(())
        })
        .await;
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        b.find("#name").await.type_text("vera").await;
        b.find("#password").await.type_text(&vera).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        b.goto(&format!("{base}/")).await;
        assert_eq!(b.title().await, "Home · Drover");
        // Prod first for a viewer.
        let order = b
            .execute(
                "return [...document.querySelectorAll('.home-env')].map(e => e.dataset.env)",
                &[],
            )
            .await;
        assert_eq!(order, serde_json::json!(["prod", "dev"]));

        // Dev: the failed run and the amber run need attention, with their sentences.
        let red_line = format!("#attention-dev li.attention-run[data-run='{red}']");
        assert_eq!(
            text(&b, &format!("{red_line} .run-outcome")).await,
            "failed"
        );
        assert_eq!(
            text(&b, &format!("{red_line} .run-summary")).await,
            "Missing ratio check: failed"
        );
        let amber_line = format!("#attention-dev li.attention-run[data-run='{amber}']");
        assert_eq!(
            text(&b, &format!("{amber_line} .run-outcome.state-warning")).await,
            "succeeded with 1 warning"
        );
        assert_eq!(
            text(&b, &format!("{amber_line} .run-summary")).await,
            "Volume check: warning"
        );
        let link = b.find(&format!("{amber_line} a")).await.attr("href").await;
        assert_eq!(link.as_deref(), Some(format!("/runs/{amber}").as_str()));
        assert!(
            !b.exists("#attention-dev .nothing").await,
            "dev has something"
        );

        // Ran today: both, with their outcome badges and sentences.
        let red_row = format!("#ran-dev tr[data-run='{red}']");
        assert_eq!(
            text(&b, &format!("{red_row} .badge.state-failed")).await,
            "failed"
        );
        let amber_row = format!("#ran-dev tr[data-run='{amber}']");
        assert_eq!(
            text(&b, &format!("{amber_row} .badge.state-warning")).await,
            "succeeded with 1 warning"
        );
        assert_eq!(
            text(&b, &format!("{amber_row} .run-summary")).await,
            "Volume check: warning"
        );

        // Runs next: the scheduled DAG by the clock of its zone; the manual ones are not there.
        let next = b
            .find("#next-dev li[data-dag=nightly_scores] .next-run")
            .await
            .text()
            .await;
        assert!(next.contains("02:00 New York"), "{next}");
        assert!(!b.exists("#next-dev li[data-dag=crm_gaps]").await);

        // Stale data: nightly_scores in dev, in words; prod's data is fresh.
        let stale = "#stale-dev li.stale-line[data-dag=nightly_scores]";
        let words = text(&b, &format!("{stale} .stale-words")).await;
        assert!(
            words.starts_with("Data 30 h old, must be under 26 h (last refreshed ")
                && words.ends_with(" UTC)"),
            "{words}"
        );
        assert_eq!(
            text(&b, "#stale-dev .stale-count").await,
            "1 DAG or task has data older than it should be in DEV"
        );
        assert_eq!(
            text(&b, "#stale-prod .nothing").await,
            "All data in prod is fresh (1 checked against how fresh it must be)."
        );

        // Prod: nothing went wrong there.
        let nothing = b.find("#attention-prod .nothing").await.text().await;
        assert_eq!(nothing, "Nothing needs attention in prod.");
        assert!(!b.exists("#attention-prod li.attention-run").await);
        assert!(b.exists("#next-prod li[data-dag=nightly_scores]").await);
        b.screenshot(shots().join("home.png")).await;
    });
}

async fn text(b: &Browser, css: &str) -> String {
    b.find(css).await.text().await
}
