//! Export and import (docs/api.md §8, docs/export.md): a dump restores the same
//! answers on a fresh store of any backend, and an import never overwrites.

use serde_json::{json, Value};

use crate::bulk_support::*;
use crate::helpers::*;

/// The cards of a data set, in every state a store holds.
struct DataSet {
    cards: Vec<String>,
    /// (card, PurchaseId, the confirm's body) of purchases still replayable.
    purchases: Vec<(String, Value)>,
}

async fn data_set(app: &TestApp) -> DataSet {
    let mut cards = Vec::new();
    for state in ALL_STATES {
        cards.push(app.card_in(state).await.0);
    }
    // A loaded card that another line updated while still New.
    let new = unique_card();
    app.post_ndjson(
        ADMIN,
        "/api/admin/cards",
        ndjson(&[
            json!({"Number": new}),
            json!({"Number": new, "CategoryCode": 1, "TypeCode": 2}),
        ]),
    )
    .await
    .ok();
    cards.push(new);

    // Bonuses, a purchase with a write-off, a refund of part of it.
    let (active, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.post(
        MARKETER,
        "/api/card/bonus",
        json!({"Number": active, "OperationId": unique_code(), "Amount": 100, "TypeCode": 0}),
    )
    .await
    .ok();
    let purchase = unique_code();
    let confirm =
        json!({"Number": active, "PurchaseId": purchase, "Amount": 200, "BonusToPay": 30});
    app.post(POS, "/api/purchase/confirm", confirm.clone())
        .await
        .ok();
    app.post(
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": purchase, "RefundId": unique_code(), "Amount": 50}),
    )
    .await
    .ok();
    // Replaced by a new card, which takes over the bonuses.
    app.block(CC_OPERATOR, &active, "4").await.ok();
    let replacement = app.new_card().await;
    app.issue(ADMIN, &replacement).await.ok();
    app.bindto(ADMIN, &replacement, &contact.mobile).await.ok();
    cards.push(active.clone());
    cards.push(replacement);

    // Contacts loaded in bulk, one with a card it activates.
    let bulk_card = app.new_card().await;
    app.post_ndjson(
        ADMIN,
        "/api/admin/contacts",
        ndjson(&[
            json!({"Code": unique_code(), "MobileNumber": unique_mobile(), "Name": "N", "BirthDate": "1980-02-03", "CardNumber": bulk_card, "Activate": true}),
            json!({"Code": unique_code(), "MobileNumber": unique_mobile(), "City": "Riga"}),
        ]),
    )
    .await
    .ok();
    cards.push(bulk_card);
    DataSet {
        cards,
        purchases: vec![(active, confirm)],
    }
}

/// What a card answers: balance, history, transactions.
async fn answers(app: &TestApp, number: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/card/balance/by/{number}"),
        format!("/api/card/history/{number}?limit=500"),
        format!("/api/card/transactions/{number}?limit=500"),
    ] {
        let mut body = app.get(ADMIN, &path).await.body;
        if let Value::Object(map) = &mut body {
            map.remove("RequestId");
        }
        out.push(body);
    }
    out
}

async fn memory_app() -> TestApp {
    spawn_with(|s| s.store.backend = loyalty::config::StoreBackend::Memory).await
}

#[tokio::test]
async fn a_dump_restores_the_same_answers_on_a_fresh_store_of_another_backend() {
    let source = spawn_app().await;
    let data = data_set(&source).await;
    let dump = source.export_text().await;
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["Kind"], json!("header"), "{}", lines[0]);
    assert_eq!(lines[0]["Version"], json!(1));
    let end = lines.last().unwrap();
    assert_eq!(end["Kind"], json!("end"), "{end}");
    assert_eq!(end["Cards"], json!(data.cards.len()), "{end}");
    assert!(
        lines
            .iter()
            .any(|l| l["Kind"] == "record" && l["TtlMs"].as_i64().is_some_and(|t| t > 0)),
        "a purchase with its time left: {dump}"
    );

    // Into memory (another backend, unless the suite runs on memory), and
    // into a fresh store of the suite's own backend.
    for target in [memory_app().await, spawn_app().await] {
        let r = target.import("", dump.clone()).await;
        r.ok();
        assert_eq!(r.body["Complete"], json!(true), "{}", r.body);
        assert_eq!(r.body["Rejected"], json!(0), "{}", r.body);
        assert_eq!(
            r.body["Created"].as_u64().unwrap(),
            lines.len() as u64 - 2,
            "{}",
            r.body
        );
        assert_eq!(
            comparable(&target.export_text().await),
            comparable(&dump),
            "the export of the import is the export"
        );
        for number in &data.cards {
            assert_eq!(
                answers(&target, number).await,
                answers(&source, number).await,
                "card {number}"
            );
        }
        for (_, confirm) in &data.purchases {
            let there = target
                .post(POS, "/api/purchase/confirm", confirm.clone())
                .await;
            let here = source
                .post(POS, "/api/purchase/confirm", confirm.clone())
                .await;
            there.ok();
            assert_eq!(there.body, here.body, "the purchase replays the same");
        }
    }
}

