//! `drover dags …`: validate, list, show, next (`test` is in `dags_test`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use drover_spec::dag::{Dag, TaskKind, check_unique_ids, load_dags};
use drover_spec::diagnostic::{Diagnostic, sort_diagnostics};
use serde_json::json;

use crate::cli::{DagsCommand, Folders, Format};
use crate::sources::{read_all, yaml_files};

/// The DAGs found under some paths: the valid ones, and every problem of the others.
pub(crate) struct Catalog {
    pub(crate) files: usize,
    pub(crate) dags: Vec<Dag>,
    pub(crate) problems: Vec<Diagnostic>,
    pub(crate) broken_files: usize,
}

impl Catalog {
    /// `max_bytes`: DAG files larger than this are refused unread.
    pub(crate) fn load(paths: &[PathBuf], max_bytes: u64) -> Result<Self> {
        let files = yaml_files(paths)?;
        let mut problems = Vec::new();
        let mut readable = Vec::with_capacity(files.len());
        for (name, text) in read_all(&files, Some(max_bytes)) {
            match text {
                Ok(text) => readable.push((name, text)),
                Err(d) => problems.push(d),
            }
        }
        let mut broken_files = problems.len();
        let mut dags = Vec::with_capacity(readable.len());
        let mut sources: Vec<&str> = Vec::with_capacity(readable.len());
        for (result, (_, source)) in load_dags(&readable).into_iter().zip(&readable) {
            match result {
                Ok(dag) => {
                    dags.push(dag);
                    sources.push(source);
                }
                Err(diags) => {
                    broken_files += 1;
                    problems.extend(diags);
                }
            }
        }
        let duplicates = check_unique_ids(
            dags.iter()
                .zip(&sources)
                .map(|(d, s)| (d.file.as_str(), d.id.as_str(), *s)),
        );
        if !duplicates.is_empty() {
            let bad: Vec<&str> = duplicates.iter().map(|d| d.file.as_str()).collect();
            broken_files += bad.len();
            dags.retain(|d| !bad.contains(&d.file.as_str()));
            problems.extend(duplicates);
        }
        sort_diagnostics(&mut problems);
        Ok(Self {
            files: files.len(),
            dags,
            problems,
            broken_files,
        })
    }

    fn find(&self, id: &str) -> Result<&Dag> {
        if let Some(dag) = self.dags.iter().find(|d| d.id == id) {
            return Ok(dag);
        }
        if self
            .problems
            .iter()
            .any(|p| Path::new(&p.file).file_stem().is_some_and(|s| s == id))
        {
            bail!("DAG `{id}` has errors: run `drover dags validate` to see them");
        }
        let hint = drover_spec::suggest::did_you_mean(id, self.dags.iter().map(|d| d.id.as_str()));
        bail!("no DAG `{id}`{hint}")
    }
}

pub(crate) fn run(ctx: &super::Ctx, folders: &Folders, cmd: DagsCommand) -> Result<ExitCode> {
    match cmd {
        DagsCommand::Errors { env } => {
            super::runtime()?.block_on(super::deploy::import_errors(ctx, folders, env.as_deref()))
        }
        DagsCommand::Pause { dag, env } => {
            super::runtime()?.block_on(set_paused(ctx, &dag, &env, true))
        }
        DagsCommand::Unpause { dag, env } => {
            super::runtime()?.block_on(set_paused(ctx, &dag, &env, false))
        }
        DagsCommand::Test(args) => super::dags_test::run(ctx, folders, args),
        DagsCommand::Validate { paths, format } => {
            let paths = if paths.is_empty() {
                vec![folders.dags_dir.clone()]
            } else {
                paths
            };
            validate(&paths, folders.max_dag_bytes.0, format)
        }
        DagsCommand::List { format } => list(
            &Catalog::load(
                std::slice::from_ref(&folders.dags_dir),
                folders.max_dag_bytes.0,
            )?,
            format,
        ),
        DagsCommand::Show { id, format } => {
            let catalog = Catalog::load(
                std::slice::from_ref(&folders.dags_dir),
                folders.max_dag_bytes.0,
            )?;
            show(catalog.find(&id)?, format)
        }
        DagsCommand::Next { dag, count, after } => {
            let after = match after {
                Some(t) => DateTime::parse_from_rfc3339(&t)
                    .with_context(|| {
                        format!(
                            "--after `{t}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z"
                        )
                    })?
                    .with_timezone(&Utc),
                None => Utc::now(),
            };
            let path = Path::new(&dag);
            let catalog = if path.is_file() {
                Catalog::load(&[path.to_path_buf()], folders.max_dag_bytes.0)?
            } else {
                Catalog::load(
                    std::slice::from_ref(&folders.dags_dir),
                    folders.max_dag_bytes.0,
                )?
            };
            let dag = match catalog.dags.as_slice() {
                [only] if path.is_file() => only,
                _ if path.is_file() => {
                    for p in &catalog.problems {
                        eprintln!("{p}");
                    }
                    return Ok(ExitCode::from(1));
                }
                _ => catalog.find(&dag)?,
            };
            next(dag, count, after)
        }
    }
}

