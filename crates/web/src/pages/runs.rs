//! Recent runs across DAGs, filtered by environment, DAG and state.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_store::{RunFilter, RunOrder, RunRow, RunState};
use serde::Deserialize;

use super::Chrome;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::{Failure, PageError};
use crate::views::{self, url_encode};

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    env: Option<String>,
    dag: Option<String>,
    state: Option<String>,
    /// Runs older than this (RFC 3339) by the sort key: the next page.
    before: Option<String>,
    /// "ran" (default: by when they ran) or "logical" (by logical date).
    sort: Option<String>,
}

const PER_PAGE: i64 = 50;

pub(crate) struct Line {
    run: RunRow,
    took: String,
    /// What it did, and whether it succeeded with warnings.
    story: Option<drover_engine::story::RunStory>,
    /// "Ran Wed 2 Dec 02:00 New York · data for Tue 1 Dec".
    label: String,
    /// Logical date and interval in UTC.
    details: String,
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
    older: Option<String>,
    newer: bool,
    sort: &'static str,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<RunsQuery>,
) -> Result<RunsPage, PageError> {
    let envs = state.environments().await?;
    let env = q.env.clone().filter(|e| !e.is_empty());
    let run_state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            RunState::parse(s).map_err(|_| Failure::bad_request(format!("no run state `{s}`")))?,
        ),
        None => None,
    };
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => Some(
            chrono::DateTime::parse_from_rfc3339(b)
                .map_err(|_| Failure::bad_request(format!("`{b}` is not a time")))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let order = RunOrder::parse(q.sort.as_deref());
    let runs = state
        .store()
        .runs_page(
            &RunFilter {
                dag_id: q.dag.clone().filter(|d| !d.is_empty()),
                environment: env.clone(),
                state: run_state,
                limit: PER_PAGE,
            },
            before,
            order,
        )
        .await?;
    let older = (runs.len() as i64 == PER_PAGE)
        .then(|| runs.last())
        .flatten()
        .map(|r| {
            format!(
                "/runs?env={}&dag={}&state={}&sort={}&before={}",
                url_encode(env.as_deref().unwrap_or("")),
                url_encode(q.dag.as_deref().unwrap_or("")),
                url_encode(q.state.as_deref().unwrap_or("")),
                order.as_str(),
                url_encode(
                    &order
                        .cursor(r)
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                )
            )
        });
    let now = chrono::Utc::now();
    let mut stories = state.ops().stories(&runs).await?;
    let mut lines = Vec::with_capacity(runs.len());
    for run in runs {
        // The zone of the DAG version the run used; UTC when that version cannot be read.
        let tz = match state.ops().dags().get(run.version_id).await {
            Ok(dag) => dag.timezone,
            Err(_) => chrono_tz::Tz::UTC,
        };
        let (label, details) = views::local_time::run_words(now, &run, tz);
        lines.push(Line {
            took: views::took(&run.started_at, &run.finished_at),
            story: stories.remove(&run.id),
            label,
            details,
            run,
        });
    }
    Ok(RunsPage {
        chrome: Chrome::new(&user, "runs", env.as_deref()),
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env: env.unwrap_or_default(),
        dag: q.dag.unwrap_or_default(),
        state: q.state.unwrap_or_default(),
        older,
        newer: before.is_some(),
        lines,
        sort: order.as_str(),
    })
}
