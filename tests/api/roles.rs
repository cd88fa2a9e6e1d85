//! docs/api.md §6 over HTTP: every cell of the role × block-reason and role ×
//! unblock-reason tables, the "unblock reason answers the block reason"
//! rule, the administrator-only unblock and the finality of replacement.
//! One app per test; every cell is checked and the failing ones are listed
//! together.

use serde_json::json;

use crate::helpers::*;

const ROLES: [&str; 7] = [
    "client",
    "cc_operator",
    "marketer",
    "senior_employee",
    "director",
    "administrator",
    "pos",
];

/// §6 block table, columns reason 0..=4.
const BLOCK_TABLE: [(&str, [bool; 5]); 7] = [
    ("client", [true, false, false, false, false]),
    ("cc_operator", [true, false, false, true, true]),
    ("marketer", [true, false, false, true, true]),
    ("senior_employee", [true, true, false, false, true]),
    ("director", [true, true, true, false, true]),
    ("administrator", [true, true, true, true, true]),
    ("pos", [false, false, false, false, false]),
];

/// §6 unblock table, columns unblock reason 0..=3.
const UNBLOCK_TABLE: [(&str, [bool; 4]); 7] = [
    ("client", [true, false, false, false]),
    ("cc_operator", [true, false, false, true]),
    ("marketer", [true, false, false, true]),
    ("senior_employee", [true, true, false, false]),
    ("director", [true, true, true, false]),
    ("administrator", [true, true, true, true]),
    ("pos", [false, false, false, false]),
];

/// A non-administrator allowed to block with each reason 0..=3.
const BLOCKER_OF_REASON: [&str; 4] = [CLIENT, SENIOR, DIRECTOR, CC_OPERATOR];

/// Records a cell's failure instead of stopping at the first one.
fn check(failures: &mut Vec<String>, cell: String, r: &Resp, status: u16, key: &str) {
    let ok_envelope =
        r.body["Status"] == json!(key == "OK") && (key == "OK") == (r.body["Value"] == json!(""));
    if (r.status, r.key()) != (status, key) || !ok_envelope {
        failures.push(format!(
            "{cell}: expected {status} {key}, got {} {}",
            r.status, r.body
        ));
    }
}

/// §6: "Every refusal names the rule in `Value`" — checked loosely, by a
/// word the rule cannot be named without.
fn check_names_rule(failures: &mut Vec<String>, cell: &str, r: &Resp, word: &str) {
    if r.status != 200 && r.key() != "Forbidden" && !r.value().to_lowercase().contains(word) {
        failures.push(format!(
            "{cell}: Value does not name the rule ({word}): {}",
            r.body
        ));
    }
}

fn report(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} cell(s) disagree with docs/api.md §6:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The card's status and block reason as the balance reports them.
async fn state_of(app: &TestApp, number: &str) -> (String, Option<String>) {
    let r = app.balance(number).await;
    r.ok();
    (
        r.body["StatusCode"].as_str().unwrap().to_owned(),
        r.body["BlockReasonCode"].as_str().map(str::to_owned),
    )
}

async fn active_card(app: &TestApp) -> String {
    app.card_in(State::Active).await.0
}

#[tokio::test]
async fn block_role_by_reason_table_every_cell() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for (role, row) in BLOCK_TABLE {
        let login = login_of_role(role);
        for (reason, allowed) in row.iter().enumerate() {
            let reason = reason.to_string();
            let number = active_card(&app).await;
            let r = app.block(login, &number, &reason).await;
            let cell = format!("block {role} × reason {reason}");
            let (want_status, want_key) = if role == "pos" {
                // `pos` may not call block at all (§2): the method check
                // answers before any reason rule.
                (403, "Forbidden")
            } else if *allowed {
                (200, "OK")
            } else {
                (403, "BlockReasonError")
            };
            check(&mut failures, cell.clone(), &r, want_status, want_key);
            check_names_rule(&mut failures, &cell, &r, role);
            let state = state_of(&app, &number).await;
            let want_state = if *allowed {
                ("3".to_owned(), Some(reason.clone()))
            } else {
                ("2".to_owned(), None)
            };
            if state != want_state {
                failures.push(format!("{cell}: card state {state:?}, want {want_state:?}"));
            }
        }
    }
    report(&failures);
}

#[tokio::test]
async fn unknown_block_and_unblock_reason_codes_are_reason_errors() {
    let app = spawn_app().await;
    let number = active_card(&app).await;
    for code in ["5", "9", "x", "-1", "01"] {
        let r = app.block(ADMIN, &number, code).await;
        r.expect(403, "BlockReasonError");
    }
    assert_eq!(app.status_of(&number).await, "2");
    app.block(CLIENT, &number, "0").await.ok();
    for code in ["4", "5", "x"] {
        let r = app.unblock(ADMIN, &number, code).await;
        r.expect(403, "UnBlockReasonError");
    }
    assert_eq!(app.status_of(&number).await, "3");
}

