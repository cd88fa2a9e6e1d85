//! Calculate is a dry run of confirm (same checks, same Keys), purchase
//! dates and amounts are bounded, and a PurchaseId's idempotency is judged
//! before any rule (issue 13, items 1, 3, 4).

use serde_json::{json, Value};

use crate::helpers::*;

fn day(offset: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(offset)).to_string()
}

impl TestApp {
    async fn calculate(&self, number: &str, amount: Value, pay: Value) -> Resp {
        self.post(
            POS,
            "/api/purchase/calculate",
            json!({"Number": number, "Amount": amount, "BonusToPay": pay}),
        )
        .await
    }

    async fn confirm_dated(&self, number: &str, id: &str, amount: Value, date: &str) -> Resp {
        self.post(
            POS,
            "/api/purchase/confirm",
            json!({"Number": number, "PurchaseId": id, "Amount": amount, "Date": date}),
        )
        .await
    }
}

#[tokio::test]
async fn calculate_refuses_what_confirm_refuses_and_still_tells_the_maximum() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let (issued, _) = app.card_in(State::IssuedBound).await;
    let before = app.balance(&number).await.body;
    // (card, Amount, BonusToPay, status, Key, MaxBonusToPay)
    let cases = [
        (
            &number,
            json!(150),
            json!(80),
            409,
            "InsufficientBonuses",
            75.0,
        ),
        (&number, json!(10), json!(20), 400, "InvalidAmount", 5.0),
        (&number, json!(0), json!(0), 400, "InvalidAmount", 0.0),
        (&issued, json!(100), json!(1), 409, "StatusError", 0.0),
    ];
    for (card, amount, pay, status, key, max) in cases {
        let calc = app.calculate(card, amount.clone(), pay.clone()).await;
        calc.expect(status, key);
        assert_eq!(calc.body["MaxBonusToPay"], json!(max), "{}", calc.body);
        assert_eq!(calc.body["Number"], json!(card), "{}", calc.body);
        app.confirm(card, &unique_code(), amount, pay)
            .await
            .expect(status, key);
    }
    // Nothing was written off by the refusals; what calculate accepts,
    // confirm accepts.
    assert_eq!(app.balance(&number).await.body, before);
    let calc = app.calculate(&number, json!(150), json!(75)).await;
    calc.ok();
    assert_eq!(calc.body["MaxBonusToPay"], json!(75.0));
    app.confirm(&number, &unique_code(), json!(150), json!(75))
        .await
        .ok();
}

#[tokio::test]
async fn confirm_refuses_a_zero_amount_and_dates_outside_the_window() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    app.confirm(&number, &unique_code(), json!(0), json!(0))
        .await
        .expect(400, "InvalidAmount");
    for bad in [day(400), day(2), day(-31), day(-400)] {
        let r = app
            .confirm_dated(&number, &unique_code(), json!(10), &bad)
            .await;
        r.expect(400, "InvalidParameter");
        assert!(r.value().contains("Date"), "{}", r.body);
    }
    app.confirm_dated(&number, &unique_code(), json!(10), "2026-13-01")
        .await
        .expect(400, "InvalidParameter");
    // Offline tills send the past; a till's clock may be a day ahead.
    for good in [day(1), day(0), day(-1), day(-29)] {
        let r = app
            .confirm_dated(&number, &unique_code(), json!(10), &good)
            .await;
        r.ok();
    }
    let b = app.balance(&number).await;
    assert!(
        !b.body.to_string().contains(&day(400 + 14)),
        "no lot from the refused far-future purchase: {}",
        b.body
    );
}

#[tokio::test]
async fn the_past_bound_never_exceeds_the_idempotency_retention() {
    // Purchase dates may go 30 days back by default; with a 3-day
    // retention, 3 days is the bound.
    let app = spawn_with(|s| s.bonus.idempotency_retention_secs = 3 * 86_400).await;
    let (number, _) = app.card_in(State::Active).await;
    app.confirm_dated(&number, &unique_code(), json!(10), &day(-3))
        .await
        .expect(400, "InvalidParameter");
    app.confirm_dated(&number, &unique_code(), json!(10), &day(-2))
        .await
        .ok();
}

#[tokio::test]
async fn a_purchase_id_of_another_card_is_a_conflict_before_any_rule() {
    let app = spawn_app().await;
    let first = app.card_with_bonuses(100).await;
    let id = format!("receipt-{}", unique_code());
    app.confirm(&first, &id, json!(100), json!(10)).await.ok();

    let (issued, _) = app.card_in(State::IssuedBound).await;
    let (blocked, _) = app.card_in(State::Blocked).await;
    let unknown = unique_card();
    // Each of these would be refused by a rule or a lookup on its own.
    for (card, amount, pay) in [
        (&issued, json!(100), json!(10)), // StatusError: write-off on Issued
        (&issued, json!(100), json!(0)),
        (&blocked, json!(100), json!(0)),  // StatusError
        (&unknown, json!(100), json!(0)),  // CannotFindCardNumber
        (&issued, json!(0), json!(0)),     // InvalidAmount
        (&first, json!(100), json!(1000)), // same card, other body
    ] {
        let r = app.confirm(card, &id, amount, pay).await;
        r.expect(409, "IdempotencyConflict");
    }
    let r = app.confirm_dated(&issued, &id, json!(100), &day(400)).await;
    r.expect(409, "IdempotencyConflict");
    // The first card's replay still answers as the first time.
    app.confirm(&first, &id, json!(100), json!(10)).await.ok();
}

/// Issue 27, item 2: with `expiry_days = 5` an offline confirm dated 10
/// days back accrues bonuses born Burnt, and a cancel took them back from
/// the live balance or not depending on whether anything had compacted the
/// card. Settings under which an accrual can expire while its purchase is
/// reversible are refused at start (docs/api-decisions.md).
#[tokio::test]
async fn settings_where_an_accrual_expires_while_reversible_are_refused_at_start() {
    let mut settings = test_settings();
    tokio::task::spawn_blocking(backend).await.unwrap();
    use_backend(&mut settings, &unique_prefix());
    settings.bonus.activation_delay_days = 0;
    settings.bonus.expiry_days = 5;
    let started = tokio::task::spawn_blocking(move || loyalty::RunningApp::spawn(settings))
        .await
        .unwrap();
    let err = started.err().expect("the server refuses to start");
    assert!(format!("{err:#}").contains("bonus.expiry_days"), "{err:#}");
}
