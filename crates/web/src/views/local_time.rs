//! Times in the DAG's own time zone, as the people who own the DAG say them: "Ran Wed 2 Dec
//! 02:00 New York · data for Tue 1 Dec", "tonight 02:00 New York, in 3 h", "by 06:00 New York
//! — missed by 12 min". The logical date and UTC instants go in a title or a details element
//! next to these words ([`utc_details`]).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use super::format;

/// The zone's place as people name it: the last part of its IANA name with spaces
/// ("America/New_York" → "New York", "America/Argentina/Buenos_Aires" → "Buenos Aires");
/// "UTC" for UTC and its aliases.
pub(crate) fn city(tz: Tz) -> String {
    let name = tz.name();
    if matches!(
        name,
        "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Etc/Universal" | "Universal" | "Zulu" | "Etc/Zulu"
    ) || name.starts_with("Etc/GMT")
        || name == "GMT"
    {
        return if name.starts_with("Etc/GMT") && name.len() > 7 {
            name.trim_start_matches("Etc/").to_owned()
        } else {
            "UTC".to_owned()
        };
    }
    name.rsplit('/').next().unwrap_or(name).replace('_', " ")
}

/// "Wed 2 Dec", with the year when it is not `now`'s year in that zone ("Wed 2 Dec 2025").
fn day(local: NaiveDate, today: NaiveDate) -> String {
    if local.year() == today.year() {
        local.format("%a %-d %b").to_string()
    } else {
        local.format("%a %-d %b %Y").to_string()
    }
}

/// "02:00".
fn clock<T: Timelike>(t: &T) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// When the next run fires, by the clock of its zone, and how soon: "today 14:00 New York,
/// in 3 h"; "tonight 02:00 New York, in 3 h" (evening, or the small hours after it);
/// "tomorrow 06:30 Chicago, in 20 h"; beyond tomorrow "Fri 4 Dec 06:30 Chicago".
pub(crate) fn next_run(now: DateTime<Utc>, at: DateTime<Utc>, tz: Tz) -> String {
    let local_now = now.with_timezone(&tz);
    let local = at.with_timezone(&tz);
    let today = local_now.date_naive();
    let date = local.date_naive();
    let place = city(tz);
    let soon = at - now < Duration::hours(24);
    let small_hours = local.hour() < 6;
    let evening = local.hour() >= 18;
    let word = if date == today {
        Some(if evening || (small_hours && local_now.hour() < 6) {
            "tonight"
        } else {
            "today"
        })
    } else if today.succ_opt() == Some(date) {
        // 02:00 after an evening is still "tonight"; 02:00 seen at noon is the coming night.
        Some(if small_hours && soon {
            "tonight"
        } else {
            "tomorrow"
        })
    } else {
        None
    };
    match word {
        Some(word) if soon => format!("{word} {} {place}, {}", clock(&local), format::ago(now, at)),
        Some(word) => format!("{word} {} {place}", clock(&local)),
        None => format!("{} {} {place}", day(date, today), clock(&local)),
    }
}

/// A run as people name it: when it ran and which data it covers, in the DAG's zone. "Ran Wed
/// 2 Dec 02:00 New York · data for Tue 1 Dec" for a daily interval; "· data for 01:00–02:00"
/// for a shorter one (with its day when that is not the day it ran); "· data for Fri 20 Nov
/// – Mon 23 Nov" for several days. A run not started yet is "Queued Wed 2 Dec 02:00 New York"
/// (by when it was created); a run without an interval has no data part.
pub(crate) fn run_label(
    now: DateTime<Utc>,
    ran_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
) -> String {
    let today = now.with_timezone(&tz).date_naive();
    let (verb, when) = match ran_at {
        Some(t) => ("Ran", t),
        None => ("Queued", created_at),
    };
    let local = when.with_timezone(&tz);
    let mut out = format!(
        "{verb} {} {} {}",
        day(local.date_naive(), today),
        clock(&local),
        city(tz)
    );
    if let Some(data) = data_words(start, end, tz, local.date_naive(), today) {
        out.push_str(" · data for ");
        out.push_str(&data);
    }
    out
}

