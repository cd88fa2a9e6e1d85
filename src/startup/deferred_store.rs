//! A store that is not there yet. With Redis down at boot (orchestrators
//! restart pods while Redis is still failing over) the server starts
//! anyway: every store operation answers `Unavailable` — 503
//! `StoreUnavailable`, and `/ready` 503 — until a background task has
//! connected, and from then on everything goes to the connected store, as
//! after a mid-run outage.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::CardNumber;
use crate::store::{Coherence, HealthStore, Store, StoreError};

#[derive(Default)]
pub struct DeferredStore {
    connected: OnceLock<Arc<dyn Store>>,
}

impl DeferredStore {
    fn store(&self) -> Result<&Arc<dyn Store>, StoreError> {
        self.connected.get().ok_or_else(|| {
            StoreError::Unavailable("not connected to the store since start yet".into())
        })
    }

    /// Tries `connect` until it succeeds, waiting a little longer after
    /// each failure (at most `max_backoff`), then serves from that store.
    pub async fn connect_in_background<F, Fut, E>(
        self: Arc<Self>,
        mut connect: F,
        max_backoff: Duration,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Arc<dyn Store>, E>>,
        E: std::fmt::Display,
    {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1u64.. {
            tokio::time::sleep(backoff).await;
            match connect().await {
                Ok(store) => {
                    let _ = self.connected.set(store);
                    tracing::info!(attempt, "connected to the store: serving");
                    return;
                }
                // Once per attempt early on, then now and then: an outage
                // of hours must not flood the log.
                Err(e) if attempt <= 3 || attempt % 30 == 0 => {
                    tracing::warn!(attempt, error = %e, "the store is still unavailable; retrying");
                }
                Err(_) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }
}

#[async_trait]
impl HealthStore for DeferredStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.store()?.ping().await
    }

    /// None until connected; then the connected store's.
    fn coherence(&self) -> Option<&Coherence> {
        self.store().ok().and_then(|s| s.coherence())
    }

    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError> {
        self.store()?.replicated(number).await
    }
}

// Every other call goes to the connected store, or answers `Unavailable`.
crate::forward_cards!(DeferredStore, |s| s.store()?);
crate::forward_records!(DeferredStore, |s| s.store()?);
crate::forward_contacts!(DeferredStore, |s| s.store()?);
crate::forward_bulk!(DeferredStore, |s| s.store()?);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn unavailable_until_connected_then_served() {
        let deferred = Arc::new(DeferredStore::default());
        assert!(matches!(
            deferred.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        let mut failures = 2;
        deferred
            .clone()
            .connect_in_background(
                move || {
                    let result: Result<Arc<dyn Store>, String> = if failures > 0 {
                        failures -= 1;
                        Err("refused".into())
                    } else {
                        Ok(Arc::new(MemoryStore::new()))
                    };
                    async move { result }
                },
                Duration::from_millis(1),
            )
            .await;
        assert!(deferred.ping().await.is_ok());
    }
}
