//! The control plane keeps its promises under trouble: scheduling goes on while the DAG
//! remote never answers.

mod support;

use std::time::Duration;

use drover_engine::{DagSource, FolderSource, GitSource, Scheduler, SchedulerConfig};
use drover_store::{RunFilter, RunState};
use support::{TestDb, Workspace, eventually, runtime, server_url};

/// A TCP port that accepts connections and never answers on them.
fn silent_remote() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    format!("http://127.0.0.1:{port}/dags.git")
}

#[test]
fn scheduling_goes_on_while_the_dag_remote_never_answers() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "hourly",
        "id: hourly\nschedule: \"@hourly\"\ntasks:\n  - id: a\n    noop: {}\n",
    );
    rt.block_on(async {
        let store = db.store().await;
        // What an earlier sync recorded: the DAG, in dev.
        FolderSource::new(ws.dags(), ws.environments())
            .sync(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Now the DAGs come from a remote that never answers, with a fetch timeout far longer
        // than the test: a sync inside the loop would hold it for all that time.
        let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let git =
            GitSource::open_unfetched(&silent_remote(), "dags", cache.path(), ws.environments())
                .unwrap_or_else(|e| panic!("{e}"))
                .with_fetch_timeout(Duration::from_secs(600));
        let scheduler = Scheduler::new(
            store.clone(),
            SchedulerConfig {
                tick: Duration::from_millis(200),
                source: Some(DagSource::Git(git)),
                sync_every: Duration::from_millis(100),
                ..SchedulerConfig::default()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(scheduler.run(async {
            let _ = stopped.await;
        }));
        let started = std::time::Instant::now();
        let run = eventually(
            "the scheduled run to be created and started",
            Duration::from_secs(10),
            || async {
                store
                    .list_runs(&RunFilter {
                        dag_id: Some("hourly".to_owned()),
                        environment: Some("dev".to_owned()),
                        state: None,
                        limit: 10,
                    })
                    .await
                    .ok()
                    .and_then(|runs| runs.into_iter().find(|r| r.state != RunState::Queued))
            },
        )
        .await;
        assert_eq!(run.run_type.as_str(), "scheduled");
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = stop.send(());
        let stopped_in = tokio::time::timeout(Duration::from_secs(10), running).await;
        assert!(
            stopped_in.is_ok(),
            "the scheduler stops promptly, its sync abandoned"
        );
    });
}

#[test]
fn a_fifty_megabyte_dag_file_is_refused_at_once_with_its_size_and_the_limit() {
    let ws = Workspace::new();
    ws.dag("good", "id: good\ntasks:\n  - id: a\n    noop: {}\n");
    let big = ws.dags().join("huge.yaml");
    std::fs::write(&big, "id: huge\ntasks: []\n").unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap_or_else(|e| panic!("{e}"));
    file.set_len(50 * 1024 * 1024)
        .unwrap_or_else(|e| panic!("{e}"));
    let start = std::time::Instant::now();
    let out = support::bare_drover()
        .args(["dags", "validate", "--format", "json"])
        .arg(ws.dags())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "file is 52.4 MB (52428800 bytes), over the 1 MB limit for a DAG file: it was not read"
        ),
        "{text}"
    );
    assert!(text.contains("huge.yaml"), "{text}");
    assert!(!out.status.success());
    // The limit is a setting; a file under it validates as before.
    let out = support::bare_drover()
        .args(["dags", "validate", "--max-dag-bytes", "10kB"])
        .arg(ws.dags().join("good.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make every audit insert of this test's database fail, as a full disk or a broken audit
/// table would.
async fn break_the_audit_table(store: &drover_store::Store) {
    sqlx::raw_sql(
        "create function refuse_audit() returns trigger language plpgsql as \
         $$ begin raise exception 'the audit table refuses rows'; end $$; \
         create trigger refuse_audit before insert on audit_event \
         for each row execute function refuse_audit();",
    )
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_change_whose_audit_row_cannot_be_written_does_not_happen() {
    use drover_engine::ops::{Actor, Operations, TriggerRequest, parse_role};
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("manual", "id: manual\ntasks:\n  - id: a\n    noop: {}\n");
    rt.block_on(async {
        let store = db.store().await;
        FolderSource::new(ws.dags(), ws.environments())
            .sync(&store)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ops = Operations::new(store.clone());
        let admin = Actor::with_role("ana", parse_role("admin").unwrap_or_else(|| panic!()));
        let request = TriggerRequest {
            dag_id: "manual".to_owned(),
            environment: "dev".to_owned(),
            params: Vec::new(),
            logical_date: None,
        };
        // With a working audit table: a run, marked succeeded, each with its event.
        let run = ops
            .trigger(&admin, &request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // One scheduler pass starts it (its task instances are made).
        Scheduler::new(store.clone(), SchedulerConfig::default())
            .pass(&[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ops.mark(&admin, run, RunState::Success)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let events = store.audit_events(100).await.unwrap_or_default().len();
        assert_eq!(events, 2);
        let runs = |store: drover_store::Store| async move {
            store
                .list_runs(&RunFilter {
                    dag_id: Some("manual".to_owned()),
                    environment: None,
                    state: None,
                    limit: 100,
                })
                .await
                .unwrap_or_default()
        };
        assert_eq!(runs(store.clone()).await.len(), 1);

        break_the_audit_table(&store).await;
        // Trigger: no run without its event.
        let refused = ops.trigger(&admin, &request).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("refuses rows")),
            "{refused:?}"
        );
        assert_eq!(runs(store.clone()).await.len(), 1, "no run was created");
        // Mark: the run keeps its state.
        assert!(ops.mark(&admin, run, RunState::Failed).await.is_err());
        let kept = store.get_run(run).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.state, RunState::Success, "the run was not marked");
        // Clear: the task stays finished.
        let refused = ops.clear(&admin, run, &["a".to_owned()]).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("refuses rows")),
            "{refused:?}"
        );
        let tasks = store.task_instances(run).await.unwrap_or_default();
        assert!(
            !tasks.is_empty() && tasks.iter().all(|t| t.state.0.as_str() == "success"),
            "the task was not cleared: {:?}",
            tasks.iter().map(|t| t.state.0.as_str()).collect::<Vec<_>>()
        );
        // Users: added, given a role, given a token, disabled only with their events.
        let mut tx = store.begin().await.unwrap_or_else(|e| panic!("{e}"));
        tx.create_user("bo", "x", "viewer")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let audited = tx
            .audit(
                "ana",
                "user.add",
                None,
                None,
                None,
                &serde_json::json!({ "user": "bo" }),
            )
            .await;
        assert!(audited.is_err());
        drop(tx);
        assert!(
            store
                .user("bo")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none(),
            "the user was not added"
        );
        assert_eq!(
            store.audit_events(100).await.unwrap_or_default().len(),
            events,
            "no event either"
        );
    });
}
