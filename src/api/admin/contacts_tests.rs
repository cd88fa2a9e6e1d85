//! The bulk contact loader decides on the card as the store holds it, not
//! on a cached read (issue 26, item 4): a cache that has not heard yet of
//! another instance's write must not change what a line does or reports.
//! The cache's lag is made exact by a store whose cached card read answers
//! from a snapshot (the Redis store's cache, before the invalidation came),
//! around the real memory store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::domain::purchase::BonusRules;
use crate::domain::{Card, CardType, Category, Contact, HistoryEntry, MobileNumber, Role};
use crate::engine::{EngineSettings, OpsSettings, PurchaseSettings};
use crate::store::memory::MemoryStore;
use crate::store::{
    CardRecordWrite, Cas, Claim, DumpPage, HistoryPage, Index, PurchaseCommit, PurchaseWrite,
    RecordRead, Store, StoreError, Versioned,
};

/// The memory store, with a cache that still holds the cards frozen in it.
struct Lagging {
    inner: MemoryStore,
    frozen: Mutex<HashMap<CardNumber, Option<Versioned<Card>>>>,
}

impl Lagging {
    /// The cached read of `number` answers what the store holds now, from
    /// now on.
    async fn freeze(&self, number: &CardNumber) {
        let now = self.inner.get_card(number).await.expect("a read");
        self.frozen.lock().unwrap().insert(number.clone(), now);
    }
}

#[async_trait]
impl Store for Lagging {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn continuity(&self) -> Option<u64> {
        self.inner.continuity()
    }
    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        self.inner.get_card(number).await
    }
    async fn get_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, StoreError> {
        let frozen = self.frozen.lock().unwrap().get(number).cloned();
        match frozen {
            Some(card) => Ok(card),
            None => self.inner.get_card(number).await,
        }
    }
    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        self.inner.insert_cards(cards).await
    }
    async fn dump_page(&self, cursor: Option<&str>, count: usize) -> Result<DumpPage, StoreError> {
        self.inner.dump_page(cursor, count).await
    }
    async fn restore_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        self.inner.restore_card(card, history).await
    }
    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.inner.restore_record(number, key, value, ttl_ms).await
    }
    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.inner.update_card(card, expected_version, entry).await
    }
    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        self.inner
            .update_card_with(card, expected_version, entry, records, ttl_secs)
            .await
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        self.inner.commit_purchase(write).await
    }
    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.get_card_record(number, key).await
    }
    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        self.inner.get_card_with_record(number, key).await
    }
    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.inner.card_history(number, before, limit).await
    }
    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        self.inner.get_contact_slot(code).await
    }
    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        self.inner.put_contact(contact, expected_version).await
    }
    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        self.inner.fence_contact(code, expected_version).await
    }
    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.inner.index_get(index, key).await
    }
    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        self.inner.index_claim(index, key, expected, owner).await
    }
    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.index_release(index, key, owner).await
    }
}

fn admin() -> Actor {
    Actor {
        login: "admin".into(),
        role: Role::Administrator,
    }
}

fn engine(store: Arc<Lagging>) -> Engine {
    Engine::start(
        store,
        EngineSettings {
            shards: 2,
            threads: 1,
            shard_queue_capacity: 64,
            ops: OpsSettings {
                required_fields: vec![],
                claim_lease_ms: 30_000,
                purchases: PurchaseSettings {
                    rules: BonusRules {
                        accrual_bp: 500,
                        activation_delay_days: 0,
                        expiry_days: 365,
                        max_writeoff_bp: 5000,
                        discount_bp: 0,
                        date_max_age_secs: 86_400,
                        date_max_ahead_secs: 86_400,
                    },
                    retention_secs: 86_400,
                },
            },
        },
    )
}

/// Contact `C-<n>` with its mobile, and card `<n>` issued and bound to it.
async fn bound_card(engine: &Engine, n: u64) -> (ContactLine, CardNumber) {
    let code = ContactCode::from_trusted(format!("C-{n}"));
    let number = CardNumber::from_trusted(format!("{n:013}"));
    let patch = ContactPatch {
        mobile: Some(MobileNumber::parse(&format!("7900000{n:04}")).expect("a mobile")),
        ..ContactPatch::default()
    };
    let mobile = patch.mobile.clone().expect("set");
    engine
        .execute(Command::UpsertContact {
            code: code.clone(),
            patch: patch.clone(),
        })
        .await
        .expect("the contact");
    let card = Card::new(number.clone(), Category::Plastic, CardType::Bonus);
    engine.insert_cards(&[card]).await.expect("the card");
    for command in [
        Command::Issue {
            actor: admin(),
            number: number.clone(),
        },
        Command::BindTo {
            actor: admin(),
            number: number.clone(),
            mobile,
        },
    ] {
        engine.execute(command).await.expect("issued and bound");
    }
    let line = ContactLine {
        code,
        patch,
        card: Some(number.clone()),
        activate: true,
    };
    (line, number)
}

fn activate(number: &CardNumber) -> Command {
    Command::Active {
        actor: admin(),
        number: number.clone(),
    }
}

#[test]
fn a_line_decides_on_the_card_as_stored_not_as_cached() {
    actix_rt::System::new().block_on(async {
        let store = Arc::new(Lagging {
            inner: MemoryStore::new(),
            frozen: Mutex::new(HashMap::new()),
        });
        let engine = engine(store.clone());

        // Blocked elsewhere after the cache read it Active: the line's
        // activation is refused, not reported Existing.
        let (line, number) = bound_card(&engine, 1).await;
        engine.execute(activate(&number)).await.expect("active");
        store.freeze(&number).await;
        engine
            .execute(Command::Block {
                actor: admin(),
                number: number.clone(),
                mobile: None,
                reason_code: "0".into(),
                reason_name: None,
            })
            .await
            .expect("blocked");
        match apply(&engine, &admin(), line).await {
            Err(EngineError::Rule(e)) => assert_eq!(e.key, ErrorKey::StatusError, "{e:?}"),
            other => panic!("a blocked card's activation was not refused: {other:?}"),
        }

        // Activated elsewhere after the cache read it Issued: the line
        // finds it as it says, Existing (not Updated by an activation
        // that changed nothing).
        let (line, number) = bound_card(&engine, 2).await;
        store.freeze(&number).await;
        engine.execute(activate(&number)).await.expect("active");
        assert_eq!(
            apply(&engine, &admin(), line).await.expect("applied"),
            Outcome::Existing
        );
    });
}
