//! A flood of silent connections to the HTTPS port (issue 28, item 5): it
//! used up the shared workers' TLS handshake slots and plain HTTP stopped
//! answering until the server gave up on some of the handshakes. The
//! listeners have workers of their own now, handshakes no slot count, and
//! each address a connection cap.
//!
//! Asserted as an order, not a time: with the flood holding every
//! handshake it has started, plain HTTP and HTTPS must be answered before
//! the server has given up on any of them.

use std::time::Duration;

use crate::abuse_support::*;
use crate::access_support::*;
use crate::helpers::*;

#[tokio::test]
async fn a_flood_of_silent_tls_connections_does_not_stop_plain_http_or_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = write_server_files(dir.path(), &ca.server_cert(false));
    let app = spawn_with(move |s| {
        s.http.tls.bind = "127.0.0.1:0".into();
        s.http.tls.cert_file = cert;
        s.http.tls.key_file = key;
        // Longer than the probes take: no silent handshake is dropped
        // while they run.
        s.http.tls.handshake_timeout_ms = 120_000;
    })
    .await;
    let tls_port = app.server.as_ref().unwrap().tls_port.unwrap();
    // 600 silent connections from 10 addresses: more than the 2 workers'
    // 2 x 256 handshake slots actix-tls had, fewer than any address's cap.
    let mut flood = Vec::new();
    for i in 0..600 {
        let from = format!("127.0.2.{}", 1 + i % 10);
        flood.push(connect_from(&from, tls_port).await.unwrap());
    }
    let probes = async {
        for _ in 0..4 {
            app.send(app.client.get(app.url("/health"))).await.ok();
        }
        let https = tls_client(&ca, None);
        let (status, _) = https_balance(
            &https,
            tls_port,
            "7000000000001",
            Some((POS, &password(POS))),
        )
        .await
        .unwrap();
        assert_eq!(status, 404);
    };
    tokio::time::timeout(Duration::from_secs(60), probes)
        .await
        .expect("plain HTTP or HTTPS did not answer during the TLS flood (60 s)");
    let given_up = flood
        .iter()
        .filter(|c| match c.try_read(&mut [0u8; 1]) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count();
    assert_eq!(
        given_up, 0,
        "the probes were answered only after the server had given up on {given_up} silent handshakes"
    );
}
