//! Bonus ledger and purchases (docs/api.md §5.1, §7): buckets, exactly-once
//! confirm/cancel/refund, manual accrual, transactions.

use serde_json::{json, Value};

use crate::helpers::*;

fn bucket(balance: &Value, status: &str, bonus_type: &str) -> Option<Value> {
    balance["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["StatusCode"] == status && b["TypeCode"] == bonus_type)
        .cloned()
}

fn amount_of(balance: &Value, status: &str) -> f64 {
    bucket(balance, status, "0").map_or(0.0, |b| b["Amount"].as_f64().unwrap())
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn day(offset: i64) -> String {
    (today() + time::Duration::days(offset)).to_string()
}

impl TestApp {
    pub async fn accrue(&self, number: &str, op: &str, amount: Value, extra: Value) -> Resp {
        let mut body =
            json!({"Number": number, "OperationId": op, "Amount": amount, "TypeCode": 0});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post(MARKETER, "/api/card/bonus", body).await
    }

    pub async fn confirm(&self, number: &str, id: &str, amount: Value, pay: Value) -> Resp {
        self.post(
            POS,
            "/api/purchase/confirm",
            json!({"Number": number, "PurchaseId": id, "Amount": amount, "BonusToPay": pay}),
        )
        .await
    }

    /// An Active card holding `bonuses` Active cash bonuses.
    pub async fn card_with_bonuses(&self, bonuses: i64) -> String {
        let (number, _) = self.card_in(State::Active).await;
        self.accrue(&number, &unique_code(), json!(bonuses), json!({}))
            .await
            .ok();
        number
    }
}

#[tokio::test]
async fn every_bucket_as_of_the_request() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    app.accrue(&number, "a", json!(100), json!({"ExpireDate": day(10)}))
        .await
        .ok();
    app.accrue(&number, "b", json!(25.5), json!({"ExpireDate": day(10)}))
        .await
        .ok();
    app.accrue(&number, "c", json!(40), json!({"ExpireDate": day(90)}))
        .await
        .ok();
    app.accrue(
        &number,
        "inactive",
        json!(12.34),
        json!({"ActiveFrom": day(3)}),
    )
    .await
    .ok();
    // Bonuses that would be Burnt the day they are credited are refused
    // (issue 27): Burnt comes only from expiry (bulk_transfer imports
    // Burnt totals, the domain tests expire lots).
    app.accrue(
        &number,
        "burnt",
        json!(7),
        json!({"ActiveFrom": day(-30), "ExpireDate": day(-1)}),
    )
    .await
    .expect(400, "InvalidParameter");
    app.accrue(&number, "status", json!(5), json!({"TypeCode": 1}))
        .await
        .ok();
    let b = app.balance(&number).await;
    b.ok();
    assert_eq!(amount_of(&b.body, "0"), 165.5, "{}", b.body);
    assert_eq!(amount_of(&b.body, "1"), 12.34);
    assert_eq!(amount_of(&b.body, "2"), 0.0);
    let nearest = bucket(&b.body, "4", "0").unwrap();
    assert_eq!(nearest["Amount"], json!(125.5));
    assert_eq!(nearest["ExpireDate"], json!(day(10)));
    assert_eq!(nearest["StatusName"], "Nearest expiring");
    assert_eq!(bucket(&b.body, "0", "1").unwrap()["Amount"], json!(5.0));
    assert_eq!(bucket(&b.body, "0", "1").unwrap()["TypeName"], "Status");

    // Blocked: Active and Inactive are Frozen; unblock thaws them.
    app.block(CLIENT, &number, "0").await.ok();
    let b = app.balance(&number).await;
    assert_eq!(amount_of(&b.body, "3"), 165.5 + 12.34);
    assert_eq!(amount_of(&b.body, "0"), 0.0);
    assert!(bucket(&b.body, "4", "0").is_none());
    app.unblock(CLIENT, &number, "0").await.ok();
    let b = app.balance(&number).await;
    assert_eq!(amount_of(&b.body, "0"), 165.5);
    assert_eq!(amount_of(&b.body, "3"), 0.0);
}

#[tokio::test]
async fn confirm_writes_off_accrues_and_replays_exactly_once() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let calc = app
        .post(
            POS,
            "/api/purchase/calculate",
            json!({"Number": number, "Amount": 150}),
        )
        .await;
    calc.ok();
    assert_eq!(calc.body["MaxBonusToPay"], json!(75.0));
    assert_eq!(calc.body["Accrual"], json!(7.5));

    let first = app.confirm(&number, "P-1", json!(150), json!(30)).await;
    first.ok();
    assert_eq!(first.body["Accrual"], json!(6.0));
    assert_eq!(first.body["AccrualActiveFrom"], json!(day(14)));
    let b = app.balance(&number).await;
    assert_eq!(amount_of(&b.body, "0"), 70.0);
    assert_eq!(amount_of(&b.body, "1"), 6.0);

    // The same request again: the first answer, nothing changes.
    let again = app.confirm(&number, "P-1", json!(150), json!(30)).await;
    assert_eq!(again.body, first.body);
    assert_eq!(app.balance(&number).await.body, b.body);
    // Same id, different body: conflict, nothing changes.
    app.confirm(&number, "P-1", json!(150), json!(31))
        .await
        .expect(409, "IdempotencyConflict");
    let other = app.card_with_bonuses(10).await;
    app.confirm(&other, "P-1", json!(150), json!(0))
        .await
        .expect(409, "IdempotencyConflict");
    assert_eq!(app.balance(&number).await.body, b.body);
}

