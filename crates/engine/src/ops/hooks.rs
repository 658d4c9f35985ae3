//! Webhooks: an event posted by another system (`POST /hooks/{env}/{dag}/{name}`), checked
//! against the environment's secret the trigger names and recorded with its run in one
//! transaction. Machine to machine: no user, no session; the secret is the credential.
//!
//! A wrong secret, a body that is not JSON or a full queue leave no trace: the sender retries.
//! In maintenance or while the DAG is paused the event is kept all the same — a form's "Call
//! Webhook" step does not retry, and a lost fill is a lost lead — and its run waits until
//! maintenance ends or the DAG is unpaused; the answer says so ([`Held`]).

use std::time::Duration;

use chrono::Utc;
use drover_map::Secret;
use drover_spec::dag::WebhookTrigger;
use drover_store::{Accepted, BatchRule, EventKind, NewEvent, NewRun, RunType};

use super::{OpError, Operations};
use crate::secrets::SecretSource;

/// What a sender posted, as received.
#[derive(Debug, Clone, Copy)]
pub struct HookRequest<'a> {
    pub environment: &'a str,
    pub dag_id: &'a str,
    pub hook: &'a str,
    /// The raw body (the signature covers these bytes).
    pub body: &'a [u8],
    /// The token of `Authorization: Bearer <token>`.
    pub bearer: Option<&'a str>,
    /// `X-Drover-Signature`: `sha256=<hex HMAC-SHA256 of the body>`.
    pub signature: Option<&'a str>,
    /// The `Idempotency-Key` header (it wins over the trigger's `idempotency_key` pointer).
    pub idempotency_key: Option<&'a str>,
    /// The sender in words (address and agent), recorded as the event's source.
    pub source: &'a str,
}

/// Why a webhook's event was not accepted; nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No DAG of that id in the environment, or no webhook of that name on it.
    #[error("{0}")]
    NotFound(String),
    /// Neither a bearer token nor a signature matching the environment's secret.
    #[error(
        "the request must carry the webhook's secret: `Authorization: Bearer <secret>` or `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the body>`"
    )]
    Unauthorized,
    /// The body is not a JSON document.
    #[error("the body must be JSON: {0}")]
    NotJson(String),
    /// Too many of the DAG's events wait in runs not yet started.
    #[error(
        "`{dag}` has {waiting} events waiting in runs not yet started in `{environment}` (at most {max}, the environment's `events.max_waiting`): try again later"
    )]
    QueueFull {
        dag: String,
        environment: String,
        waiting: i64,
        max: u32,
    },
    /// The webhook's secret cannot be read (the environment does not define it, or its
    /// place is unreadable): an operator must fix the files.
    #[error("{0}")]
    SecretUnavailable(String),
    #[error(transparent)]
    Op(#[from] OpError),
}

impl From<drover_store::StoreError> for HookError {
    fn from(e: drover_store::StoreError) -> Self {
        HookError::Op(e.into())
    }
}

impl From<crate::EngineError> for HookError {
    fn from(e: crate::EngineError) -> Self {
        HookError::Op(e.into())
    }
}

/// How long a sender refused for a full queue, or told its event waits, is asked to wait.
pub const HOOK_RETRY_AFTER_SECS: i64 = 30;

/// An accepted event, and why its run cannot start yet, if it cannot.
#[derive(Debug, Clone)]
pub struct HookAccepted {
    pub accepted: Accepted,
    pub held: Option<Held>,
}

/// Why a kept event's run waits.
#[derive(Debug, Clone)]
pub enum Held {
    /// Drover is in maintenance: no run starts until it ends.
    Maintenance(drover_store::Maintenance),
    /// The DAG is paused in the environment.
    Paused { dag: String, environment: String },
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::Maintenance(m) => write!(
                f,
                "Drover is in maintenance ({}): the event is kept and its run starts when maintenance ends",
                m.message
            ),
            Held::Paused { dag, environment } => write!(
                f,
                "`{dag}` is paused in `{environment}`: the event is kept and its run starts when the DAG is unpaused"
            ),
        }
    }
}

