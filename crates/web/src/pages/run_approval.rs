//! Returns waiting for approval of their plan, on the run page and the home page, and the
//! forms that approve or reject them.

use axum::extract::{Path, State};
use axum::response::Redirect;
use drover_engine::ops::{Action, Operations};
use drover_spec::environment::{Environment, Role};
use drover_store::{ApprovalRow, RunRow};
use serde::Deserialize;

use super::{back, parse_run};
use crate::WebState;
use crate::auth::{CsrfForm, CurrentUser};
use crate::error::PageError;
use crate::views;

/// One return task's newest approval request, as a page shows it.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalLine {
    pub(crate) run_id: String,
    pub(crate) dag_id: String,
    pub(crate) task: String,
    pub(crate) environment: String,
    /// `pending`, `approved`, `rejected`, `expired`, `withdrawn`.
    pub(crate) state: String,
    /// "12 to send (2 new, 10 updated), 5 unchanged and not sent, 0 nulls withheld".
    pub(crate) plan: String,
    /// "asked 2026-12-03 07:40 UTC; fails if not decided by 2026-12-04 07:40 UTC".
    pub(crate) when: String,
    /// "Approved by ada on …", "Rejected by ada: wrong list", "Not approved within 24 h".
    pub(crate) outcome: String,
    /// The buttons are offered (a pending request, and the user may decide on it).
    pub(crate) may_decide: bool,
    /// Why this user may not approve (they made the last change), when they may otherwise.
    pub(crate) not_you: Option<String>,
}

fn line(a: &ApprovalRow) -> ApprovalLine {
    let decided = |what: &str| {
        format!(
            "{what} by {} on {}",
            a.decided_by.as_deref().unwrap_or("?"),
            a.decided_at.as_ref().map(views::when).unwrap_or_default()
        )
    };
    let outcome = match a.state.as_str() {
        "approved" => decided("Approved"),
        "rejected" => format!(
            "{}: {}",
            decided("Rejected"),
            a.reason.as_deref().unwrap_or("no reason given")
        ),
        "expired" => format!(
            "Not approved within {}: the task failed",
            drover_store::wait_words((a.expires_at - a.requested_at).num_seconds())
        ),
        "withdrawn" => "Withdrawn: the run was marked".to_owned(),
        _ => String::new(),
    };
    ApprovalLine {
        run_id: a.run_id.to_string(),
        dag_id: a.dag_id.clone(),
        task: a.task_id.clone(),
        environment: a.environment.clone(),
        state: a.state.clone(),
        plan: a.totals().describe(),
        when: format!(
            "asked {}{}",
            views::when(&a.requested_at),
            if a.state == "pending" {
                format!(
                    "; the task fails if nobody decides by {}",
                    views::when(&a.expires_at)
                )
            } else {
                String::new()
            }
        ),
        outcome,
        may_decide: false,
        not_you: None,
    }
}

/// Whether `user` made the last change to the DAG of `run` (then they may not approve it).
async fn made_the_change(ops: &Operations, user: &CurrentUser, run: &RunRow) -> Option<String> {
    if user.actor.role_in(Some(&run.environment)) == Role::Admin {
        return None;
    }
    match ops.last_committer(run).await {
        Ok(Some((name, email))) if drover_engine::ops::same_person(user.name(), &name, &email) => {
            Some(format!(
                "You made the last change to {} ({name} <{email}>): someone else must approve what it writes — another operator, or an admin. You may still reject it.",
                run.dag_id
            ))
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// The newest request of each return task of `run`.
pub(crate) async fn load(
    state: &WebState,
    user: &CurrentUser,
    env: &Environment,
    run: &RunRow,
) -> Result<Vec<ApprovalLine>, PageError> {
    let rows = state.store().run_approvals(run.id).await?;
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for a in rows.iter().filter(|a| seen.insert(a.task_id.clone())) {
        let mut l = line(a);
        let waits = a.state == "pending"
            && state
                .store()
                .pending_approval(run.id, &a.task_id)
                .await?
                .is_some();
        if a.state == "pending" && !waits {
            l.state = "withdrawn".to_owned();
            l.outcome = "No longer waiting".to_owned();
        }
        if waits && user.actor.may(Action::ApproveReturn, Some(env)) {
            l.may_decide = true;
            l.not_you = made_the_change(state.ops(), user, run).await;
        }
        lines.push(l);
    }
    Ok(lines)
}

/// Returns waiting for approval in `environment`, for the home page.
pub(crate) async fn waiting(
    state: &WebState,
    environment: &str,
) -> Result<Vec<ApprovalLine>, PageError> {
    Ok(state
        .store()
        .pending_approvals(Some(environment))
        .await?
        .iter()
        .map(line)
        .collect())
}

pub(crate) async fn approve(
    State(state): State<WebState>,
    Path((run, task)): Path<(String, String)>,
    form: CsrfForm<Empty>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    state
        .ops()
        .approve_return(&form.user.actor, id, &task)
        .await?;
    Ok(back(&format!("/runs/{id}"), "return_approved"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

#[derive(Debug, Deserialize)]
pub(crate) struct RejectForm {
    reason: String,
}

pub(crate) async fn reject(
    State(state): State<WebState>,
    Path((run, task)): Path<(String, String)>,
    form: CsrfForm<RejectForm>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    state
        .ops()
        .reject_return(&form.user.actor, id, &task, &form.form.reason)
        .await?;
    Ok(back(&format!("/runs/{id}"), "return_rejected"))
}
