//! Recent runs across DAGs, filtered by environment, DAG and state.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_store::{RunFilter, RunRow, RunState};
use serde::Deserialize;

use super::Chrome;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::{Failure, PageError};
use crate::views;

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    env: Option<String>,
    dag: Option<String>,
    state: Option<String>,
}

pub(crate) struct Line {
    run: RunRow,
    took: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "runs.html")]
pub(crate) struct RunsPage {
    chrome: Chrome,
    envs: Vec<String>,
    env: String,
    dag: String,
    state: String,
    lines: Vec<Line>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<RunsQuery>,
) -> Result<RunsPage, PageError> {
    let envs = drover_engine::promotion::environments(state.store()).await?;
    let env = q.env.clone().filter(|e| !e.is_empty());
    let run_state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            RunState::parse(s).map_err(|_| Failure::bad_request(format!("no run state `{s}`")))?,
        ),
        None => None,
    };
    let runs = state
        .store()
        .list_runs(&RunFilter {
            dag_id: q.dag.clone().filter(|d| !d.is_empty()),
            environment: env.clone(),
            state: run_state,
            limit: 100,
        })
        .await?;
    Ok(RunsPage {
        chrome: Chrome::new(&user, "runs", env.as_deref()),
        envs: envs.into_iter().map(|e| e.name).collect(),
        env: env.unwrap_or_default(),
        dag: q.dag.unwrap_or_default(),
        state: q.state.unwrap_or_default(),
        lines: runs
            .into_iter()
            .map(|run| Line {
                took: views::took(&run.started_at, &run.finished_at),
                run,
            })
            .collect(),
    })
}
