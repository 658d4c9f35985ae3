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

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
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
}
