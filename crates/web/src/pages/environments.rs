//! Environments: the commit each runs, promotion history, a diff between two, and promote /
//! approve / reject / roll back for those allowed.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use drover_engine::ops::{Action, EnvironmentDiff};
use drover_engine::promotion::PromotionOutcome;
use drover_store::{DeploymentRow, PromotionRequest};
use serde::Deserialize;

use super::{Chrome, back};
use crate::WebState;
use crate::auth::{CsrfForm, PageUser};
use crate::error::PageError;

pub(crate) struct EnvLine {
    name: String,
    tracks: Option<String>,
    below: Option<String>,
    current: Option<DeploymentRow>,
    pending: Option<PromotionRequest>,
    history: Vec<DeploymentRow>,
    dags: usize,
    may_promote: bool,
    may_approve: bool,
    needs_approval: bool,
    allowed: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "environments.html")]
pub(crate) struct EnvironmentsPage {
    chrome: Chrome,
    envs: Vec<EnvLine>,
    has_git: bool,
    names: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<DoneQuery>,
) -> Result<EnvironmentsPage, PageError> {
    let store = state.store();
    let envs = state.environments().await?;
    let all = store.dag_envs(None).await?;
    let mut lines = Vec::new();
    for (i, env) in envs.iter().enumerate() {
        lines.push(EnvLine {
            name: env.name.clone(),
            tracks: env.branch.clone(),
            below: i.checked_sub(1).map(|b| envs[b].name.clone()),
            current: store.current_deployment(&env.name).await?,
            pending: store.pending_promotion(&env.name).await?,
            history: store.deployments(&env.name, 10).await?,
            dags: all
                .iter()
                .filter(|d| d.environment == env.name && d.active)
                .count(),
            may_promote: user.actor.may(Action::Promote, Some(env)),
            may_approve: user.actor.may(Action::Approve, Some(env)),
            needs_approval: env.promotion.require_approval,
            allowed: env
                .promotion
                .allowed_roles
                .iter()
                .map(|r| drover_engine::ops::role_name(*r))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(EnvironmentsPage {
        chrome: Chrome::new(&user, "environments", None).with_done(q.done.as_deref()),
        names: envs.iter().map(|e| e.name.clone()).collect(),
        envs: lines,
        has_git: state.ops().has_git(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct DiffQuery {
    from: String,
    to: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "diff.html")]
pub(crate) struct DiffPage {
    chrome: Chrome,
    from: String,
    to: String,
    diff: EnvironmentDiff,
}

pub(crate) async fn diff(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<DiffQuery>,
) -> Result<DiffPage, PageError> {
    let diff = state.ops().diff(&q.from, &q.to).await?;
    Ok(DiffPage {
        chrome: Chrome::new(&user, "environments", None),
        from: q.from,
        to: q.to,
        diff,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct NoteForm {
    #[serde(default)]
    note: String,
}

fn note(f: &NoteForm) -> Option<&str> {
    Some(f.note.trim()).filter(|n| !n.is_empty())
}

pub(crate) async fn promote(
    State(state): State<WebState>,
    Path(env): Path<String>,
    form: CsrfForm<NoteForm>,
) -> Result<Redirect, PageError> {
    let outcome = state
        .ops()
        .promote(&form.user.actor, &env, None, None, note(&form.form))
        .await?;
    Ok(back(
        "/environments",
        match outcome {
            PromotionOutcome::Applied { .. } => "promoted",
            PromotionOutcome::AwaitingApproval { .. } => "requested",
        },
    ))
}

pub(crate) async fn approve(
    State(state): State<WebState>,
    Path(env): Path<String>,
    form: CsrfForm<NoteForm>,
) -> Result<Redirect, PageError> {
    state.ops().approve(&form.user.actor, &env).await?;
    Ok(back("/environments", "approved"))
}

pub(crate) async fn reject(
    State(state): State<WebState>,
    Path(env): Path<String>,
    form: CsrfForm<NoteForm>,
) -> Result<Redirect, PageError> {
    state.ops().reject(&form.user.actor, &env).await?;
    Ok(back("/environments", "rejected"))
}

pub(crate) async fn rollback(
    State(state): State<WebState>,
    Path(env): Path<String>,
    form: CsrfForm<NoteForm>,
) -> Result<Redirect, PageError> {
    state
        .ops()
        .rollback(&form.user.actor, &env, note(&form.form))
        .await?;
    Ok(back("/environments", "rolledback"))
}
