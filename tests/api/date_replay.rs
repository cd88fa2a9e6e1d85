//! A confirm dated ahead of UTC, replayed once its outcome has expired but
//! while its `Date` still passes the window, is refused — never counted
//! twice (issue 26, item 2). Found with retention 3 s, lease 0.5 s, Date =
//! tomorrow: 100 → 70, a replay at once 70, the same request 4.5 s later
//! 200 OK and 40, the purchase twice in history. The PurchaseId's index
//! expired with retention + lease, while the Date stays accepted until its
//! own day is over. On every backend (memory, redis, cluster).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

fn active_bonuses(balance: &Value) -> f64 {
    balance["Bonuses"]
        .as_array()
        .expect("Bonuses")
        .iter()
        .filter(|b| b["StatusCode"] == "0")
        .map(|b| b["Amount"].as_f64().expect("an amount"))
        .sum()
}

#[tokio::test]
async fn a_confirm_dated_tomorrow_replayed_after_the_retention_is_refused() {
    let app = spawn_with(|s| {
        s.bonus.idempotency_retention_secs = 3;
        s.engine.claim_lease_ms = 500;
    })
    .await;
    let (number, _) = app.card_in(State::Active).await;
    app.post(
        MARKETER,
        "/api/card/bonus",
        json!({"Number": number, "OperationId": unique_code(), "Amount": 100, "TypeCode": 0}),
    )
    .await
    .ok();
    let tomorrow = (time::OffsetDateTime::now_utc().date() + time::Duration::days(1)).to_string();
    let confirm = json!({
        "Number": number, "PurchaseId": unique_code(), "Amount": 100,
        "BonusToPay": 30, "Date": tomorrow,
    });
    let first = app
        .post(POS, "/api/purchase/confirm", confirm.clone())
        .await;
    first.ok();
    let again = app
        .post(POS, "/api/purchase/confirm", confirm.clone())
        .await;
    assert_eq!(again.body, first.body, "a replay answers the first result");
    assert_eq!(active_bonuses(&app.balance(&number).await.body), 70.0);

    // Past the retention and the lease (the index's old lifetime): the
    // outcome is gone, the Date (tomorrow) still passes. Not a timing
    // assertion: waiting longer changes nothing.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    app.post(POS, "/api/purchase/confirm", confirm)
        .await
        .expect(409, "IdempotencyConflict");
    assert_eq!(
        active_bonuses(&app.balance(&number).await.body),
        70.0,
        "the purchase was counted again"
    );
    let purchases = app
        .history(&number)
        .await
        .iter()
        .filter(|e| e["Operation"] == "purchase")
        .count();
    assert_eq!(purchases, 1, "the purchase is in the history once");
}
