//! Reading a DAG file: YAML → raw structs → checks → [`Dag`], with every problem reported at
//! once as a located [`Diagnostic`].

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

mod map_checks;
mod run_triggers;

use super::params::parse_param;
use super::raw::{RawCheck, RawCommand, RawDefaults, RawHeader, RawTask};
use super::{
    CheckSource, CheckSpec, CommandProgram, CommandSpec, Dag, Deadline, NoopSpec, Param,
    RetryPolicy, TASK_KINDS, Task, TaskKind, defaults,
};
use crate::diagnostic::{Diagnostic, Position, SourceLines, sort_and_cap};
use crate::duration::Duration;
use crate::graph::TaskGraph;
use crate::schedule::{CronExpr, Schedule};
use crate::suggest::{Suggester, did_you_mean};
use crate::template;
use crate::yaml::{Positions, StructuralError, from_section, parse_document};

/// File endings read as DAG files.
pub const DAG_FILE_EXTENSIONS: &[&str] = &["yaml", "yml"];

/// Collects diagnostics for one file; positions and lines are indexed only once something is
/// wrong, and once: the cost of a file is its size plus its number of problems.
struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    positions: OnceCell<Positions>,
    lines: OnceCell<SourceLines<'a>>,
    /// "Did you mean" within a budget for the whole file.
    hints: Suggester,
    diags: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a str, source: &'a str) -> Self {
        Self {
            file,
            source,
            positions: OnceCell::new(),
            lines: OnceCell::new(),
            hints: Suggester::default(),
            diags: Vec::new(),
        }
    }

    fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| Positions::index(self.source))
    }

    fn push(&mut self, pos: Position, message: String) {
        let source = self.source;
        let line = self
            .lines
            .get_or_init(|| SourceLines::index(source))
            .line(pos.line);
        let d = Diagnostic::new(self.file, pos, message).with_snippet(line);
        self.diags.push(d);
    }

    /// `, did you mean `x`?` or nothing (within the file's budget).
    fn hint<'c>(&mut self, input: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
        self.hints.did_you_mean(input, candidates)
    }

    /// At the key of `path` (`retries:` in `retries: 3`), or its value when it has no key.
    fn at_key(&mut self, path: &str, message: String) {
        let pos = self.positions().locate(path).entry();
        self.push(pos, message);
    }

    /// At the value of `path`.
    fn at_value(&mut self, path: &str, message: String) {
        let pos = self.positions().locate(path).value;
        self.push(pos, message);
    }

    /// `offset` characters into the text of the value at `path`.
    fn at_text(&mut self, path: &str, offset: usize, message: String) {
        let pos = self.positions().value_text_at(path, offset);
        self.push(pos, message);
    }

    /// At byte `offset` of `text`, the template text of the value at `path`: its own line and
    /// column where the file shows the text as written (one line, or a `|` block).
    fn at_template(&mut self, path: &str, text: &str, offset: usize, message: String) {
        let offset = offset.min(text.len());
        let line = text[..offset].matches('\n').count();
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..offset].chars().count();
        let n = self.positions().locate(path);
        if line == 0 && !n.block {
            self.at_text(path, column, message);
            return;
        }
        let template_line = text[line_start..].lines().next().unwrap_or_default();
        // A block's text starts on the line of its indicator's value position or the next.
        let found = if n.block {
            (n.value.line + line..=n.value.line + line + 1).find_map(|number| {
                let l = self.source.lines().nth(number.checked_sub(1)?)?;
                let b = l
                    .find(template_line)
                    .filter(|_| !template_line.trim().is_empty())?;
                Some((number, l[..b].chars().count()))
            })
        } else {
            None
        };
        match found {
            Some((number, indent)) => {
                self.push(Position::new(number, indent + column + 1), message)
            }
            None => self.at_value(
                path,
                format!("{message} (line {} of the template)", line + 1),
            ),
        }
    }

    fn structural(&mut self, e: &StructuralError) {
        let pos = e.position(self.positions());
        self.push(pos, e.message.clone());
    }

    fn line_of(&self, path: &str) -> usize {
        self.positions().locate(path).entry().line
    }
}

fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 100
}

const IDENTIFIER_RULE: &str =
    "start with a letter and use only letters, digits, `_` and `-` (at most 100 characters)";

