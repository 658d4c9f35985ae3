//! Client-side rate limiting: a sliding window of call starts plus a concurrency cap, so the
//! client stays inside Marketo's limits (100 calls / 20 s and 10 concurrent calls per instance;
//! Adobe advises ≤ 50 / 20 s and ≤ 5 concurrent per integration) instead of hitting them.
//!
//! Marketo's limits are per instance, shared by every integration, so the configured limits
//! are a ceiling, not a promise. The limiter adapts (additive increase, multiplicative
//! decrease): a 606 halves the calls it starts per window (of what actually got through, at
//! least 1) and holds every call until the rolling window has passed; a 615 halves the calls
//! it keeps in flight. Each window without a 606 (or 615) gives one call back, up to the
//! configured limit. Changes of pace are told to the subscribed [`Observer`]s, one notice per
//! change.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
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

/// A change of the limiter's pace, as told to the tasks using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// After a 606: at most `calls` calls per window from now on.
    RateSlowed {
        /// Calls per window now.
        calls: u32,
        /// The window.
        window: Duration,
    },
    /// Back to the configured calls per window.
    RateRestored {
        /// Calls per window now (the configured limit).
        calls: u32,
        /// The window.
        window: Duration,
    },
    /// After a 615: at most `concurrent` calls in flight from now on.
    ConcurrencySlowed {
        /// Calls in flight at once now.
        concurrent: u32,
    },
    /// Back to the configured calls in flight.
    ConcurrencyRestored {
        /// Calls in flight at once now (the configured limit).
        concurrent: u32,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::RateSlowed { calls, window } => write!(
                f,
                "Marketo rate limit shared: slowed to {calls} calls/{} (other integrations use the instance's {MAX_CALLS_PER_20S} calls per 20 s; Drover speeds up again by one call per quiet window)",
                show_window(*window)
            ),
            Notice::RateRestored { calls, window } => write!(
                f,
                "Marketo rate limit: back to {calls} calls/{}",
                show_window(*window)
            ),
            Notice::ConcurrencySlowed { concurrent } => write!(
                f,
                "Marketo concurrency limit shared: down to {concurrent} calls at once (other integrations use the instance's {MAX_CONCURRENCY} concurrent calls)"
            ),
            Notice::ConcurrencyRestored { concurrent } => {
                write!(
                    f,
                    "Marketo concurrency limit: back to {concurrent} calls at once"
                )
            }
        }
    }
}

/// `20 s`, `2 s`, `500 ms`.
pub(crate) fn show_window(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What an observer calls.
type NoticeFn = dyn Fn(&Notice) + Send + Sync;

/// Something told about changes of pace (e.g. a task's log). Cheap to clone.
#[derive(Clone)]
pub struct Observer(Arc<NoticeFn>);

impl Observer {
    /// An observer calling `f` for each notice. `f` must not block.
    pub fn new(f: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

/// The pace in force now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Calls started per window.
    pub calls: u32,
    /// Calls in flight at once.
    pub concurrency: u32,
    /// The window.
    pub window: Duration,
}

/// The limiter shared by every call of one client (clones share it).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    window: Duration,
    max_calls: u32,
    max_concurrency: u32,
    state: Mutex<State>,
    /// A slot was freed (or the pace changed).
    changed: Notify,
    observers: Mutex<Vec<Weak<NoticeFn>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("window", &self.window)
            .field("max_calls", &self.max_calls)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    /// Calls allowed per window now.
    calls: u32,
    /// Calls allowed in flight now.
    concurrency: u32,
    in_flight: u32,
    /// Starts within the last window.
    starts: VecDeque<Instant>,
    /// 606 answers within the last window.
    limited: VecDeque<Instant>,
    /// No call starts before this (the rolling window after a 606).
    paused_until: Option<Instant>,
    /// The last cut of `calls`: 606s of calls started before it are echoes of the same burst.
    rate_cut_at: Option<Instant>,
    /// `calls` grows by one each full window after this.
    rate_quiet_since: Instant,
    conc_cut_at: Option<Instant>,
    conc_quiet_since: Instant,
}

/// Held while a call is in flight; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    started: Instant,
}

