//! A DAG's page: description, graph coloured by the latest run, the runs × tasks grid, the
//! version each environment runs, the run history page by page, and the trigger form.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use drover_engine::ops::{Action, OpError, TriggerRequest, manual_interval, parse_params};

use drover_store::{RunOrder, RunRow};
use serde::Deserialize;

use super::{Chrome, back, pick_env};
use crate::WebState;
use crate::auth::{CsrfForm, PageUser};
use crate::error::{Failure, PageError};
use crate::state::DagHistory;
use crate::views::{self, dag_info, url_encode};

/// Runs per page of history, and in the grid.
const RUNS_PER_PAGE: i64 = 25;

#[derive(Debug, Deserialize)]
pub(crate) struct DagQuery {
    env: Option<String>,
    state: Option<String>,
    /// Runs older than this (RFC 3339) by the sort key: the next page.
    before: Option<String>,
    done: Option<String>,
    /// "ran" (default: by when they ran) or "logical" (by logical date).
    sort: Option<String>,
}

pub(crate) struct VersionLine {
    env: String,
    file: String,
    commit: String,
    blob: String,
    paused: bool,
    current: bool,
}

pub(crate) struct ParamField {
    name: String,
    kind: String,
    /// The declared default, or what was typed when the form comes back refused.
    default: String,
    description: String,
    choices: Vec<String>,
    /// Why the typed value was refused.
    error: String,
}

pub(crate) struct RunLine {
    run: RunRow,
    took: String,
    /// What it did, and whether it succeeded with warnings.
    story: Option<drover_engine::story::RunStory>,
    cells: Vec<(String, String)>,
    /// "Ran Wed 2 Dec 02:00 New York · data for Tue 1 Dec".
    label: String,
    /// Logical date and data interval in UTC.
    details: String,
}

