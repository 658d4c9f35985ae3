//! Usage counters: what a client (or one task's handle on it) spent.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of the counters, stored by the engine per task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// API calls sent (each attempt counts; identity calls are not included).
    pub calls: u64,
    /// Identity (token) calls; they do not count against Marketo's limits.
    pub identity_calls: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
    /// Times the token was renewed because the API said it was invalid or expired (600/601/602).
    pub reauths: u64,
    /// Failures seen, by code: Marketo codes as they come (`"606"`), HTTP statuses as `"http-502"`,
    /// network problems as `"transport"` or `"timeout"`.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Bytes of export files received.
    pub bytes_downloaded: u64,
    /// Bytes of request bodies sent (JSON, forms and import files).
    pub bytes_uploaded: u64,
}

/// Live counters behind a [`Usage`] snapshot; shared by the clones of one handle.
#[derive(Debug, Default)]
pub(crate) struct UsageCounters {
    calls: AtomicU64,
    identity_calls: AtomicU64,
    retries: AtomicU64,
    reauths: AtomicU64,
    bytes_downloaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl UsageCounters {
    pub(crate) fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn identity_call(&self) {
        self.identity_calls.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn reauth(&self) {
        self.reauths.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn error(&self, code: &str) {
        if let Ok(mut map) = self.errors.lock() {
            *map.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> Usage {
        Usage {
            calls: self.calls.load(Ordering::Relaxed),
            identity_calls: self.identity_calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reauths: self.reauths.load(Ordering::Relaxed),
            errors_by_code: self.errors.lock().map(|m| m.clone()).unwrap_or_default(),
            bytes_downloaded: self.bytes_downloaded.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
        }
    }
}
