//! The OpenAPI 3.1 description of the JSON API, served at `/api/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

pub(super) fn param(name: &str, place: &str, required: bool, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": place, "required": required, "schema": { "type": ty }, "description": description })
}

fn env_q() -> Value {
    param(
        "env",
        "query",
        false,
        "string",
        "Environment (default: the first in promotion order)",
    )
}

pub(super) fn path_p(name: &str, description: &str) -> Value {
    param(name, "path", true, "string", description)
}

pub(super) fn ok(schema: &str, description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn errors(codes: &[u16]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            (
                c.to_string(),
                json!({ "description": match c {
                    401 => "Not logged in: send `Authorization: Bearer <token>`",
                    403 => "Your role does not allow it, or a cookie-authenticated write lacks X-CSRF-Token",
                    404 => "No such DAG, run, task or environment",
                    409 => "Not in a state that allows it",
                    422 => "The request is invalid (body, parameter, refused promotion gate), or carries text that cannot be stored (a NUL character, bytes that are not UTF-8)",
                    503 => "This Drover process cannot do it now",
                    _ => "Error",
                }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            )
        })
        .collect()
}

pub(super) fn op(
    summary: &str,
    params: Vec<Value>,
    body: Option<&str>,
    ok_code: u16,
    ok_resp: Value,
    errs: &[u16],
) -> Value {
    let mut responses = errors(errs);
    // A query string that does not read (`limit=lots`) is answered 422.
    if params.iter().any(|p| p["in"] == "query") && !errs.contains(&422) {
        responses.extend(errors(&[422]));
    }
    responses.insert(ok_code.to_string(), ok_resp);
    let mut o = json!({ "summary": summary, "parameters": params, "responses": responses });
    if let Some(b) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{b}") } } } });
    }
    o
}

const READ: &[u16] = &[401, 404];
const WRITE: &[u16] = &[401, 403, 404, 409, 422];

