//! Replaying events: a replay is a new event with the original's trigger and payload in a new
//! run of type `replay`, committed with its audit event; a range replay keeps the original
//! runs' grouping and refuses empty and too-wide ranges and DAGs gone from the environment,
//! writing nothing then; replays of a paused DAG wait queued. Each test uses a database of
//! its own.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_store::{
    BatchRule, EventKind, MAX_REPLAY_EVENTS, NewEvent, NewRun, ReplayBy, RunType, Store,
    StoreError, TaskInstanceSpec, VersionSync,
};
use uuid::Uuid;

mod support;
use support::db;

const ADA: ReplayBy<'static> = ReplayBy {
    actor: "ada",
    deadline_at: None,
};

fn version_of(id: &str) -> VersionSync {
    VersionSync {
        dag_id: id.to_owned(),
        path: format!("{id}.yaml"),
        blob_id: format!("blob-{id}"),
        commit_sha: None,
        source: format!("id: {id}\ntasks:\n  - id: a\n    noop: {{}}\n"),
    }
}

async fn dag(store: &Store) -> i64 {
    let spec = serde_json::json!({ "name": "dev", "concurrency": 10 });
    store
        .upsert_environment("dev", 1, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .sync_versions("dev", &[version_of("hook"), version_of("other")], false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .dag_env("hook", "dev")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .version_id
}

fn event(version: i64, trigger: &str, n: usize, batch: Option<BatchRule>) -> NewEvent {
    let now = Utc::now();
    NewEvent {
        kind: EventKind::Webhook,
        trigger: trigger.to_owned(),
        source: "10.0.0.4".to_owned(),
        idempotency_key: Some(format!("fill-{trigger}-{n}")),
        payload: serde_json::json!({ "n": n, "email": format!("lead{n}@example.com") }),
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
            triggered_by: Some(format!("webhook {trigger}")),
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

fn ok<T>(r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn audits(store: &Store) -> Vec<(String, Option<Uuid>, serde_json::Value)> {
    ok(sqlx::query_as(
        "select actor, run_id, details from audit_event where action = 'event.replay' order by id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::from))
}

async fn received(store: &Store, id: Uuid) -> DateTime<Utc> {
    ok(store.event(id).await).received_at
}

#[tokio::test]
async fn one_event_replays_into_a_run_of_its_own_with_its_payload_and_an_audit_event() {
    let db = db(4).await;
    let version = dag(&db.store).await;
    let first = ok(db
        .store
        .accept_event(&event(version, "form", 1, None))
        .await);
    let done = ok(db.store.replay_event(first.event_id, ADA).await);
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.runs.len(), 1);
    let replay = &done.events[0];
    assert_eq!(replay.original, first.event_id);
    assert_eq!(replay.run_id, done.runs[0]);
    assert_ne!(replay.run_id, first.run_id);
    let e = ok(db.store.event(replay.event_id).await);
    let o = ok(db.store.event(first.event_id).await);
    assert_eq!(e.kind, "replay");
    assert_eq!(e.replay_of, Some(first.event_id));
    assert_eq!((e.trigger.as_str(), &e.payload), ("form", &o.payload));
    assert_eq!(e.idempotency_key, None, "a replay has no key of its own");
    assert_eq!(
        e.source,
        format!("replay by ada of event {}", first.event_id)
    );
    assert_eq!(e.run_state.as_deref(), Some("queued"));
    let run = ok(db.store.get_run(replay.run_id).await);
    assert_eq!(run.run_type, RunType::Replay);
    assert_eq!(run.triggered_by.as_deref(), Some("ada"));
    assert_eq!(run.version_id, version);
    assert_eq!(ok(db.store.run_events(run.id).await).len(), 1);
    assert_eq!(ok(db.store.replays_of(first.event_id).await), vec![e.id]);
    let logged = audits(&db.store).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].0, "ada");
    assert_eq!(logged[0].1, Some(run.id));
    assert_eq!(logged[0].2["event"], first.event_id.to_string());
    assert_eq!(logged[0].2["events"], 1);
    // A replay is replayed too: its replay points at it, with the same payload.
    let again = ok(db.store.replay_event(e.id, ADA).await);
    let e2 = ok(db.store.event(again.events[0].event_id).await);
    assert_eq!(e2.replay_of, Some(e.id));
    assert_eq!(e2.payload, o.payload);
    // The same key still answers the first event: replays did not take it.
    let repeat = ok(db
        .store
        .accept_event(&event(version, "form", 1, None))
        .await);
    assert!(repeat.duplicate);
    assert_eq!(repeat.event_id, first.event_id);
    // No such event.
    assert!(matches!(
        db.store.replay_event(Uuid::now_v7(), ADA).await,
        Err(StoreError::NotFound(_))
    ));
    db.drop_db().await;
}

#[tokio::test]
async fn a_range_replay_keeps_the_batches_of_the_original_runs_and_skips_earlier_replays() {
    let db = db(4).await;
    let version = dag(&db.store).await;
    let rule = BatchRule {
        max_events: 3,
        max_wait: Duration::from_secs(3600),
    };
    let before = ok(db
        .store
        .accept_event(&event(version, "form", 0, None))
        .await);
    let start = Utc::now();
    // A full batch of three, then two events with runs of their own (another trigger).
    let mut batch = Vec::new();
    for n in 1..=3 {
        batch.push(ok(db
            .store
            .accept_event(&event(version, "flood", n, Some(rule)))
            .await));
    }
    let single = [
        ok(db
            .store
            .accept_event(&event(version, "form", 4, None))
            .await),
        ok(db
            .store
            .accept_event(&event(version, "form", 5, None))
            .await),
    ];
    let end = Utc::now() + chrono::Duration::milliseconds(1);
    assert!(batch.iter().all(|a| a.run_id == batch[0].run_id));
    assert!(received(&db.store, before.event_id).await < start);

    let done = ok(db.store.replay_range("hook", "dev", start, end, ADA).await);
    assert_eq!(done.events.len(), 5, "{done:?}");
    assert_eq!(done.runs.len(), 3, "the batch replays as one run: {done:?}");
    let originals: Vec<Uuid> = done.events.iter().map(|e| e.original).collect();
    let expected: Vec<Uuid> = batch
        .iter()
        .chain(single.iter())
        .map(|a| a.event_id)
        .collect();
    assert_eq!(originals, expected, "in the order received");
    let batch_runs: HashSet<Uuid> = done.events[..3].iter().map(|e| e.run_id).collect();
    assert_eq!(batch_runs.len(), 1);
    let batch_run = ok(db.store.get_run(done.runs[0]).await);
    assert_eq!(batch_run.run_type, RunType::Replay);
    let in_batch = ok(db.store.run_events(batch_run.id).await);
    assert_eq!(
        in_batch
            .iter()
            .map(|e| e.payload["n"].clone())
            .collect::<Vec<_>>(),
        vec![
            serde_json::json!(1),
            serde_json::json!(2),
            serde_json::json!(3)
        ]
    );
    assert!(in_batch.iter().all(|e| e.trigger == "flood"));
    assert_ne!(done.events[3].run_id, done.events[4].run_id);
    // The runs start in the order of their first events.
    let runs: Vec<_> = {
        let mut v = Vec::new();
        for r in &done.runs {
            v.push(ok(db.store.get_run(*r).await));
        }
        v
    };
    assert!(
        runs.windows(2)
            .all(|w| w[0].logical_date < w[1].logical_date)
    );
    let started = ok(db
        .store
        .start_queued_runs("hook", "dev", 100, None, |_, _| Some(vec![task()]))
        .await);
    assert!(
        done.runs.iter().all(|r| started.contains(r)),
        "replay runs start as any run: {started:?}"
    );
    let logged = audits(&db.store).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].2["events"].clone(), logged[0].2["runs"].clone()),
        (5.into(), 3.into())
    );
    assert_eq!(logged[0].2["from"], serde_json::json!(start));

    // A range over everything now replays the originals again, not the replays just made.
    let all = ok(db
        .store
        .replay_range(
            "hook",
            "dev",
            start,
            Utc::now() + chrono::Duration::seconds(1),
            ADA,
        )
        .await);
    assert_eq!(
        all.events.iter().map(|e| e.original).collect::<Vec<_>>(),
        expected
    );
    db.drop_db().await;
}

#[tokio::test]
async fn empty_and_too_wide_ranges_and_dags_gone_are_refused_and_write_nothing() {
    let db = db(4).await;
    let version = dag(&db.store).await;
    let long_ago = Utc::now() - chrono::Duration::days(30);
    let a_bit_later = long_ago + chrono::Duration::hours(1);
    match db
        .store
        .replay_range("hook", "dev", long_ago, a_bit_later, ADA)
        .await
    {
        Err(StoreError::Invalid(m)) => {
            assert!(m.starts_with("no events between "), "{m}");
            assert!(m.contains("nothing to replay"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    match db
        .store
        .replay_range("hook", "dev", a_bit_later, long_ago, ADA)
        .await
    {
        Err(StoreError::Invalid(m)) => assert!(m.contains("before it starts"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Only replays in the range: said so.
    let e = ok(db
        .store
        .accept_event(&event(version, "form", 1, None))
        .await);
    let start = Utc::now();
    ok(db.store.replay_event(e.event_id, ADA).await);
    match db
        .store
        .replay_range(
            "hook",
            "dev",
            start,
            Utc::now() + chrono::Duration::seconds(1),
            ADA,
        )
        .await
    {
        Err(StoreError::Invalid(m)) => assert!(m.contains("but 1 replay"), "{m}"),
        other => panic!("{other:?}"),
    }
    // 10,001 events in the range: refused, with how many and what to do.
    let wide_from = Utc::now() - chrono::Duration::days(3);
    ok(sqlx::query(
        "insert into event (id, environment, dag_id, trigger, kind, source, payload, received_at) \
         select gen_random_uuid(), 'dev', 'hook', 'form', 'webhook', '10.0.0.4', jsonb_build_object('n', i), \
                $1 + i * interval '1 millisecond' \
         from generate_series(1, $2) i",
    )
    .bind(wide_from)
    .bind(MAX_REPLAY_EVENTS + 1)
    .execute(db.store.pool())
    .await
    .map_err(StoreError::from));
    let wide_to = wide_from + chrono::Duration::days(1);
    let all_runs = drover_store::RunFilter {
        limit: 100_000,
        ..Default::default()
    };
    let runs_before = ok(db.store.list_runs(&all_runs).await).len();
    match db
        .store
        .replay_range("hook", "dev", wide_from, wide_to, ADA)
        .await
    {
        Err(StoreError::Invalid(m)) => {
            assert!(m.starts_with("10,001 events arrived between "), "{m}");
            assert!(m.ends_with("narrow the range"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // Exactly the limit is fine.
    let limit_to = wide_from + chrono::Duration::milliseconds(MAX_REPLAY_EVENTS + 1);
    let done = ok(db
        .store
        .replay_range("hook", "dev", wide_from, limit_to, ADA)
        .await);
    assert_eq!(done.events.len() as i64, MAX_REPLAY_EVENTS);
    assert_eq!(
        done.runs.len() as i64,
        MAX_REPLAY_EVENTS,
        "one run per event without a run"
    );
    let runs_after = ok(db.store.list_runs(&all_runs).await).len();
    assert_eq!(runs_after, runs_before + MAX_REPLAY_EVENTS as usize);

    // The DAG's file removed from the environment: its events are kept, not replayable.
    ok(db
        .store
        .sync_versions("dev", &[version_of("other")], false)
        .await);
    let replays_before = audits(&db.store).await.len();
    match db.store.replay_event(e.event_id, ADA).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("`hook` is no longer in `dev`"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    match db
        .store
        .replay_range("gone", "dev", wide_from, wide_to, ADA)
        .await
    {
        Err(StoreError::NotFound(m)) => assert!(m.contains("no DAG `gone`"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        audits(&db.store).await.len(),
        replays_before,
        "nothing recorded"
    );
    assert_eq!(
        ok(db.store.replays_of(e.event_id).await).len(),
        1,
        "only the first replay"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn replays_of_a_paused_dag_wait_queued_while_other_runs_start() {
    let db = db(4).await;
    let version = dag(&db.store).await;
    let e = ok(db
        .store
        .accept_event(&event(version, "form", 1, None))
        .await);
    // The event's own run starts; then the DAG is paused and the event replayed.
    let started = ok(db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await);
    assert_eq!(started, vec![e.run_id]);
    assert!(ok(db.store.set_paused("hook", "dev", true, "ada").await));
    let replay = ok(db.store.replay_event(e.event_id, ADA).await).runs[0];
    let now = Utc::now();
    let manual = ok(db
        .store
        .insert_run(&NewRun {
            dag_id: "hook".to_owned(),
            environment: "dev".to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: now,
            interval_start: now,
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: Some("ada".to_owned()),
            deadline_at: None,
            preview: false,
        })
        .await)
    .unwrap_or_else(|| panic!("manual run not created"));
    // The replay is older than the manual run, so it would start first: it waits instead.
    let waiting = ok(db.store.runs_waiting_to_start().await);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let started = ok(db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await);
    assert_eq!(
        started,
        vec![manual],
        "the manual run starts, the replay waits"
    );
    assert_eq!(
        ok(db.store.get_run(replay).await).state,
        drover_store::RunState::Queued
    );
    assert_eq!(ok(db.store.waiting_events("hook", "dev").await), 1);
    assert!(ok(db.store.runs_waiting_to_start().await).is_empty());
    // Unpaused: it starts.
    assert!(ok(db.store.set_paused("hook", "dev", false, "ada").await));
    let started = ok(db
        .store
        .start_queued_runs("hook", "dev", 10, None, |_, _| Some(vec![task()]))
        .await);
    assert_eq!(started, vec![replay]);
    db.drop_db().await;
}