impl Operations {
    /// Accept one posted event: the DAG's webhook, its environment's secret, then the event
    /// and its run (or the batch it joins) in one transaction. A repeated idempotency key is
    /// answered with the first event and run (`duplicate`), creating nothing. In maintenance
    /// or while the DAG is paused the event is kept and `held` says why its run waits.
    pub async fn accept_hook(&self, req: &HookRequest<'_>) -> Result<HookAccepted, HookError> {
        let unknown = || {
            HookError::NotFound(format!(
                "no webhook `{}` of DAG `{}` in environment `{}`",
                req.hook, req.dag_id, req.environment
            ))
        };
        let env = self
            .environment(req.environment)
            .await
            .map_err(|_| unknown())?;
        let de = self
            .store
            .dag_env(req.dag_id, req.environment)
            .await
            .map_err(|_| unknown())?;
        if !de.active {
            return Err(unknown());
        }
        let dag = self.dags.get(de.version_id).await?;
        let hook = dag.webhook(req.hook).ok_or_else(unknown)?;
        let Some(at) = env.secrets.get(&hook.secret) else {
            return Err(HookError::SecretUnavailable(format!(
                "webhook `{}` of `{}` names secret `{}`, which environment `{}` does not define",
                hook.name, dag.id, hook.secret, env.name
            )));
        };
        let secret = self.secret_source().read(at).map_err(|why| {
            HookError::SecretUnavailable(format!(
                "secret `{}` of environment `{}` comes from {why}",
                hook.secret, env.name
            ))
        })?;
        if !authentic(req, &secret) {
            return Err(HookError::Unauthorized);
        }
        let payload: serde_json::Value =
            serde_json::from_slice(req.body).map_err(|e| HookError::NotJson(e.to_string()))?;
        let idempotency_key = match req.idempotency_key {
            Some(k) => Some(k.to_owned()),
            None => key_at(hook, &payload),
        };
        let held = match self.store.maintenance().await? {
            Some(m) => Some(Held::Maintenance(m)),
            None if de.paused => Some(Held::Paused {
                dag: dag.id.clone(),
                environment: env.name.clone(),
            }),
            None => None,
        };
        let waiting = self.store.waiting_events(&dag.id, &env.name).await?;
        if waiting >= i64::from(env.events.max_waiting) {
            // A repeat of an accepted event is still answered with its run.
            if let Some(key) = &idempotency_key
                && let Some(first) = self
                    .store
                    .event_by_key(&env.name, &dag.id, &hook.name, key)
                    .await?
            {
                return Ok(HookAccepted {
                    accepted: first,
                    held,
                });
            }
            return Err(HookError::QueueFull {
                dag: dag.id.clone(),
                environment: env.name.clone(),
                waiting,
                max: env.events.max_waiting,
            });
        }
        let now = Utc::now();
        let accepted = self
            .store
            .accept_event(&NewEvent {
                kind: EventKind::Webhook,
                trigger: hook.name.clone(),
                source: req.source.to_owned(),
                idempotency_key,
                payload,
                replay_of: None,
                run: NewRun {
                    dag_id: dag.id.clone(),
                    environment: env.name.clone(),
                    version_id: de.version_id,
                    run_type: RunType::Event,
                    logical_date: now,
                    interval_start: now,
                    interval_end: now,
                    params: serde_json::json!({}),
                    triggered_by: Some(format!("webhook {}", hook.name)),
                    deadline_at: dag.deadline.map(|d| d.due(now, dag.timezone)),
                    preview: false,
                },
                batch: hook.batch.map(|b| BatchRule {
                    max_events: i32::try_from(b.max_events).unwrap_or(i32::MAX),
                    max_wait: Duration::from_millis(b.max_wait.as_millis()),
                }),
            })
            .await?;
        Ok(HookAccepted { accepted, held })
    }

    /// Where secrets come from in this process: as its tasks' do (values it was handed
    /// first, then the process environment and files).
    fn secret_source(&self) -> SecretSource {
        self.plane.as_ref().map_or_else(SecretSource::new, |p| {
            SecretSource::with_provided(p.maps().provided().clone())
        })
    }
}

/// The value at the trigger's `idempotency_key` pointer, as text (a string as is, another
/// value as its JSON); none when the trigger has no pointer or the body nothing there.
fn key_at(hook: &WebhookTrigger, payload: &serde_json::Value) -> Option<String> {
    let v = payload.pointer(hook.idempotency_key.as_deref()?)?;
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether the request carries the secret: as a bearer token, or as the key of the body's
/// HMAC-SHA256. Both comparisons take the same time whatever they hold.
fn authentic(req: &HookRequest<'_>, secret: &Secret) -> bool {
    let secret = secret.expose().as_bytes();
    if secret.is_empty() {
        return false;
    }
    if let Some(token) = req.bearer
        && same(token.as_bytes(), secret)
    {
        return true;
    }
    if let Some(sig) = req.signature
        && let Some(tag) = sig.trim().strip_prefix("sha256=").and_then(unhex)
    {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        return ring::hmac::verify(&key, req.body, &tag).is_ok();
    }
    false
}

/// Constant-time equality (the length may show, the contents do not).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(body: &'a [u8], bearer: Option<&'a str>, sig: Option<&'a str>) -> HookRequest<'a> {
        HookRequest {
            environment: "dev",
            dag_id: "d",
            hook: "form",
            body,
            bearer,
            signature: sig,
            idempotency_key: None,
            source: "test",
        }
    }

    #[test]
    fn a_bearer_token_or_a_signature_of_the_body_authenticates() {
        let secret = Secret::new("Jefe");
        let body = b"what do ya want for nothing?";
        // RFC 4231, test case 2.
        let good = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(authentic(&req(body, Some("Jefe"), None), &secret));
        assert!(authentic(&req(body, None, Some(good)), &secret));
        assert!(authentic(
            &req(
                body,
                None,
                Some(&good.to_uppercase().replace("SHA256=", "sha256="))
            ),
            &secret
        ));
        assert!(!authentic(&req(body, Some("jefe"), None), &secret));
        assert!(!authentic(&req(body, Some("Jefe "), None), &secret));
        assert!(!authentic(&req(b"other body", None, Some(good)), &secret));
        assert!(!authentic(&req(body, None, Some("sha256=zz")), &secret));
        assert!(!authentic(&req(body, None, Some(&good[7..])), &secret));
        assert!(!authentic(&req(body, None, None), &secret));
        assert!(!authentic(&req(body, Some(""), None), &Secret::new("")));
    }

    #[test]
    fn the_key_pointer_reads_text_or_json() {
        let hook = WebhookTrigger {
            name: "form".into(),
            secret: "s".into(),
            idempotency_key: Some("/fill/id".into()),
            rows: None,
            batch: None,
        };
        let at = |v: serde_json::Value| key_at(&hook, &v);
        assert_eq!(
            at(serde_json::json!({"fill": {"id": "f-1"}})).as_deref(),
            Some("f-1")
        );
        assert_eq!(
            at(serde_json::json!({"fill": {"id": 17}})).as_deref(),
            Some("17")
        );
        assert_eq!(at(serde_json::json!({"fill": {"id": null}})), None);
        assert_eq!(at(serde_json::json!({"other": 1})), None);
    }
}