#[tokio::test]
async fn block_checks_the_reason_before_the_status_and_unblock_the_status_first() {
    // §5: block checks the reason code and the role × reason table before
    // the card's status; unblock checks that the card is Blocked first.
    let app = spawn_app().await;
    let (blocked, _) = app.card_in(State::Blocked).await;
    app.block(CLIENT, &blocked, "2")
        .await
        .expect(403, "BlockReasonError");
    app.block(ADMIN, &blocked, "7")
        .await
        .expect(403, "BlockReasonError");
    app.block(ADMIN, &blocked, "2")
        .await
        .expect(409, "StatusError");
    let (new, _) = app.card_in(State::New).await;
    app.block(CLIENT, &new, "3")
        .await
        .expect(403, "BlockReasonError");
    app.block(CLIENT, &new, "0")
        .await
        .expect(409, "StatusError");
    let (unbound, _) = app.card_in(State::IssuedUnbound).await;
    app.block(ADMIN, &unbound, "0")
        .await
        .expect(409, "StatusError");
    let (active, _) = app.card_in(State::Active).await;
    for reason in ["0", "2", "4", "9"] {
        app.unblock(CLIENT, &active, reason)
            .await
            .expect(409, "StatusError");
    }
    assert_eq!(app.status_of(&active).await, "2");
    // Issued and bound may be blocked too.
    let (bound, _) = app.card_in(State::IssuedBound).await;
    app.block(CLIENT, &bound, "0").await.ok();
    assert_eq!(app.status_of(&bound).await, "3");
}

#[tokio::test]
async fn unblock_role_by_reason_table_every_cell_with_the_matching_block_reason() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for (role, row) in UNBLOCK_TABLE {
        let login = login_of_role(role);
        for (reason, allowed) in row.iter().enumerate() {
            let number = active_card(&app).await;
            let blocker = BLOCKER_OF_REASON[reason];
            let reason = reason.to_string();
            app.block(blocker, &number, &reason).await.ok();
            let r = app.unblock(login, &number, &reason).await;
            let cell = format!("unblock {role} × reason {reason} (blocked by {blocker})");
            let (want_status, want_key) = if role == "pos" {
                // `pos` may not call unblock at all (§2).
                (403, "Forbidden")
            } else if *allowed {
                (200, "OK")
            } else {
                (403, "UnBlockReasonError")
            };
            check(&mut failures, cell.clone(), &r, want_status, want_key);
            check_names_rule(&mut failures, &cell, &r, role);
            // The contact's data is sufficient: unblocked → Active.
            let state = state_of(&app, &number).await;
            let want_state = if *allowed {
                ("2".to_owned(), None)
            } else {
                ("3".to_owned(), Some(reason.clone()))
            };
            if state != want_state {
                failures.push(format!("{cell}: card state {state:?}, want {want_state:?}"));
            }
        }
    }
    report(&failures);
}

#[tokio::test]
async fn an_unblock_reason_must_answer_the_block_reason() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for (block_reason, blocker) in BLOCKER_OF_REASON.iter().enumerate() {
        let number = active_card(&app).await;
        let block_reason = block_reason.to_string();
        app.block(blocker, &number, &block_reason).await.ok();
        // Refusals change nothing, so one card serves every mismatched cell.
        for role in ROLES {
            for unblock_reason in (0..4).map(|u| u.to_string()) {
                if unblock_reason == block_reason {
                    continue;
                }
                let r = app
                    .unblock(login_of_role(role), &number, &unblock_reason)
                    .await;
                let cell = format!(
                    "unblock {role} × reason {unblock_reason} of a card blocked with {block_reason}"
                );
                let (status, key) = if role == "pos" {
                    (403, "Forbidden")
                } else {
                    (403, "UnBlockReasonError")
                };
                check_names_rule(&mut failures, &cell, &r, "reason");
                check(&mut failures, cell, &r, status, key);
            }
        }
        let state = state_of(&app, &number).await;
        if state != ("3".to_owned(), Some(block_reason.clone())) {
            failures.push(format!(
                "card blocked with {block_reason} changed by refused unblocks: {state:?}"
            ));
        }
        // The matching reason still works afterwards (administrator may
        // use every unblock reason).
        let r = app.unblock(ADMIN, &number, &block_reason).await;
        check(
            &mut failures,
            format!("administrator unblocks {block_reason} after the refusals"),
            &r,
            200,
            "OK",
        );
    }
    report(&failures);
}

