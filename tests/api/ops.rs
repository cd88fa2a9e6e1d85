//! Operations routes, request ids, metrics and the legacy status switch.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_and_ready_answer_without_credentials() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let r = app.send(app.client.get(app.url(path))).await;
        r.ok();
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app().await;
    let r = app.send(app.client.get(app.url("/health"))).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert!(id.len() >= 16, "{id}");
    let r = app
        .send(
            app.client
                .get(app.url("/api/nowhere"))
                .header("X-Request-Id", "till-42-req-7"),
        )
        .await;
    r.expect(401, "Unauthorized");
    assert_eq!(r.headers["x-request-id"], "till-42-req-7");
    // A caller's id that is not a sane token is replaced, not echoed.
    let r = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("X-Request-Id", "a b"),
        )
        .await;
    assert_ne!(r.headers["x-request-id"], "a b");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_route_templates_not_card_numbers() {
    let app = spawn_app().await;
    let number = app.new_card().await;
    app.balance(&number).await.ok();
    app.issue(POS, &number).await.ok();
    app.issue(CLIENT, &number).await.expect(403, "Forbidden");
    let r = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status, 200);
    let text = r.body.as_str().expect("plain text");
    assert!(text.contains("loyalty_http_requests_total{"), "{text}");
    assert!(
        text.contains(r#"route="/api/card/balance/by/{number}""#),
        "{text}"
    );
    assert!(
        text.contains("loyalty_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"loyalty_card_transitions_total{operation="issue",from="New",to="Issued"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"loyalty_errors_total{key="Forbidden"}"#),
        "{text}"
    );
    assert!(text.contains("loyalty_shard_queue_depth{"), "{text}");
    assert!(
        text.contains("loyalty_store_operation_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        !text.contains(&number),
        "metrics must not carry card numbers"
    );
}

#[tokio::test]
async fn legacy_mode_answers_business_errors_with_200_but_not_auth_or_size() {
    let app = spawn_with(|s| {
        s.http.business_errors_as_200 = true;
        s.http.max_body_bytes = 1024;
    })
    .await;
    let r = app.balance("1234567890").await;
    r.expect(200, "CannotFindCardNumber");
    assert_eq!(r.body["Status"], json!(false));
    app.get(POS, "/api/card/balance/by/12")
        .await
        .expect(200, "InvalidCardNumber");
    app.issue(CLIENT, "1234567890")
        .await
        .expect(200, "Forbidden");
    app.get(POS, "/api/nowhere").await.expect(200, "NotFound");
    let r = app
        .send(app.client.get(app.url("/api/card/balance/by/1234567890")))
        .await;
    r.expect(401, "Unauthorized");
    let big = format!(r#"{{"Number":"{}"}}"#, "1".repeat(2000));
    app.post_raw(POS, "/api/card/issue", big)
        .await
        .expect(413, "PayloadTooLarge");
}

#[tokio::test]
async fn an_engine_without_room_answers_503_overloaded_with_retry_after() {
    // Capacity 1 per shard and one shard: a burst of parallel requests must
    // see some refusals, each quick and well-formed, never a hang.
    let app = spawn_with(|s| {
        s.engine.shards = 1;
        s.engine.shard_queue_capacity = 1;
    })
    .await;
    let number = app.new_card().await;
    app.balance(&number).await.ok();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/card/balance/by/{number}"));
        tasks.push(tokio::spawn(async move {
            let r = client
                .get(url)
                .basic_auth(POS, Some(password(POS)))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap();
            (status, retry, body)
        }));
    }
    let mut refused = 0;
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            200 => assert_eq!(body["Key"], "OK"),
            503 => {
                assert_eq!(body["Key"], "Overloaded");
                assert_eq!(retry.as_deref(), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    // Not a timing assertion: with capacity 1, 64 concurrent requests from
    // one process cannot all find the single slot free.
    assert!(refused > 0, "a full shard must refuse rather than queue");
}

#[tokio::test]
async fn the_openapi_document_is_served_without_credentials_and_is_docs_openapi_json() {
    let app = spawn_app().await;
    let r = app.send(app.client.get(app.url("/api/openapi.json"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r.body, committed);
    // Every Key with its status, for a till's error table.
    let catalogue = r.body["x-error-catalogue"].as_array().unwrap();
    let entry = |key: &str| catalogue.iter().find(|e| e["Key"] == key).cloned();
    assert_eq!(entry("InvalidParameter").unwrap()["status"], 400);
    assert_eq!(entry("InvalidParameter").unwrap()["beyondContract"], true);
    assert_eq!(entry("Overloaded").unwrap()["status"], 503);
    let confirm = &r.body["paths"]["/api/purchase/confirm"]["post"]["x-error-keys"];
    assert_eq!(confirm["IdempotencyConflict"], 409);
    assert_eq!(confirm["InvalidParameter"], 400);
}
