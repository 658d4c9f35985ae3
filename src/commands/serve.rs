//! The long-running processes: `drover scheduler` and `drover worker`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use drover_engine::{Scheduler, SchedulerConfig, Worker, WorkerConfig};

use super::Ctx;
use crate::cli::{Folders, SchedulerArgs, WorkerArgs};

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called,
/// not when the future is first polled: call it first thing, so a stop asked for while the
/// process is still starting is kept and honoured once it runs (instead of killing it
/// half-way through its start).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let received = |s: Option<Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = received(term) => {}
            () = received(interrupt) => {}
        }
        tracing::info!("stop requested");
    }
}

pub(crate) async fn scheduler(
    ctx: &Ctx,
    folders: &Folders,
    args: SchedulerArgs,
) -> Result<ExitCode> {
    let stop = shutdown_signal();
    let store = ctx.store(8).await?;
    let config = SchedulerConfig {
        tick: Duration::from_millis(args.tick_ms.max(10)),
        // `--once` syncs first, fetching; the loop fetches at its first sync, in the background.
        source: Some(if args.once {
            super::dag_source(folders)?
        } else {
            super::dag_source_unfetched(folders)?
        }),
        sync_every: Duration::from_secs(args.sync_secs),
        timeout_grace: Duration::from_secs(args.timeout_grace_secs),
        ..SchedulerConfig::default()
    };
    if args.once {
        if let Some(source) = &config.source {
            source.sync(&store).await?;
        }
        Scheduler::new(store, config).pass(&[]).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let plane = drover_engine::data::DataPlane::connect(&store, 2)
        .await
        .context("preparing the data plane")?;
    let notifier = drover_engine::Notifier::new(store.clone(), args.public_url)?;
    Scheduler::new(store, config)
        .with_data(plane)
        .with_notifier(notifier)
        .run(stop)
        .await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn worker(ctx: &Ctx, args: WorkerArgs) -> Result<ExitCode> {
    let stop = shutdown_signal();
    let task_user = task_user(args.task_user.as_deref())?;
    let connections = u32::try_from(args.concurrency.min(16)).unwrap_or(16) + 4;
    let store = ctx.store(connections).await?;
    let id = args.id.unwrap_or_else(|| {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "host".to_owned());
        let short = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &short[..6])
    });
    let mut config = WorkerConfig::new(id, args.concurrency);
    config.lease = Duration::from_secs_f64(args.lease_secs.max(0.5));
    config.heartbeat = Duration::from_secs_f64(
        args.heartbeat_secs
            .unwrap_or(args.lease_secs / 3.0)
            .max(0.1),
    );
    config.grace = Duration::from_secs_f64(args.grace_secs.max(0.0));
    config.poll = Duration::from_millis(args.poll_ms.max(10));
    config.environments = bound_environments(&store, &args.envs).await?;
    let serves_several = config
        .environments
        .as_ref()
        .is_none_or(|envs| envs.len() > 1);
    if task_user.is_some() && serves_several {
        // Tasks of one OS user can read each other's environment: another environment's
        // task could read this one's secrets.
        tracing::warn!(
            "command tasks of several environments run as one task user and can read each other's secrets: bind the worker to one environment (--env) or give each environment a worker and task user of its own"
        );
    }
    config.task_user = task_user;
    let plane = drover_engine::data::DataPlane::connect(
        &store,
        u32::try_from(args.concurrency).unwrap_or(8) + 2,
    )
    .await
    .context("preparing the data plane")?;
    Worker::new(store, config)
        .with_data(plane)
        .run(stop)
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The OS user of `--task-user` (`None`: tasks run as the worker's user, with a warning if
/// that is root).
fn task_user(name: Option<&str>) -> Result<Option<drover_engine::TaskUser>> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => {
            let user = drover_engine::TaskUser::lookup(name)
                .with_context(|| format!("`--task-user {name}`"))?;
            tracing::info!(user = %user.describe(), "command tasks run as the task user");
            Ok(Some(user))
        }
        None => {
            if nix::unistd::geteuid().is_root() {
                tracing::warn!(
                    "command tasks run as root: set --task-user (DROVER_TASK_USER) to an unprivileged user"
                );
            }
            Ok(None)
        }
    }
}

/// The environments a worker is bound to (`None`: all), each a possible environment name;
/// a name no environment has yet is worth a warning (the scheduler may not have read the
/// files yet), not a refusal.
async fn bound_environments(
    store: &drover_store::Store,
    names: &[String],
) -> Result<Option<Vec<String>>> {
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    names.dedup();
    for name in &names {
        let valid = name.len() <= 31
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            anyhow::bail!(
                "`--env {name}`: an environment name is lower-case letters, digits and `_`, starting with a letter"
            );
        }
    }
    let known: Vec<String> = store
        .environments()
        .await
        .map(|envs| envs.into_iter().map(|e| e.name).collect())
        .unwrap_or_default();
    for name in &names {
        if !known.is_empty() && !known.contains(name) {
            tracing::warn!(
                environment = %name,
                "this worker is bound to an environment that is not defined (yet){}",
                drover_spec::environment::suggest_name(name, known.iter().map(String::as_str))
            );
        }
    }
    Ok(Some(names))
}
