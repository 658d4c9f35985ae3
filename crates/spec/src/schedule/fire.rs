//! Fire times of a cron expression in a time zone, with ISC cron's DST behaviour.
//!
//! Candidate fire times are wall-clock times of local days. Each is mapped to instants with the
//! day's [`DaySpans`]: one instant normally; in a DST gap none for wildcard jobs and the end of
//! the gap for fixed-time jobs; in a fold both instants for wildcard jobs and the first one for
//! fixed-time jobs. The fire set is the union over all days (duplicates collapse).
//!
//! Regular days (no transition within ±17 h) map wall time to instant by a subtraction and
//! their instants cannot interleave with another day's, so the search stops at the first
//! regular day that has a fire. Irregular days are enumerated near the target instant only.

use std::iter::FusedIterator;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::calendar::{MINUTES_PER_DAY, SECS_PER_DAY};
use super::cron::CronExpr;
use super::zone::{DaySpans, Instants, offset_at};

/// How far [`Schedule::next_after`] and [`Schedule::prev_before`] look: about 30 years.
const SEARCH_DAYS: i64 = 30 * 366;

/// A cron expression evaluated in an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cron: CronExpr,
    tz: Tz,
}

/// A fire found by the search, with its local day and (if regular) the day's offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) at: i64,
    day: i64,
    regular_offset: Option<i64>,
}

impl Schedule {
    /// `cron` evaluated in the IANA time zone `tz` (use `Tz::UTC` for UTC).
    pub fn new(cron: CronExpr, tz: Tz) -> Schedule {
        Schedule { cron, tz }
    }

    /// The cron expression.
    pub fn cron(&self) -> &CronExpr {
        &self.cron
    }

    /// The time zone wall-clock times are read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, or `None` if there is none within about
    /// 30 years (or beyond chrono's range).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let found = self.next_fire(after.timestamp())?;
        DateTime::from_timestamp(found.at, 0)
    }

    /// The last fire time strictly before `before`, or `None` if there is none within about
    /// 30 years. Consistent with [`Schedule::next_after`]: both walk the same set of fire
    /// times, so `prev_before(next_after(t))` is the last fire at or before `t`.
    pub fn prev_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = self.prev_fire(ceil_secs(before))?;
        DateTime::from_timestamp(at, 0)
    }

    /// Fire times strictly after `after`, in increasing order. Lazy; it ends only if a search
    /// step finds nothing within about 30 years.
    pub fn fire_times(&self, after: DateTime<Utc>) -> FireTimes<'_> {
        FireTimes::new(self, after.timestamp())
    }

    /// The smallest fire instant (seconds) strictly greater than `t` (seconds; a fractional
    /// `t` may be floored, since fires are whole seconds).
    pub(crate) fn next_fire(&self, t: i64) -> Option<Found> {
        let tz = self.tz;
        let local_day = (t + offset_at(tz, t)).div_euclid(SECS_PER_DAY);
        let spans_today = DaySpans::for_day(tz, local_day);
        let mut best: Option<Found> = None;
        let consider = |day: i64, spans: &DaySpans, best: &mut Option<Found>| {
            if let Some(at) = self.first_in_day_after(day, spans, t)
                && best.is_none_or(|b| at < b.at)
            {
                *best = Some(Found {
                    at,
                    day,
                    regular_offset: spans.regular_offset(),
                });
            }
        };
        // A regular day separates the fires of earlier and later days; an irregular one may
        // share instants with its neighbours (e.g. a fold across midnight).
        if !spans_today.is_regular() && self.cron.matches_day(local_day - 1) {
            let spans = DaySpans::for_day(tz, local_day - 1);
            consider(local_day - 1, &spans, &mut best);
        }
        let last_day = local_day + SEARCH_DAYS;
        let mut from = local_day;
        while let Some(day) = self.cron.next_matching_day(from, last_day) {
            if best.is_some_and(|b| day > b.day + 2) {
                break;
            }
            let spans = if day == local_day {
                spans_today
            } else {
                DaySpans::for_day(tz, day)
            };
            consider(day, &spans, &mut best);
            if best.is_some() && spans.is_regular() {
                break;
            }
            from = day + 1;
        }
        best
    }

    /// The largest fire instant (seconds) strictly less than `t` (seconds).
    pub(crate) fn prev_fire(&self, t: i64) -> Option<i64> {
        let tz = self.tz;
        let local_day = (t + offset_at(tz, t)).div_euclid(SECS_PER_DAY);
        let spans_today = DaySpans::for_day(tz, local_day);
        let mut best: Option<(i64, i64)> = None;
        let consider = |day: i64, spans: &DaySpans, best: &mut Option<(i64, i64)>| {
            if let Some(at) = self.last_in_day_before(day, spans, t)
                && best.is_none_or(|(b, _)| at > b)
            {
                *best = Some((at, day));
            }
        };
        if !spans_today.is_regular() && self.cron.matches_day(local_day + 1) {
            let spans = DaySpans::for_day(tz, local_day + 1);
            consider(local_day + 1, &spans, &mut best);
        }
        let first_day = local_day - SEARCH_DAYS;
        let mut from = local_day;
        while let Some(day) = self.cron.prev_matching_day(from, first_day) {
            if best.is_some_and(|(_, d)| day < d - 2) {
                break;
            }
            let spans = if day == local_day {
                spans_today
            } else {
                DaySpans::for_day(tz, day)
            };
            consider(day, &spans, &mut best);
            if best.is_some() && spans.is_regular() {
                break;
            }
            from = day - 1;
        }
        best.map(|(at, _)| at)
    }

    /// The instants the candidate wall time `wall` of a day fires at, in increasing order.
    fn wall_fires(&self, spans: &DaySpans, wall: i64) -> Instants {
        let instants = spans.instants(wall);
        if self.cron.is_wildcard_job() {
            // Both instances of a repeated time; nothing for a skipped one.
            return instants;
        }
        // Fixed-time jobs: the first instance, or the end of the gap.
        match instants
            .as_slice()
            .first()
            .copied()
            .or_else(|| spans.gap_end(wall))
        {
            Some(at) => Instants::one(at),
            None => Instants::none(),
        }
    }

    /// The first fire of local `day` strictly after instant `t`.
    fn first_in_day_after(&self, day: i64, spans: &DaySpans, t: i64) -> Option<i64> {
        let midnight = day * SECS_PER_DAY;
        if let Some(offset) = spans.regular_offset() {
            let minute = ceil_minutes((t + offset + 1 - midnight).max(0))?;
            let m = self.cron.next_minute_of_day(minute)?;
            return Some(midnight + i64::from(m) * 60 - offset);
        }
        // Any fire after t comes from a wall time after t + min offset, and no wall time maps
        // below wall - max offset: enumerate that window only.
        let (min_offset, max_offset) = (spans.min_offset(), spans.max_offset());
        let mut minute = ceil_minutes((t + min_offset + 1 - midnight).max(0))?;
        let mut best: Option<i64> = None;
        while let Some(m) = self.cron.next_minute_of_day(minute) {
            let wall = midnight + i64::from(m) * 60;
            if best.is_some_and(|b| wall - max_offset >= b) {
                break;
            }
            let fires = self.wall_fires(spans, wall);
            if let Some(&at) = fires.as_slice().iter().find(|&&at| at > t)
                && best.is_none_or(|b| at < b)
            {
                best = Some(at);
            }
            minute = m + 1;
        }
        best
    }

    /// The last fire of local `day` strictly before instant `t`.
    fn last_in_day_before(&self, day: i64, spans: &DaySpans, t: i64) -> Option<i64> {
        let midnight = day * SECS_PER_DAY;
        if let Some(offset) = spans.regular_offset() {
            let minute = floor_minutes(t + offset - 1 - midnight)?;
            let m = self.cron.prev_minute_of_day(minute)?;
            return Some(midnight + i64::from(m) * 60 - offset);
        }
        let (min_offset, max_offset) = (spans.min_offset(), spans.max_offset());
        let mut minute = floor_minutes(t + max_offset - 1 - midnight)?;
        let mut best: Option<i64> = None;
        while let Some(m) = self.cron.prev_minute_of_day(minute) {
            let wall = midnight + i64::from(m) * 60;
            if best.is_some_and(|b| wall - min_offset <= b) {
                break;
            }
            let fires = self.wall_fires(spans, wall);
            if let Some(&at) = fires.as_slice().iter().rev().find(|&&at| at < t)
                && best.is_none_or(|b| at > b)
            {
                best = Some(at);
            }
            let Some(next) = m.checked_sub(1) else { break };
            minute = next;
        }
        best
    }
}

