//! The interval a manual run covers: the whole schedule interval a date or an instant names,
//! on the boundaries (a tick exactly, daylight-saving change days, hourly, weekday-only).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use drover_spec::schedule::{CronExpr, DataInterval, Schedule};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expr: &str, tz: Tz) -> Schedule {
    let cron = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    Schedule::new(cron, tz)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn iv(a: &str, b: &str) -> Option<DataInterval> {
    Some(DataInterval {
        start: at(a),
        end: at(b),
    })
}

const NY: Tz = Tz::America__New_York;

#[test]
fn a_date_names_the_daily_interval_it_starts() {
    let s = schedule("0 2 * * *", NY);
    // 02:00 New York is 07:00 UTC in November (EST).
    assert_eq!(
        s.interval_for_date(day("2026-11-20")),
        iv("2026-11-20T07:00:00Z", "2026-11-21T07:00:00Z")
    );
}

#[test]
fn an_instant_exactly_on_a_tick_starts_that_interval() {
    let s = schedule("0 2 * * *", NY);
    assert_eq!(
        s.interval_containing(at("2026-11-20T07:00:00Z")),
        iv("2026-11-20T07:00:00Z", "2026-11-21T07:00:00Z")
    );
    assert_eq!(
        s.interval_containing(at("2026-11-20T06:59:59Z")),
        iv("2026-11-19T07:00:00Z", "2026-11-20T07:00:00Z")
    );
    assert_eq!(
        s.interval_containing(at("2026-11-20T07:00:00.5Z")),
        iv("2026-11-20T07:00:00Z", "2026-11-21T07:00:00Z")
    );
}

#[test]
fn daylight_saving_change_days() {
    let s = schedule("0 2 * * *", NY);
    // Clocks go back on 2026-11-01: 02:00 EDT on 31 Oct to 02:00 EST on 1 Nov is 25 hours.
    assert_eq!(
        s.interval_for_date(day("2026-10-31")),
        iv("2026-10-31T06:00:00Z", "2026-11-01T07:00:00Z")
    );
    assert_eq!(
        s.interval_for_date(day("2026-11-01")),
        iv("2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z")
    );
    // Clocks go forward on 2026-03-08: 02:00 does not exist that day; the run of that day
    // fires when the clock jumps (03:00 EDT = 07:00 UTC), as the scheduler fires it.
    let march_8 = s.interval_for_date(day("2026-03-08"));
    assert_eq!(
        march_8.map(|i| i.start),
        s.next_after(at("2026-03-08T05:00:00Z"))
    );
    assert_eq!(
        s.interval_for_date(day("2026-03-07")).map(|i| i.end),
        march_8.map(|i| i.start)
    );
    assert_eq!(march_8.map(|i| i.end), Some(at("2026-03-09T06:00:00Z")));
}

#[test]
fn hourly_dates_start_at_midnight_and_instants_pick_their_hour() {
    let s = schedule("0 * * * *", NY);
    assert_eq!(
        s.interval_for_date(day("2026-11-20")),
        iv("2026-11-20T05:00:00Z", "2026-11-20T06:00:00Z")
    );
    assert_eq!(
        s.interval_containing(at("2026-11-20T06:30:00Z")),
        iv("2026-11-20T06:00:00Z", "2026-11-20T07:00:00Z")
    );
}

#[test]
fn weekday_only_schedules_cover_the_weekend_from_friday() {
    let s = schedule("0 2 * * 1-5", NY);
    // Friday 20 Nov 2026.
    assert_eq!(
        s.interval_for_date(day("2026-11-20")),
        iv("2026-11-20T07:00:00Z", "2026-11-23T07:00:00Z")
    );
    // Saturday and Sunday have no run of their own: they fall in Friday's.
    for weekend in ["2026-11-21", "2026-11-22"] {
        assert_eq!(
            s.interval_for_date(day(weekend)),
            iv("2026-11-20T07:00:00Z", "2026-11-23T07:00:00Z"),
            "{weekend}"
        );
    }
    assert_eq!(
        s.interval_for_date(day("2026-11-23")),
        iv("2026-11-23T07:00:00Z", "2026-11-24T07:00:00Z")
    );
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_when_its_clock_does() {
    // São Paulo moved its clocks from 00:00 to 01:00 on 2018-11-04.
    let s = schedule("0 * * * *", Tz::America__Sao_Paulo);
    assert_eq!(
        s.interval_for_date(day("2018-11-04")),
        iv("2018-11-04T03:00:00Z", "2018-11-04T04:00:00Z")
    );
}

#[test]
fn utc_schedules() {
    let s = schedule("30 6 * * *", Tz::UTC);
    assert_eq!(
        s.interval_for_date(day("2026-12-04")),
        iv("2026-12-04T06:30:00Z", "2026-12-05T06:30:00Z")
    );
}