#[tokio::test]
async fn purchase_errors() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let r = app.post(POS, "/api/purchase/confirm", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, PurchaseId, Amount");
    for bad in [
        json!(-1),
        json!(1.234),
        json!("abc"),
        json!([1]),
        json!(1e12),
    ] {
        app.confirm(&number, "P-x", bad, json!(0))
            .await
            .expect(400, "InvalidAmount");
    }
    app.confirm("12", "P-x", json!(1), json!(0))
        .await
        .expect(400, "InvalidCardNumber");
    app.confirm("1234567890", "P-y", json!(1), json!(0))
        .await
        .expect(404, "CannotFindCardNumber");
    // More than the balance, and more than the allowed share (50%).
    app.confirm(&number, "P-2", json!(1000), json!(100.01))
        .await
        .expect(409, "InsufficientBonuses");
    app.confirm(&number, "P-3", json!(100), json!(50.01))
        .await
        .expect(409, "InsufficientBonuses");
    // Write-off needs an Active card; Blocked cards take no purchases.
    let (issued, _) = app.card_in(State::IssuedBound).await;
    app.confirm(&issued, "P-4", json!(100), json!(1))
        .await
        .expect(409, "StatusError");
    app.confirm(&issued, "P-5", json!(100), json!(0)).await.ok();
    let (blocked, _) = app.card_in(State::Blocked).await;
    app.confirm(&blocked, "P-6", json!(100), json!(0))
        .await
        .expect(409, "StatusError");
    let new = app.new_card().await;
    app.confirm(&new, "P-7", json!(100), json!(0))
        .await
        .expect(409, "StatusError");
    // Roles: purchases are for pos, senior, director, administrator.
    for login in [CLIENT, CC_OPERATOR, MARKETER] {
        app.post(
            login,
            "/api/purchase/confirm",
            json!({"Number": number, "PurchaseId": "P-8", "Amount": 1}),
        )
        .await
        .expect(403, "Forbidden");
    }
    app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": "nope"}))
        .await
        .expect(404, "PurchaseNotFound");
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": "nope", "RefundId": "r", "Amount": 1}),
    )
    .await
    .expect(404, "PurchaseNotFound");
    assert_eq!(amount_of(&app.balance(&number).await.body, "0"), 100.0);
}

#[tokio::test]
async fn cancel_returns_write_offs_and_takes_back_the_accrual_idempotently() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let before = app.balance(&number).await.body;
    app.confirm(&number, "C-1", json!(200), json!(40))
        .await
        .ok();
    let first = app
        .post(POS, "/api/purchase/cancel", json!({"PurchaseId": "C-1"}))
        .await;
    first.ok();
    assert_eq!(first.body["BonusReturned"], json!(40.0));
    assert_eq!(first.body["AccrualReversed"], json!(8.0));
    assert_eq!(app.balance(&number).await.body, before);
    let again = app
        .post(POS, "/api/purchase/cancel", json!({"PurchaseId": "C-1"}))
        .await;
    assert_eq!(again.body, first.body);
    assert_eq!(app.balance(&number).await.body, before);
    // Nothing left to refund after a cancel.
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": "C-1", "RefundId": "r1", "Amount": 1}),
    )
    .await
    .expect(400, "InvalidAmount");
}

