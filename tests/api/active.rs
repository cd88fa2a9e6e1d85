//! Active (docs/api.md §4, §5): Issued(bound) with sufficient data → Active.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

#[tokio::test]
async fn active_without_number_names_it() {
    let app = spawn_app().await;
    let r = app.get(POS, "/api/card/active").await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
    let r = app.post(CLIENT, "/api/card/active", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
}

#[tokio::test]
async fn active_refuses_a_malformed_number() {
    let app = spawn_app().await;
    for bad in ["12345", "1234x678", "12345678901234567890"] {
        app.active(POS, bad).await.expect(400, "InvalidCardNumber");
    }
}

#[tokio::test]
async fn active_of_an_unknown_card_is_cannot_find() {
    let app = spawn_app().await;
    app.active(POS, &unique_card())
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn active_moves_a_bound_card_with_sufficient_data_to_active() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::IssuedBound).await;
    app.active(POS, &number).await.ok();
    let view = app.card_view(&number).await;
    assert_card(&view, "2", contact.as_ref());
    assert_eq!(view["Name"], json!("Test Person"));
    // Active again: OK, no change, no history entry.
    let entries = app.history(&number).await.len();
    app.active(CLIENT, &number).await.ok();
    assert_card(&app.card_view(&number).await, "2", contact.as_ref());
    assert_eq!(app.history(&number).await.len(), entries);
}

#[tokio::test]
async fn active_with_insufficient_contact_data_is_a_status_error() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    let contact = app.new_contact(false).await;
    app.bindto(POS, &number, &contact.mobile).await.ok();
    let r = app.active(POS, &number).await;
    r.expect(409, "StatusError");
    assert_card(&app.card_view(&number).await, "1", Some(&contact));
    // Once the data is complete, the same request succeeds.
    app.update_contact(&contact.code, "Anna", "1985-05-05")
        .await;
    app.active(POS, &number).await.ok();
    assert_card(&app.card_view(&number).await, "2", Some(&contact));
}

#[tokio::test]
async fn active_of_new_unbound_or_blocked_cards_is_a_status_error() {
    let app = spawn_app().await;
    for (state, status) in [
        (State::New, "0"),
        (State::IssuedUnbound, "1"),
        (State::Blocked, "3"),
        (State::BlockedForReplacement, "3"),
    ] {
        let (number, contact) = app.card_in(state).await;
        app.active(ADMIN, &number).await.expect(409, "StatusError");
        assert_card(&app.card_view(&number).await, status, contact.as_ref());
    }
}
