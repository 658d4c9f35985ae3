//! Schedules in short, everyday English for the web UI: "every day at 02:00, New York time",
//! "weekdays at 08:00, UTC", "every 15 minutes".
//!
//! Unlike [`Schedule::describe`], which words *every* expression (literally if need be), this
//! only phrases the common shapes and otherwise shows the expression itself:
//! "cron `0 0 */2 * 1` (New York time)". The time zone is left out when it cannot matter
//! (an hourly or minute pattern that runs every day, in a zone whose offset is whole hours).

use super::cron::CronExpr;
use super::describe::{join_words, month_name};
use super::fire::Schedule;
use super::zone::offset_at;

/// Up to this many times a day are listed one by one ("at 02:00 and 14:00").
const MAX_TIMES: usize = 4;
/// Up to this many days of the month, or minutes of the hour, are listed one by one.
const MAX_LISTED: usize = 5;

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Bit masks over day-of-week bits (0 = Sunday).
const ALL_WEEKDAYS: u8 = 0x7f;
const MONDAY_TO_FRIDAY: u8 = 0b011_1110;
const SATURDAY_AND_SUNDAY: u8 = 0b100_0001;

impl Schedule {
    /// The schedule in short, everyday English, with the time zone's city when it matters:
    /// "every day at 02:00, New York time", "every hour at minute 15", "every 15 minutes",
    /// "every Monday at 06:30, London time", "weekdays at 08:00, UTC",
    /// "on day 1 of every month at 00:00, Chicago time",
    /// "at 02:00 and 14:00 every day, Berlin time".
    ///
    /// Expressions without a simple wording come back as the expression itself:
    /// "cron `0 0 */2 * 1` (New York time)", "cron `*/7 * * * *` (UTC)".
    pub fn in_words(&self) -> String {
        let zone = zone_words(self.timezone().name());
        match phrase(self.cron()) {
            Some((text, zone_free)) if zone_free && whole_hour_zone(self) => text,
            Some((text, _)) => match zone {
                Zone::Utc(utc) => format!("{text}, {utc}"),
                Zone::City(city) => format!("{text}, {city} time"),
            },
            None => {
                let source = self.cron().source();
                match zone {
                    Zone::Utc(utc) => format!("cron `{source}` ({utc})"),
                    Zone::City(city) => format!("cron `{source}` ({city} time)"),
                }
            }
        }
    }
}

/// The time zone as people say it.
enum Zone {
    /// UTC or a fixed offset from it: "UTC", "UTC-5", said without "time".
    Utc(String),
    /// The place of an IANA name: "New York", said with "time".
    City(String),
}

fn zone_words(name: &str) -> Zone {
    const UTC_NAMES: [&str; 16] = [
        "UTC",
        "UCT",
        "GMT",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Greenwich",
        "Universal",
        "Zulu",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/Greenwich",
        "Etc/Universal",
        "Etc/Zulu",
    ];
    let bare = name.strip_prefix("Etc/").unwrap_or(name);
    if UTC_NAMES.contains(&name) || matches!(bare, "GMT+0" | "GMT-0") {
        return Zone::Utc("UTC".to_owned());
    }
    // POSIX-style signs: `Etc/GMT+5` is five hours *behind* UTC.
    if let Some(rest) = name.strip_prefix("Etc/GMT")
        && let Some(sign) = rest.chars().next().filter(|c| matches!(c, '+' | '-'))
        && rest[1..].bytes().all(|b| b.is_ascii_digit())
        && !rest[1..].is_empty()
    {
        let flipped = if sign == '+' { '-' } else { '+' };
        return Zone::Utc(format!("UTC{flipped}{}", &rest[1..]));
    }
    let place = name.rsplit('/').next().unwrap_or(name);
    Zone::City(place.replace('_', " "))
}

/// Whether the zone's offset is a whole number of hours (then an hourly pattern reads the
/// same in every such zone). Sampled in winter and summer of a fixed year, so the answer
/// does not depend on the clock.
fn whole_hour_zone(schedule: &Schedule) -> bool {
    const JAN_2025: i64 = 1_735_689_600;
    const JUL_2025: i64 = 1_751_328_000;
    let tz = schedule.timezone();
    [JAN_2025, JUL_2025]
        .iter()
        .all(|&at| offset_at(tz, at) % 3_600 == 0)
}

fn set_bits(bits: u64, low: u32, high: u32) -> Vec<u32> {
    (low..=high).filter(|&v| bits & (1 << v) != 0).collect()
}

fn hhmm(hour: u32, minute: u32) -> String {
    format!("{hour:02}:{minute:02}")
}

