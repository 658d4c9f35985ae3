//! Manual runs: the interval (given, or the latest complete one), parameters checked against
//! the DAG's declared params.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use drover_spec::dag::Dag;
use drover_store::{NewRun, RunType, Store};
use uuid::Uuid;

use super::{Actor, OpError};
use crate::DagCache;

/// A request for a manual run. Parameter values are text, parsed by each param's type.
#[derive(Debug, Clone, Default)]
pub struct TriggerRequest {
    pub dag_id: String,
    pub environment: String,
    pub params: Vec<(String, String)>,
    /// RFC 3339 or YYYY-MM-DD (midnight in the DAG's time zone); none: the latest interval.
    pub logical_date: Option<String>,
    /// A preview run: its returns record their plan and send nothing.
    pub preview: bool,
}

pub(super) async fn trigger(
    store: &Store,
    dags: &DagCache,
    actor: &Actor,
    req: &TriggerRequest,
) -> Result<Uuid, OpError> {
    let de = store
        .dag_env(&req.dag_id, &req.environment)
        .await
        .map_err(|_| {
            OpError::NotFound(format!(
                "DAG `{}` is not known in `{}`",
                req.dag_id, req.environment
            ))
        })?;
    let dag = dags.get(de.version_id).await?;
    let params = parse_params(&dag, &req.params)?;
    let params_json = serde_json::Value::Object(params);
    let now = Utc::now();
    let ManualInterval {
        logical_date: logical,
        start,
        end,
    } = manual_interval(&dag, req.logical_date.as_deref(), now)?;
    // The run and its audit event commit together.
    let mut tx = store.begin().await?;
    let id = tx
        .insert_run(&NewRun {
            dag_id: req.dag_id.clone(),
            environment: req.environment.clone(),
            version_id: de.version_id,
            run_type: RunType::Manual,
            logical_date: logical,
            interval_start: start,
            interval_end: end,
            params: params_json.clone(),
            triggered_by: Some(actor.name.clone()),
            deadline_at: dag.deadline.map(|d| d.due(now, dag.timezone)),
            preview: req.preview,
        })
        .await?
        .ok_or_else(|| OpError::Conflict("the run was not created".to_owned()))?;
    tx.audit(
        &actor.name,
        "run.trigger",
        Some(&req.environment),
        Some(&req.dag_id),
        Some(id),
        &serde_json::json!({
            "params": params_json,
            "logical_date": req.logical_date,
            "interval_start": start,
            "interval_end": end,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The logical date and data interval a manual run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualInterval {
    pub logical_date: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The interval a manual run covers, the rule the trigger form previews and the trigger uses:
///
/// - a date (YYYY-MM-DD) names the schedule interval it starts, read in the DAG's time zone:
///   the interval starting at the first fire time on that day (a daily 02:00 New York DAG's
///   2026-11-20 is 2026-11-20 02:00 to 2026-11-21 02:00 New York; an hourly one's is the
///   midnight hour); on a day without a fire time (a weekday DAG's Saturday) it is the
///   interval that day falls in (Friday's to Monday's);
/// - an instant (RFC 3339) names the interval it falls in: from the latest fire time at or
///   before it to the next one (an instant exactly on a fire time starts that interval);
/// - nothing: the latest complete interval at `now`.
///
/// The logical date is the interval's start, as for scheduled runs. This is the meaning a
/// logical date has in Airflow (the start of the data interval it names). Without a schedule
/// the interval is the instant itself (midnight for a date).
pub fn manual_interval(
    dag: &Dag,
    text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ManualInterval, OpError> {
    let point = |at: DateTime<Utc>| ManualInterval {
        logical_date: at,
        start: at,
        end: at,
    };
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let Some(schedule) = &dag.schedule else {
        return Ok(point(match text {
            Some(text) => parse_instant(text, dag)?,
            None => now,
        }));
    };
    let interval = match text {
        None => {
            return Ok(schedule
                .latest_complete_interval(now)
                .map_or(point(now), |i| ManualInterval {
                    logical_date: i.start,
                    start: i.start,
                    end: i.end,
                }));
        }
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => schedule.interval_for_date(date),
            Err(_) => schedule.interval_containing(parse_instant(text, dag)?),
        },
    };
    let i = interval.ok_or_else(|| {
        OpError::Invalid(format!(
            "the schedule has no run near `{}`",
            text.unwrap_or_default()
        ))
    })?;
    Ok(ManualInterval {
        logical_date: i.start,
        start: i.start,
        end: i.end,
    })
}

/// Parameter values by the DAG's declared params: unknown names and values outside the
/// choices are refused.
pub fn parse_params(
    dag: &Dag,
    pairs: &[(String, String)],
) -> Result<serde_json::Map<String, serde_json::Value>, OpError> {
    let mut out = serde_json::Map::new();
    for (name, value) in pairs {
        let Some(param) = dag.params.iter().find(|p| &p.name == name) else {
            let hint = drover_spec::suggest::did_you_mean(
                name,
                dag.params.iter().map(|p| p.name.as_str()),
            );
            return Err(OpError::Invalid(format!(
                "DAG `{}` has no parameter `{name}`{hint}",
                dag.id
            )));
        };
        let v = param
            .ty
            .parse_text(value)
            .map_err(|e| OpError::Invalid(format!("parameter {name}: {e}")))?;
        if !param.choices.is_empty() && !param.choices.contains(&v) {
            return Err(OpError::Invalid(format!(
                "parameter {name}: `{value}` is not one of the allowed choices"
            )));
        }
        out.insert(name.to_owned(), v);
    }
    Ok(out)
}

/// RFC 3339, or YYYY-MM-DD read as midnight in the DAG's time zone.
pub fn parse_instant(text: &str, dag: &Dag) -> Result<DateTime<Utc>, OpError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| OpError::Invalid(format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD")))?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| OpError::Invalid("invalid date".to_owned()))?;
    dag.timezone
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            OpError::Invalid(format!(
                "midnight of {text} does not exist in {}",
                dag.timezone
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(schedule: &str) -> Dag {
        let yaml = format!(
            "id: d\n{schedule}timezone: America/New_York\ntasks:\n  - id: t\n    command: {{ shell: \"true\" }}\n"
        );
        drover_spec::dag::load_dag("d.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn interval(d: &Dag, text: Option<&str>) -> (DateTime<Utc>, DateTime<Utc>) {
        let i = manual_interval(d, text, at("2026-12-02T15:00:00Z"))
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            i.logical_date, i.start,
            "the logical date starts the interval"
        );
        (i.start, i.end)
    }

    #[test]
    fn a_date_runs_the_whole_interval_it_names() {
        let daily = dag("schedule: \"0 2 * * *\"\n");
        // Was 05:00Z → 07:00Z (midnight to the next 02:00); now the whole day from 02:00.
        assert_eq!(
            interval(&daily, Some("2026-11-20")),
            (at("2026-11-20T07:00:00Z"), at("2026-11-21T07:00:00Z"))
        );
        assert_eq!(
            interval(&daily, Some(" 2026-11-20 ")),
            (at("2026-11-20T07:00:00Z"), at("2026-11-21T07:00:00Z"))
        );
        // An instant: the interval it falls in; exactly on a fire time, the one it starts.
        assert_eq!(
            interval(&daily, Some("2026-11-20T12:00:00-05:00")),
            (at("2026-11-20T07:00:00Z"), at("2026-11-21T07:00:00Z"))
        );
        assert_eq!(
            interval(&daily, Some("2026-11-20T01:59:00-05:00")),
            (at("2026-11-19T07:00:00Z"), at("2026-11-20T07:00:00Z"))
        );
        assert_eq!(
            interval(&daily, Some("2026-11-20T07:00:00Z")),
            (at("2026-11-20T07:00:00Z"), at("2026-11-21T07:00:00Z"))
        );
        // Nothing: the latest complete interval.
        assert_eq!(
            interval(&daily, None),
            (at("2026-12-01T07:00:00Z"), at("2026-12-02T07:00:00Z"))
        );
        assert_eq!(
            interval(&daily, Some("")),
            (at("2026-12-01T07:00:00Z"), at("2026-12-02T07:00:00Z"))
        );
    }

    #[test]
    fn without_a_schedule_the_date_is_its_midnight() {
        let manual = dag("");
        assert_eq!(
            interval(&manual, Some("2026-11-20")),
            (at("2026-11-20T05:00:00Z"), at("2026-11-20T05:00:00Z"))
        );
    }

    #[test]
    fn text_that_is_no_date_is_refused() {
        let daily = dag("schedule: \"0 2 * * *\"\n");
        for bad in ["yesterday", "2026-13-01", "20/11/2026"] {
            match manual_interval(&daily, Some(bad), Utc::now()) {
                Err(OpError::Invalid(m)) => assert!(m.contains(bad), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
