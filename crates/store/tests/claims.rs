//! Claims that user SQL cannot block, that wait a bounded time for their turn, and that a
//! worker bound to environments makes for those environments only. Each test uses a database
//! of its own on the Postgres at DROVER_TEST_DATABASE_URL (default 127.0.0.1:5432).

use std::time::{Duration, Instant};

mod support;
use support::{Db, db};

use chrono::Utc;
use drover_store::{NewRun, RunType, Store, TaskInstanceSpec, VersionSync};
use sqlx::Connection;

/// The advisory lock key claims used to take turns on.
const OLD_CLAIM_LOCK: i64 = 0x0d12_0fe2_c1a1;

impl Db {
    /// A connection of its own, as another client of the same database would have.
    async fn other_connection(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn task(id: &str) -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: id.to_owned(),
        upstream: Vec::new(),
        trigger_rule: "all_success".to_owned(),
        is_leaf: true,
        priority: 0,
        retries: 0,
        retry_delay_secs: 60,
        retry_backoff: "exponential".to_owned(),
        max_retry_delay_secs: 3600,
        timeout_secs: 60,
        deadline_at: None,
    }
}

/// Environment `env` with DAG `d` and one started run of `n` queued tasks.
async fn queued_tasks(store: &Store, env: &str, order: i32, n: usize) {
    let spec = serde_json::json!({ "name": env, "concurrency": 100 });
    store
        .upsert_environment(env, order, &spec)
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
        .sync_versions(env, &[v], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let version = store
        .dag_env("d", env)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id;
    let at = Utc::now();
    store
        .insert_run(&NewRun {
            dag_id: "d".to_owned(),
            environment: env.to_owned(),
            version_id: version,
            run_type: RunType::Scheduled,
            logical_date: at,
            interval_start: at,
            interval_end: at,
            params: serde_json::json!({}),
            triggered_by: None,
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tasks: Vec<TaskInstanceSpec> = (0..n).map(|i| task(&format!("t{i}"))).collect();
    let started = store
        .start_queued_runs("d", env, 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.len(), 1);
}

#[tokio::test]
async fn holding_the_old_advisory_key_does_not_stall_claims() {
    let db = db(8).await;
    queued_tasks(&db.store, "dev", 1, 3).await;
    // What one line of user SQL did: take the key claims took turns on, and keep it.
    let mut user = db.other_connection().await;
    sqlx::query("select pg_advisory_lock($1)")
        .bind(OLD_CLAIM_LOCK)
        .execute(&mut user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = tokio::time::timeout(Duration::from_secs(3), db.store.claim("w1", 10, 30.0))
        .await
        .unwrap_or_else(|_| panic!("the claim waited on the advisory lock user SQL holds"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 3);
    drop(user);
    db.drop_db().await;
}

#[tokio::test]
async fn the_claim_turn_is_out_of_reach_of_a_role_without_privileges() {
    let db = db(8).await;
    let mut user = db.other_connection().await;
    // A role like user SQL's: no privilege on Drover's tables (roles are cluster-wide: made
    // once, never dropped).
    sqlx::query(
        "do $$ begin \
           if not exists (select from pg_roles where rolname = 'drover_test_no_privileges') then \
             create role drover_test_no_privileges nologin; \
           end if; \
         end $$",
    )
    .execute(&mut user)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("set role drover_test_no_privileges")
        .execute(&mut user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "select id from claim_turn for update",
        "lock table claim_turn in exclusive mode",
    ] {
        let mut tx = user.begin().await.unwrap_or_else(|e| panic!("{e}"));
        let err = sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    drop(user);
    db.drop_db().await;
}

#[tokio::test]
async fn a_claim_waits_for_its_turn_a_bounded_time() {
    let db = db(8).await;
    queued_tasks(&db.store, "dev", 1, 2).await;
    let mut holder = db.other_connection().await;
    let mut tx = holder.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("select id from claim_turn for update")
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let began = Instant::now();
    let claimed = tokio::time::timeout(Duration::from_secs(15), db.store.claim("w1", 10, 30.0))
        .await
        .unwrap_or_else(|_| panic!("the claim waited for its turn without bound"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(claimed.is_empty(), "claimed without its turn: {claimed:?}");
    assert!(began.elapsed() >= Duration::from_secs(4), "it did wait");
    tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let claimed = db
        .store
        .claim("w1", 10, 30.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 2, "once the turn is free, claims go on");
    drop(holder);
    db.drop_db().await;
}

#[tokio::test]
async fn a_worker_bound_to_environments_claims_only_theirs() {
    let db = db(8).await;
    queued_tasks(&db.store, "dev", 1, 4).await;
    queued_tasks(&db.store, "prod", 4, 3).await;
    let prod = ["prod".to_owned()];
    let claimed = db
        .store
        .claim_in("prod-worker", 100, 30.0, Some(&prod))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 3);
    assert!(
        claimed.iter().all(|c| c.environment == "prod"),
        "{claimed:?}"
    );
    let none = db
        .store
        .claim_in("prod-worker", 100, 30.0, Some(&prod))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        none.is_empty(),
        "DEV's tasks are not for a PROD worker: {none:?}"
    );
    let dev = db
        .store
        .claim("any-worker", 100, 30.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dev.len(), 4);
    assert!(dev.iter().all(|c| c.environment == "dev"));
    db.drop_db().await;
}
