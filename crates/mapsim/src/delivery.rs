//! Sending one form fill to the webhook target, as Marketo's "Call Webhook" flow step does:
//! one POST, an answer awaited up to the target's timeout (Marketo's 30 s), no retry whatever
//! happens, and a record of what happened (kept for `GET /_sandbox/webhooks`).
//!
//! Where the sandbox differs from Marketo: it sends its custom headers (bearer token,
//! signature, idempotency key) whatever the template would say, it follows no redirect (a
//! 3xx is recorded as the answer), it ignores proxy settings (receivers are local), and it
//! keeps the first 1,000 characters of each answer instead of mapping the answer back to
//! lead fields (Marketo's response mappings) or logging a "Webhook is Called" activity.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::CONTENT_TYPE;
use serde::{Serialize, Serializer};
use tokio::sync::watch;

use crate::state::AppState;
use crate::webhooks::WebhookTarget;

/// Deliveries kept for `GET /_sandbox/webhooks` (older ones are dropped; the total counts all).
const KEPT: usize = 10_000;

/// Characters of an answer kept with its delivery.
const EXCERPT_CHARS: usize = 1000;

/// The header carrying the body's HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "X-Drover-Signature";

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered, but not 2xx (a 3xx, 4xx or 5xx).
    Refused,
    /// No answer: the receiver could not be reached or did not answer in time.
    Failed,
}

/// One webhook call: which fill, when, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The fill sent (also its `Idempotency-Key`).
    pub fill_id: String,
    /// The lead the fill was for.
    pub lead_id: u32,
    /// Where it was sent.
    pub url: String,
    /// When it was sent (the sandbox clock).
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// The HTTP status of the answer, when one came.
    pub status: Option<u16>,
    /// Why there was no (whole) answer.
    pub error: Option<String>,
    /// From sending to the end of the answer (or of waiting for it).
    pub duration_ms: u64,
    /// The start of the answer's body (any token or secret in it replaced by `[redacted]`).
    pub response: Option<String>,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The webhook settings, the delivery log and the HTTP client, shared by the handlers, the
/// fill timer and [`crate::RunningSandbox`].
#[derive(Debug)]
pub(crate) struct Hooks {
    /// Built on the first delivery: a sandbox nobody fills forms in never loads TLS roots.
    client: OnceLock<Result<reqwest::Client, String>>,
    target: RwLock<Option<WebhookTarget>>,
    every: watch::Sender<Option<Duration>>,
    log: Mutex<Log>,
    fills: AtomicU64,
}

#[derive(Debug, Default)]
struct Log {
    kept: VecDeque<Delivery>,
    total: u64,
}

