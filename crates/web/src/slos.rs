//! Data SLOs as the pages, the API and `/metrics` show them: every check task of a DAG's
//! current version that declares an `slo:`, with where its error budget stands.

use drover_spec::dag::TaskKind;
use drover_spec::dag::slo::{Slo, SloStatus};
use drover_store::SloTallies;

use crate::WebState;
use crate::error::Failure;

/// One SLO and its status.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SloLine {
    pub(crate) environment: String,
    pub(crate) dag_id: String,
    pub(crate) task_id: String,
    pub(crate) objective: f64,
    pub(crate) period_secs: u64,
    pub(crate) described: String,
    pub(crate) good: i64,
    pub(crate) total: i64,
    pub(crate) status: SloStatus,
    pub(crate) verdict: &'static str,
}

impl SloLine {
    fn new(environment: &str, dag_id: &str, task_id: &str, slo: &Slo, t: SloTallies) -> Self {
        let status = slo.status(t.period, t.last_1h, t.last_6h);
        Self {
            environment: environment.to_owned(),
            dag_id: dag_id.to_owned(),
            task_id: task_id.to_owned(),
            objective: slo.objective,
            period_secs: slo.period.as_secs(),
            described: slo.describe(),
            good: t.period.good,
            total: t.period.total,
            verdict: status.verdict(),
            status,
        }
    }

    /// "99.2%" or "no checks yet".
    pub(crate) fn sli_text(&self) -> String {
        self.status.sli.map_or_else(
            || "no checks yet".to_owned(),
            |s| format!("{:.1}%", s * 100.0),
        )
    }

    /// The budget left as a percentage, and as a bar width 0–100. Over fewer than
    /// [`FEW_CHECKS`] checks a percentage would mislead (one failure of one check is "−1900 %"),
    /// so it says so; an overspent budget reads as how many times it was spent.
    pub(crate) fn budget_text(&self) -> String {
        budget_words(self.status.budget_remaining, self.total)
    }

    pub(crate) fn budget_bar(&self) -> u32 {
        (self.status.budget_remaining * 100.0).clamp(0.0, 100.0) as u32
    }

    pub(crate) fn burn_text(&self) -> String {
        let f = |b: Option<f64>| b.map_or_else(|| "–".to_owned(), |b| format!("{b:.1}×"));
        format!(
            "{} (1h) · {} (6h)",
            f(self.status.burn_1h),
            f(self.status.burn_6h)
        )
    }
}

/// Checks in the period below which an error budget is not judged.
pub(crate) const FEW_CHECKS: i64 = 10;

fn budget_words(remaining: f64, checks: i64) -> String {
    if checks < FEW_CHECKS {
        return format!("too few checks to judge ({checks} of {FEW_CHECKS})");
    }
    if remaining < 0.0 {
        return format!("spent {:.1}× over", 1.0 - remaining);
    }
    format!("{:.0}% left", remaining * 100.0)
}

/// The SLOs of `environment` (all environments when `None`).
pub(crate) async fn slo_lines(
    state: &WebState,
    environment: Option<&str>,
) -> Result<Vec<SloLine>, Failure> {
    let store = state.store();
    let mut out = Vec::new();
    for de in store.dag_envs(environment).await? {
        if !de.active {
            continue;
        }
        let Ok(dag) = state.ops().dags().get(de.version_id).await else {
            continue;
        };
        for task in &dag.tasks {
            let TaskKind::Check(check) = &task.kind else {
                continue;
            };
            let Some(slo) = &check.slo else {
                continue;
            };
            let tallies = store
                .slo_tallies(
                    &de.dag_id,
                    &de.environment,
                    &task.id,
                    slo.period.to_std().as_secs_f64(),
                )
                .await?;
            out.push(SloLine::new(
                &de.environment,
                &de.dag_id,
                &task.id,
                slo,
                tallies,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_reads_honestly() {
        assert_eq!(budget_words(-19.0, 1), "too few checks to judge (1 of 10)");
        assert_eq!(budget_words(-19.0, 40), "spent 20.0× over");
        assert_eq!(budget_words(0.8, 40), "80% left");
        assert_eq!(budget_words(1.0, 10), "100% left");
    }
}
