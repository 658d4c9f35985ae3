//! How long requests take on the server, per route, as a Prometheus histogram: the server
//! time users feel, without the network or the client.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the buckets, in seconds.
pub(crate) const BOUNDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    /// Requests at or under each bound (not cumulative here; summed when exported).
    pub(crate) buckets: [u64; BOUNDS.len()],
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// (method, route template) → durations.
static REQUESTS: LazyLock<Mutex<BTreeMap<(String, String), Histogram>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Middleware: time the request under its route's template (`/dags/{dag}`) and its method.
/// Both labels come from fixed sets, so no request can add series of its own: a method
/// outside the standard ones counts as `other`, a path no route matched as `unmatched`.
pub(crate) async fn record(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method()).to_owned();
    let began = Instant::now();
    let res = next.run(req).await;
    let secs = began.elapsed().as_secs_f64();
    if let Ok(mut m) = REQUESTS.lock() {
        m.entry((method, route)).or_default().observe(secs);
    }
    res
}

/// The label of a request method: one of the standard methods, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A copy of what was recorded.
pub(crate) fn snapshot() -> Vec<((String, String), Histogram)> {
    REQUESTS
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        for s in [0.0004, 0.004, 0.049, 0.05, 0.051, 3.0] {
            h.observe(s);
        }
        assert_eq!(h.count, 6);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[2], 1);
        assert_eq!(h.buckets[8], 2, "0.049 and 0.05 are within 50 ms");
        assert_eq!(h.buckets[9], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 5, "3 s is above every bound");
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for odd in ["PROPFIND", "BREW", "X-Y-Z"] {
            let m = Method::from_bytes(odd.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(method_label(&m), "other");
        }
    }
}
