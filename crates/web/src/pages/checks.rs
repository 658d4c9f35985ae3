//! Data checks: the data SLOs with their error budgets, then each check's latest value against
//! its thresholds, green / amber / red, with its recent history as a small chart.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_store::CheckResultRow;
use serde::Deserialize;

use super::{Chrome, pick_env};
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;
use crate::slos::{SloLine, slo_lines};
use crate::views::sparkline::{Point, sparkline};

#[derive(Debug, Deserialize)]
pub(crate) struct ChecksQuery {
    env: Option<String>,
}

pub(crate) struct CheckLine {
    latest: CheckResultRow,
    /// green, amber or red
    colour: &'static str,
    verdict: &'static str,
    thresholds: String,
    value: String,
    chart: String,
    passed_of: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "checks.html")]
pub(crate) struct ChecksPage {
    chrome: Chrome,
    envs: Vec<String>,
    env: String,
    lines: Vec<CheckLine>,
    slos: Vec<SloLine>,
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        crate::views::format::thousands(v as i64)
    } else {
        format!("{v:.3}")
    }
}

pub(crate) fn colour(c: &CheckResultRow) -> (&'static str, &'static str) {
    match (c.passed, c.severity.as_str()) {
        (true, _) => ("green", "holds"),
        (false, "warn") => ("amber", "warning"),
        (false, _) => ("red", "breached"),
    }
}

pub(crate) fn thresholds(c: &CheckResultRow, percent: bool) -> String {
    let n = |v: f64| in_units(v, percent);
    match (c.min_value, c.max_value) {
        (Some(a), Some(b)) => format!("between {} and {}", n(a), n(b)),
        (Some(a), None) => format!("at least {}", n(a)),
        (None, Some(b)) => format!("at most {}", n(b)),
        (None, None) => "no thresholds".to_owned(),
    }
}

/// A check's value or bound in its author's units (a percentage when written `2%`).
fn in_units(v: f64, percent: bool) -> String {
    if percent {
        drover_spec::dag::percent_text(v)
    } else {
        number(v)
    }
}

/// Whether the check of `c` was written in percentages (`max: 2%`), by the DAG version its
/// run ran.
async fn in_percent(state: &WebState, c: &CheckResultRow) -> bool {
    let Ok(run) = state.store().get_run(c.run_id).await else {
        return false;
    };
    let Ok(dag) = state.ops().dags().get(run.version_id).await else {
        return false;
    };
    matches!(
        dag.task(&c.task_id).map(|t| &t.kind),
        Some(drover_spec::dag::TaskKind::Check(spec)) if spec.percent
    )
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<ChecksQuery>,
) -> Result<ChecksPage, PageError> {
    let store = state.store();
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref())
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let mut lines = Vec::new();
    for latest in store.latest_checks(Some(&env)).await? {
        let mut history = store
            .check_history(&latest.dag_id, &latest.environment, &latest.task_id, 30)
            .await?;
        history.reverse();
        let points: Vec<Point> = history
            .iter()
            .map(|h| Point {
                value: h.value,
                passed: h.passed,
            })
            .collect();
        let passed = history.iter().filter(|h| h.passed).count();
        let (colour, verdict) = colour(&latest);
        let percent = in_percent(&state, &latest).await;
        lines.push(CheckLine {
            colour,
            verdict,
            thresholds: thresholds(&latest, percent),
            value: latest
                .value
                .map_or_else(|| "no value".to_owned(), |v| in_units(v, percent)),
            chart: sparkline(&points, latest.min_value, latest.max_value),
            passed_of: format!("{passed} of the last {} held", history.len()),
            latest,
        });
    }
    lines.sort_by_key(|l| {
        (
            match l.colour {
                "red" => 0,
                "amber" => 1,
                _ => 2,
            },
            l.latest.dag_id.clone(),
        )
    });
    let mut slos = slo_lines(&state, Some(&env)).await?;
    slos.sort_by(|a, b| {
        a.status
            .budget_remaining
            .total_cmp(&b.status.budget_remaining)
            .then_with(|| a.dag_id.cmp(&b.dag_id))
    });
    Ok(ChecksPage {
        chrome: Chrome::new(&user, "checks", Some(&env)),
        slos,
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env,
        lines,
    })
}
