//! A DAG: its schedule, parameters and tasks, resolved and validated.

mod dataset_links;
mod deadline;
mod load;
pub mod map_kinds;
mod params;
mod raw;
pub mod run_triggers;
mod size;
pub mod slo;
mod trigger;

pub use dataset_links::{
    DatasetLink, DatasetUses, LinkCheck, LocatedTrigger, check_links, stages_dataset,
};
pub use deadline::Deadline;
pub use load::{DAG_FILE_EXTENSIONS, check_unique_ids, load_dag};
pub use params::{Param, ParamType};
pub use run_triggers::{Batch, DatasetTrigger, Freshness, RunTrigger, WebhookTrigger};
pub use size::{DEFAULT_MAX_DAG_BYTES, check_dag_size};
pub use trigger::{Readiness, UpstreamCounts};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::graph::TaskGraph;
use crate::schedule::Schedule;

/// Defaults that apply when neither the task nor the DAG's `defaults:` say otherwise.
pub mod defaults {
    use crate::duration::Duration;

    pub const RETRIES: u32 = 0;
    pub const RETRY_DELAY: Duration = Duration::from_secs(60);
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3_600);
    pub const TIMEOUT: Duration = Duration::from_secs(6 * 3_600);
    pub const MAX_ACTIVE_RUNS: u32 = 1;
    pub const TIMEZONE: &str = "UTC";
}

/// A validated DAG.
#[derive(Debug, Clone)]
pub struct Dag {
    pub id: String,
    /// The file it was read from, as given to the loader.
    pub file: String,
    pub description: String,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// `None` for a DAG that only runs when triggered.
    pub schedule: Option<Schedule>,
    /// What else starts its runs: webhooks, other DAGs' datasets.
    pub triggers: Vec<RunTrigger>,
    /// How fresh its data must be: stale when no run succeeded for longer.
    pub freshness: Option<Freshness>,
    pub timezone: Tz,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub catchup: bool,
    pub max_active_runs: u32,
    /// When each run must have finished, counted from its scheduled time.
    pub deadline: Option<Deadline>,
    /// Backstops on what the DAG may use in each environment.
    pub limits: DagLimits,
    pub params: Vec<Param>,
    pub tasks: Vec<Task>,
    pub graph: TaskGraph,
}

impl Dag {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The webhook trigger called `name`.
    pub fn webhook(&self, name: &str) -> Option<&WebhookTrigger> {
        self.triggers.iter().find_map(|t| match t {
            RunTrigger::Webhook(w) if w.name == name => Some(w),
            _ => None,
        })
    }

    /// The datasets whose production starts a run of this DAG.
    pub fn dataset_triggers(&self) -> impl Iterator<Item = &DatasetTrigger> + '_ {
        self.triggers.iter().filter_map(|t| match t {
            RunTrigger::Dataset(d) => Some(d),
            RunTrigger::Webhook(_) => None,
        })
    }

    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// Tasks in topological order.
    pub fn tasks_in_order(&self) -> impl Iterator<Item = &Task> + '_ {
        self.graph
            .topological_order()
            .iter()
            .map(|&i| &self.tasks[i])
    }

    /// The schedule in plain words: "every day at 02:00, New York time" or "manual only".
    pub fn schedule_in_words(&self) -> String {
        match &self.schedule {
            Some(s) => s.describe(),
            None => "manual only (no schedule)".to_owned(),
        }
    }
}

/// `limits:` of a DAG, per environment it runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagLimits {
    /// MAP API calls its tasks may spend per MAP day (checked when a MAP task starts).
    #[serde(default)]
    pub map_api_calls_per_day: Option<u64>,
    /// Staged data its runs may hold at once (checked when a task stages a dataset).
    #[serde(default)]
    pub staged_bytes: Option<crate::bytes::ByteSize>,
}

/// One task of a DAG, with the DAG's defaults applied.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub description: Option<String>,
    pub depends_on: Vec<String>,
    pub trigger_rule: TriggerRule,
    pub pool: Option<String>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// When this task must have finished, counted from its run's scheduled time.
    pub deadline: Option<Deadline>,
    /// How fresh its dataset must be: stale when no try succeeded for longer.
    pub freshness: Option<Freshness>,
    pub kind: TaskKind,
}

