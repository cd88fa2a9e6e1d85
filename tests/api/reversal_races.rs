//! Refunds, cancels and confirms of one purchase racing over two server
//! instances on one store, since writes go first on the card as each
//! instance last saw it (issue 20 item 2, `engine/owned.rs`): every
//! reversal is computed on a base the other instance may have moved, and
//! only the store's compare-and-set keeps the money exact. Whatever the
//! interleaving, the refunds never exceed the purchase, what is reversed
//! adds up to what the purchase moved to the hundredth, and one
//! PurchaseId is one purchase whatever bodies race for it.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

async fn spawn_pair() -> Vec<TestApp> {
    require_shared_store();
    let prefix = unique_prefix();
    let first = {
        let p = prefix.clone();
        spawn_with(move |s| use_backend(s, &p)).await
    };
    let second = spawn_with(move |s| use_backend(s, &prefix)).await;
    vec![first, second]
}

/// Hundredths of a money field.
fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 100.0).round() as i64
}

/// Sum of a field over the OK answers.
fn total(answers: &[Resp], field: &str) -> i64 {
    answers
        .iter()
        .filter(|r| r.key() == "OK")
        .map(|r| cents(&r.body[field]))
        .sum()
}

/// The history entries of an operation on the card.
async fn entries(app: &TestApp, number: &str, operation: &str) -> usize {
    let page = app
        .get(POS, &format!("/api/card/transactions/{number}?limit=500"))
        .await;
    page.ok();
    page.body["Items"]
        .as_array()
        .expect("Items")
        .iter()
        .filter(|t| t["Operation"] == operation)
        .count()
}

async fn refund(app: &TestApp, purchase: &str, refund_id: &str, amount: Value) -> Resp {
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": purchase, "RefundId": refund_id, "Amount": amount}),
    )
    .await
}

async fn cancel(app: &TestApp, purchase: &str) -> Resp {
    app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": purchase}))
        .await
}

