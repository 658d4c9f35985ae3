//! A task of a run: its tries and the log of one try, live while it runs (the page polls the
//! API for new lines), and the log as a download.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use drover_store::{RunRow, StoredLogLine, TaskInstanceRow, TaskTryRow};
use serde::Deserialize;

use super::Chrome;
use super::run::parse_run;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::{Failure, PageError};
use crate::views;

#[derive(Debug, Deserialize)]
pub(crate) struct TryQuery {
    #[serde(rename = "try")]
    try_number: Option<i32>,
}

#[derive(Template, WebTemplate)]
#[template(path = "task.html")]
pub(crate) struct TaskPage {
    chrome: Chrome,
    run: RunRow,
    ti: TaskInstanceRow,
    tries: Vec<TaskTryRow>,
    shown_try: i32,
    lines: Vec<StoredLogLine>,
    last_id: i64,
    live: bool,
    headline: String,
}

pub(crate) async fn find_task(
    state: &WebState,
    run: &str,
    task: &str,
) -> Result<(RunRow, TaskInstanceRow), Failure> {
    let run = state.store().get_run(parse_run(run)?).await?;
    let ti = state
        .store()
        .task_instances(run.id)
        .await?
        .into_iter()
        .find(|t| t.task_id == task)
        .ok_or_else(|| Failure::not_found(format!("This run has no task `{task}`.")))?;
    Ok((run, ti))
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<TryQuery>,
) -> Result<TaskPage, PageError> {
    let (run, ti) = find_task(&state, &run, &task).await?;
    let tries = state.store().task_tries(ti.id).await?;
    let shown_try = q.try_number.unwrap_or(ti.try_number.max(1));
    let lines = state.store().read_logs(ti.id, Some(shown_try), 0).await?;
    let last_id = lines.last().map_or(0, |l| l.id);
    let live = shown_try == ti.try_number
        && matches!(
            ti.state.0.as_str(),
            "running" | "queued" | "up_for_retry" | "pending"
        );
    Ok(TaskPage {
        chrome: Chrome::new(&user, "runs", Some(&run.environment)),
        headline: ti
            .last_error
            .as_deref()
            .map(views::headline)
            .unwrap_or_default(),
        run,
        ti,
        tries,
        shown_try,
        lines,
        last_id,
        live,
    })
}

/// The log of one try as plain text.
pub(crate) async fn download(
    State(state): State<WebState>,
    PageUser(_user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<TryQuery>,
) -> Result<Response, PageError> {
    let (run, ti) = find_task(&state, &run, &task).await?;
    let try_number = q.try_number.unwrap_or(ti.try_number.max(1));
    let mut text = String::new();
    let mut after = 0;
    loop {
        let lines = state
            .store()
            .read_logs(ti.id, Some(try_number), after)
            .await?;
        let Some(last) = lines.last() else { break };
        after = last.id;
        for l in &lines {
            text.push_str(&format!(
                "{} {:<6} {}\n",
                l.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                l.stream,
                l.line
            ));
        }
    }
    let name = format!(
        "{}-{}-{}-try{try_number}.log",
        run.dag_id,
        run.logical_date.format("%Y%m%dT%H%M"),
        ti.task_id
    )
    .replace(
        |c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "_",
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response())
}
