//! `drover dags test FILE_OR_ID`: one DAG run once, now, in this process, from its file as it
//! is on disk (committed or not), against an environment's MAP. No scheduler: the run is
//! created and started here and a worker of this process, which claims the tasks of this run
//! only, runs it. Without DATABASE_URL it runs on a throwaway Postgres cluster in a temporary
//! folder, removed at the end; when the environment's MAP is a local address where nothing
//! answers it starts a MAP sandbox there, as standalone does. Returns are previewed (the run
//! is a preview run: they plan and send nothing) unless `--write`.

use drover_spec::numbers::thousands as count;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use drover_engine::{DagCache, EngineError, Worker, WorkerConfig};
use drover_spec::dag::{DAG_FILE_EXTENSIONS, Dag, TaskKind};
use drover_spec::environment::{Environment, SecretRef};
use drover_store::embedded::{EmbeddedPostgres, free_port};
use drover_store::{
    NewRun, RunRow, RunState, RunType, Store, TaskInstanceRow, TaskOutcome, TaskState, TryMetrics,
    VersionSync,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Ctx;
use super::dags::Catalog;
use super::sandboxes::{Sandboxes, local_address};
use crate::cli::{DagsTestArgs, Folders, Format};

/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;
/// Records of each return's plan printed after the run.
const PREVIEW_RECORDS: i64 = 10;

/// What the command line asked for, checked before anything is started.
struct Prepared {
    file: PathBuf,
    bytes: Vec<u8>,
    dag: Dag,
    env: Environment,
    params: serde_json::Map<String, serde_json::Value>,
    interval: drover_engine::ops::ManualInterval,
    date: Option<String>,
    write: bool,
    sandbox_leads: usize,
    explicit_url: bool,
}

pub(crate) fn run(ctx: &Ctx, folders: &Folders, args: DagsTestArgs) -> Result<ExitCode> {
    // Usage errors (exit 2, from `main`) and an invalid DAG (exit 1) come before anything
    // is started.
    let file = resolve(&args.dag, folders)?;
    let catalog = Catalog::load(std::slice::from_ref(&file), folders.max_dag_bytes.0)?;
    let Some(dag) = catalog
        .dags
        .into_iter()
        .next()
        .filter(|_| catalog.problems.is_empty())
    else {
        // Located errors, said exactly as `drover dags validate` says them.
        return super::dags::validate(
            std::slice::from_ref(&file),
            folders.max_dag_bytes.0,
            Format::Text,
        );
    };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let env = environment(&folders.environments_dir, &args.env)?;
    if args.write && env.returns.require_approval && !database_given(ctx) {
        bail!(
            "--write in {env}: its returns wait for an operator's approval (`returns: {{ require_approval: true }}`), \
             and a throwaway database has nobody to approve them: leave out --write to preview the plan, \
             or set DATABASE_URL to Drover's database and approve there (`drover runs approve RUN_ID TASK`)",
            env = env.name
        );
    }
    let mut pairs = Vec::new();
    for pair in &args.params {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--param `{pair}`: expected NAME=VALUE");
        };
        pairs.push((name.to_owned(), value.to_owned()));
    }
    let params =
        drover_engine::ops::parse_params(&dag, &pairs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let interval = drover_engine::ops::manual_interval(&dag, args.date.as_deref(), Utc::now())
        .map_err(|e| anyhow::anyhow!("--date: {e}"))?;
    let prepared = Prepared {
        file,
        bytes,
        dag,
        env,
        params,
        interval,
        date: args.date,
        write: args.write,
        sandbox_leads: args.sandbox_leads,
        explicit_url: database_given(ctx),
    };
    super::not_dumpable();
    crate::telemetry::init_quiet();
    super::runtime()?.block_on(execute(ctx, &prepared))
}

/// The DAG file `arg` names: a file, else the file of the DAG with that id in the DAGs
/// folder (`ID.yaml` first, else whichever file declares it).
fn resolve(arg: &str, folders: &Folders) -> Result<PathBuf> {
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        bail!("`{arg}` is a folder: give one DAG file, or a DAG id");
    }
    let looks_like_a_file = arg.contains('/')
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| DAG_FILE_EXTENSIONS.contains(&e));
    if looks_like_a_file {
        bail!("no file `{arg}`");
    }
    for ext in DAG_FILE_EXTENSIONS {
        let candidate = folders.dags_dir.join(format!("{arg}.{ext}"));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let catalog = Catalog::load(
        std::slice::from_ref(&folders.dags_dir),
        folders.max_dag_bytes.0,
    )
    .with_context(|| {
        format!(
            "no DAG file `{arg}`, and the DAGs folder {} cannot be read",
            folders.dags_dir.display()
        )
    })?;
    if let Some(dag) = catalog.dags.iter().find(|d| d.id == arg) {
        return Ok(PathBuf::from(&dag.file));
    }
    let hint = drover_spec::suggest::did_you_mean(arg, catalog.dags.iter().map(|d| d.id.as_str()));
    bail!(
        "no DAG `{arg}` in {}{hint} (give a file path to test a file elsewhere)",
        folders.dags_dir.display()
    )
}

