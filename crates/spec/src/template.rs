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
    "input",
    "logical_date",
    "output",
    "params",
    "previous",
    "run_id",
    "task_id",
    "try_number",
    "vars",
];

/// Template instructions one render may run: far more than any real DAG needs (they run tens),
/// few enough that a runaway loop in a DAG file fails its task in milliseconds instead of
/// holding a worker.
const FUEL: u64 = 1_000_000;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
});

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
    let fail = |e: minijinja::Error| RenderError {
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
    };
    ENVIRONMENT
        .render_str(text, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(fail)
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
            "\"staging\".\"t_export\"".to_owned(),
        )]),
        output: "\"staging\".\"t_out\"".to_owned(),
        previous: Some("\"staging\".\"t_prev\"".to_owned()),
    };
    let _ = render(text, "sql", &ctx);
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
}
