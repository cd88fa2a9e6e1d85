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

use crate::domain::{Card, CardNumber, Contact, ContactCode, HistoryEntry};
use crate::store::{
    CardLoad, CardRecordWrite, Cas, Claim, DumpPage, HistoryPage, Index, PurchaseCommit,
    PurchaseWrite, RecordRead, Store, StoreError, Versioned,
};

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
impl Store for DeferredStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.store()?.ping().await
    }

    fn continuity(&self) -> Option<u64> {
        self.store().ok().and_then(|s| s.continuity())
    }

    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError> {
        self.store()?.replicated(number).await
    }

    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        self.store()?.get_card(number).await
    }

    async fn get_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, StoreError> {
        self.store()?.get_card_cached(number).await
    }

    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.store()?.get_contact_cached(code).await
    }

    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.store()?.index_get_cached(index, key).await
    }

    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        self.store()?.insert_cards(cards).await
    }

    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError> {
        self.store()?.load_cards(cards).await
    }

    async fn dump_page(&self, cursor: Option<&str>, count: usize) -> Result<DumpPage, StoreError> {
        self.store()?.dump_page(cursor, count).await
    }

    async fn restore_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        self.store()?.restore_card(card, history).await
    }

    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.store()?
            .restore_record(number, key, value, ttl_ms)
            .await
    }

    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.store()?
            .update_card(card, expected_version, entry)
            .await
    }

    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        self.store()?
            .update_card_with(card, expected_version, entry, records, ttl_secs)
            .await
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        self.store()?.commit_purchase(write).await
    }

    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store()?.get_card_record(number, key).await
    }

    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        self.store()?.get_card_with_record(number, key).await
    }

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.store()?.card_history(number, before, limit).await
    }

    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.store()?.get_contact(code).await
    }

    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        self.store()?.get_contact_slot(code).await
    }

    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        self.store()?.put_contact(contact, expected_version).await
    }

    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        self.store()?.fence_contact(code, expected_version).await
    }

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.store()?.index_get(index, key).await
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        self.store()?.index_claim(index, key, expected, owner).await
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        self.store()?.index_release(index, key, owner).await
    }
}

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
