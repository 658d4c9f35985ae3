//! Records: search a lead by email, Marketo id or another lookup field and see every run that
//! touched it, newest first, with each field's old → new value, the receipt's status, and
//! whether it was reverted.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_store::{FieldChange, RecordTouch};
use serde::Deserialize;

use super::{Chrome, pick_env};
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;

#[derive(Debug, Deserialize)]
pub(crate) struct RecordsQuery {
    env: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

/// Touches shown per page unless `limit` says otherwise.
const SHOWN: i64 = 100;

pub(crate) struct Line {
    touch: RecordTouch,
    changes: Vec<FieldChange>,
    status_words: &'static str,
    /// green, amber, red or grey: the badge's colour.
    status_class: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "records.html")]
pub(crate) struct RecordsPage {
    chrome: Chrome,
    envs: Vec<String>,
    env: String,
    q: String,
    /// `email = ann@example.com`, once searched.
    described: Option<String>,
    /// What was wrong with the search text.
    problem: Option<String>,
    hidden: Option<String>,
    lines: Vec<Line>,
    runs: usize,
    more: bool,
    shown: i64,
}

fn status_words(status: &str) -> (&'static str, &'static str) {
    match status {
        "created" => ("created", "state-success"),
        "updated" => ("updated", "state-success"),
        "accepted" => ("accepted", "state-success"),
        "unchanged" => ("unchanged, not sent", "state-skipped"),
        "rejected" => ("rejected", "state-failed"),
        "warning" => ("accepted with a warning", "state-up_for_retry"),
        "reverted" => ("revert: values written back", "state-queued"),
        _ => ("no answer from the MAP", "state-skipped"),
    }
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<RecordsQuery>,
) -> Result<RecordsPage, PageError> {
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref()).cloned();
    let text = q.q.clone().unwrap_or_default();
    let shown = q
        .limit
        .unwrap_or(SHOWN)
        .clamp(1, crate::record_history::MAX_LIMIT);
    let mut page = RecordsPage {
        chrome: Chrome::new(&user, "records", env.as_ref().map(|e| e.name.as_str())),
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env: env.as_ref().map(|e| e.name.clone()).unwrap_or_default(),
        q: text.clone(),
        described: None,
        problem: None,
        hidden: None,
        lines: Vec::new(),
        runs: 0,
        more: false,
        shown,
    };
    let Some(env) = env else {
        return Ok(page);
    };
    if text.trim().is_empty() {
        return Ok(page);
    }
    match crate::record_history::search(&state, &user.actor, &env, &text, shown).await {
        Ok(found) => {
            page.described = Some(found.query.describe());
            page.hidden = found.hidden;
            page.more = found.more;
            let touches = found.touches.unwrap_or_default();
            let mut runs: Vec<_> = touches.iter().map(|t| t.run_id).collect();
            runs.sort();
            runs.dedup();
            page.runs = runs.len();
            page.lines = touches
                .into_iter()
                .map(|t| {
                    let (words, class) = status_words(&t.status);
                    Line {
                        changes: t.field_changes(),
                        status_words: words,
                        status_class: class,
                        touch: t,
                    }
                })
                .collect();
        }
        Err(f) if f.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY => {
            page.problem = Some(f.message);
        }
        Err(f) => return Err(f.into()),
    }
    Ok(page)
}
