//! Settings of one Marketo connection.

use std::time::Duration;

use crate::poll::PollPolicy;
use crate::rate_limit::RateLimit;
use crate::retry::RetryPolicy;
use crate::{MapError, Secret};

/// Settings of one Marketo connection (one LaunchPoint "custom service").
#[derive(Debug, Clone)]
pub struct MarketoConfig {
    /// The instance's base URL, e.g. `https://284-RPR-133.mktorest.com`. The REST endpoint as
    /// Admin › Web Services shows it (`…/rest`) is accepted too; any other path is refused.
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
    /// Polling of bulk jobs (default 5 s doubling to 60 s, give up after 12 h).
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

    /// Checks the settings; returns the normalised base URL (the instance root, no slash).
    pub(crate) fn validate(&self) -> Result<String, MapError> {
        let base_url = normalise_base_url(&self.base_url)?;
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
        Ok(base_url)
    }
}

/// The instance root of a base URL: `https://x.mktorest.com`, with or without a trailing slash
/// or the `/rest` that Admin › Web Services shows, becomes `https://x.mktorest.com` (REST paths
/// carry `/rest`, bulk paths `/bulk`, the token `/identity`). Any other path is refused.
pub(crate) fn normalise_base_url(raw: &str) -> Result<String, MapError> {
    let parsed = url::Url::parse(raw.trim())
        .map_err(|e| MapError::Config(format!("base_url {raw:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(MapError::Config(format!(
            "base_url {raw:?} must be http or https"
        )));
    }
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(MapError::Config(
            "base_url must not carry credentials, a query string or a fragment".to_owned(),
        ));
    }
    let root = parsed.origin().ascii_serialization();
    let path = parsed.path().trim_end_matches('/');
    if path.is_empty() || path.eq_ignore_ascii_case("/rest") {
        Ok(root)
    } else {
        Err(MapError::Config(format!(
            "base_url {raw:?} ends in {path}: use {root} — without {path} (Drover adds /rest, /bulk and /identity itself)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_with_or_without_rest() {
        for ok in [
            "https://284-RPR-133.mktorest.com",
            "https://284-RPR-133.mktorest.com/",
            "https://284-RPR-133.mktorest.com/rest",
            "https://284-RPR-133.mktorest.com/rest/",
            " https://284-RPR-133.mktorest.com/REST/ ",
        ] {
            assert_eq!(
                normalise_base_url(ok).expect(ok),
                "https://284-rpr-133.mktorest.com",
                "{ok}"
            );
        }
        assert_eq!(
            normalise_base_url("http://127.0.0.1:4010/rest").expect("sandbox"),
            "http://127.0.0.1:4010"
        );
        for (bad, path) in [
            ("https://x.mktorest.com/identity", "/identity"),
            ("https://x.mktorest.com/bulk/v1", "/bulk/v1"),
            ("https://x.mktorest.com/rest/v1", "/rest/v1"),
            ("https://x.mktorest.com/rest/v1/", "/rest/v1"),
        ] {
            let e = normalise_base_url(bad).expect_err(bad).to_string();
            assert!(
                e.contains(&format!("use https://x.mktorest.com — without {path}")),
                "{e}"
            );
        }
        assert!(normalise_base_url("ftp://x.mktorest.com").is_err());
        assert!(normalise_base_url("https://x.mktorest.com/?a=1").is_err());
        assert!(normalise_base_url("x.mktorest.com").is_err());
    }
}
