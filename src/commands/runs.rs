//! `drover runs …` and `drover backfill`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use drover_engine::DagCache;
use drover_spec::dag::Dag;
use drover_store::{NewRun, RunFilter, RunState, RunType, Store};
use uuid::Uuid;

use super::Ctx;
use super::dags::plural;
use crate::cli::{Format, RunsCommand};

pub(crate) fn parse_run_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("`{text}` is not a run id"))
}

/// The DAG an environment runs now, parsed.
pub(crate) async fn current_dag(store: &Store, dag_id: &str, env: &str) -> Result<(i64, Arc<Dag>)> {
    let de = store.dag_env(dag_id, env).await.with_context(|| {
        format!(
            "DAG `{dag_id}` is not known in `{env}` (is a scheduler running with its DAGs folder?)"
        )
    })?;
    let dag = DagCache::new(store.clone()).get(de.version_id).await?;
    Ok((de.version_id, dag))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_instant(text: &str, dag: &Dag) -> Result<DateTime<Utc>> {
    drover_engine::ops::parse_instant(text, dag).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) async fn run(ctx: &Ctx, cmd: RunsCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    match cmd {
        RunsCommand::Trigger {
            dag,
            env,
            params,
            logical_date,
        } => {
            let actor = ctx
                .authorize(&store, drover_engine::ops::Action::Trigger, Some(&env))
                .await?;
            let mut pairs = Vec::new();
            for pair in &params {
                let Some((name, value)) = pair.split_once('=') else {
                    bail!("--param `{pair}`: expected NAME=VALUE");
                };
                pairs.push((name.to_owned(), value.to_owned()));
            }
            let id = drover_engine::ops::Operations::new(store.clone())
                .trigger(
                    &actor,
                    &drover_engine::ops::TriggerRequest {
                        dag_id: dag,
                        environment: env,
                        params: pairs,
                        logical_date,
                        preview: false,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::List {
            dag,
            env,
            state,
            limit,
            format,
        } => {
            let state = state
                .map(|s| RunState::parse(&s))
                .transpose()
                .context("unknown state: use queued, running, success or failed")?;
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: dag,
                    environment: env,
                    state,
                    limit,
                })
                .await?;
            if let Format::Json = format {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            if runs.is_empty() {
                println!("No runs yet.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<28}  {:<6}  {:<9}  {:<9}  {:<20}  DURATION",
                "RUN", "DAG", "ENV", "TYPE", "STATE", "LOGICAL DATE"
            );
            for r in runs {
                println!(
                    "{:<36}  {:<28}  {:<6}  {:<9}  {:<9}  {:<20}  {}",
                    r.id,
                    r.dag_id,
                    r.environment,
                    r.run_type.as_str(),
                    r.state.as_str(),
                    rfc3339(r.logical_date),
                    duration(r.started_at, r.finished_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { run_id, format } => {
            let run = store.get_run(parse_run_id(&run_id)?).await?;
            let tasks = store.task_instances(run.id).await?;
            let story = drover_engine::ops::Operations::new(store.clone())
                .story(&run)
                .await?;
            if let Format::Json = format {
                let mut shown = serde_json::to_value(&run)?;
                if let Some(o) = shown.as_object_mut() {
                    o.insert("outcome".into(), story.outcome(run.state).into());
                    o.insert("summary".into(), story.sentence.clone().into());
                    o.insert("problems".into(), serde_json::to_value(&story.problems)?);
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "run": shown, "tasks": tasks })
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("run {}", run.id);
            println!("  dag:       {} ({})", run.dag_id, run.environment);
            println!(
                "  type:      {}{}",
                run.run_type,
                run.triggered_by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            );
            println!("  state:     {}", story.outcome_words(run.state));
            println!("  summary:   {}", story.sentence);
            for p in &story.problems {
                println!("  warning:   {}", p.message);
            }
            println!(
                "  interval:  {} → {}",
                rfc3339(run.interval_start),
                rfc3339(run.interval_end)
            );
            println!("  version:   {}", run.version_id);
            println!("  duration:  {}", duration(run.started_at, run.finished_at));
            if !tasks.is_empty() {
                let metrics = store.run_metrics(run.id).await?;
                let count = |n: Option<i64>| n.map_or_else(String::new, |n| n.to_string());
                println!(
                    "\n  {:<28}  {:<15}  {:>5}  {:>9}  {:>9}  {:>9}  {:>8}  {:>5}  ERROR",
                    "TASK",
                    "STATE",
                    "TRIES",
                    "DURATION",
                    "ROWS IN",
                    "ROWS OUT",
                    "REJECTED",
                    "CALLS"
                );
                for t in tasks {
                    let m = metrics
                        .iter()
                        .find(|(id, _)| *id == t.task_id)
                        .map(|(_, m)| *m)
                        .unwrap_or_default();
                    println!(
                        "  {:<28}  {:<15}  {:>5}  {:>9}  {:>9}  {:>9}  {:>8}  {:>5}  {}",
                        t.task_id,
                        t.state.0.as_str(),
                        t.try_number,
                        duration(t.started_at, t.finished_at),
                        count(m.rows_in),
                        count(m.rows_out),
                        count(m.rows_rejected),
                        count(m.api_calls),
                        t.last_error.unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Plan {
            run_id,
            task,
            limit,
            json,
        } => {
            let id = parse_run_id(&run_id)?;
            let run = store.get_run(id).await?;
            let limit = limit.clamp(0, 100_000);
            let Some(view) = store
                .latest_return_plan_with_records(id, &task, limit)
                .await?
            else {
                bail!(
                    "task `{task}` of run {id} recorded no plan: only a return records one, when it runs (see `drover runs show {id}` for its tasks)"
                );
            };
            let p = &view.plan;
            let next_after = view
                .more
                .then(|| view.records.last().map(|r| r.ord))
                .flatten();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&p.to_json(
                        Some(&view.records),
                        None,
                        next_after
                    ))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "plan of {task} in run {id} ({} {}, try {}, {})",
                run.dag_id,
                run.environment,
                p.try_number,
                if p.preview {
                    "a preview: nothing was sent"
                } else {
                    "recorded before writing"
                }
            );
            print!("{}", plan_text(&view, "--limit N shows more"));
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Wait { run_id, timeout } => {
            let id = parse_run_id(&run_id)?;
            let started = Instant::now();
            loop {
                let run = store.get_run(id).await?;
                match run.state {
                    RunState::Success => {
                        println!("success");
                        return Ok(ExitCode::SUCCESS);
                    }
                    RunState::Failed => {
                        println!("failed");
                        return Ok(ExitCode::from(1));
                    }
                    _ => {}
                }
                if timeout.is_some_and(|t| started.elapsed().as_secs_f64() >= t) {
                    eprintln!(
                        "run {id} is still {} after {}s",
                        run.state,
                        timeout.unwrap_or_default()
                    );
                    return Ok(ExitCode::from(3));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Decided with the DAG repository at hand (see `approvals`).
        RunsCommand::Approve { .. } | RunsCommand::Reject { .. } => {
            bail!("approve and reject are handled with the DAG repository")
        }
    }
}

/// A return's plan as `drover runs plan` prints it (after its heading): the sentence, then
/// the records listed with each field's old → new, and how many of how many are listed
/// (`more`: how to see the rest, when some are not listed). For `drover dags test` too.
pub(crate) fn plan_text(view: &drover_store::PlanView, more: &str) -> String {
    use std::fmt::Write as _;
    let p = &view.plan;
    let mut out = format!("  {}\n", p.in_words());
    if !p.snapshot {
        out.push_str("  (no snapshot: the values before are unknown)\n");
    }
    if let Some(t) = p.records_dropped_at {
        let _ = writeln!(
            out,
            "  the records were dropped on {} after the environment's retention period",
            t.format("%Y-%m-%d")
        );
        return out;
    }
    if view.records.is_empty() {
        return out;
    }
    let mut table = vec![vec![
        p.lookup.to_uppercase(),
        "MAP ID".to_owned(),
        "PLAN".to_owned(),
        "CHANGES (OLD → NEW)".to_owned(),
    ]];
    for r in &view.records {
        table.push(plan_line(r));
    }
    out.push('\n');
    out.push_str(&columns_text(&table));
    let _ = writeln!(
        out,
        "\n{} of {} records{}",
        view.records.len(),
        p.rows,
        if view.more {
            format!(" ({more})")
        } else {
            String::new()
        }
    );
    out
}

/// A plan's record as a line of `runs plan`: key, map id, status, changes.
fn plan_line(r: &drover_store::PlanRecord) -> Vec<String> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "∅".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut changes: Vec<String> = r
        .changes
        .iter()
        .map(|c| {
            if c.old_known {
                format!("{}: {} → {}", c.field, text(&c.old), text(&c.new))
            } else {
                format!("{}: ? → {}", c.field, text(&c.new))
            }
        })
        .collect();
    if !r.withheld.is_empty() {
        changes.push(format!("withheld (empty): {}", r.withheld.join(", ")));
    }
    if let Some(why) = &r.reason {
        changes.push(why.clone());
    }
    vec![
        r.key.clone().unwrap_or_else(|| "∅".to_owned()),
        r.map_id.map(|i| i.to_string()).unwrap_or_default(),
        r.status.replace('_', " "),
        changes.join("; "),
    ]
}

fn columns_text(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols.saturating_sub(1))
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count().min(40))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::from("  ");
        for (i, cell) in r.iter().enumerate() {
            match widths.get(i) {
                Some(w) => line.push_str(&format!("{cell:<w$}  ")),
                None => line.push_str(cell),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1}s", (e - s).num_milliseconds() as f64 / 1000.0),
        (Some(s), None) => format!("{:.0}s…", (Utc::now() - s).num_seconds()),
        _ => "-".to_owned(),
    }
}

/// `name=value` pairs checked against the DAG's declared parameters.
pub(crate) async fn backfill(
    ctx: &Ctx,
    dag_id: &str,
    env: &str,
    from: &str,
    to: &str,
) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    ctx.authorize(&store, drover_engine::ops::Action::Trigger, Some(env))
        .await?;
    let (version_id, dag) = current_dag(&store, dag_id, env).await?;
    let Some(schedule) = &dag.schedule else {
        bail!(
            "DAG `{dag_id}` has no schedule, so it has no intervals to backfill; trigger runs instead"
        );
    };
    let (from, to) = (parse_instant(from, &dag)?, parse_instant(to, &dag)?);
    if to <= from {
        bail!("--to must be after --from");
    }
    let (mut created, mut existing) = (0usize, 0usize);
    // Every interval whose logical date (its start) falls in [from, to), as Airflow counts them.
    let starts = schedule
        .fire_times(from - chrono::Duration::seconds(1))
        .take_while(|t| *t < to);
    // The runs and their audit event commit together.
    let mut tx = store.begin().await?;
    for start in starts {
        let Some(end) = schedule.next_after(start) else {
            break;
        };
        let interval = drover_spec::schedule::DataInterval { start, end };
        let made = tx
            .insert_run(&NewRun {
                dag_id: dag_id.to_owned(),
                environment: env.to_owned(),
                version_id,
                run_type: RunType::Backfill,
                logical_date: interval.start,
                interval_start: interval.start,
                interval_end: interval.end,
                params: serde_json::json!({}),
                triggered_by: Some(ctx.actor.clone()),
                // Backfills fill the past: they have no deadline to meet.
                deadline_at: None,
                preview: false,
            })
            .await?;
        if made.is_some() {
            created += 1
        } else {
            existing += 1
        }
    }
    tx.audit(
        &ctx.actor,
        "dag.backfill",
        Some(env),
        Some(dag_id),
        None,
        &serde_json::json!({ "from": rfc3339(from), "to": rfc3339(to), "created": created }),
    )
    .await?;
    tx.commit().await?;
    println!(
        "{} created{}; they run oldest first, {} at a time",
        plural(created, "backfill run"),
        if existing > 0 {
            format!(", {} already had a run", plural(existing, "interval"))
        } else {
            String::new()
        },
        dag.max_active_runs
    );
    Ok(ExitCode::SUCCESS)
}
