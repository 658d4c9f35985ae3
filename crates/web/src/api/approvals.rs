//! Returns waiting for approval of their plan: the list, and approve / reject.

use axum::extract::{Path, State};
use drover_store::ApprovalRow;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Body, Params, ok};
use crate::WebState;
use crate::auth::ApiUser;
use crate::error::Failure;
use crate::pages::parse_run;

/// A request as the API gives it, with its plan in words.
pub(crate) fn approval_json(a: &ApprovalRow) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or_else(|_| json!({ "id": a.id }));
    if let Some(o) = v.as_object_mut() {
        o.insert("plan".to_owned(), json!(a.totals()));
        o.insert("summary".to_owned(), json!(a.totals().describe()));
    }
    v
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    env: Option<String>,
}

/// Returns waiting for approval, oldest first.
pub(super) async fn list(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<ListQuery>,
) -> ApiResult {
    let rows = state
        .store()
        .pending_approvals(q.env.as_deref())
        .await
        .map_err(drover_engine::ops::OpError::from)?;
    ok(json!({ "approvals": rows.iter().map(approval_json).collect::<Vec<_>>() }))
}

/// Every approval request of a return task, newest first.
pub(super) async fn of_task(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path((run, task)): Path<(String, String)>,
) -> ApiResult {
    let (run, _ti) = crate::pages::find_task(&state, &run, &task).await?;
    let rows = state
        .store()
        .run_approvals(run.id)
        .await
        .map_err(drover_engine::ops::OpError::from)?;
    let rows: Vec<Value> = rows
        .iter()
        .filter(|a| a.task_id == task)
        .map(approval_json)
        .collect();
    ok(json!({ "approvals": rows }))
}

pub(super) async fn approve(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path((run, task)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_run(&run)?;
    let row = state.ops().approve_return(&user.actor, id, &task).await?;
    ok(approval_json(&row))
}

#[derive(Debug, Deserialize)]
pub(super) struct RejectBody {
    reason: String,
}

pub(super) async fn reject(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path((run, task)): Path<(String, String)>,
    Body(b): Body<RejectBody>,
) -> ApiResult {
    let id = parse_run(&run)?;
    if b.reason.trim().is_empty() {
        return Err(
            Failure::bad_request("give a `reason`: it goes into the task's error and log").into(),
        );
    }
    let row = state
        .ops()
        .reject_return(&user.actor, id, &task, &b.reason)
        .await?;
    ok(approval_json(&row))
}

/// The operations and schemas above, for the OpenAPI document.
pub(super) fn document(doc: &mut Value) {
    use super::openapi::{ok as ok_resp, op, param, path_p};
    let run_p = path_p("run", "Run id (UUID)");
    let task_p = path_p("task", "Task id");
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.insert("Approval".to_owned(), json!({ "type": "object", "required": ["id", "run_id", "task_id", "environment", "state", "plan", "digest"], "properties": {
            "id": { "type": "integer" }, "run_id": { "type": "string", "format": "uuid" }, "task_id": { "type": "string" }, "environment": { "type": "string" }, "dag_id": { "type": "string" },
            "try_number": { "type": "integer", "description": "The try that planned" },
            "digest": { "type": "string", "description": "Digest of the plan's content: the try after an approval writes only if its plan has the same digest, else it asks again" },
            "plan": { "type": "object", "properties": { "to_send": { "type": "integer" }, "creates": { "type": ["integer", "null"] }, "updates": { "type": ["integer", "null"] }, "unchanged": { "type": "integer", "description": "Unchanged and not sent" }, "withheld": { "type": "integer", "description": "Nulls withheld" }, "rejected": { "type": "integer", "description": "Rows without a lookup value" } } },
            "summary": { "type": "string" },
            "state": { "enum": ["pending", "approved", "rejected", "expired", "withdrawn"] },
            "requested_at": { "type": "string", "format": "date-time" }, "expires_at": { "type": "string", "format": "date-time" },
            "decided_by": { "type": ["string", "null"] }, "decided_at": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] } } }));
        schemas.insert("Approvals".to_owned(), json!({ "type": "object", "required": ["approvals"], "properties": { "approvals": { "type": "array", "items": { "$ref": "#/components/schemas/Approval" } } } }));
        schemas.insert("Reject".to_owned(), json!({ "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string", "description": "Why: it goes into the task's error and log" } } }));
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.insert("/api/approvals".to_owned(), json!({
            "get": op("Returns waiting for approval of their plan (environments with `returns: { require_approval: true }`), oldest first", vec![param("env", "query", false, "string", "Environment; default: all")], None, 200, ok_resp("Approvals", "Waiting returns"), &[401])
        }));
        paths.insert("/api/runs/{run}/tasks/{task}/approval".to_owned(), json!({
            "get": op("The approval requests of a return task, newest first", vec![run_p.clone(), task_p.clone()], None, 200, ok_resp("Approvals", "Requests"), &[401, 404])
        }));
        paths.insert("/api/runs/{run}/tasks/{task}/approve".to_owned(), json!({
            "post": op("Approve the plan of a return waiting for approval: it is queued again and writes if its plan is unchanged. Operators other than the DAG's last committer, and admins", vec![run_p.clone(), task_p.clone()], None, 200, ok_resp("Approval", "Approved"), &[401, 403, 404, 409])
        }));
        paths.insert("/api/runs/{run}/tasks/{task}/reject".to_owned(), json!({
            "post": op("Reject the plan of a return waiting for approval: the task fails with the reason, nothing is sent. Operators and admins", vec![run_p, task_p], Some("Reject"), 200, ok_resp("Approval", "Rejected"), &[401, 403, 404, 409, 422])
        }));
    }
}
