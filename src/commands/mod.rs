//! One module per command group.

mod approvals;
mod dags;
mod dags_test;
mod datasets;
mod deploy;
mod env;
mod events;
mod form_hook;
mod maintenance;
mod mapsim;
mod records;
mod runs;
mod sandboxes;
mod serve;
mod standalone;
mod tasks;
mod users;
mod web;

use std::process::ExitCode;

use anyhow::{Context, Result};
use drover_store::Store;

use crate::cli::{Cli, Command, DbCommand};

/// Settings every database command needs.
pub(crate) struct Ctx {
    /// `None` when neither DATABASE_URL, `--database-url` nor a settings file gives one:
    /// the commands that need a database refuse then, rather than guess one.
    pub(crate) database_url: Option<String>,
    pub(crate) actor: String,
}

impl Ctx {
    /// The CLI's user, allowed to do `action` (in `environment`): the same rules as in the web
    /// UI and API. Until the first user exists, the CLI acts as an administrator (to set
    /// Drover up); after that, `--as` / `DROVER_USER` must name a user.
    pub(crate) async fn authorize(
        &self,
        store: &Store,
        action: drover_engine::ops::Action,
        environment: Option<&str>,
    ) -> Result<drover_engine::ops::Actor> {
        let actor = if store.count_users().await? == 0 {
            drover_engine::ops::Actor::with_role(
                self.actor.clone(),
                drover_spec::environment::Role::Admin,
            )
        } else {
            let user = store.user(&self.actor).await?.with_context(|| {
                format!(
                    "no Drover user named `{}`: pass --as NAME (or set DROVER_USER) to act as a user; `drover users list` shows them",
                    self.actor
                )
            })?;
            if user.disabled {
                anyhow::bail!("the user `{}` is disabled", self.actor);
            }
            drover_web::auth::actor_of(&user)
        };
        let env = match environment {
            Some(name) => Some(
                drover_engine::ops::Operations::new(store.clone())
                    .environment(name)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            None => None,
        };
        actor
            .check(action, env.as_ref())
            .map_err(|m| anyhow::anyhow!("refused: {m}"))?;
        Ok(actor)
    }

    /// The database URL, or the error that says where to find it.
    pub(crate) fn database_url(&self) -> Result<&str> {
        self.database_url.as_deref().with_context(|| {
            format!(
                "no database given: set DATABASE_URL (or pass --database-url, or `database_url:` in a --config file). \
                 `drover standalone` prints the one it uses when it starts, and writes it to {}/{}, \
                 which drover reads when run in that folder",
                crate::config_file::STANDALONE_HOME,
                crate::config_file::STANDALONE_FILE
            )
        })
    }

    pub(crate) async fn store(&self, max_connections: u32) -> Result<Store> {
        let url = self.database_url()?;
        let store = Store::connect(url, max_connections).await.with_context(|| {
            match crate::config_file::standalone_file_used() {
                Some(file) => format!(
                    "cannot connect to Postgres at the DATABASE_URL in {} (written by `drover standalone`: is it running?)",
                    file.display()
                ),
                None => "cannot connect to Postgres (check DATABASE_URL or --database-url)".to_owned(),
            }
        })?;
        store
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        Ok(store)
    }
}

/// Where the scheduler and deployment commands read DAGs: the git repository when one is
/// configured (fetched now), else the DAGs folder.
pub(crate) fn dag_source(folders: &crate::cli::Folders) -> Result<drover_engine::DagSource> {
    open_dag_source(folders, true)
}

/// As [`dag_source`], leaving a remote's fetch to the first sync: a scheduler starts, and
/// schedules what it has, even while the remote does not answer.
pub(crate) fn dag_source_unfetched(
    folders: &crate::cli::Folders,
) -> Result<drover_engine::DagSource> {
    open_dag_source(folders, false)
}

fn open_dag_source(
    folders: &crate::cli::Folders,
    fetch_now: bool,
) -> Result<drover_engine::DagSource> {
    Ok(match &folders.repo {
        Some(location) => {
            let open = if fetch_now {
                drover_engine::GitSource::open
            } else {
                drover_engine::GitSource::open_unfetched
            };
            drover_engine::DagSource::Git(
                open(
                    location,
                    &folders.repo_subdir,
                    &folders.repo_cache,
                    folders.environments_dir.clone(),
                )
                .with_context(|| format!("cannot open the DAG repository {location}"))?
                .with_max_dag_bytes(folders.max_dag_bytes.0),
            )
        }
        None => drover_engine::DagSource::Folder(drover_engine::FolderSource {
            dags_dir: folders.dags_dir.clone(),
            environments_dir: folders.environments_dir.clone(),
            max_dag_bytes: folders.max_dag_bytes.0,
        }),
    })
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Keep other processes of this user (command tasks among them) out of this one's memory
/// and `/proc/<pid>/environ`, where the database URL and the MAP credentials are: the
/// process is not dumpable, so its `/proc` files belong to root and ptrace is refused.
fn not_dumpable() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot mark this process non-dumpable");
    }
}