#[tokio::test]
async fn a_card_blocked_by_an_administrator_is_unblocked_only_by_an_administrator() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    for block_reason in (0..4).map(|b| b.to_string()) {
        let number = active_card(&app).await;
        app.block(ADMIN, &number, &block_reason).await.ok();
        for (role, row) in UNBLOCK_TABLE {
            if role == "administrator" {
                continue;
            }
            let cell = format!(
                "unblock {role} × matching reason {block_reason} (allowed by the table: {}) of a card blocked by administrator",
                row[block_reason.parse::<usize>().unwrap()]
            );
            let r = app
                .unblock(login_of_role(role), &number, &block_reason)
                .await;
            let (status, key) = if role == "pos" {
                (403, "Forbidden")
            } else {
                (403, "UnBlockReasonError")
            };
            check_names_rule(&mut failures, &cell, &r, "administrator");
            check(&mut failures, cell, &r, status, key);
        }
        let state = state_of(&app, &number).await;
        if state != ("3".to_owned(), Some(block_reason.clone())) {
            failures.push(format!(
                "admin-blocked card ({block_reason}) changed by refused unblocks: {state:?}"
            ));
        }
        let r = app.unblock(ADMIN, &number, &block_reason).await;
        check(
            &mut failures,
            format!("administrator unblocks its own block {block_reason}"),
            &r,
            200,
            "OK",
        );
        let state = state_of(&app, &number).await;
        if state != ("2".to_owned(), None) {
            failures.push(format!(
                "after the administrator's unblock ({block_reason}): {state:?}"
            ));
        }
    }
    report(&failures);
}

#[tokio::test]
async fn a_card_blocked_for_replacement_is_never_unblocked() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    // Blocked for replacement by a non-administrator and by an administrator.
    for blocker in [CC_OPERATOR, MARKETER, SENIOR, DIRECTOR, ADMIN] {
        let number = active_card(&app).await;
        app.block(blocker, &number, "4").await.ok();
        for role in ROLES {
            for reason in (0..4).map(|u| u.to_string()) {
                let r = app.unblock(login_of_role(role), &number, &reason).await;
                let cell = format!(
                    "unblock {role} × reason {reason} of a card blocked for replacement by {blocker}"
                );
                let (status, key) = if role == "pos" {
                    (403, "Forbidden")
                } else {
                    (403, "UnBlockReasonError")
                };
                check_names_rule(&mut failures, &cell, &r, "replacement");
                check(&mut failures, cell, &r, status, key);
            }
        }
        let state = state_of(&app, &number).await;
        if state != ("3".to_owned(), Some("4".to_owned())) {
            failures.push(format!(
                "card blocked for replacement by {blocker} changed: {state:?}"
            ));
        }
    }
    report(&failures);
}

#[tokio::test]
async fn unblock_with_insufficient_contact_data_returns_to_issued_bound() {
    let app = spawn_app().await;
    // Bound to a contact with sufficient data, activated, then the data is
    // cleared before the unblock.
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(CLIENT, &number, "0").await.ok();
    app.post(
        POS,
        "/api/contact",
        json!({"Code": contact.code, "BirthDate": ""}),
    )
    .await
    .ok();
    app.unblock(CLIENT, &number, "0").await.ok();
    let r = app.balance(&number).await;
    r.ok();
    assert_eq!(r.body["StatusCode"], json!("1"), "{}", r.body);
    assert_eq!(r.body["Code"], json!(contact.code), "{}", r.body);
    assert!(r.body.get("BlockReasonCode").is_none(), "{}", r.body);
}

#[tokio::test]
async fn block_and_unblock_by_contact_mobile_act_on_the_current_card() {
    let app = spawn_app().await;
    let by_mobile = |mobile: &str, reason: &str| json!({"ContactMobileNumber": mobile, "BlockReasonCode": reason});
    let (number, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.post(CLIENT, "/api/card/block", by_mobile(&contact.mobile, "0"))
        .await
        .ok();
    assert_eq!(app.status_of(&number).await, "3");
    app.post(
        CLIENT,
        "/api/card/unblock",
        json!({"ContactMobileNumber": contact.mobile, "UnBlockReasonCode": "0"}),
    )
    .await
    .ok();
    assert_eq!(app.status_of(&number).await, "2");

    // Both given: the card must be that contact's.
    let other = app.new_contact(true).await;
    app.post(
        ADMIN,
        "/api/card/block",
        json!({"Number": number, "ContactMobileNumber": other.mobile, "BlockReasonCode": "0"}),
    )
    .await
    .expect(409, "CardNumberBindToAnotherContact");
    app.post(ADMIN, "/api/card/block", by_mobile(&unique_mobile(), "0"))
        .await
        .expect(404, "CannotFindMobile");
    assert_eq!(app.status_of(&number).await, "2");

    // Blocked for replacement, no new card yet: the contact has no current
    // card ("the one not blocked for replacement", §5).
    app.block(CC_OPERATOR, &number, "4").await.ok();
    app.post(ADMIN, "/api/card/block", by_mobile(&contact.mobile, "0"))
        .await
        .expect(404, "CannotFindCardNumber");
    app.post(
        ADMIN,
        "/api/card/unblock",
        json!({"ContactMobileNumber": contact.mobile, "UnBlockReasonCode": "0"}),
    )
    .await
    .expect(404, "CannotFindCardNumber");

    // Once the new card is bound, it is the current card.
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.post(CLIENT, "/api/card/block", by_mobile(&contact.mobile, "0"))
        .await
        .ok();
    assert_eq!(app.status_of(&new).await, "3");
    let r = app.balance(&number).await;
    assert_eq!(r.body["BlockReasonCode"], json!("4"), "{}", r.body);
    assert_eq!(r.body["ReplacedBy"], json!(new), "{}", r.body);
}
