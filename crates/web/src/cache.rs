//! A short-lived cache for what the busiest pages read: under many readers each query runs
//! once per second or two instead of once per request. A change made through this process
//! empties it at once; changes by other processes (the scheduler finishing runs) show within
//! the time to live.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Values by key, each kept for `ttl`.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
    /// Loads take turns, so a hundred readers arriving at an expired entry load it once.
    loading: tokio::sync::Mutex<()>,
}

/// Entries beyond this are dropped (the oldest first is not worth the bookkeeping: all go).
const MAX_ENTRIES: usize = 10_000;

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The cached value, or `load`'s (cached when it succeeds).
    pub(crate) async fn get_or_load<E, F, Fut>(&self, key: K, load: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return load().await.map(Arc::new);
        }
        if let Some(v) = self.fresh(&key) {
            return Ok(v);
        }
        let _turn = self.loading.lock().await;
        if let Some(v) = self.fresh(&key) {
            return Ok(v);
        }
        let v = Arc::new(load().await?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), v.clone()));
        }
        Ok(v)
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_are_reused_until_they_expire_or_the_cache_is_cleared() {
        let cache: TtlCache<&str, u32> = TtlCache::new(Duration::from_millis(200));
        let loads = std::sync::atomic::AtomicU32::new(0);
        let load =
            || async { Ok::<_, ()>(loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1) };
        assert_eq!(*cache.get_or_load("a", load).await.unwrap_or_default(), 1);
        assert_eq!(*cache.get_or_load("a", load).await.unwrap_or_default(), 1);
        cache.clear();
        assert_eq!(*cache.get_or_load("a", load).await.unwrap_or_default(), 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(*cache.get_or_load("a", load).await.unwrap_or_default(), 3);
        let failed: Result<Arc<u32>, &str> = cache.get_or_load("b", || async { Err("no") }).await;
        assert!(failed.is_err());
        assert_eq!(
            *cache.get_or_load("b", load).await.unwrap_or_default(),
            4,
            "errors are not cached"
        );
    }
}
