//! Human durations in DAG files: `90s`, `2m`, `1h30m`, `1d`, `250ms`, or a plain number of
//! seconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of milliseconds, written as `1h30m`, `250ms` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: expected numbers with units ms, s, m, h or d (e.g. 90s, 2m, 1h30m)"
)]
pub struct DurationError {
    input: String,
}

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Whole seconds (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError {
            input: s.to_owned(),
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err());
        }
        if let Ok(secs) = text.parse::<u64>() {
            return secs.checked_mul(1000).map(Self).ok_or_else(err);
        }
        let mut total: u64 = 0;
        let mut number: Option<u64> = None;
        let mut last_unit_rank = u8::MAX;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(d) = c.to_digit(10) {
                let n = number.unwrap_or(0);
                number = Some(
                    n.checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(err)?,
                );
                continue;
            }
            let (unit, rank) = match c {
                'd' => (86_400_000, 4),
                'h' => (3_600_000, 3),
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    (1, 0)
                }
                'm' => (60_000, 2),
                's' => (1_000, 1),
                _ => return Err(err()),
            };
            // Units must come largest first, each at most once: `1h30m`, not `30m1h`.
            if rank >= last_unit_rank {
                return Err(err());
            }
            last_unit_rank = rank;
            let n = number.take().ok_or_else(err)?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        if number.is_some() {
            return Err(err());
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, suffix) in [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ] {
            if rest >= unit {
                write!(f, "{}{suffix}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "invalid duration: expected a number of seconds or a text such as 90s, 2m, 1h30m",
            )
        })? {
            Raw::Secs(s) => Ok(Self::from_secs(s)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        let cases = [
            ("90s", 90),
            ("2m", 120),
            ("1h30m", 5_400),
            ("1d", 86_400),
            ("1d2h3m4s", 93_784),
            ("45", 45),
        ];
        for (text, secs) in cases {
            assert_eq!(
                text.parse::<Duration>(),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in ["", "m", "2 minutes", "30m1h", "1h1h", "5x", "10m5"] {
            assert!(
                text.parse::<Duration>().is_err(),
                "{text} should be rejected"
            );
        }
    }

    #[test]
    fn displays_round_trip() {
        for millis in [0, 59_000, 60_000, 5_400_000, 93_784_000, 1_250] {
            let d = Duration::from_millis(millis);
            assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }
    }
}