#[tokio::test]
async fn returned_write_offs_keep_their_expiry_and_burn_when_it_passed() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    // Usable today only: expires today.
    app.accrue(&number, "short", json!(50), json!({"ExpireDate": day(0)}))
        .await
        .ok();
    app.confirm(&number, "E-1", json!(100), json!(50))
        .await
        .ok();
    app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": "E-1"}))
        .await
        .ok();
    let b = app.balance(&number).await;
    let nearest = bucket(&b.body, "4", "0").unwrap();
    assert_eq!(
        (nearest["Amount"].clone(), nearest["ExpireDate"].clone()),
        (json!(50.0), json!(day(0)))
    );
}

#[tokio::test]
async fn refunds_are_proportional_cumulative_and_idempotent() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    app.confirm(&number, "R-P", json!(300), json!(60))
        .await
        .ok(); // accrual 12
    let r1 = app
        .post(
            POS,
            "/api/purchase/refund",
            json!({"PurchaseId": "R-P", "RefundId": "r1", "Amount": 100}),
        )
        .await;
    r1.ok();
    assert_eq!(r1.body["BonusReturned"], json!(20.0));
    assert_eq!(r1.body["AccrualReversed"], json!(4.0));
    let replay = app
        .post(
            POS,
            "/api/purchase/refund",
            json!({"PurchaseId": "R-P", "RefundId": "r1", "Amount": 100}),
        )
        .await;
    assert_eq!(replay.body, r1.body);
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": "R-P", "RefundId": "r1", "Amount": 99}),
    )
    .await
    .expect(409, "IdempotencyConflict");
    // More than what is left (200) is refused.
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": "R-P", "RefundId": "r2", "Amount": 200.01}),
    )
    .await
    .expect(400, "InvalidAmount");
    let r2 = app
        .post(
            POS,
            "/api/purchase/refund",
            json!({"PurchaseId": "R-P", "RefundId": "r2", "Amount": 200}),
        )
        .await;
    r2.ok();
    assert_eq!(r2.body["RefundedTotal"], json!(300.0));
    // Everything reversed: back to the 100 there were.
    let b = app.balance(&number).await;
    assert_eq!(amount_of(&b.body, "0"), 100.0);
    assert_eq!(amount_of(&b.body, "1"), 0.0);
}

#[tokio::test]
async fn manual_accrual_is_idempotent_and_checked() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    let first = app
        .accrue(&number, "op-1", json!(10), json!({"Comment": "welcome"}))
        .await;
    first.ok();
    assert_eq!(
        app.accrue(&number, "op-1", json!(10), json!({"Comment": "welcome"}))
            .await
            .body,
        first.body
    );
    app.accrue(&number, "op-1", json!(11), json!({"Comment": "welcome"}))
        .await
        .expect(409, "IdempotencyConflict");
    assert_eq!(amount_of(&app.balance(&number).await.body, "0"), 10.0);
    app.accrue(&number, "op-2", json!(0), json!({}))
        .await
        .expect(400, "InvalidAmount");
    app.accrue(&number, "op-3", json!(1), json!({"TypeCode": 7}))
        .await
        .expect(400, "InvalidParameter");
    app.accrue(
        &number,
        "op-4",
        json!(1),
        json!({"ExpireDate": "2026-13-01"}),
    )
    .await
    .expect(400, "InvalidParameter");
    app.accrue(
        &number,
        "op-5",
        json!(1),
        json!({"ActiveFrom": day(5), "ExpireDate": day(1)}),
    )
    .await
    .expect(400, "InvalidParameter");
    for login in [POS, CLIENT, CC_OPERATOR, SENIOR, DIRECTOR] {
        app.post(
            login,
            "/api/card/bonus",
            json!({"Number": number, "OperationId": "x", "Amount": 1, "TypeCode": 0}),
        )
        .await
        .expect(403, "Forbidden");
    }
    app.post(
        ADMIN,
        "/api/card/bonus",
        json!({"Number": number, "OperationId": "adm", "Amount": 1, "TypeCode": 0}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn twelve_parallel_confirms_of_30_on_100_exactly_three_succeed() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    let outcomes = race_confirms(std::slice::from_ref(&app.address), &number, 12).await;
    assert_eq!(
        outcomes.iter().filter(|k| *k == "OK").count(),
        3,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|k| k == "OK" || k == "InsufficientBonuses"),
        "{outcomes:?}"
    );
    assert_eq!(amount_of(&app.balance(&number).await.body, "0"), 10.0);
}