/// `(first, last)` if `values` are consecutive.
fn single_run(values: &[u32]) -> Option<(u32, u32)> {
    let (&first, &last) = (values.first()?, values.last()?);
    (last - first + 1 == values.len() as u32).then_some((first, last))
}

/// The common difference if `values` (at least two) is an arithmetic progression.
fn progression_step(values: &[u32]) -> Option<u32> {
    let step = values.get(1)?.checked_sub(*values.first()?)?;
    values
        .windows(2)
        .all(|w| w[1].checked_sub(w[0]) == Some(step))
        .then_some(step)
}

fn numbers(values: &[u32]) -> String {
    let items: Vec<String> = values.iter().map(u32::to_string).collect();
    join_words(&items, "and")
}

/// The times of day.
enum Times {
    /// A short list of fixed times: "02:00", "02:00 and 14:00".
    At(Vec<String>),
    /// A frequency that reads without "every day": "every 15 minutes". `hourly` when it
    /// repeats the same way every hour of the day (so only the zone's minutes matter).
    Every { text: String, hourly: bool },
}

fn times(c: &CronExpr) -> Option<Times> {
    let minutes = set_bits(c.minutes, 0, 59);
    let hours = set_bits(u64::from(c.hours), 0, 23);
    let all_hours = hours.len() == 24;
    let every = |text: String| {
        Some(Times::Every {
            text,
            hourly: all_hours,
        })
    };

    if minutes.len() * hours.len() <= MAX_TIMES {
        let list = hours
            .iter()
            .flat_map(|&h| minutes.iter().map(move |&m| hhmm(h, m)))
            .collect();
        return Some(Times::At(list));
    }
    // Hour range ("from 09:00 to 17:45") for the minute frequencies; all hours need none.
    let span = |first_minute: u32, last_minute: u32| -> Option<String> {
        if all_hours {
            return Some(String::new());
        }
        let (first, last) = single_run(&hours)?;
        Some(format!(
            " from {} to {}",
            hhmm(first, first_minute),
            hhmm(last, last_minute)
        ))
    };
    if minutes.len() == 60 {
        return every(format!("every minute{}", span(0, 59)?));
    }
    if let [minute] = minutes[..] {
        if all_hours {
            return every(if minute == 0 {
                "every hour on the hour".to_owned()
            } else {
                format!("every hour at minute {minute}")
            });
        }
        let step = progression_step(&hours)?;
        let (first, last) = (hours[0], hours[hours.len() - 1]);
        let what = if step == 1 {
            "every hour".to_owned()
        } else {
            format!("every {step} hours")
        };
        return every(format!(
            "{what} from {} to {}",
            hhmm(first, minute),
            hhmm(last, minute)
        ));
    }
    // Several minutes an hour: "every N minutes" when they split the hour evenly from :00.
    if let Some(step) = progression_step(&minutes)
        && minutes[0] == 0
        && 60 % step == 0
        && minutes.len() as u32 == 60 / step
    {
        return every(format!(
            "every {step} minutes{}",
            span(0, minutes[minutes.len() - 1])?
        ));
    }
    if all_hours && minutes.len() <= MAX_LISTED {
        return every(format!("every hour at minutes {}", numbers(&minutes)));
    }
    None
}

/// The days a schedule runs on.
enum Days {
    Every,
    /// Day-of-week bits (0 = Sunday), not all set.
    Week(u8),
    /// Days of the month, not all of them.
    Month(Vec<u32>),
}

fn days(c: &CronExpr) -> Option<Days> {
    let month_days = set_bits(u64::from(c.days), 1, 31);
    let all_month_days = month_days.len() == 31;
    let all_week_days = c.weekdays == ALL_WEEKDAYS;
    if c.days_and_rule() {
        // Both fields must match: fine as long as one of them is unrestricted.
        match (all_month_days, all_week_days) {
            (true, true) => Some(Days::Every),
            (true, false) => Some(Days::Week(c.weekdays)),
            (false, true) => Some(Days::Month(month_days)),
            (false, false) => None,
        }
    } else if all_month_days || all_week_days {
        // Either field may match, and one alone already matches every day.
        Some(Days::Every)
    } else {
        None
    }
}

/// Monday-first positions (0 = Monday ... 6 = Sunday) of the selected day-of-week bits.
fn monday_first(weekdays: u8) -> Vec<u32> {
    (0..7u32)
        .filter(|&p| weekdays & (1 << ((p + 1) % 7)) != 0)
        .collect()
}

