//! One Marketo API call with everything around it: budget, rate limiter, token, timeout,
//! envelope check, re-authentication and retries.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RANGE};
use tokio::time::Instant;

use super::MarketoClient;
use super::envelope::{EnvelopeHead, excerpt};
use crate::rate_limit::Permit;
use crate::retry::{CodeClass, classify_code};
use crate::{MapError, Secret};

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    None,
    /// Serialized JSON.
    Json(Bytes),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `multipart/form-data` with text fields and one file part named `file`.
    Multipart {
        fields: Vec<(String, String)>,
        file: Bytes,
        file_name: String,
        mime: &'static str,
    },
}

/// Everything needed to (re)send one call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// What is being done, for messages ("sync leads").
    pub(crate) operation: &'static str,
    pub(crate) method: Method,
    /// Path under the base URL, starting with `/`.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) payload: Payload,
    /// Ask for the bytes from this offset on (`Range: bytes=N-`).
    pub(crate) range_from: Option<u64>,
    /// Total time allowed; `None` for downloads (the read timeout still applies).
    pub(crate) timeout: Option<Duration>,
    /// Whether the call may be re-sent after the server may have executed it.
    pub(crate) idempotent: bool,
    /// The answer is a file, not a JSON envelope (JSON answers are still checked as envelopes).
    pub(crate) raw: bool,
    /// Return "queue full" answers (1029 "Too many jobs in queue", 1016 "Too many imports") at
    /// once as [`MapError::Api`], because the caller waits for the queue with its poll policy.
    pub(crate) caller_waits_for_queue: bool,
}

impl Call {
    pub(crate) fn get(operation: &'static str, path: impl Into<String>) -> Self {
        Self {
            operation,
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            payload: Payload::None,
            range_from: None,
            timeout: None,
            idempotent: true,
            raw: false,
            caller_waits_for_queue: false,
        }
    }

    pub(crate) fn post(operation: &'static str, path: impl Into<String>, payload: Payload) -> Self {
        Self {
            method: Method::POST,
            payload,
            idempotent: false,
            ..Self::get(operation, path)
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON envelope with `success:true` (or, for a raw call, a JSON body).
    Json(Bytes),
    /// A file being received; the permit keeps the concurrency slot until it is dropped.
    Raw {
        response: reqwest::Response,
        permit: Permit,
    },
}

/// What to do after a failed attempt.
#[derive(Debug)]
enum Next {
    /// The token was refused: renew it and resend at once.
    Reauth(Secret),
    /// Try again after a delay of at least `min_delay`, unless the server may have executed a
    /// non-idempotent request.
    Retry {
        maybe_executed: bool,
        min_delay: Duration,
    },
    /// The instance's rate or concurrency limit is exhausted (nothing was executed): try again
    /// for as long as the deadline allows, at the limiter's slower pace.
    Limited(Limit),
    Stop,
}

#[derive(Debug)]
struct Failure {
    error: MapError,
    next: Next,
}

impl Failure {
    fn stop(error: MapError) -> Self {
        Self {
            error,
            next: Next::Stop,
        }
    }
}

/// Which of Marketo's per-instance limits refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// 606 (or HTTP 429): calls per 20 s.
    Rate,
    /// 615: concurrent calls.
    Concurrency,
}

/// Re-authentications allowed per call.
const MAX_REAUTHS: u32 = 3;

impl MarketoClient {
    /// Sends a call until it succeeds, fails for good, or runs out of attempts (or, while the
    /// instance's rate or concurrency limit is exhausted, out of time).
    pub(crate) async fn execute(&self, call: &Call) -> Result<Reply, MapError> {
        let policy = &self.shared.config.retry;
        let first = Instant::now();
        let deadline = self
            .scope
            .deadline
            .unwrap_or(first + policy.rate_limited_patience);
        let mut attempt = 0u32;
        // Failures that count against `max_attempts` (every retryable one but the limits).
        let mut failures = 0u32;
        let mut limited = 0u32;
        let mut limited_since: Option<Instant> = None;
        let mut reauths = 0u32;
        loop {
            attempt += 1;
            let failure = match self.attempt(call).await {
                Ok(reply) => return Ok(reply),
                Err(f) => f,
            };
            if !matches!(failure.error, MapError::BudgetExhausted { .. }) {
                self.usage.error(&failure.error.usage_key());
            }
            match failure.next {
                Next::Reauth(token) => {
                    if reauths >= MAX_REAUTHS {
                        return Err(MapError::Auth(format!(
                            "Marketo kept refusing fresh access tokens during the {} request ({})",
                            call.operation, failure.error
                        )));
                    }
                    reauths += 1;
                    attempt -= 1;
                    self.usage.reauth();
                    tracing::info!(
                        operation = call.operation,
                        error = %failure.error,
                        "MAP access token refused; renewing it"
                    );
                    self.shared
                        .tokens
                        .reject(&self.shared.config.client_id, &token)
                        .await;
                }
                Next::Limited(limit) => {
                    limited += 1;
                    let now = Instant::now();
                    let since = *limited_since.get_or_insert(now);
                    // After a 606 the limiter holds every call until the window has passed; a
                    // 615 waits for a slot at the lower concurrency after a short backoff.
                    let delay = match limit {
                        Limit::Rate => policy.delay(1),
                        Limit::Concurrency => policy.delay(limited.min(4)),
                    };
                    let resume = self
                        .shared
                        .limiter
                        .paused_until()
                        .map_or(now + delay, |p| p.max(now + delay));
                    if resume >= deadline {
                        return Err(MapError::RateLimited {
                            operation: call.operation.to_owned(),
                            code: failure.error.usage_key(),
                            waited: now.duration_since(since),
                            attempts: limited,
                            pace: self.shared.limiter.pace(),
                        });
                    }
                    self.usage.retry();
                    tracing::debug!(
                        operation = call.operation,
                        attempt,
                        delay_ms = resume.duration_since(now).as_millis() as u64,
                        error = %failure.error,
                        "MAP limit exhausted; retrying at a slower pace"
                    );
                    tokio::time::sleep(delay).await;
                }
                Next::Retry {
                    maybe_executed,
                    min_delay,
                } => {
                    if maybe_executed && !call.idempotent {
                        tracing::warn!(
                            operation = call.operation,
                            error = %failure.error,
                            "not retrying a write the MAP may already have executed"
                        );
                        return Err(failure.error);
                    }
                    failures += 1;
                    if failures >= policy.max_attempts {
                        return Err(MapError::RetriesExhausted {
                            operation: call.operation.to_owned(),
                            attempts: attempt,
                            last: Box::new(failure.error),
                        });
                    }
                    let delay = policy.delay(failures).max(min_delay);
                    self.usage.retry();
                    tracing::warn!(
                        operation = call.operation,
                        attempt,
                        max_attempts = policy.max_attempts,
                        delay_ms = delay.as_millis() as u64,
                        error = %failure.error,
                        "retrying MAP call"
                    );
                    tokio::time::sleep(delay).await;
                }
                Next::Stop => return Err(failure.error),
            }
        }
    }

