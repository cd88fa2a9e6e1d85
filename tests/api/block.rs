//! Block (docs/api.md §4, §5, §6): every error Key of its row, the check order
//! (formats → lookups → reason and role × reason → status) and the effect.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

const BLOCK_NAMES: [&str; 5] = [
    "Card lost",
    "Unwanted-customers list",
    "Blacklist",
    "Refusal to use",
    "Card replacement",
];

#[tokio::test]
async fn block_names_every_missing_parameter() {
    let app = spawn_app().await;
    let r = app.post(CLIENT, "/api/card/block", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, ContactMobileNumber, BlockReasonCode");
    let r = app
        .post(CLIENT, "/api/card/block", json!({"BlockReasonCode": "0"}))
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, ContactMobileNumber");
    let r = app
        .post(CLIENT, "/api/card/block", json!({"Number": unique_card()}))
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "BlockReasonCode");
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"ContactMobileNumber": unique_mobile(), "BlockReasonCode": ""}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "BlockReasonCode");
}

#[tokio::test]
async fn block_checks_required_parameters_before_formats_and_lookups_before_rules() {
    let app = spawn_app().await;
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": "12", "ContactMobileNumber": "x"}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "BlockReasonCode");
    // An unknown phone with a reason the role may not use: the lookup answers.
    app.block_by_mobile(CLIENT, &unique_mobile(), "2")
        .await
        .expect(404, "CannotFindMobile");
    app.block_by_mobile(CLIENT, &unique_mobile(), "x")
        .await
        .expect(404, "CannotFindMobile");
}

#[tokio::test]
async fn block_refuses_a_malformed_card_number_before_any_lookup() {
    let app = spawn_app().await;
    app.block(CLIENT, "12345", "0")
        .await
        .expect(400, "InvalidCardNumber");
    // With a contact phone nobody has: the format still answers first.
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": "12x456789", "ContactMobileNumber": unique_mobile(), "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "InvalidCardNumber");
    // Formats come before the reason rules too.
    app.block(CLIENT, "12345", "9")
        .await
        .expect(400, "InvalidCardNumber");
}

#[tokio::test]
async fn block_refuses_a_malformed_contact_mobile() {
    let app = spawn_app().await;
    app.block_by_mobile(CLIENT, "12345", "0")
        .await
        .expect(400, "InvalidMobileNumber");
    // The card does not exist: the format still answers first.
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": unique_card(), "ContactMobileNumber": "abc", "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "InvalidMobileNumber");
}

