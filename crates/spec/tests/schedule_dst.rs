//! DST behaviour (ISC cron): hand-checked fire times around transitions in several zones.
//!
//! 2026 transitions used here (tzdata 2025b):
//! - America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT ->
//!   01:00 EST (06:00Z).
//! - Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST ->
//!   02:00 CET (01:00Z).
//! - Australia/Lord_Howe (30-minute shift): 2026-04-05 02:00 +11 -> 01:30 +1030
//!   (2026-04-04 15:00Z); 2026-10-04 02:00 +1030 -> 02:30 +11 (2026-10-03 15:30Z).
//! - America/Santiago (at midnight): 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04 (03:00Z);
//!   2026-09-06 00:00 -04 -> 01:00 -03 (04:00Z).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drover_spec::schedule::{CronExpr, Schedule};

const NEW_YORK: Tz = chrono_tz::America::New_York;
const BERLIN: Tz = chrono_tz::Europe::Berlin;
const LORD_HOWE: Tz = chrono_tz::Australia::Lord_Howe;
const SANTIAGO: Tz = chrono_tz::America::Santiago;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expr: &str, tz: Tz) -> Schedule {
    let cron = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    Schedule::new(cron, tz)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// The fires after `start` are exactly `expected` (UTC, minutes), forwards through the
/// iterator and `next_after`, and backwards through `prev_before`.
fn assert_fires(expr: &str, tz: Tz, start: &str, expected: &[&str]) {
    let s = schedule(expr, tz);
    let start = at(start);
    let got: Vec<String> = s.fire_times(start).take(expected.len()).map(fmt).collect();
    assert_eq!(got, expected, "`{expr}` in {tz} after {start}");
    let mut cursor = start;
    let mut fires = Vec::new();
    for _ in expected {
        cursor = s.next_after(cursor).expect("a next fire");
        fires.push(cursor);
    }
    assert_eq!(
        fires.iter().copied().map(fmt).collect::<Vec<_>>(),
        expected,
        "`{expr}` in {tz}: next_after one by one"
    );
    for pair in fires.windows(2) {
        assert_eq!(
            s.prev_before(pair[1]),
            Some(pair[0]),
            "`{expr}` in {tz}: prev_before({})",
            pair[1]
        );
    }
    let before = s.prev_before(fires[0]).expect("an earlier fire");
    assert!(before <= start, "`{expr}` in {tz}: {before} > {start}");
    assert_eq!(s.next_after(before), Some(fires[0]));
}

// ---------------------------------------------------------------- America/New_York

#[test]
fn new_york_fixed_time_daily() {
    let tz = NEW_YORK;
    let spring = "2026-03-07T00:00:00Z";
    let fall = "2026-10-31T00:00:00Z";
    // 02:00 does not exist on 03-08: it runs at 03:00 EDT, the end of the gap.
    assert_fires(
        "0 2 * * *",
        tz,
        spring,
        &[
            "2026-03-07T07:00Z",
            "2026-03-08T07:00Z",
            "2026-03-09T06:00Z",
        ],
    );
    assert_fires(
        "0 2 * * *",
        tz,
        fall,
        &[
            "2026-10-31T06:00Z",
            "2026-11-01T07:00Z",
            "2026-11-02T07:00Z",
        ],
    );
    assert_fires(
        "30 2 * * *",
        tz,
        spring,
        &[
            "2026-03-07T07:30Z",
            "2026-03-08T07:00Z",
            "2026-03-09T06:30Z",
        ],
    );
    assert_fires(
        "30 2 * * *",
        tz,
        fall,
        &[
            "2026-10-31T06:30Z",
            "2026-11-01T07:30Z",
            "2026-11-02T07:30Z",
        ],
    );
    // 01:30 happens twice on 11-01: a fixed-time job runs only at the first (EDT).
    assert_fires(
        "30 1 * * *",
        tz,
        spring,
        &[
            "2026-03-07T06:30Z",
            "2026-03-08T06:30Z",
            "2026-03-09T05:30Z",
        ],
    );
    assert_fires(
        "30 1 * * *",
        tz,
        fall,
        &[
            "2026-10-31T05:30Z",
            "2026-11-01T05:30Z",
            "2026-11-02T06:30Z",
        ],
    );
    // Both 02:00 and 02:30 fall in the gap and collapse into one run at 03:00 EDT.
    assert_fires(
        "0,30 2 * * *",
        tz,
        spring,
        &[
            "2026-03-07T07:00Z",
            "2026-03-07T07:30Z",
            "2026-03-08T07:00Z",
            "2026-03-09T06:00Z",
            "2026-03-09T06:30Z",
        ],
    );
    assert_fires(
        "0,30 2 * * *",
        tz,
        fall,
        &[
            "2026-10-31T06:00Z",
            "2026-10-31T06:30Z",
            "2026-11-01T07:00Z",
            "2026-11-01T07:30Z",
            "2026-11-02T07:00Z",
        ],
    );
}

#[test]
fn new_york_wildcard() {
    let tz = NEW_YORK;
    // Spring: 02:00-02:59 is skipped.
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-03-08T06:00:00Z",
        &[
            "2026-03-08T06:20Z",
            "2026-03-08T06:40Z",
            "2026-03-08T07:00Z",
            "2026-03-08T07:20Z",
        ],
    );
    // Fall: 01:00-01:59 runs twice, EDT then EST.
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-11-01T04:50:00Z",
        &[
            "2026-11-01T05:00Z",
            "2026-11-01T05:20Z",
            "2026-11-01T05:40Z",
            "2026-11-01T06:00Z",
            "2026-11-01T06:20Z",
            "2026-11-01T06:40Z",
            "2026-11-01T07:00Z",
            "2026-11-01T07:20Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-03-08T05:30:00Z",
        &[
            "2026-03-08T06:00Z",
            "2026-03-08T07:00Z",
            "2026-03-08T08:00Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-11-01T04:30:00Z",
        &[
            "2026-11-01T05:00Z",
            "2026-11-01T06:00Z",
            "2026-11-01T07:00Z",
            "2026-11-01T08:00Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-03-08T05:45:00Z",
        &[
            "2026-03-08T06:30Z",
            "2026-03-08T07:30Z",
            "2026-03-08T08:30Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-11-01T04:45:00Z",
        &[
            "2026-11-01T05:30Z",
            "2026-11-01T06:30Z",
            "2026-11-01T07:30Z",
        ],
    );
    // Hour-wildcard with fixed minute counts as a wildcard job too.
    assert_fires(
        "30 */1 * * *",
        tz,
        "2026-11-01T04:45:00Z",
        &[
            "2026-11-01T05:30Z",
            "2026-11-01T06:30Z",
            "2026-11-01T07:30Z",
        ],
    );
}

#[test]
fn new_york_restart_inside_fold() {
    let wildcard = schedule("*/20 * * * *", NEW_YORK);
    // Restarting after the last EDT run of 01:40 gives the EST run of 01:00, not 02:00.
    assert_eq!(
        wildcard.next_after(at("2026-11-01T05:40:00Z")),
        Some(at("2026-11-01T06:00:00Z"))
    );
    assert_eq!(
        wildcard.next_after(at("2026-11-01T06:00:00Z")),
        Some(at("2026-11-01T06:20:00Z"))
    );
    assert_eq!(
        wildcard.prev_before(at("2026-11-01T06:00:00Z")),
        Some(at("2026-11-01T05:40:00Z"))
    );
    let fixed = schedule("30 1 * * *", NEW_YORK);
    // Already ran at 01:30 EDT: nothing more that day, even from inside the second 01:xx.
    assert_eq!(
        fixed.next_after(at("2026-11-01T05:30:00Z")),
        Some(at("2026-11-02T06:30:00Z"))
    );
    assert_eq!(
        fixed.next_after(at("2026-11-01T06:10:00Z")),
        Some(at("2026-11-02T06:30:00Z"))
    );
    assert_eq!(
        fixed.prev_before(at("2026-11-02T06:30:00Z")),
        Some(at("2026-11-01T05:30:00Z"))
    );
    let gap = schedule("0,30 2 * * *", NEW_YORK);
    assert_eq!(
        gap.next_after(at("2026-03-08T06:59:00Z")),
        Some(at("2026-03-08T07:00:00Z"))
    );
    assert_eq!(
        gap.next_after(at("2026-03-08T07:00:00Z")),
        Some(at("2026-03-09T06:00:00Z"))
    );
}

// ---------------------------------------------------------------- Europe/Berlin

#[test]
fn berlin_fixed_time_daily() {
    let tz = BERLIN;
    let spring = "2026-03-27T12:00:00Z";
    let fall = "2026-10-23T12:00:00Z";
    assert_fires(
        "0 2 * * *",
        tz,
        spring,
        &[
            "2026-03-28T01:00Z",
            "2026-03-29T01:00Z",
            "2026-03-30T00:00Z",
        ],
    );
    assert_fires(
        "0 2 * * *",
        tz,
        fall,
        &[
            "2026-10-24T00:00Z",
            "2026-10-25T00:00Z",
            "2026-10-26T01:00Z",
        ],
    );
    assert_fires(
        "30 2 * * *",
        tz,
        spring,
        &[
            "2026-03-28T01:30Z",
            "2026-03-29T01:00Z",
            "2026-03-30T00:30Z",
        ],
    );
    assert_fires(
        "30 2 * * *",
        tz,
        fall,
        &[
            "2026-10-24T00:30Z",
            "2026-10-25T00:30Z",
            "2026-10-26T01:30Z",
        ],
    );
    assert_fires(
        "30 1 * * *",
        tz,
        spring,
        &[
            "2026-03-28T00:30Z",
            "2026-03-29T00:30Z",
            "2026-03-29T23:30Z",
        ],
    );
    assert_fires(
        "30 1 * * *",
        tz,
        fall,
        &[
            "2026-10-23T23:30Z",
            "2026-10-24T23:30Z",
            "2026-10-26T00:30Z",
        ],
    );
    assert_fires(
        "0,30 2 * * *",
        tz,
        spring,
        &[
            "2026-03-28T01:00Z",
            "2026-03-28T01:30Z",
            "2026-03-29T01:00Z",
            "2026-03-30T00:00Z",
            "2026-03-30T00:30Z",
        ],
    );
    assert_fires(
        "0,30 2 * * *",
        tz,
        fall,
        &[
            "2026-10-24T00:00Z",
            "2026-10-24T00:30Z",
            "2026-10-25T00:00Z",
            "2026-10-25T00:30Z",
            "2026-10-26T01:00Z",
            "2026-10-26T01:30Z",
        ],
    );
}

#[test]
fn berlin_wildcard() {
    let tz = BERLIN;
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-03-29T00:30:00Z",
        &[
            "2026-03-29T00:40Z",
            "2026-03-29T01:00Z",
            "2026-03-29T01:20Z",
        ],
    );
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-10-24T23:50:00Z",
        &[
            "2026-10-25T00:00Z",
            "2026-10-25T00:20Z",
            "2026-10-25T00:40Z",
            "2026-10-25T01:00Z",
            "2026-10-25T01:20Z",
            "2026-10-25T01:40Z",
            "2026-10-25T02:00Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-03-28T23:30:00Z",
        &[
            "2026-03-29T00:00Z",
            "2026-03-29T01:00Z",
            "2026-03-29T02:00Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-10-24T23:30:00Z",
        &[
            "2026-10-25T00:00Z",
            "2026-10-25T01:00Z",
            "2026-10-25T02:00Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-03-29T00:00:00Z",
        &[
            "2026-03-29T00:30Z",
            "2026-03-29T01:30Z",
            "2026-03-29T02:30Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-10-25T00:00:00Z",
        &[
            "2026-10-25T00:30Z",
            "2026-10-25T01:30Z",
            "2026-10-25T02:30Z",
        ],
    );
    // Restart from the first 02:50 (CEST): the second 02:00 (CET) is next.
    assert_eq!(
        schedule("*/20 * * * *", tz).next_after(at("2026-10-25T00:50:00Z")),
        Some(at("2026-10-25T01:00:00Z"))
    );
}

// ---------------------------------------------------------------- Australia/Lord_Howe

#[test]
fn lord_howe_half_hour_fold() {
    let tz = LORD_HOWE;
    // 01:30-01:59 happens twice on 04-05: +11 then +10:30.
    assert_fires(
        "30 1 * * *",
        tz,
        "2026-04-03T00:00:00Z",
        &[
            "2026-04-03T14:30Z",
            "2026-04-04T14:30Z",
            "2026-04-05T15:00Z",
        ],
    );
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-04-04T14:15:00Z",
        &[
            "2026-04-04T14:20Z",
            "2026-04-04T14:40Z",
            "2026-04-04T15:10Z",
            "2026-04-04T15:30Z",
            "2026-04-04T15:50Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-04-04T13:30:00Z",
        &[
            "2026-04-04T14:00Z",
            "2026-04-04T15:30Z",
            "2026-04-04T16:30Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-04-04T13:00:00Z",
        &[
            "2026-04-04T13:30Z",
            "2026-04-04T14:30Z",
            "2026-04-04T15:00Z",
            "2026-04-04T16:00Z",
        ],
    );
    assert_fires(
        "0 2 * * *",
        tz,
        "2026-04-03T00:00:00Z",
        &[
            "2026-04-03T15:00Z",
            "2026-04-04T15:30Z",
            "2026-04-05T15:30Z",
        ],
    );
}

#[test]
fn lord_howe_half_hour_gap() {
    let tz = LORD_HOWE;
    // 02:00-02:29 does not exist on 10-04; 02:30 +11 is 15:30Z, the transition itself.
    assert_fires(
        "0 2 * * *",
        tz,
        "2026-10-02T00:00:00Z",
        &[
            "2026-10-02T15:30Z",
            "2026-10-03T15:30Z",
            "2026-10-04T15:00Z",
        ],
    );
    assert_fires(
        "30 2 * * *",
        tz,
        "2026-10-02T00:00:00Z",
        &[
            "2026-10-02T16:00Z",
            "2026-10-03T15:30Z",
            "2026-10-04T15:30Z",
        ],
    );
    // 02:00, 02:15 (both skipped) and 02:30 (the end of the gap) are a single run.
    assert_fires(
        "0,15,30 2 * * *",
        tz,
        "2026-10-03T00:00:00Z",
        &[
            "2026-10-03T15:30Z",
            "2026-10-04T15:00Z",
            "2026-10-04T15:15Z",
        ],
    );
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-10-03T15:00:00Z",
        &[
            "2026-10-03T15:10Z",
            "2026-10-03T15:40Z",
            "2026-10-03T16:00Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-10-03T14:00:00Z",
        &[
            "2026-10-03T14:30Z",
            "2026-10-03T16:00Z",
            "2026-10-03T17:00Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-10-03T14:30:00Z",
        &[
            "2026-10-03T15:00Z",
            "2026-10-03T15:30Z",
            "2026-10-03T16:30Z",
        ],
    );
}

// ---------------------------------------------------------------- America/Santiago

#[test]
fn santiago_midnight_gap() {
    let tz = SANTIAGO;
    // Midnight does not exist on 2026-09-06.
    assert_fires(
        "0 0 * * *",
        tz,
        "2026-09-04T12:00:00Z",
        &[
            "2026-09-05T04:00Z",
            "2026-09-06T04:00Z",
            "2026-09-07T03:00Z",
        ],
    );
    assert_fires(
        "0,30 0 * * *",
        tz,
        "2026-09-05T12:00:00Z",
        &[
            "2026-09-06T04:00Z",
            "2026-09-07T03:00Z",
            "2026-09-07T03:30Z",
        ],
    );
    assert_fires(
        "*/20 * * * *",
        tz,
        "2026-09-06T03:30:00Z",
        &[
            "2026-09-06T03:40Z",
            "2026-09-06T04:00Z",
            "2026-09-06T04:20Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-09-06T02:30:00Z",
        &[
            "2026-09-06T03:00Z",
            "2026-09-06T04:00Z",
            "2026-09-06T05:00Z",
        ],
    );
    // A daily job on the day of the gap only (2026-09-06 is a Sunday).
    assert_fires(
        "30 0 6 9 *",
        tz,
        "2026-01-01T00:00:00Z",
        &["2026-09-06T04:00Z", "2027-09-06T03:30Z"],
    );
}

#[test]
fn santiago_fold_before_midnight() {
    let tz = SANTIAGO;
    // 23:00-23:59 on 2026-04-04 happens twice: -03 then -04.
    assert_fires(
        "30 23 * * *",
        tz,
        "2026-04-03T12:00:00Z",
        &[
            "2026-04-04T02:30Z",
            "2026-04-05T02:30Z",
            "2026-04-06T03:30Z",
        ],
    );
    assert_fires(
        "0 0 * * *",
        tz,
        "2026-04-03T12:00:00Z",
        &[
            "2026-04-04T03:00Z",
            "2026-04-05T04:00Z",
            "2026-04-06T04:00Z",
        ],
    );
    assert_fires(
        "0 * * * *",
        tz,
        "2026-04-05T01:30:00Z",
        &[
            "2026-04-05T02:00Z",
            "2026-04-05T03:00Z",
            "2026-04-05T04:00Z",
            "2026-04-05T05:00Z",
        ],
    );
    assert_fires(
        "30 * * * *",
        tz,
        "2026-04-05T01:00:00Z",
        &[
            "2026-04-05T01:30Z",
            "2026-04-05T02:30Z",
            "2026-04-05T03:30Z",
            "2026-04-05T04:30Z",
        ],
    );
    // Only Saturdays: both 23:30s of Saturday 04-04 run (wildcard minute).
    assert_fires(
        "*/30 23 * * sat",
        tz,
        "2026-04-04T12:00:00Z",
        &[
            "2026-04-05T02:00Z",
            "2026-04-05T02:30Z",
            "2026-04-05T03:00Z",
            "2026-04-05T03:30Z",
            "2026-04-12T03:00Z",
        ],
    );
}

#[test]
fn describe_with_zone() {
    assert_eq!(
        schedule("0 2 * * *", NEW_YORK).describe(),
        "every day at 02:00, New York time"
    );
    assert_eq!(
        schedule("*/15 * * * *", Tz::UTC).describe(),
        "every 15 minutes, UTC"
    );
}

// ---------------------------------------------------------------- America/St_Johns (2006)

/// Until 2006 Newfoundland fell back at 00:01 NDT to 23:01 NST of the previous day
/// (2006-10-29 02:31Z), so the repeated hour spans midnight and two local days' fires
/// interleave.
#[test]
fn st_johns_fold_across_midnight() {
    let tz = chrono_tz::America::St_Johns;
    assert_fires(
        "0,30 * * * *",
        tz,
        "2006-10-29T01:45:00Z",
        &[
            "2006-10-29T02:00Z", // 10-28 23:30 NDT
            "2006-10-29T02:30Z", // 10-29 00:00 NDT
            "2006-10-29T03:00Z", // 10-28 23:30 NST
            "2006-10-29T03:30Z", // 10-29 00:00 NST
            "2006-10-29T04:00Z", // 10-29 00:30 NST
        ],
    );
    assert_fires(
        "* * * * *",
        tz,
        "2006-10-29T02:28:00Z",
        &[
            "2006-10-29T02:29Z",
            "2006-10-29T02:30Z",
            "2006-10-29T02:31Z",
            "2006-10-29T02:32Z",
        ],
    );
    assert_fires(
        "0 0 * * *",
        tz,
        "2006-10-28T00:00:00Z",
        &[
            "2006-10-28T02:30Z",
            "2006-10-29T02:30Z",
            "2006-10-30T03:30Z",
        ],
    );
    assert_fires(
        "30 23 * * *",
        tz,
        "2006-10-28T00:00:00Z",
        &[
            "2006-10-28T02:00Z",
            "2006-10-29T02:00Z",
            "2006-10-30T03:00Z",
        ],
    );
    let s = schedule("0,30 * * * *", tz);
    assert_eq!(
        s.prev_before(at("2006-10-29T03:00:00Z")),
        Some(at("2006-10-29T02:30:00Z"))
    );
    assert_eq!(
        s.next_after(at("2006-10-29T02:30:00Z")),
        Some(at("2006-10-29T03:00:00Z"))
    );
}
