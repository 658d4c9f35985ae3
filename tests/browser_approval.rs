//! In a real headless Chromium, as an operator who did not make the change: the home page
//! says a return waits for approval in PROD; its run page shows the plan; "Approve and write"
//! lets the return write (the sandbox receives it only then), and "Reject" with a reason
//! fails the next one with nothing written. The DAG's last committer is not offered Approve.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::{RunState, TaskState};
use support::approvals::{CLIENT_ID, SECRET, Setup, awaiting, processes, sandbox_writes, trigger};
use support::browser::{Browser, screenshots_dir as shots};
use support::web::{add_user, start_web};
use support::{Drover, TestDb, runtime, serial, server_url, start_sandbox, wait_finished};

const LONG: Duration = Duration::from_secs(90);

async fn log_in(b: &Browser, web: &str, name: &str, password: &str) {
    b.delete_all_cookies().await;
    b.goto(&format!("{web}/login")).await;
    b.find("#name").await.type_text(name).await;
    b.find("#password").await.type_text(password).await;
    b.find("#login").await.click().await;
    b.wait_for_url("/dags", LONG).await;
}

#[test]
fn an_operator_approves_a_prod_return_in_the_browser_and_rejects_the_next() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let db = TestDb::new(&server_url());
    runtime().block_on(async {
        let map = start_sandbox(200, 5, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        let setup = Setup::new(&base);
        let repo = setup.repo();
        let d = Drover {
            db: &db,
            ws: &setup.ws,
        };
        d.ok(&["db", "migrate"]);
        add_user(&d, "admin", "admin");
        add_user(&d, "ada", "admin");
        let olga = add_user(&d, "olga", "operator");
        let otto = add_user(&d, "otto", "operator");
        // No notification receiver here: the channel's sends fail quietly.
        let (_s, w) = processes(&d, &repo, "http://127.0.0.1:9/hook");
        let store = db.store().await;
        support::eventually("scoring in prod", LONG, || async {
            store.dag_env("scoring", "prod").await.ok()
        })
        .await;
        let (_web, web) = start_web(&d, &["--repo", &repo]).await;
        let b = Browser::start().await;

        // Request.
        let run = trigger(&d, "scoring");
        awaiting(&store, run, "push_scores").await;
        assert_eq!(sandbox_writes(&base).await, 0);

        // The committer sees why they may not approve, and no Approve button.
        log_in(&b, &web, "olga", &olga).await;
        b.goto(&format!("{web}/runs/{run}")).await;
        let not_you = b.find("#approval-push_scores .not-you").await.text().await;
        assert!(
            not_you.contains("You made the last change to scoring"),
            "{not_you}"
        );
        assert!(!b.exists("#approval-push_scores .approve-return").await);

        b.screenshot(shots().join("approval-committer.png")).await;

        // Another operator: the home page says what waits, and links to it.
        log_in(&b, &web, "otto", &otto).await;
        b.goto(&format!("{web}/")).await;
        b.screenshot(shots().join("approval-home.png")).await;
        let count = b
            .find("#approvals-prod .approvals-count")
            .await
            .text()
            .await;
        assert_eq!(count, "1 return waiting for approval in PROD");
        let item = b
            .find(&format!("#approvals-prod li[data-run='{run}']"))
            .await
            .text()
            .await;
        assert!(item.contains("scoring · push_scores"), "{item}");
        assert!(item.contains("to send (0 new,"), "{item}");
        b.find(&format!("#approvals-prod li[data-run='{run}'] a"))
            .await
            .click()
            .await;
        b.wait_for_url(&format!("/runs/{run}"), LONG).await;
        b.screenshot(shots().join("approval-run.png")).await;
        let plan = b
            .find("#approval-push_scores .plan-totals")
            .await
            .text()
            .await;
        assert!(plan.contains("to send (0 new,"), "{plan}");
        assert!(
            plan.contains("0 unchanged and not sent, 0 nulls withheld"),
            "{plan}"
        );
        let state = b
            .find("tr[data-task=push_scores] .task-state")
            .await
            .text()
            .await;
        assert_eq!(state, "waiting for approval");

        // Approve → the write happens.
        b.execute("window.confirm = () => true;", &[]).await;
        b.find("#approval-push_scores .approve-return")
            .await
            .click()
            .await;
        b.wait_for_text("#notice", "Plan approved", LONG).await;
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Success, "{done:?}\n{}", w.log());
        let written = sandbox_writes(&base).await;
        assert!(written > 100, "{written} leads written after the approval");
        b.goto(&format!("{web}/runs/{run}")).await;
        let outcome = b
            .find("#approval-push_scores .approval-outcome")
            .await
            .text()
            .await;
        assert!(outcome.starts_with("Approved by otto on "), "{outcome}");
        b.goto(&format!("{web}/")).await;
        assert!(!b.exists("#approvals-prod").await, "nothing waits any more");

        // Reject → failed, nothing written.
        let run = trigger(&d, "scoring");
        awaiting(&store, run, "push_scores").await;
        b.goto(&format!("{web}/runs/{run}")).await;
        b.find("#approval-push_scores input[name=reason]")
            .await
            .type_text("scores look doubled")
            .await;
        b.find("#approval-push_scores .reject-return")
            .await
            .click()
            .await;
        b.wait_for_text("#notice", "Plan rejected", LONG).await;
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Failed, "{done:?}");
        b.goto(&format!("{web}/runs/{run}")).await;
        let why = b.find("#failures .failure").await.text().await;
        assert!(
            why.contains("otto rejected the plan: scores look doubled"),
            "{why}"
        );
        let state = b
            .find("tr[data-task=push_scores] .task-state")
            .await
            .text()
            .await;
        assert_eq!(state, "failed");
        let outcome = b
            .find("#approval-push_scores .approval-outcome")
            .await
            .text()
            .await;
        assert!(
            outcome.contains("Rejected by otto on ") && outcome.ends_with("scores look doubled"),
            "{outcome}"
        );
        assert_eq!(
            sandbox_writes(&base).await,
            written,
            "nothing written after the rejection"
        );
        let ti = store
            .task_instances(run)
            .await
            .expect("tasks")
            .into_iter()
            .find(|t| t.task_id == "push_scores")
            .expect("task");
        assert_eq!(ti.state.0, TaskState::Failed);
        drop(w);
    });
}