/// Sends `n` confirms writing off 30 each, request i to `bases[i % len]`;
/// returns the Keys.
pub async fn race_confirms(bases: &[String], number: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("{}/api/purchase/confirm", bases[i % bases.len()]);
        let body = json!({"Number": number, "PurchaseId": format!("race-{number}-{i}"), "Amount": 100, "BonusToPay": 30});
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .basic_auth(POS, Some(password(POS)))
                .json(&body)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["Key"].as_str().unwrap().to_owned()
        }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    keys
}

#[tokio::test]
async fn replacement_moves_every_lot_with_its_dates() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.accrue(&old, "l1", json!(30), json!({"ExpireDate": day(20)}))
        .await
        .ok();
    app.accrue(&old, "l2", json!(12), json!({"ActiveFrom": day(2)}))
        .await
        .ok();
    app.block(CC_OPERATOR, &old, "4").await.ok();
    let new = app.new_card().await;
    app.issue(POS, &new).await.ok();
    app.bindto(POS, &new, &contact.mobile).await.ok();
    let o = app.balance(&old).await;
    assert_eq!(o.body["ReplacedBy"], json!(new));
    assert_eq!(o.body["Bonuses"], json!([]));
    let n = app.balance(&new).await;
    assert_eq!(amount_of(&n.body, "0"), 30.0, "{}", n.body);
    assert_eq!(amount_of(&n.body, "1"), 12.0);
    assert_eq!(
        bucket(&n.body, "4", "0").unwrap()["ExpireDate"],
        json!(day(20))
    );
    // Binding again changes nothing (the transfer happened once).
    app.bindto(POS, &new, &contact.mobile).await.ok();
    assert_eq!(app.balance(&new).await.body, n.body);
    let t = app.get(POS, &format!("/api/card/transactions/{new}")).await;
    t.ok();
    assert_eq!(t.body["Items"][0]["Operation"], "transfer_in");
    assert_eq!(t.body["Items"][0]["Credited"], json!(42.0));
}

#[tokio::test]
async fn transactions_list_bonus_operations_newest_first_with_pages() {
    let app = spawn_app().await;
    let number = app.card_with_bonuses(100).await;
    for i in 0..5 {
        app.confirm(&number, &format!("T-{i}-{number}"), json!(10), json!(1))
            .await
            .ok();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/card/transactions/{number}?limit=2&cursor={c}"),
            None => format!("/api/card/transactions/{number}?limit=2"),
        };
        let page = app.get(POS, &path).await;
        page.ok();
        for item in page.body["Items"].as_array().unwrap() {
            seen.push(item["Reference"].as_str().unwrap().to_owned());
        }
        match page.body["NextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // 5 purchases, newest first, then the accrual; status changes are not transactions.
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[0], format!("T-4-{number}"));
    assert_eq!(seen[4], format!("T-0-{number}"));
}

#[tokio::test]
async fn a_refused_confirm_leaves_the_purchase_id_free() {
    let app = spawn_app().await;
    let (blocked, _) = app.card_in(State::Blocked).await;
    let id = format!("receipt-{}", unique_code());
    app.confirm(&blocked, &id, json!(100), json!(0))
        .await
        .expect(409, "StatusError");
    // The customer hands over another card; the till retries the receipt.
    let other = app.card_with_bonuses(10).await;
    app.confirm(&other, &id, json!(100), json!(0)).await.ok();
    // Now the receipt belongs to the other card: that is judged before the
    // blocked card's status (idempotency first).
    app.confirm(&blocked, &id, json!(100), json!(0))
        .await
        .expect(409, "IdempotencyConflict");
    let (active, _) = app.card_in(State::Active).await;
    app.confirm(&active, &id, json!(100), json!(0))
        .await
        .expect(409, "IdempotencyConflict");
}