/// Parse and validate one DAG file. `file` is the path shown in diagnostics; the DAG id must
/// equal its file name without the extension.
pub fn load_dag(file: &str, source: &str) -> Result<Dag, Vec<Diagnostic>> {
    let mut c = Checker::new(file, source);
    let doc = parse_document(file, source).map_err(|d| vec![d])?;
    let yaml_serde::Value::Mapping(mut map) = doc else {
        c.push(
            Position::START,
            "a DAG file must be a mapping with at least `id` and `tasks`".to_owned(),
        );
        return Err(c.diags);
    };
    let tasks_value = map.remove("tasks");
    let header = match from_section::<RawHeader>("", yaml_serde::Value::Mapping(map)) {
        Ok(h) => Some(h),
        Err(e) => {
            c.structural(&e);
            None
        }
    };
    let raw_tasks = read_tasks(&mut c, tasks_value);
    let header = header.and_then(|h| check_header(&mut c, h));
    let tasks = check_tasks(&mut c, &raw_tasks, header.as_ref());
    match (header, tasks) {
        (Some(h), Some((tasks, graph))) if c.diags.is_empty() => Ok(Dag {
            id: h.id,
            file: file.to_owned(),
            description: h.description,
            owner: h.owner,
            tags: h.tags,
            schedule: h.schedule,
            triggers: h.triggers,
            freshness: h.freshness,
            timezone: h.timezone,
            start_date: h.start_date,
            end_date: h.end_date,
            catchup: h.catchup,
            max_active_runs: h.max_active_runs,
            deadline: h.deadline,
            limits: h.limits,
            params: h.params,
            tasks,
            graph,
        }),
        _ => {
            sort_and_cap(&mut c.diags);
            Err(c.diags)
        }
    }
}

fn read_tasks(c: &mut Checker<'_>, value: Option<yaml_serde::Value>) -> Vec<Option<RawTask>> {
    match value {
        None => {
            c.push(Position::START, "missing required key `tasks`".to_owned());
            Vec::new()
        }
        Some(yaml_serde::Value::Sequence(items)) => {
            if items.is_empty() {
                c.at_key("tasks", "a DAG needs at least one task".to_owned());
            }
            items
                .into_iter()
                .enumerate()
                .map(
                    |(i, item)| match from_section::<RawTask>(&format!("tasks[{i}]"), item) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            c.structural(&e);
                            None
                        }
                    },
                )
                .collect()
        }
        Some(_) => {
            c.at_value(
                "tasks",
                "`tasks` must be a list of tasks (`- id: …`)".to_owned(),
            );
            Vec::new()
        }
    }
}

/// The header, checked and resolved.
struct Header {
    id: String,
    description: String,
    owner: Option<String>,
    tags: Vec<String>,
    schedule: Option<Schedule>,
    triggers: Vec<super::RunTrigger>,
    freshness: Option<super::Freshness>,
    timezone: Tz,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    catchup: bool,
    max_active_runs: u32,
    deadline: Option<Deadline>,
    limits: super::DagLimits,
    params: Vec<Param>,
    defaults: RawDefaults,
}

