//! The error returned when a cron expression is rejected.

use std::ops::Range;

/// What kind of problem made a cron expression invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CronErrorKind {
    /// The expression is empty or only whitespace.
    Empty,
    /// Not 5 fields (and not 6 or 7 either, see [`CronErrorKind::UnsupportedFields`]).
    WrongFieldCount,
    /// 6 or 7 fields: a seconds and/or year field, which crontab(5) does not have.
    UnsupportedFields,
    /// `@reboot`: not a time-based schedule.
    UnsupportedPreset,
    /// An `@name` that is not one of the crontab(5) presets.
    UnknownPreset,
    /// Syntax that is not a number, name, range, step or list.
    InvalidSyntax,
    /// A value or step outside the field's range.
    OutOfRange,
    /// A range whose start is after its end, like `5-1`.
    ReversedRange,
    /// A step of zero, like `*/0`.
    ZeroStep,
    /// An empty list item, like `1,,2` or a trailing comma.
    EmptyListItem,
    /// A word that is not a month or weekday name valid in that field.
    UnknownName,
    /// Quartz-style syntax (`?`, `L`, `W`, `#`) that crontab(5) does not have.
    NotCrontab,
    /// A valid-looking expression that can never fire, like `0 0 30 2 *`.
    NeverFires,
}

/// A rejected cron expression: a human-readable message and the byte range of the offending
/// field or token within the expression, so a caller can point a column at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    kind: CronErrorKind,
    message: String,
    span: Range<usize>,
}

impl CronError {
    pub(crate) fn new(kind: CronErrorKind, message: impl Into<String>, span: Range<usize>) -> Self {
        Self {
            kind,
            message: message.into(),
            span,
        }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> CronErrorKind {
        self.kind
    }

    /// The message, without position information.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte range (offset and length) of the offending field or token within the expression
    /// that was passed to [`CronExpr::parse`](super::CronExpr::parse).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}
