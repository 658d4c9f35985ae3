//! `drover runs approve|reject RUN_ID TASK`: decide on the plan of a return waiting for
//! approval, by the same rules as the web UI and API.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use drover_engine::ops::{Action, Operations};

use super::Ctx;
use super::runs::parse_run_id;
use crate::cli::Folders;

/// Operations with the DAG repository when one is configured: who last changed a DAG is read
/// from its history.
fn operations(store: &drover_store::Store, folders: &Folders) -> Result<Operations> {
    let ops = Operations::new(store.clone());
    if folders.repo.is_none() {
        return Ok(ops);
    }
    Ok(match super::dag_source_unfetched(folders)? {
        drover_engine::DagSource::Git(git) => ops.with_git(Arc::new(git)),
        drover_engine::DagSource::Folder(_) => ops,
    })
}

/// Say why it was refused (exit 1).
fn refused(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

pub(crate) async fn approve(
    ctx: &Ctx,
    folders: &Folders,
    run_id: &str,
    task: &str,
) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let id = parse_run_id(run_id)?;
    let run = store.get_run(id).await?;
    let actor = match ctx
        .authorize(&store, Action::ApproveReturn, Some(&run.environment))
        .await
    {
        Ok(a) => a,
        Err(e) => return Ok(refused(e)),
    };
    let row = match operations(&store, folders)?
        .approve_return(&actor, id, task)
        .await
    {
        Ok(row) => row,
        Err(e) => return Ok(refused(e)),
    };
    println!(
        "approved the plan of {task} in {}: {}; it is queued again and writes as soon as a worker is free",
        row.environment,
        row.totals().describe()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn reject(
    ctx: &Ctx,
    folders: &Folders,
    run_id: &str,
    task: &str,
    reason: &str,
) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let id = parse_run_id(run_id)?;
    let run = store.get_run(id).await?;
    let actor = match ctx
        .authorize(&store, Action::ApproveReturn, Some(&run.environment))
        .await
    {
        Ok(a) => a,
        Err(e) => return Ok(refused(e)),
    };
    let row = match operations(&store, folders)?
        .reject_return(&actor, id, task, reason)
        .await
    {
        Ok(row) => row,
        Err(e) => return Ok(refused(e)),
    };
    println!(
        "rejected the plan of {task} in {}: nothing was sent and the task failed",
        row.environment
    );
    Ok(ExitCode::SUCCESS)
}
