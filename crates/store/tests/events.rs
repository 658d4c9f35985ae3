//! Accepting events: each accepted event has exactly one run, a repeated idempotency key is
//! answered with the first event's run even when both arrive at once, a batch gathers events
//! until full or due and takes none once started. Each test uses a database of its own.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use drover_store::{
    BatchRule, EventKind, NewEvent, NewRun, RunType, Store, TaskInstanceSpec, VersionSync,
};
use uuid::Uuid;

mod support;
use support::db;

async fn dag(store: &Store) -> i64 {
    let spec = serde_json::json!({ "name": "dev", "concurrency": 10 });
    store
        .upsert_environment("dev", 1, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v = VersionSync {
        dag_id: "hook".to_owned(),
        path: "hook.yaml".to_owned(),
        blob_id: "b1".to_owned(),
        commit_sha: None,
        source: "id: hook\ntasks:\n  - id: a\n    noop: {}\n".to_owned(),
    };
    store
        .sync_versions("dev", &[v], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .dag_env("hook", "dev")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id
}

fn event(version: i64, key: Option<&str>, n: usize, batch: Option<BatchRule>) -> NewEvent {
    let now = Utc::now();
    NewEvent {
        kind: EventKind::Webhook,
        trigger: "form".to_owned(),
        source: "127.0.0.1".to_owned(),
        idempotency_key: key.map(str::to_owned),
        payload: serde_json::json!({ "n": n }),
        replay_of: None,
        run: NewRun {
            dag_id: "hook".to_owned(),
            environment: "dev".to_owned(),
            version_id: version,
            run_type: RunType::Event,
            logical_date: now,
            interval_start: now,
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: Some("webhook form".to_owned()),
            deadline_at: None,
            preview: false,
        },
        batch,
    }
}

fn task() -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: "a".to_owned(),
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

#[tokio::test]
async fn a_repeated_key_sent_at_once_from_many_connections_makes_one_event_and_one_run() {
    let db = db(16).await;
    let version = dag(&db.store).await;
    let mut joins = Vec::new();
    for _ in 0..16 {
        let store = db.store.clone();
        joins.push(tokio::spawn(async move {
            store
                .accept_event(&event(version, Some("fill-1"), 0, None))
                .await
        }));
    }
    let mut answers = Vec::new();
    for j in joins {
        answers.push(
            j.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let firsts: Vec<_> = answers.iter().filter(|a| !a.duplicate).collect();
    assert_eq!(firsts.len(), 1, "{answers:?}");
    assert!(firsts[0].new_run);
    let runs: HashSet<Uuid> = answers.iter().map(|a| a.run_id).collect();
    let events: HashSet<Uuid> = answers.iter().map(|a| a.event_id).collect();
    assert_eq!((runs.len(), events.len()), (1, 1), "{answers:?}");
    let listed = db
        .store
        .dag_events("hook", "dev", None, None, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].run_state.as_deref(), Some("queued"));
    // Another key is another event with another run.
    let other = db
        .store
        .accept_event(&event(version, Some("fill-2"), 1, None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!other.duplicate && other.new_run);
    assert!(!runs.contains(&other.run_id));
    db.drop_db().await;
}

#[tokio::test]
async fn a_flood_fills_batches_of_at_most_max_events_and_every_event_has_one_run() {
    let db = db(8).await;
    let version = dag(&db.store).await;
    let rule = BatchRule {
        max_events: 500,
        max_wait: Duration::from_secs(3600),
    };
    let mut joins = Vec::new();
    for w in 0..8 {
        let store = db.store.clone();
        joins.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..125 {
                let n = w * 125 + i;
                got.push(
                    store
                        .accept_event(&event(version, None, n, Some(rule)))
                        .await
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            got
        }));
    }
    let mut per_run: HashMap<Uuid, usize> = HashMap::new();
    for j in joins {
        for a in j.await.unwrap_or_else(|e| panic!("{e}")) {
            *per_run.entry(a.run_id).or_default() += 1;
        }
    }
    assert_eq!(
        per_run.len(),
        2,
        "1,000 events in batches of 500: {per_run:?}"
    );
    assert!(per_run.values().all(|&n| n == 500), "{per_run:?}");
    for (run, n) in &per_run {
        let events = db
            .store
            .run_events(*run)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events.len(), *n);
    }
    // Both are full: both may start at once, long before their `max_wait`.
    let started = db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.len(), 2);
    db.drop_db().await;
}

#[tokio::test]
async fn a_gathering_batch_waits_until_due_and_a_started_run_takes_no_more_events() {
    let db = db(4).await;
    let version = dag(&db.store).await;
    let rule = BatchRule {
        max_events: 100,
        max_wait: Duration::from_secs(3600),
    };
    let first = db
        .store
        .accept_event(&event(version, None, 0, Some(rule)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = db
        .store
        .accept_event(&event(version, None, 1, Some(rule)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.new_run && !second.new_run);
    assert_eq!(first.run_id, second.run_id);
    // Neither full nor due: not started.
    let none = db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        none.is_empty(),
        "a gathering batch is not started: {none:?}"
    );
    assert!(
        db.store
            .runs_waiting_to_start()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(db.store.waiting_events("hook", "dev").await.ok(), Some(2));
    // Due: started, with its two events.
    sqlx::query("update dag_run set batch_until = now() - interval '1 second' where id = $1")
        .bind(first.run_id)
        .execute(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started, vec![first.run_id]);
    // The next event opens a new batch.
    let third = db
        .store
        .accept_event(&event(version, None, 2, Some(rule)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(third.new_run);
    assert_ne!(third.run_id, first.run_id);
    let events = db
        .store
        .run_events(first.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        events
            .iter()
            .map(|e| e.payload["n"].clone())
            .collect::<Vec<_>>(),
        vec![serde_json::json!(0), serde_json::json!(1)]
    );
    assert_eq!(db.store.waiting_events("hook", "dev").await.ok(), Some(1));
    db.drop_db().await;
}
