//! `drover datasets …`: what a task staged.

use std::process::ExitCode;

use anyhow::{Result, bail};

use super::Ctx;
use super::runs::parse_run_id;
use crate::cli::DatasetsCommand;

pub(crate) async fn run(ctx: &Ctx, cmd: DatasetsCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    match cmd {
        DatasetsCommand::List { run_id } => {
            let run = parse_run_id(&run_id)?;
            let sets = store.run_datasets(run).await?;
            if sets.is_empty() {
                println!("run {run} staged no datasets");
            }
            for d in sets {
                let state = match d.dropped_at {
                    Some(t) => format!("dropped {}", t.format("%Y-%m-%d %H:%M")),
                    None => format!("kept until {}", d.expires_at.format("%Y-%m-%d %H:%M UTC")),
                };
                println!(
                    "{:<24} {:<8} {:>10} rows  {} columns  {state}",
                    d.task_id,
                    d.kind,
                    d.row_count,
                    d.columns.0.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetsCommand::Show {
            run_id,
            task,
            limit,
            receipt,
        } => {
            let run = parse_run_id(&run_id)?;
            let kind = if receipt { "receipt" } else { "output" };
            let Some(d) = store.dataset(run, &task, kind).await? else {
                bail!("task `{task}` of run {run} has no {kind} dataset");
            };
            if d.dropped_at.is_some() {
                bail!(
                    "the dataset of `{task}` in run {run} was dropped after its retention period"
                );
            }
            let staging = drover_store::StagingPools::new(store.clone(), 1);
            let preview = drover_store::Store::preview_dataset(&staging, &d, false, limit).await?;
            let shown = preview.rows.len();
            let columns = preview.columns.len();
            let mut table: Vec<Vec<String>> = vec![preview.columns];
            for row in preview.rows {
                table.push(
                    row.into_iter()
                        .map(|v| v.unwrap_or_else(|| "∅".to_owned()))
                        .collect(),
                );
            }
            print_table(&table);
            println!(
                "\n{shown} of {} rows ({}, {columns} columns)",
                d.row_count, d.table_name
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count().min(40))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let shown: String = c.chars().take(40).collect();
                format!("{shown:<w$}")
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
        if n == 0 {
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
}
