//! A parsed crontab(5) expression, held as bitsets, and calendar matching against it.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::calendar::{MINUTES_PER_DAY, civil_from_days, days_from_civil, days_in_month, weekday};
use super::error::CronError;
use super::parse;

/// A 5-field crontab(5) expression (`minute hour day-of-month month day-of-week`) or one of the
/// `@yearly`-style presets, with Vixie/ISC cron semantics.
///
/// Parse with [`CronExpr::parse`]; combine with a time zone in a
/// [`Schedule`](super::Schedule) to compute fire times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    /// Bits 0..=59.
    pub(crate) minutes: u64,
    /// Bits 0..=23.
    pub(crate) hours: u32,
    /// Bits 1..=31.
    pub(crate) days: u32,
    /// Bits 1..=12.
    pub(crate) months: u16,
    /// Bits 0..=6, 0 = Sunday (a `7` in the expression is folded into bit 0).
    pub(crate) weekdays: u8,
    /// Field text started with `*` (Vixie's `MIN_STAR`, `HR_STAR`, `DOM_STAR`, `DOW_STAR`).
    pub(crate) minute_star: bool,
    pub(crate) hour_star: bool,
    pub(crate) dom_star: bool,
    pub(crate) dow_star: bool,
    /// `weekday_masks[w]`: bits 1..=31 of the days of a month whose 1st is weekday `w` that
    /// fall on a selected weekday. Derived from `weekdays`.
    weekday_masks: [u32; 7],
}

/// The parsed fields of an expression, before they become a [`CronExpr`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) minutes: u64,
    pub(crate) hours: u32,
    pub(crate) days: u32,
    pub(crate) months: u16,
    pub(crate) weekdays: u8,
    pub(crate) minute_star: bool,
    pub(crate) hour_star: bool,
    pub(crate) dom_star: bool,
    pub(crate) dow_star: bool,
}

