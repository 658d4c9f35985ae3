//! Marketo Identity: OAuth client-credentials tokens, cached per client id.
//!
//! Identity hands back the *same* token with its remaining life until it dies, so refreshing
//! early is useless: the client uses a token until it is (nearly) expired or the API says 601/602,
//! and when Identity still returns the token the API just refused, it waits for it to die.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::marketo::envelope::excerpt;
use crate::retry::RetryPolicy;
use crate::usage::UsageCounters;
use crate::{MapError, Secret};

/// Tokens by client id (two custom services keep independent tokens).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: Secret,
    expires_at: Instant,
    rejected: bool,
}

/// What an identity call needs.
#[derive(Debug)]
pub(crate) struct Identity<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) base_url: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a Secret,
    pub(crate) retry: &'a RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) usage: &'a UsageCounters,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A token this close to its end is not used any more.
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// Identity returning a refused/expiring token: wait for it to die at most this many times.
const MAX_STALE_WAITS: u32 = 3;

impl TokenCache {
    /// A valid token for the client, fetching one if needed. Concurrent callers wait for a
    /// single identity call.
    pub(crate) async fn token(&self, id: &Identity<'_>) -> Result<Secret, MapError> {
        let mut tokens = self.tokens.lock().await;
        let now = Instant::now();
        let avoid = match tokens.get(id.client_id) {
            Some(c) if !c.rejected && c.expires_at > now + EXPIRY_MARGIN => {
                return Ok(c.token.clone());
            }
            Some(c) => Some(c.token.clone()),
            None => None,
        };
        let mut waits = 0;
        loop {
            let (token, expires_in) = fetch(id).await.map_err(|e| e.scrubbed(id.client_secret))?;
            let life = Duration::from_secs(u64::try_from(expires_in).unwrap_or(0));
            let same_as_refused = avoid.as_ref() == Some(&token);
            if (same_as_refused || life <= EXPIRY_MARGIN)
                && life <= Duration::from_secs(60)
                && waits < MAX_STALE_WAITS
            {
                waits += 1;
                tracing::info!(
                    wait_s = life.as_secs() + 1,
                    "Marketo identity returned a token that is about to expire; waiting for a new one"
                );
                tokio::time::sleep(life + Duration::from_secs(1)).await;
                continue;
            }
            tokens.insert(
                id.client_id.to_owned(),
                Cached {
                    token: token.clone(),
                    expires_at: Instant::now() + life,
                    rejected: false,
                },
            );
            return Ok(token);
        }
    }

    /// Marks `token` as refused by the API (601/602), so the next call fetches another.
    pub(crate) async fn reject(&self, client_id: &str, token: &Secret) {
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get_mut(client_id)
            && c.token == *token
        {
            c.rejected = true;
        }
    }
}

/// One identity call, retried on network errors and HTTP 502/503/504 only. The client secret
/// travels in the query string, as documented; errors never carry the URL.
async fn fetch(id: &Identity<'_>) -> Result<(Secret, i64), MapError> {
    const OP: &str = "identity (token)";
    let url = format!("{}/identity/oauth/token", id.base_url);
    let mut attempt = 0;
    loop {
        attempt += 1;
        id.usage.identity_call();
        let result = id
            .http
            .get(&url)
            .query(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.client_id),
                ("client_secret", id.client_secret.expose()),
            ])
            .timeout(id.timeout)
            .send()
            .await;
        let err = match result {
            Err(e) => MapError::transport(OP, e),
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(e) => MapError::transport(OP, e),
                    Ok(body) if matches!(status, 502..=504) => MapError::Http {
                        operation: OP.to_owned(),
                        status,
                        detail: excerpt(&body),
                    },
                    Ok(body) => return parse_token(status, &body),
                }
            }
        };
        id.usage.error(&err.usage_key());
        if attempt >= id.retry.max_attempts {
            return Err(MapError::RetriesExhausted {
                operation: OP.to_owned(),
                attempts: attempt,
                last: Box::new(err),
            });
        }
        let delay = id.retry.delay(attempt);
        tracing::warn!(
            operation = OP,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "retrying MAP identity call"
        );
        tokio::time::sleep(delay).await;
    }
}

fn parse_token(status: u16, body: &[u8]) -> Result<(Secret, i64), MapError> {
    let parsed: Option<TokenResponse> = serde_json::from_slice(body).ok();
    if let Some(TokenResponse {
        access_token: Some(token),
        expires_in,
        ..
    }) = &parsed
        && (200..300).contains(&status)
        && !token.is_empty()
    {
        return Ok((Secret::new(token.clone()), expires_in.unwrap_or(3600)));
    }
    let why = parsed
        .and_then(|p| match (p.error, p.error_description) {
            (_, Some(d)) => Some(d),
            (Some(e), None) => Some(e),
            _ => None,
        })
        .unwrap_or_else(|| excerpt(body));
    Err(MapError::Auth(if status == 401 {
        format!("Marketo rejected the client id or secret (HTTP 401: {why})")
    } else {
        format!("Marketo's identity service answered HTTP {status} without a token: {why}")
    }))
}
