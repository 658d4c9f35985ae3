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

    /// The budget left as a percentage (can be negative), and as a bar width 0–100.
    pub(crate) fn budget_text(&self) -> String {
        format!("{:.0}%", self.status.budget_remaining * 100.0)
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
