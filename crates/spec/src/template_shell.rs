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

use crate::template::{FUEL, RenderContext, RenderError, is_template, render_error};

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
    ENVIRONMENT
        .render_str(text, Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| render_error(ctx, field, e))
}

/// Run facts Drover makes whose values hold only characters [`quote`] leaves bare (ids, dates,
/// instants, numbers): written bare, one such value is literal inside double quotes too.
const PLAIN_FACTS: &[&str] = &[
    "dag_id",
    "data_interval.end",
    "data_interval.start",
    "ds",
    "env.name",
    "logical_date",
    "run_id",
    "task_id",
    "try_number",
];

/// Whether `from` starts with `{{ fact }}` for one of [`PLAIN_FACTS`], with no filter.
fn is_plain_fact(from: &str) -> bool {
    let Some(inner) = from
        .strip_prefix("{{")
        .and_then(|rest| rest.split_once("}}"))
        .map(|(inner, _)| inner.trim_matches(|c: char| c == '-' || c.is_whitespace()))
    else {
        return false;
    };
    PLAIN_FACTS.contains(&inner)
}

/// Where a `shell:` line puts a template in a place the shell would not take its quoted
/// value as one literal word, with why: inside the line's own quotes (`"{{ p }}"` renders
/// `"'…'"`, and `$(…)` inside double quotes runs), inside backticks, in a comment (a value
/// with a line break would end it), in a here-document, in arithmetic (`$(( … ))`), or as an
/// argument of `eval`. Each is the byte offset of the `{{`.
pub fn unsafe_template_places(text: &str) -> Vec<(usize, &'static str)> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Ctx {
        Normal,
        Single,
        Double,
        Backtick,
        Comment,
    }
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut ctx = Ctx::Normal;
    // Open `$((` in normal text, a here-document operator seen, where the command began.
    let mut arith = 0usize;
    let mut heredoc = false;
    let mut command_start = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let skip_to = |close: &str| text[i..].find(close).map(|end| i + end + close.len());
        let word_start =
            i == 0 || bytes[i - 1].is_ascii_whitespace() || b";&|(".contains(&bytes[i - 1]);
        let next = match (ctx, bytes[i], bytes.get(i + 1)) {
            (_, b'{', Some(b'{')) => {
                let why = match ctx {
                    Ctx::Double if is_plain_fact(&text[i..]) => None,
                    Ctx::Single | Ctx::Double => Some("inside the line's own quotes"),
                    Ctx::Backtick => Some("inside backticks"),
                    Ctx::Comment => Some("in a comment"),
                    Ctx::Normal if heredoc => Some("in a here-document"),
                    Ctx::Normal if arith > 0 => Some("in arithmetic (`$(( … ))`)"),
                    Ctx::Normal if text[command_start..i].trim_start().starts_with("eval ") => {
                        Some("an argument of `eval`")
                    }
                    Ctx::Normal => None,
                };
                if let Some(why) = why {
                    out.push((i, why));
                }
                skip_to("}}")
            }
            (_, b'{', Some(b'%')) => skip_to("%}"),
            (_, b'{', Some(b'#')) => skip_to("#}"),
            (Ctx::Single, b'\'', _) | (Ctx::Double, b'"', _) | (Ctx::Backtick, b'`', _) => {
                ctx = Ctx::Normal;
                Some(i + 1)
            }
            (Ctx::Double, b'\\', _) => Some(i + 2),
            (Ctx::Comment, b'\n', _) => {
                ctx = Ctx::Normal;
                command_start = i + 1;
                Some(i + 1)
            }
            (Ctx::Normal, b'\\', _) => Some(i + 2),
            (Ctx::Normal, b'\'', _) => {
                ctx = Ctx::Single;
                Some(i + 1)
            }
            (Ctx::Normal, b'"', _) => {
                ctx = Ctx::Double;
                Some(i + 1)
            }
            (Ctx::Normal, b'`', _) => {
                ctx = Ctx::Backtick;
                Some(i + 1)
            }
            (Ctx::Normal, b'#', _) if word_start => {
                ctx = Ctx::Comment;
                Some(i + 1)
            }
            (Ctx::Normal, b'<', Some(b'<')) => {
                if bytes.get(i + 2) == Some(&b'<') {
                    Some(i + 3)
                } else {
                    heredoc = true;
                    Some(i + 2)
                }
            }
            (Ctx::Normal, b'$', Some(b'(')) if bytes.get(i + 2) == Some(&b'(') => {
                arith += 1;
                Some(i + 3)
            }
            (Ctx::Normal, b')', Some(b')')) if arith > 0 => {
                arith -= 1;
                Some(i + 2)
            }
            (Ctx::Normal, b'\n' | b';' | b'&' | b'|' | b'(', _) => {
                command_start = i + 1;
                Some(i + 1)
            }
            _ => Some(i + 1),
        };
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    out
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

    #[test]
    fn templates_the_shell_would_not_take_as_one_word_are_found() {
        let places = |t: &str| -> Vec<&'static str> {
            unsafe_template_places(t)
                .into_iter()
                .map(|(_, why)| why)
                .collect()
        };
        // Where a quoted value is one literal word: nothing to say.
        assert!(places("echo {{ params.p }} && printf '%s\\n' {{ ds }} # done").is_empty());
        assert!(places("cat <<< {{ params.p }}; x=$(echo {{ params.p }})").is_empty());
        // The line's own quotes, backticks, comments, here-documents, arithmetic, eval.
        assert_eq!(
            places(r#"echo "{{ params.p }}""#),
            ["inside the line's own quotes"]
        );
        assert_eq!(
            places("printf '%s' '{{ params.p }}'"),
            ["inside the line's own quotes"]
        );
        assert_eq!(places("echo `echo {{ params.p }}`"), ["inside backticks"]);
        assert_eq!(
            places("true # {{ params.p }}\necho {{ ds }}"),
            ["in a comment"]
        );
        assert_eq!(
            places("cat <<EOF\n{{ params.p }}\nEOF"),
            ["in a here-document"]
        );
        assert_eq!(
            places("echo $(( {{ params.n }} + 1 ))"),
            ["in arithmetic (`$(( … ))`)"]
        );
        assert_eq!(
            places("true; eval {{ params.p }}"),
            ["an argument of `eval`"]
        );
        // Drover's own plain facts may stand inside double quotes; a filter may not.
        assert!(places(r#"key="{{ run_id }} {{ task_id }} {{- try_number -}}""#).is_empty());
        assert_eq!(
            places(r#"key="{{ run_id | replace('-', '$') }}""#),
            ["inside the line's own quotes"]
        );
        assert_eq!(places("echo '{{ ds }}'"), ["inside the line's own quotes"]);
        // A `#` inside a word is not a comment; an escaped quote opens nothing.
        assert!(places("echo a#b {{ ds }} \\\" {{ ds }}").is_empty());
        let offset = unsafe_template_places("echo \"{{ p }}\"")
            .first()
            .map(|(o, _)| *o);
        assert_eq!(offset, Some(6));
    }
}
