//! The crontab(5) parser (Vixie/ISC cron's `entry.c` rules, `a/n` accepted as `a-max/n`).

use std::ops::Range;

use super::calendar::max_days_in_month;
use super::cron::{CronExpr, Fields};
use super::describe::{join_words, month_name};
use super::error::{CronError, CronErrorKind as Kind};

const FIELD_NAMES: &str = "minute hour day-of-month month day-of-week";

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

#[derive(Debug)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names for `min`, `min + 1`, ... (months and weekdays).
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    names_hint: "jan-dec or 1-12",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &WEEKDAY_NAMES,
    names_hint: "sun-sat or 0-7",
};

/// A whitespace-separated token and its byte offset.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    offset: usize,
    text: &'a str,
}

impl Token<'_> {
    fn span(&self) -> Range<usize> {
        self.offset..self.offset + self.text.len()
    }
}

fn tokens(expr: &str) -> Vec<Token<'_>> {
    let mut out = Vec::with_capacity(5);
    let mut start = None;
    for (i, c) in expr.char_indices() {
        if c.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push(Token {
                    offset: s,
                    text: &expr[s..i],
                });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Token {
            offset: s,
            text: &expr[s..],
        });
    }
    out
}

pub(crate) fn parse(expr: &str) -> Result<CronExpr, CronError> {
    let toks = tokens(expr);
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return Err(CronError::new(
            Kind::Empty,
            format!(
                "empty cron expression: expected 5 fields ({FIELD_NAMES}) or a preset like @daily"
            ),
            0..expr.len(),
        ));
    };
    let whole = first.offset..last.offset + last.text.len();
    if first.text.starts_with('@') {
        return parse_preset(expr, &toks);
    }
    match toks.len() {
        5 => Ok(CronExpr::from_fields(expr, parse_fields(&toks)?)),
        n => {
            check_spaces_in_fields(&toks)?;
            Err(if n == 6 || n == 7 {
                CronError::new(
                    Kind::UnsupportedFields,
                    format!(
                        "seconds/year fields are not supported: Drover uses 5-field crontab(5) \
                         expressions ({FIELD_NAMES}), found {n} fields"
                    ),
                    whole,
                )
            } else {
                CronError::new(
                    Kind::WrongFieldCount,
                    format!("expected 5 fields ({FIELD_NAMES}), found {n}"),
                    whole,
                )
            })
        }
    }
}

/// `1, 2` or `1 -5`: a space inside a field splits it, which would otherwise be reported as
/// a wrong number of fields.
fn check_spaces_in_fields(toks: &[Token<'_>]) -> Result<(), CronError> {
    for pair in toks.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let dangling = before
            .text
            .chars()
            .last()
            .filter(|c| matches!(c, ',' | '-' | '/'))
            .map(|c| (c, "after"))
            .or_else(|| {
                after
                    .text
                    .chars()
                    .next()
                    .filter(|c| matches!(c, ',' | '-' | '/'))
                    .map(|c| (c, "before"))
            });
        if let Some((c, side)) = dangling {
            return Err(CronError::new(
                Kind::InvalidSyntax,
                format!("unexpected space {side} `{c}`: a field must not contain spaces"),
                before.offset + before.text.len() - usize::from(side == "after")
                    ..after.offset + usize::from(side == "before"),
            ));
        }
    }
    Ok(())
}

fn parse_preset(expr: &str, toks: &[Token<'_>]) -> Result<CronExpr, CronError> {
    let preset = toks[0];
    let expansion = match preset.text[1..].to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        "reboot" => {
            return Err(CronError::new(
                Kind::UnsupportedPreset,
                "@reboot is not supported: a Drover schedule needs times to fire at",
                preset.span(),
            ));
        }
        _ => {
            return Err(CronError::new(
                Kind::UnknownPreset,
                format!(
                    "unknown preset `{}`: expected @yearly, @annually, @monthly, @weekly, \
                     @daily, @midnight or @hourly",
                    preset.text
                ),
                preset.span(),
            ));
        }
    };
    if let (Some(extra), Some(last)) = (toks.get(1), toks.last()) {
        return Err(CronError::new(
            Kind::WrongFieldCount,
            format!(
                "`{}` must be used on its own, without other fields",
                preset.text
            ),
            extra.offset..last.offset + last.text.len(),
        ));
    }
    let fields = parse_fields(&tokens(expansion))?;
    Ok(CronExpr::from_fields(expr, fields))
}

