//! `{{ … }}` templates in `shell:` command lines: every value a template prints is quoted for
//! the POSIX shell, so a parameter, a variable or any other value reaches `sh -c` as one word
//! of literal text, never as shell syntax (`x'; id; echo '` prints itself, `$(id)` runs
//! nothing). The line's own text, written in the DAG, is the shell code.
//!
//! The syntax is the same as everywhere else (see [`crate::template`]), so validation checks
//! these templates like the others; only the rendering differs.

use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{Environment, Error, Output, State, UndefinedBehavior};

use crate::template::{RenderContext, RenderError, is_template};

/// The same budget as [`crate::template`]'s: a runaway loop fails in milliseconds.
const FUEL: u64 = 1_000_000;

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_formatter(shell_formatter);
    env
});

/// Every printed value, whatever it is and however it was made (filters, `| safe`, `set`),
/// goes out as one quoted shell word.
fn shell_formatter(
    out: &mut Output<'_>,
    _state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    let text = if value.is_none() {
        String::new()
    } else {
        value.to_string()
    };
    out.write_str(&quote(&text))?;
    Ok(())
}

/// `text` as one word for the POSIX shell: as is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside becoming `'\''`).
pub fn quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Render a `shell:` line (a task's `field`) with `ctx`, every value shell-quoted. Text
/// without template syntax is returned as is.
pub fn render_shell(text: &str, field: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    if !is_template(text) {
        return Ok(text.to_owned());
    }
    let fail = |e: Error| RenderError {
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
        .render_str(text, Value::from(minijinja::value::Serde(ctx)))
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(p: serde_json::Value) -> RenderContext {
        let mut ctx = RenderContext {
            task_id: "say".to_owned(),
            ds: "2026-12-01".to_owned(),
            ..RenderContext::default()
        };
        ctx.params.insert("p".to_owned(), p);
        ctx
    }

    /// What `sh -c LINE` prints.
    fn sh(line: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn plain_words_stay_as_they_are_and_the_rest_is_single_quoted() {
        assert_eq!(quote("2026-12-01"), "2026-12-01");
        assert_eq!(quote("a/b.csv"), "a/b.csv");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn a_value_is_one_literal_word_whatever_it_holds() {
        for hostile in [
            "x'; id; echo '",
            "$(id)",
            "`id`",
            "a\"b\\c $HOME ; | & > /tmp/x < * ? ~ #",
            "line\nbreak",
            "'",
            "",
        ] {
            let line = render_shell(
                "printf '%s' {{ params.p }}",
                "command.shell",
                &ctx(hostile.into()),
            );
            let line = line.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sh(&line), hostile, "rendered as {line}");
        }
    }

    #[test]
    fn there_is_no_escape_hatch() {
        let c = ctx("$(echo pwned)".into());
        for template in [
            "printf '%s' {{ params.p | safe }}",
            "{% set v = params.p %}printf '%s' {{ v }}",
            "printf '%s' {{ params.p ~ '' }}",
            "printf '%s' {{ [params.p] | join(' ') }}",
        ] {
            let line =
                render_shell(template, "command.shell", &c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sh(&line), "$(echo pwned)", "{template} rendered as {line}");
        }
    }

    #[test]
    fn numbers_lists_and_the_line_itself() {
        assert_eq!(
            render_shell(
                "echo {{ params.p }} {{ ds }} | wc -c",
                "command.shell",
                &ctx(10.into())
            ),
            Ok("echo 10 2026-12-01 | wc -c".to_owned())
        );
        assert_eq!(
            render_shell(
                "echo {{ params.p }}",
                "command.shell",
                &ctx(serde_json::json!([1, "a b"]))
            ),
            Ok("echo '[1, '\\''a b'\\'']'".to_owned())
        );
        assert_eq!(
            render_shell("echo $HOME", "command.shell", &ctx(1.into())),
            Ok("echo $HOME".to_owned())
        );
    }

    #[test]
    fn strict_and_bounded_like_the_other_templates() {
        let err = render_shell("echo {{ params.q }}", "command.shell", &ctx(1.into()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(
                "task `say`, field `command.shell`: template uses a variable that is not defined"
            ),
            "{err}"
        );
        let err = render_shell(
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
            "command.shell",
            &ctx(1.into()),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("does too much work"), "{err}");
    }
}
