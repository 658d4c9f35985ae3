//! Table tests of tricky crontab(5) expressions against hand-checked fire times (UTC).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use drover_spec::schedule::{CronExpr, DataInterval, Schedule};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expr: &str) -> Schedule {
    let cron = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    Schedule::new(cron, Tz::UTC)
}

fn fmt(times: &[DateTime<Utc>]) -> Vec<String> {
    times
        .iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

/// The fires after `start` match `expected`, via the iterator, via `next_after` one by one,
/// and backwards via `prev_before`.
fn assert_fires(expr: &str, start: &str, expected: &[&str]) {
    let s = schedule(expr);
    let start = at(start);
    let got: Vec<_> = s.fire_times(start).take(expected.len()).collect();
    assert_eq!(fmt(&got), expected, "fire_times of `{expr}` after {start}");
    let mut cursor = start;
    for want in expected {
        let next = s.next_after(cursor).expect("a next fire");
        assert_eq!(fmt(&[next])[0], *want, "next_after({cursor}) of `{expr}`");
        cursor = next;
    }
    for pair in got.windows(2) {
        assert_eq!(
            s.prev_before(pair[1]),
            Some(pair[0]),
            "prev_before of `{expr}`"
        );
    }
    let before_first = s.prev_before(got[0]).expect("an earlier fire");
    assert!(before_first <= start, "`{expr}`: {before_first} > {start}");
}

#[test]
fn every_15_minutes_office_hours() {
    // 2026-03-06 is a Friday.
    assert_fires(
        "*/15 9-17 * * 1-5",
        "2026-03-06T17:30:00Z",
        &[
            "2026-03-06T17:45:00Z",
            "2026-03-09T09:00:00Z",
            "2026-03-09T09:15:00Z",
        ],
    );
}

#[test]
fn both_day_fields_restricted_is_or() {
    // 2026-04-01 is a Wednesday: the 1st, the 15th and every Wednesday.
    assert_fires(
        "0 0 1,15 * 3",
        "2026-04-01T00:00:00Z",
        &[
            "2026-04-08T00:00:00Z",
            "2026-04-15T00:00:00Z",
            "2026-04-22T00:00:00Z",
            "2026-04-29T00:00:00Z",
            "2026-05-01T00:00:00Z",
            "2026-05-06T00:00:00Z",
            "2026-05-13T00:00:00Z",
            "2026-05-15T00:00:00Z",
            "2026-05-20T00:00:00Z",
        ],
    );
}

#[test]
fn star_step_day_of_month_is_and() {
    // `*/2` starts with `*`, so odd days that are also Mondays.
    assert_fires(
        "0 0 */2 * 1",
        "2026-01-01T00:00:00Z",
        &[
            "2026-01-05T00:00:00Z",
            "2026-01-19T00:00:00Z",
            "2026-02-09T00:00:00Z",
            "2026-02-23T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-23T00:00:00Z",
        ],
    );
}

#[test]
fn weekday_names_and_numbers() {
    assert_fires(
        "5 4 * * sun",
        "2026-03-01T04:05:00Z",
        &["2026-03-08T04:05:00Z", "2026-03-15T04:05:00Z"],
    );
    assert_fires(
        "0 22 * * 1-5",
        "2026-03-06T22:00:00Z",
        &["2026-03-09T22:00:00Z", "2026-03-10T22:00:00Z"],
    );
    assert_fires(
        "0 9 * JAN-mar Mon,wed",
        "2026-03-27T00:00:00Z",
        &[
            "2026-03-30T09:00:00Z",
            "2027-01-04T09:00:00Z",
            "2027-01-06T09:00:00Z",
        ],
    );
    assert_fires(
        "0 6 * * fri-7",
        "2026-03-05T00:00:00Z",
        &[
            "2026-03-06T06:00:00Z",
            "2026-03-07T06:00:00Z",
            "2026-03-08T06:00:00Z",
            "2026-03-13T06:00:00Z",
        ],
    );
}

#[test]
fn sunday_is_0_and_7() {
    let seven = schedule("0 12 * * 7");
    let zero = schedule("0 12 * * 0");
    let start = at("2026-02-25T00:00:00Z");
    let a: Vec<_> = seven.fire_times(start).take(10).collect();
    let b: Vec<_> = zero.fire_times(start).take(10).collect();
    assert_eq!(a, b);
    assert_eq!(
        fmt(&a[..2]),
        ["2026-03-01T12:00:00Z", "2026-03-08T12:00:00Z"]
    );
}

#[test]
fn hour_range_with_step() {
    assert_fires(
        "23 0-20/2 * * *",
        "2026-03-01T19:00:00Z",
        &[
            "2026-03-01T20:23:00Z",
            "2026-03-02T00:23:00Z",
            "2026-03-02T02:23:00Z",
        ],
    );
}

#[test]
fn leap_day_only_in_leap_years() {
    assert_fires(
        "0 0 29 2 *",
        "2025-01-01T00:00:00Z",
        &[
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z",
        ],
    );
    let s = schedule("0 0 29 2 *");
    assert_eq!(
        s.prev_before(at("2028-02-29T00:00:00Z")),
        Some(at("2024-02-29T00:00:00Z"))
    );
    // 2100 is not a leap year.
    assert_eq!(
        s.next_after(at("2096-03-01T00:00:00Z")),
        Some(at("2104-02-29T00:00:00Z"))
    );
}

#[test]
fn single_value_with_step_runs_to_the_end() {
    assert_fires(
        "1/10 * * * *",
        "2026-03-01T00:00:00Z",
        &[
            "2026-03-01T00:01:00Z",
            "2026-03-01T00:11:00Z",
            "2026-03-01T00:21:00Z",
            "2026-03-01T00:31:00Z",
            "2026-03-01T00:41:00Z",
            "2026-03-01T00:51:00Z",
            "2026-03-01T01:01:00Z",
        ],
    );
}

#[test]
fn presets() {
    // 2026-03-01 is a Sunday.
    assert_fires(
        "@weekly",
        "2026-03-01T00:00:00Z",
        &["2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"],
    );
    assert_fires(
        "@yearly",
        "2026-01-01T00:00:00Z",
        &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
    );
    assert_fires(
        "@annually",
        "2026-06-01T00:00:00Z",
        &["2027-01-01T00:00:00Z"],
    );
    assert_fires(
        "@monthly",
        "2026-01-31T23:59:59Z",
        &["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"],
    );
    assert_fires(
        "@daily",
        "2026-02-28T00:00:00Z",
        &["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"],
    );
    assert_fires(
        "@midnight",
        "2026-02-28T00:00:00Z",
        &["2026-03-01T00:00:00Z"],
    );
    assert_fires(
        "@hourly",
        "2026-02-28T23:00:00Z",
        &["2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"],
    );
    assert_eq!(schedule("@daily").cron().source(), "@daily");
    assert!(schedule("@hourly").cron().is_wildcard_job());
    assert!(!schedule("@daily").cron().is_wildcard_job());
    assert_eq!(
        CronExpr::parse("@weekly").expect("valid").describe(),
        CronExpr::parse("0 0 * * 0").expect("valid").describe()
    );
}

#[test]
fn month_end_and_31st() {
    assert_fires(
        "0 0 31 * *",
        "2026-01-31T00:00:00Z",
        &[
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z",
            "2026-08-31T00:00:00Z",
        ],
    );
}

#[test]
fn strictly_after_and_before_with_subseconds() {
    let s = schedule("*/5 * * * *");
    let t = at("2026-03-01T10:05:00Z");
    assert_eq!(s.next_after(t), Some(at("2026-03-01T10:10:00Z")));
    assert_eq!(s.prev_before(t), Some(at("2026-03-01T10:00:00Z")));
    let t = at("2026-03-01T10:04:59.999Z");
    assert_eq!(s.next_after(t), Some(at("2026-03-01T10:05:00Z")));
    let t = at("2026-03-01T10:05:00.001Z");
    assert_eq!(s.prev_before(t), Some(at("2026-03-01T10:05:00Z")));
    assert_eq!(s.next_after(t), Some(at("2026-03-01T10:10:00Z")));
}

#[test]
fn wildcard_classification() {
    for (expr, wildcard) in [
        ("*/15 * * * *", true),
        ("0 * * * *", true),
        ("0 */2 * * *", true),
        ("*,5 3 * * *", true),
        ("0 2 * * *", false),
        ("0,30 1-5 * * *", false),
        ("0 0 * * *", false),
        ("0 0 */2 * *", false),
    ] {
        let cron = CronExpr::parse(expr).expect("valid");
        assert_eq!(cron.is_wildcard_job(), wildcard, "{expr}");
    }
}

#[test]
fn matches_date() {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
    let cron = CronExpr::parse("0 0 1,15 * 3").expect("valid");
    assert!(cron.matches_date(date(2026, 4, 8)));
    assert!(!cron.matches_date(date(2026, 4, 9)));
    let cron = CronExpr::parse("0 0 29 2 *").expect("valid");
    assert!(cron.matches_date(date(2028, 2, 29)));
    assert!(!cron.matches_date(date(2028, 3, 29)));
    let cron = CronExpr::parse("0 0 * jun mon-fri").expect("valid");
    assert!(cron.matches_date(date(2026, 6, 1)));
    assert!(!cron.matches_date(date(2026, 6, 6)));
    assert!(!cron.matches_date(date(2026, 7, 1)));
}

#[test]
fn source_and_display() {
    let cron: CronExpr = " 0 2 * * * ".parse().expect("valid");
    assert_eq!(cron.source(), " 0 2 * * * ");
    assert_eq!(cron.to_string(), " 0 2 * * * ");
}

#[test]
fn data_intervals() {
    let s = schedule("0 2 * * *");
    let iv = |a: &str, b: &str| DataInterval {
        start: at(a),
        end: at(b),
    };
    assert_eq!(
        s.interval_ending_at(at("2026-03-02T02:00:00Z")),
        Some(iv("2026-03-01T02:00:00Z", "2026-03-02T02:00:00Z"))
    );
    assert_eq!(s.interval_ending_at(at("2026-03-02T03:00:00Z")), None);
    assert_eq!(
        s.latest_complete_interval(at("2026-03-02T02:00:00Z")),
        Some(iv("2026-03-01T02:00:00Z", "2026-03-02T02:00:00Z"))
    );
    assert_eq!(
        s.latest_complete_interval(at("2026-03-02T01:59:59.999Z")),
        Some(iv("2026-02-28T02:00:00Z", "2026-03-01T02:00:00Z"))
    );
    let got: Vec<_> = s
        .intervals(at("2026-02-27T01:00:00Z"), at("2026-03-02T02:00:00Z"))
        .collect();
    assert_eq!(
        got,
        vec![
            iv("2026-02-27T02:00:00Z", "2026-02-28T02:00:00Z"),
            iv("2026-02-28T02:00:00Z", "2026-03-01T02:00:00Z"),
            iv("2026-03-01T02:00:00Z", "2026-03-02T02:00:00Z"),
        ]
    );
    // `from` on a fire time: that fire starts the first interval.
    let got: Vec<_> = s
        .intervals(at("2026-02-27T02:00:00Z"), at("2026-03-01T01:59:59Z"))
        .collect();
    assert_eq!(
        got,
        vec![iv("2026-02-27T02:00:00Z", "2026-02-28T02:00:00Z")]
    );
    assert_eq!(
        s.intervals(at("2026-03-01T00:00:00Z"), at("2026-03-01T23:00:00Z"))
            .count(),
        0
    );
    let json = serde_json::to_string(&got[0]).expect("serialize");
    assert_eq!(
        json,
        r#"{"start":"2026-02-27T02:00:00Z","end":"2026-02-28T02:00:00Z"}"#
    );
}

#[test]
fn far_future_and_bounds() {
    let s = schedule("0 0 1 1 *");
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(s.prev_before(DateTime::<Utc>::MIN_UTC), None);
    let ny = Schedule::new(s.cron().clone(), chrono_tz::America::New_York);
    assert_eq!(ny.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(ny.prev_before(DateTime::<Utc>::MIN_UTC), None);
    assert_eq!(ny.fire_times(DateTime::<Utc>::MAX_UTC).next(), None);
    assert_eq!(
        s.next_after(at("9999-06-01T00:00:00Z")),
        NaiveDate::from_ymd_opt(10_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
    );
    assert_eq!(
        s.next_after(at("2399-12-31T23:59:59Z")),
        Some(at("2400-01-01T00:00:00Z"))
    );
}
