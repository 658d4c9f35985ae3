//! The JSON API: everything the pages show and do, for scripts and other tools. Described by
//! the OpenAPI document at `/api/openapi.json`; errors are `{"error": {status, code,
//! message}}` with 401/403/404/409/422/503.

mod approvals;
mod events;
mod openapi;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use drover_engine::ops::{Action, TriggerRequest, role_name};
use drover_engine::promotion::PromotionOutcome;
use drover_store::{AuditFilter, RunState};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::WebState;
use crate::auth::ApiUser;
use crate::error::{ApiError, Failure};
use crate::listing::{DagFilter, cached_list_dags};
use crate::pages::parse_run;

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/me", get(me))
        .route("/environments", get(environments))
        .route("/environments/diff", get(diff))
        .route("/environments/{env}/promote", post(promote))
        .route("/environments/{env}/approve", post(approve))
        .route("/environments/{env}/reject", post(reject))
        .route("/environments/{env}/rollback", post(rollback))
        .route("/dags", get(dags))
        .route("/dags/{dag}", get(dag))
        .route("/dags/{dag}/runs", get(dag_runs).post(trigger))
        .route("/dags/{dag}/pause", post(pause))
        .route("/dags/{dag}/unpause", post(unpause))
        .route("/dags/{dag}/events", get(events::list))
        .route("/dags/{dag}/events/replay", post(events::replay_range))
        .route("/events/{event}", get(events::show))
        .route("/events/{event}/replay", post(events::replay_one))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/mark", post(mark))
        .route("/runs/{run}/clear", post(clear))
        .route("/runs/{run}/tasks/{task}/log", get(log))
        .route("/runs/{run}/tasks/{task}/rows", get(rows))
        .route("/runs/{run}/tasks/{task}/plan", get(plan))
        .route(
            "/runs/{run}/tasks/{task}/revert",
            post(revert).get(revert_status),
        )
        .route("/records/history", get(record_history))
        .route("/approvals", get(approvals::list))
        .route("/runs/{run}/tasks/{task}/approval", get(approvals::of_task))
        .route("/runs/{run}/tasks/{task}/approve", post(approvals::approve))
        .route("/runs/{run}/tasks/{task}/reject", post(approvals::reject))
        .route("/checks", get(checks))
        .route("/slos", get(slos))
        .route("/usage", get(usage))
        .route("/audit", get(audit))
        .route("/notifications", get(notifications))
        .fallback(crate::error::api_not_found)
}

type ApiResult = Result<Response, ApiError>;

/// A JSON body that may be left out (then `T::default()`).
#[derive(Debug)]
struct OptionalBody<T>(T);

impl<T: DeserializeOwned + Default> FromRequest<WebState> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError(Failure::bad_request(e.body_text())))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalBody)
            .map_err(|e| {
                ApiError(Failure::bad_request(format!(
                    "the JSON body is invalid: {e}"
                )))
            })
    }
}

/// Query parameters whose problems answer in the API's error shape (422), not as plain text.
#[derive(Debug)]
struct Params<T>(T);

impl<T: DeserializeOwned + Send> FromRequestParts<WebState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e| {
                ApiError(Failure::bad_request(format!(
                    "the query string is invalid: {}",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                )))
            })
    }
}

/// A JSON body whose problems answer in the API's error shape (422).
#[derive(Debug)]
struct Body<T>(T);

impl<T: DeserializeOwned> FromRequest<WebState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError(Failure::bad_request(match e {
                JsonRejection::MissingJsonContentType(_) => {
                    "send the body as JSON with Content-Type: application/json".to_owned()
                }
                other => other.body_text(),
            }))),
        }
    }
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

async fn me(ApiUser(user): ApiUser) -> ApiResult {
    ok(json!({
        "name": user.name(),
        "role": role_name(user.actor.role),
        "environment_roles": user.actor.environment_roles.iter()
            .map(|(e, r)| (e.clone(), Value::from(role_name(*r)))).collect::<serde_json::Map<_, _>>(),
    }))
}

async fn environments(State(state): State<WebState>, ApiUser(user): ApiUser) -> ApiResult {
    let store = state.store();
    let mut out = Vec::new();
    for env in state.environments().await?.iter() {
        out.push(json!({
            "name": env.name,
            "order": env.order,
            "branch": env.branch,
            "current": store.current_deployment(&env.name).await?,
            "pending_promotion": store.pending_promotion(&env.name).await?,
            "history": store.deployments(&env.name, 20).await?,
            "you_may_promote": user.actor.may(Action::Promote, Some(env)),
            "you_may_approve": user.actor.may(Action::Approve, Some(env)),
        }));
    }
    ok(json!({ "environments": out }))
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: String,
    to: String,
}

