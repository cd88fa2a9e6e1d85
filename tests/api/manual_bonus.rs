//! Manual accruals (docs/api.md §7, issue 27 items 4–6): an OperationId's scope
//! is the card (a replacement card counting as the card it replaced),
//! bonuses entirely in the past are refused, and totals past one credit's
//! cap are stated exactly.

use serde_json::{json, Value};

use crate::helpers::*;

fn day(offset: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(offset)).to_string()
}

fn amount(balance: &Value, status: &str) -> Value {
    balance["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["StatusCode"] == status && b["TypeCode"] == "0")
        .map_or(json!(0.0), |b| b["Amount"].clone())
}

#[tokio::test]
async fn one_operation_id_credits_many_cards_each_once() {
    let app = spawn_app().await;
    let (a, _) = app.card_in(State::Active).await;
    let (b, _) = app.card_in(State::Active).await;
    let promo = format!("promo-{}", unique_code());
    let first = app.accrue(&a, &promo, json!(50), json!({})).await;
    first.ok();
    app.accrue(&b, &promo, json!(50), json!({})).await.ok();
    // The same again on a card replays; other fields are a conflict.
    assert_eq!(
        app.accrue(&a, &promo, json!(50), json!({})).await.body,
        first.body
    );
    app.accrue(&a, &promo, json!(60), json!({}))
        .await
        .expect(409, "IdempotencyConflict");
    for card in [&a, &b] {
        assert_eq!(amount(&app.balance(card).await.body, "0"), json!(50.0));
    }
}

#[tokio::test]
async fn a_manual_bonus_retried_with_the_replacing_cards_number_replays() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let op = format!("welcome-{}", unique_code());
    let first = app.accrue(&old, &op, json!(100), json!({})).await;
    first.ok();
    app.block(CC_OPERATOR, &old, "4").await.ok();
    let new = app.new_card().await;
    app.issue(POS, &new).await.ok();
    app.bindto(POS, &new, &contact.unwrap().mobile).await.ok();
    app.active(POS, &new).await.ok();
    let again = app.accrue(&new, &op, json!(100), json!({})).await;
    again.ok();
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(amount(&app.balance(&new).await.body, "0"), json!(100.0));
    // Other fields under the same id are still a conflict.
    app.accrue(&new, &op, json!(101), json!({}))
        .await
        .expect(409, "IdempotencyConflict");
}

#[tokio::test]
async fn bonuses_entirely_in_the_past_are_refused() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    for dates in [
        json!({"ActiveFrom": day(-30), "ExpireDate": day(-10)}),
        json!({"ActiveFrom": "0001-01-01", "ExpireDate": "0001-01-02"}),
        json!({"ActiveFrom": day(-3000)}),
    ] {
        app.accrue(&number, &unique_code(), json!(10), dates.clone())
            .await
            .expect(400, "InvalidParameter");
    }
    // Without ActiveFrom the refusal names the date that is wrong.
    let r = app
        .accrue(
            &number,
            &unique_code(),
            json!(10),
            json!({"ExpireDate": day(-1)}),
        )
        .await;
    r.expect(400, "InvalidParameter");
    assert!(
        r.value().contains("in the past") && !r.value().contains("before ActiveFrom"),
        "{}",
        r.value()
    );
    assert_eq!(app.balance(&number).await.body["Bonuses"], json!([]));
    // Usable through today is accepted.
    app.accrue(
        &number,
        &unique_code(),
        json!(10),
        json!({"ActiveFrom": day(-30), "ExpireDate": day(0)}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn totals_past_one_credits_cap_are_stated_exactly() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    for _ in 0..2 {
        app.accrue(&number, &unique_code(), json!(1_000_000_000), json!({}))
            .await
            .ok();
    }
    let b = app.balance(&number).await;
    b.ok();
    assert_eq!(amount(&b.body, "0"), json!(2_000_000_000.0), "{}", b.body);
    assert_eq!(amount(&b.body, "4"), json!(2_000_000_000.0), "{}", b.body);
    app.block(CLIENT, &number, "0").await.ok();
    let b = app.balance(&number).await;
    assert_eq!(amount(&b.body, "3"), json!(2_000_000_000.0), "{}", b.body);
}
