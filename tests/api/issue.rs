//! Issue (docs/api.md §4, §5): New → Issued; every error Key of its row.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

#[tokio::test]
async fn issue_without_number_names_it() {
    let app = spawn_app().await;
    let r = app.get(POS, "/api/card/issue").await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
    let r = app
        .post(POS, "/api/card/issue", json!({"Number": ""}))
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number");
}

#[tokio::test]
async fn issue_refuses_a_malformed_number() {
    let app = spawn_app().await;
    for bad in ["12345", "1234x678", "12345678901234567890"] {
        app.issue(POS, bad).await.expect(400, "InvalidCardNumber");
    }
}

#[tokio::test]
async fn issue_of_an_unknown_card_is_cannot_find() {
    let app = spawn_app().await;
    app.issue(POS, &unique_card())
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn issue_moves_new_to_issued_and_again_is_ok_unchanged() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    assert_card(&app.card_view(&number).await, "1", None);
    app.issue(SENIOR, &number).await.ok();
    assert_card(&app.card_view(&number).await, "1", None);
    assert_eq!(app.history(&number).await.len(), 1, "no second entry");
}

#[tokio::test]
async fn issue_of_an_active_or_blocked_card_is_a_status_error() {
    let app = spawn_app().await;
    for state in [State::Active, State::Blocked] {
        let (number, contact) = app.card_in(state).await;
        let r = app.issue(ADMIN, &number).await;
        r.expect(409, "StatusError");
        let status = if state == State::Active { "2" } else { "3" };
        assert_card(&app.card_view(&number).await, status, contact.as_ref());
    }
}
