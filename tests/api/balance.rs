//! The three balance methods (docs/api.md §5, §5.1): formats, lookups and the
//! fields of the answer.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

#[tokio::test]
async fn balance_by_number_refuses_a_malformed_number() {
    let app = spawn_app().await;
    for bad in ["12345", "12ab5678", "12345678901234567890", "-123456"] {
        app.balance(bad).await.expect(400, "InvalidCardNumber");
        app.get(POS, &format!("/api/card/balance/by/number/{bad}"))
            .await
            .expect(400, "InvalidCardNumber");
    }
}

#[tokio::test]
async fn balance_by_number_of_an_unknown_card_is_cannot_find() {
    let app = spawn_app().await;
    let unknown = unique_card();
    app.balance(&unknown)
        .await
        .expect(404, "CannotFindCardNumber");
    app.get(POS, &format!("/api/card/balance/by/number/{unknown}"))
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn balance_of_a_new_card_shows_it_new_unbound_and_without_block_fields() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    let view = app.card_view(&number).await;
    assert_eq!(view["Number"], json!(number));
    assert_card(&view, "0", None);
    assert_eq!(view["CategoryCode"], json!("0"), "{view}");
    assert_eq!(view["CategoryName"], json!("Plastic"), "{view}");
    assert_eq!(view["TypeCode"], json!("0"), "{view}");
    assert_eq!(view["TypeName"], json!("Bonus"), "{view}");
    assert_eq!(view["Bonuses"], json!([]), "{view}");
    assert!(view.get("ReplacedBy").is_none(), "{view}");
    // The alternative path answers the same.
    let r = app
        .get(POS, &format!("/api/card/balance/by/number/{number}"))
        .await;
    r.ok();
    assert_eq!(r.body, view);
}

#[tokio::test]
async fn balance_of_a_bound_card_shows_the_contact() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let view = app.card_view(&number).await;
    assert_card(&view, "2", Some(&contact));
    assert_eq!(view["Name"], json!("Test Person"), "{view}");
}

#[tokio::test]
async fn balance_by_phone_refuses_a_malformed_number() {
    let app = spawn_app().await;
    for bad in ["123", "7916abc4567", "1234567890123456"] {
        app.balance_by_phone(bad)
            .await
            .expect(400, "InvalidMobileNumber");
    }
}

#[tokio::test]
async fn balance_by_phone_of_an_unknown_phone_is_cannot_find_mobile_number() {
    let app = spawn_app().await;
    app.balance_by_phone(&unique_mobile())
        .await
        .expect(404, "CannotFindMobileNumber");
}

#[tokio::test]
async fn balance_by_phone_of_a_contact_without_a_card_is_cannot_find_mobile_number() {
    let app = spawn_app().await;
    let contact = app.new_contact(true).await;
    app.balance_by_phone(&contact.mobile)
        .await
        .expect(404, "CannotFindMobileNumber");
}

#[tokio::test]
async fn balance_by_phone_answers_the_contacts_card() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::IssuedBound).await;
    let contact = contact.unwrap();
    let r = app.balance_by_phone(&contact.mobile).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_card(&r.body, "1", Some(&contact));
    assert_eq!(r.body, app.card_view(&number).await);
}

#[tokio::test]
async fn balance_by_code_refuses_a_malformed_code() {
    let app = spawn_app().await;
    let long = "a".repeat(65);
    for bad in ["a%20b", "a.b", "a%2Ab", long.as_str()] {
        app.balance_by_code(bad)
            .await
            .expect(400, "InvalidContactCode");
    }
    // 64 characters is still a valid format (and unknown).
    let mut longest = unique_code();
    while longest.len() < 64 {
        longest.push('b');
    }
    app.balance_by_code(&longest)
        .await
        .expect(404, "CannotFindContactCode");
}

#[tokio::test]
async fn balance_by_code_of_an_unknown_code_is_cannot_find_contact_code() {
    let app = spawn_app().await;
    app.balance_by_code(&unique_code())
        .await
        .expect(404, "CannotFindContactCode");
}

