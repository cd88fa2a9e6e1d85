//! Revocation without downtime: the users file reloaded (as SIGHUP and the
//! file poller do) takes effect at once, and a broken one changes nothing.
//! Also: till tokens over HTTP.

use std::time::{Duration, Instant};

use crate::access_support::*;
use crate::helpers::*;

const TILL: &str = "[[users]]\nlogin = \"till-1\"\nrole = \"pos\"\n";

fn demo_users() -> String {
    std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml"),
    )
    .unwrap()
}

/// The demo users without `login`'s entry.
fn demo_users_without(login: &str) -> String {
    demo_users()
        .split("[[users]]")
        .filter(|entry| !entry.contains(&format!("login = \"{login}\"")))
        .collect::<Vec<_>>()
        .join("[[users]]")
}

async fn app_with_users(
    dir: &std::path::Path,
    extra: &str,
    check_ms: u64,
) -> (TestApp, std::path::PathBuf) {
    let users = users_file_with(dir, extra);
    let path = users.clone();
    let app = spawn_with(move |s| {
        s.auth.users_file = users;
        s.auth.reload_check_ms = check_ms;
    })
    .await;
    (app, path)
}

async fn balance_as(app: &TestApp, login: &str, secret: &str) -> Resp {
    app.send(
        app.client
            .get(app.url("/api/card/balance/by/7000000000001"))
            .basic_auth(login, Some(secret)),
    )
    .await
}

fn reloader(app: &TestApp) -> std::sync::Arc<loyalty::reload::Reloader> {
    app.server.as_ref().unwrap().reloader.clone()
}

#[tokio::test]
async fn a_removed_login_stops_working_at_once_and_the_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (app, path) = app_with_users(dir.path(), "", 0).await;
    balance_as(&app, POS, &password(POS))
        .await
        .expect(404, "CannotFindCardNumber");
    replace_file(&path, &demo_users_without(POS));
    let change = reloader(&app).reload_users().unwrap();
    assert_eq!(change.removed, vec![POS]);
    // Its verification was cached a moment ago; it must not count any more.
    balance_as(&app, POS, &password(POS))
        .await
        .expect(401, "Unauthorized");
    balance_as(&app, CLIENT, &password(CLIENT))
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn a_changed_password_or_role_takes_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (token, sha) = loyalty::api::till_token::issue();
    let (app, path) =
        app_with_users(dir.path(), &format!("{TILL}token_sha256 = \"{sha}\"\n"), 0).await;
    balance_as(&app, "till-1", &token)
        .await
        .expect(404, "CannotFindCardNumber");

    let (new_token, new_sha) = loyalty::api::till_token::issue();
    replace_file(
        &path,
        &format!("{}\n{TILL}token_sha256 = \"{new_sha}\"\n", demo_users())
            .replace("role = \"pos\"\ntoken", "role = \"client\"\ntoken"),
    );
    let change = reloader(&app).reload_users().unwrap();
    assert_eq!(change.changed, vec!["till-1"]);
    balance_as(&app, "till-1", &token)
        .await
        .expect(401, "Unauthorized");
    balance_as(&app, "till-1", &new_token)
        .await
        .expect(404, "CannotFindCardNumber");
    // client may not issue cards; pos could.
    app.send(
        app.client
            .get(app.url("/api/card/issue?Number=7000000000001"))
            .basic_auth("till-1", Some(&new_token)),
    )
    .await
    .expect(403, "Forbidden");
}

#[tokio::test]
async fn a_broken_users_file_keeps_the_users_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (app, path) = app_with_users(dir.path(), "", 0).await;
    for broken in [
        "[[users]\nlogin = ",
        "[[users]]\nlogin = \"x\"\nrole = \"emperor\"\npassword_hash = \"nope\"\n",
        "[[users]]\nlogin = \"x\"\nrole = \"pos\"\ntoken_sha256 = \"short\"\n",
    ] {
        replace_file(&path, broken);
        let err = reloader(&app).reload_users().unwrap_err();
        assert!(
            !err.to_string().contains("argon2id$"),
            "no hash in the log: {err}"
        );
        balance_as(&app, POS, &password(POS))
            .await
            .expect(404, "CannotFindCardNumber");
    }
    std::fs::remove_file(&path).unwrap();
    assert!(reloader(&app).reload_users().is_err());
    balance_as(&app, ADMIN, &password(ADMIN))
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn the_users_file_is_reloaded_when_it_changes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (app, path) = app_with_users(dir.path(), "", 50).await;
    balance_as(&app, POS, &password(POS))
        .await
        .expect(404, "CannotFindCardNumber");
    replace_file(&path, &demo_users_without(POS));
    // Polled every 50 ms; bounded wait, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = balance_as(&app, POS, &password(POS)).await;
        if r.status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the change was never picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken version on disk is not picked up; the good users stay.
    replace_file(&path, "[[users]\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    balance_as(&app, CLIENT, &password(CLIENT))
        .await
        .expect(404, "CannotFindCardNumber");
}

#[tokio::test]
async fn a_till_token_logs_in_and_nothing_else_of_its_shape_does() {
    let dir = tempfile::tempdir().unwrap();
    let (token, sha) = loyalty::api::till_token::issue();
    let (other, _) = loyalty::api::till_token::issue();
    let (app, _) =
        app_with_users(dir.path(), &format!("{TILL}token_sha256 = \"{sha}\"\n"), 0).await;
    balance_as(&app, "till-1", &token)
        .await
        .expect(404, "CannotFindCardNumber");
    balance_as(&app, "till-1", &other)
        .await
        .expect(401, "Unauthorized");
    balance_as(&app, POS, &token)
        .await
        .expect(401, "Unauthorized");
}
