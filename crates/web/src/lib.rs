//! Drover's web UI and JSON API: run history for business users, operations for engineers,
//! users with roles, sessions and API tokens, health and Prometheus metrics.
//!
//! Pages are server-rendered (askama templates in `web/templates`); the few live parts (a
//! run's states, a running task's log) poll the JSON API. Every state-changing form carries a
//! CSRF token tied to the session; the API takes `Authorization: Bearer` tokens.
#![recursion_limit = "256"]

mod api;
mod assets;
pub mod auth;
mod cache;
mod error;
mod freshness;
mod health;
mod hooks;
mod listing;
mod pages;
mod record_history;
mod row_access;
mod slos;
mod state;
mod text_check;
mod timing;
mod usage;
mod views;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use state::{WebConfig, WebState};

/// Why `actor` may not see the values of `env`'s rows (staged data, receipts, record
/// history), if they may not: the environment's `rows_visible_to`, as the UI and API apply it.
pub fn rows_hidden(
    actor: &drover_engine::ops::Actor,
    env: &drover_spec::environment::Environment,
) -> Option<String> {
    row_access::rows_hidden(actor, env)
}

/// Every route: pages, forms, the JSON API, health and metrics, static assets.
pub fn router(state: WebState) -> Router {
    Router::new()
        .merge(pages::routes().route_layer(axum::middleware::from_fn(timing::record)))
        .nest(
            "/api",
            api::routes().route_layer(axum::middleware::from_fn(timing::record)),
        )
        .merge(hooks::routes().route_layer(axum::middleware::from_fn(timing::record)))
        .merge(health::routes())
        .merge(assets::routes())
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fresh_after_changes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::maintenance_gate,
        ))
        .layer(axum::middleware::from_fn(
            text_check::refuse_unstorable_text,
        ))
        .layer(axum::middleware::from_fn(error::security_headers))
        .with_state(state)
}

/// A change made through this process empties the read cache, so its author sees it at once.
async fn fresh_after_changes(
    axum::extract::State(state): axum::extract::State<WebState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // An event posted to a webhook changes nothing the caches hold for its sender.
    let writes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && !req.uri().path().starts_with("/hooks/");
    let res = next.run(req).await;
    if writes {
        state.caches().clear();
    }
    res
}

/// Serve until `shutdown` resolves; requests in flight finish first.
pub async fn serve(
    listener: TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
