//! End-to-end tests of the engine: real `drover scheduler` and `drover worker` processes on a
//! real Postgres, each test with a database of its own.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_store::{RunFilter, RunRow, RunState, Store, TaskState};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, synced, wait_finished,
};
use uuid::Uuid;

async fn run_state(store: &Store, id: Uuid) -> RunState {
    store
        .get_run(id)
        .await
        .map(|r| r.state)
        .unwrap_or(RunState::Queued)
}

fn trigger(d: &Drover<'_>, dag: &str) -> Uuid {
    let out = d.ok(&["runs", "trigger", dag, "--env", "dev"]);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("run id `{out}`: {e}"))
}

async fn states(store: &Store, run: Uuid) -> HashMap<String, TaskState> {
    store
        .task_instances(run)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.task_id, t.state.0))
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Every task starts only after all its upstream tasks finished, and each has exactly one try,
/// which succeeded.
async fn assert_clean_run(store: &Store, run: Uuid) {
    let tis = store.task_instances(run).await.unwrap_or_default();
    assert!(!tis.is_empty());
    let by_id: HashMap<&str, _> = tis.iter().map(|t| (t.task_id.as_str(), t)).collect();
    for t in &tis {
        assert_eq!(t.state.0, TaskState::Success, "{} in {run}", t.task_id);
        let tries = store.task_tries(t.id).await.unwrap_or_default();
        assert_eq!(tries.len(), 1, "{}: tries {tries:?}", t.task_id);
        assert_eq!(tries[0].state, "success");
        for up in &t.upstream {
            let u = by_id[up.as_str()];
            assert!(
                u.finished_at <= t.started_at,
                "{} started before its upstream {up} finished",
                t.task_id
            );
        }
    }
}

#[test]
fn many_dags_two_schedulers_three_workers_each_task_succeeds_exactly_once() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let start = Utc::now() - chrono::Duration::minutes(70);
    let start = rfc3339(start);
    for i in 0..8 {
        ws.dag(
            &format!("dag_{i}"),
            &format!(
                "id: dag_{i}\nschedule: \"*/10 * * * *\"\nstart_date: {start}\ncatchup: true\nmax_active_runs: 3\n\
                 tasks:\n  - id: extract\n    noop: {{ sleep: 20ms }}\n  - id: left\n    depends_on: [extract]\n    noop: {{}}\n\
                 \x20 - id: right\n    depends_on: [extract]\n    noop: {{ sleep: 10ms }}\n  - id: join\n    depends_on: [left, right]\n    noop: {{}}\n\
                 \x20 - id: report\n    depends_on: [join]\n    command: {{ argv: [echo, \"{{{{ dag_id }}}} {{{{ ds }}}}\"] }}\n"
            ),
        );
    }
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s1 = d.scheduler("scheduler-1");
    let _s2 = d.scheduler("scheduler-2");
    let _w: Vec<_> = (0..3)
        .map(|i| d.worker(&format!("worker-{i}"), 4, 10.0))
        .collect();
    rt.block_on(async {
        let store = db.store().await;
        // 70 minutes of */10 since the start: at least 6 complete intervals per DAG.
        let runs = eventually(
            "every catchup run to finish",
            Duration::from_secs(120),
            || async {
                let runs = store
                    .list_runs(&RunFilter {
                        limit: 1000,
                        ..RunFilter::default()
                    })
                    .await
                    .ok()?;
                let per_dag = (0..8).map(|i| {
                    runs.iter()
                        .filter(|r| r.dag_id == format!("dag_{i}"))
                        .count()
                });
                (per_dag.clone().all(|n| n >= 6) && runs.iter().all(|r| r.state.is_finished()))
                    .then_some(runs)
            },
        )
        .await;
        let mut seen = std::collections::HashSet::new();
        for r in &runs {
            assert!(
                seen.insert((r.dag_id.clone(), r.logical_date)),
                "run created twice: {} {}",
                r.dag_id,
                r.logical_date
            );
            assert_eq!(
                r.state,
                RunState::Success,
                "{} {}",
                r.dag_id,
                r.logical_date
            );
            let (started, finished) = (
                r.started_at.unwrap_or(r.created_at),
                r.finished_at.unwrap_or(r.created_at),
            );
            assert!(
                r.created_at <= started && started <= finished,
                "states out of order for {}",
                r.id
            );
            assert_clean_run(&store, r.id).await;
        }
        // Consecutive intervals of each DAG are contiguous.
        for i in 0..8 {
            let mut mine: Vec<&RunRow> = runs
                .iter()
                .filter(|r| r.dag_id == format!("dag_{i}"))
                .collect();
            mine.sort_by_key(|r| r.logical_date);
            assert!(
                mine.windows(2)
                    .all(|w| w[0].interval_end == w[1].interval_start)
            );
        }
    });
}

