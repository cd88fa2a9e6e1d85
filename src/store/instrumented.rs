//! Wraps any store to time each operation and count its errors, so every
//! backend reports the same store metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{
    CardLoad, CardRecordWrite, Cas, Claim, DumpPage, HistoryPage, Index, PurchaseCommit,
    PurchaseWrite, RecordRead, Store, StoreError, Versioned,
};
use crate::domain::{Card, CardNumber, Contact, ContactCode, HistoryEntry};
use crate::metrics as m;

pub struct Instrumented(pub Arc<dyn Store>);

async fn timed<T>(
    operation: &'static str,
    f: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = f.await;
    let error = result.as_ref().err().map(|e| match e {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::OutcomeUnknown(_) => "outcome_unknown",
        StoreError::Corrupt { .. } => "corrupt",
    });
    m::store_operation(operation, started.elapsed().as_secs_f64(), error);
    result
}

#[async_trait]
impl Store for Instrumented {
    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }

    fn continuity(&self) -> Option<u64> {
        self.0.continuity()
    }

    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError> {
        timed("replicated", self.0.replicated(number)).await
    }

    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        timed("get_card", self.0.get_card(number)).await
    }

    // The cached reads forward to the store's own (a default would read
    // through the uncached method and bypass its cache). Timed under their
    // own names: a hit is not a Redis round trip.
    async fn get_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, StoreError> {
        timed("get_card_cached", self.0.get_card_cached(number)).await
    }

    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        timed("get_contact_cached", self.0.get_contact_cached(code)).await
    }

    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        timed("index_get_cached", self.0.index_get_cached(index, key)).await
    }

    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        timed("insert_cards", self.0.insert_cards(cards)).await
    }

    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError> {
        timed("load_cards", self.0.load_cards(cards)).await
    }

    async fn dump_page(&self, cursor: Option<&str>, count: usize) -> Result<DumpPage, StoreError> {
        timed("dump_page", self.0.dump_page(cursor, count)).await
    }

    async fn restore_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        timed("restore_card", self.0.restore_card(card, history)).await
    }

    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        timed(
            "restore_record",
            self.0.restore_record(number, key, value, ttl_ms),
        )
        .await
    }

    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        timed(
            "update_card",
            self.0.update_card(card, expected_version, entry),
        )
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
        timed(
            "update_card_with",
            self.0
                .update_card_with(card, expected_version, entry, records, ttl_secs),
        )
        .await
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        timed("commit_purchase", self.0.commit_purchase(write)).await
    }

    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        timed("get_card_record", self.0.get_card_record(number, key)).await
    }

    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        timed(
            "get_card_with_record",
            self.0.get_card_with_record(number, key),
        )
        .await
    }

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        timed("card_history", self.0.card_history(number, before, limit)).await
    }

    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        timed("get_contact", self.0.get_contact(code)).await
    }

    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        timed("get_contact", self.0.get_contact_slot(code)).await
    }

    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        timed("put_contact", self.0.put_contact(contact, expected_version)).await
    }

    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        timed(
            "fence_contact",
            self.0.fence_contact(code, expected_version),
        )
        .await
    }

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        timed("index_get", self.0.index_get(index, key)).await
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        timed(
            "index_claim",
            self.0.index_claim(index, key, expected, owner),
        )
        .await
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        timed("index_release", self.0.index_release(index, key, owner)).await
    }
}
