//! A card's records on Redis (ADR 0013): fields of one hash per card, each
//! with its own expiry kept in its value, exported with their time left and
//! imported without overwriting.

use std::time::Duration;

use loyalty::domain::{Card, CardNumber, CardType, Category};
use loyalty::store::prelude::*;
use loyalty::store::{CardRecordWrite, Cas, DumpItem, RecordRead, Store};

use crate::redis_server::{free_port, RedisServer};

const PREFIX: &str = "rs";

fn card(n: &str) -> Card {
    Card::new(
        CardNumber::from_trusted(n.to_owned()),
        Category::Plastic,
        CardType::ALL[0],
    )
}

fn int(redis: &RedisServer, cmd: &str) -> i64 {
    let reply = redis.command(cmd).unwrap_or_else(|| panic!("{cmd}"));
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("{cmd}: {reply:?}"))
}

/// Writes `records` with the card at its current version; the answer.
async fn write(store: &dyn Store, c: &Card, records: &[CardRecordWrite], ttl_secs: u64) -> Cas {
    let version = store.get_card(&c.number).await.unwrap().unwrap().version;
    store
        .update_card_with(c, version, None, records, ttl_secs)
        .await
        .unwrap()
}

async fn read(store: &dyn Store, c: &Card, key: &str) -> Option<String> {
    store.get_card_record(&c.number, key).await.unwrap()
}

