//! Usage and cost (show-back): per DAG and per day, what an environment's pipelines used and
//! what it costs at the environment's prices.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{Chrome, pick_env};
use crate::WebState;
use crate::auth::PageUser;
use crate::error::PageError;
use crate::usage::{Usage, UsageTotals, money, usage};
use crate::views::format::thousands;

#[derive(Debug, Deserialize)]
pub(crate) struct UsageQuery {
    env: Option<String>,
    days: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "usage.html")]
pub(crate) struct UsagePage {
    chrome: Chrome,
    envs: Vec<String>,
    env: String,
    u: Usage,
    priced: bool,
    /// The largest day's cost (or calls, unpriced), for the bars.
    peak: f64,
}

impl UsagePage {
    fn money(&self, t: &UsageTotals) -> String {
        if self.priced {
            money(t.cost, &self.u.costs.currency)
        } else {
            "—".to_owned()
        }
    }

    fn n(&self, v: &i64) -> String {
        thousands(*v)
    }

    fn hours(&self, t: &UsageTotals) -> String {
        format!("{:.2} h", t.runtime_hours)
    }

    fn storage(&self, t: &UsageTotals) -> String {
        let now = drover_spec::bytes::ByteSize(u64::try_from(t.storage_bytes_now).unwrap_or(0));
        format!("{now} now · {:.3} GB-days", t.storage_gb_days)
    }

    fn bar(&self, t: &UsageTotals) -> u32 {
        let v = if self.priced {
            t.cost
        } else {
            t.api_calls as f64
        };
        if self.peak <= 0.0 {
            0
        } else {
            ((v / self.peak) * 100.0).round().clamp(0.0, 100.0) as u32
        }
    }
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Query(q): Query<UsageQuery>,
) -> Result<UsagePage, PageError> {
    let envs = state.environments().await?;
    let env = pick_env(&envs, q.env.as_deref())
        .map(|e| e.name.clone())
        .unwrap_or_default();
    let u = usage(&state, &env, q.days.unwrap_or(30)).await?;
    let c = &u.costs;
    let priced = c.per_api_call > 0.0
        || c.per_runtime_hour > 0.0
        || c.per_gb_day > 0.0
        || c.per_million_rows > 0.0;
    let peak = u
        .per_day
        .iter()
        .map(|(_, t)| if priced { t.cost } else { t.api_calls as f64 })
        .fold(0.0, f64::max);
    Ok(UsagePage {
        chrome: Chrome::new(&user, "usage", Some(&env)),
        envs: envs.iter().map(|e| e.name.clone()).collect(),
        env,
        u,
        priced,
        peak,
    })
}
