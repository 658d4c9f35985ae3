//! `drover events list|show|replay`: what came in through webhooks, datasets and replays, and
//! sending it through again, by the same rules as the web UI and API.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use drover_engine::ops::{Action, EventQuery, Operations, parse_moment};
use drover_spec::dag::RunTrigger;
use drover_store::{EventRow, Replayed, Store};
use serde_json::json;
use uuid::Uuid;

use super::Ctx;
use crate::cli::{EventsCommand, Format};

fn parse_event_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("`{text}` is not an event id"))
}

/// "2026-12-02 14:02:01 UTC".
fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Say why it was refused (exit 1).
fn refused(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

/// The run an event went to and how it went, in words.
fn outcome(e: &EventRow) -> String {
    match (e.run_id, e.run_state.as_deref()) {
        (Some(_), Some("success")) => "succeeded".to_owned(),
        (Some(_), Some("failed")) => "failed".to_owned(),
        (Some(_), Some("running")) => "running".to_owned(),
        (Some(_), Some("queued")) => "queued".to_owned(),
        (Some(_), Some(other)) => other.to_owned(),
        _ => "no run".to_owned(),
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: EventsCommand) -> Result<ExitCode> {
    let store = ctx.store(2).await?;
    let ops = Operations::new(store.clone());
    match cmd {
        EventsCommand::List {
            dag,
            env,
            since,
            limit,
            format,
        } => {
            let actor = ctx.authorize(&store, Action::View, Some(&env)).await?;
            let now = Utc::now();
            let from = since
                .as_deref()
                .map(|s| {
                    let d: drover_spec::duration::Duration =
                        s.parse().map_err(|e| anyhow!("--since: {e}"))?;
                    Ok::<_, anyhow::Error>(
                        now - chrono::Duration::milliseconds(
                            i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
                        ),
                    )
                })
                .transpose()?;
            let list = match ops
                .events(
                    &actor,
                    &EventQuery {
                        dag_id: dag.clone(),
                        environment: env.clone(),
                        from,
                        to: None,
                        before: None,
                        limit,
                    },
                )
                .await
            {
                Ok(l) => l,
                Err(e) => return Ok(refused(e)),
            };
            if let Format::Json = format {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "dag_id": dag,
                        "environment": env,
                        "events": list.events.iter().map(|e| json!({
                            "id": e.id, "received_at": e.received_at, "trigger": e.trigger,
                            "kind": e.kind, "source": e.source, "idempotency_key": e.idempotency_key,
                            "run_id": e.run_id, "run_state": e.run_state, "replay_of": e.replay_of,
                        })).collect::<Vec<_>>(),
                        "keys_hidden": list.hidden,
                    }))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            let within = since
                .as_deref()
                .map(|s| format!(" in the last {s}"))
                .unwrap_or_default();
            if list.events.is_empty() {
                println!(
                    "no events of {dag} in {env}{within}{}",
                    how_to_send(&store, &dag, &env).await
                );
                return Ok(ExitCode::SUCCESS);
            }
            let n = list.events.len();
            println!(
                "{n} event{} of {dag} in {env}{within}, newest first{}",
                if n == 1 { "" } else { "s" },
                if n as i64 >= limit {
                    " (--limit shows more)"
                } else {
                    ""
                }
            );
            if let Some(why) = &list.hidden {
                println!("{why}");
            }
            let mut table = vec![vec![
                "EVENT".to_owned(),
                "RECEIVED (UTC)".to_owned(),
                "TRIGGER".to_owned(),
                "KIND".to_owned(),
                "SOURCE".to_owned(),
                "KEY".to_owned(),
                "RUN".to_owned(),
                "OUTCOME".to_owned(),
            ]];
            for e in &list.events {
                table.push(vec![
                    e.id.to_string(),
                    e.received_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    e.trigger.clone(),
                    e.kind.clone(),
                    e.source.clone(),
                    e.idempotency_key.clone().unwrap_or_else(|| "—".to_owned()),
                    e.run_id.map_or_else(|| "—".to_owned(), |r| r.to_string()),
                    outcome(e),
                ]);
            }
            print_table(&table);
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Show { event_id, format } => {
            let id = parse_event_id(&event_id)?;
            let event = match store.event(id).await {
                Ok(e) => e,
                Err(e) => return Ok(refused(e)),
            };
            let actor = ctx
                .authorize(&store, Action::View, Some(&event.environment))
                .await?;
            let view = match ops.event(&actor, id).await {
                Ok(v) => v,
                Err(e) => return Ok(refused(e)),
            };
            let e = &view.event;
            if let Format::Json = format {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "id": e.id, "environment": e.environment, "dag_id": e.dag_id,
                        "received_at": e.received_at, "trigger": e.trigger, "kind": e.kind,
                        "source": e.source, "idempotency_key": e.idempotency_key,
                        "run_id": e.run_id, "run_state": e.run_state, "replay_of": e.replay_of,
                        "payload": e.payload, "payload_hidden": view.hidden, "replays": view.replays,
                    }))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("event {} of {} in {}", e.id, e.dag_id, e.environment);
            println!("received  {}", utc(e.received_at));
            println!("trigger   {} ({})", e.trigger, e.kind);
            println!("source    {}", e.source);
            if let Some(k) = &e.idempotency_key {
                println!("key       {k}");
            }
            match e.run_id {
                Some(r) => println!("run       {r} ({})", outcome(e)),
                None => println!("run       none"),
            }
            if let Some(o) = e.replay_of {
                println!("replays   event {o}");
            }
            for r in &view.replays {
                println!("replayed  by event {r}");
            }
            match &view.hidden {
                Some(why) => println!("payload   hidden: {why}"),
                None => println!(
                    "payload\n{}",
                    serde_json::to_string_pretty(&e.payload).unwrap_or_default()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Replay {
            event_id,
            dag,
            env,
            from,
            to,
            format,
        } => {
            let done = if let Some(text) = event_id {
                let id = parse_event_id(&text)?;
                let event = match store.event(id).await {
                    Ok(e) => e,
                    Err(e) => return Ok(refused(e)),
                };
                let actor = match ctx
                    .authorize(&store, Action::Replay, Some(&event.environment))
                    .await
                {
                    Ok(a) => a,
                    Err(e) => return Ok(refused(e)),
                };
                match ops.replay_event(&actor, id).await {
                    Ok(d) => d,
                    Err(e) => return Ok(refused(e)),
                }
            } else {
                let (Some(dag), Some(env), Some(from), Some(to)) = (dag, env, from, to) else {
                    return Ok(refused(
                        "say which events: an EVENT_ID, or --dag, --env, --from and --to",
                    ));
                };
                let actor = match ctx.authorize(&store, Action::Replay, Some(&env)).await {
                    Ok(a) => a,
                    Err(e) => return Ok(refused(e)),
                };
                let tz = super::runs::current_dag(&store, &dag, &env)
                    .await
                    .map_or(chrono_tz::Tz::UTC, |(_, d)| d.timezone);
                let now = Utc::now();
                let (from, to) = match (parse_moment(&from, tz, now), parse_moment(&to, tz, now)) {
                    (Ok(f), Ok(t)) => (f, t),
                    (Err(e), _) => return Ok(refused(format!("--from: {e}"))),
                    (_, Err(e)) => return Ok(refused(format!("--to: {e}"))),
                };
                match ops.replay_range(&actor, &dag, &env, from, to).await {
                    Ok(d) => d,
                    Err(e) => return Ok(refused(e)),
                }
            };
            if let Format::Json = format {
                println!("{}", serde_json::to_string_pretty(&done)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_replayed(&done);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What a replay did, in words, then each new run's id on a line of its own.
fn print_replayed(done: &Replayed) {
    let (events, runs) = (done.events.len(), done.runs.len());
    match done.events.as_slice() {
        [one] => println!(
            "replayed event {} of {} in {}: new event {} in run {} (queued: it starts as soon as a worker is free)",
            one.original, done.dag_id, done.environment, one.event_id, one.run_id
        ),
        _ => println!(
            "replayed {events} events of {} in {} in {runs} new run{} (queued: they start as workers are free):",
            done.dag_id,
            done.environment,
            if runs == 1 { "" } else { "s" }
        ),
    }
    if events > 1 {
        for r in &done.runs {
            println!("{r}");
        }
    }
}

/// " — send one with …" for a DAG with webhooks in `env`; nothing otherwise.
async fn how_to_send(store: &Store, dag: &str, env: &str) -> String {
    let Ok((_, spec)) = super::runs::current_dag(store, dag, env).await else {
        return String::new();
    };
    let hooks: Vec<String> = spec
        .triggers
        .iter()
        .filter_map(|t| match t {
            RunTrigger::Webhook(w) => Some(format!("POST /hooks/{env}/{dag}/{}", w.name)),
            RunTrigger::Dataset(_) => None,
        })
        .collect();
    if hooks.is_empty() {
        String::new()
    } else {
        format!(
            "; send one with {} (Authorization: Bearer <the secret>)",
            hooks.join(" or ")
        )
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count().min(48))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let shown: String = c.chars().take(48).collect();
                format!("{shown:<w$}")
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