/// The document.
pub(crate) fn spec() -> Value {
    let mut doc = paths_and_schemas();
    super::approvals::document(&mut doc);
    super::events::document(&mut doc);
    // Every change may meet maintenance: 503 with Retry-After.
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            // Text that cannot be stored (a NUL character, bytes that are not UTF-8) in the
            // path, query or body is refused with 422 by every operation.
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut)
                    && !responses.contains_key("422")
                {
                    responses.extend(errors(&[422]));
                }
            }
            if let Some(responses) = item
                .get_mut("post")
                .and_then(|p| p.get_mut("responses"))
                .and_then(Value::as_object_mut)
            {
                responses.insert("503".to_owned(), json!({
                    "description": "Drover is in maintenance (Retry-After says when to try again), or this process cannot do it now",
                    "headers": { "Retry-After": { "description": "Seconds to wait", "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                }));
            }
        }
    }
    doc
}

fn paths_and_schemas() -> Value {
    let run_p = path_p("run", "Run id (UUID)");
    let dag_p = path_p("dag", "DAG id");
    let env_p = path_p("env", "Environment name");
    let task_p = path_p("task", "Task id");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Drover API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Run history and operations of Drover, the orchestrator for scheduled marketing ETL. Authenticate with `Authorization: Bearer <token>` (tokens are made on the account page or with `drover users token`). The same role rules hold as in the UI and CLI: viewers read; operators trigger, pause, clear, mark, revert and replay events, and approve or reject returns waiting for approval (not their own change); admins approve promotions and manage users."
        },
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["status", "code", "message"], "properties": {
                    "status": { "type": "integer" }, "code": { "type": "string" }, "message": { "type": "string" }, "detail": { "type": ["string", "null"] } } } } },
                "Me": { "type": "object", "required": ["name", "role"], "properties": { "name": { "type": "string" }, "role": { "enum": ["viewer", "operator", "admin"] }, "environment_roles": { "type": "object" } } },
                "Run": { "type": "object", "required": ["id", "dag_id", "environment", "state", "run_type", "logical_date"], "properties": {
                    "id": { "type": "string", "format": "uuid" }, "dag_id": { "type": "string" }, "environment": { "type": "string" }, "version_id": { "type": "integer" },
                    "run_type": { "enum": ["scheduled", "manual", "backfill", "event", "dataset", "replay"] }, "state": { "enum": ["queued", "running", "success", "failed"] },
                    "logical_date": { "type": "string", "format": "date-time" }, "interval_start": { "type": "string", "format": "date-time" }, "interval_end": { "type": "string", "format": "date-time" },
                    "params": { "type": "object" }, "triggered_by": { "type": ["string", "null"] }, "commit_sha": { "type": ["string", "null"] },
                    "created_at": { "type": "string" }, "started_at": { "type": ["string", "null"] }, "finished_at": { "type": ["string", "null"] },
                    "deadline_at": { "type": ["string", "null"], "description": "When the run must have finished (the DAG's `deadline`)" },
                    "deadline_state": { "enum": ["pending", "met", "missed", null] } } },
                "RunDetail": { "type": "object", "required": ["run", "tasks"], "properties": { "run": { "$ref": "#/components/schemas/Run" }, "tasks": { "type": "array", "items": { "$ref": "#/components/schemas/TaskInstance" } } } },
                "TaskInstance": { "type": "object", "required": ["task_id", "state", "try_number"], "properties": {
                    "task_id": { "type": "string" }, "state": { "enum": ["pending", "queued", "running", "success", "failed", "up_for_retry", "skipped", "upstream_failed", "awaiting_approval"] },
                    "try_number": { "type": "integer" }, "max_tries": { "type": "integer" }, "started_at": { "type": ["string", "null"] }, "finished_at": { "type": ["string", "null"] },
                    "error": { "type": ["string", "null"] }, "rows_in": { "type": ["integer", "null"] }, "rows_out": { "type": ["integer", "null"] }, "rows_rejected": { "type": ["integer", "null"] },
                    "api_calls": { "type": ["integer", "null"] }, "bytes_moved": { "type": ["integer", "null"] },
                    "deadline_at": { "type": ["string", "null"] }, "deadline_state": { "enum": ["pending", "met", "missed", null] } } },
                "RunPage": { "type": "object", "required": ["runs"], "properties": { "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } }, "next_before": { "type": ["string", "null"], "description": "Pass as `before` for the next page" } } },
                "DagListing": { "type": "object", "required": ["environment", "items", "total", "page", "pages"], "properties": {
                    "environment": { "type": "string" }, "total": { "type": "integer" }, "page": { "type": "integer" }, "pages": { "type": "integer" }, "tags": { "type": "array", "items": { "type": "string" } },
                    "items": { "type": "array", "items": { "type": "object", "required": ["id", "schedule", "paused"], "properties": {
                        "id": { "type": "string" }, "description": { "type": "string" }, "owner": { "type": ["string", "null"] }, "tags": { "type": "array" }, "schedule": { "type": "string" },
                        "paused": { "type": "boolean" }, "last_state": { "type": ["string", "null"] }, "last_run_id": { "type": ["string", "null"] }, "next_run_at": { "type": ["string", "null"] },
                        "runs_30d": { "type": "integer" }, "succeeded_30d": { "type": "integer" }, "failed_30d": { "type": "integer" } } } } } },
                "Dag": { "type": "object", "required": ["id", "environment", "tasks", "freshness"], "properties": { "id": { "type": "string" }, "environment": { "type": "string" }, "description": { "type": "string" },
                    "schedule": { "type": ["string", "null"] }, "paused": { "type": "boolean" }, "params": { "type": "array" }, "tasks": { "type": "array" }, "version": { "type": "object" },
                    "freshness": { "type": "object", "description": "How fresh the DAG's data is in each environment it runs in, where its version there declares `freshness` (on the DAG or a task); keyed by environment. The DAG's own fields are null when only tasks declare it.",
                      "additionalProperties": { "allOf": [{ "$ref": "#/components/schemas/Freshness" }, { "type": "object", "required": ["tasks"], "properties": {
                        "tasks": { "type": "object", "description": "Tasks that declare `freshness`, by task id", "additionalProperties": { "$ref": "#/components/schemas/Freshness" } } } }] } } } },
                "Freshness": { "type": "object", "required": ["max_age_secs", "age_secs", "stale", "last_refreshed_at"], "properties": {
                    "max_age_secs": { "type": ["integer", "null"], "description": "The `max_age` the file declares" },
                    "age_secs": { "type": ["integer", "null"], "description": "Seconds since the last refresh (a run of the DAG that succeeded, warnings included, or a successful try of the task; never a preview); never refreshed: since the DAG came into the environment" },
                    "stale": { "type": ["boolean", "null"], "description": "Older than `max_age`" },
                    "last_refreshed_at": { "type": ["string", "null"], "format": "date-time", "description": "Null when it never was refreshed" },
                    "last_refreshed_by": { "type": ["string", "null"], "format": "uuid", "description": "The run that refreshed it" },
                    "stale_since": { "type": ["string", "null"], "format": "date-time", "description": "When it went stale (null while fresh)" },
                    "paused": { "type": "boolean", "description": "The DAG is paused in the environment: nothing refreshes its data, which goes stale all the same" } } },
                "Environments": { "type": "object", "required": ["environments"], "properties": { "environments": { "type": "array", "items": { "type": "object", "required": ["name"] } } } },
                "Diff": { "type": "object", "required": ["from_commit", "to_commit", "files", "text"], "properties": { "from_commit": { "type": "string" }, "to_commit": { "type": "string" }, "files": { "type": "array" }, "text": { "type": "string" } } },
                "Promotion": { "type": "object", "required": ["state"], "properties": { "state": { "enum": ["applied", "awaiting_approval", "rejected"] }, "commit": { "type": "string" }, "request": { "type": "integer" }, "changed_dags": { "type": "array" } } },
                "Log": { "type": "object", "required": ["lines", "next_after", "task_state"], "properties": { "task_state": { "type": "string" }, "try_number": { "type": "integer" }, "current_try": { "type": "integer" }, "next_after": { "type": "integer" },
                    "lines": { "type": "array", "items": { "type": "object", "required": ["id", "line"], "properties": { "id": { "type": "integer" }, "at": { "type": "string" }, "stream": { "type": "string" }, "line": { "type": "string" } } } } } },
                "DatasetRows": { "type": "object", "required": ["run_id", "task_id", "kind", "environment", "row_count", "columns", "rows", "rows_hidden", "rejected_reasons"], "properties": {
                    "run_id": { "type": "string", "format": "uuid" }, "task_id": { "type": "string" }, "kind": { "enum": ["output", "receipt"] }, "environment": { "type": "string" },
                    "row_count": { "type": "integer" },
                    "columns": { "type": "array", "items": { "type": "object", "required": ["name", "type"], "properties": { "name": { "type": "string" }, "type": { "type": "string", "description": "Postgres type" } } } },
                    "expires_at": { "type": "string", "format": "date-time" }, "dropped_at": { "type": ["string", "null"] },
                    "rows": { "type": ["array", "null"], "items": { "type": "array", "items": { "type": ["string", "null"] } }, "description": "The first rows, each cell as text (null for SQL null); null when they are not shown to you (see `rows_hidden`)" },
                    "rows_hidden": { "type": ["string", "null"], "description": "Why `rows` is null: the environment's `rows_visible_to` names a role above yours (rows may hold personal data), or the rows were dropped" },
                    "rejected_reasons": { "type": "array", "description": "A receipt's rejected rows by reason, most frequent first (shown to everyone)", "items": { "type": "object", "required": ["reason", "rows"], "properties": { "reason": { "type": "string" }, "rows": { "type": "integer" } } } } } },
                "Plan": { "type": "object", "required": ["run_id", "task_id", "try_number", "environment", "preview", "snapshot", "summary", "totals", "field_changes", "digest", "records", "records_hidden", "next_after"], "properties": {
                    "run_id": { "type": "string", "format": "uuid" }, "task_id": { "type": "string" }, "try_number": { "type": "integer", "description": "The try that recorded it (the latest)" },
                    "environment": { "type": "string" }, "preview": { "type": "boolean", "description": "A preview run: nothing was sent" },
                    "snapshot": { "type": "boolean", "description": "Values before were read; without, creates and updates are not told apart and old values are unknown" },
                    "lookup": { "type": "string" }, "recorded_at": { "type": "string", "format": "date-time" },
                    "digest": { "type": "string", "description": "A digest of the plan's records: equal digests, equal plans" },
                    "summary": { "type": "string", "description": "The plan in words: \"would create 12 leads, update 340 (leadScore on 340), leave 1,020 unchanged, …\"" },
                    "totals": { "type": "object", "required": ["rows", "sends", "unchanged", "not_sent", "nulls_withheld"], "properties": {
                        "rows": { "type": "integer" }, "creates": { "type": ["integer", "null"] }, "updates": { "type": ["integer", "null"] }, "sends": { "type": "integer" },
                        "unchanged": { "type": "integer" }, "not_sent": { "type": "integer", "description": "Rows without a lookup value" }, "nulls_withheld": { "type": "integer", "description": "Empty values not written over a value" } } },
                    "field_changes": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "Records whose field changes, by field" },
                    "records": { "type": ["array", "null"], "description": "A page of records in the dataset's order; null when they are not shown to you (see `records_hidden`)", "items": { "type": "object", "required": ["ord", "key", "status", "changes", "withheld"], "properties": {
                        "ord": { "type": "integer" }, "key": { "type": ["string", "null"] }, "map_id": { "type": ["integer", "null"] },
                        "status": { "enum": ["create", "update", "send", "unchanged", "not_sent"] }, "reason": { "type": ["string", "null"] },
                        "changes": { "type": "array", "items": { "type": "object", "required": ["field", "old", "old_known", "new"], "properties": { "field": { "type": "string" }, "old": {}, "old_known": { "type": "boolean" }, "new": {} } } },
                        "withheld": { "type": "array", "items": { "type": "string" } } } } },
                    "records_hidden": { "type": ["string", "null"], "description": "Why `records` is null: the environment's `rows_visible_to` names a role above yours, or the records were dropped" },
                    "records_dropped_at": { "type": ["string", "null"] },
                    "next_after": { "type": ["integer", "null"], "description": "Pass as `after` for the next page" } } },
                "RecordHistory": { "type": "object", "required": ["environment", "field", "value", "touches", "rows_hidden", "more"], "properties": {
                    "environment": { "type": "string" }, "field": { "type": "string", "description": "email, id (the MAP id) or another lookup field" }, "value": { "type": "string", "description": "As a return matches it (an email trimmed and lower-cased)" },
                    "touches": { "type": ["array", "null"], "description": "Newest first; null when the environment's `rows_visible_to` names a role above yours (see `rows_hidden`)", "items": { "type": "object", "required": ["when", "dag_id", "run_id", "task_id", "status", "changes", "reverted"], "properties": {
                        "when": { "type": "string", "format": "date-time" }, "dag_id": { "type": "string" }, "run_id": { "type": "string", "format": "uuid" }, "task_id": { "type": "string" }, "try_number": { "type": "integer" },
                        "lookup_field": { "type": "string" }, "key": { "type": "string" }, "map_id": { "type": ["integer", "null"] },
                        "status": { "enum": ["created", "updated", "accepted", "unchanged", "rejected", "warning", "unknown", "reverted"], "description": "The receipt's status; `reverted` for a revert job's own write" },
                        "reason": { "type": ["string", "null"] },
                        "changes": { "type": "array", "items": { "type": "object", "required": ["field", "new"], "properties": { "field": { "type": "string" }, "old": { "type": ["string", "null"], "description": "Null when the values before the write were not read" }, "new": { "type": "string" } } } },
                        "withheld": { "type": ["array", "null"], "description": "Fields whose null was not written over a value" },
                        "reverted": { "type": "boolean" }, "reverted_at": { "type": ["string", "null"] }, "reverted_by_job": { "type": ["integer", "null"] }, "revert_job": { "type": ["integer", "null"], "description": "On a revert's own write: its job" } } } },
                    "rows_hidden": { "type": ["string", "null"] }, "more": { "type": "boolean", "description": "More touches than `limit`" } } },
                "Usage": { "type": "object", "required": ["environment", "days", "costs", "total", "dags", "per_day"], "properties": {
                    "environment": { "type": "string" }, "days": { "type": "integer" }, "costs": { "type": "object" },
                    "total": { "$ref": "#/components/schemas/UsageTotals" },
                    "dags": { "type": "array", "items": { "type": "object", "properties": { "dag_id": { "type": "string" }, "usage": { "$ref": "#/components/schemas/UsageTotals" } } } },
                    "per_day": { "type": "array", "items": { "type": "object", "properties": { "day": { "type": "string", "format": "date" }, "usage": { "$ref": "#/components/schemas/UsageTotals" } } } } } },
                "UsageTotals": { "type": "object", "properties": { "api_calls": { "type": "integer" }, "rows_moved": { "type": "integer" }, "runtime_hours": { "type": "number" },
                    "storage_gb_days": { "type": "number" }, "storage_bytes_now": { "type": "integer" }, "cost": { "type": "number", "description": "In `costs.currency`" } } },
                "Slos": { "type": "object", "required": ["slos"], "properties": { "slos": { "type": "array", "items": { "type": "object", "required": ["environment", "dag_id", "task_id", "objective", "status", "verdict"], "properties": {
                    "environment": { "type": "string" }, "dag_id": { "type": "string" }, "task_id": { "type": "string" },
                    "objective": { "type": "number", "description": "Share of checks that must pass, e.g. 0.99" }, "period_secs": { "type": "integer" }, "described": { "type": "string" },
                    "good": { "type": "integer" }, "total": { "type": "integer" }, "verdict": { "enum": ["ok", "burning", "exhausted"] },
                    "status": { "type": "object", "properties": { "sli": { "type": ["number", "null"] }, "budget_remaining": { "type": "number", "description": "1 untouched, 0 spent, below 0 overspent" },
                      "failures_left": { "type": "number" }, "burn_1h": { "type": ["number", "null"] }, "burn_6h": { "type": ["number", "null"] } } } } } } } },
                "Checks": { "type": "object", "required": ["checks"], "properties": { "checks": { "type": "array", "items": { "type": "object", "required": ["result", "status"], "properties": { "status": { "enum": ["green", "amber", "red"] }, "verdict": { "type": "string" }, "result": { "type": "object" } } } } } },
                "Notifications": { "type": "object", "required": ["notifications"], "properties": { "notifications": { "type": "array", "items": { "type": "object" } } } },
                "Audit": { "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "items": { "type": "object", "required": ["id", "at", "actor", "action"] } } } },
                "Trigger": { "type": "object", "required": ["environment"], "properties": { "environment": { "type": "string" }, "params": { "type": "object" }, "logical_date": { "type": "string", "description": "RFC 3339 or YYYY-MM-DD; default: the latest complete interval" } } },
                "Triggered": { "type": "object", "required": ["run_id"], "properties": { "run_id": { "type": "string", "format": "uuid" } } },
                "EnvironmentRef": { "type": "object", "required": ["environment"], "properties": { "environment": { "type": "string" } } },
                "Paused": { "type": "object", "required": ["paused"], "properties": { "paused": { "type": "boolean" } } },
                "Mark": { "type": "object", "required": ["state"], "properties": { "state": { "enum": ["success", "failed"] } } },
                "Marked": { "type": "object", "required": ["state"], "properties": { "state": { "type": "string" } } },
                "Clear": { "type": "object", "required": ["tasks"], "properties": { "tasks": { "type": "array", "items": { "type": "string" } } } },
                "Cleared": { "type": "object", "required": ["cleared"], "properties": { "cleared": { "type": "array", "items": { "type": "string" } } } },
                "RevertRequest": { "type": "object", "properties": { "force": { "type": "boolean" } } },
                "Revert": { "type": "object", "required": ["id", "state", "processed", "restored"], "properties": { "id": { "type": "integer" }, "state": { "type": "string", "enum": ["queued", "running", "done", "failed"] }, "force": { "type": "boolean" }, "total": { "type": ["integer", "null"] }, "processed": { "type": "integer" }, "restored": { "type": "integer" }, "skipped_changed": { "type": "integer" }, "skipped_keys": { "type": "array", "items": { "type": "string" } }, "refused": { "type": "integer" }, "refusals": { "type": "array" }, "created_left": { "type": "integer" }, "not_written": { "type": "integer" }, "error": { "type": ["string", "null"] } } },
                "Promote": { "type": "object", "properties": { "from": { "type": "string" }, "commit": { "type": "string" }, "note": { "type": "string" } } },
                "Note": { "type": "object", "properties": { "note": { "type": "string" } } }
            }
        },
        "security": [{ "token": [] }],
        "paths": {
            "/api/me": { "get": op("Who you are and your roles", vec![], None, 200, ok("Me", "You"), &[401]) },
            "/api/environments": { "get": op("Environments: commit, pending promotion, history", vec![], None, 200, ok("Environments", "Environments in promotion order"), &[401]) },
            "/api/environments/diff": { "get": op("How two environments' DAG files differ", vec![param("from", "query", true, "string", "Environment"), param("to", "query", true, "string", "Environment")], None, 200, ok("Diff", "Files and unified diff"), &[401, 404, 409, 503]) },
            "/api/environments/{env}/promote": { "post": op("Promote into an environment (202 when it waits for approval)", vec![env_p.clone()], Some("Promote"), 200, ok("Promotion", "Applied"), &[401, 403, 404, 409, 422, 503]) },
            "/api/environments/{env}/approve": { "post": op("Approve the promotion waiting in an environment (a different person than who asked)", vec![env_p.clone()], None, 200, ok("Promotion", "Applied"), &[401, 403, 404, 422, 503]) },
            "/api/environments/{env}/reject": { "post": op("Reject the promotion waiting in an environment", vec![env_p.clone()], None, 200, ok("Promotion", "Rejected"), &[401, 403, 404, 422]) },
            "/api/environments/{env}/rollback": { "post": op("Go back to the commit the environment ran before", vec![env_p], Some("Note"), 200, ok("Promotion", "Applied"), &[401, 403, 404, 422, 503]) },
            "/api/dags": { "get": op("DAGs of an environment with their latest run, next run and 30-day success", vec![env_q(), param("q", "query", false, "string", "Search"), param("tag", "query", false, "string", "Tag"), param("status", "query", false, "string", "failed | active | paused"), param("page", "query", false, "integer", "Page (50 per page)")], None, 200, ok("DagListing", "A page of DAGs"), READ) },
            "/api/dags/{dag}": { "get": op("A DAG: description, schedule, params, tasks, version, and how fresh its data is in each environment", vec![dag_p.clone(), env_q()], None, 200, ok("Dag", "The DAG"), READ) },
            "/api/dags/{dag}/runs": {
                "get": op("A DAG's runs, newest first", vec![dag_p.clone(), env_q(), param("state", "query", false, "string", "Run state"), param("before", "query", false, "string", "Logical date (RFC 3339): older runs"), param("limit", "query", false, "integer", "At most 500")], None, 200, ok("RunPage", "Runs"), READ),
                "post": op("Trigger a run", vec![dag_p.clone()], Some("Trigger"), 201, ok("Triggered", "Created"), WRITE)
            },
            "/api/dags/{dag}/pause": { "post": op("Pause a DAG in an environment", vec![dag_p.clone()], Some("EnvironmentRef"), 200, ok("Paused", "Paused"), WRITE) },
            "/api/dags/{dag}/unpause": { "post": op("Unpause a DAG in an environment", vec![dag_p], Some("EnvironmentRef"), 200, ok("Paused", "Unpaused"), WRITE) },
            "/api/runs/{run}": { "get": op("A run with its tasks and what each moved", vec![run_p.clone()], None, 200, ok("RunDetail", "The run"), READ) },
            "/api/runs/{run}/mark": { "post": op("Mark a run succeeded or failed", vec![run_p.clone()], Some("Mark"), 200, ok("Marked", "Marked"), WRITE) },
            "/api/runs/{run}/clear": { "post": op("Clear finished tasks so they run again", vec![run_p.clone()], Some("Clear"), 200, ok("Cleared", "Cleared"), WRITE) },
            "/api/runs/{run}/tasks/{task}/log": { "get": op("Log lines of a task's try, after a line id (poll for live logs)", vec![run_p.clone(), task_p.clone(), param("try", "query", false, "integer", "Try (default: the latest)"), param("after", "query", false, "integer", "Only lines after this id")], None, 200, ok("Log", "Lines"), READ) },
            "/api/runs/{run}/tasks/{task}/rows": { "get": op("A task's staged dataset or receipt: counts, columns, rejection reasons, and its first rows if the environment's `rows_visible_to` allows your role (otherwise `rows` is null and `rows_hidden` says why)", vec![run_p.clone(), task_p.clone(), param("kind", "query", false, "string", "output (default) or receipt"), param("limit", "query", false, "integer", "Rows, at most 1000; default 100")], None, 200, ok("DatasetRows", "The dataset"), READ) },
            "/api/runs/{run}/tasks/{task}/plan": { "get": op("A return's plan, recorded before it wrote (or by a preview run, instead): totals in words and numbers, and its records — key, what happens to it, each field's old → new value — a page at a time, if the environment's `rows_visible_to` allows your role (otherwise `records` is null and `records_hidden` says why)", vec![run_p.clone(), task_p.clone(), param("after", "query", false, "integer", "The `next_after` of the previous page"), param("limit", "query", false, "integer", "Records, at most 1000; default 100")], None, 200, ok("Plan", "The plan"), READ) },
            "/api/runs/{run}/tasks/{task}/revert": {
                "post": op("Queue a revert of a return: a worker writes back the values it overwrote, skipping records changed since unless `force` (admins)", vec![run_p.clone(), task_p.clone()], Some("RevertRequest"), 202, ok("Revert", "The queued job"), &[401, 403, 404, 409, 422]),
                "get": op("The newest revert job of a return task, with its progress", vec![run_p, task_p], None, 200, ok("Revert", "The job"), READ)
            },
            "/api/records/history": { "get": op("Every run that touched a record in an environment, newest first: when, DAG, run, task, each field's old → new value, the receipt's status, and whether it was reverted; `touches` is null if the environment's `rows_visible_to` names a role above yours", vec![env_q(), param("q", "query", true, "string", "The record: email=ann@example.com, id=1234 (its Marketo id), another lookup field (field=value), or a bare email"), param("limit", "query", false, "integer", "At most 1000; default 100")], None, 200, ok("RecordHistory", "The record's history"), READ) },
            "/api/checks": { "get": op("Latest result of every data check", vec![env_q()], None, 200, ok("Checks", "Checks"), &[401]) },
            "/api/usage": { "get": op("Show-back: an environment's MAP API calls, rows moved, runtime and staged storage per DAG and per day, priced at its `costs`", vec![param("env", "query", false, "string", "Environment; default the first (lowest) one"), param("days", "query", false, "integer", "Days back, 1 to 400; default 30")], None, 200, ok("Usage", "Usage"), &[401, 404]) },
            "/api/slos": { "get": op("Data SLOs: each check with an `slo`, its indicator over the period, error budget left and burn rates", vec![env_q()], None, 200, ok("Slos", "SLOs"), &[401]) },
            "/api/notifications": { "get": op("Notifications, newest first: channel, event, DAG, run, and what became of each (sent, suppressed with the reason, failed)", vec![param("limit", "query", false, "integer", "At most 1000")], None, 200, ok("Notifications", "Notifications"), &[401]) },
            "/api/audit": { "get": op("The audit trail, newest first", vec![param("actor", "query", false, "string", "Who"), param("action", "query", false, "string", "Action prefix"), param("env", "query", false, "string", "Environment"), param("dag", "query", false, "string", "DAG"), param("before", "query", false, "integer", "Event id: older events"), param("limit", "query", false, "integer", "At most 500")], None, 200, ok("Audit", "Events"), &[401]) }
        }
    })
}

pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}
