//! The sandbox clock: wall time plus an adjustable offset, so tests can jump past token expiry
//! or the quota reset (midnight America/Chicago) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};

/// Wall clock with an offset that `POST /_sandbox/clock/advance` moves forward.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// The quota day: Marketo resets daily counters at midnight Central time.
    pub(crate) fn quota_day(&self) -> NaiveDate {
        self.now()
            .with_timezone(&chrono_tz::America::Chicago)
            .date_naive()
    }
}

/// `2024-01-31T12:00:00Z`, the timestamp format of Marketo lead fields and bulk jobs.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Appends `secs` (Unix time, UTC) as `YYYY-MM-DDTHH:MM:SSZ` without going through chrono's
/// formatter (exports write millions of these).
pub(crate) fn push_iso(out: &mut String, secs: i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let digits = |out: &mut String, v: i64, width: usize| {
        let s = v.to_string();
        for _ in s.len()..width {
            out.push('0');
        }
        out.push_str(&s);
    };
    digits(out, y, 4);
    out.push('-');
    digits(out, m, 2);
    out.push('-');
    digits(out, d, 2);
    out.push('T');
    digits(out, hh, 2);
    out.push(':');
    digits(out, mm, 2);
    out.push(':');
    digits(out, ss, 2);
    out.push('Z');
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an ISO-8601 timestamp as Marketo accepts it (`2024-01-01T00:00:00Z`,
/// `2024-01-01T00:00:00-08:00`, or a bare date).
pub(crate) fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_iso_matches_chrono() {
        for secs in [
            0_i64,
            951_782_400,
            1_700_000_000,
            1_709_251_199,
            4_102_444_800,
        ] {
            let mut s = String::new();
            push_iso(&mut s, secs);
            let t = DateTime::from_timestamp(secs, 0).expect("ts");
            assert_eq!(s, iso(t));
        }
    }
}
