//! Drover in a real headless Chromium: a business user (viewer) logs in, reads run history
//! and why a run failed, and has no way to change anything; an operator triggers a run and
//! watches it (and its log) finish live; an admin promotes into PROD and a second admin
//! approves; logging out ends the session.
//!
//! Set DROVER_SCREENSHOTS to a folder to keep screenshots of the main pages there
//! (`DROVER_SCREENSHOTS=docs/screenshots` refreshes the ones README shows).

mod support;

use std::time::Duration;

use support::browser::{Browser, screenshots_dir as shots};
use support::gitrepo::{commit, git};
use support::web::{add_user, start_web};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

async fn log_in(b: &Browser, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/login")).await;
    b.find("#name").await.type_text(name).await;
    b.find("#password").await.type_text(password).await;
    b.find("#login").await.click().await;
    b.wait_for_url("/dags", LONG).await;
    let who = b.find("#whoami").await.text().await;
    assert_eq!(who, name);
}

async fn log_out(b: &Browser, base: &str) {
    b.find("#logout").await.click().await;
    b.wait_for_url("/login", LONG).await;
    // The session is gone: pages send you back to the login form.
    b.goto(&format!("{base}/dags")).await;
    b.wait_for_url("/login?next=", LONG).await;
    assert!(b.exists("#password").await);
}

#[test]
fn a_viewer_reads_history_an_operator_runs_a_dag_live() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "lead_scoring",
        "id: lead_scoring\ndescription: Score leads touched yesterday and write the score back to the MAP\nowner: marketing-ops@example.com\ntags: [scoring, daily]\nschedule: \"0 2 * * *\"\ntimezone: America/New_York\nparams: { who: { type: string, default: world } }\ntasks:\n  - id: export_leads\n    command: { shell: \"echo exporting; sleep 1; echo 1200 leads\" }\n  - id: score\n    depends_on: [export_leads]\n    command: { shell: \"echo scoring {{ params.who }}; sleep 3; echo scored\" }\n  - id: push_scores\n    depends_on: [score]\n    command: { shell: \"echo pushed\" }\n",
    );
    ws.dag(
        "crm_sync",
        "id: crm_sync\ndescription: Match contacts to CRM leads\ntags: [crm]\nschedule: \"30 * * * *\"\ntasks:\n  - id: match\n    retries: 0\n    command: { shell: \"echo matching; echo 'CRM lookup refused: 401 invalid token' >&2; exit 2\" }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let admin = add_user(&d, "admin", "admin");
    let vera = add_user(&d, "vera", "viewer");
    let otto = add_user(&d, "otto", "operator");
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    runtime().block_on(async {
        let store = db.store().await;
        support::synced(&store, "crm_sync").await;
        // History to read: a failed run and a successful one.
        let failed = d.ok(&[
            "runs", "trigger", "crm_sync", "--env", "dev", "--as", "admin",
        ]);
        let good = d.ok(&[
            "runs",
            "trigger",
            "lead_scoring",
            "--env",
            "dev",
            "--as",
            "admin",
        ]);
        for id in [&failed, &good] {
            let id = Uuid::parse_str(id).unwrap_or_else(|e| panic!("{e}"));
            eventually("the run to finish", LONG, || async {
                store.get_run(id).await.ok()?.finished_at.map(|_| ())
            })
            .await;
        }
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        let dir = shots();

        // The viewer: log in, see the DAGs, the failed run and its reason; nothing to press.
        b.goto(&format!("{base}/dags")).await;
        b.wait_for_url("/login?next=", LONG).await;
        b.screenshot(dir.join("login.png")).await;
        log_in(&b, &base, "vera", &vera).await;
        let row = b.find("tr[data-dag=crm_sync]").await.text().await;
        assert!(row.contains("failed"), "{row}");
        assert!(row.contains("every hour at minute 30"), "{row}");
        let row = b.find("tr[data-dag=lead_scoring]").await.text().await;
        assert!(row.contains("succeeded"), "{row}");
        assert!(row.contains("every day at 02:00, New York time"), "{row}");
        b.screenshot(dir.join("dags.png")).await;
        assert!(
            b.find_all("main form[method=post]").await.is_empty(),
            "a viewer sees forms on the DAGs page"
        );
        b.find("tr[data-dag=crm_sync] a.strong").await.click().await;
        b.wait_for_url("/dags/crm_sync", LONG).await;
        assert!(!b.exists("#trigger-form").await, "a viewer can trigger");
        assert!(!b.exists("#operate").await);
        b.find(&format!("#runs a[href='/runs/{failed}']"))
            .await
            .click()
            .await;
        b.wait_for_url(&format!("/runs/{failed}"), LONG).await;
        let why = b.find("#failures").await.text().await;
        assert!(why.contains("match failed"), "{why}");
        assert!(
            why.contains("CRM lookup refused: 401 invalid token"),
            "{why}"
        );
        assert!(
            b.find_all("main form[method=post]").await.is_empty(),
            "a viewer sees operation forms on a run"
        );
        b.screenshot(dir.join("run-failed.png")).await;
        b.goto(&format!("{base}/dags/lead_scoring?env=dev")).await;
        b.find("#runs").await;
        b.screenshot(dir.join("dag.png")).await;
        log_out(&b, &base).await;

        // The operator: trigger with a parameter, then watch the run finish without reloading.
        log_in(&b, &base, "otto", &otto).await;
        b.goto(&format!("{base}/dags/lead_scoring?env=dev")).await;
        b.find("#trigger-form input[name='param.who']")
            .await
            .type_text("browser")
            .await;
        b.find("#trigger").await.click().await;
        let url = b.wait_for_url("/runs/", LONG).await;
        assert!(
            b.find("#notice")
                .await
                .text()
                .await
                .contains("Run triggered")
        );
        // Mark the page: a reload by the test would lose it, JavaScript's final reload too,
        // so the state is checked to change before that.
        b.execute("window.__watched = true;", &[]).await;
        b.wait_for_text("#run-state", "running", LONG).await;
        let still_same_page = b.execute("return window.__watched === true;", &[]).await;
        assert_eq!(
            still_same_page,
            serde_json::json!(true),
            "the page reloaded before the run moved"
        );
        b.wait_for_text("#run-state", "succeeded", LONG).await;
        let tasks = b.find("#tasks").await.text().await;
        assert_eq!(tasks.matches("succeeded").count(), 3, "{tasks}");
        b.screenshot(dir.join("run.png")).await;
        let run_id = url
            .split("/runs/")
            .nth(1)
            .and_then(|s| s.split('?').next())
            .unwrap_or_default()
            .to_owned();
        let row = store
            .get_run(Uuid::parse_str(&run_id).unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.triggered_by.as_deref(), Some("otto"));

        // A running task's log grows on the page.
        let id = d.ok(&[
            "runs",
            "trigger",
            "lead_scoring",
            "--env",
            "dev",
            "--as",
            "admin",
        ]);
        let rid = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}"));
        eventually("the score task to run", LONG, || async {
            let tis = store.task_instances(rid).await.ok()?;
            tis.iter()
                .any(|t| t.task_id == "score" && t.state.0.as_str() == "running")
                .then_some(())
        })
        .await;
        b.goto(&format!("{base}/runs/{id}/tasks/score")).await;
        b.find("#live").await;
        b.wait_for_text("#log", "scored", LONG).await;
        b.wait_for_text("#task-state", "succeeded", LONG).await;
        b.screenshot(dir.join("task-log.png")).await;
        log_out(&b, &base).await;
        drop(admin);
    });
}

