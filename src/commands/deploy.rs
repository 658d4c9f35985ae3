//! `drover env status|promote|approve|reject|rollback|diff`, `drover repo sync`,
//! `drover dags errors` and `drover audit`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use drover_engine::promotion::{self, PromotionOutcome, short};
use drover_engine::{DagSource, GitSource};

use drover_engine::ops::Action;

use super::Ctx;
use crate::cli::{EnvCommand, Folders, Format};

fn git(folders: &Folders) -> Result<GitSource> {
    match super::dag_source(folders)? {
        DagSource::Git(g) => Ok(g),
        DagSource::Folder(_) => {
            bail!("this needs the DAG repository: set DROVER_REPO (or --repo) to its path or URL")
        }
    }
}

/// Print what happened, or why it was refused (exit 1).
fn report(env: &str, result: Result<PromotionOutcome, drover_engine::EngineError>) -> ExitCode {
    match result {
        Ok(outcome) => {
            print_outcome(env, &outcome);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn print_outcome(env: &str, outcome: &PromotionOutcome) {
    match outcome {
        PromotionOutcome::Applied { commit, changed } => {
            let what = if changed.is_empty() {
                "no DAG changed".to_owned()
            } else {
                format!("changed: {}", changed.join(", "))
            };
            println!("{env} now runs {} ({what})", short(commit));
        }
        PromotionOutcome::AwaitingApproval { request, commit } => {
            println!(
                "promotion of {} into {env} is waiting for approval (request {request}): someone else runs `drover env approve {env}`",
                short(commit)
            );
        }
    }
}

pub(crate) async fn env(ctx: &Ctx, folders: &Folders, cmd: EnvCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    match cmd {
        EnvCommand::Validate { .. } => unreachable!("handled without a database"),
        EnvCommand::Status => {
            let envs = promotion::environments(&store).await?;
            if envs.is_empty() {
                println!("No environments yet: start a scheduler, or run `drover repo sync`.");
            }
            println!(
                "{:<8}  {:<12}  {:<9}  {:<20}  {:<20}  WAITING",
                "ENV", "COMMIT", "HOW", "SINCE", "BY"
            );
            for e in envs {
                let d = store.current_deployment(&e.name).await?;
                let waiting = store.pending_promotion(&e.name).await?.map(|p| {
                    format!(
                        "{} asked for {} (request {})",
                        p.requested_by,
                        short(&p.commit_sha),
                        p.id
                    )
                });
                match d {
                    Some(d) => println!(
                        "{:<8}  {:<12}  {:<9}  {:<20}  {:<20}  {}",
                        e.name,
                        short(&d.commit_sha),
                        d.kind,
                        d.created_at.format("%Y-%m-%d %H:%M UTC"),
                        match &d.approved_by {
                            Some(a) => format!("{} + {a}", d.actor),
                            None => d.actor.clone(),
                        },
                        waiting.unwrap_or_default()
                    ),
                    None => println!(
                        "{:<8}  {:<12}  {:<9}  {:<20}  {:<20}  {}",
                        e.name,
                        "-",
                        "-",
                        "-",
                        "-",
                        waiting.unwrap_or_default()
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnvCommand::Promote {
            env,
            from,
            commit,
            note,
        } => {
            ctx.authorize(&store, Action::Promote, Some(&env)).await?;
            let git = git(folders)?;
            let outcome = promotion::promote(
                &store,
                &git,
                &env,
                from.as_deref(),
                commit.as_deref(),
                &ctx.actor,
                note.as_deref(),
            )
            .await;
            Ok(report(&env, outcome))
        }
        EnvCommand::Approve { env } => {
            ctx.authorize(&store, Action::Approve, Some(&env)).await?;
            let git = git(folders)?;
            Ok(report(
                &env,
                promotion::approve(&store, &git, &env, &ctx.actor).await,
            ))
        }
        EnvCommand::Reject { env } => {
            ctx.authorize(&store, Action::Approve, Some(&env)).await?;
            promotion::reject(&store, &env, &ctx.actor).await?;
            println!("promotion into {env} rejected");
            Ok(ExitCode::SUCCESS)
        }
        EnvCommand::Rollback { env, note } => {
            ctx.authorize(&store, Action::Promote, Some(&env)).await?;
            let git = git(folders)?;
            Ok(report(
                &env,
                promotion::rollback(&store, &git, &env, &ctx.actor, note.as_deref()).await,
            ))
        }
        EnvCommand::Diff { from, to } => {
            let ops = drover_engine::ops::Operations::new(store.clone())
                .with_git(std::sync::Arc::new(git(folders)?));
            let diff = ops
                .promotion_diff(&from, &to)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", diff_words(&from, &to, &diff));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `drover env diff FROM TO` in the direction of promotion: what promoting FROM into TO
/// would add, change and remove in TO, then the YAML diff (TO's files → FROM's).
fn diff_words(from: &str, to: &str, diff: &drover_engine::ops::PromotionDiff) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let theirs = diff
        .to_commit
        .as_deref()
        .map_or_else(|| "nothing yet".to_owned(), |c| short(c).to_owned());
    let _ = writeln!(
        out,
        "promoting {from} into {to}: {from} runs {}, {to} runs {theirs}",
        short(&diff.from_commit)
    );
    if diff.is_empty() {
        let _ = writeln!(
            out,
            "no differences: {to} already runs every DAG as {from} has it"
        );
        return out;
    }
    let width = ["add", "change", "remove"]
        .iter()
        .map(|w| format!("would {w} in {to}:").len())
        .max()
        .unwrap_or(0);
    let line = |out: &mut String, how: &str, what: &str| {
        let label = format!("would {how} in {to}:");
        let _ = writeln!(out, "{label:<width$}  {what}");
    };
    for (dag, path) in &diff.added {
        let paused = if diff.new_dags_paused {
            format!(" (starts paused there: `drover dags unpause {dag} --env {to}`)")
        } else {
            String::new()
        };
        line(&mut out, "add", &format!("{dag}  {path}{paused}"));
    }
    for (dag, path) in &diff.changed {
        line(&mut out, "change", &format!("{dag}  {path}"));
    }
    for dag in &diff.removed {
        line(&mut out, "remove", dag);
    }
    if !diff.errors.is_empty() {
        let _ = writeln!(
            out,
            "would be refused: {} DAG file(s) do not validate at {}:",
            diff.errors.len(),
            short(&diff.from_commit)
        );
        for (path, message) in &diff.errors {
            let _ = writeln!(out, "  {path}: {}", message.lines().next().unwrap_or(""));
        }
    }
    if !diff.text.is_empty() {
        let _ = write!(out, "\n{}", diff.text);
        if !diff.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub(crate) async fn sync(ctx: &Ctx, folders: &Folders) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let report = super::dag_source(folders)?.sync(&store).await?;
    for p in &report.problems {
        eprintln!("{p}\n");
    }
    for e in &report.environments {
        if let Some(d) = store.current_deployment(&e.name).await? {
            println!("{:<8} {}", e.name, short(&d.commit_sha));
        }
    }
    let errors = store.import_errors(None).await?;
    if !errors.is_empty() {
        println!(
            "{} file(s) failed to import: `drover dags errors`",
            errors.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn import_errors(
    ctx: &Ctx,
    folders: &Folders,
    env: Option<&str>,
) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let errors = store.import_errors(env).await?;
    // The environments' files say which one tracks a branch; a repository says its head.
    let mut envs: Vec<drover_spec::environment::Environment> = crate::sources::read_all(
        &crate::sources::yaml_files(std::slice::from_ref(&folders.environments_dir))
            .unwrap_or_default(),
        None,
    )
    .into_iter()
    .filter_map(|(name, text)| drover_spec::environment::load_environment(&name, &text.ok()?).ok())
    .filter(|e| env.is_none_or(|n| n == e.name))
    .collect();
    envs.sort_by_key(|e| e.order);
    let git = match &folders.repo {
        Some(_) => match super::dag_source(folders) {
            Ok(drover_engine::DagSource::Git(g)) => Some(g),
            _ => None,
        },
        None => None,
    };
    let mut said = false;
    for e in &envs {
        let Some(d) = store.current_deployment(&e.name).await? else {
            continue;
        };
        said = true;
        let failed = errors.iter().filter(|x| x.environment == e.name).count();
        let age = ago(d.created_at);
        if failed == 0 {
            println!(
                "No import errors in {} at commit {} (loaded {age}).",
                e.name,
                short(&d.commit_sha)
            );
        } else {
            println!(
                "{} at commit {} (loaded {age}): {failed} file(s) failed to import.",
                e.name,
                short(&d.commit_sha)
            );
        }
        if let (Some(g), Some(branch)) = (&git, &e.branch)
            && let Ok(head) = g.branch_head(branch).await
            && head != d.commit_sha
        {
            println!(
                "Commit {} (the head of {branch}) is still being read into {}: ask again in a few seconds.",
                short(&head),
                e.name
            );
        }
    }
    if !said && errors.is_empty() {
        println!("No import errors.");
    }
    if !errors.is_empty() {
        println!();
    }
    for e in errors {
        println!(
            "[{}] {} at {}:\n{}\n",
            e.environment,
            e.path,
            short(&e.commit_sha),
            e.message
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// "3 s ago", "5 min ago", "2 h ago", "4 days ago".
fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - t).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

pub(crate) async fn audit(ctx: &Ctx, limit: i64, format: Format) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let events = store.audit_events(limit).await?;
    if let Format::Json = format {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in events {
        let target = [e.environment.as_deref(), e.dag_id.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        println!(
            "{}  {:<20}  {:<32}  {:<16}  {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            target,
            e.details
        );
    }
    Ok(ExitCode::SUCCESS)
}
