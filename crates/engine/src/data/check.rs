//! `check`: a number from SQL over staged data (or a count from the MAP) held against its
//! thresholds. The value and verdict are stored for the data-checks view; a failing check
//! with severity `fail` fails its task, with `warn` it only says so.

use drover_spec::dag::slo::Slo;
use drover_spec::dag::{CheckSource, CheckSpec, Severity, parse_threshold};
use drover_spec::template::{RenderContext, render, render_sql};
use drover_store::{CheckOutcome, SloBurn, TryMetrics};
use sqlx::AssertSqlSafe;

use super::transform_sql::as_subquery;
use super::{DataPlane, TaskError, TryId, maps};
use crate::runner::Job;

pub(super) async fn run(
    plane: &DataPlane,
    conn: Option<&mut sqlx::PgConnection>,
    id: &TryId,
    job: &Job<'_>,
    spec: &CheckSpec,
) -> Result<TryMetrics, TaskError> {
    let mut metrics = TryMetrics::default();
    let (min, max) = bounds(spec, &job.context)?;
    let value = match &spec.source {
        CheckSource::Sql(text) => {
            let sql = render_sql(text, "check.sql", &job.context)
                .map_err(|e| TaskError::Invalid(e.to_string()))?;
            let Some(conn) = conn else {
                return Err(TaskError::Transient(
                    "no connection for the check's SQL".to_owned(),
                ));
            };
            sqlx::query_scalar::<_, Option<f64>>(AssertSqlSafe(format!(
                "select (({}))::double precision",
                as_subquery(&sql)
            )))
            .fetch_one(conn)
            .await?
        }
        CheckSource::Map(count) => {
            let (n, usage) = maps::count_leads(id, job, &count.filter).await?;
            metrics.api_calls = Some(usage);
            Some(n as f64)
        }
    };
    let passed =
        value.is_some_and(|v| min.is_none_or(|min| v >= min) && max.is_none_or(|max| v <= max));
    let severity = match spec.severity {
        Severity::Warn => "warn",
        Severity::Fail => "fail",
    };
    plane
        .store
        .record_check(&CheckOutcome {
            run_id: id.run_id,
            task_id: &id.task_id,
            try_number: id.try_number,
            dag_id: &id.dag_id,
            environment: &id.environment.name,
            value,
            min,
            max,
            passed,
            severity,
        })
        .await?;
    if let Some(slo) = &spec.slo
        && !passed
    {
        slo_burn(plane, id, job, slo).await?;
    }
    let shown = value.map_or_else(|| "no value (null)".to_owned(), |v| spec.show(v));
    let expected = expectation(min.map(|v| spec.show(v)), max.map(|v| spec.show(v)));
    if passed {
        job.log
            .system(format!("check passed: {shown} is {expected}"));
        return Ok(metrics);
    }
    let message = format!("check failed: {shown} is not {expected}");
    match spec.severity {
        Severity::Warn => {
            job.log.system(format!("warning: {message}"));
            Ok(metrics)
        }
        Severity::Fail => Err(TaskError::Invalid(message)),
    }
}

/// The check's bounds, templated ones rendered (from params, variables, dates) and read as a
/// number or a percentage.
fn bounds(spec: &CheckSpec, ctx: &RenderContext) -> Result<(Option<f64>, Option<f64>), TaskError> {
    let one = |fixed: Option<f64>, template: Option<&str>, field: &str| match template {
        None => Ok(fixed),
        Some(t) => {
            let text = render(t, field, ctx).map_err(|e| TaskError::Invalid(e.to_string()))?;
            parse_threshold(&text)
                .map(|(v, _)| Some(v))
                .map_err(|e| TaskError::Invalid(format!("`{field}` ({t}) {e}")))
        }
    };
    let min = one(spec.min, spec.min_template.as_deref(), "check.min")?;
    let max = one(spec.max, spec.max_template.as_deref(), "check.max")?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(TaskError::Invalid(format!(
            "the check's bounds are empty: `min` ({}) is above `max` ({})",
            spec.show(lo),
            spec.show(hi)
        )));
    }
    Ok((min, max))
}

