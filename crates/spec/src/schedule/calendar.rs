//! Proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01).
//!
//! Wall-clock times are handled as "naive seconds": the local date and time read as if it
//! were UTC, so day `d` covers naive seconds `d * 86_400 .. (d + 1) * 86_400`.

pub(crate) const SECS_PER_DAY: i64 = 86_400;
pub(crate) const MINUTES_PER_DAY: u32 = 1_440;

/// `(year, month 1-12, day 1-31)` of a day number (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day number of a civil date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let shifted = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * shifted + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The longest a month can be (February counts its leap day).
pub(crate) fn max_days_in_month(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of week of a day number, 0 = Sunday (1970-01-01 was a Thursday).
pub(crate) fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};

    #[test]
    fn round_trips_against_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            let expected = epoch + chrono::Duration::days(days);
            assert_eq!(
                (y, m, d),
                (i64::from(expected.year()), expected.month(), expected.day())
            );
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(
                weekday(days),
                expected.weekday().num_days_from_sunday(),
                "weekday of {expected}"
            );
            assert_eq!(
                days_in_month(y, m),
                expected
                    .with_day(1)
                    .and_then(|f| f.checked_add_months(chrono::Months::new(1)))
                    .map(|next| (next - expected.with_day(1).expect("day 1")).num_days() as u32)
                    .expect("month length")
            );
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2026));
    }
}