#[tokio::test]
async fn cancel_and_refund_after_a_replacement_change_the_new_card() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.accrue(&old, &unique_code(), json!(100), json!({}))
        .await
        .ok();
    let before = app.balance(&old).await.body["Bonuses"].clone();
    app.confirm(&old, "RP-1", json!(200), json!(30)).await.ok(); // accrual 8.5
    app.confirm(&old, "RP-2", json!(100), json!(10)).await.ok(); // accrual 4.5
    app.block(CC_OPERATOR, &old, "4").await.ok();
    let new = app.new_card().await;
    app.issue(POS, &new).await.ok();
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.active(POS, &new).await.ok();

    let c = app
        .post(POS, "/api/purchase/cancel", json!({"PurchaseId": "RP-1"}))
        .await;
    c.ok();
    assert_eq!(
        (
            c.body["BonusReturned"].clone(),
            c.body["AccrualReversed"].clone()
        ),
        (json!(30.0), json!(8.5))
    );
    assert_eq!(c.body["Uncovered"], json!(0.0));
    let r = app
        .post(
            POS,
            "/api/purchase/refund",
            json!({"PurchaseId": "RP-2", "RefundId": "all", "Amount": 100}),
        )
        .await;
    r.ok();
    assert_eq!(r.body["Uncovered"], json!(0.0));
    // Both purchases undone on the card that holds the bonuses now.
    assert_eq!(app.balance(&new).await.body["Bonuses"], before);
    assert_eq!(app.balance(&old).await.body["Bonuses"], json!([]));
    // Replays answer as before and change nothing.
    assert_eq!(
        app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": "RP-1"}))
            .await
            .body,
        c.body
    );
    let again = app
        .post(
            POS,
            "/api/purchase/refund",
            json!({"PurchaseId": "RP-2", "RefundId": "all", "Amount": 100}),
        )
        .await;
    assert_eq!(again.body, r.body);
    assert_eq!(app.balance(&new).await.body["Bonuses"], before);
}

#[tokio::test]
async fn calculate_errors_and_card_types() {
    let app = spawn_app().await;
    let r = app.post(POS, "/api/purchase/calculate", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, Amount");
    app.post(
        POS,
        "/api/purchase/calculate",
        json!({"Number": "1234567890", "Amount": 1}),
    )
    .await
    .expect(404, "CannotFindCardNumber");
    let (blocked, _) = app.card_in(State::Blocked).await;
    app.post(
        POS,
        "/api/purchase/calculate",
        json!({"Number": blocked, "Amount": 1}),
    )
    .await
    .expect(409, "StatusError");
    let number = app.card_with_bonuses(10).await;
    app.post(
        POS,
        "/api/purchase/calculate",
        json!({"Number": number, "Amount": -5}),
    )
    .await
    .expect(400, "InvalidAmount");
    // An Issued card earns but may not pay with bonuses.
    let (issued, _) = app.card_in(State::IssuedBound).await;
    let c = app
        .post(
            POS,
            "/api/purchase/calculate",
            json!({"Number": issued, "Amount": 100}),
        )
        .await;
    c.ok();
    assert_eq!(
        (c.body["Accrual"].clone(), c.body["MaxBonusToPay"].clone()),
        (json!(5.0), json!(0.0))
    );
    // A Discount card: a discount, no accrual.
    let discount = unique_card();
    app.post(
        ADMIN,
        "/api/admin/cards",
        json!([{"Number": discount, "CategoryCode": 0, "TypeCode": 1}]),
    )
    .await
    .ok();
    app.issue(POS, &discount).await.ok();
    let c = app
        .post(
            POS,
            "/api/purchase/calculate",
            json!({"Number": discount, "Amount": 100}),
        )
        .await;
    c.ok();
    assert_eq!(
        (c.body["Accrual"].clone(), c.body["DiscountPercent"].clone()),
        (json!(0.0), json!(3.0))
    );
}
