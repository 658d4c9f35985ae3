//! YAML loading helpers shared by DAG and environment files.

mod positions;

pub use positions::{NodePosition, Positions};

use serde::de::DeserializeOwned;

use crate::diagnostic::{Diagnostic, Position};
use crate::suggest;

/// Parse a whole document into a `yaml_serde::Value`, turning syntax errors into a diagnostic.
pub fn parse_document(file: &str, source: &str) -> Result<yaml_serde::Value, Diagnostic> {
    yaml_serde::from_str(source).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Position::new(l.line(), l.column()))
            .unwrap_or(Position::START);
        Diagnostic::new(
            file,
            pos,
            format!("invalid YAML: {}", strip_location(&e.to_string())),
        )
        .with_snippet_from(source)
    })
}

/// yaml_serde appends " at line L column C" (and libyaml a context); we report positions ourselves.
fn strip_location(message: &str) -> String {
    let first = message.split(" at line ").next().unwrap_or(message);
    let context = message
        .split(", while ")
        .nth(1)
        .map(|c| c.split(" at line ").next().unwrap_or(c));
    match context {
        Some(c) => format!("{first}, while {c}"),
        None => first.to_owned(),
    }
}

/// A structural problem in one section, with the path it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuralError {
    /// Path of the offending node, e.g. `tasks[2].retries`.
    pub path: String,
    pub message: String,
    /// For an unknown key: the key's path, so the error points at the key itself.
    pub key_path: Option<String>,
}

/// Deserialize one section of a document. `prefix` is the section's path within the file.
pub fn from_section<T: DeserializeOwned>(
    prefix: &str,
    value: yaml_serde::Value,
) -> Result<T, StructuralError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = join_path(prefix, if inner == "." { "" } else { &inner });
        describe(path, e.into_inner().to_string())
    })
}

fn join_path(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if inner.starts_with('[') => format!("{prefix}{inner}"),
        _ => format!("{prefix}.{inner}"),
    }
}

/// Rewrite serde's standard messages into Drover's wording, with suggestions.
fn describe(path: String, message: String) -> StructuralError {
    // serde: "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`" / "there are no fields"
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = suggest::did_you_mean(field, candidates.iter().copied());
        let valid = if hint.is_empty() && !candidates.is_empty() {
            format!(" (valid keys: {})", candidates.join(", "))
        } else {
            String::new()
        };
        // serde_path_to_error's path already ends with the unknown key.
        let key_path = if path.ends_with(field) {
            path.clone()
        } else {
            join_path(&path, field)
        };
        let parent = key_path
            .strip_suffix(field)
            .map(|p| p.trim_end_matches('.').to_owned())
            .unwrap_or_default();
        return StructuralError {
            path: parent,
            message: format!("unknown key `{field}`{hint}{valid}"),
            key_path: Some(key_path),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = suggest::did_you_mean(variant, candidates.iter().copied());
        let valid = if hint.is_empty() {
            format!(" (expected one of: {})", candidates.join(", "))
        } else {
            String::new()
        };
        let what = path.rsplit('.').next().unwrap_or("value").to_owned();
        return StructuralError {
            message: format!("unknown {what} `{variant}`{hint}{valid}"),
            path,
            key_path: None,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return StructuralError {
            message: format!("missing required key `{field}`"),
            path,
            key_path: None,
        };
    }
    let message = message
        .replace("invalid type: ", "wrong type: found ")
        .replace("unit value", "nothing (null)");
    let message = match path.rsplit('.').next() {
        Some(field) if !field.is_empty() && !field.ends_with(']') => {
            format!("`{field}`: {message}")
        }
        _ => message,
    };
    StructuralError {
        path,
        message,
        key_path: None,
    }
}

impl StructuralError {
    /// Turn into a diagnostic located with `positions`.
    pub fn locate(&self, file: &str, source: &str, positions: &Positions) -> Diagnostic {
        Diagnostic::new(file, self.position(positions), self.message.clone())
            .with_snippet_from(source)
    }

    /// Where it points: at the key for an unknown key, else at the value.
    pub fn position(&self, positions: &Positions) -> Position {
        match &self.key_path {
            Some(k) => positions.locate(k).entry(),
            None => positions.locate(&self.path).value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Task {
        id: String,
        depends_on: Option<Vec<String>>,
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_point_at_the_key() {
        let v: yaml_serde::Value =
            yaml_serde::from_str("id: a\ndependson: [b]\n").unwrap_or_default();
        let err = from_section::<Task>("tasks[3]", v).err();
        let err = err.as_ref();
        assert_eq!(
            err.map(|e| e.message.as_str()),
            Some("unknown key `dependson`, did you mean `depends_on`?")
        );
        assert_eq!(
            err.and_then(|e| e.key_path.as_deref()),
            Some("tasks[3].dependson")
        );
    }

    #[test]
    fn missing_and_ill_typed_fields_name_the_key() {
        let v: yaml_serde::Value = yaml_serde::from_str("depends_on: [b]\n").unwrap_or_default();
        let err = from_section::<Task>("tasks[0]", v).err();
        assert_eq!(
            err.map(|e| (e.path, e.message)),
            Some((
                "tasks[0]".to_owned(),
                "missing required key `id`".to_owned()
            ))
        );
        let v: yaml_serde::Value =
            yaml_serde::from_str("id: a\ndepends_on: b\n").unwrap_or_default();
        let err = from_section::<Task>("tasks[0]", v).err();
        let err = err.as_ref();
        assert_eq!(err.map(|e| e.path.as_str()), Some("tasks[0].depends_on"));
        assert!(
            err.is_some_and(|e| e
                .message
                .starts_with("`depends_on`: wrong type: found string \"b\"")),
            "{err:?}"
        );
    }

    #[test]
    fn syntax_errors_carry_the_parser_position() {
        let d = parse_document("x.yaml", "id: a\ntasks: [\n  - b\n").err();
        assert!(
            d.as_ref()
                .is_some_and(|d| d.message.starts_with("invalid YAML: ") && d.line >= 2),
            "{d:?}"
        );
    }
}
