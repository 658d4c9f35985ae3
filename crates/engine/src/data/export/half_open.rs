//! Half-open export windows. A run covers `[since, until)`, but Marketo's bulk filters take
//! `{startAt, endAt}` in whole seconds and do not say whether `endAt` is exclusive: read
//! inclusively, a record stamped exactly at `until` would be exported by this run and the next,
//! and one stamped on the instant where two ≤ 31-day jobs meet would come back twice. So each
//! job asks for the whole seconds covering its window, and its staged rows are trimmed to the
//! job's own `[start, end)` on the column the filter is about (one pass once all are loaded: a
//! column says which job loaded each row).
//!
//! For `updated_at` the column is the visible `updatedAt` field, although Marketo's bulk filter
//! means the last change to *any* field (map-api.md §1.6); the visible field is what the file
//! holds. The visible time never comes after that last change, so a row stamped at or after a
//! job's end was changed exactly on the boundary and the next window exports it too: dropping it
//! is safe. A row stamped before `since` may have changed inside the window in a field the
//! visible stamp does not follow, and no other run would see it: it is kept. `created_at` and
//! activity exports filter on the very value the MAP filters on, so both ends are trimmed.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use drover_map::DateWindow;
use drover_spec::dataset::quote_ident;
use sqlx::{AssertSqlSafe, Executor};

use super::TaskError;

/// The staged column an export's time filter is about, and where each job's window ends.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bounds {
    /// The staged column (`updatedAt`, `createdAt`, `activityDate`).
    pub(super) column: &'static str,
    /// The interval's start (rows before it are dropped when `trim_start`).
    pub(super) since: DateTime<Utc>,
    /// Whether rows stamped before `since` are dropped (not for `updatedAt`, see above).
    pub(super) trim_start: bool,
    /// The exclusive end of each job's window, in load order; the last one is `until`.
    pub(super) ends: Vec<DateTime<Utc>>,
    /// Whether the column was exported only to filter on (dropped once the rows are trimmed).
    pub(super) added: bool,
}

/// The windows to ask the MAP for, covering `[since, until)` in whole seconds (the bulk API
/// takes no milliseconds), each at most 31 days; and the exclusive end of each.
pub(super) fn covering_windows(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(Vec<DateWindow>, Vec<DateTime<Utc>>), TaskError> {
    if until <= since {
        return Err(TaskError::Invalid(format!(
            "the window is empty: `until` ({until}) is not after `since` ({since})"
        )));
    }
    let second = TimeDelta::seconds(1);
    let start = since.duration_trunc(second).unwrap_or(since);
    let end = until.duration_trunc(second).unwrap_or(until);
    let end = if end < until { end + second } else { end };
    let windows = drover_map::split_date_range(start, end, drover_map::MAX_EXPORT_WINDOW_DAYS)
        .map_err(super::map_error)?;
    let mut ends: Vec<DateTime<Utc>> = windows.iter().map(|w| w.end).collect();
    if let Some(last) = ends.last_mut() {
        *last = until;
    }
    Ok((windows, ends))
}

/// The column that says which job loaded a row (0-based), while the rows are trimmed.
pub(super) const JOB_COLUMN: &str = "__drover_job";

/// Before job `job` is loaded: its rows get its number (a column default, so COPY fills it).
pub(super) async fn mark_job(
    conn: &mut sqlx::PgConnection,
    relation: &str,
    job: usize,
) -> Result<(), TaskError> {
    let job =
        i32::try_from(job).map_err(|_| TaskError::Invalid("too many export jobs".to_owned()))?;
    (&mut *conn)
        .execute(AssertSqlSafe(format!(
            "alter table {relation} alter column {} set default {job}",
            quote_ident(JOB_COLUMN)
        )))
        .await?;
    Ok(())
}

/// Once every job is loaded, in one pass: drops each job's rows stamped at or after its
/// window's end, and those before `since` when `trim_start`; then the job column, and the
/// filter's column if it was exported only to filter on. Returns how many rows were dropped.
pub(super) async fn trim(
    conn: &mut sqlx::PgConnection,
    relation: &str,
    bounds: &Bounds,
) -> Result<u64, TaskError> {
    let column = quote_ident(bounds.column);
    let job = quote_ident(JOB_COLUMN);
    // Arrays are 1-based: job k's end is element k + 1.
    let dropped = sqlx::query(AssertSqlSafe(format!(
        "delete from {relation} where {column} >= ($1::timestamptz[])[{job} + 1] or ($2 and {column} < $3)"
    )))
    .bind(&bounds.ends)
    .bind(bounds.trim_start)
    .bind(bounds.since)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let mut drop = format!("alter table {relation} drop column {job}");
    if bounds.added {
        drop.push_str(&format!(", drop column {column}"));
    }
    (&mut *conn).execute(AssertSqlSafe(drop)).await?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn windows_cover_sub_second_and_offset_bounds_in_whole_seconds() {
        let (w, ends) = covering_windows(
            at("2026-03-01T10:00:00.250+01:00"),
            at("2026-03-01T11:00:00.5Z"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].start, at("2026-03-01T09:00:00Z"));
        assert_eq!(w[0].end, at("2026-03-01T11:00:01Z"));
        // The exclusive end stays the exact `until`, not the rounded second.
        assert_eq!(ends, vec![at("2026-03-01T11:00:00.5Z")]);
    }

    #[test]
    fn split_jobs_end_where_the_next_starts_and_the_last_at_until() {
        let since = at("2026-01-01T00:00:00Z");
        let until = at("2026-02-10T00:00:00Z");
        let (w, ends) = covering_windows(since, until).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].end, w[1].start);
        assert_eq!(ends, vec![at("2026-02-01T00:00:00Z"), until]);
        assert!(covering_windows(until, until).is_err());
        assert!(covering_windows(until, since).is_err());
    }
}
