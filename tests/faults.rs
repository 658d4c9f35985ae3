//! Fault injection: real schedulers and workers killed at random points of many runs, Postgres
//! restarted under them, the MAP sandbox failing transiently, and afterwards every run must be
//! in its correct final state, no task may have run twice at the same moment, and no row the
//! MAP accepted may be missing or applied twice.
//!
//! Size: `DROVER_FAULT_RUNS` runs (default 20, the smoke size every test run uses); a quarter
//! go through the MAP (export → transform → return, one at a time so each run sees the
//! previous one's scores), the rest are four-task command DAGs. `DROVER_FAULT_SEED` repeats a
//! sequence of faults. `scripts/faults` runs the full size (200) and prints the figures.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use drover_mapsim::{BrokenDownloadFault, FaultProfile, ServerErrorFault, TokenExpiryFault};
use drover_store::{RunFilter, RunRow, RunState, Store, TaskState};
use support::{Drover, Proc, TestDb, Workspace, runtime, serial, start_sandbox, window_days};

const CLIENT_ID: &str = "drover-chaos";
const SECRET: &str = "chaos-secret-71d2";
const LEADS: usize = 300;
const COMMAND_DAGS: usize = 3;
const WORKERS: usize = 2;
const SCHEDULERS: usize = 2;

/// A small deterministic random source (xorshift64*), so a failing sequence can be replayed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    KillWorker,
    StopWorker,
    KillScheduler,
    RestartPostgres,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::KillWorker,
        Fault::KillScheduler,
        Fault::RestartPostgres,
        Fault::StopWorker,
    ];

    fn pick(dice: &mut Dice) -> Self {
        match dice.unit() {
            r if r < 0.40 => Self::KillWorker,
            r if r < 0.55 => Self::StopWorker,
            r if r < 0.85 => Self::KillScheduler,
            _ => Self::RestartPostgres,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::KillWorker => "worker killed (SIGKILL)",
            Self::StopWorker => "worker stopped (SIGTERM)",
            Self::KillScheduler => "scheduler killed (SIGKILL)",
            Self::RestartPostgres => "Postgres restarted",
        }
    }
}

/// A command task that records its start and end in `ledger`, holding a lock per task
/// instance while it works `secs`: a second copy of the same task instance running at the
/// same time cannot take the lock and writes `concurrent` instead. The work runs two processes
/// below the task's own (`sh` → `flock` → `sh` → `sleep`), so a copy orphaned by a killed
/// worker would hold the lock.
fn ledger_task(id: &str, deps: &[&str], secs: u32, dir: &Path) -> String {
    let ledger = dir.join("ledger").display().to_string();
    let locks = dir.join("locks").display().to_string();
    let depends = if deps.is_empty() {
        String::new()
    } else {
        format!("    depends_on: [{}]\n", deps.join(", "))
    };
    format!(
        "  - id: {id}\n{depends}    command:\n      shell: |\n        \
         key=\"{{{{ run_id }}}} {{{{ task_id }}}} {{{{ try_number }}}}\"\n        \
         flock -n -E 99 {locks}/{{{{ run_id }}}}-{{{{ task_id }}}} sh -c \"echo start $key >> {ledger}; sleep {secs}; echo end $key >> {ledger}\"\n        \
         rc=$?\n        \
         if [ $rc = 99 ]; then echo concurrent $key >> {ledger}; fi\n        \
         exit $rc\n"
    )
}

fn command_dag(id: &str, start: DateTime<Utc>, end: DateTime<Utc>, dir: &Path) -> String {
    format!(
        "id: {id}\nschedule: \"* * * * *\"\nstart_date: {}\nend_date: {}\ncatchup: true\nmax_active_runs: 3\n\
         defaults: {{ retries: 6, retry_delay: 1s, retry_backoff: constant }}\ntasks:\n{}{}{}{}",
        rfc3339(start),
        rfc3339(end),
        ledger_task("extract", &[], 1, dir),
        ledger_task("left", &["extract"], 1, dir),
        ledger_task("right", &["extract"], 1, dir),
        // Longer than a worker's lease: a killed worker's copy would still be at work when
        // the task is queued again.
        ledger_task("join", &["left", "right"], 6, dir),
    )
}

