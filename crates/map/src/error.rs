//! The one error type of this crate, with user-facing messages.

use chrono::{DateTime, Utc};

use std::time::Duration;

use crate::budget::BudgetExhausted;
use crate::rate_limit::{MAX_CALLS_PER_20S, MAX_CONCURRENCY, Pace, show_window};
use crate::retry::{CodeClass, classify_code};

/// Everything that can go wrong talking to a MAP. Messages are written for the person reading a
/// task log; none of them ever contains a secret or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The connection settings are unusable (bad base URL, limits above the vendor's maximum…).
    #[error("invalid MAP connection settings: {0}")]
    Config(String),

    /// The request given to the connector is invalid (window too long, nothing to do…).
    #[error("invalid MAP request: {0}")]
    InvalidRequest(String),

    /// The identity service refused the credentials, or the token could not be renewed.
    #[error("authentication with the MAP failed: {0}")]
    Auth(String),

    /// The API refused the request (`success:false`) with a code that retrying will not fix.
    #[error("Marketo refused the {operation} request with error {code}: {message}")]
    Api {
        /// What was being done, e.g. `"sync leads"`.
        operation: String,
        /// The Marketo error code, e.g. `"1003"`.
        code: String,
        /// The message Marketo gave with it.
        message: String,
    },

    /// A vendor quota is used up: 607 (daily API calls) or 1029 "Export daily quota exceeded".
    /// Not retried: it resets only at midnight US Central time.
    #[error("{}", quota_text(.code, .message))]
    QuotaReached {
        /// `"607"` or `"1029"`.
        code: String,
        /// The message Marketo gave.
        message: String,
    },

    /// Drover's own daily budget for this environment refused the call; nothing was sent.
    #[error("{}", budget_text(.environment, *.budget, *.used, .resets_at.as_ref()))]
    BudgetExhausted {
        /// The environment whose budget is spent.
        environment: String,
        /// Calls allowed per day.
        budget: u64,
        /// Calls already spent today.
        used: u64,
        /// When the budget resets, if known.
        resets_at: Option<DateTime<Utc>>,
    },

    /// A retryable failure kept happening.
    #[error("gave up on the {operation} request after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// What was being done.
        operation: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<MapError>,
    },

    /// Marketo's rate or concurrency limit (606, 615, HTTP 429) stayed exhausted for as long as
    /// the call could wait (the try's time, or the retry policy's patience).
    #[error("{}", limited_text(.operation, .code, *.waited, *.attempts, .pace))]
    RateLimited {
        /// What was being done.
        operation: String,
        /// `"606"`, `"615"` or `"http-429"`, the last answer.
        code: String,
        /// How long the call was held back.
        waited: std::time::Duration,
        /// Answers that said the limit was exhausted.
        attempts: u32,
        /// The pace Drover had slowed to.
        pace: Pace,
    },

    /// A bulk job ended in `Failed` (or was cancelled) on the MAP side.
    #[error("Marketo bulk job {job_id} ended as {status}: {message}")]
    JobFailed {
        /// Export id or import batch id.
        job_id: String,
        /// The final status (`Failed`, `Cancelled`).
        status: String,
        /// Marketo's `errorMsg`/`message`, or our explanation.
        message: String,
    },

    /// A bulk job did not finish within the configured wait.
    #[error("Marketo bulk job {job_id} was still {status} after waiting {waited_secs} s")]
    JobTimedOut {
        /// Export id or import batch id.
        job_id: String,
        /// Its last status.
        status: String,
        /// Seconds waited.
        waited_secs: u64,
    },

    /// The downloaded export file does not match the `fileChecksum` Marketo published.
    #[error(
        "the file of export {export_id} is corrupt: its SHA-256 is {actual} but Marketo announced {expected}"
    )]
    ChecksumMismatch {
        /// The export job.
        export_id: String,
        /// Checksum announced by Marketo (hex).
        expected: String,
        /// Checksum of the bytes received (hex).
        actual: String,
    },

    /// An HTTP status other than success (the Marketo API itself almost always answers 200).
    #[error("the {operation} request failed with HTTP {status}{}", detail_text(.detail))]
    Http {
        /// What was being done.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// A short, secret-free excerpt of the body.
        detail: String,
    },

    /// The network failed (connect, reset, timeout) before a complete answer arrived.
    #[error("network error during the {operation} request: {message}")]
    Transport {
        /// What was being done.
        operation: String,
        /// Description (never contains the URL).
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
        /// Whether the server may have received (and executed) the request.
        maybe_executed: bool,
    },

    /// The answer did not have the documented shape.
    #[error("unexpected answer to the {operation} request: {message}")]
    Protocol {
        /// What was being done.
        operation: String,
        /// What was wrong.
        message: String,
    },

    /// A lookup field the MAP cannot find leads by (Marketo would answer 1011).
    #[error(
        "`{field}` cannot be used as a lookup: Marketo can only find leads by {} (the searchable fields of this instance)",
        or_list(.searchable)
    )]
    NotSearchable {
        /// The field asked for.
        field: String,
        /// The single-field keys the instance can search on.
        searchable: Vec<String>,
    },

    /// A payload is above a documented size limit (e.g. 10 MB for a bulk import).
    #[error("too large: {0}")]
    TooLarge(String),
}

