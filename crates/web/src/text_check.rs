//! Text Drover cannot keep is refused at the door. Postgres text cannot hold a NUL character,
//! and every name, parameter and form field may end up in the database; bytes that are not
//! UTF-8 are not text at all. Such input in the path, the query string, a form or a JSON body
//! is answered 422, naming the field: in the API's error shape under `/api/`, as an error
//! page elsewhere — never a 500 carrying Postgres's message.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, Failure, PageError};

/// The largest form or JSON body read (axum's default limit for its extractors).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Middleware: refuse a request carrying text that cannot be stored.
pub(crate) async fn refuse_unstorable_text(req: Request, next: Next) -> Response {
    let api = crate::error::answers_json(req.uri().path());
    let refuse = |f: Failure| {
        if api {
            ApiError(f).into_response()
        } else {
            PageError(f).into_response()
        }
    };
    if let Err(problem) = check_uri(req.uri()) {
        return refuse(Failure::bad_request(problem));
    }
    let kind = body_kind(&req);
    if kind == BodyKind::Other {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(Failure::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} MiB",
                    BODY_LIMIT / 1024 / 1024
                ),
            ));
        }
    };
    let checked = match kind {
        BodyKind::Form => check_pairs(&bytes, "form field"),
        BodyKind::Json => check_json(&bytes),
        BodyKind::Other => Ok(()),
    };
    if let Err(problem) = checked {
        return refuse(Failure::bad_request(problem));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
    Other,
}

fn body_kind(req: &Request) -> BodyKind {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if ct.starts_with("application/json") || ct.contains("+json") {
        BodyKind::Json
    } else {
        BodyKind::Other
    }
}

fn check_uri(uri: &Uri) -> Result<(), String> {
    for segment in uri.path().split('/') {
        let decoded = percent_decode(segment.as_bytes());
        if let Some(why) = unstorable(&decoded) {
            return Err(format!("the address path {why}"));
        }
    }
    match uri.query() {
        Some(q) => check_pairs(q.as_bytes(), "query parameter"),
        None => Ok(()),
    }
}

/// `k=v&k=v` as forms and query strings write it (`+` is a space).
fn check_pairs(raw: &[u8], what: &str) -> Result<(), String> {
    for pair in raw.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let key = percent_decode(&plus_to_space(k));
        let name = String::from_utf8_lossy(&key).replace('\0', "\\0");
        if let Some(why) = unstorable(&key) {
            return Err(format!("the name of a {what} ({name}) {why}"));
        }
        if let Some(why) = unstorable(&percent_decode(&plus_to_space(v))) {
            return Err(format!("the {what} `{name}` {why}"));
        }
    }
    Ok(())
}

fn check_json(raw: &[u8]) -> Result<(), String> {
    // A body that does not parse is left to the handler, which says what is wrong with it.
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return Ok(());
    };
    let mut path = Vec::new();
    match nul_in(&v, &mut path) {
        Some(at) => Err(format!(
            "the JSON field `{at}` contains a NUL character (\\0), which Drover cannot store"
        )),
        None => Ok(()),
    }
}

/// Where in `v` a string (or an object key) holds a NUL character, as `a.b[2]`.
fn nul_in(v: &Value, path: &mut Vec<String>) -> Option<String> {
    let here = |path: &[String]| {
        if path.is_empty() {
            "(the body)".to_owned()
        } else {
            path.concat().trim_start_matches('.').to_owned()
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here(path)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(format!("[{i}]"));
            let found = nul_in(item, path);
            path.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            path.push(format!(".{}", k.replace('\0', "\\0")));
            let found = if k.contains('\0') {
                Some(here(path))
            } else {
                nul_in(item, path)
            };
            path.pop();
            found
        }),
        _ => None,
    }
}

/// Why these bytes cannot be stored as text, if they cannot.
fn unstorable(bytes: &[u8]) -> Option<&'static str> {
    match std::str::from_utf8(bytes) {
        Err(_) => Some("is not valid UTF-8 text"),
        Ok(s) if s.contains('\0') => {
            Some("contains a NUL character (\\0), which Drover cannot store")
        }
        Ok(_) => None,
    }
}

fn plus_to_space(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect()
}

/// `%XX` sequences decoded (a `%` not followed by two hex digits is kept as it is).
pub(crate) fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_broken_utf8_are_found_wherever_they_are() {
        assert_eq!(percent_decode(b"a%20b%zz%4"), b"a b%zz%4");
        assert!(check_pairs(b"name=ann&next=%2Fdags", "form field").is_ok());
        let e = check_pairs(b"name=a%00b", "form field").err();
        assert_eq!(
            e.as_deref(),
            Some("the form field `name` contains a NUL character (\\0), which Drover cannot store")
        );
        let e = check_pairs(b"who=%FF", "query parameter").err();
        assert_eq!(
            e.as_deref(),
            Some("the query parameter `who` is not valid UTF-8 text")
        );
        assert!(check_json(br#"{"params": {"who": "ann"}}"#).is_ok());
        let e = check_json(br#"{"params": {"list": ["a", "b\u0000"]}}"#).err();
        assert!(
            e.as_deref().is_some_and(|m| m.contains("`params.list[1]`")),
            "{e:?}"
        );
        assert!(
            check_json(br#"{"x\\u0000": 1}"#).is_ok(),
            "an escaped backslash is text"
        );
        let uri: Uri = "/api/dags/a%00b?env=dev".parse().unwrap_or_default();
        assert!(check_uri(&uri).is_err());
        let uri: Uri = "/api/dags/a%20b?env=dev".parse().unwrap_or_default();
        assert!(check_uri(&uri).is_ok());
    }
}