/// A stored run's label and the exact facts behind it (for a title attribute).
pub(crate) fn run_words(
    now: DateTime<Utc>,
    run: &drover_store::RunRow,
    tz: Tz,
) -> (String, String) {
    (
        run_label(
            now,
            run.started_at,
            run.created_at,
            run.interval_start,
            run.interval_end,
            tz,
        ),
        utc_details(run.logical_date, run.interval_start, run.interval_end),
    )
}

/// The data interval in words, or `None` when it is empty.
fn data_words(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
    ran_on: NaiveDate,
    today: NaiveDate,
) -> Option<String> {
    if end <= start {
        return None;
    }
    let s = start.with_timezone(&tz);
    let e = end.with_timezone(&tz);
    let (sd, ed) = (s.date_naive(), e.date_naive());
    // One local day: from a time on one day to the same wall-clock time on the next (23 or 25
    // hours across a daylight-saving change).
    if sd.succ_opt() == Some(ed) && s.time() == e.time() {
        return Some(day(sd, today));
    }
    if end - start < Duration::hours(24) {
        let hours = format!("{}–{}", clock(&s), clock(&e));
        return Some(if sd == ran_on {
            hours
        } else {
            format!("{} {hours}", day(sd, today))
        });
    }
    // Several days: the last day covered is the day before `end` when `end` is at the same
    // clock as `start`.
    let last = if s.time() == e.time() {
        ed.pred_opt().unwrap_or(ed)
    } else {
        ed
    };
    Some(format!("{} – {}", day(sd, today), day(last, today)))
}

/// A data interval in full, for the trigger form: "Fri 20 Nov 02:00 → Sat 21 Nov 02:00 New
/// York"; an empty one (a DAG without a schedule) is its one instant.
pub(crate) fn interval_words(
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tz: Tz,
) -> String {
    let today = now.with_timezone(&tz).date_naive();
    let s = start.with_timezone(&tz);
    let e = end.with_timezone(&tz);
    let at = |t: &DateTime<Tz>| format!("{} {}", day(t.date_naive(), today), clock(t));
    if end <= start {
        format!("{} {}", at(&s), city(tz))
    } else {
        format!("{} → {} {}", at(&s), at(&e), city(tz))
    }
}

/// A deadline by its zone's clock, and how it went: "by 06:00 New York — missed by 12 min",
/// "by 06:00 New York — met", "by 06:00 New York — due in 2 h". `finished` is when the run
/// ended (`None` while it runs); `state` is the stored deadline state ("met", "missed").
pub(crate) fn deadline(
    now: DateTime<Utc>,
    due: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
    state: Option<&str>,
    tz: Tz,
) -> String {
    let local = due.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let mut by = format!("by {} {}", clock(&local), city(tz));
    // The day when it is not the day the run is looked at, nor the day it finished.
    let ref_day = finished.unwrap_or(now).with_timezone(&tz).date_naive();
    if local.date_naive() != ref_day {
        by = format!(
            "by {} {} {}",
            day(local.date_naive(), today),
            clock(&local),
            city(tz)
        );
    }
    let late_by = |t: DateTime<Utc>| {
        format::duration_words(((t - due).num_seconds().max(60) / 60 * 60) as f64)
    };
    match state {
        Some("missed") => format!("{by} — missed by {}", late_by(finished.unwrap_or(now))),
        Some("met") => format!("{by} — met"),
        _ if now >= due => format!("{by} — missed by {}", late_by(now)),
        _ => format!("{by} — due {}", format::ago(now, due)),
    }
}

/// An instant to the second by its zone's clock, for events: "14:02:01" on `now`'s day in that
/// zone, "Wed 2 Dec 14:02:01" before (with the year when another).
pub(crate) fn moment(now: DateTime<Utc>, t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let clock = local.format("%H:%M:%S").to_string();
    if local.date_naive() == today {
        clock
    } else {
        format!("{} {clock}", day(local.date_naive(), today))
    }
}

