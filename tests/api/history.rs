//! GET /api/card/history/{number}?limit&cursor (docs/api.md §9).

use std::collections::HashSet;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::*;

async fn page(app: &TestApp, login: &str, number: &str, query: &str) -> Resp {
    app.get(login, &format!("/api/card/history/{number}{query}"))
        .await
}

/// (login, role, operation, from, to, reason) of the changes made below,
/// oldest first.
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// A card taken through issue, bindto, active, block, unblock, block,
/// unblock: seven history entries.
async fn card_with_history(app: &TestApp) -> (String, Vec<Expected>) {
    let number = app.new_card().await;
    let contact = app.new_contact(true).await;
    app.issue(POS, &number).await.ok();
    app.bindto(CLIENT, &number, &contact.mobile).await.ok();
    app.active(CC_OPERATOR, &number).await.ok();
    app.block(DIRECTOR, &number, "2").await.ok();
    app.unblock(DIRECTOR, &number, "2").await.ok();
    app.block(CLIENT, &number, "0").await.ok();
    app.unblock(MARKETER, &number, "0").await.ok();
    let expected = vec![
        (POS, "pos", "issue", "0", "1", None),
        (CLIENT, "client", "bindto", "1", "1", None),
        (CC_OPERATOR, "cc_operator", "active", "1", "2", None),
        (DIRECTOR, "director", "block", "2", "3", Some("2")),
        (DIRECTOR, "director", "unblock", "3", "2", Some("2")),
        (CLIENT, "client", "block", "2", "3", Some("0")),
        (MARKETER, "marketer", "unblock", "3", "2", Some("0")),
    ];
    (number, expected)
}

fn items(r: &Resp) -> Vec<Value> {
    r.body["Items"]
        .as_array()
        .expect("Items is an array")
        .clone()
}

#[track_caller]
fn check_entry(e: &Value, want: &Expected) {
    let (login, role, op, from, to, reason) = *want;
    assert_eq!(e["Login"], json!(login), "{e}");
    assert_eq!(e["Role"], json!(role), "{e}");
    assert_eq!(e["Operation"], json!(op), "{e}");
    assert_eq!(e["FromStatusCode"], json!(from), "{e}");
    assert_eq!(e["ToStatusCode"], json!(to), "{e}");
    match reason {
        Some(code) => {
            assert_eq!(e["ReasonCode"], json!(code), "{e}");
            assert!(
                e["ReasonName"].as_str().is_some_and(|n| !n.is_empty()),
                "{e}"
            );
        }
        None => assert_eq!(e["ReasonCode"], Value::Null, "{e}"),
    }
    let time = e["Time"].as_str().expect("Time is a string");
    OffsetDateTime::parse(time, &Rfc3339).unwrap_or_else(|_| panic!("RFC 3339: {time}"));
}

fn time_of(e: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(e["Time"].as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn history_is_newest_first_with_who_what_and_why() {
    let app = spawn_app().await;
    let (number, expected) = card_with_history(&app).await;
    let r = page(&app, ADMIN, &number, "").await;
    r.ok();
    let all = items(&r);
    assert_eq!(all.len(), expected.len(), "{}", r.body);
    for (e, want) in all.iter().zip(expected.iter().rev()) {
        check_entry(e, want);
    }
    for pair in all.windows(2) {
        assert!(time_of(&pair[0]) >= time_of(&pair[1]), "newest first");
    }
    assert_eq!(r.body["NextCursor"], Value::Null, "{}", r.body);
    // A New card just loaded has an empty history.
    let fresh = app.new_card().await;
    let r = page(&app, ADMIN, &fresh, "").await;
    r.ok();
    assert_eq!(r.body["Items"], json!([]));
    assert_eq!(r.body["NextCursor"], Value::Null);
}

#[tokio::test]
async fn pagination_covers_every_entry_exactly_once() {
    let app = spawn_app().await;
    let (number, expected) = card_with_history(&app).await;
    let full = items(&page(&app, ADMIN, &number, "?limit=500").await);
    assert_eq!(full.len(), expected.len());
    for limit in [1, 2, 3, 7, 10] {
        let mut seen = Vec::new();
        let mut query = format!("?limit={limit}");
        let mut pages = 0;
        loop {
            let r = page(&app, SENIOR, &number, &query).await;
            r.ok();
            let got = items(&r);
            assert!(got.len() <= limit, "limit {limit}: {}", r.body);
            assert!(!got.is_empty(), "no empty page before the end: {}", r.body);
            seen.extend(got);
            pages += 1;
            assert!(pages <= expected.len(), "the cursor must end");
            match &r.body["NextCursor"] {
                Value::Null => break,
                Value::String(c) => query = format!("?limit={limit}&cursor={c}"),
                Value::Number(c) => query = format!("?limit={limit}&cursor={c}"),
                other => panic!("NextCursor is a cursor or null: {other}"),
            }
        }
        assert_eq!(seen, full, "limit {limit}: pages join to the full history");
        assert_eq!(pages, expected.len().div_ceil(limit), "limit {limit}");
        let distinct: HashSet<String> = seen.iter().map(Value::to_string).collect();
        assert_eq!(distinct.len(), seen.len(), "no entry twice");
    }
}

#[tokio::test]
async fn history_roles_and_errors() {
    let app = spawn_app().await;
    let (number, _) = card_with_history(&app).await;
    for login in [POS, CLIENT] {
        page(&app, login, &number, "")
            .await
            .expect(403, "Forbidden");
    }
    for login in [CC_OPERATOR, MARKETER, SENIOR, DIRECTOR, ADMIN] {
        let r = page(&app, login, &number, "?limit=2").await;
        r.ok();
        assert_eq!(items(&r).len(), 2, "{login}: {}", r.body);
    }
    page(&app, ADMIN, &unique_card(), "")
        .await
        .expect(404, "CannotFindCardNumber");
    page(&app, ADMIN, "12ab34", "")
        .await
        .expect(400, "InvalidCardNumber");
    for query in [
        "?limit=abc",
        "?cursor=abc",
        "?limit=-1",
        "?cursor=1.5",
        "?limit=2&cursor=x",
    ] {
        page(&app, ADMIN, &number, query)
            .await
            .expect(400, "InvalidParameter");
    }
}

#[tokio::test]
async fn replacement_and_refused_operations_in_history() {
    let app = spawn_app().await;
    let (old, contact) = app.card_in(State::Active).await;
    let contact = contact.unwrap();
    app.block(MARKETER, &old, "4").await.ok();
    // Refused operations leave no trace.
    app.unblock(ADMIN, &old, "0")
        .await
        .expect(403, "UnBlockReasonError");
    app.block(ADMIN, &old, "0").await.expect(409, "StatusError");
    let (new, _) = app.card_in(State::IssuedUnbound).await;
    app.bindto(POS, &new, &contact.mobile).await.ok();

    let all = items(&page(&app, ADMIN, &old, "").await);
    let ops: Vec<&str> = all
        .iter()
        .map(|e| e["Operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["replaced", "block", "active", "bindto", "issue"],
        "{all:?}"
    );
    assert_eq!(all[1]["ReasonCode"], json!("4"));
    assert_eq!(all[1]["Login"], json!(MARKETER));
    let new_items = items(&page(&app, ADMIN, &new, "").await);
    let new_ops: Vec<&str> = new_items
        .iter()
        .map(|e| e["Operation"].as_str().unwrap())
        .collect();
    assert_eq!(new_ops, ["bindto", "issue"]);
}
