//! `{{ … }}` templates in task fields (Jinja syntax, rendered by minijinja).
//!
//! Checked when a DAG is validated (syntax, and that every variable is one Drover provides) and
//! rendered when a task runs, where an unknown variable is an error naming the task and field.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::suggest;

/// The variables a template may use at its top level.
pub const ROOT_VARIABLES: &[&str] = &[
    "data_interval",
    "dag_id",
    "ds",
    "env",
    "event",
    "events",
    "input",
    "logical_date",
    "output",
    "params",
    "previous",
    "run_id",
    "task_id",
    "trigger",
    "try_number",
    "vars",
];

/// Template instructions one render may run: far more than any real DAG needs (they run tens),
/// few enough that a runaway loop in a DAG file fails its task in milliseconds instead of
/// holding a worker.
pub(crate) const FUEL: u64 = 1_000_000;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.add_filter("add_days", add_days);
    env
});

/// The environment SQL fields render in: every value a SQL literal (see [`render_sql`]).
static SQL_ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_formatter(|out, _state, value| {
        let text = sql_text(value)?;
        out.write_str(&text).map_err(minijinja::Error::from)
    });
    env.add_filter("ident", ident);
    env.add_filter("add_days", add_days);
    // No escape hatch for values: `safe` (and the filters that mark text safe) would let a
    // value reach the statement as SQL. Values are literals; names go through `ident`.
    for name in ["safe", "escape", "e", "tojson", "urlize"] {
        env.add_filter(name, move |_value: minijinja::Value| -> Result<minijinja::Value, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("`{name}` is not available in SQL: every value is written as a SQL literal; quote a name with `| ident`"),
            ))
        });
    }
    env
});

/// `{{ data_interval.end | add_days(-30) }}`: a timestamp (RFC 3339) or a date (YYYY-MM-DD)
/// moved by whole days, written back in the same form (a timestamp keeps its offset).
fn add_days(value: String, days: i64) -> Result<String, minijinja::Error> {
    let bad = |why: &str| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("add_days: {why}"),
        )
    };
    let shift = chrono::Duration::try_days(days).ok_or_else(|| bad("too many days"))?;
    let text = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let moved = t
            .checked_add_signed(shift)
            .ok_or_else(|| bad("the date is out of range"))?;
        return Ok(moved.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let moved = d
            .checked_add_signed(shift)
            .ok_or_else(|| bad("the date is out of range"))?;
        return Ok(moved.format("%Y-%m-%d").to_string());
    }
    Err(bad(&format!(
        "`{text}` is neither a timestamp like 2026-01-01T00:00:00Z nor a date like 2026-01-01"
    )))
}

/// SQL that Drover made (a relation name, an `ident`-quoted name): written as is. No template
/// can make one from a value; any filter or `~` turns it back into text, which is quoted.
#[derive(Debug)]
struct SqlText(String);

impl minijinja::value::Object for SqlText {
    fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{{ name | ident }}`: text as a quoted SQL identifier.
fn ident(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let refuse = |why: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, why);
    let Some(name) = value.as_str() else {
        return Err(refuse(format!(
            "`ident` quotes a name given as text, not {}",
            describe(&value)
        )));
    };
    if name.is_empty() || name.contains('\0') {
        return Err(refuse(
            "`ident` needs a name that is not empty and holds no NUL character".to_owned(),
        ));
    }
    Ok(minijinja::Value::from_object(SqlText(
        crate::dataset::quote_ident(name),
    )))
}

fn describe(value: &minijinja::Value) -> String {
    let shown = value.to_string();
    let shown: String = if shown.chars().count() > 40 {
        shown.chars().take(40).chain("…".chars()).collect()
    } else {
        shown
    };
    format!("{} `{shown}`", value.kind())
}

/// A value as SQL: a Drover-made relation as is; text a quoted literal (`'` doubled, and as an
/// `E'…'` literal with `\` doubled when it holds a backslash, so no session setting can change
/// its meaning); finite numbers as numbers (negative ones in parentheses, so `-` can never
/// start a comment); booleans `true`/`false`; none `null`; lists `array[…]` of literals.
fn sql_text(value: &minijinja::Value) -> Result<String, minijinja::Error> {
    use minijinja::value::ValueKind;
    let refuse = |why: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, why);
    if let Some(sql) = value.downcast_object_ref::<SqlText>() {
        return Ok(sql.0.clone());
    }
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => Ok("null".to_owned()),
        ValueKind::Bool => Ok(if value.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::Number => {
            if let Some(i) = value.as_i64() {
                return Ok(if i < 0 {
                    format!("({i})")
                } else {
                    i.to_string()
                });
            }
            let text = value.to_string();
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(if text.starts_with('-') {
                    format!("({text})")
                } else {
                    text
                }),
                _ => Err(refuse(format!(
                    "{} cannot be written in SQL: only finite numbers can",
                    describe(value)
                ))),
            }
        }
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            if text.contains('\0') {
                return Err(refuse(format!(
                    "{} holds a NUL character, which SQL text cannot",
                    describe(value)
                )));
            }
            Ok(sql_literal(text))
        }
        ValueKind::Seq => {
            let items = value
                .try_iter()?
                .map(|v| sql_text(&v))
                .collect::<Result<Vec<_>, _>>()?;
            if items.is_empty() {
                return Ok("'{}'".to_owned());
            }
            Ok(format!("array[{}]", items.join(", ")))
        }
        _ => Err(refuse(format!(
            "{} cannot be written in SQL as one value: use one of its members",
            describe(value)
        ))),
    }
}