/// `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => "no field at all".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn quota_text(code: &str, message: &str) -> String {
    // The size of the export quota is per subscription (500 MB a day unless Adobe raised it)
    // and Marketo does not announce it, so no figure is claimed here.
    if code == "1029" {
        format!(
            "Marketo's daily bulk-export quota (the size of export files extracted per day, shared by every integration of the instance) is used up (error {code}: {message}); it resets at midnight US Central time"
        )
    } else {
        format!(
            "Marketo's daily API quota is used up (error {code}: {message}); it resets at midnight US Central time"
        )
    }
}

fn limited_text(
    operation: &str,
    code: &str,
    waited: Duration,
    attempts: u32,
    pace: &Pace,
) -> String {
    let waited = show_duration(waited);
    if code == "615" {
        format!(
            "gave up on the {operation} request: Marketo's concurrency limit stayed reached for {waited} ({attempts} answers of error 615): other integrations keep most of the instance's {MAX_CONCURRENCY} concurrent calls busy, and Drover had slowed to {} calls at once; run the task when the instance is quieter, or find the integration holding the calls in Marketo (Admin › Web Services › API call information)",
            pace.concurrency
        )
    } else {
        let what = if code == "606" {
            "error 606".to_owned()
        } else {
            format!("{code} Too Many Requests").replace("http-", "HTTP ")
        };
        format!(
            "gave up on the {operation} request: Marketo's rate limit stayed exhausted for {waited} ({attempts} answers of {what}): other integrations use most of the instance's {MAX_CALLS_PER_20S} calls per 20 s, and Drover had slowed to {} calls/{}; run the task when the instance is quieter, or find the integration using the calls in Marketo (Admin › Web Services › API call information)",
            pace.calls,
            show_window(pace.window)
        )
    }
}

