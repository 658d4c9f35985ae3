//! `POST /hooks/{env}/{dag}/{name}`: where other systems send events. Machine to machine: no
//! login, no session, no CSRF token — the webhook's secret (a bearer token, or the key of a
//! signature of the body) is the credential, checked by the operations layer.
//!
//! Answers, in the API's error shape when refused:
//! - 202 `{"event_id", "run_id", "duplicate": false}`: the event and its run are committed;
//! - 200 with the first event's ids and `"duplicate": true`: a repeated idempotency key
//!   (`Idempotency-Key`, or the trigger's `idempotency_key` pointer), nothing new recorded;
//! - 401 without the secret, 404 for an unknown environment, DAG or webhook, 413 over
//!   [`HOOK_BODY_LIMIT`], 415 when not `application/json`, 400 when the body is not JSON;
//! - 503 with `Retry-After` in maintenance or while the DAG is paused, with the ids and
//!   `"held"` saying why: the event **is kept** and its run starts when maintenance ends or
//!   the DAG is unpaused (a sender that retries with the same `Idempotency-Key` gets the same
//!   event back);
//! - 429 with `Retry-After` when the DAG has `events.max_waiting` events waiting.
//!
//! Every refusal (4xx) records nothing: the sender retries.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use drover_engine::ops::{HOOK_RETRY_AFTER_SECS, Held, HookAccepted, HookError, HookRequest};
use serde_json::json;

use crate::WebState;
use crate::error::{ApiError, Failure};

/// The largest body a webhook takes.
pub(crate) const HOOK_BODY_LIMIT: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<WebState> {
    Router::new().route("/hooks/{env}/{dag}/{name}", post(receive))
}

async fn receive(
    State(state): State<WebState>,
    Path((env, dag, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, HOOK_BODY_LIMIT).await else {
        return refused(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} MiB, the most a webhook takes",
                HOOK_BODY_LIMIT / 1024 / 1024
            ),
        ));
    };
    let headers = &parts.headers;
    if !is_json(headers) {
        return refused(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON, sent as `Content-Type: application/json`",
        ));
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = text(header::AUTHORIZATION.as_str()).and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
    });
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown address".to_owned());
    let source = match text(header::USER_AGENT.as_str()) {
        Some(agent) => format!("{peer} ({})", agent.chars().take(200).collect::<String>()),
        None => peer,
    };
    let key = text("idempotency-key")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let request = HookRequest {
        environment: &env,
        dag_id: &dag,
        hook: &name,
        body: &body,
        bearer,
        signature: text("x-drover-signature"),
        idempotency_key: key,
        source: &source,
    };
    match state.ops().accept_hook(&request).await {
        Ok(HookAccepted { accepted: a, held }) => {
            let mut body =
                json!({ "event_id": a.event_id, "run_id": a.run_id, "duplicate": a.duplicate });
            if let Some(why) = held {
                body["held"] = json!(why.to_string());
                let secs = match &why {
                    Held::Maintenance(m) => m.retry_after_secs(chrono::Utc::now()),
                    Held::Paused { .. } => HOOK_RETRY_AFTER_SECS,
                };
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return res;
            }
            let status = if a.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            (status, Json(body)).into_response()
        }
        Err(e) => refused(failure(e)),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or_default().trim();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

fn failure(e: HookError) -> Failure {
    let retry = |mut f: Failure| {
        f.retry_after = Some(HOOK_RETRY_AFTER_SECS);
        f
    };
    match e {
        HookError::NotFound(m) => Failure::not_found(m),
        HookError::Unauthorized => Failure::new(StatusCode::UNAUTHORIZED, e.to_string()),
        HookError::NotJson(_) => Failure::new(StatusCode::BAD_REQUEST, e.to_string()),
        HookError::SecretUnavailable(_) => {
            retry(Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
        HookError::QueueFull { .. } => {
            retry(Failure::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()))
        }
        HookError::Op(op) => Failure::from(op),
    }
}

fn refused(f: Failure) -> Response {
    let unauthorized = f.status == StatusCode::UNAUTHORIZED;
    let mut res = ApiError(f).into_response();
    if unauthorized {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drover webhook\""),
        );
    }
    res
}
