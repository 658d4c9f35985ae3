//! Events on the pages: the Events section of a DAG's page (latest events, how to send one,
//! replay by time range), a DAG's events page by page, one event's page, and the replay forms.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drover_engine::ops::{Action, EventQuery, OpError, parse_moment};
use drover_spec::dag::{Dag, RunTrigger};
use drover_spec::environment::Environment;
use drover_store::EventRow;
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, back, pick_env};
use crate::WebState;
use crate::auth::{CsrfForm, CurrentUser, PageUser};
use crate::error::{Failure, PageError};
use crate::views::{self, event_words::short_id, local_time, url_encode};

/// Events the DAG page shows; a page of the events list.
const ON_DAG_PAGE: i64 = 20;
const PER_PAGE: i64 = 50;

/// One event as a row of a table.
#[derive(Debug)]
pub(crate) struct EventLine {
    pub(crate) id: Uuid,
    pub(crate) short: String,
    /// By the DAG's clock ("14:02:01", "Tue 1 Dec 14:02:01").
    pub(crate) received: String,
    pub(crate) received_utc: String,
    pub(crate) trigger: String,
    pub(crate) kind: String,
    pub(crate) source: String,
    /// "—" when it has none, or when keys are hidden from the viewer.
    pub(crate) key: String,
    pub(crate) run_id: Option<Uuid>,
    /// The run's state in words ("succeeded"), or "no run".
    pub(crate) outcome: &'static str,
    /// The run's state, for its colour.
    pub(crate) state: String,
    pub(crate) replay_of: Option<Uuid>,
}

pub(crate) fn lines(events: &[EventRow], now: DateTime<Utc>, tz: Tz) -> Vec<EventLine> {
    events
        .iter()
        .map(|e| EventLine {
            id: e.id,
            short: short_id(&e.id),
            received: local_time::moment(now, e.received_at, tz),
            received_utc: local_time::utc(e.received_at),
            trigger: e.trigger.clone(),
            kind: e.kind.clone(),
            source: e.source.clone(),
            key: e.idempotency_key.clone().unwrap_or_else(|| "—".to_owned()),
            run_id: e.run_id,
            outcome: e.run_state.as_deref().map_or("no run", views::state_words),
            state: e.run_state.clone().unwrap_or_else(|| "none".to_owned()),
            replay_of: e.replay_of,
        })
        .collect()
}

/// How to send a DAG's webhook an event.
#[derive(Debug)]
pub(crate) struct HookHelp {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) curl: String,
}

/// The Events section of a DAG's page.
#[derive(Debug, Default)]
pub(crate) struct DagEvents {
    /// The DAG has webhook or dataset triggers, or events.
    pub(crate) show: bool,
    pub(crate) lines: Vec<EventLine>,
    pub(crate) hooks: Vec<HookHelp>,
    /// "lead_scoring.score": the datasets whose production starts a run.
    pub(crate) datasets: Vec<String>,
    /// Why keys are not shown.
    pub(crate) hidden: Option<String>,
    /// More, older events exist.
    pub(crate) more: bool,
    pub(crate) can_replay: bool,
    /// The DAG's zone, as the times are given.
    pub(crate) zone: String,
    /// The range replay form: what was typed (or a default) and why it was refused.
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) error: String,
}

/// What a refused range replay form brings back.
#[derive(Debug, Default)]
pub(crate) struct RangeEcho {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) error: String,
}

/// The server's address as the browser reached it, for the hook URL.
pub(crate) fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1:8080")
        .to_owned()
}

/// "2026-12-02T14:02" by the DAG's clock, as a date-time field shows it.
fn field_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
}

