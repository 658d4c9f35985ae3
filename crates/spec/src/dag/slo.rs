//! Data SLOs: a check, run on its schedule, is a service-level indicator; its objective is the
//! share of checks that must pass over a period, and what the objective allows to fail is the
//! error budget. Burn rates say how fast the budget goes: 1 spends it exactly over the period.

use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::Duration;

/// Burning faster than this over the last hour is an alert (2 % of a 30-day budget an hour).
pub const FAST_BURN_1H: f64 = 14.4;
/// Burning faster than this over the last six hours is an alert (5 % of a 30-day budget).
pub const FAST_BURN_6H: f64 = 6.0;

/// `slo: { objective: 99%, period: 28d }` on a check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Share of checks that must pass, in (0, 1): written `99%` or `0.99`.
    #[serde(deserialize_with = "objective")]
    pub objective: f64,
    /// The period it is measured over; default 28 days.
    #[serde(default = "default_period")]
    pub period: Duration,
}

fn default_period() -> Duration {
    Duration::from_secs(28 * 86_400)
}

fn objective<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    let bad = |shown: &str| {
        serde::de::Error::custom(format!(
            "`objective` must be a share between 0 and 1 or a percentage below 100% (e.g. 99% or 0.99), not `{shown}`"
        ))
    };
    let value = match Raw::deserialize(d)? {
        Raw::Number(n) => n,
        Raw::Text(t) => match t.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| bad(&t))? / 100.0,
            None => t.trim().parse::<f64>().map_err(|_| bad(&t))?,
        },
    };
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(bad(&value.to_string()))
    }
}

/// Passed and total checks in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub good: i64,
    pub total: i64,
}

impl Tally {
    pub fn bad(self) -> i64 {
        self.total - self.good
    }
}

/// Where an SLO stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SloStatus {
    /// Share of checks that passed over the period (none before the first check).
    pub sli: Option<f64>,
    /// Share of the error budget left: 1 untouched, 0 spent, below 0 overspent.
    pub budget_remaining: f64,
    /// Failures still allowed this period at the current count of checks.
    pub failures_left: f64,
    /// Burn rates over the last hour and six hours (none without checks there).
    pub burn_1h: Option<f64>,
    pub burn_6h: Option<f64>,
}

impl SloStatus {
    /// Spending the budget fast enough to alert.
    pub fn burning_fast(&self) -> bool {
        self.burn_1h.is_some_and(|b| b >= FAST_BURN_1H)
            || self.burn_6h.is_some_and(|b| b >= FAST_BURN_6H)
    }

    /// `ok`, `burning` or `exhausted`, for people.
    pub fn verdict(&self) -> &'static str {
        if self.budget_remaining <= 0.0 && self.sli.is_some() {
            "exhausted"
        } else if self.burning_fast() {
            "burning"
        } else {
            "ok"
        }
    }
}

impl Slo {
    /// The status from the checks of the period and of the last hour and six hours.
    pub fn status(&self, period: Tally, last_1h: Tally, last_6h: Tally) -> SloStatus {
        let allowed = 1.0 - self.objective;
        let share_bad = |t: Tally| (t.total > 0).then(|| t.bad() as f64 / t.total as f64);
        let spent = share_bad(period).map_or(0.0, |b| b / allowed);
        SloStatus {
            sli: share_bad(period).map(|b| 1.0 - b),
            budget_remaining: 1.0 - spent,
            failures_left: allowed * period.total as f64 - period.bad() as f64,
            burn_1h: share_bad(last_1h).map(|b| b / allowed),
            burn_6h: share_bad(last_6h).map(|b| b / allowed),
        }
    }

    /// "99% over 28d".
    pub fn describe(&self) -> String {
        format!(
            "{}% over {}",
            trim_float(self.objective * 100.0),
            self.period
        )
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(yaml: &str) -> Result<Slo, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    fn t(good: i64, total: i64) -> Tally {
        Tally { good, total }
    }

    #[test]
    fn objectives_read_as_percentages_or_shares() {
        let a = slo("{ objective: 99% }").unwrap_or_else(|e| panic!("{e}"));
        assert!((a.objective - 0.99).abs() < 1e-12);
        assert_eq!(a.period.as_secs(), 28 * 86_400);
        assert_eq!(a.describe(), "99% over 28d");
        let b = slo("{ objective: 0.995, period: 7d }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.describe(), "99.5% over 7d");
        for bad in [
            "{ objective: 100% }",
            "{ objective: 1.5 }",
            "{ objective: lots }",
            "{}",
        ] {
            assert!(slo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_budget_is_what_the_objective_lets_fail() {
        let s = slo("{ objective: 90% }").unwrap_or_else(|e| panic!("{e}"));
        // 100 checks, 5 failed: half of the 10 % budget spent; 5 more may fail.
        let st = s.status(t(95, 100), t(1, 1), t(6, 6));
        assert!((st.sli.unwrap_or(0.0) - 0.95).abs() < 1e-9);
        assert!((st.budget_remaining - 0.5).abs() < 1e-9);
        assert!((st.failures_left - 5.0).abs() < 1e-9);
        assert_eq!(st.verdict(), "ok");
        // 20 failed: overspent.
        let st = s.status(t(80, 100), t(1, 1), t(6, 6));
        assert!((st.budget_remaining + 1.0).abs() < 1e-9);
        assert_eq!(st.verdict(), "exhausted");
    }

    #[test]
    fn a_failure_rate_far_above_the_budget_is_a_fast_burn() {
        let s = slo("{ objective: 99% }").unwrap_or_else(|e| panic!("{e}"));
        // One of the last six hourly checks failed: burn 16.7 over 6h (> 6), 100 over 1h.
        let st = s.status(t(600, 601), t(0, 1), t(5, 6));
        assert!(st.burning_fast());
        // All recent checks pass: no burn, whatever the period says.
        let st = s.status(t(590, 601), t(1, 1), t(6, 6));
        assert!(!st.burning_fast());
        assert_eq!(st.burn_1h, Some(0.0));
        // No checks yet: nothing to say.
        let st = s.status(t(0, 0), t(0, 0), t(0, 0));
        assert_eq!((st.sli, st.burn_1h, st.verdict()), (None, None, "ok"));
    }
}