fn check_header(c: &mut Checker<'_>, h: RawHeader) -> Option<Header> {
    let before = c.diags.len();
    if !valid_identifier(&h.id) {
        c.at_value(
            "id",
            format!("invalid DAG id `{}`: ids must {IDENTIFIER_RULE}", h.id),
        );
    }
    let file_name = Path::new(c.file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(c.file);
    let stem = Path::new(c.file)
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or(c.file);
    if h.id != stem {
        c.at_value(
            "id",
            format!(
                "DAG id `{}` differs from its file name `{file_name}`: the id must be the file name without `.yaml` (rename one of them)",
                h.id
            ),
        );
    }
    let timezone = match h.timezone.as_deref() {
        None => Some(Tz::UTC),
        Some(name) => match name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let hint = did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
                c.at_value(
                    "timezone",
                    format!("unknown time zone `{name}`{hint} (use an IANA name such as America/New_York)"),
                );
                None
            }
        },
    };
    let cron = match h.schedule.as_deref().map(str::trim) {
        None | Some("" | "none" | "None" | "null") => None,
        Some(expr) => match CronExpr::parse(expr) {
            Ok(cron) => Some(cron),
            Err(e) => {
                let offset = h
                    .schedule
                    .as_deref()
                    .map(|raw| raw.len() - raw.trim_start().len())
                    .unwrap_or(0)
                    + e.span().start;
                c.at_text(
                    "schedule",
                    offset,
                    format!("invalid schedule `{expr}`: {}", e.message()),
                );
                None
            }
        },
    };
    let tz = timezone.unwrap_or(Tz::UTC);
    let start_date = h
        .start_date
        .as_deref()
        .and_then(|s| parse_date(c, "start_date", s, tz));
    let end_date = h
        .end_date
        .as_deref()
        .and_then(|s| parse_date(c, "end_date", s, tz));
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e <= s
    {
        c.at_value(
            "end_date",
            "`end_date` must be after `start_date`".to_owned(),
        );
    }
    if h.catchup && start_date.is_none() && h.start_date.is_none() {
        c.at_key(
            "catchup",
            "`catchup: true` needs a `start_date` to catch up from".to_owned(),
        );
    }
    if h.catchup && cron.is_none() && h.schedule.is_some() && c.diags.len() == before {
        c.at_key("catchup", "`catchup: true` needs a schedule".to_owned());
    }
    let max_active_runs = h.max_active_runs.unwrap_or(defaults::MAX_ACTIVE_RUNS);
    if max_active_runs == 0 {
        c.at_value(
            "max_active_runs",
            "`max_active_runs` must be at least 1".to_owned(),
        );
    }
    for (i, tag) in h.tags.iter().enumerate() {
        if tag.trim().is_empty() {
            c.at_value(&format!("tags[{i}]"), "tags must not be empty".to_owned());
        }
    }
    if let Some(pool) = &h.defaults.pool {
        check_pool(c, "defaults.pool", pool);
    }
    let mut params = Vec::with_capacity(h.params.len());
    for (name, value) in &h.params {
        let path = format!("params.{name}");
        if !valid_identifier(name) {
            c.at_key(
                &path,
                format!("invalid parameter name `{name}`: names must {IDENTIFIER_RULE}"),
            );
            continue;
        }
        match parse_param(name, value) {
            Ok(p) => params.push(p),
            Err((sub, message)) => match sub {
                Some(sub) => c.at_value(&format!("{path}.{sub}"), message),
                None => c.at_value(&path, message),
            },
        }
    }
    let schedule = cron.map(|cron| Schedule::new(cron, tz));
    let triggers = run_triggers::check(c, &h.id, &h.triggers);
    if let Some(f) = &h.freshness {
        run_triggers::check_freshness(c, "freshness", f);
    }
    if c.diags.len() > before {
        return None;
    }
    Some(Header {
        id: h.id,
        description: h.description,
        owner: h.owner,
        tags: h.tags,
        schedule,
        triggers,
        freshness: h.freshness,
        timezone: tz,
        start_date,
        end_date,
        catchup: h.catchup,
        max_active_runs,
        deadline: h.deadline,
        limits: h.limits,
        params,
        defaults: h.defaults,
    })
}

/// `2026-01-01` (midnight in the DAG's time zone) or an RFC 3339 instant.
fn parse_date(c: &mut Checker<'_>, path: &str, text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0)?;
        // Midnight may not exist on a DST day in some zones: take the first instant after it.
        let local = tz.from_local_datetime(&midnight).earliest().or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        });
        return local.map(|l| l.with_timezone(&Utc));
    }
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            c.at_value(
                path,
                format!(
                    "invalid date `{text}`: expected YYYY-MM-DD (midnight in the DAG's time zone) or an RFC 3339 time such as 2026-01-01T02:00:00Z"
                ),
            );
            None
        }
    }
}

fn check_pool(c: &mut Checker<'_>, path: &str, pool: &str) {
    if !valid_identifier(pool) {
        c.at_value(
            path,
            format!("invalid pool name `{pool}`: names must {IDENTIFIER_RULE}"),
        );
    }
}

