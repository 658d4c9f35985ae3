//! The pages: server-rendered HTML for people, and the forms that change things.

mod account;
mod audit;
mod checks;
mod dag;
mod dags;
mod dataset_links;
mod environments;
mod events;
mod glossary;
mod home;
mod login;
mod notifications;
pub(crate) mod plan;
mod receipt;
mod records;
mod rerun;
mod run;
mod run_approval;
mod run_revert;
mod runs;
mod task;
mod usage;
mod users;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use drover_engine::ops::role_name;
use drover_spec::environment::{Environment, Role};

use crate::WebState;
use crate::auth::CurrentUser;
use crate::views::url_encode;

pub(crate) use checks::colour as check_colour;
pub(crate) use run::parse_run;
pub(crate) use task::find_task;

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/dags", get(dags::page))
        .route("/dags/{dag}", get(dag::page))
        .route("/dags/{dag}/trigger", post(dag::trigger))
        .route("/dags/{dag}/interval", get(dag::interval))
        .route("/dags/{dag}/pause", post(dag::pause))
        .route("/dags/{dag}/unpause", post(dag::unpause))
        .route("/dags/{dag}/events", get(events::list))
        .route("/dags/{dag}/events/replay", post(events::replay_range))
        .route("/events/{event}", get(events::page))
        .route("/events/{event}/replay", post(events::replay_one))
        .route("/runs", get(runs::page))
        .route("/runs/{run}", get(run::page))
        .route("/runs/{run}/mark", post(run::mark))
        .route("/runs/{run}/clear", post(run::clear))
        .route("/runs/{run}/rerun-failed", post(rerun::rerun_failed))
        .route("/runs/{run}/revert", post(run::revert))
        .route("/runs/{run}/datasets/{task}", get(run::dataset))
        .route("/runs/{run}/tasks/{task}", get(task::page))
        .route(
            "/runs/{run}/tasks/{task}/approve",
            post(run_approval::approve),
        )
        .route(
            "/runs/{run}/tasks/{task}/reject",
            post(run_approval::reject),
        )
        .route("/runs/{run}/tasks/{task}/log.txt", get(task::download))
        .route("/runs/{run}/tasks/{task}/plan", get(plan::page))
        .route("/runs/{run}/tasks/{task}/receipt", get(receipt::page))
        .route("/runs/{run}/tasks/{task}/receipt.csv", get(receipt::csv))
        .route("/environments", get(environments::page))
        .route("/environments/diff", get(environments::diff))
        .route("/environments/{env}/promote", post(environments::promote))
        .route("/environments/{env}/approve", post(environments::approve))
        .route("/environments/{env}/reject", post(environments::reject))
        .route("/environments/{env}/rollback", post(environments::rollback))
        .route("/records", get(records::page))
        .route("/checks", get(checks::page))
        .route("/help/glossary", get(glossary::page))
        .route("/audit", get(audit::page))
        .route("/notifications", get(notifications::page))
        .route("/usage", get(usage::page))
        .route("/account", get(account::page))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/account/password", post(account::change_password))
        .route("/admin/users", get(users::page).post(users::add))
        .route("/admin/users/{name}/role", post(users::set_role))
        .route("/admin/users/{name}/disable", post(users::disable))
        .route("/admin/users/{name}/enable", post(users::enable))
}

/// What every page's frame shows: who is logged in, the section, a notice.
#[derive(Debug)]
pub(crate) struct Chrome {
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
    pub(crate) section: &'static str,
    pub(crate) is_admin: bool,
    /// `?env=…` to keep the environment across sections.
    pub(crate) env_query: String,
    /// The environment the page is about, if one (the top bar's record search looks there).
    pub(crate) env: String,
    pub(crate) notice: Option<&'static str>,
    /// Maintenance in force: the message, and until when.
    pub(crate) maintenance: Option<String>,
}

impl Chrome {
    pub(crate) fn new(user: &CurrentUser, section: &'static str, env: Option<&str>) -> Self {
        Self {
            user: user.name().to_owned(),
            role: role_name(user.actor.role),
            csrf: user.csrf().to_owned(),
            section,
            is_admin: user.actor.role == Role::Admin,
            env_query: env
                .map(|e| format!("?env={}", url_encode(e)))
                .unwrap_or_default(),
            env: env.unwrap_or_default().to_owned(),
            notice: None,
            maintenance: user.maintenance.as_ref().as_ref().map(|m| {
                let until = m
                    .until
                    .map(|u| format!(" Until {}.", u.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default();
                format!(
                    "Maintenance: {}.{until} Nothing new runs and nothing can be changed meanwhile; running tasks finish.",
                    m.message.trim_end_matches('.')
                )
            }),
        }
    }

    /// A notice after a form did something (`?done=<code>`).
    pub(crate) fn with_done(mut self, done: Option<&str>) -> Self {
        self.notice = done.and_then(notice_text);
        self
    }
}

/// Fixed texts for `?done=` codes (never free text from the URL).
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "triggered" => "Run triggered. It starts as soon as a worker is free.",
        "paused" => "Paused: no new scheduled runs until it is unpaused.",
        "unpaused" => "Unpaused: scheduled runs resume.",
        "cleared" => "Cleared: the task and what depends on it run again.",
        "rerun" => "The failed tasks and what depends on them run again.",
        "marked" => "Run marked.",
        "replayed" => {
            "Replayed: the event runs again in this new run, marked as a replay. The original and its run are unchanged."
        }
        "replayed_range" => {
            "Replayed: the events of that range run again in new runs, marked as replays (events that shared a run share one again)."
        }
        "reverted" => {
            "Revert queued: a worker writes the values back to Marketo; its progress is shown under Reverts."
        }
        "promoted" => "Promoted.",
        "requested" => "Promotion requested: it waits for a second person's approval.",
        "approved" => "Promotion approved and applied.",
        "rejected" => "Promotion rejected.",
        "rolledback" => "Rolled back to the previous commit.",
        "return_approved" => {
            "Plan approved: the return is queued again and writes as soon as a worker is free."
        }
        "return_rejected" => "Plan rejected: nothing was sent and the task failed.",
        "token" => "API token created.",
        "revoked" => "API token revoked.",
        "password" => "Password changed.",
        "user" => "User saved.",
        _ => return None,
    })
}

/// The environment a page is about: the one asked for, else the first (lowest) one.
pub(crate) fn pick_env<'a>(
    envs: &'a [Environment],
    asked: Option<&str>,
) -> Option<&'a Environment> {
    asked
        .and_then(|a| envs.iter().find(|e| e.name == a))
        .or_else(|| envs.first())
}

/// A form's redirect target with a notice.
pub(crate) fn back(path: &str, done: &str) -> Redirect {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}done={done}"))
}
