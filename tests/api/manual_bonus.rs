//! Manual accruals (API.md §7, issue 27 item 4): an OperationId's scope is
//! the card (a replacement card counting as the card it replaced).

use serde_json::{json, Value};

use crate::helpers::*;

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
