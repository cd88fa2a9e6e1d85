//! POST /api/contact (create or update) and GET /api/contact/{code}
//! (docs/api.md §8).

use serde_json::{json, Value};

use crate::helpers::*;

async fn upsert(app: &TestApp, login: &str, body: Value) -> Resp {
    app.post(login, "/api/contact", body).await
}

async fn fetch(app: &TestApp, code: &str) -> Resp {
    app.get(POS, &format!("/api/contact/{code}")).await
}

/// "79161234567" → "+7 (916) 123-45-67".
fn formatted(m: &str) -> String {
    format!(
        "+{} ({}) {}-{}-{}",
        &m[0..1],
        &m[1..4],
        &m[4..7],
        &m[7..9],
        &m[9..11]
    )
}

#[tokio::test]
async fn create_without_code_generates_one_and_answers_at_the_top_level() {
    let app = spawn_app().await;
    let mobile = unique_mobile();
    let r = upsert(
        &app,
        POS,
        json!({
            "Name": "Ann Lee",
            "MobileNumber": formatted(&mobile),
            "Email": "ann@example.com",
            "BirthDate": "1990-01-31",
            "Gender": "F",
            "City": "Kazan",
        }),
    )
    .await;
    r.ok();
    let code = r.body["Code"]
        .as_str()
        .expect("a generated Code")
        .to_owned();
    assert!(!code.is_empty());
    assert_eq!(r.body["Created"], json!(true), "{}", r.body);
    assert_eq!(
        r.body["MobileNumber"],
        json!(mobile),
        "normalized: {}",
        r.body
    );
    assert_eq!(r.body["Name"], json!("Ann Lee"));
    assert_eq!(r.body["Card"], Value::Null);

    let g = fetch(&app, &code).await;
    g.ok();
    for (field, want) in [
        ("Code", code.as_str()),
        ("Name", "Ann Lee"),
        ("MobileNumber", mobile.as_str()),
        ("Email", "ann@example.com"),
        ("BirthDate", "1990-01-31"),
        ("Gender", "F"),
        ("City", "Kazan"),
    ] {
        assert_eq!(g.body[field], json!(want), "{field}: {}", g.body);
    }
    assert_eq!(g.body["Card"], Value::Null, "no card yet: {}", g.body);
    assert!(g.body.get("Created").is_none(), "{}", g.body);

    // Two creations without a code get two different codes.
    let r2 = upsert(&app, POS, json!({"MobileNumber": unique_mobile()})).await;
    r2.ok();
    assert_ne!(r2.body["Code"], json!(code));
}