impl Permit {
    /// When the call started (as counted in the window).
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut st = self.inner.lock();
            st.in_flight = st.in_flight.saturating_sub(1);
        }
        self.inner.changed.notify_waiters();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives back one call (or slot) per quiet window since the last change.
    fn grow(&self, st: &mut State, now: Instant, notes: &mut Vec<Notice>) {
        while st.calls < self.max_calls && now >= st.rate_quiet_since + self.window {
            st.calls += 1;
            st.rate_quiet_since += self.window;
            if st.calls == self.max_calls {
                notes.push(Notice::RateRestored {
                    calls: st.calls,
                    window: self.window,
                });
            }
        }
        while st.concurrency < self.max_concurrency && now >= st.conc_quiet_since + self.window {
            st.concurrency += 1;
            st.conc_quiet_since += self.window;
            if st.concurrency == self.max_concurrency {
                notes.push(Notice::ConcurrencyRestored {
                    concurrent: st.concurrency,
                });
            }
        }
    }

    fn prune(&self, st: &mut State, now: Instant) {
        while st
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            st.starts.pop_front();
        }
        while st
            .limited
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            st.limited.pop_front();
        }
    }

    fn publish(&self, notes: Vec<Notice>) {
        if notes.is_empty() {
            return;
        }
        let live: Vec<Arc<NoticeFn>> = {
            let mut obs = self
                .observers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            obs.retain(|w| w.strong_count() > 0);
            obs.iter().filter_map(Weak::upgrade).collect()
        };
        for note in &notes {
            tracing::info!(notice = %note, "MAP pace changed");
            for o in &live {
                o(note);
            }
        }
    }
}

/// Why a call must wait.
enum Wait {
    /// Until this long has passed (the window, or a pause).
    For(Duration),
    /// Until a slot is freed.
    Slot,
}

