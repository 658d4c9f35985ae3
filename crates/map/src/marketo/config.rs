//! Settings of one Marketo connection.

use std::time::Duration;

use crate::poll::PollPolicy;
use crate::rate_limit::RateLimit;
use crate::retry::RetryPolicy;
use crate::{MapError, Secret};

/// Settings of one Marketo connection (one LaunchPoint "custom service").
#[derive(Debug, Clone)]
pub struct MarketoConfig {
    /// The REST base URL, e.g. `https://284-RPR-133.mktorest.com` (no `/rest` suffix).
    pub base_url: String,
    /// The custom service's client id.
    pub client_id: String,
    /// The custom service's client secret (never printed).
    pub client_secret: Secret,
    /// Client-side rate limits (default 50 calls / 20 s, 5 concurrent).
    pub rate: RateLimit,
    /// Retries (default 6 attempts, 500 ms doubling to 30 s, jittered).
    pub retry: RetryPolicy,
    /// Total time allowed for one ordinary call (default 60 s).
    pub request_timeout: Duration,
    /// Total time allowed for one Sync Leads call (default 90 s, Marketo's own timeout for it).
    pub sync_timeout: Duration,
    /// Time allowed to open a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time a download may stall without receiving a byte before it is resumed (default 60 s).
    pub read_timeout: Duration,
    /// Polling of bulk jobs (default 1 s doubling to 60 s, give up after 12 h).
    pub poll: PollPolicy,
}

impl MarketoConfig {
    /// Settings with the defaults above.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            rate: RateLimit::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            sync_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            poll: PollPolicy::default(),
        }
    }

    /// Checks the settings; returns the normalised base URL (no trailing slash).
    pub(crate) fn validate(&self) -> Result<String, MapError> {
        let parsed = url::Url::parse(self.base_url.trim()).map_err(|e| {
            MapError::Config(format!("base_url {:?} is not a URL: {e}", self.base_url))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(MapError::Config(format!(
                "base_url {:?} must be http or https",
                self.base_url
            )));
        }
        if parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some()
        {
            return Err(MapError::Config(
                "base_url must not carry credentials or a query string".to_owned(),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(MapError::Config("client_id is empty".to_owned()));
        }
        if self.client_secret.expose().is_empty() {
            return Err(MapError::Config("client_secret is empty".to_owned()));
        }
        self.rate.validate()?;
        if self.retry.max_attempts == 0 {
            return Err(MapError::Config(
                "retry.max_attempts must be at least 1".to_owned(),
            ));
        }
        Ok(self.base_url.trim().trim_end_matches('/').to_owned())
    }
}
