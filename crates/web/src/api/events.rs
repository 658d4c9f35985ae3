//! Events: a DAG's list, one event with its payload, and replays (one, or a time range).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use drover_engine::ops::EventQuery;
use drover_store::{EventRow, Replayed};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiResult, Body, Params, env_or_first, ok};
use crate::WebState;
use crate::auth::ApiUser;
use crate::error::Failure;

/// An event in a list: everything but its payload.
fn listed_json(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "received_at": e.received_at,
        "trigger": e.trigger,
        "kind": e.kind,
        "source": e.source,
        "idempotency_key": e.idempotency_key,
        "run_id": e.run_id,
        "run_state": e.run_state,
        "outcome": e.run_state.as_deref().map(crate::views::state_words),
        "replay_of": e.replay_of,
    })
}

pub(crate) fn parse_event(text: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text).map_err(|_| Failure::not_found(format!("`{text}` is not an event id")))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    env: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before: Option<Uuid>,
    limit: Option<i64>,
}

/// A DAG's events in an environment, newest first.
pub(super) async fn list(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(dag_id): Path<String>,
    Params(q): Params<ListQuery>,
) -> ApiResult {
    let env = env_or_first(&state, q.env.as_deref()).await?;
    let limit = q.limit.unwrap_or(100);
    let list = state
        .ops()
        .events(
            &user.actor,
            &EventQuery {
                dag_id: dag_id.clone(),
                environment: env.clone(),
                from: q.from,
                to: q.to,
                before: q.before,
                limit,
            },
        )
        .await?;
    let next_before = (list.events.len() as i64
        == limit.clamp(1, drover_engine::ops::MAX_EVENTS_LISTED))
    .then(|| list.events.last().map(|e| e.id))
    .flatten();
    ok(json!({
        "dag_id": dag_id,
        "environment": env,
        "events": list.events.iter().map(listed_json).collect::<Vec<_>>(),
        "keys_hidden": list.hidden,
        "next_before": next_before,
    }))
}

