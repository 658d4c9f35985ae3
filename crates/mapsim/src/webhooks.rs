//! Where form fills are sent: the webhook target (URL, bearer token, HMAC secret, timeout) and
//! the form-fill timer's interval, set at start, by `PUT /_sandbox/webhooks` or through
//! [`crate::RunningSandbox`], and shown (secrets never) by `GET /_sandbox/webhooks` with the
//! deliveries made.
//!
//! A Marketo webhook is a URL, a payload template filled with lead tokens, and custom headers;
//! the "Call Webhook" flow step of a trigger campaign calls it once per lead, waits up to 30
//! seconds and does not retry (a campaign has to catch the "Webhook is Called" error itself).
//! The sandbox's one webhook stands for a trigger campaign "Fills Out Form (any form) → Call
//! Webhook": its payload template is fixed (see [`crate::forms`]) and its custom headers are
//! the bearer token, the signature and the idempotency key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::delivery::Delivery;
use crate::state::AppState;

/// Marketo waits up to 30 seconds for a webhook's answer; the sandbox never waits longer.
pub const MARKETO_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest interval of the form-fill timer.
pub const MIN_FILL_INTERVAL: Duration = Duration::from_millis(100);

/// The longest interval of the form-fill timer.
pub const MAX_FILL_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Longest token or HMAC secret taken (bytes).
const MAX_SECRET: usize = 4096;

/// Why a webhook setting was refused. The messages never contain a token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not an absolute http(s) address.
    #[error("webhook url: {0}")]
    Url(String),
    /// The bearer token cannot be sent as a header.
    #[error("webhook token: {0}")]
    Token(String),
    /// The HMAC secret is unusable.
    #[error("webhook HMAC secret: {0}")]
    HmacSecret(String),
    /// The timeout is out of range.
    #[error("webhook timeout: {0}")]
    Timeout(String),
    /// The form-fill interval is unreadable or out of range.
    #[error("form fill interval: {0}")]
    Every(String),
}

