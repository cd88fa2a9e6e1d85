//! A card replacement cut short (a crash or a store fault between its
//! steps) is finished by any later command on either card — even when the
//! new card can no longer be bound, so that a retried `bindto` cannot
//! finish it (issue 12, item 5). The half-done states are written straight
//! into the store, as a crash would leave them, on the memory store and on
//! a real redis-server.

use std::sync::Arc;

use loyalty::domain::card::Change;
use loyalty::domain::{
    Actor, Amount, BonusType, Card, CardNumber, CardType, Category, ContactCode, ContactField,
    HistoryEntry, Role,
};
use loyalty::engine::{Command, Ops, Reply};
use loyalty::store::memory::MemoryStore;
use loyalty::store::Store;
use time::OffsetDateTime;

use crate::engine_settings::ops_settings;
use crate::redis_server::{free_port, RedisServer};

fn actor(role: Role) -> Actor {
    Actor {
        login: "t".into(),
        role,
    }
}

fn changed(change: Change) -> (Card, HistoryEntry) {
    match change {
        Change::Changed { card, entry } => (card, entry),
        Change::Unchanged => panic!("expected a change"),
    }
}

/// Writes `next` over the stored card (which must be at `version`).
async fn write(store: &dyn Store, (card, entry): (Card, HistoryEntry), version: u64) -> Card {
    let cas = store.update_card(&card, version, &entry).await.unwrap();
    assert_eq!(cas, loyalty::store::Cas::Applied);
    card
}

fn ops(store: Arc<dyn Store>) -> Ops {
    let mut settings = ops_settings(30_000, 3600);
    settings.required_fields = vec![ContactField::Name];
    Ops::new(store, settings)
}

/// How far the replacement got before it was cut short.
#[derive(Debug, Clone, Copy)]
enum CutAt {
    /// The new card is bound (naming the card it replaces); the old card
    /// is not even marked replaced.
    AfterBind,
    /// The old card is marked replaced and its lots are in its outbox;
    /// nothing was delivered.
    AfterMark,
}

/// Old card X (Active, 100 bonuses, blocked for replacement) and new card Y
/// bound to the same contact in its place, then blocked by its client, so
/// that no retried `bindto` can complete the replacement.
async fn half_done(store: &dyn Store, cut: CutAt, n: u64) -> (CardNumber, CardNumber) {
    let now = OffsetDateTime::now_utc();
    let admin = actor(Role::Administrator);
    let code = ContactCode::from_trusted(format!("C-{n}"));
    let x = CardNumber::from_trusted(format!("{}", 5_000_000_000_000u64 + 2 * n));
    let y = CardNumber::from_trusted(format!("{}", 5_000_000_000_001u64 + 2 * n));
    let new = |number: &CardNumber| Card::new(number.clone(), Category::Plastic, CardType::ALL[0]);
    assert_eq!(
        store.insert_cards(&[new(&x), new(&y)]).await.unwrap(),
        [true, true]
    );

    let card = write(store, changed(new(&x).issue(&admin, now).unwrap()), 1).await;
    let card = write(store, changed(card.bind(&code, None, &admin, now)), 2).await;
    let (mut card, entry) = changed(card.activate(true, &admin, now).unwrap());
    card.ledger.accrue(
        Amount::from_hundredths(10_000).unwrap(),
        BonusType::ALL[0],
        now.date(),
        None,
        loyalty::domain::ledger::LotSource::Bonus,
    );
    let card = write(store, (card, entry), 3).await;
    let card = write(
        store,
        changed(
            card.block(&actor(Role::CcOperator), "4", None, now)
                .unwrap(),
        ),
        4,
    )
    .await;
    if let CutAt::AfterMark = cut {
        let (mut marked, entry) = changed(card.mark_replaced(&y, &admin, now));
        let lots = marked.ledger.take_all_unburnt(now.date());
        marked.transfer_out.extend(lots);
        write(store, (marked, entry), 5).await;
    }

    let card = write(store, changed(new(&y).issue(&admin, now).unwrap()), 1).await;
    let card = write(
        store,
        changed(card.bind(&code, Some(x.clone()), &admin, now)),
        2,
    )
    .await;
    let card = write(store, changed(card.activate(true, &admin, now).unwrap()), 3).await;
    write(
        store,
        changed(card.block(&actor(Role::Client), "0", None, now).unwrap()),
        4,
    )
    .await;
    (x, y)
}

fn total(card: &Card) -> i64 {
    card.ledger.lots.iter().map(|l| l.amount.hundredths()).sum()
}

async fn balance(ops: &Ops, number: &CardNumber) -> Card {
    match ops
        .execute(Command::Balance {
            number: number.clone(),
        })
        .await
        .unwrap()
    {
        Reply::Balance(view) => view.card,
        other => panic!("unexpected {other:?}"),
    }
}

/// The replacement is complete: X replaced by Y, its outbox empty, and Y
/// holds X's 100 bonuses exactly once.
async fn assert_finished(store: &dyn Store, x: &CardNumber, y: &CardNumber, what: &str) {
    let old = store.get_card(x).await.unwrap().unwrap().value;
    let new = store.get_card(y).await.unwrap().unwrap().value;
    assert_eq!(old.replaced_by.as_ref(), Some(y), "{what}: {old:?}");
    assert!(old.transfer_out.is_empty(), "{what}: {old:?}");
    assert_eq!(total(&old), 0, "{what}");
    assert_eq!(total(&new), 10_000, "{what}: {new:?}");
    assert!(new.received_from.contains(x), "{what}");
}

async fn scenarios(store: Arc<dyn Store>, base: u64) {
    let ops = ops(store.clone());
    // A balance read of the new card finishes it.
    for (i, cut) in [CutAt::AfterBind, CutAt::AfterMark].into_iter().enumerate() {
        let (x, y) = half_done(store.as_ref(), cut, base + i as u64).await;
        let seen = balance(&ops, &y).await;
        assert_eq!(
            total(&seen),
            10_000,
            "{cut:?}: the read shows the moved bonuses"
        );
        assert_finished(
            store.as_ref(),
            &x,
            &y,
            &format!("balance of the new card, {cut:?}"),
        )
        .await;
        // And again: nothing moves twice.
        balance(&ops, &y).await;
        balance(&ops, &x).await;
        assert_finished(store.as_ref(), &x, &y, &format!("re-read, {cut:?}")).await;
    }
    // A balance read of the old card with a full outbox finishes it.
    let (x, y) = half_done(store.as_ref(), CutAt::AfterMark, base + 10).await;
    balance(&ops, &x).await;
    assert_finished(store.as_ref(), &x, &y, "balance of the old card").await;
    // A status change (unblock of the new card) finishes it first.
    let (x, y) = half_done(store.as_ref(), CutAt::AfterBind, base + 11).await;
    ops.execute(Command::Unblock {
        actor: actor(Role::Administrator),
        number: y.clone(),
        mobile: None,
        reason_code: "0".into(),
        reason_name: None,
    })
    .await
    .unwrap();
    assert_finished(store.as_ref(), &x, &y, "unblock of the new card").await;
}

#[tokio::test]
async fn a_cut_short_replacement_is_finished_by_any_later_command_on_memory() {
    scenarios(Arc::new(MemoryStore::new()), 100).await;
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_cut_short_replacement_is_finished_by_any_later_command_on_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "repair").await;
    scenarios(Arc::new(store), 200).await;
}