/// One event with its payload (null, with `payload_hidden` saying why, where the
/// environment's `rows_visible_to` does not allow the caller) and its replays.
pub(super) async fn show(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> ApiResult {
    let view = state.ops().event(&user.actor, parse_event(&id)?).await?;
    let mut v = listed_json(&view.event);
    if let Some(o) = v.as_object_mut() {
        o.insert("environment".to_owned(), json!(view.event.environment));
        o.insert("dag_id".to_owned(), json!(view.event.dag_id));
        o.insert("payload".to_owned(), view.event.payload.clone());
        o.insert("payload_hidden".to_owned(), json!(view.hidden));
        o.insert("replays".to_owned(), json!(view.replays));
    }
    ok(v)
}

fn replayed(done: &Replayed) -> axum::response::Response {
    let events = done.events.len();
    let runs = done.runs.len();
    (
        StatusCode::CREATED,
        Json(json!({
            "dag_id": done.dag_id,
            "environment": done.environment,
            "run_ids": done.runs,
            "events": done.events,
            "summary": format!(
                "Replayed {events} event{} of {} in {}, in {runs} new run{}.",
                if events == 1 { "" } else { "s" },
                done.dag_id,
                done.environment,
                if runs == 1 { "" } else { "s" }
            ),
        })),
    )
        .into_response()
}

/// Replay one event: a new event with its payload in a new run of type `replay`.
pub(super) async fn replay_one(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> ApiResult {
    let done = state
        .ops()
        .replay_event(&user.actor, parse_event(&id)?)
        .await?;
    Ok(replayed(&done))
}

#[derive(Debug, Deserialize)]
pub(super) struct RangeBody {
    #[serde(alias = "environment")]
    env: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// Replay the events a DAG received in a time range, keeping their runs' batches.
pub(super) async fn replay_range(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(dag_id): Path<String>,
    Body(b): Body<RangeBody>,
) -> ApiResult {
    let done = state
        .ops()
        .replay_range(&user.actor, &dag_id, &b.env, b.from, b.to)
        .await?;
    Ok(replayed(&done))
}

/// The operations and schemas above, for the OpenAPI document.
pub(super) fn document(doc: &mut Value) {
    use super::openapi::{ok as ok_resp, op, param, path_p};
    let dag_p = path_p("dag", "DAG id");
    let event_p = path_p("event", "Event id (UUID)");
    let listed = json!({
        "id": { "type": "string", "format": "uuid" },
        "received_at": { "type": "string", "format": "date-time" },
        "trigger": { "type": "string", "description": "The webhook's name, or `dataset:<dag>.<task>`" },
        "kind": { "enum": ["webhook", "dataset", "replay"] },
        "source": { "type": "string", "description": "Who sent it: the sender's address, the producing run, or who replayed it" },
        "idempotency_key": { "type": ["string", "null"], "description": "Null too where payloads are hidden from you (a key is often taken from the payload)" },
        "run_id": { "type": ["string", "null"], "format": "uuid" },
        "run_state": { "enum": ["queued", "running", "success", "failed", null] },
        "outcome": { "type": ["string", "null"], "description": "The run's state in words" },
        "replay_of": { "type": ["string", "null"], "format": "uuid", "description": "The event this one replays" }
    });
    let mut detail = listed.clone();
    if let Some(o) = detail.as_object_mut() {
        o.insert("environment".to_owned(), json!({ "type": "string" }));
        o.insert("dag_id".to_owned(), json!({ "type": "string" }));
        o.insert(
            "payload".to_owned(),
            json!({ "description": "The body as received (JSON); null when hidden from you" }),
        );
        o.insert("payload_hidden".to_owned(), json!({ "type": ["string", "null"], "description": "Why `payload` is null: the environment's `rows_visible_to` names a role above yours (payloads may hold personal data)" }));
        o.insert("replays".to_owned(), json!({ "type": "array", "items": { "type": "string", "format": "uuid" }, "description": "Events that replay this one, oldest first" }));
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.insert("EventList".to_owned(), json!({ "type": "object", "required": ["dag_id", "environment", "events"], "properties": {
            "dag_id": { "type": "string" }, "environment": { "type": "string" },
            "events": { "type": "array", "items": { "type": "object", "required": ["id", "received_at", "trigger", "kind", "source"], "properties": listed } },
            "keys_hidden": { "type": ["string", "null"], "description": "Why idempotency keys are null" },
            "next_before": { "type": ["string", "null"], "format": "uuid", "description": "Pass as `before` for the next (older) page" } } }));
        schemas.insert("Event".to_owned(), json!({ "type": "object", "required": ["id", "environment", "dag_id", "received_at", "trigger", "kind", "source", "payload", "replays"], "properties": detail }));
        schemas.insert("ReplayRange".to_owned(), json!({ "type": "object", "required": ["env", "from", "to"], "properties": {
            "env": { "type": "string", "description": "Environment" },
            "from": { "type": "string", "format": "date-time", "description": "Events received at or after" },
            "to": { "type": "string", "format": "date-time", "description": "Events received before" } } }));
        schemas.insert("Replayed".to_owned(), json!({ "type": "object", "required": ["run_ids", "events", "summary"], "properties": {
            "dag_id": { "type": "string" }, "environment": { "type": "string" },
            "run_ids": { "type": "array", "items": { "type": "string", "format": "uuid" }, "description": "The new runs (type `replay`)" },
            "events": { "type": "array", "items": { "type": "object", "properties": { "original": { "type": "string", "format": "uuid" }, "event_id": { "type": "string", "format": "uuid" }, "run_id": { "type": "string", "format": "uuid" } } } },
            "summary": { "type": "string" } } }));
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.insert("/api/dags/{dag}/events".to_owned(), json!({
            "get": op("A DAG's events in an environment, newest first: when each came, its trigger, kind, source, key, the run it went to and how that went, what it replays. No payloads (see /api/events/{event})", vec![dag_p.clone(), param("env", "query", false, "string", "Environment (default: the first in promotion order)"), param("from", "query", false, "string", "Received at or after (RFC 3339)"), param("to", "query", false, "string", "Received before (RFC 3339)"), param("before", "query", false, "string", "An event id: older events (the next page)"), param("limit", "query", false, "integer", "At most 1000; default 100")], None, 200, ok_resp("EventList", "Events"), &[401, 404])
        }));
        paths.insert("/api/events/{event}".to_owned(), json!({
            "get": op("One event with its payload (null where the environment's `rows_visible_to` names a role above yours, `payload_hidden` saying why) and the events that replay it", vec![event_p.clone()], None, 200, ok_resp("Event", "The event"), &[401, 404])
        }));
        paths.insert("/api/events/{event}/replay".to_owned(), json!({
            "post": op("Replay an event (a replay too): a new event with its trigger and payload in a new run of type `replay`. Operators and admins; audited", vec![event_p], None, 201, ok_resp("Replayed", "The new event and run"), &[401, 403, 404, 409])
        }));
        paths.insert("/api/dags/{dag}/events/replay".to_owned(), json!({
            "post": op("Replay the events a DAG received in an environment in a time range (not earlier replays of them), at most 10,000; events that shared a run (a batch) share a replay run. Operators and admins; audited", vec![dag_p], Some("ReplayRange"), 201, ok_resp("Replayed", "The new events and runs"), &[401, 403, 404, 409, 422])
        }));
    }
}