/// What a task does.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    /// Read from the MAP into a staged dataset.
    Export(map_kinds::ExportSpec),
    /// Steps over staged datasets, compiled to SQL, into a staged dataset.
    Transform(Vec<map_kinds::Step>),
    /// Send a staged dataset back to the MAP.
    Return(map_kinds::ReturnSpec),
    /// SQL in the staging schema; `{{ output }}` names the task's own dataset.
    Sql {
        query: String,
    },
    Check(CheckSpec),
    Command(CommandSpec),
    Noop(NoopSpec),
}

impl TaskKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Export(_) => "export",
            TaskKind::Transform(_) => "transform",
            TaskKind::Return(_) => "return",
            TaskKind::Sql { .. } => "sql",
            TaskKind::Check(_) => "check",
            TaskKind::Command(_) => "command",
            TaskKind::Noop(_) => "noop",
        }
    }
}

/// The names of the task kinds, as keys in a task.
pub const TASK_KINDS: &[&str] = &[
    "export",
    "transform",
    "return",
    "sql",
    "check",
    "command",
    "noop",
];

/// A data check: a number from SQL (or the MAP) held against thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub source: CheckSource,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A bound written as a template (`min: "{{ params.low }}"`), rendered when the check
    /// runs and read as a number or a percentage ([`parse_threshold`]); `min` is then `None`.
    pub min_template: Option<String>,
    /// The same for `max`.
    pub max_template: Option<String>,
    /// A threshold was written as a percentage (`max: 2%`): values and thresholds are shown
    /// as percentages.
    pub percent: bool,
    pub severity: Severity,
    /// The check as a data SLO: the objective its passes are held to.
    pub slo: Option<slo::Slo>,
}

impl CheckSpec {
    /// `v` in the author's units: "56 %" for a check written in percentages, else `v`.
    pub fn show(&self, v: f64) -> String {
        if self.percent {
            percent_text(v)
        } else {
            format!("{v}")
        }
    }
}

/// A check's bound as text: a number (`0.02`) or a percentage (`2%`, read as 0.02); the value
/// and whether it was a percentage.
pub fn parse_threshold(text: &str) -> Result<(f64, bool), String> {
    let t = text.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| {
            if percent {
                (n / 100.0, true)
            } else {
                (n, false)
            }
        })
        .ok_or_else(|| {
            format!("`{t}` is not a threshold: write a number (0.02) or a percentage (2%)")
        })
}

/// A fraction as a percentage, at most two decimals: 0.56 → "56 %", 0.025 → "2.5 %".
pub fn percent_text(v: f64) -> String {
    let text = format!("{:.2}", v * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{} %", if text == "-0" { "0" } else { text })
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckSource {
    Sql(String),
    Map(map_kinds::MapCount),
}

/// A process to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: CommandProgram,
    pub env: IndexMap<String, String>,
    /// Secrets of the run's environment the process gets, by name (each as the variable of
    /// its upper-cased name).
    pub secrets: Vec<String>,
    pub workdir: Option<String>,
}

/// The worker's own variables a command task inherits; everything else of the worker's
/// environment stays out of the task.
pub const INHERITED_VARIABLES: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandProgram {
    /// Run directly, no shell.
    Argv(Vec<String>),
    /// Run with `sh -c`.
    Shell(String),
}

/// A task that does nothing (optionally for a while, or failing): for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoopSpec {
    pub sleep: Option<Duration>,
    pub fail: bool,
}

/// When a task may run, given its upstream tasks' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream task succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream task failed.
    AllFailed,
    /// Every upstream task finished, whatever its state.
    AllDone,
    /// At least one upstream task succeeded.
    OneSuccess,
    /// At least one upstream task failed.
    OneFailed,
    /// No upstream task failed (skipped ones are fine).
    NoneFailed,
    /// No upstream task failed and at least one succeeded.
    NoneFailedMinOneSuccess,
    /// Run regardless.
    Always,
}