/// A refused trigger form: what was typed and why, field by field.
#[derive(Debug, Default)]
pub(crate) struct TriggerEcho {
    logical_date: String,
    date_error: String,
    params: HashMap<String, String>,
    param_errors: HashMap<String, String>,
    /// A refusal that is not about one field.
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dag.html")]
pub(crate) struct DagPage {
    chrome: Chrome,
    id: String,
    env: String,
    envs: Vec<String>,
    description: String,
    owner: String,
    tags: Vec<String>,
    schedule: String,
    paused: bool,
    graph: String,
    task_ids: Vec<String>,
    runs: Vec<RunLine>,
    versions: Vec<VersionLine>,
    params: Vec<ParamField>,
    can_trigger: bool,
    state: String,
    older: Option<String>,
    newer: bool,
    sort: &'static str,
    /// "tonight 02:00 New York, in 3 h"; empty without a schedule or when paused.
    next_run: String,
    next_run_utc: String,
    /// The trigger form's logical date as typed, and why it was refused.
    logical_date: String,
    date_error: String,
    trigger_error: String,
    /// The DAG's file in this environment fails to load (it runs its last good version).
    import_error: Option<crate::views::import_error::ImportBanner>,
    /// How fresh the DAG's data and its tasks' are here (those that declare `freshness`).
    freshness: Vec<crate::freshness::FreshnessLine>,
    /// The latest episodes of stale data here, newest first.
    episodes: Vec<crate::freshness::EpisodeLine>,
    /// Some of it is stale (the DAG may be paused).
    stale_while_paused: bool,
    /// Its events: the latest, how to send one, replay.
    events: super::events::DagEvents,
    /// The DAGs its datasets start here, and its refused dataset triggers.
    dataset_links: super::dataset_links::DagDatasetLinks,
}

/// Episodes of stale data listed on the page.
const EPISODES: i64 = 10;

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path(dag_id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DagQuery>,
) -> Result<DagPage, PageError> {
    let host = super::events::host_of(&headers);
    render(
        &state,
        &user,
        dag_id,
        q,
        TriggerEcho::default(),
        &host,
        super::events::RangeEcho::default(),
    )
    .await
}

/// The page of `dag_id` in `env` with a refused range replay form.
pub(crate) async fn render_page(
    state: &WebState,
    user: &crate::auth::CurrentUser,
    dag_id: String,
    env: &str,
    host: &str,
    range: super::events::RangeEcho,
) -> Result<DagPage, PageError> {
    let q = DagQuery {
        env: Some(env.to_owned()),
        state: None,
        before: None,
        done: None,
        sort: None,
    };
    render(state, user, dag_id, q, TriggerEcho::default(), host, range).await
}

async fn render(
    state: &WebState,
    user: &crate::auth::CurrentUser,
    dag_id: String,
    q: DagQuery,
    echo: TriggerEcho,
    host: &str,
    range: super::events::RangeEcho,
) -> Result<DagPage, PageError> {
    let order = RunOrder::parse(q.sort.as_deref());
    let store = state.store();
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref())
        .cloned()
        .ok_or_else(|| Failure::not_found("There are no environments yet."))?;
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => Some(
            DateTime::parse_from_rfc3339(b)
                .map_err(|_| Failure::bad_request(format!("`{b}` is not a time")))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let state_filter = q.state.clone().filter(|s| !s.is_empty());
    let key = (
        dag_id.clone(),
        env.name.clone(),
        state_filter.clone().unwrap_or_default(),
        format!(
            "{}|{}",
            order.as_str(),
            q.before.clone().unwrap_or_default()
        ),
    );
    let page = state
        .caches()
        .history
        .get_or_load(key, || async {
            let dag_env = store.dag_env(&dag_id, &env.name).await.map_err(|_| {
                Failure::not_found(format!(
                    "There is no DAG `{dag_id}` in {}. It may be new in a lower environment, or its file was removed.",
                    env.name
                ))
            })?;
            let runs = store
                .dag_runs_page(
                    &dag_id,
                    &env.name,
                    state_filter.as_deref(),
                    before,
                    RUNS_PER_PAGE,
                    order,
                )
                .await?;
            let ids: Vec<uuid::Uuid> = runs.iter().map(|r| r.id).collect();
            let cells = store.grid(&ids).await?;
            let mut versions = Vec::new();
            for e in envs.iter() {
                if let Ok(v) = store.dag_env(&dag_id, &e.name).await {
                    versions.push((e.name.clone(), store.dag_version(v.version_id).await?, v.paused));
                }
            }
            Ok::<_, Failure>(DagHistory {
                dag_env,
                runs,
                cells,
                versions,
                graph: std::sync::OnceLock::new(),
            })
        })
        .await?;
    let de = &page.dag_env;
    let dag = state.ops().dags().get(de.version_id).await?;
    let events = super::events::dag_events(state, user, &dag, &env, host, range).await?;
    let dataset_links = super::dataset_links::for_dag(store, &dag.id, &env.name).await?;
    let runs = &page.runs;
    let mut grid: HashMap<(uuid::Uuid, String), String> = HashMap::new();
    for c in &page.cells {
        grid.insert((c.run_id, c.task_id.clone()), c.state.clone());
    }
    let task_ids: Vec<String> = dag.tasks_in_order().map(|t| t.id.clone()).collect();
    let latest = runs.first().map(|r| r.id);
    // Laying out the graph is the page's dearest part: once per cached page.
    let graph = page
        .graph
        .get_or_init(|| {
            dag_info::graph(
                &dag,
                |t| latest.and_then(|r| grid.get(&(r, t.to_owned())).cloned()),
                |t| latest.map(|r| format!("/runs/{r}/tasks/{}", url_encode(t))),
            )
        })
        .clone();
    let older = if runs.len() as i64 == RUNS_PER_PAGE {
        runs.last().map(|r| {
            url_encode(
                &order
                    .cursor(r)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )
        })
    } else {
        None
    };
    let now = Utc::now();
    let mut stories = state.ops().stories(runs).await?;
    let runs = runs
        .iter()
        .cloned()
        .map(|run| {
            let (label, details) = views::local_time::run_words(now, &run, dag.timezone);
            RunLine {
                label,
                details,
                took: views::took(&run.started_at, &run.finished_at),
                story: stories.remove(&run.id),
                cells: task_ids
                    .iter()
                    .map(|t| {
                        (
                            t.clone(),
                            grid.get(&(run.id, t.clone()))
                                .cloned()
                                .unwrap_or_else(|| "none".to_owned()),
                        )
                    })
                    .collect(),
                run,
            }
        })
        .collect();
    let import_error = crate::views::import_error::for_dag(
        &store.import_errors(Some(&env.name)).await?,
        &dag_id,
        page.versions
            .iter()
            .find(|(e, _, _)| *e == env.name)
            .map(|(_, row, _)| row.path.as_str()),
    );
    let versions = page
        .versions
        .iter()
        .map(|(e, row, paused)| VersionLine {
            env: e.clone(),
            file: row.path.clone(),
            commit: row
                .commit_sha
                .as_deref()
                .map(views::short_sha)
                .unwrap_or("—")
                .to_owned(),
            blob: views::short_sha(&row.blob_id).to_owned(),
            paused: *paused,
            current: *e == env.name,
        })
        .collect();
    let params = dag
        .params
        .iter()
        .map(|p| ParamField {
            name: p.name.clone(),
            kind: serde_json::to_value(p.ty)
                .ok()
                .as_ref()
                .map(text_of)
                .unwrap_or_default(),
            default: echo
                .params
                .get(&p.name)
                .cloned()
                .unwrap_or_else(|| p.default.as_ref().map(text_of).unwrap_or_default()),
            description: p.description.clone().unwrap_or_default(),
            choices: p.choices.iter().map(text_of).collect(),
            error: echo.param_errors.get(&p.name).cloned().unwrap_or_default(),
        })
        .collect();
    let next = if de.paused {
        None
    } else {
        dag.schedule.as_ref().and_then(|s| s.next_after(now))
    };
    let freshness: Vec<crate::freshness::FreshnessLine> = store
        .freshness(&drover_engine::freshness::rules_of(&dag, &env.name))
        .await?
        .into_iter()
        .map(crate::freshness::FreshnessLine::new)
        .collect();
    let stale_while_paused = de.paused && freshness.iter().any(|f| f.state.stale);
    let episodes = store
        .stale_episodes(&env.name, &dag_id, EPISODES)
        .await?
        .iter()
        .map(crate::freshness::EpisodeLine::new)
        .collect();
    Ok(DagPage {
        freshness,
        episodes,
        stale_while_paused,
        next_run: next
            .map(|t| views::local_time::next_run(now, t, dag.timezone))
            .unwrap_or_default(),
        next_run_utc: next.map(views::local_time::utc).unwrap_or_default(),
        sort: order.as_str(),
        logical_date: echo.logical_date,
        date_error: echo.date_error,
        trigger_error: echo.error,
        chrome: Chrome::new(user, "dags", Some(&env.name)).with_done(q.done.as_deref()),
        can_trigger: user.actor.may(Action::Trigger, Some(&env)),
        id: dag_id,
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env: env.name.clone(),
        description: dag.description.clone(),
        owner: dag.owner.clone().unwrap_or_default(),
        tags: dag.tags.clone(),
        schedule: dag
            .schedule
            .as_ref()
            .map_or_else(|| "manual only".to_owned(), |s| s.in_words()),
        paused: de.paused,
        graph,
        task_ids,
        runs,
        versions,
        params,
        state: state_filter.unwrap_or_default(),
        older,
        newer: before.is_some(),
        import_error,
        events,
        dataset_links,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct TriggerForm {
    env: String,
    #[serde(default)]
    logical_date: String,
    #[serde(flatten)]
    rest: HashMap<String, String>,
}

pub(crate) async fn trigger(
    State(state): State<WebState>,
    Path(dag_id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm<TriggerForm>,
) -> Result<Response, PageError> {
    let f = form.form;
    let params: Vec<(String, String)> = f
        .rest
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("param.")
                .filter(|_| !v.trim().is_empty())
                .map(|name| (name.to_owned(), v.clone()))
        })
        .collect();
    let mut echo = TriggerEcho {
        logical_date: f.logical_date.clone(),
        params: f
            .rest
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("param.").map(|n| (n.to_owned(), v.clone())))
            .collect(),
        ..TriggerEcho::default()
    };
    // Each value is checked on its own first, so a refusal lands next to its field; the
    // trigger then checks them all again on the same code path.
    if let Ok(de) = state.store().dag_env(&dag_id, &f.env).await {
        let dag = state.ops().dags().get(de.version_id).await?;
        for pair in &params {
            if let Err(OpError::Invalid(m)) = parse_params(&dag, std::slice::from_ref(pair)) {
                if dag.params.iter().any(|p| p.name == pair.0) {
                    echo.param_errors.insert(pair.0.clone(), m);
                } else {
                    // No field to put it next to: above the form.
                    echo.error = m;
                }
            }
        }
        let date = Some(f.logical_date.as_str()).filter(|d| !d.trim().is_empty());
        if let Err(OpError::Invalid(m)) = manual_interval(&dag, date, Utc::now()) {
            echo.date_error = m;
        }
    }
    let result =
        if echo.param_errors.is_empty() && echo.date_error.is_empty() && echo.error.is_empty() {
            state
                .ops()
                .trigger(
                    &form.user.actor,
                    &TriggerRequest {
                        dag_id: dag_id.clone(),
                        environment: f.env.clone(),
                        params,
                        logical_date: Some(f.logical_date).filter(|d| !d.trim().is_empty()),
                        preview: false,
                    },
                )
                .await
                .map_err(|e| match e {
                    OpError::Invalid(m) => {
                        echo.error = m;
                        None
                    }
                    other => Some(other),
                })
        } else {
            Err(None)
        };
    match result {
        Ok(id) => Ok(back(&format!("/runs/{id}"), "triggered").into_response()),
        Err(Some(e)) => Err(e.into()),
        Err(None) => {
            let q = DagQuery {
                env: Some(f.env),
                state: None,
                before: None,
                done: None,
                sort: None,
            };
            let host = super::events::host_of(&headers);
            let page = render(
                &state,
                &form.user,
                dag_id,
                q,
                echo,
                &host,
                super::events::RangeEcho::default(),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// The interval a manual run for `date` would cover, for the trigger form to show before it
/// is sent: the same rule the trigger uses.
#[derive(Debug, Deserialize)]
pub(crate) struct IntervalQuery {
    env: String,
    #[serde(default)]
    date: String,
}

pub(crate) async fn interval(
    State(state): State<WebState>,
    PageUser(_user): PageUser,
    Path(dag_id): Path<String>,
    Query(q): Query<IntervalQuery>,
) -> Response {
    let answer = async {
        let de = state.store().dag_env(&dag_id, &q.env).await.map_err(|_| {
            OpError::NotFound(format!("DAG `{dag_id}` is not known in `{}`", q.env))
        })?;
        let dag = state
            .ops()
            .dags()
            .get(de.version_id)
            .await
            .map_err(OpError::from)?;
        let date = Some(q.date.as_str()).filter(|d| !d.trim().is_empty());
        let now = Utc::now();
        let i = manual_interval(&dag, date, now)?;
        Ok::<_, OpError>(serde_json::json!({
            "logical_date": i.logical_date,
            "interval_start": i.start,
            "interval_end": i.end,
            "words": views::local_time::interval_words(now, i.start, i.end, dag.timezone),
        }))
    }
    .await;
    match answer {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => {
            let status = match &e {
                OpError::NotFound(_) => StatusCode::NOT_FOUND,
                OpError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let message = if status.is_server_error() {
                tracing::error!(error.message = %e, "interval preview");
                "the interval could not be worked out".to_owned()
            } else {
                e.to_string()
            };
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PauseForm {
    env: String,
    #[serde(default)]
    back: String,
}

async fn set_paused(
    state: &WebState,
    dag_id: &str,
    form: CsrfForm<PauseForm>,
    paused: bool,
) -> Result<Redirect, PageError> {
    let f = form.form;
    state
        .ops()
        .set_paused(&form.user.actor, dag_id, &f.env, paused)
        .await?;
    let path = if f.back == "list" {
        format!("/dags?env={}", url_encode(&f.env))
    } else {
        format!("/dags/{}?env={}", url_encode(dag_id), url_encode(&f.env))
    };
    Ok(back(&path, if paused { "paused" } else { "unpaused" }))
}

pub(crate) async fn pause(
    State(state): State<WebState>,
    Path(dag_id): Path<String>,
    form: CsrfForm<PauseForm>,
) -> Result<Redirect, PageError> {
    set_paused(&state, &dag_id, form, true).await
}

pub(crate) async fn unpause(
    State(state): State<WebState>,
    Path(dag_id): Path<String>,
    form: CsrfForm<PauseForm>,
) -> Result<Redirect, PageError> {
    set_paused(&state, &dag_id, form, false).await
}
