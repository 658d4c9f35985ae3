//! The audit trail: who did what, when, filtered, page by page.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_store::{AuditEvent, AuditFilter};
use serde::Deserialize;

use super::Chrome;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;
use crate::views::{audit_words, url_encode};

/// An event in words.
pub(crate) struct AuditLine {
    action: String,
    summary: String,
    /// The details as JSON, on demand.
    details: String,
}

const PER_PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    env: Option<String>,
    dag: Option<String>,
    before: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    chrome: Chrome,
    events: Vec<(AuditEvent, AuditLine)>,
    actor: String,
    action: String,
    env: String,
    dag: String,
    older: Option<String>,
}

fn some(s: &Option<String>) -> Option<String> {
    s.clone().filter(|v| !v.trim().is_empty())
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<AuditQuery>,
) -> Result<AuditPage, PageError> {
    let events = state
        .store()
        .audit_page(&AuditFilter {
            actor: some(&q.actor),
            action: some(&q.action),
            environment: some(&q.env),
            dag_id: some(&q.dag),
            before_id: q.before,
            limit: PER_PAGE,
        })
        .await?;
    let older = (events.len() as i64 == PER_PAGE)
        .then(|| events.last().map(|e| e.id))
        .flatten()
        .map(|id| {
            format!(
                "/audit?actor={}&action={}&env={}&dag={}&before={id}",
                url_encode(q.actor.as_deref().unwrap_or("")),
                url_encode(q.action.as_deref().unwrap_or("")),
                url_encode(q.env.as_deref().unwrap_or("")),
                url_encode(q.dag.as_deref().unwrap_or(""))
            )
        });
    Ok(AuditPage {
        chrome: Chrome::new(&user, "audit", None),
        events: events
            .into_iter()
            .map(|e| {
                let details = if e.details.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    serde_json::to_string_pretty(&e.details).unwrap_or_default()
                };
                let line = AuditLine {
                    action: audit_words::action_words(&e.action),
                    summary: audit_words::summary(&e.details),
                    details,
                };
                (e, line)
            })
            .collect(),
        actor: q.actor.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        env: q.env.unwrap_or_default(),
        dag: q.dag.unwrap_or_default(),
        older,
    })
}
