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
            // Connecting waits for a free pooled connection: bounded like the wait itself, so
            // a busy pool delays the caller's next pass by `timeout` at most.
            let connect = async {
                let mut l = PgListener::connect_with(&self.pool).await?;
                l.listen_all(self.channels.iter().copied()).await?;
                Ok::<_, sqlx::Error>(l)
            };
            match tokio::time::timeout(timeout.max(Duration::from_millis(100)), connect).await {
                Ok(Ok(l)) => self.inner = Some(l),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "listener cannot connect");
                    tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
                    return None;
                }
                Err(_) => {
                    tracing::debug!("listener could not connect in time");
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
