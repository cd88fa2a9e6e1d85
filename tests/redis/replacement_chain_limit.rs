//! One limit on every walk along a chain of card replacements, with one
//! answer at it (issue 20, item 3): a walk that would go past
//! `MAX_REPLACEMENT_CHAIN` cards refuses with an internal error instead of
//! acting as if the chain ended there. Before, the search of a manual
//! bonus's outcome on the cards a card replaced gave up silently at the
//! limit, and its retry sent to the newest card of a long chain was
//! applied a second time.

use std::sync::Arc;

use loyalty::domain::{Amount, BonusType, Card, CardNumber, CardType, Category};
use loyalty::engine::{Command, EngineError, ManualBonusRequest, Ops, Reply};
use loyalty::store::memory::MemoryStore;
use loyalty::store::{Cas, Store};

use crate::engine_settings::{admin, ops_settings};

/// Cards in the chain: one more than the limit (16) can reach back from
/// the last.
const CARDS: usize = 18;

fn number(i: usize) -> CardNumber {
    CardNumber::from_trusted(format!("42000000{i:05}"))
}

fn bonus(on: CardNumber) -> Command {
    Command::ManualBonus(ManualBonusRequest {
        actor: admin(),
        number: on,
        operation_id: "OP-chain".into(),
        amount: Amount::from_hundredths(10_000).unwrap(),
        bonus_type: BonusType::ALL[0],
        active_from: None,
        expire_date: None,
        comment: None,
    })
}

/// Rewrites card `n` as `change` makes it, at its current version.
async fn rewrite(store: &dyn Store, n: &CardNumber, change: impl FnOnce(&mut Card)) {
    let current = store.get_card(n).await.unwrap().unwrap();
    let mut card = current.value;
    change(&mut card);
    let cas = store
        .update_card_with(&card, current.version, None, &[], 3600)
        .await
        .unwrap();
    assert_eq!(cas, Cas::Applied);
}

#[tokio::test]
async fn a_manual_bonus_retried_past_the_chain_limit_is_refused_not_applied_twice() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ops = Ops::new(store.clone(), ops_settings(30_000, 3600));
    let cards: Vec<Card> = (0..CARDS)
        .map(|i| Card::new(number(i), Category::Plastic, CardType::Bonus))
        .collect();
    store.insert_cards(&cards).await.unwrap();
    for i in 0..CARDS {
        ops.execute(Command::Issue {
            actor: admin(),
            number: number(i),
        })
        .await
        .unwrap();
    }
    // Applied on the first card; then each card replaced by the next, every
    // transfer done (nothing left to finish on the way).
    assert!(matches!(
        ops.execute(bonus(number(0))).await,
        Ok(Reply::Accrued(_))
    ));
    for i in 0..CARDS - 1 {
        rewrite(&*store, &number(i), |c| c.replaced_by = Some(number(i + 1))).await;
        rewrite(&*store, &number(i + 1), |c| {
            c.replaces = Some(number(i));
            c.received_from = vec![number(i)];
        })
        .await;
    }
    let last = number(CARDS - 1);
    let retried = ops.execute(bonus(last.clone())).await;
    assert!(
        matches!(retried, Err(EngineError::Internal(_))),
        "a retry whose first application is out of the limit's reach must be refused, not applied again: {retried:?}"
    );
    let card = store.get_card(&last).await.unwrap().unwrap().value;
    assert_eq!(card.ledger.total(), Amount::ZERO, "nothing was applied");
}
