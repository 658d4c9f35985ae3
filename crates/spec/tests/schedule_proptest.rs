//! Property tests against naive references written from crontab(5) and ISC cron's DST rules:
//! random expressions built from random fields, random instants (often near transitions).

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use drover_spec::schedule::{CronErrorKind, CronExpr, Schedule};
use proptest::prelude::*;

// ------------------------------------------------------------------ random expressions

#[derive(Debug, Clone, Copy)]
enum Item {
    Star,
    StarStep(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    /// `a/n`: `a-max/n`.
    ValueStep(u32, u32),
}

#[derive(Debug, Clone)]
struct Field {
    items: Vec<Item>,
    max: u32,
    min: u32,
    text: String,
}

impl Field {
    /// Membership read literally off the field's items.
    fn contains(&self, v: u32) -> bool {
        self.items.iter().any(|item| match *item {
            Item::Star => true,
            Item::StarStep(s) => (v - self.min).is_multiple_of(s),
            Item::Value(a) => v == a,
            Item::Range(a, b) => a <= v && v <= b,
            Item::RangeStep(a, b, s) => a <= v && v <= b && (v - a).is_multiple_of(s),
            Item::ValueStep(a, s) => a <= v && v <= self.max && (v - a).is_multiple_of(s),
        })
    }

