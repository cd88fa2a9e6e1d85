//! Holds under hostile input (issue 24, review): odd `HoldSecs`,
//! `BonusToPay` and dates, releases nobody may make, a confirm of a held
//! PurchaseId on another card, a reversal of a purchase that consumed a
//! hold, and settings under which a hold could outlive its PurchaseId or
//! the clock. Run on every backend (LOYALTY_TEST_BACKEND).

use serde_json::{json, Value};

use crate::helpers::*;

fn bucket(balance: &Value, status: &str) -> f64 {
    balance["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["StatusCode"] == status)
        .map(|b| b["Amount"].as_f64().unwrap())
        .sum()
}

fn day(offset: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(offset)).to_string()
}

/// Bad input is refused with a clear error and reserves nothing.
#[tokio::test]
async fn odd_hold_input_is_refused_and_holds_nothing() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let before = app.balance(&number).await.body;
    for secs in [json!(0), json!(-1), json!(1.5), json!("abc")] {
        let r = app
            .hold_with(
                &number,
                "odd",
                json!(200),
                json!(10),
                json!({ "HoldSecs": secs.clone() }),
            )
            .await;
        // InvalidParameter, or InvalidJson for a number with a fraction.
        assert_eq!(r.status, 400, "HoldSecs {secs}: {:?}", r.body);
        assert!(
            r.key().starts_with("Invalid"),
            "HoldSecs {secs}: {:?}",
            r.body
        );
    }
    for pay in [json!(-1), json!(0.001), json!("x")] {
        let r = app.hold(&number, "odd", json!(200), pay.clone()).await;
        assert_eq!(r.status, 400, "BonusToPay {pay}: {:?}", r.body);
    }
    app.hold(&number, "odd", json!(200), json!(101))
        .await
        .expect(409, "InsufficientBonuses");
    app.hold_with(
        &number,
        "odd",
        json!(200),
        json!(10),
        json!({"Date": "2026-13-40"}),
    )
    .await
    .expect(400, "InvalidParameter");
    assert_eq!(app.balance(&number).await.body, before, "nothing held");
    // None of the refusals bound the PurchaseId: it is still free.
    let other = app.card_with_bonuses(100).await;
    app.hold(&other, "odd", json!(200), json!(10)).await.ok();
}

