//! What a run did, in words a marketer reads: one sentence made from its tasks' kinds and
//! counts ("290 leads read from Marketo · 289 leads updated in Marketo · 1 rejected ·
//! volume check: warning"), and the problems it carries when it succeeded anyway (warnings).

use drover_spec::numbers::thousands as count;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drover_spec::dag::map_kinds::{ExportSpec, ReturnObject};
use drover_spec::dag::{Dag, TaskKind};
use drover_spec::environment::{Environment, MapKind};
use drover_store::{ProblemFacts, ProblemKind, RunRow, RunState, Store, TaskOutcome, TaskState};
use serde::Serialize;
use uuid::Uuid;

use crate::{DagCache, EngineError};

/// A run's sentence and problems.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStory {
    /// "290 leads read from Marketo · 289 leads updated in Marketo · 1 rejected".
    pub sentence: String,
    /// What a succeeded run got wrong without failing; shown as warnings.
    pub problems: Vec<Problem>,
}

impl RunStory {
    /// "succeeded", "succeeded with 2 warnings", "failed", … as a run's state is said.
    pub fn outcome_words(&self, state: impl std::borrow::Borrow<RunState>) -> String {
        match (*state.borrow(), self.problems.len()) {
            (RunState::Success, 0) => "succeeded".to_owned(),
            (RunState::Success, 1) => "succeeded with 1 warning".to_owned(),
            (RunState::Success, n) => format!("succeeded with {n} warnings"),
            (RunState::Failed, _) => "failed".to_owned(),
            (RunState::Running, _) => "running".to_owned(),
            (RunState::Queued, _) => "queued".to_owned(),
        }
    }

    /// The CSS/API word of the outcome: `success`, `warning`, `failed`, `running`, `queued`.
    pub fn outcome(&self, state: impl std::borrow::Borrow<RunState>) -> &'static str {
        match *state.borrow() {
            RunState::Success if !self.problems.is_empty() => "warning",
            s => s.as_str(),
        }
    }
}

/// One problem: its kind, the task it is about, and what to tell people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub task: Option<String>,
    pub message: String,
}

/// The stories of `runs`, read in two queries whatever their number.
pub async fn run_stories(
    store: &Store,
    dags: &DagCache,
    environments: &[Environment],
    runs: &[RunRow],
) -> Result<HashMap<Uuid, RunStory>, EngineError> {
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let mut outcomes: HashMap<Uuid, Vec<TaskOutcome>> = HashMap::new();
    for o in store.task_outcomes(&ids).await? {
        outcomes.entry(o.run_id).or_default().push(o);
    }
    let mut problems: HashMap<Uuid, Vec<ProblemFacts>> = HashMap::new();
    for p in store.run_problems(&ids).await? {
        problems.entry(p.run_id).or_default().push(p);
    }
    let mut out = HashMap::with_capacity(runs.len());
    for run in runs {
        let dag = dags.get(run.version_id).await.ok();
        let map = environments
            .iter()
            .find(|e| e.name == run.environment)
            .map_or("the MAP", map_name);
        let tasks = outcomes.remove(&run.id).unwrap_or_default();
        let facts = problems.remove(&run.id).unwrap_or_default();
        let zone = dag.as_ref().map_or(Tz::UTC, |d| d.timezone);
        out.insert(
            run.id,
            RunStory {
                sentence: sentence(run, dag.as_deref(), map, &tasks),
                problems: facts
                    .iter()
                    .map(|f| problem(f, zone, dag.as_deref()))
                    .collect(),
            },
        );
    }
    Ok(out)
}

/// The product name people use for an environment's MAP.
pub fn map_name(env: &Environment) -> &'static str {
    match env.map.kind {
        MapKind::Marketo => "Marketo",
    }
}

