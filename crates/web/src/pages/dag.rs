//! A DAG's page: description, graph coloured by the latest run, the runs × tasks grid, the
//! version each environment runs, the run history page by page, and the trigger form.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use chrono::{DateTime, Utc};
use drover_engine::ops::{Action, TriggerRequest};

use drover_store::RunRow;
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
    /// Runs older than this logical date (RFC 3339): the next page.
    before: Option<String>,
    done: Option<String>,
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
    default: String,
    description: String,
    choices: Vec<String>,
}

pub(crate) struct RunLine {
    run: RunRow,
    took: String,
    cells: Vec<(String, String)>,
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
    /// The DAG's file in this environment fails to load (it runs its last good version).
    import_error: Option<crate::views::import_error::ImportBanner>,
}

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
    Query(q): Query<DagQuery>,
) -> Result<DagPage, PageError> {
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
        q.before.clone().unwrap_or_default(),
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
                &r.logical_date
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )
        })
    } else {
        None
    };
    let runs = runs
        .iter()
        .cloned()
        .map(|run| RunLine {
            took: views::took(&run.started_at, &run.finished_at),
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
            default: p.default.as_ref().map(text_of).unwrap_or_default(),
            description: p.description.clone().unwrap_or_default(),
            choices: p.choices.iter().map(text_of).collect(),
        })
        .collect();
    Ok(DagPage {
        chrome: Chrome::new(&user, "dags", Some(&env.name)).with_done(q.done.as_deref()),
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
    form: CsrfForm<TriggerForm>,
) -> Result<Redirect, PageError> {
    let f = form.form;
    let params = f
        .rest
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("param.")
                .filter(|_| !v.trim().is_empty())
                .map(|name| (name.to_owned(), v))
        })
        .collect();
    let id = state
        .ops()
        .trigger(
            &form.user.actor,
            &TriggerRequest {
                dag_id,
                environment: f.env,
                params,
                logical_date: Some(f.logical_date).filter(|d| !d.trim().is_empty()),
            },
        )
        .await?;
    Ok(back(&format!("/runs/{id}"), "triggered"))
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
