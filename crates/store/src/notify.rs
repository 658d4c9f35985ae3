//! LISTEN/NOTIFY wake-ups. Polling stays the safety net: a lost notification only delays.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// Runs changed (payload: comma-separated run ids, or `*`): the scheduler re-evaluates them.
pub const CHANNEL_RUNS: &str = "drover_runs";
/// Task instances were queued: workers claim.
pub const CHANNEL_QUEUE: &str = "drover_queue";

/// A listener that reconnects by itself and never fails its caller: on trouble it reports
/// "wake up" so the caller polls.
#[derive(Debug)]
pub struct Listener {
    pool: PgPool,
    channels: Vec<&'static str>,
    inner: Option<PgListener>,
}

impl Listener {
    pub fn new(pool: PgPool, channels: &[&'static str]) -> Self {
        Self {
            pool,
            channels: channels.to_vec(),
            inner: None,
        }
    }

    /// Wait for a notification or `timeout`; returns its payload, or `None` on timeout or
    /// trouble (connection lost: it reconnects on the next call after a short pause).
    pub async fn wait(&mut self, timeout: Duration) -> Option<String> {
        if self.inner.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen_all(self.channels.iter().copied()).await {
                    Ok(()) => self.inner = Some(l),
                    Err(e) => {
                        tracing::debug!(error = %e, "listen failed");
                        tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                        return None;
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "listener cannot connect");
                    tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                    return None;
                }
            }
        }
        let listener = self.inner.as_mut()?;
        match tokio::time::timeout(timeout, listener.try_recv()).await {
            Err(_) => None,
            Ok(Ok(Some(n))) => Some(n.payload().to_owned()),
            // Ok(None): the connection was lost and re-established; notifications may have been
            // missed, so report a wake-up.
            Ok(Ok(None)) => Some("*".to_owned()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "listener lost its connection");
                self.inner = None;
                Some("*".to_owned())
            }
        }
    }
}