#[test]
fn a_task_of_a_killed_worker_is_retried_after_its_lease_and_never_runs_twice_at_once() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let marker = format!("drover-test-{}", Uuid::new_v4().simple());
    ws.dag(
        "long",
        &format!(
            "id: long\ntasks:\n  - id: work\n    command: {{ shell: \"echo start; sh -c 'sleep 3; echo {marker}-inner'; echo {marker}-done\" }}\n  - id: after\n    depends_on: [work]\n    noop: {{}}\n"
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let mut w1 = d.worker("worker-1", 2, 2.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "long").await;
        let run = trigger(&d, "long");
        eventually("the long task to run", Duration::from_secs(20), || async {
            (states(&store, run).await.get("work") == Some(&TaskState::Running)).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        w1.kill9();
        // The task's processes die with their worker, the ones it started too (the worker's
        // warden stops the whole process group): no orphan keeps running.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for what in [format!("sleep 3; echo {marker}"), format!("{marker}-inner")] {
            let orphans = std::process::Command::new("pgrep")
                .arg("-f")
                .arg(&what)
                .output();
            let found = orphans.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            assert!(
                found
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or_default()
                    .is_empty(),
                "a process of the killed worker's task survived it ({what}): {found:?}"
            );
        }
        let _w2 = d.worker("worker-2", 2, 2.0);
        let finished = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(finished.state, RunState::Success);
        let ti = store
            .task_instances(run)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.task_id == "work");
        let ti = ti.unwrap_or_else(|| panic!("no work task"));
        assert_eq!((ti.try_number, ti.lost_count), (2, 1));
        let tries = store.task_tries(ti.id).await.unwrap_or_default();
        let summary: Vec<(i32, &str)> = tries
            .iter()
            .map(|t| (t.try_number, t.state.as_str()))
            .collect();
        assert_eq!(summary, vec![(1, "lost"), (2, "success")]);
        // The second try started only after the first one's lease had run out.
        assert!(
            tries[1].started_at
                >= tries[0]
                    .started_at
                    .map(|s| s + chrono::Duration::seconds(2))
        );
        let logs = d.ok(&["tasks", "logs", &run.to_string(), "work"]);
        assert_eq!(
            logs.matches(&format!("stdout] {marker}-done")).count(),
            1,
            "{logs}"
        );
    });
}

