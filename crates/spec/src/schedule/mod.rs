//! Cron schedules: crontab(5) expressions evaluated in an IANA time zone, with ISC cron's
//! daylight-saving behaviour, plus the data intervals runs cover.
//!
//! # Expressions
//!
//! Five fields, `minute hour day-of-month month day-of-week`, exactly as crontab(5) (Vixie/ISC
//! cron): `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (= `a-max/n`), lists
//! `a,b-c/2`; month names `jan`-`dec` and weekday names `sun`-`sat` (any case, also in ranges);
//! day-of-week 0 and 7 are both Sunday. Presets `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight` and `@hourly`.
//!
//! Day rule (Vixie's `DOM_STAR`/`DOW_STAR`): a day field "is star" when its text starts with
//! `*` (so `*/2` counts). If either day field is star, a day matches when both match;
//! otherwise when either does. `0 0 1,15 * 3` runs on the 1st, the 15th and every Wednesday.
//!
//! Rejected with a [`CronError`] pointing at the offending text: seconds/year fields,
//! `@reboot`, out-of-range values and steps, reversed ranges, step 0, empty list items,
//! unknown names, Quartz syntax (`?`, `L`, `W`, `#`) and expressions that never fire.
//!
//! # Time zones and DST
//!
//! Fire times are local wall-clock times in the schedule's zone. A job is a *wildcard job*
//! if its minute or hour field starts with `*`, otherwise a *fixed-time job* (ISC cron).
//! A wall time skipped by a DST gap does not fire for wildcard jobs, and fires at the end of
//! the gap for fixed-time jobs (several skipped times collapse into one fire). A wall time
//! repeated by a fold fires at both instants for wildcard jobs and only at the first for
//! fixed-time jobs. Fire times are strictly increasing UTC instants without duplicates.

mod calendar;
mod cron;
mod describe;
mod error;
mod fire;
mod interval;
mod parse;
mod words;
mod zone;

pub use cron::CronExpr;
pub use error::{CronError, CronErrorKind};
pub use fire::{FireTimes, Schedule};
pub use interval::{DataInterval, Intervals};