impl CronExpr {
    /// Parse a crontab(5) expression. See the [module documentation](super) for the accepted
    /// syntax and what is rejected.
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        parse::parse(expr)
    }

    pub(crate) fn from_fields(source: &str, f: Fields) -> Self {
        let mut weekday_masks = [0u32; 7];
        for (first, mask) in weekday_masks.iter_mut().enumerate() {
            for day in 1..=31u32 {
                let wd = (first as u32 + day - 1) % 7;
                if f.weekdays & (1 << wd) != 0 {
                    *mask |= 1 << day;
                }
            }
        }
        Self {
            source: source.to_owned(),
            minutes: f.minutes,
            hours: f.hours,
            days: f.days,
            months: f.months,
            weekdays: f.weekdays,
            minute_star: f.minute_star,
            hour_star: f.hour_star,
            dom_star: f.dom_star,
            dow_star: f.dow_star,
            weekday_masks,
        }
    }

    /// The expression exactly as it was parsed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// ISC cron's "wildcard job": the minute or hour field starts with `*` (`*/15 * * * *`,
    /// `0 * * * *`, `0 */2 * * *`). Wildcard jobs skip wall-clock times lost to a DST gap and
    /// run twice in a repeated hour; fixed-time jobs run once in both cases.
    pub fn is_wildcard_job(&self) -> bool {
        self.minute_star || self.hour_star
    }

    /// Whether the job runs on `date` (month, day-of-month and day-of-week fields, with Vixie
    /// cron's rule: if either day field starts with `*`, both must match; otherwise either).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        let (year, month, day) = (i64::from(date.year()), date.month(), date.day());
        self.month_selected(month) && self.day_mask(year, month) & (1 << day) != 0
    }

    /// Whether the day with this day number (days since 1970-01-01) matches.
    pub(crate) fn matches_day(&self, days: i64) -> bool {
        let (year, month, day) = civil_from_days(days);
        self.month_selected(month) && self.day_mask(year, month) & (1 << day) != 0
    }

    fn month_selected(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    /// Whether the day-of-month and day-of-week fields combine with AND (either is "star").
    pub(crate) fn days_and_rule(&self) -> bool {
        self.dom_star || self.dow_star
    }

    /// Bits 1..=31: the matching days of `year`-`month` (ignoring the month field).
    fn day_mask(&self, year: i64, month: u32) -> u32 {
        let len = days_in_month(year, month);
        let valid = (((1u64 << (len + 1)) - 1) as u32) & !1;
        let first_weekday = weekday(days_from_civil(year, month, 1)) as usize;
        let dom = self.days & valid;
        let dow = self.weekday_masks[first_weekday] & valid;
        if self.days_and_rule() {
            dom & dow
        } else {
            dom | dow
        }
    }

    /// The first matching day number in `from..=last`, jumping month by month.
    pub(crate) fn next_matching_day(&self, from: i64, last: i64) -> Option<i64> {
        let (mut year, mut month, day) = civil_from_days(from);
        let mut first_day = day;
        loop {
            if self.month_selected(month) {
                let mask = self.day_mask(year, month) & (u32::MAX << first_day);
                if mask != 0 {
                    let found = days_from_civil(year, month, mask.trailing_zeros());
                    return (found <= last).then_some(found);
                }
            }
            if month == 12 {
                month = 1;
                year += 1;
            } else {
                month += 1;
            }
            first_day = 1;
            if days_from_civil(year, month, 1) > last {
                return None;
            }
        }
    }

    /// The last matching day number in `first..=from`, jumping month by month.
    pub(crate) fn prev_matching_day(&self, from: i64, first: i64) -> Option<i64> {
        let (mut year, mut month, day) = civil_from_days(from);
        let mut last_day = day;
        loop {
            if self.month_selected(month) {
                let mask = self.day_mask(year, month) & (u32::MAX >> (31 - last_day));
                if mask != 0 {
                    let found = days_from_civil(year, month, 31 - mask.leading_zeros());
                    return (found >= first).then_some(found);
                }
            }
            if month == 1 {
                month = 12;
                year -= 1;
            } else {
                month -= 1;
            }
            last_day = 31;
            if days_from_civil(year, month, days_in_month(year, month)) < first {
                return None;
            }
        }
    }

    /// The first selected minute of the day (`hour * 60 + minute`) at or after `from`.
    pub(crate) fn next_minute_of_day(&self, from: u32) -> Option<u32> {
        if from >= MINUTES_PER_DAY {
            return None;
        }
        let (hour, minute) = (from / 60, from % 60);
        if self.hours & (1 << hour) != 0 {
            let minutes = self.minutes & (u64::MAX << minute);
            if minutes != 0 {
                return Some(hour * 60 + minutes.trailing_zeros());
            }
        }
        let hours = self.hours & (u32::MAX << (hour + 1));
        if hours == 0 {
            return None;
        }
        Some(hours.trailing_zeros() * 60 + self.minutes.trailing_zeros())
    }

    /// The last selected minute of the day (`hour * 60 + minute`) at or before `upto`.
    pub(crate) fn prev_minute_of_day(&self, upto: u32) -> Option<u32> {
        let upto = upto.min(MINUTES_PER_DAY - 1);
        let (hour, minute) = (upto / 60, upto % 60);
        if self.hours & (1 << hour) != 0 {
            let minutes = self.minutes & (u64::MAX >> (63 - minute));
            if minutes != 0 {
                return Some(hour * 60 + 63 - minutes.leading_zeros());
            }
        }
        let hours = self.hours & ((1u32 << hour) - 1);
        if hours == 0 {
            return None;
        }
        Some((31 - hours.leading_zeros()) * 60 + 63 - self.minutes.leading_zeros())
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Serialized as the source text.
impl Serialize for CronExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Deserialized from a string with [`CronExpr::parse`].
impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expr: &str) -> CronExpr {
        CronExpr::parse(expr).expect("valid expression")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn minute_of_day_jumps() {
        let c = cron("*/15 9-17 * * *");
        assert_eq!(c.next_minute_of_day(0), Some(9 * 60));
        assert_eq!(c.next_minute_of_day(9 * 60 + 1), Some(9 * 60 + 15));
        assert_eq!(c.next_minute_of_day(17 * 60 + 46), None);
        assert_eq!(c.prev_minute_of_day(1439), Some(17 * 60 + 45));
        assert_eq!(c.prev_minute_of_day(9 * 60 + 14), Some(9 * 60));
        assert_eq!(c.prev_minute_of_day(8 * 60 + 59), None);
    }

    #[test]
    fn matching_days_follow_vixie_rule() {
        // OR: the 1st, the 15th and every Wednesday.
        let c = cron("0 0 1,15 * 3");
        assert!(c.matches_date(date(2026, 4, 1)));
        assert!(c.matches_date(date(2026, 4, 8))); // Wednesday
        assert!(c.matches_date(date(2026, 4, 15)));
        assert!(!c.matches_date(date(2026, 4, 2)));
        // AND, because `*/2` starts with `*`: odd days that are Mondays.
        let c = cron("0 0 */2 * 1");
        assert!(c.matches_date(date(2026, 4, 13))); // Monday the 13th
        assert!(!c.matches_date(date(2026, 4, 6))); // Monday the 6th
        assert!(!c.matches_date(date(2026, 4, 15))); // Wednesday the 15th
    }

    #[test]
    fn day_jumps() {
        let c = cron("0 0 29 2 *");
        let from = days_from_civil(2025, 1, 1);
        let next = c.next_matching_day(from, from + 10_000);
        assert_eq!(next, Some(days_from_civil(2028, 2, 29)));
        let prev = c.prev_matching_day(from, from - 10_000);
        assert_eq!(prev, Some(days_from_civil(2024, 2, 29)));
        assert_eq!(c.next_matching_day(from, from + 365), None);
        assert_eq!(c.prev_matching_day(from, from - 300), None);
    }

    #[test]
    fn serde_round_trip() {
        let c = cron("@daily");
        let json = serde_json::to_string(&c).expect("serialize");
        assert_eq!(json, "\"@daily\"");
        let back: CronExpr = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, c);
        assert!(serde_json::from_str::<CronExpr>("\"0 0 30 2 *\"").is_err());
    }
}
