//! `check`: a number from SQL over staged data (or a count from the MAP) held against its
//! thresholds. The value and verdict are stored for the data-checks view; a failing check
//! with severity `fail` fails its task, with `warn` it only says so.

use drover_spec::dag::slo::Slo;
use drover_spec::dag::{CheckSource, CheckSpec, Severity};
use drover_spec::template::render_sql;
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
    let passed = value.is_some_and(|v| {
        spec.min.is_none_or(|min| v >= min) && spec.max.is_none_or(|max| v <= max)
    });
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
            min: spec.min,
            max: spec.max,
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
    let expected = expectation(
        spec.min.map(|v| spec.show(v)),
        spec.max.map(|v| spec.show(v)),
    );
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