#[tokio::test]
async fn balance_by_code_of_a_contact_without_a_card_is_cannot_find_contact_code() {
    let app = spawn_app().await;
    let contact = app.new_contact(false).await;
    app.balance_by_code(&contact.code)
        .await
        .expect(404, "CannotFindContactCode");
}

#[tokio::test]
async fn balance_by_code_answers_the_contacts_card() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let r = app.balance_by_code(&contact.code).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_card(&r.body, "2", Some(&contact));
}

#[tokio::test]
async fn a_contact_that_changes_its_mobile_is_found_by_the_new_one_only() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let new_mobile = unique_mobile();
    app.post(
        POS,
        "/api/contact",
        json!({"Code": contact.code, "MobileNumber": new_mobile}),
    )
    .await
    .ok();
    app.balance_by_phone(&contact.mobile)
        .await
        .expect(404, "CannotFindMobileNumber");
    let r = app.balance_by_phone(&new_mobile).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_eq!(r.body["MobileNumber"], json!(new_mobile));
    // The old number names no contact for bindto/block either.
    let (other, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &other, &contact.mobile)
        .await
        .expect(404, "CannotFindMobile");
    app.block_by_mobile(CLIENT, &contact.mobile, "0")
        .await
        .expect(404, "CannotFindMobile");
    assert_eq!(app.status_of(&number).await, "2");
}

#[tokio::test]
async fn the_seeds_balance_by_code_path_answers_a_contacts_balance() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let code = contact.unwrap().code; // "T-…": not a card number
    let r = app.balance(&code).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_eq!(r.body["Code"], json!(code));
    assert_eq!(r.body, app.balance_by_code(&code).await.body);

    // A contact without a card: the code's own Key.
    let lone = app.new_contact(true).await;
    app.balance(&lone.code)
        .await
        .expect(404, "CannotFindContactCode");
    // Neither a card number nor a known contact: the card number's Key.
    let r = app.balance("no-such-contact").await;
    r.expect(400, "InvalidCardNumber");
    assert!(r.value().contains("contact code"), "{}", r.body);
    app.balance("a.b").await.expect(400, "InvalidCardNumber");
}

#[tokio::test]
async fn an_all_digit_code_is_a_card_number_when_it_can_be_one() {
    let app = spawn_app().await;
    // A contact whose code is also a valid card number, holding a card.
    let digits = unique_card();
    let mobile = unique_mobile();
    app.post(
        POS,
        "/api/contact",
        json!({"Code": digits, "MobileNumber": mobile}),
    )
    .await
    .ok();
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    app.bindto(POS, &number, &mobile).await.ok();
    app.balance(&digits)
        .await
        .expect(404, "CannotFindCardNumber");
    let r = app.balance_by_code(&digits).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    // Too short for a card number: it can only be the contact code.
    let short = format!("{}", 10_000 + std::process::id() % 80_000);
    let mobile = unique_mobile();
    app.post(
        POS,
        "/api/contact",
        json!({"Code": short, "MobileNumber": mobile}),
    )
    .await
    .ok();
    let other = app.new_card().await;
    app.issue(POS, &other).await.ok();
    app.bindto(POS, &other, &mobile).await.ok();
    let r = app.balance(&short).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(other));
}

#[tokio::test]
async fn the_demo_contact_code_is_found_on_the_seeds_path() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let app = spawn_with(|s| {
        s.demo.data_file = root.join("config/demo-data.json").display().to_string();
        s.demo.load_into_redis = true;
    })
    .await;
    // DEMO-1 exists but holds no card yet: the contact code's Key, no
    // longer InvalidCardNumber.
    app.balance("DEMO-1")
        .await
        .expect(404, "CannotFindContactCode");
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    app.bindto(POS, &number, "79161234567").await.ok();
    let r = app.balance("DEMO-1").await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_eq!(r.body["Name"], json!("Anna Petrova"));
}
