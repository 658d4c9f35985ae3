//! Client-side rate limiting: a sliding window of call starts plus a concurrency cap, so the
//! client stays inside Marketo's limits (100 calls / 20 s and 10 concurrent calls per instance;
//! Adobe advises ≤ 50 / 20 s and ≤ 5 concurrent per integration) instead of hitting them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::MapError;

/// Marketo's hard per-instance limit of calls per 20 s.
pub const MAX_CALLS_PER_20S: u32 = 100;
/// Marketo's hard per-instance limit of concurrent calls.
pub const MAX_CONCURRENCY: u32 = 10;

/// Limits one client applies to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls started per window (default 50, Adobe's per-integration advice; at most 100).
    pub calls_per_20s: u32,
    /// Calls in flight at once (default 5; at most 10).
    pub concurrency: u32,
    /// Length of the sliding window. Keep the default 20 s for Marketo; shorter only in tests.
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            calls_per_20s: 50,
            concurrency: 5,
            window: Duration::from_secs(20),
        }
    }
}

impl RateLimit {
    /// Checks the limits against Marketo's documented maxima.
    pub fn validate(&self) -> Result<(), MapError> {
        if self.calls_per_20s == 0 || self.calls_per_20s > MAX_CALLS_PER_20S {
            return Err(MapError::Config(format!(
                "rate.calls_per_20s must be between 1 and {MAX_CALLS_PER_20S}, not {}",
                self.calls_per_20s
            )));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(MapError::Config(format!(
                "rate.concurrency must be between 1 and {MAX_CONCURRENCY}, not {}",
                self.concurrency
            )));
        }
        if self.window.is_zero() {
            return Err(MapError::Config("rate.window must not be zero".to_owned()));
        }
        Ok(())
    }
}

/// The limiter shared by every call of one client (clones share it).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    window: Duration,
    max_calls: usize,
    in_flight: Arc<Semaphore>,
    starts: Mutex<VecDeque<Instant>>,
}

/// Held while a call is in flight; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl RateLimiter {
    /// A limiter enforcing `limit`.
    pub fn new(limit: &RateLimit) -> Self {
        Self {
            inner: Arc::new(Inner {
                window: limit.window,
                max_calls: usize::try_from(limit.calls_per_20s.max(1)).unwrap_or(1),
                in_flight: Arc::new(Semaphore::new(
                    usize::try_from(limit.concurrency.max(1)).unwrap_or(1),
                )),
                starts: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Waits for a concurrency slot and for room in the window, then records the call's start.
    pub async fn acquire(&self) -> Permit {
        // The semaphore is never closed, so this only fails in theory; go on without a slot then.
        let slot = self.inner.in_flight.clone().acquire_owned().await.ok();
        loop {
            let wait = {
                let now = Instant::now();
                match self.inner.starts.lock() {
                    Ok(mut starts) => {
                        while starts
                            .front()
                            .is_some_and(|t| now.duration_since(*t) >= self.inner.window)
                        {
                            starts.pop_front();
                        }
                        if starts.len() < self.inner.max_calls {
                            starts.push_back(now);
                            None
                        } else {
                            starts
                                .front()
                                .map(|oldest| self.inner.window - now.duration_since(*oldest))
                        }
                    }
                    Err(_) => None,
                }
            };
            match wait {
                None => break,
                Some(d) => {
                    tracing::debug!(wait_ms = d.as_millis() as u64, "MAP rate limiter waiting");
                    tokio::time::sleep(d).await;
                }
            }
        }
        Permit { _slot: slot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_stays_within_window_and_concurrency() {
        let limit = RateLimit {
            calls_per_20s: 5,
            concurrency: 2,
            window: Duration::from_millis(400),
        };
        let limiter = RateLimiter::new(&limit);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..17 {
            let limiter = limiter.clone();
            let starts = starts.clone();
            let in_flight = in_flight.clone();
            let peak = peak.clone();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.acquire().await;
                starts.lock().expect("lock").push(Instant::now());
                let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let mut starts = starts.lock().expect("lock").clone();
        starts.sort();
        // Any 6 consecutive starts must span at least one window.
        for pair in starts.windows(6) {
            let span = pair[5].duration_since(pair[0]);
            assert!(span >= limit.window, "6 calls within {span:?}");
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        // 17 calls at 5 per window need at least 3 full windows.
        assert!(starts[16].duration_since(starts[0]) >= limit.window * 3);
    }

    #[test]
    fn limits_are_validated() {
        assert!(RateLimit::default().validate().is_ok());
        let too_fast = RateLimit {
            calls_per_20s: 101,
            ..RateLimit::default()
        };
        assert!(too_fast.validate().is_err());
        let too_wide = RateLimit {
            concurrency: 11,
            ..RateLimit::default()
        };
        assert!(too_wide.validate().is_err());
    }
}
