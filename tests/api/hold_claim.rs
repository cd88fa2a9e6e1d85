//! A held PurchaseId stays bound to its card when a confirm of it that
//! took the hold's claim over is refused (issue 24, review). On the
//! cluster the store claims the PurchaseId before the card's compare-and-
//! set: a confirm deciding on a stale copy of the card takes the claim
//! over from the hold, loses the card's race, and is refused on the fresh
//! card. Its refusal gave the claim back, freeing a PurchaseId the card's
//! open hold still binds: another card could then hold or confirm it, and
//! the held purchase could no longer be confirmed.
//!
//! The same holds once the hold is over (released, or expired and freed by
//! a later write): the card keeps its answers, a release's retry finds the
//! card through the claim, and the PurchaseId must not move to another
//! card. On one Redis node the stale confirm's claim and compare-and-set
//! are one script, so only the cluster reached the refusal with the claim
//! taken; tests/redis/ended_hold_claims.rs reaches it on every store.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_refused_confirm_leaves_its_holds_purchase_id_bound() {
    require_shared_store();
    let prefix = unique_prefix();
    let one = {
        let p = prefix.clone();
        spawn_with(move |s| use_backend(s, &p)).await
    };
    let two = spawn_with(move |s| use_backend(s, &prefix)).await;
    let number = two.card_with_bonuses(100).await;
    let other = two.card_with_bonuses(100).await;
    // Instance two holds 40 and keeps the card as it wrote it.
    two.hold(&number, "held", json!(200), json!(40)).await.ok();
    // Instance one spends 50 of the 60 left Active: two's copy is stale.
    one.confirm(&number, "spend", json!(200), json!(50))
        .await
        .ok();
    // More than held (not the hold's confirm): on two's stale copy 60 of
    // 100 were there, on the card only 50 are. Refused.
    two.confirm(&number, "held", json!(200), json!(60))
        .await
        .expect(409, "InsufficientBonuses");
    // The hold stays, and so does its PurchaseId's binding to the card.
    one.hold(&other, "held", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    one.confirm(&other, "held", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    let c = one.confirm(&number, "held", json!(200), json!(40)).await;
    c.ok();
    assert_eq!(c.body["BonusToPay"], json!(40.0));
}

async fn pair() -> (TestApp, TestApp) {
    require_shared_store();
    let prefix = unique_prefix();
    let one = {
        let p = prefix.clone();
        spawn_with(move |s| use_backend(s, &p)).await
    };
    let two = spawn_with(move |s| use_backend(s, &prefix)).await;
    (one, two)
}

/// How the hold the test opens is over before the refused confirm.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Released,
    Expired,
}

/// Instance two holds 40 of 100 and keeps the card with the hold open; the
/// hold ends (released on one, or expired), one spends 50 of what is then
/// Active; two's confirm of 60 decides on its stale copy (the hold open,
/// 60 Active, so a plain confirm of 100) and is refused on the card (50).
async fn a_refused_confirm_leaves_an_ended_holds_purchase_id_bound(ended: Ended) {
    let (one, two) = pair().await;
    let number = two.card_with_bonuses(100).await;
    let other = two.card_with_bonuses(100).await;
    let secs = match ended {
        Ended::Released => json!({}),
        Ended::Expired => json!({"HoldSecs": 1}),
    };
    two.hold_with(&number, "held", json!(200), json!(40), secs)
        .await
        .ok();
    let freed = match ended {
        Ended::Released => {
            let r = one.release("held").await;
            r.ok();
            r.body["Released"].clone()
        }
        Ended::Expired => {
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            json!(0.0)
        }
    };
    one.confirm(&number, "spend", json!(200), json!(50))
        .await
        .ok();
    two.confirm(&number, "held", json!(200), json!(60))
        .await
        .expect(409, "InsufficientBonuses");
    one.hold(&other, "held", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    one.confirm(&other, "held", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    // The release's retry still finds the card and answers as the first.
    let r = one.release("held").await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number), "{ended:?}");
    assert_eq!(r.body["Released"], freed, "{ended:?}");
    let c = one.confirm(&number, "held", json!(200), json!(10)).await;
    c.ok();
    assert_eq!(c.body["BonusToPay"], json!(10.0), "{ended:?}");
}

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_refused_confirm_leaves_a_released_holds_purchase_id_bound() {
    a_refused_confirm_leaves_an_ended_holds_purchase_id_bound(Ended::Released).await;
}

#[tokio::test]
#[ignore = "needs two server instances on one store: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_refused_confirm_leaves_an_expired_holds_purchase_id_bound() {
    a_refused_confirm_leaves_an_ended_holds_purchase_id_bound(Ended::Expired).await;
}

fn held(balance: &Value) -> f64 {
    balance["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["StatusCode"] == "5")
        .map(|b| b["Amount"].as_f64().unwrap())
        .sum()
}

/// A released hold's PurchaseId: its hold's replay answers the first
/// answer and holds nothing again; another body is a conflict; on another
/// card it is a conflict; on its card a confirm is a plain one.
#[tokio::test]
async fn a_released_holds_purchase_id_stays_its_cards() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let other = app.card_with_bonuses(100).await;
    let first = app.hold(&number, "p-1", json!(200), json!(40)).await;
    first.ok();
    app.release("p-1").await.ok();
    let again = app.hold(&number, "p-1", json!(200), json!(40)).await;
    again.ok();
    assert_eq!(again.body["HeldUntil"], first.body["HeldUntil"]);
    assert_eq!(held(&app.balance(&number).await.body), 0.0, "held again");
    app.hold(&number, "p-1", json!(200), json!(30))
        .await
        .expect(409, "IdempotencyConflict");
    app.hold(&other, "p-1", json!(200), json!(40))
        .await
        .expect(409, "IdempotencyConflict");
    app.confirm(&other, "p-1", json!(200), json!(40))
        .await
        .expect(409, "IdempotencyConflict");
    let c = app.confirm(&number, "p-1", json!(200), json!(90)).await;
    c.ok();
    assert_eq!(c.body["BonusToPay"], json!(90.0));
}

/// An expired hold's PurchaseId stays bound to its card: on another card a
/// hold or confirm of it is a conflict.
#[tokio::test]
async fn an_expired_holds_purchase_id_stays_its_cards() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let other = app.card_with_bonuses(100).await;
    app.hold_with(
        &number,
        "p-1",
        json!(200),
        json!(40),
        json!({"HoldSecs": 1}),
    )
    .await
    .ok();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.confirm(&other, "p-1", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    app.hold(&other, "p-1", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    app.confirm(&number, "p-1", json!(200), json!(90))
        .await
        .ok();
}

/// A refused hold binds nothing: its PurchaseId is free for another card.
#[tokio::test]
async fn a_refused_hold_leaves_its_purchase_id_free() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(10).await;
    let other = app.card_with_bonuses(100).await;
    app.hold(&number, "p-1", json!(200), json!(40))
        .await
        .expect(409, "InsufficientBonuses");
    app.hold(&other, "p-1", json!(200), json!(40)).await.ok();
    app.release("p-1").await.ok();
}