/// The record as read with its card: value and time left.
async fn read_with_card(store: &dyn Store, c: &Card, key: &str) -> Option<RecordRead> {
    store.get_card_with_record(&c.number, key).await.unwrap().1
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn records_are_fields_of_one_set_per_card_each_with_its_own_expiry() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), PREFIX).await;
    let (a, b) = (card("7200000000001"), card("7200000000002"));
    store.insert_cards(&[a.clone(), b.clone()]).await.unwrap();
    let set = format!("{PREFIX}:card:{{{}}}:recs", a.number);

    // One field per record, no key of its own; the set expires with it.
    let short = [CardRecordWrite::outcome("purchase:P-1", "one")];
    assert_eq!(write(&store, &a, &short, 1).await, Cas::Applied);
    assert_eq!(int(&redis, &format!("HLEN {set}")), 1);
    assert_eq!(
        int(
            &redis,
            &format!("EXISTS {PREFIX}:card:{{{}}}:rec:purchase:P-1", a.number)
        ),
        0
    );
    let pttl = int(&redis, &format!("PTTL {set}"));
    assert!((1..=1000).contains(&pttl), "set PTTL {pttl}");
    assert_eq!(
        read(&store, &a, "purchase:P-1").await.as_deref(),
        Some("one")
    );
    let rec = read_with_card(&store, &a, "purchase:P-1").await;
    let rec = rec.expect("the record");
    assert!(matches!(rec.ttl_ms, Some(1..=1000)), "{rec:?}");

    // A longer-lived record extends the set's life; a shorter one does not
    // shorten it.
    let long = [CardRecordWrite::outcome("purchase:P-2", "two")];
    assert_eq!(write(&store, &a, &long, 3600).await, Cas::Applied);
    let pttl = int(&redis, &format!("PTTL {set}"));
    assert!(pttl > 3_590_000, "set PTTL {pttl}");

    // Past its expiry a record reads as absent, though its field is still
    // there, and its outcome may be written again (create-only sees none).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(read(&store, &a, "purchase:P-1").await, None);
    let rec = read_with_card(&store, &a, "purchase:P-1").await;
    assert!(rec.is_none(), "{rec:?}");
    assert_eq!(
        write(
            &store,
            &a,
            &[CardRecordWrite::replace("purchase:P-1", "x")],
            3600
        )
        .await,
        Cas::Conflict,
        "an update never brings an expired record back"
    );
    let again = [CardRecordWrite::outcome("purchase:P-1", "again")];
    assert_eq!(write(&store, &a, &again, 3600).await, Cas::Applied);
    assert_eq!(
        read(&store, &a, "purchase:P-1").await.as_deref(),
        Some("again")
    );
    // A live outcome refuses a second one.
    assert_eq!(write(&store, &a, &again, 3600).await, Cas::Conflict);

    // Writes sweep expired fields: a set this small (a listpack) is
    // scanned whole, with a chance of 4 in its size per write (at most
    // 4 writes here: its size stays under 8).
    let brief = [CardRecordWrite::outcome("purchase:P-3", "three")];
    assert_eq!(write(&store, &a, &brief, 1).await, Cas::Applied);
    let pttl = int(&redis, &format!("PTTL {set}"));
    assert!(pttl > 3_500_000, "set PTTL {pttl}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(int(&redis, &format!("HEXISTS {set} purchase:P-3")), 1);
    for i in 4..8 {
        let more = [CardRecordWrite::outcome(format!("purchase:P-{i}"), "more")];
        assert_eq!(write(&store, &a, &more, 3600).await, Cas::Applied);
    }
    assert_eq!(int(&redis, &format!("HEXISTS {set} purchase:P-3")), 0);
    assert_eq!(int(&redis, &format!("HLEN {set}")), 6);

    // An idle card's set goes with its last record: nothing stays in RAM.
    let set_b = format!("{PREFIX}:card:{{{}}}:recs", b.number);
    assert_eq!(write(&store, &b, &brief, 1).await, Cas::Applied);
    assert_eq!(int(&redis, &format!("EXISTS {set_b}")), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(int(&redis, &format!("EXISTS {set_b}")), 0);

    // A record that never expires keeps the whole set.
    let forever = [CardRecordWrite::outcome("bonus:B-1", "kept")];
    assert_eq!(write(&store, &a, &forever, 0).await, Cas::Applied);
    assert_eq!(int(&redis, &format!("PTTL {set}")), -1);
    let rec = read_with_card(&store, &a, "bonus:B-1").await;
    assert_eq!(rec.expect("the record").ttl_ms, None);
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn records_are_exported_with_their_time_left_and_imported_without_overwriting() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let store = crate::support::redis_store(&redis.url(), PREFIX).await;
    let a = card("7200000000003");
    store.insert_cards(std::slice::from_ref(&a)).await.unwrap();
    let kept = [CardRecordWrite::outcome("bonus:B-0", "kept")];
    assert_eq!(write(&store, &a, &kept, 0).await, Cas::Applied);
    let timed = [CardRecordWrite::outcome("purchase:NEW", "new")];
    assert_eq!(write(&store, &a, &timed, 3600).await, Cas::Applied);
    // A key of another layout under the records' names is no record.
    assert!(redis
        .command(&format!(
            "SET {PREFIX}:card:{{{}}}:rec:purchase:OTHER x",
            a.number
        ))
        .is_some_and(|r| r.contains("OK")));
    assert_eq!(read(&store, &a, "purchase:OTHER").await, None);

    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.dump_page(cursor.as_deref(), 10).await.unwrap();
        for item in page.items {
            if let DumpItem::Record {
                key, value, ttl_ms, ..
            } = item
            {
                records.push((key, value, ttl_ms));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    records.sort();
    assert_eq!(records.len(), 2, "each record once: {records:?}");
    assert_eq!(
        (records[0].0.as_str(), records[0].1.as_str(), records[0].2),
        ("bonus:B-0", "kept", None)
    );
    assert_eq!(
        (records[1].0.as_str(), records[1].1.as_str()),
        ("purchase:NEW", "new")
    );
    assert!(matches!(records[1].2, Some(3_590_000..=3_600_000)));

    // An import writes into the set, and not over a record that exists.
    let b = card("7200000000004");
    store.insert_cards(std::slice::from_ref(&b)).await.unwrap();
    assert!(store
        .restore_record(&b.number, "purchase:IMP", "imported", Some(5_000))
        .await
        .unwrap());
    assert!(!store
        .restore_record(&b.number, "purchase:IMP", "other", Some(5_000))
        .await
        .unwrap());
    assert_eq!(
        read(&store, &b, "purchase:IMP").await.as_deref(),
        Some("imported")
    );
    let set_b = format!("{PREFIX}:card:{{{}}}:recs", b.number);
    let pttl = int(&redis, &format!("PTTL {set_b}"));
    assert!((1..=5_000).contains(&pttl), "set PTTL {pttl}");
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_large_record_set_is_swept_as_its_card_keeps_buying() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(
        dir.path(),
        free_port(false),
        &["--hash-max-listpack-entries", "128"],
        None,
    );
    let store = crate::support::redis_store(&redis.url(), PREFIX).await;
    let a = card("7200000000005");
    store.insert_cards(std::slice::from_ref(&a)).await.unwrap();
    let set = format!("{PREFIX}:card:{{{}}}:recs", a.number);
    // A live record keeps the set from expiring whole; then 200 records
    // that expire at once: past `hash-max-listpack-entries` (128 as in
    // deploy/redis/redis.conf), so the set is a hash table and a sweep
    // sees part of it.
    let live = [CardRecordWrite::outcome("purchase:LIVE", "live")];
    assert_eq!(write(&store, &a, &live, 3600).await, Cas::Applied);
    for i in 0..200 {
        let r = [CardRecordWrite::outcome(format!("purchase:OLD-{i}"), "old")];
        assert_eq!(write(&store, &a, &r, 1).await, Cas::Applied);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..200 {
        let r = [CardRecordWrite::outcome(format!("purchase:NEW-{i}"), "new")];
        assert_eq!(write(&store, &a, &r, 3600).await, Cas::Applied);
    }
    let encoding = redis.command(&format!("OBJECT ENCODING {set}"));
    assert!(
        encoding.as_deref().is_some_and(|r| r.contains("hashtable")),
        "{encoding:?}"
    );
    // 50 sweeps of about 16 fields each: most of the expired ones are gone
    // (all of them, measured; at least half asserted), no live one.
    let len = int(&redis, &format!("HLEN {set}"));
    assert!(len <= 301, "{len} fields left of 401 (200 expired)");
    assert_eq!(
        read(&store, &a, "purchase:NEW-0").await.as_deref(),
        Some("new")
    );
    let live = (0..200).filter(|i| {
        redis
            .command(&format!("HEXISTS {set} purchase:NEW-{i}"))
            .is_some_and(|r| r.trim() == ":1")
    });
    assert_eq!(live.count(), 200, "every live record stays");
}
