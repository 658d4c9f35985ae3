//! `drover tasks …`: clear (rerun) and logs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Ctx;
use super::runs::parse_run_id;
use crate::cli::TasksCommand;

pub(crate) async fn run(ctx: &Ctx, cmd: TasksCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    match cmd {
        TasksCommand::Clear {
            run_id,
            task,
            downstream,
        } => {
            let run = store.get_run(parse_run_id(&run_id)?).await?;
            ctx.authorize(
                &store,
                drover_engine::ops::Action::Clear,
                Some(&run.environment),
            )
            .await?;
            let mut ids = vec![task.clone()];
            if downstream {
                let dag = drover_engine::DagCache::new(store.clone())
                    .get(run.version_id)
                    .await?;
                let i = dag
                    .task_index(&task)
                    .with_context(|| format!("no task `{task}` in this run's DAG"))?;
                ids.extend(
                    dag.graph
                        .descendants(i)
                        .into_iter()
                        .map(|d| dag.tasks[d].id.clone()),
                );
            }
            let mut tx = store.begin().await?;
            let cleared = tx.clear_tasks(run.id, &ids).await?;
            tx.audit(
                &ctx.actor,
                "task.clear",
                Some(&run.environment),
                Some(&run.dag_id),
                Some(run.id),
                &serde_json::json!({ "tasks": cleared }),
            )
            .await?;
            tx.commit().await?;
            println!("cleared: {}", cleared.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Revert {
            run_id,
            task,
            force,
            wait,
        } => {
            let run = store.get_run(parse_run_id(&run_id)?).await?;
            ctx.authorize(
                &store,
                drover_engine::ops::Action::Revert,
                Some(&run.environment),
            )
            .await?;
            if force {
                ctx.authorize(
                    &store,
                    drover_engine::ops::Action::Approve,
                    Some(&run.environment),
                )
                .await
                .context("only admins may force a revert")?;
            }
            let job =
                drover_engine::ops::queue_revert(&store, &ctx.actor, &run, &task, force).await?;
            println!("revert job {} queued", job.id);
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let mut shown = -1;
            let job = loop {
                let job = store.revert_job(job.id).await?;
                if !job.unfinished() {
                    break job;
                }
                if job.processed != shown {
                    shown = job.processed;
                    match job.total {
                        Some(t) => println!("reverting: {} of {t} records", job.processed),
                        None => println!("waiting for a worker"),
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            };
            println!(
                "restored {} record(s); {} skipped (changed since); {} refused; {} created by the return left in place; {} never written",
                job.restored, job.skipped_changed, job.refused, job.created_left, job.not_written
            );
            if let Some(e) = &job.error {
                println!("failed: {e}");
            }
            Ok(if job.state == "done" && job.refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        TasksCommand::Logs {
            run_id,
            task,
            try_number,
            follow,
        } => {
            let run_id = parse_run_id(&run_id)?;
            let ti = store
                .task_instances(run_id)
                .await?
                .into_iter()
                .find(|t| t.task_id == task)
                .with_context(|| format!("run {run_id} has no task `{task}`"))?;
            let mut after = 0;
            loop {
                let lines = store.read_logs(ti.id, try_number, after).await?;
                for l in &lines {
                    print_line(l);
                    after = l.id;
                }
                if !follow {
                    break;
                }
                if lines.is_empty() {
                    let state = store
                        .task_instances(run_id)
                        .await?
                        .into_iter()
                        .find(|t| t.id == ti.id)
                        .map(|t| t.state.0);
                    if state.is_some_and(|s| s.is_finished()) {
                        // One last read for lines written just before the end.
                        store
                            .read_logs(ti.id, try_number, after)
                            .await?
                            .iter()
                            .for_each(print_line);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_line(l: &drover_store::StoredLogLine) {
    println!(
        "[try {} {} {}] {}",
        l.try_number,
        l.at.format("%H:%M:%S%.3f"),
        l.stream,
        l.line
    );
}
