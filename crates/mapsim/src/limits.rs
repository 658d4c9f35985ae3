//! Call limits: a sliding 20-second window (606), concurrent calls (615), the daily call quota
//! (607) and the daily export-bytes quota, all counted per sandbox (Marketo counts per instance).
//! Another integration's calls (the `shared-limit` fault) take their share of the window and of
//! the concurrent slots first.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::envelope::ApiError;

/// The limits currently in force (configured limits tightened by the fault profile).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effective {
    /// The instance's calls per window.
    pub(crate) calls_per_20s: u32,
    /// The rate window (20 s unless scaled down).
    pub(crate) window: Duration,
    /// The instance's concurrent calls.
    pub(crate) concurrent: u32,
    pub(crate) daily_calls: u64,
    /// Calls of another integration in every window.
    pub(crate) other_calls: u32,
    /// Calls of another integration in flight at any moment.
    pub(crate) other_concurrent: u32,
}

/// `20`, or `0.5` for a scaled-down window.
fn show_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// Counters behind the limits.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    window: Mutex<VecDeque<Instant>>,
    in_flight: AtomicU32,
    daily: Mutex<Daily>,
}

#[derive(Debug, Default, Clone)]
struct Daily {
    day: Option<NaiveDate>,
    calls: u64,
    export_bytes: u64,
}

impl Daily {
    fn roll(&mut self, today: NaiveDate) {
        if self.day != Some(today) {
            *self = Daily {
                day: Some(today),
                calls: 0,
                export_bytes: 0,
            };
        }
    }
}

/// Holds a concurrency slot for the duration of a call.
#[derive(Debug)]
pub(crate) struct Slot<'a>(&'a AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    /// Admits one call or says which limit it hit. Admitted calls count towards the window and the
    /// daily quota.
    pub(crate) fn admit(&self, eff: Effective, today: NaiveDate) -> Result<Slot<'_>, ApiError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.in_flight);
        if before >= eff.concurrent.saturating_sub(eff.other_concurrent) {
            return Err(ApiError::new(615, "Concurrent access limit reached"));
        }
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            while w
                .front()
                .is_some_and(|t| now.duration_since(*t) >= eff.window)
            {
                w.pop_front();
            }
            let left = eff.calls_per_20s.saturating_sub(eff.other_calls);
            if w.len() as u64 >= u64::from(left) {
                return Err(ApiError::new(
                    606,
                    format!(
                        "Max rate limit '{}' exceeded with in '{}' secs",
                        eff.calls_per_20s,
                        show_secs(eff.window)
                    ),
                ));
            }
            let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
            d.roll(today);
            if d.calls >= eff.daily_calls {
                return Err(ApiError::new(607, "Daily quota reached"));
            }
            d.calls += 1;
            if eff.calls_per_20s != u32::MAX {
                w.push_back(now);
            }
        }
        Ok(slot)
    }

    /// Calls counted today.
    pub(crate) fn calls_today(&self, today: NaiveDate) -> u64 {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        d.roll(today);
        d.calls
    }

    /// Export bytes produced today.
    pub(crate) fn export_bytes_today(&self, today: NaiveDate) -> u64 {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        d.roll(today);
        d.export_bytes
    }

    /// Adds the size of a finished export file to today's total.
    pub(crate) fn add_export_bytes(&self, today: NaiveDate, bytes: u64) {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        d.roll(today);
        d.export_bytes = d.export_bytes.saturating_add(bytes);
    }

    /// Forgets every counter (admin reset).
    pub(crate) fn reset(&self) {
        self.window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.daily.lock().unwrap_or_else(|e| e.into_inner()) = Daily::default();
    }
}
