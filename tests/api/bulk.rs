//! Bulk loads (docs/api.md §8): NDJSON streams of cards and contacts, their
//! counts and rejected lines, and re-runs that change nothing.

use serde_json::{json, Value};

use crate::bulk_support::*;
use crate::helpers::*;

#[track_caller]
fn counts(r: &Resp, created: u64, updated: u64, existing: u64, rejected: u64) {
    r.ok();
    assert_eq!(
        [
            &r.body["Created"],
            &r.body["Updated"],
            &r.body["Existing"],
            &r.body["Rejected"]
        ],
        [
            &json!(created),
            &json!(updated),
            &json!(existing),
            &json!(rejected)
        ],
        "{}",
        r.body
    );
}

fn rejected(r: &Resp) -> Vec<(u64, String)> {
    r.body["RejectedLines"]
        .as_array()
        .expect("RejectedLines")
        .iter()
        .map(|l| {
            (
                l["Line"].as_u64().unwrap(),
                l["Key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn lines(want: &[(u64, &str)]) -> Vec<(u64, String)> {
    want.iter().map(|(l, k)| (*l, (*k).to_owned())).collect()
}

async fn codes(app: &TestApp, number: &str) -> (Value, Value, Value) {
    let b = app.balance(number).await;
    b.ok();
    (
        b.body["StatusCode"].clone(),
        b.body["CategoryCode"].clone(),
        b.body["TypeCode"].clone(),
    )
}

#[tokio::test]
async fn ndjson_cards_create_update_new_ones_keep_the_others_and_reject_bad_lines() {
    let app = spawn_with(|s| s.bulk.max_line_bytes = 200).await;
    let fresh = unique_card();
    let new = app.new_card().await;
    let (issued, _) = app.card_in(State::IssuedUnbound).await;
    let body = format!(
        "{}\n{}\n{}\n\n   \n{{\"Number\": \n{}\n{}\n{}",
        json!({"Number": fresh, "CategoryCode": "1", "TypeCode": "1"}),
        json!({"Number": new, "CategoryCode": 1, "TypeCode": 2}),
        json!({"Number": issued, "CategoryCode": "1", "TypeCode": "2"}),
        json!({"Number": "12ab34"}),
        json!({"Number": unique_card(), "Padding": "x".repeat(300)}),
        // The last line has no newline; it applies after line 1.
        json!({"Number": fresh, "CategoryCode": "0", "TypeCode": "0"}),
    );
    let r = app.post_ndjson(ADMIN, "/api/admin/cards", body).await;
    counts(&r, 1, 2, 1, 3);
    assert_eq!(
        rejected(&r),
        lines(&[
            (6, "InvalidJson"),
            (7, "InvalidCardNumber"),
            (8, "PayloadTooLarge")
        ]),
        "{}",
        r.body
    );
    assert_eq!(r.body["RejectedLines"][1]["Number"], json!("12ab34"));
    assert_eq!(
        codes(&app, &fresh).await,
        (json!("0"), json!("0"), json!("0"))
    );
    assert_eq!(
        codes(&app, &new).await,
        (json!("0"), json!("1"), json!("2"))
    );
    assert_eq!(
        codes(&app, &issued).await,
        (json!("1"), json!("0"), json!("0"))
    );
}

#[tokio::test]
async fn a_second_run_of_the_same_cards_changes_nothing() {
    let app = spawn_with(|s| s.bulk.card_batch = 7).await;
    let numbers: Vec<String> = (0..30).map(|_| unique_card()).collect();
    let body = ndjson(
        &numbers
            .iter()
            .map(|n| json!({"Number": n, "CategoryCode": "1", "TypeCode": "2"}))
            .collect::<Vec<_>>(),
    );
    counts(
        &app.post_ndjson(ADMIN, "/api/admin/cards", body.clone())
            .await,
        30,
        0,
        0,
        0,
    );
    app.issue(ADMIN, &numbers[0]).await.ok();
    counts(
        &app.post_ndjson(ADMIN, "/api/admin/cards", body).await,
        0,
        0,
        30,
        0,
    );
    assert_eq!(app.status_of(&numbers[0]).await, "1", "still Issued");
}

#[tokio::test]
async fn an_ndjson_load_is_not_bound_by_the_array_body_limit_and_lists_a_capped_number_of_rejections(
) {
    let app = spawn_with(|s| {
        s.http.admin_max_body_bytes = 2_000;
        s.bulk.max_listed_rejections = 2;
        s.bulk.card_batch = 100;
    })
    .await;
    let mut cards: Vec<Value> = (0..500)
        .map(|_| json!({"Number": unique_card(), "CategoryCode": "0", "TypeCode": "0"}))
        .collect();
    cards.extend((0..5).map(|_| json!({"Number": "x"})));
    let body = ndjson(&cards);
    assert!(body.len() > 2_000);
    let r = app.post_ndjson(ADMIN, "/api/admin/cards", body).await;
    counts(&r, 500, 0, 0, 5);
    assert_eq!(
        rejected(&r),
        lines(&[(501, "InvalidCardNumber"), (502, "InvalidCardNumber")])
    );
    // The JSON array keeps its limit.
    app.post(ADMIN, "/api/admin/cards", Value::Array(cards))
        .await
        .expect(413, "PayloadTooLarge");
}

#[tokio::test]
async fn bulk_contacts_bind_and_activate_cards_and_reject_another_contacts_mobile() {
    let app = spawn_app().await;
    let (c1, c2) = (app.new_card().await, app.new_card().await);
    let taken = app.new_contact(false).await;
    let (a, e) = (unique_code(), unique_code());
    let (ma, mc, me) = (unique_mobile(), unique_mobile(), unique_mobile());
    let body = [
        json!({"Code": a, "MobileNumber": ma, "Name": "A", "BirthDate": "1990-01-01", "CardNumber": c1, "Activate": true}).to_string(),
        json!({"Code": unique_code(), "MobileNumber": taken.mobile}).to_string(),
        String::new(),
        "not json".to_owned(),
        json!({"MobileNumber": mc, "Name": "C"}).to_string(),
        json!({"Code": unique_code(), "MobileNumber": unique_mobile(), "CardNumber": "999"}).to_string(),
        json!({"Code": e, "MobileNumber": me, "Name": "E", "CardNumber": c2}).to_string(),
        json!({"Code": unique_code(), "MobileNumber": unique_mobile(), "Activate": true}).to_string(),
    ]
    .join("\n");
    let r = app
        .post_ndjson(ADMIN, "/api/admin/contacts", body.clone())
        .await;
    counts(&r, 3, 0, 0, 4);
    let mut got = rejected(&r);
    got.sort();
    assert_eq!(
        got,
        lines(&[
            (2, "MobileNumberBelongsToAnotherContact"),
            (4, "InvalidJson"),
            (6, "InvalidCardNumber"),
            (8, "RequiredParameterNotSpecified"),
        ]),
        "{}",
        r.body
    );
    let b = app.balance(&c1).await;
    assert_eq!(
        (&b.body["StatusCode"], &b.body["Code"]),
        (&json!("2"), &json!(a))
    );
    let b = app.balance(&c2).await;
    assert_eq!(
        (&b.body["StatusCode"], &b.body["Code"]),
        (&json!("1"), &json!(e))
    );
    // The card's own commands ran, with the administrator in its history.
    let history = app.history(&c1).await;
    let ops: Vec<(&str, &str)> = history
        .iter()
        .map(|h| {
            (
                h["Operation"].as_str().unwrap(),
                h["Login"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [("active", ADMIN), ("bindto", ADMIN), ("issue", ADMIN)],
        "{history:?}"
    );
    // The taken number still belongs to its contact.
    app.balance_by_phone(&taken.mobile)
        .await
        .expect(404, "CannotFindMobileNumber");

    // Again: the lines with a code change nothing; the one without a code
    // is a new contact whose number is now another's.
    let r = app.post_ndjson(ADMIN, "/api/admin/contacts", body).await;
    counts(&r, 0, 0, 2, 5);
    assert!(
        rejected(&r).contains(&(5, "MobileNumberBelongsToAnotherContact".to_owned())),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn bulk_contacts_as_a_json_array_and_updates() {
    let app = spawn_app().await;
    let contact = app.new_contact(false).await;
    let r = app
        .post(
            ADMIN,
            "/api/admin/contacts",
            json!([
                {"Code": contact.code, "Name": "Renamed"},
                {"Code": unique_code(), "MobileNumber": unique_mobile()},
            ]),
        )
        .await;
    counts(&r, 1, 1, 0, 0);
    let got = app
        .get(ADMIN, &format!("/api/contact/{}", contact.code))
        .await;
    assert_eq!(got.body["Name"], json!("Renamed"), "{}", got.body);
}

#[tokio::test]
async fn only_the_administrator_loads_contacts_exports_and_imports() {
    let app = spawn_app().await;
    for login in [POS, CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR] {
        app.post_ndjson(login, "/api/admin/contacts", "{}".into())
            .await
            .expect(403, "Forbidden");
        app.post_ndjson(login, "/api/admin/import", "{}".into())
            .await
            .expect(403, "Forbidden");
        app.get(login, "/api/admin/export")
            .await
            .expect(403, "Forbidden");
    }
}