/// The environment `name` as its file in `dir` says it.
fn environment(dir: &Path, name: &str) -> Result<Environment> {
    let files = crate::sources::yaml_files(&[dir.to_path_buf()])
        .with_context(|| format!("cannot read the environments folder {}", dir.display()))?;
    let mut names = Vec::new();
    for (file, text) in crate::sources::read_all(&files, None) {
        let Ok(text) = text else { continue };
        match drover_spec::environment::load_environment(&file, &text) {
            Ok(env) if env.name == name => return Ok(env),
            Ok(env) => names.push(env.name),
            Err(problems) if Path::new(&file).file_stem().is_some_and(|s| s == name) => {
                let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                bail!(
                    "the environment file of `{name}` has errors:\n{}",
                    listed.join("\n")
                );
            }
            Err(_) => {}
        }
    }
    names.sort();
    let hint = drover_spec::environment::suggest_name(name, names.iter().map(String::as_str));
    bail!(
        "no environment `{name}` in {}{hint} (there: {})",
        dir.display(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// The in-process worker: its stop switch and its task.
type RunningWorker = (watch::Sender<bool>, JoinHandle<Result<(), EngineError>>);

/// What was started, to stop at the end whatever happened (Ctrl-C included).
#[derive(Default)]
struct Started {
    temp: Option<PathBuf>,
    starting_pg: Option<JoinHandle<Result<EmbeddedPostgres>>>,
    pg: Option<EmbeddedPostgres>,
    store: Option<Store>,
    sandboxes: Option<Sandboxes>,
    worker: Option<RunningWorker>,
    run: Option<Uuid>,
}

async fn execute(ctx: &Ctx, p: &Prepared) -> Result<ExitCode> {
    // Ctrl-C from here on stops what was started, then exits.
    let stop = super::serve::shutdown_signal();
    let began = Instant::now();
    let mut started = Started::default();
    let outcome = tokio::select! {
        r = drive(ctx, p, &mut started, began) => Some(r),
        () = stop => None,
    };
    if outcome.is_none() {
        step(
            began,
            "stopping (Ctrl-C): the worker, the MAP sandbox, Postgres",
        );
    }
    started.stop(ctx, began).await;
    Ok(match outcome {
        None => {
            step(began, "stopped");
            ExitCode::from(INTERRUPTED)
        }
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    })
}

/// A line of progress on stderr, timed from the start.
fn step(began: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", began.elapsed().as_secs_f64());
}

/// A line of the report on stdout; a reader that went away stops nothing.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn drive(ctx: &Ctx, p: &Prepared, s: &mut Started, began: Instant) -> Result<ExitCode> {
    let dag = &p.dag;
    let env = &p.env;
    say(&header(p));
    let url = if p.explicit_url {
        step(began, "using the Postgres at DATABASE_URL");
        ctx.database_url()?.to_owned()
    } else {
        let dir =
            std::env::temp_dir().join(format!("drover-dags-test-{}", Uuid::new_v4().simple()));
        s.temp = Some(dir.clone());
        let port = free_port()?;
        step(
            began,
            &format!(
                "starting a throwaway Postgres in {} (port {port}), removed at the end",
                dir.display()
            ),
        );
        let handle = s.starting_pg.insert(tokio::task::spawn_blocking(move || {
            let pg = EmbeddedPostgres::throwaway(&dir, port)?;
            pg.start()?;
            Ok(pg)
        }));
        let pg = handle.await.context("starting Postgres")?;
        s.starting_pg = None;
        let pg = pg?;
        let url = pg.url("drover");
        s.pg = Some(pg);
        url
    };
    let db = Ctx {
        database_url: Some(url),
        actor: ctx.actor.clone(),
    };
    step(began, "preparing the database");
    let concurrency = usize::try_from(env.concurrency.max(1)).unwrap_or(4).min(16);
    let store = db
        .store(u32::try_from(concurrency).unwrap_or(4) + 6)
        .await?;
    s.store = Some(store.clone());
    // Who may run tasks in the environment may test a DAG there.
    let known = store
        .environments()
        .await?
        .iter()
        .any(|e| e.name == env.name);
    if known {
        db.authorize(&store, drover_engine::ops::Action::Trigger, Some(&env.name))
            .await?;
    }
    drover_engine::record_environment(&store, env).await?;
    let actor = db
        .authorize(&store, drover_engine::ops::Action::Trigger, Some(&env.name))
        .await?;
    let source = String::from_utf8_lossy(&p.bytes).into_owned();
    let version_id = store
        .record_version(&VersionSync {
            dag_id: dag.id.clone(),
            path: p.file.display().to_string(),
            blob_id: drover_engine::git_blob_id(&p.bytes),
            commit_sha: None,
            source,
        })
        .await?;

    let plane = drover_engine::data::DataPlane::connect(
        &store,
        u32::try_from(concurrency).unwrap_or(4) + 2,
    )
    .await
    .context("preparing the data plane")?;
    let plane = match local_address(env) {
        None => plane,
        Some(addr) => {
            let answers =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
                    .is_ok_and(|c| c.is_ok());
            if answers && credentials_at_hand(env) {
                step(
                    began,
                    &format!(
                        "a MAP already answers at {}: using it, with the credentials the environment `{}` names",
                        env.map.base_url, env.name
                    ),
                );
                plane
            } else {
                // Something else holds the address (standalone's own sandbox, whose
                // credentials only it knows): a sandbox of our own on a free port instead.
                step(
                    began,
                    &format!(
                        "starting a MAP sandbox at {} ({} leads)",
                        env.map.base_url, p.sandbox_leads
                    ),
                );
                let sandboxes =
                    super::sandboxes::start(std::slice::from_ref(env), p.sandbox_leads).await?;
                let plane = sandboxes.open(plane);
                s.sandboxes = Some(sandboxes);
                plane
            }
        }
    };

    // The run: created, audited and started here (no scheduler).
    let mut tx = store.begin().await?;
    let run = tx
        .insert_run(&NewRun {
            dag_id: dag.id.clone(),
            environment: env.name.clone(),
            version_id,
            run_type: RunType::Manual,
            logical_date: p.interval.logical_date,
            interval_start: p.interval.start,
            interval_end: p.interval.end,
            params: serde_json::Value::Object(p.params.clone()),
            triggered_by: Some(actor.name.clone()),
            // A test run has no deadline: nobody is told it missed one.
            deadline_at: None,
            preview: !p.write,
        })
        .await?
        .context("the run was not created")?;
    tx.audit(
        &actor.name,
        "run.trigger",
        Some(&env.name),
        Some(&dag.id),
        Some(run),
        &serde_json::json!({
            "dags_test": true,
            "file": p.file.display().to_string(),
            "params": p.params,
            "logical_date": p.date,
            "interval_start": p.interval.start,
            "interval_end": p.interval.end,
            "preview": !p.write,
        }),
    )
    .await?;
    tx.commit().await?;
    s.run = Some(run);
    store
        .start_run_now(run, &drover_engine::task_instance_specs(dag, None))
        .await?;
    step(began, &format!("run {run} started"));

    let mut config = WorkerConfig::new(
        format!(
            "dags-test-{}-{}",
            std::process::id(),
            &run.simple().to_string()[..8]
        ),
        concurrency,
    );
    config.environments = Some(vec![env.name.clone()]);
    config.runs = Some(vec![run]);
    config.poll = Duration::from_millis(500);
    // Ctrl-C stops running tasks soon, rather than letting them finish.
    config.grace = Duration::from_secs(1);
    let (stop_worker, stopped) = watch::channel(false);
    let worker = tokio::spawn(
        Worker::new(store.clone(), config)
            .with_data(plane)
            .run(until_true(stopped)),
    );
    s.worker = Some((stop_worker, worker));

    let row = follow(&store, dag, run, began).await?;
    // The worker's logs are all written once it stopped: the previews read them.
    if let Some((stop, worker)) = s.worker.take() {
        let _ = stop.send(true);
        worker.await.context("the worker")??;
    }
    report(&store, env, dag, &row).await?;
    if p.explicit_url {
        say(&format!(
            "\nThe run stays in the database at DATABASE_URL: drover runs show {run}"
        ));
    }
    Ok(if row.state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether the MAP credentials the environment names are there to read (set variables,
/// existing files).
fn credentials_at_hand(env: &Environment) -> bool {
    [&env.map.client_id, &env.map.client_secret]
        .into_iter()
        .all(|at| match at {
            SecretRef::Env(var) => std::env::var_os(var).is_some_and(|v| !v.is_empty()),
            SecretRef::File(path) => Path::new(path).is_file(),
        })
}

/// Whether a database was given (DATABASE_URL, `--database-url`, a settings file), not
/// found: the one in standalone's `.drover/cli.yaml` is standalone's own, and a test run
/// does not go into it (standalone's workers would take its tasks).
fn database_given(ctx: &Ctx) -> bool {
    if ctx.database_url.is_none() {
        return false;
    }
    if crate::config_file::standalone_file_used().is_none() {
        return true;
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::env::var_os("DATABASE_URL").is_some()
        || crate::config_file::named_in(&args).is_some()
        || args.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "--database-url" || a.starts_with("--database-url=")
        })
}

/// Resolves once `rx` holds true (or its sender is gone).
async fn until_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn header(p: &Prepared) -> String {
    let dag = &p.dag;
    let zone = dag.timezone;
    let at = |t: chrono::DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M");
    let interval = if p.interval.start == p.interval.end {
        format!("{} {}", at(p.interval.start), zone.name())
    } else {
        format!(
            "{} → {} {}",
            at(p.interval.start),
            at(p.interval.end),
            zone.name()
        )
    };
    let params: Vec<String> = dag
        .params
        .iter()
        .filter_map(|param| {
            let value = p
                .params
                .get(&param.name)
                .or(param.default.as_ref())?
                .to_string();
            Some(format!("{}={value}", param.name))
        })
        .collect();
    let mut out = format!(
        "Testing {} from {} (as it is on disk) in {}, interval {interval}",
        dag.id,
        p.file.display(),
        p.env.name
    );
    if !params.is_empty() {
        out.push_str(&format!("\nparams: {}", params.join(", ")));
    }
    out.push_str(if p.write {
        "\nreturns: WRITE to the MAP (--write)"
    } else {
        "\nreturns: previewed, nothing is written to the MAP (--write writes)"
    });
    out
}

/// Drive the run to its end (retries queued when due, trigger rules decided), printing each
/// task as it starts and ends. The finished run.
async fn follow(store: &Store, dag: &Dag, run: Uuid, began: Instant) -> Result<RunRow> {
    let width = dag.tasks.iter().map(|t| t.id.len()).max().unwrap_or(0);
    let mut said: HashMap<String, (TaskState, i32)> = HashMap::new();
    loop {
        store.queue_due_retries().await?;
        store.evaluate_runs(&[run]).await?;
        let row = store.get_run(run).await?;
        let tasks = store.task_instances(run).await?;
        let outcomes: HashMap<String, TaskOutcome> = store
            .task_outcomes(&[run])
            .await?
            .into_iter()
            .map(|o| (o.task_id.clone(), o))
            .collect();
        let problems = store.run_problems(&[run]).await?;
        for ti in &tasks {
            let state = ti.state.0;
            if matches!(state, TaskState::Pending | TaskState::Queued) {
                continue;
            }
            if said.get(&ti.task_id) == Some(&(state, ti.try_number)) {
                continue;
            }
            said.insert(ti.task_id.clone(), (state, ti.try_number));
            let words = task_line(dag, ti, outcomes.get(&ti.task_id), &problems);
            say(&format!(
                "[{:>5.1}s] {:<width$}  {words}",
                began.elapsed().as_secs_f64(),
                ti.task_id
            ));
        }
        if row.state.is_finished() {
            return Ok(row);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// "success in 1.4s · 290 rows out · 4 MAP calls · check passed".
fn task_line(
    dag: &Dag,
    ti: &TaskInstanceRow,
    outcome: Option<&TaskOutcome>,
    problems: &[drover_store::ProblemFacts],
) -> String {
    let state = ti.state.0;
    let took = match (ti.started_at, ti.finished_at) {
        (Some(a), Some(b)) => format!(" in {:.1}s", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    let tries = if ti.max_tries > 1 && ti.try_number > 1 {
        format!(" (try {} of {})", ti.try_number, ti.max_tries)
    } else {
        String::new()
    };
    let mut parts = vec![match state {
        TaskState::Running => format!("running{tries}"),
        TaskState::UpForRetry => {
            let when = ti
                .next_attempt_at
                .map(|t| format!(", tries again at {}", t.format("%H:%M:%S UTC")))
                .unwrap_or_default();
            format!("failed{took}{tries}{when}")
        }
        TaskState::UpstreamFailed => "not run: a task before it failed".to_owned(),
        TaskState::Skipped => "skipped".to_owned(),
        TaskState::AwaitingApproval => format!(
            "waiting for approval of its plan: `drover runs approve {} {}` (or reject) against this database",
            ti.run_id, ti.task_id
        ),
        s => format!("{}{took}{tries}", s.as_str()),
    }];
    if state.is_finished() || state == TaskState::UpForRetry {
        if let Some(o) = outcome {
            parts.extend(metrics_words(&o.metrics));
            let is_check = matches!(
                dag.task(&ti.task_id).map(|t| &t.kind),
                Some(TaskKind::Check(_))
            );
            match &o.check {
                Some((true, _)) => parts.push("check passed".to_owned()),
                Some((false, severity)) if severity == "warn" => {
                    let zone = dag.timezone;
                    let why = problems
                        .iter()
                        .find(|p| {
                            p.kind == drover_store::ProblemKind::CheckWarning
                                && p.task_id.as_deref() == Some(ti.task_id.as_str())
                        })
                        .map(|p| drover_engine::story::problem(p, zone, Some(dag)).message);
                    parts.push(match why {
                        Some(why) => format!("check warned: {why}"),
                        None => "check warned".to_owned(),
                    });
                }
                Some((false, _)) => parts.push("check failed".to_owned()),
                None if is_check && state == TaskState::Success => {
                    parts.push("check passed".to_owned())
                }
                None => {}
            }
        }
        if matches!(state, TaskState::Failed | TaskState::UpForRetry)
            && let Some(e) = &ti.last_error
        {
            parts.push(e.lines().next().unwrap_or_default().to_owned());
        }
    }
    parts.join(" · ")
}

fn metrics_words(m: &TryMetrics) -> Vec<String> {
    let mut out = Vec::new();
    match (m.rows_in, m.rows_out) {
        (Some(i), Some(o)) => out.push(format!("rows in {}, out {}", count(i), count(o))),
        (None, Some(o)) => out.push(format!("rows out {}", count(o))),
        (Some(i), None) => out.push(format!("rows in {}", count(i))),
        (None, None) => {}
    }
    if let Some(n) = m.rows_unchanged.filter(|n| *n > 0) {
        out.push(format!("{} unchanged", count(n)));
    }
    if let Some(n) = m.rows_rejected.filter(|n| *n > 0) {
        out.push(format!("{} rejected", count(n)));
    }
    if let Some(n) = m.api_calls.filter(|n| *n > 0) {
        out.push(format!(
            "{} MAP call{}",
            count(n),
            if n == 1 { "" } else { "s" }
        ));
    }
    out
}

/// The run's summary sentence (as its page says it), its warnings, and each return's
/// preview.
async fn report(store: &Store, env: &Environment, dag: &Dag, row: &RunRow) -> Result<()> {
    let cache = DagCache::new(store.clone());
    let stories = drover_engine::story::run_stories(
        store,
        &cache,
        std::slice::from_ref(env),
        std::slice::from_ref(row),
    )
    .await?;
    if let Some(story) = stories.get(&row.id) {
        say(&format!(
            "\nRun {}: {}",
            story.outcome_words(row.state),
            story.sentence
        ));
        for p in &story.problems {
            say(&format!("  warning: {}", p.message));
        }
    }
    let returns: Vec<&str> = dag
        .tasks
        .iter()
        .filter(|t| matches!(t.kind, TaskKind::Return(_)))
        .map(|t| t.id.as_str())
        .collect();
    if returns.is_empty() {
        return Ok(());
    }
    let tasks = store.task_instances(row.id).await?;
    let outcomes = store.task_outcomes(&[row.id]).await?;
    say(if row.preview {
        "\nReturns (preview: nothing was sent to the MAP; --write sends):"
    } else {
        "\nReturns (written to the MAP):"
    });
    for id in returns {
        let Some(ti) = tasks.iter().find(|t| t.task_id == id) else {
            continue;
        };
        let outcome = outcomes.iter().find(|o| o.task_id == id);
        for line in return_preview(store, row, ti, outcome).await? {
            say(&format!("  {line}"));
        }
    }
    Ok(())
}

/// What one return would send (a preview run) or sent: its recorded plan (totals in words,
/// then the first records with each field old → new), and after a write what the MAP did.
async fn return_preview(
    store: &Store,
    row: &RunRow,
    ti: &TaskInstanceRow,
    outcome: Option<&TaskOutcome>,
) -> Result<Vec<String>> {
    let id = &ti.task_id;
    match ti.state.0 {
        TaskState::Success => {}
        TaskState::UpstreamFailed => return Ok(vec![format!("{id}: not run")]),
        s => return Ok(vec![format!("{id}: {} before it planned", s.as_str())]),
    }
    let view = store
        .latest_return_plan_with_records(row.id, id, PREVIEW_RECORDS)
        .await?;
    let more = format!("all of them: `drover runs plan {} {id}`", row.id);
    let mut out = Vec::new();
    if row.preview {
        out.push(match &view {
            Some(v) => format!(
                "{id}: would send {} of {} records; nothing was sent (preview: `--write` sends them)",
                count(v.plan.sends),
                count(v.plan.rows)
            ),
            None => format!("{id}: nothing was sent (preview)"),
        });
    } else {
        let m = outcome.map(|o| o.metrics).unwrap_or_default();
        let mut words = vec![format!("{id}: sent {}", count(m.rows_out.unwrap_or(0)))];
        if let Some(created) = m.rows_created.filter(|n| *n > 0) {
            words.push(format!("{} created", count(created)));
        }
        words.extend(metrics_words(&TryMetrics {
            rows_in: None,
            rows_out: None,
            ..m
        }));
        out.push(words.join(" · "));
    }
    match view {
        Some(view) => out.extend(
            super::runs::plan_text(&view, &more)
                .lines()
                .map(|l| format!("  {l}")),
        ),
        None => out.push("  no plan was recorded".to_owned()),
    }
    Ok(out)
}

impl Started {
    /// Stop everything started, in order: the worker (its running tasks stopped and given
    /// back), the run (failed, audited, when it did not finish), the sandbox, Postgres, the
    /// temporary folder.
    async fn stop(&mut self, ctx: &Ctx, began: Instant) {
        if let Some((stop, worker)) = self.worker.take() {
            let _ = stop.send(true);
            match worker.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: the worker stopped with: {e}"),
                Err(e) => eprintln!("warning: the worker stopped with: {e}"),
            }
        }
        if let (Some(store), Some(run)) = (&self.store, self.run) {
            let unfinished = store
                .get_run(run)
                .await
                .is_ok_and(|r| !r.state.is_finished());
            if unfinished && let Err(e) = mark_stopped(store, &ctx.actor, run).await {
                eprintln!("warning: run {run} could not be marked failed: {e:#}");
            }
        }
        if let Some(store) = self.store.take() {
            store.pool().close().await;
        }
        if let Some(sandboxes) = self.sandboxes.take() {
            sandboxes.shutdown().await;
        }
        // A Postgres still starting is waited for, to be stopped.
        if let Some(handle) = self.starting_pg.take()
            && let Ok(Ok(pg)) = handle.await
        {
            self.pg = Some(pg);
        }
        if let Some(pg) = self.pg.take() {
            step(began, "stopping Postgres");
            let stopped = tokio::task::spawn_blocking(move || {
                // Ctrl-C at a terminal reaches Postgres too, which then stops by itself.
                if pg.is_running() { pg.stop() } else { Ok(()) }
            })
            .await;
            if let Ok(Err(e)) = stopped {
                eprintln!("warning: {e}");
            }
        }
        if let Some(dir) = self.temp.take()
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            eprintln!("warning: cannot remove {}: {e}", dir.display());
        }
    }
}

/// A run stopped before its end: failed, with its unfinished tasks, and audited.
async fn mark_stopped(store: &Store, actor: &str, run: Uuid) -> Result<()> {
    let row = store.get_run(run).await?;
    let mut tx = store.begin().await?;
    let tasks = tx.mark_run(run, RunState::Failed).await?;
    tx.audit(
        actor,
        "run.mark",
        Some(&row.environment),
        Some(&row.dag_id),
        Some(run),
        &serde_json::json!({
            "state": "failed",
            "tasks": tasks,
            "reason": "drover dags test was stopped",
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
