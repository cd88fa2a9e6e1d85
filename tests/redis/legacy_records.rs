//! Records written before the compact encoding and merged lots (issue 10,
//! item 5; docs/adr/0012) keep working on a real redis-server: a card
//! stored as JSON with per-purchase lots, its purchase's long-named outcome
//! and a JSON history entry are read, refunded, replayed and cancelled, and
//! the card's next write stores it in the new encoding.

use loyalty::domain::{Actor, Amount, CardNumber, Role};
use loyalty::engine::{Command, ConfirmRequest, Ops, Reply};
use loyalty::store::Store;
use redis::Commands;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::engine_settings::ops_settings;
use crate::redis_server::{free_port, RedisServer};

const PREFIX: &str = "legacy";

fn pos() -> Actor {
    Actor {
        login: "till".into(),
        role: Role::Pos,
    }
}

fn amt(h: i64) -> Amount {
    Amount::from_hundredths(h).unwrap()
}

/// `[year, ordinal]`, as the JSON of records stored before wrote dates.
fn day(offset: i64) -> String {
    let d = OffsetDateTime::now_utc().date() + time::Duration::days(offset);
    format!("[{},{}]", d.year(), d.ordinal())
}

async fn reversed(ops: &Ops, command: Command) -> loyalty::engine::Reversed {
    match ops.execute(command).await.unwrap() {
        Reply::Reversed(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

async fn lots_total(store: &dyn Store, number: &CardNumber) -> i64 {
    let card = store.get_card(number).await.unwrap().unwrap().value;
    card.ledger.lots.iter().map(|l| l.amount.hundredths()).sum()
}

#[tokio::test]
async fn records_stored_as_json_with_lots_per_purchase_still_work() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(dir.path(), free_port(false), &[], None);
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let number = "4100000000001";
    let card_key = format!("{PREFIX}:card:{{{number}}}");
    // An Active card as the previous release stored it: 20.00 from an
    // older purchase and 5.00 accrued by purchase OLD-1, each its own lot
    // with an id and the purchase's reference as its source.
    let card_json = format!(
        r#"{{"number":"{number}","status":"Active","category":"Plastic","card_type":"Bonus","contact":"C-1","block":null,"replaced_by":null,"replaces":null,"ledger":{{"lots":[{{"id":0,"bonus_type":"Cash","amount":2000,"active_from":{a},"expires":{e},"source":"purchase:OLD-0"}},{{"id":1,"bonus_type":"Cash","amount":500,"active_from":{a},"expires":{e},"source":"purchase:OLD-1"}}],"burnt":[0,0],"next_lot":2}},"transfer_out":[],"received_from":[]}}"#,
        a = day(-20),
        e = day(300),
    );
    let _: () = con
        .hset_multiple(&card_key, &[("v", "3"), ("d", card_json.as_str())])
        .unwrap();
    let entry = r#"{"at":"2026-11-01T10:00:00Z","login":"till","role":"pos","operation":"Purchase","from":"Active","to":"Active","reason_code":null,"reason_name":null,"detail":null,"bonus":{"reference":"OLD-1","credited":500,"debited":0,"money":10000,"comment":null}}"#;
    let _: () = con.rpush(format!("{card_key}:history"), entry).unwrap();
    let outcome = format!(
        r#"{{"fingerprint":"{number}|100.00|0.00|","outcome":{{"number":"{number}","purchase_id":"OLD-1","amount":10000,"bonus_to_pay":0,"accrual":500,"accrual_active_from":{a},"accrual_expire_date":{e},"discount_bp":0}},"purchase":{{"amount":10000,"bonus_paid":0,"accrual":500,"accrual_source":"purchase:OLD-1","writeoffs":[],"refunded":0,"accrual_reversed":0,"bonus_returned":0,"cancelled":false}}}}"#,
        a = day(-20),
        e = day(300),
    );
    let _: () = con
        .set_ex(format!("{card_key}:rec:purchase:OLD-1"), outcome, 3600)
        .unwrap();

    let store: Arc<dyn Store> = Arc::new(crate::support::redis_store(&redis.url(), PREFIX).await);
    let ops = Ops::new(store.clone(), ops_settings(30_000, 3600));
    let card = CardNumber::from_trusted(number.into());
    assert_eq!(lots_total(store.as_ref(), &card).await, 2500);

    // A replayed confirm of the old purchase answers its stored outcome.
    let confirm = |purchase_id: &str, amount: i64| {
        Command::Confirm(ConfirmRequest {
            actor: pos(),
            number: card.clone(),
            purchase_id: purchase_id.into(),
            amount: amt(amount),
            bonus_to_pay: Amount::ZERO,
            date: None,
        })
    };
    match ops.execute(confirm("OLD-1", 10_000)).await.unwrap() {
        Reply::Confirmed(c) => assert_eq!(c.accrual, amt(500)),
        other => panic!("unexpected {other:?}"),
    }
    // Half of the old purchase refunded: its own lot gives back half of
    // its accrual, the other old lot is untouched.
    let refund = || Command::Refund {
        actor: pos(),
        number: card.clone(),
        purchase_id: "OLD-1".into(),
        refund_id: "R-1".into(),
        amount: amt(5_000),
    };
    let r = reversed(&ops, refund()).await;
    assert_eq!((r.accrual_reversed, r.uncovered), (amt(250), Amount::ZERO));
    // The refund updated the old purchase's record where it is, a key of
    // its own (ADR 0013), with the time it had left.
    let legacy_ttl: i64 = con.pttl(format!("{card_key}:rec:purchase:OLD-1")).unwrap();
    assert!(
        (1..=3_600_000).contains(&legacy_ttl),
        "legacy PTTL {legacy_ttl}"
    );
    let in_set: bool = con
        .hexists(format!("{card_key}:recs"), "purchase:OLD-1")
        .unwrap();
    assert!(!in_set, "a record is in one place for its whole life");
    assert_eq!(lots_total(store.as_ref(), &card).await, 2250);
    let stored = store.get_card(&card).await.unwrap().unwrap().value;
    let old0 = stored
        .ledger
        .lots
        .iter()
        .find(|l| l.source == "purchase:OLD-0");
    assert_eq!(old0.map(|l| l.amount), Some(amt(2000)));
    // The card is stored in the new encoding now.
    let raw: Vec<u8> = con.hget(&card_key, "d").unwrap();
    assert_eq!(raw[0], loyalty::store::codec::VERSION);
    // The refund's retry is answered, not applied; then the cancel takes
    // the rest of the old purchase's accrual.
    assert_eq!(reversed(&ops, refund()).await, r);
    assert_eq!(lots_total(store.as_ref(), &card).await, 2250);
    let c = reversed(
        &ops,
        Command::Cancel {
            actor: pos(),
            number: card.clone(),
            purchase_id: "OLD-1".into(),
        },
    )
    .await;
    assert_eq!(c.accrual_reversed, amt(250));
    assert_eq!(lots_total(store.as_ref(), &card).await, 2000);

    // New purchases of one day make one lot next to the old one.
    for i in 0..5 {
        ops.execute(confirm(&format!("NEW-{i}"), 10_000))
            .await
            .unwrap();
    }
    let stored = store.get_card(&card).await.unwrap().unwrap().value;
    assert_eq!(stored.ledger.lots.len(), 2, "{:?}", stored.ledger.lots);
    assert_eq!(lots_total(store.as_ref(), &card).await, 2000 + 5 * 500);
    // Cancelling one of them takes its 5.00 back from the merged lot.
    reversed(
        &ops,
        Command::Cancel {
            actor: pos(),
            number: card.clone(),
            purchase_id: "NEW-2".into(),
        },
    )
    .await;
    assert_eq!(lots_total(store.as_ref(), &card).await, 2000 + 4 * 500);

    // The history reads across both encodings, oldest (JSON) first.
    let page = match ops
        .execute(Command::History {
            number: card.clone(),
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
    {
        Reply::History(page) => page,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(page.entries.len(), 1 + 2 + 5 + 1);
    let oldest = page.entries.iter().find(|(seq, _)| *seq == 0).unwrap();
    assert_eq!(
        oldest.1.bonus.as_ref().map(|b| b.reference.as_str()),
        Some("OLD-1")
    );
    let raw: Vec<Vec<u8>> = con.lrange(format!("{card_key}:history"), 0, -1).unwrap();
    assert_eq!(raw[0][0], b'{');
    assert!(raw[1..]
        .iter()
        .all(|e| e[0] == loyalty::store::codec::VERSION));
}
