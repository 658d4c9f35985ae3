//! Plain-English descriptions of cron expressions, for business users.
//!
//! Common shapes get natural wording ("every day at 02:00", "every 15 minutes",
//! "at 09:30 on Monday to Friday"); anything else gets a faithful, more literal wording built
//! from the selected values ("at minutes 5 and 35 past hours 1, 4 and 9 ...").

use super::cron::CronExpr;
use super::fire::Schedule;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Up to this many fire times a day are listed one by one ("at 06:00 and 18:00").
const MAX_LISTED_TIMES: usize = 4;

/// English name of month `1..=12`.
pub(crate) fn month_name(month: u32) -> &'static str {
    MONTHS
        .get((month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("?")
}

fn weekday_name(weekday: u32) -> &'static str {
    WEEKDAYS.get(weekday as usize).copied().unwrap_or("?")
}

/// "a", "a and b", "a, b and c" (with `conjunction` instead of "and" if asked).
pub(crate) fn join_words(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

fn set_bits(bits: u64, low: u32, high: u32) -> Vec<u32> {
    (low..=high).filter(|&v| bits & (1 << v) != 0).collect()
}

fn hhmm(hour: u32, minute: u32) -> String {
    format!("{hour:02}:{minute:02}")
}

/// Runs of consecutive values, as `(first, last)`.
fn runs(values: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => out.push((v, v)),
        }
    }
    out
}

/// The common difference if `values` (at least two) is an arithmetic progression.
fn progression_step(values: &[u32]) -> Option<u32> {
    let step = values.get(1)?.checked_sub(*values.first()?)?;
    values
        .windows(2)
        .all(|w| w[1].checked_sub(w[0]) == Some(step))
        .then_some(step)
}

/// Runs of three or more as "a to b", shorter runs item by item.
fn list_runs(values: &[u32], name: impl Fn(u32) -> String) -> String {
    let mut items = Vec::new();
    for (first, last) in runs(values) {
        if last >= first + 2 {
            items.push(format!("{} to {}", name(first), name(last)));
        } else {
            items.extend((first..=last).map(&name));
        }
    }
    join_words(&items, "and")
}

/// "5", "1 and 15", "1 to 5", "0, 7, 14, ..., 56", "1 to 5 and 10".
fn number_list(values: &[u32]) -> String {
    if values.len() >= 5
        && let Some(step) = progression_step(values).filter(|&s| s >= 2)
    {
        let first = values[0];
        let last = values[values.len() - 1];
        return format!(
            "{first}, {}, {}, ..., {last}",
            first + step,
            first + 2 * step
        );
    }
    list_runs(values, |v| v.to_string())
}

/// How the times of day read: a list of times ("at 02:00"), or a frequency
/// ("every 15 minutes") that needs no "every day".
enum Times {
    At(String),
    Every(String),
}

fn times(c: &CronExpr) -> Times {
    let minutes = set_bits(c.minutes, 0, 59);
    let hours = set_bits(u64::from(c.hours), 0, 23);
    let all_hours = hours.len() == 24;
    let hour_run = match runs(&hours).as_slice() {
        [run] => Some(*run),
        _ => None,
    };
    if minutes.len() == 60 {
        return Times::Every(match hour_run {
            _ if all_hours => "every minute".to_owned(),
            Some((first, last)) => {
                format!(
                    "every minute between {} and {}",
                    hhmm(first, 0),
                    hhmm(last, 59)
                )
            }
            None => format!("every minute during hours {}", number_list(&hours)),
        });
    }
    if minutes.len() * hours.len() <= MAX_LISTED_TIMES {
        let list: Vec<String> = hours
            .iter()
            .flat_map(|&h| minutes.iter().map(move |&m| hhmm(h, m)))
            .collect();
        return Times::At(format!("at {}", join_words(&list, "and")));
    }
    if let [minute] = minutes[..] {
        if all_hours {
            return Times::Every(format!("every hour at minute {minute}"));
        }
        if let (Some(step), Some(&first), Some(&last)) =
            (progression_step(&hours), hours.first(), hours.last())
        {
            let every = if step == 1 {
                "every hour".to_owned()
            } else {
                format!("every {step} hours")
            };
            return Times::Every(format!(
                "{every} from {} to {}",
                hhmm(first, minute),
                hhmm(last, minute)
            ));
        }
        return Times::At(format!(
            "at minute {minute} past hours {}",
            number_list(&hours)
        ));
    }
    // Several minutes an hour: "every N minutes" if they divide the hour evenly.
    let even_step = progression_step(&minutes)
        .filter(|&s| 60 % s == 0 && minutes[0] < s && minutes.len() as u32 == 60 / s);
    if let (Some(step), Some(&first), Some(&last)) = (even_step, minutes.first(), minutes.last()) {
        let every = format!("every {step} minutes");
        return Times::Every(match hour_run {
            _ if all_hours && first == 0 => every,
            _ if all_hours => format!("{every}, starting at minute {first} of every hour"),
            Some((first_hour, last_hour)) => format!(
                "{every} between {} and {}",
                hhmm(first_hour, first),
                hhmm(last_hour, last)
            ),
            None => format!("{every} during hours {}", number_list(&hours)),
        });
    }
    if all_hours {
        return Times::Every(format!("every hour at minutes {}", number_list(&minutes)));
    }
    Times::At(format!(
        "at minutes {} past hours {}",
        number_list(&minutes),
        number_list(&hours)
    ))
}

