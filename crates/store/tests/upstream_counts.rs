//! Each task instance's upstream counters (`up_success`, `up_failed`, `up_skipped`) and its
//! `downstream` list stay what its upstream rows say through every state change: completions,
//! skips and upstream failures by every trigger rule, retries, the reaper, clearing, marking a
//! run by hand, and an upgrade of a database whose rows predate them. A wide fan-in's sink is
//! queued exactly once, by the last completion, however the completions interleave.
//! Each test uses a database of its own on the Postgres at DROVER_TEST_DATABASE_URL
//! (default 127.0.0.1:5432).

use std::collections::{HashMap, HashSet};

mod support;
use support::db;

use chrono::Utc;
use drover_store::{
    Completion, NewRun, Outcome, RunState, RunType, Store, TaskInstanceSpec, TaskState, VersionSync,
};
use uuid::Uuid;

fn task(id: &str, upstream: &[&str], rule: &str) -> TaskInstanceSpec {
    TaskInstanceSpec {
        task_id: id.to_owned(),
        upstream: upstream.iter().map(|s| (*s).to_owned()).collect(),
        trigger_rule: rule.to_owned(),
        is_leaf: false,
        priority: 0,
        retries: 0,
        retry_delay_secs: 0,
        retry_backoff: "constant".to_owned(),
        max_retry_delay_secs: 0,
        timeout_secs: 60,
        deadline_at: None,
    }
}

