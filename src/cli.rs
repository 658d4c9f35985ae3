//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub(crate) const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/drover";

/// Drover: scheduled marketing ETL, with DAGs in git.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
pub(crate) struct Cli {
    /// A settings file: `setting: value` lines (see README's settings table). Flags and
    /// environment variables override it.
    #[arg(long, global = true, env = "DROVER_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) folders: Folders,
    /// Postgres connection URL (the database is created if missing). Required by every
    /// command that reads or changes Drover's state; `db migrate` alone falls back to
    /// postgres://postgres@127.0.0.1:5432/drover, and `standalone` starts its own cluster.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// Who is acting, for the audit trail.
    #[arg(long = "as", global = true, env = "DROVER_USER", default_value = "cli")]
    pub(crate) actor: String,
    /// Log format of the long-running commands.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "DROVER_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Folders {
    /// Folder of DAG files.
    #[arg(long, global = true, env = "DROVER_DAGS_DIR", default_value = "dags")]
    pub(crate) dags_dir: PathBuf,
    /// Folder of environment files.
    #[arg(
        long,
        global = true,
        env = "DROVER_ENVIRONMENTS_DIR",
        default_value = "environments"
    )]
    pub(crate) environments_dir: PathBuf,
    /// The DAG repository: a local path or a URL (https, file://). Without it, every
    /// environment runs the DAGs folder as it is on disk.
    #[arg(long, global = true, env = "DROVER_REPO")]
    pub(crate) repo: Option<String>,
    /// Folder of DAG files inside the repository.
    #[arg(
        long,
        global = true,
        env = "DROVER_REPO_SUBDIR",
        default_value = "dags"
    )]
    pub(crate) repo_subdir: String,
    /// Where remote repositories are cloned.
    #[arg(
        long,
        global = true,
        env = "DROVER_REPO_CACHE",
        default_value = ".drover/repos"
    )]
    pub(crate) repo_cache: PathBuf,
    /// Largest DAG file read (`1MB`, `500kB`, `2MiB` or a number of bytes): a larger file is
    /// refused unread, with its size and the limit, and the other DAGs are unaffected.
    #[arg(
        long,
        global = true,
        env = "DROVER_MAX_DAG_BYTES",
        default_value = "1MB",
        value_name = "SIZE"
    )]
    pub(crate) max_dag_bytes: drover_spec::bytes::ByteSize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate, list and inspect DAGs.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Environments: validate them.
    #[command(subcommand)]
    Env(EnvCommand),
    /// The database: apply migrations.
    #[command(subcommand)]
    Db(DbCommand),
    /// Start everything on this machine: Postgres (embedded unless DATABASE_URL is set), the
    /// scheduler and workers, with this repository's DAGs and environments. Ctrl-C stops it all.
    Standalone(StandaloneArgs),
    /// Run the scheduler: creates and advances runs (reads the DAGs and environments folders).
    Scheduler(SchedulerArgs),
    /// Run a worker: claims and runs task instances.
    Worker(WorkerArgs),
    /// Serve the web UI and the JSON API (/api, described at /api/openapi.json), with
    /// /healthz, /readyz and /metrics.
    Web(WebArgs),
    /// Users and roles: add, passwords, roles (overall or per environment), API tokens.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Trigger, list, show and wait for runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Rerun tasks and read their logs.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// The DAG repository: sync it now.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Staged datasets: look at what a task produced.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Records in the MAP: which runs touched one, and what they changed.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Events that started runs (webhooks, datasets, replays): list them, show one, replay.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Run the MAP sandbox: a local server speaking the Marketo REST API, with seeded leads
    /// and switchable faults.
    Mapsim(MapsimArgs),
    /// Maintenance mode: no run is created or started and nothing can be changed; running
    /// tasks finish.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// The audit trail: promotions, approvals, rollbacks, pauses, triggers, clears.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Create runs for the intervals of a past period.
    Backfill {
        dag: String,
        #[arg(long)]
        env: String,
        /// Start of the period (RFC 3339 or YYYY-MM-DD, in the DAG's time zone).
        #[arg(long)]
        from: String,
        /// End of the period (exclusive).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MaintenanceCommand {
    /// Turn maintenance on (or change its message and end): scheduling pauses, workers claim
    /// nothing new, the UI shows the message and the API answers changes with 503.
    On {
        /// What users see, e.g. "Database upgrade".
        #[arg(long)]
        message: String,
        /// When it ends by itself: an RFC 3339 instant or a duration from now (`90m`, `2h`).
        /// Without it, it lasts until `drover maintenance off`.
        #[arg(long)]
        until: Option<String>,
        /// Stop running tasks too: they are interrupted and queued again (no retry used),
        /// to run when maintenance ends. Without it they finish.
        #[arg(long)]
        stop_running: bool,
    },
    /// Turn maintenance off: scheduling resumes, each DAG catching up as its `catchup` says.
    Off,
    /// Whether maintenance is on, why and until when.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create the database if needed and apply pending migrations.
    Migrate,
}

