//! Show-back: what each DAG of an environment used over the last days (MAP API calls, rows
//! moved, task runtime, staged storage) and what that costs at the environment's prices.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use drover_spec::environment::Costs;
use drover_store::UsageRow;

use crate::WebState;
use crate::error::Failure;

/// Use summed over a span, with its cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct UsageTotals {
    pub(crate) api_calls: i64,
    pub(crate) rows_moved: i64,
    pub(crate) runtime_hours: f64,
    /// Gigabytes of staged data held, summed over the days (GB-days).
    pub(crate) storage_gb_days: f64,
    /// Staged bytes held at the end of the span.
    pub(crate) storage_bytes_now: i64,
    pub(crate) cost: f64,
}

impl UsageTotals {
    fn add(&mut self, r: &UsageRow, costs: &Costs, last_day: NaiveDate) {
        let hours = r.runtime_secs / 3600.0;
        let gb_days = r.storage_bytes as f64 / 1e9;
        self.api_calls += r.api_calls;
        self.rows_moved += r.rows_moved;
        self.runtime_hours += hours;
        self.storage_gb_days += gb_days;
        if r.day == last_day {
            self.storage_bytes_now += r.storage_bytes;
        }
        self.cost += r.api_calls as f64 * costs.per_api_call
            + hours * costs.per_runtime_hour
            + gb_days * costs.per_gb_day
            + r.rows_moved as f64 / 1e6 * costs.per_million_rows;
    }
}

/// An environment's use over `days` days, per DAG and per day.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Usage {
    pub(crate) environment: String,
    pub(crate) days: i64,
    pub(crate) costs: Costs,
    pub(crate) total: UsageTotals,
    pub(crate) dags: Vec<(String, UsageTotals)>,
    pub(crate) per_day: Vec<(NaiveDate, UsageTotals)>,
}

pub(crate) async fn usage(
    state: &WebState,
    environment: &str,
    days: i64,
) -> Result<Usage, Failure> {
    let days = days.clamp(1, 400);
    let envs = state.environments().await?;
    let costs = envs
        .iter()
        .find(|e| e.name == environment)
        .map(|e| e.costs.clone())
        .ok_or_else(|| Failure::not_found(format!("no environment `{environment}`")))?;
    let today = Utc::now().date_naive();
    let since = today - Duration::days(days - 1);
    let rows = state.store().usage(environment, since).await?;
    let mut total = UsageTotals::default();
    let mut dags: BTreeMap<String, UsageTotals> = BTreeMap::new();
    let mut per_day: BTreeMap<NaiveDate, UsageTotals> = BTreeMap::new();
    let mut day = since;
    while day <= today {
        per_day.insert(day, UsageTotals::default());
        day += Duration::days(1);
    }
    for r in &rows {
        total.add(r, &costs, today);
        dags.entry(r.dag_id.clone())
            .or_default()
            .add(r, &costs, today);
        per_day.entry(r.day).or_default().add(r, &costs, today);
    }
    let mut dags: Vec<(String, UsageTotals)> = dags.into_iter().collect();
    dags.sort_by(|a, b| b.1.cost.total_cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
    Ok(Usage {
        environment: environment.to_owned(),
        days,
        costs,
        total,
        dags,
        per_day: per_day.into_iter().collect(),
    })
}

/// `$12.34` / `12.34 EUR`.
pub(crate) fn money(amount: impl std::borrow::Borrow<f64>, currency: &str) -> String {
    let amount = *amount.borrow();
    match currency {
        "USD" => format!("${amount:.2}"),
        "EUR" => format!("€{amount:.2}"),
        "GBP" => format!("£{amount:.2}"),
        other => format!("{amount:.2} {other}"),
    }
}