/// The pids `pgrep ARGS` finds.
fn pgrep(args: &[&str]) -> Vec<String> {
    std::process::Command::new("pgrep")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Processes running `pattern` in their command line.
fn running(pattern: &str) -> Vec<String> {
    pgrep(&["-f", pattern])
}

/// The pids of the worker's wardens (`drover __task-warden`, children of `worker`).
fn wardens(worker: i32) -> Vec<String> {
    pgrep(&["-P", &worker.to_string(), "-f", "__task-warden"])
}

#[test]
fn a_command_is_the_workers_own_child_and_nothing_it_leaves_behind_outlives_its_try() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let marker = format!("drover-test-{}", Uuid::new_v4().simple());
    let mut tasks = String::new();
    for i in 0..4 {
        // Each leaves a process behind in its group, holding its output open.
        tasks.push_str(&format!(
            "  - id: leave{i}\n    command: {{ shell: \"echo parent=$PPID; sh -c 'sleep 60; echo {marker}' & echo left\" }}\n"
        ));
    }
    ws.dag("leaves", &format!("id: leaves\ntasks:\n{tasks}"));
    ws.dag(
        "long",
        &format!(
            "id: long\ntasks:\n  - id: work\n    command: {{ shell: \"echo start; sh -c 'sleep 30; echo {marker}-inner'\" }}\n"
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let mut w = d.worker("worker-1", 4, 2.0);
    let worker = w.pid();
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "leaves").await;
        synced(&store, "long").await;
        let run = trigger(&d, "leaves");
        let finished = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(finished.state, RunState::Success);
        for i in 0..4 {
            let logs = d.ok(&["tasks", "logs", &run.to_string(), &format!("leave{i}")]);
            // Started by the worker itself: no process between them.
            assert!(logs.contains(&format!("stdout] parent={worker}")), "{logs}");
            assert!(
                logs.contains("leaving processes in its group behind: stopping them"),
                "{logs}"
            );
        }
        // Stopped before the try was recorded as finished.
        assert_eq!(
            running(&format!("sleep 60; echo {marker}")),
            Vec::<String>::new()
        );
        // One warden for the worker, however many tasks it ran.
        let first = wardens(worker);
        assert_eq!(first.len(), 1, "wardens of the worker: {first:?}");

        // A warden that dies is replaced, and the next one still stops what a killed
        // worker's task started.
        let killed = std::process::Command::new("kill")
            .args(["-9", &first[0]])
            .status()
            .map(|s| s.success());
        assert_eq!(killed.ok(), Some(true));
        let run = trigger(&d, "long");
        eventually(
            "the long task to start its inner process",
            Duration::from_secs(20),
            || async {
                (!running(&format!("sleep 30; echo {marker}-inner")).is_empty()).then_some(())
            },
        )
        .await;
        let second = wardens(worker);
        assert_eq!(second.len(), 1, "wardens of the worker: {second:?}");
        assert_ne!(second, first);
        w.kill9();
        eventually(
            "the killed worker's task processes to stop",
            Duration::from_secs(10),
            || async {
                running(&format!("sleep 30; echo {marker}-inner"))
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        eventually(
            "the warden to exit after its worker",
            Duration::from_secs(10),
            || async {
                running("__task-warden")
                    .iter()
                    .all(|p| !second.contains(p))
                    .then_some(())
            },
        )
        .await;
        assert_eq!(run_state(&store, run).await, RunState::Running);
    });
}

#[test]
fn a_killed_scheduler_is_replaced_and_nothing_is_lost() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let start = rfc3339(Utc::now() - chrono::Duration::minutes(60));
    ws.dag(
        "steady",
        &format!(
            "id: steady\nschedule: \"*/5 * * * *\"\nstart_date: {start}\ncatchup: true\nmax_active_runs: 1\n\
             tasks:\n  - id: a\n    noop: {{ sleep: 200ms }}\n  - id: b\n    depends_on: [a]\n    noop: {{ sleep: 200ms }}\n"
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let mut s1 = d.scheduler("scheduler-1");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        eventually("a few runs to finish", Duration::from_secs(60), || async {
            let runs = store
                .list_runs(&RunFilter {
                    limit: 100,
                    ..RunFilter::default()
                })
                .await
                .ok()?;
            (runs.iter().filter(|r| r.state == RunState::Success).count() >= 2).then_some(())
        })
        .await;
        s1.kill9();
        let _s2 = d.scheduler("scheduler-2");
        let runs = eventually(
            "every run to finish under the new scheduler",
            Duration::from_secs(90),
            || async {
                let runs = store
                    .list_runs(&RunFilter {
                        limit: 100,
                        ..RunFilter::default()
                    })
                    .await
                    .ok()?;
                (runs.len() >= 10 && runs.iter().all(|r| r.state == RunState::Success))
                    .then_some(runs)
            },
        )
        .await;
        let mut dates: Vec<_> = runs.iter().map(|r| r.logical_date).collect();
        dates.sort();
        dates.dedup();
        assert_eq!(dates.len(), runs.len(), "a run was created twice");
        for r in &runs {
            assert_clean_run(&store, r.id).await;
        }
        // max_active_runs: 1 held throughout: no two runs overlapped.
        let mut spans: Vec<_> = runs.iter().map(|r| (r.started_at, r.finished_at)).collect();
        spans.sort();
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "runs overlapped: {spans:?}"
        );
    });
}

