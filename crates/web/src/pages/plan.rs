//! A return's plan as a person reads it: what it would do in one sentence (create, update
//! with the fields that change, leave unchanged, not send, withhold), and per record its key,
//! what happens to it and each field's old → new value — on the run page (the first records)
//! and on a page of its own, by pages of records in the dataset's order (`after=`, never an
//! offset). Records are environment data: they go through [`row_access::rows_pool`], so who
//! may not see a PROD lead's values sees the totals only.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use drover_engine::ops::Actor;
use drover_spec::environment::Environment;
use drover_store::{PlanRecord, ReturnPlan, RunRow};
use serde::Deserialize;
use serde_json::Value;

use super::Chrome;
use super::run::parse_run;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::{Failure, PageError};
use crate::row_access::{self, RowsPool};
use crate::views::format::thousands;

/// Records on the plan's own page.
const PAGE: i64 = 100;
/// Records on the run page.
const ON_RUN_PAGE: i64 = 10;

/// One field a record's plan writes, as text.
pub(crate) struct Change {
    pub(crate) field: String,
    /// None: a new record's, or not known (no snapshot).
    pub(crate) old: Option<String>,
    pub(crate) new: String,
}

/// One record of a plan, in words.
pub(crate) struct Line {
    pub(crate) key: String,
    pub(crate) map_id: String,
    /// `create`, `update`, `send`, `unchanged`, `not_sent` (a CSS class too).
    pub(crate) status: String,
    pub(crate) status_words: &'static str,
    pub(crate) changes: Vec<Change>,
    pub(crate) withheld: String,
    pub(crate) reason: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "∅".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl From<PlanRecord> for Line {
    fn from(r: PlanRecord) -> Self {
        // A new record has no old values to show; without a snapshot they are unknown.
        let shows_old = r.status != "create";
        Line {
            key: r.key.unwrap_or_default(),
            map_id: r.map_id.map(|i| i.to_string()).unwrap_or_default(),
            status_words: match r.status.as_str() {
                "create" => "would create",
                "update" => "would update",
                "send" => "would send",
                "unchanged" => "unchanged, not sent",
                "not_sent" => "not sent",
                _ => "",
            },
            status: r.status,
            changes: r
                .changes
                .iter()
                .map(|c| Change {
                    field: c.field.clone(),
                    old: (shows_old && c.old_known).then(|| text(&c.old)),
                    new: text(&c.new),
                })
                .collect(),
            withheld: r.withheld.join(", "),
            reason: r.reason.unwrap_or_default(),
        }
    }
}

/// What reading a plan's records gave for one person.
pub(crate) enum Records {
    Shown(Vec<PlanRecord>),
    /// Why they are not shown.
    Hidden(String),
}

/// Up to `limit` records of `plan` after `after`, for `actor`, or why they are not shown.
pub(crate) async fn records(
    state: &WebState,
    actor: &Actor,
    env: &Environment,
    plan: &ReturnPlan,
    after: Option<i64>,
    limit: i64,
) -> Result<Records, Failure> {
    if let Some(t) = plan.records_dropped_at {
        return Ok(Records::Hidden(format!(
            "The plan's records were dropped on {} after the environment's retention period.",
            crate::views::when(&t)
        )));
    }
    match row_access::rows_pool(state, actor, env)? {
        RowsPool::Open(pool) => Ok(Records::Shown(
            drover_store::plan_records(&pool, plan, after, limit).await?,
        )),
        RowsPool::Hidden(why) => Ok(Records::Hidden(why)),
        RowsPool::Unavailable => Ok(Records::Hidden(
            "Plans' records are not readable from this Drover process.".to_owned(),
        )),
    }
}

/// A return's plan on the run page.
pub(crate) struct PlanSummary {
    pub(crate) task: String,
    pub(crate) words: String,
    pub(crate) preview: bool,
    pub(crate) snapshot: bool,
    /// Records planned, in figures ("1,383").
    pub(crate) rows: String,
    pub(crate) lines: Vec<Line>,
    pub(crate) more: bool,
    pub(crate) note: Option<String>,
}

/// The plans of a run's returns, each with its first records for `actor`.
pub(crate) async fn summaries(
    state: &WebState,
    actor: &Actor,
    env: &Environment,
    run: &RunRow,
) -> Result<Vec<PlanSummary>, Failure> {
    let mut out = Vec::new();
    for plan in state.store().run_return_plans(run.id).await? {
        let (lines, more, note) =
            match records(state, actor, env, &plan, None, ON_RUN_PAGE + 1).await? {
                Records::Shown(r) => {
                    let more = r.len() as i64 > ON_RUN_PAGE;
                    let lines = r
                        .into_iter()
                        .take(ON_RUN_PAGE as usize)
                        .map(Line::from)
                        .collect();
                    (lines, more, None)
                }
                Records::Hidden(why) => (Vec::new(), false, Some(why)),
            };
        out.push(PlanSummary {
            task: plan.task_id.clone(),
            words: capitalised(&plan.in_words()),
            preview: plan.preview,
            snapshot: plan.snapshot,
            rows: thousands(plan.rows),
            lines,
            more,
            note,
        });
    }
    Ok(out)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PlanQuery {
    /// The last record (`ord`) of the previous page.
    after: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "plan.html")]
pub(crate) struct PlanPage {
    chrome: Chrome,
    run: RunRow,
    task: String,
    plan: ReturnPlan,
    words: String,
    lines: Vec<Line>,
    /// A page after the first.
    later: bool,
    next: Option<i64>,
    note: Option<String>,
}

impl PlanPage {
    fn n(&self, v: &i64) -> String {
        thousands(*v)
    }
}

/// Every record of a return's plan, a page at a time.
pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<PlanQuery>,
) -> Result<PlanPage, PageError> {
    let run = state.store().get_run(parse_run(&run)?).await?;
    let plan = state
        .store()
        .latest_return_plan(run.id, &task)
        .await?
        .ok_or_else(|| {
            Failure::not_found(format!(
                "Task `{task}` of this run has no plan: only a return records one, when it runs."
            ))
        })?;
    let env = state.ops().environment(&run.environment).await?;
    let (lines, next, note) =
        match records(&state, &user.actor, &env, &plan, q.after, PAGE + 1).await? {
            Records::Shown(r) => {
                let more = r.len() as i64 > PAGE;
                let lines: Vec<PlanRecord> = r.into_iter().take(PAGE as usize).collect();
                let next = more.then(|| lines.last().map(|l| l.ord)).flatten();
                (lines.into_iter().map(Line::from).collect(), next, None)
            }
            Records::Hidden(why) => (Vec::new(), None, Some(why)),
        };
    Ok(PlanPage {
        chrome: Chrome::new(&user, "runs", Some(&run.environment)),
        words: capitalised(&plan.in_words()),
        later: q.after.is_some(),
        run,
        task,
        plan,
        lines,
        next,
        note,
    })
}