/// A SQL string literal of `text`.
pub fn sql_literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// Whether `text` contains template syntax at all (most strings don't; they skip the compiler).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A syntax error, with its place inside the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template syntax error: {message}")]
pub struct SyntaxError {
    pub message: String,
    /// Byte offset of the error within the template text, when known.
    pub offset: Option<usize>,
}

/// What a template refers to, for validation against the DAG.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// Dotted paths of every variable the template reads, e.g. `input.export_leads`.
    pub variables: Vec<String>,
}

impl References {
    /// Second segments used under `root`, e.g. the task ids under `input`.
    pub fn members_of<'a>(&'a self, root: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.variables.iter().filter_map(move |v| {
            let rest = v.strip_prefix(root)?.strip_prefix('.')?;
            Some(rest.split('.').next().unwrap_or(rest))
        })
    }

    /// Top-level names that are not Drover variables, each with a suggestion.
    pub fn unknown_roots(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in &self.variables {
            let root = v.split('.').next().unwrap_or(v);
            if !ROOT_VARIABLES.contains(&root)
                && !out.iter().any(|o| o.starts_with(&format!("`{root}`")))
            {
                out.push(format!(
                    "`{root}`{}",
                    suggest::did_you_mean(root, ROOT_VARIABLES.iter().copied())
                ));
            }
        }
        out
    }
}