/// A command that prints and ends dies quietly of SIGPIPE when its reader goes away
/// (`drover runs show … | head -1`), as `cat` does, instead of failing with "Broken pipe".
/// The long-running commands keep ignoring it: a reader that goes away must not stop them.
#[allow(unsafe_code)]
fn quiet_on_closed_pipe(command: &Command) {
    if matches!(
        command,
        Command::Standalone(_)
            | Command::Scheduler(_)
            | Command::Worker(_)
            | Command::Web(_)
            | Command::Mapsim(_)
            // It started a database and a sandbox, which it must stop.
            | Command::Dags(crate::cli::DagsCommand::Test(_))
    ) {
        return;
    }
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restores the default disposition before any thread is started; no handler
    // function is involved.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("warning: cannot restore SIGPIPE: {e}");
    }
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    quiet_on_closed_pipe(&cli.command);
    let ctx = Ctx {
        database_url: cli.database_url.clone(),
        actor: cli.actor.clone(),
    };
    match cli.command {
        Command::Dags(cmd) => dags::run(&ctx, &cli.folders, cmd),
        Command::Env(crate::cli::EnvCommand::Validate { paths, format }) => {
            env::validate_command(&cli.folders, paths, format)
        }
        Command::Env(cmd) => runtime()?.block_on(deploy::env(&ctx, &cli.folders, cmd)),
        Command::Repo(crate::cli::RepoCommand::Sync) => {
            runtime()?.block_on(deploy::sync(&ctx, &cli.folders))
        }
        Command::Maintenance(command) => runtime()?.block_on(maintenance::run(&ctx, command)),
        Command::Audit { limit, format } => runtime()?.block_on(deploy::audit(&ctx, limit, format)),
        Command::Db(DbCommand::Migrate) => runtime()?.block_on(async {
            let ctx = Ctx {
                database_url: Some(
                    ctx.database_url
                        .clone()
                        .unwrap_or_else(|| crate::cli::DEFAULT_DATABASE_URL.to_owned()),
                ),
                actor: ctx.actor.clone(),
            };
            ctx.store(2).await?;
            println!("database ready: migrations applied");
            Ok(ExitCode::SUCCESS)
        }),
        Command::Standalone(args) => {
            crate::telemetry::init(cli.log_format);
            not_dumpable();
            runtime()?.block_on(standalone::run(&ctx, &cli.folders, args))
        }
        Command::Scheduler(args) => {
            crate::telemetry::init(cli.log_format);
            not_dumpable();
            runtime()?.block_on(serve::scheduler(&ctx, &cli.folders, args))
        }
        Command::Worker(args) => {
            crate::telemetry::init(cli.log_format);
            not_dumpable();
            runtime()?.block_on(serve::worker(&ctx, args))
        }
        Command::Web(args) => {
            crate::telemetry::init(cli.log_format);
            not_dumpable();
            runtime()?.block_on(web::run(&ctx, &cli.folders, args))
        }
        Command::Users(cmd) => runtime()?.block_on(users::run(&ctx, cmd)),
        Command::Runs(crate::cli::RunsCommand::Approve { run_id, task }) => {
            runtime()?.block_on(approvals::approve(&ctx, &cli.folders, &run_id, &task))
        }
        Command::Runs(crate::cli::RunsCommand::Reject {
            run_id,
            task,
            reason,
        }) => runtime()?.block_on(approvals::reject(
            &ctx,
            &cli.folders,
            &run_id,
            &task,
            &reason,
        )),
        Command::Runs(cmd) => runtime()?.block_on(runs::run(&ctx, cmd)),
        Command::Tasks(cmd) => runtime()?.block_on(tasks::run(&ctx, cmd)),
        Command::Datasets(cmd) => runtime()?.block_on(datasets::run(&ctx, cmd)),
        Command::Records(cmd) => runtime()?.block_on(records::run(&ctx, cmd)),
        Command::Events(cmd) => runtime()?.block_on(events::run(&ctx, cmd)),
        Command::Mapsim(args) => {
            crate::telemetry::init(cli.log_format);
            runtime()?.block_on(mapsim::run(args))
        }
        Command::Backfill { dag, env, from, to } => {
            runtime()?.block_on(runs::backfill(&ctx, &dag, &env, &from, &to))
        }
    }
}
