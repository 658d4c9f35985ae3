//! The engine as it runs in production: a `drover scheduler` and a `drover worker` process
//! (release build, default settings but the slots) on a database of their own, running
//! real `command` tasks (`argv: [true]`: a process started and waited for per task) beside
//! the same DAGs of `noop` tasks, interleaved in one run.
//!
//! Workloads (DAGs without a schedule, triggered as manual runs by inserting the run, as
//! `drover runs trigger` does; one run at a time):
//!
//! - **F200**: 1 root → 200 tasks → 1 sink, of `true` and of `noop`. Its figure is the time
//!   from the trigger to success: from the run's `created_at` (the trigger's transaction) to its
//!   `finished_at`, both by the database's clock, so it includes the scheduler starting the run
//!   and creating its task instances. The ratio `true` / `noop` is the command tasks' overhead.
//! - **W1**: 1 → 1,000 → 1 of `true` (and of `noop`): tasks per second from trigger to
//!   success (1,002 tasks over the time above).
//! - **W2**: a chain of 50 `true` tasks (and of `noop`): each step is the time from one task's
//!   end to the next one's end (`finished_at`), so it includes a completion, the next claim and
//!   the whole try of the next task; median and p90 over every step of every round.
//!
//! Each slot setting (`--slots`, default `4,16`) gets a worker of its own started with
//! `--concurrency SLOTS` (the environment allows 1,024). Every workload runs `--rounds` times
//! (default 3) per slot setting, `true` and `noop` alternately; the figures are medians.
//! Printed with the machine's cores and load (`/proc/loadavg`) before and after.
//!
//!     cargo bench --bench engine_processes                       # 3 rounds at 4 and 16 slots
//!     cargo bench --bench engine_processes -- --slots 16 --rounds 5
//!     cargo bench --bench engine_processes -- --smoke            # 1 round, small sizes
//!
//! `DROVER_BENCH_DATABASE_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a database is created and dropped.

#[path = "../crates/engine/benches/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_store::{NewRun, RunState, RunType, Store};
use support::Error;
use uuid::Uuid;

const ENV: &str = "dev";
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Args {
    rounds: usize,
    slots: Vec<usize>,
    fanout: usize,
    wide: usize,
    chain: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        rounds: 3,
        slots: vec![4, 16],
        fanout: 200,
        wide: 1000,
        chain: 50,
    };
    let mut smoke = false;
    let mut rounds = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--rounds needs a number ≥ 1")?,
                );
            }
            "--slots" => {
                let v = it.next().ok_or("--slots needs a list, e.g. 4,16")?;
                a.slots = v
                    .split(',')
                    .map(|s| s.trim().parse().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| format!("--slots: `{v}` is not a list of numbers ≥ 1"))?;
            }
            "--smoke" => smoke = true,
            "--bench" => {}
            "-h" | "--help" => {
                println!("usage: engine_processes [--rounds N] [--slots A,B] [--smoke]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (see --help)").into()),
        }
    }
    if smoke {
        a.rounds = 1;
        a.slots = vec![4];
        a.fanout = 20;
        a.wide = 50;
        a.chain = 10;
    }
    if let Some(r) = rounds {
        a.rounds = r;
    }
    Ok(a)
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
        move |url| bench(url, args),
        move |s: &Summary, before, after| s.print(&for_print, before, after),
    )
}

/// Kills its child (and waits) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn task(kind: &str) -> &'static str {
    if kind == "true" {
        "command: { argv: [\"true\"] }"
    } else {
        "noop: {}"
    }
}

fn fanout_yaml(id: &str, width: usize, kind: &str) -> String {
    let body = task(kind);
    let mut y = format!("id: {id}\ntasks:\n  - id: root\n    {body}\n");
    let ids: Vec<String> = (0..width).map(|i| format!("t{i:05}")).collect();
    for t in &ids {
        y.push_str(&format!(
            "  - id: {t}\n    depends_on: [root]\n    {body}\n"
        ));
    }
    y.push_str(&format!(
        "  - id: sink\n    depends_on: [{}]\n    {body}\n",
        ids.join(", ")
    ));
    y
}

fn chain_yaml(id: &str, length: usize, kind: &str) -> String {
    let body = task(kind);
    let mut y = format!("id: {id}\ntasks:\n");
    for i in 0..length {
        y.push_str(&format!("  - id: c{i:03}\n"));
        if i > 0 {
            y.push_str(&format!("    depends_on: [c{:03}]\n", i - 1));
        }
        y.push_str(&format!("    {body}\n"));
    }
    y
}