fn check_tasks(
    c: &mut Checker<'_>,
    raw: &[Option<RawTask>],
    header: Option<&Header>,
) -> Option<(Vec<Task>, TaskGraph)> {
    let before = c.diags.len();
    // Ids first: dependencies refer to them.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let Some(t) = t else { continue };
        let path = format!("tasks[{i}].id");
        if !valid_identifier(&t.id) {
            c.at_value(
                &path,
                format!("invalid task id `{}`: ids must {IDENTIFIER_RULE}", t.id),
            );
        }
        if let Some(&first) = index.get(t.id.as_str()) {
            let line = c.line_of(&format!("tasks[{first}]"));
            c.at_value(
                &path,
                format!("duplicate task id `{}` (already used at line {line})", t.id),
            );
        } else {
            index.insert(&t.id, i);
        }
    }
    let ids: Vec<&str> = index.keys().copied().collect();
    let mut upstreams: Vec<Vec<usize>> = vec![Vec::new(); raw.len()];
    for (i, t) in raw.iter().enumerate() {
        let Some(t) = t else { continue };
        let mut listed = std::collections::HashSet::with_capacity(t.depends_on.len());
        for (j, dep) in t.depends_on.iter().enumerate() {
            let path = format!("tasks[{i}].depends_on[{j}]");
            match index.get(dep.as_str()) {
                None => {
                    let hint = c.hint(dep, ids.iter().copied());
                    c.at_value(
                        &path,
                        format!(
                            "task `{}` depends on `{dep}`, which is not a task of this DAG{hint}",
                            t.id,
                        ),
                    );
                }
                Some(&u) if u == i => {
                    c.at_value(&path, format!("task `{}` depends on itself", t.id));
                }
                Some(&u) if !listed.insert(u) => {
                    c.at_value(
                        &path,
                        format!("task `{}` lists `{dep}` twice in `depends_on`", t.id),
                    );
                }
                Some(&u) => upstreams[i].push(u),
            }
        }
    }
    let graph = match TaskGraph::build(&upstreams) {
        Ok(g) => Some(g),
        Err(cycle) => {
            report_cycle(c, raw, &cycle.0);
            None
        }
    };
    let mut tasks = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let Some(t) = t else { continue };
        let scope = TemplateScope {
            task: &t.id,
            index: i,
            graph: graph.as_ref(),
            raw,
            ancestors: OnceCell::new(),
            all_tasks: &ids,
            params: header.map(|h| h.params.as_slice()),
        };
        if let Some(task) = check_task(c, i, t, header.map(|h| &h.defaults), &scope) {
            tasks.push(task);
        }
    }
    if c.diags.len() > before || tasks.len() != raw.len() {
        return None;
    }
    graph.map(|g| (tasks, g))
}

fn report_cycle(c: &mut Checker<'_>, raw: &[Option<RawTask>], cycle: &[usize]) {
    let name = |i: usize| raw[i].as_ref().map(|t| t.id.as_str()).unwrap_or("?");
    let spelled: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
    let message = format!("dependency cycle: {}", spelled.join(" → "));
    // Point at the dependency that closes the cycle: the first task's entry for the last one.
    let (Some(&first), Some(&before_first)) = (cycle.first(), cycle.iter().rev().nth(1)) else {
        return;
    };
    let entry = raw[first]
        .as_ref()
        .and_then(|t| t.depends_on.iter().position(|d| d == name(before_first)));
    match entry {
        Some(j) => c.at_value(&format!("tasks[{first}].depends_on[{j}]"), message),
        None => c.at_value(&format!("tasks[{first}]"), message),
    }
}

/// What a task's templates may refer to.
struct TemplateScope<'a> {
    task: &'a str,
    index: usize,
    /// `None` when the graph is broken: upstream checks are skipped.
    graph: Option<&'a TaskGraph>,
    raw: &'a [Option<RawTask>],
    /// Upstream tasks, direct or not: found only for a task whose templates read another's
    /// rows (every task's ancestors would cost tasks × depth).
    ancestors: OnceCell<Vec<&'a str>>,
    all_tasks: &'a [&'a str],
    /// Declared parameters (`None` when the header is broken: skip the check).
    params: Option<&'a [Param]>,
}

