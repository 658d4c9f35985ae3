//! Data intervals: the span of time a scheduled run covers, from the previous fire time to its
//! own fire time.

use std::iter::FusedIterator;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::fire::{FireTimes, Schedule, ceil_secs};

/// The half-open interval `[start, end)` of data a run covers: `end` is the run's fire time
/// and `start` the previous fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Schedule {
    /// Interval of the run that fires at `end` (= a fire time): start is the previous fire
    /// time. `None` if `end` is not a fire time of this schedule, or there is no earlier fire
    /// within about 30 years.
    pub fn interval_ending_at(&self, end: DateTime<Utc>) -> Option<DataInterval> {
        let start = self.prev_before(end)?;
        (self.next_after(start)? == end).then_some(DataInterval { start, end })
    }

    /// Latest complete interval at `now` (`end <= now`), for manual runs.
    pub fn latest_complete_interval(&self, now: DateTime<Utc>) -> Option<DataInterval> {
        // The last fire at or before `now` is the last fire before `now` rounded down + 1 s.
        let end = self.prev_fire(now.timestamp() + 1)?;
        let start = self.prev_fire(end)?;
        Some(DataInterval {
            start: DateTime::from_timestamp(start, 0)?,
            end: DateTime::from_timestamp(end, 0)?,
        })
    }

    /// The whole interval `at` falls in: it starts at the latest fire time at or before `at`
    /// and ends at the next one. An instant exactly on a fire time starts that interval.
    /// `None` if there is no fire within about 30 years either side.
    pub fn interval_containing(&self, at: DateTime<Utc>) -> Option<DataInterval> {
        // The last fire at or before `at`: the last one strictly before the next whole second.
        let start = self.prev_fire(at.timestamp() + 1)?;
        let start = DateTime::from_timestamp(start, 0)?;
        let end = self.next_after(start)?;
        Some(DataInterval { start, end })
    }

    /// The interval a date names, as a logical date does: the interval that starts with the
    /// first fire time on that day in the schedule's time zone (a daily 02:00 schedule's
    /// 2026-11-20 is 2026-11-20 02:00 to 2026-11-21 02:00; an hourly one's is 00:00 to 01:00).
    /// On a day with no fire time (Saturday for a weekday schedule) it is the interval the
    /// day's start falls in (Friday's run to Monday's). `None` if the day's start does not
    /// exist or there is no fire within about 30 years.
    pub fn interval_for_date(&self, date: NaiveDate) -> Option<DataInterval> {
        let day_start = local_day_start(self.timezone(), date)?;
        let next_day = local_day_start(self.timezone(), date.checked_add_days(Days::new(1))?)?;
        // The first fire at or after the day's start.
        match self.next_after(day_start - chrono::Duration::seconds(1)) {
            Some(first) if first < next_day => {
                let end = self.next_after(first)?;
                Some(DataInterval { start: first, end })
            }
            _ => self.interval_containing(day_start),
        }
    }

    /// Intervals for catchup/backfill, lazily: every interval with `start >= from` and
    /// `end <= to`, in order and contiguous (each starts where the previous ended). `from` is
    /// a start date: the first interval starts at the first fire time `>= from`.
    pub fn intervals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Intervals<'_> {
        Intervals {
            fires: FireTimes::new(self, ceil_secs(from) - 1),
            to,
            start: None,
            done: false,
        }
    }
}

/// The first instant of a local day: midnight, or the end of a gap that swallows midnight.
fn local_day_start(tz: chrono_tz::Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    (0..=24 * 60).find_map(|minute| {
        let local = date.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(minute);
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Iterator over contiguous data intervals, from [`Schedule::intervals`].
#[derive(Debug, Clone)]
pub struct Intervals<'a> {
    fires: FireTimes<'a>,
    to: DateTime<Utc>,
    /// End of the previous interval (start of the next), once the first fire is known.
    start: Option<DateTime<Utc>>,
    done: bool,
}

impl Iterator for Intervals<'_> {
    type Item = DataInterval;

    fn next(&mut self) -> Option<DataInterval> {
        if self.done {
            return None;
        }
        let start = match self.start {
            Some(start) => Some(start),
            None => self.fires.next(),
        };
        let interval = match (start, self.fires.next()) {
            (Some(start), Some(end)) if end <= self.to => Some(DataInterval { start, end }),
            _ => None,
        };
        match interval {
            Some(interval) => self.start = Some(interval.end),
            None => self.done = true,
        }
        interval
    }
}

impl FusedIterator for Intervals<'_> {}
