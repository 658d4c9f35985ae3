//! Retry policy (jittered exponential backoff) and the classification of Marketo error codes.

use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How failed calls are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (default 6). Answers saying the instance's rate
    /// or concurrency limit is exhausted (606, 615, HTTP 429) do not count: those calls are
    /// retried for as long as the handle's deadline (or `rate_limited_patience`) allows.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time (default 500 ms).
    pub base_delay: Duration,
    /// Upper bound of one delay (default 30 s).
    pub max_delay: Duration,
    /// How long one call keeps being retried while Marketo's rate or concurrency limit stays
    /// exhausted, when its handle has no deadline of its own (default 15 min). After a 606 the
    /// rate limiter itself holds calls until the rolling window has passed.
    pub rate_limited_patience: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            rate_limited_patience: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 = first retry): `base * 2^(retry-1)`, capped at
    /// `max_delay`, with "equal jitter" (a uniformly random value between half and all of it).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            jitter_rng().random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }
}

/// A cheap random source for jitter (the `rand` build here has no thread RNG): seeded from the
/// clock and a counter, which is plenty to de-synchronise clients.
fn jitter_rng() -> SmallRng {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    SmallRng::seed_from_u64(nanos ^ n)
}

/// What a Marketo response-level code means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeClass {
    /// 600/601/602: renew the token and try again.
    Reauth,
    /// Transient: 604, 606, 608, 611, 615, 713, 1016 "Too many imports". All of them mean the
    /// request was not executed (6xx: "the entire request failed and was not executed").
    Transient,
    /// 1029 "Too many jobs in queue": the bulk queue is full; wait and try again.
    QueueFull,
    /// 1029 "Job already queued": the enqueue already happened.
    AlreadyQueued,
    /// 607, or 1029 "Export daily quota exceeded": stop until midnight US Central.
    Quota,
    /// Anything else: the request is wrong or not allowed; retrying will not help.
    Fatal,
}

/// Classifies a response-level error code (codes are strings in the envelope).
pub(crate) fn classify_code(code: &str, message: &str) -> CodeClass {
    match code.trim() {
        "600" | "601" | "602" => CodeClass::Reauth,
        "604" | "606" | "608" | "611" | "615" | "713" | "1016" => CodeClass::Transient,
        "607" => CodeClass::Quota,
        "1029" => {
            let m = message.to_ascii_lowercase();
            if m.contains("quota") {
                CodeClass::Quota
            } else if m.contains("already queued") {
                CodeClass::AlreadyQueued
            } else if m.contains("too many jobs") {
                CodeClass::QueueFull
            } else {
                // One code, three documented messages; an unknown one is safer not retried.
                CodeClass::Fatal
            }
        }
        _ => CodeClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy::default();
        for retry in 1..=12 {
            let d = p.delay(retry);
            let full = p
                .base_delay
                .saturating_mul(1 << (retry - 1))
                .min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
        }
        assert!(p.delay(40) <= p.max_delay);
    }
}