pub(crate) fn validate(paths: &[PathBuf], max_bytes: u64, format: Format) -> Result<ExitCode> {
    let catalog = Catalog::load(paths, max_bytes)?;
    let valid = catalog.files - catalog.broken_files;
    match format {
        Format::Json => {
            let out = json!({
                "files": catalog.files,
                "valid": valid,
                "invalid": catalog.broken_files,
                "errors": catalog.problems,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for p in &catalog.problems {
                writeln!(out, "{p}\n")?;
            }
            let files = plural(catalog.files, "file");
            if catalog.problems.is_empty() {
                writeln!(out, "{files} checked: all valid")?;
            } else {
                writeln!(
                    out,
                    "{files} checked: {valid} valid, {} with errors ({})",
                    catalog.broken_files,
                    plural(catalog.problems.len(), "error")
                )?;
            }
        }
    }
    Ok(if catalog.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `1 file`, `2 files`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn next_fire(dag: &Dag, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let schedule = dag.schedule.as_ref()?;
    let after = match dag.start_date {
        Some(start) if start > now => start - chrono::Duration::seconds(1),
        _ => now,
    };
    schedule
        .next_after(after)
        .filter(|t| dag.end_date.is_none_or(|end| *t <= end))
}

fn local(dag: &Dag, t: DateTime<Utc>) -> String {
    t.with_timezone(&dag.timezone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn list(catalog: &Catalog, format: Format) -> Result<ExitCode> {
    let now = Utc::now();
    match format {
        Format::Json => {
            let items: Vec<_> = catalog
                .dags
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id,
                        "file": d.file,
                        "description": d.description,
                        "owner": d.owner,
                        "tags": d.tags,
                        "schedule": d.schedule.as_ref().map(|s| s.cron().source().to_owned()),
                        "schedule_in_words": d.schedule_in_words(),
                        "timezone": d.timezone.name(),
                        "tasks": d.tasks.len(),
                        "next_run": next_fire(d, now).map(rfc3339),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "dags": items, "errors": catalog.problems })
                )?
            );
        }
        Format::Text => {
            if catalog.dags.is_empty() && catalog.problems.is_empty() {
                println!(
                    "No DAGs yet: add a YAML file to the DAGs folder (see README: DAG reference)."
                );
            }
            let rows: Vec<[String; 5]> = catalog
                .dags
                .iter()
                .map(|d| {
                    [
                        d.id.clone(),
                        d.schedule_in_words(),
                        next_fire(d, now)
                            .map(|t| local(d, t))
                            .unwrap_or_else(|| "-".to_owned()),
                        d.tasks.len().to_string(),
                        d.owner.clone().unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print_table(&["DAG", "SCHEDULE", "NEXT RUN", "TASKS", "OWNER"], &rows);
            }
            if catalog.broken_files > 0 {
                eprintln!(
                    "\n{} file(s) with errors are not listed: run `drover dags validate` to see why.",
                    catalog.broken_files
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn show(dag: &Dag, format: Format) -> Result<ExitCode> {
    let fires: Vec<DateTime<Utc>> = match &dag.schedule {
        Some(s) => s
            .fire_times(
                next_fire(dag, Utc::now()).map_or(Utc::now(), |t| t - chrono::Duration::seconds(1)),
            )
            .take_while(|t| dag.end_date.is_none_or(|end| *t <= end))
            .take(5)
            .collect(),
        None => Vec::new(),
    };
    let order: Vec<&drover_spec::dag::Task> = dag.tasks_in_order().collect();
    match format {
        Format::Json => {
            let tasks: Vec<_> = order
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "kind": t.kind.name(),
                        "depends_on": t.depends_on,
                        "trigger_rule": t.trigger_rule.as_str(),
                        "retries": t.retry.retries,
                        "timeout": t.timeout.to_string(),
                        "pool": t.pool,
                    })
                })
                .collect();
            let out = json!({
                "id": dag.id,
                "file": dag.file,
                "description": dag.description,
                "owner": dag.owner,
                "tags": dag.tags,
                "schedule": dag.schedule.as_ref().map(|s| s.cron().source().to_owned()),
                "schedule_in_words": dag.schedule_in_words(),
                "timezone": dag.timezone.name(),
                "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs,
                "params": dag.params,
                "tasks": tasks,
                "next_runs": fires.iter().map(|t| rfc3339(*t)).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            let mut o = std::io::stdout().lock();
            writeln!(o, "{}", dag.id)?;
            if !dag.description.is_empty() {
                writeln!(o, "  {}", dag.description.trim())?;
            }
            writeln!(o)?;
            writeln!(o, "file:             {}", dag.file)?;
            if let Some(owner) = &dag.owner {
                writeln!(o, "owner:            {owner}")?;
            }
            if !dag.tags.is_empty() {
                writeln!(o, "tags:             {}", dag.tags.join(", "))?;
            }
            let cron = dag
                .schedule
                .as_ref()
                .map(|s| format!(" ({})", s.cron().source()))
                .unwrap_or_default();
            writeln!(o, "schedule:         {}{cron}", dag.schedule_in_words())?;
            writeln!(
                o,
                "catchup:          {}",
                if dag.catchup { "yes" } else { "no" }
            )?;
            writeln!(o, "max active runs:  {}", dag.max_active_runs)?;
            if let Some(start) = dag.start_date {
                writeln!(o, "start date:       {}", local(dag, start))?;
            }
            if let Some(end) = dag.end_date {
                writeln!(o, "end date:         {}", local(dag, end))?;
            }
            if !dag.params.is_empty() {
                writeln!(o, "\nparams:")?;
                for p in &dag.params {
                    let default = p
                        .default
                        .as_ref()
                        .map(|d| format!(" = {d}"))
                        .unwrap_or_default();
                    let about = p
                        .description
                        .as_ref()
                        .map(|d| format!("  {d}"))
                        .unwrap_or_default();
                    writeln!(o, "  {} ({}){default}{about}", p.name, p.ty.as_str())?;
                }
            }
            writeln!(o, "\ntasks, in order:")?;
            let width = order.iter().map(|t| t.id.len()).max().unwrap_or(0);
            for (n, t) in order.iter().enumerate() {
                let deps = if t.depends_on.is_empty() {
                    String::new()
                } else {
                    format!("  after {}", t.depends_on.join(", "))
                };
                let extra = match &t.kind {
                    TaskKind::Check(c) => format!(
                        " ({})",
                        if c.severity == drover_spec::dag::Severity::Warn {
                            "warn"
                        } else {
                            "fail"
                        }
                    ),
                    _ => String::new(),
                };
                let line = format!(
                    "  {:>2}. {:<width$}  {:<9}{extra}{deps}",
                    n + 1,
                    t.id,
                    t.kind.name()
                );
                writeln!(o, "{}", line.trim_end())?;
            }
            if !fires.is_empty() {
                writeln!(o, "\nnext runs:")?;
                for t in &fires {
                    writeln!(o, "  {}   ({})", local(dag, *t), rfc3339(*t))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn next(dag: &Dag, count: usize, after: DateTime<Utc>) -> Result<ExitCode> {
    let Some(schedule) = &dag.schedule else {
        bail!(
            "DAG `{}` has no schedule: it runs only when triggered",
            dag.id
        );
    };
    let mut out = std::io::stdout().lock();
    for t in schedule
        .fire_times(after)
        .take_while(|t| dag.end_date.is_none_or(|end| *t <= end))
        .take(count)
    {
        writeln!(out, "{}", rfc3339(t))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn set_paused(
    ctx: &super::Ctx,
    dag: &str,
    env: &str,
    paused: bool,
) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    ctx.authorize(&store, drover_engine::ops::Action::Pause, Some(env))
        .await?;
    store.dag_env(dag, env).await?;
    let changed = store.set_paused(dag, env, paused, &ctx.actor).await?;
    let word = if paused { "paused" } else { "unpaused" };
    if changed {
        println!("{dag} {word} in {env}");
    } else {
        println!("{dag} was already {word} in {env}");
    }
    Ok(ExitCode::SUCCESS)
}