/// "1 lead", "290 leads".
fn things(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

fn export_words(spec: &ExportSpec) -> (&'static str, &'static str) {
    match spec {
        ExportSpec::Leads(_) => ("lead", "leads"),
        ExportSpec::Activities(_) => ("activity", "activities"),
    }
}

fn return_words(object: &ReturnObject) -> (&'static str, &'static str) {
    match object {
        ReturnObject::Leads => ("lead", "leads"),
    }
}

/// The run's sentence: what its exports read, what its returns did to the records, how its
/// checks came out, and which tasks failed or did not run.
pub fn sentence(run: &RunRow, dag: Option<&Dag>, map: &str, tasks: &[TaskOutcome]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let done = tasks.iter().filter(|t| t.state.is_finished()).count();
    match run.state {
        RunState::Queued => parts.push("Waiting to start".to_owned()),
        RunState::Running => parts.push(format!("Running: {done} of {} tasks done", tasks.len())),
        _ => {}
    }
    let waiting: Vec<&str> = tasks
        .iter()
        .filter(|t| t.state == drover_store::TaskState::AwaitingApproval)
        .map(|t| t.task_id.as_str())
        .collect();
    if !waiting.is_empty() {
        parts.push(format!("{} waiting for approval", waiting.join(", ")));
    }
    let kind_of = |id: &str| dag.and_then(|d| d.task(id)).map(|t| &t.kind);
    let mut checks_passed = 0usize;
    let mut not_run = 0usize;
    let mut other_succeeded = 0usize;
    let mut said_data = false;
    for t in tasks {
        let m = &t.metrics;
        match (t.state, kind_of(&t.task_id)) {
            (TaskState::Success, Some(TaskKind::Export(spec))) => {
                let (one, many) = export_words(spec);
                let n = m.rows_out.unwrap_or(0);
                parts.push(format!("{} read from {map}", things(n, one, many)));
                said_data = true;
            }
            (TaskState::Success, Some(TaskKind::Return(spec))) => {
                let (one, many) = return_words(&spec.object);
                let sent = m.rows_in.unwrap_or(0);
                let accepted = m.rows_out.unwrap_or(0);
                let rejected = m.rows_rejected.unwrap_or(0);
                let unchanged = m.rows_unchanged.unwrap_or(0);
                said_data = true;
                if sent == 0 {
                    parts.push(format!("nothing to send to {map}"));
                    continue;
                }
                // A preview run's return planned and sent nothing: no "0 updated".
                if run.preview {
                    parts.push(format!(
                        "{} planned for {map}, nothing sent (preview)",
                        things(sent, one, many)
                    ));
                    if unchanged > 0 {
                        parts.push(format!("{} unchanged", things(unchanged, one, many)));
                    }
                    continue;
                }
                // Rows whose record held every value were not sent: no "0 updated" for them.
                let wrote_any = accepted > 0 || unchanged == 0;
                match m.rows_created {
                    Some(created) if wrote_any => {
                        let updated = accepted - created;
                        if updated > 0 || created == 0 {
                            parts.push(format!("{} updated in {map}", things(updated, one, many)));
                        }
                        if created > 0 {
                            parts.push(format!("{} created in {map}", things(created, one, many)));
                        }
                    }
                    None if wrote_any => {
                        parts.push(format!("{} sent to {map}", things(accepted, one, many)))
                    }
                    _ => {}
                }
                if unchanged > 0 {
                    parts.push(format!(
                        "{} unchanged, not sent",
                        things(unchanged, one, many)
                    ));
                }
                if rejected > 0 {
                    parts.push(format!("{} rejected", count(rejected)));
                }
            }
            (TaskState::Success, Some(TaskKind::Check(_))) => match &t.check {
                Some((false, _)) => parts.push(format!("{}: warning", check_name(&t.task_id))),
                _ => checks_passed += 1,
            },
            (TaskState::Failed, Some(TaskKind::Check(_))) if t.check.is_some() => {
                parts.push(format!("{}: failed", check_name(&t.task_id)))
            }
            (TaskState::Failed, _) => parts.push(format!("task {} failed", t.task_id)),
            (TaskState::UpstreamFailed, _) => not_run += 1,
            (TaskState::Success, _) => other_succeeded += 1,
            _ => {}
        }
    }
    if checks_passed > 0 {
        parts.push(match checks_passed {
            1 => "1 check passed".to_owned(),
            n => format!("{n} checks passed"),
        });
    }
    if not_run > 0 {
        parts.push(match not_run {
            1 => "1 task not run".to_owned(),
            n => format!("{n} tasks not run"),
        });
    }
    if !said_data && parts.is_empty() && other_succeeded > 0 {
        parts.push(match other_succeeded {
            1 => "1 task succeeded".to_owned(),
            n => format!("all {n} tasks succeeded"),
        });
    }
    if parts.is_empty() {
        parts.push(match run.state {
            RunState::Success => "Nothing to do".to_owned(),
            _ => "No task ran".to_owned(),
        });
    }
    let mut s = parts.join(" · ");
    if let Some(first) = s.get(..1) {
        let upper = first.to_uppercase();
        s.replace_range(..1, &upper);
    }
    s
}

/// A check as people say it: `volume_check` → "volume check", `missing_ratio` → "missing
/// ratio check".
fn check_name(task_id: &str) -> String {
    let words = task_id.replace(['_', '-'], " ");
    let words = words.trim();
    if words == "check" || words.ends_with(" check") || words.starts_with("check ") {
        words.to_owned()
    } else {
        format!("{words} check")
    }
}

/// A time in the DAG's zone: "Tue 1 Dec 06:00 New York".
fn local(t: DateTime<Utc>, zone: Tz) -> String {
    let city = zone
        .name()
        .rsplit('/')
        .next()
        .unwrap_or("UTC")
        .replace('_', " ");
    format!(
        "{} {city}",
        t.with_timezone(&zone).format("%a %-d %b %H:%M")
    )
}

/// A check's number as the author wrote it: "0.56", "12", "1,234.5".
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        count(v as i64)
    } else {
        format!("{}", (v * 1e4).round() / 1e4)
    }
}

