//! Holds (issue 24, docs/api.md §7): hold, confirm from the hold, release,
//! expiry, and what a block, a replacement and a held lot's expiry do to
//! open holds. Run on every backend (LOYALTY_TEST_BACKEND).

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

impl TestApp {
    pub async fn hold(&self, number: &str, id: &str, amount: Value, pay: Value) -> Resp {
        self.hold_with(number, id, amount, pay, json!({})).await
    }

    pub async fn hold_with(
        &self,
        number: &str,
        id: &str,
        amount: Value,
        pay: Value,
        extra: Value,
    ) -> Resp {
        let mut body =
            json!({"Number": number, "PurchaseId": id, "Amount": amount, "BonusToPay": pay});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post(POS, "/api/purchase/hold", body).await
    }

    pub async fn release(&self, id: &str) -> Resp {
        self.post(POS, "/api/purchase/release", json!({"PurchaseId": id}))
            .await
    }

    async fn buckets(&self, number: &str) -> (f64, f64) {
        let b = self.balance(number).await;
        b.ok();
        (bucket(&b.body, "0"), bucket(&b.body, "5"))
    }
}

#[tokio::test]
async fn a_hold_reserves_and_answers_calculate_with_held_until() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let h = app.hold(&number, "h-1", json!(200), json!(60)).await;
    h.ok();
    assert_eq!(h.body["BonusToPay"], json!(60.0));
    assert_eq!(h.body["MaxBonusToPay"], json!(100.0));
    assert_eq!(h.body["Accrual"], json!(7.0)); // 5% of the 140 paid in money
    let until = time::OffsetDateTime::parse(
        h.body["HeldUntil"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let secs = (until - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!(
        (850..=900).contains(&secs),
        "bonus.hold_secs is 900: {secs}"
    );
    // Held, not Active.
    assert_eq!(app.buckets(&number).await, (40.0, 60.0));
    // What is held cannot be promised again, by a hold or a confirm.
    app.hold(&number, "h-2", json!(200), json!(41))
        .await
        .expect(409, "InsufficientBonuses");
    app.confirm(&number, "c-2", json!(200), json!(41))
        .await
        .expect(409, "InsufficientBonuses");
    let calc = app
        .post(
            POS,
            "/api/purchase/calculate",
            json!({"Number": number, "Amount": 200, "BonusToPay": 0}),
        )
        .await;
    assert_eq!(calc.body["MaxBonusToPay"], json!(40.0));
}

#[tokio::test]
async fn a_hold_is_idempotent_by_purchase_id() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let first = app.hold(&number, "h-1", json!(200), json!(60)).await;
    first.ok();
    let again = app.hold(&number, "h-1", json!(200), json!(60)).await;
    again.ok();
    assert_eq!(again.body, first.body, "a replay answers the first answer");
    assert_eq!(app.buckets(&number).await, (40.0, 60.0), "held once");
    app.hold(&number, "h-1", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    // On another card the PurchaseId is taken too.
    let other = app.card_with_bonuses(100).await;
    app.hold(&other, "h-1", json!(200), json!(60))
        .await
        .expect(409, "IdempotencyConflict");
    app.confirm(&other, "h-1", json!(200), json!(60))
        .await
        .expect(409, "IdempotencyConflict");
}

#[tokio::test]
async fn a_hold_runs_confirms_checks_in_confirms_order() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.post(POS, "/api/purchase/hold", json!({"Number": number}))
        .await
        .expect(400, "RequiredParameterNotSpecified");
    app.hold("12", "h", json!(10), json!(1))
        .await
        .expect(400, "InvalidCardNumber");
    app.hold(&number, "h", json!(10), json!(11))
        .await
        .expect(400, "InvalidAmount");
    app.hold(&number, "h", json!(10), json!(6))
        .await
        .expect(409, "InsufficientBonuses"); // over the 50% share
    app.hold_with(&number, "h", json!(10), json!(1), json!({"HoldSecs": 0}))
        .await
        .expect(400, "InvalidParameter");
    app.hold_with(
        &number,
        "h",
        json!(10),
        json!(1),
        json!({"Date": "2001-01-01"}),
    )
    .await
    .expect(400, "InvalidParameter");
    let (issued, _) = app.card_in(State::IssuedBound).await;
    app.hold(&issued, "h", json!(10), json!(1))
        .await
        .expect(409, "StatusError");
    // Refusals change nothing and leave the PurchaseId free.
    assert_eq!(app.buckets(&number).await, (100.0, 0.0));
    app.hold(&number, "h", json!(10), json!(1)).await.ok();
    // A HoldSecs above bonus.hold_max_secs is capped.
    let long = app
        .hold_with(
            &number,
            "h-long",
            json!(10),
            json!(1),
            json!({"HoldSecs": 999_999}),
        )
        .await;
    long.ok();
    let until = time::OffsetDateTime::parse(
        long.body["HeldUntil"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((until - time::OffsetDateTime::now_utc()).whole_seconds() <= 3600);
}

#[tokio::test]
async fn confirm_writes_off_from_its_hold_and_frees_the_rest() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.hold(&number, "p-1", json!(200), json!(80)).await.ok();
    // Another till takes what is left.
    app.confirm(&number, "other", json!(200), json!(20))
        .await
        .ok();
    assert_eq!(app.buckets(&number).await, (0.0, 80.0));
    // The held part is never InsufficientBonuses, though nothing is Active.
    let c = app.confirm(&number, "p-1", json!(200), json!(50)).await;
    c.ok();
    assert_eq!(c.body["BonusToPay"], json!(50.0));
    assert_eq!(
        app.buckets(&number).await,
        (30.0, 0.0),
        "the 30 not used are Active again"
    );
    // Released after its confirm: refused, naming cancel.
    let r = app.release("p-1").await;
    r.expect(409, "IdempotencyConflict");
    assert!(r.value().contains("cancel"), "{}", r.value());
    // A hold after its confirm is refused too.
    app.hold(&number, "p-1", json!(200), json!(10))
        .await
        .expect(409, "IdempotencyConflict");
    // Cancel behaves as for any purchase: the write-off comes back.
    app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": "p-1"}))
        .await
        .ok();
    assert_eq!(app.buckets(&number).await.0, 80.0);
}

#[tokio::test]
async fn a_confirm_that_does_not_match_its_hold_runs_as_a_plain_confirm() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.hold(&number, "p-1", json!(200), json!(30)).await.ok();
    // Another Amount: the hold is freed and the confirm takes from Active.
    let c = app.confirm(&number, "p-1", json!(150), json!(70)).await;
    c.ok();
    assert_eq!(app.buckets(&number).await, (30.0, 0.0));
    // More than held, on another card's hold: freed, then too little.
    let second = app.card_with_bonuses(100).await;
    app.hold(&second, "p-2", json!(400), json!(100)).await.ok();
    app.confirm(&second, "p-2", json!(400), json!(150))
        .await
        .expect(409, "InsufficientBonuses");
    assert_eq!(
        app.buckets(&second).await,
        (0.0, 100.0),
        "a refused confirm changes nothing: the hold stays"
    );
}

#[tokio::test]
async fn release_frees_once_and_answers_the_same_after() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.release("never-held")
        .await
        .expect(404, "PurchaseNotFound");
    app.hold(&number, "p-1", json!(200), json!(80)).await.ok();
    let r = app.release("p-1").await;
    r.ok();
    assert_eq!(r.body["Released"], json!(80.0));
    assert_eq!(r.body["Number"], json!(number));
    assert_eq!(app.buckets(&number).await, (100.0, 0.0));
    let again = app.release("p-1").await;
    again.ok();
    assert_eq!(again.body, r.body, "a retry answers as the first release");
    // After a release its confirm is a plain confirm.
    app.confirm(&number, "p-1", json!(200), json!(100))
        .await
        .ok();
    assert_eq!(app.buckets(&number).await, (0.0, 0.0));
}

