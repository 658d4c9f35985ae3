//! Trigger rules: given the states of a task's upstream tasks, may it run now?

use super::TriggerRule;

/// Upstream states of one task instance, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamCounts {
    pub total: u32,
    pub success: u32,
    /// Failed or upstream_failed.
    pub failed: u32,
    pub skipped: u32,
}

impl UpstreamCounts {
    pub fn done(&self) -> u32 {
        self.success + self.failed + self.skipped
    }

    fn all_done(&self) -> bool {
        self.done() >= self.total
    }
}

/// What becomes of a pending task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not decidable yet: wait for more upstream tasks.
    Wait,
    /// Run it.
    Queue,
    /// It will not run; nothing failed.
    Skip,
    /// It will not run because something upstream failed.
    UpstreamFailed,
}

impl TriggerRule {
    /// Decide as early as the rule allows (as Airflow does): `all_success` marks a task
    /// upstream_failed as soon as one upstream task failed, `one_success` queues it as soon as
    /// one succeeded.
    pub fn decide(self, up: UpstreamCounts) -> Readiness {
        use Readiness::{Queue, Skip, UpstreamFailed, Wait};
        match self {
            TriggerRule::AllSuccess => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if up.skipped > 0 {
                    Skip
                } else if up.all_done() {
                    Queue
                } else {
                    Wait
                }
            }
            TriggerRule::AllFailed => {
                if up.success > 0 || up.skipped > 0 {
                    Skip
                } else if up.all_done() {
                    Queue
                } else {
                    Wait
                }
            }
            TriggerRule::AllDone => {
                if up.all_done() {
                    Queue
                } else {
                    Wait
                }
            }
            TriggerRule::OneSuccess => {
                if up.success > 0 || up.total == 0 {
                    Queue
                } else if up.all_done() {
                    if up.failed > 0 { UpstreamFailed } else { Skip }
                } else {
                    Wait
                }
            }
            TriggerRule::OneFailed => {
                if up.failed > 0 || up.total == 0 {
                    Queue
                } else if up.all_done() {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailed => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if up.all_done() {
                    Queue
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailedMinOneSuccess => {
                if up.failed > 0 {
                    UpstreamFailed
                } else if up.all_done() {
                    if up.success > 0 || up.total == 0 {
                        Queue
                    } else {
                        Skip
                    }
                } else {
                    Wait
                }
            }
            TriggerRule::Always => Queue,
        }
    }

    /// Every rule.
    pub const ALL: [TriggerRule; 8] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::Always,
    ];

    /// The rule written `s` (as in YAML and the database).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness::{Queue, Skip, UpstreamFailed, Wait};
    use super::*;

    fn up(total: u32, success: u32, failed: u32, skipped: u32) -> UpstreamCounts {
        UpstreamCounts {
            total,
            success,
            failed,
            skipped,
        }
    }

    #[test]
    fn each_rule_decides_like_airflow() {
        use TriggerRule::*;
        let cases = [
            (AllSuccess, up(0, 0, 0, 0), Queue),
            (AllSuccess, up(2, 1, 0, 0), Wait),
            (AllSuccess, up(2, 2, 0, 0), Queue),
            (AllSuccess, up(3, 1, 1, 0), UpstreamFailed),
            (AllSuccess, up(2, 1, 0, 1), Skip),
            (AllFailed, up(2, 0, 1, 0), Wait),
            (AllFailed, up(2, 0, 2, 0), Queue),
            (AllFailed, up(2, 1, 0, 0), Skip),
            (AllDone, up(2, 1, 0, 0), Wait),
            (AllDone, up(3, 1, 1, 1), Queue),
            (OneSuccess, up(3, 1, 0, 0), Queue),
            (OneSuccess, up(2, 0, 1, 0), Wait),
            (OneSuccess, up(2, 0, 2, 0), UpstreamFailed),
            (OneSuccess, up(2, 0, 0, 2), Skip),
            (OneFailed, up(3, 0, 1, 0), Queue),
            (OneFailed, up(2, 2, 0, 0), Skip),
            (NoneFailed, up(2, 1, 0, 1), Queue),
            (NoneFailed, up(2, 0, 1, 0), UpstreamFailed),
            (NoneFailedMinOneSuccess, up(2, 0, 0, 2), Skip),
            (NoneFailedMinOneSuccess, up(2, 1, 0, 1), Queue),
            (Always, up(2, 0, 0, 0), Queue),
        ];
        for (rule, counts, want) in cases {
            assert_eq!(rule.decide(counts), want, "{rule:?} {counts:?}");
        }
    }

    #[test]
    fn parse_round_trips_every_rule() {
        for rule in TriggerRule::ALL {
            assert_eq!(TriggerRule::parse(rule.as_str()), Some(rule));
            // The stored name is the YAML name.
            let from_yaml: Result<TriggerRule, _> =
                serde_json::from_value(serde_json::json!(rule.as_str()));
            assert_eq!(from_yaml.ok(), Some(rule));
        }
        assert_eq!(TriggerRule::parse("sometimes"), None);
    }
}
