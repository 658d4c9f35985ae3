//! Identity: `/identity/oauth/token` and bearer-token checks (600/601/602).
//!
//! As in Marketo, asking for a token before the current one expires returns the same token with
//! its remaining lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::envelope::ApiError;
use crate::state::AppState;

/// A token and what limits its life.
#[derive(Debug, Clone)]
struct Token {
    client_id: String,
    expires_at: DateTime<Utc>,
    calls_left: Option<u32>,
    killed: bool,
}

/// The tokens issued so far, and the live one per client id.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    inner: Mutex<Tokens>,
}

#[derive(Debug, Default)]
struct Tokens {
    live: HashMap<String, String>,
    all: HashMap<String, Token>,
}

/// Who is calling: attached to every authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) client_id: String,
    pub(crate) token: String,
}

impl TokenStore {
    /// The live token of `client_id` (or a new one) and its remaining seconds.
    fn issue(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
        ttl_secs: i64,
        max_calls: Option<u32>,
    ) -> (String, i64) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = t.live.get(client_id).cloned()
            && let Some(tok) = t.all.get(&existing)
            && usable(tok, now)
        {
            return (existing, (tok.expires_at - now).num_seconds().max(0));
        }
        let value = format!("{}:sj", uuid::Uuid::new_v4());
        t.all.insert(
            value.clone(),
            Token {
                client_id: client_id.to_owned(),
                expires_at: now + chrono::Duration::seconds(ttl_secs),
                calls_left: max_calls,
                killed: false,
            },
        );
        t.live.insert(client_id.to_owned(), value.clone());
        (value, ttl_secs)
    }

    /// Checks a token and counts the call against its call budget (token-expiry fault).
    pub(crate) fn check(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ApiError> {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tok) = t.all.get_mut(token) else {
            return Err(ApiError::invalid_token());
        };
        if !usable(tok, now) {
            return Err(ApiError::expired_token());
        }
        if let Some(left) = tok.calls_left.as_mut() {
            if *left == 0 {
                tok.killed = true;
                return Err(ApiError::expired_token());
            }
            *left -= 1;
        }
        Ok(Caller {
            client_id: tok.client_id.clone(),
            token: token.to_owned(),
        })
    }

    /// Expires one token now.
    pub(crate) fn kill(&self, token: &str) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tok) = t.all.get_mut(token) {
            tok.killed = true;
        }
    }

    /// Expires every token now.
    pub(crate) fn kill_all(&self) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for tok in t.all.values_mut() {
            tok.killed = true;
        }
    }
}

fn usable(tok: &Token, now: DateTime<Utc>) -> bool {
    !tok.killed && tok.expires_at > now
}

/// Query (or form) parameters of the Identity call.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct TokenParams {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `GET|POST /identity/oauth/token`.
pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TokenParams>,
    body: axum::body::Bytes,
) -> Response {
    state.stats.count_call("GET|POST /identity/oauth/token");
    let form: TokenParams = serde_urlencoded_form(&body);
    let pick = |a: Option<String>, b: Option<String>| a.filter(|s| !s.is_empty()).or(b);
    let grant = pick(query.grant_type, form.grant_type);
    let id = pick(query.client_id, form.client_id);
    let secret = pick(query.client_secret, form.client_secret);
    if grant.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        );
    }
    let (Some(id), Some(secret)) = (id, secret) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    };
    if !state.credentials_ok(&id, &secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    }
    let faults = state.faults();
    let (ttl, max_calls) = match &faults.token_expiry {
        Some(f) => (
            i64::try_from(f.ttl_secs).unwrap_or(i64::MAX / 4),
            Some(f.max_calls),
        ),
        None => (
            i64::try_from(state.limits.token_ttl.as_secs()).unwrap_or(3600),
            None,
        ),
    };
    let (access_token, remaining) = state.tokens.issue(&id, state.clock.now(), ttl, max_calls);
    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": remaining,
        "scope": format!("{id}@drover-sandbox.example"),
    }))
    .into_response()
}

/// Parses an `application/x-www-form-urlencoded` body leniently (empty or bad → defaults).
fn serde_urlencoded_form<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> T {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{}", String::from_utf8_lossy(body))
            .parse()
            .unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// The token of a request: `Authorization: Bearer …` or the `access_token` query parameter.
pub(crate) fn token_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(h) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let h = h.trim();
        if let Some(rest) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        {
            let t = rest.trim();
            if !t.is_empty() {
                return Some(t.to_owned());
            }
        }
    }
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "access_token" && !v.is_empty()).then(|| v.replace("%3A", ":").replace("%3a", ":"))
    })
}
