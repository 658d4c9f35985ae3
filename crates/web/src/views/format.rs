//! Human-friendly numbers and times for the web UI: durations ("3 min 5 s"), relative times
//! ("5 min ago", "tomorrow") and thousands separators ("1,234,567").

use chrono::{DateTime, Utc};
pub(crate) use drover_spec::numbers::thousands;

/// A duration in words, two units at most: "40 ms", "0.4 s", "12 s", "3 min 5 s",
/// "2 h 4 min", "3 d 2 h". Negative and NaN durations read as "0 s", infinite ones as "∞".
pub(crate) fn duration_words(secs: f64) -> String {
    if secs.is_infinite() && secs > 0.0 {
        return "∞".to_owned();
    }
    if secs.is_nan() || secs <= 0.0 {
        return "0 s".to_owned();
    }
    if secs < 0.1 {
        return format!("{} ms", (secs * 1_000.0).round());
    }
    if secs < 9.95 {
        let text = format!("{secs:.1}");
        return format!("{} s", text.strip_suffix(".0").unwrap_or(&text));
    }
    // Each tier rounds to its smaller unit; `as` saturates for huge values.
    let total_secs = secs.round() as u64;
    if total_secs < 60 {
        return format!("{total_secs} s");
    }
    if total_secs < 3_600 {
        return two_units(total_secs / 60, "min", total_secs % 60, "s");
    }
    let total_mins = (secs / 60.0).round() as u64;
    if total_mins < 24 * 60 {
        return two_units(total_mins / 60, "h", total_mins % 60, "min");
    }
    let total_hours = (secs / 3_600.0).round() as u64;
    two_units(total_hours / 24, "d", total_hours % 24, "h")
}

/// "3 min 5 s", or "3 min" when the smaller part is zero.
fn two_units(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big} {big_unit}")
    } else {
        format!("{big} {big_unit} {small} {small_unit}")
    }
}

/// `then` relative to `now`: "just now", "12 s ago", "5 min ago", "3 h ago", "yesterday",
/// "4 days ago", "2 months ago", "1 year ago"; for the future "in 12 s", "in 5 min",
/// "in 3 h", "tomorrow", "in 4 days", ... Within 10 s either way is "just now" (clock skew).
/// Hours and days count elapsed time, not calendar days: "yesterday" is 24 to 48 h ago.
pub(crate) fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let diff = now.signed_duration_since(then).num_seconds();
    let past = diff >= 0;
    let secs = diff.unsigned_abs();
    if secs < 10 {
        return "just now".to_owned();
    }
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    let amount = if secs < MIN {
        format!("{secs} s")
    } else if secs < HOUR {
        format!("{} min", secs / MIN)
    } else if secs < DAY {
        format!("{} h", secs / HOUR)
    } else if secs < 2 * DAY {
        return if past { "yesterday" } else { "tomorrow" }.to_owned();
    } else if secs < 30 * DAY {
        format!("{} days", secs / DAY)
    } else if secs < 365 * DAY {
        plural(secs / (30 * DAY), "month")
    } else {
        plural(secs / (365 * DAY), "year")
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

fn plural(count: u64, unit: &str) -> String {
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (0.0, "0 s"),
            (-5.0, "0 s"),
            (f64::NAN, "0 s"),
            (f64::INFINITY, "∞"),
            (0.042, "42 ms"),
            (0.4, "0.4 s"),
            (0.44, "0.4 s"),
            (3.0, "3 s"),
            (9.96, "10 s"),
            (12.0, "12 s"),
            (12.4, "12 s"),
            (59.6, "1 min"),
            (60.0, "1 min"),
            (185.0, "3 min 5 s"),
            (3_599.0, "59 min 59 s"),
            (3_599.6, "1 h"),
            (7_440.0, "2 h 4 min"),
            (7_459.0, "2 h 4 min"),
            (86_399.0, "1 d"),
            (86_400.0, "1 d"),
            (266_400.0, "3 d 2 h"),
            (1e30, "768614336404564650 d 15 h"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration_words(secs), want, "{secs}");
        }
    }

    #[test]
    fn relative_times() {
        let now = Utc
            .with_ymd_and_hms(2026, 5, 9, 12, 0, 0)
            .single()
            .expect("valid time");
        let past = |d: Duration| ago(now, now - d);
        let future = |d: Duration| ago(now, now + d);
        assert_eq!(past(Duration::zero()), "just now");
        assert_eq!(past(Duration::seconds(9)), "just now");
        assert_eq!(future(Duration::seconds(9)), "just now");
        assert_eq!(past(Duration::seconds(12)), "12 s ago");
        assert_eq!(
            past(Duration::minutes(5) + Duration::seconds(59)),
            "5 min ago"
        );
        assert_eq!(past(Duration::hours(3)), "3 h ago");
        assert_eq!(past(Duration::hours(23)), "23 h ago");
        assert_eq!(past(Duration::hours(24)), "yesterday");
        assert_eq!(past(Duration::hours(47)), "yesterday");
        assert_eq!(past(Duration::days(4)), "4 days ago");
        assert_eq!(past(Duration::days(29)), "29 days ago");
        assert_eq!(past(Duration::days(30)), "1 month ago");
        assert_eq!(past(Duration::days(95)), "3 months ago");
        assert_eq!(past(Duration::days(365)), "1 year ago");
        assert_eq!(past(Duration::days(800)), "2 years ago");
        assert_eq!(future(Duration::seconds(30)), "in 30 s");
        assert_eq!(future(Duration::minutes(5)), "in 5 min");
        assert_eq!(future(Duration::hours(3)), "in 3 h");
        assert_eq!(future(Duration::hours(30)), "tomorrow");
        assert_eq!(future(Duration::days(4)), "in 4 days");
        assert_eq!(future(Duration::days(60)), "in 2 months");
        // Sub-second differences do not count.
        assert_eq!(past(Duration::milliseconds(10_999)), "10 s ago");
    }
}
