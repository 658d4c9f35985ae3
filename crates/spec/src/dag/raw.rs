//! The DAG file as written: serde structs that mirror the YAML, strict about unknown keys.
//! `dag::load` turns these into the resolved model after checking what serde cannot.

use indexmap::IndexMap;
use serde::Deserialize;

use crate::duration::Duration;

use super::map_kinds::{ExportSpec, MapCount, ReturnSpec, Step};
use super::{Backoff, Deadline, Severity, TriggerRule};

/// Everything in a DAG file except `tasks` (which are read one by one, so one broken task
/// does not hide the problems of the others).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeader {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) owner: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) schedule: Option<String>,
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    #[serde(default)]
    pub(crate) start_date: Option<String>,
    #[serde(default)]
    pub(crate) end_date: Option<String>,
    #[serde(default)]
    pub(crate) catchup: bool,
    #[serde(default)]
    pub(crate) max_active_runs: Option<u32>,
    #[serde(default)]
    pub(crate) params: IndexMap<String, yaml_serde::Value>,
    #[serde(default)]
    pub(crate) defaults: RawDefaults,
    #[serde(default)]
    pub(crate) deadline: Option<Deadline>,
    #[serde(default)]
    pub(crate) limits: super::DagLimits,
    #[serde(default)]
    pub(crate) triggers: Vec<super::run_triggers::RawRunTrigger>,
    #[serde(default)]
    pub(crate) freshness: Option<super::Freshness>,
}

/// `defaults:` for every task of the DAG.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub(crate) retries: Option<u32>,
    pub(crate) retry_delay: Option<Duration>,
    pub(crate) retry_backoff: Option<Backoff>,
    pub(crate) max_retry_delay: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) pool: Option<String>,
}

/// One entry of `tasks:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) depends_on: Vec<String>,
    #[serde(default)]
    pub(crate) trigger_rule: TriggerRule,
    pub(crate) pool: Option<String>,
    pub(crate) retries: Option<u32>,
    pub(crate) retry_delay: Option<Duration>,
    pub(crate) retry_backoff: Option<Backoff>,
    pub(crate) max_retry_delay: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    #[serde(default)]
    pub(crate) deadline: Option<Deadline>,
    #[serde(default)]
    pub(crate) freshness: Option<super::Freshness>,
    // The kinds: exactly one must be present.
    pub(crate) export: Option<ExportSpec>,
    pub(crate) transform: Option<Vec<Step>>,
    #[serde(rename = "return")]
    pub(crate) return_: Option<ReturnSpec>,
    pub(crate) sql: Option<String>,
    pub(crate) check: Option<RawCheck>,
    pub(crate) command: Option<RawCommand>,
    pub(crate) noop: Option<RawNoop>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) sql: Option<String>,
    pub(crate) map: Option<MapCount>,
    pub(crate) between: Option<(Bound, Bound)>,
    pub(crate) min: Option<Bound>,
    pub(crate) max: Option<Bound>,
    #[serde(default)]
    pub(crate) severity: Severity,
    #[serde(default)]
    pub(crate) slo: Option<super::slo::Slo>,
}

/// A check's bound as written: a number, a percentage such as `2%` (then 0.02, shown as a
/// percentage again), or a template (`"{{ params.max_ratio }}"`) rendered when the check runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawThreshold")]
pub(crate) enum Bound {
    Fixed(Threshold),
    Template(String),
}

/// A fixed bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Threshold {
    pub(crate) value: f64,
    pub(crate) percent: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawThreshold {
    Number(f64),
    Text(String),
}

impl TryFrom<RawThreshold> for Bound {
    type Error = String;

    fn try_from(raw: RawThreshold) -> Result<Self, String> {
        match raw {
            RawThreshold::Number(value) => Ok(Self::Fixed(Threshold {
                value,
                percent: false,
            })),
            RawThreshold::Text(t) if crate::template::is_template(&t) => Ok(Self::Template(t)),
            RawThreshold::Text(t) => super::parse_threshold(&t)
                .map(|(value, percent)| Self::Fixed(Threshold { value, percent })),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommand {
    pub(crate) argv: Option<Vec<String>>,
    pub(crate) shell: Option<String>,
    #[serde(default)]
    pub(crate) env: IndexMap<String, String>,
    #[serde(default)]
    pub(crate) secrets: Vec<String>,
    pub(crate) workdir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNoop {
    pub(crate) sleep: Option<Duration>,
    #[serde(default)]
    pub(crate) fail: bool,
}