/// The card's bonuses, once both instances answer them alike: a balance
/// read on one instance may lag the other's write by the record cache's
/// staleness bound (docs/redis.md, "The record cache": at most 1 s), and
/// the instance that wrote last is never behind, so agreeing they are
/// current. Bounded (a guard against a hang, not a timing assertion).
async fn same_balance(apps: &[TestApp], number: &str) -> Value {
    let mut answers = Vec::new();
    for _ in 0..100 {
        answers.clear();
        for a in apps {
            let b = a.balance(number).await;
            b.ok();
            answers.push(b.body);
        }
        if answers.iter().all(|b| *b == answers[0]) {
            return answers[0]["Bonuses"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the instances never agreed on the balance: {answers:?}");
}

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn sixteen_refunds_of_one_purchase_over_two_instances_never_exceed_it() {
    let apps = spawn_pair().await;
    for round in 0..4 {
        let number = apps[0].card_with_bonuses(100).await;
        let before = same_balance(&apps, &number).await;
        let id = format!("rr-{round}-{number}");
        let confirmed = apps[round % 2]
            .confirm(&number, &id, json!(100), json!(10))
            .await;
        confirmed.ok();
        // Both instances have seen the card (a warm base on each).
        same_balance(&apps, &number).await;
        let answers = join_all((0..16).map(|i| {
            let app = &apps[i % 2];
            let id = id.clone();
            async move { refund(app, &id, &format!("r{i}"), json!(30)).await }
        }))
        .await;
        let ok = answers.iter().filter(|r| r.key() == "OK").count();
        assert_eq!(ok, 3, "30 + 30 + 30 fit in 100, a fourth does not");
        for r in &answers {
            assert!(
                r.key() == "OK" || r.key() == "InvalidAmount",
                "unexpected: {}",
                r.body
            );
        }
        assert_eq!(total(&answers, "Amount"), 9_000);
        // Each winner's retry on either instance is its replay.
        for (i, r) in answers.iter().enumerate().filter(|(_, r)| r.key() == "OK") {
            for app in &apps {
                let again = refund(app, &id, &format!("r{i}"), json!(30)).await;
                assert_eq!(again.body, r.body, "replay of r{i}");
            }
        }
        assert_eq!(entries(&apps[0], &number, "refund").await, 3);
        // The rest, on the other instance: the accrual and the write-off
        // come back exactly, and the card is as before the purchase.
        let last = refund(&apps[(round + 1) % 2], &id, "last", json!(10)).await;
        last.ok();
        let mut all: Vec<Resp> = answers;
        all.push(last);
        assert_eq!(total(&all, "Amount"), 10_000);
        assert_eq!(
            total(&all, "AccrualReversed"),
            cents(&confirmed.body["Accrual"])
        );
        assert_eq!(total(&all, "BonusReturned"), 1_000);
        assert_eq!(same_balance(&apps, &number).await, before);
    }
}

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_cancel_racing_refunds_over_two_instances_reverses_the_purchase_exactly_once() {
    let apps = spawn_pair().await;
    for round in 0..4 {
        let number = apps[0].card_with_bonuses(100).await;
        let before = same_balance(&apps, &number).await;
        let id = format!("cr-{round}-{number}");
        let confirmed = apps[round % 2]
            .confirm(&number, &id, json!(100), json!(10))
            .await;
        confirmed.ok();
        same_balance(&apps, &number).await;
        // Refunds of 25 on both instances, and a cancel on each (the second
        // cancel is the first's replay, or loses to it).
        let refunds = join_all((0..8).map(|i| {
            let app = &apps[i % 2];
            let id = id.clone();
            async move { refund(app, &id, &format!("r{i}"), json!(25)).await }
        }));
        let cancels = join_all(apps.iter().map(|app| cancel(app, &id)));
        let (refunds, cancels) = futures_util::join!(refunds, cancels);
        for r in &refunds {
            assert!(
                r.key() == "OK" || r.key() == "InvalidAmount",
                "unexpected refund answer: {}",
                r.body
            );
        }
        cancels[0].ok();
        assert_eq!(cancels[1].body, cancels[0].body, "a cancel's replay");
        let mut all: Vec<Resp> = refunds;
        let cancelled = cancels.into_iter().next().expect("a cancel");
        all.push(cancelled);
        // The cancel took whatever the refunds had left: together, the
        // whole purchase, its accrual and its write-off, to the hundredth.
        assert_eq!(total(&all, "Amount"), 10_000, "money reversed");
        assert_eq!(
            total(&all, "AccrualReversed"),
            cents(&confirmed.body["Accrual"])
        );
        assert_eq!(total(&all, "BonusReturned"), 1_000);
        let refunded = all.iter().filter(|r| r.key() == "OK").count() - 1;
        assert_eq!(entries(&apps[1], &number, "refund").await, refunded);
        assert_eq!(entries(&apps[1], &number, "cancel").await, 1);
        assert_eq!(same_balance(&apps, &number).await, before);
        // Nothing is left to refund, on either instance.
        for app in &apps {
            refund(app, &id, "after", json!(1))
                .await
                .expect(400, "InvalidAmount");
        }
    }
}

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn one_purchase_id_raced_with_different_bodies_over_two_instances_is_one_purchase() {
    let apps = spawn_pair().await;
    for round in 0..4 {
        let number = apps[0].card_with_bonuses(100).await;
        same_balance(&apps, &number).await;
        let id = format!("db-{round}-{number}");
        // Amounts 10.00 to 17.00: every body differs.
        let answers = join_all((0..8).map(|i| {
            let app = &apps[i % 2];
            let id = id.clone();
            let number = number.clone();
            async move { app.confirm(&number, &id, json!(10 + i), json!(1)).await }
        }))
        .await;
        let winners: Vec<&Resp> = answers.iter().filter(|r| r.key() == "OK").collect();
        assert_eq!(winners.len(), 1, "one body wins");
        for r in &answers {
            assert!(
                r.key() == "OK" || r.key() == "IdempotencyConflict",
                "unexpected: {}",
                r.body
            );
        }
        assert_eq!(entries(&apps[0], &number, "purchase").await, 1);
        // The winner replays on both instances; its cancel reverses it.
        let won = winners[0];
        for app in &apps {
            let again = app
                .confirm(&number, &id, won.body["Amount"].clone(), json!(1))
                .await;
            assert_eq!(again.body, won.body);
        }
        let c = cancel(&apps[1], &id).await;
        c.ok();
        assert_eq!(c.body["Amount"], won.body["Amount"]);
        assert_eq!(c.body["AccrualReversed"], won.body["Accrual"]);
    }
}