#[tokio::test]
async fn an_expired_hold_is_free_with_nothing_run() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.hold_with(
        &number,
        "p-1",
        json!(200),
        json!(80),
        json!({"HoldSecs": 1}),
    )
    .await
    .ok();
    app.hold_with(
        &number,
        "p-2",
        json!(200),
        json!(20),
        json!({"HoldSecs": 1}),
    )
    .await
    .ok();
    assert_eq!(app.buckets(&number).await, (0.0, 100.0));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // Nothing wrote the card since: the balance counts them freed.
    assert_eq!(app.buckets(&number).await, (100.0, 0.0));
    let r = app.release("p-1").await;
    r.ok();
    assert_eq!(r.body["Released"], json!(0.0), "nothing left to free");
    // Its confirm runs as a plain confirm: more than was held is fine now.
    app.confirm(&number, "p-2", json!(200), json!(90))
        .await
        .ok();
    assert_eq!(app.buckets(&number).await, (10.0, 0.0));
}

#[tokio::test]
async fn a_block_releases_open_holds() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.hold(&number, "p-1", json!(200), json!(80)).await.ok();
    app.block(ADMIN, &number, "0").await.ok();
    let b = app.balance(&number).await;
    assert_eq!(bucket(&b.body, "3"), 100.0, "Frozen, held ones included");
    assert_eq!(bucket(&b.body, "5"), 0.0);
    app.confirm(&number, "p-1", json!(200), json!(80))
        .await
        .expect(409, "StatusError");
    app.unblock(ADMIN, &number, "0").await.ok();
    assert_eq!(
        app.buckets(&number).await,
        (100.0, 0.0),
        "the hold does not come back with the unblock"
    );
    let r = app.release("p-1").await;
    r.ok();
    assert_eq!(r.body["Released"], json!(0.0));
}

