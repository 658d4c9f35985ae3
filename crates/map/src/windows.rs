//! Date windows for bulk exports (Marketo accepts at most 31 days per job).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::MapError;

/// Longest window Marketo accepts in a bulk export filter.
pub const MAX_EXPORT_WINDOW_DAYS: i64 = 31;

/// A time range `[start, end]` for a `createdAt`/`updatedAt` export filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateWindow {
    /// Start of the range.
    pub start: DateTime<Utc>,
    /// End of the range.
    pub end: DateTime<Utc>,
}

impl DateWindow {
    /// A window; fails if `end` is before `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, MapError> {
        if end < start {
            return Err(MapError::InvalidRequest(format!(
                "the window ends ({end}) before it starts ({start})"
            )));
        }
        Ok(Self { start, end })
    }

    /// Checks the 31-day maximum.
    pub fn validate_for_export(&self) -> Result<(), MapError> {
        if self.end < self.start {
            return Err(MapError::InvalidRequest(
                "the export window ends before it starts".to_owned(),
            ));
        }
        if self.end - self.start > Duration::days(MAX_EXPORT_WINDOW_DAYS) {
            return Err(MapError::InvalidRequest(format!(
                "an export window may span at most {MAX_EXPORT_WINDOW_DAYS} days, not {} to {}; split it with split_date_range",
                self.start, self.end
            )));
        }
        Ok(())
    }

    /// ISO-8601 without milliseconds, as the bulk API wants it.
    pub(crate) fn start_iso(&self) -> String {
        self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// ISO-8601 without milliseconds, as the bulk API wants it.
    pub(crate) fn end_iso(&self) -> String {
        self.end.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

/// Splits `[start, end]` into consecutive windows of at most `max_days` days (clamped to 1..=31).
/// Windows are adjacent: each one ends where the next starts. Marketo's bounds are treated as
/// inclusive, so a record stamped exactly on a boundary may come back from both windows: keep
/// the rows of each window in `[start, end)` (the engine's export task does).
pub fn split_date_range(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_days: i64,
) -> Result<Vec<DateWindow>, MapError> {
    if end < start {
        return Err(MapError::InvalidRequest(format!(
            "the date range ends ({end}) before it starts ({start})"
        )));
    }
    let step = Duration::days(max_days.clamp(1, MAX_EXPORT_WINDOW_DAYS));
    let mut out = Vec::new();
    let mut from = start;
    loop {
        let to = (from + step).min(end);
        out.push(DateWindow {
            start: from,
            end: to,
        });
        if to >= end {
            break;
        }
        from = to;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn splits_into_31_day_windows() {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        let end = Utc
            .with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
            .single()
            .expect("date");
        let w = split_date_range(start, end, 31).expect("split");
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].start, start);
        assert_eq!(w[2].end, end);
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for x in &w {
            x.validate_for_export().expect("≤ 31 days");
        }
        assert_eq!(w[0].start_iso(), "2026-01-01T00:00:00Z");
        let single = split_date_range(start, start, 31).expect("split");
        assert_eq!(single.len(), 1);
        assert!(split_date_range(end, start, 31).is_err());
    }
}