fn day_name(position: u32) -> &'static str {
    DAY_NAMES[((position + 1) % 7) as usize]
}

/// Weekdays before the time: "weekdays", "every Monday", "Tuesday to Thursday",
/// "every Monday and Friday".
fn week_leading(weekdays: u8) -> String {
    match weekdays {
        MONDAY_TO_FRIDAY => return "weekdays".to_owned(),
        SATURDAY_AND_SUNDAY => return "weekends".to_owned(),
        _ => {}
    }
    let positions = monday_first(weekdays);
    if let Some((first, last)) = single_run(&positions).filter(|_| positions.len() >= 3) {
        return format!("{} to {}", day_name(first), day_name(last));
    }
    let names: Vec<String> = positions.iter().map(|&p| day_name(p).to_owned()).collect();
    format!("every {}", join_words(&names, "and"))
}

/// Weekdays after a frequency: "on weekdays", "on Mondays", ", Tuesday to Thursday",
/// "on Mondays and Fridays".
fn week_trailing(weekdays: u8) -> String {
    match weekdays {
        MONDAY_TO_FRIDAY => return " on weekdays".to_owned(),
        SATURDAY_AND_SUNDAY => return " on weekends".to_owned(),
        _ => {}
    }
    let positions = monday_first(weekdays);
    if let Some((first, last)) = single_run(&positions).filter(|_| positions.len() >= 3) {
        return format!(", {} to {}", day_name(first), day_name(last));
    }
    let names: Vec<String> = positions
        .iter()
        .map(|&p| format!("{}s", day_name(p)))
        .collect();
    format!(" on {}", join_words(&names, "and"))
}

/// "day 1", "days 1 and 15", "days 1 to 7".
fn month_days(days: &[u32]) -> Option<String> {
    match days {
        [day] => Some(format!("day {day}")),
        _ => match single_run(days) {
            Some((first, last)) if days.len() >= 3 => Some(format!("days {first} to {last}")),
            _ if days.len() <= MAX_LISTED => Some(format!("days {}", numbers(days))),
            _ => None,
        },
    }
}

/// Months as a list: "January", "January and July", "January to March".
fn month_list(months: &[u32]) -> String {
    if let Some((first, last)) = single_run(months).filter(|_| months.len() >= 3) {
        return format!("{} to {}", month_name(first), month_name(last));
    }
    let names: Vec<String> = months.iter().map(|&m| month_name(m).to_owned()).collect();
    join_words(&names, "and")
}

/// "on day 1 of every month", "on days 1 and 15 of June", "every year on January 1".
fn month_days_phrase(days: &[u32], months: &[u32]) -> Option<String> {
    Some(match (days, months.len()) {
        ([day], 1) => format!("every year on {} {day}", month_name(months[0])),
        (_, 12) => format!("on {} of every month", month_days(days)?),
        _ if single_run(months).is_some() && months.len() >= 3 => format!(
            "on {} of every month from {}",
            month_days(days)?,
            month_list(months)
        ),
        _ => format!("on {} of {}", month_days(days)?, month_list(months)),
    })
}