impl TriggerRule {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::Always => "always",
        }
    }
}

/// How the delay between tries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time.
    Constant,
    /// delay × try.
    Linear,
    /// delay × 2^(try-1) (the default).
    #[default]
    Exponential,
}

/// Whether a failed check fails its task or only warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warn,
    #[default]
    Fail,
}

/// How often and how patiently a task is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before try `next_try` (2 for the first retry), capped at `max_delay`.
    pub fn delay_before(&self, next_try: u32) -> Duration {
        let n = u64::from(next_try.saturating_sub(1).max(1));
        let base = self.delay.as_secs();
        let secs = match self.backoff {
            Backoff::Constant => base,
            Backoff::Linear => base.saturating_mul(n),
            Backoff::Exponential => base.saturating_mul(1u64 << (n - 1).min(32)),
        };
        Duration::from_secs(secs.min(self.max_delay.as_secs()))
    }
}

/// Load many DAG files at once, in parallel, in input order. One file's problems never affect
/// another's result. Each input is (file name for diagnostics, source text).
pub fn load_dags(
    files: &[(String, String)],
) -> Vec<Result<Dag, Vec<crate::diagnostic::Diagnostic>>> {
    map_parallel(files, |(f, s)| load_dag(f, s))
}

/// `f` over `items` on every core (in chunks, in input order); sequential for small inputs.
pub fn map_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len().max(1));
    if workers <= 1 || items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_by_backoff_and_stop_at_the_cap() {
        let policy = |backoff| RetryPolicy {
            retries: 5,
            delay: Duration::from_secs(60),
            backoff,
            max_delay: Duration::from_secs(300),
        };
        let delays = |b| {
            (2..=6)
                .map(|t| policy(b).delay_before(t).as_secs())
                .collect::<Vec<_>>()
        };
        assert_eq!(delays(Backoff::Constant), vec![60, 60, 60, 60, 60]);
        assert_eq!(delays(Backoff::Linear), vec![60, 120, 180, 240, 300]);
        assert_eq!(delays(Backoff::Exponential), vec![60, 120, 240, 300, 300]);
    }

    #[test]
    fn command_tasks_name_their_secrets() {
        let src = "id: d\ntasks:\n  - id: push\n    command:\n      shell: push --token \"$CRM_TOKEN\"\n      secrets: [crm_token]\n";
        let dag = load_dag("dags/d.yaml", src).unwrap_or_else(|e| panic!("{e:?}"));
        let Some(TaskKind::Command(cmd)) = dag.task("push").map(|t| &t.kind) else {
            panic!("not a command task");
        };
        assert_eq!(cmd.secrets, vec!["crm_token".to_owned()]);
    }
}

#[cfg(test)]
mod percent_tests {
    use super::*;

    fn check(threshold: &str) -> Result<CheckSpec, String> {
        let src = format!(
            "id: d\ntasks:\n  - id: c\n    check:\n      sql: select 1\n      {threshold}\n"
        );
        let dag = load_dag("d.yaml", &src).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        match dag.task("c").map(|t| &t.kind) {
            Some(TaskKind::Check(c)) => Ok(c.clone()),
            _ => Err("no check".to_owned()),
        }
    }

    #[test]
    fn a_threshold_written_as_a_percentage_is_shown_as_one() {
        let c = check("max: 2%").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.max, Some(0.02));
        assert!(c.percent);
        assert_eq!(c.show(0.56), "56 %");
        assert_eq!(c.show(0.02), "2 %");
        let c = check("between: [\"0.5 %\", 25%]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.min, c.max), (Some(0.005), Some(0.25)));
        assert_eq!(c.show(0.005), "0.5 %");
        let c = check("max: 0.02").unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.percent);
        assert_eq!(c.show(0.56), "0.56");
        let e = check("max: two%").err().unwrap_or_default();
        assert!(
            e.contains("write a number (0.02) or a percentage (2%)"),
            "{e}"
        );
        assert_eq!(percent_text(0.123456), "12.35 %");
        assert_eq!(percent_text(0.0), "0 %");
    }
}
