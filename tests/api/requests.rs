//! What the HTTP layer does before any card rule: routing, parameter names,
//! JSON handling, sizes, credentials.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn routes_and_parameter_names_are_case_insensitive() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.get(POS, &format!("/API/Card/ISSUE?nUmBeR={number}"))
        .await
        .ok();
    assert_eq!(app.status_of(&number).await, "1");
    let contact = app.new_contact(true).await;
    app.post(
        POS,
        "/api/CARD/BindTo",
        json!({"NUMBER": number, "mobilenumber": contact.mobile}),
    )
    .await
    .ok();
    app.post(POS, "/api/card/Active", json!({"number": number}))
        .await
        .ok();
    let r = app
        .get(POS, &format!("/api/card/BALANCE/by/{number}"))
        .await;
    r.ok();
    assert_eq!(r.body["StatusCode"], "2");
    app.get(POS, &format!("/api/card/balance/by/NUMBER/{number}"))
        .await
        .ok();
    app.get(
        POS,
        &format!("/api/card/balance/by/Phone/{}", contact.mobile),
    )
    .await
    .ok();
    app.get(POS, &format!("/api/card/balance/by/CODE/{}", contact.code))
        .await
        .ok();
}

#[tokio::test]
async fn the_seeds_binto_spelling_answers_like_bindto() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    let contact = app.new_contact(false).await;
    app.post(
        POS,
        "/api/card/binto",
        json!({"Number": number, "MobileNumber": contact.mobile}),
    )
    .await
    .ok();
    assert_eq!(app.balance(&number).await.body["Code"], json!(contact.code));
}

#[tokio::test]
async fn issue_and_active_also_accept_post_with_a_json_body() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.post(POS, "/api/card/issue", json!({"Number": number}))
        .await
        .ok();
    assert_eq!(app.status_of(&number).await, "1");
}