impl Hooks {
    pub(crate) fn new(target: Option<WebhookTarget>, every: Option<Duration>) -> Self {
        Self {
            client: OnceLock::new(),
            target: RwLock::new(target),
            every: watch::Sender::new(every),
            log: Mutex::new(Log::default()),
            fills: AtomicU64::new(1),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| {
                // reqwest is built without a TLS crypto provider of its own: use ring, the one
                // built in, unless the program installed one already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .user_agent(concat!(
                        "drover-mapsim/",
                        env!("CARGO_PKG_VERSION"),
                        " (Call Webhook)"
                    ))
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    pub(crate) fn target(&self) -> Option<WebhookTarget> {
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_target(&self, target: Option<WebhookTarget>) {
        match &target {
            Some(t) => tracing::info!(
                url = t.url(),
                bearer = t.token().is_some(),
                hmac_signed = t.hmac_secret().is_some(),
                timeout_ms = u64::try_from(t.timeout().as_millis()).unwrap_or(u64::MAX),
                "form fills go to a webhook"
            ),
            None => tracing::info!("form fills go to no webhook"),
        }
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = target;
    }

    pub(crate) fn every(&self) -> Option<Duration> {
        *self.every.borrow()
    }

    pub(crate) fn set_every(&self, every: Option<Duration>) {
        tracing::info!(every = ?every, "form fill timer set");
        self.every.send_replace(every);
    }

    pub(crate) fn watch_every(&self) -> watch::Receiver<Option<Duration>> {
        self.every.subscribe()
    }

    /// The number of the next fill (1, 2, …): what its generated visitor is made from.
    pub(crate) fn next_fill(&self) -> u64 {
        self.fills.fetch_add(1, Ordering::Relaxed)
    }

    /// Every delivery made, and those kept (the last 10,000), oldest first.
    pub(crate) fn deliveries(&self) -> (u64, Vec<Delivery>) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        (log.total, log.kept.iter().cloned().collect())
    }

    fn record(&self, d: Delivery) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.total += 1;
        if log.kept.len() == KEPT {
            log.kept.pop_front();
        }
        log.kept.push_back(d);
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// POSTs `body` (fill `fill_id` of lead `lead_id`) to the target in force, once, and records
/// what happened; `None` when no target is set.
pub(crate) async fn deliver(
    state: &AppState,
    fill_id: &str,
    lead_id: u32,
    body: Vec<u8>,
) -> Option<Delivery> {
    let target = state.hooks.target()?;
    let at = state.clock.now();
    let started = Instant::now();
    let client = match state.hooks.client() {
        Ok(c) => c,
        Err(error) => {
            let d = failed(fill_id, lead_id, &target, at, error.to_owned());
            state.hooks.record(d.clone());
            return Some(d);
        }
    };
    let mut req = client
        .post(target.endpoint().clone())
        .timeout(target.timeout())
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", fill_id);
    if let Some(token) = target.token() {
        // Marked sensitive by reqwest: never printed in its debug output.
        req = req.bearer_auth(token.expose());
    }
    if let Some(secret) = target.hmac_secret() {
        req = req.header(
            SIGNATURE_HEADER,
            signature(secret.expose().as_bytes(), &body),
        );
    }
    let exchange = async move {
        let resp = req.body(body).send().await?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, excerpt(resp).await))
    };
    let ended = tokio::select! {
        r = exchange => Some(r),
        () = state.shutdown.cancelled() => None,
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let answered = |status: u16| {
        if (200..300).contains(&status) {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Refused
        }
    };
    let (outcome, status, error, response) = match ended {
        None => (
            DeliveryOutcome::Failed,
            None,
            Some("the sandbox stopped before an answer came".to_owned()),
            None,
        ),
        Some(Err(e)) => (
            DeliveryOutcome::Failed,
            None,
            Some(describe(&e, &target)),
            None,
        ),
        Some(Ok((status, Ok(text)))) => (
            answered(status),
            Some(status),
            None,
            Some(scrub(text, &target)),
        ),
        Some(Ok((status, Err(e)))) => (
            answered(status),
            Some(status),
            Some(format!("the answer broke off: {}", describe(&e, &target))),
            None,
        ),
    };
    let delivery = Delivery {
        fill_id: fill_id.to_owned(),
        lead_id,
        url: target.url().to_owned(),
        at,
        outcome,
        status,
        error,
        duration_ms,
        response,
    };
    match outcome {
        DeliveryOutcome::Delivered => tracing::info!(
            fill_id,
            lead_id,
            status,
            duration_ms,
            url = target.url(),
            "form fill sent to the webhook"
        ),
        _ => tracing::warn!(
            fill_id,
            lead_id,
            status,
            error = delivery.error.as_deref(),
            duration_ms,
            url = target.url(),
            "form fill not taken by the webhook (not retried, as on Marketo)"
        ),
    }
    state.hooks.record(delivery.clone());
    Some(delivery)
}

/// A delivery that never left.
fn failed(
    fill_id: &str,
    lead_id: u32,
    target: &WebhookTarget,
    at: DateTime<Utc>,
    error: String,
) -> Delivery {
    tracing::warn!(fill_id, lead_id, error, "form fill not sent to the webhook");
    Delivery {
        fill_id: fill_id.to_owned(),
        lead_id,
        url: target.url().to_owned(),
        at,
        outcome: DeliveryOutcome::Failed,
        status: None,
        error: Some(error),
        duration_ms: 0,
        response: None,
    }
}

/// The start of an answer's body, reading no more than needed.
async fn excerpt(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_CHARS * 4 {
        match resp.chunk().await? {
            Some(chunk) => bytes.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(String::from_utf8_lossy(&bytes)
        .chars()
        .take(EXCERPT_CHARS)
        .collect())
}

/// An answer with the target's token and secret blotted out (a receiver may echo them).
fn scrub(mut text: String, target: &WebhookTarget) -> String {
    for secret in [target.token(), target.hmac_secret()].into_iter().flatten() {
        if text.contains(secret.expose()) {
            text = text.replace(secret.expose(), "[redacted]");
        }
    }
    text
}

/// Why a call got no answer, in words: the timeout, the connection, or the deepest cause.
fn describe(e: &reqwest::Error, target: &WebhookTarget) -> String {
    if e.is_timeout() {
        return format!(
            "no answer within {} ms (Marketo waits 30 s at most)",
            target.timeout().as_millis()
        );
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let url = target.endpoint();
    let place = format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    );
    if e.is_connect() {
        format!("cannot connect to {place}: {cause}")
    } else {
        format!("{place}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block size.
        assert_eq!(
            signature(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn answers_lose_the_secrets_they_echo() {
        let target = WebhookTarget::new("http://127.0.0.1:1/h")
            .and_then(|t| t.with_bearer("tok-AAA"))
            .and_then(|t| t.with_hmac_secret("sec-BBB"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            scrub(
                "got Bearer tok-AAA and sec-BBB, tok-AAA".to_owned(),
                &target
            ),
            "got Bearer [redacted] and [redacted], [redacted]"
        );
    }

    #[test]
    fn the_log_keeps_the_last_ten_thousand_and_counts_all() {
        let hooks = Hooks::new(None, None);
        for i in 0..(KEPT as u32 + 5) {
            hooks.record(Delivery {
                fill_id: format!("f{i}"),
                lead_id: i,
                url: "http://x/".to_owned(),
                at: Utc::now(),
                outcome: DeliveryOutcome::Delivered,
                status: Some(202),
                error: None,
                duration_ms: 1,
                response: None,
            });
        }
        let (total, kept) = hooks.deliveries();
        assert_eq!(total, KEPT as u64 + 5);
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].fill_id, "f5");
    }
}