#[tokio::test]
async fn update_by_code_keeps_absent_fields_and_moves_the_mobile_number() {
    let app = spawn_app().await;
    let code = unique_code();
    let old_mobile = unique_mobile();
    let r = upsert(
        &app,
        POS,
        json!({"Code": code, "MobileNumber": old_mobile, "Name": "Bob", "City": "Omsk"}),
    )
    .await;
    r.ok();
    assert_eq!(r.body["Created"], json!(true));
    assert_eq!(r.body["Code"], json!(code));

    let new_mobile = unique_mobile();
    let r = upsert(
        &app,
        CLIENT,
        json!({"Code": code, "MobileNumber": new_mobile, "Email": "bob@example.com"}),
    )
    .await;
    r.ok();
    assert_eq!(r.body["Created"], json!(false), "{}", r.body);
    let g = fetch(&app, &code).await;
    g.ok();
    assert_eq!(g.body["Name"], json!("Bob"), "kept: {}", g.body);
    assert_eq!(g.body["City"], json!("Omsk"), "kept: {}", g.body);
    assert_eq!(g.body["Email"], json!("bob@example.com"), "{}", g.body);
    assert_eq!(g.body["MobileNumber"], json!(new_mobile), "{}", g.body);

    // The old number is free: another contact may take it...
    let other = unique_code();
    let r = upsert(
        &app,
        POS,
        json!({"Code": other, "MobileNumber": old_mobile}),
    )
    .await;
    r.ok();
    assert_eq!(r.body["Created"], json!(true));
    // ...and binding by it now reaches the other contact.
    let (number, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &number, &old_mobile).await.ok();
    assert_eq!(app.balance(&number).await.body["Code"], json!(other));
    // The new number is ours.
    let (number2, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &number2, &new_mobile).await.ok();
    assert_eq!(app.balance(&number2).await.body["Code"], json!(code));

    // Updating with one's own number (in another format) is fine.
    upsert(
        &app,
        POS,
        json!({"Code": code, "MobileNumber": formatted(&new_mobile)}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn another_contacts_number_is_refused_in_any_format() {
    let app = spawn_app().await;
    let a = app.new_contact(true).await;
    let b = app.new_contact(true).await;
    for given in [a.mobile.clone(), formatted(&a.mobile)] {
        // A new contact with a's number.
        let r = upsert(
            &app,
            POS,
            json!({"Code": unique_code(), "MobileNumber": given}),
        )
        .await;
        r.expect(409, "MobileNumberBelongsToAnotherContact");
        // b moving to a's number.
        let r = upsert(&app, POS, json!({"Code": b.code, "MobileNumber": given})).await;
        r.expect(409, "MobileNumberBelongsToAnotherContact");
    }
    assert_eq!(
        fetch(&app, &b.code).await.body["MobileNumber"],
        json!(b.mobile)
    );
    assert_eq!(
        fetch(&app, &a.code).await.body["MobileNumber"],
        json!(a.mobile)
    );
}

#[tokio::test]
async fn invalid_contact_input_is_refused() {
    let app = spawn_app().await;
    let r = upsert(
        &app,
        POS,
        json!({"Code": unique_code(), "Name": "No Phone"}),
    )
    .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert!(r.value().contains("MobileNumber"), "{}", r.body);
    upsert(&app, POS, json!({"Name": "No Phone"}))
        .await
        .expect(400, "RequiredParameterNotSpecified");

    for bad in [
        "12345",
        "7916abc4567",
        "+7 916 123 45 67 89 01 23",
        "++79161234567",
    ] {
        upsert(
            &app,
            POS,
            json!({"Code": unique_code(), "MobileNumber": bad}),
        )
        .await
        .expect(400, "InvalidMobileNumber");
    }
    for bad in ["a b", "x/y", "ы", &"c".repeat(65)] {
        upsert(
            &app,
            POS,
            json!({"Code": bad, "MobileNumber": unique_mobile()}),
        )
        .await
        .expect(400, "InvalidContactCode");
    }
    for bad in ["1990-02-30", "31.01.1990", "1990-1-1"] {
        upsert(
            &app,
            POS,
            json!({"Code": unique_code(), "MobileNumber": unique_mobile(), "BirthDate": bad}),
        )
        .await
        .expect(400, "InvalidParameter");
    }
    let code = unique_code();
    upsert(
        &app,
        POS,
        json!({"Code": code, "MobileNumber": unique_mobile(), "Name": "n".repeat(257)}),
    )
    .await
    .expect(400, "InvalidParameter");
    // Nothing was created by the refusals.
    fetch(&app, &code)
        .await
        .expect(404, "CannotFindContactCode");
    // 256 characters is still fine.
    upsert(
        &app,
        POS,
        json!({"Code": code, "MobileNumber": unique_mobile(), "Name": "n".repeat(256)}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn every_role_may_upsert_and_read_contacts() {
    let app = spawn_app().await;
    for login in ALL_USERS {
        let code = unique_code();
        let r = upsert(
            &app,
            login,
            json!({"Code": code, "MobileNumber": unique_mobile(), "Name": login}),
        )
        .await;
        r.ok();
        let g = app.get(login, &format!("/api/contact/{code}")).await;
        g.ok();
        assert_eq!(g.body["Name"], json!(login));
    }
}

#[tokio::test]
async fn get_contact_shows_its_card_after_bind_and_its_status() {
    let app = spawn_app().await;
    let contact = app.new_contact(true).await;
    let g = fetch(&app, &contact.code).await;
    g.ok();
    assert_eq!(g.body["Card"], Value::Null);

    let (number, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &number, &contact.mobile).await.ok();
    let g = fetch(&app, &contact.code).await;
    g.ok();
    assert_eq!(g.body["Card"]["Number"], json!(number), "{}", g.body);
    assert_eq!(g.body["Card"]["StatusCode"], json!("1"), "{}", g.body);

    app.active(POS, &number).await.ok();
    let g = fetch(&app, &contact.code).await;
    assert_eq!(g.body["Card"]["StatusCode"], json!("2"), "{}", g.body);

    // The upsert answer carries the card too.
    let r = upsert(&app, POS, json!({"Code": contact.code, "City": "Tver"})).await;
    r.ok();
    assert_eq!(r.body["Card"]["Number"], json!(number), "{}", r.body);
    assert_eq!(r.body["Created"], json!(false));
}

#[tokio::test]
async fn unknown_or_invalid_contact_codes_on_get() {
    let app = spawn_app().await;
    let r = fetch(&app, &unique_code()).await;
    r.expect(404, "CannotFindContactCode");
    fetch(&app, "bad%20code")
        .await
        .expect(400, "InvalidContactCode");
}