async fn diff(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<DiffQuery>,
) -> ApiResult {
    ok(serde_json::to_value(state.ops().diff(&q.from, &q.to).await?).unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
struct PromoteBody {
    from: Option<String>,
    commit: Option<String>,
    note: Option<String>,
}

async fn promote(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(env): Path<String>,
    OptionalBody(b): OptionalBody<PromoteBody>,
) -> ApiResult {
    let outcome = state
        .ops()
        .promote(
            &user.actor,
            &env,
            b.from.as_deref(),
            b.commit.as_deref(),
            b.note.as_deref(),
        )
        .await?;
    Ok(outcome_response(outcome))
}

fn outcome_response(outcome: PromotionOutcome) -> Response {
    match outcome {
        PromotionOutcome::Applied { commit, changed } => (
            StatusCode::OK,
            Json(json!({ "state": "applied", "commit": commit, "changed_dags": changed })),
        )
            .into_response(),
        PromotionOutcome::AwaitingApproval { request, commit } => (
            StatusCode::ACCEPTED,
            Json(json!({ "state": "awaiting_approval", "request": request, "commit": commit })),
        )
            .into_response(),
    }
}

async fn approve(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(env): Path<String>,
) -> ApiResult {
    Ok(outcome_response(
        state.ops().approve(&user.actor, &env).await?,
    ))
}

async fn reject(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(env): Path<String>,
) -> ApiResult {
    state.ops().reject(&user.actor, &env).await?;
    ok(json!({ "state": "rejected" }))
}

#[derive(Debug, Default, Deserialize)]
struct NoteBody {
    note: Option<String>,
}

async fn rollback(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(env): Path<String>,
    OptionalBody(b): OptionalBody<NoteBody>,
) -> ApiResult {
    Ok(outcome_response(
        state
            .ops()
            .rollback(&user.actor, &env, b.note.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct EnvQuery {
    env: Option<String>,
    #[serde(flatten)]
    filter: DagFilter,
}

async fn env_or_first(state: &WebState, env: Option<&str>) -> Result<String, Failure> {
    let envs = state.environments().await?;
    crate::pages::pick_env(&envs, env)
        .filter(|e| env.is_none_or(|asked| asked == e.name))
        .map(|e| e.name.clone())
        .ok_or_else(|| Failure::not_found(format!("no environment `{}`", env.unwrap_or(""))))
}

async fn dags(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<EnvQuery>,
) -> ApiResult {
    let env = env_or_first(&state, q.env.as_deref()).await?;
    let listing = cached_list_dags(&state, &env, &q.filter).await?;
    ok(serde_json::to_value(&*listing).unwrap_or_default())
}

async fn dag(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path(dag_id): Path<String>,
    Params(q): Params<EnvQuery>,
) -> ApiResult {
    let env = env_or_first(&state, q.env.as_deref()).await?;
    let de = state.store().dag_env(&dag_id, &env).await?;
    let dag = state.ops().dags().get(de.version_id).await?;
    let version = state.store().dag_version(de.version_id).await?;
    let freshness =
        drover_engine::freshness::of_dag(state.store(), state.ops().dags(), &dag_id).await?;
    ok(json!({
        "id": dag.id,
        "environment": env,
        "description": dag.description,
        "owner": dag.owner,
        "tags": dag.tags,
        "schedule": dag.schedule.as_ref().map(|s| s.in_words()),
        "timezone": dag.timezone.name(),
        "paused": de.paused,
        "version": { "id": version.id, "path": version.path, "commit": version.commit_sha, "blob": version.blob_id },
        "params": dag.params.iter().map(|p| json!({
            "name": p.name, "type": p.ty, "default": p.default, "description": p.description, "choices": p.choices,
        })).collect::<Vec<_>>(),
        "tasks": dag.tasks_in_order().map(|t| json!({
            "id": t.id,
            "kind": t.kind.name(),
            "depends_on": t.depends_on,
        })).collect::<Vec<_>>(),
        "freshness": crate::freshness::api_value(&freshness),
    }))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    env: Option<String>,
    state: Option<String>,
    before: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

async fn dag_runs(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path(dag_id): Path<String>,
    Params(q): Params<RunsQuery>,
) -> ApiResult {
    let env = env_or_first(&state, q.env.as_deref()).await?;
    let limit = q.limit.unwrap_or(25).clamp(1, 500);
    let runs = state
        .store()
        .dag_runs_page(
            &dag_id,
            &env,
            q.state.as_deref(),
            q.before,
            limit,
            drover_store::RunOrder::LogicalDate,
        )
        .await?;
    let next_before = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.logical_date))
        .flatten();
    let stories = state.ops().stories(&runs).await?;
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| run_json(r, stories.get(&r.id)))
        .collect();
    ok(json!({ "runs": runs, "next_before": next_before }))
}

#[derive(Debug, Deserialize)]
struct TriggerBody {
    environment: String,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    logical_date: Option<String>,
}

async fn trigger(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(dag_id): Path<String>,
    Body(b): Body<TriggerBody>,
) -> ApiResult {
    let params = b
        .params
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let id = state
        .ops()
        .trigger(
            &user.actor,
            &TriggerRequest {
                dag_id,
                environment: b.environment,
                params,
                logical_date: b.logical_date,
                preview: false,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "run_id": id }))).into_response())
}

#[derive(Debug, Deserialize)]
struct EnvBody {
    environment: String,
}

/// Pause (`paused`) or unpause a DAG in the body's environment.
async fn set_paused(
    state: &WebState,
    user: &crate::auth::CurrentUser,
    dag_id: &str,
    environment: &str,
    paused: bool,
) -> ApiResult {
    state
        .ops()
        .set_paused(&user.actor, dag_id, environment, paused)
        .await?;
    ok(json!({ "paused": paused }))
}

async fn pause(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(dag_id): Path<String>,
    Body(b): Body<EnvBody>,
) -> ApiResult {
    set_paused(&state, &user, &dag_id, &b.environment, true).await
}

async fn unpause(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(dag_id): Path<String>,
    Body(b): Body<EnvBody>,
) -> ApiResult {
    set_paused(&state, &user, &dag_id, &b.environment, false).await
}

async fn run(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path(run): Path<String>,
) -> ApiResult {
    let store = state.store();
    let run = store.get_run(parse_run(&run)?).await?;
    let tasks = store.task_instances(run.id).await?;
    let metrics: std::collections::HashMap<String, drover_store::TryMetrics> =
        store.run_metrics(run.id).await?.into_iter().collect();
    let tasks: Vec<Value> = tasks
        .into_iter()
        .map(|t| {
            let m = metrics.get(&t.task_id).copied().unwrap_or_default();
            json!({
                "task_id": t.task_id,
                "state": t.state,
                "try_number": t.try_number,
                "max_tries": t.max_tries,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "error": t.last_error,
                "rows_in": m.rows_in, "rows_out": m.rows_out, "rows_rejected": m.rows_rejected,
                "api_calls": m.api_calls, "bytes_moved": m.bytes_moved,
                "deadline_at": t.deadline_at, "deadline_state": t.deadline_state,
            })
        })
        .collect();
    let story = state.ops().story(&run).await?;
    ok(json!({ "run": run_json(&run, Some(&story)), "tasks": tasks }))
}

/// A run as the API gives it: the stored run with its `outcome` (`warning` for a run that
/// succeeded with problems), its one-sentence `summary` and its `problems`.
fn run_json(run: &drover_store::RunRow, story: Option<&drover_engine::story::RunStory>) -> Value {
    let mut v = serde_json::to_value(run).unwrap_or_else(|_| json!({ "id": run.id }));
    if let (Some(story), Some(o)) = (story, v.as_object_mut()) {
        o.insert("outcome".to_owned(), json!(story.outcome(run.state)));
        o.insert("summary".to_owned(), json!(story.sentence));
        o.insert("problems".to_owned(), json!(story.problems));
    }
    v
}

#[derive(Debug, Deserialize)]
struct MarkBody {
    state: String,
}

async fn mark(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(run): Path<String>,
    Body(b): Body<MarkBody>,
) -> ApiResult {
    let id = parse_run(&run)?;
    let to = RunState::parse(&b.state)
        .map_err(|_| Failure::bad_request("state must be success or failed"))?;
    state.ops().mark(&user.actor, id, to).await?;
    ok(json!({ "state": to }))
}

#[derive(Debug, Deserialize)]
struct ClearBody {
    tasks: Vec<String>,
}

async fn clear(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path(run): Path<String>,
    Body(b): Body<ClearBody>,
) -> ApiResult {
    let id = parse_run(&run)?;
    if b.tasks.is_empty() {
        return Err(Failure::bad_request("name at least one task to clear").into());
    }
    let cleared = state.ops().clear(&user.actor, id, &b.tasks).await?;
    ok(json!({ "cleared": cleared }))
}

#[derive(Debug, Default, Deserialize)]
struct RevertBody {
    #[serde(default)]
    force: bool,
}

/// Queue a revert job: 202 with the job; its progress at the GET of the same path.
async fn revert(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path((run, task)): Path<(String, String)>,
    Body(b): Body<RevertBody>,
) -> ApiResult {
    let id = parse_run(&run)?;
    let job = state.ops().revert(&user.actor, id, &task, b.force).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(job).unwrap_or_default()),
    )
        .into_response())
}

