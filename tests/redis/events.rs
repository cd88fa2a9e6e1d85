//! The change stream (docs/events.md) and the expiring PurchaseId index, at
//! store level: on a real redis-server through the archive's own reader,
//! and on the memory store. Every history entry and every created card is
//! one event, written in the same step as the change, none for a refused
//! write; the streams stay bounded; a PurchaseId's index entry expires.

use std::sync::Arc;
use std::time::Duration;

use loyalty::archive::streams::Streams;
use loyalty::domain::{
    Card, CardNumber, CardStatus, CardType, Category, HistoryEntry, Operation, Role,
};
use loyalty::store::codec;
use loyalty::store::events::{ChangeEvent, EventKind, EventLog};
use loyalty::store::memory::MemoryStore;
use loyalty::store::prelude::*;
use loyalty::store::redis::RedisStore;
use loyalty::store::{Cas, Index, Store};
use time::macros::datetime;

use crate::redis_server::{free_port, RedisCluster, RedisServer};

/// One XRANGE entry: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

fn card(n: &str) -> Card {
    Card::new(
        CardNumber::from_trusted(n.to_owned()),
        Category::Plastic,
        CardType::ALL[0],
    )
}

fn entry(i: u8) -> HistoryEntry {
    HistoryEntry {
        at: datetime!(2026-01-02 03:04:05.123 UTC),
        login: format!("user{i}"),
        role: Role::Administrator,
        operation: Operation::Issue,
        from: CardStatus::New,
        to: CardStatus::Issued,
        reason_code: Some(i),
        reason_name: None,
        detail: None,
        bonus: None,
    }
}

/// Two cards loaded (one of them twice), two updates of one, one refused
/// update: the events that must come of it, in order per card.
async fn changes(store: &dyn Store) -> Vec<ChangeEvent> {
    let (a, b) = (card("4000000000001"), card("4000000000002"));
    assert_eq!(
        store.insert_cards(&[a.clone(), b.clone()]).await.ok(),
        Some(vec![true, true])
    );
    assert_eq!(
        store.insert_cards(std::slice::from_ref(&a)).await.ok(),
        Some(vec![false])
    );
    assert_eq!(
        store.update_card(&a, 1, &entry(1)).await.ok(),
        Some(Cas::Applied)
    );
    // A stale version: no change, so no event either.
    assert_eq!(
        store.update_card(&a, 1, &entry(9)).await.ok(),
        Some(Cas::Conflict)
    );
    assert_eq!(
        store.update_card(&a, 2, &entry(2)).await.ok(),
        Some(Cas::Applied)
    );
    // A change that is no event of the card (a record moved): none.
    assert_eq!(
        store.update_card_with(&b, 1, None, &[], 60).await.ok(),
        Some(Cas::Applied)
    );
    let card_json = |c: &Card| serde_json::to_string(c).expect("a card encodes");
    let entry_json = |e: &HistoryEntry| serde_json::to_string(e).expect("an entry encodes");
    vec![
        ChangeEvent::loaded("4000000000001", card_json(&a)),
        ChangeEvent::loaded("4000000000002", card_json(&b)),
        ChangeEvent::history("4000000000001", 0, entry_json(&entry(1))),
        ChangeEvent::history("4000000000001", 1, entry_json(&entry(2))),
    ]
}

fn sorted(mut events: Vec<ChangeEvent>) -> Vec<ChangeEvent> {
    // Per card the order is the change order; across cards there is none.
    events.sort_by(|x, y| (&x.card, x.seq).cmp(&(&y.card, y.seq)));
    events
}

/// An event held in Redis costs its bytes for as long as no archive has
/// taken it: it carries the record exactly as the store keeps it (the
/// compact encoding), not a second, larger JSON copy (issue 21).
#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_stream_entry_carries_the_compact_record_and_nothing_larger() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "small")
        .await
        .with_event_log(EventLog { max_len: 1000 });
    let a = card("4000000000001");
    store
        .insert_cards(std::slice::from_ref(&a))
        .await
        .expect("inserts");
    assert_eq!(
        store.update_card(&a, 1, &entry(1)).await.ok(),
        Some(Cas::Applied)
    );
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(store.keys().events("4000000000001"))
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE");
    let bodies: Vec<Vec<u8>> = entries
        .into_iter()
        .map(|(_, fields)| {
            fields
                .into_iter()
                .find(|(name, _)| name == "e")
                .expect("an e field")
                .1
        })
        .collect();
    let compact_card = codec::encode(&a).expect("encodes");
    let compact_entry = codec::encode(&entry(1)).expect("encodes");
    assert_eq!(
        bodies,
        vec![compact_card, compact_entry],
        "the events carry the compact encoding"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn every_change_is_one_event_in_the_cards_slot_stream_on_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "ev")
        .await
        .with_event_log(EventLog { max_len: 1000 });
    let expected = changes(&store).await;

    let reader = Streams::connect(
        &[redis.url()],
        &Default::default(),
        "ev",
        "test",
        "reader-1",
        Duration::from_secs(5),
    )
    .await
    .expect("connects");
    reader.create_groups().await.expect("groups");
    let (got, _) = reader.read(0, 100, 10_000, false).await.expect("reads");
    assert_eq!(
        sorted(got.iter().map(|d| d.event.clone()).collect()),
        sorted(expected.clone())
    );
    // Each event is in the stream of its card's slot.
    for d in &got {
        assert_eq!(d.stream, store.keys().events(&d.event.card));
    }
    // Acknowledged and deleted: nothing is left to read, or pending.
    reader.acknowledge(&got, true).await.expect("acks");
    let (again, _) = reader.read(0, 100, 10_000, true).await.expect("reads");
    assert!(again.is_empty(), "still pending: {again:?}");
    let stream = store.keys().events("4000000000001");
    assert!(redis
        .command(&format!("XLEN {stream}"))
        .is_some_and(|r| r.starts_with(":0")));
}

