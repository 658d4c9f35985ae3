//! Freshness as the pages, the API and `/metrics` show it: every DAG and task of a DAG's
//! current version that declares `freshness`, with how old its data is.

use drover_engine::freshness::{age_words, detail_words, state_words, whose};
use drover_store::{FreshnessState, StaleEpisode};
use serde_json::{Value, json};

use crate::WebState;
use crate::error::Failure;
use crate::views;

/// One DAG's (or task's) data and how fresh it is.
#[derive(Debug, Clone)]
pub(crate) struct FreshnessLine {
    pub(crate) state: FreshnessState,
    /// "lead_scoring", "lead_scoring.score".
    pub(crate) who: String,
    /// "Data 3 h old, must be under 26 h", "Stale: data 31 h old, must be under 26 h".
    pub(crate) words: String,
    /// The same without "Stale: ", next to a "stale" mark.
    pub(crate) detail: String,
    /// "last refreshed 2026-12-01 02:14 UTC", "never refreshed".
    pub(crate) refreshed: String,
}

impl FreshnessLine {
    pub(crate) fn new(state: FreshnessState) -> Self {
        let refreshed = match state.last_refreshed_at {
            Some(at) => format!("last refreshed {}", views::when(&at)),
            None => "never refreshed".to_owned(),
        };
        Self {
            who: whose(&state.dag_id, &state.task_id),
            words: state_words(&state),
            detail: detail_words(&state),
            refreshed,
            state,
        }
    }

    /// `stale` or `fresh`, for CSS and tests.
    pub(crate) fn verdict(&self) -> &'static str {
        if self.state.stale { "stale" } else { "fresh" }
    }
}

/// The data of `environment` (all when `None`) whose DAG or task declares `freshness`.
pub(crate) async fn lines(
    state: &WebState,
    environment: Option<&str>,
) -> Result<Vec<FreshnessLine>, Failure> {
    let states =
        drover_engine::freshness::states(state.store(), state.ops().dags(), environment).await?;
    Ok(states.into_iter().map(FreshnessLine::new).collect())
}

/// One episode as the DAG page lists it.
pub(crate) struct EpisodeLine {
    pub(crate) who: String,
    /// "stale from 2026-12-01 04:00 UTC to 2026-12-01 09:10 UTC (5 h)", "stale since … (3 h)".
    pub(crate) span: String,
    /// "refreshed by a run", "no longer asked for", "" while open.
    pub(crate) ended: String,
    pub(crate) run: Option<uuid::Uuid>,
    pub(crate) told: bool,
    pub(crate) open: bool,
}

impl EpisodeLine {
    pub(crate) fn new(e: &StaleEpisode) -> Self {
        let until = e.cleared_at.unwrap_or_else(chrono::Utc::now);
        let long = age_words((until - e.stale_since).num_seconds());
        let span = match e.cleared_at {
            Some(c) => format!(
                "stale from {} to {} ({long})",
                views::when(&e.stale_since),
                views::when(&c)
            ),
            None => format!("stale since {} ({long})", views::when(&e.stale_since)),
        };
        let ended = match e.cleared_because.as_deref() {
            Some("refreshed") => "refreshed by a run".to_owned(),
            Some(_) => "no longer asked for".to_owned(),
            None => String::new(),
        };
        Self {
            who: whose(&e.dag_id, &e.task_id),
            span,
            ended,
            run: e.cleared_by_run,
            told: e.notified_at.is_some(),
            open: e.cleared_at.is_none(),
        }
    }
}

/// The API's facts of one DAG's or task's data.
fn facts(s: &FreshnessState) -> Value {
    json!({
        "max_age_secs": s.max_age_secs,
        "age_secs": s.age_secs,
        "stale": s.stale,
        "last_refreshed_at": s.last_refreshed_at,
        "last_refreshed_by": s.last_refreshed_by,
        "stale_since": s.stale.then_some(s.stale_at),
        "paused": s.paused,
    })
}

/// `freshness` of the DAG API: per environment the DAG's own data (its fields null when only
/// tasks declare `freshness`) and its tasks' under `tasks`; environments where nothing
/// declares it are left out.
pub(crate) fn api_value(states: &[FreshnessState]) -> Value {
    let mut out = serde_json::Map::new();
    for s in states {
        let env = out.entry(s.environment.clone()).or_insert_with(|| {
            json!({
                "max_age_secs": null, "age_secs": null, "stale": null, "last_refreshed_at": null,
                "last_refreshed_by": null, "stale_since": null, "paused": s.paused, "tasks": {},
            })
        });
        if s.task_id.is_empty() {
            let tasks = env["tasks"].take();
            *env = facts(s);
            env["tasks"] = tasks;
        } else {
            env["tasks"][s.task_id.as_str()] = facts(s);
        }
    }
    Value::Object(out)
}