async fn revert_status(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path((run, task)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_run(&run)?;
    let job = state
        .ops()
        .store()
        .latest_revert(id, &task)
        .await
        .map_err(drover_engine::ops::OpError::from)?
        .ok_or_else(|| {
            drover_engine::ops::OpError::NotFound(format!("no revert of `{task}` in this run"))
        })?;
    ok(serde_json::to_value(job).unwrap_or_default())
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(rename = "try")]
    try_number: Option<i32>,
    after: Option<i64>,
}

async fn log(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Path((run, task)): Path<(String, String)>,
    Params(q): Params<LogQuery>,
) -> ApiResult {
    let (_run, ti) = crate::pages::find_task(&state, &run, &task).await?;
    let try_number = q.try_number.unwrap_or(ti.try_number.max(1));
    let lines = state
        .store()
        .read_logs(ti.id, Some(try_number), q.after.unwrap_or(0))
        .await?;
    let next_after = lines.last().map_or(q.after.unwrap_or(0), |l| l.id);
    ok(json!({
        "task_state": ti.state,
        "try_number": try_number,
        "current_try": ti.try_number,
        "lines": lines,
        "next_after": next_after,
    }))
}

#[derive(Debug, Deserialize)]
struct RowsQuery {
    kind: Option<String>,
    limit: Option<i64>,
}

