//! The DAGs page: per environment, each DAG's schedule in words, state, latest and next run,
//! 30-day success rate; import errors in plain words.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use drover_engine::ops::Action;

use drover_store::ImportError;

use super::{Chrome, pick_env};
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;
use crate::listing::{DagFilter, DagItem, cached_list_dags};
use crate::views::{self, format::thousands, url_encode};

#[derive(Debug, serde::Deserialize)]
pub(crate) struct DagsQuery {
    env: Option<String>,
    done: Option<String>,
    #[serde(flatten)]
    filter: DagFilter,
}

pub(crate) struct Line {
    item: DagItem,
    last_when: String,
    next_when: String,
    /// The next run's instant in UTC, for the title.
    next_utc: String,
    success: String,
    success_class: &'static str,
    /// Problems of the last run: a succeeded one with any is shown amber.
    last_warnings: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "dags.html")]
pub(crate) struct DagsPage {
    chrome: Chrome,
    envs: Vec<String>,
    env: String,
    q: String,
    tag: String,
    status: String,
    tags: Vec<String>,
    lines: Vec<Line>,
    errors: Vec<ImportError>,
    total: usize,
    page: usize,
    pages: usize,
    can_operate: bool,
    base_query: String,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<DagsQuery>,
) -> Result<DagsPage, PageError> {
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref()).cloned();
    let chrome = Chrome::new(&user, "dags", env.as_ref().map(|e| e.name.as_str()))
        .with_done(q.done.as_deref());
    let Some(env) = env else {
        return Ok(DagsPage {
            chrome,
            envs: Vec::new(),
            env: String::new(),
            q: String::new(),
            tag: String::new(),
            status: String::new(),
            tags: Vec::new(),
            lines: Vec::new(),
            errors: Vec::new(),
            total: 0,
            page: 1,
            pages: 1,
            can_operate: false,
            base_query: String::new(),
        });
    };
    let listing = cached_list_dags(&state, &env.name, &q.filter).await?;
    let errors = {
        let store = state.store().clone();
        let name = env.name.clone();
        state
            .caches()
            .import_errors
            .get_or_load(env.name.clone(), || async move {
                store.import_errors(Some(&name)).await
            })
            .await?
    };
    // Warnings of the last runs shown (a succeeded run with problems is amber).
    let last_runs: Vec<uuid::Uuid> = listing.items.iter().filter_map(|i| i.last_run_id).collect();
    let mut warnings: std::collections::HashMap<uuid::Uuid, usize> = Default::default();
    for p in state.store().run_problems(&last_runs).await? {
        *warnings.entry(p.run_id).or_default() += 1;
    }
    let lines = listing
        .items
        .iter()
        .cloned()
        .map(|item| {
            let last_when = item
                .last_finished_at
                .or(item.last_logical_date)
                .map(|t| views::ago(&t))
                .unwrap_or_default();
            let next_when = match (item.paused, item.next_run_at) {
                (true, _) => "paused".to_owned(),
                (false, Some(t)) => {
                    views::local_time::next_run(chrono::Utc::now(), t, item.timezone)
                }
                (false, None) => "—".to_owned(),
            };
            let next_utc = item
                .next_run_at
                .map(views::local_time::utc)
                .unwrap_or_default();
            let finished = item.succeeded_30d + item.failed_30d;
            let (success, success_class) = if finished == 0 {
                ("no runs".to_owned(), "none")
            } else {
                let pct = item.succeeded_30d as f64 * 100.0 / finished as f64;
                (
                    format!("{pct:.0} % of {}", thousands(finished)),
                    if pct >= 99.0 {
                        "good"
                    } else if pct >= 90.0 {
                        "warn"
                    } else {
                        "bad"
                    },
                )
            };
            Line {
                last_warnings: item
                    .last_run_id
                    .and_then(|id| warnings.get(&id).copied())
                    .unwrap_or(0),
                item,
                last_when,
                next_when,
                next_utc,
                success,
                success_class,
            }
        })
        .collect();
    let f = &q.filter;
    let base_query = format!(
        "env={}&q={}&tag={}&status={}",
        url_encode(&env.name),
        url_encode(f.q.as_deref().unwrap_or("")),
        url_encode(f.tag.as_deref().unwrap_or("")),
        url_encode(f.status.as_deref().unwrap_or(""))
    );
    Ok(DagsPage {
        can_operate: user.actor.may(Action::Pause, Some(&env)),
        chrome,
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env: env.name.clone(),
        q: f.q.clone().unwrap_or_default(),
        tag: f.tag.clone().unwrap_or_default(),
        status: f.status.clone().unwrap_or_default(),
        tags: listing.tags.clone(),
        lines,
        errors: errors.to_vec(),
        total: listing.total,
        page: listing.page,
        pages: listing.pages,
        base_query,
    })
}