async fn setup_dag(store: &Store) -> i64 {
    let spec = serde_json::json!({ "name": "dev", "concurrency": 10000 });
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

/// A manual run of `tasks`, started.
async fn started_run(store: &Store, tasks: Vec<TaskInstanceSpec>) -> Uuid {
    let version = setup_dag(store).await;
    let run = queued_run(store, version).await;
    let started = store
        .start_queued_runs("d", "dev", 1, None, |_, _| Some(tasks.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started, vec![run]);
    run
}

async fn queued_run(store: &Store, version: i64) -> Uuid {
    let at = Utc::now();
    store
        .insert_run(&NewRun {
            dag_id: "d".to_owned(),
            environment: "dev".to_owned(),
            version_id: version,
            run_type: RunType::Manual,
            logical_date: at,
            interval_start: at,
            interval_end: at,
            params: serde_json::json!({}),
            triggered_by: None,
            deadline_at: None,
            preview: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run not created"))
}

/// Every task instance of `run` whose counters or downstream list differ from what its
/// upstream rows say, recomputed the slow way; none means they are right.
async fn wrong_counters(store: &Store, run: Uuid) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "select format('%s: stored total %s success %s failed %s skipped %s downstream %s; \
                        actual total %s success %s failed %s skipped %s downstream %s', \
                       t.task_id, t.up_total, t.up_success, t.up_failed, t.up_skipped, \
                       array(select unnest(t.downstream) order by 1), \
                       c.total, c.success, c.failed, c.skipped, dn.downstream) \
         from task_instance t \
         cross join lateral ( \
           select count(*)::int as total, \
                  count(*) filter (where u.state = 'success')::int as success, \
                  count(*) filter (where u.state in ('failed', 'upstream_failed'))::int as failed, \
                  count(*) filter (where u.state = 'skipped')::int as skipped \
           from (select distinct x from unnest(t.upstream) x) e(up) \
           left join task_instance u on u.run_id = t.run_id and u.task_id = e.up) c \
         cross join lateral ( \
           select array(select d.task_id from task_instance d \
                        where d.run_id = t.run_id and t.task_id = any(d.upstream) order by 1) as downstream) dn \
         where t.run_id = $1 \
           and ((t.up_total, t.up_success, t.up_failed, t.up_skipped) \
                  is distinct from (c.total, c.success, c.failed, c.skipped) \
                or array(select unnest(t.downstream) order by 1) <> dn.downstream) \
         order by t.id",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter().map(|r| r.0).collect()
}

async fn assert_counters(store: &Store, run: Uuid, when: &str) {
    let wrong = wrong_counters(store, run).await;
    assert!(wrong.is_empty(), "{when}: wrong counters: {wrong:#?}");
}

async fn states(store: &Store, run: Uuid) -> HashMap<String, TaskState> {
    store
        .task_instances(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|t| (t.task_id, t.state.0))
        .collect()
}

fn failure(retryable: bool) -> Outcome {
    Outcome::Failed {
        error: "boom".to_owned(),
        exit_code: Some(1),
        retryable,
    }
}

/// Claim and complete everything claimable, one task at a time (so each completion is a
/// statement of its own), failing the tasks in `failing`; the counters are checked after every
/// completion.
async fn run_all(store: &Store, run: Uuid, failing: &HashSet<&str>) {
    loop {
        let claimed = store
            .claim("w", 1, 30.0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(c) = claimed.into_iter().next() else {
            return;
        };
        let outcome = if failing.contains(c.task_id.as_str()) {
            failure(false)
        } else {
            Outcome::Success
        };
        let done = store
            .complete(
                "w",
                &[Completion {
                    ti_id: c.ti_id,
                    try_number: c.try_number,
                    outcome,
                }],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.accepted, vec![c.ti_id]);
        assert_counters(store, run, &format!("after {}", c.task_id)).await;
    }
}

#[tokio::test]
async fn every_trigger_rule_decides_from_the_counters() {
    let db = db(8).await;
    // `bad` fails first, then `ok` succeeds and `skip` is skipped (all_failed with a
    // successful upstream); each rule then sees one of each, or only successes and skips, or
    // only skips; and a task after each sees how that one ended (skipped and upstream_failed
    // propagate). Rules decide as early as they can, so the order matters: tasks are claimed
    // in the order they are listed.
    let mut tasks = vec![
        task("bad", &[], "all_success"),
        task("ok", &[], "all_success"),
        task("skip", &["ok"], "all_failed"),
    ];
    let rules = [
        "all_success",
        "all_failed",
        "all_done",
        "one_success",
        "one_failed",
        "none_failed",
        "none_failed_min_one_success",
        "always",
    ];
    for rule in rules {
        assert!(
            drover_spec::dag::TriggerRule::parse(rule).is_some(),
            "{rule} is no rule"
        );
        tasks.push(task(&format!("mixed_{rule}"), &["ok", "bad", "skip"], rule));
        tasks.push(task(&format!("clean_{rule}"), &["ok", "skip"], rule));
        tasks.push(task(&format!("skipped_{rule}"), &["skip"], rule));
        tasks.push(task(
            &format!("after_{rule}"),
            &[&format!("mixed_{rule}")],
            "all_success",
        ));
    }
    assert_eq!(
        drover_spec::dag::TriggerRule::ALL.len(),
        rules.len(),
        "a trigger rule is not tested"
    );
    let run = started_run(&db.store, tasks).await;
    assert_counters(&db.store, run, "at the start").await;
    run_all(&db.store, run, &HashSet::from(["bad"])).await;
    let got = states(&db.store, run).await;
    use TaskState::{Failed, Skipped, Success, UpstreamFailed};
    let want = [
        // one success, one failure, one skip
        ("mixed_all_success", UpstreamFailed),
        ("mixed_all_failed", Skipped),
        ("mixed_all_done", Success),
        ("mixed_one_success", Success),
        ("mixed_one_failed", Success),
        ("mixed_none_failed", UpstreamFailed),
        ("mixed_none_failed_min_one_success", UpstreamFailed),
        ("mixed_always", Success),
        // one success, one skip
        ("clean_all_success", Skipped),
        ("clean_all_failed", Skipped),
        ("clean_all_done", Success),
        ("clean_one_success", Success),
        ("clean_one_failed", Skipped),
        ("clean_none_failed", Success),
        ("clean_none_failed_min_one_success", Success),
        ("clean_always", Success),
        // only a skip
        ("skipped_all_success", Skipped),
        ("skipped_all_failed", Skipped),
        ("skipped_all_done", Success),
        ("skipped_one_success", Skipped),
        ("skipped_one_failed", Skipped),
        ("skipped_none_failed", Success),
        ("skipped_none_failed_min_one_success", Skipped),
        ("skipped_always", Success),
        // all_success after each mixed one
        ("after_all_success", UpstreamFailed),
        ("after_all_failed", Skipped),
        ("after_all_done", Success),
        ("after_always", Success),
        ("after_none_failed", UpstreamFailed),
        ("ok", Success),
        ("bad", Failed),
        ("skip", Skipped),
    ];
    for (id, state) in want {
        assert_eq!(got.get(id), Some(&state), "{id}");
    }
    assert_counters(&db.store, run, "at the end").await;
    let run_row = db
        .store
        .get_run(run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run_row.state, RunState::Failed);
    db.drop_db().await;
}

#[tokio::test]
async fn a_retry_counts_once_when_it_ends() {
    let db = db(8).await;
    let mut flaky = task("flaky", &[], "all_success");
    flaky.retries = 1;
    let run = started_run(
        &db.store,
        vec![flaky, task("after", &["flaky"], "all_success")],
    )
    .await;
    let c = db.store.claim("w", 1, 30.0).await.unwrap_or_default();
    assert_eq!(c.len(), 1);
    db.store
        .complete(
            "w",
            &[Completion {
                ti_id: c[0].ti_id,
                try_number: c[0].try_number,
                outcome: failure(true),
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = states(&db.store, run).await;
    assert_eq!(got.get("flaky"), Some(&TaskState::UpForRetry));
    assert_eq!(got.get("after"), Some(&TaskState::Pending));
    assert_counters(&db.store, run, "up for retry").await;
    assert!(db.store.queue_due_retries().await.unwrap_or(false));
    assert_counters(&db.store, run, "queued again").await;
    run_all(&db.store, run, &HashSet::new()).await;
    let got = states(&db.store, run).await;
    assert_eq!(got.get("flaky"), Some(&TaskState::Success));
    assert_eq!(got.get("after"), Some(&TaskState::Success));
    db.drop_db().await;
}

#[tokio::test]
async fn a_lost_lease_reaped_until_it_fails_counts_as_a_failure() {
    let db = db(8).await;
    let run = started_run(
        &db.store,
        vec![
            task("a", &[], "all_success"),
            task("b", &["a"], "all_success"),
            task("c", &["b"], "all_done"),
        ],
    )
    .await;
    for loss in 1..=drover_store::LOST_LIMIT {
        let c = db.store.claim("w", 1, 30.0).await.unwrap_or_default();
        assert_eq!(c.len(), 1, "loss {loss}: a claimed");
        sqlx::query("update task_instance set lease_until = now() - interval '1 second' where state = 'running'")
            .execute(db.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reaped = db
            .store
            .reap_expired_leases()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reaped.len(), 1);
        assert_counters(&db.store, run, &format!("loss {loss}")).await;
    }
    let got = states(&db.store, run).await;
    assert_eq!(got.get("a"), Some(&TaskState::Failed));
    assert_eq!(got.get("b"), Some(&TaskState::UpstreamFailed));
    assert_eq!(got.get("c"), Some(&TaskState::Queued));
    run_all(&db.store, run, &HashSet::new()).await;
    assert_eq!(
        db.store.get_run(run).await.map(|r| r.state).ok(),
        Some(RunState::Failed)
    );
    db.drop_db().await;
}

#[tokio::test]
async fn clearing_takes_the_counts_back_and_the_rerun_counts_again() {
    let db = db(8).await;
    let run = started_run(
        &db.store,
        vec![
            task("a", &[], "all_success"),
            task("b", &["a"], "all_success"),
            task("c", &["a", "b"], "all_success"),
        ],
    )
    .await;
    run_all(&db.store, run, &HashSet::from(["b"])).await;
    let got = states(&db.store, run).await;
    assert_eq!(got.get("b"), Some(&TaskState::Failed));
    assert_eq!(got.get("c"), Some(&TaskState::UpstreamFailed));
    // Clear the failed task and the one after it: both pending, their counts taken back, and
    // `b` (its upstream succeeded) queued at once.
    db.store
        .clear_tasks(run, &["b".to_owned(), "c".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_counters(&db.store, run, "cleared").await;
    let got = states(&db.store, run).await;
    assert_eq!(got.get("b"), Some(&TaskState::Queued));
    assert_eq!(got.get("c"), Some(&TaskState::Pending));
    run_all(&db.store, run, &HashSet::new()).await;
    assert_eq!(
        states(&db.store, run).await.get("c"),
        Some(&TaskState::Success)
    );
    assert_eq!(
        db.store.get_run(run).await.map(|r| r.state).ok(),
        Some(RunState::Success)
    );
    // Clearing the root alone takes its success out of both downstream counters.
    db.store
        .clear_tasks(run, &["a".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_counters(&db.store, run, "root cleared").await;
    let (success,): (i32,) =
        sqlx::query_as("select up_success from task_instance where run_id = $1 and task_id = 'c'")
            .bind(run)
            .fetch_one(db.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(success, 1, "c counts b's success, no longer a's");
    // Marking the run by hand moves every unfinished task, and the counters with them.
    db.store
        .mark_run(run, RunState::Failed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_counters(&db.store, run, "marked failed").await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_fan_in_of_2000_queues_its_sink_once_after_the_last_upstream() {
    const WIDTH: usize = 2000;
    let db = db(16).await;
    let ids: Vec<String> = (0..WIDTH).map(|i| format!("t{i:04}")).collect();
    let mut tasks = vec![task("root", &[], "all_success")];
    tasks.extend(ids.iter().map(|id| task(id, &["root"], "all_success")));
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    tasks.push(task("sink", &refs, "all_success"));
    let run = started_run(&db.store, tasks).await;
    let root = db.store.claim("w0", 1, 30.0).await.unwrap_or_default();
    assert_eq!(root.len(), 1);
    let done = db
        .store
        .complete(
            "w0",
            &[Completion {
                ti_id: root[0].ti_id,
                try_number: root[0].try_number,
                outcome: Outcome::Success,
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.queued, WIDTH);
    // Eight workers, each on connections of its own, claim and complete in batches of
    // various sizes at once; each adds up how many tasks its completions queued.
    let workers = (0..8_i64).map(|w| {
        let url = db.url.clone();
        tokio::spawn(async move {
            let store = Store::connect(&url, 2)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let name = format!("w{}", w + 1);
            let mut queued = 0;
            let mut sinks = 0;
            loop {
                let claimed = store
                    .claim(&name, 3 + w, 30.0)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if claimed.is_empty() {
                    // The sink may be queued by another worker's last completion.
                    let left: i64 = sqlx::query_scalar(
                        "select count(*) from task_instance where state in ('pending', 'queued', 'running') \
                         and task_id <> 'sink'",
                    )
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                    if left == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let done: Vec<Completion> = claimed
                    .iter()
                    .filter(|c| c.task_id != "sink")
                    .map(|c| Completion {
                        ti_id: c.ti_id,
                        try_number: c.try_number,
                        outcome: Outcome::Success,
                    })
                    .collect();
                sinks += claimed.len() - done.len();
                let r = store
                    .complete(&name, &done)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(r.accepted.len(), done.len());
                queued += r.queued;
            }
            store.pool().close().await;
            (queued, sinks)
        })
    });
    let mut queued = 0;
    let mut sinks = 0;
    for w in workers {
        let (q, s) = w.await.unwrap_or_else(|e| panic!("{e}"));
        queued += q;
        sinks += s;
    }
    assert_eq!(queued, 1, "completions queued the sink {queued} times");
    assert!(sinks <= 1, "the sink was claimed {sinks} times");
    let (state, up_success, queued_at, last): (String, i32, Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as(
            "select s.state, s.up_success, s.queued_at, \
                    (select max(finished_at) from task_instance u where u.run_id = s.run_id and u.task_id <> 'sink') \
             from task_instance s where s.run_id = $1 and s.task_id = 'sink'",
        )
        .bind(run)
        .fetch_one(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(up_success, i32::try_from(WIDTH).unwrap_or(0));
    assert!(
        state == "queued" || state == "running",
        "the sink is {state}"
    );
    assert!(
        queued_at >= last && queued_at.is_some(),
        "sink queued at {queued_at:?}, before the last upstream finished at {last:?}"
    );
    assert_counters(&db.store, run, "fan-in done").await;
    db.drop_db().await;
}

#[tokio::test]
async fn the_upgrade_counts_existing_rows_and_their_runs_go_on() {
    let db = support::empty_db(4).await;
    let migrator = sqlx::migrate::Migrator::new(std::path::Path::new("../../migrations"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before: i64 = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| *v < 20261221000001)
        .max()
        .unwrap_or_else(|| panic!("no migrations"));
    migrator
        .run_to(before, db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A running run of the schema before: a and b finished, e queued, the others waiting.
    let version = setup_dag(&db.store).await;
    let run = queued_run(&db.store, version).await;
    sqlx::query("update dag_run set state = 'running', started_at = now() where id = $1")
        .bind(run)
        .execute(db.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(
        "insert into task_instance (run_id, environment, task_id, state, upstream, trigger_rule, is_leaf, \
           retries, max_tries, retry_delay_secs, retry_backoff, max_retry_delay_secs, timeout_secs) \
         select $1, 'dev', t.id, t.state, t.up, t.rule, false, 0, 1, 0, 'constant', 0, 60 \
         from (values ('a', 'success', '{}'::text[], 'all_success'), \
                      ('b', 'failed', '{}', 'all_success'), \
                      ('c', 'pending', '{a,b}', 'all_done'), \
                      ('d', 'pending', '{a,a}', 'all_success'), \
                      ('e', 'queued', '{}', 'all_success'), \
                      ('f', 'pending', '{e,a}', 'all_success')) as t(id, state, up, rule)",
    )
    .bind(run)
    .execute(db.store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    db.store.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    assert_counters(&db.store, run, "after the upgrade").await;
    // The scheduler's sweep decides what waited on finished tasks ...
    let (queued, _) = db
        .store
        .evaluate_runs(&[run])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued, 2, "c and d");
    // ... and completions go on from the counters.
    run_all(&db.store, run, &HashSet::new()).await;
    let got = states(&db.store, run).await;
    for id in ["c", "d", "e", "f"] {
        assert_eq!(got.get(id), Some(&TaskState::Success), "{id}");
    }
    db.drop_db().await;
}
