//! State changes are guarded: concurrent claimers never share a task, a stale or foreign
//! completion writes nothing, and run starts respect max_active_runs under concurrency.
//! Each test uses a database of its own on the Postgres at DROVER_TEST_DATABASE_URL
//! (default 127.0.0.1:5432).

use std::collections::HashSet;

mod support;
use support::db;

use chrono::{Duration, Utc};
use drover_store::{Completion, NewRun, Outcome, RunType, Store, TaskInstanceSpec, VersionSync};
use uuid::Uuid;

fn task(id: &str, upstream: &[&str]) -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: id.to_owned(),
        upstream: upstream.iter().map(|s| (*s).to_owned()).collect(),
        trigger_rule: "all_success".to_owned(),
        is_leaf: true,
        priority: 0,
        retries: 1,
        retry_delay_secs: 60,
        retry_backoff: "exponential".to_owned(),
        max_retry_delay_secs: 3600,
        timeout_secs: 60,
        deadline_at: None,
    }
}

async fn setup_dag(store: &Store) -> i64 {
    let spec = serde_json::json!({ "name": "dev", "concurrency": 1000 });
    store
        .upsert_environment("dev", 1, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v = VersionSync {
        dag_id: "d".to_owned(),
        path: "d.yaml".to_owned(),
        blob_id: "b1".to_owned(),
        commit_sha: None,
        source: "id: d\ntasks:\n  - id: a\n    noop: {}\n".to_owned(),
    };
    store
        .sync_versions("dev", &[v], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .dag_env("d", "dev")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id
}

async fn queued_run(store: &Store, version: i64, offset_hours: i64) -> Uuid {
    let at = Utc::now() - Duration::hours(offset_hours);
    let run = NewRun {
        dag_id: "d".to_owned(),
        environment: "dev".to_owned(),
        version_id: version,
        run_type: RunType::Scheduled,
        logical_date: at,
        interval_start: at,
        interval_end: at,
        params: serde_json::json!({}),
        triggered_by: None,
        deadline_at: None,
        preview: false,
    };
    let id = store
        .insert_run(&run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .insert_run(&run)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "a scheduled run was created twice"
    );
    id.unwrap_or_else(|| panic!("not created"))
}

#[tokio::test]
async fn concurrent_claims_never_share_a_task_and_respect_their_limit() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    let tasks: Vec<TaskInstanceSpec> = (0..200).map(|i| task(&format!("t{i}"), &[])).collect();
    queued_run(&db.store, version, 1).await;
    let started = db
        .store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_default();
    assert_eq!(started.len(), 1);
    let claims = (0..8).map(|w| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(&format!("w{w}"), 7, 30.0)
                    .await
                    .unwrap_or_default();
                assert!(got.len() <= 7, "claimed {} for a limit of 7", got.len());
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.ti_id));
            }
        })
    });
    let mut all = Vec::new();
    for c in claims {
        all.extend(c.await.unwrap_or_default());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every task claimed once");
    assert_eq!(distinct.len(), 200, "a task was claimed twice");
    db.drop_db().await;
}

