//! Benchmark: syncing a git repository of many DAG files into Postgres.
//!
//! What it measures: `GitSource::sync`, the call the scheduler makes at every DAG sync when DAGs
//! come from git: read the environment files, fetch (nothing for a local repository), resolve
//! the head of the branch the lowest environment tracks, and move that environment to it
//! (snapshot of the commit's DAG files, each blob parsed and validated once; the blobs the
//! environment runs; one transaction recording the changed DAGs and a deployment).
//!
//! Setup (not timed): a temporary git repository (the `git` CLI) with N generated DAG files
//! under `dags/` (default 10,000; the four shapes of `crates/spec/benches/validate.rs`, id =
//! file name), one commit, then `git gc` (packed, as a clone is); an environments folder with
//! `dev.yaml` tracking `main`; a database of its own (`drover_bench_<random>`, created on
//! `DROVER_BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! migrated, and dropped at the end, even on error or Ctrl-C) whose pool of 4 connections is
//! opened before anything is timed, as a running scheduler's is. File systems are flushed
//! (`sync`) after every commit, so no timed sync waits for the setup's writes.
//!
//! Figures:
//!
//! - cold: a fresh `GitSource` (nothing parsed yet) on an empty database, syncing all N files.
//!   Checked: `dev` then runs N active DAGs.
//! - one-file commit: one DAG file's description changed and committed, then a sync on the same
//!   `GitSource` (parse cache warm). 5 rounds (`--rounds`), each on a different file; best and
//!   median. Checked: that DAG's version changed and `dev` runs the new commit. Before these
//!   rounds the tables are analyzed, as autovacuum does within a minute of the cold sync.
//! - no change: a sync with nothing new committed, for reference (5 rounds, median).
//! - `--phases`: also time the steps separately, to see where the time goes: of one-file commit
//!   syncs (resolve the head, snapshot, the environment's current blobs, plan, apply) and of a
//!   cold sync (snapshot by a fresh `GitSource`, then plan and apply after the DAG tables are
//!   emptied).
//!
//! Target (the issue): 10,000 DAG files sync cold in under 2 s, and after a one-file commit in
//! under 100 ms.
//!
//!     cargo bench -p drover-engine --bench git_sync
//!     cargo bench -p drover-engine --bench git_sync -- --files 1000 --rounds 3 --phases
//!     scripts/bench-git-sync [args]
//!
//! `RUST_LOG` (default `warn`) shows the engine's logs on stderr.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use drover_engine::{GitSource, Plan};
use drover_store::{CommitChange, Store};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use support::Error;
type Result<T, E = Error> = std::result::Result<T, E>;

