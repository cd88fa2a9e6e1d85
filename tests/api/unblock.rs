//! UnBlock (docs/api.md §4, §5, §6): every error Key of its row, the check order
//! (formats → lookups → Blocked status → reason rules) and the target status.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

/// A card blocked by `login` with `reason`, bound to a contact whose data is
/// sufficient or not.
async fn blocked_card(
    app: &TestApp,
    login: &str,
    reason: &str,
    sufficient: bool,
) -> (String, Contact) {
    let number = app.new_card().await;
    app.issue(ADMIN, &number).await.ok();
    let contact = app.new_contact(sufficient).await;
    app.bindto(ADMIN, &number, &contact.mobile).await.ok();
    app.block(login, &number, reason).await.ok();
    (number, contact)
}

#[tokio::test]
async fn unblock_names_every_missing_parameter() {
    let app = spawn_app().await;
    let r = app.post(CLIENT, "/api/card/unblock", json!({})).await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, ContactMobileNumber, UnBlockReasonCode");
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, ContactMobileNumber");
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"Number": unique_card(), "BlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "UnBlockReasonCode");
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"ContactMobileNumber": unique_mobile()}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "UnBlockReasonCode");
}

#[tokio::test]
async fn unblock_refuses_malformed_numbers_before_any_lookup() {
    let app = spawn_app().await;
    app.unblock(CLIENT, "123", "0")
        .await
        .expect(400, "InvalidCardNumber");
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"Number": "abcdefgh", "ContactMobileNumber": unique_mobile(), "UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "InvalidCardNumber");
    app.unblock_by_mobile(CLIENT, "+7 (916)", "0")
        .await
        .expect(400, "InvalidMobileNumber");
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"Number": unique_card(), "ContactMobileNumber": "x1", "UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(400, "InvalidMobileNumber");
}

#[tokio::test]
async fn unblock_of_an_unknown_card_or_mobile_is_cannot_find() {
    let app = spawn_app().await;
    app.unblock(CLIENT, &unique_card(), "0")
        .await
        .expect(404, "CannotFindCardNumber");
    app.unblock(CLIENT, &unique_card(), "9")
        .await
        .expect(404, "CannotFindCardNumber");
    app.unblock_by_mobile(CLIENT, &unique_mobile(), "0")
        .await
        .expect(404, "CannotFindMobile");
    let (number, contact) = blocked_card(&app, CLIENT, "0", true).await;
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"Number": number, "ContactMobileNumber": unique_mobile(), "UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(404, "CannotFindMobile");
    assert_card(&app.card_view(&number).await, "3", Some(&contact));
}