/// Compile `text` and list what it refers to.
pub fn check(text: &str) -> Result<References, SyntaxError> {
    let template = ENVIRONMENT
        .template_from_str(text)
        .map_err(|e| SyntaxError {
            message: e
                .detail()
                .map(str::to_owned)
                .unwrap_or_else(|| e.kind().to_string()),
            offset: e.range().map(|r| r.start),
        })?;
    let mut variables: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    variables.sort();
    Ok(References { variables })
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RenderContext {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub logical_date: String,
    /// `logical_date` as `YYYY-MM-DD`.
    pub ds: String,
    pub data_interval: IntervalValues,
    pub try_number: u32,
    pub params: BTreeMap<String, serde_json::Value>,
    pub env: EnvValues,
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Staged dataset of each upstream task, as a quoted SQL relation name.
    pub input: BTreeMap<String, String>,
    /// The task's own dataset, as a quoted SQL relation name (for `sql` tasks).
    pub output: String,
    /// In a transform's `sql` step: the rows of the steps before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The event that started the run (a webhook's JSON body; with a batch, its first
    /// event's), `null` for runs no event started.
    pub event: serde_json::Value,
    /// The run's events as a staged relation, for SQL (one row per event, or per element of
    /// the trigger's `rows`); empty for runs no event started.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub events: String,
    /// What started the run when another DAG's dataset did (`dag`, `task` and `run_id` of
    /// the producing run, `dataset`: its staged dataset as a quoted SQL relation, `rows`),
    /// `null` otherwise.
    pub trigger: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct IntervalValues {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct EnvValues {
    pub name: String,
}

/// A template that failed to render, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task `{task}`, field `{field}`: {message}")]
pub struct RenderError {
    pub task: String,
    pub field: String,
    pub message: String,
}

/// Render `text` (a task's `field`) with `ctx`. Text without template syntax is returned as is.
pub fn render(text: &str, field: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    if !is_template(text) {
        return Ok(text.to_owned());
    }
    ENVIRONMENT
        .render_str(text, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| trigger_error(text, ctx, render_error(ctx, field, e)))
}

/// Render a SQL field (`sql` tasks, transform `sql` steps and expressions, `check.sql`): every
/// `{{ value }}` becomes a SQL literal, so no parameter, variable or date can change the
/// statement's structure; `input.*`, `output`, `previous` and `events` (relation names Drover made)
/// are written as is; `{{ name | ident }}` writes a value as a quoted identifier. There is no
/// raw escape hatch for values.
pub fn render_sql(text: &str, field: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    if !is_template(text) {
        return Ok(text.to_owned());
    }
    let relation = |r: &str| minijinja::Value::from_object(SqlText(r.to_owned()));
    let mut root: BTreeMap<String, minijinja::Value> = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(ctx) {
        for (k, v) in map {
            root.insert(k, minijinja::Value::from(minijinja::value::Serde(&v)));
        }
    }
    let inputs: BTreeMap<String, minijinja::Value> = ctx
        .input
        .iter()
        .map(|(k, v)| (k.clone(), relation(v)))
        .collect();
    root.insert("input".to_owned(), minijinja::Value::from(inputs));
    root.insert("output".to_owned(), relation(&ctx.output));
    match &ctx.previous {
        Some(p) => root.insert("previous".to_owned(), relation(p)),
        None => root.remove("previous"),
    };
    if ctx.events.is_empty() {
        root.remove("events");
    } else {
        root.insert("events".to_owned(), relation(&ctx.events));
    }
    // The producer's staged dataset is a relation Drover named (from the dataset registry).
    if let serde_json::Value::Object(trigger) = &ctx.trigger {
        let members: BTreeMap<String, minijinja::Value> = trigger
            .iter()
            .map(|(k, v)| match (k.as_str(), v.as_str()) {
                ("dataset", Some(r)) => (k.clone(), relation(r)),
                _ => (
                    k.clone(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                ),
            })
            .collect();
        root.insert("trigger".to_owned(), minijinja::Value::from(members));
    }
    SQL_ENVIRONMENT
        .render_str(text, minijinja::Value::from(root))
        .map_err(|e| trigger_error(text, ctx, render_error(ctx, field, e)))
}

/// A failed render that read `trigger` in a run no other DAG's dataset started says so.
fn trigger_error(text: &str, ctx: &RenderContext, e: RenderError) -> RenderError {
    let reads_trigger = check(text).is_ok_and(|refs| {
        refs.variables
            .iter()
            .any(|v| v == "trigger" || v.starts_with("trigger."))
    });
    if !ctx.trigger.is_null() || !reads_trigger {
        return e;
    }
    RenderError {
        message: "template reads `trigger`, which is set only in a run started by another DAG's dataset (`triggers: [{ dataset: { dag, task } }]`); this run was not, so `trigger.dataset` names no data: start it from its producer, or guard the template with `{% if trigger %}`".to_owned(),
        ..e
    }
}

/// Where `text` (a SQL field) puts a template inside a SQL string literal, as in
/// `'{{ ds }}'`: the byte offset of each such `{{`. Values are literals already, so quotes
/// around one make a string that holds the quotes too.
pub fn templates_inside_quotes(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        let skip_to = |close: &str| text[i..].find(close).map(|end| i + end + close.len());
        let next = match (bytes[i], bytes.get(i + 1)) {
            (b'\'', _) => {
                in_quote = !in_quote;
                Some(i + 1)
            }
            (b'{', Some(b'{')) => {
                if in_quote {
                    out.push(i);
                }
                // Quotes inside the expression are the template's, not SQL's.
                skip_to("}}")
            }
            (b'{', Some(b'%')) => skip_to("%}"),
            (b'{', Some(b'#')) => skip_to("#}"),
            // A comment runs to the end of its line.
            (b'-', Some(b'-')) if !in_quote => skip_to("\n"),
            _ => Some(i + 1),
        };
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    out
}

/// A render failure of `field`, in words: the same for every kind of template.
pub(crate) fn render_error(ctx: &RenderContext, field: &str, e: minijinja::Error) -> RenderError {
    RenderError {
        task: ctx.task_id.clone(),
        field: field.to_owned(),
        message: match e.kind() {
            minijinja::ErrorKind::OutOfFuel => {
                format!("template does too much work (over {FUEL} steps): simplify its loops")
            }
            minijinja::ErrorKind::UndefinedError => {
                let detail = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                format!("template uses a variable that is not defined{detail}")
            }
            _ => format!(
                "template error: {}",
                e.detail().unwrap_or(&e.kind().to_string())
            ),
        },
    }
}

/// Check and render `text` with a context like a real run's, ignoring the outcome: what the
/// template fuzz target and its corpus replay run (a panic, hang or runaway allocation here
/// is the bug they look for).
#[doc(hidden)]
pub fn fuzz_one(text: &str) {
    let _ = check(text);
    let ctx = RenderContext {
        dag_id: "lead_scoring".to_owned(),
        task_id: "score".to_owned(),
        run_id: "01a23300-0000-7000-8000-000000000000".to_owned(),
        logical_date: "2026-12-01T00:00:00Z".to_owned(),
        ds: "2026-12-01".to_owned(),
        data_interval: IntervalValues {
            start: "2026-11-30T00:00:00Z".to_owned(),
            end: "2026-12-01T00:00:00Z".to_owned(),
        },
        try_number: 1,
        params: BTreeMap::from([
            ("points".to_owned(), serde_json::json!(10)),
            ("region".to_owned(), serde_json::json!("emea")),
            ("lists".to_owned(), serde_json::json!([1, 2, 3])),
        ]),
        env: EnvValues {
            name: "dev".to_owned(),
        },
        vars: BTreeMap::from([("sync_list".to_owned(), serde_json::json!("DEV Leads"))]),
        input: BTreeMap::from([(
            "export_leads".to_owned(),
            "\"staging_dev\".\"t_export\"".to_owned(),
        )]),
        output: "\"staging_dev\".\"t_out\"".to_owned(),
        previous: Some("\"staging_dev\".\"t_prev\"".to_owned()),
        event: serde_json::json!({ "email": "ada@example.com", "leads": [{ "id": 1 }] }),
        events: "\"staging_dev\".\"t_events\"".to_owned(),
        trigger: serde_json::Value::Null,
    };
    let _ = render(text, "sql", &ctx);
    let _ = render_sql(text, "sql", &ctx);
    let _ = templates_inside_quotes(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_references_and_flags_unknown_roots() {
        let refs =
            check("select * from {{ input.export_leads }} where d >= '{{ data_intervl.start }}'");
        let refs = refs.unwrap_or_default();
        assert_eq!(
            refs.members_of("input").collect::<Vec<_>>(),
            vec!["export_leads"]
        );
        assert_eq!(
            refs.unknown_roots(),
            vec!["`data_intervl`, did you mean `data_interval`?"]
        );
    }

    #[test]
    fn add_days_moves_timestamps_and_dates_in_their_own_form() {
        let ctx = RenderContext {
            ds: "2026-03-31".to_owned(),
            data_interval: IntervalValues {
                start: "2026-03-30T02:00:00-04:00".to_owned(),
                end: "2026-03-31T06:00:00Z".to_owned(),
            },
            ..RenderContext::default()
        };
        let r = |t: &str| render(t, "f", &ctx).map_err(|e| e.to_string());
        assert_eq!(
            r("{{ data_interval.end | add_days(-30) }}"),
            Ok("2026-03-01T06:00:00Z".to_owned())
        );
        assert_eq!(
            r("{{ data_interval.start | add_days(1) }}"),
            Ok("2026-03-31T02:00:00-04:00".to_owned())
        );
        assert_eq!(r("{{ ds | add_days(-31) }}"), Ok("2026-02-28".to_owned()));
        assert_eq!(
            r("{{ '2026-03-31T06:00:00.250Z' | add_days(0) }}"),
            Ok("2026-03-31T06:00:00.250Z".to_owned())
        );
        let bad = r("{{ 'soon' | add_days(1) }}").expect_err("not a date");
        assert!(bad.contains("`soon` is neither a timestamp"), "{bad}");
        assert!(r("{{ ds | add_days(99999999999) }}").is_err());
        // In SQL the result is a literal like any value.
        let sql =
            render_sql("select {{ ds | add_days(1) }}", "sql", &ctx).map_err(|e| e.to_string());
        assert_eq!(sql, Ok("select '2026-04-01'".to_owned()));
    }

    #[test]
    fn syntax_errors_have_an_offset() {
        let err = check("select {{ input.x ").err();
        assert!(err.as_ref().is_some_and(|e| e.offset.is_some()), "{err:?}");
        let err = check("{% if x %}no end").err();
        assert!(err.is_some());
    }

    #[test]
    fn renders_and_names_the_field_of_an_undefined_variable() {
        let mut ctx = RenderContext {
            task_id: "score".to_owned(),
            ..RenderContext::default()
        };
        ctx.params.insert("min".to_owned(), serde_json::json!(10));
        ctx.data_interval.start = "2026-01-01T00:00:00Z".to_owned();
        assert_eq!(
            render(
                "{{ params.min }} since {{ data_interval.start }}",
                "sql",
                &ctx
            ),
            Ok("10 since 2026-01-01T00:00:00Z".to_owned())
        );
        let err = render("{{ params.max }}", "check.sql", &ctx).err();
        assert!(
            err.as_ref().is_some_and(|e| e.to_string().starts_with(
                "task `score`, field `check.sql`: template uses a variable that is not defined"
            )),
            "{err:?}"
        );
        assert_eq!(render("plain", "sql", &ctx), Ok("plain".to_owned()));
    }

    #[test]
    fn a_runaway_loop_fails_fast_instead_of_holding_the_worker() {
        let ctx = RenderContext {
            task_id: "spin".to_owned(),
            ..RenderContext::default()
        };
        let began = std::time::Instant::now();
        let err = render(
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
            "sql",
            &ctx,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("does too much work"), "{err}");
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
        // An ordinary template is far below the limit.
        let ok = render("{% for c in ['a', 'b'] %}{{ c }},{% endfor %}", "sql", &ctx);
        assert_eq!(ok.ok().as_deref(), Some("a,b,"));
    }

    fn sql_ctx() -> RenderContext {
        let mut ctx = RenderContext {
            task_id: "gate".to_owned(),
            output: "\"staging_dev\".\"r__gate\"".to_owned(),
            ..RenderContext::default()
        };
        ctx.input.insert(
            "clean".to_owned(),
            "\"staging_dev\".\"r__clean\"".to_owned(),
        );
        ctx.params
            .insert("p".to_owned(), serde_json::json!("x' or 'x'='x"));
        ctx.params.insert("n".to_owned(), serde_json::json!(-5));
        ctx.params.insert("f".to_owned(), serde_json::json!(2.5));
        ctx.params.insert("b".to_owned(), serde_json::json!(true));
        ctx.params
            .insert("none".to_owned(), serde_json::Value::Null);
        ctx.params
            .insert("ids".to_owned(), serde_json::json!([1, 2, "a'b"]));
        ctx.params
            .insert("obj".to_owned(), serde_json::json!({ "k": 1 }));
        ctx.params
            .insert("col".to_owned(), serde_json::json!("lead\"Score"));
        ctx.params
            .insert("slash".to_owned(), serde_json::json!("a\\' or 1=1 --"));
        ctx.params
            .insert("nul".to_owned(), serde_json::json!("a\0b"));
        ctx.data_interval.start = "2026-01-01T00:00:00Z".to_owned();
        ctx
    }

    fn sql(text: &str) -> Result<String, String> {
        render_sql(text, "check.sql", &sql_ctx()).map_err(|e| e.to_string())
    }

    #[test]
    fn sql_values_are_literals_and_relations_are_written_as_is() {
        assert_eq!(
            sql("select count(*) from {{ input.clean }} where a = {{ params.p }}"),
            Ok(
                r#"select count(*) from "staging_dev"."r__clean" where a = 'x'' or ''x''=''x'"#
                    .to_owned()
            )
        );
        assert_eq!(
            sql("{{ output }} {{ params.n }} {{ params.f }} {{ params.b }} {{ params.none }}"),
            Ok(r#""staging_dev"."r__gate" (-5) 2.5 true null"#.to_owned())
        );
        // A negative number never becomes a comment after a minus.
        assert_eq!(
            sql("select 10 -{{ params.n }}"),
            Ok("select 10 -(-5)".to_owned())
        );
        assert_eq!(
            sql("{{ params.ids }} {{ [] }}"),
            Ok("array[1, 2, 'a''b'] '{}'".to_owned())
        );
        assert_eq!(
            sql("{{ data_interval.start }}"),
            Ok("'2026-01-01T00:00:00Z'".to_owned())
        );
        // A backslash cannot escape the closing quote, whatever the session's settings.
        assert_eq!(
            sql("{{ params.slash }}"),
            Ok(r"E'a\\'' or 1=1 --'".to_owned())
        );
        assert_eq!(
            sql("select {{ params.col | ident }}"),
            Ok(r#"select "lead""Score""#.to_owned())
        );
        for (text, says) in [
            ("{{ params.obj }}", "cannot be written in SQL as one value"),
            ("{{ params.nul }}", "NUL"),
            (
                "{{ params.ids | ident }}",
                "`ident` quotes a name given as text",
            ),
        ] {
            let err = sql(text).err().unwrap_or_default();
            assert!(
                err.starts_with("task `gate`, field `check.sql`: template error:")
                    && err.contains(says),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn no_template_trick_lets_a_value_through_raw() {
        let quoted = "'x'' or ''x''=''x'";
        // Filters that mark text safe are refused.
        for f in ["safe", "e", "escape", "tojson", "urlize"] {
            let err = sql(&format!("{{{{ params.p | {f} }}}}"))
                .err()
                .unwrap_or_default();
            assert!(err.contains("is not available in SQL"), "{f}: {err}");
        }
        // Text made from values, in every way a template can, is still a literal.
        for text in [
            "{{ params.p | string }}",
            "{{ params.p | trim }}",
            "{{ params.p ~ '' }}",
            "{% set v = params.p %}{{ v }}",
            "{% for v in [params.p] %}{{ v }}{% endfor %}",
            "{{ [params.p] | join(',') }}",
            "{{ params.p | replace('x', 'x') }}",
        ] {
            assert_eq!(sql(text).as_deref(), Ok(quoted), "{text}");
        }
        // A block or macro holds what it rendered (values already quoted); the text it makes
        // is a value again, and quoted as one.
        for text in [
            "{% set v %}{{ params.p }}{% endset %}{{ v }}",
            "{% macro m() %}{{ params.p }}{% endmacro %}{{ m() }}",
            "{% filter upper %}{{ params.p }}{% endfilter %}",
        ] {
            let out = sql(text).unwrap_or_default();
            assert!(
                out.starts_with("'''") || out.starts_with("'''X"),
                "{text}: {out}"
            );
        }
        // `raw` writes the template's own text, never a value.
        assert_eq!(
            sql("{% raw %}{{ params.p }}{% endraw %}").as_deref(),
            Ok("{{ params.p }}")
        );
        // A relation turned into text is text.
        assert_eq!(
            sql("{{ input.clean | string }}").as_deref(),
            Ok(r#"'"staging_dev"."r__clean"'"#)
        );
    }

    #[test]
    fn finds_templates_placed_inside_quotes() {
        assert_eq!(
            templates_inside_quotes("where d >= '{{ data_interval.start }}' and x = {{ p }}"),
            vec![12]
        );
        assert_eq!(
            templates_inside_quotes("where e like '%{{ params.p }}%'"),
            vec![15]
        );
        assert!(
            templates_inside_quotes("select 'it''s', {{ p }} -- '{{ q }}'\n, {{ '{{' }}")
                .is_empty()
        );
    }

    #[test]
    fn trigger_dataset_is_a_relation_and_a_clear_error_without_one() {
        let mut ctx = RenderContext {
            task_id: "read".to_owned(),
            ..RenderContext::default()
        };
        let sql = "select * from {{ trigger.dataset }} where run = {{ trigger.run_id }}";
        let e = render_sql(sql, "sql", &ctx).err();
        let message = e.map(|e| e.message).unwrap_or_default();
        assert!(
            message.contains("set only in a run started by another DAG's dataset"),
            "{message}"
        );
        let e = render("{{ trigger.dag }}", "command", &ctx).err();
        assert!(e.is_some_and(|e| e.message.contains("`trigger`")));
        assert_eq!(
            render_sql(
                "select {% if trigger %}1{% else %}0{% endif %}",
                "sql",
                &ctx
            )
            .ok(),
            Some("select 0".to_owned())
        );
        ctx.trigger = serde_json::json!({
            "dag": "lead_scoring", "task": "score", "run_id": "r1",
            "dataset": "\"staging_dev\".\"t_1\"", "rows": 3,
        });
        assert_eq!(
            render_sql(sql, "sql", &ctx).ok(),
            Some(r#"select * from "staging_dev"."t_1" where run = 'r1'"#.to_owned())
        );
        assert_eq!(
            render(
                "{{ trigger.dag }}.{{ trigger.task }} {{ trigger.rows }}",
                "command",
                &ctx
            )
            .ok(),
            Some("lead_scoring.score 3".to_owned())
        );
    }
}
