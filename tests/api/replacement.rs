//! Card replacement (docs/api.md §4): a card blocked with reason 4 frees its
//! contact for one new card, is marked `ReplacedBy`, and is never unblocked.

use serde_json::json;

use crate::card_support::*;
use crate::helpers::*;

#[tokio::test]
async fn a_card_blocked_for_replacement_lets_a_new_card_take_its_contact() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let (new, _) = app.card_in(State::IssuedUnbound).await;

    // Before the replacement block the contact is taken.
    app.bindto(POS, &new, &contact.mobile)
        .await
        .expect(409, "ContactBindToAnotherCardNumber");
    assert_card(&app.card_view(&new).await, "1", None);

    app.block(CC_OPERATOR, &old, "4").await.ok();
    app.bindto(POS, &new, &contact.mobile).await.ok();

    let old_view = app.card_view(&old).await;
    assert_eq!(old_view["StatusCode"], json!("3"), "{old_view}");
    assert_eq!(old_view["BlockReasonCode"], json!("4"), "{old_view}");
    assert_eq!(old_view["BlockReasonName"], json!("Card replacement"));
    assert_eq!(old_view["ReplacedBy"], json!(new), "{old_view}");
    assert_eq!(old_view["Bonuses"], json!([]), "{old_view}");

    let new_view = app.card_view(&new).await;
    assert_card(&new_view, "1", Some(&contact));
    assert_eq!(new_view["Name"], json!("Test Person"));
    assert!(new_view.get("ReplacedBy").is_none(), "{new_view}");

    // The contact's card is now the new one.
    let r = app.balance_by_phone(&contact.mobile).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(new), "{}", r.body);
    let r = app.balance_by_code(&contact.code).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(new), "{}", r.body);
    let r = app
        .get(POS, &format!("/api/contact/{}", contact.code))
        .await;
    r.ok();
    assert_eq!(r.body["Card"]["Number"], json!(new), "{}", r.body);

    // The new card activates with the contact's data.
    app.active(POS, &new).await.ok();
    assert_card(&app.card_view(&new).await, "2", Some(&contact));
}

#[tokio::test]
async fn a_replaced_card_is_unblocked_by_no_role_with_any_reason() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(DIRECTOR, &old, "4").await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(CLIENT, &new, &contact.mobile).await.ok();
    let before = app.card_view(&old).await;
    let history = app.history(&old).await;
    for login in [CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR, ADMIN] {
        for reason in ["0", "1", "2", "3"] {
            let r = app.unblock(login, &old, reason).await;
            assert_eq!(
                (r.status, r.key()),
                (403, "UnBlockReasonError"),
                "{login} with reason {reason}: {}",
                r.body
            );
            assert!(r.value().contains("replacement"), "{}", r.body);
        }
    }
    app.unblock(POS, &old, "0").await.expect(403, "Forbidden");
    assert_eq!(app.card_view(&old).await, before);
    assert_eq!(app.history(&old).await, history, "refusals add nothing");
    assert_card(&app.card_view(&new).await, "1", Some(&contact));
}

#[tokio::test]
async fn a_second_new_card_cannot_take_the_contact_while_the_replacement_is_usable() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(MARKETER, &old, "4").await.ok();
    let (first, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &first, &contact.mobile).await.ok();

    let (second, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &second, &contact.mobile)
        .await
        .expect(409, "ContactBindToAnotherCardNumber");
    app.active(POS, &first).await.ok();
    app.bindto(POS, &second, &contact.mobile)
        .await
        .expect(409, "ContactBindToAnotherCardNumber");
    // Blocked for another reason, the replacement card still holds the contact.
    app.block(CLIENT, &first, "0").await.ok();
    app.bindto(POS, &second, &contact.mobile)
        .await
        .expect(409, "ContactBindToAnotherCardNumber");
    assert_card(&app.card_view(&second).await, "1", None);
    let old_view = app.card_view(&old).await;
    assert_eq!(old_view["ReplacedBy"], json!(first), "{old_view}");

    // Once the first replacement is itself replaced, the chain moves on.
    app.unblock(CLIENT, &first, "0").await.ok();
    app.block(SENIOR, &first, "4").await.ok();
    app.bindto(POS, &second, &contact.mobile).await.ok();
    assert_eq!(app.card_view(&first).await["ReplacedBy"], json!(second));
    assert_eq!(app.card_view(&old).await["ReplacedBy"], json!(first));
    let r = app.balance_by_phone(&contact.mobile).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(second));
}

#[tokio::test]
async fn block_and_unblock_by_contact_mobile_act_on_the_replacement_card() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(ADMIN, &old, "4").await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.active(POS, &new).await.ok();

    app.block_by_mobile(CLIENT, &contact.mobile, "0").await.ok();
    let view = app.card_view(&new).await;
    assert_card(&view, "3", Some(&contact));
    assert_eq!(view["BlockReasonCode"], json!("0"));
    assert_eq!(app.card_view(&old).await["BlockReasonCode"], json!("4"));
    app.unblock_by_mobile(CLIENT, &contact.mobile, "0")
        .await
        .ok();
    assert_card(&app.card_view(&new).await, "2", Some(&contact));
    // The old card named with the contact's phone: still that contact's card,
    // so the rules answer (it can never be unblocked).
    let r = app
        .post(
            ADMIN,
            "/api/card/unblock",
            json!({"Number": old, "ContactMobileNumber": contact.mobile, "UnBlockReasonCode": "0"}),
        )
        .await;
    r.expect(403, "UnBlockReasonError");
}

