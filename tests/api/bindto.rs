//! BindTo (docs/api.md §4, §5): binds an Issued card to the contact found by
//! mobile number; every error Key of its row and the check order.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

#[tokio::test]
async fn bindto_names_every_missing_parameter() {
    let app = spawn_app().await;
    let r = app.post(POS, "/api/card/bindto", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, MobileNumber");
    let r = app
        .post(POS, "/api/card/bindto", json!({"Number": unique_card()}))
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "MobileNumber");
    let r = app
        .post(
            POS,
            "/api/card/bindto",
            json!({"MobileNumber": unique_mobile(), "Number": " "}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
    // Required parameters come before formats.
    let r = app
        .post(POS, "/api/card/bindto", json!({"MobileNumber": "12"}))
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
}

#[tokio::test]
async fn bindto_refuses_a_malformed_card_number_before_any_lookup() {
    let app = spawn_app().await;
    // The mobile belongs to nobody: the format is still what answers.
    app.bindto(POS, "12ab", &unique_mobile())
        .await
        .expect(400, "InvalidCardNumber");
    let contact = app.new_contact(true).await;
    app.bindto(POS, "12345", &contact.mobile)
        .await
        .expect(400, "InvalidCardNumber");
}

#[tokio::test]
async fn bindto_refuses_a_malformed_mobile_before_any_lookup() {
    let app = spawn_app().await;
    // The card does not exist: the format is still what answers.
    app.bindto(POS, &unique_card(), "12-34")
        .await
        .expect(400, "InvalidMobileNumber");
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    app.bindto(POS, &number, "+7 916 abc")
        .await
        .expect(400, "InvalidMobileNumber");
    assert_card(&app.card_view(&number).await, "1", None);
}

#[tokio::test]
async fn bindto_of_an_unknown_card_is_cannot_find_card_number() {
    let app = spawn_app().await;
    let contact = app.new_contact(true).await;
    app.bindto(POS, &unique_card(), &contact.mobile)
        .await
        .expect(404, "CannotFindCardNumber");
    // The contact stays free for a card.
    app.balance_by_phone(&contact.mobile)
        .await
        .expect(404, "CannotFindMobileNumber");
}

#[tokio::test]
async fn bindto_an_unknown_mobile_is_cannot_find_mobile() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &number, &unique_mobile())
        .await
        .expect(404, "CannotFindMobile");
    assert_card(&app.card_view(&number).await, "1", None);
}

#[tokio::test]
async fn bindto_a_card_bound_to_another_contact_is_refused() {
    let app = spawn_app().await;
    for state in [State::IssuedBound, State::Active] {
        let (number, owner) = app.card_in(state).await;
        let other = app.new_contact(true).await;
        app.bindto(POS, &number, &other.mobile)
            .await
            .expect(409, "CardNumberBindToAnotherContact");
        let status = if state == State::Active { "2" } else { "1" };
        assert_card(&app.card_view(&number).await, status, owner.as_ref());
        app.balance_by_phone(&other.mobile)
            .await
            .expect(404, "CannotFindMobileNumber");
    }
}

#[tokio::test]
async fn bindto_a_contact_that_holds_another_card_is_refused() {
    let app = spawn_app().await;
    for state in [State::IssuedBound, State::Active, State::Blocked] {
        let (held, contact) = app.card_in(state).await;
        let contact = contact.unwrap();
        let (number, _) = app.card_in(State::IssuedUnbound).await;
        app.bindto(POS, &number, &contact.mobile)
            .await
            .expect(409, "ContactBindToAnotherCardNumber");
        assert_card(&app.card_view(&number).await, "1", None);
        let r = app.balance_by_phone(&contact.mobile).await;
        r.ok();
        assert_eq!(r.body["Number"], json!(held), "{state:?}");
    }
}

#[tokio::test]
async fn bindto_a_new_or_blocked_card_is_a_status_error() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    let contact = app.new_contact(true).await;
    app.bindto(POS, &number, &contact.mobile)
        .await
        .expect(409, "StatusError");
    assert_card(&app.card_view(&number).await, "0", None);

    let (blocked, owner) = app.card_in(State::Blocked).await;
    let owner = owner.unwrap();
    // Blocked, even to its own contact.
    app.bindto(POS, &blocked, &owner.mobile)
        .await
        .expect(409, "StatusError");
    assert_card(&app.card_view(&blocked).await, "3", Some(&owner));
}

#[tokio::test]
async fn bindto_binds_without_changing_the_status_and_rebinding_is_ok() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::IssuedUnbound).await;
    let contact = app.new_contact(false).await;
    // The seed's formatting of the phone is normalized.
    let formatted = format!(
        "+{} ({}) {}-{}",
        &contact.mobile[..1],
        &contact.mobile[1..4],
        &contact.mobile[4..7],
        &contact.mobile[7..]
    );
    app.bindto(CLIENT, &number, &formatted).await.ok();
    let view = app.card_view(&number).await;
    assert_card(&view, "1", Some(&contact));
    assert_eq!(view["Name"], json!(""), "no name was given: {view}");
    let entries = app.history(&number).await.len();
    app.bindto(POS, &number, &contact.mobile).await.ok();
    assert_card(&app.card_view(&number).await, "1", Some(&contact));
    assert_eq!(
        app.history(&number).await.len(),
        entries,
        "rebind is a no-op"
    );
    // An Active card re-bound to its own contact: OK too.
    let (active, owner) = app.card_in(State::Active).await;
    app.bindto(POS, &active, &owner.as_ref().unwrap().mobile)
        .await
        .ok();
    assert_card(&app.card_view(&active).await, "2", owner.as_ref());
}