#[tokio::test]
async fn a_stale_or_foreign_completion_writes_nothing() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    let tasks = vec![task("a", &[]), task("b", &["a"])];
    let run = queued_run(&db.store, version, 1).await;
    db.store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_default();
    let claimed = db.store.claim("w1", 10, 30.0).await.unwrap_or_default();
    assert_eq!(claimed.len(), 1, "only the root is queued");
    let a = &claimed[0];
    let done = |try_number| {
        vec![Completion {
            ti_id: a.ti_id,
            try_number,
            outcome: Outcome::Success,
        }]
    };
    // Another worker, or an old try, cannot complete it.
    let foreign = db
        .store
        .complete("w2", &done(a.try_number))
        .await
        .unwrap_or_default();
    assert_eq!((foreign.accepted.len(), foreign.lost.len()), (0, 1));
    let stale = db
        .store
        .complete("w1", &done(a.try_number + 1))
        .await
        .unwrap_or_default();
    assert!(stale.accepted.is_empty());
    // The owner can, once; it queues `b` in the same transaction.
    let ok = db
        .store
        .complete("w1", &done(a.try_number))
        .await
        .unwrap_or_default();
    assert_eq!((ok.accepted.len(), ok.queued), (1, 1));
    let again = db
        .store
        .complete("w1", &done(a.try_number))
        .await
        .unwrap_or_default();
    assert!(again.accepted.is_empty(), "completed twice");
    // A queued task cannot be cleared; a finished one can.
    assert!(db.store.clear_tasks(run, &["b".to_owned()]).await.is_err());
    assert_eq!(
        db.store
            .clear_tasks(run, &["a".to_owned()])
            .await
            .unwrap_or_default(),
        vec!["a".to_owned()]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn failed_tries_are_retried_with_backoff_then_fail() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    let tasks = vec![task("a", &[])];
    queued_run(&db.store, version, 1).await;
    db.store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_default();
    let fail = |ti_id, try_number| {
        vec![Completion {
            ti_id,
            try_number,
            outcome: Outcome::Failed {
                error: "boom".to_owned(),
                exit_code: Some(1),
                retryable: true,
            },
        }]
    };
    let c = db
        .store
        .claim("w", 1, 30.0)
        .await
        .unwrap_or_default()
        .remove(0);
    db.store
        .complete("w", &fail(c.ti_id, 1))
        .await
        .unwrap_or_default();
    let ti = db
        .store
        .task_instances(c.run_id)
        .await
        .unwrap_or_default()
        .remove(0);
    assert_eq!(ti.state.0, drover_store::TaskState::UpForRetry);
    // retries: 1 with a 60 s exponential delay: the retry waits a minute (not claimable now).
    let wait = ti.next_attempt_at.unwrap_or_default() - ti.finished_at.unwrap_or_default();
    assert!((59..=61).contains(&wait.num_seconds()), "waited {wait}");
    assert!(!db.store.queue_due_retries().await.unwrap_or(true));
    sqlx::query("update task_instance set next_attempt_at = now() - interval '1 second'")
        .execute(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(db.store.queue_due_retries().await.unwrap_or(false));
    let c2 = db
        .store
        .claim("w", 1, 30.0)
        .await
        .unwrap_or_default()
        .remove(0);
    assert_eq!(c2.try_number, 2);
    let r = db
        .store
        .complete("w", &fail(c2.ti_id, 2))
        .await
        .unwrap_or_default();
    assert_eq!(
        r.finished.first().map(|f| f.1),
        Some(drover_store::RunState::Failed)
    );
    db.drop_db().await;
}

#[tokio::test]
async fn concurrent_starts_respect_max_active_runs() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    let tasks = vec![task("a", &[])];
    for h in 1..=6 {
        queued_run(&db.store, version, h).await;
    }
    let starts = (0..4).map(|_| {
        let store = db.store.clone();
        let tasks = tasks.clone();
        tokio::spawn(async move {
            store
                .start_queued_runs("d", "dev", 2, None, |_, _| Some(tasks.clone()))
                .await
                .unwrap_or_default()
        })
    });
    let mut started = Vec::new();
    for s in starts {
        started.extend(s.await.unwrap_or_default());
    }
    assert_eq!(started.len(), 2, "max_active_runs 2, started {started:?}");
    // The oldest logical dates went first.
    let runs = db
        .store
        .list_runs(&drover_store::RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mut by_date = runs.clone();
    by_date.sort_by_key(|r| r.logical_date);
    assert!(by_date[..2].iter().all(|r| started.contains(&r.id)));
    db.drop_db().await;
}

#[test]
fn sql_retry_delay_matches_the_spec_policy() {
    // drover_retry_delay in SQL mirrors RetryPolicy::delay_before; checked on the real function.
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let db = db(16).await;
        for (backoff, name) in [
            (drover_spec::dag::Backoff::Constant, "constant"),
            (drover_spec::dag::Backoff::Linear, "linear"),
            (drover_spec::dag::Backoff::Exponential, "exponential"),
        ] {
            let policy = drover_spec::dag::RetryPolicy {
                retries: 9,
                delay: drover_spec::duration::Duration::from_secs(30),
                backoff,
                max_delay: drover_spec::duration::Duration::from_secs(400),
            };
            for tries in 1..=6 {
                let secs: f64 = sqlx::query_scalar(
                    "select extract(epoch from drover_retry_delay($1, 30, 400, $2))::float8",
                )
                .bind(name)
                .bind(tries)
                .fetch_one(db.store.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                let want = policy
                    .delay_before(u32::try_from(tries + 1).unwrap_or(0))
                    .as_secs() as f64;
                assert_eq!(secs, want, "{name} after {tries} tries");
            }
        }
        db.drop_db().await;
    });
}

