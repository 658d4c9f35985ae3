//! Approval requests are guarded state changes: only the try that holds its task may ask; a
//! waiting task holds no worker and no lease and takes no completion; approve and reject race
//! to one winner; an expired request can no longer be decided. Each test uses a database of
//! its own on the Postgres at DROVER_TEST_DATABASE_URL (default 127.0.0.1:5432).

use chrono::{Duration, Utc};
use drover_store::{
    Completion, NewApproval, NewRun, Outcome, PlanTotals, RunState, RunType, Store, StoreError,
    TaskInstanceSpec, TaskState, VersionSync,
};
use uuid::Uuid;

mod support;
use support::db;

/// A run of one task `push` (no retries), claimed by worker `w1`: (run, task instance, try).
async fn claimed_push(store: &Store) -> (Uuid, i64, i32) {
    let spec = serde_json::json!({ "name": "prod", "concurrency": 10 });
    store
        .upsert_environment("prod", 1, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v = VersionSync {
        dag_id: "d".to_owned(),
        path: "d.yaml".to_owned(),
        blob_id: "b1".to_owned(),
        commit_sha: None,
        source: "id: d\ntasks:\n  - id: push\n    noop: {}\n".to_owned(),
    };
    store
        .sync_versions("prod", &[v], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let version = store
        .dag_env("d", "prod")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id;
    let at = Utc::now() - Duration::hours(1);
    let run = store
        .insert_run(&NewRun {
            dag_id: "d".to_owned(),
            environment: "prod".to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: at,
            interval_start: at,
            interval_end: at,
            params: serde_json::json!({}),
            triggered_by: Some("ada".to_owned()),
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not created"));
    let task = TaskInstanceSpec {
        task_id: "push".to_owned(),
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
    };
    store
        .start_queued_runs("d", "prod", 1, None, |_, _| Some(vec![task.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = store.claim("w1", 1, 30.0).await.unwrap_or_default();
    assert_eq!(claimed.len(), 1);
    (run, claimed[0].ti_id, claimed[0].try_number)
}

fn request(ti_id: i64, try_number: i32, digest: &str) -> NewApproval {
    NewApproval {
        ti_id,
        try_number,
        digest: digest.to_owned(),
        totals: PlanTotals {
            to_send: 3,
            creates: Some(1),
            updates: Some(2),
            unchanged: 4,
            withheld: 1,
            rejected: 0,
        },
        timeout_secs: 24 * 3600,
    }
}

async fn task_row(store: &Store, run: Uuid) -> drover_store::TaskInstanceRow {
    store
        .task_instances(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

#[tokio::test]
async fn only_the_holding_try_asks_and_a_waiting_task_takes_no_completion() {
    let db = db(8).await;
    let (run, ti, try_number) = claimed_push(&db.store).await;
    // An old try (the lease moved on) asks nothing.
    let stale = db
        .store
        .request_approval(&request(ti, try_number + 1, "d1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stale.is_none());
    assert_eq!(task_row(&db.store, run).await.state.0, TaskState::Running);
    let asked = db
        .store
        .request_approval(&request(ti, try_number, "d1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the holding try asks"));
    assert_eq!(asked.state, "pending");
    assert_eq!(
        asked.totals().describe(),
        "3 to send (1 new, 2 updated), 4 unchanged and not sent, 1 null withheld"
    );
    let t = task_row(&db.store, run).await;
    assert_eq!(t.state.0, TaskState::AwaitingApproval);
    assert_eq!(
        (t.worker_id, t.max_tries),
        (None, 2),
        "no worker, no retry used"
    );
    // Asking twice for the same try does nothing.
    assert!(
        db.store
            .request_approval(&request(ti, try_number, "d1"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    // The worker's late completion of the try is not recorded.
    let late = db
        .store
        .complete(
            "w1",
            &[Completion {
                ti_id: ti,
                try_number,
                outcome: Outcome::Success,
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(late.accepted.is_empty());
    assert_eq!(
        task_row(&db.store, run).await.state.0,
        TaskState::AwaitingApproval
    );
    // Nothing to claim meanwhile; the run is not finished.
    assert!(
        db.store
            .claim("w2", 5, 30.0)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        db.store
            .get_run(run)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .state,
        RunState::Running
    );
    let audit: Vec<(String, String)> =
        sqlx::query_as("select actor, action from audit_event where run_id = $1")
            .bind(run)
            .fetch_all(db.store.pool())
            .await
            .unwrap_or_default();
    assert_eq!(
        audit,
        vec![("drover".to_owned(), "return.approval_requested".to_owned())]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn approve_and_reject_race_to_one_winner_and_expiry_ends_the_wait() {
    let db = db(8).await;
    let (run, ti, try_number) = claimed_push(&db.store).await;
    let asked = db
        .store
        .request_approval(&request(ti, try_number, "d1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("asked"));
    let approve = {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let row = tx.approve_return(asked.id, "otto").await?;
            tx.commit().await?;
            Ok::<_, StoreError>(row)
        })
    };
    let reject = {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let row = tx.reject_return(asked.id, "ada", "wrong list").await?;
            tx.commit().await?;
            Ok::<_, StoreError>(row)
        })
    };
    let results = [
        approve.await.unwrap_or_else(|e| panic!("{e}")),
        reject.await.unwrap_or_else(|e| panic!("{e}")),
    ];
    let won: Vec<&drover_store::ApprovalRow> =
        results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Conflict(m)) if m.contains("already decided"))),
        "{results:?}"
    );
    let t = task_row(&db.store, run).await;
    match won[0].state.as_str() {
        "approved" => assert_eq!(t.state.0, TaskState::Queued),
        "rejected" => {
            assert_eq!(t.state.0, TaskState::Failed);
            assert_eq!(
                t.last_error.as_deref(),
                Some("ada rejected the plan: wrong list")
            );
        }
        other => panic!("{other}"),
    }

    // A request nobody decides in time: the sweep fails its task, once; it can no longer be
    // decided.
    let (run, ti, try_number) = claimed_push_again(&db.store).await;
    let asked = db
        .store
        .request_approval(&request(ti, try_number, "d2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("asked"));
    assert!(
        db.store
            .expire_approvals()
            .await
            .unwrap_or_default()
            .is_empty(),
        "not due yet"
    );
    sqlx::query(
        "update return_approval set requested_at = requested_at - interval '25 hours', \
                expires_at = expires_at - interval '25 hours' where id = $1",
    )
    .bind(asked.id)
    .execute(db.store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let expired = db
        .store
        .expire_approvals()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        expired.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![asked.id]
    );
    assert!(
        db.store
            .expire_approvals()
            .await
            .unwrap_or_default()
            .is_empty(),
        "once"
    );
    let t = task_row(&db.store, run).await;
    assert_eq!(t.state.0, TaskState::Failed);
    assert_eq!(
        t.last_error.as_deref(),
        Some("not approved within 24 h: nobody approved or rejected the plan in time")
    );
    assert_eq!(
        db.store
            .get_run(run)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .state,
        RunState::Failed
    );
    let mut tx = db.store.begin().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        tx.approve_return(asked.id, "otto").await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    db.drop_db().await;
}

/// Another run of `d` whose `push` is claimed by `w1`.
async fn claimed_push_again(store: &Store) -> (Uuid, i64, i32) {
    let version = store
        .dag_env("d", "prod")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id;
    let at = Utc::now() - Duration::hours(2);
    let run = store
        .insert_run(&NewRun {
            dag_id: "d".to_owned(),
            environment: "prod".to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: at,
            interval_start: at,
            interval_end: at,
            params: serde_json::json!({}),
            triggered_by: Some("ada".to_owned()),
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not created"));
    let task = TaskInstanceSpec {
        task_id: "push".to_owned(),
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
    };
    // The first run may still be running (approved and queued): allow two at once.
    store
        .start_queued_runs("d", "prod", 2, None, |_, _| Some(vec![task.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = store.claim("w1", 5, 30.0).await.unwrap_or_default();
    let mine = claimed
        .into_iter()
        .find(|c| c.run_id == run)
        .unwrap_or_else(|| panic!("the new run's task is claimed"));
    (run, mine.ti_id, mine.try_number)
}