    async fn attempt(&self, call: &Call) -> Result<Reply, Failure> {
        // Token first: identity calls are free, and a call that cannot be authenticated must
        // not cost budget.
        let token = self.token().await.map_err(Failure::stop)?;
        // What the MAP answers may echo the token (a URL, a header) in any encoding.
        self.attempt_with(call, &token).await.map_err(|f| Failure {
            error: f
                .error
                .scrubbed(&token)
                .scrubbed(&self.shared.config.client_secret),
            next: f.next,
        })
    }

    async fn attempt_with(&self, call: &Call, token: &Secret) -> Result<Reply, Failure> {
        let shared = &self.shared;
        shared
            .budget
            .spend(1)
            .await
            .map_err(|e| Failure::stop(e.into()))?;
        let permit = shared.limiter.acquire().await;
        let started = permit.started();

        let url = format!("{}{}", shared.base_url, call.path);
        let mut rb = shared
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token.expose());
        if !call.query.is_empty() {
            rb = rb.query(&call.query);
        }
        if let Some(t) = call.timeout {
            rb = rb.timeout(t);
        }
        if let Some(from) = call.range_from {
            rb = rb.header(RANGE, format!("bytes={from}-"));
        }
        rb = match &call.payload {
            Payload::None => rb,
            Payload::Json(body) => {
                self.usage.uploaded(body.len() as u64);
                rb.header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
            }
            Payload::Form(pairs) => {
                let len: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                self.usage.uploaded(len as u64);
                rb.form(pairs)
            }
            Payload::Multipart {
                fields,
                file,
                file_name,
                mime,
            } => {
                self.usage.uploaded(file.len() as u64);
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(file.clone()),
                    file.len() as u64,
                )
                .file_name(file_name.clone())
                .mime_str(mime)
                .map_err(|e| Failure::stop(MapError::transport(call.operation, e)))?;
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in fields {
                    form = form.text(k.clone(), v.clone());
                }
                rb.multipart(form.part("file", part))
            }
        };

        self.usage.call();
        let response = rb.send().await.map_err(|e| {
            let error = MapError::transport(call.operation, e);
            let maybe_executed = matches!(
                error,
                MapError::Transport {
                    maybe_executed: true,
                    ..
                }
            );
            Failure {
                error,
                next: Next::Retry {
                    maybe_executed,
                    min_delay: Duration::ZERO,
                },
            }
        })?;

