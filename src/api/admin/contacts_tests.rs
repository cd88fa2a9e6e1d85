//! The bulk contact loader decides on the card as the store holds it, not
//! on an answer from owned state (issue 26, item 4): a shard that has not
//! heard yet of another instance's write must not change what a line does
//! or reports. The lag is made exact by a store whose coherence feed never
//! reports a change (as Redis' tracking before the invalidation came),
//! around the real memory store, which another engine — another instance
//! — writes through.

use std::sync::Arc;

use super::*;
use crate::domain::purchase::BonusRules;
use crate::domain::{Card, CardType, Category, MobileNumber, Role};
use crate::engine::{EngineSettings, OpsSettings, PurchaseSettings};
use crate::store::memory::MemoryStore;
use crate::store::{Coherence, HealthStore, StoreError};

/// The memory store, behind a feed that never reports a change: what a
/// shard owns from a read through it answers for good.
struct Lagging {
    inner: Arc<MemoryStore>,
    deaf: Coherence,
}

#[async_trait::async_trait]
impl HealthStore for Lagging {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError> {
        self.inner.replicated(number).await
    }
    fn coherence(&self) -> Option<&Coherence> {
        Some(&self.deaf)
    }
}

// Only the feed lags; the rest is the memory store's.
crate::forward_cards!(Lagging, |s| s.inner);
crate::forward_records!(Lagging, |s| s.inner);
crate::forward_contacts!(Lagging, |s| s.inner);
crate::forward_bulk!(Lagging, |s| s.inner);

/// The card's balance read by `engine`: its shard owns the card as it is
/// now, and (the feed being deaf) answers with it from then on.
async fn freeze(engine: &Engine, number: &CardNumber) {
    engine.balance(number.clone()).await.expect("a balance");
}

fn admin() -> Actor {
    Actor {
        login: "admin".into(),
        role: Role::Administrator,
    }
}

fn engine(store: Arc<dyn crate::store::Store>) -> Engine {
    Engine::start(
        store,
        EngineSettings {
            shards: 2,
            threads: 1,
            shard_queue_capacity: 64,
            cache_capacity: 1_000,
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
        let inner = Arc::new(MemoryStore::new());
        let store = Arc::new(Lagging {
            inner: inner.clone(),
            deaf: Coherence::always(),
        });
        let engine = engine(store.clone());
        let elsewhere = self::engine(inner);

        // Blocked elsewhere after the cache read it Active: the line's
        // activation is refused, not reported Existing.
        let (line, number) = bound_card(&engine, 1).await;
        engine.execute(activate(&number)).await.expect("active");
        freeze(&engine, &number).await;
        elsewhere
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
        freeze(&engine, &number).await;
        elsewhere.execute(activate(&number)).await.expect("active");
        assert_eq!(
            apply(&engine, &admin(), line).await.expect("applied"),
            Outcome::Existing
        );
    });
}