/// Monday-first weekday list: "Monday to Friday", "Saturday and Sunday", "Friday to Sunday".
fn weekday_list(weekdays: u8) -> String {
    // Position 0 = Monday ... 6 = Sunday.
    let positions: Vec<u32> = (0..7u32)
        .filter(|&p| weekdays & (1 << ((p + 1) % 7)) != 0)
        .collect();
    list_runs(&positions, |p| weekday_name((p + 1) % 7).to_owned())
}

fn days_of_month(days: &[u32]) -> String {
    let word = if days.len() == 1 { "day" } else { "days" };
    format!("{word} {} of the month", number_list(days))
}

/// The day part, or `None` for every day.
fn day_phrase(c: &CronExpr) -> Option<String> {
    let days = set_bits(u64::from(c.days), 1, 31);
    let all_days = days.len() == 31;
    let all_weekdays = c.weekdays == 0x7f;
    if c.days_and_rule() {
        match (all_days, all_weekdays) {
            (true, true) => None,
            (true, false) => Some(format!("on {}", weekday_list(c.weekdays))),
            (false, true) => Some(format!("on {}", days_of_month(&days))),
            (false, false) => Some(format!(
                "on {}, but only on {}",
                days_of_month(&days),
                weekday_list(c.weekdays)
            )),
        }
    } else if all_days || all_weekdays {
        // Either field alone already matches every day.
        None
    } else {
        Some(format!(
            "on {} and on {}",
            days_of_month(&days),
            weekday_list(c.weekdays)
        ))
    }
}

impl CronExpr {
    /// A plain-English description: "every day at 02:00", "every 15 minutes",
    /// "at 09:30 on Monday to Friday", "at 00:00 on day 1 of the month", ...
    pub fn describe(&self) -> String {
        use Times::{At, Every};
        let times = times(self);
        let months = set_bits(u64::from(self.months), 1, 12);
        let days = set_bits(u64::from(self.days), 1, 31);
        // A single date a year reads best as "on February 29".
        if let ([day], [month], true, At(at)) = (
            &days[..],
            &months[..],
            self.days_and_rule() && self.weekdays == 0x7f,
            &times,
        ) {
            return format!("{at} on {} {day}", month_name(*month));
        }
        let mut out = match (times, day_phrase(self)) {
            (At(at), None) => format!("every day {at}"),
            (Every(every), None) => every,
            (At(text) | Every(text), Some(days)) => format!("{text} {days}"),
        };
        if months.len() < 12 {
            let list = list_runs(&months, |m| month_name(m).to_owned());
            let from = matches!(runs(&months)[..], [(first, last)] if last >= first + 2);
            out.push_str(if from { " from " } else { " in " });
            out.push_str(&list);
        }
        out
    }
}

impl Schedule {
    /// The cron description with the time zone in words: "every day at 02:00, New York
    /// time" ("..., UTC" for UTC).
    pub fn describe(&self) -> String {
        let name = self.timezone().name();
        if matches!(name, "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT") {
            format!("{}, UTC", self.cron().describe())
        } else {
            format!("{}, {} time", self.cron().describe(), zone_in_words(name))
        }
    }
}

/// The place part of an IANA name, as people say it: `America/New_York` → `New York`,
/// `America/Argentina/Buenos_Aires` → `Buenos Aires`.
fn zone_in_words(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(number_list(&[5]), "5");
        assert_eq!(number_list(&[1, 15]), "1 and 15");
        assert_eq!(number_list(&[1, 2, 3, 4, 5, 10]), "1 to 5 and 10");
        assert_eq!(number_list(&[1, 2, 7]), "1, 2 and 7");
        assert_eq!(
            number_list(&[0, 7, 14, 21, 28, 35, 42, 49, 56]),
            "0, 7, 14, ..., 56"
        );
        assert_eq!(weekday_list(0b011_1110), "Monday to Friday");
        assert_eq!(weekday_list(0b100_0001), "Saturday and Sunday");
        assert_eq!(weekday_list(0b110_0001), "Friday to Sunday");
        assert_eq!(join_words(&[], "and"), "");
    }
}
