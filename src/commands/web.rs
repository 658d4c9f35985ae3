//! `drover web`: the web UI and JSON API.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use drover_engine::ops::Operations;
use drover_store::Store;
use drover_web::{WebConfig, WebState};

use super::Ctx;
use crate::cli::{Folders, WebArgs};

/// The web state for this process: operations with the DAG repository (for promotion) and
/// the MAP connections (for reverts) where they can be had.
pub(crate) async fn state(
    store: &Store,
    git: Option<drover_engine::GitSource>,
    args: &WebArgs,
    plane: Option<drover_engine::data::DataPlane>,
) -> Result<WebState> {
    let mut ops = Operations::new(store.clone());
    if let Some(git) = git {
        ops = ops.with_git(Arc::new(git));
    }
    let plane = match plane {
        Some(p) => Some(p),
        None => drover_engine::data::DataPlane::connect(store, 2).await.ok(),
    };
    if let Some(plane) = plane {
        ops = ops.with_data(plane);
    }
    let staging = Some(drover_store::StagingPools::new(store.clone(), 4));
    let config = WebConfig {
        secure_cookies: args.secure_cookies,
        session_ttl: Duration::from_secs(args.session_hours.max(1) * 3600),
        login_attempts_per_minute: args.login_attempts_per_minute.max(1),
        login_burst: args.login_attempts_per_minute.max(1),
        ..WebConfig::default()
    };
    Ok(WebState::new(ops, config, staging))
}

/// Forget expired sessions now and then.
pub(crate) fn prune_sessions(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = store.prune_sessions().await {
                tracing::warn!(error = %e, "could not prune expired sessions");
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    })
}

pub(crate) async fn run(ctx: &Ctx, folders: &Folders, args: WebArgs) -> Result<ExitCode> {
    let stop = super::serve::shutdown_signal();
    let store = ctx.store(16).await?;
    let git = match folders.repo {
        Some(_) => match super::dag_source(folders)? {
            drover_engine::DagSource::Git(git) => Some(git),
            drover_engine::DagSource::Folder(_) => None,
        },
        None => None,
    };
    let state = state(&store, git, &args, None).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if store.count_users().await? == 0 {
        eprintln!("No users yet: add one with `drover users add NAME --role admin` to log in.");
    }
    println!("Drover web UI at http://{addr}");
    tracing::info!(address = %addr, "serving the web UI and API");
    let pruner = prune_sessions(store);
    drover_web::serve(listener, state, stop).await?;
    pruner.abort();
    Ok(ExitCode::SUCCESS)
}
