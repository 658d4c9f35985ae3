//! Deadlines: a run or task must finish within a duration of its scheduled time, or by a
//! local time of day (in the DAG's time zone) on or after it.

use chrono::{DateTime, Days, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// `deadline: { within: 2h }` or `deadline: { by: "07:00" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDeadline", into = "RawDeadline")]
pub enum Deadline {
    /// Within this long of the scheduled time.
    Within(Duration),
    /// By this time of day, local to the DAG, at or after the scheduled time.
    By(NaiveTime),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

impl TryFrom<RawDeadline> for Deadline {
    type Error = String;

    fn try_from(raw: RawDeadline) -> Result<Self, Self::Error> {
        match (raw.within, raw.by) {
            (Some(d), None) if d.as_millis() == 0 => {
                Err("`deadline.within` must be longer than 0s".to_owned())
            }
            (Some(d), None) => Ok(Self::Within(d)),
            (None, Some(by)) => NaiveTime::parse_from_str(by.trim(), "%H:%M")
                .map(Self::By)
                .map_err(|_| {
                    format!(
                        "`deadline.by` must be a time of day as HH:MM (e.g. \"07:30\"), not `{by}`"
                    )
                }),
            (Some(_), Some(_)) => Err(
                "a deadline is either `within: <duration>` or `by: \"HH:MM\"`, not both".to_owned(),
            ),
            (None, None) => Err(
                "a deadline needs `within: <duration>` (e.g. 2h) or `by: \"HH:MM\"` (local time)"
                    .to_owned(),
            ),
        }
    }
}

impl From<Deadline> for RawDeadline {
    fn from(d: Deadline) -> Self {
        match d {
            Deadline::Within(w) => Self {
                within: Some(w),
                by: None,
            },
            Deadline::By(t) => Self {
                within: None,
                by: Some(t.format("%H:%M").to_string()),
            },
        }
    }
}

impl Deadline {
    /// When a run or task scheduled at `scheduled` must have finished.
    pub fn due(&self, scheduled: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match *self {
            Self::Within(d) => {
                scheduled
                    + chrono::Duration::milliseconds(
                        i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
                    )
            }
            Self::By(time) => {
                let local = scheduled.with_timezone(&tz);
                let mut day = local.date_naive();
                // Today's time if still ahead, else tomorrow's; a time skipped by a DST change
                // falls to the first valid moment after it.
                for _ in 0..3 {
                    if let Some(at) = local_at(tz, day, time).filter(|at| *at >= scheduled) {
                        return at;
                    }
                    day = day.checked_add_days(Days::new(1)).unwrap_or(day);
                }
                scheduled
            }
        }
    }

    /// "within 2h" or "by 07:00".
    pub fn describe(&self) -> String {
        match self {
            Self::Within(d) => format!("within {d} of the scheduled time"),
            Self::By(t) => format!("by {}", t.format("%H:%M")),
        }
    }
}

fn local_at(tz: Tz, day: chrono::NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = day.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => (1..=120).find_map(|m| {
            tz.from_local_datetime(&(naive + chrono::Duration::minutes(m)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn parse(yaml: &str) -> Result<Deadline, String> {
        yaml_serde::from_str::<Deadline>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn within_counts_from_the_scheduled_time() {
        let d = parse("{ within: 90m }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.due(t("2026-03-01T06:00:00Z"), chrono_tz::UTC),
            t("2026-03-01T07:30:00Z")
        );
    }

    #[test]
    fn by_is_the_next_local_time_of_day_at_or_after_the_scheduled_time() {
        let d = parse("{ by: \"07:00\" }").unwrap_or_else(|e| panic!("{e}"));
        let ny = chrono_tz::America::New_York;
        // 06:30 New York (EST, UTC-5) → 07:00 the same day.
        assert_eq!(
            d.due(t("2026-01-15T11:30:00Z"), ny),
            t("2026-01-15T12:00:00Z")
        );
        // 08:00 New York → 07:00 the next day.
        assert_eq!(
            d.due(t("2026-01-15T13:00:00Z"), ny),
            t("2026-01-16T12:00:00Z")
        );
        // Across the spring change: 07:00 EDT is 11:00 UTC.
        assert_eq!(
            d.due(t("2026-03-08T05:00:00Z"), ny),
            t("2026-03-08T11:00:00Z")
        );
    }

    #[test]
    fn a_local_time_skipped_by_dst_falls_to_the_next_valid_moment() {
        let d = parse("{ by: \"02:30\" }").unwrap_or_else(|e| panic!("{e}"));
        // 2026-03-08 02:30 does not exist in New York; 03:00 EDT (07:00 UTC) does.
        assert_eq!(
            d.due(t("2026-03-08T05:00:00Z"), chrono_tz::America::New_York),
            t("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn malformed_deadlines_are_explained() {
        assert!(parse("{ by: \"7am\" }").is_err_and(|e| e.contains("HH:MM")));
        assert!(parse("{ within: 1h, by: \"07:00\" }").is_err_and(|e| e.contains("not both")));
        assert!(parse("{}").is_err_and(|e| e.contains("needs")));
        assert!(parse("{ within: 0s }").is_err_and(|e| e.contains("longer than 0s")));
        assert!(parse("{ until: 1h }").is_err());
    }
}