const ENV: &str = "dev";
const ENVIRONMENT_YAML: &str = "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: { env: X_ID }\n  client_secret: { env: X_SECRET }\nconcurrency: 64\n";
/// Connections of the benchmark's pool, all opened before anything is timed.
const CONNECTIONS: u32 = 4;
const COLD_TARGET: Duration = Duration::from_secs(2);
const COMMIT_TARGET: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
struct Args {
    files: usize,
    rounds: usize,
    phases: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        files: 10_000,
        rounds: 5,
        phases: false,
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
    while let Some(a) = it.next() {
        match a.as_str() {
            "--files" => args.files = number("--files", it.next())?,
            "--rounds" => args.rounds = number("--rounds", it.next())?,
            "--phases" => args.phases = true,
            // `cargo bench` passes `--bench` to every benchmark binary.
            "--bench" => {}
            "-h" | "--help" => {
                println!("usage: git_sync [--files N] [--rounds N] [--phases]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (see --help)").into()),
        }
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

#[path = "../../spec/benches/generated/mod.rs"]
mod generated;
use generated::dag_id;

/// Generated DAG `i` (see `crates/spec/benches/generated`); `edit` changes its description only.
fn dag_source(i: usize, edit: Option<usize>) -> String {
    let description = match edit {
        None => format!("Generated DAG number {i}"),
        Some(k) => format!("Generated DAG number {i}, edit {k}"),
    };
    generated::dag_yaml(i, &description)
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        // No background `git gc --auto` racing the timed syncs.
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.autocrlf=false",
            "-c",
            "gc.auto=0",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| format!("git {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Stage everything and commit; returns the new commit's id. The file systems are flushed
/// afterwards, so the timed sync does not pay for writing back the setup's files (a commit of
/// Postgres' WAL may otherwise wait for them).
fn commit(repo: &Path, message: &str) -> Result<String> {
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", message])?;
    let sha = git(repo, &["rev-parse", "HEAD"])?;
    let synced = Command::new("sync")
        .status()
        .map_err(|e| format!("sync: {e}"))?;
    if !synced.success() {
        return Err(format!("sync: {synced}").into());
    }
    Ok(sha)
}

/// What the benchmark measured.
#[derive(Debug)]
struct Summary {
    setup: Duration,
    cold: Duration,
    /// One per round.
    one_file: Vec<Duration>,
    no_change: Vec<Duration>,
    /// With `--phases`: (step, durations) of one-file commit syncs taken apart…
    commit_phases: Vec<(&'static str, Vec<Duration>)>,
    /// … and (step, duration) of a cold sync taken apart.
    cold_phases: Vec<(&'static str, Duration)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

fn best(values: &[Duration]) -> Duration {
    values.iter().min().copied().unwrap_or_default()
}

impl Summary {
    fn print(&self, args: &Args, load_before: &str, load_after: &str) {
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let (one_best, one_median) = (best(&self.one_file), median(&self.one_file));
        println!();
        println!(
            "git sync of {} DAG files: cold {:.2} s; one-file commit best {:.0} ms, median {:.0} ms; no change {:.0} ms ({} round{})",
            args.files,
            self.cold.as_secs_f64(),
            ms(one_best),
            ms(one_median),
            ms(median(&self.no_change)),
            self.one_file.len(),
            if self.one_file.len() == 1 { "" } else { "s" }
        );
        if !self.commit_phases.is_empty() {
            let parts: Vec<String> = self
                .commit_phases
                .iter()
                .map(|(name, d)| format!("{name} {:.1} ms", ms(median(d))))
                .collect();
            println!("one-file commit taken apart (median): {}", parts.join(", "));
        }
        if !self.cold_phases.is_empty() {
            let parts: Vec<String> = self
                .cold_phases
                .iter()
                .map(|(name, d)| format!("{name} {:.0} ms", ms(*d)))
                .collect();
            println!("cold sync taken apart: {}", parts.join(", "));
        }
        if args.files == 10_000 {
            let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
            println!(
                "targets: cold < {:.0} s {}; one-file commit < {:.0} ms {} (median)",
                COLD_TARGET.as_secs_f64(),
                verdict(self.cold < COLD_TARGET),
                ms(COMMIT_TARGET),
                verdict(one_median < COMMIT_TARGET)
            );
        }
        println!(
            "machine: {cores} cores, load {load_before} before, {load_after} after (1/5/15 min); setup {:.1} s (not timed)",
            self.setup.as_secs_f64()
        );
    }
}

/// What `GitSource::apply` records for a sync (its `Deploy` is not exported).
fn sync_change(plan: &Plan, new_paused: bool) -> CommitChange<'_> {
    CommitChange {
        environment: ENV,
        commit: &plan.commit,
        upserts: &plan.upserts,
        removed: &plan.removed,
        errors: &plan.errors,
        new_paused,
        kind: "sync",
        actor: "bench",
        approved_by: None,
        note: None,
        expected_from: plan.from.as_deref(),
        applies_request: None,
    }
}

async fn bench(args: Args, url: String) -> Result<Summary> {
    let store = Store::connect(&url, CONNECTIONS).await?;
    store.migrate().await?;
    // Open every connection of the pool now: a new connection to a new database takes ~0.1 s,
    // which no sync of a running scheduler pays.
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = store.pool().acquire().await?;
        sqlx::query(
            "select count(*) from dag_env join dag_version on dag_version.id = dag_env.version_id",
        )
        .execute(&mut *conn)
        .await?;
        held.push(conn);
    }
    drop(held);
    let result = workloads(&args, &store).await;
    store.pool().close().await;
    result
}

async fn workloads(args: &Args, store: &Store) -> Result<Summary> {
    let n = args.files;
    let setup_started = Instant::now();
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    let dags = repo.join("dags");
    let environments = dir.path().join("environments");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&dags)?;
    std::fs::create_dir_all(&environments)?;
    std::fs::write(environments.join("dev.yaml"), ENVIRONMENT_YAML)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    for i in 0..n {
        std::fs::write(
            dags.join(format!("{}.yaml", dag_id(i))),
            dag_source(i, None),
        )?;
    }
    commit(&repo, &format!("{n} DAGs"))?;
    // Packed, as a clone is, and as git itself leaves a repository of this size (its automatic
    // gc, turned off above so that it cannot run in the background of a timed sync).
    git(&repo, &["gc", "-q"])?;
    let setup = setup_started.elapsed();
    eprintln!(
        "setup: {n} DAG files committed in {:.1} s",
        setup.as_secs_f64()
    );

    let location = repo.to_str().ok_or("temporary path is not UTF-8")?;
    let source = GitSource::open(location, "dags", &cache, environments.clone())?;

    // Cold: nothing parsed, empty database.
    let started = Instant::now();
    let report = source.sync(store).await?;
    let cold = started.elapsed();
    if !report.problems.is_empty() {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        return Err(format!("environment problems: {problems:?}").into());
    }
    let active = store.dag_envs(Some(ENV)).await?.len();
    if active != n {
        let errors = store.import_errors(Some(ENV)).await?;
        let first = errors.first().map(|e| format!("{}: {}", e.path, e.message));
        return Err(format!(
            "after the cold sync `{ENV}` runs {active} DAGs, not {n} ({} import errors; first: {first:?})",
            errors.len()
        )
        .into());
    }
    eprintln!("cold: {n} DAGs in {:.0} ms", ms(cold));
    // What autovacuum does within a minute of the cold sync: without statistics Postgres joins
    // 10,000 DAGs to their versions by index lookups (~10 ms more per sync) instead of hashing.
    sqlx::query("analyze dag_env, dag_version")
        .execute(store.pool())
        .await?;

    let mut edits = 0;
    // A different file each time, spread over the repository.
    let mut edit_one = |round: usize| -> Result<(String, String)> {
        edits += 1;
        let i = (round * 7919 + 13) % n;
        std::fs::write(
            dags.join(format!("{}.yaml", dag_id(i))),
            dag_source(i, Some(edits)),
        )?;
        let sha = commit(&repo, &format!("edit {} ({edits})", dag_id(i)))?;
        Ok((dag_id(i), sha))
    };

    let mut one_file = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let (id, sha) = edit_one(round)?;
        let before = store.dag_env(&id, ENV).await?.version_id;
        let started = Instant::now();
        source.sync(store).await?;
        let took = started.elapsed();
        let after = store.dag_env(&id, ENV).await?;
        if after.version_id == before {
            return Err(format!("{id}: version unchanged after the sync of {sha}").into());
        }
        let deployed = store.current_deployment(ENV).await?.map(|d| d.commit_sha);
        if deployed.as_deref() != Some(sha.as_str()) {
            return Err(format!("`{ENV}` runs {deployed:?}, not {sha}").into());
        }
        eprintln!("one-file commit {}: {id} in {:.1} ms", round + 1, ms(took));
        one_file.push(took);
    }

    let mut no_change = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let started = Instant::now();
        source.sync(store).await?;
        no_change.push(started.elapsed());
    }
    eprintln!("no change: median {:.1} ms", ms(median(&no_change)));

    let mut commit_phases = Vec::new();
    let mut cold_phases = Vec::new();
    if args.phases {
        let env = report
            .environments
            .iter()
            .find(|e| e.name == ENV)
            .ok_or("no dev environment")?
            .clone();

        // One-file commits, step by step.
        let names = [
            "resolve head",
            "snapshot",
            "environment_blobs",
            "plan (both at once)",
            "apply_commit",
        ];
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
        for round in 0..args.rounds {
            let (_, sha) = edit_one(args.rounds + round)?;
            let t = Instant::now();
            let head = source.resolve("refs/heads/main").await?;
            times[0].push(t.elapsed());
            if head != sha {
                return Err(format!("head {head}, expected {sha}").into());
            }
            let t = Instant::now();
            let snapshot = source.snapshot(&head).await?;
            times[1].push(t.elapsed());
            let t = Instant::now();
            let blobs = store.environment_blobs(ENV).await?;
            times[2].push(t.elapsed());
            if blobs.len() != n || snapshot.files.len() != n {
                return Err("phases: unexpected file or DAG count".into());
            }
            let t = Instant::now();
            let plan = source.plan(store, ENV, &head).await?;
            times[3].push(t.elapsed());
            if plan.upserts.len() != 1 {
                return Err(format!("phases: {} upserts, not 1", plan.upserts.len()).into());
            }
            let t = Instant::now();
            store
                .apply_commit(&sync_change(&plan, env.new_dags_paused))
                .await?;
            times[4].push(t.elapsed());
        }
        commit_phases = names.into_iter().zip(times).collect();

        // The cold sync, step by step: a fresh source, then the environment emptied again.
        let fresh = GitSource::open(location, "dags", &cache, environments.clone())?;
        let head = fresh.resolve("refs/heads/main").await?;
        let t = Instant::now();
        let snapshot = fresh.snapshot(&head).await?;
        cold_phases.push(("snapshot (read + parse)", t.elapsed()));
        if snapshot.valid().count() != n {
            return Err("phases: unexpected valid file count".into());
        }
        sqlx::query("truncate deployment, import_error, dag_env, dag_version cascade")
            .execute(store.pool())
            .await?;
        sqlx::query("vacuum analyze dag_env, dag_version")
            .execute(store.pool())
            .await?;
        let t = Instant::now();
        let plan = fresh.plan(store, ENV, &head).await?;
        cold_phases.push(("plan (parsed already)", t.elapsed()));
        if plan.upserts.len() != n {
            return Err(format!("phases: {} upserts, not {n}", plan.upserts.len()).into());
        }
        let t = Instant::now();
        store
            .apply_commit(&sync_change(&plan, env.new_dags_paused))
            .await?;
        cold_phases.push(("apply_commit", t.elapsed()));
        if store.dag_envs(Some(ENV)).await?.len() != n {
            return Err("phases: the cold apply did not record every DAG".into());
        }
    }

    Ok(Summary {
        setup,
        cold,
        one_file,
        no_change,
        commit_phases,
        cold_phases,
    })
}
