//! The Redis store against the memory store, the reference semantics of the
//! `Store` trait: the same sequence of calls must give the same answers
//! (CAS outcomes, created flags, claims, history pages and cursors).

use std::sync::Arc;
use std::time::Duration;

use loyalty::domain::{
    Card, CardNumber, CardStatus, CardType, Category, Contact, ContactCode, HistoryEntry,
    Operation, Role,
};
use loyalty::store::memory::MemoryStore;
use loyalty::store::prelude::*;
use loyalty::store::redis::{RedisSettings, RedisStore};
use loyalty::store::{CardRecordWrite, Index, Store};
use time::macros::datetime;

use crate::redis_server::{free_port, RedisServer};

fn card(n: &str) -> Card {
    Card::new(
        CardNumber::from_trusted(n.to_owned()),
        Category::Plastic,
        CardType::ALL[0],
    )
}

fn entry(i: u8) -> HistoryEntry {
    HistoryEntry {
        at: datetime!(2026-01-02 03:04:05.123456789 UTC),
        login: format!("user{i}"),
        role: Role::Administrator,
        operation: Operation::Issue,
        from: CardStatus::New,
        to: CardStatus::Issued,
        reason_code: Some(i),
        reason_name: None,
        detail: Some("ContactCode-1".into()),
        bonus: None,
    }
}

