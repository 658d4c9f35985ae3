//! Which scheduled runs are due: pure, so it can be tested without a clock or a database.

use chrono::{DateTime, Utc};
use drover_spec::dag::Dag;
use drover_spec::schedule::DataInterval;

/// A scheduled run to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRun {
    pub logical_date: DateTime<Utc>,
    pub interval: DataInterval,
}

/// The scheduled runs of `dag` due at `now`, given the end of the last scheduled interval
/// (`None` if it never ran), at most `limit` of them, oldest first.
///
/// - Without catchup, only the latest complete interval (if it is newer than the last run).
/// - With catchup, every interval from `start_date` (or the last run) up to `now`.
/// - Intervals end at a fire time; the run for `[start, end)` is due at `end`. Its logical date
///   is the interval's start.
/// - Nothing before `start_date`, nothing starting after `end_date`.
pub fn plan_runs(
    dag: &Dag,
    last_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<PlannedRun> {
    let Some(schedule) = &dag.schedule else {
        return Vec::new();
    };
    let within_end = |i: &DataInterval| dag.end_date.is_none_or(|end| i.start <= end);
    let after_start = |i: &DataInterval| dag.start_date.is_none_or(|s| i.start >= s);
    let newer = |i: &DataInterval| last_end.is_none_or(|l| i.start >= l);
    let planned = |i: DataInterval| PlannedRun {
        logical_date: i.start,
        interval: i,
    };
    if dag.catchup {
        let from = match (last_end, dag.start_date) {
            (Some(l), _) => l,
            (None, Some(s)) => s,
            (None, None) => {
                return schedule
                    .latest_complete_interval(now)
                    .into_iter()
                    .map(planned)
                    .collect();
            }
        };
        return schedule
            .intervals(from, now)
            .filter(|i| within_end(i) && after_start(i) && newer(i))
            .take(limit)
            .map(planned)
            .collect();
    }
    schedule
        .latest_complete_interval(now)
        .filter(|i| within_end(i) && after_start(i) && newer(i))
        .map(planned)
        .into_iter()
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(yaml_extra: &str) -> Dag {
        let src = format!(
            "id: d\nschedule: \"0 2 * * *\"\ntimezone: UTC\n{yaml_extra}tasks:\n  - id: a\n    noop: {{}}\n"
        );
        match drover_spec::dag::load_dag("d.yaml", &src) {
            Ok(d) => d,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn without_catchup_only_the_latest_interval_runs() {
        let d = dag("start_date: 2026-01-01\n");
        let runs = plan_runs(&d, None, t("2026-01-10T03:00:00Z"), 100);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].interval.start, t("2026-01-09T02:00:00Z"));
        assert_eq!(runs[0].interval.end, t("2026-01-10T02:00:00Z"));
        assert_eq!(runs[0].logical_date, runs[0].interval.start);
        // Already created: nothing more until the next fire.
        assert!(
            plan_runs(
                &d,
                Some(t("2026-01-10T02:00:00Z")),
                t("2026-01-10T03:00:00Z"),
                100
            )
            .is_empty()
        );
    }

    #[test]
    fn catchup_creates_every_missed_interval_in_order_bounded_by_limit() {
        let d = dag("start_date: 2026-01-01\ncatchup: true\n");
        let runs = plan_runs(&d, None, t("2026-01-10T03:00:00Z"), 100);
        // Fires at 02:00 from Jan 1: intervals Jan 1–2 … Jan 9–10.
        assert_eq!(runs.len(), 9);
        assert_eq!(runs[0].interval.start, t("2026-01-01T02:00:00Z"));
        assert!(
            runs.windows(2)
                .all(|w| w[0].interval.end == w[1].interval.start)
        );
        let limited = plan_runs(&d, None, t("2026-01-10T03:00:00Z"), 3);
        assert_eq!(limited.len(), 3);
        let rest = plan_runs(
            &d,
            Some(limited[2].interval.end),
            t("2026-01-10T03:00:00Z"),
            100,
        );
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[0].interval.start, limited[2].interval.end);
    }

    #[test]
    fn end_date_and_missing_schedule_stop_runs() {
        let d = dag("start_date: 2026-01-01\nend_date: 2026-01-03\ncatchup: true\n");
        let runs = plan_runs(&d, None, t("2026-01-10T03:00:00Z"), 100);
        assert_eq!(runs.len(), 2);
        let manual = match drover_spec::dag::load_dag(
            "m.yaml",
            "id: m\ntasks:\n  - id: a\n    noop: {}\n",
        ) {
            Ok(d) => d,
            Err(e) => panic!("{e:?}"),
        };
        assert!(plan_runs(&manual, None, t("2026-01-10T03:00:00Z"), 100).is_empty());
    }
}
