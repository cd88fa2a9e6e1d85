//! A resumed TLS session must not outlive its client CA (issue 28, item 6):
//! a till logs in with a certificate of CA A, the operator swaps the client
//! CAs to B and reloads, and the till comes back resuming its session —
//! TLS 1.3 (ticket) and TLS 1.2 (session id) — without sending its
//! certificate again. A plain rustls client, so that the test sees whether
//! the handshake was a resumption.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, RootCertStore, SupportedProtocolVersion,
};

use crate::access_support::*;
use crate::helpers::*;

fn client_config(
    server_ca: &Ca,
    till: &Issued,
    version: &'static SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.pem().as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(till.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(till.key_pem.as_bytes()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    Arc::new(config)
}

/// One connection, one balance request without Basic credentials: the
/// status and how the handshake went, or why the connection failed.
fn balance_over(
    config: Arc<ClientConfig>,
    port: u16,
    number: &str,
) -> Result<(u16, HandshakeKind), String> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let request = format!(
        "GET /api/card/balance/by/{number} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // Read to the end: the TLS 1.3 tickets come in after the handshake and
    // are taken in while the answer is read. The server may close without
    // close_notify; what was read counts.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if answer.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    let kind = conn.handshake_kind().ok_or("no handshake")?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    Ok((status, kind))
}

async fn resumption_after_a_ca_swap(version: &'static SupportedProtocolVersion) {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let old_ca = Ca::new("till CA A");
    let (cert, key) = write_server_files(dir.path(), &server_ca.server_cert(false));
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, old_ca.pem()).unwrap();
    let users = users_file_with(
        dir.path(),
        "[[users]]\nlogin = \"till-7\"\nrole = \"pos\"\nclient_cert_cn = \"till-7.shop-3\"\n",
    );
    let app = spawn_with(move |s| {
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
        s.http.tls.client_ca_file = ca_file.to_string_lossy().into_owned();
        s.auth.users_file = users;
    })
    .await;
    let port = app.server.as_ref().unwrap().tls_port.unwrap();
    let number = app.new_card().await;
    let config = client_config(
        &server_ca,
        &old_ca.client_cert("till-7.shop-3", false),
        version,
    );

    let (c, n) = (config.clone(), number.clone());
    let first = tokio::task::spawn_blocking(move || balance_over(c, port, &n))
        .await
        .unwrap();
    assert_eq!(first, Ok((200, HandshakeKind::Full)));
    // The client can resume: the test really exercises resumption.
    let (c, n) = (config.clone(), number.clone());
    let resumed = tokio::task::spawn_blocking(move || balance_over(c, port, &n))
        .await
        .unwrap();
    assert_eq!(resumed, Ok((200, HandshakeKind::Resumed)));

    std::fs::write(
        dir.path().join("clients-ca.pem"),
        Ca::new("till CA B").pem(),
    )
    .unwrap();
    app.server.as_ref().unwrap().reloader.reload_tls();
    let after = tokio::task::spawn_blocking(move || balance_over(config, port, &number))
        .await
        .unwrap();
    // Either the full handshake refuses CA A's certificate, or nothing
    // logs the till in; never an authenticated answer.
    assert!(
        !matches!(after, Ok((200, _)) | Ok((_, HandshakeKind::Resumed))),
        "a session of the revoked CA was resumed: {after:?}"
    );
}

#[tokio::test]
async fn a_tls13_session_is_not_resumed_after_its_client_ca_is_swapped_out() {
    resumption_after_a_ca_swap(&rustls::version::TLS13).await;
}

#[tokio::test]
async fn a_tls12_session_is_not_resumed_after_its_client_ca_is_swapped_out() {
    resumption_after_a_ca_swap(&rustls::version::TLS12).await;
}