/// A secret value: kept, sent, never shown (`Debug` prints `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Box<str>);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where each form fill is POSTed, and how it proves itself to the receiver.
///
/// ```
/// # fn demo() -> Result<(), drover_mapsim::WebhookError> {
/// let target = drover_mapsim::WebhookTarget::new("http://127.0.0.1:8080/hooks/dev/contact_sales/form")?
///     .with_bearer("the-hook-secret")?
///     .with_hmac_secret("the-signing-secret")?;
/// assert!(!format!("{target:?}").contains("the-hook-secret"));
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    url: reqwest::Url,
    token: Option<Secret>,
    hmac_secret: Option<Secret>,
    timeout: Duration,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url.as_str())
            .field("bearer", &self.token.is_some())
            .field("hmac_signed", &self.hmac_secret.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookTarget {
    /// A target at `url` (http or https, absolute, no user or password in it), with no token,
    /// no signature and Marketo's 30-second timeout.
    pub fn new(url: &str) -> Result<Self, WebhookError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            WebhookError::Url(format!(
                "`{url}` is not an address ({e}); give one like http://127.0.0.1:8080/hooks/dev/contact_sales/form"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(WebhookError::Url(format!(
                "`{url}` is not an http:// or https:// address"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(WebhookError::Url(
                "the address carries a user or password; give the secret as the token instead"
                    .to_owned(),
            ));
        }
        Ok(Self {
            url: parsed,
            token: None,
            hmac_secret: None,
            timeout: MARKETO_WEBHOOK_TIMEOUT,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every delivery.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Result<Self, WebhookError> {
        let token = token.into();
        let token = token.trim();
        if token.is_empty() {
            return Err(WebhookError::Token("it is empty".to_owned()));
        }
        if token.len() > MAX_SECRET {
            return Err(WebhookError::Token(format!(
                "it is longer than {MAX_SECRET} bytes"
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WebhookError::Token(
                "it may hold only visible ASCII characters (no spaces or line breaks)".to_owned(),
            ));
        }
        self.token = Some(Secret(token.into()));
        Ok(self)
    }

    /// Sends `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the body under secret>`.
    pub fn with_hmac_secret(mut self, secret: impl Into<String>) -> Result<Self, WebhookError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(WebhookError::HmacSecret("it is empty".to_owned()));
        }
        if secret.len() > MAX_SECRET {
            return Err(WebhookError::HmacSecret(format!(
                "it is longer than {MAX_SECRET} bytes"
            )));
        }
        self.hmac_secret = Some(Secret(secret.into()));
        Ok(self)
    }

    /// How long a delivery waits for the answer: more than zero, at most Marketo's 30 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, WebhookError> {
        if timeout.is_zero() || timeout > MARKETO_WEBHOOK_TIMEOUT {
            return Err(WebhookError::Timeout(format!(
                "{} ms is not between 1 ms and Marketo's 30,000 ms",
                timeout.as_millis()
            )));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The address deliveries go to.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Whether deliveries carry a bearer token.
    pub fn has_bearer(&self) -> bool {
        self.token.is_some()
    }

    /// Whether deliveries are signed.
    pub fn is_signed(&self) -> bool {
        self.hmac_secret.is_some()
    }

    pub(crate) fn endpoint(&self) -> &reqwest::Url {
        &self.url
    }

    pub(crate) fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    pub(crate) fn hmac_secret(&self) -> Option<&Secret> {
        self.hmac_secret.as_ref()
    }

    /// How long a delivery waits for the answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What may be shown of the target: no secret, only whether one is set.
    pub(crate) fn view(&self) -> serde_json::Value {
        json!({
            "url": self.url.as_str(),
            "bearer": self.token.is_some(),
            "hmacSigned": self.hmac_secret.is_some(),
            "timeoutMs": u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// Reads a form-fill interval: a whole number and a unit, `ms`, `s`, `m` or `h` (`500ms`,
/// `30s`, `5m`, `1h`), from 100 ms to 24 h.
pub fn parse_every(text: &str) -> Result<Duration, WebhookError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || {
        WebhookError::Every(format!(
            "`{text}` is not a duration like 30s, 500ms, 5m or 1h"
        ))
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    let every = millis
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_FILL_INTERVAL);
    check_every(every.unwrap_or(Duration::MAX)).map_err(|_| {
        WebhookError::Every(format!(
            "`{text}` is outside 100ms to 24h; give a fill interval between them"
        ))
    })
}

/// Whether `every` is a usable interval.
pub(crate) fn check_every(every: Duration) -> Result<Duration, WebhookError> {
    if (MIN_FILL_INTERVAL..=MAX_FILL_INTERVAL).contains(&every) {
        Ok(every)
    } else {
        Err(WebhookError::Every(format!(
            "{} ms is outside 100ms to 24h",
            every.as_millis()
        )))
    }
}

/// An interval as [`parse_every`] reads it: `30s`, `5m`, `1h`, `250ms`.
pub fn format_every(every: Duration) -> String {
    let ms = every.as_millis();
    match ms {
        ms if ms % 1000 != 0 => format!("{ms}ms"),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/_sandbox/webhooks", get(get_webhooks).put(put_webhooks))
}

/// The settings as shown: the target without its secrets and the timer's interval.
fn settings_view(state: &AppState) -> serde_json::Value {
    json!({
        "webhook": state.hooks.target().map(|t| t.view()),
        "formFillsEvery": state.hooks.every().map(format_every),
    })
}

/// `GET /_sandbox/webhooks`: the settings and every delivery kept, oldest first.
async fn get_webhooks(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut body = settings_view(&state);
    let (total, deliveries): (u64, Vec<Delivery>) = state.hooks.deliveries();
    body["deliveriesTotal"] = json!(total);
    body["deliveries"] = json!(deliveries);
    Json(body)
}

/// Body of `PUT /_sandbox/webhooks`. Every setting left out is off: `{}` stops both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutWebhooks {
    url: Option<String>,
    token: Option<String>,
    #[serde(alias = "hmacSecret")]
    hmac_secret: Option<String>,
    every: Option<String>,
    #[serde(alias = "timeoutMs")]
    timeout_ms: Option<u64>,
}

impl PutWebhooks {
    fn target(self) -> Result<(Option<WebhookTarget>, Option<Duration>), WebhookError> {
        let every = self.every.as_deref().map(parse_every).transpose()?;
        let Some(url) = self.url else {
            if self.token.is_some() || self.hmac_secret.is_some() || self.timeout_ms.is_some() {
                return Err(WebhookError::Url(
                    "token, hmac_secret and timeout_ms need a url to go with them".to_owned(),
                ));
            }
            return Ok((None, every));
        };
        let mut target = WebhookTarget::new(&url)?;
        if let Some(t) = self.token {
            target = target.with_bearer(t)?;
        }
        if let Some(s) = self.hmac_secret {
            target = target.with_hmac_secret(s)?;
        }
        if let Some(ms) = self.timeout_ms {
            target = target.with_timeout(Duration::from_millis(ms))?;
        }
        Ok((Some(target), every))
    }
}

/// `PUT /_sandbox/webhooks`: replaces the target and the timer's interval; answers what
/// `GET` shows of them.
async fn put_webhooks(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(PutWebhooks::default())
    } else {
        serde_json::from_slice::<PutWebhooks>(&body)
    };
    let put = match parsed {
        Ok(p) => p,
        Err(e) => {
            // serde's message names the field, never the value it could not read.
            let msg = format!(
                "the body must be a JSON object with any of url, token, hmac_secret, every, timeout_ms ({})",
                json_error(&e)
            );
            return (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
        }
    };
    match put.target() {
        Ok((target, every)) => {
            state.hooks.set_target(target);
            state.hooks.set_every(every);
            Json(settings_view(&state)).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// A JSON error in words that cannot carry a value of the body (a token, say): the kind and
/// position, or serde's message when it is about a field's name.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data if e.to_string().contains("unknown field") => {
            let msg = e.to_string();
            msg.split(", expected").next().unwrap_or(&msg).to_owned()
        }
        Category::Data => format!(
            "a value of the wrong type at line {} column {}",
            e.line(),
            e.column()
        ),
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not JSON at line {} column {}", e.line(), e.column())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_and_print_as_written() {
        for (text, ms) in [
            ("30s", 30_000),
            ("500ms", 500),
            ("5m", 300_000),
            ("1h", 3_600_000),
            (" 2s ", 2000),
            ("24h", 86_400_000),
        ] {
            assert_eq!(parse_every(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        assert_eq!(format_every(Duration::from_millis(250)), "250ms");
        assert_eq!(format_every(Duration::from_secs(90)), "90s");
        assert_eq!(format_every(Duration::from_secs(300)), "5m");
        assert_eq!(format_every(Duration::from_secs(7200)), "2h");
        for bad in [
            "",
            "30",
            "s",
            "-5s",
            "1.5s",
            "10ms",
            "0s",
            "25h",
            "1y",
            "30 sec",
            "99999999999999999999h",
            "18446744073709551615h",
        ] {
            assert!(
                matches!(parse_every(bad), Err(WebhookError::Every(_))),
                "{bad:?} was taken"
            );
        }
    }

    #[test]
    fn targets_refuse_what_cannot_be_sent_and_never_show_secrets() {
        let t = WebhookTarget::new("http://127.0.0.1:9/hooks/dev/x/form")
            .and_then(|t| t.with_bearer("tok-123-abc"))
            .and_then(|t| t.with_hmac_secret("hmac-456-def"));
        let t = t.unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{t:?} {}", t.view());
        assert!(
            !shown.contains("tok-123-abc") && !shown.contains("hmac-456-def"),
            "{shown}"
        );
        assert!(shown.contains("bearer: true"), "{shown}");
        for url in [
            "ftp://x/y",
            "127.0.0.1:8080/hooks",
            "not a url",
            "http://u:p@h/x",
            "http://user@h/x",
        ] {
            assert!(
                matches!(WebhookTarget::new(url), Err(WebhookError::Url(_))),
                "{url}"
            );
        }
        let base = || WebhookTarget::new("https://example.com/h").unwrap_or_else(|e| panic!("{e}"));
        for tok in ["", "   ", "two words", "line\nbreak", "tab\there", "naïve"] {
            let err = base().with_bearer(tok).map(|_| ()).expect_err("refused");
            assert!(matches!(err, WebhookError::Token(_)), "{tok:?}");
            if tok.trim().len() > 2 {
                assert!(!err.to_string().contains(tok.trim()), "{err}");
            }
        }
        assert!(base().with_bearer("x".repeat(MAX_SECRET + 1)).is_err());
        assert!(base().with_hmac_secret("").is_err());
        assert!(base().with_timeout(Duration::ZERO).is_err());
        assert!(base().with_timeout(Duration::from_secs(31)).is_err());
        assert!(base().with_timeout(Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn a_put_body_needs_a_url_for_its_secrets() {
        let put = PutWebhooks {
            token: Some("t".to_owned()),
            ..PutWebhooks::default()
        };
        assert!(matches!(put.target(), Err(WebhookError::Url(_))));
        let off = PutWebhooks {
            every: Some("2s".to_owned()),
            ..PutWebhooks::default()
        };
        assert_eq!(off.target(), Ok((None, Some(Duration::from_secs(2)))));
    }

    #[test]
    fn json_errors_do_not_repeat_values() {
        let e = serde_json::from_str::<PutWebhooks>(r#"{"token": 12345678}"#)
            .map(|_| ())
            .expect_err("refused");
        assert!(!json_error(&e).contains("12345678"), "{}", json_error(&e));
        let e = serde_json::from_str::<PutWebhooks>(r#"{"tokn": "s3cr3t"}"#)
            .map(|_| ())
            .expect_err("refused");
        let msg = json_error(&e);
        assert!(msg.contains("tokn") && !msg.contains("s3cr3t"), "{msg}");
    }
}