/// Every lead's score +1, returned to the MAP; one run at a time.
fn map_dag(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    // 30 days: two export jobs (the MAP exports at most 31 days per job).
    let (since, until) = window_days(30);
    format!(
        r#"id: bump_scores
schedule: "* * * * *"
start_date: {}
end_date: {}
catchup: true
max_active_runs: 1
defaults: {{ retries: 8, retry_delay: 1s, retry_backoff: constant }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: bump
    depends_on: [export_leads]
    transform:
      - derive: {{ leadScore: "coalesce(\"leadScore\", 0) + 1" }}
  - id: push
    depends_on: [bump]
    return: {{ object: leads, lookup: id, fields: [leadScore] }}
"#,
        rfc3339(start),
        rfc3339(end)
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn transient_map_faults() -> FaultProfile {
    FaultProfile {
        token_expiry: Some(TokenExpiryFault::default()),
        server_errors: Some(ServerErrorFault { probability: 0.05 }),
        broken_downloads: Some(BrokenDownloadFault { probability: 0.1 }),
        ..FaultProfile::default()
    }
}

async fn lead_scores(base: &str) -> HashMap<u32, i64> {
    let client = reqwest::Client::new();
    let mut out = HashMap::new();
    for id in 1..=u32::try_from(LEADS).unwrap_or(0) {
        let lead: serde_json::Value = client
            .get(format!("{base}/_sandbox/leads/{id}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("lead {id}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("lead {id}: {e}"));
        out.insert(id, lead["leadScore"].as_i64().unwrap_or(0));
    }
    out
}

/// The keys the MAP accepted in a run's receipt.
async fn accepted_keys(store: &Store, run: uuid::Uuid) -> Vec<u32> {
    let d = store
        .dataset(run, "push", "receipt")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run {run} has no receipt"));
    let staging = store
        .staging_pool(&d.environment, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select key, status from {}",
        d.relation()
    )))
    .fetch_all(&staging)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .map(|(key, status)| {
            assert_eq!(status, "accepted", "run {run} lead {key}");
            key.parse()
                .unwrap_or_else(|e| panic!("receipt key {key}: {e}"))
        })
        .collect()
}

struct Cluster<'a> {
    d: &'a Drover<'a>,
    workers: Vec<Proc>,
    schedulers: Vec<Proc>,
    started: usize,
}

impl Cluster<'_> {
    fn worker(&mut self) -> Proc {
        self.started += 1;
        self.d.worker(&format!("worker-{}", self.started), 4, 3.0)
    }

    fn scheduler(&mut self) -> Proc {
        self.started += 1;
        self.d.scheduler(&format!("scheduler-{}", self.started))
    }

    fn inject(&mut self, fault: Fault, dice: &mut Dice, pg: &support::pg::PrivatePg) {
        match fault {
            Fault::KillWorker => {
                let i = dice.below(self.workers.len());
                self.workers[i].kill9();
                self.workers[i] = self.worker();
            }
            Fault::StopWorker => {
                let i = dice.below(self.workers.len());
                let status = self.workers[i].terminate(Duration::from_secs(30));
                assert!(
                    status.is_some_and(|s| s.success()),
                    "a stopping worker did not exit cleanly: {status:?}\n{}",
                    self.workers[i].log()
                );
                self.workers[i] = self.worker();
            }
            Fault::KillScheduler => {
                let i = dice.below(self.schedulers.len());
                self.schedulers[i].kill9();
                self.schedulers[i] = self.scheduler();
            }
            Fault::RestartPostgres => {
                pg.pg
                    .restart()
                    .unwrap_or_else(|e| panic!("restart Postgres: {e}"));
            }
        }
    }
}

/// Runs by DAG, once every expected run exists and has finished.
async fn all_finished(store: &Store, expected: &BTreeMap<String, usize>) -> Option<Vec<RunRow>> {
    let runs = store
        .list_runs(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        })
        .await
        .ok()?;
    let complete = expected
        .iter()
        .all(|(dag, n)| runs.iter().filter(|r| &r.dag_id == dag).count() >= *n);
    (complete && runs.iter().all(|r| r.state.is_finished())).then_some(runs)
}

/// Runs per DAG and state, and the tasks of unfinished runs.
async fn progress(store: &Store) -> String {
    let Ok(runs) = store
        .list_runs(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        })
        .await
    else {
        return "(database not answering)".to_owned();
    };
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &runs {
        *counts
            .entry((r.dag_id.clone(), format!("{:?}", r.state)))
            .or_default() += 1;
    }
    let mut out = format!("{counts:?}");
    for r in runs.iter().filter(|r| !r.state.is_finished()).take(5) {
        let tasks: Vec<String> = store
            .task_instances(r.id)
            .await
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}={:?}/{}", t.task_id, t.state.0, t.try_number))
            .collect();
        out.push_str(&format!(
            "\n  {} {} {:?}: {}",
            r.dag_id,
            r.logical_date,
            r.state,
            tasks.join(" ")
        ));
    }
    out
}