        let status = response.status().as_u16();
        if status == 429 {
            let body = response.bytes().await.unwrap_or_default();
            shared.limiter.rate_limited(started);
            return Err(Failure {
                error: MapError::Http {
                    operation: call.operation.to_owned(),
                    status,
                    detail: excerpt(&body),
                },
                next: Next::Limited(Limit::Rate),
            });
        }
        if (502..=504).contains(&status) {
            let body = response.bytes().await.unwrap_or_default();
            return Err(Failure {
                error: MapError::Http {
                    operation: call.operation.to_owned(),
                    status,
                    detail: excerpt(&body),
                },
                // 503 refuses the request; 502/504 are gateway timeouts after which the
                // backend may still have run it.
                next: Next::Retry {
                    maybe_executed: matches!(status, 502 | 504),
                    min_delay: Duration::ZERO,
                },
            });
        }
        if !(200..300).contains(&status) {
            let body = response.bytes().await.unwrap_or_default();
            let error = match status {
                413 => MapError::TooLarge(format!(
                    "Marketo refused the {} request body as too large (HTTP 413)",
                    call.operation
                )),
                _ => MapError::Http {
                    operation: call.operation.to_owned(),
                    status,
                    detail: excerpt(&body),
                },
            };
            return Err(Failure::stop(error));
        }

        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        if call.raw && !is_json {
            return Ok(Reply::Raw { response, permit });
        }

        let body = response.bytes().await.map_err(|e| Failure {
            error: MapError::transport(call.operation, e),
            next: Next::Retry {
                maybe_executed: true,
                min_delay: Duration::ZERO,
            },
        })?;
        drop(permit);
        let head: EnvelopeHead = match serde_json::from_slice(&body) {
            Ok(h) => h,
            Err(e) if call.raw => {
                // A file that merely claims to be JSON.
                tracing::debug!(error = %e, "raw answer labelled JSON is not an envelope");
                return Ok(Reply::Json(body));
            }
            Err(e) => {
                return Err(Failure::stop(MapError::Protocol {
                    operation: call.operation.to_owned(),
                    message: format!("the body is not a JSON envelope ({e}): {}", excerpt(&body)),
                }));
            }
        };
        if head.success {
            return Ok(Reply::Json(body));
        }
        let Some(first) = head.errors.first() else {
            return Err(Failure::stop(MapError::Protocol {
                operation: call.operation.to_owned(),
                message: "success:false without any error".to_owned(),
            }));
        };
        let api = MapError::Api {
            operation: call.operation.to_owned(),
            code: first.code.clone(),
            message: first.message.clone(),
        };
        let not_executed = Next::Retry {
            maybe_executed: false,
            min_delay: Duration::ZERO,
        };
        Err(match classify_code(&first.code, &first.message) {
            CodeClass::Reauth => Failure {
                error: api,
                next: Next::Reauth(token.clone()),
            },
            CodeClass::Transient if first.code == "1016" && call.caller_waits_for_queue => {
                Failure::stop(api)
            }
            CodeClass::Transient if first.code.trim() == "606" => {
                shared.limiter.rate_limited(started);
                Failure {
                    error: api,
                    next: Next::Limited(Limit::Rate),
                }
            }
            CodeClass::Transient if first.code.trim() == "615" => {
                shared.limiter.concurrency_limited(started);
                Failure {
                    error: api,
                    next: Next::Limited(Limit::Concurrency),
                }
            }
            CodeClass::Transient => Failure {
                error: api,
                next: not_executed,
            },
            CodeClass::QueueFull if call.caller_waits_for_queue => Failure::stop(api),
            CodeClass::QueueFull => Failure {
                error: api,
                next: not_executed,
            },
            CodeClass::Quota => Failure::stop(MapError::QuotaReached {
                code: first.code.clone(),
                message: first.message.clone(),
            }),
            CodeClass::AlreadyQueued | CodeClass::Fatal => Failure::stop(api),
        })
    }

    async fn token(&self) -> Result<Secret, MapError> {
        let shared = &self.shared;
        let identity = crate::auth::Identity {
            http: &shared.http,
            base_url: &shared.base_url,
            client_id: &shared.config.client_id,
            client_secret: &shared.config.client_secret,
            retry: &shared.config.retry,
            timeout: shared.config.request_timeout,
            usage: &self.usage,
        };
        shared.tokens.token(&identity).await
    }

    /// Sends a call and parses the JSON envelope's typed part.
    pub(crate) async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<super::envelope::Envelope<T>, MapError> {
        let body = match self.execute(call).await? {
            Reply::Json(body) => body,
            Reply::Raw { response, .. } => response
                .bytes()
                .await
                .map_err(|e| MapError::transport(call.operation, e))?,
        };
        serde_json::from_slice(&body).map_err(|e| MapError::Protocol {
            operation: call.operation.to_owned(),
            message: format!(
                "the result does not have the documented shape ({e}): {}",
                excerpt(&body)
            ),
        })
    }
}