#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    /// Where Drover keeps its own Postgres cluster and state.
    #[arg(long, env = "DROVER_HOME", default_value = ".drover")]
    pub(crate) home: std::path::PathBuf,
    /// Task instances run at once.
    #[arg(long, env = "DROVER_CONCURRENCY", default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Leads seeded in each environment's MAP sandbox.
    #[arg(long, env = "DROVER_SANDBOX_LEADS", default_value_t = 20_000)]
    pub(crate) sandbox_leads: usize,
    /// How often to re-read the environments and fetch the DAGs, in seconds.
    #[arg(long, env = "DROVER_SYNC_SECS", default_value_t = 10)]
    pub(crate) sync_secs: u64,
    /// Put the MAP sandboxes on this port and the next ones (in the environments' order)
    /// instead of the ports their files name. Either way, a port that is taken is replaced
    /// by a free one, and the start says which.
    #[arg(long, value_name = "PORT")]
    pub(crate) sandbox_port_base: Option<u16>,
    #[command(flatten)]
    pub(crate) web: WebArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct WebArgs {
    /// Address to serve on.
    #[arg(long, env = "DROVER_WEB_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: String,
    /// Mark cookies Secure (set this when Drover is served over HTTPS, e.g. behind a proxy).
    #[arg(long, env = "DROVER_SECURE_COOKIES")]
    pub(crate) secure_cookies: bool,
    /// How long a login lasts, in hours.
    #[arg(long, env = "DROVER_SESSION_HOURS", default_value_t = 12)]
    pub(crate) session_hours: u64,
    /// Login attempts one client address may make per minute (and at once); more are
    /// answered 429 with Retry-After.
    #[arg(long, env = "DROVER_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub(crate) login_attempts_per_minute: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user (the password is read from stdin with --password-stdin, else generated and
    /// printed once).
    Add {
        name: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (stdin with --password-stdin, else generated and printed once).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's role overall, or in one environment with --env (`inherit` removes it).
    Role {
        name: String,
        role: String,
        #[arg(long)]
        env: Option<String>,
    },
    /// Make an API token for a user (printed once).
    Token {
        name: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Users and their roles.
    List,
    /// Stop a user from logging in or using tokens.
    Disable { name: String },
    /// Let a disabled user in again.
    Enable { name: String },
}

#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Longest pause between passes, in milliseconds.
    #[arg(long, env = "DROVER_TICK_MS", default_value_t = 1000)]
    pub(crate) tick_ms: u64,
    /// How often to re-read the environments and the DAGs (folder or repository), in seconds.
    #[arg(long, env = "DROVER_SYNC_SECS", default_value_t = 10)]
    pub(crate) sync_secs: u64,
    /// Seconds past a task's timeout before the scheduler fails it itself.
    #[arg(long, env = "DROVER_TIMEOUT_GRACE_SECS", default_value_t = 30)]
    pub(crate) timeout_grace_secs: u64,
    /// Do one pass and exit.
    #[arg(long)]
    pub(crate) once: bool,
    /// The web UI's address as people reach it, for links in notifications.
    #[arg(long, env = "DROVER_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Task instances run at once.
    #[arg(long, env = "DROVER_CONCURRENCY", default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Worker id (default: host-pid-random).
    #[arg(long, env = "DROVER_WORKER_ID")]
    pub(crate) id: Option<String>,
    /// Lease length, in seconds: a task whose worker stops renewing it is retried after this.
    #[arg(long, env = "DROVER_LEASE_SECS", default_value_t = 30.0)]
    pub(crate) lease_secs: f64,
    /// Lease renewal interval, in seconds (default: a third of the lease).
    #[arg(long, env = "DROVER_HEARTBEAT_SECS")]
    pub(crate) heartbeat_secs: Option<f64>,
    /// On SIGTERM, seconds running tasks get to finish before they are given back.
    #[arg(long, env = "DROVER_GRACE_SECS", default_value_t = 30.0)]
    pub(crate) grace_secs: f64,
    /// Poll interval without notifications, in milliseconds.
    #[arg(long, env = "DROVER_POLL_MS", default_value_t = 2000)]
    pub(crate) poll_ms: u64,
    /// Claim only the tasks of this environment (repeatable; the variable and the settings
    /// file take a comma-separated list). Default: every environment.
    #[arg(
        long = "env",
        env = "DROVER_WORKER_ENVS",
        value_name = "ENV",
        value_delimiter = ','
    )]
    pub(crate) envs: Vec<String>,
    /// Run command tasks as this OS user and its primary group (e.g. `nobody`), so they
    /// cannot read the worker's variables, memory or files. Default: the worker's own user.
    #[arg(long, env = "DROVER_TASK_USER", value_name = "NAME")]
    pub(crate) task_user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// Start a manual run; prints its id.
    Trigger {
        dag: String,
        #[arg(long)]
        env: String,
        /// A parameter value, `name=value` (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// The run's date: YYYY-MM-DD runs the schedule's interval starting that day in the
        /// DAG's time zone, RFC 3339 the interval that instant falls in; default: the latest
        /// complete interval.
        #[arg(long)]
        logical_date: Option<String>,
    },
    /// List runs, newest first.
    List {
        #[arg(long)]
        dag: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a run: its tasks, states, tries and durations.
    Show {
        run_id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show what a return task planned before it wrote (or, in a preview, instead of
    /// writing): totals in words and the first records with each field's old → new value.
    Plan {
        run_id: String,
        task: String,
        /// Records to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve the plan of a return waiting for approval: it is queued again and writes
    /// (operators other than the DAG's last committer, and admins).
    Approve { run_id: String, task: String },
    /// Reject the plan of a return waiting for approval: the task fails with the reason.
    Reject {
        run_id: String,
        task: String,
        /// Why: it goes into the task's error and log.
        #[arg(long)]
        reason: String,
    },
    /// Wait for a run to finish: exit 0 on success, 1 on failure, 3 on timeout.
    Wait {
        run_id: String,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetsCommand {
    /// Print the first rows of a task's dataset in a run (--receipt: a return's receipt).
    Show {
        run_id: String,
        task: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        receipt: bool,
    },
    /// List the datasets of a run.
    List { run_id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// A DAG's events in an environment, newest first: when each came, its trigger, source and
    /// key, the run it went to and how that went.
    List {
        dag: String,
        #[arg(long)]
        env: String,
        /// Only those received within this long before now (90m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (up to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One event: where it came from, its run, its payload, and the events that replay it.
    Show {
        event_id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Send an event through its DAG again, in a new run of type replay (operators and
    /// admins); or, with --dag, --env, --from and --to, every event the DAG received in that
    /// range (at most 10,000; events that shared a run share a replay run).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["event_id", "dag"])))]
    Replay {
        event_id: Option<String>,
        #[arg(long, requires_all = ["env", "from", "to"])]
        dag: Option<String>,
        #[arg(long, requires = "dag")]
        env: Option<String>,
        /// Received at or after: RFC 3339, a local time in the DAG's time zone
        /// (`2026-12-02 14:00`), a date, or a duration ago (`2h`).
        #[arg(long, requires = "dag")]
        from: Option<String>,
        /// Received before (the same forms).
        #[arg(long, requires = "dag")]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecordsCommand {
    /// Every run that touched a record, newest first: when, DAG, run, task, each field's old →
    /// new value, the receipt's status, and whether it was reverted.
    History {
        /// The environment whose MAP holds the record.
        #[arg(long)]
        env: String,
        /// The record: `email=ann@example.com`, `id=1234` (its Marketo id), another lookup
        /// field (`externalId=X-1`), or a bare email.
        record: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// At most this many touches.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct MapsimArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 9911)]
    pub(crate) port: u16,
    /// Leads to seed.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) leads: usize,
    /// Seed of the generated data and of the faults.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Fault profiles, comma-separated: none, token-expiry, rate-limit, quota, server-errors,
    /// timeouts, slow-jobs, partial-import, chaos.
    #[arg(long, default_value = "none")]
    pub(crate) faults: String,
    /// The OAuth client id the sandbox accepts.
    #[arg(long, env = "DROVER_MAPSIM_CLIENT_ID", default_value = "drover")]
    pub(crate) client_id: String,
    /// The OAuth client secret the sandbox accepts.
    #[arg(
        long,
        env = "DROVER_MAPSIM_CLIENT_SECRET",
        default_value = "sandbox-secret",
        hide_default_value = true
    )]
    pub(crate) client_secret: String,
    /// No rate, concurrency or quota limits and no job latency (for benchmarks).
    #[arg(long)]
    pub(crate) no_limits: bool,
    /// Where each form fill is POSTed as JSON (the lead's fields, formName, fillId, filledAt),
    /// as Marketo's "Call Webhook" flow step does: one try, 30 s timeout, no retry. Fills come
    /// from `POST /_sandbox/forms/fill` and `--form-fills-every`; `PUT /_sandbox/webhooks`
    /// changes this at run time and `GET /_sandbox/webhooks` lists the deliveries.
    #[arg(long, value_name = "URL")]
    pub(crate) webhook: Option<String>,
    /// Sent as `Authorization: Bearer TOKEN` with every fill (never printed or logged; other
    /// users of the machine can see a command line: prefer `--webhook-token-file`).
    #[arg(long, value_name = "TOKEN", requires = "webhook")]
    pub(crate) webhook_token: Option<String>,
    /// Read the bearer token from this file (surrounding whitespace dropped), to keep it off
    /// the command line.
    #[arg(
        long,
        value_name = "FILE",
        requires = "webhook",
        conflicts_with = "webhook_token"
    )]
    pub(crate) webhook_token_file: Option<std::path::PathBuf>,
    /// Sign every fill: `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the body>` (never
    /// printed or logged).
    #[arg(long, value_name = "SECRET", requires = "webhook")]
    pub(crate) webhook_hmac_secret: Option<String>,
    /// Read the HMAC secret from this file (its final line break dropped), to keep it off the
    /// command line.
    #[arg(
        long,
        value_name = "FILE",
        requires = "webhook",
        conflicts_with = "webhook_hmac_secret"
    )]
    pub(crate) webhook_hmac_secret_file: Option<std::path::PathBuf>,
    /// A made-up form fill ("Contact Sales") every this often, from 100ms to 24h (`30s`,
    /// `500ms`, `5m`, `1h`): new visitors from many countries and of every segment, and now
    /// and then a known lead again. Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_fill_interval)]
    pub(crate) form_fills_every: Option<std::time::Duration>,
}

fn parse_fill_interval(text: &str) -> Result<std::time::Duration, String> {
    drover_mapsim::parse_every(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub(crate) enum TasksCommand {
    /// Run a finished task again (and, with --downstream, every task after it).
    Clear {
        run_id: String,
        task: String,
        #[arg(long)]
        downstream: bool,
    },
    /// Undo a return: write back the values its records had before it.
    Revert {
        run_id: String,
        task: String,
        /// Write back also records changed since the return (admins only).
        #[arg(long)]
        force: bool,
        /// Follow the job's progress until it ends.
        #[arg(long)]
        wait: bool,
    },
    /// Print a task's log (all tries, or one); --follow keeps printing while it runs.
    Logs {
        run_id: String,
        task: String,
        #[arg(long = "try")]
        try_number: Option<i32>,
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(crate) enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DagsCommand {
    /// Stop scheduling a DAG in an environment (running runs finish).
    Pause {
        dag: String,
        #[arg(long)]
        env: String,
    },
    /// Resume scheduling a DAG in an environment.
    Unpause {
        dag: String,
        #[arg(long)]
        env: String,
    },
    /// Check DAG files and report every problem as file:line:col (exit 1 if any).
    Validate {
        /// Files or folders (default: the DAGs folder).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the DAGs with their schedules and next run.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one DAG: tasks in order, schedule in words, next runs.
    Show {
        /// DAG id.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Files that failed to import at an environment's commit (their DAGs keep their last good version).
    Errors {
        #[arg(long)]
        env: Option<String>,
    },
    /// Run one DAG once, now, from its file as it is on disk (committed or not), against an
    /// environment's MAP (a sandbox started for it when the MAP is a local address), on a
    /// throwaway database unless DATABASE_URL is set. Returns are previewed, not written,
    /// unless --write. Exit 0 on success, 1 on failure or an invalid DAG, 2 on usage errors.
    Test(DagsTestArgs),
    /// Print the next fire times of a DAG's schedule, one RFC 3339 UTC instant per line.
    Next {
        /// A DAG file, or the id of a DAG in the DAGs folder.
        dag: String,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
        /// Start after this instant (RFC 3339); default now.
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DagsTestArgs {
    /// A DAG file, or the id of a DAG in the DAGs folder.
    pub(crate) dag: String,
    /// The environment whose MAP, variables and secrets the run uses.
    #[arg(long, default_value = "dev")]
    pub(crate) env: String,
    /// The run's date, as `drover runs trigger --logical-date` takes it: YYYY-MM-DD runs the
    /// schedule's interval starting that day in the DAG's time zone, RFC 3339 the interval
    /// that instant falls in; default: the latest complete interval.
    #[arg(long)]
    pub(crate) date: Option<String>,
    /// A parameter value, `name=value` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Let returns write to the MAP (without it they plan, say what they would send, and
    /// send nothing).
    #[arg(long)]
    pub(crate) write: bool,
    /// Leads seeded in the MAP sandbox, when one is started.
    #[arg(long, env = "DROVER_SANDBOX_LEADS", default_value_t = 20_000)]
    pub(crate) sandbox_leads: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Check environment files (exit 1 on any problem).
    Validate {
        /// Files or folders (default: the environments folder).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Each environment's commit, since when and by whom; promotions waiting for approval.
    Status,
    /// Pin ENV to the commit the environment below runs (or --from another, or --commit).
    Promote {
        env: String,
        #[arg(long, conflicts_with = "commit")]
        from: Option<String>,
        #[arg(long)]
        commit: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve the promotion waiting for ENV (someone other than who asked).
    Approve { env: String },
    /// Reject the promotion waiting for ENV.
    Reject { env: String },
    /// Put ENV back on the commit it ran before.
    Rollback {
        env: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// What promoting FROM into TO would add, change and remove in TO, DAG by DAG, with the
    /// YAML diff (TO's files → FROM's); "no differences" when there are none.
    Diff { from: String, to: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Fetch, and move the branch-tracking environment to the branch's head.
    Sync,
}