#[test]
fn runs_end_correctly_while_processes_are_killed_and_postgres_restarts() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total: usize = std::env::var("DROVER_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(8);
    let seed: u64 = std::env::var("DROVER_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    let map_runs = total / 4;
    let per_command_dag = (total - map_runs) / COMMAND_DAGS;
    let total = map_runs + per_command_dag * COMMAND_DAGS;
    eprintln!("fault injection: {total} runs, seed {seed} (DROVER_FAULT_SEED to repeat)");
    let mut dice = Dice(seed);

    let rt = runtime();
    let pg = support::pg::PrivatePg::start();
    let db = TestDb::new(&pg.pg.url("postgres"));
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join("locks")).unwrap_or_else(|e| panic!("{e}"));
    let map = rt.block_on(start_sandbox(
        LEADS,
        23,
        CLIENT_ID,
        SECRET,
        transient_map_faults(),
    ));
    let base = map.base_url();
    ws.map_environment(&base, CLIENT_ID, SECRET, None);

    // Each DAG's runs are whole minutes that ended before now: created by catch-up at once.
    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|e| panic!("{e}"));
    // `end_date` is the last logical date: n intervals start at now − n min … now − 1 min.
    let span = |n: usize| {
        let n = i64::try_from(n).unwrap_or(0);
        (
            now - chrono::Duration::minutes(n),
            now - chrono::Duration::minutes(1),
        )
    };
    let mut expected = BTreeMap::new();
    for i in 0..COMMAND_DAGS {
        let id = format!("chain_{i}");
        let (start, end) = span(per_command_dag);
        ws.dag(&id, &command_dag(&id, start, end, ws.path()));
        expected.insert(id, per_command_dag);
    }
    let (start, end) = span(map_runs);
    ws.dag("bump_scores", &map_dag(start, end));
    expected.insert("bump_scores".to_owned(), map_runs);
    let initial_scores = rt.block_on(lead_scores(&base));

    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let mut cluster = Cluster {
        d: &d,
        workers: Vec::new(),
        schedulers: Vec::new(),
        started: 0,
    };
    for _ in 0..SCHEDULERS {
        let s = cluster.scheduler();
        cluster.schedulers.push(s);
    }
    for _ in 0..WORKERS {
        let w = cluster.worker();
        cluster.workers.push(w);
    }

    let began = Instant::now();
    let limit = Duration::from_secs(240 + 15 * u64::try_from(total).unwrap_or(0));
    let mut injected: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut last_report = Instant::now();
    let runs = rt.block_on(async {
        let store = db.store().await;
        loop {
            if let Some(runs) = all_finished(&store, &expected).await {
                break runs;
            }
            if began.elapsed() > limit {
                panic!(
                    "runs not finished after {limit:?} (seed {seed}); faults so far: {injected:?}\n{}",
                    progress(&store).await
                );
            }
            if last_report.elapsed() > Duration::from_secs(30) {
                eprintln!("{:>5.0} s: {}", began.elapsed().as_secs_f64(), progress(&store).await);
                last_report = Instant::now();
            }
            // One fault every 4 s on average; the first four are one of each kind.
            let pause = Duration::from_millis(2_000 + (dice.unit() * 4_000.0) as u64);
            tokio::time::sleep(pause).await;
            let fault = Fault::ALL
                .get(injected.values().sum::<usize>())
                .copied()
                .unwrap_or_else(|| Fault::pick(&mut dice));
            cluster.inject(fault, &mut dice, &pg);
            *injected.entry(fault).or_default() += 1;
        }
    });
    let elapsed = began.elapsed();

    rt.block_on(async {
        let store = db.store().await;
        let mut checked_tasks = 0usize;
        let mut lost_tries = 0usize;
        let mut failed_tries = 0usize;
        let mut interrupted_tries = 0usize;
        let mut dates: HashSet<(String, DateTime<Utc>)> = HashSet::new();
        for r in &runs {
            assert!(
                dates.insert((r.dag_id.clone(), r.logical_date)),
                "run created twice: {} {}",
                r.dag_id,
                r.logical_date
            );
            assert_eq!(r.state, RunState::Success, "{} {} ({})", r.dag_id, r.logical_date, r.id);
            let tis = store
                .task_instances(r.id)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for ti in &tis {
                checked_tasks += 1;
                assert_eq!(ti.state.0, TaskState::Success, "{} in {}", ti.task_id, r.id);
                let tries = store
                    .task_tries(ti.id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let numbers: Vec<i32> = tries.iter().map(|t| t.try_number).collect();
                let want: Vec<i32> = (1..=ti.try_number).collect();
                assert_eq!(numbers, want, "{} in {}: tries {tries:?}", ti.task_id, r.id);
                let last = tries.last().map(|t| t.state.as_str());
                assert_eq!(last, Some("success"), "{} in {}: {tries:?}", ti.task_id, r.id);
                for t in &tries[..tries.len() - 1] {
                    match t.state.as_str() {
                        "lost" => lost_tries += 1,
                        "failed" => failed_tries += 1,
                        "interrupted" => interrupted_tries += 1,
                        other => panic!("{} in {}: an earlier try is {other}", ti.task_id, r.id),
                    }
                }
                // A try started only after the one before it had ended.
                for w in tries.windows(2) {
                    assert!(
                        w[0].finished_at.is_some() && w[0].finished_at <= w[1].started_at,
                        "{} in {}: tries overlap: {w:?}",
                        ti.task_id,
                        r.id
                    );
                }
            }
        }
        for (dag, n) in &expected {
            let mine = runs.iter().filter(|r| &r.dag_id == dag).count();
            assert_eq!(mine, *n, "{dag}: {mine} runs, expected {n}");
        }

        // The command tasks: none ran twice at once, each finished its work at least once.
        let ledger = std::fs::read_to_string(ws.path().join("ledger")).unwrap_or_default();
        let concurrent: Vec<&str> = ledger
            .lines()
            .filter(|l| l.starts_with("concurrent"))
            .collect();
        assert!(concurrent.is_empty(), "ran twice at once: {concurrent:?}");
        let mut ended: HashSet<(String, String)> = HashSet::new();
        let mut executions = 0usize;
        for line in ledger.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let ["end", run, task, _try] = parts[..] {
                executions += 1;
                ended.insert((run.to_owned(), task.to_owned()));
            }
        }
        for r in runs.iter().filter(|r| r.dag_id.starts_with("chain_")) {
            for task in ["extract", "left", "right", "join"] {
                assert!(
                    ended.contains(&(r.id.to_string(), task.to_owned())),
                    "{task} of {} never finished its work",
                    r.id
                );
            }
        }

        // The MAP runs: every accepted row is in the MAP, applied exactly once per run.
        let mut bumps: HashMap<u32, i64> = HashMap::new();
        let mut returned = 0usize;
        for r in runs.iter().filter(|r| r.dag_id == "bump_scores") {
            for key in accepted_keys(&store, r.id).await {
                returned += 1;
                *bumps.entry(key).or_default() += 1;
            }
        }
        assert!(!bumps.is_empty(), "no MAP run returned a row");
        let final_scores = lead_scores(&base).await;
        for (id, before) in &initial_scores {
            let want = before + bumps.get(id).copied().unwrap_or(0);
            assert_eq!(
                final_scores.get(id).copied(),
                Some(want),
                "lead {id}: score {before} + {} accepted returns",
                bumps.get(id).copied().unwrap_or(0)
            );
        }

        let faults: usize = injected.values().sum();
        let mut summary = format!(
            "fault injection (seed {seed}): {} runs survived ({map_runs} through the MAP), {checked_tasks} task instances, \
             {faults} faults injected in {:.0} s",
            runs.len(),
            elapsed.as_secs_f64()
        );
        for (fault, n) in &injected {
            summary.push_str(&format!("\n  {n:>4} × {}", fault.name()));
        }
        summary.push_str(&format!(
            "\n  tries lost to a dead worker and retried: {lost_tries}; given back by a stopping worker: {interrupted_tries}; failed and retried: {failed_tries}\
             \n  command executions: {executions} for {} command tasks, none at the same time as another copy\
             \n  MAP rows accepted and checked in the MAP: {returned}, each applied once per run",
            ended.len()
        ));
        eprintln!("{summary}");
        if let Ok(path) = std::env::var("DROVER_FAULT_REPORT") {
            let _ = std::fs::write(path, format!("{summary}\n"));
        }
    });
    drop(cluster);
    rt.block_on(map.shutdown());
}