/// The Events section for `dag` in `env`, as `user` may see it.
pub(crate) async fn dag_events(
    state: &WebState,
    user: &CurrentUser,
    dag: &Dag,
    env: &Environment,
    host: &str,
    echo: RangeEcho,
) -> Result<DagEvents, Failure> {
    let list = match state
        .ops()
        .events(
            &user.actor,
            &EventQuery {
                dag_id: dag.id.clone(),
                environment: env.name.clone(),
                from: None,
                to: None,
                before: None,
                limit: ON_DAG_PAGE + 1,
            },
        )
        .await
    {
        Ok(l) => l,
        Err(OpError::NotFound(_)) => drover_engine::ops::EventList {
            events: Vec::new(),
            hidden: None,
        },
        Err(e) => return Err(e.into()),
    };
    let mut events = list.events;
    let more = events.len() as i64 > ON_DAG_PAGE;
    events.truncate(usize::try_from(ON_DAG_PAGE).unwrap_or(0));
    let hooks: Vec<HookHelp> = dag
        .triggers
        .iter()
        .filter_map(|t| match t {
            RunTrigger::Webhook(w) => Some(w),
            RunTrigger::Dataset(_) => None,
        })
        .map(|w| {
            let path = format!(
                "/hooks/{}/{}/{}",
                url_encode(&env.name),
                url_encode(&dag.id),
                url_encode(&w.name)
            );
            HookHelp {
                name: w.name.clone(),
                curl: format!(
                    "curl -X POST 'http://{host}{path}' -H 'Authorization: Bearer <the {} secret of {}>' -H 'Content-Type: application/json' -d '{{\"email\": \"ann@example.com\"}}'",
                    w.secret, env.name
                ),
                path,
            }
        })
        .collect();
    let datasets: Vec<String> = dag
        .dataset_triggers()
        .map(|d| format!("{}.{}", d.dag, d.task))
        .collect();
    let now = Utc::now();
    Ok(DagEvents {
        show: !dag.triggers.is_empty() || !events.is_empty(),
        lines: lines(&events, now, dag.timezone),
        hooks,
        datasets,
        hidden: list.hidden,
        more,
        can_replay: user.actor.may(Action::Replay, Some(env)),
        zone: local_time::city(dag.timezone),
        from: if echo.from.is_empty() {
            field_time(now - chrono::Duration::hours(1), dag.timezone)
        } else {
            echo.from
        },
        to: if echo.to.is_empty() {
            field_time(now + chrono::Duration::minutes(1), dag.timezone)
        } else {
            echo.to
        },
        error: echo.error,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    env: Option<String>,
    /// Older than this event: the next page.
    before: Option<Uuid>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dag_events.html")]
pub(crate) struct DagEventsPage {
    chrome: Chrome,
    id: String,
    env: String,
    lines: Vec<EventLine>,
    hidden: Option<String>,
    zone: String,
    can_replay: bool,
    older: Option<Uuid>,
    newer: bool,
}

/// A DAG's events, page by page.
pub(crate) async fn list(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path(dag_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<DagEventsPage, PageError> {
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref())
        .cloned()
        .ok_or_else(|| Failure::not_found("There are no environments yet."))?;
    let list = state
        .ops()
        .events(
            &user.actor,
            &EventQuery {
                dag_id: dag_id.clone(),
                environment: env.name.clone(),
                from: None,
                to: None,
                before: q.before,
                limit: PER_PAGE,
            },
        )
        .await?;
    let tz = match state.store().dag_env(&dag_id, &env.name).await {
        Ok(de) => state.ops().dags().get(de.version_id).await?.timezone,
        Err(_) => Tz::UTC,
    };
    let older = (list.events.len() as i64 == PER_PAGE)
        .then(|| list.events.last().map(|e| e.id))
        .flatten();
    Ok(DagEventsPage {
        chrome: Chrome::new(&user, "dags", Some(&env.name)),
        lines: lines(&list.events, Utc::now(), tz),
        hidden: list.hidden,
        zone: local_time::city(tz),
        can_replay: user.actor.may(Action::Replay, Some(&env)),
        older,
        newer: q.before.is_some(),
        id: dag_id,
        env: env.name.clone(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventQueryString {
    done: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "event.html")]
pub(crate) struct EventPage {
    chrome: Chrome,
    line: EventLine,
    dag_id: String,
    env: String,
    zone: String,
    /// The payload as indented JSON, or empty when hidden.
    payload: String,
    hidden: Option<String>,
    replays: Vec<Uuid>,
    can_replay: bool,
}

pub(crate) fn parse_event(text: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text).map_err(|_| Failure::not_found(format!("`{text}` is not an event id")))
}

/// One event: where it came from, its run, its payload, its replays.
pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path(id): Path<String>,
    Query(q): Query<EventQueryString>,
) -> Result<EventPage, PageError> {
    let view = state.ops().event(&user.actor, parse_event(&id)?).await?;
    let env = state.ops().environment(&view.event.environment).await?;
    let tz = match state
        .store()
        .dag_env(&view.event.dag_id, &view.event.environment)
        .await
    {
        Ok(de) => state.ops().dags().get(de.version_id).await?.timezone,
        Err(_) => Tz::UTC,
    };
    let payload = if view.hidden.is_some() {
        String::new()
    } else {
        serde_json::to_string_pretty(&view.event.payload).unwrap_or_default()
    };
    let line = lines(std::slice::from_ref(&view.event), Utc::now(), tz)
        .pop()
        .ok_or_else(|| Failure::not_found("no such event"))?;
    Ok(EventPage {
        chrome: Chrome::new(&user, "dags", Some(&env.name)).with_done(q.done.as_deref()),
        dag_id: view.event.dag_id.clone(),
        env: env.name.clone(),
        zone: local_time::city(tz),
        payload,
        hidden: view.hidden,
        replays: view.replays,
        can_replay: user.actor.may(Action::Replay, Some(&env)),
        line,
    })
}

/// Replay one event; on to the new run.
pub(crate) async fn replay_one(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: CsrfForm<super::rerun::Empty>,
) -> Result<Response, PageError> {
    let done = state
        .ops()
        .replay_event(&form.user.actor, parse_event(&id)?)
        .await?;
    let run = done
        .runs
        .first()
        .ok_or_else(|| Failure::not_found("the replay made no run"))?;
    Ok(back(&format!("/runs/{run}"), "replayed").into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RangeForm {
    env: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Replay the events of a time range; back to the DAG's page (with why, when refused).
pub(crate) async fn replay_range(
    State(state): State<WebState>,
    Path(dag_id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm<RangeForm>,
) -> Result<Response, PageError> {
    let f = form.form;
    let tz = match state.store().dag_env(&dag_id, &f.env).await {
        Ok(de) => state.ops().dags().get(de.version_id).await?.timezone,
        Err(_) => Tz::UTC,
    };
    let now = Utc::now();
    let range = parse_moment(&f.from, tz, now)
        .map_err(|e| format!("From: {e}"))
        .and_then(|from| {
            parse_moment(&f.to, tz, now)
                .map(|to| (from, to))
                .map_err(|e| format!("To: {e}"))
        });
    let refused = match range {
        Ok((from, to)) => match state
            .ops()
            .replay_range(&form.user.actor, &dag_id, &f.env, from, to)
            .await
        {
            Ok(_) => {
                return Ok(back(
                    &format!("/dags/{}?env={}", url_encode(&dag_id), url_encode(&f.env)),
                    "replayed_range",
                )
                .into_response());
            }
            Err(OpError::Invalid(m)) => m,
            Err(other) => return Err(other.into()),
        },
        Err(m) => m,
    };
    let echo = RangeEcho {
        from: f.from,
        to: f.to,
        error: refused,
    };
    let page =
        super::dag::render_page(&state, &form.user, dag_id, &f.env, &host_of(&headers), echo)
            .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