#[test]
fn the_system_survives_a_postgres_restart() {
    let _turn = serial();
    let rt = runtime();
    let pg = support::pg::PrivatePg::start();
    let db = TestDb::new(&pg.pg.url("postgres"));
    let ws = Workspace::new();
    ws.dag(
        "chain",
        "id: chain\ntasks:\n  - id: a\n    noop: { sleep: 1s }\n  - id: b\n    depends_on: [a]\n    noop: { sleep: 1s }\n  - id: c\n    depends_on: [b]\n    noop: { sleep: 1s }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 20.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "chain").await;
        let run = trigger(&d, "chain");
        eventually("the run to start", Duration::from_secs(20), || async {
            (run_state(&store, run).await == RunState::Running).then_some(())
        })
        .await;
        drop(store);
        pg.pg.restart().unwrap_or_else(|e| panic!("restart: {e}"));
        let store = db.store().await;
        let finished = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(finished.state, RunState::Success);
        // And the processes still work after the restart.
        let again = trigger(&d, "chain");
        assert_eq!(
            wait_finished(&store, again, Duration::from_secs(60))
                .await
                .state,
            RunState::Success
        );
    });
}

#[test]
fn retries_back_off_and_a_flaky_task_recovers() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let marker = ws.path().join("flaky-marker");
    ws.dag(
        "retries",
        &format!(
            "id: retries\ndefaults: {{ retries: 2, retry_delay: 1s, retry_backoff: exponential }}\ntasks:\n\
             \x20 - id: always_fails\n    command: {{ shell: \"echo boom >&2; exit 3\" }}\n\
             \x20 - id: flaky\n    command: {{ shell: \"test -f {m} && exit 0; touch {m}; exit 1\" }}\n",
            m = marker.display()
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "retries").await;
        let run = trigger(&d, "retries");
        let finished = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(finished.state, RunState::Failed);
        let tis = store.task_instances(run).await.unwrap_or_default();
        let fails = tis
            .iter()
            .find(|t| t.task_id == "always_fails")
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!((fails.state.0, fails.try_number), (TaskState::Failed, 3));
        assert_eq!(fails.last_error.as_deref(), Some("exited with code 3"));
        let tries = store.task_tries(fails.id).await.unwrap_or_default();
        let gap = |a: usize, b: usize| {
            (tries[b].started_at.unwrap_or_default() - tries[a].finished_at.unwrap_or_default())
                .num_milliseconds()
        };
        // Exponential: 1 s before the second try, 2 s before the third.
        assert!(gap(0, 1) >= 1000, "first retry after {} ms", gap(0, 1));
        assert!(gap(1, 2) >= 2000, "second retry after {} ms", gap(1, 2));
        let flaky = tis
            .iter()
            .find(|t| t.task_id == "flaky")
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!((flaky.state.0, flaky.try_number), (TaskState::Success, 2));
        let logs = d.ok(&[
            "tasks",
            "logs",
            &run.to_string(),
            "always_fails",
            "--try",
            "3",
        ]);
        assert!(logs.contains("boom") && !logs.contains("[try 1"), "{logs}");
    });
}

#[test]
fn a_task_past_its_timeout_is_stopped_and_failed() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let marker = format!("{}", 40 + (Uuid::new_v4().as_u128() % 50) as u32);
    ws.dag("slow", &format!("id: slow\ntasks:\n  - id: sleepy\n    timeout: 1s\n    command: {{ argv: [sleep, \"{marker}.5\"] }}\n"));
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "slow").await;
        let run = trigger(&d, "slow");
        let finished = wait_finished(&store, run, Duration::from_secs(30)).await;
        assert_eq!(finished.state, RunState::Failed);
        let ti = store
            .task_instances(run)
            .await
            .unwrap_or_default()
            .remove(0);
        assert_eq!(ti.last_error.as_deref(), Some("timed out after 1s"));
        let ran = (ti.finished_at.unwrap_or_default() - ti.started_at.unwrap_or_default())
            .num_milliseconds();
        assert!((900..10_000).contains(&ran), "ran {ran} ms");
        let left = std::process::Command::new("pgrep")
            .arg("-f")
            .arg(format!("sleep {marker}.5"))
            .output();
        assert!(
            left.map(|o| o.stdout.is_empty()).unwrap_or(true),
            "the timed-out process is still running"
        );
    });
}