#[tokio::test]
async fn an_environment_never_runs_more_than_its_concurrency() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    db.store
        .upsert_environment(
            "dev",
            1,
            &serde_json::json!({ "name": "dev", "concurrency": 3 }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tasks: Vec<TaskInstanceSpec> = (0..20).map(|i| task(&format!("t{i}"), &[])).collect();
    queued_run(&db.store, version, 1).await;
    db.store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_default();
    let claims = (0..4).map(|w| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let worker = format!("w{w}");
            let got = store.claim(&worker, 5, 30.0).await.unwrap_or_default();
            got.into_iter()
                .map(|c| (worker.clone(), c))
                .collect::<Vec<_>>()
        })
    });
    let mut claimed = Vec::new();
    for c in claims {
        claimed.extend(c.await.unwrap_or_default());
    }
    assert_eq!(
        claimed.len(),
        3,
        "four workers with room for 20 claimed {} tasks of a 3-slot environment",
        claimed.len()
    );
    assert!(
        db.store
            .claim("w9", 5, 30.0)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    // Finishing one frees one slot.
    let (worker, first) = &claimed[0];
    let done = vec![Completion {
        ti_id: first.ti_id,
        try_number: first.try_number,
        outcome: Outcome::Success,
    }];
    db.store
        .complete(worker, &done)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        db.store
            .claim("w9", 5, 30.0)
            .await
            .unwrap_or_default()
            .len(),
        1
    );
    db.drop_db().await;
}

/// Processes started together against a server without Drover's database all connect: the
/// one that loses the race to create it uses the winner's, and migrations run once.
#[tokio::test]
async fn processes_starting_at_once_create_the_database_once() {
    let server = std::env::var("DROVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("drover_test_{}", Uuid::new_v4().simple());
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let store = Store::connect(&url, 1).await?;
                store.migrate().await?;
                store.pool().close().await;
                Ok::<_, drover_store::StoreError>(())
            })
        })
        .collect();
    let mut results = Vec::new();
    for start in starts {
        results.push(start.await);
    }
    let admin = Store::connect(&server, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{name}\" with (force)"
    )))
    .execute(admin.pool())
    .await;
    for r in results {
        r.unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("a process failed to start: {e}"));
    }
}

#[tokio::test]
async fn lost_tries_are_free_up_to_the_limit_then_use_retries() {
    let db = db(16).await;
    let version = setup_dag(&db.store).await;
    let mut a = task("a", &[]);
    a.retry_delay_secs = 0;
    let tasks = vec![a];
    let run = queued_run(&db.store, version, 1).await;
    db.store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_default();
    let expire = || async {
        sqlx::query("update task_instance set lease_until = now() - interval '1 second'")
            .execute(db.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        db.store
            .reap_expired_leases()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let claim = || async {
        db.store.queue_due_retries().await.unwrap_or_default();
        db.store
            .claim("w", 1, 30.0)
            .await
            .unwrap_or_default()
            .pop()
            .unwrap_or_else(|| panic!("nothing to claim"))
    };
    // Losses below the limit queue the task again at once and use no retry.
    for n in 1..drover_store::LOST_LIMIT {
        let c = claim().await;
        assert_eq!(c.try_number, n);
        let reaped = expire().await;
        assert_eq!(reaped[0].2, drover_store::TaskState::Queued, "loss {n}");
    }
    // From the limit on a loss uses one of the task's retries (it has one) ...
    let c = claim().await;
    assert_eq!(c.try_number, drover_store::LOST_LIMIT);
    assert_eq!(expire().await[0].2, drover_store::TaskState::UpForRetry);
    // ... and once they are spent the task fails, and its run with it.
    claim().await;
    assert_eq!(expire().await[0].2, drover_store::TaskState::Failed);
    let tries = db
        .store
        .task_instances(run)
        .await
        .unwrap_or_default()
        .remove(0);
    let tries = db.store.task_tries(tries.id).await.unwrap_or_default();
    let states: Vec<&str> = tries.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(states, vec!["lost"; 4]);
    let r = db
        .store
        .get_run(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.state, drover_store::RunState::Failed);
    db.drop_db().await;
}
