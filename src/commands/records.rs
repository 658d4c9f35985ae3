//! `drover records history`: every run that touched a record, from the record history index
//! the returns write with their receipts.

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use drover_store::{RecordQuery, RecordTouch};
use serde_json::json;

use super::Ctx;
use crate::cli::RecordsCommand;

pub(crate) async fn run(ctx: &Ctx, cmd: RecordsCommand) -> Result<ExitCode> {
    let RecordsCommand::History {
        env,
        record,
        json,
        limit,
    } = cmd;
    let store = ctx.store(2).await?;
    let q = RecordQuery::parse(&record).map_err(|e| anyhow!(e))?;
    let actor = ctx
        .authorize(&store, drover_engine::ops::Action::View, Some(&env))
        .await?;
    let environment = drover_engine::ops::Operations::new(store.clone())
        .environment(&env)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(why) = drover_web::rows_hidden(&actor, &environment) {
        anyhow::bail!("refused: {why}");
    }
    let limit = limit.clamp(1, 10_000);
    let mut touches = store.record_history(&env, &q, limit + 1).await?;
    let more = touches.len() as i64 > limit;
    touches.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "environment": env,
                "field": q.field,
                "value": q.value,
                "touches": touches.iter().map(RecordTouch::as_json).collect::<Vec<_>>(),
                "more": more,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if touches.is_empty() {
        println!(
            "no return in {env} touched a lead with {} (returns since the record history began are indexed; check the environment and the spelling)",
            q.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runs = {
        let mut r: Vec<_> = touches.iter().map(|t| t.run_id).collect();
        r.sort();
        r.dedup();
        r.len()
    };
    println!(
        "lead with {} in {env}: {} touch{} by {runs} run{}, newest first{}",
        q.describe(),
        touches.len(),
        if touches.len() == 1 { "" } else { "es" },
        if runs == 1 { "" } else { "s" },
        if more {
            format!(" (the newest {limit}; --limit shows more)")
        } else {
            String::new()
        }
    );
    let mut table = vec![vec![
        "WHEN (UTC)".to_owned(),
        "DAG".to_owned(),
        "RUN".to_owned(),
        "TASK".to_owned(),
        "STATUS".to_owned(),
        "FIELD".to_owned(),
        "OLD → NEW".to_owned(),
        "REVERTED".to_owned(),
    ]];
    for t in &touches {
        let head = vec![
            t.touched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            t.dag_id.clone(),
            t.run_id.to_string(),
            if t.try_number > 1 {
                format!("{} (try {})", t.task_id, t.try_number)
            } else {
                t.task_id.clone()
            },
            status_words(t),
        ];
        let reverted = match (t.reverted_at, t.revert_job) {
            (Some(at), _) => format!(
                "reverted {}{}",
                at.format("%Y-%m-%d %H:%M"),
                t.reverted_by_job
                    .map(|j| format!(" (revert job {j})"))
                    .unwrap_or_default()
            ),
            (None, Some(j)) => format!("revert job {j}"),
            (None, None) => "no".to_owned(),
        };
        let changes = t.field_changes();
        if changes.is_empty() {
            let mut row = head;
            row.push("—".to_owned());
            row.push(match t.status.as_str() {
                "unchanged" => "already held every value: nothing sent".to_owned(),
                _ => t.reason.clone().unwrap_or_else(|| "—".to_owned()),
            });
            row.push(reverted);
            table.push(row);
            continue;
        }
        for (i, c) in changes.iter().enumerate() {
            let mut row = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); head.len()]
            };
            row.push(c.field.clone());
            row.push(format!(
                "{} → {}",
                c.old.as_deref().unwrap_or("(not read)"),
                c.new
            ));
            row.push(if i == 0 {
                reverted.clone()
            } else {
                String::new()
            });
            table.push(row);
        }
        if let Some(reason) = t.reason.as_deref().filter(|_| t.status != "unchanged") {
            let mut row = vec![String::new(); 5];
            row.push(String::new());
            row.push(format!("reason: {reason}"));
            row.push(String::new());
            table.push(row);
        }
    }
    print_table(&table);
    Ok(ExitCode::SUCCESS)
}

fn status_words(t: &RecordTouch) -> String {
    match t.status.as_str() {
        "reverted" => "revert".to_owned(),
        s => s.to_owned(),
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