#[tokio::test]
async fn a_replacement_moves_held_bonuses_to_the_new_card() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    app.accrue(&old, &unique_code(), json!(100), json!({}))
        .await
        .ok();
    app.hold(&old, "p-1", json!(200), json!(80)).await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.block(ADMIN, &old, "4").await.ok();
    app.bindto(POS, &new, &contact.unwrap().mobile).await.ok();
    app.active(POS, &new).await.ok();
    assert_eq!(app.buckets(&new).await, (100.0, 0.0));
    // The hold ended with the block: its PurchaseId stays the old card's.
    app.release("p-1").await.ok();
    app.confirm(&new, "p-1", json!(200), json!(80))
        .await
        .expect(409, "IdempotencyConflict");
}

#[tokio::test]
async fn transactions_show_the_hold_and_its_release() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.hold(&number, "p-1", json!(200), json!(80)).await.ok();
    app.release("p-1").await.ok();
    app.hold(&number, "p-2", json!(200), json!(30)).await.ok();
    app.confirm(&number, "p-2", json!(200), json!(30))
        .await
        .ok();
    let t = app
        .get(ADMIN, &format!("/api/card/transactions/{number}"))
        .await;
    t.ok();
    let ops: Vec<(String, String, f64, f64)> = t.body["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Operation"].as_str().unwrap().to_owned(),
                i["Reference"].as_str().unwrap_or("").to_owned(),
                i["Credited"].as_f64().unwrap(),
                i["Debited"].as_f64().unwrap(),
            )
        })
        .collect();
    // Newest first; a hold and a release move nothing, the confirm
    // debits its write-off: the movements still sum to the balance.
    assert_eq!(ops[0], ("purchase".into(), "p-2".into(), 8.5, 30.0));
    assert_eq!(ops[1], ("hold".into(), "p-2".into(), 0.0, 0.0));
    assert_eq!(ops[2], ("release".into(), "p-1".into(), 0.0, 0.0));
    assert_eq!(ops[3], ("hold".into(), "p-1".into(), 0.0, 0.0));
    let items = t.body["Items"].as_array().unwrap();
    assert!(items[3]["Comment"]
        .as_str()
        .unwrap()
        .contains("80.00 held until"));
}
