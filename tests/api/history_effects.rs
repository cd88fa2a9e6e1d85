//! The audit side effect (docs/api.md §4, §9): every successful change is in the
//! card's history, newest first, with from/to status, login and role;
//! refused requests and no-op successes add nothing.

use serde_json::{json, Value};

use crate::helpers::*;

#[track_caller]
fn assert_entry(e: &Value, op: &str, from: &str, to: &str, login: &str, role: &str) {
    assert_eq!(e["Operation"], json!(op), "{e}");
    assert_eq!(e["FromStatusCode"], json!(from), "{e}");
    assert_eq!(e["ToStatusCode"], json!(to), "{e}");
    assert_eq!(e["Login"], json!(login), "{e}");
    assert_eq!(e["Role"], json!(role), "{e}");
    let time = e["Time"].as_str().expect("Time is a string");
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T',
        "RFC 3339: {e}"
    );
}

#[tokio::test]
async fn every_change_is_recorded_newest_first_with_status_login_and_role() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    assert_eq!(app.history(&number).await, Vec::<Value>::new());

    app.issue(POS, &number).await.ok();
    let h = app.history(&number).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_entry(&h[0], "issue", "0", "1", POS, "pos");

    let contact = app.new_contact(true).await;
    app.bindto(CLIENT, &number, &contact.mobile).await.ok();
    app.active(CC_OPERATOR, &number).await.ok();
    app.block(SENIOR, &number, "1").await.ok();
    app.unblock(DIRECTOR, &number, "1").await.ok();

    let h = app.history(&number).await;
    assert_eq!(h.len(), 5, "{h:?}");
    assert_entry(&h[0], "unblock", "3", "2", DIRECTOR, "director");
    assert_eq!(h[0]["ReasonCode"], json!("1"), "{}", h[0]);
    assert_entry(&h[1], "block", "2", "3", SENIOR, "senior_employee");
    assert_eq!(h[1]["ReasonCode"], json!("1"), "{}", h[1]);
    assert_entry(&h[2], "active", "1", "2", CC_OPERATOR, "cc_operator");
    assert_entry(&h[3], "bindto", "1", "1", CLIENT, "client");
    assert_eq!(h[3]["Detail"], json!(contact.code), "{}", h[3]);
    assert_entry(&h[4], "issue", "0", "1", POS, "pos");
    let seqs: Vec<u64> = h.iter().map(|e| e["Sequence"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
}

#[tokio::test]
async fn refused_requests_and_no_op_successes_add_nothing() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let other = app.new_contact(true).await;
    let before = app.history(&number).await;
    assert_eq!(before.len(), 3, "issue, bindto, active: {before:?}");

    // Refusals of every kind.
    app.issue(ADMIN, &number).await.expect(409, "StatusError");
    app.issue(CLIENT, &number).await.expect(403, "Forbidden");
    app.bindto(ADMIN, &number, &other.mobile)
        .await
        .expect(409, "CardNumberBindToAnotherContact");
    app.block(CLIENT, &number, "2")
        .await
        .expect(403, "BlockReasonError");
    app.block(ADMIN, &number, "9")
        .await
        .expect(403, "BlockReasonError");
    app.unblock(ADMIN, &number, "0")
        .await
        .expect(409, "StatusError");
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": number, "ContactMobileNumber": other.mobile, "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(409, "CardNumberBindToAnotherContact");
    // Successes that change nothing.
    app.active(ADMIN, &number).await.ok();
    app.bindto(ADMIN, &number, &contact.mobile).await.ok();
    assert_eq!(app.history(&number).await, before);

    // Blocked: more refusals, then one real change.
    app.block(CLIENT, &number, "0").await.ok();
    let blocked = app.history(&number).await;
    assert_eq!(blocked.len(), 4);
    assert_entry(&blocked[0], "block", "2", "3", CLIENT, "client");
    assert_eq!(blocked[1..], before[..]);
    app.block(CLIENT, &number, "0")
        .await
        .expect(409, "StatusError");
    app.unblock(CLIENT, &number, "3")
        .await
        .expect(403, "UnBlockReasonError");
    app.active(ADMIN, &number).await.expect(409, "StatusError");
    app.bindto(ADMIN, &number, &contact.mobile)
        .await
        .expect(409, "StatusError");
    assert_eq!(app.history(&number).await, blocked);
}

#[tokio::test]
async fn a_replacement_is_recorded_on_both_cards() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(CC_OPERATOR, &old, "4").await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();

    let h = app.history(&old).await;
    assert_eq!(h.len(), 5, "{h:?}");
    assert_eq!(h[0]["Operation"], json!("replaced"), "{}", h[0]);
    assert_eq!(h[0]["FromStatusCode"], json!("3"));
    assert_eq!(h[0]["ToStatusCode"], json!("3"));
    assert_eq!(h[0]["Detail"], json!(new), "{}", h[0]);
    assert_entry(&h[1], "block", "2", "3", CC_OPERATOR, "cc_operator");
    assert_eq!(h[1]["ReasonCode"], json!("4"));

    let h = app.history(&new).await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_entry(&h[0], "bindto", "1", "1", POS, "pos");
    assert_eq!(h[0]["Detail"], json!(contact.code));
    assert_entry(&h[1], "issue", "0", "1", ADMIN, "administrator");
}

#[tokio::test]
async fn history_of_unknown_or_malformed_cards() {
    let app = spawn_app().await;
    app.get(ADMIN, &format!("/api/card/history/{}", unique_card()))
        .await
        .expect(404, "CannotFindCardNumber");
    app.get(ADMIN, "/api/card/history/12ab")
        .await
        .expect(400, "InvalidCardNumber");
}
