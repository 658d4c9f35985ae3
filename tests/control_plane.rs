//! The control plane keeps its promises under trouble: scheduling and lease recovery go on
//! while the DAG remote never answers; bad DAG files are refused cheaply; a change and its
//! audit event commit together; of two concurrent promotions exactly one lands.

mod support;

use std::time::Duration;

use drover_engine::{DagSource, FolderSource, GitSource, Scheduler, SchedulerConfig};
use drover_store::{RunFilter, RunState};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url};

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
        // A worker took its task and vanished: its lease ran out a moment ago.
        sqlx::query(
            "update task_instance set state = 'running', try_number = 1, started_at = now(), \
             lease_until = now() - interval '1 second' where run_id = $1",
        )
        .bind(run.id)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let recovered = eventually(
            "the lost task to be recovered",
            Duration::from_secs(10),
            || async {
                store
                    .task_instances(run.id)
                    .await
                    .ok()
                    .and_then(|tis| tis.into_iter().next())
                    .filter(|ti| ti.state.0.as_str() != "running")
            },
        )
        .await;
        assert!(
            recovered
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("worker lost")),
            "{:?}",
            recovered.last_error
        );
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
            preview: false,
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

#[test]
fn a_login_or_logout_whose_audit_row_cannot_be_written_does_not_happen() {
    use support::web::{add_user, login, start_web, try_login};
    let _g = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let d = Drover { db: &db, ws: &ws };
    let password = add_user(&d, "ana", "admin");
    rt.block_on(async {
        let store = db.store().await;
        let (_web, base) = start_web(&d, &[]).await;
        let session = login(&base, "ana", &password).await;
        let sessions = || async {
            sqlx::query_scalar::<_, i64>("select count(*) from web_session")
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(sessions().await, 1);

        break_the_audit_table(&store).await;
        // Login: the right password, but no session without its event.
        let refused = try_login(&base, "ana", &password).await;
        assert!(refused.is_err(), "logged in without an audit event");
        assert_eq!(sessions().await, 1, "no session was created");
        // Logout: the session lives on, since its end could not be recorded.
        let out = session.post("/logout", &[]).await;
        assert_ne!(out.location.as_deref(), Some("/login"), "{}", out.body);
        assert_eq!(sessions().await, 1, "the session was not ended");
        assert_eq!(session.get("/account").await.status, 200);
    });
}

/// A DAG repository with three commits of one DAG, environments dev (tracking main), qa and
/// prod (approval required), synced into `store`; qa and prod run the first commit.
struct Promotions {
    _repo: tempfile::TempDir,
    _ws: Workspace,
    git: std::sync::Arc<GitSource>,
    commits: Vec<String>,
}

async fn promotions(store: &drover_store::Store) -> Promotions {
    use support::gitrepo::{commit, git};
    let ws = Workspace::new();
    let env = |name: &str, order: u32, extra: &str| {
        let text = format!(
            "name: {name}\norder: {order}\n{extra}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: X_ID }}\n  client_secret: {{ env: X_SECRET }}\n"
        );
        std::fs::write(ws.environments().join(format!("{name}.yaml")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    env("dev", 1, "branch: main\n");
    env("qa", 2, "");
    env(
        "prod",
        3,
        "promotion: { allowed_roles: [admin], require_approval: true }\n",
    );
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let commits: Vec<String> = (1..=3)
        .map(|n| {
            let dag =
                format!("id: alpha\ndescription: version {n}\ntasks:\n  - id: a\n    noop: {{}}\n");
            commit(r, &[("dags/alpha.yaml", Some(&dag))], &format!("v{n}"))
        })
        .collect();
    let source = GitSource::open(
        &r.display().to_string(),
        "dags",
        std::path::Path::new("/nonexistent"),
        ws.environments(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    source.sync(store).await.unwrap_or_else(|e| panic!("{e}"));
    let git = std::sync::Arc::new(source);
    let ops = drover_engine::ops::Operations::new(store.clone()).with_git(git.clone());
    let first = admin("first");
    ops.promote(&first, "qa", None, Some(&commits[0]), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let asked = ops
        .promote(&first, "prod", None, Some(&commits[0]), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        asked,
        drover_engine::promotion::PromotionOutcome::AwaitingApproval { .. }
    ));
    ops.approve(&admin("second"), "prod")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Promotions {
        _repo: repo,
        _ws: ws,
        git,
        commits,
    }
}

fn admin(name: &str) -> drover_engine::ops::Actor {
    drover_engine::ops::Actor::with_role(
        name,
        drover_engine::ops::parse_role("admin").unwrap_or_else(|| panic!("admin is a role")),
    )
}

/// Sessions of this database waiting for a lock.
async fn waiting_for_locks(store: &drover_store::Store) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = current_database() \
         and wait_event_type = 'Lock'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or(0)
}

#[test]
fn of_two_concurrent_promotions_one_wins_and_the_other_is_refused() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        let p = promotions(&store).await;
        let ops = drover_engine::ops::Operations::new(store.clone()).with_git(p.git.clone());
        let events_before = store.audit_events(1000).await.unwrap_or_default().len();
        // Hold qa's row, as a slow change of qa would: both promotions are checked from the
        // same commit and then wait for the lock.
        let mut holder = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("select 1 from environment where name = 'qa' for update")
            .execute(&mut *holder)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (ana, bo) = (admin("ana"), admin("bo"));
        let one = ops.promote(&ana, "qa", None, Some(&p.commits[1]), None);
        let two = ops.promote(&bo, "qa", None, Some(&p.commits[2]), None);
        let release = async {
            eventually("both promotions to wait for qa", Duration::from_secs(20), || async {
                (waiting_for_locks(&store).await >= 2).then_some(())
            })
            .await;
            holder.commit().await.unwrap_or_else(|e| panic!("{e}"));
        };
        let (one, two, ()) = tokio::join!(one, two, release);
        let (won, lost) = match (&one, &two) {
            (Ok(_), Err(e)) => (&p.commits[1], e.to_string()),
            (Err(e), Ok(_)) => (&p.commits[2], e.to_string()),
            other => panic!("exactly one must win: {other:?}"),
        };
        assert!(
            lost.contains(&format!(
                "qa moved from {} to {} while this promotion was being checked; look again and retry",
                &p.commits[0][..10],
                &won[..10]
            )),
            "{lost}"
        );
        let deployed = store
            .current_deployment("qa")
            .await
            .ok()
            .flatten()
            .map(|d| d.commit_sha);
        assert_eq!(deployed.as_ref(), Some(won));
        let events = store.audit_events(1000).await.unwrap_or_default();
        let promotions: Vec<_> = events[..events.len() - events_before]
            .iter()
            .filter(|e| e.action == "environment.promote")
            .collect();
        assert_eq!(promotions.len(), 1, "{promotions:?}");
    });
}

#[test]
fn an_approval_whose_move_fails_leaves_the_request_pending() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        let p = promotions(&store).await;
        let ops = drover_engine::ops::Operations::new(store.clone()).with_git(p.git.clone());
        ops.promote(&admin("ana"), "prod", None, Some(&p.commits[1]), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The move itself fails: its deployment row cannot be written.
        sqlx::raw_sql(
            "create function refuse_deployment() returns trigger language plpgsql as \
             $$ begin raise exception 'deployments refused'; end $$; \
             create trigger refuse_deployment before insert on deployment \
             for each row execute function refuse_deployment();",
        )
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let refused = ops.approve(&admin("bo"), "prod").await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("deployments refused")),
            "{refused:?}"
        );
        let pending = store
            .pending_promotion("prod")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pending.map(|r| r.commit_sha).as_ref(),
            Some(&p.commits[1]),
            "still waiting for approval"
        );
        let deployed = store
            .current_deployment("prod")
            .await
            .ok()
            .flatten()
            .map(|d| d.commit_sha);
        assert_eq!(deployed.as_ref(), Some(&p.commits[0]));
        let approvals = store
            .audit_events(1000)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.action == "environment.promotion_approved")
            .count();
        assert_eq!(
            approvals, 1,
            "only the first approval is in the audit trail"
        );
    });
}