#[test]
fn trigger_rules_decide_which_tasks_run() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "rules",
        "id: rules\ntasks:\n\
         \x20 - id: bad\n    noop: { fail: true }\n\
         \x20 - id: good\n    noop: {}\n\
         \x20 - id: needs_all\n    depends_on: [bad, good]\n    noop: {}\n\
         \x20 - id: after_all_done\n    depends_on: [bad, good]\n    trigger_rule: all_done\n    noop: {}\n\
         \x20 - id: after_one_success\n    depends_on: [bad, good]\n    trigger_rule: one_success\n    noop: {}\n\
         \x20 - id: on_failure\n    depends_on: [bad]\n    trigger_rule: one_failed\n    noop: {}\n\
         \x20 - id: only_if_all_failed\n    depends_on: [good]\n    trigger_rule: all_failed\n    noop: {}\n\
         \x20 - id: below_needs_all\n    depends_on: [needs_all]\n    noop: {}\n\
         \x20 - id: none_failed\n    depends_on: [only_if_all_failed]\n    trigger_rule: none_failed\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "rules").await;
        let run = trigger(&d, "rules");
        let finished = wait_finished(&store, run, Duration::from_secs(30)).await;
        let s = states(&store, run).await;
        use TaskState::*;
        let expected = [
            ("bad", Failed),
            ("good", Success),
            ("needs_all", UpstreamFailed),
            ("after_all_done", Success),
            ("after_one_success", Success),
            ("on_failure", Success),
            ("only_if_all_failed", Skipped),
            ("below_needs_all", UpstreamFailed),
            ("none_failed", Success),
        ];
        for (task, state) in expected {
            assert_eq!(s.get(task), Some(&state), "{task}: {s:?}");
        }
        // A leaf ended upstream_failed: the run failed.
        assert_eq!(finished.state, RunState::Failed);
    });
}

#[test]
fn catchup_runs_each_interval_in_order_within_max_active_runs_and_backfill_fills_the_past() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let start = rfc3339(Utc::now() - chrono::Duration::hours(6));
    ws.dag(
        "hourly",
        &format!(
            "id: hourly\nschedule: \"@hourly\"\nstart_date: {start}\ncatchup: true\nmax_active_runs: 1\n\
             tasks:\n  - id: a\n    noop: {{ sleep: 150ms }}\n"
        ),
    );
    ws.dag(
        "daily",
        "id: daily\nschedule: \"0 3 * * *\"\nstart_date: 2025-01-01\ncatchup: false\ntasks:\n  - id: a\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        let filter = |dag: &str| RunFilter {
            dag_id: Some(dag.to_owned()),
            limit: 100,
            ..RunFilter::default()
        };
        let hourly = eventually(
            "five hourly catchup runs",
            Duration::from_secs(60),
            || async {
                let runs = store.list_runs(&filter("hourly")).await.ok()?;
                (runs.len() >= 5 && runs.iter().all(|r| r.state == RunState::Success))
                    .then_some(runs)
            },
        )
        .await;
        assert!(hourly.len() <= 6, "{} runs", hourly.len());
        let mut by_date = hourly.clone();
        by_date.sort_by_key(|r| r.logical_date);
        assert!(
            by_date
                .windows(2)
                .all(|w| w[0].interval_end == w[1].interval_start),
            "intervals not contiguous"
        );
        // One at a time, oldest first.
        assert!(
            by_date
                .windows(2)
                .all(|w| w[0].finished_at <= w[1].started_at),
            "runs overlapped or ran out of order"
        );
        // Without catchup only the latest interval runs.
        let daily = eventually("the latest daily run", Duration::from_secs(30), || async {
            let runs = store.list_runs(&filter("daily")).await.ok()?;
            (!runs.is_empty() && runs.iter().all(|r| r.state.is_finished())).then_some(runs)
        })
        .await;
        assert_eq!(daily.len(), 1);

        let out = d.ok(&[
            "backfill",
            "daily",
            "--env",
            "dev",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-05",
        ]);
        assert!(out.starts_with("4 backfill runs created"), "{out}");
        let again = d.ok(&[
            "backfill",
            "daily",
            "--env",
            "dev",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-06",
        ]);
        assert!(
            again.starts_with("1 backfill run created, 4 intervals already had a run"),
            "{again}"
        );
        let runs = eventually(
            "the backfill runs to finish",
            Duration::from_secs(60),
            || async {
                let runs = store.list_runs(&filter("daily")).await.ok()?;
                (runs.len() == 6 && runs.iter().all(|r| r.state == RunState::Success))
                    .then_some(runs)
            },
        )
        .await;
        let backfilled: Vec<String> = runs
            .iter()
            .filter(|r| r.run_type == drover_store::RunType::Backfill)
            .map(|r| rfc3339(r.logical_date))
            .collect();
        assert_eq!(
            backfilled,
            vec![
                "2026-01-05T03:00:00Z",
                "2026-01-04T03:00:00Z",
                "2026-01-03T03:00:00Z",
                "2026-01-02T03:00:00Z",
                "2026-01-01T03:00:00Z"
            ]
        );
    });
}

