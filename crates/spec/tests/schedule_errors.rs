//! Every rejection class: its kind, message and the span it points at.

use drover_spec::schedule::{CronErrorKind as Kind, CronExpr};

#[track_caller]
fn rejects(expr: &str, kind: Kind, span: std::ops::Range<usize>, message: &str) {
    let err = CronExpr::parse(expr).expect_err(expr);
    assert_eq!(err.kind(), kind, "`{expr}`: {err}");
    assert_eq!(err.span(), span, "`{expr}`: {err}");
    assert_eq!(err.message(), message, "`{expr}`");
    assert_eq!(err.to_string(), message);
    assert!(span.end <= expr.len());
}

#[test]
fn field_counts() {
    rejects(
        "0 0 * * * *",
        Kind::UnsupportedFields,
        0..11,
        "seconds/year fields are not supported: Drover uses 5-field crontab(5) expressions \
         (minute hour day-of-month month day-of-week), found 6 fields",
    );
    rejects(
        " 0 0 12 ? * MON 2026",
        Kind::UnsupportedFields,
        1..20,
        "seconds/year fields are not supported: Drover uses 5-field crontab(5) expressions \
         (minute hour day-of-month month day-of-week), found 7 fields",
    );
    rejects(
        "0 0 * *",
        Kind::WrongFieldCount,
        0..7,
        "expected 5 fields (minute hour day-of-month month day-of-week), found 4",
    );
    rejects(
        "   ",
        Kind::Empty,
        0..3,
        "empty cron expression: expected 5 fields (minute hour day-of-month month \
         day-of-week) or a preset like @daily",
    );
}

#[test]
fn presets() {
    rejects(
        "@reboot",
        Kind::UnsupportedPreset,
        0..7,
        "@reboot is not supported: a Drover schedule needs times to fire at",
    );
    rejects(
        "@fortnightly",
        Kind::UnknownPreset,
        0..12,
        "unknown preset `@fortnightly`: expected @yearly, @annually, @monthly, @weekly, \
         @daily, @midnight or @hourly",
    );
    rejects(
        "@daily 0 1",
        Kind::WrongFieldCount,
        7..10,
        "`@daily` must be used on its own, without other fields",
    );
}

#[test]
fn out_of_range() {
    rejects(
        "60 * * * *",
        Kind::OutOfRange,
        0..2,
        "minute value 60 is out of range (0-59)",
    );
    rejects(
        "0 24 * * *",
        Kind::OutOfRange,
        2..4,
        "hour value 24 is out of range (0-23)",
    );
    rejects(
        "0 0 0 * *",
        Kind::OutOfRange,
        4..5,
        "day-of-month value 0 is out of range (1-31)",
    );
    rejects(
        "0 0 1,32 * *",
        Kind::OutOfRange,
        6..8,
        "day-of-month value 32 is out of range (1-31)",
    );
    rejects(
        "0 0 * 1-13 *",
        Kind::OutOfRange,
        8..10,
        "month value 13 is out of range (1-12)",
    );
    rejects(
        "0 0 * * 8",
        Kind::OutOfRange,
        8..9,
        "day-of-week value 8 is out of range (0-7)",
    );
    rejects(
        "99999999999 * * * *",
        Kind::OutOfRange,
        0..11,
        "minute value 99999999999 is out of range (0-59)",
    );
    rejects(
        "*/60 * * * *",
        Kind::OutOfRange,
        2..4,
        "minute step 60 is out of range: it must be between 1 and 59",
    );
}

#[test]
fn reversed_ranges() {
    rejects(
        "0 5-1 * * *",
        Kind::ReversedRange,
        2..5,
        "hour range `5-1` is reversed: the start must not be after the end",
    );
    rejects(
        "0 0 * * fri-sun",
        Kind::ReversedRange,
        8..15,
        "day-of-week range `fri-sun` is reversed: the start must not be after the end \
         (use 7 for Sunday at the end of a range, e.g. 5-7)",
    );
    rejects(
        "0 0 * 9-3/2 *",
        Kind::ReversedRange,
        6..9,
        "month range `9-3` is reversed: the start must not be after the end",
    );
}

#[test]
fn zero_step() {
    rejects(
        "*/0 * * * *",
        Kind::ZeroStep,
        1..3,
        "minute step `/0` is invalid: a step must be at least 1",
    );
    rejects(
        "0 1-5/00 * * *",
        Kind::ZeroStep,
        5..8,
        "hour step `/0` is invalid: a step must be at least 1",
    );
}

#[test]
fn empty_list_items() {
    rejects(
        "1,,2 * * * *",
        Kind::EmptyListItem,
        2..3,
        "empty item in the minute list (two commas in a row)",
    );
    rejects(
        "0 1, * * *",
        Kind::EmptyListItem,
        3..4,
        "empty item in the hour list (trailing comma)",
    );
    rejects(
        "0 0 ,5 * *",
        Kind::EmptyListItem,
        4..5,
        "empty item in the day-of-month list (leading comma)",
    );
}