impl<'a> TemplateScope<'a> {
    /// Upstream tasks, direct or not; `None` when the graph is broken.
    fn ancestors(&self) -> Option<&[&'a str]> {
        let g = self.graph?;
        Some(self.ancestors.get_or_init(|| {
            g.ancestors(self.index)
                .into_iter()
                .filter_map(|a| self.raw[a].as_ref().map(|t| t.id.as_str()))
                .collect()
        }))
    }
}

fn check_task(
    c: &mut Checker<'_>,
    i: usize,
    t: &RawTask,
    dag_defaults: Option<&RawDefaults>,
    scope: &TemplateScope<'_>,
) -> Option<Task> {
    let before = c.diags.len();
    let base = format!("tasks[{i}]");
    let present: Vec<&str> = [
        t.export.is_some(),
        t.transform.is_some(),
        t.return_.is_some(),
        t.sql.is_some(),
        t.check.is_some(),
        t.command.is_some(),
        t.noop.is_some(),
    ]
    .iter()
    .zip(TASK_KINDS)
    .filter(|(p, _)| **p)
    .map(|(_, k)| *k)
    .collect();
    match present.as_slice() {
        [] => c.at_value(
            &base,
            format!(
                "task `{}` says nothing to do: give it exactly one of {}",
                t.id,
                TASK_KINDS.join(", ")
            ),
        ),
        [_] => {}
        [_, second, ..] => c.at_key(
            &format!("{base}.{second}"),
            format!(
                "task `{}` has more than one kind ({}): give it exactly one",
                t.id,
                present.join(", ")
            ),
        ),
    }
    if let Some(pool) = &t.pool {
        check_pool(c, &format!("{base}.pool"), pool);
    }
    let kind = resolve_kind(c, &base, t, scope);
    if let Some(kind) = &kind {
        for (field, text) in template_fields(kind) {
            let path = format!("{base}.{field}");
            check_template(c, &path, &text, scope);
            if is_sql_field(&field) {
                check_sql_quotes(c, &path, &text, scope.task);
            } else if field == "command.shell" {
                check_shell_places(c, &path, &text, scope.task);
            }
        }
    }
    let d = dag_defaults;
    let pick = |task: Option<Duration>, dag: Option<Option<Duration>>, fallback: Duration| {
        task.or(dag.flatten()).unwrap_or(fallback)
    };
    let retry = RetryPolicy {
        retries: t
            .retries
            .or(d.and_then(|d| d.retries))
            .unwrap_or(defaults::RETRIES),
        delay: pick(
            t.retry_delay,
            d.map(|d| d.retry_delay),
            defaults::RETRY_DELAY,
        ),
        backoff: t
            .retry_backoff
            .or(d.and_then(|d| d.retry_backoff))
            .unwrap_or_default(),
        max_delay: pick(
            t.max_retry_delay,
            d.map(|d| d.max_retry_delay),
            defaults::MAX_RETRY_DELAY,
        ),
    };
    let timeout = pick(t.timeout, d.map(|d| d.timeout), defaults::TIMEOUT);
    if let Some(f) = &t.freshness {
        run_triggers::check_freshness(c, &format!("{base}.freshness"), f);
    }
    if timeout.as_millis() < 1000 {
        c.at_value(
            &format!("{base}.timeout"),
            "`timeout` must be at least 1s".to_owned(),
        );
    }
    if c.diags.len() > before {
        return None;
    }
    Some(Task {
        id: t.id.clone(),
        description: t.description.clone(),
        depends_on: t.depends_on.clone(),
        trigger_rule: t.trigger_rule,
        pool: t.pool.clone().or_else(|| d.and_then(|d| d.pool.clone())),
        retry,
        timeout,
        deadline: t.deadline,
        freshness: t.freshness,
        kind: kind?,
    })
}