#[test]
fn clearing_a_task_reruns_it_and_its_downstream_tasks() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "rerun",
        "id: rerun\nparams: { who: { type: string, default: world } }\ntasks:\n  - id: a\n    command: { argv: [echo, \"hello {{ params.who }} {{ vars.greeting }}\"] }\n  - id: b\n    depends_on: [a]\n    noop: {}\n  - id: c\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "rerun").await;
        let out = d.ok(&[
            "runs",
            "trigger",
            "rerun",
            "--env",
            "dev",
            "--param",
            "who=drover",
        ]);
        let run = Uuid::parse_str(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            wait_finished(&store, run, Duration::from_secs(30))
                .await
                .state,
            RunState::Success
        );
        let bad = d.run(&[
            "runs", "trigger", "rerun", "--env", "dev", "--param", "whom=x",
        ]);
        assert!(
            String::from_utf8_lossy(&bad.stderr)
                .contains("has no parameter `whom`, did you mean `who`?")
        );

        assert_eq!(
            d.ok(&["tasks", "clear", &run.to_string(), "a", "--downstream"]),
            "cleared: a, b"
        );
        let finished = wait_finished(&store, run, Duration::from_secs(30)).await;
        assert_eq!(finished.state, RunState::Success);
        let tries: HashMap<String, i32> = store
            .task_instances(run)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.task_id, t.try_number))
            .collect();
        assert_eq!((tries["a"], tries["b"], tries["c"]), (2, 2, 1));
        let logs = d.ok(&["tasks", "logs", &run.to_string(), "a"]);
        assert_eq!(
            logs.matches("stdout] hello drover hello").count(),
            2,
            "{logs}"
        );
        let show = d.ok(&["runs", "show", &run.to_string()]);
        assert!(
            show.contains("state:     succeeded") && show.contains("manual by cli"),
            "{show}"
        );
        let audit = store.audit_events(10).await.unwrap_or_default();
        assert!(audit.iter().any(|e| e.action == "task.clear"));
    });
}

#[test]
fn a_stopping_worker_finishes_within_its_grace_period_and_gives_back_the_rest() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "short",
        "id: short\ntasks:\n  - id: a\n    command: { shell: \"sleep 1; echo finished\" }\n",
    );
    ws.dag(
        "long",
        "id: long\ntasks:\n  - id: a\n    command: { shell: \"sleep 30\" }\n    timeout: 1h\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let mut w1 = d.spawn(
        "worker-1",
        &[
            "worker",
            "--concurrency",
            "2",
            "--grace-secs",
            "3",
            "--poll-ms",
            "200",
        ],
    );
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "long").await;
        let short = trigger(&d, "short");
        let long = trigger(&d, "long");
        eventually("both tasks to run", Duration::from_secs(20), || async {
            let a = states(&store, short).await.get("a") == Some(&TaskState::Running);
            let b = states(&store, long).await.get("a") == Some(&TaskState::Running);
            (a && b).then_some(())
        })
        .await;
        let status = w1.terminate(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "worker did not stop cleanly: {status:?}\n{}",
            w1.log()
        );
        assert_eq!(
            run_state(&store, short).await,
            RunState::Success,
            "the short task should finish in the grace period"
        );
        let long_ti = store
            .task_instances(long)
            .await
            .unwrap_or_default()
            .remove(0);
        assert_eq!(
            (long_ti.state.0, long_ti.lost_count),
            (TaskState::Queued, 1),
            "the long task should be given back"
        );
        let tries = store.task_tries(long_ti.id).await.unwrap_or_default();
        assert_eq!(
            tries.iter().map(|t| t.state.as_str()).collect::<Vec<_>>(),
            vec!["interrupted"]
        );
    });
}