/// The sentence without the time zone, and whether the zone can be left out.
fn phrase(c: &CronExpr) -> Option<(String, bool)> {
    let times = times(c)?;
    let days = days(c)?;
    let months = set_bits(u64::from(c.months), 1, 12);
    let all_months = months.len() == 12;
    // "in December", "from January to March", "in January and July".
    let month_suffix = if all_months {
        String::new()
    } else if single_run(&months).is_some() && months.len() >= 3 {
        format!(" from {}", month_list(&months))
    } else {
        format!(" in {}", month_list(&months))
    };
    let text = match (times, days) {
        (Times::At(list), Days::Every) => {
            let at = join_words(&list, "and");
            if list.len() == 1 {
                format!("every day at {at}{month_suffix}")
            } else {
                format!("at {at} every day{month_suffix}")
            }
        }
        (Times::At(list), Days::Week(weekdays)) => format!(
            "{} at {}{month_suffix}",
            week_leading(weekdays),
            join_words(&list, "and")
        ),
        (Times::At(list), Days::Month(days)) => format!(
            "{} at {}",
            month_days_phrase(&days, &months)?,
            join_words(&list, "and")
        ),
        (Times::Every { text, hourly }, Days::Every) => {
            let zone_free = hourly && all_months;
            return Some((format!("{text}{month_suffix}"), zone_free));
        }
        (Times::Every { text, .. }, Days::Week(weekdays)) => {
            format!("{text}{}{month_suffix}", week_trailing(weekdays))
        }
        (Times::Every { text, .. }, Days::Month(days)) => {
            format!("{text} {}", month_days_phrase(&days, &months)?)
        }
    };
    Some((text, false))
}

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;

    fn words(expr: &str, tz: Tz) -> String {
        let cron = CronExpr::parse(expr).expect("valid expression");
        Schedule::new(cron, tz).in_words()
    }

    #[track_caller]
    fn check(cases: &[(&str, Tz, &str)]) {
        for &(expr, tz, want) in cases {
            assert_eq!(words(expr, tz), want, "{expr} in {}", tz.name());
        }
    }

    #[test]
    fn examples_from_the_ui() {
        use chrono_tz::America::{Chicago, New_York};
        use chrono_tz::Europe::{Berlin, London};
        check(&[
            ("0 2 * * *", New_York, "every day at 02:00, New York time"),
            ("15 * * * *", New_York, "every hour at minute 15"),
            ("*/15 * * * *", London, "every 15 minutes"),
            ("30 6 * * 1", London, "every Monday at 06:30, London time"),
            ("0 8 * * 1-5", Tz::UTC, "weekdays at 08:00, UTC"),
            (
                "0 0 1 * *",
                Chicago,
                "on day 1 of every month at 00:00, Chicago time",
            ),
            (
                "0 2,14 * * *",
                Berlin,
                "at 02:00 and 14:00 every day, Berlin time",
            ),
        ]);
    }

    #[test]
    fn presets() {
        use chrono_tz::America::New_York;
        check(&[
            ("@hourly", New_York, "every hour on the hour"),
            ("@daily", New_York, "every day at 00:00, New York time"),
            ("@midnight", Tz::UTC, "every day at 00:00, UTC"),
            ("@weekly", Tz::UTC, "every Sunday at 00:00, UTC"),
            (
                "@monthly",
                New_York,
                "on day 1 of every month at 00:00, New York time",
            ),
            ("@yearly", Tz::UTC, "every year on January 1 at 00:00, UTC"),
            (
                "@annually",
                Tz::UTC,
                "every year on January 1 at 00:00, UTC",
            ),
        ]);
    }

    #[test]
    fn sunday_is_0_or_7_or_a_name() {
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUN"] {
            assert_eq!(words(expr, Tz::UTC), "every Sunday at 09:00, UTC", "{expr}");
        }
        check(&[
            ("0 10 * * 6,0", Tz::UTC, "weekends at 10:00, UTC"),
            ("0 10 * * sat,7", Tz::UTC, "weekends at 10:00, UTC"),
            ("0 6 * * fri-7", Tz::UTC, "Friday to Sunday at 06:00, UTC"),
            ("0 7 * * 0-6", Tz::UTC, "every day at 07:00, UTC"),
        ]);
    }

    #[test]
    fn weekday_names_numbers_and_ranges() {
        check(&[
            ("0 8 * * mon-fri", Tz::UTC, "weekdays at 08:00, UTC"),
            ("0 8 * * Mon-Fri", Tz::UTC, "weekdays at 08:00, UTC"),
            ("0 8 * * 1,2,3,4,5", Tz::UTC, "weekdays at 08:00, UTC"),
            ("0 9 * * 2-4", Tz::UTC, "Tuesday to Thursday at 09:00, UTC"),
            (
                "0 6,18 * * 1,5",
                Tz::UTC,
                "every Monday and Friday at 06:00 and 18:00, UTC",
            ),
            (
                "0 9 * * 1,3,5",
                Tz::UTC,
                "every Monday, Wednesday and Friday at 09:00, UTC",
            ),
        ]);
    }

    #[test]
    fn steps() {
        use chrono_tz::Europe::Paris;
        check(&[
            ("*/5 * * * *", Tz::UTC, "every 5 minutes"),
            ("0/30 * * * *", Tz::UTC, "every 30 minutes"),
            ("* * * * *", Paris, "every minute"),
            (
                "0 */2 * * *",
                Paris,
                "every 2 hours from 00:00 to 22:00, Paris time",
            ),
            (
                "30 9-17 * * *",
                Paris,
                "every hour from 09:30 to 17:30, Paris time",
            ),
            (
                "*/15 9-17 * * 1-5",
                Paris,
                "every 15 minutes from 09:00 to 17:45 on weekdays, Paris time",
            ),
            (
                "* 9-10 * * *",
                Tz::UTC,
                "every minute from 09:00 to 10:59, UTC",
            ),
            ("*/10 * * * 1", Tz::UTC, "every 10 minutes on Mondays, UTC"),
            (
                "0 * * * 2-4",
                Tz::UTC,
                "every hour on the hour, Tuesday to Thursday, UTC",
            ),
            (
                "0 */6 * * *",
                Tz::UTC,
                "at 00:00, 06:00, 12:00 and 18:00 every day, UTC",
            ),
        ]);
    }

    #[test]
    fn lists_and_ranges() {
        use chrono_tz::Europe::London;
        check(&[
            ("5,35 * * * *", Tz::UTC, "every hour at minutes 5 and 35"),
            (
                "5/15 * * * *",
                Tz::UTC,
                "every hour at minutes 5, 20, 35 and 50",
            ),
            ("0,30 2 * * *", Tz::UTC, "at 02:00 and 02:30 every day, UTC"),
            (
                "0 0 1,15 * *",
                London,
                "on days 1 and 15 of every month at 00:00, London time",
            ),
            (
                "0 12 1-7 * *",
                London,
                "on days 1 to 7 of every month at 12:00, London time",
            ),
            (
                "0 0 1 1,4,7,10 *",
                Tz::UTC,
                "on day 1 of January, April, July and October at 00:00, UTC",
            ),
            (
                "0 0 1 jan-mar *",
                Tz::UTC,
                "on day 1 of every month from January to March at 00:00, UTC",
            ),
            (
                "0 0 29 2 *",
                Tz::UTC,
                "every year on February 29 at 00:00, UTC",
            ),
            ("0 2 * 12 *", Tz::UTC, "every day at 02:00 in December, UTC"),
            (
                "0 9 * jun-aug 1",
                Tz::UTC,
                "every Monday at 09:00 from June to August, UTC",
            ),
            ("*/5 * * 12 *", Tz::UTC, "every 5 minutes in December, UTC"),
            (
                "*/30 * 1 * *",
                Tz::UTC,
                "every 30 minutes on day 1 of every month, UTC",
            ),
            // Either day field matching, and day-of-month alone covers every day.
            ("0 0 1-31 * 1", Tz::UTC, "every day at 00:00, UTC"),
        ]);
    }

    #[test]
    fn falls_back_to_the_expression() {
        use chrono_tz::America::New_York;
        check(&[
            // Day-of-month OR day-of-week.
            (
                "0 0 1,15 * 3",
                New_York,
                "cron `0 0 1,15 * 3` (New York time)",
            ),
            // Day-of-month AND day-of-week (`*/2` counts as star).
            ("0 0 */2 * 1", Tz::UTC, "cron `0 0 */2 * 1` (UTC)"),
            // Steps that do not divide the hour.
            ("*/7 * * * *", Tz::UTC, "cron `*/7 * * * *` (UTC)"),
            ("5/10 * * * *", Tz::UTC, "cron `5/10 * * * *` (UTC)"),
            (
                "5,17 8,20,21 * * 1",
                Tz::UTC,
                "cron `5,17 8,20,21 * * 1` (UTC)",
            ),
            (
                "0 1,3,4,8 * * *",
                Tz::UTC,
                "at 01:00, 03:00, 04:00 and 08:00 every day, UTC",
            ),
            (
                "0 1,3,4,8,9 * * *",
                Tz::UTC,
                "cron `0 1,3,4,8,9 * * *` (UTC)",
            ),
            ("*/15 9,12 * * *", Tz::UTC, "cron `*/15 9,12 * * *` (UTC)"),
            (
                "0 0 1,5,9,13,17,21 * *",
                Tz::UTC,
                "cron `0 0 1,5,9,13,17,21 * *` (UTC)",
            ),
        ]);
    }

    #[test]
    fn zone_names() {
        use chrono_tz::America::Argentina::Buenos_Aires;
        use chrono_tz::Asia::Kolkata;
        use chrono_tz::Etc::{GMT, GMTMinus3, GMTPlus5, UTC};
        check(&[
            ("0 2 * * *", UTC, "every day at 02:00, UTC"),
            ("0 2 * * *", GMT, "every day at 02:00, UTC"),
            ("0 2 * * *", GMTPlus5, "every day at 02:00, UTC-5"),
            ("0 2 * * *", GMTMinus3, "every day at 02:00, UTC+3"),
            (
                "0 2 * * *",
                Buenos_Aires,
                "every day at 02:00, Buenos Aires time",
            ),
            // A half-hour offset moves the minute past the hour, so the zone matters.
            (
                "15 * * * *",
                Kolkata,
                "every hour at minute 15, Kolkata time",
            ),
            (
                "0 2 * * *",
                Tz::US__Eastern,
                "every day at 02:00, Eastern time",
            ),
        ]);
    }
}
