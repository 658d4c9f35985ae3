//! What starts a run besides its schedule (`triggers:`), and how fresh its data must be
//! (`freshness:`).
//!
//! ```yaml
//! triggers:
//!   - webhook:
//!       name: form                       # POST /hooks/{env}/{dag}/form
//!       secret: contact_sales_hook       # a secret of the environment (its `secrets:`)
//!       idempotency_key: /fillId         # optional: JSON pointer into the body
//!       rows: /leads                     # optional: stage one row per element of this array
//!       batch: { max_events: 500, max_wait: 10s }   # optional: gather events into one run
//!   - dataset: { dag: lead_scoring, task: score }   # when that task's dataset is produced
//! freshness: { max_age: 26h }
//! ```

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// One entry of `triggers:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Webhook(WebhookTrigger),
    Dataset(DatasetTrigger),
}

/// `webhook:`: a run per event posted to `/hooks/{env}/{dag}/{name}` (or per batch of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookTrigger {
    pub name: String,
    /// The name of a secret in the environment's `secrets:`: a DAG names the secret, each
    /// environment holds its own value. Requests carry it as `Authorization: Bearer …` or
    /// sign their body with it (`X-Drover-Signature: sha256=<hex HMAC-SHA256>`).
    pub secret: String,
    /// A JSON pointer (RFC 6901) into the body whose value identifies the event: a repeat
    /// is answered with the first one's run. The `Idempotency-Key` header wins over it.
    pub idempotency_key: Option<String>,
    /// A JSON pointer to an array in the body: the run's staged events hold one row per
    /// element instead of one per event.
    pub rows: Option<String>,
    /// Events gathered into one run; none: a run per event.
    pub batch: Option<Batch>,
}

/// `batch:`: a run starts once it has `max_events` events or its first event is `max_wait` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub max_events: u32,
    pub max_wait: Duration,
}

/// `dataset:`: a run when `task` of `dag` produces its dataset in the same environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetTrigger {
    pub dag: String,
    pub task: String,
}

/// `freshness:` of a DAG (its last successful run) or a task (its last successful try).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// Stale once nothing has refreshed it for longer than this.
    pub max_age: Duration,
}

/// The most events one batch may gather.
pub const MAX_BATCH_EVENTS: u32 = 10_000;
/// The longest a batch may wait for more events.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(3_600);

/// `triggers:` entries as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRunTrigger {
    #[serde(default)]
    pub(crate) webhook: Option<RawWebhook>,
    #[serde(default)]
    pub(crate) dataset: Option<DatasetTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub(crate) name: String,
    pub(crate) secret: RawSecretName,
    #[serde(default)]
    pub(crate) idempotency_key: Option<String>,
    #[serde(default)]
    pub(crate) rows: Option<String>,
    #[serde(default)]
    pub(crate) batch: Option<Batch>,
}

/// A secret's name, or a mapping someone wrote by habit (`{ env: VAR }`), refused with a
/// message that says where the value belongs.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSecretName {
    Name(String),
    Reference(serde::de::IgnoredAny),
}

/// Whether `p` is a JSON pointer (RFC 6901): empty, or `/`-separated tokens where `~` is
/// only followed by `0` or `1`.
pub fn is_json_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

impl RunTrigger {
    /// "webhook `form`", "dataset of lead_scoring.score".
    pub fn describe(&self) -> String {
        match self {
            Self::Webhook(w) => match &w.batch {
                None => format!("webhook `{}`", w.name),
                Some(b) => format!(
                    "webhook `{}` (batches of up to {} events, or {})",
                    w.name, b.max_events, b.max_wait
                ),
            },
            Self::Dataset(d) => format!("dataset of {}.{}", d.dag, d.task),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_follow_rfc_6901() {
        for ok in ["", "/", "/a", "/a/0", "/a~1b", "/m~0n", "/leads/0/email"] {
            assert!(is_json_pointer(ok), "{ok}");
        }
        for bad in ["a", "leads", "/a~", "/a~2", "$.a", "#/a"] {
            assert!(!is_json_pointer(bad), "{bad}");
        }
    }
}
