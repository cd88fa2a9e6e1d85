//! Refusals that say what is wrong (issue 22, item 5), and the `Allow` of a
//! 405.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_card_number_too_long_for_64_bits_is_an_invalid_card_number() {
    let app = spawn_app().await;
    for path in ["/api/card/issue", "/api/purchase/calculate"] {
        let r = app
            .post_raw(
                ADMIN,
                path,
                r#"{"Number": 98765432109876543210, "Amount": 10}"#,
            )
            .await;
        r.expect(400, "InvalidCardNumber");
        assert!(r.value().contains("98765432109876543210"), "{}", r.body);
    }
}

#[tokio::test]
async fn an_amount_over_the_cap_names_the_cap() {
    let app = spawn_app().await;
    let (number, _) = app.card_in(State::Active).await;
    for amount in ["1000000000.01", "123456789012345678901234"] {
        let r = app
            .post_raw(
                ADMIN,
                "/api/purchase/calculate",
                format!(r#"{{"Number": "{number}", "Amount": {amount}}}"#),
            )
            .await;
        r.expect(400, "InvalidAmount");
        assert!(
            r.value().contains("above the largest amount, 1000000000"),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_body_with_a_bom_or_not_utf8_says_utf8_without_bom() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    let bom = [
        b"\xEF\xBB\xBF".as_slice(),
        json!({"Number": number}).to_string().as_bytes(),
    ]
    .concat();
    let latin1 = b"{\"Number\": \"123456\", \"Name\": \"\xE9\"}".to_vec();
    for (path, body) in [
        ("/api/card/issue", bom.clone()),
        ("/api/card/issue", latin1.clone()),
        ("/api/admin/cards", bom),
    ] {
        let r = app.post_raw(ADMIN, path, body).await;
        r.expect(400, "InvalidJson");
        assert!(
            r.value().contains("UTF-8 without BOM"),
            "{path}: {}",
            r.body
        );
    }
    // An NDJSON line so encoded is a rejected line that says so.
    let r = app
        .send(
            app.client
                .post(app.url("/api/admin/cards"))
                .basic_auth(ADMIN, Some(password(ADMIN)))
                .header("Content-Type", "application/x-ndjson")
                .body(latin1),
        )
        .await;
    r.ok();
    let line = &r.body["RejectedLines"][0];
    assert_eq!(line["Key"], "InvalidJson");
    assert!(
        line["Value"]
            .as_str()
            .unwrap()
            .contains("UTF-8 without BOM"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_405_says_which_methods_the_path_answers() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/card/Issue", "GET, POST"),
        (reqwest::Method::GET, "/api/purchase/confirm", "POST"),
        (reqwest::Method::POST, "/health", "GET"),
    ] {
        let r = app
            .send(
                app.client
                    .request(method.clone(), app.url(path))
                    .basic_auth(ADMIN, Some(password(ADMIN))),
            )
            .await;
        r.expect(405, "MethodNotAllowed");
        assert_eq!(r.headers["allow"], allow, "{method} {path}");
    }
    // Legacy mode sends it as 200, with the same Allow.
    let legacy = spawn_with(|s| s.http.business_errors_as_200 = true).await;
    let r = legacy
        .send(
            legacy
                .client
                .put(legacy.url("/api/card/issue"))
                .basic_auth(ADMIN, Some(password(ADMIN))),
        )
        .await;
    r.expect(200, "MethodNotAllowed");
    assert_eq!(r.headers["allow"], "GET, POST");
}

#[tokio::test]
async fn each_server_serves_the_document_of_its_configuration() {
    let legacy = spawn_with(|s| s.http.business_errors_as_200 = true).await;
    let r = legacy
        .send(legacy.client.get(legacy.url("/api/openapi.json")))
        .await;
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/openapi-errors-as-200.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(r.body, committed);
    let custom = spawn_with(|s| s.card.number_pattern = "77[0-9]{4}".into()).await;
    let r = custom
        .send(custom.client.get(custom.url("/api/openapi.json")))
        .await;
    let issue = &r.body["paths"]["/api/card/issue"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["Number"];
    assert_eq!(issue["pattern"], "^(?:77[0-9]{4})$");
    assert_eq!(issue["x-invalid-key"], "InvalidCardNumber");
}