#[tokio::test]
async fn the_memory_store_keeps_the_same_events_in_process() {
    let store = MemoryStore::new().with_event_log(EventLog { max_len: 1000 });
    let expected = changes(&store).await;
    assert_eq!(sorted(store.events()), sorted(expected));

    let off = MemoryStore::new();
    changes(&off).await;
    assert!(off.events().is_empty(), "events are off unless configured");
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn streams_are_trimmed_to_about_their_length() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "trim")
        .await
        .with_event_log(EventLog { max_len: 10 });
    let a = card("4000000000009");
    store
        .insert_cards(std::slice::from_ref(&a))
        .await
        .expect("inserts");
    for v in 1..=500u64 {
        assert_eq!(
            store.update_card(&a, v, &entry(1)).await.ok(),
            Some(Cas::Applied)
        );
    }
    let reply = redis
        .command(&format!("XLEN {}", store.keys().events(a.number.as_str())))
        .expect("XLEN answers");
    let len: u64 = reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .expect("a number");
    // `MAXLEN ~` trims whole stream nodes (100 entries by default).
    assert!((10..=110).contains(&len), "XLEN {len}");

    let memory = MemoryStore::new().with_event_log(EventLog { max_len: 10 });
    memory
        .insert_cards(std::slice::from_ref(&a))
        .await
        .expect("inserts");
    for v in 1..=50u64 {
        memory.update_card(&a, v, &entry(1)).await.expect("updates");
    }
    let kept = memory.events();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept.last().and_then(|e| e.seq), Some(49));
    assert!(kept.iter().all(|e| e.kind == EventKind::History));
}

async fn purchase_index_expires(store: Arc<dyn Store>) {
    let claimed = store
        .index_claim(Index::Purchase, "P-1", None, "4000000000001#i1")
        .await
        .expect("claims");
    assert_eq!(claimed, Ok(()));
    store
        .index_claim(Index::Mobile, "79000000001", None, "C-1#i1")
        .await
        .expect("claims")
        .expect("free");
    assert!(store
        .index_get(Index::Purchase, "P-1")
        .await
        .expect("reads")
        .is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        store
            .index_get(Index::Purchase, "P-1")
            .await
            .expect("reads"),
        None,
        "the PurchaseId index entry outlived its TTL"
    );
    // Free again for a new claim.
    assert_eq!(
        store
            .index_claim(Index::Purchase, "P-1", None, "4000000000002#i2")
            .await
            .expect("claims"),
        Ok(())
    );
    // The other indexes never expire.
    assert!(store
        .index_get(Index::Mobile, "79000000001")
        .await
        .expect("reads")
        .is_some());
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn the_purchase_index_expires_on_redis() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "ttl")
        .await
        .with_purchase_index_ttl(Duration::from_millis(500));
    purchase_index_expires(Arc::new(store)).await;
    assert!(redis
        .command("PTTL ttl:mobile:{79000000001}")
        .is_some_and(|r| r.starts_with(":-1")));
}

#[tokio::test]
async fn the_purchase_index_expires_in_memory() {
    let store = MemoryStore::new().with_purchase_index_ttl(Duration::from_millis(500));
    purchase_index_expires(Arc::new(store)).await;
}

/// On a 3-master cluster every script may only touch its card's slot: the
/// change stream of that slot is in it, and the archive's reader finds
/// every event, one XREADGROUP per stream.
#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn on_a_cluster_the_events_land_in_their_slots_and_are_all_read() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = RedisCluster::start(dir.path(), false);
    let settings = crate::support::redis_settings(cluster.urls(), "evc");
    let store = RedisStore::connect(settings)
        .await
        .expect("connects")
        .with_event_log(EventLog { max_len: 1000 });
    let mut expected = changes(&store).await;
    // Cards all over the slot space, on every master.
    let cards: Vec<Card> = (0..300).map(|i| card(&format!("41{i:011}"))).collect();
    store.insert_cards(&cards).await.expect("inserts");
    for c in &cards {
        assert_eq!(
            store.update_card(c, 1, &entry(3)).await.ok(),
            Some(Cas::Applied)
        );
        let json = serde_json::to_string(c).expect("a card encodes");
        expected.push(ChangeEvent::loaded(c.number.as_str(), json));
        let e = serde_json::to_string(&entry(3)).expect("an entry encodes");
        expected.push(ChangeEvent::history(c.number.as_str(), 0, e));
    }
    let reader = Streams::connect(
        &cluster.urls(),
        &Default::default(),
        "evc",
        "test",
        "reader-1",
        Duration::from_secs(5),
    )
    .await
    .expect("connects");
    reader.create_groups().await.expect("groups");
    let (got, _) = reader.read(0, 100, 100_000, false).await.expect("reads");
    assert_eq!(
        sorted(got.iter().map(|d| d.event.clone()).collect()),
        sorted(expected)
    );
    reader.acknowledge(&got, true).await.expect("acks");
    let (pending, _) = reader.read(0, 100, 100_000, true).await.expect("reads");
    assert!(pending.is_empty());
}
