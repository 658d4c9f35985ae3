//! Freshness in the store: a run that succeeds refreshes its DAG's data and a successful try
//! its task's, in the transaction that records them (a failed run, a preview and a mark do
//! not); data never refreshed counts from when its DAG came into the environment; a stale
//! episode opens once however many schedulers settle at once, never on data a refresh just
//! made fresh, and ends with the refresh; the per-tick reads touch no run or task instance.

mod support;
use support::db;

use chrono::{Duration, Utc};
use drover_store::{
    Completion, FreshnessRule, NewRun, Outcome, RunState, RunType, Store, TaskInstanceSpec,
    VersionSync,
};
use uuid::Uuid;

fn task(id: &str) -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: id.to_owned(),
        upstream: Vec::new(),
        trigger_rule: "all_success".to_owned(),
        is_leaf: true,
        priority: 0,
        retries: 0,
        retry_delay_secs: 60,
        retry_backoff: "constant".to_owned(),
        max_retry_delay_secs: 3600,
        timeout_secs: 60,
        deadline_at: None,
    }
}

async fn setup(store: &Store, dags: &[&str]) -> Vec<i64> {
    store
        .upsert_environment("dev", 1, &serde_json::json!({ "name": "dev" }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<VersionSync> = dags
        .iter()
        .map(|d| VersionSync {
            dag_id: (*d).to_owned(),
            path: format!("{d}.yaml"),
            blob_id: format!("blob-{d}"),
            commit_sha: None,
            source: format!("id: {d}\ntasks:\n  - id: a\n    noop: {{}}\n"),
        })
        .collect();
    store
        .sync_versions("dev", &files, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut versions = Vec::new();
    for d in dags {
        versions.push(
            store
                .dag_env(d, "dev")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .version_id,
        );
    }
    versions
}

fn rules(dag: &str, max_age_secs: i64) -> Vec<FreshnessRule> {
    ["", "a"]
        .iter()
        .map(|t| FreshnessRule {
            environment: "dev".to_owned(),
            dag_id: dag.to_owned(),
            task_id: (*t).to_owned(),
            max_age_secs,
        })
        .collect()
}

/// A manual run of `dag` with one task `a`, run to its end: `a` succeeds when `ok`.
async fn run_once(store: &Store, dag: &str, version: i64, preview: bool, ok: bool) -> Uuid {
    let now = Utc::now();
    let id = store
        .insert_run(&NewRun {
            dag_id: dag.to_owned(),
            environment: "dev".to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: now,
            interval_start: now - Duration::hours(1),
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: Some("test".to_owned()),
            deadline_at: None,
            preview,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not created"));
    assert!(
        store
            .start_run_now(id, &[task("a")])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let claimed = store
        .claim("w", 10, 30.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 1);
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failed {
            error: "boom".to_owned(),
            exit_code: Some(1),
            retryable: false,
        }
    };
    let done = store
        .complete(
            "w",
            &[Completion {
                ti_id: claimed[0].ti_id,
                try_number: claimed[0].try_number,
                outcome,
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let want = if ok {
        RunState::Success
    } else {
        RunState::Failed
    };
    assert_eq!(done.finished, vec![(id, want)]);
    id
}

async fn backdate_arrival(store: &Store, dag: &str, hours: i64) {
    sqlx::query(
        "update dag_env set added_at = now() - make_interval(hours => $2) where dag_id = $1",
    )
    .bind(dag)
    .bind(i32::try_from(hours).unwrap_or(0))
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn backdate_refreshes(store: &Store, dag: &str, hours: i64) {
    sqlx::query(
        "update data_refresh set refreshed_at = refreshed_at - make_interval(hours => $2) where dag_id = $1",
    )
    .bind(dag)
    .bind(i32::try_from(hours).unwrap_or(0))
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn open_episodes(store: &Store, dag: &str) -> Vec<(i64, String)> {
    sqlx::query_as(
        "select id, task_id from stale_episode where dag_id = $1 and cleared_at is null order by task_id",
    )
    .bind(dag)
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn only_a_run_that_succeeded_refreshes_and_never_a_preview_a_failure_or_a_mark() {
    let db = db(4).await;
    let store = &db.store;
    let v = setup(store, &["d"]).await[0];
    // Never refreshed: its age counts from when the DAG came into dev.
    backdate_arrival(store, "d", 3).await;
    let states = store
        .freshness(&rules("d", 7_200))
        .await
        .unwrap_or_default();
    assert_eq!(states.len(), 2);
    for s in &states {
        assert!(s.last_refreshed_at.is_none(), "{s:?}");
        assert!((3 * 3_600..3 * 3_600 + 60).contains(&s.age_secs), "{s:?}");
        assert!(s.stale, "3 h since it came, 2 h allowed: {s:?}");
    }
    // A preview that succeeded, a failed run, a run marked succeeded: none refreshes.
    run_once(store, "d", v, true, true).await;
    run_once(store, "d", v, false, false).await;
    let marked = run_once(store, "d", v, false, false).await;
    store
        .mark_run(marked, RunState::Success)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let states = store
        .freshness(&rules("d", 7_200))
        .await
        .unwrap_or_default();
    assert!(
        states
            .iter()
            .all(|s| s.last_refreshed_at.is_none() && s.stale),
        "{states:?}"
    );
    // A run that succeeds refreshes the DAG's data and its task's.
    let ok = run_once(store, "d", v, false, true).await;
    let states = store
        .freshness(&rules("d", 7_200))
        .await
        .unwrap_or_default();
    for s in &states {
        assert_eq!(s.last_refreshed_by, Some(ok), "{s:?}");
        assert!(!s.stale && s.age_secs < 60, "{s:?}");
    }
    // Later ones still do not move it back: a failure after it leaves it as it was.
    run_once(store, "d", v, false, false).await;
    let after = store
        .freshness(&rules("d", 7_200))
        .await
        .unwrap_or_default();
    assert!(
        after.iter().all(|s| s.last_refreshed_by == Some(ok)),
        "{after:?}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn an_episode_opens_once_whoever_settles_and_ends_with_the_refresh() {
    let db = db(16).await;
    let store = &db.store;
    let v = setup(store, &["d"]).await[0];
    backdate_arrival(store, "d", 3).await;
    let loaded = vec![("dev".to_owned(), "d".to_owned())];
    let rules = rules("d", 3_600);
    // Eight schedulers at once: the DAG's and the task's episode each open once.
    let settles = (0..8).map(|_| {
        let (store, rules, loaded) = (store.clone(), rules.clone(), loaded.clone());
        tokio::spawn(async move { store.settle_freshness(&rules, &loaded).await })
    });
    let mut opened = Vec::new();
    for s in settles {
        let changes = s
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        opened.extend(changes.opened);
    }
    assert_eq!(opened.len(), 2, "{opened:?}");
    let dag_episode = opened
        .iter()
        .find(|e| e.task_id.is_empty())
        .unwrap_or_else(|| panic!("{opened:?}"));
    assert_eq!(dag_episode.max_age_secs, 3_600);
    assert!(dag_episode.last_refreshed_at.is_none());
    let due = dag_episode.counted_from + Duration::hours(1);
    assert_eq!(dag_episode.stale_since, due);
    // Settling again opens nothing more.
    let again = store
        .settle_freshness(&rules, &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        again.opened.is_empty() && again.ended.is_empty(),
        "{again:?}"
    );
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where action = 'data.stale' and actor = 'drover'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or_default();
    assert_eq!(audited, 2);

    // The run that refreshes the data ends both episodes in its own transaction: no
    // scheduler is needed for it.
    let run = run_once(store, "d", v, false, true).await;
    assert!(open_episodes(store, "d").await.is_empty());
    let ended = store.ended_by_run(run).await.unwrap_or_default();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(
        ended
            .iter()
            .all(|e| e.cleared_because.as_deref() == Some("refreshed") && e.cleared_at.is_some())
    );
    let fresh: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where action = 'data.fresh' and run_id = $1",
    )
    .bind(run)
    .fetch_one(store.pool())
    .await
    .unwrap_or_default();
    assert_eq!(fresh, 2);

    // Stale again later: a new episode, counted from that refresh; the old one is history.
    backdate_refreshes(store, "d", 2).await;
    let changes = store
        .settle_freshness(&rules, &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.opened.len(), 2, "{changes:?}");
    assert!(changes.opened.iter().all(|e| e.last_refreshed_at.is_some()));
    let history = store
        .stale_episodes("dev", "d", 10)
        .await
        .unwrap_or_default();
    assert_eq!(history.len(), 4);

    // Nothing asks any more (its freshness was removed): the episodes end, not refreshed.
    let changes = store
        .settle_freshness(&[], &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.ended.len(), 2, "{changes:?}");
    assert!(
        changes
            .ended
            .iter()
            .all(|e| e.cleared_because.as_deref() == Some("not_required"))
    );
    // A DAG whose version could not be read (not `loaded`) keeps its episodes meanwhile.
    store
        .settle_freshness(&rules, &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = store
        .settle_freshness(&[], &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(kept.ended.is_empty(), "{kept:?}");
    assert_eq!(open_episodes(store, "d").await.len(), 2);
    db.drop_db().await;
}

/// Whether a statement containing `text` waits for a lock in this database.
async fn waits(store: &Store, text: &str) -> bool {
    sqlx::query_scalar(
        "select exists (select 1 from pg_stat_activity where datname = current_database() \
           and wait_event_type = 'Lock' and position($1 in query) > 0)",
    )
    .bind(text)
    .fetch_one(store.pool())
    .await
    .unwrap_or(false)
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A settle that runs while a refresh is written but not committed waits for it, and opens
/// no episode on the data it makes fresh (without the lock it would see the data stale, open
/// an episode the refresh's transaction never sees, and leave it open on fresh data).
#[tokio::test]
async fn a_settle_during_a_refresh_waits_for_it_and_opens_nothing() {
    let db = db(16).await;
    let store = &db.store;
    let v = setup(store, &["d"]).await[0];
    backdate_arrival(store, "d", 3).await;
    let loaded = vec![("dev".to_owned(), "d".to_owned())];
    let rules = rules("d", 3_600);
    // Rows of the never-refreshed data exist (a scheduler's earlier pass made them).
    store
        .settle_freshness(&[], &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("insert into data_refresh (environment, dag_id, task_id) values ('dev', 'd', ''), ('dev', 'd', 'a')")
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = Utc::now();
    let run = store
        .insert_run(&NewRun {
            dag_id: "d".to_owned(),
            environment: "dev".to_owned(),
            version_id: v,
            run_type: RunType::Manual,
            logical_date: now,
            interval_start: now - Duration::hours(1),
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: None,
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not created"));
    store
        .start_run_now(run, &[task("a")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = store
        .claim("w", 1, 30.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    // Hold the run's row: the completion writes the task's refresh, then waits to finish
    // the run, its transaction open.
    let mut holder = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("select 1 from dag_run where id = $1 for update")
        .bind(run)
        .execute(&mut *holder)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let completing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .complete(
                    "w",
                    &[Completion {
                        ti_id: claimed.ti_id,
                        try_number: claimed.try_number,
                        outcome: Outcome::Success,
                    }],
                )
                .await
        })
    };
    until("the completion to wait on the run", async || {
        waits(store, "update dag_run r set finished_at").await
    })
    .await;
    let settling = {
        let (store, rules, loaded) = (store.clone(), rules.clone(), loaded.clone());
        tokio::spawn(async move { store.settle_freshness(&rules, &loaded).await })
    };
    until("the settle to wait on the refresh, or end", async || {
        settling.is_finished() || waits(store, "select r.environment, r.dag_id, r.task_id").await
    })
    .await;
    holder.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    let done = completing
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.finished, vec![(run, RunState::Success)]);
    settling
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let states = store.freshness(&rules).await.unwrap_or_default();
    assert!(states.iter().all(|s| !s.stale), "{states:?}");
    assert_eq!(
        open_episodes(store, "d").await,
        Vec::<(i64, String)>::new(),
        "an episode is open on fresh data"
    );
    db.drop_db().await;
}

/// What the scheduler reads every tick, however many runs there are: never the runs or the
/// task instances, only a row per DAG (or task) and environment.
#[tokio::test]
async fn the_per_tick_reads_touch_no_run_or_task_instance() {
    // One connection: the statistics read at the end are this backend's own.
    let db = db(1).await;
    let store = &db.store;
    let dags: Vec<String> = (0..2_000).map(|i| format!("d{i:04}")).collect();
    let names: Vec<&str> = dags.iter().map(String::as_str).collect();
    let versions = setup(store, &names).await;
    // 20,000 finished runs with a task each, and a refresh of every DAG and task.
    sqlx::query(
        "insert into dag_run (id, dag_id, environment, version_id, run_type, logical_date, \
           interval_start, interval_end, state, started_at, finished_at) \
         select gen_random_uuid(), v.dag_id, 'dev', v.id, 'scheduled', \
                now() - make_interval(hours => g), now() - make_interval(hours => g + 1), \
                now() - make_interval(hours => g), 'success', now() - make_interval(hours => g), \
                now() - make_interval(hours => g) \
         from dag_version v cross join generate_series(1, 10) g",
    )
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "insert into task_instance (run_id, environment, task_id, state, trigger_rule, is_leaf, \
           try_number, max_tries, retries, retry_delay_secs, retry_backoff, max_retry_delay_secs, \
           timeout_secs, finished_at) \
         select id, 'dev', 'a', 'success', 'all_success', true, 1, 1, 0, 60, 'constant', 60, 60, finished_at \
         from dag_run",
    )
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "insert into data_refresh (environment, dag_id, task_id, refreshed_at, run_id) \
         select distinct on (dag_id, t) 'dev', dag_id, t, finished_at, id \
         from dag_run cross join (values (''), ('a')) x(t) order by dag_id, t, finished_at desc",
    )
    .execute(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("analyze")
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(versions.len(), 2_000);
    let stats = || async {
        sqlx::query("select pg_stat_force_next_flush()")
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The next statement reports what the ones before did.
        sqlx::query("select 1")
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("select pg_stat_clear_snapshot()")
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "select relname::text, coalesce(seq_scan, 0), coalesce(idx_scan, 0) \
             from pg_stat_user_tables \
             where relname in ('dag_run', 'task_instance', 'dag_env', 'data_refresh') \
             order by relname",
        )
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        rows
    };
    // A typical tick: a few DAGs declare freshness (one stale), the rest do not.
    let mut rules = Vec::new();
    for d in &dags[..20] {
        rules.extend(self::rules(d, 26 * 3_600));
    }
    rules.extend(self::rules(&dags[20], 600));
    let loaded: Vec<(String, String)> =
        dags.iter().map(|d| ("dev".to_owned(), d.clone())).collect();
    let before = stats().await;
    let changes = store
        .settle_freshness(&rules, &loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.opened.len(), 2, "{changes:?}");
    let states = store.freshness(&rules).await.unwrap_or_default();
    assert_eq!(states.iter().filter(|s| s.stale).count(), 2);
    let after = stats().await;
    let delta = |table: &str| {
        let of = |rows: &[(String, i64, i64)]| {
            rows.iter()
                .find(|r| r.0 == table)
                .map(|r| (r.1, r.2))
                .unwrap_or_default()
        };
        let (b, a) = (of(&before), of(&after));
        (a.0 - b.0, a.1 - b.1)
    };
    assert_eq!(
        delta("dag_run"),
        (0, 0),
        "runs were read: {before:?} → {after:?}"
    );
    assert_eq!(
        delta("task_instance"),
        (0, 0),
        "task instances were read: {before:?} → {after:?}"
    );
    // The rows they read are one per DAG (or task) and environment, whatever the history.
    let (seq, idx) = delta("data_refresh");
    assert!(
        seq + idx > 0,
        "the refreshes were not read: {before:?} → {after:?}"
    );
    db.drop_db().await;
}
