//! The home page for business users: per environment (the highest first for viewers, who
//! mostly look at prod), what needs attention, stale data, what ran today and what runs next.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use chrono::{Duration, Utc};
use drover_engine::story::RunStory;
use drover_spec::environment::Role;
use drover_store::{RunFilter, RunOrder, RunRow, RunState};

use super::Chrome;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;
use crate::freshness::FreshnessLine;
use crate::listing::{DagFilter, cached_list_dags};
use crate::slos::{SloLine, slo_lines};
use crate::views;

/// Recent runs read per environment: a day's worth for any ordinary setup.
const RECENT: i64 = 200;
const RAN_TODAY: usize = 20;
const RUNS_NEXT: usize = 10;

#[derive(Clone)]
pub(crate) struct RunLine {
    run: RunRow,
    /// `success`, `warning`, `failed`, `running`, `queued`.
    outcome: &'static str,
    words: String,
    sentence: String,
    /// "Ran Wed 2 Dec 02:00 New York · data for Tue 1 Dec".
    label: String,
    /// Whether it missed its deadline.
    late: bool,
}

pub(crate) struct NextLine {
    dag_id: String,
    /// "tonight 02:00 New York, in 3 h".
    when: String,
    utc: String,
}

pub(crate) struct EnvSection {
    name: String,
    /// Returns waiting for approval of their plan.
    approvals: Vec<super::run_approval::ApprovalLine>,
    attention: Vec<RunLine>,
    slos: Vec<SloLine>,
    /// Data older than its DAG's (or task's) `freshness` allows.
    stale: Vec<FreshnessLine>,
    /// How many DAGs and tasks here declare `freshness`.
    freshness_declared: usize,
    ran: Vec<RunLine>,
    next: Vec<NextLine>,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    chrome: Chrome,
    sections: Vec<EnvSection>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
) -> Result<HomePage, PageError> {
    let mut envs = state.environments().await?.to_vec();
    envs.sort_by_key(|e| e.order);
    if user.actor.role == Role::Viewer {
        envs.reverse();
    }
    let now = Utc::now();
    let day_ago = now - Duration::hours(24);
    let mut sections = Vec::with_capacity(envs.len());
    for env in &envs {
        let runs = state
            .store()
            .runs_page(
                &RunFilter {
                    dag_id: None,
                    environment: Some(env.name.clone()),
                    state: None,
                    limit: RECENT,
                },
                None,
                RunOrder::RanAt,
            )
            .await?;
        let runs: Vec<RunRow> = runs
            .into_iter()
            .filter(|r| {
                r.started_at.is_some_and(|t| t >= day_ago)
                    || r.finished_at.is_some_and(|t| t >= day_ago)
            })
            .collect();
        let stories = state.ops().stories(&runs).await?;
        let mut attention = Vec::new();
        let mut ran = Vec::new();
        for run in runs {
            let story = stories.get(&run.id);
            let line = run_line(&state, now, run, story).await;
            let finished_today = line.run.finished_at.is_some_and(|t| t >= day_ago);
            let needs =
                (finished_today && matches!(line.outcome, "failed" | "warning")) || line.late;
            let started_today = line.run.started_at.is_some_and(|t| t >= day_ago);
            match (needs, started_today && ran.len() < RAN_TODAY) {
                (true, true) => {
                    attention.push(line.clone());
                    ran.push(line);
                }
                (true, false) => attention.push(line),
                (false, true) => ran.push(line),
                (false, false) => {}
            }
        }
        let slos = slo_lines(&state, Some(&env.name))
            .await?
            .into_iter()
            .filter(|s| matches!(s.verdict, "burning" | "exhausted"))
            .collect();
        let freshness = crate::freshness::lines(&state, Some(&env.name)).await?;
        let freshness_declared = freshness.len();
        let stale = freshness.into_iter().filter(|l| l.state.stale).collect();
        sections.push(EnvSection {
            approvals: super::run_approval::waiting(&state, &env.name).await?,
            name: env.name.clone(),
            attention,
            slos,
            stale,
            freshness_declared,
            ran,
            next: runs_next(&state, &env.name, now).await?,
        });
    }
    Ok(HomePage {
        chrome: Chrome::new(&user, "home", None),
        sections,
    })
}

async fn run_line(
    state: &WebState,
    now: chrono::DateTime<Utc>,
    run: RunRow,
    story: Option<&RunStory>,
) -> RunLine {
    // The zone of the DAG version the run used; UTC when that version cannot be read.
    let tz = match state.ops().dags().get(run.version_id).await {
        Ok(dag) => dag.timezone,
        Err(_) => chrono_tz::Tz::UTC,
    };
    let (label, _) = views::local_time::run_words(now, &run, tz);
    let (outcome, words, sentence) = match story {
        Some(s) => (
            s.outcome(run.state),
            s.outcome_words(run.state),
            s.sentence.clone(),
        ),
        None => (
            run.state.as_str(),
            views::state_words(run.state.as_str()).to_owned(),
            String::new(),
        ),
    };
    let late = run.deadline_state.as_deref() == Some("missed")
        || (run.state == RunState::Running && run.deadline_at.is_some_and(|d| d < now));
    RunLine {
        run,
        outcome,
        words,
        sentence,
        label,
        late,
    }
}

/// The next scheduled runs of the environment's unpaused DAGs, soonest first.
async fn runs_next(
    state: &WebState,
    environment: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<NextLine>, PageError> {
    let mut found = Vec::new();
    let mut page = 1;
    loop {
        let filter = DagFilter {
            page: Some(page),
            ..DagFilter::default()
        };
        let listing = cached_list_dags(state, environment, &filter).await?;
        for item in &listing.items {
            if let (false, Some(at)) = (item.paused, item.next_run_at) {
                found.push((at, item.id.clone(), item.timezone));
            }
        }
        if page >= listing.pages {
            break;
        }
        page += 1;
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(found
        .into_iter()
        .take(RUNS_NEXT)
        .map(|(at, dag_id, tz)| NextLine {
            dag_id,
            when: views::local_time::next_run(now, at, tz),
            utc: views::local_time::utc(at),
        })
        .collect())
}
