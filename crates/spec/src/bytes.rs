//! Sizes in files people write: `500MB`, `2GB`, `1.5GiB`, or a plain number of bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size `{0}`: expected a number with B, KB, MB, GB or TB (or KiB, MiB, GiB, TiB), e.g. 500MB"
)]
pub struct ByteSizeError(String);

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| ByteSizeError(s.to_owned()))?;
        let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(ByteSizeError(s.to_owned())),
        };
        let bytes = number * factor;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(ByteSizeError(s.to_owned()));
        }
        Ok(Self(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    /// `1.5 GB`, `320 MB`, `12 kB`, `900 B` (decimal units).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        let (value, unit) = if b >= 1e12 {
            (b / 1e12, "TB")
        } else if b >= 1e9 {
            (b / 1e9, "GB")
        } else if b >= 1e6 {
            (b / 1e6, "MB")
        } else if b >= 1e3 {
            (b / 1e3, "kB")
        } else {
            return write!(f, "{} B", self.0);
        };
        let shown = format!("{value:.1}");
        write!(f, "{} {unit}", shown.trim_end_matches(".0"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(Self(b)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_decimal_and_binary_units() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(p("500MB"), Ok(500_000_000));
        assert_eq!(p("2 GB"), Ok(2_000_000_000));
        assert_eq!(p("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(p("1024"), Ok(1024));
        assert!(p("lots").is_err() && p("5 parsecs").is_err() && p("").is_err());
        assert_eq!(ByteSize(1_500_000_000).to_string(), "1.5 GB");
        assert_eq!(ByteSize(320_000_000).to_string(), "320 MB");
        assert_eq!(ByteSize(900).to_string(), "900 B");
        let y: ByteSize = yaml_serde::from_str("2GB").unwrap_or_default();
        assert_eq!(y.0, 2_000_000_000);
        let y: ByteSize = yaml_serde::from_str("4096").unwrap_or_default();
        assert_eq!(y.0, 4096);
    }
}
