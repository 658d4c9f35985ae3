//! Static assets, built into the binary so a Drover install is one file.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::WebState;

const CSS: &str = include_str!("../../../web/static/drover.css");
const JS: &str = include_str!("../../../web/static/drover.js");
const ICON: &str = include_str!("../../../web/static/favicon.svg");

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/static/drover.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/drover.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}