fn resolve_kind(
    c: &mut Checker<'_>,
    base: &str,
    t: &RawTask,
    scope: &TemplateScope<'_>,
) -> Option<TaskKind> {
    if let Some(export) = &t.export {
        map_checks::export(c, &format!("{base}.export"), export);
        return Some(TaskKind::Export(export.clone()));
    }
    if let Some(steps) = &t.transform {
        map_checks::transform(c, &format!("{base}.transform"), steps, &t.depends_on, scope);
        return Some(TaskKind::Transform(steps.clone()));
    }
    if let Some(ret) = &t.return_ {
        map_checks::return_(c, &format!("{base}.return"), ret, &t.depends_on, scope);
        return Some(TaskKind::Return(ret.clone()));
    }
    if let Some(q) = &t.sql {
        if q.trim().is_empty() {
            c.at_value(&format!("{base}.sql"), "`sql` must not be empty".to_owned());
        }
        return Some(TaskKind::Sql { query: q.clone() });
    }
    if let Some(check) = &t.check {
        return resolve_check(c, &format!("{base}.check"), check).map(TaskKind::Check);
    }
    if let Some(cmd) = &t.command {
        return resolve_command(c, &format!("{base}.command"), cmd).map(TaskKind::Command);
    }
    t.noop.as_ref().map(|n| {
        TaskKind::Noop(NoopSpec {
            sleep: n.sleep,
            fail: n.fail,
        })
    })
}

fn resolve_check(c: &mut Checker<'_>, path: &str, k: &RawCheck) -> Option<CheckSpec> {
    let source = match (&k.sql, &k.map) {
        (Some(sql), None) => CheckSource::Sql(sql.clone()),
        (None, Some(map)) => {
            map_checks::lead_filter(c, &format!("{path}.map.filter"), &map.filter);
            CheckSource::Map(map.clone())
        }
        _ => {
            c.at_value(
                path,
                "a check needs exactly one of `sql` or `map` (where its value comes from)"
                    .to_owned(),
            );
            return None;
        }
    };
    let written: Vec<&super::raw::Bound> = [
        k.between.as_ref().map(|b| &b.0),
        k.between.as_ref().map(|b| &b.1),
        k.min.as_ref(),
        k.max.as_ref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A templated bound shows as a percentage when it is written as one (`"{{ … }}%"`).
    let percent = written.iter().any(|b| match b {
        super::raw::Bound::Fixed(t) => t.percent,
        super::raw::Bound::Template(t) => t.trim_end().ends_with('%'),
    });
    let (min, max) = match (&k.between, &k.min, &k.max) {
        (Some((lo, hi)), None, None) => {
            if let (Some(l), Some(h)) = (fixed(lo), fixed(hi))
                && l > h
            {
                c.at_value(
                    &format!("{path}.between"),
                    format!("`between: [{l}, {h}]` is empty: the low bound comes first"),
                );
            }
            (Some(lo), Some(hi))
        }
        (None, None, None) => {
            c.at_value(
                path,
                "a check needs a threshold: `between: [low, high]`, `min`, or `max`".to_owned(),
            );
            return None;
        }
        (Some(_), _, _) => {
            c.at_key(
                &format!("{path}.between"),
                "give either `between` or `min`/`max`, not both".to_owned(),
            );
            return None;
        }
        (None, min, max) => {
            if let (Some(lo), Some(hi)) =
                (min.as_ref().and_then(fixed), max.as_ref().and_then(fixed))
                && lo > hi
            {
                c.at_value(
                    &format!("{path}.max"),
                    "`max` must not be below `min`".to_owned(),
                );
            }
            (min.as_ref(), max.as_ref())
        }
    };
    let template = |b: Option<&super::raw::Bound>| match b {
        Some(super::raw::Bound::Template(t)) => Some(t.clone()),
        _ => None,
    };
    Some(CheckSpec {
        source,
        min: min.and_then(fixed),
        max: max.and_then(fixed),
        min_template: template(min),
        max_template: template(max),
        percent,
        severity: k.severity,
        slo: k.slo,
    })
}

fn fixed(b: &super::raw::Bound) -> Option<f64> {
    match b {
        super::raw::Bound::Fixed(t) => Some(t.value),
        super::raw::Bound::Template(_) => None,
    }
}

fn resolve_command(c: &mut Checker<'_>, path: &str, k: &RawCommand) -> Option<CommandSpec> {
    let program = match (&k.argv, &k.shell) {
        (Some(argv), None) if !argv.is_empty() && !argv[0].trim().is_empty() => {
            CommandProgram::Argv(argv.clone())
        }
        (Some(_), None) => {
            c.at_value(
                &format!("{path}.argv"),
                "`argv` needs at least the program to run".to_owned(),
            );
            return None;
        }
        (None, Some(shell)) => CommandProgram::Shell(shell.clone()),
        _ => {
            c.at_value(path, "a command needs exactly one of `argv` (a list: program and arguments) or `shell` (a line for sh -c)".to_owned());
            return None;
        }
    };
    for name in k.env.keys() {
        if name.is_empty() || name.contains('=') {
            c.at_key(
                &format!("{path}.env.{name}"),
                format!("invalid environment variable name `{name}`"),
            );
        }
    }
    let mut named = std::collections::HashSet::new();
    for (i, name) in k.secrets.iter().enumerate() {
        let at = format!("{path}.secrets[{i}]");
        let var = crate::environment::secret_variable(name);
        if !crate::environment::is_secret_name(name) {
            c.at_value(
                &at,
                format!(
                    "invalid secret name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
                ),
            );
        } else if !named.insert(name.as_str()) {
            c.at_value(&at, format!("secret `{name}` is named twice"));
        } else if k.env.contains_key(&var) {
            c.at_value(
                &at,
                format!("secret `{name}` becomes the variable {var}, which `env` sets too"),
            );
        } else if super::INHERITED_VARIABLES.contains(&var.as_str()) || var.starts_with("DROVER_") {
            c.at_value(
                &at,
                format!(
                    "secret `{name}` would become the variable {var}, which Drover sets itself: rename it"
                ),
            );
        }
    }
    Some(CommandSpec {
        program,
        env: k.env.clone(),
        secrets: k.secrets.clone(),
        workdir: k.workdir.clone(),
    })
}

/// Every templated text of a task kind, with its path relative to the task.
pub(crate) fn template_fields(kind: &TaskKind) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match kind {
        TaskKind::Export(v) => collect_serialized("export", v, &mut out),
        TaskKind::Transform(v) => collect_serialized("transform", v, &mut out),
        TaskKind::Return(v) => collect_serialized("return", v, &mut out),
        TaskKind::Sql { query } => out.push(("sql".to_owned(), query.clone())),
        TaskKind::Check(k) => {
            match &k.source {
                CheckSource::Sql(q) => out.push(("check.sql".to_owned(), q.clone())),
                CheckSource::Map(v) => collect_serialized("check.map", v, &mut out),
            }
            for (name, t) in [
                ("check.min", &k.min_template),
                ("check.max", &k.max_template),
            ] {
                if let Some(t) = t {
                    out.push((name.to_owned(), t.clone()));
                }
            }
        }
        TaskKind::Command(cmd) => {
            match &cmd.program {
                CommandProgram::Argv(argv) => {
                    for (i, a) in argv.iter().enumerate() {
                        out.push((format!("command.argv[{i}]"), a.clone()));
                    }
                }
                CommandProgram::Shell(s) => out.push(("command.shell".to_owned(), s.clone())),
            }
            for (k, v) in &cmd.env {
                out.push((format!("command.env.{k}"), v.clone()));
            }
            if let Some(w) = &cmd.workdir {
                out.push(("command.workdir".to_owned(), w.clone()));
            }
        }
        TaskKind::Noop(_) => {}
    }
    out.retain(|(_, text)| template::is_template(text));
    out
}

