//! Data intervals: the span of time a scheduled run covers, from the previous fire time to its
//! own fire time.

use std::iter::FusedIterator;

use chrono::{DateTime, Utc};
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