/// Runs the scenario and returns every answer, printed.
async fn scenario(store: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut log = |s: String| out.push(s);
    let (a, b, c) = (
        card("1000000000001"),
        card("1000000000002"),
        card("1000000000003"),
    );
    log(format!(
        "{:?}",
        store.insert_cards(&[a.clone(), b.clone()]).await
    ));
    log(format!(
        "{:?}",
        store.insert_cards(&[a.clone(), c.clone()]).await
    ));
    log(format!("{:?}", store.insert_cards(&[]).await));
    log(format!("{:?}", store.get_card(&a.number).await));
    log(format!(
        "{:?}",
        store.get_card(&CardNumber::from_trusted("9".into())).await
    ));
    let mut issued = a.clone();
    issued.status = CardStatus::Issued;
    log(format!(
        "{:?}",
        store.update_card(&issued, 1, &entry(0)).await
    ));
    log(format!(
        "{:?}",
        store.update_card(&issued, 1, &entry(99)).await
    ));
    log(format!(
        "{:?}",
        store
            .update_card(&card("1000000000009"), 0, &entry(99))
            .await
    ));
    for v in 2..7u8 {
        log(format!(
            "{:?}",
            store.update_card(&issued, u64::from(v), &entry(v)).await
        ));
    }
    log(format!("{:?}", store.get_card(&a.number).await));
    for (before, limit) in [
        (None, 4),
        (Some(2), 4),
        (Some(100), 3),
        (Some(0), 3),
        (Some(6), 6),
        (None, 0),
    ] {
        log(format!(
            "history {before:?} {limit}: {:?}",
            store.card_history(&a.number, before, limit).await
        ));
    }
    log(format!(
        "{:?}",
        store.card_history(&b.number, None, 3).await
    ));

    // Records written with a card update: all or nothing with the CAS.
    let records = [
        CardRecordWrite::replace("purchase:P{1}", "{\"a\":1}"),
        CardRecordWrite::outcome("refund:2:P1:r", "x"),
    ];
    log(format!(
        "{:?}",
        store
            .update_card_with(&issued, 1, None, &records, 3600)
            .await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&a.number, "purchase:P{1}").await
    ));
    log(format!(
        "{:?}",
        store
            .update_card_with(&issued, 7, None, &records, 3600)
            .await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&a.number, "purchase:P{1}").await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&a.number, "refund:2:P1:r").await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&b.number, "purchase:P{1}").await
    ));
    // An outcome that exists already refuses the whole write, even at the
    // right version; a record that is only replaced does not.
    let again = [
        CardRecordWrite::replace("purchase:P{1}", "{\"a\":2}"),
        CardRecordWrite::outcome("refund:2:P1:r", "y"),
    ];
    log(format!(
        "{:?}",
        store.update_card_with(&issued, 8, None, &again, 3600).await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&a.number, "purchase:P{1}").await
    ));
    log(format!(
        "{:?}",
        store
            .update_card_with(&issued, 8, None, &again[..1], 3600)
            .await
    ));
    log(format!(
        "{:?}",
        store.get_card_record(&a.number, "purchase:P{1}").await
    ));
    log(format!(
        "{:?}",
        store
            .update_card_with(&issued, 9, Some(&entry(8)), &[], 3600)
            .await
    ));
    log(format!(
        "{:?}",
        store.card_history(&a.number, None, 2).await
    ));

    let mut contact = Contact::new(ContactCode::from_trusted("C-1".into()));
    log(format!("{:?}", store.put_contact(&contact, 0).await));
    log(format!("{:?}", store.put_contact(&contact, 0).await));
    contact.name = "Name".into();
    log(format!("{:?}", store.put_contact(&contact, 1).await));
    log(format!("{:?}", store.put_contact(&contact, 1).await));
    log(format!("{:?}", store.get_contact(&contact.code).await));
    let other = Contact::new(ContactCode::from_trusted("C-2".into()));
    log(format!("{:?}", store.put_contact(&other, 5).await));
    log(format!("{:?}", store.get_contact(&other.code).await));
    // Fences: of an existing contact (data kept), of one never written (it
    // stays absent, but a creation that read version 0 now fails).
    log(format!("{:?}", store.fence_contact(&contact.code, 1).await));
    log(format!("{:?}", store.fence_contact(&contact.code, 2).await));
    log(format!("{:?}", store.get_contact_slot(&contact.code).await));
    log(format!("{:?}", store.fence_contact(&other.code, 0).await));
    log(format!("{:?}", store.get_contact(&other.code).await));
    log(format!("{:?}", store.get_contact_slot(&other.code).await));
    log(format!("{:?}", store.put_contact(&other, 0).await));
    log(format!("{:?}", store.put_contact(&other, 1).await));
    log(format!("{:?}", store.get_contact(&other.code).await));

    // A claim's age comes from the store's clock: fresh here.
    let fresh =
        |c: Option<loyalty::store::Claim>| c.map(|c| (c.owner, (0..60_000).contains(&c.age_ms)));

    for index in [Index::Mobile, Index::ContactCard, Index::Purchase] {
        let claim = |owner: &'static str, expected: Option<&'static str>| async move {
            store
                .index_claim(index, "k", expected, owner)
                .await
                .map(|r| r.map_err(fresh))
        };
        let get = || async move { store.index_get(index, "k").await.map(fresh) };
        log(format!("{:?}", claim("x", None).await));
        log(format!("{:?}", claim("y", None).await));
        log(format!("{:?}", claim("y", Some("y")).await));
        log(format!("{:?}", claim("z", Some("x")).await));
        log(format!("{:?}", get().await));
        log(format!("{:?}", store.index_release(index, "k", "x").await));
        log(format!("{:?}", get().await));
        log(format!("{:?}", store.index_release(index, "k", "z").await));
        log(format!("{:?}", get().await));
        log(format!("{:?}", claim("y", Some("x")).await));
        log(format!(
            "{:?}",
            store.index_get(index, "other").await.map(fresh)
        ));
    }
    out
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn the_redis_store_answers_exactly_like_the_memory_store() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::connect(RedisSettings {
            urls: vec![redis.url()],
            key_prefix: "semantics".into(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(5),
            cache_capacity: 0,
            cache_segments: 1,
            sentinel: None,
            min_replicas_acked: 0,
            replica_ack_timeout: std::time::Duration::ZERO,
            wait_pool_size: 1,
            access: Default::default(),
        })
        .await
        .expect("connects"),
    );
    let expected = scenario(&MemoryStore::new()).await;
    let actual = scenario(store.as_ref()).await;
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(e, a);
    }
    assert_eq!(expected.len(), actual.len());

    // After a script cache flush (as after a restart or failover) the
    // scripts still run: NOSCRIPT is answered with the full EVAL.
    assert!(redis
        .command("SCRIPT FLUSH")
        .is_some_and(|r| r.starts_with("+OK")));
    let fresh = card("1000000000077");
    assert_eq!(
        store.insert_cards(std::slice::from_ref(&fresh)).await.ok(),
        Some(vec![true])
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn foreign_or_malformed_data_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), "corrupt").await;
    let set = |cmd: &str| assert!(redis.command(cmd).is_some_and(|r| !r.starts_with('-')));
    set("SET corrupt:card:{1000000000001} plain-string");
    set("HSET corrupt:card:{1000000000002} v 1 d not-json");
    set("HSET corrupt:card:{1000000000003} v x d {}");
    set("HSET corrupt:card:{1000000000004} d {}");
    set("HSET corrupt:mobile:{79000000000} owner C since soon");
    for n in [1, 2, 3, 4] {
        let number = CardNumber::from_trusted(format!("100000000000{n}"));
        let got = store.get_card(&number).await;
        assert!(
            matches!(got, Err(loyalty::store::StoreError::Corrupt { .. })),
            "card {n}: {got:?}"
        );
    }
    let mut c = card("1000000000003");
    c.status = CardStatus::Issued;
    let got = store.update_card(&c, 0, &entry(1)).await;
    assert!(matches!(got, Ok(loyalty::store::Cas::Conflict)), "{got:?}");
    let got = store
        .update_card(&card("1000000000001"), 1, &entry(1))
        .await;
    assert!(
        matches!(got, Err(loyalty::store::StoreError::Corrupt { .. })),
        "{got:?}"
    );
    let got = store.index_get(Index::Mobile, "79000000000").await;
    assert!(
        matches!(got, Err(loyalty::store::StoreError::Corrupt { .. })),
        "{got:?}"
    );
    // A record without its expiry, and a record set that is not a hash.
    set("HSET corrupt:card:{1000000000005}:recs purchase:P-1 no-expiry");
    set("SET corrupt:card:{1000000000006}:recs plain-string");
    for n in [5, 6] {
        let number = CardNumber::from_trusted(format!("100000000000{n}"));
        let got = store.get_card_record(&number, "purchase:P-1").await;
        assert!(
            matches!(got, Err(loyalty::store::StoreError::Corrupt { .. })),
            "record set {n}: {got:?}"
        );
        let got = store.get_card_with_record(&number, "purchase:P-1").await;
        assert!(
            matches!(got, Err(loyalty::store::StoreError::Corrupt { .. })),
            "card with record {n}: {got:?}"
        );
    }
}
