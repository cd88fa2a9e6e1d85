//! Failed-login throttling as a stranger on the tills' network would try
//! it (issue 28, items 1 and 2): his failures must lock out only himself,
//! and a right credential always passes.

use crate::abuse_support::*;
use crate::access_support::*;
use crate::helpers::*;

async fn balance(client: &reqwest::Client, app: &TestApp, login: &str, secret: &str) -> Resp {
    app.send(
        client
            .get(app.url("/api/card/balance/by/7000000000001"))
            .basic_auth(login, Some(secret)),
    )
    .await
}

#[tokio::test]
async fn bogus_tokens_from_a_stranger_never_lock_the_till_out() {
    let dir = tempfile::tempdir().unwrap();
    let (token, sha) = loyalty::api::till_token::issue();
    let users = users_file_with(
        dir.path(),
        &format!("[[users]]\nlogin = \"till-0001\"\nrole = \"pos\"\ntoken_sha256 = \"{sha}\"\n"),
    );
    let app = spawn_with(move |s| s.auth.users_file = users).await;
    let stranger = client_from("127.0.0.2");
    let mut last = None;
    for _ in 0..6 {
        let (bogus, _) = loyalty::api::till_token::issue();
        last = Some(balance(&stranger, &app, "till-0001", &bogus).await);
    }
    last.unwrap().expect(429, "RateLimited");
    // The till's real token passes, from the till and even from the
    // stranger's own address.
    for client in [&app.client, &stranger] {
        balance(client, &app, "till-0001", &token)
            .await
            .expect(404, "CannotFindCardNumber");
    }
}

#[tokio::test]
async fn a_strangers_wrong_passwords_do_not_lock_the_user_out_elsewhere() {
    let app = spawn_app().await;
    let stranger = client_from("127.0.0.2");
    for _ in 0..6 {
        balance(&stranger, &app, POS, "guess").await;
    }
    balance(&stranger, &app, POS, "guess")
        .await
        .expect(429, "RateLimited");
    // Never verified before in this server: not a cache hit.
    balance(&app.client, &app, POS, &password(POS))
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn an_address_guessing_across_logins_is_throttled() {
    let app = spawn_with(|s| s.auth.max_failures_per_address = 10).await;
    let stranger = client_from("127.0.0.3");
    let mut statuses = Vec::new();
    for i in 0..15 {
        let (bogus, _) = loyalty::api::till_token::issue();
        statuses.push(
            balance(&stranger, &app, &format!("till-{i:04}"), &bogus)
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 5], "{statuses:?}");
    // Another address is not affected.
    let (bogus, _) = loyalty::api::till_token::issue();
    balance(&app.client, &app, "till-0001", &bogus)
        .await
        .expect(401, "Unauthorized");
}
