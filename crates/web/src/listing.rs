//! The DAGs of an environment with what the DAGs page and API show of each: the schedule in
//! words, owner, tags, paused, the latest run, the next run, the 30-day success rate.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drover_spec::dag::Dag;
use drover_store::DagRunSummary;

use crate::WebState;
use crate::error::Failure;

/// Which DAGs to list.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct DagFilter {
    /// Part of the id, description or owner.
    #[serde(default)]
    pub(crate) q: Option<String>,
    #[serde(default)]
    pub(crate) tag: Option<String>,
    /// `failed` (latest run failed), `paused`, `active` (running now).
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) page: Option<usize>,
}

pub(crate) const PER_PAGE: usize = 50;

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DagItem {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) owner: Option<String>,
    pub(crate) tags: Vec<String>,
    /// "every day at 02:00, New York time"; "manual only" without a schedule.
    pub(crate) schedule: String,
    pub(crate) paused: bool,
    pub(crate) version_id: i64,
    pub(crate) file: String,
    pub(crate) last_run_id: Option<uuid::Uuid>,
    pub(crate) last_state: Option<String>,
    pub(crate) last_logical_date: Option<DateTime<Utc>>,
    pub(crate) last_finished_at: Option<DateTime<Utc>>,
    pub(crate) next_run_at: Option<DateTime<Utc>>,
    /// The zone the DAG's schedule is read in (UTC when its file is unreadable).
    #[serde(skip)]
    pub(crate) timezone: chrono_tz::Tz,
    pub(crate) runs_30d: i64,
    pub(crate) succeeded_30d: i64,
    pub(crate) failed_30d: i64,
    pub(crate) active_runs: i64,
    /// The DAG's file could not be read at its stored version.
    pub(crate) unreadable: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DagListing {
    pub(crate) environment: String,
    pub(crate) items: Vec<DagItem>,
    pub(crate) total: usize,
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) tags: Vec<String>,
}

fn matches(dag: Option<&Dag>, id: &str, f: &DagFilter) -> bool {
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let q = q.to_lowercase();
        let hit = id.to_lowercase().contains(&q)
            || dag.is_some_and(|d| {
                d.description.to_lowercase().contains(&q)
                    || d.owner.as_deref().unwrap_or("").to_lowercase().contains(&q)
            });
        if !hit {
            return false;
        }
    }
    if let Some(tag) = f.tag.as_deref().filter(|t| !t.is_empty())
        && !dag.is_some_and(|d| d.tags.iter().any(|t| t == tag))
    {
        return false;
    }
    true
}

/// The DAG list, briefly cached per environment and filter.
pub(crate) async fn cached_list_dags(
    state: &WebState,
    environment: &str,
    filter: &DagFilter,
) -> Result<Arc<DagListing>, Failure> {
    let key = (environment.to_owned(), format!("{filter:?}"));
    state
        .caches()
        .listings
        .get_or_load(key, || list_dags(state, environment, filter))
        .await
}

async fn list_dags(
    state: &WebState,
    environment: &str,
    filter: &DagFilter,
) -> Result<DagListing, Failure> {
    let store = state.store();
    let rows = store.dag_envs(Some(environment)).await?;
    let mut tags = std::collections::BTreeSet::new();
    let mut candidates: Vec<(drover_store::DagEnvRow, Result<Arc<Dag>, String>)> = Vec::new();
    for row in rows.into_iter().filter(|r| r.active) {
        let dag = state
            .ops()
            .dags()
            .get(row.version_id)
            .await
            .map_err(|e| e.to_string());
        if let Ok(d) = &dag {
            tags.extend(d.tags.iter().cloned());
        }
        if matches(dag.as_ref().ok().map(|d| &**d), &row.dag_id, filter) {
            candidates.push((row, dag));
        }
    }
    candidates.sort_by(|a, b| a.0.dag_id.cmp(&b.0.dag_id));
    let status = filter.status.as_deref().filter(|s| !s.is_empty());
    if status == Some("paused") {
        candidates.retain(|(r, _)| r.paused);
    }
    // Filters on run outcomes need every candidate's summary; otherwise only the page's.
    let by_outcome = matches!(status, Some("failed" | "active"));
    let page = filter.page.unwrap_or(1).max(1);
    let ids: Vec<String> = if by_outcome {
        candidates.iter().map(|(r, _)| r.dag_id.clone()).collect()
    } else {
        candidates
            .iter()
            .skip((page - 1) * PER_PAGE)
            .take(PER_PAGE)
            .map(|(r, _)| r.dag_id.clone())
            .collect()
    };
    let summaries: std::collections::HashMap<String, DagRunSummary> = store
        .dag_run_summaries(environment, &ids)
        .await?
        .into_iter()
        .map(|s| (s.dag_id.clone(), s))
        .collect();
    if by_outcome {
        candidates.retain(|(r, _)| {
            summaries.get(&r.dag_id).is_some_and(|s| match status {
                Some("failed") => s.last_state.as_deref() == Some("failed"),
                _ => s.active_runs > 0,
            })
        });
    }
    let total = candidates.len();
    let skip = if by_outcome { (page - 1) * PER_PAGE } else { 0 };
    let now = Utc::now();
    let items = candidates
        .into_iter()
        .filter(|(r, _)| summaries.contains_key(&r.dag_id))
        .skip(skip)
        .take(PER_PAGE)
        .map(|(row, dag)| {
            let s = summaries.get(&row.dag_id);
            let (description, owner, dag_tags, schedule, next, file, unreadable) = match &dag {
                Ok(d) => (
                    d.description.clone(),
                    d.owner.clone(),
                    d.tags.clone(),
                    d.schedule
                        .as_ref()
                        .map_or_else(|| "manual only".to_owned(), |s| s.in_words()),
                    if row.paused {
                        None
                    } else {
                        d.schedule.as_ref().and_then(|s| s.next_after(now))
                    },
                    d.file.clone(),
                    None,
                ),
                Err(e) => (
                    String::new(),
                    None,
                    Vec::new(),
                    String::new(),
                    None,
                    String::new(),
                    Some(e.clone()),
                ),
            };
            DagItem {
                id: row.dag_id.clone(),
                description,
                owner,
                tags: dag_tags,
                schedule,
                paused: row.paused,
                version_id: row.version_id,
                file,
                last_run_id: s.and_then(|s| s.last_run_id),
                last_state: s.and_then(|s| s.last_state.clone()),
                last_logical_date: s.and_then(|s| s.last_logical_date),
                last_finished_at: s.and_then(|s| s.last_finished_at),
                next_run_at: next,
                timezone: dag.as_ref().map_or(chrono_tz::Tz::UTC, |d| d.timezone),
                runs_30d: s.map_or(0, |s| s.runs_30d),
                succeeded_30d: s.map_or(0, |s| s.succeeded_30d),
                failed_30d: s.map_or(0, |s| s.failed_30d),
                active_runs: s.map_or(0, |s| s.active_runs),
                unreadable,
            }
        })
        .collect();
    Ok(DagListing {
        environment: environment.to_owned(),
        items,
        total,
        page,
        pages: total.div_ceil(PER_PAGE).max(1),
        tags: tags.into_iter().collect(),
    })
}