fn collect_serialized(path: &str, v: &impl serde::Serialize, out: &mut Vec<(String, String)>) {
    // The kinds serialize with their YAML names, so the paths match the file.
    if let Ok(json) = serde_json::to_value(v) {
        collect_strings(path, &json, out);
    }
}

fn collect_strings(path: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((path.to_owned(), s.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(&format!("{path}[{i}]"), item, out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                collect_strings(&format!("{path}.{k}"), item, out);
            }
        }
        _ => {}
    }
}

/// Whether a task field (as [`template_fields`] names it) is SQL: its values render as SQL
/// literals.
fn is_sql_field(field: &str) -> bool {
    field == "sql"
        || field == "check.sql"
        || (field.starts_with("transform[")
            && (field.ends_with("].sql")
                || field.ends_with("].filter")
                || field.contains("].derive.")))
}

/// A template inside a SQL string literal (`'{{ ds }}'`) renders as a literal inside a
/// literal: say so at its place.
fn check_sql_quotes(c: &mut Checker<'_>, path: &str, text: &str, task: &str) {
    for offset in template::templates_inside_quotes(text) {
        let end = text[offset..]
            .find("}}")
            .map_or(text.len(), |e| offset + e + 2);
        let expr = &text[offset..end];
        let whole = text[..offset].ends_with('\'') && text[end..].starts_with('\'');
        let hint = if whole {
            String::new()
        } else {
            format!(" (to build text around it, join literals: `'…' || {expr} || '…'`)")
        };
        c.at_template(
            path,
            text,
            offset,
            format!("task `{task}`: values are SQL literals already: remove the quotes around `{expr}`{hint}"),
        );
    }
}

