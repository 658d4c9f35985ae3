//! How often bulk jobs are polled, and for how long.

use std::time::Duration;

/// Polling of bulk export and import jobs. Marketo refreshes an export's status at most once a
/// minute, so the interval grows from `initial` to `max` (default 1 s → 60 s, by a quarter per
/// poll): a job done in seconds is seen within about a second, one running for an hour costs
/// some 75 status calls.
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    /// First wait (default 1 s).
    pub initial: Duration,
    /// Longest wait between two polls (default 60 s).
    pub max: Duration,
    /// Growth factor per poll (default 1.25).
    pub factor: f64,
    /// Give up waiting for one job after this long (default 12 h).
    pub max_wait: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 1.25,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap() {
        let d: Vec<_> = PollPolicy::default().delays().take(40).collect();
        assert_eq!(d[0], Duration::from_secs(1));
        assert_eq!(d[1], Duration::from_millis(1250));
        // Ten polls cover about half a minute; the cap is reached after about four minutes.
        let ten: Duration = d[..10].iter().sum();
        assert!(
            ten > Duration::from_secs(25) && ten < Duration::from_secs(40),
            "{ten:?}"
        );
        assert_eq!(d[19], Duration::from_secs(60));
        assert_eq!(d[39], Duration::from_secs(60));
    }
}