fn bounds(min: Option<f64>, max: Option<f64>, shown: &dyn Fn(f64) -> String) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {} and {}", shown(a), shown(b)),
        (Some(a), None) => format!("at least {}", shown(a)),
        (None, Some(b)) => format!("at most {}", shown(b)),
        (None, None) => "within its bounds".to_owned(),
    }
}

/// A problem in words; a check's numbers in its author's units (`max: 2%` → "56 %").
pub fn problem(f: &ProblemFacts, zone: Tz, dag: Option<&Dag>) -> Problem {
    let task = f.task_id.clone();
    let percent = match task.as_deref().and_then(|t| dag.and_then(|d| d.task(t))) {
        Some(t) => matches!(&t.kind, TaskKind::Check(c) if c.percent),
        None => false,
    };
    let shown = |v: f64| {
        if percent {
            drover_spec::dag::percent_text(v)
        } else {
            number(v)
        }
    };
    let message = match f.kind {
        ProblemKind::CheckWarning => format!(
            "check `{}` warned: {} is not {}",
            task.as_deref().unwrap_or("?"),
            f.value.map_or_else(|| "no value".to_owned(), shown),
            bounds(f.min, f.max, &shown)
        ),
        ProblemKind::RejectedRows => {
            let n = f.count.unwrap_or(0);
            format!(
                "{} of the records `{}` sent {} rejected",
                count(n),
                task.as_deref().unwrap_or("?"),
                if n == 1 { "was" } else { "were" }
            )
        }
        ProblemKind::DeadlineMissed => {
            let by = f.at.map(|t| local(t, zone)).unwrap_or_default();
            match &task {
                Some(t) => format!("task `{t}` had not succeeded by its deadline ({by})"),
                None => format!("the run had not succeeded by its deadline ({by})"),
            }
        }
        ProblemKind::PartialInterval => format!(
            "the run started before its data interval ended ({}): it covers only the data up to {}",
            f.at.map(|t| local(t, zone)).unwrap_or_default(),
            f.since.map(|t| local(t, zone)).unwrap_or_default()
        ),
        ProblemKind::RevertConflict => format!(
            "the revert of `{}` skipped {} changed since the return wrote them",
            task.as_deref().unwrap_or("?"),
            things(f.count.unwrap_or(0), "record", "records")
        ),
    };
    Problem {
        kind: f.kind,
        task,
        message,
    }
}