/// A task's staged dataset (or receipt): counts and columns for everyone, its first rows for
/// those the environment's `rows_visible_to` allows (others get `rows: null` and
/// `rows_hidden` saying why), a receipt's rejected rows by reason.
async fn rows(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path((run, task)): Path<(String, String)>,
    Params(q): Params<RowsQuery>,
) -> ApiResult {
    let kind = match q.kind.as_deref() {
        None | Some("output") => "output",
        Some("receipt") => "receipt",
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "kind must be output or receipt, not `{other}`"
            ))
            .into());
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(0, 1000);
    let run = state.store().get_run(parse_run(&run)?).await?;
    let dataset = state
        .store()
        .dataset(run.id, &task, kind)
        .await?
        .ok_or_else(|| Failure::not_found(format!("task `{task}` of this run staged no {kind}")))?;
    let env = state.ops().environment(&run.environment).await?;
    let (rows, hidden) = match dataset.dropped_at {
        Some(_) => (
            None,
            Some("the rows were dropped after the environment's retention period".to_owned()),
        ),
        None => match crate::row_access::rows(&state, &user.actor, &env, &dataset, false, limit)
            .await?
        {
            crate::row_access::Rows::Shown(p) => (Some(p.rows), None),
            crate::row_access::Rows::Hidden(why) => (None, Some(why)),
            crate::row_access::Rows::Unavailable => (
                None,
                Some("dataset previews are not available from this Drover process".to_owned()),
            ),
        },
    };
    let reasons: Vec<Value> = crate::row_access::rejection_reasons(&state, &env, &dataset)
        .await?
        .into_iter()
        .map(|(reason, rows)| json!({ "reason": reason, "rows": rows }))
        .collect();
    ok(json!({
        "run_id": dataset.run_id,
        "task_id": dataset.task_id,
        "kind": dataset.kind,
        "environment": dataset.environment,
        "row_count": dataset.row_count,
        "columns": dataset.columns.0,
        "expires_at": dataset.expires_at,
        "dropped_at": dataset.dropped_at,
        "rows": rows,
        "rows_hidden": hidden,
        "rejected_reasons": reasons,
    }))
}

