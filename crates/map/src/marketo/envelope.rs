//! The Marketo response envelope: `{requestId, success, errors[{code,message}], result, warnings,
//! moreResult, nextPageToken}`. Failures come back as HTTP 200 with `success:false`.

use serde::{Deserialize, Deserializer};

/// One entry of `errors[]` (or a record's `reasons[]`). Codes are quoted integers; numbers are
/// accepted too.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiErrorBody {
    #[serde(deserialize_with = "code_string")]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// Just enough of the envelope to tell success from failure.
#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeHead {
    #[serde(default)]
    pub(crate) success: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) errors: Vec<ApiErrorBody>,
}

/// The full envelope with typed results.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Envelope<T> {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) result: Vec<T>,
    #[serde(default)]
    pub(crate) more_result: Option<bool>,
    #[serde(default)]
    pub(crate) next_page_token: Option<String>,
}

pub(crate) fn code_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A short excerpt of a body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let mut s: String = text.chars().filter(|c| !c.is_control()).collect();
    if body.len() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_as_strings_or_numbers() {
        let head: EnvelopeHead = serde_json::from_str(
            r#"{"requestId":"a#b","success":false,"errors":[{"code":606,"message":"Max rate limit"}]}"#,
        )
        .expect("parse");
        assert_eq!(head.errors[0].code, "606");
        let env: Envelope<serde_json::Value> =
            serde_json::from_str(r#"{"success":true,"result":null}"#).expect("parse");
        assert!(env.result.is_empty());
    }
}
