//! The Marketo response envelope: HTTP 200 with `{requestId, success, result, errors, warnings}`
//! and error codes as strings.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A response-level Marketo error (`success:false`). Codes are Marketo's, sent as strings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {message}")]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn empty_token() -> Self {
        Self::new(600, "Empty access token")
    }
    pub(crate) fn invalid_token() -> Self {
        Self::new(601, "Access token invalid")
    }
    pub(crate) fn expired_token() -> Self {
        Self::new(602, "Access token expired")
    }
    pub(crate) fn timeout() -> Self {
        Self::new(604, "Request time-out")
    }
    pub(crate) fn invalid_json() -> Self {
        Self::new(609, "Invalid JSON")
    }
    pub(crate) fn not_found() -> Self {
        Self::new(610, "Requested resource not found")
    }
    pub(crate) fn invalid_content_type() -> Self {
        Self::new(612, "Invalid Content Type")
    }
    pub(crate) fn invalid_multipart() -> Self {
        Self::new(613, "Invalid Multipart Request")
    }
    pub(crate) fn blank(what: &str) -> Self {
        Self::new(701, format!("{what} cannot be blank"))
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(1003, message)
    }
}

/// Marks a response with the Marketo error code it carries, for the call statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) u16);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Marketo's error responses carry no `result`/`warnings` (the Swagger marks them required;
        // the docs' examples omit them; we follow the docs).
        let body = json!({
            "requestId": request_id(),
            "success": false,
            "errors": [{"code": self.code.to_string(), "message": self.message}],
        });
        let mut resp = (StatusCode::OK, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}

/// A new `requestId` in Marketo's `<hex>#<hex>` shape.
pub(crate) fn request_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0xe42b);
    let n = SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff;
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    format!("{n:04x}#{millis:x}")
}

/// `success:true` with `result`.
pub(crate) fn ok(result: Vec<Value>) -> Response {
    Json(json!({
        "requestId": request_id(),
        "success": true,
        "result": result,
        "errors": [],
        "warnings": [],
    }))
    .into_response()
}

/// `success:true` with `result`, `moreResult` and (when there is more) `nextPageToken`.
pub(crate) fn ok_paged(result: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({
        "requestId": request_id(),
        "success": true,
        "result": result,
        "errors": [],
        "warnings": [],
        "moreResult": next.is_some(),
    });
    if let (Some(token), Some(map)) = (next, body.as_object_mut()) {
        map.insert("nextPageToken".to_owned(), Value::String(token));
    }
    Json(body).into_response()
}

/// Handler result: a response or a Marketo error.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// Opaque paging token for an offset.
pub(crate) fn page_token(offset: usize) -> String {
    format!("{:X}", (offset as u64) ^ 0x5A5A_5A5A_5A5A)
}

/// Offset of a paging token from [`page_token`].
pub(crate) fn page_offset(token: &str) -> Result<usize, ApiError> {
    u64::from_str_radix(token, 16)
        .ok()
        .and_then(|v| usize::try_from(v ^ 0x5A5A_5A5A_5A5A).ok())
        .ok_or_else(|| ApiError::invalid(format!("Invalid nextPageToken '{token}'")))
}
