//! A reload is held to the start's demo-credentials rule (issue 28, item
//! 9): on a public bind, a copy of the demo users without its `demo = true`
//! lines is refused by a reload as it is at start, and the users in force
//! stay.

use crate::access_support::*;
use crate::helpers::*;

#[tokio::test]
async fn a_reload_refuses_unflagged_demo_users_on_a_public_bind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let hash = loyalty::api::auth::hash_password("a real secret").unwrap();
    std::fs::write(
        &path,
        format!(
            "[[users]]\nlogin = \"ops\"\nrole = \"administrator\"\npassword_hash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let users = path.clone();
    let app = spawn_with(move |s| {
        s.http.bind = "0.0.0.0:0".into();
        s.auth.users_file = users;
    })
    .await;
    let demo = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml"),
    )
    .unwrap();
    replace_file(&path, &demo.replace("demo = true", ""));
    let refused = app.server.as_ref().unwrap().reloader.reload_users();
    let err = refused.expect_err("unflagged demo users were put in force on a public bind");
    assert!(err.to_string().contains("demo users"), "{err}");
    app.send(
        app.client
            .get(app.url("/api/card/balance/by/7000000000001"))
            .basic_auth(ADMIN, Some(password(ADMIN))),
    )
    .await
    .expect(401, "Unauthorized");
}
