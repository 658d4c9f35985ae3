//! UTC offsets of a time zone around one local day, and how a wall-clock time of that day maps
//! to instants (none in a gap, two in a fold).

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::calendar::SECS_PER_DAY;

/// Offsets are looked up with the instant clamped to this range (well inside what chrono can
/// represent; tzdata has no transitions anywhere near it).
const CLAMP_SECS: i64 = 1 << 40;

/// Margin around a local day covering every UTC offset that ever existed (about ±16 h).
const MARGIN_SECS: i64 = 17 * 3_600;

/// A day has at most a handful of transitions; more are ignored.
const MAX_SPANS: usize = 6;

/// UTC offset in seconds (local minus UTC) of `tz` at the instant `secs`.
pub(crate) fn offset_at(tz: Tz, secs: i64) -> i64 {
    let secs = secs.clamp(-CLAMP_SECS, CLAMP_SECS);
    match DateTime::from_timestamp(secs, 0) {
        Some(at) => i64::from(
            tz.offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc(),
        ),
        None => 0,
    }
}

/// The stretches of constant UTC offset covering the instants of one local day.
///
/// Span `k` covers instants `starts[k]..starts[k + 1]` (the first from the far past, the last
/// to the far future) at offset `offsets[k]`. A "regular" day has one span: no transition
/// within ±17 h of it, so every wall time of the day is exactly one instant, `wall - offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DaySpans {
    len: usize,
    starts: [i64; MAX_SPANS],
    offsets: [i64; MAX_SPANS],
}

/// The instants one wall-clock time maps to, in increasing order (0, 1 or rarely more).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instants {
    len: usize,
    at: [i64; MAX_SPANS],
}

impl Instants {
    const NONE: Instants = Instants {
        len: 0,
        at: [0; MAX_SPANS],
    };

    pub(crate) fn one(at: i64) -> Self {
        let mut out = Self::NONE;
        out.at[0] = at;
        out.len = 1;
        out
    }

    pub(crate) fn none() -> Self {
        Self::NONE
    }

    pub(crate) fn as_slice(&self) -> &[i64] {
        &self.at[..self.len]
    }
}

impl DaySpans {
    /// Probe the offset at the start, middle and end of the window `day ± 17 h`; if they agree
    /// the day is regular (tzdata transitions are always days apart). Otherwise locate each
    /// transition to the second by bisection.
    pub(crate) fn for_day(tz: Tz, day: i64) -> Self {
        let midnight = day * SECS_PER_DAY;
        let probes = [
            midnight - MARGIN_SECS,
            midnight + SECS_PER_DAY / 2,
            midnight + SECS_PER_DAY + MARGIN_SECS,
        ];
        let offsets = probes.map(|p| offset_at(tz, p));
        let mut spans = DaySpans {
            len: 1,
            starts: [i64::MIN; MAX_SPANS],
            offsets: [offsets[0]; MAX_SPANS],
        };
        if offsets[0] == offsets[1] && offsets[1] == offsets[2] {
            return spans;
        }
        for pair in 0..probes.len() - 1 {
            let (mut low, mut low_offset) = (probes[pair], spans.offsets[spans.len - 1]);
            let (high, high_offset) = (probes[pair + 1], offsets[pair + 1]);
            while low_offset != high_offset && spans.len < MAX_SPANS {
                // Invariant: offset_at(low) == low_offset != offset_at(high).
                let mut hi = high;
                while hi - low > 1 {
                    let mid = low + (hi - low) / 2;
                    if offset_at(tz, mid) == low_offset {
                        low = mid;
                    } else {
                        hi = mid;
                    }
                }
                low = hi;
                low_offset = offset_at(tz, hi);
                spans.starts[spans.len] = hi;
                spans.offsets[spans.len] = low_offset;
                spans.len += 1;
            }
        }
        spans
    }

    /// The day's single offset, if it is regular.
    pub(crate) fn regular_offset(&self) -> Option<i64> {
        (self.len == 1).then_some(self.offsets[0])
    }

    pub(crate) fn is_regular(&self) -> bool {
        self.len == 1
    }

    pub(crate) fn min_offset(&self) -> i64 {
        self.offsets[..self.len].iter().copied().min().unwrap_or(0)
    }

    pub(crate) fn max_offset(&self) -> i64 {
        self.offsets[..self.len].iter().copied().max().unwrap_or(0)
    }

    /// Every instant whose local time is `wall` (naive seconds), in increasing order.
    pub(crate) fn instants(&self, wall: i64) -> Instants {
        let mut out = Instants::NONE;
        for k in 0..self.len {
            let at = wall - self.offsets[k];
            let end = if k + 1 < self.len {
                self.starts[k + 1]
            } else {
                i64::MAX
            };
            if self.starts[k] <= at && at < end {
                out.at[out.len] = at;
                out.len += 1;
            }
        }
        out
    }

    /// For a `wall` time in a gap: the first instant after the gap (the transition).
    pub(crate) fn gap_end(&self, wall: i64) -> Option<i64> {
        (1..self.len)
            .find(|&k| wall < self.starts[k] + self.offsets[k])
            .map(|k| self.starts[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::calendar::days_from_civil;

    fn naive(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3_600 + mi * 60
    }

    fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        naive(y, mo, d, h, mi)
    }

    #[test]
    fn regular_and_transition_days() {
        let ny = chrono_tz::America::New_York;
        let spans = DaySpans::for_day(ny, days_from_civil(2026, 6, 1));
        assert_eq!(spans.regular_offset(), Some(-4 * 3_600));

        let spring = DaySpans::for_day(ny, days_from_civil(2026, 3, 8));
        assert!(!spring.is_regular());
        assert_eq!(
            spring.instants(naive(2026, 3, 8, 2, 30)).as_slice(),
            &[] as &[i64]
        );
        assert_eq!(
            spring.gap_end(naive(2026, 3, 8, 2, 30)),
            Some(utc(2026, 3, 8, 7, 0))
        );
        assert_eq!(
            spring.instants(naive(2026, 3, 8, 3, 0)).as_slice(),
            &[utc(2026, 3, 8, 7, 0)]
        );

        let fall = DaySpans::for_day(ny, days_from_civil(2026, 11, 1));
        assert_eq!(
            fall.instants(naive(2026, 11, 1, 1, 30)).as_slice(),
            &[utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)]
        );
        // The day before a transition is irregular too (the window reaches into it).
        assert!(!DaySpans::for_day(ny, days_from_civil(2026, 10, 31)).is_regular());
    }
}
