//! HTTPS (http.tls): certificates made at test time, a real TLS client
//! (reqwest on rustls), wrong and expired certificates, a certificate
//! reload that keeps open connections, and client-certificate logins.

use serde_json::json;

use crate::access_support::*;
use crate::helpers::*;

async fn tls_app(
    dir: &std::path::Path,
    server: &Issued,
    client_ca: Option<&Ca>,
    users_extra: &str,
) -> TestApp {
    let (cert, key) = write_server_files(dir, server);
    let client_ca_file = client_ca.map(|ca| {
        let path = dir.join("clients-ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        path.to_string_lossy().into_owned()
    });
    let users = users_file_with(dir, users_extra);
    spawn_with(move |s| {
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
        s.http.tls.client_ca_file = client_ca_file.unwrap_or_default();
        s.auth.users_file = users;
    })
    .await
}

fn tls_port(app: &TestApp) -> u16 {
    app.server.as_ref().unwrap().tls_port.expect("HTTPS is on")
}

#[tokio::test]
async fn https_answers_with_a_certificate_made_at_test_time_and_plain_http_still_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let app = tls_app(dir.path(), &ca.server_cert(false), None, "").await;
    let number = app.new_card().await;
    let (login, pw) = pos();
    let (status, body) = https_balance(
        &tls_client(&ca, None),
        tls_port(&app),
        &number,
        Some((login, &pw)),
    )
    .await
    .unwrap();
    assert_eq!((status, &body["Key"]), (200, &json!("OK")), "{body}");
    assert_eq!(body["Number"], json!(number));
    // TLS 1.2 is offered as well as 1.3 (rustls has nothing older).
    let tls12 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let (status, _) = https_balance(&tls12, tls_port(&app), &number, Some((login, &pw)))
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Without credentials HTTPS is no back door.
    let (status, body) = https_balance(&tls_client(&ca, None), tls_port(&app), &number, None)
        .await
        .unwrap();
    assert_eq!((status, &body["Key"]), (401, &json!("Unauthorized")));
    app.balance(&number).await.ok();
}

#[tokio::test]
async fn an_untrusted_or_expired_server_certificate_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let app = tls_app(dir.path(), &ca.server_cert(true), None, "").await;
    let (login, pw) = pos();
    let expired = https_balance(
        &tls_client(&ca, None),
        tls_port(&app),
        "7000000000001",
        Some((login, &pw)),
    )
    .await;
    assert!(
        expired.is_err(),
        "an expired certificate must fail: {expired:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let app = tls_app(dir.path(), &ca.server_cert(false), None, "").await;
    let stranger = Ca::new("another CA");
    let untrusted = https_balance(
        &tls_client(&stranger, None),
        tls_port(&app),
        "7000000000001",
        Some((login, &pw)),
    )
    .await;
    assert!(untrusted.is_err(), "{untrusted:?}");
}

#[tokio::test]
async fn a_certificate_reload_serves_new_handshakes_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let app = tls_app(dir.path(), &old_ca.server_cert(false), None, "").await;
    let port = tls_port(&app);
    let number = app.new_card().await;
    let (login, pw) = pos();
    let open = tls_client(&old_ca, None);
    assert_eq!(
        https_balance(&open, port, &number, Some((login, &pw)))
            .await
            .unwrap()
            .0,
        200
    );

    // A broken file is refused and the certificate in force stays.
    std::fs::write(dir.path().join("server.pem"), "not a certificate").unwrap();
    let reloader = app.server.as_ref().unwrap().reloader.clone();
    reloader.reload_tls();
    assert_eq!(
        https_balance(
            &tls_client(&old_ca, None),
            port,
            &number,
            Some((login, &pw))
        )
        .await
        .unwrap()
        .0,
        200
    );

    write_server_files(dir.path(), &new_ca.server_cert(false));
    reloader.reload_tls();
    // New handshakes get the new certificate ...
    assert_eq!(
        https_balance(
            &tls_client(&new_ca, None),
            port,
            &number,
            Some((login, &pw))
        )
        .await
        .unwrap()
        .0,
        200
    );
    assert!(https_balance(
        &tls_client(&old_ca, None),
        port,
        &number,
        Some((login, &pw))
    )
    .await
    .is_err());
    // ... and the connection opened before the reload still answers (this
    // client trusts only the old CA, so a new handshake would fail).
    assert_eq!(
        https_balance(&open, port, &number, Some((login, &pw)))
            .await
            .unwrap()
            .0,
        200
    );
}