/// `14 min`, `35 s`, `800 ms`.
fn show_duration(d: Duration) -> String {
    if d >= Duration::from_secs(120) {
        format!("{} min", (d.as_secs() + 30) / 60)
    } else if d >= Duration::from_secs(1) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn budget_text(
    environment: &str,
    budget: u64,
    used: u64,
    resets_at: Option<&DateTime<Utc>>,
) -> String {
    let reset = match resets_at {
        Some(at) => format!(
            "it resets at midnight ({})",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "it resets at midnight".to_owned(),
    };
    format!(
        "the daily MAP API budget of {} calls for environment {environment} is used up ({} spent); {reset}",
        thousands(budget),
        thousands(used)
    )
}

fn detail_text(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// `10000` → `"10,000"`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl From<BudgetExhausted> for MapError {
    fn from(b: BudgetExhausted) -> Self {
        MapError::BudgetExhausted {
            environment: b.environment,
            budget: b.budget,
            used: b.used,
            resets_at: b.resets_at,
        }
    }
}

impl MapError {
    /// Whether trying the same request again later may succeed: network errors, HTTP 429/502/503/504,
    /// a rate or concurrency limit that stayed exhausted,
    /// and the Marketo codes documented as transient (601/602 after re-authentication, 604, 606,
    /// 608, 611, 615, 713, 1016, 1029 "Too many jobs in queue").
    pub fn is_retryable(&self) -> bool {
        match self {
            MapError::Transport { .. } | MapError::RateLimited { .. } => true,
            MapError::Http { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            MapError::Api { code, message, .. } => matches!(
                classify_code(code, message),
                CodeClass::Reauth | CodeClass::Transient | CodeClass::QueueFull
            ),
            _ => false,
        }
    }

    /// The Marketo error code, if this error carries one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            MapError::Api { code, .. } | MapError::QuotaReached { code, .. } => Some(code),
            MapError::RetriesExhausted { last, .. } => last.api_code(),
            MapError::RateLimited { code, .. } if !code.starts_with("http-") => Some(code),
            _ => None,
        }
    }

    /// The key this error is counted under in [`crate::Usage::errors_by_code`].
    pub(crate) fn usage_key(&self) -> String {
        match self {
            MapError::Api { code, .. } | MapError::QuotaReached { code, .. } => code.clone(),
            MapError::Http { status, .. } => format!("http-{status}"),
            MapError::Transport { timeout: true, .. } => "timeout".to_owned(),
            MapError::Transport { .. } => "transport".to_owned(),
            MapError::Protocol { .. } => "protocol".to_owned(),
            _ => "other".to_owned(),
        }
    }

    /// Builds a [`MapError::Transport`] from a reqwest error, dropping the URL (the identity URL
    /// carries the client secret) and walking the source chain for a useful message.
    pub(crate) fn transport(operation: &str, err: reqwest::Error) -> Self {
        let timeout = err.is_timeout();
        // A connect error means nothing reached the server.
        let maybe_executed = !err.is_connect();
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        MapError::Transport {
            operation: operation.to_owned(),
            message,
            timeout,
            maybe_executed,
        }
    }

    /// Removes a secret from every text field (used on the identity path).
    pub(crate) fn scrubbed(self, secret: &crate::Secret) -> Self {
        match self {
            MapError::Auth(m) => MapError::Auth(secret.redact(&m)),
            MapError::Transport {
                operation,
                message,
                timeout,
                maybe_executed,
            } => MapError::Transport {
                operation,
                message: secret.redact(&message),
                timeout,
                maybe_executed,
            },
            MapError::Http {
                operation,
                status,
                detail,
            } => MapError::Http {
                operation,
                status,
                detail: secret.redact(&detail),
            },
            MapError::Protocol { operation, message } => MapError::Protocol {
                operation,
                message: secret.redact(&message),
            },
            MapError::RetriesExhausted {
                operation,
                attempts,
                last,
            } => MapError::RetriesExhausted {
                operation,
                attempts,
                last: Box::new(last.scrubbed(secret)),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_message_reads_well() {
        let e = MapError::BudgetExhausted {
            environment: "dev".into(),
            budget: 10_000,
            used: 10_000,
            resets_at: None,
        };
        assert_eq!(
            e.to_string(),
            "the daily MAP API budget of 10,000 calls for environment dev is used up (10,000 spent); it resets at midnight"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn export_quota_message_claims_no_figure() {
        let e = MapError::QuotaReached {
            code: "1029".into(),
            message: "Export daily quota exceeded".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("error 1029: Export daily quota exceeded"),
            "{text}"
        );
        assert!(text.contains("bulk-export quota"), "{text}");
        assert!(!text.contains("MB"), "{text}");
    }

    #[test]
    fn retryable_matrix() {
        let api = |code: &str, message: &str| MapError::Api {
            operation: "x".into(),
            code: code.into(),
            message: message.into(),
        };
        for code in [
            "601", "602", "604", "606", "608", "611", "615", "713", "1016",
        ] {
            assert!(api(code, "m").is_retryable(), "{code}");
        }
        assert!(api("1029", "Too many jobs in queue").is_retryable());
        for code in ["603", "605", "609", "610", "612", "613", "701", "1003"] {
            assert!(!api(code, "m").is_retryable(), "{code}");
        }
        assert!(!api("1029", "Export daily quota exceeded").is_retryable());
        assert!(!api("1029", "Job already queued").is_retryable());
    }
}
