//! A run's page: state, interval, version, trigger; what went wrong in plain words first; the
//! timeline; per task what it moved; return receipts' rejected rows; dataset previews; and
//! the operations (mark, clear, revert).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use drover_engine::ops::Action;
use drover_store::{DatasetPreview, DatasetRow, RunRow, RunState, TaskInstanceRow, TryMetrics};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, back};
use crate::WebState;
use crate::auth::{CsrfForm, PageUser};
use crate::error::{Failure, PageError};
use crate::row_access::{self, Rows};
use crate::views::graph_svg::{GanttBar, gantt_svg};
use crate::views::{self, dag_info, format::thousands};

pub(crate) fn parse_run(text: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text).map_err(|_| Failure::not_found(format!("`{text}` is not a run id")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunQuery {
    done: Option<String>,
}

pub(crate) struct TaskLine {
    ti: TaskInstanceRow,
    kind: &'static str,
    took: String,
    rows_in: String,
    rows_out: String,
    rejected: String,
    calls: String,
    has_receipt: bool,
    has_output: bool,
    headline: String,
    /// What Clear also runs again: the tasks downstream of this one, by name.
    downstream: String,
}

pub(crate) struct Receipt {
    task: String,
    rejected: i64,
    /// Rows the return sent.
    sent: i64,
    /// The MAP's product name ("Marketo").
    map: &'static str,
    preview: Option<DatasetPreview>,
    /// "3 rows rejected: 2 × …", when the MAP rejected rows.
    reasons: String,
    /// Why the rejected rows are not shown to this user.
    hidden: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "run.html")]
pub(crate) struct RunPage {
    chrome: Chrome,
    run: RunRow,
    took: String,
    interval: String,
    tasks: Vec<TaskLine>,
    /// (task, headline, the last lines it wrote to stderr, the whole error)
    failures: Vec<(String, String, String, String)>,
    gantt: String,
    graph: String,
    receipts: Vec<Receipt>,
    datasets: Vec<DatasetRow>,
    can_operate: bool,
    finished: bool,
    /// The DAG's deadline in words ("by 07:00").
    deadline: Option<String>,
    /// Why a queued run has not started.
    waiting: Option<String>,
    /// What the run did in one sentence, and its warnings.
    story: drover_engine::story::RunStory,
    /// When it ran and which data it covers, in the DAG's zone; the UTC facts behind it.
    ran_label: (String, String),
    /// "by 06:00 New York — missed by 12 min".
    deadline_words: String,
    reverts: Vec<super::run_revert::RevertLine>,
    /// Its returns' plans, with their first records.
    plans: Vec<super::plan::PlanSummary>,
    /// Its returns waiting for approval (or decided).
    approvals: Vec<super::run_approval::ApprovalLine>,
    /// What started it, for a run started by events.
    started_by: Option<views::event_words::StartedBy>,
    /// Its first events, when there are several.
    run_events: Vec<super::events::EventLine>,
    /// The DAG's zone, as event times are given.
    zone: String,
    /// The runs its datasets started: the sentence, and each run.
    dataset_started: (String, Vec<super::dataset_links::StartedLine>),
}

fn n(v: Option<i64>) -> String {
    v.map(thousands).unwrap_or_default()
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path(run): Path<String>,
    Query(q): Query<RunQuery>,
) -> Result<RunPage, PageError> {
    let store = state.store();
    let run = store.get_run(parse_run(&run)?).await?;
    let env = state.ops().environment(&run.environment).await?;
    let dag = state.ops().dags().get(run.version_id).await.ok();
    let tis = store.task_instances(run.id).await?;
    let metrics: HashMap<String, TryMetrics> =
        store.run_metrics(run.id).await?.into_iter().collect();
    // A run's events table is no task's: the run's events section shows the events.
    let datasets: Vec<_> = store
        .run_datasets(run.id)
        .await?
        .into_iter()
        .filter(|d| !d.task_id.is_empty())
        .collect();
    let reverts = super::run_revert::load(store, run.id).await?;
    let approvals = super::run_approval::load(&state, &user, &env, &run).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let bars: Vec<GanttBar<'_>> = tis
        .iter()
        .map(|t| GanttBar {
            label: &t.task_id,
            state: t.state.0.as_str(),
            start_ms: t.started_at.map_or(0, |s| s.timestamp_millis()),
            end_ms: t.finished_at.map(|f| f.timestamp_millis()),
            href: Some(format!(
                "/runs/{}/tasks/{}",
                run.id,
                views::url_encode(&t.task_id)
            )),
        })
        .collect();
    let gantt = gantt_svg(&bars, now_ms);
    let states: HashMap<&str, &str> = tis
        .iter()
        .map(|t| (t.task_id.as_str(), t.state.0.as_str()))
        .collect();
    let graph = dag
        .as_ref()
        .map(|d| {
            dag_info::graph(
                d,
                |t| states.get(t).map(|s| (*s).to_owned()),
                |t| Some(format!("/runs/{}/tasks/{}", run.id, views::url_encode(t))),
            )
        })
        .unwrap_or_default();
    // Plain words first: the error's headline and what the task last wrote to stderr.
    let mut failures = Vec::new();
    for t in tis.iter().filter(|t| t.state.0.as_str() == "failed") {
        let Some(error) = &t.last_error else { continue };
        let said: Vec<String> = store
            .read_logs(t.id, Some(t.try_number), 0)
            .await?
            .into_iter()
            .filter(|l| l.stream == "stderr" && !l.line.trim().is_empty())
            .map(|l| l.line)
            .collect();
        let tail = said[said.len().saturating_sub(3)..].join("\n");
        failures.push((
            t.task_id.clone(),
            views::headline(error),
            tail,
            error.clone(),
        ));
    }
    let mut receipts = Vec::new();
    for d in datasets.iter().filter(|d| d.kind == "receipt") {
        let rejected = metrics
            .get(&d.task_id)
            .and_then(|m| m.rows_rejected)
            .unwrap_or(0);
        let (mut preview, mut hidden, mut reasons) = (None, None, String::new());
        if rejected > 0 && d.dropped_at.is_none() {
            match row_access::rows(&state, &user.actor, &env, d, true, 50).await {
                Ok(Rows::Shown(p)) => preview = Some(p),
                Ok(Rows::Hidden(why)) => hidden = Some(why),
                Ok(Rows::Unavailable) | Err(_) => {}
            }
            if let Ok(r) = row_access::rejection_reasons(&state, &env, d).await
                && !r.is_empty()
            {
                reasons = row_access::describe_reasons(&r);
            }
        }
        receipts.push(Receipt {
            task: d.task_id.clone(),
            rejected,
            sent: metrics.get(&d.task_id).and_then(|m| m.rows_in).unwrap_or(0),
            map: drover_engine::story::map_name(&env),
            preview,
            reasons,
            hidden,
        });
    }
    let tasks = tis
        .into_iter()
        .map(|ti| {
            let kind = dag
                .as_ref()
                .and_then(|d| d.task(&ti.task_id))
                .map_or("", |t| t.kind.name());
            TaskLine {
                downstream: dag
                    .as_ref()
                    .map(|d| drover_engine::ops::downstream_of(d, &ti.task_id).join(", "))
                    .unwrap_or_default(),
                took: views::took(&ti.started_at, &ti.finished_at),
                rows_in: n(metrics.get(&ti.task_id).and_then(|m| m.rows_in)),
                rows_out: n(metrics.get(&ti.task_id).and_then(|m| m.rows_out)),
                rejected: n(metrics.get(&ti.task_id).and_then(|m| m.rows_rejected)),
                calls: n(metrics.get(&ti.task_id).and_then(|m| m.api_calls)),
                has_receipt: datasets.iter().any(|d| {
                    d.task_id == ti.task_id && d.kind == "receipt" && d.dropped_at.is_none()
                }) && super::run_revert::may_revert(&reverts, &ti.task_id),
                has_output: datasets.iter().any(|d| {
                    d.task_id == ti.task_id && d.kind == "output" && d.dropped_at.is_none()
                }),
                headline: ti
                    .last_error
                    .as_deref()
                    .map(views::headline)
                    .unwrap_or_default(),
                kind,
                ti,
            }
        })
        .collect();
    let by_events = drover_store::started_by_events(run.run_type);
    let waiting = if run.state == RunState::Queued {
        let (in_env, of_dag) = store.running_counts(&run.environment, &run.dag_id).await?;
        let dag_max = dag.as_ref().map_or(1, |d| i64::from(d.max_active_runs));
        let env_max = env.limits.max_active_runs.map(i64::from);
        let paused = by_events
            && store
                .dag_env(&run.dag_id, &run.environment)
                .await
                .is_ok_and(|de| de.paused);
        Some(if paused {
            format!(
                "{} is paused in {}: runs started by events and replays wait until it is unpaused, then start in order",
                run.dag_id, run.environment
            )
        } else if of_dag >= dag_max {
            format!(
                "{of_dag} run(s) of {} are running in {}, its limit (`max_active_runs: {dag_max}`); this one starts when one finishes",
                run.dag_id, run.environment
            )
        } else if let Some(max) = env_max.filter(|m| in_env >= *m) {
            format!(
                "{in_env} runs are running in {}, the environment's limit (`limits.max_active_runs: {max}`); this one starts when one finishes",
                run.environment
            )
        } else {
            "waiting for the scheduler to start it".to_owned()
        })
    } else {
        None
    };
    let tz = dag.as_ref().map_or(chrono_tz::Tz::UTC, |d| d.timezone);
    let now = chrono::Utc::now();
    let summary = if by_events {
        store.run_event_summary(run.id).await?
    } else {
        None
    };
    let run_events = match &summary {
        Some(s) if s.count > 1 => {
            super::events::lines(&store.run_events_page(run.id, 50).await?, now, tz)
        }
        _ => Vec::new(),
    };
    let started_by = summary
        .as_ref()
        .map(|s| views::event_words::started_by(now, s, run.triggered_by.as_deref(), tz));
    let story = state.ops().story(&run).await?;
    let plans = super::plan::summaries(&state, &user.actor, &env, &run).await?;
    let dataset_started = super::dataset_links::started_by_run(store, run.id).await?;
    Ok(RunPage {
        dataset_started,
        started_by,
        run_events,
        zone: views::local_time::city(tz),
        plans,
        story,
        ran_label: views::local_time::run_words(now, &run, tz),
        deadline_words: run
            .deadline_at
            .map(|due| {
                views::local_time::deadline(
                    now,
                    due,
                    run.finished_at,
                    run.deadline_state.as_deref(),
                    tz,
                )
            })
            .unwrap_or_default(),
        reverts,
        approvals,
        chrome: Chrome::new(&user, "runs", Some(&run.environment)).with_done(q.done.as_deref()),
        can_operate: user.actor.may(Action::Mark, Some(&env)),
        took: views::took(&run.started_at, &run.finished_at),
        interval: format!(
            "{} → {}",
            views::when(&run.interval_start),
            views::when(&run.interval_end)
        ),
        finished: matches!(run.state, RunState::Success | RunState::Failed),
        deadline: dag.as_ref().and_then(|d| d.deadline).map(|d| d.describe()),
        waiting,
        run,
        tasks,
        failures,
        gantt,
        graph,
        receipts,
        datasets,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct MarkForm {
    state: String,
}

pub(crate) async fn mark(
    State(state): State<WebState>,
    Path(run): Path<String>,
    form: CsrfForm<MarkForm>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    let to = RunState::parse(&form.form.state)
        .map_err(|_| Failure::bad_request("a run can be marked success or failed"))?;
    state.ops().mark(&form.user.actor, id, to).await?;
    Ok(back(&format!("/runs/{id}"), "marked"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TaskForm {
    task: String,
}

pub(crate) async fn clear(
    State(state): State<WebState>,
    Path(run): Path<String>,
    form: CsrfForm<TaskForm>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    state
        .ops()
        .clear_with_downstream(&form.user.actor, id, &form.form.task)
        .await?;
    Ok(back(&format!("/runs/{id}"), "cleared"))
}

pub(crate) async fn revert(
    State(state): State<WebState>,
    Path(run): Path<String>,
    form: CsrfForm<TaskForm>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    state
        .ops()
        .revert(&form.user.actor, id, &form.form.task, false)
        .await?;
    Ok(back(&format!("/runs/{id}"), "reverted"))
}

#[derive(Template, WebTemplate)]
#[template(path = "dataset.html")]
pub(crate) struct DatasetPage {
    chrome: Chrome,
    run: RunRow,
    task: String,
    kind: String,
    dataset: DatasetRow,
    preview: Option<DatasetPreview>,
    note: String,
    /// Why the rows are not shown to this user (then the columns are listed instead).
    hidden: bool,
    /// A receipt's rejected rows by reason.
    reasons: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DatasetQuery {
    kind: Option<String>,
}

/// The first rows of a task's staged dataset (or its receipt).
pub(crate) async fn dataset(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<DatasetQuery>,
) -> Result<DatasetPage, PageError> {
    let run = state.store().get_run(parse_run(&run)?).await?;
    let kind = if q.kind.as_deref() == Some("receipt") {
        "receipt"
    } else {
        "output"
    };
    let dataset = state
        .store()
        .dataset(run.id, &task, kind)
        .await?
        .ok_or_else(|| {
            Failure::not_found(format!("Task `{task}` of this run staged no {kind}."))
        })?;
    let env = state.ops().environment(&run.environment).await?;
    let mut hidden = false;
    let (preview, note) = match dataset.dropped_at {
        Some(t) => (
            None,
            format!(
                "These rows were dropped on {} after the environment's retention period.",
                views::when(&t)
            ),
        ),
        None => match row_access::rows(&state, &user.actor, &env, &dataset, false, 100).await {
            Ok(Rows::Shown(p)) => (Some(p), String::new()),
            Ok(Rows::Hidden(why)) => {
                hidden = true;
                (None, why)
            }
            Ok(Rows::Unavailable) => (
                None,
                "Dataset previews are not available from this Drover process.".to_owned(),
            ),
            Err(e) => (None, format!("The rows could not be read: {e}")),
        },
    };
    let reasons = match row_access::rejection_reasons(&state, &env, &dataset).await {
        Ok(r) if !r.is_empty() => row_access::describe_reasons(&r),
        _ => String::new(),
    };
    Ok(DatasetPage {
        chrome: Chrome::new(&user, "runs", Some(&run.environment)),
        run,
        task,
        kind: kind.to_owned(),
        dataset,
        preview,
        note,
        hidden,
        reasons,
    })
}
