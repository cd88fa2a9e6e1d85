//! Export and import (API.md §8, docs/export.md): a dump restores the same
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
    spawn_with(|s| s.store.backend = "memory".into()).await
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
    assert_eq!(lines[0]["Version"], json!(2));
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

/// A dump written before lots were merged (version 1: lot ids, `next_lot`,
/// a purchase's reference as its lot's source) still imports, and its card
/// answers its balance.
#[tokio::test]
async fn a_version_1_dump_of_before_merged_lots_imports() {
    let app = spawn_app().await;
    let today = time::OffsetDateTime::now_utc().date();
    let day = |offset: i64| {
        let d = today + time::Duration::days(offset);
        format!("[{},{}]", d.year(), d.ordinal())
    };
    let number = "7777000000001";
    let dump = format!(
        concat!(
            "{{\"Kind\":\"header\",\"Format\":\"loyalty-dump\",\"Version\":1,\"CreatedAt\":\"\"}}\n",
            "{{\"Kind\":\"card\",\"Card\":{{\"number\":\"{n}\",\"status\":\"Issued\",\"category\":\"Plastic\",",
            "\"card_type\":\"Bonus\",\"contact\":null,\"block\":null,\"replaced_by\":null,\"replaces\":null,",
            "\"ledger\":{{\"lots\":[{{\"id\":0,\"bonus_type\":\"Cash\",\"amount\":1250,\"active_from\":{a},",
            "\"expires\":{e},\"source\":\"purchase:OLD\"}},{{\"id\":1,\"bonus_type\":\"Cash\",\"amount\":750,",
            "\"active_from\":{a},\"expires\":{e},\"source\":\"purchase:OLD-2\"}}],\"burnt\":[0,0],\"next_lot\":2}},",
            "\"transfer_out\":[],\"received_from\":[]}},\"History\":[]}}\n",
            "{{\"Kind\":\"end\",\"Cards\":1,\"Records\":0,\"Contacts\":0,\"Indexes\":0}}\n"
        ),
        n = number,
        a = day(-3),
        e = day(100),
    );
    let r = app.import("", dump).await;
    r.ok();
    assert_eq!(r.body["Complete"], json!(true), "{}", r.body);
    let b = app.balance(number).await;
    b.ok();
    let active: f64 = b.body["Bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["StatusName"] == "Active")
        .map(|x| x["Amount"].as_f64().unwrap())
        .sum();
    assert_eq!(active, 20.0, "{}", b.body);
}
