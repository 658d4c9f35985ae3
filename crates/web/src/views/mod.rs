//! Turning stored facts into what a person reads: times, durations, states in words, the
//! task graph and the timeline.

pub(crate) mod audit_words;
pub(crate) mod dag_info;
pub(crate) mod event_words;
pub(crate) mod format;
pub(crate) mod glossary;
pub(crate) mod graph_svg;
pub(crate) mod import_error;
pub(crate) mod local_time;
pub(crate) mod sparkline;

use chrono::{DateTime, Utc};

/// Percent-encode for a query value.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A state as people say it.
pub(crate) fn state_words(state: &str) -> &'static str {
    match state {
        "success" => "succeeded",
        "failed" => "failed",
        "running" => "running",
        "queued" => "queued",
        "pending" => "waiting",
        "up_for_retry" => "will retry",
        "upstream_failed" => "not run: an earlier task failed",
        "skipped" => "skipped",
        "awaiting_approval" => "waiting for approval",
        _ => "unknown",
    }
}

/// A UTC time shown to the minute.
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "3 h ago" / "in 5 min".
pub(crate) fn ago(t: &DateTime<Utc>) -> String {
    format::ago(Utc::now(), *t)
}

/// Seconds between two times, in words; running ones count to now.
pub(crate) fn took(start: &Option<DateTime<Utc>>, end: &Option<DateTime<Utc>>) -> String {
    match start {
        Some(s) => {
            let e = end.unwrap_or_else(Utc::now);
            format::duration_words((e - s).num_milliseconds() as f64 / 1000.0)
        }
        None => String::new(),
    }
}

/// The first line of an error: what the first screen shows; the rest is one click away.
pub(crate) fn headline(error: &str) -> String {
    let first = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = first.chars().take(240).collect();
    if first.chars().count() > 240 {
        s.push('…');
    }
    s
}

pub(crate) fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            url_encode("/dags?env=dev&q=a b"),
            "/dags%3Fenv%3Ddev%26q%3Da%20b"
        );
        assert_eq!(headline("\n  boom: it broke\nstack"), "  boom: it broke");
    }
}