#[test]
fn a_paused_dag_gets_no_scheduled_runs_until_unpaused() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let start = rfc3339(Utc::now() - chrono::Duration::hours(3));
    ws.dag("nightly", &format!("id: nightly\nschedule: \"@hourly\"\nstart_date: {start}\ntasks:\n  - id: a\n    noop: {{}}\n"));
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    // Register the DAG without scheduling anything, then pause it before a scheduler runs.
    d.ok(&["scheduler", "--once"]);
    rt.block_on(async {
        let store = db.store().await;
        for r in store
            .list_runs(&RunFilter {
                limit: 10,
                ..RunFilter::default()
            })
            .await
            .unwrap_or_default()
        {
            sqlx::query("delete from dag_run where id = $1")
                .bind(r.id)
                .execute(store.pool())
                .await
                .ok();
        }
    });
    assert_eq!(
        d.ok(&[
            "dags",
            "pause",
            "nightly",
            "--env",
            "dev",
            "--as",
            "ops@example.com"
        ]),
        "nightly paused in dev"
    );
    assert_eq!(
        d.ok(&["dags", "pause", "nightly", "--env", "dev"]),
        "nightly was already paused in dev"
    );
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            store
                .list_runs(&RunFilter::default())
                .await
                .unwrap_or_default()
                .is_empty(),
            "a paused DAG got a run"
        );
        d.ok(&["dags", "unpause", "nightly", "--env", "dev"]);
        let run = eventually(
            "the latest interval to run after unpausing",
            Duration::from_secs(20),
            || async {
                let runs = store.list_runs(&RunFilter::default()).await.ok()?;
                runs.into_iter().find(|r| r.state == RunState::Success)
            },
        )
        .await;
        assert_eq!(run.run_type, drover_store::RunType::Scheduled);
        let listed = d.ok(&["runs", "list", "--dag", "nightly", "--state", "success"]);
        assert!(
            listed.contains(&run.id.to_string()) && listed.contains("scheduled"),
            "{listed}"
        );
        let audit = store.audit_events(10).await.unwrap_or_default();
        let actions: Vec<(&str, &str)> = audit
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str()))
            .collect();
        assert!(
            actions.contains(&("dag.pause", "ops@example.com"))
                && actions.contains(&("dag.unpause", "cli")),
            "{actions:?}"
        );
    });
}

#[test]
fn a_finished_tasks_log_is_whole_the_moment_its_run_is_finished() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    // Many more lines than one batch of the log writer, printed just before the task ends.
    ws.dag(
        "chatty",
        "id: chatty\ntasks:\n\
         \x20 - id: talk\n    command: { shell: \"seq 1 20000\" }\n\
         \x20 - id: after\n    depends_on: [talk]\n    command: { shell: \"echo done\" }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 2, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        synced(&store, "chatty").await;
        let run = trigger(&d, "chatty");
        let finished = wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(finished.state, RunState::Success);
        for (task, last) in [("talk", "20000"), ("after", "done")] {
            let lines = whole_log(&store, run, task).await;
            assert_eq!(
                lines.last().map(String::as_str),
                Some("succeeded"),
                "{task}: {:?}",
                lines.last()
            );
            assert!(lines.iter().any(|l| l == last), "{task}: no `{last}`");
            if task == "talk" {
                let printed = lines.iter().filter(|l| l.parse::<u32>().is_ok()).count();
                assert_eq!(printed, 20_000, "every line printed is in the log");
            }
        }
    });
}

/// Every log line of `task` in `run`, page after page.
async fn whole_log(store: &Store, run: Uuid, task: &str) -> Vec<String> {
    let ti = store
        .task_instances(run)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.task_id == task)
        .unwrap_or_else(|| panic!("no task {task} in {run}"));
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .read_logs(ti.id, None, after)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = page.last() else {
            return lines;
        };
        after = last.id;
        lines.extend(page.into_iter().map(|l| l.line));
    }
}