/// A template where the shell would not take its quoted value as one literal word (inside
/// the line's own quotes, a comment, a here-document, arithmetic, `eval`): say so at its place.
fn check_shell_places(c: &mut Checker<'_>, path: &str, text: &str, task: &str) {
    for (offset, why) in crate::template_shell::unsafe_template_places(text) {
        let end = text[offset..]
            .find("}}")
            .map_or(text.len(), |e| offset + e + 2);
        let expr = &text[offset..end];
        c.at_template(
            path,
            text,
            offset,
            format!(
                "task `{task}`: `{expr}` is {why}, where the shell would not take its value as one literal word: values are shell-quoted already, so write it bare (`echo {expr}`), or pass it in `env:` and use \"$NAME\""
            ),
        );
    }
}

fn check_template(c: &mut Checker<'_>, path: &str, text: &str, scope: &TemplateScope<'_>) {
    let refs = match template::check(text) {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            match e.offset {
                Some(o) if !text[..o.min(text.len())].contains('\n') => {
                    c.at_text(path, text[..o.min(text.len())].chars().count(), message);
                }
                Some(o) => {
                    let line = text[..o.min(text.len())].matches('\n').count() + 1;
                    c.at_value(path, format!("{message} (line {line} of the template)"));
                }
                None => c.at_value(path, message),
            }
            return;
        }
    };
    let task = scope.task;
    for unknown in refs.unknown_roots() {
        let known = if unknown.contains("did you mean") {
            String::new()
        } else {
            format!(" (known: {})", template::ROOT_VARIABLES.join(", "))
        };
        c.at_value(
            path,
            format!("task `{task}`: template uses unknown variable {unknown}{known}"),
        );
    }
    let mut seen = Vec::new();
    for input in refs.members_of("input") {
        if seen.contains(&input) {
            continue;
        }
        seen.push(input);
        if let Some(ancestors) = scope.ancestors()
            && !ancestors.contains(&input)
        {
            let why = if scope.all_tasks.contains(&input) {
                format!("`{input}` is not upstream of `{task}`: add it to `depends_on`")
            } else {
                format!(
                    "`{input}` is not a task of this DAG{}",
                    c.hint(input, scope.all_tasks.iter().copied())
                )
            };
            c.at_value(
                path,
                format!("task `{task}`: template reads `input.{input}`, but {why}"),
            );
        }
    }
    if let Some(params) = scope.params {
        for p in refs.members_of("params") {
            if !params.iter().any(|d| d.name == p) {
                let hint = c.hint(p, params.iter().map(|d| d.name.as_str()));
                c.at_value(path, format!("task `{task}`: template reads `params.{p}`, which is not declared in `params`{hint}"));
            }
        }
    }
    for member in refs.members_of("data_interval") {
        if member != "start" && member != "end" {
            c.at_value(
                path,
                format!("task `{task}`: `data_interval` has `start` and `end`, not `{member}`"),
            );
        }
    }
}

/// Diagnostics for DAG ids defined in more than one file. `dags` are (file, id, source)
/// triples; each repeat is reported at its `id:` line, naming the first file.
pub fn check_unique_ids<'a>(
    dags: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<Diagnostic> {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for (file, id, source) in dags {
        match first.get(id) {
            Some(other) => {
                let line = source
                    .lines()
                    .position(|l| l.starts_with("id:"))
                    .map_or(1, |i| i + 1);
                let d = Diagnostic::new(
                    file,
                    Position::new(line, 1),
                    format!("DAG id `{id}` is also defined in {other}: DAG ids must be unique"),
                );
                out.push(d.with_snippet_from(source));
            }
            None => {
                first.insert(id, file);
            }
        }
    }
    out
}
