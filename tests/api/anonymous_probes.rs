//! What a caller without credentials learns (issue 28, item 9): an `/api`
//! path spelled to dodge the guard still answers 401 first (docs/api.md §2), and
//! `/metrics` can be closed to all but the scraper's bearer token.

use crate::helpers::*;

#[tokio::test]
async fn an_api_path_spelled_with_extra_slashes_or_dots_answers_401_first() {
    let app = spawn_app().await;
    for path in ["//api/unknown", "/./api/unknown", "//api/card/balance/by/1"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    // Outside /api an unknown path is still plainly 404.
    let r = app.client.get(app.url("//nothing")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn metrics_with_a_bearer_token_configured_answer_only_the_scraper() {
    let (token, sha) = loyalty::api::till_token::issue();
    let app = spawn_with(move |s| s.metrics.bearer_token_sha256 = sha).await;
    let scrape = |auth: Option<String>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    assert_eq!(scrape(None).await.unwrap().status().as_u16(), 401);
    let wrong = scrape(Some("Bearer lt1_wrong".into())).await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = scrape(Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(right.status().as_u16(), 200);
    assert!(right.text().await.unwrap().contains("loyalty_"));
    // Without the setting it stays anonymous (Prometheus' default scrape).
    let open = spawn_app().await;
    let r = open.client.get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