fn parse_fields(toks: &[Token<'_>]) -> Result<Fields, CronError> {
    let [minute, hour, dom, month, dow] = toks else {
        return Err(CronError::new(
            Kind::WrongFieldCount,
            format!("expected 5 fields ({FIELD_NAMES}), found {}", toks.len()),
            0..0,
        ));
    };
    let minutes = parse_field(*minute, &MINUTE)?;
    let hours = parse_field(*hour, &HOUR)?;
    let days = parse_field(*dom, &DAY_OF_MONTH)?;
    let months = parse_field(*month, &MONTH)?;
    let mut weekdays = parse_field(*dow, &DAY_OF_WEEK)?;
    // 7 is Sunday too.
    if weekdays & (1 << 7) != 0 {
        weekdays = (weekdays | 1) & !(1 << 7);
    }
    let fields = Fields {
        minutes,
        hours: hours as u32,
        days: days as u32,
        months: months as u16,
        weekdays: weekdays as u8,
        minute_star: minute.text.starts_with('*'),
        hour_star: hour.text.starts_with('*'),
        dom_star: dom.text.starts_with('*'),
        dow_star: dow.text.starts_with('*'),
    };
    check_fires(&fields, dom.offset..month.offset + month.text.len())?;
    Ok(fields)
}

/// With the AND rule (a day field is "star"), the job needs a selected day of the month that
/// exists in a selected month; every (month, day) pair eventually falls on every weekday.
/// With the OR rule the weekday field alone always matches some day.
fn check_fires(f: &Fields, span: Range<usize>) -> Result<(), CronError> {
    if !(f.dom_star || f.dow_star) {
        return Ok(());
    }
    let possible = (1..=12u32)
        .filter(|m| f.months & (1 << m) != 0)
        .any(|m| f.days & (((1u64 << (max_days_in_month(m) + 1)) - 2) as u32) != 0);
    if possible {
        return Ok(());
    }
    let days: Vec<String> = (1..=31u32)
        .filter(|d| f.days & (1 << d) != 0)
        .map(|d| d.to_string())
        .collect();
    let months: Vec<String> = (1..=12u32)
        .filter(|m| f.months & (1 << m) != 0)
        .map(|m| month_name(m).to_owned())
        .collect();
    let plural = if days.len() == 1 { "day" } else { "days" };
    Err(CronError::new(
        Kind::NeverFires,
        format!(
            "never fires: {plural} {} of the month never occur{} in {}",
            join_words(&days, "or"),
            if days.len() == 1 { "s" } else { "" },
            join_words(&months, "or"),
        ),
        span,
    ))
}

/// Parse one field into a bitset over `spec.min..=spec.max`.
fn parse_field(tok: Token<'_>, spec: &FieldSpec) -> Result<u64, CronError> {
    if let Some(i) = tok.text.find('?') {
        return Err(CronError::new(
            Kind::NotCrontab,
            format!(
                "`?` is Quartz syntax, not crontab(5): use `*` for \"any {}\"",
                spec.name
            ),
            tok.offset + i..tok.offset + i + 1,
        ));
    }
    let mut bits = 0u64;
    let mut start = 0;
    let items = tok.text.split(',');
    let count = items.clone().count();
    for (index, item) in items.enumerate() {
        let offset = tok.offset + start;
        if item.is_empty() {
            // Point at the stray comma: the one after the empty item, or before it at the end.
            let comma = if index > 0 && index + 1 == count {
                offset - 1
            } else {
                offset
            };
            let what = if index == 0 {
                "leading comma"
            } else if index + 1 == count {
                "trailing comma"
            } else {
                "two commas in a row"
            };
            return Err(CronError::new(
                Kind::EmptyListItem,
                format!("empty item in the {} list ({what})", spec.name),
                comma..comma + 1,
            ));
        }
        parse_item(Token { offset, text: item }, spec, &mut bits)?;
        start += item.len() + 1;
    }
    Ok(bits)
}

/// One list item: `*`, `n`, `a-b`, each optionally followed by `/step`.
fn parse_item(item: Token<'_>, spec: &FieldSpec, bits: &mut u64) -> Result<(), CronError> {
    let (range, step) = match item.text.split_once('/') {
        Some((range, step)) => (
            range,
            Some(Token {
                offset: item.offset + range.len() + 1,
                text: step,
            }),
        ),
        None => (item.text, None),
    };
    let (low, high, single) = if range == "*" {
        (spec.min, spec.max, false)
    } else if range.is_empty() {
        return Err(CronError::new(
            Kind::InvalidSyntax,
            format!("missing {} value before `/`", spec.name),
            item.offset..item.offset + 1,
        ));
    } else if let Some((a, b)) = range.split_once('-') {
        let dash = item.offset + a.len();
        let low = parse_value(
            Token {
                offset: item.offset,
                text: a,
            },
            spec,
            dash,
        )?;
        let high = parse_value(
            Token {
                offset: dash + 1,
                text: b,
            },
            spec,
            dash,
        )?;
        if low > high {
            let hint = if spec.max == 7 && high == 0 {
                " (use 7 for Sunday at the end of a range, e.g. 5-7)"
            } else {
                ""
            };
            return Err(CronError::new(
                Kind::ReversedRange,
                format!(
                    "{} range `{range}` is reversed: the start must not be after the end{hint}",
                    spec.name
                ),
                item.offset..item.offset + range.len(),
            ));
        }
        (low, high, false)
    } else {
        let value = parse_value(
            Token {
                offset: item.offset,
                text: range,
            },
            spec,
            item.offset,
        )?;
        (value, value, true)
    };
    let (high, step) = match step {
        None => (high, 1),
        Some(step) => {
            let n = parse_step(step, spec)?;
            // Vixie accepts `a/n` as `a-max/n`.
            (if single { spec.max } else { high }, n)
        }
    };
    let mut value = low;
    while value <= high {
        *bits |= 1 << value;
        value += step;
    }
    Ok(())
}

fn parse_step(step: Token<'_>, spec: &FieldSpec) -> Result<u32, CronError> {
    let slash = step.offset - 1;
    if step.text.is_empty() || !step.text.bytes().all(|b| b.is_ascii_digit()) {
        let span = if step.text.is_empty() {
            slash..slash + 1
        } else {
            step.span()
        };
        return Err(CronError::new(
            Kind::InvalidSyntax,
            format!(
                "a step after `/` must be a positive number, found `{}`",
                step.text
            ),
            span,
        ));
    }
    let n = step.text.parse::<u32>().unwrap_or(u32::MAX);
    if n == 0 {
        return Err(CronError::new(
            Kind::ZeroStep,
            format!(
                "{} step `/0` is invalid: a step must be at least 1",
                spec.name
            ),
            slash..step.offset + step.text.len(),
        ));
    }
    if n > spec.max {
        return Err(CronError::new(
            Kind::OutOfRange,
            format!(
                "{} step {} is out of range: it must be between 1 and {}",
                spec.name, step.text, spec.max
            ),
            step.span(),
        ));
    }
    Ok(n)
}

/// A number or (for months and weekdays) a three-letter name. `empty_at` is where to point if
/// the value is missing (the `-` of a range).
fn parse_value(tok: Token<'_>, spec: &FieldSpec, empty_at: usize) -> Result<u32, CronError> {
    let text = tok.text;
    if text.is_empty() {
        return Err(CronError::new(
            Kind::InvalidSyntax,
            format!("missing {} value in range", spec.name),
            empty_at..empty_at + 1,
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ => Err(CronError::new(
                Kind::OutOfRange,
                format!(
                    "{} value {text} is out of range ({}-{})",
                    spec.name, spec.min, spec.max
                ),
                tok.span(),
            )),
        };
    }
    if let Some(message) = quartz_ism(text) {
        return Err(CronError::new(Kind::NotCrontab, message, tok.span()));
    }
    if let Some(index) = spec
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(spec.min + index as u32);
    }
    if text == "*" {
        return Err(CronError::new(
            Kind::InvalidSyntax,
            format!("`*` cannot be part of a {} range", spec.name),
            tok.span(),
        ));
    }
    if text.bytes().all(|b| b.is_ascii_alphabetic()) {
        let message = if spec.names.is_empty() {
            format!(
                "`{text}` is not a valid {} value: expected a number {}-{}",
                spec.name, spec.min, spec.max
            )
        } else {
            format!(
                "unknown {} name `{text}` (use {})",
                spec.name, spec.names_hint
            )
        };
        return Err(CronError::new(Kind::UnknownName, message, tok.span()));
    }
    Err(CronError::new(
        Kind::InvalidSyntax,
        format!(
            "invalid {} value `{text}`: expected a number{}, `*`, a range `a-b`, a step `/n` \
             or a comma-separated list",
            spec.name,
            if spec.names.is_empty() {
                String::new()
            } else {
                format!(" or name ({})", spec.names_hint)
            }
        ),
        tok.span(),
    ))
}

/// Quartz scheduler extensions that people paste into crontabs.
fn quartz_ism(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let digits = upper.trim_start_matches(|c: char| c.is_ascii_digit());
    let what = if text.contains('#') {
        "`#` (nth weekday of the month)"
    } else if upper == "LW" {
        "`LW` (last weekday of the month)"
    } else if digits == "L" {
        "`L` (last day)"
    } else if digits == "W" {
        "`W` (nearest weekday)"
    } else {
        return None;
    };
    Some(format!("`{text}`: {what} is Quartz syntax, not crontab(5)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_offsets() {
        let toks = tokens("  0\t2 *  * *  ");
        let got: Vec<(usize, &str)> = toks.iter().map(|t| (t.offset, t.text)).collect();
        assert_eq!(got, vec![(2, "0"), (4, "2"), (6, "*"), (9, "*"), (11, "*")]);
    }

    #[test]
    fn dow_seven_is_sunday() {
        let c = parse("0 0 * * 5-7").expect("valid");
        assert_eq!(c.weekdays, 0b110_0001);
        let c = parse("0 0 * * 1/2").expect("valid");
        // 1-7/2 = 1,3,5,7 -> Mon, Wed, Fri, Sun
        assert_eq!(c.weekdays, 0b010_1011);
        let c = parse("0 0 * * */2").expect("valid");
        // 0-7/2 = 0,2,4,6
        assert_eq!(c.weekdays, 0b101_0101);
    }

    #[test]
    fn steps_and_lists() {
        let c = parse("1/10 0-20/2 */10 * *").expect("valid");
        assert_eq!(
            c.minutes,
            (1 << 1) | (1 << 11) | (1 << 21) | (1 << 31) | (1 << 41) | (1 << 51)
        );
        assert_eq!(c.hours, 0b1_0101_0101_0101_0101_0101);
        assert_eq!(c.days, (1 << 1) | (1 << 11) | (1 << 21) | (1 << 31));
        let c = parse("0 0 1 jan,MAR-may/2 *").expect("valid");
        assert_eq!(c.months, (1 << 1) | (1 << 3) | (1 << 5));
        assert!(c.dow_star && !c.dom_star && !c.minute_star);
    }
}