#[tokio::test]
async fn a_client_certificate_logs_in_as_its_mapped_user_wrong_or_expired_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let till_ca = Ca::new("till CA");
    let app = tls_app(
        dir.path(),
        &server_ca.server_cert(false),
        Some(&till_ca),
        "[[users]]\nlogin = \"till-7\"\nrole = \"pos\"\nclient_cert_cn = \"till-7.shop-3\"\n",
    )
    .await;
    let port = tls_port(&app);
    let number = app.new_card().await;

    let till = till_ca.client_cert("till-7.shop-3", false);
    let (status, body) = https_balance(&tls_client(&server_ca, Some(&till)), port, &number, None)
        .await
        .unwrap();
    assert_eq!((status, &body["Key"]), (200, &json!("OK")), "{body}");
    // The certificate's user has the pos role: admin methods stay closed.
    let r = tls_client(&server_ca, Some(&till))
        .post(format!("https://127.0.0.1:{port}/api/admin/cards"))
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A certificate of an unmapped CN is no login; Basic still works.
    let unmapped = till_ca.client_cert("till-9.shop-3", false);
    let (status, _) = https_balance(
        &tls_client(&server_ca, Some(&unmapped)),
        port,
        &number,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    let (login, pw) = pos();
    let (status, _) = https_balance(
        &tls_client(&server_ca, None),
        port,
        &number,
        Some((login, &pw)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "client certificates are optional by default");

    // Signed by another CA, or expired: the handshake fails.
    let forged = Ca::new("till CA").client_cert("till-7.shop-3", false);
    let expired = till_ca.client_cert("till-7.shop-3", true);
    for (name, id) in [("another CA", forged), ("expired", expired)] {
        let r = https_balance(&tls_client(&server_ca, Some(&id)), port, &number, None).await;
        assert!(r.is_err(), "{name}: {r:?}");
    }

    // The client CAs are reloaded too: the old CA's certificates stop
    // working for new handshakes, the new CA's start.
    let next_ca = Ca::new("next till CA");
    std::fs::write(dir.path().join("clients-ca.pem"), next_ca.pem()).unwrap();
    app.server.as_ref().unwrap().reloader.reload_tls();
    let r = https_balance(&tls_client(&server_ca, Some(&till)), port, &number, None).await;
    assert!(r.is_err(), "{r:?}");
    let renewed = next_ca.client_cert("till-7.shop-3", false);
    let (status, _) = https_balance(&tls_client(&server_ca, Some(&renewed)), port, &number, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn require_client_cert_refuses_tls_connections_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let till_ca = Ca::new("till CA");
    let (cert, key) = write_server_files(dir.path(), &server_ca.server_cert(false));
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, till_ca.pem()).unwrap();
    let users = users_file_with(
        dir.path(),
        "[[users]]\nlogin = \"till-7\"\nrole = \"pos\"\nclient_cert_cn = \"till-7\"\n",
    );
    let app = spawn_with(move |s| {
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
        s.http.tls.client_ca_file = ca_file.to_string_lossy().into_owned();
        s.http.tls.require_client_cert = true;
        s.auth.users_file = users;
    })
    .await;
    let port = tls_port(&app);
    let (login, pw) = pos();
    let r = https_balance(
        &tls_client(&server_ca, None),
        port,
        "7000000000001",
        Some((login, &pw)),
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    let till = till_ca.client_cert("till-7", false);
    let (status, _) = https_balance(
        &tls_client(&server_ca, Some(&till)),
        port,
        "7000000000001",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 404, "logged in; the card is simply not there");
}
