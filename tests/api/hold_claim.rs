//! A held PurchaseId stays bound to its card when a confirm of it that
//! took the hold's claim over is refused (issue 24, review). On the
//! cluster the store claims the PurchaseId before the card's compare-and-
//! set: a confirm deciding on a stale copy of the card takes the claim
//! over from the hold, loses the card's race, and is refused on the fresh
//! card. Its refusal gave the claim back, freeing a PurchaseId the card's
//! open hold still binds: another card could then hold or confirm it, and
//! the held purchase could no longer be confirmed.

use serde_json::json;

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