/// The exact instants for a title or details element: "2026-12-02 07:00 UTC".
pub(crate) fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The facts behind a run's label: its logical date and data interval in UTC.
pub(crate) fn utc_details(
    logical: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    format!(
        "logical date {} · data interval {} → {}",
        utc(logical),
        utc(start),
        utc(end)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    const NY: Tz = Tz::America__New_York;
    const CHICAGO: Tz = Tz::America__Chicago;

    #[test]
    fn moments_to_the_second_with_the_day_unless_today() {
        let now = at("2026-12-02T20:00:00Z");
        assert_eq!(moment(now, at("2026-12-02T19:02:01Z"), NY), "14:02:01");
        assert_eq!(
            moment(now, at("2026-12-01T19:02:01Z"), NY),
            "Tue 1 Dec 14:02:01"
        );
        // 00:30 UTC on the 2nd is still the 1st in New York.
        assert_eq!(
            moment(now, at("2026-12-02T00:30:00Z"), NY),
            "Tue 1 Dec 19:30:00"
        );
        assert_eq!(
            moment(now, at("2025-12-02T19:02:01Z"), NY),
            "Tue 2 Dec 2025 14:02:01"
        );
    }

    #[test]
    fn cities_from_zone_names() {
        assert_eq!(city(NY), "New York");
        assert_eq!(city(Tz::America__Argentina__Buenos_Aires), "Buenos Aires");
        assert_eq!(city(Tz::Europe__Paris), "Paris");
        assert_eq!(city(Tz::UTC), "UTC");
        assert_eq!(city(Tz::Etc__UTC), "UTC");
        assert_eq!(city(Tz::Etc__GMTPlus5), "GMT+5");
    }

    #[test]
    fn next_runs_by_their_clock() {
        // 23:00 New York on Tue 1 Dec; the 02:00 run is tonight.
        let now = at("2026-12-02T04:00:00Z");
        assert_eq!(
            next_run(now, at("2026-12-02T07:00:00Z"), NY),
            "tonight 02:00 New York, in 3 h"
        );
        // Seen at noon, 02:00 is still tonight (the coming night).
        let noon = at("2026-12-01T17:00:00Z");
        assert_eq!(
            next_run(noon, at("2026-12-02T07:00:00Z"), NY),
            "tonight 02:00 New York, in 14 h"
        );
        // 10:30 Chicago; 06:30 tomorrow is 20 hours away.
        let morning = at("2026-12-01T16:30:00Z");
        assert_eq!(
            next_run(morning, at("2026-12-02T12:30:00Z"), CHICAGO),
            "tomorrow 06:30 Chicago, in 20 h"
        );
        assert_eq!(
            next_run(morning, at("2026-12-01T20:00:00Z"), CHICAGO),
            "today 14:00 Chicago, in 3 h"
        );
        assert_eq!(
            next_run(morning, at("2026-12-04T12:30:00Z"), CHICAGO),
            "Fri 4 Dec 06:30 Chicago"
        );
        assert_eq!(
            next_run(morning, at("2027-01-04T12:30:00Z"), CHICAGO),
            "Mon 4 Jan 2027 06:30 Chicago"
        );
        // UTC DAGs read in UTC.
        assert_eq!(
            next_run(
                at("2026-12-01T10:00:00Z"),
                at("2026-12-02T06:30:00Z"),
                Tz::UTC
            ),
            "tomorrow 06:30 UTC, in 20 h"
        );
    }

    #[test]
    fn next_run_across_a_daylight_saving_change() {
        // Clocks go back at 02:00 on Sun 1 Nov 2026 in New York; 02:00 EST is 07:00 UTC.
        let evening = at("2026-11-01T02:00:00Z"); // 22:00 EDT on Sat 31 Oct
        assert_eq!(
            next_run(evening, at("2026-11-01T07:00:00Z"), NY),
            "tonight 02:00 New York, in 5 h"
        );
    }

    #[test]
    fn runs_by_when_they_ran_and_their_data() {
        let now = at("2026-12-02T15:00:00Z");
        assert_eq!(
            run_label(
                now,
                Some(at("2026-12-02T07:00:03Z")),
                at("2026-12-02T07:00:00Z"),
                at("2026-12-01T07:00:00Z"),
                at("2026-12-02T07:00:00Z"),
                NY
            ),
            "Ran Wed 2 Dec 02:00 New York · data for Tue 1 Dec"
        );
        // Hourly: the hours, and the day only when it is not the day it ran.
        assert_eq!(
            run_label(
                now,
                Some(at("2026-12-02T07:00:00Z")),
                at("2026-12-02T07:00:00Z"),
                at("2026-12-02T06:00:00Z"),
                at("2026-12-02T07:00:00Z"),
                NY
            ),
            "Ran Wed 2 Dec 02:00 New York · data for 01:00–02:00"
        );
        assert_eq!(
            run_label(
                now,
                Some(at("2026-12-02T05:00:00Z")),
                at("2026-12-02T05:00:00Z"),
                at("2026-12-02T04:00:00Z"),
                at("2026-12-02T05:00:00Z"),
                NY
            ),
            "Ran Wed 2 Dec 00:00 New York · data for Tue 1 Dec 23:00–00:00"
        );
        // The 25-hour day when the clocks go back is still one day.
        assert_eq!(
            run_label(
                now,
                Some(at("2026-11-01T07:00:00Z")),
                at("2026-11-01T07:00:00Z"),
                at("2026-10-31T06:00:00Z"),
                at("2026-11-01T07:00:00Z"),
                NY
            ),
            "Ran Sun 1 Nov 02:00 New York · data for Sat 31 Oct"
        );
        // A weekday DAG's Friday run covers the weekend.
        assert_eq!(
            run_label(
                now,
                Some(at("2026-11-23T07:00:00Z")),
                at("2026-11-23T07:00:00Z"),
                at("2026-11-20T07:00:00Z"),
                at("2026-11-23T07:00:00Z"),
                NY
            ),
            "Ran Mon 23 Nov 02:00 New York · data for Fri 20 Nov – Sun 22 Nov"
        );
        // Not started yet; no interval (a manual-only DAG).
        assert_eq!(
            run_label(
                now,
                None,
                at("2026-12-02T14:00:00Z"),
                at("2026-12-02T14:00:00Z"),
                at("2026-12-02T14:00:00Z"),
                Tz::UTC
            ),
            "Queued Wed 2 Dec 14:00 UTC"
        );
    }

    #[test]
    fn deadlines_in_one_zone() {
        let due = at("2026-12-01T11:00:00Z"); // 06:00 New York
        assert_eq!(
            deadline(
                at("2026-12-01T15:00:00Z"),
                due,
                Some(at("2026-12-01T11:12:30Z")),
                Some("missed"),
                NY
            ),
            "by 06:00 New York — missed by 12 min"
        );
        assert_eq!(
            deadline(
                at("2026-12-01T15:00:00Z"),
                due,
                Some(at("2026-12-01T10:00:00Z")),
                Some("met"),
                NY
            ),
            "by 06:00 New York — met"
        );
        assert_eq!(
            deadline(at("2026-12-01T09:00:00Z"), due, None, None, NY),
            "by 06:00 New York — due in 2 h"
        );
        // Looked at the next day: the deadline names its day.
        assert_eq!(
            deadline(at("2026-12-02T15:00:00Z"), due, None, Some("missed"), NY),
            "by Tue 1 Dec 06:00 New York — missed by 1 d 4 h"
        );
    }

    #[test]
    fn intervals_in_full() {
        let now = at("2026-12-02T15:00:00Z");
        assert_eq!(
            interval_words(
                now,
                at("2026-11-20T07:00:00Z"),
                at("2026-11-21T07:00:00Z"),
                NY
            ),
            "Fri 20 Nov 02:00 → Sat 21 Nov 02:00 New York"
        );
        assert_eq!(
            interval_words(
                now,
                at("2026-11-20T07:00:00Z"),
                at("2026-11-20T07:00:00Z"),
                Tz::UTC
            ),
            "Fri 20 Nov 07:00 UTC"
        );
    }

    #[test]
    fn utc_facts() {
        assert_eq!(
            utc_details(
                at("2026-12-01T07:00:00Z"),
                at("2026-12-01T07:00:00Z"),
                at("2026-12-02T07:00:00Z")
            ),
            "logical date 2026-12-01 07:00:00 UTC · data interval 2026-12-01 07:00:00 UTC → 2026-12-02 07:00:00 UTC"
        );
    }
}
