//! How often bulk jobs are polled, and for how long.

use std::time::Duration;

/// Polling of bulk export and import jobs, and of a full bulk queue. Adobe documents that "a job
/// status does not update more frequently than once every 60 seconds", so the wait starts at
/// `initial` and doubles up to `max` (default 5 s, 10 s, 20 s, 40 s, then every 60 s): a job
/// done within a minute costs 4 status calls, one running for an hour about 63. The old
/// default (1 s growing by a quarter) cost 13 calls for the same one-minute job; the figures
/// are in `docs/reliability.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    /// First wait (default 5 s).
    pub initial: Duration,
    /// Longest wait between two polls (default 60 s, Marketo's status refresh).
    pub max: Duration,
    /// Growth factor per poll (default 2).
    pub factor: f64,
    /// Give up waiting for one job after this long (default 12 h).
    pub max_wait: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
            factor: 2.0,
            max_wait: Duration::from_secs(12 * 3600),
        }
    }
}

impl PollPolicy {
    /// The waits to use, one after another.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let max = self.max.max(self.initial);
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        std::iter::successors(Some(self.initial), move |d| {
            Some(d.mul_f64(factor).min(max))
        })
    }

    /// Status polls this policy makes for a job whose status, refreshed every `refresh`,
    /// first reads final once `done` has passed: polls happen after each wait, and the
    /// first poll at or after the first refresh at or after `done` sees the end.
    pub fn polls_for(&self, done: Duration, refresh: Duration) -> u64 {
        let visible = if refresh.is_zero() {
            done
        } else {
            let ticks = done.as_nanos().div_ceil(refresh.as_nanos());
            refresh.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX))
        };
        let mut at = Duration::ZERO;
        let mut polls = 0;
        for delay in self.delays() {
            at += delay;
            polls += 1;
            if at >= visible || at >= self.max_wait {
                break;
            }
        }
        polls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy before Adobe's cadence was followed: 1 s growing by a quarter to 60 s.
    fn old_default() -> PollPolicy {
        PollPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 1.25,
            max_wait: Duration::from_secs(12 * 3600),
        }
    }

    #[test]
    fn follows_adobes_cadence() {
        let d: Vec<_> = PollPolicy::default().delays().take(8).collect();
        let secs: Vec<u64> = d.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60, 60, 60]);
    }

    #[test]
    fn polls_per_job_before_and_after() {
        let minute = Duration::from_secs(60);
        let old = old_default();
        let new = PollPolicy::default();
        // (job minutes, old polls, new polls) under a status refreshed once a minute.
        let expected = [(1, 13, 4), (5, 20, 8), (15, 30, 18), (60, 75, 63)];
        for (minutes, old_polls, new_polls) in expected {
            let done = minute * minutes;
            assert_eq!(old.polls_for(done, minute), old_polls, "old, {minutes} min");
            assert_eq!(new.polls_for(done, minute), new_polls, "new, {minutes} min");
        }
        // A job done in seconds is still seen on the first poll after the first refresh.
        assert_eq!(new.polls_for(Duration::from_secs(3), Duration::ZERO), 1);
    }
}