#[test]
fn a_rollback_is_refused_when_a_promotion_lands_after_it_looked() {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    rt.block_on(async {
        let store = db.store().await;
        let p = promotions(&store).await;
        let ops = drover_engine::ops::Operations::new(store.clone()).with_git(p.git.clone());
        let ana = admin("ana");
        ops.promote(&ana, "qa", None, Some(&p.commits[1]), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The rollback looks: qa runs the second commit, after the first.
        let seen = store
            .current_deployment("qa")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("qa has a deployment"));
        assert_eq!(seen.commit_sha, p.commits[1]);
        // A promotion lands before the rollback is planned.
        ops.promote(&ana, "qa", None, Some(&p.commits[2]), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let refused =
            drover_engine::promotion::rollback_deployment(&store, &p.git, &seen, "bo", None).await;
        let message = refused
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_else(|| panic!("the rollback undid two deployments: {refused:?}"));
        assert!(
            message.contains(&format!(
                "qa moved from {} to {} while this rollback was being checked; look again and retry",
                &p.commits[1][..10],
                &p.commits[2][..10]
            )),
            "{message}"
        );
        let deployed = store
            .current_deployment("qa")
            .await
            .ok()
            .flatten()
            .map(|d| d.commit_sha);
        assert_eq!(deployed.as_ref(), Some(&p.commits[2]), "qa stays where it is");
        // Looking again, the rollback goes back one deployment only.
        ops.rollback(&ana, "qa", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let deployed = store
            .current_deployment("qa")
            .await
            .ok()
            .flatten()
            .map(|d| d.commit_sha);
        assert_eq!(deployed.as_ref(), Some(&p.commits[1]));
    });
}
