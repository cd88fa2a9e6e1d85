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
use crate::domain::{Card, CardType, Category, HistoryEntry, MobileNumber, Role};
use crate::engine::{EngineSettings, OpsSettings, PurchaseSettings};
use crate::store::memory::MemoryStore;
use crate::store::{
    CardRecordWrite, CardStore, Cas, HistoryPage, PurchaseCommit, PurchaseWrite, StoreError,
    Versioned,
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
impl CardStore for Lagging {
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

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        self.inner.card_history(number, before, limit).await
    }
}

// Only the cached card read lags; the rest is the memory store's.
crate::forward_health!(Lagging, |s| s.inner);
crate::forward_records!(Lagging, |s| s.inner);
crate::forward_contacts!(Lagging, |s| s.inner);
crate::forward_bulk!(Lagging, |s| s.inner);

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
                    hold_secs: 900,
                    hold_max_secs: 3600,
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