impl RateLimiter {
    /// A limiter enforcing `limit`.
    pub fn new(limit: &RateLimit) -> Self {
        let now = Instant::now();
        let max_calls = limit.calls_per_20s.max(1);
        let max_concurrency = limit.concurrency.max(1);
        Self {
            inner: Arc::new(Inner {
                window: limit.window,
                max_calls,
                max_concurrency,
                state: Mutex::new(State {
                    calls: max_calls,
                    concurrency: max_concurrency,
                    in_flight: 0,
                    starts: VecDeque::new(),
                    limited: VecDeque::new(),
                    paused_until: None,
                    rate_cut_at: None,
                    rate_quiet_since: now,
                    conc_cut_at: None,
                    conc_quiet_since: now,
                }),
                changed: Notify::new(),
                observers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Waits for a concurrency slot and for room in the window, then records the call's start.
    pub async fn acquire(&self) -> Permit {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut notes = Vec::new();
            let wait = {
                let mut st = self.inner.lock();
                let now = Instant::now();
                self.inner.grow(&mut st, now, &mut notes);
                self.inner.prune(&mut st, now);
                if let Some(until) = st.paused_until.filter(|u| *u > now) {
                    Some(Wait::For(until - now))
                } else if st.starts.len() >= st.calls as usize {
                    st.starts.front().map(|oldest| {
                        Wait::For(
                            self.inner
                                .window
                                .saturating_sub(now.duration_since(*oldest)),
                        )
                    })
                } else if st.in_flight >= st.concurrency {
                    Some(Wait::Slot)
                } else {
                    st.starts.push_back(now);
                    st.in_flight += 1;
                    None
                }
            };
            self.inner.publish(notes);
            match wait {
                None => {
                    return Permit {
                        inner: self.inner.clone(),
                        started: Instant::now(),
                    };
                }
                Some(Wait::For(d)) => {
                    tracing::debug!(wait_ms = d.as_millis() as u64, "MAP rate limiter waiting");
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = &mut notified => {}
                    }
                }
                Some(Wait::Slot) => notified.await,
            }
        }
    }

    /// A call started at `started` was answered 606: fewer calls per window, and none until the
    /// rolling window has passed.
    pub fn rate_limited(&self, started: Instant) {
        let mut notes = Vec::new();
        {
            let mut st = self.inner.lock();
            let now = Instant::now();
            self.inner.prune(&mut st, now);
            st.limited.push_back(now);
            let resume = now + self.inner.window;
            st.paused_until = Some(st.paused_until.map_or(resume, |p| p.max(resume)));
            // The window spent waiting is not a quiet one.
            st.rate_quiet_since = resume;
            if st.rate_cut_at.is_none_or(|cut| started > cut) {
                let through = st.starts.len().saturating_sub(st.limited.len());
                let base = st.calls.min(u32::try_from(through).unwrap_or(u32::MAX));
                let cut = (base / 2).max(1);
                st.rate_cut_at = Some(now);
                if cut < st.calls {
                    st.calls = cut;
                    notes.push(Notice::RateSlowed {
                        calls: cut,
                        window: self.inner.window,
                    });
                }
            }
        }
        self.inner.publish(notes);
    }

    /// A call started at `started` was answered 615: fewer calls in flight.
    pub fn concurrency_limited(&self, started: Instant) {
        let mut notes = Vec::new();
        {
            let mut st = self.inner.lock();
            let now = Instant::now();
            st.conc_quiet_since = now;
            if st.conc_cut_at.is_none_or(|cut| started > cut) {
                // The refused call's own slot is already free: count it back in.
                let busy = st.in_flight.saturating_add(1);
                let cut = (st.concurrency.min(busy) / 2).max(1);
                st.conc_cut_at = Some(now);
                if cut < st.concurrency {
                    st.concurrency = cut;
                    notes.push(Notice::ConcurrencySlowed { concurrent: cut });
                }
            }
        }
        self.inner.publish(notes);
    }

    /// When calls may start again after a 606, if they are held now.
    pub fn paused_until(&self) -> Option<Instant> {
        let now = Instant::now();
        self.inner.lock().paused_until.filter(|u| *u > now)
    }

    /// The pace in force now.
    pub fn pace(&self) -> Pace {
        let mut notes = Vec::new();
        let pace = {
            let mut st = self.inner.lock();
            self.inner.grow(&mut st, Instant::now(), &mut notes);
            Pace {
                calls: st.calls,
                concurrency: st.concurrency,
                window: self.inner.window,
            }
        };
        self.inner.publish(notes);
        pace
    }

    /// The configured limits (the ceiling the pace grows back to).
    pub fn limit(&self) -> RateLimit {
        RateLimit {
            calls_per_20s: self.inner.max_calls,
            concurrency: self.inner.max_concurrency,
            window: self.inner.window,
        }
    }

    /// Tells `observer` about every change of pace for as long as it lives elsewhere (the
    /// limiter holds it weakly).
    pub fn subscribe(&self, observer: &Observer) {
        let mut obs = self
            .inner
            .observers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        obs.retain(|w| w.strong_count() > 0);
        obs.push(Arc::downgrade(&observer.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limiter(calls: u32, concurrency: u32, window_ms: u64) -> RateLimiter {
        RateLimiter::new(&RateLimit {
            calls_per_20s: calls,
            concurrency,
            window: Duration::from_millis(window_ms),
        })
    }

    fn recorder(l: &RateLimiter) -> (Observer, Arc<Mutex<Vec<Notice>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let o = Observer::new(move |n| s.lock().expect("lock").push(n.clone()));
        l.subscribe(&o);
        (o, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn burst_stays_within_window_and_concurrency() {
        let limit = RateLimit {
            calls_per_20s: 5,
            concurrency: 2,
            window: Duration::from_millis(400),
        };
        let limiter = RateLimiter::new(&limit);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..17 {
            let limiter = limiter.clone();
            let starts = starts.clone();
            let in_flight = in_flight.clone();
            let peak = peak.clone();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.acquire().await;
                starts.lock().expect("lock").push(Instant::now());
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
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
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // 17 calls at 5 per window need 3 full windows, and no more than that.
        let span = starts[16].duration_since(starts[0]);
        assert!(
            span >= limit.window * 3 && span < limit.window * 4,
            "{span:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_606_halves_what_got_through_and_holds_calls_for_a_window() {
        let l = limiter(50, 5, 1_000);
        let (_o, seen) = recorder(&l);
        let mut first = None;
        for _ in 0..10 {
            let p = l.acquire().await;
            first.get_or_insert(p.started());
        }
        let refused = l.acquire().await;
        let at = Instant::now();
        l.rate_limited(refused.started());
        drop(refused);
        // 10 calls got through (the 11th was refused): half of them per window from now on.
        assert_eq!(l.pace().calls, 5);
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![Notice::RateSlowed {
                calls: 5,
                window: Duration::from_secs(1)
            }]
        );
        // Nothing starts until the rolling window has passed.
        let mut starts = Vec::new();
        // (One window later a quiet window has passed, so the pace grows back to 6 there.)
        for _ in 0..10 {
            starts.push(l.acquire().await.started());
        }
        assert_eq!(starts[0], at + Duration::from_secs(1));
        // Then 5 per window: the first five at once, any six span a window.
        assert_eq!(starts[4], starts[0]);
        for six in starts.windows(6) {
            assert!(six[5] >= six[0] + Duration::from_secs(1), "{starts:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn echoes_of_one_burst_cut_once_and_the_pace_grows_back_by_one_per_quiet_window() {
        let l = limiter(8, 5, 1_000);
        let (_o, seen) = recorder(&l);
        let mut burst = Vec::new();
        for _ in 0..5 {
            burst.push(l.acquire().await);
        }
        // All five answered 606: they started before the first cut, so only one cut.
        for p in &burst {
            l.rate_limited(p.started());
        }
        drop(burst);
        // 4 got through before the first 606 was counted: half of them.
        assert_eq!(l.pace().calls, 2);
        assert_eq!(seen.lock().expect("lock").len(), 1);
        // The held window, then one call back per quiet window: 2 → 8 takes 6 windows.
        tokio::time::sleep(Duration::from_millis(1_000 + 5 * 1_000 + 500)).await;
        assert_eq!(l.pace().calls, 7);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(l.pace().calls, 8);
        assert_eq!(
            seen.lock().expect("lock").last(),
            Some(&Notice::RateRestored {
                calls: 8,
                window: Duration::from_secs(1)
            })
        );
        // Growth never passes the configured limit.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(l.pace().calls, 8);
        assert_eq!(seen.lock().expect("lock").len(), 2, "one line per change");
    }

    #[tokio::test(start_paused = true)]
    async fn a_615_halves_the_calls_in_flight_and_they_grow_back() {
        let l = limiter(50, 6, 1_000);
        let (_o, seen) = recorder(&l);
        let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| l.acquire())).await;
        let refused = l.acquire().await;
        let started = refused.started();
        drop(refused);
        l.concurrency_limited(started);
        // 4 were busy when the MAP said "too many": 2 at once from now on.
        assert_eq!(l.pace().concurrency, 2);
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![Notice::ConcurrencySlowed { concurrent: 2 }]
        );
        // With 3 still in flight, a new call waits until only 1 is.
        let waiting = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire().await.started() })
        };
        let mut held = held.into_iter();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held.next());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        let freed_at = Instant::now() + Duration::from_millis(10);
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held.next());
        let started = waiting.await.expect("join");
        assert!(started >= freed_at, "started before a slot was free");
        drop(held);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(l.pace().concurrency, 6);
        assert_eq!(
            seen.lock().expect("lock").last(),
            Some(&Notice::ConcurrencyRestored { concurrent: 6 })
        );
    }

    #[test]
    fn notices_read_well() {
        let slowed = Notice::RateSlowed {
            calls: 4,
            window: Duration::from_secs(20),
        };
        assert!(
            slowed
                .to_string()
                .starts_with("Marketo rate limit shared: slowed to 4 calls/20 s"),
            "{slowed}"
        );
        let back = Notice::RateRestored {
            calls: 50,
            window: Duration::from_millis(500),
        };
        assert_eq!(
            back.to_string(),
            "Marketo rate limit: back to 50 calls/500 ms"
        );
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