#[tokio::test]
async fn unblock_with_a_card_of_another_contact_is_refused() {
    let app = spawn_app().await;
    let (number, contact) = blocked_card(&app, CLIENT, "0", true).await;
    let (_, other) = app.card_in(State::Blocked).await;
    let r = app
        .post(
            CLIENT,
            "/api/card/unblock",
            json!({"Number": number, "ContactMobileNumber": other.unwrap().mobile, "UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(409, "CardNumberBindToAnotherContact");
    assert_card(&app.card_view(&number).await, "3", Some(&contact));
}

#[tokio::test]
async fn unblock_by_contact_mobile_unblocks_the_contacts_card() {
    let app = spawn_app().await;
    let (number, contact) = blocked_card(&app, CLIENT, "0", true).await;
    app.unblock_by_mobile(CLIENT, &contact.mobile, "0")
        .await
        .ok();
    assert_card(&app.card_view(&number).await, "2", Some(&contact));
    // Both given and matching.
    let (number, contact) = blocked_card(&app, CC_OPERATOR, "3", true).await;
    let r = app
        .post(
            MARKETER,
            "/api/card/unblock",
            json!({"Number": number, "ContactMobileNumber": contact.mobile, "UnBlockReasonCode": 3}),
        )
        .await;
    r.ok();
    assert_card(&app.card_view(&number).await, "2", Some(&contact));
}

#[tokio::test]
async fn unblock_of_a_card_that_is_not_blocked_is_a_status_error_before_reason_rules() {
    let app = spawn_app().await;
    for (state, status) in [
        (State::New, "0"),
        (State::IssuedUnbound, "1"),
        (State::IssuedBound, "1"),
        (State::Active, "2"),
    ] {
        let (number, contact) = app.card_in(state).await;
        // A valid reason, an unknown one, and one the role may not use:
        // the status answers first every time.
        for (login, reason) in [(ADMIN, "0"), (ADMIN, "8"), (CLIENT, "2")] {
            let r = app.unblock(login, &number, reason).await;
            assert_eq!(
                (r.status, r.key()),
                (409, "StatusError"),
                "{state:?} {login} {reason}: {}",
                r.body
            );
        }
        assert_card(&app.card_view(&number).await, status, contact.as_ref());
    }
}

#[tokio::test]
async fn unblock_with_an_unknown_reason_code_says_so() {
    let app = spawn_app().await;
    let (number, contact) = blocked_card(&app, CLIENT, "0", true).await;
    for bad in [json!("4"), json!("z"), json!(12), json!("01")] {
        let r = app
            .post(
                ADMIN,
                "/api/card/unblock",
                json!({"Number": number, "UnBlockReasonCode": bad}),
            )
            .await;
        r.expect(403, "UnBlockReasonError");
        assert!(r.value().contains("unknown"), "{}", r.body);
    }
    assert_card(&app.card_view(&number).await, "3", Some(&contact));
}

#[tokio::test]
async fn unblock_reason_must_answer_the_block_reason() {
    let app = spawn_app().await;
    for block in 0..4u8 {
        let (number, contact) = blocked_card(&app, ADMIN, &block.to_string(), true).await;
        for unblock in 0..4u8 {
            if unblock == block {
                continue;
            }
            let r = app.unblock(ADMIN, &number, &unblock.to_string()).await;
            assert_eq!(
                (r.status, r.key()),
                (403, "UnBlockReasonError"),
                "block {block} / unblock {unblock}: {}",
                r.body
            );
        }
        assert_card(&app.card_view(&number).await, "3", Some(&contact));
        app.unblock(ADMIN, &number, &block.to_string()).await.ok();
        assert_card(&app.card_view(&number).await, "2", Some(&contact));
    }
}

#[tokio::test]
async fn unblock_follows_the_role_by_reason_table() {
    // §6, unblock table, columns 0..=3.
    let table: [(&str, [bool; 4]); 6] = [
        (CLIENT, [true, false, false, false]),
        (CC_OPERATOR, [true, false, false, true]),
        (MARKETER, [true, false, false, true]),
        (SENIOR, [true, true, false, false]),
        (DIRECTOR, [true, true, true, false]),
        (ADMIN, [true, true, true, true]),
    ];
    // Who blocks with each reason: a non-administrator allowed to.
    let blocker = [CLIENT, SENIOR, DIRECTOR, CC_OPERATOR];
    let app = spawn_app().await;
    for (login, row) in table {
        for (reason, allowed) in row.iter().enumerate() {
            let cell = format!("{login} × unblock reason {reason}");
            let code = reason.to_string();
            let (number, contact) = blocked_card(&app, blocker[reason], &code, true).await;
            let r = app.unblock(login, &number, &code).await;
            let view = app.card_view(&number).await;
            if *allowed {
                assert_eq!((r.status, r.key()), (200, "OK"), "{cell}: {}", r.body);
                assert_card(&view, "2", Some(&contact));
            } else {
                assert_eq!(
                    (r.status, r.key()),
                    (403, "UnBlockReasonError"),
                    "{cell}: {}",
                    r.body
                );
                assert!(!r.value().is_empty(), "{cell}");
                assert_card(&view, "3", Some(&contact));
                assert_eq!(view["BlockReasonCode"], json!(code), "{cell}");
            }
        }
    }
    let (number, _) = blocked_card(&app, CLIENT, "0", true).await;
    app.unblock(POS, &number, "0")
        .await
        .expect(403, "Forbidden");
}

#[tokio::test]
async fn a_card_blocked_by_an_administrator_is_unblocked_only_by_one() {
    let app = spawn_app().await;
    let (number, contact) = blocked_card(&app, ADMIN, "0", true).await;
    for login in [CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR] {
        let r = app.unblock(login, &number, "0").await;
        r.expect(403, "UnBlockReasonError");
        assert!(r.value().contains("administrator"), "{}", r.body);
    }
    assert_card(&app.card_view(&number).await, "3", Some(&contact));
    app.unblock(ADMIN, &number, "0").await.ok();
    assert_card(&app.card_view(&number).await, "2", Some(&contact));
}

#[tokio::test]
async fn a_card_blocked_for_replacement_is_unblocked_by_no_one() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::BlockedForReplacement).await;
    for login in [CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR, ADMIN] {
        for reason in ["0", "1", "2", "3"] {
            let r = app.unblock(login, &number, reason).await;
            assert_eq!(
                (r.status, r.key()),
                (403, "UnBlockReasonError"),
                "{login} {reason}: {}",
                r.body
            );
        }
    }
    let view = app.card_view(&number).await;
    assert_card(&view, "3", contact.as_ref());
    assert_eq!(view["BlockReasonCode"], json!("4"));
}

#[tokio::test]
async fn unblock_goes_to_active_with_sufficient_data_and_to_issued_without() {
    let app = spawn_app().await;
    // Sufficient: Active, block fields gone.
    let (number, contact) = blocked_card(&app, CLIENT, "0", true).await;
    let view = app.card_view(&number).await;
    assert_eq!(view["BlockReasonCode"], json!("0"));
    assert_eq!(view["BlockReasonName"], json!("Card lost"));
    app.unblock(CLIENT, &number, "0").await.ok();
    assert_card(&app.card_view(&number).await, "2", Some(&contact));

    // Insufficient: Issued and still bound.
    let (number, contact) = blocked_card(&app, CLIENT, "0", false).await;
    app.unblock(CLIENT, &number, "0").await.ok();
    assert_card(&app.card_view(&number).await, "1", Some(&contact));

    // Blocked from Active, then the contact's name is cleared: Issued.
    let (number, contact) = app.card_in(State::Blocked).await;
    let contact = contact.unwrap();
    app.update_contact(&contact.code, "", "1990-01-31").await;
    app.unblock(CLIENT, &number, "0").await.ok();
    assert_card(&app.card_view(&number).await, "1", Some(&contact));

    // Blocked while Issued with insufficient data, completed meanwhile: Active.
    let (number, contact) = blocked_card(&app, CLIENT, "0", false).await;
    app.update_contact(&contact.code, "Ivan", "1970-12-01")
        .await;
    app.unblock(CLIENT, &number, "0").await.ok();
    let view = app.card_view(&number).await;
    assert_card(&view, "2", Some(&contact));
    assert_eq!(view["Name"], json!("Ivan"));
}
