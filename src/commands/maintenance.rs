//! `drover maintenance on | off | status`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use drover_engine::ops::Action;

use super::Ctx;
use crate::cli::MaintenanceCommand;

/// `--until`: an RFC 3339 instant, or a duration from `now`.
fn parse_until(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d: drover_spec::duration::Duration = text.parse().with_context(|| {
        format!("--until `{text}`: give an RFC 3339 instant (2026-12-01T22:00:00Z) or a duration from now (90m, 2h)")
    })?;
    let d = chrono::Duration::from_std(d.to_std()).context("--until is too far away")?;
    Ok(now + d)
}

pub(crate) async fn run(ctx: &Ctx, command: MaintenanceCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    match command {
        MaintenanceCommand::On {
            message,
            until,
            stop_running,
        } => {
            let actor = ctx.authorize(&store, Action::Maintenance, None).await?;
            let now = Utc::now();
            let until = until.map(|u| parse_until(&u, now)).transpose()?;
            if until.is_some_and(|u| u <= now) {
                anyhow::bail!("--until is in the past");
            }
            if message.trim().is_empty() {
                anyhow::bail!("--message is empty: say what users should know");
            }
            let m = store
                .start_maintenance(message.trim(), until, &actor.name)
                .await?;
            println!(
                "maintenance on: {}{}",
                m.message,
                m.until
                    .map(|u| format!(" (until {})", u.to_rfc3339()))
                    .unwrap_or_default()
            );
            if stop_running {
                let stopped = store
                    .interrupt_running_tasks(&actor.name, "stopped for maintenance")
                    .await?;
                println!(
                    "no run is created or started and no task is claimed; {stopped} running task(s) stopped, to run again when maintenance ends"
                );
            } else {
                let running: i64 = store
                    .metric_counts()
                    .await?
                    .tasks_by_state
                    .iter()
                    .filter(|(_, state, _)| state == "running")
                    .map(|(_, _, n)| n)
                    .sum();
                println!(
                    "no run is created or started and no task is claimed; {running} running task(s) finish"
                );
            }
        }
        MaintenanceCommand::Off => {
            let actor = ctx.authorize(&store, Action::Maintenance, None).await?;
            if store.end_maintenance(&actor.name).await? {
                println!("maintenance off: scheduling resumes");
            } else {
                println!("maintenance was not on");
            }
        }
        MaintenanceCommand::Status => match store.maintenance().await? {
            Some(m) => println!(
                "on: {} (since {} by {}{})",
                m.message,
                m.started_at.to_rfc3339(),
                m.started_by,
                m.until
                    .map(|u| format!(", until {}", u.to_rfc3339()))
                    .unwrap_or_default()
            ),
            None => println!("off"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_an_instant_or_a_duration_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T20:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        let at = |s: &str| parse_until(s, now).map(|t| t.to_rfc3339()).ok();
        assert_eq!(at("2h").as_deref(), Some("2026-12-01T22:00:00+00:00"));
        assert_eq!(at("90m").as_deref(), Some("2026-12-01T21:30:00+00:00"));
        assert_eq!(
            at("2026-12-02T01:00:00+01:00").as_deref(),
            Some("2026-12-02T00:00:00+00:00")
        );
        assert!(parse_until("soon", now).is_err());
    }
}
