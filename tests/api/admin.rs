//! POST /api/admin/cards: bulk card loading (docs/api.md §8).

use serde_json::{json, Value};

use crate::helpers::*;

async fn load(app: &TestApp, body: Value) -> Resp {
    app.post(ADMIN, "/api/admin/cards", body).await
}

#[track_caller]
fn counts(r: &Resp, created: u64, existing: u64, rejected: u64) {
    r.ok();
    assert_eq!(
        (&r.body["Created"], &r.body["Existing"], &r.body["Rejected"]),
        (&json!(created), &json!(existing), &json!(rejected)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn counts_created_existing_and_rejected_lines_with_their_keys() {
    let app = spawn_app().await;
    let (a, b, c) = (unique_card(), unique_card(), unique_card());
    let existing = app.new_card().await;
    let r = load(
        &app,
        json!([
            {"Number": a, "CategoryCode": "0", "TypeCode": "0"},       // 1 created
            {"Number": "12ab34", "CategoryCode": "0", "TypeCode": "0"}, // 2 InvalidCardNumber
            {"CategoryCode": "0", "TypeCode": "0"},                     // 3 no Number
            {"Number": b, "CategoryCode": "7", "TypeCode": "0"},        // 4 unknown category
            {"Number": c, "CategoryCode": "0", "TypeCode": "9"},        // 5 unknown type
            "not an object",                                            // 6 InvalidJson
            {"Number": existing, "CategoryCode": "0", "TypeCode": "0"}, // 7 existing
            [1, 2],                                                     // 8 InvalidJson
            {"Number": "123", "CategoryCode": "0", "TypeCode": "0"},    // 9 too short
            {"Number": c, "CategoryCode": 1, "TypeCode": 2},            // 10 created
        ]),
    )
    .await;
    counts(&r, 2, 1, 7);
    let lines: Vec<(u64, String)> = r.body["RejectedLines"]
        .as_array()
        .expect("RejectedLines is an array")
        .iter()
        .map(|l| {
            (
                l["Line"].as_u64().expect("Line is a number"),
                l["Key"].as_str().expect("Key").to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [
        (2, "InvalidCardNumber"),
        (3, "RequiredParameterNotSpecified"),
        (4, "InvalidParameter"),
        (5, "InvalidParameter"),
        (6, "InvalidJson"),
        (8, "InvalidJson"),
        (9, "InvalidCardNumber"),
    ]
    .into_iter()
    .map(|(l, k)| (l, k.to_owned()))
    .collect();
    assert_eq!(lines, want, "{}", r.body);

    assert_eq!(app.status_of(&a).await, "0");
    app.balance(&b).await.expect(404, "CannotFindCardNumber");
    let r = app.balance(&c).await;
    r.ok();
    assert_eq!(r.body["StatusCode"], json!("0"));
    assert_eq!(r.body["CategoryCode"], json!("1"));
    assert_eq!(r.body["TypeCode"], json!("2"));
}

#[tokio::test]
async fn reloading_an_existing_card_keeps_its_status() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    let r = load(
        &app,
        json!([{"Number": number, "CategoryCode": "0", "TypeCode": "0"}]),
    )
    .await;
    counts(&r, 0, 1, 0);
    assert_eq!(app.status_of(&number).await, "1", "still Issued");

    let (active, contact) = app.card_in(State::Active).await;
    let r = load(
        &app,
        json!([{"Number": active, "CategoryCode": "1", "TypeCode": "1"}]),
    )
    .await;
    counts(&r, 0, 1, 0);
    let b = app.balance(&active).await;
    b.ok();
    assert_eq!(b.body["StatusCode"], json!("2"), "still Active: {}", b.body);
    assert_eq!(b.body["Code"], json!(contact.unwrap().code), "still bound");
}

#[tokio::test]
async fn codes_as_integers_or_strings_show_up_in_the_balance() {
    let app = spawn_app().await;
    let cases = [
        (json!(0), json!(0), "0", "Plastic", "0", "Bonus"),
        (json!("1"), json!("1"), "1", "Virtual", "1", "Discount"),
        (json!(1), json!("2"), "1", "Virtual", "2", "Bonus/Discount"),
    ];
    for (category, card_type, cat_code, cat_name, type_code, type_name) in cases {
        let number = unique_card();
        let r = load(
            &app,
            json!([{"Number": number, "CategoryCode": category, "TypeCode": card_type}]),
        )
        .await;
        counts(&r, 1, 0, 0);
        let b = app.balance(&number).await;
        b.ok();
        assert_eq!(b.body["CategoryCode"], json!(cat_code), "{}", b.body);
        assert_eq!(b.body["CategoryName"], json!(cat_name), "{}", b.body);
        assert_eq!(b.body["TypeCode"], json!(type_code), "{}", b.body);
        assert_eq!(b.body["TypeName"], json!(type_name), "{}", b.body);
        assert_eq!(b.body["StatusCode"], json!("0"), "{}", b.body);
        assert_eq!(b.body["StatusName"], json!("New"), "{}", b.body);
    }
    // The card number itself may be a JSON integer too.
    let number = unique_card();
    let as_int: u64 = number.parse().unwrap();
    let r = load(
        &app,
        json!([{"Number": as_int, "CategoryCode": 0, "TypeCode": 0}]),
    )
    .await;
    counts(&r, 1, 0, 0);
    app.balance(&number).await.ok();
}

#[tokio::test]
async fn a_body_that_is_not_an_array_is_invalid_json() {
    let app = spawn_app().await;
    let number = unique_card();
    for body in [
        json!({"Number": number, "CategoryCode": "0", "TypeCode": "0"}),
        json!("cards"),
        json!(42),
    ] {
        load(&app, body).await.expect(400, "InvalidJson");
    }
    app.post_raw(ADMIN, "/api/admin/cards", "[{\"Number\": ")
        .await
        .expect(400, "InvalidJson");
    app.balance(&number)
        .await
        .expect(404, "CannotFindCardNumber");
    // An empty array is fine and loads nothing.
    counts(&load(&app, json!([])).await, 0, 0, 0);
}

#[tokio::test]
async fn only_the_administrator_loads_cards() {
    let app = spawn_app().await;
    let number = unique_card();
    for login in [POS, CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR] {
        app.post(
            login,
            "/api/admin/cards",
            json!([{"Number": number, "CategoryCode": "0", "TypeCode": "0"}]),
        )
        .await
        .expect(403, "Forbidden");
    }
    app.balance(&number)
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn a_number_twice_in_one_load_is_created_once_then_existing() {
    let app = spawn_app().await;
    let number = unique_card();
    let r = load(
        &app,
        json!([
            {"number": number, "categorycode": "1", "TYPECODE": "1"},
            {"Number": number, "CategoryCode": "0", "TypeCode": "0"},
        ]),
    )
    .await;
    counts(&r, 1, 1, 0);
    assert_eq!(r.body["RejectedLines"], json!([]));
    // The first line won; the second did not overwrite it.
    let b = app.balance(&number).await;
    b.ok();
    assert_eq!(b.body["CategoryCode"], json!("1"), "{}", b.body);
    assert_eq!(b.body["TypeCode"], json!("1"), "{}", b.body);
}