#[tokio::test]
async fn block_of_an_unknown_card_is_cannot_find_even_with_a_bad_reason() {
    let app = spawn_app().await;
    app.block(CLIENT, &unique_card(), "0")
        .await
        .expect(404, "CannotFindCardNumber");
    // Lookups come before the rules.
    app.block(CLIENT, &unique_card(), "9")
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn block_by_an_unknown_contact_mobile_is_cannot_find_mobile() {
    let app = spawn_app().await;
    app.block_by_mobile(CLIENT, &unique_mobile(), "0")
        .await
        .expect(404, "CannotFindMobile");
    // Also when the card is given and exists.
    let (number, contact) = app.card_in(State::Active).await;
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": number, "ContactMobileNumber": unique_mobile(), "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(404, "CannotFindMobile");
    assert_card(&app.card_view(&number).await, "2", contact.as_ref());
}

#[tokio::test]
async fn block_with_a_card_of_another_contact_is_card_number_bind_to_another_contact() {
    let app = spawn_app().await;
    let (number, owner) = app.card_in(State::Active).await;
    let (other_card, other) = app.card_in(State::Active).await;
    let other = other.unwrap();
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": number, "ContactMobileNumber": other.mobile, "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(409, "CardNumberBindToAnotherContact");
    assert_card(&app.card_view(&number).await, "2", owner.as_ref());
    assert_card(&app.card_view(&other_card).await, "2", Some(&other));
    // A contact without any card, and an unbound card, do not match either.
    let lonely = app.new_contact(true).await;
    let r = app
        .post(
            CLIENT,
            "/api/card/block",
            json!({"Number": number, "ContactMobileNumber": lonely.mobile, "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(409, "CardNumberBindToAnotherContact");
    assert_card(&app.card_view(&number).await, "2", owner.as_ref());
}

#[tokio::test]
async fn block_by_contact_mobile_blocks_the_contacts_card() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block_by_mobile(CLIENT, &contact.mobile, "0").await.ok();
    let view = app.card_view(&number).await;
    assert_card(&view, "3", Some(&contact));
    assert_eq!(view["BlockReasonCode"], json!("0"), "{view}");
    // Both given and matching: acts on that card.
    let (number, contact) = app.card_in(State::IssuedBound).await;
    let contact = contact.unwrap();
    let r = app
        .post(
            CC_OPERATOR,
            "/api/card/block",
            json!({"Number": number, "ContactMobileNumber": contact.mobile, "BlockReasonCode": 3}),
        )
        .await;
    r.ok();
    let view = app.card_view(&number).await;
    assert_card(&view, "3", Some(&contact));
    assert_eq!(view["BlockReasonCode"], json!("3"), "{view}");
}

#[tokio::test]
async fn block_by_the_mobile_of_a_contact_without_a_card_is_cannot_find_card_number() {
    // docs/api.md names no Key for this; the implementation answers
    // CannotFindCardNumber (the contact exists, its card does not).
    let app = spawn_app().await;
    let contact = app.new_contact(true).await;
    app.block_by_mobile(CLIENT, &contact.mobile, "0")
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn block_with_an_unknown_reason_code_says_so() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    for bad in [json!("5"), json!("x"), json!(99), json!("-1"), json!("00")] {
        let r = app
            .post(
                ADMIN,
                "/api/card/block",
                json!({"Number": number, "BlockReasonCode": bad}),
            )
            .await;
        r.expect(403, "BlockReasonError");
        assert!(
            r.value().contains("unknown"),
            "the Value says the code is unknown: {}",
            r.body
        );
    }
    assert_card(&app.card_view(&number).await, "2", contact.as_ref());
}

#[tokio::test]
async fn block_follows_the_role_by_reason_table() {
    // §6, block table, columns 0..=4.
    let table: [(&str, [bool; 5]); 6] = [
        (CLIENT, [true, false, false, false, false]),
        (CC_OPERATOR, [true, false, false, true, true]),
        (MARKETER, [true, false, false, true, true]),
        (SENIOR, [true, true, false, false, true]),
        (DIRECTOR, [true, true, true, false, true]),
        (ADMIN, [true, true, true, true, true]),
    ];
    let app = spawn_app().await;
    for (login, row) in table {
        for (reason, allowed) in row.iter().enumerate() {
            let cell = format!("{login} × reason {reason}");
            let (number, contact) = app.card_in(State::Active).await;
            let r = app.block(login, &number, &reason.to_string()).await;
            let view = app.card_view(&number).await;
            if *allowed {
                assert_eq!((r.status, r.key()), (200, "OK"), "{cell}: {}", r.body);
                assert_card(&view, "3", contact.as_ref());
                assert_eq!(view["BlockReasonCode"], json!(reason.to_string()), "{cell}");
                assert_eq!(
                    view["BlockReasonName"],
                    json!(BLOCK_NAMES[reason]),
                    "{cell}"
                );
            } else {
                assert_eq!(
                    (r.status, r.key()),
                    (403, "BlockReasonError"),
                    "{cell}: {}",
                    r.body
                );
                assert!(!r.value().is_empty(), "{cell}: the refusal names the rule");
                assert_card(&view, "2", contact.as_ref());
            }
        }
    }
    // pos may not call block at all.
    let (number, _) = app.card_in(State::Active).await;
    app.block(POS, &number, "0").await.expect(403, "Forbidden");
}

#[tokio::test]
async fn block_checks_the_reason_before_the_status() {
    let app = spawn_app().await;
    for state in [State::New, State::IssuedUnbound, State::Blocked] {
        let (number, _) = app.card_in(state).await;
        // Unknown code and a reason the role may not use: reason error, not status.
        app.block(ADMIN, &number, "7")
            .await
            .expect(403, "BlockReasonError");
        app.block(CLIENT, &number, "2")
            .await
            .expect(403, "BlockReasonError");
        // An allowed reason: now the status answers.
        app.block(CLIENT, &number, "0")
            .await
            .expect(409, "StatusError");
    }
}

#[tokio::test]
async fn block_of_new_unbound_or_blocked_cards_is_a_status_error() {
    let app = spawn_app().await;
    for (state, status) in [
        (State::New, "0"),
        (State::IssuedUnbound, "1"),
        (State::Blocked, "3"),
        (State::BlockedForReplacement, "3"),
    ] {
        let (number, contact) = app.card_in(state).await;
        let before = app.card_view(&number).await;
        app.block(ADMIN, &number, "1")
            .await
            .expect(409, "StatusError");
        let after = app.card_view(&number).await;
        assert_card(&after, status, contact.as_ref());
        assert_eq!(after, before, "{state:?}: nothing changed");
    }
}

#[tokio::test]
async fn block_of_a_bound_issued_or_active_card_blocks_it() {
    let app = spawn_app().await;
    for state in [State::IssuedBound, State::Active] {
        let (number, contact) = app.card_in(state).await;
        let r = app
            .post(
                SENIOR,
                "/api/card/block",
                json!({"Number": number, "BlockReasonCode": "1", "BlockReasonName": "rude"}),
            )
            .await;
        r.ok();
        let view = app.card_view(&number).await;
        assert_card(&view, "3", contact.as_ref());
        assert_eq!(view["BlockReasonCode"], json!("1"));
        assert_eq!(view["BlockReasonName"], json!("Unwanted-customers list"));
        assert_eq!(view["Name"], json!("Test Person"));
        // The caller's informative name is kept in the history.
        let h = app.history(&number).await;
        assert_eq!(h[0]["Operation"], json!("block"), "{}", h[0]);
        assert_eq!(h[0]["ReasonCode"], json!("1"), "{}", h[0]);
        assert_eq!(h[0]["ReasonName"], json!("rude"), "{}", h[0]);
    }
}