#[tokio::test]
async fn an_import_refuses_a_store_with_data_unless_merging_and_never_overwrites() {
    let source = spawn_app().await;
    let (card, _) = source.card_in(State::Active).await;
    let dump = source.export_text().await;

    let target = spawn_app().await;
    let own = target.new_card().await;
    let r = target.import("", dump.clone()).await;
    r.expect(409, "StoreNotEmpty");
    target
        .balance(&card)
        .await
        .expect(404, "CannotFindCardNumber");

    // A card of the same number, New on this side: it stays as it is.
    target.load_cards(&[card.as_str()]).await.ok();
    let r = target.import("?merge=true", dump.clone()).await;
    r.ok();
    assert_eq!(r.body["Complete"], json!(true));
    assert!(r.body["Existing"].as_u64().unwrap() >= 1, "{}", r.body);
    assert_eq!(target.status_of(&card).await, "0", "not overwritten");
    assert_eq!(target.status_of(&own).await, "0");
    // The contact came over; its card did not replace ours.
    let again = target.import("?merge=true", dump).await;
    again.ok();
    assert_eq!(again.body["Created"], json!(0), "{}", again.body);
}

#[tokio::test]
async fn an_import_refuses_what_is_not_a_dump_and_tells_a_cut_short_one() {
    let app = spawn_app().await;
    app.import("", "{\"Kind\":\"card\"}\n".into())
        .await
        .expect(400, "InvalidParameter");
    app.import(
        "",
        "{\"Kind\":\"header\",\"Format\":\"loyalty-dump\",\"Version\":99,\"CreatedAt\":\"\"}\n"
            .into(),
    )
    .await
    .expect(400, "InvalidParameter");
    app.import("", String::new())
        .await
        .expect(400, "InvalidParameter");

    let source = spawn_app().await;
    let (card, _) = source.card_in(State::IssuedBound).await;
    let dump = source.export_text().await;
    let cut: String = dump
        .lines()
        .filter(|l| !l.contains("\"Kind\":\"end\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = app.import("", format!("{cut}garbage\n")).await;
    r.ok();
    assert_eq!(r.body["Complete"], json!(false), "{}", r.body);
    assert_eq!(r.body["Rejected"], json!(1), "{}", r.body);
    assert_eq!(app.status_of(&card).await, "1");
}

/// Format 1 of the dump, as the first release writes it (docs/export.md):
/// a card with lots of each kind and its history, a purchase with a
/// refund, a manual bonus, a contact and every index. Pinned by hand: a
/// change of any field's name or form fails here, not on a customer's file.
const FORMAT_1_DUMP: &str = concat!(
    r#"{"Kind":"header","Format":"loyalty-dump","Version":1,"CreatedAt":"2026-12-06T23:56:23.353310452Z"}"#,
    "\n",
    r#"{"Kind":"card","Card":{"number":"4000000000017","status":"Active","category":"Plastic","card_type":"Bonus","contact":"C-PIN","block":null,"replaced_by":null,"replaces":null,"ledger":{"lots":[{"bonus_type":"Cash","amount":750,"active_from":[2026,1],"expires":[2099,1],"source":"purchase"},{"bonus_type":"Status","amount":1000,"active_from":[2026,1],"expires":[2099,2],"source":"bonus"},{"bonus_type":"Cash","amount":120,"active_from":[2026,2],"expires":null,"source":"returned"}],"burnt":[5,0],"debt":0},"transfer_out":[],"received_from":[],"transfer_out_debt":0},"History":["#,
    r#"{"at":"2026-12-06T23:56:23.050513994Z","login":"admin","role":"administrator","operation":"Issue","from":"New","to":"Issued","reason_code":null,"reason_name":null,"detail":null,"bonus":null},"#,
    r#"{"at":"2026-12-06T23:56:23.194412339Z","login":"pos","role":"pos","operation":"Purchase","from":"Active","to":"Active","reason_code":null,"reason_name":null,"detail":null,"bonus":{"reference":"P-PIN","credited":1000,"debited":0,"money":20000,"comment":null,"debt":null}},"#,
    r#"{"at":"2026-12-06T23:56:23.198421397Z","login":"pos","role":"pos","operation":"Refund","from":"Active","to":"Active","reason_code":null,"reason_name":null,"detail":null,"bonus":{"reference":"R-PIN","credited":0,"debited":250,"money":5000,"comment":null,"debt":null}}]}"#,
    "\n",
    r#"{"Kind":"record","Number":"4000000000017","Key":"bonus:B-PIN","Value":"{\"f\":\"4000000000017|10.00|1|Some(2026-01-01)|Some(2099-01-02)|None\",\"o\":{\"n\":\"4000000000017\",\"i\":\"B-PIN\",\"m\":1000,\"t\":\"Status\",\"af\":[2026,1],\"ae\":[2099,2]}}","TtlMs":3600000}"#,
    "\n",
    r#"{"Kind":"record","Number":"4000000000017","Key":"purchase:P-PIN","Value":"{\"n\":\"4000000000017\",\"p\":{\"m\":20000,\"a\":1000,\"d\":[[2026,1],[2099,1]],\"r\":5000,\"ar\":250},\"r\":[{\"k\":\"refund:5:P-PIN:R-PIN\",\"f\":\"50.00\",\"o\":{\"n\":\"4000000000017\",\"i\":\"P-PIN\",\"ri\":\"R-PIN\",\"m\":5000,\"ar\":250,\"rt\":5000}}]}","TtlMs":3600000}"#,
    "\n",
    r#"{"Kind":"contact","Contact":{"code":"C-PIN","name":"Pinned Person","mobile":"79000000017","email":"","birth_date":"1990-01-31","gender":"","city":"","mobile_claim":"C-PIN#e3928930bd5e6dad"}}"#,
    "\n",
    r#"{"Kind":"index","Index":"mobile","Key":"79000000017","Owner":"C-PIN#e3928930bd5e6dad"}"#,
    "\n",
    r#"{"Kind":"index","Index":"contact-card","Key":"C-PIN","Owner":"4000000000017#e3928930058fb1aa"}"#,
    "\n",
    r#"{"Kind":"index","Index":"purchase","Key":"P-PIN","Owner":"4000000000017#e3928930fcbf20d7"}"#,
    "\n",
    r#"{"Kind":"end","Cards":1,"Records":2,"Contacts":1,"Indexes":3}"#,
    "\n",
);

/// A format-1 dump imports into a fresh store, answers as its data says,
/// and exports as itself; any other version is refused before anything is
/// written.
#[tokio::test]
async fn a_format_1_dump_round_trips_and_no_other_version_imports() {
    let other = spawn_app().await;
    other
        .import(
            "",
            FORMAT_1_DUMP.replacen("\"Version\":1", "\"Version\":2", 1),
        )
        .await
        .expect(400, "InvalidParameter");
    other
        .balance("4000000000017")
        .await
        .expect(404, "CannotFindCardNumber");

    let app = spawn_app().await;
    let r = app.import("", FORMAT_1_DUMP.to_owned()).await;
    r.ok();
    assert_eq!(
        (&r.body["Complete"], &r.body["Created"], &r.body["Rejected"]),
        (&json!(true), &json!(7), &json!(0)),
        "{}",
        r.body
    );
    assert_eq!(
        comparable(&app.export_text().await),
        comparable(FORMAT_1_DUMP)
    );
    let b = app.balance_by_phone("79000000017").await;
    b.ok();
    let amount = |status: &str, kind: &str| -> f64 {
        b.body["Bonuses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["StatusName"] == status && x["TypeName"] == kind)
            .map(|x| x["Amount"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(
        (
            amount("Active", "Cash"),
            amount("Active", "Status"),
            amount("Burnt", "Cash")
        ),
        (8.7, 10.0, 0.05),
        "{}",
        b.body
    );
    // The stored outcomes answer their replays; the purchase reverses from
    // its lot.
    let refund = json!({"PurchaseId": "P-PIN", "RefundId": "R-PIN", "Amount": 50});
    let again = app.post(POS, "/api/purchase/refund", refund).await;
    again.ok();
    assert_eq!(again.body["RefundedTotal"], json!(50.0), "{}", again.body);
    app.post(POS, "/api/purchase/cancel", json!({"PurchaseId": "P-PIN"}))
        .await
        .ok();
    let after = app.balance("4000000000017").await;
    let cash: f64 = after.body["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["StatusName"] == "Active" && x["TypeName"] == "Cash")
        .map(|x| x["Amount"].as_f64().unwrap())
        .sum();
    assert_eq!(
        cash, 1.2,
        "the rest of the accrual went back: {}",
        after.body
    );
}