/// Medians per slot setting.
#[derive(Debug, Default)]
struct Figures {
    slots: usize,
    /// Trigger to success of F200, seconds, per round: (true, noop).
    f200: Vec<(f64, f64)>,
    /// W1 tasks/s per round: (true, noop).
    w1: Vec<(f64, f64)>,
    /// W2 steps, every step of every round.
    w2_true: Vec<Step>,
    w2_noop: Vec<Step>,
}

#[derive(Debug, Default)]
struct Summary {
    per_slots: Vec<Figures>,
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

impl Summary {
    fn print(&self, a: &Args, before: &str, after: &str) {
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        println!();
        for f in &self.per_slots {
            let mut f_true: Vec<f64> = f.f200.iter().map(|r| r.0).collect();
            let mut f_noop: Vec<f64> = f.f200.iter().map(|r| r.1).collect();
            let mut ratios: Vec<f64> = f.f200.iter().map(|r| r.0 / r.1).collect();
            let mut w_true: Vec<f64> = f.w1.iter().map(|r| r.0).collect();
            let mut w_noop: Vec<f64> = f.w1.iter().map(|r| r.1).collect();
            let part =
                |steps: &[Step], f: fn(&Step) -> f64| -> Vec<f64> { steps.iter().map(f).collect() };
            let mut s_true = part(&f.w2_true, |s| s.total);
            let mut s_noop = part(&f.w2_noop, |s| s.total);
            println!("{} slots ({} rounds):", f.slots, f.f200.len());
            println!(
                "  F200 1 → {} → 1, trigger to success: true {:.3} s, noop {:.3} s: ratio {:.2} (median of the rounds' ratios)",
                a.fanout,
                median(&mut f_true),
                median(&mut f_noop),
                median(&mut ratios)
            );
            println!(
                "  W1 1 → {} → 1, trigger to success: true {:.0} tasks/s, noop {:.0} tasks/s",
                a.wide,
                median(&mut w_true),
                median(&mut w_noop)
            );
            println!(
                "  W2 chain of {}, end to end of the next: true median {:.1} ms (p90 {:.1}), noop median {:.1} ms (p90 {:.1}), {} steps each",
                a.chain,
                median(&mut s_true),
                percentile(&mut s_true, 90.0),
                median(&mut s_noop),
                percentile(&mut s_noop, 90.0),
                s_true.len()
            );
            for (kind, steps) in [("true", &f.w2_true), ("noop", &f.w2_noop)] {
                println!(
                    "    {kind}: medians of its parts: end to the next claim {:.1} ms, claim to the next end {:.1} ms",
                    median(&mut part(steps, |s| s.to_claim)),
                    median(&mut part(steps, |s| s.to_end))
                );
            }
        }
        println!("machine: {cores} cores, load {before} before, {after} after (1/5/15 min)");
    }
}

async fn bench(url: String, a: Args) -> Result<Summary, Error> {
    let ws = tempfile::tempdir()?;
    let dir = ws.path();
    std::fs::create_dir_all(dir.join("dags"))?;
    std::fs::create_dir_all(dir.join("environments"))?;
    std::fs::write(
        dir.join("environments/dev.yaml"),
        "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\nconcurrency: 1024\n",
    )?;
    for kind in ["true", "noop"] {
        let write = |name: String, yaml: String| {
            std::fs::write(dir.join(format!("dags/{name}.yaml")), yaml)
        };
        write(
            format!("f200_{kind}"),
            fanout_yaml(&format!("f200_{kind}"), a.fanout, kind),
        )?;
        write(
            format!("w1_{kind}"),
            fanout_yaml(&format!("w1_{kind}"), a.wide, kind),
        )?;
        write(
            format!("w2_{kind}"),
            chain_yaml(&format!("w2_{kind}"), a.chain, kind),
        )?;
    }
    let out = drover(&url, dir, &["db", "migrate"]).output()?;
    if !out.status.success() {
        return Err(format!("migrate: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let store = Store::connect(&url, 2).await?;
    let mut summary = Summary::default();
    for &slots in &a.slots {
        let _scheduler = Proc(
            drover(&url, dir, &["scheduler", "--sync-secs", "1"])
                .stdout(Stdio::null())
                .spawn()?,
        );
        let _worker = Proc(
            drover(&url, dir, &["worker", "--concurrency", &slots.to_string()])
                .stdout(Stdio::null())
                .spawn()?,
        );
        let mut versions = std::collections::HashMap::new();
        for kind in ["true", "noop"] {
            for w in ["f200", "w1", "w2"] {
                let id = format!("{w}_{kind}");
                let version = synced(&store, &id).await?;
                versions.insert(id, version);
            }
        }
        let version = |id: &str| versions.get(id).copied().ok_or("no version");
        // Warm-up (connections, the DAG cache, the page cache of the programs).
        for kind in ["true", "noop"] {
            let id = format!("w2_{kind}");
            run_to_success(&store, &id, version(&id)?).await?;
        }
        let mut f = Figures {
            slots,
            ..Figures::default()
        };
        for round in 1..=a.rounds {
            let mut pair = [0.0; 2];
            let mut rate = [0.0; 2];
            for (i, kind) in ["true", "noop"].into_iter().enumerate() {
                let id = format!("f200_{kind}");
                let t = run_to_success(&store, &id, version(&id)?).await?;
                pair[i] = t.seconds();
                let id = format!("w1_{kind}");
                let t = run_to_success(&store, &id, version(&id)?).await?;
                rate[i] = (a.wide + 2) as f64 / t.seconds();
                let id = format!("w2_{kind}");
                let t = run_to_success(&store, &id, version(&id)?).await?;
                let steps = chain_steps(&store, t.run).await?;
                if kind == "true" {
                    f.w2_true.extend(steps);
                } else {
                    f.w2_noop.extend(steps);
                }
            }
            eprintln!(
                "{slots} slots, round {round}: F200 true {:.3} s / noop {:.3} s; W1 true {:.0} / noop {:.0} tasks/s",
                pair[0], pair[1], rate[0], rate[1]
            );
            f.f200.push((pair[0], pair[1]));
            f.w1.push((rate[0], rate[1]));
        }
        summary.per_slots.push(f);
    }
    Ok(summary)
}

fn drover(url: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .env("DATABASE_URL", url)
        .env("DROVER_DAGS_DIR", dir.join("dags"))
        .env("DROVER_ENVIRONMENTS_DIR", dir.join("environments"))
        .env("RUST_LOG", "warn")
        .current_dir(dir);
    c
}

/// The DAG's version once the scheduler synced it.
async fn synced(store: &Store, dag: &str) -> Result<i64, Error> {
    let since = Instant::now();
    loop {
        if let Ok(d) = store.dag_env(dag, ENV).await {
            return Ok(d.version_id);
        }
        if since.elapsed() > Duration::from_secs(60) {
            return Err(format!("{dag} was not synced within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finished run and its trigger-to-success time by the database's clock.
struct Timed {
    run: Uuid,
    created: DateTime<Utc>,
    finished: DateTime<Utc>,
}

impl Timed {
    fn seconds(&self) -> f64 {
        (self.finished - self.created).as_seconds_f64()
    }
}

async fn run_to_success(store: &Store, dag: &str, version_id: i64) -> Result<Timed, Error> {
    let now = Utc::now();
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
    let since = Instant::now();
    loop {
        let r = store.get_run(run).await?;
        match r.state {
            RunState::Success => {
                let (created, finished): (DateTime<Utc>, Option<DateTime<Utc>>) =
                    sqlx::query_as("select created_at, finished_at from dag_run where id = $1")
                        .bind(run)
                        .fetch_one(store.pool())
                        .await?;
                return Ok(Timed {
                    run,
                    created,
                    finished: finished.ok_or("a finished run without finished_at")?,
                });
            }
            RunState::Failed => {
                let errors: Vec<(String, Option<String>)> = sqlx::query_as(
                    "select task_id, last_error from task_instance where run_id = $1 and state <> 'success' limit 5",
                )
                .bind(run)
                .fetch_all(store.pool())
                .await?;
                return Err(format!("{dag} run {run} failed: {errors:?}").into());
            }
            RunState::Queued | RunState::Running => {}
        }
        if since.elapsed() > RUN_TIMEOUT {
            return Err(format!("{dag} run {run} not finished after {RUN_TIMEOUT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Along a chain, in ms: each step (end of one task to end of the next), and its two parts:
/// from the transaction that recorded the end to the claim of the next task, and from that
/// claim to the transaction that recorded its end (the try, its log and its report).
async fn chain_steps(store: &Store, run: Uuid) -> Result<Vec<Step>, Error> {
    type Row = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "select started_at, finished_at from task_instance where run_id = $1 order by task_id",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await?;
    let times: Vec<(DateTime<Utc>, DateTime<Utc>)> = rows
        .into_iter()
        .map(|(s, f)| s.zip(f))
        .collect::<Option<_>>()
        .ok_or("a chain task without its start or end")?;
    let ms = |d: chrono::TimeDelta| d.as_seconds_f64() * 1e3;
    Ok(times
        .windows(2)
        .map(|w| Step {
            total: ms(w[1].1 - w[0].1),
            to_claim: ms(w[1].0 - w[0].1),
            to_end: ms(w[1].1 - w[1].0),
        })
        .collect())
}

/// One step of a chain, in ms.
#[derive(Debug, Clone, Copy)]
struct Step {
    total: f64,
    to_claim: f64,
    to_end: f64,
}