#[test]
fn an_admin_promotes_to_prod_and_a_second_admin_approves() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    std::fs::write(
        ws.environments().join("prod.yaml"),
        "name: prod\norder: 2\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\npromotion:\n  allowed_roles: [admin]\n  require_approval: true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let c1 = commit(
        r,
        &[(
            "dags/hello.yaml",
            Some("id: hello\ntasks:\n  - id: a\n    noop: {}\n"),
        )],
        "first",
    );
    let d = Drover { db: &db, ws: &ws };
    let repo_path = r.display().to_string();
    d.ok(&["--repo", &repo_path, "repo", "sync"]);
    let _admin = add_user(&d, "admin", "admin");
    let ada = add_user(&d, "ada", "admin");
    let bob = add_user(&d, "bob", "admin");
    runtime().block_on(async {
        let store = db.store().await;
        let (_web, base) =
            start_web(&d, &["--repo", &repo_path, "--repo-cache", "web-repos"]).await;
        let b = Browser::start().await;
        log_in(&b, &base, "ada", &ada).await;
        b.goto(&format!("{base}/environments")).await;
        let dev = b.find("#env-dev .commit").await.text().await;
        assert_eq!(dev, &c1[..10]);
        // Confirmation dialogs are answered yes.
        b.execute("window.confirm = () => true;", &[]).await;
        b.find("#promote-prod").await.click().await;
        b.wait_for_text("#notice", "waits for a second person", LONG)
            .await;
        let pending = b.find("#pending-prod").await.text().await;
        assert!(pending.contains("ada asked to promote"), "{pending}");
        assert!(
            !b.exists("#approve-prod").await,
            "the requester can approve their own promotion"
        );
        b.screenshot(shots().join("environments.png")).await;
        assert!(
            store
                .current_deployment("prod")
                .await
                .unwrap_or_default()
                .is_none()
        );
        log_out(&b, &base).await;

        log_in(&b, &base, "bob", &bob).await;
        b.goto(&format!("{base}/environments")).await;
        b.find("#approve-prod").await.click().await;
        b.wait_for_text("#notice", "approved and applied", LONG)
            .await;
        let prod = b.find("#env-prod .commit").await.text().await;
        assert_eq!(prod, &c1[..10]);
        let dep = store
            .current_deployment("prod")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("prod runs nothing"));
        assert_eq!(
            (dep.actor.as_str(), dep.approved_by.as_deref()),
            ("ada", Some("bob"))
        );
        log_out(&b, &base).await;
    });
}
