//! Per-call statistics for `/_sandbox/stats` and Marketo's `/rest/v1/stats/*.json`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Counters of calls, errors and HTTP statuses.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<Counts>,
    /// Endpoints in the order they were called, the first [`MAX_LOGGED_CALLS`] since a reset.
    order: Mutex<Vec<String>>,
}

/// Calls the ordered call log keeps.
const MAX_LOGGED_CALLS: usize = 100_000;

/// A snapshot of [`Stats`].
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) calls_by_endpoint: BTreeMap<String, u64>,
    pub(crate) calls_by_user: BTreeMap<String, u64>,
    pub(crate) errors_by_code: BTreeMap<String, u64>,
    pub(crate) http_status: BTreeMap<u16, u64>,
    /// Responses sent gzip-compressed.
    pub(crate) gzip_responses: u64,
}

impl Stats {
    pub(crate) fn count_call(&self, endpoint: &str) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.calls += 1;
        *c.calls_by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
    }

    /// Note a REST call in the ordered call log (`label`: the endpoint, with `?_method=GET`
    /// for a read sent as a POST).
    pub(crate) fn log_call(&self, label: String) {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if order.len() < MAX_LOGGED_CALLS {
            order.push(label);
        }
    }

    /// The endpoints called since the last reset, in order.
    pub(crate) fn calls_in_order(&self) -> Vec<String> {
        self.order.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn count_user(&self, user: &str) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.calls_by_user.entry(user.to_owned()).or_default() += 1;
    }

    pub(crate) fn count_error(&self, code: u16) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.errors_by_code.entry(code.to_string()).or_default() += 1;
    }

    pub(crate) fn count_status(&self, status: u16) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.http_status.entry(status).or_default() += 1;
    }

    pub(crate) fn count_gzip(&self) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.gzip_responses += 1;
    }

    pub(crate) fn snapshot(&self) -> Counts {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Counts::default();
        self.order.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
