//! Benchmark: end-to-end engine throughput and latency on a real Postgres.
//!
//! What it measures: how fast the scheduler and workers move task instances through Postgres
//! when the tasks themselves cost nothing (`noop: {}`), i.e. the orchestration overhead alone.
//! Everything runs in this process, in one multi-thread tokio runtime: 1 scheduler (tick 1 s,
//! its own pool of 8 connections) and N workers (default 4, each with its own pool, concurrency
//! default 32, lease 30 s, poll 1 s), on a database of its own (`drover_bench_<random>`,
//! created on `DROVER_BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! and dropped at the end, even on error or Ctrl-C).
//!
//! Workloads (DAGs without a schedule, triggered as manual runs, one run at a time; a chain run
//! first as a warm-up, discarded):
//!
//! - W1 fan-out: `root` → 1,000 tasks `t0000`..`t0999` → `sink` (`--fanout N`: N tasks in
//!   the middle). Throughput is 1,002 / (max(finished_at) − min(started_at)) over the run's task instances, i.e. from the
//!   claim of `root` to the completion of `sink`. Best and median over the rounds.
//! - W2 chain: `c000` → `c001` → … → `c099`. Each hop's latency is
//!   started_at(c[i+1]) − finished_at(c[i]): from the transaction that records a completion
//!   (and queues the next task) to the claim of the next task. p50, p99 and max over all hops of
//!   all rounds (3 rounds → 297 hops).
//!
//! Timestamps are Postgres' `now()` (the start of the writing transaction), so both figures
//! are measured by the database clock.
//!
//! Targets on the 2-core development machine: W1 ≥ 1,000 tasks/s; W2 hop p50 ≤ 10 ms and
//! p99 ≤ 50 ms.
//!
//!     cargo bench -p drover-engine --bench throughput                       # 3 rounds
//!     cargo bench -p drover-engine --bench throughput -- --rounds 5 --workers 2 --concurrency 64
//!     cargo bench -p drover-engine --bench throughput -- --fanout 10000     # W1 1 → 10,000 → 1
//!     cargo bench -p drover-engine --bench throughput -- --smoke            # CI: 1 round, small
//!     scripts/bench-engine [args]                                           # pgbench first, for scale
//!
//! `--smoke`: 1 round, W1 with 100 fan-out tasks (unless `--fanout` says otherwise), W2 with
//! 20 tasks. `RUST_LOG` (default `warn`)
//! shows the engine's logs on stderr.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_engine::{FolderSource, Scheduler, SchedulerConfig, Worker, WorkerConfig};
use drover_store::{NewRun, RunState, RunType, Store};
use tokio::sync::watch;
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use support::Error;
type Result<T, E = Error> = std::result::Result<T, E>;

const ENV: &str = "dev";
/// How long a run may take before the benchmark gives up: 120 s, and 20 ms more per task of a
/// fan-out wider than 1,000.
fn run_timeout(tasks: usize) -> Duration {
    Duration::from_secs(120)
        + Duration::from_millis(20) * u32::try_from(tasks.saturating_sub(1000)).unwrap_or(u32::MAX)
}
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
struct Args {
    rounds: usize,
    concurrency: usize,
    workers: usize,
    fanout: usize,
    chain: usize,
    smoke: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 3,
        concurrency: 32,
        workers: 4,
        fanout: 1000,
        chain: 100,
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> Result<usize> {
        let v = v.ok_or_else(|| format!("{name} needs a value"))?;
        let n: usize = v
            .parse()
            .map_err(|_| format!("{name}: `{v}` is not a number"))?;
        if n == 0 {
            return Err(format!("{name} must be at least 1").into());
        }
        Ok(n)
    };
    let mut rounds = None;
    let mut fanout = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = Some(number("--rounds", it.next())?),
            "--concurrency" => args.concurrency = number("--concurrency", it.next())?,
            "--workers" => args.workers = number("--workers", it.next())?,
            "--fanout" => fanout = Some(number("--fanout", it.next())?),
            "--smoke" => args.smoke = true,
            // `cargo bench` passes `--bench` to every benchmark binary.
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: throughput [--rounds N] [--concurrency N] [--workers N] [--fanout N] [--smoke]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (see --help)").into()),
        }
    }
    if args.smoke {
        args.rounds = 1;
        args.fanout = 100;
        args.chain = 20;
    }
    if let Some(r) = rounds {
        args.rounds = r;
    }
    if let Some(n) = fanout {
        args.fanout = n;
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let for_print = args.clone();
    support::run_on_fresh_database(
        move |url| bench(args, url),
        move |summary: &Summary, before, after| summary.print(&for_print, before, after),
    )
}