/// A `HoldSecs` past any clock is capped by `bonus.hold_max_secs`, not an
/// overflow.
#[tokio::test]
async fn a_huge_hold_secs_is_capped() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let h = app
        .hold_with(
            &number,
            "huge",
            json!(200),
            json!(10),
            json!({ "HoldSecs": u64::MAX }),
        )
        .await;
    h.ok();
    let until = time::OffsetDateTime::parse(
        h.body["HeldUntil"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let secs = (until - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!(secs <= 3600, "capped by bonus.hold_max_secs: {secs}");
}

/// Settings under which no hold could live are refused at start.
#[tokio::test]
async fn hold_settings_no_hold_could_live_by_are_refused_at_start() {
    for (hold_secs, hold_max_secs) in [(0, 3600), (900, 0)] {
        let mut settings = test_settings();
        tokio::task::spawn_blocking(backend).await.unwrap();
        use_backend(&mut settings, &unique_prefix());
        settings.bonus.hold_secs = hold_secs;
        settings.bonus.hold_max_secs = hold_max_secs;
        let started = tokio::task::spawn_blocking(move || loyalty::RunningApp::spawn(settings))
            .await
            .unwrap();
        let err = started
            .err()
            .unwrap_or_else(|| panic!("{hold_secs}/{hold_max_secs}: the server refuses to start"));
        assert!(format!("{err:#}").contains("bonus.hold"), "{err:#}");
    }
}

/// A hold lasts at most its PurchaseId's retention, whatever
/// `bonus.hold_max_secs` says: after it the PurchaseId's binding is gone
/// and the hold could not be confirmed. An unbounded maximum used to
/// overflow the hold's end: a panic on the request's path (500).
#[tokio::test]
async fn a_hold_lasts_at_most_its_purchase_ids_retention() {
    let app = spawn_with(|s| {
        s.bonus.hold_max_secs = u64::MAX;
        s.bonus.idempotency_retention_secs = 5 * 86_400;
        s.bonus.purchase_date_max_age_secs = 86_400;
    })
    .await;
    let number = app.card_with_bonuses(100).await;
    let h = app
        .hold_with(
            &number,
            "long",
            json!(200),
            json!(10),
            json!({ "HoldSecs": u64::MAX }),
        )
        .await;
    h.ok();
    let until = time::OffsetDateTime::parse(
        h.body["HeldUntil"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let secs = (until - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!(secs <= 5 * 86_400, "capped by the retention: {secs}");
    // And its own confirm consumes it.
    app.confirm(&number, "long", json!(200), json!(10))
        .await
        .ok();
}

#[tokio::test]
async fn releases_nobody_may_make_are_refused() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.release("never-seen")
        .await
        .expect(404, "PurchaseNotFound");
    app.hold(&number, "r-1", json!(200), json!(60)).await.ok();
    for login in [CLIENT, CC_OPERATOR, MARKETER] {
        let r = app
            .post(login, "/api/purchase/release", json!({"PurchaseId": "r-1"}))
            .await;
        assert_eq!(r.status, 403, "{login}: {:?}", r.body);
    }
    let b = app.balance(&number).await.body;
    assert_eq!(
        (bucket(&b, "0"), bucket(&b, "5")),
        (40.0, 60.0),
        "still held"
    );
}

#[tokio::test]
async fn a_hold_on_a_blocked_card_is_refused() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.block(ADMIN, &number, "0").await.ok();
    app.hold(&number, "b-1", json!(200), json!(10))
        .await
        .expect(409, "StatusError");
    app.unblock(ADMIN, &number, "0").await.ok();
    let b = app.balance(&number).await.body;
    assert_eq!((bucket(&b, "0"), bucket(&b, "5")), (100.0, 0.0));
}

/// The held PurchaseId is the card's: confirming it on another card is a
/// conflict and leaves the hold (and both cards) as they were.
#[tokio::test]
async fn a_held_purchase_id_confirmed_on_another_card_is_a_conflict() {
    let app = spawn_app().await;
    let held = app.card_with_bonuses(100).await;
    let other = app.card_with_bonuses(100).await;
    app.hold(&held, "x-1", json!(200), json!(60)).await.ok();
    let before = app.balance(&other).await.body;
    app.confirm(&other, "x-1", json!(200), json!(60))
        .await
        .expect(409, "IdempotencyConflict");
    app.hold(&other, "x-1", json!(200), json!(60))
        .await
        .expect(409, "IdempotencyConflict");
    assert_eq!(app.balance(&other).await.body, before);
    let b = app.balance(&held).await.body;
    assert_eq!((bucket(&b, "0"), bucket(&b, "5")), (40.0, 60.0));
    // Its own confirm still consumes it.
    let c = app.confirm(&held, "x-1", json!(200), json!(60)).await;
    c.ok();
    let b = app.balance(&held).await.body;
    assert_eq!(bucket(&b, "5"), 0.0);
}

/// A cancel of a purchase paid from a hold gives the write-off back to the
/// very lots it came from (their expiry dates), and the hold's unused part
/// went back to its lots at the confirm: the balance ends as it began.
#[tokio::test]
async fn cancel_of_a_purchase_from_a_hold_returns_the_lots_it_took() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    app.accrue(&number, "soon", json!(50), json!({"ExpireDate": day(5)}))
        .await
        .ok();
    app.accrue(&number, "late", json!(50), json!({"ExpireDate": day(30)}))
        .await
        .ok();
    let before = app.balance(&number).await.body;
    // 50 of the soon lot and 10 of the late one held; 30 written off.
    app.hold(&number, "l-1", json!(200), json!(60)).await.ok();
    app.confirm(&number, "l-1", json!(200), json!(30))
        .await
        .ok();
    let cancel = app
        .post(POS, "/api/purchase/cancel", json!({"PurchaseId": "l-1"}))
        .await;
    cancel.ok();
    assert_eq!(cancel.body["BonusReturned"], json!(30.0));
    assert_eq!(app.balance(&number).await.body, before);
    // And a release after it is refused (the purchase is confirmed).
    app.release("l-1").await.expect(409, "IdempotencyConflict");
}

/// A hold's Date is checked as a confirm's is: too far ahead is refused.
#[tokio::test]
async fn a_hold_dated_too_far_ahead_is_refused() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let r = app
        .hold_with(
            &number,
            "d-1",
            json!(200),
            json!(10),
            json!({"Date": day(30)}),
        )
        .await;
    assert_eq!(r.status / 100, 4, "{:?}", r.body);
    let b = app.balance(&number).await.body;
    assert_eq!(bucket(&b, "5"), 0.0);
}