#[derive(Debug, Deserialize)]
struct PlanQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// A return's plan: its totals for everyone; its records, a page at a time, for those the
/// environment's `rows_visible_to` allows (others get `records: null` and `records_hidden`
/// saying why).
async fn plan(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Path((run, task)): Path<(String, String)>,
    Params(q): Params<PlanQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100).clamp(0, 1000);
    let run = state.store().get_run(parse_run(&run)?).await?;
    let plan = state
        .store()
        .latest_return_plan(run.id, &task)
        .await?
        .ok_or_else(|| {
            Failure::not_found(format!(
                "task `{task}` of this run recorded no plan: only a return records one, when it runs"
            ))
        })?;
    let env = state.ops().environment(&run.environment).await?;
    let v = match crate::pages::plan::records(&state, &user.actor, &env, &plan, q.after, limit + 1)
        .await?
    {
        crate::pages::plan::Records::Shown(mut r) => {
            let more = r.len() as i64 > limit;
            r.truncate(usize::try_from(limit).unwrap_or(0));
            let next = more.then(|| r.last().map(|l| l.ord)).flatten();
            plan.to_json(Some(&r), None, next)
        }
        crate::pages::plan::Records::Hidden(why) => plan.to_json(None, Some(&why), None),
    };
    ok(v)
}

#[derive(Debug, Deserialize)]
struct RecordHistoryQuery {
    env: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

/// Every run that touched a record, newest first (the record history index). Where the
/// environment's `rows_visible_to` does not allow the caller, `touches` is null and
/// `rows_hidden` says why: a record's values, and whether it was touched, are lead data.
async fn record_history(
    State(state): State<WebState>,
    ApiUser(user): ApiUser,
    Params(q): Params<RecordHistoryQuery>,
) -> ApiResult {
    let env_name = env_or_first(&state, q.env.as_deref()).await?;
    let env = state.ops().environment(&env_name).await?;
    let Some(text) = q.q.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(Failure::bad_request(
            "say which record with q, e.g. q=email=ann@example.com or q=id=1234",
        )
        .into());
    };
    let found =
        crate::record_history::search(&state, &user.actor, &env, text, q.limit.unwrap_or(100))
            .await?;
    ok(json!({
        "environment": env.name,
        "field": found.query.field,
        "value": found.query.value,
        "touches": found.touches.as_ref().map(|ts| ts.iter().map(drover_store::RecordTouch::as_json).collect::<Vec<_>>()),
        "rows_hidden": found.hidden,
        "more": found.more,
    }))
}

#[derive(Debug, Deserialize)]
struct ChecksQuery {
    env: Option<String>,
}

async fn checks(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<ChecksQuery>,
) -> ApiResult {
    let latest = state.store().latest_checks(q.env.as_deref()).await?;
    let out: Vec<Value> = latest
        .into_iter()
        .map(|c| {
            let (colour, verdict) = crate::pages::check_colour(&c);
            json!({ "result": c, "status": colour, "verdict": verdict })
        })
        .collect();
    ok(json!({ "checks": out }))
}

/// The data SLOs of an environment (or all) and where their error budgets stand.
async fn slos(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<ChecksQuery>,
) -> ApiResult {
    let lines = crate::slos::slo_lines(&state, q.env.as_deref()).await?;
    ok(json!({ "slos": lines }))
}

#[derive(Debug, Deserialize)]
struct UsageQuery {
    env: Option<String>,
    days: Option<i64>,
}

/// Show-back: an environment's use per DAG and per day, priced.
async fn usage(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<UsageQuery>,
) -> ApiResult {
    let env = match q.env {
        Some(e) => e,
        None => state
            .environments()
            .await?
            .first()
            .map(|e| e.name.clone())
            .unwrap_or_default(),
    };
    let u = crate::usage::usage(&state, &env, q.days.unwrap_or(30)).await?;
    let totals = |t: &crate::usage::UsageTotals| serde_json::to_value(t).unwrap_or_default();
    ok(json!({
        "environment": u.environment,
        "days": u.days,
        "costs": u.costs,
        "total": totals(&u.total),
        "dags": u.dags.iter().map(|(d, t)| json!({ "dag_id": d, "usage": totals(t) })).collect::<Vec<_>>(),
        "per_day": u.per_day.iter().map(|(d, t)| json!({ "day": d, "usage": totals(t) })).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    env: Option<String>,
    dag: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn notifications(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<LimitQuery>,
) -> ApiResult {
    let list = state.store().notifications(q.limit.unwrap_or(100)).await?;
    ok(json!({ "notifications": list }))
}

async fn audit(
    State(state): State<WebState>,
    ApiUser(_user): ApiUser,
    Params(q): Params<AuditQuery>,
) -> ApiResult {
    let events = state
        .store()
        .audit_page(&AuditFilter {
            actor: q.actor,
            action: q.action,
            environment: q.env,
            dag_id: q.dag,
            before_id: q.before,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    ok(json!({ "events": events }))
}