#[test]
fn unknown_names() {
    rejects(
        "0 0 * * mox",
        Kind::UnknownName,
        8..11,
        "unknown day-of-week name `mox` (use sun-sat or 0-7)",
    );
    rejects(
        "0 0 * sept *",
        Kind::UnknownName,
        6..10,
        "unknown month name `sept` (use jan-dec or 1-12)",
    );
    rejects(
        "0 0 * * monday",
        Kind::UnknownName,
        8..14,
        "unknown day-of-week name `monday` (use sun-sat or 0-7)",
    );
    rejects(
        "0 0 jan * *",
        Kind::UnknownName,
        4..7,
        "`jan` is not a valid day-of-month value: expected a number 1-31",
    );
}

#[test]
fn quartz_isms() {
    rejects(
        "0 0 ? * mon",
        Kind::NotCrontab,
        4..5,
        "`?` is Quartz syntax, not crontab(5): use `*` for \"any day-of-month\"",
    );
    rejects(
        "0 0 L * *",
        Kind::NotCrontab,
        4..5,
        "`L`: `L` (last day) is Quartz syntax, not crontab(5)",
    );
    rejects(
        "0 0 15W * *",
        Kind::NotCrontab,
        4..7,
        "`15W`: `W` (nearest weekday) is Quartz syntax, not crontab(5)",
    );
    rejects(
        "0 0 LW * *",
        Kind::NotCrontab,
        4..6,
        "`LW`: `LW` (last weekday of the month) is Quartz syntax, not crontab(5)",
    );
    rejects(
        "0 0 * * 5#3",
        Kind::NotCrontab,
        8..11,
        "`5#3`: `#` (nth weekday of the month) is Quartz syntax, not crontab(5)",
    );
    rejects(
        "0 0 * * 5L",
        Kind::NotCrontab,
        8..10,
        "`5L`: `L` (last day) is Quartz syntax, not crontab(5)",
    );
}

#[test]
fn never_fires() {
    rejects(
        "0 0 30 2 *",
        Kind::NeverFires,
        4..8,
        "never fires: day 30 of the month never occurs in February",
    );
    rejects(
        "0 0 31 4,6 *",
        Kind::NeverFires,
        4..10,
        "never fires: day 31 of the month never occurs in April or June",
    );
    rejects(
        "0 0 30,31 feb *",
        Kind::NeverFires,
        4..13,
        "never fires: days 30 or 31 of the month never occur in February",
    );
    // With a restricted weekday field the OR rule applies: every Monday in February.
    assert!(CronExpr::parse("0 0 30 2 1").is_ok());
    // But `*` in day-of-week keeps the AND rule.
    assert!(CronExpr::parse("0 0 30 2 */1").is_err());
    assert!(CronExpr::parse("0 0 29 2 *").is_ok());
}

#[test]
fn other_syntax() {
    rejects(
        "0 0 * jan-* *",
        Kind::InvalidSyntax,
        10..11,
        "`*` cannot be part of a month range",
    );
    rejects(
        "*/5/2 * * * *",
        Kind::InvalidSyntax,
        2..5,
        "a step after `/` must be a positive number, found `5/2`",
    );
    rejects(
        "5- * * * *",
        Kind::InvalidSyntax,
        1..2,
        "missing minute value in range",
    );
    rejects(
        "/5 * * * *",
        Kind::InvalidSyntax,
        0..1,
        "missing minute value before `/`",
    );
    rejects(
        "0 */ * * *",
        Kind::InvalidSyntax,
        3..4,
        "a step after `/` must be a positive number, found ``",
    );
    rejects(
        "0 0 * * 1-2-3",
        Kind::InvalidSyntax,
        10..13,
        "invalid day-of-week value `2-3`: expected a number or name (sun-sat or 0-7), `*`, \
         a range `a-b`, a step `/n` or a comma-separated list",
    );
    rejects(
        "0 0 * * +1",
        Kind::InvalidSyntax,
        8..10,
        "invalid day-of-week value `+1`: expected a number or name (sun-sat or 0-7), `*`, \
         a range `a-b`, a step `/n` or a comma-separated list",
    );
}

#[test]
fn accepted_edge_cases() {
    for expr in [
        "0 0 * * 7",
        "0 0 * * 0-7",
        "0 0 * * SUN-sat",
        "00 09 01 01 *",
        "*/59 */23 */31 */12 */7",
        "0\t0\t*\t*\t*",
        "@DAILY",
        "5 * * * 7/1",
    ] {
        assert!(CronExpr::parse(expr).is_ok(), "{expr}");
    }
}

#[test]
fn spaces_inside_a_field() {
    rejects(
        "0 1, 2 * * *",
        Kind::InvalidSyntax,
        3..5,
        "unexpected space after `,`: a field must not contain spaces",
    );
    rejects(
        "0 1 -5 * * *",
        Kind::InvalidSyntax,
        3..5,
        "unexpected space before `-`: a field must not contain spaces",
    );
}
