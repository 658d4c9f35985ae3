//! Maintenance mode against real processes: while it is on no run is created or started and
//! no task is claimed (a running task finishes, the next one waits), every change is refused
//! (API 503 with Retry-After, forms, CLI), pages show the banner, `/metrics` says so; when it
//! ends scheduling resumes and each DAG catches up as its `catchup` says.

mod support;

use std::time::Duration;

use drover_store::{RunFilter, Store};
use support::web::{add_user, client, login, start_web, token};
use support::{Drover, TestDb, Workspace, eventually, serial, server_url};

async fn task_state(store: &Store, run: uuid::Uuid, task: &str) -> String {
    store
        .task_instances(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|t| t.task_id == task)
        .map(|t| t.state.0.as_str().to_owned())
        .unwrap_or_default()
}

async fn runs_of(store: &Store, dag: &str) -> usize {
    store
        .list_runs(&RunFilter {
            dag_id: Some(dag.to_owned()),
            environment: Some("dev".to_owned()),
            state: None,
            limit: 100,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
}

/// The maintenance events of the audit trail, newest first: "action actor".
async fn maintenance_audit(store: &Store) -> Vec<String> {
    store
        .audit_events(20)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|e| e.action.starts_with("maintenance"))
        .map(|e| format!("{} {}", e.action, e.actor))
        .collect()
}

#[test]
fn maintenance_pauses_scheduling_refuses_changes_and_resumes_with_catchup() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "two_steps",
        "id: two_steps\ntasks:\n  - id: first\n    noop: { sleep: 3s }\n  - id: second\n    depends_on: [first]\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let admin_password = add_user(&d, "admin", "admin");
    add_user(&d, "olivia", "operator");
    let olivia = token(&d, "olivia");
    let _scheduler = d.scheduler("scheduler");
    let _worker = d.worker("worker", 2, 5.0);
    let rt = support::runtime();
    rt.block_on(async {
        let store = db.store().await;
        let (_web, base) = start_web(&d, &[]).await;
        support::synced(&store, "two_steps").await;
        let run = d.ok(&["runs", "trigger", "two_steps", "--env", "dev", "--as", "admin"]);
        let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        eventually("the first step to run", Duration::from_secs(20), || async {
            (task_state(&store, run, "first").await == "running").then_some(())
        })
        .await;

        let on = d.ok(&[
            "maintenance", "on", "--message", "Database upgrade", "--until", "2h", "--as", "admin",
        ]);
        assert!(on.contains("maintenance on: Database upgrade"), "{on}");
        // DAGs that arrive now are read, but get no run while maintenance lasts: one without
        // catchup, one catching up ten missed minutes.
        let ten_ago = (chrono::Utc::now() - chrono::Duration::minutes(10))
            .format("%Y-%m-%dT%H:%M:00Z")
            .to_string();
        ws.dag(
            "every_minute",
            "id: every_minute\nschedule: \"* * * * *\"\nstart_date: 2026-01-01\ntasks:\n  - id: t\n    noop: {}\n",
        );
        ws.dag(
            "catching_up",
            &format!("id: catching_up\nschedule: \"* * * * *\"\nstart_date: \"{ten_ago}\"\ncatchup: true\nmax_active_runs: 16\ntasks:\n  - id: t\n    noop: {{}}\n"),
        );
        support::synced(&store, "every_minute").await;
        support::synced(&store, "catching_up").await;

        // The running step finishes; the next one is not claimed.
        eventually("the first step to finish", Duration::from_secs(20), || async {
            (task_state(&store, run, "first").await == "success").then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(task_state(&store, run, "second").await, "queued");
        assert_eq!(runs_of(&store, "every_minute").await, 0, "a run was created in maintenance");
        assert_eq!(runs_of(&store, "catching_up").await, 0, "a run was created in maintenance");

        // Changes are refused: the API with 503 and when to come back, forms, the CLI.
        let c = client();
        let refused = c
            .post(format!("{base}/api/dags/two_steps/runs"))
            .bearer_auth(&olivia)
            .json(&serde_json::json!({ "environment": "dev" }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refused.status().as_u16(), 503);
        let retry: i64 = refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {:?}", refused.headers()));
        assert!((7000..=7200).contains(&retry), "Retry-After {retry}");
        let body: serde_json::Value = refused.json().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Database upgrade")),
            "{body}"
        );
        let reads = c
            .get(format!("{base}/api/dags?env=dev"))
            .bearer_auth(&olivia)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reads.status().as_u16(), 200);
        let session = login(&base, "admin", &admin_password).await;
        let page = session.get("/dags").await;
        assert!(
            page.body.contains("id=\"maintenance\"") && page.body.contains("Database upgrade"),
            "no banner: {}",
            page.body
        );
        let form = session
            .post("/dags/two_steps/pause", &[("env", "dev")])
            .await;
        assert_eq!(form.status.as_u16(), 503, "{}", form.body);
        let cli = d.run(&["runs", "trigger", "two_steps", "--env", "dev", "--as", "admin"]);
        assert!(!cli.status.success());
        assert!(
            String::from_utf8_lossy(&cli.stderr).contains("in maintenance: Database upgrade"),
            "{}",
            String::from_utf8_lossy(&cli.stderr)
        );
        let metrics = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        assert!(metrics.contains("drover_maintenance 1"), "{metrics}");
        // Only admins turn it off.
        let denied = d.run(&["maintenance", "off", "--as", "olivia"]);
        assert!(!denied.status.success());
        assert!(d.ok(&["maintenance", "status"]).starts_with("on: Database upgrade"));

        // Off: the waiting step runs, scheduling resumes, catchup fills the missed minutes
        // and the DAG without catchup gets only its latest interval.
        d.ok(&["maintenance", "off", "--as", "admin"]);
        let finished = support::wait_finished(&store, run, Duration::from_secs(30)).await;
        assert_eq!(finished.state.as_str(), "success");
        eventually("catchup to fill the missed minutes", Duration::from_secs(30), || async {
            (runs_of(&store, "catching_up").await >= 10).then_some(())
        })
        .await;
        let latest_only = runs_of(&store, "every_minute").await;
        assert!(
            (1..=2).contains(&latest_only),
            "without catchup only the latest interval runs: {latest_only}"
        );
        assert_eq!(
            maintenance_audit(&store).await,
            ["maintenance_off admin", "maintenance_on admin"]
        );
        // Pages reuse what they read for up to 2 s.
        eventually("the banner to go", Duration::from_secs(10), || async {
            let page = session.get("/dags").await;
            (!page.body.contains("id=\"maintenance\"")).then_some(())
        })
        .await;
    });
}

#[test]
fn maintenance_can_stop_running_tasks_which_run_again_when_it_ends() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let marker = ws.path().join("marker");
    ws.dag(
        "long",
        &format!(
            "id: long\ntasks:\n  - id: work\n    command: {{ shell: \"echo start >> {m}; sleep 6; echo done >> {m}\" }}\n",
            m = marker.display()
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let _scheduler = d.scheduler("scheduler");
    let _worker = d.worker("worker", 2, 3.0);
    let rt = support::runtime();
    rt.block_on(async {
        let store = db.store().await;
        support::synced(&store, "long").await;
        let run = d.ok(&["runs", "trigger", "long", "--env", "dev", "--as", "admin"]);
        let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        eventually("the task to start", Duration::from_secs(20), || async {
            std::fs::read_to_string(&marker)
                .ok()
                .filter(|m| m.contains("start"))
        })
        .await;
        let on = d.ok(&[
            "maintenance",
            "on",
            "--message",
            "Emergency fix",
            "--stop-running",
            "--as",
            "admin",
        ]);
        assert!(on.contains("1 running task(s) stopped"), "{on}");
        assert_eq!(task_state(&store, run, "work").await, "queued");
        // The worker sees its lease gone and stops the process: it never writes "done", and
        // nothing claims the task while maintenance lasts.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let text = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(text.lines().collect::<Vec<_>>(), vec!["start"], "{text}");
        assert_eq!(task_state(&store, run, "work").await, "queued");
        let ti = store
            .task_instances(run)
            .await
            .unwrap_or_default()
            .remove(0);
        let tries = store.task_tries(ti.id).await.unwrap_or_default();
        assert_eq!(tries.len(), 1);
        assert_eq!(tries[0].state, "interrupted");
        assert_eq!(tries[0].error.as_deref(), Some("stopped for maintenance"));

        d.ok(&["maintenance", "off", "--as", "admin"]);
        let r = support::wait_finished(&store, run, Duration::from_secs(40)).await;
        assert_eq!(r.state.as_str(), "success");
        let ti = store
            .task_instances(run)
            .await
            .unwrap_or_default()
            .remove(0);
        // Run again from the start, the stop not counted against its retries.
        assert_eq!((ti.try_number, ti.max_tries, ti.lost_count), (2, 1, 1));
        let text = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            vec!["start", "start", "done"],
            "{text}"
        );
        assert_eq!(
            maintenance_audit(&store).await,
            [
                "maintenance_off admin",
                "maintenance_stop_running admin",
                "maintenance_on admin"
            ]
        );
    });
}
