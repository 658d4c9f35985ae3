//! DAG parameters: typed values a run can be given, with defaults.

use serde::Serialize;

/// A parameter declared in `params:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    /// Allowed values, if restricted.
    pub choices: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    List,
    Object,
}

pub(crate) const PARAM_TYPES: &[&str] = &[
    "string", "integer", "number", "boolean", "date", "list", "object",
];
const SPEC_KEYS: &[&str] = &["type", "default", "description", "choices"];

impl ParamType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ParamType::String,
            "integer" => ParamType::Integer,
            "number" => ParamType::Number,
            "boolean" => ParamType::Boolean,
            "date" => ParamType::Date,
            "list" => ParamType::List,
            "object" => ParamType::Object,
            _ => return None,
        })
    }

    fn infer(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Bool(_) => ParamType::Boolean,
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => ParamType::Integer,
            serde_json::Value::Number(_) => ParamType::Number,
            serde_json::Value::Array(_) => ParamType::List,
            serde_json::Value::Object(_) => ParamType::Object,
            _ => ParamType::String,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Date => "date",
            ParamType::List => "list",
            ParamType::Object => "object",
        }
    }

    /// Whether `v` is a value of this type.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        match self {
            ParamType::String => v.is_string(),
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Date => v
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            ParamType::List => v.is_array(),
            ParamType::Object => v.is_object(),
        }
    }

    /// Parse a command-line value (`--param k=v`) as this type.
    pub fn parse_text(self, text: &str) -> Result<serde_json::Value, String> {
        let bad = || format!("`{text}` is not a valid {}", self.as_str());
        let v = match self {
            ParamType::String => serde_json::Value::String(text.to_owned()),
            ParamType::Date => serde_json::Value::String(text.to_owned()),
            _ => serde_json::from_str(text).map_err(|_| bad())?,
        };
        if self.accepts(&v) { Ok(v) } else { Err(bad()) }
    }
}

/// A problem with one parameter: the sub-path (relative to the parameter) and a message.
pub(crate) type ParamProblem = (Option<&'static str>, String);

/// Read `name: <spec or default>` into a parameter.
pub(crate) fn parse_param(name: &str, value: &yaml_serde::Value) -> Result<Param, ParamProblem> {
    let json = |v: &yaml_serde::Value| {
        serde_json::to_value(v).map_err(|e| (None, format!("parameter `{name}`: {e}")))
    };
    let is_spec = value.as_mapping().is_some_and(|m| {
        !m.is_empty()
            && m.keys()
                .all(|k| k.as_str().is_some_and(|k| SPEC_KEYS.contains(&k)))
    });
    if !is_spec {
        let default = json(value)?;
        if default.is_null() {
            return Err((
                None,
                format!("parameter `{name}` needs a default value or a `type`"),
            ));
        }
        return Ok(Param {
            name: name.to_owned(),
            ty: ParamType::infer(&default),
            default: Some(default),
            description: None,
            choices: Vec::new(),
        });
    }
    let get = |k: &str| value.get(k);
    let default = get("default")
        .map(json)
        .transpose()?
        .filter(|v| !v.is_null());
    let ty = match get("type") {
        Some(t) => {
            let t = t.as_str().unwrap_or_default();
            ParamType::parse(t).ok_or_else(|| {
                (
                    Some("type"),
                    format!(
                        "unknown parameter type `{t}`{} (expected one of: {})",
                        crate::suggest::did_you_mean(t, PARAM_TYPES.iter().copied()),
                        PARAM_TYPES.join(", ")
                    ),
                )
            })?
        }
        None => match &default {
            Some(d) => ParamType::infer(d),
            None => {
                return Err((
                    None,
                    format!("parameter `{name}` needs a `type` or a `default`"),
                ));
            }
        },
    };
    let description = get("description")
        .and_then(|d| d.as_str())
        .map(str::to_owned);
    let choices = match get("choices") {
        Some(c) => match json(c)? {
            serde_json::Value::Array(items) => items,
            _ => {
                return Err((
                    Some("choices"),
                    "`choices` must be a list of values".to_owned(),
                ));
            }
        },
        None => Vec::new(),
    };
    if let Some(d) = &default {
        if !ty.accepts(d) {
            return Err((
                Some("default"),
                format!(
                    "default of parameter `{name}` is not a {}: {d}",
                    ty.as_str()
                ),
            ));
        }
        if !choices.is_empty() && !choices.contains(d) {
            return Err((
                Some("default"),
                format!("default of parameter `{name}` is not one of its choices"),
            ));
        }
    }
    if let Some(bad) = choices.iter().find(|c| !ty.accepts(c)) {
        return Err((
            Some("choices"),
            format!(
                "choice {bad} of parameter `{name}` is not a {}",
                ty.as_str()
            ),
        ));
    }
    Ok(Param {
        name: name.to_owned(),
        ty,
        default,
        description,
        choices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(yaml: &str) -> Result<Param, ParamProblem> {
        let v: yaml_serde::Value = yaml_serde::from_str(yaml).unwrap_or_default();
        parse_param("p", &v)
    }

    #[test]
    fn shorthand_infers_the_type_from_the_default() {
        assert_eq!(param("10").map(|p| p.ty), Ok(ParamType::Integer));
        assert_eq!(param("0.5").map(|p| p.ty), Ok(ParamType::Number));
        assert_eq!(param("[a, b]").map(|p| p.ty), Ok(ParamType::List));
        assert_eq!(param("hello").map(|p| p.ty), Ok(ParamType::String));
    }

    #[test]
    fn full_form_checks_default_and_choices() {
        assert_eq!(
            param("{ type: date, default: 2026-01-01 }").map(|p| p.ty),
            Ok(ParamType::Date)
        );
        assert_eq!(
            param("{ type: integer, default: ten }").map_err(|e| e.0),
            Err(Some("default"))
        );
        assert_eq!(
            param("{ type: intger }").map_err(|e| e.1.contains("did you mean `integer`")),
            Err(true)
        );
        assert_eq!(
            param("{ type: string, default: c, choices: [a, b] }").map_err(|e| e.0),
            Err(Some("default"))
        );
    }

    #[test]
    fn command_line_values_parse_by_type() {
        assert_eq!(
            ParamType::Integer.parse_text("42"),
            Ok(serde_json::json!(42))
        );
        assert!(ParamType::Integer.parse_text("4.2").is_err());
        assert_eq!(
            ParamType::String.parse_text("x y"),
            Ok(serde_json::json!("x y"))
        );
        assert!(ParamType::Date.parse_text("2026-13-01").is_err());
    }
}