/// Minutes of the day at or after `secs` seconds into it; `None` past the end of the day.
fn ceil_minutes(secs: i64) -> Option<u32> {
    let minutes = (secs + 59).div_euclid(60);
    u32::try_from(minutes).ok().filter(|&m| m < MINUTES_PER_DAY)
}

/// Minutes of the day at or before `secs` seconds into it, clamped to the day's last minute;
/// `None` before the start of the day.
fn floor_minutes(secs: i64) -> Option<u32> {
    if secs < 0 {
        return None;
    }
    let minutes = secs.div_euclid(60).min(i64::from(MINUTES_PER_DAY - 1));
    u32::try_from(minutes).ok()
}

/// Whole seconds rounded up: fires (whole seconds) before `t` are those before this.
pub(crate) fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// Iterator over fire times, from [`Schedule::fire_times`].
///
/// Within a regular local day it steps through the expression's bitsets without consulting
/// the time zone again.
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    schedule: &'a Schedule,
    /// The last fire returned, or the starting point.
    cursor: i64,
    /// The regular day `cursor` is a fire of, with its offset.
    day: Option<(i64, i64)>,
    done: bool,
}

impl<'a> FireTimes<'a> {
    /// Fires strictly after `cursor` (whole seconds).
    pub(crate) fn new(schedule: &'a Schedule, cursor: i64) -> Self {
        Self {
            schedule,
            cursor,
            day: None,
            done: false,
        }
    }

    fn next_secs(&mut self) -> Option<i64> {
        if self.done {
            return None;
        }
        if let Some((day, offset)) = self.day {
            let midnight = day * SECS_PER_DAY;
            let minute = (self.cursor + offset - midnight).div_euclid(60) + 1;
            if let Ok(minute) = u32::try_from(minute)
                && let Some(m) = self.schedule.cron.next_minute_of_day(minute)
            {
                self.cursor = midnight + i64::from(m) * 60 - offset;
                return Some(self.cursor);
            }
        }
        match self.schedule.next_fire(self.cursor) {
            Some(found) => {
                self.cursor = found.at;
                self.day = found.regular_offset.map(|offset| (found.day, offset));
                Some(found.at)
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.next_secs()?;
        let time = DateTime::from_timestamp(at, 0);
        if time.is_none() {
            self.done = true;
        }
        time
    }
}

impl FusedIterator for FireTimes<'_> {}
