//! The router and the gate every Marketo call passes: URI size (414), auth (600/601/602),
//! injected faults (timeouts, server errors), then the limits (615/606/607).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::SizeAbove;

use crate::envelope::{ApiError, ErrorCode};
use crate::extract::handlers as ex;
use crate::faults::Purpose;
use crate::state::AppState;
use crate::{admin, auth, forms, import, leads, webhooks};

/// Longest URI Marketo accepts.
const MAX_URI: usize = 8 * 1024;

/// Smallest REST answer Marketo compresses (mkto:performance.md: 1024 bytes or more).
const MIN_COMPRESSED: u16 = 1024;

/// Builds the whole application.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    // Marketo gzips REST answers of 1024 bytes or more when asked; bulk APIs never compress
    // (so a file download keeps its exact bytes, `Content-Length` and `Range` answers).
    let compress = CompressionLayer::new()
        .gzip(true)
        .compress_when(SizeAbove::new(MIN_COMPRESSED));
    let rest = Router::new()
        .route("/rest/v1/leads/describe.json", get(leads::describe))
        .route("/rest/v1/leads/describe2.json", get(leads::describe2))
        .route("/rest/v1/activities/types.json", get(leads::activity_types))
        .route(
            "/rest/v1/leads.json",
            get(leads::get_leads).post(leads::sync_leads),
        )
        .route("/rest/v1/lead/{id}", get(leads::get_lead))
        .route("/rest/v1/stats/usage.json", get(leads::usage))
        .route("/rest/v1/stats/errors.json", get(leads::errors))
        .layer(compress);
    let marketo = Router::new()
        .route("/bulk/v1/leads/export/create.json", post(ex::create_leads))
        .route(
            "/bulk/v1/leads/export/{id}/enqueue.json",
            post(ex::enqueue_leads),
        )
        .route(
            "/bulk/v1/leads/export/{id}/status.json",
            get(ex::status_leads),
        )
        .route("/bulk/v1/leads/export/{id}/file.json", get(ex::file_leads))
        .route(
            "/bulk/v1/leads/export/{id}/cancel.json",
            post(ex::cancel_leads),
        )
        .route("/bulk/v1/leads/export.json", get(ex::list_leads))
        .route(
            "/bulk/v1/activities/export/create.json",
            post(ex::create_activities),
        )
        .route(
            "/bulk/v1/activities/export/{id}/enqueue.json",
            post(ex::enqueue_activities),
        )
        .route(
            "/bulk/v1/activities/export/{id}/status.json",
            get(ex::status_activities),
        )
        .route(
            "/bulk/v1/activities/export/{id}/file.json",
            get(ex::file_activities),
        )
        .route(
            "/bulk/v1/activities/export/{id}/cancel.json",
            post(ex::cancel_activities),
        )
        .route("/bulk/v1/activities/export.json", get(ex::list_activities))
        .route(
            "/bulk/v1/leads.json",
            post(import::create).layer(DefaultBodyLimit::max(import::MAX_BODY)),
        )
        .route("/bulk/v1/leads/batch/{id}", get(import::status))
        .route(
            "/bulk/v1/leads/batch/{id}/failures.json",
            get(import::failures),
        )
        .route(
            "/bulk/v1/leads/batch/{id}/warnings.json",
            get(import::warnings),
        )
        .merge(rest)
        .layer(DefaultBodyLimit::max(leads::MAX_BODY + 1))
        .route_layer(middleware::from_fn_with_state(state.clone(), gate));
    Router::new()
        .route("/identity/oauth/token", get(auth::token).post(auth::token))
        .merge(marketo)
        .merge(admin::router())
        .merge(forms::router())
        .merge(webhooks::router())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

/// Unknown paths: Marketo answers 610 in the envelope.
async fn fallback() -> Response {
    ApiError::not_found().into_response()
}

/// Counts HTTP statuses and Marketo error codes of every response.
async fn count_status(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI {
        state.stats.count_status(414);
        return (StatusCode::URI_TOO_LONG, "Request-URI Too Long").into_response();
    }
    let resp = next.run(req).await;
    state.stats.count_status(resp.status().as_u16());
    if resp
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
    {
        state.stats.count_gzip();
    }
    if let Some(ErrorCode(code)) = resp.extensions().get::<ErrorCode>() {
        state.stats.count_error(*code);
    }
    resp
}

/// The route pattern of a path: id segments (numbers, UUIDs) become `{id}`.
fn route_of(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let stem = seg.strip_suffix(".json").unwrap_or(seg);
            let is_id = !stem.is_empty()
                && (stem.bytes().all(|b| b.is_ascii_digit())
                    || (stem.len() == 36
                        && stem.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')));
            match (is_id, seg.ends_with(".json")) {
                (true, true) => "{id}.json",
                (true, false) => "{id}",
                _ => seg,
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The gate in front of every Marketo (non-identity) call.
async fn gate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = format!("{} {}", req.method(), route_of(req.uri().path()));
    state.stats.count_call(&endpoint);
    let read_by_post = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "_method=GET"));
    state.stats.log_call(if read_by_post {
        format!("{endpoint}?_method=GET")
    } else {
        endpoint.clone()
    });
    let Some(token) = auth::token_of(req.headers(), req.uri().query()) else {
        return ApiError::empty_token().into_response();
    };
    let caller = match state.tokens.check(&token, state.clock.now()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let faults = state.faults();
    if let Some(t) = &faults.timeouts
        && state.dice.chance(Purpose::Timeout, t.probability)
    {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(t.hold_ms)) => {}
            () = state.shutdown.cancelled() => {}
        }
        return ApiError::timeout().into_response();
    }
    if let Some(s) = &faults.server_errors
        && state.dice.chance(Purpose::ServerError, s.probability)
    {
        let pick = state.dice.roll(Purpose::ServerError);
        return match (pick * 5.0) as u32 {
            0 => {
                let mut r = (StatusCode::BAD_GATEWAY, "502 Bad Gateway").into_response();
                r.extensions_mut().insert(ErrorCode(502));
                r
            }
            1 => ApiError::new(604, "Request time-out").into_response(),
            2 => ApiError::new(608, "API Temporarily Unavailable").into_response(),
            3 => ApiError::new(611, "System error").into_response(),
            _ => ApiError::new(713, "Transient Error").into_response(),
        };
    }
    let slot = match state
        .limiter
        .admit(state.effective_limits(), state.clock.quota_day())
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    state.stats.count_user(&caller.client_id);
    if let Some(r) = &faults.rate_limit
        && r.latency_ms > 0
    {
        tokio::time::sleep(Duration::from_millis(r.latency_ms)).await;
    }
    let mut req = req;
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    drop(slot);
    resp
}