#[cfg(test)]
mod tests {
    use drover_store::TryMetrics;

    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-4_200), "-4,200");
        assert_eq!(things(1, "lead", "leads"), "1 lead");
        assert_eq!(things(290, "lead", "leads"), "290 leads");
        assert_eq!(number(0.56), "0.56");
        assert_eq!(number(2.0), "2");
        assert_eq!(bounds(None, Some(0.02), &number), "at most 0.02");
        assert_eq!(
            bounds(None, Some(0.02), &drover_spec::dag::percent_text),
            "at most 2 %"
        );
        assert_eq!(check_name("volume_check"), "volume check");
        assert_eq!(check_name("missing_ratio"), "missing ratio check");
        assert_eq!(check_name("check_dupes"), "check dupes");
    }

    const DAG: &str = "id: scoring\ntasks:\n  - id: export_leads\n    export: { object: leads, fields: [id, email, leadScore], filter: { updated_at: { since: \"2026-01-01T00:00:00Z\", until: \"2026-01-02T00:00:00Z\" } } }\n  - id: score\n    depends_on: [export_leads]\n    sql: \"create table {{ output }} as select * from {{ input.export_leads }}\"\n  - id: push\n    depends_on: [score]\n    return: { object: leads, lookup: email, fields: [leadScore] }\n  - id: volume_check\n    depends_on: [export_leads]\n    check: { sql: \"select count(*) from {{ input.export_leads }}\", min: 1, severity: warn }\n  - id: rows_check\n    depends_on: [export_leads]\n    check: { sql: \"select 1\", min: 1 }\n";

    fn run(state: RunState) -> RunRow {
        let t = Utc::now();
        RunRow {
            id: Uuid::nil(),
            dag_id: "scoring".into(),
            environment: "prod".into(),
            version_id: 1,
            run_type: drover_store::RunType::Scheduled,
            logical_date: t,
            interval_start: t,
            interval_end: t,
            state,
            params: serde_json::json!({}),
            triggered_by: None,
            commit_sha: None,
            created_at: t,
            started_at: Some(t),
            finished_at: Some(t),
            deadline_at: None,
            deadline_state: None,
            preview: false,
        }
    }

    fn task(id: &str, state: TaskState, m: TryMetrics, check: Option<(bool, &str)>) -> TaskOutcome {
        TaskOutcome {
            run_id: Uuid::nil(),
            task_id: id.into(),
            state,
            metrics: m,
            check: check.map(|(p, s)| (p, s.to_owned())),
        }
    }

    fn rows(rows_in: i64, rows_out: i64, rejected: i64, created: Option<i64>) -> TryMetrics {
        TryMetrics {
            rows_in: Some(rows_in),
            rows_out: Some(rows_out),
            rows_rejected: Some(rejected),
            rows_created: created,
            ..TryMetrics::default()
        }
    }

    #[test]
    fn a_run_is_told_from_its_tasks_kinds_and_counts() {
        let dag =
            drover_spec::dag::load_dag("scoring.yaml", DAG).unwrap_or_else(|e| panic!("{e:?}"));
        let ok = TaskState::Success;
        let tasks = vec![
            task("export_leads", ok, rows(1_290, 1_290, 0, None), None),
            task("score", ok, rows(1_290, 1_290, 0, None), None),
            task("push", ok, rows(1_290, 1_289, 1, Some(4)), None),
            task(
                "volume_check",
                ok,
                TryMetrics::default(),
                Some((false, "warn")),
            ),
            task(
                "rows_check",
                ok,
                TryMetrics::default(),
                Some((true, "fail")),
            ),
        ];
        assert_eq!(
            sentence(&run(RunState::Success), Some(&dag), "Marketo", &tasks),
            "1,290 leads read from Marketo · 1,285 leads updated in Marketo · 4 leads created in Marketo · 1 rejected · volume check: warning · 1 check passed"
        );
        // Records that held every value are said apart, and never as "0 updated".
        let mut same = rows(1_290, 0, 0, Some(0));
        same.rows_unchanged = Some(1_290);
        let mut some = rows(1_290, 90, 0, Some(0));
        some.rows_unchanged = Some(1_200);
        assert_eq!(
            sentence(
                &run(RunState::Success),
                Some(&dag),
                "Marketo",
                &[task("push", ok, same, None), task("push", ok, some, None)]
            ),
            "1,290 leads unchanged, not sent · 90 leads updated in Marketo · 1,200 leads unchanged, not sent"
        );
        // A preview run's return says what it planned, never "0 updated".
        let mut planned = rows(1_290, 0, 0, Some(0));
        planned.rows_unchanged = Some(90);
        let mut preview = run(RunState::Success);
        preview.preview = true;
        assert_eq!(
            sentence(
                &preview,
                Some(&dag),
                "Marketo",
                &[task("push", ok, planned, None)]
            ),
            "1,290 leads planned for Marketo, nothing sent (preview) · 90 leads unchanged"
        );
        // A rerun that sent nothing says so; a failed export and what it stopped are named.
        let empty = vec![
            task("export_leads", ok, rows(0, 0, 0, None), None),
            task("push", ok, rows(0, 0, 0, Some(0)), None),
        ];
        assert_eq!(
            sentence(&run(RunState::Success), Some(&dag), "Marketo", &empty),
            "0 leads read from Marketo · nothing to send to Marketo"
        );
        let failed = vec![
            task(
                "export_leads",
                TaskState::Failed,
                TryMetrics::default(),
                None,
            ),
            task(
                "score",
                TaskState::UpstreamFailed,
                TryMetrics::default(),
                None,
            ),
            task(
                "push",
                TaskState::UpstreamFailed,
                TryMetrics::default(),
                None,
            ),
            task(
                "rows_check",
                TaskState::Failed,
                TryMetrics::default(),
                Some((false, "fail")),
            ),
        ];
        assert_eq!(
            sentence(&run(RunState::Failed), Some(&dag), "Marketo", &failed),
            "Task export_leads failed · rows check: failed · 2 tasks not run"
        );
        let running = vec![
            task("export_leads", ok, rows(3, 3, 0, None), None),
            task("score", TaskState::Running, TryMetrics::default(), None),
        ];
        assert_eq!(
            sentence(&run(RunState::Running), Some(&dag), "Marketo", &running),
            "Running: 1 of 2 tasks done · 3 leads read from Marketo"
        );
        let waiting = vec![
            task("export_leads", ok, rows(3, 3, 0, None), None),
            task(
                "push",
                TaskState::AwaitingApproval,
                TryMetrics::default(),
                None,
            ),
        ];
        assert_eq!(
            sentence(&run(RunState::Running), Some(&dag), "Marketo", &waiting),
            "Running: 1 of 2 tasks done · push waiting for approval · 3 leads read from Marketo"
        );
        // Without its DAG (a version that cannot be read) the sentence still says something.
        assert_eq!(
            sentence(&run(RunState::Success), None, "Marketo", &tasks[..1]),
            "1 task succeeded"
        );
    }

    #[test]
    fn times_are_said_in_the_dags_zone() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T11:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            local(t, chrono_tz::America::New_York),
            "Tue 1 Dec 06:00 New York"
        );
        assert_eq!(local(t, Tz::UTC), "Tue 1 Dec 11:00 UTC");
    }
}