fn fanout_yaml(n: usize) -> String {
    let mut y = String::from(
        "id: fanout\ndescription: Benchmark W1, root then a fan-out then a sink\ntasks:\n  - id: root\n    noop: {}\n",
    );
    let width = n.saturating_sub(1).to_string().len().max(4);
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:0width$}")).collect();
    for id in &ids {
        y.push_str(&format!(
            "  - id: {id}\n    depends_on: [root]\n    noop: {{}}\n"
        ));
    }
    y.push_str(&format!(
        "  - id: sink\n    depends_on: [{}]\n    noop: {{}}\n",
        ids.join(", ")
    ));
    y
}

fn chain_yaml(n: usize) -> String {
    let mut y =
        String::from("id: chain\ndescription: Benchmark W2, a chain of noop tasks\ntasks:\n");
    for i in 0..n {
        y.push_str(&format!("  - id: c{i:03}\n"));
        if i > 0 {
            y.push_str(&format!("    depends_on: [c{:03}]\n", i - 1));
        }
        y.push_str("    noop: {}\n");
    }
    y
}

const ENVIRONMENT_YAML: &str = "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\nvariables: { greeting: hello }\nconcurrency: 1024\n";

/// What the benchmark measured.
#[derive(Debug)]
struct Summary {
    /// Tasks per second, one per W1 round.
    w1: Vec<f64>,
    w1_tasks: usize,
    /// Hop latencies in ms, over every W2 round.
    w2: Vec<f64>,
}

impl Summary {
    fn print(&self, args: &Args, load_before: &str, load_after: &str) {
        let mut w1 = self.w1.clone();
        w1.sort_by(f64::total_cmp);
        let best = w1.last().copied().unwrap_or(0.0);
        let median = percentile(&w1, 50.0);
        let mut hops = self.w2.clone();
        hops.sort_by(f64::total_cmp);
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        println!();
        println!(
            "W1 fan-out 1 → {} → 1: best {best:.0} tasks/s, median {median:.0} tasks/s ({} workers × {}, {} round{})",
            args.fanout,
            args.workers,
            args.concurrency,
            w1.len(),
            if w1.len() == 1 { "" } else { "s" }
        );
        println!(
            "W2 chain of {}: hop p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} hops)",
            args.chain,
            percentile(&hops, 50.0),
            percentile(&hops, 99.0),
            hops.last().copied().unwrap_or(0.0),
            hops.len()
        );
        println!(
            "machine: {cores} cores, load {load_before} before, {load_after} after (1/5/15 min)"
        );
        debug_assert_eq!(self.w1_tasks, args.fanout + 2);
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn bench(args: Args, url: String) -> Result<Summary> {
    let admin = Store::connect(&url, 4).await?;
    admin.migrate().await?;

    let dir = tempfile::tempdir()?;
    let source = FolderSource::new(dir.path().join("dags"), dir.path().join("environments"));
    std::fs::create_dir_all(&source.dags_dir)?;
    std::fs::create_dir_all(&source.environments_dir)?;
    std::fs::write(source.environments_dir.join("dev.yaml"), ENVIRONMENT_YAML)?;
    std::fs::write(
        source.dags_dir.join("fanout.yaml"),
        fanout_yaml(args.fanout),
    )?;
    std::fs::write(source.dags_dir.join("chain.yaml"), chain_yaml(args.chain))?;
    let report = source.sync(&admin).await?;
    if !report.problems.is_empty() || report.dags != 2 {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        return Err(format!("DAG sync: {} DAGs, problems: {problems:?}", report.dags).into());
    }

    // The engine, in this process.
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut engine = tokio::task::JoinSet::new();
    let scheduler_store = Store::connect(&url, 8).await?;
    let scheduler = Scheduler::new(
        scheduler_store,
        SchedulerConfig {
            tick: Duration::from_secs(1),
            ..SchedulerConfig::default()
        },
    );
    engine.spawn(scheduler.run(shutdown(stop_rx.clone())));
    // As many connections as `drover worker` opens.
    let worker_connections = u32::try_from(args.concurrency.min(16)).unwrap_or(16) + 4;
    for i in 0..args.workers {
        let store = Store::connect(&url, worker_connections).await?;
        let mut config = WorkerConfig::new(format!("bench-{i}"), args.concurrency);
        config.lease = Duration::from_secs(30);
        config.heartbeat = Duration::from_secs(10);
        config.poll = Duration::from_secs(1);
        config.grace = Duration::from_secs(5);
        engine.spawn(Worker::new(store, config).run(shutdown(stop_rx.clone())));
    }

    let result = workloads(&args, &admin).await;

    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(joined) = engine.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: engine component failed: {e}"),
                Err(e) => eprintln!("warning: engine component panicked: {e}"),
            }
        }
    })
    .await;
    if stopped.is_err() {
        eprintln!("warning: the engine did not stop within 15 s");
        engine.abort_all();
    }
    admin.pool().close().await;
    result
}