#[tokio::test]
async fn codes_and_numbers_may_be_json_integers() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    let as_int: u64 = number.parse().unwrap();
    app.post(
        CLIENT,
        "/api/card/block",
        json!({"Number": as_int, "BlockReasonCode": 0}),
    )
    .await
    .ok();
    let r = app.balance(&number).await;
    assert_eq!(r.body["StatusCode"], "3");
    assert_eq!(r.body["BlockReasonCode"], "0");
    app.post(
        CLIENT,
        "/api/card/unblock",
        json!({"Number": number, "UnBlockReasonCode": "0"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn phone_formats_normalize_to_the_same_contact() {
    let app = spawn_app().await;
    let (number, contact) = app.card_in(State::Active).await;
    let m = contact.unwrap().mobile; // 11 digits: 79xxxxxxxxx
    let formatted = format!(
        "+{} ({}) {}-{}-{}",
        &m[0..1],
        &m[1..4],
        &m[4..7],
        &m[7..9],
        &m[9..11]
    );
    let encoded = formatted.replace('+', "%2B").replace(' ', "%20");
    let r = app
        .get(POS, &format!("/api/card/balance/by/phone/{encoded}"))
        .await;
    r.ok();
    assert_eq!(r.body["Number"], json!(number));
    assert_eq!(r.body["MobileNumber"], json!(m));
    app.get(POS, "/api/card/balance/by/phone/12345")
        .await
        .expect(400, "InvalidMobileNumber");
    app.get(POS, "/api/card/balance/by/phone/7916abc4567")
        .await
        .expect(400, "InvalidMobileNumber");
}

#[tokio::test]
async fn malformed_json_wrong_types_and_nulls() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    for body in [
        r#"{"Number": "#,
        "[1,2]",
        r#""just a string""#,
        "{'Number': 1}",
    ] {
        app.post_raw(POS, "/api/card/bindto", body)
            .await
            .expect(400, "InvalidJson");
    }
    app.post(
        POS,
        "/api/card/bindto",
        json!({"Number": [number], "MobileNumber": "79161234567"}),
    )
    .await
    .expect(400, "InvalidJson");
    app.post(
        POS,
        "/api/card/bindto",
        json!({"Number": {"x": 1}, "MobileNumber": "79161234567"}),
    )
    .await
    .expect(400, "InvalidJson");
    app.post(
        POS,
        "/api/card/bindto",
        json!({"Number": true, "MobileNumber": "79161234567"}),
    )
    .await
    .expect(400, "InvalidJson");
    // null counts as not given
    let r = app
        .post(
            POS,
            "/api/card/bindto",
            json!({"Number": null, "MobileNumber": null}),
        )
        .await;
    r.expect(400, "RequiredParameterNotSpecified");
    assert_eq!(r.value(), "Number, MobileNumber");
    // unknown fields are ignored
    app.post(
        POS,
        "/api/card/issue",
        json!({"Number": number, "Extra": {"deep": [1]}}),
    )
    .await
    .ok();
    // nothing changed by the refused requests
    assert_eq!(app.balance(&number).await.body["Code"], json!(""));
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let big = format!(r#"{{"Number":"123456","Pad":"{}"}}"#, "x".repeat(70_000));
    let r = app.post_raw(POS, "/api/card/issue", big).await;
    r.expect(413, "PayloadTooLarge");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = spawn_app().await;
    app.get(POS, "/api/card/nothing")
        .await
        .expect(404, "NotFound");
    app.get(POS, "/").await.expect(404, "NotFound");
    app.get(POS, "/api/unknown").await.expect(404, "NotFound");
    app.get(POS, "/api/card/block")
        .await
        .expect(405, "MethodNotAllowed");
    app.send(
        app.client
            .delete(app.url("/api/card/issue"))
            .basic_auth(POS, Some(password(POS))),
    )
    .await
    .expect(405, "MethodNotAllowed");
}

#[tokio::test]
async fn credentials_missing_wrong_or_garbage_are_401_with_a_challenge() {
    let app = spawn_app().await;
    let url = app.url("/api/card/balance/by/1234567890");
    let cases = [
        app.client.get(&url),
        app.client.get(&url).basic_auth(POS, Some("wrong")),
        app.client.get(&url).basic_auth("nobody", Some("pos-demo")),
        app.client
            .get(&url)
            .header("Authorization", "Basic !!!not-base64"),
        app.client.get(&url).header("Authorization", "Bearer abc"),
        app.client
            .get(&url)
            .header("Authorization", "Basic bm9jb2xvbg=="),
    ];
    for req in cases {
        let r = app.send(req).await;
        r.expect(401, "Unauthorized");
        assert_eq!(r.headers["www-authenticate"], r#"Basic realm="loyalty""#);
    }
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_429() {
    let app = spawn_with(|s| {
        s.auth.max_failures = 3;
    })
    .await;
    let url = app.url("/api/card/balance/by/1234567890");
    for _ in 0..3 {
        app.send(app.client.get(&url).basic_auth(DIRECTOR, Some("guess")))
            .await
            .expect(401, "Unauthorized");
    }
    let r = app
        .send(app.client.get(&url).basic_auth(DIRECTOR, Some("guess")))
        .await;
    r.expect(429, "RateLimited");
    assert!(r.headers.contains_key("retry-after"));
    // Even the right password waits out the lockout (it was never cached).
    app.send(
        app.client
            .get(&url)
            .basic_auth(DIRECTOR, Some(password(DIRECTOR))),
    )
    .await
    .expect(429, "RateLimited");
    // Other logins are not affected.
    app.balance("1234567890")
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn a_role_outside_the_method_table_is_forbidden() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    for login in [CLIENT, CC_OPERATOR, MARKETER] {
        app.issue(login, &number).await.expect(403, "Forbidden");
    }
    app.block(POS, &number, "0").await.expect(403, "Forbidden");
    app.unblock(POS, &number, "0")
        .await
        .expect(403, "Forbidden");
    for login in [POS, CLIENT, SENIOR, DIRECTOR, MARKETER, CC_OPERATOR] {
        app.post(login, "/api/admin/cards", json!([]))
            .await
            .expect(403, "Forbidden");
    }
    for login in [POS, CLIENT] {
        app.get(login, &format!("/api/card/history/{number}"))
            .await
            .expect(403, "Forbidden");
    }
    // Forbidden is decided before parameters are looked at.
    app.post(CLIENT, "/api/card/issue", json!({}))
        .await
        .expect(403, "Forbidden");
    assert_eq!(app.status_of(&number).await, "0");
}

#[tokio::test]
async fn api_paths_cannot_be_probed_without_credentials() {
    let app = spawn_app().await;
    let anonymous = [
        app.client.get(app.url("/api/unknown")),
        app.client.get(app.url("/API/Card/Nothing")),
        app.client.get(app.url("/api")),
        app.client.get(app.url("/api/card/block")), // a POST route
        app.client.delete(app.url("/api/card/issue")),
        app.client
            .get(app.url("/api/unknown"))
            .basic_auth(POS, Some("wrong")),
    ];
    for req in anonymous {
        let r = app.send(req).await;
        r.expect(401, "Unauthorized");
        assert_eq!(r.headers["www-authenticate"], r#"Basic realm="loyalty""#);
        assert!(r.headers.contains_key("x-request-id"));
    }
    // Outside /api, and for callers who logged in, the usual answers.
    app.send(app.client.get(app.url("/nowhere")))
        .await
        .expect(404, "NotFound");
    app.send(app.client.post(app.url("/health")))
        .await
        .expect(405, "MethodNotAllowed");
    app.get(POS, "/api").await.expect(404, "NotFound");
    app.get(CLIENT, "/api/card/block")
        .await
        .expect(405, "MethodNotAllowed");
}
