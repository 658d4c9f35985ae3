//! Errors as answers: a page in plain words (details one click away) for the browser, a
//! consistent JSON body for the API. Also the headers every answer carries.

use askama::Template;
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use drover_engine::EngineError;
use drover_engine::ops::OpError;
use drover_store::StoreError;

/// What went wrong, with the status it deserves.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// Technical detail, shown folded on pages.
    pub(crate) detail: Option<String>,
    /// Seconds to wait before trying again (a `Retry-After` header), e.g. in maintenance.
    pub(crate) retry_after: Option<i64>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Drover is in maintenance: 503, and when to try again.
    pub(crate) fn maintenance(m: &drover_store::Maintenance) -> Self {
        let mut f = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            OpError::Maintenance(m.clone()).to_string(),
        );
        f.retry_after = Some(m.retry_after_secs(chrono::Utc::now()));
        f
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    fn internal(detail: String) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Drover could not answer this request. The details below help an engineer."
                .to_owned(),
            detail: Some(detail),
            retry_after: None,
        }
    }

    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "Please log in",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Not possible right now",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "That did not work",
            StatusCode::TOO_MANY_REQUESTS => "Too many tries",
            StatusCode::SERVICE_UNAVAILABLE => "Not available",
            _ => "Something went wrong",
        }
    }
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Forbidden(m) => Failure::forbidden(m),
            OpError::NotFound(m) => Failure::not_found(m),
            OpError::Conflict(m) => Failure::new(StatusCode::CONFLICT, m),
            OpError::Invalid(m) => Failure::bad_request(m),
            OpError::Unavailable(m) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, m),
            OpError::Maintenance(m) => Failure::maintenance(&m),
            OpError::Engine(e) => e.into(),
        }
    }
}

impl From<crate::auth::login_limits::HashRefused> for Failure {
    fn from(e: crate::auth::login_limits::HashRefused) -> Self {
        match e {
            crate::auth::login_limits::HashRefused::Busy => {
                let mut f = Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Drover is busy checking other passwords. Try again in a moment.",
                );
                f.retry_after = Some(1);
                f
            }
            crate::auth::login_limits::HashRefused::Failed => {
                Failure::internal("the password hashing thread stopped".to_owned())
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Failure::not_found(m),
            StoreError::Conflict(m) => Failure::new(StatusCode::CONFLICT, m),
            StoreError::Invalid(m) => Failure::bad_request(m),
            other => Failure::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Invalid(m) => Failure::bad_request(m),
            other => Failure::internal(other.to_string()),
        }
    }
}

/// A failure shown as a page.
#[derive(Debug)]
pub(crate) struct PageError(pub(crate) Failure);

impl<E: Into<Failure>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    detail: Option<&'a str>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let f = self.0;
        let page = ErrorPage {
            status: f.status.as_u16(),
            title: f.title(),
            message: &f.message,
            detail: f.detail.as_deref(),
        };
        let mut res = match page.render() {
            Ok(body) => (f.status, Html(body)).into_response(),
            Err(_) => (f.status, f.message.clone()).into_response(),
        };
        with_retry_after(&mut res, f.retry_after);
        res
    }
}

/// A failure as the API's error body: `{"error": {"status", "code", "message"}}`.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) Failure);

impl<E: Into<Failure>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let f = self.0;
        let body = serde_json::json!({
            "error": {
                "status": f.status.as_u16(),
                "code": f.code(),
                "message": f.message,
                "detail": f.detail,
            }
        });
        let mut res = (f.status, Json(body)).into_response();
        with_retry_after(&mut res, f.retry_after);
        res
    }
}

fn with_retry_after(res: &mut Response, secs: Option<i64>) {
    if let Some(secs) = secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Whether answers at `path` are the API's JSON (the API and the webhooks) rather than pages.
pub(crate) fn answers_json(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/hooks/")
}

/// In maintenance every change is refused at the door with 503 and `Retry-After` (logging
/// in and out still work, and every page still reads).
pub(crate) async fn maintenance_gate(
    axum::extract::State(state): axum::extract::State<crate::WebState>,
    req: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let path = req.uri().path();
    // A webhook's event is kept in maintenance (its run waits): the hook says so itself.
    if reads || path == "/login" || path == "/logout" || path.starts_with("/hooks/") {
        return next.run(req).await;
    }
    let api = answers_json(path);
    let refused = match state.store().maintenance().await {
        Ok(None) => return next.run(req).await,
        Ok(Some(m)) => Failure::maintenance(&m),
        Err(e) => Failure::from(e),
    };
    if api {
        ApiError(refused).into_response()
    } else {
        PageError(refused).into_response()
    }
}

pub(crate) async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let f = Failure::not_found(format!("There is no page at {path}."));
    if answers_json(&path) {
        ApiError(f).into_response()
    } else {
        PageError(f).into_response()
    }
}

/// Unknown API paths answer in the API's error shape.
pub(crate) async fn api_not_found(req: Request) -> Response {
    ApiError(Failure::not_found(format!(
        "there is no API endpoint /api{}; /api/openapi.json lists them",
        req.uri().path()
    )))
    .into_response()
}

/// Headers on every answer: no sniffing, no framing, scripts only from Drover itself.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    res
}