async fn workloads(args: &Args, store: &Store) -> Result<Summary> {
    let fanout_version = store.dag_env("fanout", ENV).await?.version_id;
    let chain_version = store.dag_env("chain", ENV).await?.version_id;

    eprintln!("warm-up: one chain run of {} tasks", args.chain);
    let run = run_to_success(store, "chain", chain_version, args.chain).await?;
    eprintln!("warm-up: done in {:.0} ms", run.1.as_secs_f64() * 1e3);

    let mut w1 = Vec::new();
    let w1_tasks = args.fanout + 2;
    for round in 1..=args.rounds {
        let (run, wall) = run_to_success(store, "fanout", fanout_version, w1_tasks).await?;
        let times = task_times(store, run).await?;
        if times.len() != w1_tasks {
            return Err(format!("fanout run has {} task instances", times.len()).into());
        }
        let first = times.iter().map(|t| t.1).min().ok_or("no tasks")?;
        let last = times.iter().map(|t| t.2).max().ok_or("no tasks")?;
        let span = (last - first).as_seconds_f64();
        let rate = w1_tasks as f64 / span;
        eprintln!(
            "W1 round {round}: {rate:.0} tasks/s ({w1_tasks} tasks in {:.0} ms; trigger to success {:.0} ms)",
            span * 1e3,
            wall.as_secs_f64() * 1e3
        );
        w1.push(rate);
    }

    let mut w2 = Vec::new();
    for round in 1..=args.rounds {
        let (run, wall) = run_to_success(store, "chain", chain_version, args.chain).await?;
        let mut times = task_times(store, run).await?;
        if times.len() != args.chain {
            return Err(format!("chain run has {} task instances", times.len()).into());
        }
        times.sort_by(|a, b| a.0.cmp(&b.0));
        let hops: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1].1 - w[0].2).as_seconds_f64() * 1e3)
            .collect();
        let mut sorted = hops.clone();
        sorted.sort_by(f64::total_cmp);
        eprintln!(
            "W2 round {round}: hop p50 {:.1} ms, max {:.1} ms (trigger to success {:.0} ms)",
            percentile(&sorted, 50.0),
            sorted.last().copied().unwrap_or(0.0),
            wall.as_secs_f64() * 1e3
        );
        w2.extend(hops);
    }
    Ok(Summary { w1, w1_tasks, w2 })
}

/// Trigger a manual run and wait until it succeeds; returns it and the wall time it took.
async fn run_to_success(
    store: &Store,
    dag: &str,
    version_id: i64,
    tasks: usize,
) -> Result<(Uuid, Duration)> {
    let timeout = run_timeout(tasks);
    let now = Utc::now();
    let started = Instant::now();
    let run = store
        .insert_run(&NewRun {
            dag_id: dag.to_owned(),
            environment: ENV.to_owned(),
            version_id,
            run_type: RunType::Manual,
            logical_date: now,
            interval_start: now,
            interval_end: now,
            params: serde_json::json!({}),
            triggered_by: Some("bench".to_owned()),
            deadline_at: None,
            preview: false,
        })
        .await?
        .ok_or("run not created")?;
    loop {
        match store.get_run(run).await?.state {
            RunState::Success => return Ok((run, started.elapsed())),
            RunState::Failed => {
                let states: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                    "select state, last_error, count(*) from task_instance where run_id = $1 \
                     group by 1, 2 order by 3 desc",
                )
                .bind(run)
                .fetch_all(store.pool())
                .await?;
                return Err(format!("{dag} run {run} failed; task states: {states:?}").into());
            }
            RunState::Queued | RunState::Running => {}
        }
        if started.elapsed() > timeout {
            return Err(format!("{dag} run {run} not finished after {timeout:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// (task id, started_at, finished_at) of a task instance.
type TaskTimes = (String, DateTime<Utc>, DateTime<Utc>);

/// [`TaskTimes`] of every task instance of a run.
async fn task_times(store: &Store, run: Uuid) -> Result<Vec<TaskTimes>> {
    type Row = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "select task_id, started_at, finished_at from task_instance where run_id = $1",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await?;
    rows.into_iter()
        .map(|(id, s, f)| match (s, f) {
            (Some(s), Some(f)) => Ok((id, s, f)),
            _ => Err(format!("task {id} of run {run} has no start or finish time").into()),
        })
        .collect()
}