    fn is_star(&self) -> bool {
        self.text.starts_with('*')
    }
}

#[derive(Debug, Clone)]
struct Expr {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
    text: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn item(min: u32, max: u32) -> impl Strategy<Value = Item> {
    prop_oneof![
        2 => Just(Item::Star),
        1 => (1..=max).prop_map(Item::StarStep),
        3 => (min..=max).prop_map(Item::Value),
        2 => (min..=max, min..=max).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
        1 => (min..=max, min..=max, 1..=max)
            .prop_map(|(a, b, s)| Item::RangeStep(a.min(b), a.max(b), s)),
        1 => (min..=max, 1..=max).prop_map(|(a, s)| Item::ValueStep(a, s)),
    ]
}

fn field(min: u32, max: u32, names: &'static [&'static str]) -> impl Strategy<Value = Field> {
    (
        prop::collection::vec(item(min, max), 1..=3),
        prop::bool::weighted(0.4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(items, plain_star, use_names, upper)| {
            let items = if plain_star { vec![Item::Star] } else { items };
            let value = |v: u32| -> String {
                match names.get((v - min) as usize) {
                    Some(name) if use_names && upper => name.to_uppercase(),
                    Some(name) if use_names => (*name).to_owned(),
                    _ => v.to_string(),
                }
            };
            let text = items
                .iter()
                .map(|item| match *item {
                    Item::Star => "*".to_owned(),
                    Item::StarStep(s) => format!("*/{s}"),
                    Item::Value(a) => value(a),
                    Item::Range(a, b) => format!("{}-{}", value(a), value(b)),
                    Item::RangeStep(a, b, s) => format!("{}-{}/{s}", value(a), value(b)),
                    Item::ValueStep(a, s) => format!("{}/{s}", value(a)),
                })
                .collect::<Vec<_>>()
                .join(",");
            Field {
                items,
                min,
                max,
                text,
            }
        })
}

fn literal(text: &str, min: u32, max: u32) -> Field {
    let items = match text {
        "*" => vec![Item::Star],
        n => vec![Item::Value(n.parse().expect("number"))],
    };
    Field {
        items,
        min,
        max,
        text: text.to_owned(),
    }
}

fn preset(name: &str, fields: &str) -> Expr {
    let f: Vec<&str> = fields.split(' ').collect();
    Expr {
        minute: literal(f[0], 0, 59),
        hour: literal(f[1], 0, 23),
        dom: literal(f[2], 1, 31),
        month: literal(f[3], 1, 12),
        dow: literal(f[4], 0, 7),
        text: name.to_owned(),
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    let fields = (
        field(0, 59, &[]),
        field(0, 23, &[]),
        field(1, 31, &[]),
        field(1, 12, &MONTHS),
        field(0, 7, &WEEKDAYS),
    )
        .prop_map(|(minute, hour, dom, month, dow)| {
            let text = format!(
                "{} {} {} {} {}",
                minute.text, hour.text, dom.text, month.text, dow.text
            );
            Expr {
                minute,
                hour,
                dom,
                month,
                dow,
                text,
            }
        });
    prop_oneof![
        20 => fields,
        1 => prop_oneof![
            Just(preset("@yearly", "0 0 1 1 *")),
            Just(preset("@monthly", "0 0 1 * *")),
            Just(preset("@weekly", "0 0 * * 0")),
            Just(preset("@daily", "0 0 * * *")),
            Just(preset("@hourly", "0 * * * *")),
        ],
    ]
}

// ------------------------------------------------------------------ naive references

fn day_matches(e: &Expr, date: NaiveDate) -> bool {
    let wd = date.weekday().num_days_from_sunday();
    let dom = e.dom.contains(date.day());
    let dow = e.dow.contains(wd) || (wd == 0 && e.dow.contains(7));
    let days = if e.dom.is_star() || e.dow.is_star() {
        dom && dow
    } else {
        dom || dow
    };
    e.month.contains(date.month()) && days
}

fn time_matches(e: &Expr, t: NaiveDateTime) -> bool {
    e.minute.contains(t.minute()) && e.hour.contains(t.hour())
}

fn wildcard(e: &Expr) -> bool {
    e.minute.is_star() || e.hour.is_star()
}

fn never_fires(e: &Expr) -> bool {
    let max_days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (e.dom.is_star() || e.dow.is_star())
        && !(1..=12u32).any(|m| {
            e.month.contains(m) && (1..=max_days[m as usize - 1]).any(|d| e.dom.contains(d))
        })
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).expect("midnight")
}

/// The first matching wall time strictly after `after`, minute by minute (skipping days that
/// do not match).
fn naive_next(e: &Expr, after: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = after.with_second(0)?.with_nanosecond(0)?;
    let mut t = floor + Duration::minutes(1);
    let limit = after + Duration::days(366 * 30);
    while t < limit {
        if !day_matches(e, t.date()) {
            t = midnight(t.date().succ_opt()?);
        } else if time_matches(e, t) {
            return Some(t);
        } else {
            t += Duration::minutes(1);
        }
    }
    None
}

/// The last matching wall time strictly before `before`.
fn naive_prev(e: &Expr, before: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = before.with_second(0)?.with_nanosecond(0)?;
    let mut t = if floor == before {
        floor - Duration::minutes(1)
    } else {
        floor
    };
    let limit = before - Duration::days(366 * 30);
    while t > limit {
        if !day_matches(e, t.date()) {
            t = midnight(t.date()) - Duration::minutes(1);
        } else if time_matches(e, t) {
            return Some(t);
        } else {
            t -= Duration::minutes(1);
        }
    }
    None
}

/// ISC cron's fires for the local days `first..=last`, straight from chrono's local time
/// resolution: a gap skips wildcard jobs and moves fixed-time jobs to the first existing
/// minute; a fold fires wildcard jobs twice and fixed-time jobs at the earlier instant.
fn isc_fires(e: &Expr, tz: Tz, first: NaiveDate, last: NaiveDate) -> BTreeSet<DateTime<Utc>> {
    let mut out = BTreeSet::new();
    let mut date = first;
    while date <= last {
        if day_matches(e, date) {
            for minute in 0..1440 {
                let wall = midnight(date) + Duration::minutes(minute);
                if !time_matches(e, wall) {
                    continue;
                }
                match tz.from_local_datetime(&wall) {
                    LocalResult::Single(t) => {
                        out.insert(t.with_timezone(&Utc));
                    }
                    LocalResult::Ambiguous(a, b) => {
                        out.insert(a.with_timezone(&Utc));
                        if wildcard(e) {
                            out.insert(b.with_timezone(&Utc));
                        }
                    }
                    LocalResult::None if wildcard(e) => {}
                    LocalResult::None => {
                        let after_gap = (1..24 * 60).find_map(|m| {
                            tz.from_local_datetime(&(wall + Duration::minutes(m)))
                                .earliest()
                        });
                        out.extend(after_gap.map(|t| t.with_timezone(&Utc)));
                    }
                }
            }
        }
        date = date.succ_opt().expect("date");
    }
    out
}

fn offset(tz: Tz, t: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

fn utc(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).expect("in range")
}

// ------------------------------------------------------------------ zones and instants

const ZONES: [Tz; 4] = [
    chrono_tz::America::New_York,
    chrono_tz::Europe::Berlin,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::Santiago,
];

/// The 2026 transitions of each of `ZONES` (see schedule_dst.rs).
const TRANSITIONS: [[&str; 2]; 4] = [
    ["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"],
    ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"],
    ["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"],
    ["2026-04-05T03:00:00Z", "2026-09-06T04:00:00Z"],
];

fn transition(zone: usize, which: usize) -> i64 {
    DateTime::parse_from_rfc3339(TRANSITIONS[zone][which])
        .expect("valid")
        .timestamp()
}

/// A zone and an instant in it: anywhere in 2025-2028, or within two days of one of the
/// zone's 2026 transitions (often on a minute boundary).
fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Utc>)> {
    (
        0..ZONES.len(),
        prop_oneof![
            1 => (1_735_689_600i64..1_830_297_600).prop_map(|s| (None, s)),
            3 => (0..2usize, -2 * 86_400i64..2 * 86_400).prop_map(|(w, d)| (Some(w), d)),
        ],
        prop_oneof![Just(0u32), Just(0u32), 0..1_000_000_000u32],
        any::<bool>(),
    )
        .prop_map(|(zone, (which, secs), nanos, aligned)| {
            let mut secs = match which {
                Some(w) => transition(zone, w) + secs,
                None => secs,
            };
            if aligned {
                secs -= secs.rem_euclid(60);
            }
            (ZONES[zone], utc(secs, nanos))
        })
}

fn parse_or_check_never(e: &Expr) -> Result<Option<CronExpr>, TestCaseError> {
    match CronExpr::parse(&e.text) {
        Ok(cron) => {
            prop_assert!(!never_fires(e), "`{}` never fires but parsed", e.text);
            Ok(Some(cron))
        }
        Err(err) => {
            prop_assert_eq!(
                err.kind(),
                CronErrorKind::NeverFires,
                "`{}`: {}",
                e.text,
                err
            );
            prop_assert!(never_fires(e), "`{}` rejected: {}", e.text, err);
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// UTC has no DST: fire times are exactly the naive minute-by-minute reference.
    #[test]
    fn utc_matches_naive_reference(
        e in expr(),
        secs in 946_684_800i64..2_208_988_800,
        nanos in prop_oneof![Just(0u32), 0..1_000_000_000u32],
        aligned in any::<bool>(),
    ) {
        let Some(cron) = parse_or_check_never(&e)? else { return Ok(()) };
        let s = Schedule::new(cron, Tz::UTC);
        let secs = if aligned { secs - secs.rem_euclid(60) } else { secs };
        let t = utc(secs, nanos);

        prop_assert_eq!(s.cron().matches_date(t.date_naive()), day_matches(&e, t.date_naive()));
        let mut want = naive_next(&e, t.naive_utc());
        prop_assert_eq!(s.next_after(t).map(|f| f.naive_utc()), want, "`{}` after {}", e.text, t);
        for got in s.fire_times(t).take(5) {
            prop_assert_eq!(Some(got.naive_utc()), want, "`{}` after {}", e.text, t);
            want = want.and_then(|w| naive_next(&e, w));
        }
        prop_assert_eq!(
            s.prev_before(t).map(|f| f.naive_utc()),
            naive_prev(&e, t.naive_utc()),
            "`{}` before {}", e.text, t
        );
    }

    /// In DST zones: agreement with ISC cron's rules applied through chrono's local time
    /// resolution, strictly increasing output, and next/prev consistency.
    #[test]
    fn dst_zones_follow_isc_rules((tz, t) in zone_and_instant(), e in expr()) {
        let Some(cron) = parse_or_check_never(&e)? else { return Ok(()) };
        let s = Schedule::new(cron, tz);
        let day = t.with_timezone(&tz).date_naive();
        let reference = isc_fires(
            &e,
            tz,
            day - Duration::days(2),
            day + Duration::days(2),
        );
        let window = Duration::days(1);

        // Forwards: every fire within a day of t, in order, nothing else.
        let want: Vec<_> = reference
            .range(t + Duration::nanoseconds(1)..=t + window)
            .copied()
            .take(12)
            .collect();
        let got: Vec<_> = s.fire_times(t).take_while(|f| *f <= t + window).take(12).collect();
        prop_assert_eq!(&got, &want, "`{}` in {} after {}", e.text, tz, t);
        let next = s.next_after(t);
        prop_assert_eq!(next, want.first().copied().or(next.filter(|n| *n > t + window)));

        // Backwards.
        let want_prev = reference.range(..t).next_back().copied().filter(|p| *p >= t - window);
        let prev = s.prev_before(t);
        prop_assert_eq!(prev.filter(|p| *p >= t - window), want_prev, "`{}` in {} before {}", e.text, tz, t);

        // Strictly increasing, no skips, consistent with prev_before.
        let fires: Vec<_> = s.fire_times(t).take(20).collect();
        let mut last = t;
        for f in &fires {
            prop_assert!(*f > last);
            prop_assert_eq!(s.next_after(last), Some(*f));
            if last != t {
                prop_assert_eq!(s.prev_before(*f), Some(last));
            }
            last = *f;
        }
        if let (Some(first), Some(p)) = (fires.first(), prev) {
            // prev_before(next_after(p)) is the last fire <= t: t itself if it is a fire.
            prop_assert!(p < t);
            let at_or_after = if reference.contains(&t) { t } else { *first };
            prop_assert_eq!(s.next_after(p), Some(at_or_after));
        }

        // On regular days (no offset change anywhere near), plain local wall-clock arithmetic.
        if let Some(f) = next.filter(|f| *f - t <= Duration::days(3)) {
            let o = offset(tz, t);
            let mut probe = t - Duration::days(1);
            let mut regular = true;
            while probe <= f + Duration::days(1) {
                regular &= offset(tz, probe) == o;
                probe += Duration::minutes(30);
            }
            if regular {
                let wall = t.naive_utc() + Duration::seconds(o);
                prop_assert_eq!(
                    Some(f.naive_utc() + Duration::seconds(o)),
                    naive_next(&e, wall)
                );
            }
        }
    }

    /// Intervals are contiguous, lie within [from, to], start at the first fire >= from and
    /// stop at the last fire <= to.
    #[test]
    fn intervals_are_contiguous(
        (tz, from) in zone_and_instant(),
        e in expr(),
        len in prop_oneof![0i64..86_400, 0i64..10 * 86_400],
        utc_zone in any::<bool>(),
    ) {
        let Some(cron) = parse_or_check_never(&e)? else { return Ok(()) };
        let s = Schedule::new(cron, if utc_zone { Tz::UTC } else { tz });
        let to = from + Duration::seconds(len);
        let intervals: Vec<_> = s.intervals(from, to).take(20_000).collect();
        prop_assume!(intervals.len() < 20_000);
        let first_fire = s.next_after(from - Duration::nanoseconds(1));
        for pair in intervals.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
        }
        for (i, iv) in intervals.iter().enumerate() {
            prop_assert!(iv.start < iv.end);
            prop_assert!(iv.start >= from && iv.end <= to);
            if i % 97 == 0 {
                prop_assert_eq!(s.interval_ending_at(iv.end), Some(*iv));
                prop_assert_eq!(s.next_after(iv.start), Some(iv.end));
            }
        }
        match (intervals.first(), intervals.last()) {
            (Some(first), Some(last)) => {
                prop_assert_eq!(Some(first.start), first_fire);
                prop_assert!(s.next_after(last.end).is_none_or(|n| n > to));
                prop_assert_eq!(s.latest_complete_interval(last.end), Some(*last));
            }
            _ => {
                // No interval: fewer than two fires in [from, to].
                let second = first_fire.and_then(|f| s.next_after(f));
                prop_assert!(first_fire.is_none_or(|f| f > to) || second.is_none_or(|f| f > to));
            }
        }
    }
}
