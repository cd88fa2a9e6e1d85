//! The invariants of docs/api.md §4 under concurrent requests: one card per
//! contact, one contact per card, one block per card. Each race fires its
//! requests together and checks that exactly one wins, then reads the state
//! back.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::helpers::*;

/// How many requests each race fires.
const RACERS: usize = 16;

/// Sends `requests.len()` requests at once: request `i` goes to
/// `base_urls[i % base_urls.len()]` (so the same race can be spread over
/// several server instances sharing one store). `build(i, base_url)` makes
/// request `i` from a clone of `client`. Answers come back in request order.
pub async fn race<F>(
    client: &reqwest::Client,
    base_urls: &[String],
    n: usize,
    build: F,
) -> Vec<Resp>
where
    F: Fn(usize, &reqwest::Client, &str) -> reqwest::RequestBuilder,
{
    assert!(!base_urls.is_empty());
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let request = build(i, &client.clone(), &base_urls[i % base_urls.len()]);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let resp = request.send().await.expect("the request is answered");
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Resp {
                    status,
                    headers,
                    body,
                }
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for h in handles {
        answers.push(h.await.expect("the racer does not panic"));
    }
    answers
}

/// A POST with a JSON body as `login`.
pub fn post_as(
    client: &reqwest::Client,
    base_url: &str,
    login: &str,
    path: &str,
    body: Value,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base_url}{path}"))
        .basic_auth(login, Some(password(login)))
        .json(&body)
}

/// Exactly one answer is OK and every other one is `loser_status loser_key`;
/// returns the index of the winner.
#[track_caller]
pub fn exactly_one_winner(answers: &[Resp], loser_status: u16, loser_key: &str) -> usize {
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].key() == "OK")
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one request wins: {:?}",
        answers
            .iter()
            .map(|a| (a.status, a.key().to_owned()))
            .collect::<Vec<_>>()
    );
    for (i, a) in answers.iter().enumerate() {
        if i == winners[0] {
            a.ok();
        } else {
            a.expect(loser_status, loser_key);
        }
    }
    winners[0]
}

fn one_server(app: &TestApp) -> Vec<String> {
    vec![app.address.clone()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_cards_bound_to_one_contact_at_once_one_wins() {
    let app = spawn_app().await;
    let contact = app.new_contact(true).await;
    let mut cards = Vec::new();
    for _ in 0..RACERS {
        let (number, _) = app.card_in(State::IssuedUnbound).await;
        cards.push(number);
    }
    let answers = race(&app.client, &one_server(&app), RACERS, |i, c, url| {
        post_as(
            c,
            url,
            POS,
            "/api/card/bindto",
            json!({"Number": cards[i], "MobileNumber": contact.mobile}),
        )
    })
    .await;
    let winner = exactly_one_winner(&answers, 409, "ContactBindToAnotherCardNumber");

    let r = app.balance_by_phone(&contact.mobile).await;
    r.ok();
    assert_eq!(r.body["Number"], json!(cards[winner]), "{}", r.body);
    assert_eq!(r.body["Code"], json!(contact.code), "{}", r.body);
    for (i, number) in cards.iter().enumerate() {
        let r = app.balance(number).await;
        r.ok();
        let want = if i == winner {
            json!(contact.code)
        } else {
            json!("")
        };
        assert_eq!(r.body["Code"], want, "card {i}: {}", r.body);
        assert_eq!(r.body["StatusCode"], json!("1"), "card {i}: {}", r.body);
    }
    // A loser is still free for another contact.
    let other = app.new_contact(true).await;
    let loser = (winner + 1) % RACERS;
    app.bindto(POS, &cards[loser], &other.mobile).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_card_bound_to_sixteen_contacts_at_once_one_wins() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::IssuedUnbound).await;
    let mut contacts = Vec::new();
    for _ in 0..RACERS {
        contacts.push(app.new_contact(true).await);
    }
    let answers = race(&app.client, &one_server(&app), RACERS, |i, c, url| {
        post_as(
            c,
            url,
            POS,
            "/api/card/bindto",
            json!({"Number": number, "MobileNumber": contacts[i].mobile}),
        )
    })
    .await;
    let winner = exactly_one_winner(&answers, 409, "CardNumberBindToAnotherContact");

    let r = app.balance(&number).await;
    r.ok();
    assert_eq!(r.body["Code"], json!(contacts[winner].code), "{}", r.body);
    assert_eq!(
        r.body["MobileNumber"],
        json!(contacts[winner].mobile),
        "{}",
        r.body
    );
    for (i, contact) in contacts.iter().enumerate() {
        let r = app.balance_by_phone(&contact.mobile).await;
        if i == winner {
            r.ok();
            assert_eq!(r.body["Number"], json!(number));
        } else {
            // The losers hold no card: their claims were given back...
            r.expect(404, "CannotFindMobileNumber");
        }
    }
    // ...so a loser can take another card.
    let (other, _) = app.card_in(State::IssuedUnbound).await;
    let loser = (winner + 1) % RACERS;
    app.bindto(POS, &other, &contacts[loser].mobile).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_blocks_of_one_card_at_once_one_wins() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    let answers = race(&app.client, &one_server(&app), RACERS, |_, c, url| {
        post_as(
            c,
            url,
            ADMIN,
            "/api/card/block",
            json!({"Number": number, "BlockReasonCode": "0"}),
        )
    })
    .await;
    exactly_one_winner(&answers, 409, "StatusError");

    let r = app.balance(&number).await;
    r.ok();
    assert_eq!(r.body["StatusCode"], json!("3"), "{}", r.body);
    let r = app
        .get(ADMIN, &format!("/api/card/history/{number}?limit=500"))
        .await;
    r.ok();
    let items = r.body["Items"].as_array().unwrap();
    let blocks = items
        .iter()
        .filter(|e| e["Operation"] == json!("block"))
        .count();
    assert_eq!(blocks, 1, "exactly one block recorded: {}", r.body);
    assert_eq!(items[0]["Operation"], json!("block"), "{}", r.body);
    assert_eq!(items[0]["FromStatusCode"], json!("2"), "{}", r.body);
    assert_eq!(items[0]["ToStatusCode"], json!("3"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_new_contacts_with_one_mobile_at_once_one_wins() {
    let app = spawn_app().await;
    let mobile = unique_mobile();
    let codes: Vec<String> = (0..RACERS).map(|_| unique_code()).collect();
    let answers = race(&app.client, &one_server(&app), RACERS, |i, c, url| {
        post_as(
            c,
            url,
            POS,
            "/api/contact",
            json!({"Code": codes[i], "MobileNumber": mobile, "Name": "Racer"}),
        )
    })
    .await;
    let winner = exactly_one_winner(&answers, 409, "MobileNumberBelongsToAnotherContact");
    for (i, code) in codes.iter().enumerate() {
        let r = app.get(POS, &format!("/api/contact/{code}")).await;
        if i == winner {
            r.ok();
            assert_eq!(r.body["MobileNumber"], json!(mobile), "{}", r.body);
        } else {
            r.expect(404, "CannotFindContactCode");
        }
    }
    // Binding by the number reaches the winner.
    let (number, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &number, &mobile).await.ok();
    assert_eq!(
        app.balance(&number).await.body["Code"],
        json!(codes[winner])
    );
}