/// A failed check of an SLO: say where its error budget stands, and record a fast burn
/// (the `slo_burn` notification).
async fn slo_burn(
    plane: &DataPlane,
    id: &TryId,
    job: &Job<'_>,
    slo: &Slo,
) -> Result<(), TaskError> {
    let t = plane
        .store
        .slo_tallies(
            &id.dag_id,
            &id.environment.name,
            &id.task_id,
            slo.period.to_std().as_secs_f64(),
        )
        .await?;
    let status = slo.status(t.period, t.last_1h, t.last_6h);
    job.log.system(format!(
        "SLO {}: {:.0}% of the error budget left",
        slo.describe(),
        status.budget_remaining * 100.0
    ));
    if status.burning_fast() {
        job.log.system(format!(
            "SLO {} is burning its error budget fast (burn rate {:.1} over 1h, {:.1} over 6h)",
            slo.describe(),
            status.burn_1h.unwrap_or(0.0),
            status.burn_6h.unwrap_or(0.0)
        ));
        plane
            .store
            .record_slo_burn(&SloBurn {
                run_id: id.run_id,
                task_id: &id.task_id,
                dag_id: &id.dag_id,
                environment: &id.environment.name,
                burn_1h: status.burn_1h,
                burn_6h: status.burn_6h,
                budget_remaining: status.budget_remaining,
            })
            .await?;
    }
    Ok(())
}

fn expectation(min: Option<String>, max: Option<String>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "anything".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_spec::dag::{TaskKind, load_dag};

    fn spec(bounds: &str) -> CheckSpec {
        let src = format!(
            "id: d\nparams:\n  ratio: {{ type: number, default: 0.02 }}\ntasks:\n  - id: c\n    check:\n      sql: select 1\n      {bounds}\n"
        );
        let dag = load_dag("d.yaml", &src).unwrap_or_else(|e| panic!("{e:?}"));
        match dag.task("c").map(|t| &t.kind) {
            Some(TaskKind::Check(c)) => c.clone(),
            _ => panic!("no check"),
        }
    }

    fn ctx(ratio: serde_json::Value) -> RenderContext {
        RenderContext {
            params: [("ratio".to_owned(), ratio)].into_iter().collect(),
            ..RenderContext::default()
        }
    }

    #[test]
    fn templated_bounds_are_rendered_from_params_and_read_as_numbers_or_percentages() {
        let s = spec("max: \"{{ params.ratio }}\"");
        assert_eq!((s.max, s.percent), (None, false));
        assert_eq!(bounds(&s, &ctx(0.05.into())).ok(), Some((None, Some(0.05))));
        let s = spec("max: \"{{ params.ratio * 100 }}%\"");
        assert!(s.percent, "written as a percentage, shown as one");
        let (_, max) = bounds(&s, &ctx(0.02.into())).unwrap_or_else(|e| panic!("{e}"));
        assert!(max.is_some_and(|m| (m - 0.02).abs() < 1e-12), "{max:?}");
        let s = spec("between: [\"{{ params.ratio }}\", 0.5]");
        assert_eq!(
            bounds(&s, &ctx(0.1.into())).ok(),
            Some((Some(0.1), Some(0.5)))
        );
        let e = bounds(&s, &ctx(0.9.into()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`min` (0.9) is above `max` (0.5)"), "{e}");
        let e = bounds(&s, &ctx("lots".into()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("`lots` is not a threshold: write a number (0.02) or a percentage (2%)"),
            "{e}"
        );
    }

    #[test]
    fn a_templated_bound_with_an_undeclared_param_is_refused_at_validation() {
        let src = "id: d\ntasks:\n  - id: c\n    check:\n      sql: select 1\n      max: \"{{ params.nope }}\"\n";
        let e = load_dag("d.yaml", src)
            .err()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        assert!(e.contains("params.nope"), "{e}");
    }
}