#[tokio::test]
async fn the_replacement_card_unblocks_to_active_or_issued_by_the_contacts_data() {
    let app = spawn_app().await;

    // The contact's data is sufficient at block time, cleared before unblock.
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(CC_OPERATOR, &old, "4").await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.active(POS, &new).await.ok();
    app.block(CLIENT, &new, "0").await.ok();
    app.update_contact(&contact.code, "", "1990-01-31").await;
    app.unblock(CLIENT, &new, "0").await.ok();
    let view = app.card_view(&new).await;
    assert_card(&view, "1", Some(&contact));
    assert_eq!(view["Name"], json!(""));
    app.active(POS, &new).await.expect(409, "StatusError");

    // Insufficient at block time (old card only Issued and bound), completed
    // before unblock: Active.
    let old = app.new_card().await;
    app.issue(POS, &old).await.ok();
    let contact = app.new_contact(false).await;
    app.bindto(POS, &old, &contact.mobile).await.ok();
    app.block(SENIOR, &old, "4").await.ok();
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.active(POS, &new).await.expect(409, "StatusError");
    app.block(SENIOR, &new, "1").await.ok();
    app.unblock(SENIOR, &new, "1").await.ok();
    assert_card(&app.card_view(&new).await, "1", Some(&contact));
    app.block(SENIOR, &new, "1").await.ok();
    app.update_contact(&contact.code, "Olga", "2001-02-03")
        .await;
    app.unblock(SENIOR, &new, "1").await.ok();
    let view = app.card_view(&new).await;
    assert_card(&view, "2", Some(&contact));
    assert_eq!(view["Name"], json!("Olga"));
    // The old card is untouched by all this.
    let old_view = app.card_view(&old).await;
    assert_eq!(old_view["StatusCode"], json!("3"));
    assert_eq!(old_view["ReplacedBy"], json!(new));
}

#[tokio::test]
async fn by_contact_mobile_a_card_blocked_for_replacement_is_not_the_contacts_card() {
    // docs/api.md §5: block/unblock by ContactMobileNumber act on the contact's
    // current card, "the one not blocked for replacement". Before a new card
    // is bound, the contact has none: the same answer as for a contact
    // without any card.
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::BlockedForReplacement).await;
    let contact = contact.unwrap();
    let before = app.history(&old).await;
    app.block_by_mobile(ADMIN, &contact.mobile, "0")
        .await
        .expect(404, "CannotFindCardNumber");
    app.unblock_by_mobile(ADMIN, &contact.mobile, "0")
        .await
        .expect(404, "CannotFindCardNumber");
    assert_eq!(app.history(&old).await, before);
    // Once the new card is bound, the phone names it.
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();
    app.block_by_mobile(CLIENT, &contact.mobile, "0").await.ok();
    assert_card(&app.card_view(&new).await, "3", Some(&contact));
    assert_eq!(app.card_view(&old).await["BlockReasonCode"], json!("4"));
}

/// Several new cards racing for one contact: exactly one is bound, both for a
/// free contact and for one whose card was just blocked for replacement.
#[tokio::test]
async fn concurrent_binds_to_one_contact_bind_exactly_one_card() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    let fresh = app.new_contact(true).await;
    app.block(CC_OPERATOR, &old, "4").await.ok();
    for target in [&fresh, &contact] {
        let mut cards = Vec::new();
        for _ in 0..6 {
            cards.push(app.card_in(State::IssuedUnbound).await.0);
        }
        let answers = bind_all_at_once(&app, &cards, &target.mobile).await;
        let winners: Vec<&String> = cards
            .iter()
            .zip(&answers)
            .filter(|(_, (s, k))| (*s, k.as_str()) == (200, "OK"))
            .map(|(c, _)| c)
            .collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        for (s, k) in &answers {
            assert!(
                (*s, k.as_str()) == (200, "OK")
                    || (*s, k.as_str()) == (409, "ContactBindToAnotherCardNumber"),
                "{answers:?}"
            );
        }
        let r = app.balance_by_phone(&target.mobile).await;
        r.ok();
        assert_eq!(r.body["Number"], json!(winners[0]));
        for card in &cards {
            let view = app.card_view(card).await;
            let bound = view["MobileNumber"] != json!("");
            assert_eq!(bound, card == winners[0], "{view}");
        }
    }
    assert_eq!(
        app.card_view(&old).await["ReplacedBy"],
        json!(app.balance_by_phone(&contact.mobile).await.body["Number"])
    );
}

/// Sends one bindto per card at once; (HTTP status, Key) in card order.
async fn bind_all_at_once(app: &TestApp, cards: &[String], mobile: &str) -> Vec<(u16, String)> {
    let mut tasks = Vec::new();
    for card in cards {
        let client = app.client.clone();
        let url = app.url("/api/card/bindto");
        let body = json!({"Number": card, "MobileNumber": mobile});
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .basic_auth(POS, Some(password(POS)))
                .json(&body)
                .send()
                .await
                .expect("answered");
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.expect("JSON");
            (status, body["Key"].as_str().unwrap_or("").to_owned())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
